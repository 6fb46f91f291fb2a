//! Load and latency figures through the real broker (issue 2), measured against the
//! release binary of `modelmon-tui` run as a user runs it:
//!
//! ```sh
//! cargo build --release && cargo run --release --example loadgen -- throughput 60
//! cargo run --release --example loadgen -- latency 60
//! ```
//!
//! `throughput SECS [plain] [stream]`: publishes batches of 100 events (or
//! `EVENTS_PER_MESSAGE`) as fast as the broker takes them and reports the rate the monitor counted, and its RSS every 10 s.
//! Each event is a streamed answer with a `ttfb_us` and four `ml` measures (issue 15's
//! costlier case); `plain` sends neither. `stream`: the monitor reads a RabbitMQ stream
//! (`--stream`, on the broker's disk) instead of its own in-memory queue, and the
//! publishers wait for the broker's confirm after each 100 messages, as real publishers
//! do; the stream is deleted at the end.
//! `latency SECS`: publishes one event at a random instant, twice a second, and reports
//! the time until `--batch` (1 s refresh) shows it: p50, p99, max.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use modelmon_contract::{Batch, Event, Source, SourceKind};

const AMQP: &str = "amqp://127.0.0.1:5672/%2f";

fn events(model: &str, n: usize, ts: i64, rich: bool) -> Vec<u8> {
    let events = (0..n)
        .map(|i| Event {
            ts,
            model: model.to_owned().into(),
            version: Some("1.0.0".into()),
            instance: format!("{model}-{}", i % 4).into(),
            method: "POST".into(),
            route: format!("/v1/route{}", i % 8).into(),
            status: if i % 50 == 0 { 500 } else { 200 },
            duration_us: 500 + (i as u64 * 7919) % 40_000,
            // The first byte halfway through (always within the duration).
            ttfb_us: rich.then_some(250 + (i as u64 * 7919) % 40_000 / 2),
            req_bytes: Some(300),
            resp_bytes: Some(120),
            error: None,
            ml: if rich {
                ["tokens_in", "tokens_out", "queue_us", "batch_size"]
                    .iter()
                    .enumerate()
                    .map(|(k, key)| ((*key).into(), ((i * 31 + k * 7) % 500) as f64))
                    .collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    let b = Batch {
        v: 1,
        source: Source {
            kind: SourceKind::Proxy,
            instance: "loadgen".into(),
            pid: std::process::id(),
        },
        dropped: 0,
        events,
    };
    b.to_json()
}

fn monitor(
    args: &[&str],
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<(Instant, serde_json::Value)>,
) {
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/modelmon-tui");
    let mut child = Command::new(bin)
        .args(["--batch", "--amqp", AMQP])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("build the release binary first: cargo build --release");
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            if tx.send((Instant::now(), v)).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

async fn channel() -> (Connection, lapin::Channel) {
    let conn = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    modelmon_publisher::declare_exchange(&ch)
        .await
        .expect("exchange");
    (conn, ch)
}

fn wait_connected(rx: &std::sync::mpsc::Receiver<(Instant, serde_json::Value)>) {
    while let Ok((_, v)) = rx.recv_timeout(Duration::from_secs(20)) {
        if v["broker"]["state"] == "connected" {
            return;
        }
    }
    panic!("monitor never connected");
}

async fn throughput(secs: u64, rich: bool, stream: bool) {
    let model = format!("load-{}", std::process::id());
    let stream_name = format!("modelmon-loadgen-{}", std::process::id());
    let state = std::env::temp_dir().join(&stream_name);
    let mut args = vec!["--models", &model, "--interval", "1s"];
    let state_arg = state.display().to_string();
    if stream {
        // A history of its own, so the stream is read from its start.
        args.extend(["--stream", &stream_name, "--snapshot-dir", &state_arg]);
    }
    let (mut child, rx) = monitor(&args);
    wait_connected(&rx);
    // Events per message: 100 by default; the interceptors send up to 1000 at a time
    // when traffic is heavy (`EVENTS_PER_MESSAGE=1000`).
    let per_message: u64 = std::env::var("EVENTS_PER_MESSAGE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100);
    let body = events(
        &model,
        per_message as usize,
        modelmon::clock::now_us(),
        rich,
    );
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut publishers = Vec::new();
    for _ in 0..2 {
        let body = body.clone();
        let model = model.clone();
        publishers.push(tokio::spawn(async move {
            let (_conn, ch) = channel().await;
            // Into a stream the broker writes every message to disk: unconfirmed publishing
            // floods it and starves its readers. Real publishers wait for confirms (the
            // interceptors keep a batch in flight), and so does this one there.
            if stream {
                ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
                    .await
                    .expect("confirms");
            }
            let key = format!("events.{model}");
            let mut sent = 0u64;
            while Instant::now() < stop {
                let mut last = None;
                for _ in 0..100 {
                    last = ch
                        .basic_publish(
                            "modelmon".into(),
                            key.as_str().into(),
                            BasicPublishOptions::default(),
                            &body,
                            BasicProperties::default(),
                        )
                        .await
                        .ok();
                    sent += per_message;
                }
                if let (true, Some(confirm)) = (stream, last) {
                    let _ = confirm.await;
                }
            }
            sent
        }));
    }
    let pid = child.id();
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut first: Option<(Instant, u64)> = None;
    let mut last = (started, 0u64);
    while Instant::now() < stop + Duration::from_secs(2) {
        let Ok((at, v)) = rx.recv_timeout(Duration::from_secs(3)) else {
            break;
        };
        let n = v["ingest"]["events"].as_u64().unwrap_or(0);
        if n > 0 && first.is_none() {
            first = Some((at, n));
        }
        last = (at, n);
        let t = at.duration_since(started).as_secs();
        if t % 10 == 0 && samples.last().is_none_or(|s: &(u64, u64)| s.0 != t) {
            samples.push((t, rss_kib(pid)));
        }
    }
    let mut sent = 0;
    for p in publishers {
        sent += p.await.unwrap_or(0);
    }
    let (t0, n0) = first.unwrap_or((started, 0));
    let rate = (last.1 - n0) as f64 / last.0.duration_since(t0).as_secs_f64().max(1e-9);
    println!(
        "published {sent} events in {secs} s ({:.0}/s offered)",
        sent as f64 / secs as f64
    );
    println!(
        "monitor counted {} events, sustained {rate:.0} events/s",
        last.1
    );
    for (t, kib) in &samples {
        println!("  t={t:>3}s  RSS {:.1} MiB", *kib as f64 / 1024.0);
    }
    let _ = child.kill();
    if stream {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_queue", &stream_name])
            .output();
        let _ = std::fs::remove_dir_all(&state);
    }
}

async fn latency(secs: u64) {
    let model = format!("lat-{}", std::process::id());
    let (mut child, rx) = monitor(&["--models", &model, "--interval", "1s"]);
    wait_connected(&rx);
    let (_conn, ch) = channel().await;
    let key = format!("events.{model}");
    let mut delays = Vec::new();
    let mut seen = 0u64;
    let stop = Instant::now() + Duration::from_secs(secs);
    let mut x = 12345u64;
    while Instant::now() < stop {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(100 + (x >> 33) % 900)).await;
        let body = events(&model, 1, modelmon::clock::now_us(), false);
        let sent_at = Instant::now();
        ch.basic_publish(
            "modelmon".into(),
            key.as_str().into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .expect("publish");
        loop {
            let Ok((at, v)) = rx.recv_timeout(Duration::from_secs(5)) else {
                panic!("no line")
            };
            let n = v["ingest"]["events"].as_u64().unwrap_or(0);
            if n > seen {
                seen = n;
                delays.push(at.duration_since(sent_at));
                break;
            }
        }
    }
    delays.sort();
    let pick =
        |q: f64| delays[((q * delays.len() as f64).ceil() as usize).clamp(1, delays.len()) - 1];
    println!(
        "{} events: publish -> visible in --batch (1 s refresh): p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        pick(0.5),
        pick(0.99),
        delays.last().copied().unwrap_or_default()
    );
    let _ = child.kill();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    match args.get(1).map(String::as_str) {
        Some("throughput") => {
            let has = |word: &str| args.iter().skip(3).any(|a| a == word);
            throughput(secs, !has("plain"), has("stream")).await;
        }
        Some("latency") => latency(secs).await,
        _ => eprintln!("usage: loadgen throughput [SECS [plain] [stream]] | latency [SECS]"),
    }
}
