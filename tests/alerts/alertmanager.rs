//! `format = "alertmanager"` against a real Prometheus Alertmanager (Debian's
//! `prometheus-alertmanager`, installed by `./scripts/services.sh alertmanager`), started
//! by the test on a free loopback port: the alert shows up there with its labels and
//! explanation, stays while it fires thanks to re-sends, and resolves.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fixtures::*;
use crate::support::{self, get, unique};
use modelmon::clock::rfc3339;
use modelmon::config::Config;

const BIN: &str = "prometheus-alertmanager";

/// A real Alertmanager on 127.0.0.1, killed when the test ends.
struct Alertmanager {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start() -> Self {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {BIN}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "{BIN} is missing: run ./scripts/services.sh alertmanager"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        // Every alert goes to a receiver that sends nothing: the test reads the API.
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
        )
        .expect("write the config");
        let addr = format!("127.0.0.1:{}", support::free_port());
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log file");
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            // No clustering: no gossip port, no peers.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Alertmanager starts");
        let am = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while get(&am.addr, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready on {}: {}",
                am.addr,
                am.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// The alerts Alertmanager lists (by default the unresolved ones), about `model`.
    fn alerts_of(&self, model: &str) -> Vec<Value> {
        let Some((200, body)) = get(&self.addr, "/api/v2/alerts") else {
            return Vec::new();
        };
        let all: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        all.as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["labels"]["model"] == model)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `pred` holds for the alerts about `model`; the last of them.
    fn wait(&self, what: &str, model: &str, timeout: Duration, pred: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.alerts_of(model);
            if pred(&got) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; Alertmanager lists {got:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// RFC 3339 UTC down to the second, which orders as text: Alertmanager writes
/// fractions with as many digits as they need, the monitor with three.
fn second(ts: &Value) -> String {
    ts.as_str().unwrap_or("").chars().take(19).collect()
}

#[test]
fn alerts_reach_a_real_alertmanager_stay_while_firing_and_resolve() {
    require!(Rabbitmq, Alertmanager);
    let am = Alertmanager::start();
    let model = unique("alert-am");
    let hooks = "[notify]\nlink = \"http://monitor.example:9464\"\n".to_owned()
        + &webhook(
            "am",
            &format!("http://{}", am.addr),
            "format = \"alertmanager\"\nresend = \"1s\"",
        );
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    let began = Instant::now();
    play(
        &model,
        Duration::from_secs(12),
        Duration::from_secs(15),
        (200, 300_000),
    );
    am.wait("the alert, active", &model, Duration::from_secs(20), |a| {
        a.len() == 1 && a[0]["status"]["state"] == "active"
    });
    let first = am.alerts_of(&model).remove(0);
    let seen_at = Instant::now();
    eprintln!(
        "figure: first slow event -> active in Alertmanager = {:?}",
        seen_at - began
    );
    assert_eq!(first["labels"]["alertname"], "slow", "{first}");
    assert_eq!(first["labels"]["model"], model.as_str(), "{first}");
    assert_eq!(first["labels"]["severity"], "warning", "{first}");
    assert_eq!(first["labels"]["metric"], "p95_ms", "{first}");
    assert!(first["labels"]["scope"].is_null(), "{first}");
    let why = first["annotations"]["description"].as_str().unwrap_or("");
    assert!(
        why.starts_with("p95 ") && why.contains("above its limit 100 ms"),
        "the explanation is the description: {first}"
    );
    assert!(
        first["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("slow on {model}: p95_ms "))),
        "{first}"
    );
    assert_eq!(
        first["generatorURL"],
        format!("http://monitor.example:9464/#/model/{model}"),
        "{first}"
    );
    // The explanation is the one the monitor shows for the alert.
    let line = mon.wait_for("the alert firing", Duration::from_secs(5), |v| {
        support::model(v, &model).is_some_and(|m| m["alerts"][0]["state"] == "firing")
    });
    let shown = &support::model(&line, &model).expect("model")["alerts"][0];
    assert!(
        shown["explanation"]
            .as_str()
            .is_some_and(|w| w.contains("above its limit 100 ms")),
        "{shown}"
    );

    // Each post says the alert ends 4 s later (resend = 1s): without the re-sends it
    // would be over by now.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(seen_at.elapsed()));
    let later = am.alerts_of(&model);
    assert_eq!(later.len(), 1, "still there after 6 s: {later:?}");
    let later = &later[0];
    assert_eq!(later["status"]["state"], "active", "{later}");
    let now = serde_json::json!(rfc3339(modelmon::clock::now_us() / 1000));
    assert!(second(&later["endsAt"]) > second(&now), "{later}");
    assert!(
        second(&later["endsAt"]) > second(&first["endsAt"]),
        "re-posted with a later end: {first} then {later}"
    );
    assert_eq!(
        second(&later["startsAt"]),
        second(&first["startsAt"]),
        "a re-send is the same alert, not a new one"
    );

    // The slow traffic ends at 12 s; the 2-s window clears, the monitor resolves the
    // alert and posts its end, and Alertmanager stops listing it.
    am.wait(
        "the alert to resolve",
        &model,
        Duration::from_secs(25),
        |a| {
            let now = serde_json::json!(rfc3339(modelmon::clock::now_us() / 1000));
            a.is_empty() || a.iter().all(|x| second(&x["endsAt"]) <= second(&now))
        },
    );
    let resolved_line = mon.wait_for("resolved", Duration::from_secs(5), |v| {
        support::model(v, &model).is_some_and(|m| m["alerts"][0]["state"] == "resolved")
    });
    assert!(support::model(&resolved_line, &model).is_some());
    // Nothing re-sends a resolved alert.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        am.alerts_of(&model).is_empty(),
        "{:?}",
        am.alerts_of(&model)
    );
    let log = mon.stderr();
    assert!(!log.contains("not delivered"), "{log}");
    eprintln!(
        "figure: whole test against Alertmanager = {:?}",
        began.elapsed()
    );
}

#[test]
fn a_config_reload_keeps_firing_alerts_alive_in_alertmanager() {
    require!(Rabbitmq, Alertmanager);
    let am = Alertmanager::start();
    let model = unique("alert-am-hup");
    let hooks = webhook(
        "am",
        &format!("http://{}", am.addr),
        "format = \"alertmanager\"\nresend = \"1s\"",
    );
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    // Slow for longer than the whole test: the alert fires throughout.
    play(
        &model,
        Duration::from_secs(40),
        Duration::from_secs(5),
        (200, 300_000),
    );
    am.wait("the alert, active", &model, Duration::from_secs(20), |a| {
        a.len() == 1 && a[0]["status"]["state"] == "active"
    });
    // SIGHUP: the same config read again, new notifiers started.
    let _ = Command::new("kill")
        .args(["-HUP", &mon.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mon.stderr().contains("config reloaded") {
        assert!(Instant::now() < deadline, "no reload: {}", mon.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = am.alerts_of(&model);
    // Every post said the alert ends 4 s later: without re-sends from the new
    // notifier, Alertmanager would have ended it by now.
    std::thread::sleep(Duration::from_secs(6));
    let after = am.alerts_of(&model);
    assert_eq!(
        after.len(),
        1,
        "still listed 6 s after the reload: {after:?}"
    );
    assert_eq!(after[0]["status"]["state"], "active", "{after:?}");
    let now = serde_json::json!(rfc3339(modelmon::clock::now_us() / 1000));
    assert!(second(&after[0]["endsAt"]) > second(&now), "{after:?}");
    assert!(
        before
            .iter()
            .all(|b| second(&after[0]["endsAt"]) > second(&b["endsAt"])),
        "re-posted since the reload: {before:?} then {after:?}"
    );
    let line = mon.wait_for("the alert firing", Duration::from_secs(5), |v| {
        support::model(v, &model).is_some_and(|m| m["alerts"][0]["state"] == "firing")
    });
    assert!(support::model(&line, &model).is_some());
}

#[test]
fn resend_is_for_alertmanager_webhooks_only() {
    let check = |extra: &str| {
        Config::parse(&format!(
            "[[notify.webhooks]]\nname = \"am\"\nurl = \"http://127.0.0.1:9093\"\n{extra}\n"
        ))
        .expect("parses")
        .validate(None)
        .map_err(|e| e.to_string())
    };
    check("format = \"alertmanager\"\nresend = \"30s\"").expect("valid");
    check("format = \"alertmanager\"").expect("resend has a default");
    let err = check("resend = \"30s\"").expect_err("json has nothing to re-send");
    assert!(err.contains("notify.webhooks.resend"), "{err}");
    let err = check("format = \"alertmanager\"\nresend = \"0s\"").expect_err("zero");
    assert!(err.contains("notify.webhooks.resend"), "{err}");
}
