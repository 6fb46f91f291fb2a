//! Shared test helpers: a real publisher, and `modelmon-tui` run as a user would run it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::{Value, json};

pub mod hook;
pub mod model_api;
// One helper for a RabbitMQ node of a test's own, shared with the publisher's tests.
#[path = "../../interceptor/publisher/tests/support/cluster.rs"]
pub mod cluster;
#[path = "../../interceptor/publisher/tests/support/private_node.rs"]
pub mod private_node;
// Which services this machine has, and `require!`, the gate in front of the tests that
// need one: shared with the publisher's and the proxy's tests.
#[macro_use]
#[path = "../../interceptor/publisher/tests/support/services.rs"]
pub mod services;

pub const AMQP: &str = services::AMQP_URL;

/// A model name no other test uses.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_us() -> i64 {
    modelmon::clock::now_us()
}

/// A minimal valid event.
pub fn event(model: &str, status: u16, duration_us: u64) -> Value {
    json!({"ts": now_us() - 1000, "model": model, "instance": "test-1", "method": "POST",
           "route": "/predict", "status": status, "duration_us": duration_us})
}

pub fn batch(events: Vec<Value>, dropped: u64) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"v": 1, "source": {"kind": "proxy", "instance": "test", "pid": 7},
                               "dropped": dropped, "events": events}),
    )
    .expect("serialisable")
}

/// Publishes raw bodies to the modelmon exchange, like an interceptor.
pub struct Publisher {
    _conn: Connection,
    ch: lapin::Channel,
}

impl Publisher {
    pub async fn connect() -> Self {
        let conn = Connection::connect(AMQP, ConnectionProperties::default())
            .await
            .expect("RabbitMQ must answer on 127.0.0.1:5672 (the test script starts it)");
        let ch = conn.create_channel().await.expect("channel");
        // Each publish waits for the broker's confirm: a test's last messages must not be
        // left in the client's buffer when its connection is dropped.
        ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        modelmon_publisher::declare_exchange(&ch)
            .await
            .expect("exchange");
        Self { _conn: conn, ch }
    }

    /// Declares a classic durable queue, as monitors before quorum queues did.
    pub async fn declare_classic_queue(&self, name: &str) {
        self.ch
            .queue_declare(
                name.into(),
                lapin::options::QueueDeclareOptions {
                    durable: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("declare a classic queue");
    }

    pub async fn publish(&self, model: &str, body: &[u8]) {
        self.publish_with_id(model, body, None).await;
    }

    /// Publishes under `message_id` `id`, as `modelmon-publisher` does.
    pub async fn publish_with_id(&self, model: &str, body: &[u8], id: Option<&str>) {
        let mut properties = BasicProperties::default();
        if let Some(id) = id {
            properties = properties.with_message_id(id.into());
        }
        let confirm = self
            .ch
            .basic_publish(
                "modelmon".into(),
                format!("events.{model}").as_str().into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(
            confirm.is_ack(),
            "the broker refused the message: {confirm:?}"
        );
    }
}

/// `modelmon-tui --batch` as a child process, its lines read on a thread.
pub struct Monitor {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Monitor {
    pub fn start(args: &[&str]) -> Self {
        Self::start_every("200ms", args)
    }

    /// Like `start`, one line every `interval`.
    pub fn start_every(interval: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"));
        cmd.args(["--batch", "--interval", interval]);
        if !args.contains(&"--amqp") && !args.contains(&"--demo") {
            cmd.args(["--amqp", AMQP]);
        }
        let mut child = cmd
            .args(args)
            .env_remove("MODELMON_AMQP_URL")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            // Each monitor its own history: tests must not load one another's snapshots.
            .env(
                "XDG_STATE_HOME",
                std::env::temp_dir().join(unique("modelmon-test-state")),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary runs");
        let lines = json_lines(child.stdout.take().expect("piped"));
        Self { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first line for which `pred` holds, or a panic naming `what` and the last line seen.
    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        first_line(&self.lines, timeout, pred)
            .unwrap_or_else(|last| panic!("timed out waiting for {what}; last line: {last}"))
    }

    /// The first line for which `pred` holds within `timeout`, if any.
    pub fn wait_for_opt(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        first_line(&self.lines, timeout, pred).ok()
    }

    pub fn wait_connected(&self) -> Value {
        self.wait_for("the broker to be connected", Duration::from_secs(20), |v| {
            v["broker"]["state"] == "connected"
        })
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fast 200 of `model` on `/predict`, stamped now, as a publisher records it.
pub fn request(model: &str) -> modelmon_contract::Event<'static> {
    use std::borrow::Cow;
    modelmon_contract::Event {
        ts: now_us(),
        model: Cow::Owned(model.to_owned()),
        version: None,
        instance: Cow::Borrowed("test-host"),
        method: Cow::Borrowed("POST"),
        route: Cow::Borrowed("/predict"),
        status: 200,
        duration_us: 4_000,
        ttfb_us: None,
        req_bytes: None,
        resp_bytes: None,
        error: None,
        ml: Vec::new(),
    }
}

/// The `--batch` lines a child prints, parsed on a thread of their own.
pub fn json_lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<Value> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let v: Value = serde_json::from_str(&line).expect("every --batch line is JSON");
            if tx.send(v).is_err() {
                return;
            }
        }
    });
    lines
}

/// The model's entry in a `--batch` line.
pub fn model<'a>(line: &'a Value, name: &str) -> Option<&'a Value> {
    line["models"]
        .as_array()?
        .iter()
        .find(|m| m["model"] == name)
}

/// The exact nearest-rank percentile of `samples`, in ms.
pub fn exact_percentile_ms(samples: &[u64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1] as f64 / 1000.0
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The first of a monitor's `--batch` lines within `timeout` for which `pred` holds, or
/// the last line seen (`null` for none).
pub fn first_line(
    lines: &mpsc::Receiver<Value>,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value, Value> {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(v) if pred(&v) => return Ok(v),
            Ok(v) => last = v,
            Err(_) => break,
        }
    }
    Err(last)
}

/// A port the kernel just handed out and took back: free unless something grabs it
/// within the next milliseconds. For the servers tests start (Alertmanager, Prometheus).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A plain HTTP/1.0 GET (no chunked answer to decode): status and body.
pub fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}
