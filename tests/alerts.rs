//! Alerts: the lifecycle on a virtual clock, and notifications through real services:
//! webhooks to an HTTP server on loopback, desktop notifications through a real session
//! bus and dunst, and `--demo`'s scripted incidents end to end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use modelmon::alert::rules::AlertsSection;
use modelmon::alert::{
    AlertKey, AlertPhase, AlertState, RuleSet, SilenceTarget, Transition, TransitionKind, evaluate,
};
use modelmon::config::Config;
use modelmon::store::View;
use modelmon::store::view::{ModelView, SeriesPoint, Stats};
use serde_json::Value;

use crate::support::{self, Publisher, batch, unique};

// ---------------------------------------------------------------- the lifecycle

/// A model with `requests` in the live window at this p95 and error rate, and a
/// per-second series of `per_sec` requests over the last 60 s.
fn model(name: &str, requests: u64, p95_ms: f64, error_rate: f64, per_sec: u64) -> ModelView {
    ModelView {
        model: name.to_owned(),
        window_s: 60,
        stats: Stats {
            requests,
            qps: requests as f64 / 60.0,
            errors: (requests as f64 * error_rate) as u64,
            error_rate: (requests > 0).then_some(error_rate),
            p50_ms: (requests > 0).then_some(p95_ms / 2.0),
            p95_ms: (requests > 0).then_some(p95_ms),
            p99_ms: (requests > 0).then_some(p95_ms * 1.5),
            ..Stats::default()
        },
        last_seen_ms_ago: Some(0),
        series: (0..60)
            .map(|s| SeriesPoint {
                sec: s,
                requests: per_sec,
                errors: 0,
                ..SeriesPoint::default()
            })
            .collect(),
        routes: Vec::new(),
        instances: Vec::new(),
        routes_overflowed: 0,
        version: None,
        totals: modelmon::store::view::Totals::default(),
    }
}

fn view(models: Vec<ModelView>) -> View {
    View {
        models,
        ..View::default()
    }
}

/// Rules from TOML, as a user writes them.
fn engine(toml: &str) -> AlertState {
    let cfg = Config::parse(toml).expect("the rules parse");
    cfg.validate(None).expect("and are valid");
    AlertState::new(RuleSet::new(&cfg.alerts).expect("rules build"))
}

const SLOW: &str = r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "slow"
metric = "p95_ms"
threshold = 500.0
resolve = 400.0
for = "30s"
min_requests = 20
repeat_interval = "10m"
"#;

fn kinds(ts: &[Transition]) -> Vec<(TransitionKind, String)> {
    ts.iter().map(|t| (t.kind, t.alert.model.clone())).collect()
}

/// Runs `f(second)` every second over `[from, to)` and gathers what was notified.
fn run(st: &mut AlertState, from: i64, to: i64, mut f: impl FnMut(i64) -> View) -> Vec<Transition> {
    (from..to)
        .flat_map(|s| evaluate(st, &f(s), s * 1000))
        .collect()
}

#[test]
fn pending_turns_firing_only_after_for_held_without_a_break() {
    let mut st = engine(SLOW);
    // 20 s bad, one good second, then bad again: the `for` clock starts over.
    let out = run(&mut st, 0, 20, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(out.is_empty());
    assert_eq!(
        st.active().next().map(|a| a.state),
        Some(AlertPhase::Pending)
    );
    let out = run(&mut st, 20, 21, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert!(
        out.is_empty(),
        "a pending alert that clears is dropped silently"
    );
    assert_eq!(st.active().count(), 0);
    let out = run(&mut st, 21, 50, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(out.is_empty(), "29 s of the 30 s `for`: still pending");
    let out = run(&mut st, 50, 52, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "m".to_owned())]);
    let a = &out[0].alert;
    assert_eq!((a.value, a.threshold), (Some(900.0), 500.0));
    assert_eq!(a.started_ms, Some(51_000));
}

#[test]
fn flapping_around_the_threshold_notifies_once_and_resolves_once() {
    let mut st = engine(SLOW);
    let out = run(&mut st, 0, 31, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert_eq!(out.len(), 1);
    // 450/550 around the 500 threshold, never under the 400 resolve threshold.
    let out = run(&mut st, 31, 300, |s| {
        let p95 = if s % 2 == 0 { 450.0 } else { 550.0 };
        view(vec![model("m", 100, p95, 0.0, 2)])
    });
    assert!(
        out.is_empty(),
        "hysteresis: no resolve, no re-fire: {:?}",
        kinds(&out)
    );
    let out = run(&mut st, 300, 310, |_| {
        view(vec![model("m", 100, 300.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "m".to_owned())]);
    assert_eq!(out[0].alert.resolved_ms, Some(300_000));
    let recent = st.view().recent;
    assert_eq!(recent.len(), 1, "the resolved alert is kept in the history");
    assert_eq!(recent[0].state, AlertPhase::Resolved);
}

#[test]
fn keep_firing_for_holds_a_firing_alert_through_a_short_dip() {
    let mut st = engine(&format!("{SLOW}keep_firing_for = \"20s\"\n"));
    run(&mut st, 0, 31, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    // A 15-s dip: still firing, nothing sent.
    let out = run(&mut st, 31, 46, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert!(out.is_empty());
    let out = run(&mut st, 46, 50, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(
        out.is_empty(),
        "the dip did not resolve it, so no new firing either"
    );
    // Cleared for good: resolved only after 20 s.
    let out = run(&mut st, 50, 69, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert!(out.is_empty());
    let out = run(&mut st, 69, 71, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "m".to_owned())]);
}

#[test]
fn reminders_repeat_until_acknowledged() {
    let mut st = engine(SLOW);
    let bad = |_| view(vec![model("m", 100, 900.0, 0.0, 2)]);
    let out = run(&mut st, 0, 30 + 1800, bad);
    let reminders = out
        .iter()
        .filter(|t| t.kind == TransitionKind::Reminder)
        .count();
    assert_eq!(out[0].kind, TransitionKind::Firing);
    assert_eq!(reminders, 2, "30 min of firing, reminders every 10 min");
    let key = AlertKey {
        rule: "slow".into(),
        model: "m".into(),
    };
    assert!(st.acknowledge(&key));
    let out = run(&mut st, 1830, 5000, bad);
    assert!(out.is_empty(), "acknowledged: no more reminders");
    let out = run(&mut st, 5000, 5001, |_| {
        view(vec![model("m", 100, 1.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "m".to_owned())]);
}

#[test]
fn a_silenced_model_says_nothing_until_the_silence_ends() {
    let mut st = engine(SLOW);
    st.silence(SilenceTarget::Model("m".into()), Duration::from_secs(60), 0);
    let out = run(&mut st, 0, 60, |_| {
        view(vec![
            model("m", 100, 900.0, 0.0, 2),
            model("other", 100, 900.0, 0.0, 2),
        ])
    });
    assert_eq!(
        kinds(&out),
        [(TransitionKind::Firing, "other".to_owned())],
        "only the silenced model is muted"
    );
    let firing = st.view().active;
    assert!(
        firing
            .iter()
            .any(|a| a.model == "m" && a.silenced && a.state == AlertPhase::Firing)
    );
    // The silence ends while it still fires: told once, then quiet again.
    let out = run(&mut st, 60, 120, |_| {
        view(vec![
            model("m", 100, 900.0, 0.0, 2),
            model("other", 100, 900.0, 0.0, 2),
        ])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "m".to_owned())]);
    // A silenced alert that resolves unnoticed sends no orphan "resolved".
    let mut st = engine(SLOW);
    st.silence(
        SilenceTarget::Model("m".into()),
        Duration::from_secs(600),
        0,
    );
    run(&mut st, 0, 40, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    let out = run(&mut st, 40, 41, |_| {
        view(vec![model("m", 100, 1.0, 0.0, 2)])
    });
    assert!(out.is_empty());
}

#[test]
fn three_requests_never_fire_latency_or_error_alerts() {
    let mut st = AlertState::new(RuleSet::new(&AlertsSection::default()).expect("builtin"));
    let out = run(&mut st, 0, 600, |_| {
        view(vec![model("m", 3, 60_000.0, 1.0, 0)])
    });
    assert!(out.is_empty(), "{:?}", kinds(&out));
    assert_eq!(st.active().count(), 0, "not even pending");
}

#[test]
fn zero_config_detects_latency_errors_and_a_dead_model() {
    let mut st = AlertState::new(RuleSet::new(&AlertsSection::default()).expect("builtin"));
    let out = run(&mut st, 0, 120, |_| {
        view(vec![
            model("slow", 600, 900.0, 0.0, 10),
            model("failing", 600, 20.0, 0.3, 10),
            model("healthy", 600, 20.0, 0.001, 10),
        ])
    });
    let fired: Vec<(String, String)> = out
        .iter()
        .map(|t| (t.alert.rule.clone(), t.alert.model.clone()))
        .collect();
    assert!(
        fired.contains(&("high_latency".into(), "slow".into())),
        "{fired:?}"
    );
    assert!(
        fired.contains(&("high_error_rate".into(), "failing".into())),
        "{fired:?}"
    );
    assert!(!fired.iter().any(|f| f.1 == "healthy"), "{fired:?}");
    // `healthy` stops: its traffic over 30 s drops to zero.
    let mut st = AlertState::new(RuleSet::new(&AlertsSection::default()).expect("builtin"));
    run(&mut st, 0, 60, |_| {
        view(vec![model("healthy", 600, 20.0, 0.0, 10)])
    });
    let out = run(&mut st, 60, 120, |_| {
        view(vec![model("healthy", 0, 0.0, 0.0, 0)])
    });
    assert_eq!(
        out.iter()
            .map(|t| (t.kind, t.alert.rule.as_str()))
            .collect::<Vec<_>>(),
        [(TransitionKind::Firing, "traffic_drop")]
    );
    // A model that never had traffic is not "dropping".
    let mut st = AlertState::new(RuleSet::new(&AlertsSection::default()).expect("builtin"));
    let out = run(&mut st, 0, 120, |_| {
        view(vec![model("idle", 0, 0.0, 0.0, 0)])
    });
    assert!(out.is_empty());
}

#[test]
fn per_model_overrides_and_config_errors() {
    let mut st = engine(&format!(
        "{SLOW}\n[[alerts.rules]]\nname = \"slow\"\nmodels = [\"llm\"]\nthreshold = 5000.0\n"
    ));
    let out = run(&mut st, 0, 60, |_| {
        view(vec![
            model("llm", 100, 2000.0, 0.0, 2),
            model("cnn", 100, 2000.0, 0.0, 2),
        ])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "cnn".to_owned())]);
    // A new rule without a metric, and an inverted hysteresis, are config errors.
    for bad in [
        "[[alerts.rules]]\nname = \"x\"\nthreshold = 1.0\n",
        "[[alerts.rules]]\nname = \"high_latency\"\nresolve = 900.0\n",
    ] {
        let cfg = Config::parse(bad).expect("parses");
        let err = cfg.validate(None).expect_err("invalid").to_string();
        assert!(err.contains("alerts.rules"), "{err}");
    }
    let err = Config::parse("[[alerts.rules]]\nname = \"x\"\ntreshold = 1.0\n").expect_err("typo");
    assert!(err.contains("treshold"), "{err}");
}

// ---------------------------------------------------------------- real services

/// How the test HTTP server answers.
#[derive(Clone, Copy)]
enum Mode {
    Ok,
    /// 500 to the first N requests, then 200.
    FailFirst(usize),
    /// Reads the request and never answers.
    Hang,
}

/// One POST the hook received.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    body: Value,
}

/// A real HTTP/1.1 server on 127.0.0.1:0 that records every POST body.
struct Hook {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Hook {
    fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || serve(stream, mode, &seen));
            }
        });
        Self { url, got }
    }

    fn bodies(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for the bodies received so far.
    fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.bodies()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let bodies: Vec<Value> = self.bodies().into_iter().map(|r| r.body).collect();
        panic!("timed out waiting for {what}; received: {bodies:?}");
    }
}

fn serve(stream: TcpStream, mode: Mode, seen: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).expect("webhook bodies are JSON");
    let n = {
        let mut seen = seen.lock().expect("lock");
        seen.push(Received {
            at: Instant::now(),
            body,
        });
        seen.len()
    };
    let status = match mode {
        Mode::Hang => {
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
        Mode::FailFirst(k) if n <= k => "500 Internal Server Error",
        _ => "200 OK",
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    );
}

/// `modelmon-tui --batch` with a config file and extra environment, its lines and its
/// stderr collected.
struct Mon {
    child: Child,
    lines: mpsc::Receiver<Value>,
    stderr: Arc<Mutex<String>>,
    dir: Option<tempfile::TempDir>,
}

impl Mon {
    fn start(config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), config, args, env)
    }

    /// A monitor on the broker watching only `model` with a 2-s window, once connected.
    fn watching(config: &str, model: &str, env: &[(&str, &str)]) -> Self {
        let mon = Self::start(config, &["--window", "2s", "--models", model], env);
        mon.wait_for("the broker", Duration::from_secs(20), |v| {
            v["broker"]["state"] == "connected"
        });
        mon
    }

    /// In `dir`: its config, its runtime dir and its state (snapshots, alerts.json).
    fn start_in(dir: tempfile::TempDir, config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"));
        cmd.args(["--batch", "--interval", "200ms", "--config"])
            .arg(&path)
            .args(args)
            .env_remove("MODELMON_AMQP_URL")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env("XDG_RUNTIME_DIR", dir.path())
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .env("MODELMON_LOG", "modelmon=info");
        if !args.contains(&"--demo") {
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
        let stdout = child.stdout.take().expect("piped");
        let stderr_pipe = child.stderr.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let v: Value = serde_json::from_str(&line).expect("JSON lines");
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
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
    fn stop(mut self) -> tempfile::TempDir {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.dir.take().expect("the directory")
    }

    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(v) if pred(&v) => return v,
                Ok(v) => last = v,
                Err(_) => break,
            }
        }
        panic!(
            "timed out waiting for {what}; last line: {last}\nstderr:\n{}",
            self.stderr.lock().expect("lock")
        );
    }

    fn stderr(&self) -> String {
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
fn play(model: &str, bad: Duration, good: Duration, slow: (u16, u64)) -> Instant {
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

fn alerts_config(hooks: &str, rule_extra: &str) -> String {
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

fn webhook(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[[notify.webhooks]]\nname = \"{name}\"\nurl = \"{url}\"\ntimeout = \"300ms\"\nbackoff = \"100ms\"\nretries = 2\n{extra}\n"
    )
}

fn statuses(bodies: &[Received]) -> Vec<String> {
    bodies
        .iter()
        .map(|r| r.body["status"].as_str().unwrap_or("?").to_owned())
        .collect()
}

#[test]
fn webhooks_get_firing_then_resolved_once_each() {
    let json = Hook::start(Mode::Ok);
    let slack = Hook::start(Mode::Ok);
    let model = unique("alert-hook");
    let hooks = webhook("ops", &json.url, "") + &webhook("chat", &slack.url, "format = \"slack\"");
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    let first_bad = play(
        &model,
        Duration::from_secs(3),
        Duration::from_secs(8),
        (200, 300_000),
    );
    let line = mon.wait_for(
        "the alert firing in --batch",
        Duration::from_secs(15),
        |v| {
            support::model(v, &model).is_some_and(|m| {
                m["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["state"] == "firing"))
            })
        },
    );
    let a = &support::model(&line, &model).expect("model")["alerts"][0];
    assert_eq!(a["rule"], "slow");
    assert_eq!(a["threshold"], 100.0);
    assert!(a["value"].as_f64().is_some_and(|v| v > 100.0), "{a}");
    assert!(a["since"].as_i64().is_some_and(|s| s > 0), "{a}");
    json.wait("firing then resolved", Duration::from_secs(20), |b| {
        statuses(b) == ["firing", "resolved"]
    });
    slack.wait("both on the Slack hook", Duration::from_secs(5), |b| {
        b.len() == 2
    });
    // Nothing more arrives: one notification per transition.
    std::thread::sleep(Duration::from_secs(2));
    let got = json.bodies();
    assert_eq!(statuses(&got), ["firing", "resolved"]);
    let (firing, resolved) = (&got[0].body, &got[1].body);
    assert_eq!(firing["rule"], "slow");
    assert_eq!(firing["model"], model.as_str());
    assert_eq!(firing["threshold"], 100.0);
    assert!(firing["value"].as_f64().is_some_and(|v| v > 100.0));
    assert!(
        firing["started_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(firing["resolved_at"].is_null());
    assert!(resolved["resolved_at"].as_str().is_some());
    assert_eq!(resolved["started_at"], firing["started_at"]);
    let texts: Vec<String> = slack
        .bodies()
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        texts[0].contains("FIRING") && texts[0].contains(&model),
        "{texts:?}"
    );
    assert!(texts[1].contains("RESOLVED"), "{texts:?}");
    let resolved_line = mon.wait_for(
        "the resolved alert in --batch",
        Duration::from_secs(5),
        |v| support::model(v, &model).is_some_and(|m| m["alerts"][0]["state"] == "resolved"),
    );
    assert!(support::model(&resolved_line, &model).is_some());
    // The figure: first bad event to the firing POST (not asserted: tests never time).
    eprintln!(
        "figure: first bad event -> webhook POST = {:?} (rule for = 1s, --window 2s, refresh 200ms)",
        got[0].at.duration_since(first_bad)
    );
}

#[test]
fn failing_and_hanging_webhooks_are_retried_and_never_stall_the_monitor() {
    let ok = Hook::start(Mode::Ok);
    let flaky = Hook::start(Mode::FailFirst(2));
    let hang = Hook::start(Mode::Hang);
    let model = unique("alert-retry");
    let hooks = webhook("ok", &ok.url, "")
        + &webhook("flaky", &flaky.url, "")
        + &webhook("hang", &hang.url, "");
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    play(
        &model,
        Duration::from_secs(20),
        Duration::ZERO,
        (200, 300_000),
    );
    ok.wait("the healthy hook", Duration::from_secs(15), |b| {
        b.len() == 1
    });
    flaky.wait("two 500s then a success", Duration::from_secs(10), |b| {
        b.len() == 3
    });
    hang.wait(
        "three attempts (two retries)",
        Duration::from_secs(10),
        |b| b.len() == 3,
    );
    // The monitor keeps publishing fresh views while one endpoint hangs.
    let before = mon.wait_for("a line", Duration::from_secs(5), |_| true)["ts_ms"]
        .as_i64()
        .unwrap_or(0);
    for _ in 0..10 {
        let line = mon.wait_for("lines to keep coming", Duration::from_secs(5), |v| {
            v["ts_ms"].as_i64().unwrap_or(0) > before
        });
        assert!(support::model(&line, &model).is_some());
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        statuses(&flaky.bodies()),
        ["firing"; 3],
        "retries only, no duplicates after the success"
    );
    assert_eq!(hang.bodies().len(), 3, "retries stop after `retries`");
    assert_eq!(ok.bodies().len(), 1);
    assert!(
        mon.stderr().contains("not delivered after 3 attempt(s)"),
        "{}",
        mon.stderr()
    );
}

/// A certificate authority made for one test, and a server certificate for 127.0.0.1
/// that it signed.
struct TestCa {
    ca_pem: String,
    server: rustls::ServerConfig,
}

impl TestCa {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "modelmon test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("server TLS config");
        Self {
            ca_pem: ca.pem(),
            server,
        }
    }
}

/// An HTTPS endpoint: TLS (tokio-rustls) on 127.0.0.1:0 in front of a plain [`Hook`],
/// so what gets through the handshake is recorded exactly as over http.
struct TlsHook {
    url: String,
    hook: Hook,
    /// Handshakes that failed, with rustls's reason.
    refused: Arc<Mutex<Vec<String>>>,
}

impl TlsHook {
    fn start(ca: &TestCa) -> Self {
        let hook = Hook::start(Mode::Ok);
        let plain = hook
            .url
            .trim_start_matches("http://")
            .trim_end_matches("/hook")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("https://{}/hook", listener.local_addr().expect("addr"));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server.clone()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&refused);
        std::thread::spawn(move || {
            support::runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let (acceptor, plain, seen) =
                        (acceptor.clone(), plain.clone(), Arc::clone(&seen));
                    tokio::spawn(async move {
                        let mut tls = match acceptor.accept(tcp).await {
                            Ok(s) => s,
                            Err(e) => {
                                seen.lock().expect("lock").push(e.to_string());
                                return;
                            }
                        };
                        let Ok(mut back) = tokio::net::TcpStream::connect(plain).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                    });
                }
            });
        });
        Self { url, hook, refused }
    }
}

#[test]
fn https_urls_are_accepted_and_bad_ca_files_are_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, TestCa::new().ca_pem).expect("write");
    let hook = |url: &str, extra: &str| {
        Config::parse(&format!(
            "[[notify.webhooks]]\nname = \"x\"\nurl = \"{url}\"\n{extra}\n"
        ))
        .expect("parses")
        .validate(None)
        .map_err(|e| e.to_string())
    };
    let ca = |p: &std::path::Path| format!("ca_file = {:?}", p.display().to_string());
    hook("https://hooks.slack.example/services/T0/B0/x", "").expect("https is valid");
    hook("https://127.0.0.1:8443/hook", &ca(&good)).expect("a PEM CA is valid");
    let err = hook("ftp://127.0.0.1/hook", "").expect_err("not http");
    assert!(err.contains("notify.webhooks.url"), "{err}");
    for (path, why) in [
        (dir.path().join("missing.pem"), "missing"),
        (not_pem, "not PEM"),
    ] {
        let err = hook("https://127.0.0.1/hook", &ca(&path)).expect_err(why);
        assert!(err.contains("notify.webhooks.ca_file"), "{why}: {err}");
    }
}

#[test]
fn https_webhooks_deliver_to_a_server_trusted_through_ca_file() {
    let ca = TestCa::new();
    let tls = TlsHook::start(&ca);
    let certs = tempfile::tempdir().expect("tempdir");
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).expect("write the CA");
    let model = unique("alert-https");
    let hooks = webhook(
        "ops",
        &tls.url,
        &format!("ca_file = {:?}", ca_file.display().to_string()),
    );
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    play(
        &model,
        Duration::from_secs(20),
        Duration::ZERO,
        (200, 300_000),
    );
    tls.hook
        .wait("the firing over https", Duration::from_secs(20), |b| {
            statuses(b) == ["firing"]
        });
    let firing = &tls.hook.bodies()[0].body;
    assert_eq!(firing["rule"], "slow");
    assert_eq!(firing["model"], model.as_str());
    assert!(
        firing["value"].as_f64().is_some_and(|v| v > 100.0),
        "{firing}"
    );
    assert!(
        tls.refused.lock().expect("lock").is_empty(),
        "every handshake succeeded"
    );
    assert!(!mon.stderr().contains("TLS error"), "{}", mon.stderr());
}

#[test]
fn an_untrusted_https_webhook_is_a_tls_error_and_never_blocks_the_monitor() {
    // Signed by a CA nobody was told about: neither the system's roots nor a ca_file.
    let untrusted = TlsHook::start(&TestCa::new());
    let ok = Hook::start(Mode::Ok);
    let model = unique("alert-untrusted");
    let hooks = webhook("private", &untrusted.url, "") + &webhook("ok", &ok.url, "");
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    play(
        &model,
        Duration::from_secs(20),
        Duration::ZERO,
        (200, 300_000),
    );
    ok.wait("the http hook", Duration::from_secs(20), |b| {
        statuses(b) == ["firing"]
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mon.stderr().contains("TLS error") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = mon.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("private") && l.contains("not delivered"))
        .unwrap_or_else(|| panic!("the TLS failure is logged:\n{log}"));
    assert!(
        line.contains("TLS error") && line.contains("UnknownIssuer"),
        "{line}"
    );
    // A certificate does not fix itself within the backoff: one attempt, not three.
    assert!(line.contains("after 1 attempt(s)"), "{line}");
    // The monitor keeps publishing fresh views.
    let before = mon.wait_for("a line", Duration::from_secs(5), |_| true)["ts_ms"]
        .as_i64()
        .unwrap_or(0);
    for _ in 0..5 {
        let line = mon.wait_for("lines to keep coming", Duration::from_secs(5), |v| {
            v["ts_ms"].as_i64().unwrap_or(0) > before
        });
        assert!(support::model(&line, &model).is_some());
    }
    assert!(
        untrusted.hook.bodies().is_empty(),
        "nothing is sent to a server whose certificate was refused"
    );
    assert!(
        !untrusted.refused.lock().expect("lock").is_empty(),
        "the monitor did try the endpoint"
    );
}

#[test]
fn a_restart_neither_refires_nor_forgets_to_resolve() {
    let hook = Hook::start(Mode::Ok);
    let model = unique("alert-restart");
    let cfg = alerts_config(&webhook("ops", &hook.url, ""), "");
    let args = ["--window", "2s", "--models", model.as_str()];
    let mon = Mon::start(&cfg, &args, &[]);
    mon.wait_for("the broker", Duration::from_secs(20), |v| {
        v["broker"]["state"] == "connected"
    });
    // Slow for 30 s: across the restart below.
    play(
        &model,
        Duration::from_secs(30),
        Duration::from_secs(15),
        (200, 300_000),
    );
    hook.wait("the firing", Duration::from_secs(15), |b| {
        statuses(b) == ["firing"]
    });
    let dir = mon.stop();
    let saved = std::fs::read_to_string(dir.path().join("state/modelmon/alerts.json"))
        .expect("the alert state is saved on a clean exit");
    assert!(saved.contains(&model), "{saved}");
    let mon = Mon::start_in(dir, &cfg, &args, &[]);
    let line = mon.wait_for("the restored firing alert", Duration::from_secs(20), |v| {
        support::model(v, &model).is_some_and(|m| m["alerts"][0]["state"] == "firing")
    });
    assert!(support::model(&line, &model).is_some());
    hook.wait(
        "the resolve after the restart",
        Duration::from_secs(40),
        |b| statuses(b).len() >= 2,
    );
    assert_eq!(
        statuses(&hook.bodies()),
        ["firing", "resolved"],
        "still firing after the restart: not notified again"
    );
}

#[test]
fn with_no_session_bus_desktop_notifications_say_once_why_they_are_off() {
    let model = unique("alert-nobus");
    let cfg = alerts_config("", "").replace("enabled = false", "enabled = true");
    let mon = Mon::watching(&cfg, &model, &[]);
    play(
        &model,
        Duration::from_secs(3),
        Duration::from_secs(4),
        (200, 300_000),
    );
    mon.wait_for("resolved", Duration::from_secs(20), |v| {
        support::model(v, &model).is_some_and(|m| m["alerts"][0]["state"] == "resolved")
    });
    let err = mon.stderr();
    assert_eq!(
        err.matches("desktop notifications are off").count(),
        1,
        "{err}"
    );
    assert!(err.contains("no D-Bus session bus"), "{err}");
}

/// A process started for the test, killed when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process that forked itself away: killed by pid.
struct Pid(u32);

impl Drop for Pid {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}

fn need(tool: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "{tool} is missing: run ./scripts/services.sh notify"
    );
}

fn dunstctl(bus: &str, args: &[&str]) -> Option<String> {
    let out = Command::new("dunstctl")
        .args(args)
        .env("DBUS_SESSION_BUS_ADDRESS", bus)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Summaries and ids in `dunstctl history`.
fn history(bus: &str) -> Vec<(String, i64)> {
    let Some(text) = dunstctl(bus, &["history"]) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["data"][0]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| {
                    (
                        n["summary"]["data"].as_str().unwrap_or("").to_owned(),
                        n["id"]["data"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn desktop_notifications_reach_a_real_notification_daemon() {
    for tool in ["dbus-daemon", "Xvfb", "dunst", "dunstctl"] {
        need(tool);
    }
    let display = format!(":{}", 50 + std::process::id() % 400);
    let _xvfb = Proc(
        Command::new("Xvfb")
            .args([
                display.as_str(),
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "640x480x24",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb starts"),
    );
    let out = Command::new("dbus-daemon")
        .args(["--session", "--fork", "--print-address=1", "--print-pid=1"])
        .output()
        .expect("dbus-daemon starts");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.lines();
    let bus = it.next().expect("an address").trim().to_owned();
    let _bus_pid = Pid(it
        .next()
        .and_then(|p| p.trim().parse().ok())
        .expect("a pid"));
    std::thread::sleep(Duration::from_millis(300));
    let _dunst = Proc(
        Command::new("dunst")
            .env("DISPLAY", &display)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while dunstctl(&bus, &["count", "displayed"]).is_none() {
        assert!(Instant::now() < deadline, "dunst never answered on {bus}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let model = unique("alert-desk");
    let cfg = alerts_config("", "").replace("enabled = false", "enabled = true");
    let mon = Mon::watching(&cfg, &model, &[("DBUS_SESSION_BUS_ADDRESS", bus.as_str())]);
    play(
        &model,
        Duration::from_secs(3),
        Duration::from_secs(8),
        (200, 300_000),
    );
    let firing = format!("{model}: slow firing");
    let resolved = format!("{model}: slow resolved");
    // Closing moves what is shown into the history, where dunstctl can read it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        dunstctl(&bus, &["close-all"]);
        seen = history(&bus);
        let has = |s: &str| seen.iter().any(|(x, _)| x == s);
        if has(&firing) && has(&resolved) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let id = |s: &str| seen.iter().find(|(x, _)| x == s).map(|(_, id)| *id);
    assert!(
        id(&firing).is_some(),
        "firing not in dunst's history: {seen:?}\n{}",
        mon.stderr()
    );
    assert!(
        id(&resolved).is_some(),
        "resolved not in dunst's history: {seen:?}"
    );
    assert_eq!(
        id(&firing),
        id(&resolved),
        "the resolved notification replaces the firing one (same id)"
    );
    assert!(
        !mon.stderr().contains("desktop notifications are off"),
        "{}",
        mon.stderr()
    );
}

#[test]
fn demo_incidents_fire_and_resolve_latency_error_and_traffic_alerts() {
    let hook = Hook::start(Mode::Ok);
    let cfg = format!(
        r#"
[[alerts.rules]]
name = "high_latency"
models = ["resnet50"]
threshold = 120.0
resolve = 90.0
for = "1s"
min_requests = 10
[[alerts.rules]]
name = "high_error_rate"
window = "3s"
for = "1s"
[[alerts.rules]]
name = "traffic_drop"
window = "3s"
for = "1s"
[notify.desktop]
enabled = false
{}"#,
        webhook("ops", &hook.url, "")
    );
    let _mon = Mon::start(
        &cfg,
        &["--demo", "--window", "3s"],
        &[("MODELMON_DEMO_CYCLE", "40s")],
    );
    let wanted = [
        ("high_latency", "resnet50"),
        ("high_error_rate", "fraud-xgb"),
        ("traffic_drop", "sentiment-bert"),
    ];
    let of = |b: &[Received], rule: &str, model: &str| -> Vec<String> {
        b.iter()
            .filter(|r| r.body["rule"] == rule && r.body["model"] == model)
            .map(|r| r.body["status"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    hook.wait(
        "every incident to fire and resolve",
        Duration::from_secs(55),
        |b| {
            wanted
                .iter()
                .all(|(rule, model)| of(b, rule, model) == ["firing", "resolved"])
        },
    );
    let b = hook.bodies();
    for (rule, model) in wanted {
        assert_eq!(
            of(&b, rule, model),
            ["firing", "resolved"],
            "{rule} on {model}"
        );
    }
    // Healthy models stay quiet on the rules the script exercises.
    assert!(
        !b.iter().any(|r| r.body["model"] == "iris-classifier"),
        "{:?}",
        b.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
}
