//! Faults injected into a real model API show in what `modelmon-tui --batch` prints.
//!
//! The iris example runs in a container (tests/support/model_api.rs) under a steady load,
//! publishing through the real interceptor to the real broker; the monitor reads the
//! broker and Docker as a user's would. Needs `./scripts/services.sh docker modelapi`.
//! These tests prove each fault is visible in the figures; whether the alert rules catch
//! them, and how fast, is benches/detection.py's and the alert tests' business.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::model_api::{Load, ModelApi, ModelApiOpts};
use crate::support::{Monitor, model, unique};

/// Not the default `modelmon.model`: the other tests' monitors poll the same engine and
/// must not see these containers as models of theirs.
const LABEL_KEY: &str = "modelmon-test.model";
/// A short live window, so the figures turn over within seconds of a change.
const WINDOW: &str = "15s";
const RPS: f64 = 25.0;
const MIB: f64 = 1024.0 * 1024.0;

fn start_api(m: &str, cpus: &str) -> ModelApi {
    let mut opts = ModelApiOpts::new(m);
    opts.label_key = LABEL_KEY.into();
    cpus.clone_into(&mut opts.cpus);
    ModelApi::start(&opts)
}

fn monitor(m: &str) -> Monitor {
    let cfg: PathBuf = std::env::temp_dir().join(format!("{}.toml", unique("modelmon-fault-cfg")));
    std::fs::write(
        &cfg,
        format!("[docker]\nlabel_key = \"{LABEL_KEY}\"\ninterval = \"1s\"\n"),
    )
    .expect("config written");
    Monitor::start_every(
        "500ms",
        &[
            "--config",
            cfg.to_str().expect("utf-8 path"),
            "--models",
            m,
            "--window",
            WINDOW,
        ],
    )
}

fn num(row: &Value, key: &str) -> f64 {
    row[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number: {row}"))
}

/// Waits for the model to be served, measured and mapped to its running container.
fn wait_healthy(mon: &Monitor, m: &str) -> Value {
    let line = mon.wait_for(
        "steady traffic and container figures",
        Duration::from_secs(60),
        |v| {
            model(v, m).is_some_and(|r| {
                r["requests"].as_u64() >= Some(100)
                    && r["p95_ms"].is_number()
                    && r["cpu_percent"].is_number()
                    && r["mem_bytes"].is_number()
                    && r["container_state"] == "running"
            })
        },
    );
    model(&line, m).expect("model row").clone()
}

#[test]
fn latency_errors_cpu_and_a_stop_show_in_the_batch_figures() {
    require!(Rabbitmq, Docker, ModelApi);
    let m = unique("iris-faults");
    let api = start_api(&m, "0.5");
    let mon = monitor(&m);
    let load = Load::start(api.port(), &m, RPS);
    let before = wait_healthy(&mon, &m);
    let p95_before = num(&before, "p95_ms");
    assert!(
        p95_before < 100.0,
        "a healthy iris model answers in a few ms: {before}"
    );
    assert_eq!(before["error_rate"], 0.0, "{before}");

    // Latency: every predict waits 320..480 ms first.
    api.set_faults(&json!({"latency_ms": [320, 480]}));
    let t = Instant::now();
    let line = mon.wait_for("p95 above 300 ms", Duration::from_secs(30), |v| {
        model(v, &m).is_some_and(|r| r["p95_ms"].as_f64() > Some(300.0))
    });
    let slow = model(&line, &m).expect("row");
    eprintln!(
        "latency: p95 {p95_before:.1} ms -> {:.1} ms, shown after {:.1} s",
        num(slow, "p95_ms"),
        t.elapsed().as_secs_f64()
    );

    // Errors: 30 % of predicts answer 503 (and the latency goes: a PUT replaces the set).
    api.set_faults(&json!({"error_share": 0.3, "error_status": 503}));
    let injected_ms = line_ts(&mon);
    // The first line whose whole window lies inside the fault.
    let window_ms = 15_000 + 1_000;
    let line = mon.wait_for(
        "a window inside the error fault",
        Duration::from_secs(40),
        |v| v["ts_ms"].as_i64() >= Some(injected_ms + window_ms),
    );
    let row = model(&line, &m).expect("row");
    let rate = num(row, "error_rate");
    eprintln!(
        "errors: error_rate {rate:.3} for a share of 0.3 ({} requests, 5xx {})",
        row["requests"], row["status"]["5xx"]
    );
    assert!((rate - 0.3).abs() <= 0.1, "error_rate ≈ 0.3: {row}");
    assert!(row["status"]["5xx"].as_u64() > Some(0), "{row}");
    assert!(
        num(row, "p95_ms") < 100.0,
        "latency back to normal once the latency fault is off: {row}"
    );

    // CPU: burner processes hold the container at its limit of half a core. Two of them,
    // and half a core, so that the limit is what holds it even while the tests beside it
    // load both of the machine's cores (a full core was out of reach then).
    api.set_faults(&json!({"cpu_burn": true, "cpu_burners": 2}));
    let t = Instant::now();
    let limit_percent = |r: &Value| r["containers"][0]["cpu_limit_percent"].as_f64();
    let line = mon.wait_for("CPU at the limit", Duration::from_secs(40), |v| {
        model(v, &m).is_some_and(|r| limit_percent(r) >= Some(85.0))
    });
    let row = model(&line, &m).expect("row");
    let cpu = num(row, "cpu_percent");
    eprintln!(
        "cpu: {:.1} % -> {cpu:.1} % ({:.0} % of the limit) after {:.1} s",
        num(&before, "cpu_percent"),
        limit_percent(row).unwrap_or(f64::NAN),
        t.elapsed().as_secs_f64()
    );
    assert!(cpu <= 57.5, "half a core is the limit (--cpus 0.5): {row}");
    api.clear_faults();
    mon.wait_for("CPU back down", Duration::from_secs(30), |v| {
        model(v, &m).is_some_and(|r| limit_percent(r) < Some(50.0))
    });

    // A clean stop: the container is there, not running.
    let counts = load.counts();
    drop(load);
    api.stop();
    let line = mon.wait_for("the container exited", Duration::from_secs(30), |v| {
        model(v, &m).is_some_and(|r| r["container_state"] == "exited")
    });
    let row = model(&line, &m).expect("row");
    assert!(
        row["cpu_percent"].is_null(),
        "no figures once stopped: {row}"
    );
    eprintln!("load: {counts:?}");
    assert_eq!(
        counts.failed, 0,
        "the API answered every request: {counts:?}"
    );
}

/// The `ts_ms` of the monitor's next line: "now" on the monitor's clock.
fn line_ts(mon: &Monitor) -> i64 {
    mon.wait_for("a line", Duration::from_secs(10), |_| true)["ts_ms"]
        .as_i64()
        .expect("ts_ms")
}

#[test]
fn a_memory_leak_ends_in_an_oom_kill() {
    require!(Rabbitmq, Docker, ModelApi);
    let m = unique("iris-leak");
    let api = start_api(&m, "1");
    let mon = monitor(&m);
    let _load = Load::start(api.port(), &m, RPS);
    let before = wait_healthy(&mon, &m);
    let limit = num(&before, "mem_limit_bytes");
    assert_eq!(limit, 400.0 * MIB, "--memory 400m: {before}");

    api.set_faults(&json!({"leak_mib_per_s": 40}));
    let t = Instant::now();
    let peak = Cell::new(0.0_f64);
    let line = mon.wait_for("the OOM kill", Duration::from_secs(60), |v| {
        model(v, &m).is_some_and(|r| {
            if let Some(b) = r["mem_bytes"].as_f64() {
                peak.set(peak.get().max(b));
            }
            r["oom_kills"].as_u64() >= Some(1)
        })
    });
    let row = model(&line, &m).expect("row");
    eprintln!(
        "leak: {:.0} MiB -> peak seen {:.0} MiB of {:.0}, OOM kill shown after {:.1} s",
        num(&before, "mem_bytes") / MIB,
        peak.get() / MIB,
        limit / MIB,
        t.elapsed().as_secs_f64()
    );
    assert!(
        peak.get() > 0.6 * limit,
        "memory climbed towards the limit first: peak {}",
        peak.get()
    );
    let actions: Vec<&str> = row["container_events"]
        .as_array()
        .map(|evs| evs.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(actions.contains(&"oom"), "an oom on the timeline: {row}");
    assert_ne!(row["container_state"], "running", "{row}");
    assert_eq!(api.inspect("{{.State.OOMKilled}}"), "true");
}
