//! `--demo`'s scripted incidents, end to end to a webhook.

use std::time::Duration;

use super::fixtures::*;

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
        alerts(b)
            .filter(|a| a["rule"] == rule && a["model"] == model)
            .map(|a| a["status"].as_str().unwrap_or("?").to_owned())
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
        !alerts(&b).any(|a| a["model"] == "iris-classifier"),
        "{:?}",
        b.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
}
