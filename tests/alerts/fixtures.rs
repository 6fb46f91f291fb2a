//! What the notifier tests share: the webhook receiver (from support), the monitor as a
//! child process, a publisher playing slow then fast traffic, and config snippets.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Publisher, batch};

// The webhook receiver is shared (support/hook.rs); every alerts test imports this module.
pub use crate::support::hook::{Hook, Mode, Received};

/// `modelmon-tui --batch` with a config file and extra environment, its lines and its
/// stderr collected.
pub struct Mon {
    pub child: Child,
    pub lines: mpsc::Receiver<Value>,
    pub stderr: Arc<Mutex<String>>,
    pub dir: Option<tempfile::TempDir>,
}

impl Mon {
    pub fn start(config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), config, args, env)
    }

    /// A monitor on the broker watching only `model` with a 2-s window, once connected.
    pub fn watching(config: &str, model: &str, env: &[(&str, &str)]) -> Self {
        let mon = Self::start(config, &["--window", "2s", "--models", model], env);
        mon.wait_for("the broker", Duration::from_secs(20), |v| {
            v["broker"]["state"] == "connected"
        });
        mon
    }

    /// In `dir`: its config, its runtime dir and its state (snapshots, alerts.json).
    pub fn start_in(
        dir: tempfile::TempDir,
        config: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"));
        cmd.arg("--batch");
        // clap refuses an option given twice, so a caller's own choice replaces the default.
        if !args.contains(&"--interval") {
            cmd.args(["--interval", "200ms"]);
        }
        cmd.arg("--config")
            .arg(&path)
            .args(args)
            .env_remove("MODELMON_AMQP_URL")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("MODELMON_LOG", "modelmon=info");
        if !args.contains(&"--demo") && !args.contains(&"--amqp") {
            cmd.args(["--amqp", support::AMQP]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let lines = support::json_lines(child.stdout.take().expect("piped"));
        let stderr_pipe = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { return };
                let mut s = sink.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self {
            child,
            lines,
            stderr,
            dir: Some(dir),
        }
    }

    /// A clean exit (SIGTERM, as a service manager stops it); hands back its directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.dir.take().expect("the directory")
    }

    pub fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        support::first_line(&self.lines, timeout, pred).unwrap_or_else(|last| {
            panic!(
                "timed out waiting for {what}; last line: {last}\nstderr:\n{}",
                self.stderr.lock().expect("lock")
            )
        })
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }
}

impl Drop for Mon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Publishes, on its own thread, `slow` for `bad` then fast events for `good`, every
/// 200 ms. Returns when the first slow batch was confirmed by the broker.
pub fn play(model: &str, bad: Duration, good: Duration, slow: (u16, u64)) -> Instant {
    let model = model.to_owned();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        support::runtime().block_on(async move {
            let p = Publisher::connect().await;
            let start = Instant::now();
            let mut told = false;
            while start.elapsed() < bad + good {
                let (status, us) = if start.elapsed() < bad {
                    slow
                } else {
                    (200, 5_000)
                };
                let events = (0..10)
                    .map(|_| support::event(&model, status, us))
                    .collect();
                p.publish(&model, &batch(events, 0)).await;
                if !told {
                    let _ = tx.send(Instant::now());
                    told = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the publisher connects")
}

/// Publishes slow events for every model of `models` for `bad`, then fast ones for
/// `good`, every 200 ms, with the first slow batches of all models landing in the same
/// evaluation of `mon`: they go out back to back right after one of its lines, i.e.
/// right after a refresh, with a whole refresh (200 ms) before the next one.
pub fn play_together(mon: &Mon, models: &[&str], bad: Duration, good: Duration) {
    let models: Vec<String> = models.iter().map(|m| (*m).to_owned()).collect();
    let (ready_tx, ready) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        support::runtime().block_on(async move {
            let p = Publisher::connect().await;
            let _ = ready_tx.send(());
            if go_rx.recv().is_err() {
                return;
            }
            let start = Instant::now();
            while start.elapsed() < bad + good {
                let us = if start.elapsed() < bad {
                    300_000
                } else {
                    5_000
                };
                for model in &models {
                    let events = (0..10).map(|_| support::event(model, 200, us)).collect();
                    p.publish(model, &batch(events, 0)).await;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    });
    ready
        .recv_timeout(Duration::from_secs(20))
        .expect("the publisher connects");
    // Drain what is queued: the line waited for below must be a fresh one.
    while mon.lines.try_recv().is_ok() {}
    mon.wait_for("a refresh", Duration::from_secs(5), |_| true);
    go.send(()).expect("the publisher waits");
}

pub fn alerts_config(hooks: &str, rule_extra: &str) -> String {
    format!(
        r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "slow"
metric = "p95_ms"
threshold = 100.0
resolve = 50.0
for = "1s"
min_requests = 5
{rule_extra}
[notify.desktop]
enabled = false
{hooks}
"#
    )
}

pub fn webhook(name: &str, url: &str, extra: &str) -> String {
    webhook_timing_out(name, url, "300ms", extra)
}

/// [`webhook`] with its own per-attempt `timeout`.
pub fn webhook_timing_out(name: &str, url: &str, timeout: &str, extra: &str) -> String {
    format!(
        "[[notify.webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout = \"{timeout}\"\nbackoff = \"100ms\"\nretries = 2\n{extra}\n"
    )
}

/// Every alert of every `format = "json"` body, in the order they arrived.
pub fn alerts(bodies: &[Received]) -> impl Iterator<Item = &Value> {
    bodies
        .iter()
        .flat_map(|r| r.body["alerts"].as_array().into_iter().flatten())
}

/// The `status` of each body (a group's: firing if any of its alerts fires).
pub fn statuses(bodies: &[Received]) -> Vec<String> {
    bodies
        .iter()
        .map(|r| r.body["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}
