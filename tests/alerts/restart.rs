//! Alert state across a monitor restart.

use std::time::Duration;

use super::fixtures::*;
use crate::support;
use crate::support::unique;

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
