//! Detection as a user meets it: a real containerized model API under steady load, a
//! fault switched on, and the alert that names it, from a monitor with zero rule
//! configuration (only the baseline's learning shortened, so the test warms up in a
//! minute instead of ten). The full set, with its timings, is benches/detection.py.
//!
//! Needs `./scripts/services.sh docker modelapi`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::model_api::{Load, ModelApi, ModelApiOpts};
use crate::support::{Monitor, model, unique};

/// Not the default `modelmon.model`: other tests' monitors poll the same engine.
const LABEL_KEY: &str = "modelmon-test.model";
const RPS: f64 = 25.0;

/// The model's alerts in a `--batch` line.
fn alerts(line: &Value, m: &str) -> Vec<Value> {
    model(line, m)
        .and_then(|r| r["alerts"].as_array())
        .cloned()
        .unwrap_or_default()
}

fn active(line: &Value, m: &str, rule: &str) -> Option<Value> {
    alerts(line, m)
        .into_iter()
        .find(|a| a["rule"] == rule && a["state"] != "resolved")
}

/// What a fault led to: when its rule showed and fired, and which other rules fired.
struct Caught {
    shown: Duration,
    firing: Duration,
    explanation: String,
    others: Vec<String>,
}

/// Reads lines from `since` until `rule` fires on `m`; panics after `limit`.
fn catch(mon: &Monitor, m: &str, rule: &str, since: Instant, limit: Duration) -> Caught {
    let mut shown = None;
    let mut others = Vec::new();
    loop {
        let left = limit.saturating_sub(since.elapsed());
        let line = mon.wait_for(&format!("{rule} to fire on {m}"), left, |_| true);
        for a in alerts(&line, m) {
            let r = a["rule"].as_str().unwrap_or("?").to_owned();
            if r != rule && a["state"] == "firing" && !others.contains(&r) {
                others.push(r);
            }
        }
        let Some(a) = active(&line, m, rule) else {
            continue;
        };
        let shown = *shown.get_or_insert(since.elapsed());
        if a["state"] == "firing" {
            return Caught {
                shown,
                firing: since.elapsed(),
                explanation: a["explanation"].as_str().unwrap_or("").to_owned(),
                others,
            };
        }
    }
}

fn resolved(mon: &Monitor, m: &str, rule: &str) {
    mon.wait_for(
        &format!("{rule} on {m} to resolve"),
        Duration::from_secs(120),
        |v| active(v, m, rule).is_none(),
    );
}

#[test]
fn a_latency_regression_an_error_burst_and_a_stopped_container_each_fire_their_rule() {
    require!(Rabbitmq, Docker, ModelApi);
    let m = unique("iris-detect");
    let mut opts = ModelApiOpts::new(&m);
    opts.label_key = LABEL_KEY.into();
    let api = ModelApi::start(&opts);
    let _load = Load::start(api.port(), &m, RPS);
    let cfg: PathBuf = std::env::temp_dir().join(format!("{}.toml", unique("modelmon-detect")));
    std::fs::write(
        &cfg,
        format!(
            r#"
[docker]
label_key = "{LABEL_KEY}"
interval = "1s"
[alerts.baseline]
learn = "3m"
skip_recent = "0s"
min_history = "1m"
[notify.desktop]
enabled = false
"#
        ),
    )
    .expect("config written");
    let mon = Monitor::start_every(
        "500ms",
        &[
            "--config",
            cfg.to_str().expect("utf-8 path"),
            "--models",
            &m,
            "--window",
            "15s",
        ],
    );
    let warm = mon.wait_for(
        "the model's normal to be learnt",
        Duration::from_secs(240),
        |v| {
            model(v, &m).is_some_and(|r| {
                r["baseline"]["ready"] == true
                    && r["baseline"]["p95_ms"].is_number()
                    && r["baseline"]["error_rate"].is_number()
                    && r["container_state"] == "running"
            })
        },
    );
    let normal = model(&warm, &m).expect("row")["baseline"].clone();
    eprintln!("normal: {}", normal["explanation"]);
    assert!(
        alerts(&warm, &m).is_empty(),
        "nothing fired while learning: {:?}",
        alerts(&warm, &m)
    );

    let mut table = Vec::new();
    let faults: [(&str, &str, Value); 2] = [
        (
            "latency x100",
            "latency_regression",
            json!({"latency_ms": [320, 480]}),
        ),
        (
            "30 % 503",
            "error_spike",
            json!({"error_share": 0.3, "error_status": 503}),
        ),
    ];
    for (fault, rule, body) in faults {
        api.set_faults(&body);
        let c = catch(&mon, &m, rule, Instant::now(), Duration::from_secs(90));
        api.clear_faults();
        assert!(
            c.others.is_empty(),
            "{fault}: only {rule} fires, not {:?}",
            c.others
        );
        assert!(!c.explanation.is_empty(), "{fault}: the alert says why");
        table.push((fault, rule, c.shown, c.firing, c.explanation));
        resolved(&mon, &m, rule);
    }
    let t = Instant::now();
    api.stop();
    let c = catch(&mon, &m, "container_down", t, Duration::from_secs(60));
    assert!(
        c.explanation.contains(api.name()) && c.explanation.contains("exited"),
        "names the container and what happened: {}",
        c.explanation
    );
    assert!(
        c.others.is_empty(),
        "the cause alone, not its consequences: {:?}",
        c.others
    );
    table.push((
        "docker stop",
        "container_down",
        c.shown,
        c.firing,
        c.explanation,
    ));

    for (fault, rule, shown, firing, why) in &table {
        eprintln!(
            "{fault:<14} {rule:<20} shown {:>5.1} s  firing {:>5.1} s  {why}",
            shown.as_secs_f64(),
            firing.as_secs_f64()
        );
    }
    let latency = &table[0].4;
    assert!(latency.contains("its normal"), "{latency}");
}
