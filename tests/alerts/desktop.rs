//! Desktop notifications through a real session bus and a real notification daemon.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::fixtures::*;
use crate::support;
use crate::support::unique;
use serde_json::Value;
use std::time::Instant;

#[test]
fn with_no_session_bus_desktop_notifications_say_once_why_they_are_off() {
    require!(Rabbitmq);
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

/// One notification in dunst's history.
#[derive(Debug)]
struct Shown {
    summary: String,
    body: String,
    id: i64,
}

/// What `dunstctl history` holds.
fn history(bus: &str) -> Vec<Shown> {
    let Some(text) = dunstctl(bus, &["history"]) else {
        return Vec::new();
    };
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["data"][0]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|n| Shown {
                    summary: n["summary"]["data"].as_str().unwrap_or("").to_owned(),
                    body: n["body"]["data"].as_str().unwrap_or("").to_owned(),
                    id: n["id"]["data"].as_i64().unwrap_or(-1),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn desktop_notifications_reach_a_real_notification_daemon() {
    require!(Rabbitmq, Desktop);
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
    let seen = wait_shown(&bus, &[&firing, &resolved]);
    let shown = |s: &str| seen.iter().find(|n| n.summary == s);
    let (Some(f), Some(r)) = (shown(&firing), shown(&resolved)) else {
        panic!(
            "firing and resolved not both in dunst's history: {seen:?}\n{}",
            mon.stderr()
        );
    };
    assert_eq!(
        f.id, r.id,
        "the resolved notification replaces the firing one (same id)"
    );
    // The body is the alert's explanation, with the figures.
    assert!(
        f.body.starts_with("p95 ") && f.body.contains("above its limit 100 ms"),
        "{f:?}"
    );
    assert!(!r.body.is_empty(), "{r:?}");
    assert!(
        !mon.stderr().contains("desktop notifications are off"),
        "{}",
        mon.stderr()
    );
    drop(mon);

    // Two models going bad in the same evaluation: one notification with a line each.
    let (a, b) = (unique("alert-desk"), unique("alert-desk"));
    let cfg = alerts_config("", "")
        .replace("enabled = false", "enabled = true")
        .replace("for = \"1s\"", "for = \"0s\"");
    let mon = Mon::watching(
        &cfg,
        &format!("{a},{b}"),
        &[("DBUS_SESSION_BUS_ADDRESS", bus.as_str())],
    );
    play_together(&mon, &[&a, &b], Duration::from_secs(4), Duration::ZERO);
    let seen = wait_shown(&bus, &["modelmon: 2 firing"]);
    let group = seen
        .iter()
        .find(|n| n.summary == "modelmon: 2 firing")
        .unwrap_or_else(|| panic!("no grouped notification: {seen:?}\n{}", mon.stderr()));
    let lines: Vec<&str> = group.body.lines().collect();
    assert_eq!(lines.len(), 2, "{group:?}");
    for m in [&a, &b] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{m} slow: p95 "))),
            "a line for {m}: {group:?}"
        );
    }
    assert!(
        !seen
            .iter()
            .any(|n| n.summary == format!("{a}: slow firing")),
        "no separate notification per model: {seen:?}"
    );
}

/// Waits until every summary of `want` is in dunst's history; what it holds then.
fn wait_shown(bus: &str, want: &[&str]) -> Vec<Shown> {
    // Closing moves what is shown into the history, where dunstctl can read it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        dunstctl(bus, &["close-all"]);
        seen = history(bus);
        if want.iter().all(|w| seen.iter().any(|n| n.summary == *w)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    seen
}
