//! A real model API to inject faults into: the iris example (FastAPI + scikit-learn,
//! instrumented with `modelmon_interceptor`) in a container, and a steady load on it.
//!
//! The container is the imported busybox image with everything else bind-mounted
//! read-only: `/usr` and `/lib*` for the C libraries, the Python the venv links to, the
//! venv `scripts/services.sh modelapi` builds, and `examples/iris-fastapi`. It runs with
//! `--network host` on a free loopback port, so it reaches the broker on 127.0.0.1 and no
//! traffic ever leaves the machine. Faults are switched with `PUT /faults` (see
//! examples/iris-fastapi/faults.py).

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{AMQP, unique};

pub const IMAGE: &str = "modelmon-test-busybox:latest";
const SETUP_HINT: &str = "run ./scripts/services.sh docker modelapi first";

/// How to run the model API container.
#[derive(Debug, Clone)]
pub struct ModelApiOpts {
    /// The model name: `MODELMON_MODEL`, the container label and the predict path.
    pub model: String,
    /// `docker run --cpus`.
    pub cpus: String,
    /// `docker run --memory` (and `--memory-swap`, so a leak ends in the OOM killer, not
    /// in swap).
    pub memory: String,
    /// The label that maps the container to the model (the monitor's `[docker] label_key`).
    pub label_key: String,
    /// The broker the interceptor publishes to.
    pub amqp: String,
    /// How long `start` waits for `/health`.
    pub ready_timeout: Duration,
}

impl ModelApiOpts {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.to_owned(),
            cpus: "1".into(),
            memory: "400m".into(),
            label_key: "modelmon.model".into(),
            amqp: AMQP.into(),
            ready_timeout: Duration::from_secs(90),
        }
    }
}

/// The iris model API in a container, removed when dropped.
pub struct ModelApi {
    name: String,
    id: String,
    model: String,
    port: u16,
}

impl ModelApi {
    pub fn start(opts: &ModelApiOpts) -> Self {
        let venv = super::services::model_api_venv();
        let python = venv.join("bin/python");
        // The venv's python is a symlink to the interpreter it was made from, which loads
        // its standard library (and libpython) from its own prefix: that prefix must be
        // in the container at the same path.
        let prefix = Command::new(&python)
            .args(["-c", "import sys; print(sys.base_prefix)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || panic!("no working venv at {} ({SETUP_HINT})", venv.display()),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            );
        let app = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/iris-fastapi");
        let port = free_port();
        let name = unique("mm-iris");

        let ro = |host: &str, inside: &str| format!("{host}:{inside}:ro");
        let mut mounts = vec![ro("/usr", "/usr")];
        for dir in ["/lib", "/lib64", "/etc/ssl"] {
            // On merged-/usr systems /lib is a symlink; Docker mounts what it points to.
            if Path::new(dir).exists() {
                mounts.push(ro(dir, dir));
            }
        }
        let venv_s = venv.to_str().expect("utf-8 venv path");
        mounts.push(ro(&prefix, &prefix));
        mounts.push(ro(venv_s, venv_s));
        mounts.push(ro(app.to_str().expect("utf-8 app path"), "/app"));

        let label = format!("{}={}", opts.label_key, opts.model);
        let port_s = port.to_string();
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            // Host networking on a loopback port: the broker is on 127.0.0.1, and nothing
            // else is reachable or reached.
            "--network",
            "host",
            "--cpus",
            &opts.cpus,
            "--memory",
            &opts.memory,
            "--memory-swap",
            &opts.memory,
            "--label",
            &label,
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for m in &mounts {
            args.extend(["-v".into(), m.clone()]);
        }
        for (k, v) in [
            ("MODELMON_MODEL", opts.model.as_str()),
            ("MODELMON_AMQP_URL", opts.amqp.as_str()),
            ("IRIS_FAULTS", "1"),
            ("HOME", "/tmp"),
            // scikit-learn's thread pools would otherwise size themselves to the host's
            // cores, not to --cpus.
            ("OMP_NUM_THREADS", "1"),
            ("OPENBLAS_NUM_THREADS", "1"),
        ] {
            args.extend(["-e".into(), format!("{k}={v}")]);
        }
        args.push(IMAGE.into());
        args.extend(
            [
                python.to_str().expect("utf-8 venv path"),
                "-m",
                "uvicorn",
                "app:app",
                "--app-dir",
                "/app",
                "--host",
                "127.0.0.1",
                "--port",
                &port_s,
                "--no-access-log",
                "--log-level",
                "warning",
            ]
            .map(str::to_owned),
        );
        let id = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let api = Self {
            name,
            id,
            model: opts.model.clone(),
            port,
        };
        api.wait_ready(opts.ready_timeout);
        api
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if matches!(request(self.port, "GET", "/health", None), Ok((200, _))) {
                return;
            }
            let state = self.inspect("{{.State.Status}}");
            assert!(
                state == "running" || state == "created",
                "the model API container is {state}; its log:\n{}",
                self.logs()
            );
            assert!(
                Instant::now() < deadline,
                "the model API did not answer /health within {timeout:?}; its log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Replaces the fault set (`PUT /faults`); returns what the app says is in force.
    pub fn set_faults(&self, faults: &Value) -> Value {
        self.faults_call("PUT", Some(&faults.to_string()))
    }

    /// Every fault off (`DELETE /faults`).
    pub fn clear_faults(&self) -> Value {
        self.faults_call("DELETE", None)
    }

    /// The fault set in force and what it has done (`GET /faults`).
    pub fn faults(&self) -> Value {
        self.faults_call("GET", None)
    }

    fn faults_call(&self, method: &str, body: Option<&str>) -> Value {
        match request(self.port, method, "/faults", body) {
            Ok((200, text)) => serde_json::from_str(&text).expect("/faults answers JSON"),
            other => panic!("{method} /faults: {other:?}"),
        }
    }

    /// `docker stop`: a clean stop, as an operator or an orchestrator does it.
    pub fn stop(&self) {
        docker(&["stop", "-t", "10", &self.name]);
    }

    /// A field of `docker inspect`, e.g. `{{.State.OOMKilled}}`.
    pub fn inspect(&self, format: &str) -> String {
        docker(&["inspect", "-f", format, &self.name])
    }

    pub fn logs(&self) -> String {
        Command::new("docker")
            .args(["logs", "--tail", "50", &self.name])
            .output()
            .map(|o| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                )
            })
            .unwrap_or_default()
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ModelApi {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("the docker CLI runs ({SETUP_HINT}): {e}"));
    assert!(
        out.status.success(),
        "docker {args:?} failed ({SETUP_HINT}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A loopback port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// One request on a connection of its own; returns the status and the body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> io::Result<(u16, String)> {
    let stream = TcpStream::connect_timeout(&addr(port), Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut conn = Conn::new(stream)?;
    let (status, body) = conn.send(method, path, body, false)?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// An HTTP/1.1 connection to the model API: enough of the protocol for uvicorn's
/// answers, which always carry a Content-Length.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn new(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(Self {
            writer: stream.try_clone()?,
            reader: BufReader::new(stream),
        })
    }

    fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        keep_alive: bool,
    ) -> io::Result<(u16, Vec<u8>)> {
        let body = body.unwrap_or("");
        let conn = if keep_alive { "keep-alive" } else { "close" };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: {conn}\r\n\r\n{body}",
            body.len()
        );
        self.writer.write_all(req.as_bytes())?;
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, line.clone()))?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((k, v)) = header.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "an answer with no Content-Length",
            )
        })?;
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// What a load has seen so far.
#[derive(Debug, Clone, Default)]
pub struct LoadCounts {
    /// Answers by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests that got no answer (refused, reset, timed out).
    pub failed: u64,
    /// Send times skipped because every worker was busy for over a second.
    pub skipped: u64,
}

impl LoadCounts {
    pub fn answered(&self) -> u64 {
        self.by_status.values().sum()
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    ticket: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    failed: AtomicU64,
    skipped: AtomicU64,
}

/// A steady load on the predict endpoint: `rps` requests a second, each at its own
/// scheduled time, whatever the answers take (an open loop, like real callers, so a slow
/// model does not slow its own traffic down). Stops when dropped.
pub struct Load {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

/// Enough workers for the rate at half a second per answer, with room to spare.
const LOAD_WORKERS: usize = 48;
/// Valid rows of the three iris species (sepal and petal length and width, cm).
const ROWS: [&str; 3] = [
    "[[5.1, 3.5, 1.4, 0.2]]",
    "[[6.4, 3.2, 4.5, 1.5]]",
    "[[6.3, 3.3, 6.0, 2.5]]",
];

impl Load {
    pub fn start(port: u16, model: &str, rps: f64) -> Self {
        assert!(rps > 0.0, "a rate above zero");
        let shared = Arc::new(Shared::default());
        let period = Duration::from_secs_f64(1.0 / rps);
        let t0 = Instant::now();
        let path = format!("/v1/models/{model}/predict");
        let workers = (0..LOAD_WORKERS)
            .map(|_| {
                let shared = Arc::clone(&shared);
                let path = path.clone();
                std::thread::spawn(move || worker(&shared, port, &path, t0, period))
            })
            .collect();
        Self { shared, workers }
    }

    pub fn counts(&self) -> LoadCounts {
        LoadCounts {
            by_status: self.shared.by_status.lock().expect("counts lock").clone(),
            failed: self.shared.failed.load(Ordering::Relaxed),
            skipped: self.shared.skipped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn worker(shared: &Shared, port: u16, path: &str, t0: Instant, period: Duration) {
    let mut conn: Option<Conn> = None;
    while !shared.stop.load(Ordering::Relaxed) {
        let k = shared.ticket.fetch_add(1, Ordering::Relaxed);
        let due = t0 + period * u32::try_from(k).unwrap_or(u32::MAX);
        // Sleep in slices, so a drop does not wait out a long gap.
        loop {
            if shared.stop.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            if now >= due {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
        }
        // Catching up on a long stall with a burst would be a load spike of our own
        // making, not the model's: those send times are given up.
        if due.elapsed() > Duration::from_secs(1) {
            shared.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let body = format!("{{\"instances\": {}}}", ROWS[(k % 3) as usize]);
        let answer = match conn.as_mut() {
            Some(c) => c.send("POST", path, Some(&body), true),
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        let answer = answer.or_else(|e| {
            // A fresh connection when there was none or the server closed an idle one;
            // an answer that is only late is a failure, never sent twice.
            if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut {
                return Err(e);
            }
            conn = None;
            let stream = TcpStream::connect_timeout(&addr(port), Duration::from_secs(2))?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let c = conn.insert(Conn::new(stream)?);
            c.send("POST", path, Some(&body), true)
        });
        if let Ok((status, _)) = answer {
            *shared
                .by_status
                .lock()
                .expect("counts lock")
                .entry(status)
                .or_default() += 1;
        } else {
            conn = None;
            shared.failed.fetch_add(1, Ordering::Relaxed);
            // A dead server refuses at once: no need to hammer it.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
