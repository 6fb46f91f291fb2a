//! `modelmon-tui agent` against the real broker and Docker engine: what it publishes for a
//! busy and an idle container, that a removed container leaves its messages, that a dead
//! broker node does not stop it, and its exit codes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use modelmon_contract::{RemoteContainer, Resources, decode_resources};

use crate::docker::{Container, LABEL_KEY};
use crate::support::{AMQP, now_us, unique};

/// One message as the test's own queue received it.
struct Received {
    at: Instant,
    resources: Resources,
    content_type: Option<String>,
    kind: Option<String>,
    app_id: Option<String>,
}

/// Binds a queue of the test's own to `resources.<host>` and decodes what arrives, on a
/// thread with its own runtime. Returns once the queue is bound.
fn subscribe(host: &str) -> mpsc::Receiver<Received> {
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready) = mpsc::channel();
    let host = host.to_owned();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let conn = Connection::connect(AMQP, ConnectionProperties::default())
                .await
                .expect("the broker answers");
            let ch = conn.create_channel().await.expect("channel");
            modelmon_publisher::declare_exchange(&ch)
                .await
                .expect("exchange");
            let q = ch
                .queue_declare(
                    "".into(),
                    QueueDeclareOptions {
                        exclusive: true,
                        auto_delete: true,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("queue");
            let key = modelmon_contract::resources_routing_key(&host);
            ch.queue_bind(
                q.name().clone(),
                modelmon_contract::EXCHANGE.into(),
                key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
            let mut consumer = ch
                .basic_consume(
                    q.name().clone(),
                    "agent-test".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .expect("consume");
            let _ = ready_tx.send(());
            while let Some(Ok(d)) = consumer.next().await {
                let decoded = decode_resources(&d.data, Some(&host), now_us())
                    .unwrap_or_else(|e| panic!("the agent's message decodes: {e}"));
                assert!(
                    decoded.rejects.is_empty(),
                    "no entry rejected: {:?}",
                    decoded.rejects
                );
                let p = &d.properties;
                let got = Received {
                    at: Instant::now(),
                    resources: decoded.resources,
                    content_type: p.content_type().as_ref().map(ToString::to_string),
                    kind: p.kind().as_ref().map(ToString::to_string),
                    app_id: p.app_id().as_ref().map(ToString::to_string),
                };
                if tx.send(got).is_err() {
                    return;
                }
            }
        });
    });
    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("the test queue is bound");
    rx
}

/// The agent as a child process; its stderr is kept for the assertions. Killed when
/// dropped: to a monitor, an agent gone silent.
pub(crate) struct Agent {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Agent {
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
            .arg("agent")
            .args(args)
            .env_remove("MODELMON_AMQP_URL")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("piped");
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                if let Ok(mut l) = log.lock() {
                    l.push_str(&line);
                    l.push('\n');
                }
            }
        });
        Self { child, stderr }
    }

    fn log(&self) -> String {
        self.stderr.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then the exit status (None: it did not stop within 10 s).
    fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn config(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.toml", unique("modelmon-agent-cfg")));
    std::fs::write(&path, text).expect("config written");
    path
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The first message for which `pred` holds, or a panic naming `what`.
fn wait_for(
    rx: &mpsc::Receiver<Received>,
    what: &str,
    timeout: Duration,
    mut pred: impl FnMut(&Received) -> bool,
) -> Received {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(r) if pred(&r) => return r,
            Ok(r) => last = Some(r.resources),
            Err(_) => break,
        }
    }
    panic!("timed out waiting for {what}; last message: {last:?}")
}

fn container<'a>(r: &'a Received, name: &str) -> Option<&'a RemoteContainer> {
    r.resources.containers.iter().find(|c| c.name == name)
}

fn cpu(r: &Received, name: &str) -> Option<f64> {
    container(r, name)?.sample.as_ref()?.cpu_percent
}

#[test]
fn agent_publishes_a_busy_and_an_idle_container_then_forgets_a_removed_one() {
    require!(Rabbitmq, Docker);
    let host = unique("agent-host");
    let m = unique("agentm");
    let rx = subscribe(&host);
    let busy = Container::run(&m, &[], &["sh", "-c", "while :; do :; done"]);
    let idle = Container::run(&m, &[], &["sleep", "3600"]);
    let cfg = config(&format!(
        "[docker]\nlabel_key = \"{LABEL_KEY}\"\ninterval = \"1s\"\n"
    ));
    let mut agent = Agent::start(&[
        "--host",
        &host,
        "--amqp",
        AMQP,
        "--config",
        cfg.to_str().expect("utf-8"),
    ]);

    let first = wait_for(&rx, "both containers", Duration::from_secs(30), |r| {
        container(r, &busy.name).is_some() && container(r, &idle.name).is_some()
    });
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        first.kind.as_deref(),
        Some(modelmon_contract::RESOURCES_MESSAGE_TYPE)
    );
    assert!(
        first
            .app_id
            .as_deref()
            .is_some_and(|a| a.starts_with("modelmon-agent/")),
        "{:?}",
        first.app_id
    );
    assert_eq!(first.resources.host, host);
    assert_eq!(first.resources.interval_ms, 1000);
    for (c, id) in [(&busy.name, &busy.id), (&idle.name, &idle.id)] {
        let rc = container(&first, c).expect("listed");
        assert_eq!(rc.model.as_deref(), Some(m.as_str()), "{rc:?}");
        assert_eq!(rc.state, "running");
        assert_eq!(&rc.id, id);
        // Docker's default hostname: the short id, what an app inside reports as instance.
        assert_eq!(rc.hostname.as_deref(), id.get(..12), "{rc:?}");
    }

    // A few samples in, the spinner uses about a core, the sleeper nothing.
    let busy_seen = wait_for(
        &rx,
        "the busy one above 80 %",
        Duration::from_secs(40),
        |r| cpu(r, &busy.name).is_some_and(|c| c > 80.0) && cpu(r, &idle.name).is_some(),
    );
    let idle_cpu = cpu(&busy_seen, &idle.name).expect("idle cpu");
    assert!(idle_cpu < 10.0, "idle: {idle_cpu}");
    for name in [&busy.name, &idle.name] {
        let s = container(&busy_seen, name)
            .and_then(|c| c.sample.as_ref())
            .expect("sampled");
        assert!(s.mem_bytes.is_some_and(|b| b > 0), "{name}: {s:?}");
    }

    // About one message per interval.
    let mut times = vec![busy_seen.at];
    while times.len() < 6 {
        let r = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("a message every second");
        assert_eq!(r.resources.dropped, 0, "nothing dropped with the broker up");
        times.push(r.at);
    }
    let span = times[times.len() - 1]
        .duration_since(times[0])
        .as_secs_f64();
    let per = span / (times.len() - 1) as f64;
    assert!((0.6..=1.6).contains(&per), "one message per {per:.2}s");

    // A removed container is missing from the next messages.
    let idle_name = idle.name.clone();
    drop(idle);
    wait_for(
        &rx,
        "the removed container gone",
        Duration::from_secs(15),
        |r| container(r, &idle_name).is_none() && container(r, &busy.name).is_some(),
    );
    assert!(agent.running());
    let status = agent.terminate().expect("SIGTERM stops it");
    assert!(status.success(), "{status:?}: {}", agent.log());
}

#[test]
fn a_dead_first_node_or_a_bad_url_does_not_stop_the_agent() {
    require!(Rabbitmq, Docker);
    let host = unique("agent-host");
    let rx = subscribe(&host);
    let cfg = config(&format!(
        "[docker]\nlabel_key = \"{LABEL_KEY}\"\ninterval = \"1s\"\n"
    ));
    let nodes = format!("amqp://127.0.0.1:{}/%2f,not a url,{AMQP}", closed_port());
    let mut agent = Agent::start(&[
        "--host",
        &host,
        "--amqp",
        &nodes,
        "--config",
        cfg.to_str().expect("utf-8"),
    ]);
    let got = wait_for(&rx, "a message", Duration::from_secs(30), |_| true);
    assert_eq!(got.resources.host, host);
    assert!(agent.running(), "{}", agent.log());
    let log = agent.log();
    assert_eq!(
        log.matches("unreachable").count(),
        1,
        "said once per outage: {log}"
    );
    assert!(log.contains("connected"), "{log}");

    // Nothing but a closed port: it keeps trying, and stops cleanly when told.
    let mut lonely = Agent::start(&[
        "--host",
        &unique("agent-host"),
        "--amqp",
        &format!("amqp://127.0.0.1:{}/%2f", closed_port()),
        "--config",
        cfg.to_str().expect("utf-8"),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    assert!(lonely.running(), "{}", lonely.log());
    assert_eq!(
        lonely.log().matches("unreachable").count(),
        1,
        "{}",
        lonely.log()
    );
    let status = lonely.terminate().expect("SIGTERM stops it");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_broken_config_makes_the_agent_exit_2_naming_the_key() {
    let cfg = config("[docker]\ninterval = \"0s\"\n");
    let out = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args(["agent", "--host", "h", "--config"])
        .arg(&cfg)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("docker.interval"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args(["agent", "--host", "bad\u{7}host"])
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--host"), "{err}");
}
