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
    assert!(err.contains("`--amqp`"), "{err}");
}

/// A valid file and a bad value on the command line or in the environment: the message
/// names the flag or the variable, not the file that never held the value.
#[test]
fn a_bad_value_from_the_command_line_names_the_flag_not_the_file() {
    let f = temp_config("[store]\nwindow = \"30s\"\n");
    let path = f.path().to_str().expect("utf-8");
    let (code, _, err) = run(&["--config", path, "--window", "2h", "--batch"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("invalid value for `--window`") && err.contains("between 1s and 1h"),
        "{err}"
    );
    assert!(!err.contains(path), "the file is not at fault: {err}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args(["--config", path, "--batch", "--iterations", "1"])
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env("MODELMON_AMQP_URL", "http://nope")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invalid value for `MODELMON_AMQP_URL`") && !err.contains(path),
        "{err}"
    );
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

/// A service's config reload, as an operator does it: edit the file, `kill -HUP`. A new
/// rule judges from then on, in the same process with the same state; a broken file is
/// named with its fault and the running config stays.
#[test]
fn sighup_reloads_the_rules_and_a_broken_file_keeps_the_running_ones() {
    use std::process::Stdio;

    let dir = std::env::temp_dir().join(crate::support::unique("modelmon-reload"));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.toml");
    let stderr = dir.join("stderr");
    let quiet = "[notify.desktop]\nenabled = false\n";
    std::fs::write(&config, quiet).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args(["--demo", "--batch", "--interval", "200ms", "--config"])
        .arg(&config)
        .arg("--snapshot-dir")
        .arg(dir.join("state"))
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("runs");
    let lines = crate::support::json_lines(child.stdout.take().expect("stdout"));
    let has_rule = |l: &serde_json::Value| {
        model(l, "iris-classifier").is_some_and(|m| {
            m["alerts"]
                .as_array()
                .is_some_and(|a| a.iter().any(|a| a["rule"] == "reload_check"))
        })
    };
    let first = crate::support::first_line(&lines, Duration::from_secs(30), |l| {
        model(l, "iris-classifier").is_some()
    })
    .expect("demo lines");
    assert!(!has_rule(&first));
    let pid = child.id().to_string();
    let hup = || {
        let sent = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
    };

    // Every request of the demo's iris model is slower than a microsecond.
    std::fs::write(
        &config,
        format!(
            "{quiet}[[alerts.rules]]\nname = \"reload_check\"\nmodels = [\"iris-classifier\"]\n\
             metric = \"p50_ms\"\nthreshold = 0.001\nfor = \"0s\"\n"
        ),
    )
    .expect("write");
    hup();
    crate::support::first_line(&lines, Duration::from_secs(30), has_rule)
        .unwrap_or_else(|last| panic!("the reloaded rule never judged: {last}"));

    std::fs::write(
        &config,
        format!("{quiet}[[alerts.rules]]\nname = \"x\"\nmetric = \"nope\"\n"),
    )
    .expect("write");
    hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let told = loop {
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        if text.contains("config not reloaded") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no word of the bad file: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        told.contains("nope") && told.contains("the running one stays"),
        "{told}"
    );
    assert!(
        told.contains("config reloaded: 1 alert rule, 0 webhooks"),
        "{told}"
    );
    // Still running, still judging by the rule it had.
    crate::support::first_line(&lines, Duration::from_secs(10), has_rule)
        .unwrap_or_else(|last| panic!("the running rule was lost: {last}"));
    assert!(
        child.try_wait().expect("status").is_none(),
        "the monitor exited"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_config_says_valid_or_names_the_fault_with_the_monitors_exit_codes() {
    let good = temp_config(
        "[amqp]\nprefetch = 64\n[[alerts.rules]]\nname = \"slow\"\nmetric = \"p95_ms\"\nthreshold = 500.0\nfor = \"1m30s\"\n",
    );
    let path = good.path().to_str().expect("utf-8 path");
    let (code, out, err) = run(&["check-config", path]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(path) && out.contains("valid (1 alert rule, 0 webhooks)"),
        "{out}"
    );
    let bad = temp_config("[amqp]\nprefetch = 64\n[history]\nsnapshot_interval = \"30m1h\"\n");
    let path = bad.path().to_str().expect("utf-8 path");
    let (code, out, err) = run(&["check-config", path]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains(path) && err.contains("line 4") && err.contains("largest to smallest"),
        "{err}"
    );
    let (code, _, err) = run(&["check-config", "/nonexistent/modelmon.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/modelmon.toml"), "{err}");
}

/// `--config` is global: `check-config` must check that file, before or after the
/// subcommand, not the usual location (absent here), which would call a broken file valid.
#[test]
fn check_config_checks_the_file_given_with_config() {
    let bad = temp_config("[store]\nwindow = \"2h\"\n");
    let path = bad.path().to_str().expect("utf-8 path");
    for args in [
        ["--config", path, "check-config"],
        ["check-config", "--config", path],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(
            err.contains("store.window") && err.contains(path),
            "{args:?}: {err}"
        );
    }
    let good = temp_config("[amqp]\nprefetch = 64\n");
    let good_path = good.path().to_str().expect("utf-8 path");
    let (code, out, err) = run(&["check-config", "--config", good_path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(good_path) && out.contains("valid"), "{out}");
    // The same file both ways is one file.
    let (code, out, err) = run(&["--config", good_path, "check-config", good_path]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(good_path), "{out}");
    // Two different files: which one the user meant is unknown, so neither is called valid.
    let (code, out, err) = run(&["--config", path, "check-config", good_path]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains("two files") && err.contains(path) && err.contains(good_path),
        "{err}"
    );
}

/// A wildcard in `--models` or `[amqp] models` would bind other models' routing keys:
/// refused, saying why, where a name with dots is accepted.
#[test]
fn wildcards_in_models_are_refused_saying_why() {
    for models in ["llm-*", "#", "llama-3.1-8b,llm.#"] {
        let (code, _, err) = run(&["--demo", "--batch", "--iterations", "1", "--models", models]);
        assert_eq!(code, 2, "{models}: {err}");
        assert!(
            err.contains("invalid value for `--models`") && err.contains("wildcards"),
            "{models}: {err}"
        );
    }
    let f = temp_config("[amqp]\nmodels = [\"resnet50\", \"bert.*\"]\n");
    let path = f.path().to_str().expect("utf-8 path");
    let (code, _, err) = run(&["check-config", path]);
    assert_eq!(code, 2);
    assert!(
        err.contains("amqp.models") && err.contains("\"bert.*\"") && err.contains(path),
        "{err}"
    );
    let (code, _, err) = run(&[
        "--demo",
        "--batch",
        "--iterations",
        "1",
        "--models",
        "llama-3.1-8b,meta-llama/Llama-3.1-8B-Instruct",
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_empty_or_missing_token_file_is_refused_before_anything_starts() {
    let empty = temp_config("  \n");
    let path = empty.path().to_str().expect("utf-8 path");
    let (code, _, err) = run(&[
        "--demo",
        "--batch",
        "--iterations",
        "1",
        "--token-file",
        path,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(path) && err.contains("empty"), "{err}");
    let (code, _, err) = run(&[
        "--demo",
        "--batch",
        "--iterations",
        "1",
        "--token-file",
        "/nonexistent/token",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot read the token file /nonexistent/token"),
        "{err}"
    );
}

/// `modelmon-tui --headless --serve 127.0.0.1:0 ARGS` with `MODELMON_TOKEN` set to
/// `env_token`: the child (stderr drained), and the address it serves on; or its exit
/// code and stderr when it stopped first. Its broker is a closed port: the server runs
/// all the same, at once (the demo would first play its learning hour).
fn serve_with_env_token(
    args: &[&str],
    env_token: &str,
) -> Result<(std::process::Child, String), (i32, String)> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args(["--headless", "--no-docker", "--serve", "127.0.0.1:0"])
        .args(["--amqp", "amqp://127.0.0.1:1/%2f"])
        .args(args)
        .env("MODELMON_TOKEN", env_token)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join(crate::support::unique("modelmon-token-state")),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
    let mut said = String::new();
    for line in lines.by_ref() {
        let line = line.expect("stderr is text");
        if let Some(addr) = line.split("serving on http://").nth(1) {
            let addr = addr.trim().to_owned();
            std::thread::spawn(move || for _ in lines {});
            return Ok((child, addr));
        }
        said.push_str(&line);
        said.push('\n');
    }
    let code = child.wait().expect("status").code().unwrap_or(-1);
    Err((code, said))
}

/// A service with `MODELMON_TOKEN` in its environment and `--token-file` on its command
/// line: the command line wins, as it does over the environment everywhere, rather than
/// a usage error about a `--token` nobody passed.
#[test]
fn token_file_on_the_command_line_overrides_the_token_in_the_environment() {
    let file = temp_config("from-file\n");
    let path = file.path().to_str().expect("utf-8 path");
    for env_token in ["from-env", ""] {
        let (mut child, addr) = serve_with_env_token(&["--token-file", path], env_token)
            .unwrap_or_else(|(code, err)| {
                panic!("MODELMON_TOKEN={env_token:?}: exit {code}: {err}")
            });
        let status = |token: &str| {
            crate::support::get(&addr, &format!("/api/v1/status?token={token}")).map(|r| r.0)
        };
        assert_eq!(status("from-file"), Some(200), "the file's token opens");
        assert_eq!(status("from-env"), Some(401), "the environment's does not");
        let _ = child.kill();
        let _ = child.wait();
    }
    // Without --token-file the environment's token guards the server.
    let (mut child, addr) = serve_with_env_token(&[], "from-env").expect("serves");
    let status = |token: &str| {
        crate::support::get(&addr, &format!("/api/v1/status?token={token}")).map(|r| r.0)
    };
    assert_eq!(status("from-env"), Some(200));
    assert_eq!(status("nope"), Some(401));
    let _ = child.kill();
    let _ = child.wait();
    // Both flags on the command line are still a usage error, naming both.
    let (code, _, err) = run(&["--demo", "--batch", "--token", "t", "--token-file", path]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--token <TOKEN>") && err.contains("--token-file <PATH>"),
        "{err}"
    );
}
