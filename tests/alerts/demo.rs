//! `--demo`'s scripted incidents, end to end to a webhook.

use std::time::Duration;

use super::fixtures::*;

/// The built-in rules, unchanged but for what the compressed script needs: the normal
/// learnt from 3 minutes (played in by the demo before it starts), and every `for` and
/// window shortened to fit incidents that last seconds instead of a minute.
#[test]
fn demo_incidents_each_fire_the_rule_that_names_them_and_resolve() {
    let hook = Hook::start(Mode::Ok);
    let cfg = format!(
        r#"
[alerts.baseline]
learn = "3m"
skip_recent = "0s"
min_history = "1m"
[[alerts.rules]]
name = "latency_regression"
for = "1s"
# llm-chat answers 4 times a second: a 3-s window holds a dozen.
[[alerts.rules]]
name = "ttfb_regression"
for = "1s"
min_requests = 5
[[alerts.rules]]
name = "error_spike"
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
    let mon = Mon::start(
        &cfg,
        &["--demo", "--window", "3s"],
        &[("MODELMON_DEMO_CYCLE", "40s")],
    );
    let first = mon.wait_for("the first view", Duration::from_secs(30), |v| {
        v["models"].as_array().is_some_and(|m| m.len() >= 5)
    });
    for m in first["models"].as_array().into_iter().flatten() {
        assert_eq!(
            m["baseline"]["ready"], true,
            "{}: the demo starts with a learnt normal: {}",
            m["model"], m["baseline"]
        );
    }
    let wanted = [
        ("latency_regression", "iris-classifier"),
        ("latency_regression", "resnet50"),
        ("error_spike", "fraud-xgb"),
        ("traffic_drop", "sentiment-bert"),
        ("ttfb_regression", "llm-chat"),
    ];
    let of = |b: &[Received], rule: &str, model: &str| -> Vec<String> {
        alerts(b)
            .filter(|a| a["rule"] == rule && a["model"] == model)
            .map(|a| a["status"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    // The script repeats every 40 s: an incident may fire again after it resolved.
    let began = |b: &[Received], rule: &str, model: &str| {
        of(b, rule, model).starts_with(&["firing".to_owned(), "resolved".to_owned()])
    };
    hook.wait(
        "every incident to fire and resolve",
        Duration::from_secs(70),
        |b| wanted.iter().all(|(rule, model)| began(b, rule, model)),
    );
    let b = hook.bodies();
    for a in alerts(&b) {
        let key = (
            a["rule"].as_str().unwrap_or(""),
            a["model"].as_str().unwrap_or(""),
        );
        assert!(
            wanted.contains(&key),
            "only the scripted causes fire, each under its own rule: {a}"
        );
        assert!(
            a["explanation"].as_str().is_some_and(|e| e.len() > 10),
            "{a}"
        );
    }
}
