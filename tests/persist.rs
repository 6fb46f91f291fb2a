//! Snapshot files with the real binary: kill -9 during writes, damaged files, restart
//! continuity, one writer per directory, `report`, and `--batch --range`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use modelmon::store::persist::{self, Snapshot};
use modelmon::store::{IngestTotals, Store, StoreConfig};
use serde_json::{Value, json};

use crate::support::{self, Monitor};

fn bin(dir: &Path, config: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"));
    cmd.env_remove("MODELMON_AMQP_URL")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", "/nonexistent")
        .arg("--snapshot-dir")
        .arg(dir);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd
}

/// A config file that saves the history every `interval`.
fn config(root: &Path, interval: &str) -> PathBuf {
    let path = root.join("config.toml");
    fs::write(
        &path,
        format!("[history]\nsnapshot_interval = \"{interval}\"\n"),
    )
    .expect("write config");
    path
}

/// A config whose baseline learns from one minute: the demo then plays only that minute
/// into a fresh history before it starts (it plays the whole learning window, an hour
/// by default), so these tests see the history begin where they expect it.
fn short_learning(dir: &Path) -> PathBuf {
    fs::create_dir_all(dir).expect("state dir");
    let path = dir.with_extension("toml");
    fs::write(
        &path,
        "[alerts.baseline]\nlearn = \"1m\"\nskip_recent = \"0s\"\nmin_history = \"1m\"\n",
    )
    .expect("write config");
    path
}

/// `--demo --batch` until `iterations` lines are printed, then a clean exit.
fn run_demo(dir: &Path, iterations: u32) -> Output {
    bin(dir, Some(&short_learning(dir)))
        .args(["--demo", "--batch", "--interval", "200ms", "--iterations"])
        .arg(iterations.to_string())
        .stdout(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn spawn_demo(dir: &Path, config: Option<&Path>, stderr: &Path) -> Child {
    bin(dir, config)
        .args(["--demo", "--batch", "--interval", "200ms"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(stderr).expect("stderr file"))
        .spawn()
        .expect("the binary runs")
}

fn report(dir: &Path, args: &[&str]) -> Output {
    bin(dir, None)
        .arg("report")
        .args(args)
        .output()
        .expect("the binary runs")
}

fn report_json(dir: &Path, range: &str) -> Value {
    let out = report(dir, &["--json", "--range", range]);
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("report --json is JSON")
}

/// A snapshot with a day of history for `models` models, so each write takes a while
/// and a kill has a real chance of landing inside one.
fn seed_big_snapshot(dir: &Path, models: usize) {
    let now_us = support::now_us();
    let mut store = Store::new(StoreConfig::default());
    for m in 0..models {
        let events: Vec<Value> = (0..8000i64)
            .map(|i| {
                json!({"ts": now_us - 1 - i * 10_700_000, "model": format!("seed-{m:02}"),
                       "instance": "i", "method": "POST", "route": "/p",
                       "status": if i % 50 == 0 { 500 } else { 200 },
                       "duration_us": 2_000 + (i * 7_919) % 40_000})
            })
            .collect();
        for chunk in events.chunks(5000) {
            let body = support::batch(chunk.to_vec(), 0);
            let d = modelmon_contract::decode_batch(&body, None, now_us).expect("batch");
            store.apply(&d, now_us);
        }
    }
    save(&mut store, dir, now_us);
}

/// Writes the store's history as the snapshot in `dir`, as a monitor would.
fn save(store: &mut Store, dir: &Path, now_us: i64) {
    let snap = Snapshot {
        format_version: persist::VERSION,
        saved_ms: now_us / 1000,
        history: store.fresh_history(now_us),
        ingest: IngestTotals::default(),
        stream: None,
    };
    fs::create_dir_all(dir).expect("dir");
    fs::write(dir.join(persist::FILE_NAME), persist::encode(&snap)).expect("seed");
}

#[test]
fn kill_9_at_random_moments_never_leaves_a_torn_snapshot() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("state");
    let cfg = config(root.path(), "100ms");
    seed_big_snapshot(&dir, 30);
    let snap = dir.join(persist::FILE_NAME);
    let mut x = u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15;
    let mut mid_write = 0;
    let rounds = 20;
    for round in 0..rounds {
        let err = root.path().join(format!("stderr-{round}"));
        let before = fs::metadata(&snap).and_then(|m| m.modified()).ok();
        let mut child = spawn_demo(&dir, Some(&cfg), &err);
        // Let it load and start writing, then kill it at a random instant.
        let deadline = Instant::now() + Duration::from_secs(20);
        while fs::metadata(&snap).and_then(|m| m.modified()).ok() == before {
            assert!(
                Instant::now() < deadline,
                "round {round}: no snapshot written"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let tmp = dir.join(format!("{}.tmp-{}", persist::FILE_NAME, child.id()));
        if round % 2 == 0 {
            // Aim inside a write: wait for its temporary file, then a few ms more.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !tmp.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_micros((x >> 33) % 8000));
        } else {
            std::thread::sleep(Duration::from_millis(20 + (x >> 33) % 400));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        mid_write += u32::from(tmp.exists());

        let stderr = fs::read_to_string(&err).expect("stderr");
        assert!(
            !stderr.contains("unusable"),
            "round {round}: the snapshot left by the previous kill did not load:\n{stderr}"
        );
        let v = report_json(&dir, "24h");
        assert!(
            v["models"].as_array().map_or(0, Vec::len) >= 30,
            "round {round}: the seeded history is still there: {v}"
        );
    }
    let aside: Vec<_> = fs::read_dir(&dir)
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("corrupt"))
        .collect();
    assert!(aside.is_empty(), "no snapshot was ever damaged: {aside:?}");
    eprintln!("{mid_write} of {rounds} kills landed while a snapshot was being written");
}

#[test]
fn damaged_snapshots_are_reported_set_aside_and_the_monitor_starts() {
    type Damage = fn(&mut Vec<u8>);
    let newer = format!("format version {}", persist::VERSION + 1);
    let cases: [(&str, Damage, &str); 3] = [
        ("truncated", |b| b.truncate(b.len() * 2 / 3), "truncated"),
        (
            "bit-flipped",
            |b| {
                let i = b.len() - 7;
                b[i] ^= 0x04;
            },
            "checksum mismatch",
        ),
        (
            "future version",
            |b| b[12..16].copy_from_slice(&(persist::VERSION + 1).to_le_bytes()),
            &newer,
        ),
    ];
    for (name, damage, expect) in cases {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("state");
        assert!(run_demo(&dir, 4).status.success());
        let path = dir.join(persist::FILE_NAME);
        let mut bytes = fs::read(&path).expect("a snapshot after a clean exit");
        damage(&mut bytes);
        fs::write(&path, &bytes).expect("damage");

        let out = report(&dir, &["--json"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: report must refuse it");
        assert!(
            stderr.contains(&*path.to_string_lossy()) && stderr.contains(expect),
            "{name}: report names the file and why: {stderr}"
        );

        let out = run_demo(&dir, 3);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name}: the monitor starts: {stderr}");
        assert!(
            stderr.contains(&*path.to_string_lossy())
                && stderr.contains(expect)
                && stderr.contains("kept as"),
            "{name}: a clear message: {stderr}"
        );
        let aside: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().contains("history.snap.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{name}: kept aside");
        assert_eq!(
            fs::read(&aside[0]).expect("aside"),
            bytes,
            "{name}: untouched"
        );
        // It started fresh and saved a good snapshot on exit.
        let v = report_json(&dir, "5m");
        assert!(
            !v["models"].as_array().expect("models").is_empty(),
            "{name}"
        );
    }
}

#[test]
fn history_survives_a_restart_with_a_gap_while_down() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("state");
    assert!(run_demo(&dir, 10).status.success());
    let first = report_json(&dir, "2m");
    let before: u64 = first["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["requests"].as_u64().expect("requests"))
        .sum();
    assert!(before > 0, "the first run saved its history: {first}");

    // Down long enough that at least one whole 10-s bucket sees no monitor.
    std::thread::sleep(Duration::from_secs(21));
    let out = run_demo(&dir, 10);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("unusable"),
        "loads cleanly"
    );
    let v = report_json(&dir, "2m");
    let m = &v["models"][0];
    let points = m["series"].as_array().expect("series");
    assert!(points.iter().all(|p| p["step_s"] == 10), "{m}");
    let covered: Vec<bool> = points
        .iter()
        .map(|p| p["covered"].as_bool().expect("bool"))
        .collect();
    let first_up = covered.iter().position(|&c| c).expect("a covered point");
    let gap = covered[first_up..]
        .iter()
        .position(|&c| !c)
        .map(|i| i + first_up)
        .expect("a gap while the monitor was down");
    assert!(
        covered[gap..].iter().any(|&c| c),
        "covered again after the restart"
    );
    for p in points.iter().filter(|p| p["covered"] == false) {
        assert_eq!(p["requests"], 0, "a gap is not traffic");
        assert!(p["p50_ms"].is_null(), "a gap has no latency");
    }
    let after: u64 = v["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["requests"].as_u64().expect("requests"))
        .sum();
    assert!(
        after > before,
        "history before the restart is kept and the new run added to it: {before} -> {after}"
    );
    // The text report shows the same gap.
    let text = report(&dir, &["--range", "2m"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("(monitor not running)") && text.contains("every 10s"),
        "{text}"
    );
}

#[test]
fn a_second_monitor_reads_the_history_but_never_writes_it() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("state");
    assert!(run_demo(&dir, 3).status.success());
    let path = dir.join(persist::FILE_NAME);
    let saved = fs::read(&path).expect("snapshot");
    // The writer: default interval (30 s), so it does not write during the test.
    let mut writer = spawn_demo(&dir, None, &root.path().join("writer-stderr"));
    let lock = dir.join(persist::LOCK_NAME);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::read_to_string(&lock).map(|s| s.trim().to_owned()).ok()
        != Some(writer.id().to_string())
    {
        assert!(
            Instant::now() < deadline,
            "the first monitor takes the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = run_demo(&dir, 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("pid {}", writer.id())) && stderr.contains("will not write"),
        "the second monitor says who writes: {stderr}"
    );
    assert_eq!(
        fs::read(&path).expect("snapshot"),
        saved,
        "the reader wrote nothing"
    );
    writer.kill().expect("kill");
    writer.wait().expect("reaped");
}

#[test]
fn report_without_a_snapshot_says_so() {
    let root = tempfile::tempdir().expect("tempdir");
    let out = report(root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no snapshot"), "{stderr}");
    let out = report(root.path(), &["--range", "2d"]);
    assert_eq!(out.status.code(), Some(2), "a bad range is a usage error");
}

#[test]
fn batch_lines_carry_each_models_figures_over_the_chosen_range() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("state");
    let dir = dir.to_string_lossy();
    let cfg = short_learning(Path::new(&*dir));
    let cfg = cfg.to_string_lossy();
    let mon = Monitor::start(&[
        "--demo",
        "--range",
        "1h",
        "--snapshot-dir",
        &dir,
        "--config",
        &cfg,
    ]);
    let line = mon.wait_for(
        "a range object with traffic",
        Duration::from_secs(30),
        |v| {
            v["models"]
                .as_array()
                .is_some_and(|ms| ms.iter().any(|m| m["range"]["requests"].as_u64() > Some(0)))
        },
    );
    let m = line["models"]
        .as_array()
        .expect("models")
        .iter()
        .find(|m| m["range"].is_object())
        .expect("a model with a range");
    for key in [
        "requests",
        "qps",
        "errors",
        "error_rate",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "covered_s",
    ] {
        assert!(m["range"].get(key).is_some(), "range.{key} in {m}");
    }
    // Per route and per instance, the same requests split by key.
    for keys in ["range_routes", "range_instances"] {
        let list = m[keys]
            .as_array()
            .unwrap_or_else(|| panic!("{keys} in {m}"));
        assert!(!list.is_empty(), "{keys} in {m}");
        let sum: u64 = list.iter().filter_map(|k| k["requests"].as_u64()).sum();
        assert_eq!(Some(sum), m["range"]["requests"].as_u64(), "{keys} in {m}");
        assert!(
            list.iter()
                .all(|k| k["name"].is_string() && k.get("p95_ms").is_some())
        );
    }
}

/// The monitor's own config names its snapshot directory; `--demo` run on that config
/// (no `--snapshot-dir`) keeps its simulated history and alerts in `demo/` inside it, and
/// `--demo report` reads them there.
#[test]
fn the_demo_never_writes_into_the_configured_snapshot_directory() {
    let root = tempfile::tempdir().expect("tempdir");
    let real = root.path().join("real");
    let config = root.path().join("config.toml");
    fs::write(
        &config,
        format!(
            "[history]\nsnapshot_dir = {:?}\n\n[alerts.baseline]\nlearn = \"1m\"\n\
             skip_recent = \"0s\"\nmin_history = \"1m\"\n",
            real.display().to_string()
        ),
    )
    .expect("write config");
    let demo = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
            .env_remove("MODELMON_AMQP_URL")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("XDG_STATE_HOME", "/nonexistent")
            .arg("--config")
            .arg(&config)
            .arg("--demo")
            .args(args)
            .output()
            .expect("the binary runs")
    };
    let out = demo(&["--batch", "--interval", "200ms", "--iterations", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !real.join("history.snap").exists(),
        "the demo wrote its history into the real directory"
    );
    let entries: Vec<String> = fs::read_dir(&real)
        .expect("the configured directory holds the demo's")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["demo"], "only the demo's own directory");
    assert!(real.join("demo").join("history.snap").exists());
    let out = demo(&["report", "--json", "--range", "1h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert!(
        report["models"].as_array().is_some_and(|m| !m.is_empty()),
        "the demo's history: {report}"
    );
}

/// A snapshot of 3000 events, one every 3.5 s up to now (the last three hours), each
/// `event(i)` with its `ts` set: the temporary root, the snapshot dir and now.
fn three_hours_saved(event: impl Fn(i64) -> Value) -> (tempfile::TempDir, PathBuf, i64) {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("state");
    let now_us = support::now_us();
    let events: Vec<Value> = (0..3000i64)
        .map(|i| {
            let mut e = event(i);
            e["ts"] = json!(now_us - 1 - i * 3_500_000);
            e
        })
        .collect();
    let body = support::batch(events, 0);
    let d = modelmon_contract::decode_batch(&body, None, now_us).expect("batch");
    let mut store = Store::new(StoreConfig::default());
    store.apply(&d, now_us);
    save(&mut store, &dir, now_us);
    (root, dir, now_us)
}

#[test]
fn a_reports_last_point_shows_the_rate_of_the_part_inside_the_range() {
    // One request every 3.5 s for the last three hours: 0.29 req/s all along.
    let (_root, dir, now_us) = three_hours_saved(|_| {
        json!({"model": "steady", "instance": "pod", "method": "GET", "route": "/",
               "status": 200, "duration_us": 1000})
    });

    // Thirteen hours (hourly points) ending half an hour into an hour full of traffic:
    // that last point holds 30 min of requests.
    let hour = (now_us / 1_000_000 / 3600 - 1) * 3600;
    let to_s = hour + 1800;
    let range = format!("{}..{}", (to_s - 13 * 3600) * 1000, to_s * 1000);
    let out = report(&dir, &["--range", &range]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("steady every 3600s:"), "{text}");
    let start = modelmon::report::utc(hour * 1000);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&start))
        .unwrap_or_else(|| panic!("a point at {start}: {text}"));
    let qps: f64 = line
        .split_whitespace()
        .nth(3)
        .expect("QPS")
        .parse()
        .expect("a number");
    assert!((0.25..0.33).contains(&qps), "{line}");
}

#[test]
fn report_splits_each_model_by_route_and_instance() {
    // Three hours of traffic: /slow is slow and fails, /fast is fast; two replicas.
    let (_root, dir, _) = three_hours_saved(|i| {
        let slow = i % 3 == 0;
        json!({"model": "ranker", "instance": format!("pod-{}", i % 2), "method": "POST",
               "route": if slow { "/slow" } else { "/fast" },
               "status": if slow && i % 2 == 0 { 500 } else { 200 },
               "duration_us": if slow { 200_000 } else { 2_000 }})
    });

    let v = report_json(&dir, "24h");
    assert_eq!(v["snapshot"]["format_version"], persist::VERSION);
    assert!(v["snapshot"]["ingest"]["events"].is_u64(), "{v}");
    let m = &v["models"][0];
    let routes = m["routes"].as_array().expect("routes");
    let names: Vec<&str> = routes.iter().filter_map(|k| k["name"].as_str()).collect();
    assert_eq!(names, ["/fast", "/slow"], "busiest first");
    assert_eq!(routes[0]["requests"], 2000);
    assert_eq!(routes[1]["requests"], 1000);
    assert_eq!(routes[0]["errors"], 0);
    assert_eq!(routes[1]["error_rate"], 0.5);
    let p95 = |k: &Value| k["p95_ms"].as_f64().expect("p95");
    assert!((p95(&routes[1]) - 200.0).abs() < 2.0, "{}", routes[1]);
    assert!((p95(&routes[0]) - 2.0).abs() < 0.02, "{}", routes[0]);
    let instances = m["instances"].as_array().expect("instances");
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().all(|k| k["requests"] == 1500));

    let out = report(&dir, &["--range", "24h"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ranker by route:"), "{text}");
    assert!(text.contains("ranker by instance:"), "{text}");
    let slow_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("/slow"))
        .expect("a /slow line");
    assert!(
        slow_line.contains("50.00"),
        "error rate column: {slow_line}"
    );
}

#[test]
fn a_read_only_snapshot_directory_still_gives_its_history() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("state");
    assert!(run_demo(&dir, 10).status.success());
    let saved = report_json(&dir, "5m")["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["requests"].as_u64().expect("requests"))
        .sum::<u64>();
    // Readable by anyone, writable by no one but root; the monitor runs as `nobody`
    // (the tests run as root, whom permissions do not stop).
    let cfg = short_learning(&dir);
    for (path, mode) in [
        (root.path(), 0o755),
        (dir.as_path(), 0o555),
        (cfg.as_path(), 0o644),
    ] {
        fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .expect("chmod");
    }
    for e in fs::read_dir(&dir).expect("dir").flatten() {
        fs::set_permissions(
            e.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o444),
        )
        .expect("chmod");
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args([
            "--demo",
            "--batch",
            "--interval",
            "200ms",
            "--iterations",
            "5",
        ])
        .args(["--range", "5m", "--snapshot-dir"])
        .arg(&dir)
        .arg("--config")
        .arg(&cfg)
        .env_remove("MODELMON_AMQP_URL")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("XDG_STATE_HOME", "/nonexistent")
        .output()
        .expect("setpriv runs the binary");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("is read-only"), "told once: {stderr}");
    let line: Value =
        // The last line: models show once their first live batch is in.
        serde_json::from_slice(
            out.stdout
                .split(|&b| b == b'\n')
                .rfind(|l| !l.is_empty())
                .expect("a line"),
        )
        .expect("JSON");
    let range: u64 = line["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["range"]["requests"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        range >= saved / 2,
        "the saved history is shown: {range} in range, {saved} saved\n{stderr}\n{line}"
    );
    // Loaded history covers the learning window, so the demo did not play one in.
    let events = line["ingest"]["events"].as_u64().expect("events");
    assert!(events < saved / 2, "no history played in: {events} events");
}

#[test]
fn a_snapshot_that_cannot_be_written_is_told_once_then_once_when_it_can() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("state");
    let cfg = root.path().join("fast.toml");
    fs::write(
        &cfg,
        "[history]\nsnapshot_interval = \"200ms\"\n[alerts.baseline]\nlearn = \"1m\"\nskip_recent = \"0s\"\nmin_history = \"1m\"\n",
    )
    .expect("config");
    let err_path = root.path().join("stderr.txt");
    let mut child = spawn_demo(&dir, Some(&cfg), &err_path);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.join("history.snap").is_file() {
        assert!(Instant::now() < deadline, "no first snapshot");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The directory goes away under it: every write fails, as on a full disk.
    fs::remove_dir_all(&dir).expect("remove the directory");
    std::thread::sleep(Duration::from_secs(4));
    let failing = fs::read_to_string(&err_path).expect("stderr");
    assert_eq!(
        failing.matches("saved again once writing works").count(),
        1,
        "about twenty failed writes, one warning: {failing}"
    );
    fs::create_dir_all(&dir).expect("the directory back");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !fs::read_to_string(&err_path)
        .expect("stderr")
        .contains("snapshots are written again")
    {
        assert!(Instant::now() < deadline, "never told it recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        dir.join("history.snap").is_file(),
        "written once it could be"
    );
    let all = fs::read_to_string(&err_path).expect("stderr");
    assert_eq!(
        all.matches("snapshots are written again").count(),
        1,
        "{all}"
    );
}

/// Stream mode as a user meets it: steady traffic, the monitor killed with SIGKILL
/// between two snapshots, events published while it is down, then a new monitor on the
/// same snapshot directory. It resumes at the offset after its snapshot, so the 24-hour
/// history counts every published event exactly once: none lost with the kill, none
/// counted twice from the replay.
#[test]
fn in_stream_mode_a_killed_monitor_resumes_after_its_snapshot_and_counts_each_event_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use modelmon_contract::SourceKind;
    use modelmon_publisher::{Config, Publisher};

    require!(Rabbitmq);

    let root = std::env::temp_dir().join(support::unique("modelmon-stream"));
    let dir = root.join("state");
    fs::create_dir_all(&dir).expect("state dir");
    let cfg = config(&root, "1s");
    let name = support::unique("streamed");
    let stream = support::unique("modelmon-test-stream");
    let start = || {
        Monitor::start(&[
            "--amqp",
            support::AMQP,
            "--stream",
            &stream,
            "--models",
            &name,
            "--no-docker",
            "--snapshot-dir",
            &dir.display().to_string(),
            "--config",
            &cfg.display().to_string(),
        ])
    };
    let mut first = start();
    first.wait_connected();

    let publisher = Publisher::start(Config {
        amqp_url: support::AMQP.to_owned(),
        source_kind: SourceKind::Proxy,
        instance: support::unique("stream-src"),
        ..Config::default()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (stop, p, model) = (Arc::clone(&stop), publisher.clone(), name.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                p.record(support::request(&model));
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    // Past a few snapshots, then killed between two of them (they come every second).
    first.wait_for("events counted", Duration::from_secs(20), |l| {
        l["ingest"]["events"].as_u64() > Some(1000)
    });
    std::thread::sleep(Duration::from_millis(3_500));
    first.kill();
    // Traffic goes on while no monitor runs.
    std::thread::sleep(Duration::from_secs(2));
    let second = start();
    second.wait_connected();
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    traffic.join().expect("traffic");
    publisher.shutdown(Duration::from_secs(10));
    let s = publisher.stats();
    assert_eq!((s.dropped, s.published_events), (0, s.recorded), "{s:?}");

    // The second monitor has caught up once its count stops growing; a clean exit then
    // writes the last snapshot.
    let mut last = 0;
    loop {
        let l = second.wait_for("a line", Duration::from_secs(10), |_| true);
        let n = l["ingest"]["events"].as_u64().unwrap_or(0);
        if n == last && n > 0 {
            break;
        }
        last = n;
        std::thread::sleep(Duration::from_millis(500));
    }
    let pid = second.pid().to_string();
    let term = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(term.success());
    let gone = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{pid}/status")).exists()
        && fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| !s.contains("zombie"))
    {
        assert!(Instant::now() < gone, "the monitor did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let report = report_json(&dir, "24h");
    let counted: u64 = report["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter(|m| m["model"] == name.as_str())
        .map(|m| m["requests"].as_u64().expect("requests"))
        .sum();
    println!(
        "published {} events, the history counts {counted} across a kill -9",
        s.published_events
    );
    assert_eq!(counted, s.published_events, "{report}");
    drop(second);
    let _ = Command::new("rabbitmqctl")
        .args(["delete_queue", &stream])
        .output();
    let _ = fs::remove_dir_all(&root);
}
