//! The binary as a user runs it: exit codes, messages, `--demo`.

use std::process::Command;
use std::time::Duration;

use crate::support::{Monitor, model};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args(args)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_config(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), text).expect("write");
    f
}

#[test]
fn an_unknown_config_key_exits_2_naming_the_key_file_and_line() {
    let f = temp_config("[amqp]\nurl = \"amqp://127.0.0.1:5672/%2f\"\nprefetsh = 10\n");
    let path = f.path().to_str().expect("utf-8 path");
    let (code, _, err) = run(&["--config", path, "--batch", "--iterations", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("prefetsh") && err.contains("line 3") && err.contains(path),
        "{err}"
    );
}

#[test]
fn a_bad_value_exits_2_naming_the_key() {
    let f = temp_config("[store]\nwindow = \"0s\"\n");
    let (code, _, err) = run(&[
        "--config",
        f.path().to_str().expect("utf-8"),
        "--demo",
        "--batch",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("store.window"), "{err}");
    let (code, _, err) = run(&["--amqp", "http://nope", "--batch"]);
    assert_eq!(code, 2);
    assert!(err.contains("amqp.url"), "{err}");
}

#[test]
fn a_missing_explicit_config_file_is_an_error() {
    let (code, _, err) = run(&["--config", "/nonexistent/modelmon.toml", "--batch"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/modelmon.toml"), "{err}");
}

#[test]
fn bad_usage_exits_2() {
    let (code, _, err) = run(&["--no-such-flag"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(&["--window", "ten", "--batch"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn demo_shows_live_numbers_for_at_least_four_models() {
    let mon = Monitor::start(&["--demo"]);
    // The demo first plays its learning hour into the store: under a second in a release
    // build, several in a debug build on a machine busy with the other tests.
    let line = mon.wait_for("traffic on four models", Duration::from_secs(30), |v| {
        v["models"].as_array().is_some_and(|m| {
            m.iter()
                .filter(|m| m["requests"].as_u64() > Some(0))
                .count()
                >= 4
        })
    });
    assert_eq!(line["broker"]["state"], "demo");
    let busiest = line["models"]
        .as_array()
        .expect("models")
        .iter()
        .max_by_key(|m| m["requests"].as_u64())
        .expect("a model");
    let p50 = busiest["p50_ms"].as_f64().expect("p50");
    let p99 = busiest["p99_ms"].as_f64().expect("p99");
    assert!(p99 > p50 && p50 > 0.0, "a long tail: p50 {p50}, p99 {p99}");
    // Live: events keep arriving. (The window's own count is steady once the window is
    // full, which the demo's learning hour makes it from the start: it may not grow.)
    let name = busiest["model"].as_str().expect("name").to_owned();
    let before = line["ingest"]["events"].as_u64().expect("count");
    mon.wait_for("the count to grow", Duration::from_secs(5), |v| {
        v["ingest"]["events"].as_u64() > Some(before)
            && model(v, &name)
                .and_then(|m| m["last_seen_ms_ago"].as_i64())
                .is_some_and(|ms| ms < 2000)
    });
}

#[test]
fn batch_iterations_stops_after_n_lines() {
    let (code, out, err) = run(&[
        "--demo",
        "--batch",
        "--interval",
        "100ms",
        "--iterations",
        "3",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3);
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("JSON line");
        for key in ["ts_ms", "broker", "ingest", "models"] {
            assert!(!v[key].is_null(), "missing {key}");
        }
    }
}
