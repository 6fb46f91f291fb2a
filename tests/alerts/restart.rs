//! Alert state across a monitor restart.

use std::time::Duration;

use super::fixtures::*;
use crate::support;
use crate::support::unique;

#[test]
fn a_restart_neither_refires_nor_forgets_to_resolve() {
    require!(Rabbitmq);
    let hook = Hook::start(Mode::Ok);
    // Posted to as Alertmanager would be; re-sends once an hour, so every post here is
    // a transition or the restart's resume.
    let am = Hook::start(Mode::Ok);
    let model = unique("alert-restart");
    let hooks = webhook("ops", &hook.url, "")
        + &webhook("am", &am.url, "format = \"alertmanager\"\nresend = \"1h\"");
    let cfg = alerts_config(&hooks, "");
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
    am.wait("the firing, to Alertmanager", Duration::from_secs(5), |b| {
        b.len() == 1
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
    // Alertmanager would end the alert unless re-sent: the new run takes over the
    // re-sending of what the old one left firing, starting at once.
    am.wait(
        "the restored alert posted again",
        Duration::from_secs(5),
        |b| b.len() >= 2,
    );
    let resumed = &am.bodies()[1].body[0];
    assert_eq!(resumed["labels"]["model"], model.as_str(), "{resumed}");
    assert_eq!(
        resumed["startsAt"],
        am.bodies()[0].body[0]["startsAt"],
        "the same alert, still firing since it began"
    );
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
    am.wait(
        "the resolve, to Alertmanager",
        Duration::from_secs(5),
        |b| b.len() >= 3,
    );
}
