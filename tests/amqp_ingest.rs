//! Events through the real RabbitMQ into `modelmon-tui --batch`.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Monitor, Publisher, batch, event, exact_percentile_ms, model, runtime, unique,
};

/// Durations with a long tail, reproducible: a cheap log-normal-like spread.
fn durations(n: usize, seed: u64) -> Vec<u64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (2_000.0 * (3.0 * u * u * u).exp()) as u64
        })
        .collect()
}

#[test]
fn known_batches_give_exact_counts_rates_and_percentiles() {
    require!(Rabbitmq);
    let name = unique("exact");
    let other = unique("unwatched");
    let mon = Monitor::start(&["--models", &name]);
    mon.wait_connected();
    let rt = runtime();
    let samples = durations(2_000, 7);
    let mut errors = 0u64;
    let mut client_errors = 0u64;
    rt.block_on(async {
        let p = Publisher::connect().await;
        for (b, chunk) in samples.chunks(100).enumerate() {
            let events: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let status = match (b * 100 + i) % 50 {
                        0 => 500,
                        1 => 404,
                        _ => 200,
                    };
                    errors += u64::from(status == 500);
                    client_errors += u64::from(status == 404);
                    event(&name, status, *d)
                })
                .collect();
            p.publish(&name, &batch(events, if b == 3 { 5 } else { 0 }))
                .await;
        }
        // One batch mixing good and bad events: the good one must count.
        let mut bad_status = event(&name, 200, 1000);
        bad_status["status"] = json!(700);
        let mut negative = event(&name, 200, 1000);
        negative["duration_us"] = json!(-3);
        let mut no_route = event(&name, 200, 1000);
        no_route.as_object_mut().expect("object").remove("route");
        let mut app_error = event(&name, 200, 5_000);
        app_error["error"] = json!("ValueError");
        p.publish(
            &name,
            &batch(vec![bad_status, negative, no_route, app_error], 0),
        )
        .await;
        p.publish(&name, b"{not json").await;
        p.publish(&other, &batch(vec![event(&other, 200, 10)], 0))
            .await;
    });
    let want = samples.len() as u64 + 1;
    let line = mon.wait_for("all events counted", Duration::from_secs(15), |v| {
        model(v, &name).is_some_and(|m| m["requests"] == want) && v["ingest"]["rejected"] == 4
    });
    let m = model(&line, &name).expect("model present");
    assert_eq!(
        m["errors"],
        errors + 1,
        "5xx and the event with `error` set are errors"
    );
    let rate = m["error_rate"].as_f64().expect("rate");
    assert!(
        (rate - (errors + 1) as f64 / want as f64).abs() < 1e-6,
        "{rate}"
    );
    assert_eq!(m["client_errors"], client_errors, "4xx are counted apart");
    assert_eq!(m["status"]["4xx"], client_errors);
    let mut all = samples.clone();
    all.push(5_000);
    for (key, q) in [("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        let got = m[key].as_f64().expect("percentile");
        let exact = exact_percentile_ms(&all, q);
        assert!(
            (got - exact).abs() / exact < 0.01,
            "{key}: {got} vs exact {exact}"
        );
    }
    let exact_max = *all.iter().max().expect("samples") as f64 / 1000.0;
    assert!((m["max_ms"].as_f64().expect("max") - exact_max).abs() < 1e-3);
    let ingest = &line["ingest"];
    assert_eq!(
        ingest["rejected_by_reason"],
        json!({"bad_status": 1, "bad_duration": 1, "missing_field": 1, "not_json": 1})
    );
    assert_eq!(ingest["dropped_at_source"], 5);
    assert!(
        model(&line, &other).is_none(),
        "--models binds only the named models"
    );
    assert!(
        m["cpu_percent"].is_null() && m["mem_bytes"].is_null(),
        "unknown is null, never 0"
    );
}

#[test]
fn streamed_answers_bring_their_time_to_first_byte_to_batch() {
    require!(Rabbitmq);
    let llm = unique("ttfb-llm");
    let plain = unique("ttfb-plain");
    let mon = Monitor::start(&["--models", &format!("{llm},{plain}")]);
    mon.wait_connected();
    // First tokens after 50 ms to 1 s; then a generation time of its own, 2 to 40 ms.
    let ttfbs: Vec<u64> = durations(500, 11).iter().map(|d| d * 25).collect();
    let gens = durations(500, 12);
    rt_publish(&llm, &ttfbs, &gens);
    runtime().block_on(async {
        let p = Publisher::connect().await;
        let events = (0..50).map(|_| event(&plain, 200, 4_000)).collect();
        p.publish(&plain, &batch(events, 0)).await;
    });
    let line = mon.wait_for("both models counted", Duration::from_secs(15), |v| {
        model(v, &llm).is_some_and(|m| m["requests"] == 500)
            && model(v, &plain).is_some_and(|m| m["requests"] == 50)
    });
    let m = model(&line, &llm).expect("the streaming model");
    assert_eq!(m["ttfb_requests"], 500);
    for (key, samples, q) in [
        ("ttfb_p50_ms", &ttfbs, 0.50),
        ("ttfb_p95_ms", &ttfbs, 0.95),
        ("ttfb_p99_ms", &ttfbs, 0.99),
        ("gen_p50_ms", &gens, 0.50),
        ("gen_p95_ms", &gens, 0.95),
    ] {
        let got = m[key].as_f64().unwrap_or_else(|| panic!("{key} in {m}"));
        let exact = exact_percentile_ms(samples, q);
        assert!(
            (got - exact).abs() / exact < 0.01,
            "{key}: {got} vs exact {exact}"
        );
    }
    let p = model(&line, &plain).expect("the plain model");
    for key in [
        "ttfb_mean_ms",
        "ttfb_p50_ms",
        "ttfb_p95_ms",
        "ttfb_p99_ms",
        "gen_p50_ms",
        "gen_p95_ms",
    ] {
        assert!(
            p[key].is_null(),
            "{key} of a model that never streams is null: {p}"
        );
    }
    assert_eq!(p["ttfb_requests"], 0);
}

/// A publisher whose connection died before the broker's confirm sends the message again
/// under the same `message_id` (docs/events.md), and the broker may have delivered the
/// first copy: the monitor counts the message once, and still counts every message whose
/// id is new, or that has none.
/// Model names with dots (`llama-3.1-8b`, the proxy's OpenAI mode names them so) are
/// bound by name: in a topic binding a `.` only separates words, so `events.<model>`
/// matches that model's key and not a longer one that starts with it.
#[test]
fn models_with_dots_are_watched_by_name() {
    require!(Rabbitmq);
    let base = unique("llama");
    let dotted = format!("{base}-3.1-8b");
    let hub = format!("meta-llama/{base}-3.1-8B-Instruct");
    let longer = format!("{dotted}.q4");
    let mon = Monitor::start(&["--models", &format!("{dotted},{hub}"), "--no-docker"]);
    mon.wait_connected();
    runtime().block_on(async {
        let p = Publisher::connect().await;
        for (name, n) in [(&dotted, 3), (&hub, 2), (&longer, 5)] {
            p.publish(
                name,
                &batch((0..n).map(|_| event(name, 200, 1_000)).collect(), 0),
            )
            .await;
        }
    });
    let line = mon.wait_for("both dotted models counted", Duration::from_secs(15), |v| {
        model(v, &dotted).is_some_and(|m| m["requests"] == 3)
            && model(v, &hub).is_some_and(|m| m["requests"] == 2)
    });
    assert!(
        model(&line, &longer).is_none() && line["ingest"]["events"] == 5,
        "a longer key is another model's: {}",
        line["ingest"]
    );
}

#[test]
fn a_message_sent_again_under_its_id_is_counted_once() {
    require!(Rabbitmq);
    let name = unique("resent");
    let mon = Monitor::start(&["--models", &name]);
    mon.wait_connected();
    let body = |n: usize| batch((0..n).map(|_| event(&name, 200, 2_000)).collect(), 0);
    runtime().block_on(async {
        let p = Publisher::connect().await;
        let first = body(10);
        p.publish_with_id(&name, &first, Some("00000000000000ff-1"))
            .await;
        p.publish_with_id(&name, &first, Some("00000000000000ff-1"))
            .await;
        p.publish_with_id(&name, &body(20), Some("00000000000000ff-2"))
            .await;
        p.publish_with_id(&name, &body(40), None).await;
        p.publish_with_id(&name, &body(40), None).await;
    });
    let requests = |v: &Value| model(v, &name).and_then(|m| m["requests"].as_u64());
    mon.wait_for("the messages counted", Duration::from_secs(15), |v| {
        requests(v) >= Some(110)
    });
    // Anything counted twice would show within a few lines.
    std::thread::sleep(Duration::from_secs(1));
    let line = mon.wait_for("a later line", Duration::from_secs(5), |_| true);
    let line = mon
        .wait_for_opt(Duration::from_millis(500), |_| true)
        .unwrap_or(line);
    assert_eq!(requests(&line), Some(110), "{}", line["ingest"]);
    assert_eq!(line["ingest"]["events"], 110);
}

/// A config file for `--config`, with the broker settings a test wants.
fn config_file(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(f.path(), text).expect("write the config");
    f
}

/// A small `prefetch` (a host short on memory) must not throttle the monitor: with the
/// broker holding back after 2 unacknowledged messages, acknowledging in groups of 32 left
/// every pair of messages waiting for the idle acknowledgement, which made these 2 000 take
/// close to a minute.
#[test]
fn a_small_prefetch_still_takes_a_burst_promptly() {
    require!(Rabbitmq);
    let name = unique("prefetch");
    let cfg = config_file("[amqp]\nprefetch = 2\n");
    let path = cfg.path().to_str().expect("utf-8 path");
    let mon = Monitor::start(&["--config", path, "--models", &name, "--no-docker"]);
    mon.wait_connected();
    let messages = 2_000u64;
    runtime().block_on(async {
        let p = Publisher::connect().await;
        for _ in 0..messages {
            p.publish(&name, &batch(vec![event(&name, 200, 1_000)], 0))
                .await;
        }
    });
    mon.wait_for("every message counted", Duration::from_secs(20), |v| {
        model(v, &name).is_some_and(|m| m["requests"] == messages)
    });
}

/// Publishes one streamed answer per (TTFB, generation) pair, 100 to a batch.
fn rt_publish(name: &str, ttfbs: &[u64], gens: &[u64]) {
    runtime().block_on(async {
        let p = Publisher::connect().await;
        let pairs: Vec<(u64, u64)> = ttfbs.iter().copied().zip(gens.iter().copied()).collect();
        for chunk in pairs.chunks(100) {
            let events = chunk
                .iter()
                .map(|&(ttfb, generation)| {
                    let mut e = event(name, 200, ttfb + generation);
                    e["ttfb_us"] = json!(ttfb);
                    e
                })
                .collect();
            p.publish(name, &batch(events, 0)).await;
        }
    });
}

/// The `rabbitmqctl` pid of the connection opened by process `pid`.
fn connection_of(pid: u32) -> Option<String> {
    // The JSON formatter prints pids in a form close_connection does not take; the plain one does.
    let out = Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "-q"])
        .output()
        .ok()?;
    let wanted = format!("modelmon-tui pid {pid}\"");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.contains(&wanted))
        .and_then(|l| l.split('\t').next())
        .map(str::to_owned)
}

#[test]
fn reconnects_when_the_broker_closes_the_connection() {
    require!(Rabbitmq, RabbitmqServer);
    let name = unique("reconnect");
    let mon = Monitor::start(&["--models", &name]);
    mon.wait_connected();
    let conn = (0..50)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            connection_of(mon.pid())
        })
        .expect("the monitor's connection is listed by rabbitmqctl");
    let status = Command::new("rabbitmqctl")
        .args(["close_connection", &conn, "test: broker-side close"])
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success());
    mon.wait_for("a second connection", Duration::from_secs(15), |v| {
        v["broker"]["state"] == "connected" && v["broker"]["connections"] == 2
    });
    let rt = runtime();
    rt.block_on(async {
        let p = Publisher::connect().await;
        let events = (0..50).map(|_| event(&name, 200, 1_000)).collect();
        p.publish(&name, &batch(events, 0)).await;
    });
    mon.wait_for("events after the reconnect", Duration::from_secs(10), |v| {
        model(v, &name).is_some_and(|m| m["requests"] == 50)
    });
}

#[test]
fn a_durable_named_queue_keeps_events_while_the_monitor_is_down() {
    require!(Rabbitmq);
    let name = unique("durable");
    let queue = unique("modelmon-test-queue");
    let mut first = Monitor::start(&["--models", &name, "--queue", &queue]);
    first.wait_connected();
    first.kill();
    let rt = runtime();
    rt.block_on(async {
        let p = Publisher::connect().await;
        for _ in 0..3 {
            let events = (0..10).map(|_| event(&name, 200, 2_000)).collect();
            p.publish(&name, &batch(events, 0)).await;
        }
    });
    let second = Monitor::start(&["--models", &name, "--queue", &queue]);
    let line = second.wait_for(
        "the events published while down",
        Duration::from_secs(15),
        |v| model(v, &name).is_some_and(|m| m["requests"] == 30),
    );
    assert_eq!(line["broker"]["state"], "connected");
    drop(second);
    let _ = Command::new("rabbitmqctl")
        .args(["delete_queue", &queue])
        .output();
}

#[test]
fn a_named_queue_left_by_an_older_monitor_is_named_with_what_to_do() {
    require!(Rabbitmq);
    let queue = unique("modelmon-test-classic");
    let rt = runtime();
    rt.block_on(async {
        Publisher::connect()
            .await
            .declare_classic_queue(&queue)
            .await;
    });
    let mon = Monitor::start(&["--queue", &queue, "--no-docker"]);
    let line = mon.wait_for("the broker to be down", Duration::from_secs(10), |v| {
        v["broker"]["state"] == "down"
    });
    let why = line["broker"]["error"].as_str().expect("a reason");
    assert!(
        why.contains(&format!("rabbitmqctl delete_queue {queue}")) && why.contains("quorum"),
        "{why}"
    );
    drop(mon);
    let _ = Command::new("rabbitmqctl")
        .args(["delete_queue", &queue])
        .output();
}

/// Editing `queue_max_length` for a queue that exists makes the broker refuse the
/// declare: the monitor names the key, and warns that deleting the queue loses its backlog.
#[test]
fn a_changed_queue_bound_is_named_as_the_likely_cause() {
    require!(Rabbitmq);
    let queue = unique("modelmon-test-bound");
    let before = config_file("[amqp]\nqueue_max_length = 1000\n");
    let after = config_file("[amqp]\nqueue_max_length = 2000\n");
    let path = |f: &tempfile::NamedTempFile| f.path().to_str().expect("utf-8 path").to_owned();
    let mut first = Monitor::start(&["--config", &path(&before), "--queue", &queue, "--no-docker"]);
    first.wait_connected();
    first.kill();
    let second = Monitor::start(&["--config", &path(&after), "--queue", &queue, "--no-docker"]);
    let line = second.wait_for("the broker to be down", Duration::from_secs(10), |v| {
        v["broker"]["state"] == "down"
    });
    let why = line["broker"]["error"].as_str().expect("a reason");
    assert!(why.contains("amqp.queue_max_length"), "{why}");
    assert!(
        why.contains("loses every message") && why.contains("policy"),
        "{why}"
    );
    drop(second);
    let _ = Command::new("rabbitmqctl")
        .args(["delete_queue", &queue])
        .output();
}

/// Sends SIGTERM, as a service manager stops the monitor, and waits for it to be gone.
fn terminate(mon: &mut Monitor) {
    let pid = mon.pid().to_string();
    let term = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(term.expect("kill runs").success());
    let status = format!("/proc/{pid}/status");
    let gone = std::time::Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&status).is_ok_and(|s| !s.contains("zombie")) {
        assert!(
            std::time::Instant::now() < gone,
            "the monitor did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    mon.kill();
}

/// A monitor stopped cleanly in the middle of traffic on `--queue`, then started again:
/// its history counts every published event once. Stopped mid-group, it used to leave
/// deliveries counted but unacknowledged, which the broker gave the next run again.
#[test]
fn a_queue_monitor_stopped_mid_stream_counts_each_event_once_across_the_restart() {
    require!(Rabbitmq);
    let name = unique("restart");
    let queue = unique("modelmon-test-restart");
    let state = tempfile::tempdir().expect("state dir");
    let dir = state.path().to_str().expect("utf-8 path").to_owned();
    // Only the snapshot of the clean exit: one saved mid-run would hide nothing here.
    let cfg = config_file("[history]\nsnapshot_interval = \"1h\"\n");
    let cfg = cfg.path().to_str().expect("utf-8 path").to_owned();
    let args = [
        "--queue",
        &queue,
        "--models",
        &name,
        "--no-docker",
        "--snapshot-dir",
        &dir,
        "--config",
        &cfg,
    ];
    let mut first = Monitor::start(&args);
    first.wait_connected();
    let (messages, per_message) = (400u64, 5usize);
    let traffic = {
        let name = name.clone();
        std::thread::spawn(move || {
            runtime().block_on(async {
                let p = Publisher::connect().await;
                for _ in 0..messages {
                    let events = (0..per_message).map(|_| event(&name, 200, 1_000)).collect();
                    p.publish(&name, &batch(events, 0)).await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            });
        })
    };
    first.wait_for(
        "part of the traffic counted",
        Duration::from_secs(20),
        |v| v["ingest"]["events"].as_u64() > Some(300),
    );
    terminate(&mut first);
    traffic.join().expect("traffic");

    let mut second = Monitor::start(&args);
    second.wait_connected();
    // The queue is drained once the count stops growing.
    let mut last = None;
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let line = second.wait_for("a line", Duration::from_secs(10), |_| true);
        let n = line["ingest"]["events"].as_u64();
        if n == last {
            break;
        }
        last = n;
    }
    terminate(&mut second);
    let out = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .args(["--snapshot-dir", &dir, "report", "--json", "--range", "24h"])
        .output()
        .expect("report runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("report --json is JSON");
    let counted = model(&report, &name).and_then(|m| m["requests"].as_u64());
    assert_eq!(counted, Some(messages * per_message as u64), "{report}");
    let _ = Command::new("rabbitmqctl")
        .args(["delete_queue", &queue])
        .output();
}

/// A cluster's nodes as one setting: a node that does not answer is passed over, and
/// the one in use is shown with its password hidden.
#[test]
fn the_first_node_of_a_list_that_answers_is_used_and_shown() {
    require!(Rabbitmq);
    let name = unique("nodes");
    let nodes = format!(
        "amqp://guest:guest@127.0.0.1:1/%2f,{}",
        crate::support::AMQP.replace("amqp://", "amqp://guest:guest@")
    );
    let mon = Monitor::start(&["--amqp", &nodes, "--models", &name, "--no-docker"]);
    let line = mon.wait_connected();
    assert_eq!(
        line["broker"]["node"],
        "amqp://guest:***@127.0.0.1:5672/%2f"
    );
    let rt = runtime();
    rt.block_on(async {
        let p = Publisher::connect().await;
        let events = (0..20).map(|_| event(&name, 200, 1_000)).collect();
        p.publish(&name, &batch(events, 0)).await;
    });
    mon.wait_for(
        "the events, through the second node",
        Duration::from_secs(10),
        |v| model(v, &name).is_some_and(|m| m["requests"] == 20),
    );
}

#[test]
fn a_dead_broker_is_reported_and_the_monitor_keeps_running() {
    let mon = Monitor::start(&["--amqp", "amqp://127.0.0.1:1/%2f"]);
    let line = mon.wait_for("the broker to be down", Duration::from_secs(10), |v| {
        v["broker"]["state"] == "down"
    });
    let why = line["broker"]["error"].as_str().expect("a reason");
    assert!(
        why.contains("127.0.0.1:1") && why.contains("retrying"),
        "{why}"
    );
    // Still printing lines afterwards: the monitor did not exit.
    mon.wait_for("another line", Duration::from_secs(5), |_| true);
}

#[test]
fn a_frozen_broker_is_shown_down_within_seconds_with_the_reason() {
    require!(RabbitmqServer);
    let node = crate::support::private_node::PrivateNode::start();
    let mon = Monitor::start(&["--amqp", &node.url, "--no-docker"]);
    mon.wait_connected();
    let t = std::time::Instant::now();
    node.freeze();
    let down = mon.wait_for("the broker shown down", Duration::from_secs(60), |v| {
        v["broker"]["state"] == "down"
    });
    let after = t.elapsed();
    eprintln!(
        "frozen broker shown down after {after:?}: {}",
        down["broker"]["error"]
    );
    let err = down["broker"]["error"].as_str().unwrap_or_default();
    assert!(
        err.contains("heartbeat") || err.contains("did not finish the connection"),
        "the reason names what happened: {err}"
    );
    node.thaw();
    mon.wait_for("connected again", Duration::from_secs(60), |v| {
        v["broker"]["state"] == "connected" && v["broker"]["connections"].as_u64() >= Some(2)
    });
}
