//! Key-to-screen delay of the real `modelmon-tui` in tmux, with and without a flood of
//! events through RabbitMQ (issue 5 goal: at most 100 ms under 200 000 events/s).
//!
//! Each sample sends `?` (or a key that closes the help) to the pane and polls
//! `capture-pane` until the screen shows the answer; the delay includes tmux's own
//! round trips (a few ms), the same in both phases. The baseline is the same
//! measurement with no ingest, in the same run.
//!
//!   cargo bench --bench tui_keys [-- EVENTS_PER_S [SAMPLES]]
//!
//! Needs RabbitMQ on 127.0.0.1:5672 and tmux (scripts/services.sh provides both).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::BasicPublishOptions;
use lapin::{BasicProperties, Connection, ConnectionProperties};

const AMQP: &str = "amqp://127.0.0.1:5672/%2f";
/// Events per message: under the contract's 1 MiB body limit with these events.
const PER_BATCH: usize = 4000;
const MODELS: usize = 20;

struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "b"])
    }

    fn wait(&self, limit: Duration, pred: impl Fn(&str) -> bool) -> Option<Duration> {
        let t0 = Instant::now();
        while t0.elapsed() < limit {
            if pred(&self.screen()) {
                return Some(t0.elapsed());
            }
        }
        None
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .output();
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(0))
}

/// One batch body of `model`, its events stamped around `ts`.
fn body(model: &str, ts: i64) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..PER_BATCH)
        .map(|i| {
            serde_json::json!({"ts": ts - (i as i64 % 1000) * 100, "model": model,
                "instance": "bench-1", "method": "POST", "route": "/v1/predict",
                "status": if i % 97 == 0 { 503 } else { 200 },
                "duration_us": 1000 + (i * 7919) % 40_000})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"v": 1,
        "source": {"kind": "proxy", "instance": "bench", "pid": 1},
        "dropped": 0, "events": events}))
    .expect("json")
}

/// Publishes `rate` events/s until `stop`, counting what it sent.
async fn flood(rate: u64, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let conn = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672");
    let ch = conn.create_channel().await.expect("channel");
    modelmon_publisher::declare_exchange(&ch)
        .await
        .expect("exchange");
    let batches_per_s = (rate / PER_BATCH as u64).max(1);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / batches_per_s as u32);
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    let mut stamped = 0i64;
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        // Bodies are re-stamped once a second, so events stay inside the live window.
        let sec = now_us() / 1_000_000;
        if sec != stamped {
            stamped = sec;
            bodies = (0..MODELS)
                .map(|m| body(&format!("bench-{m:02}"), now_us()))
                .collect();
        }
        let m = n % MODELS;
        n += 1;
        let key = format!("events.bench-{m:02}");
        ch.basic_publish(
            "modelmon".into(),
            key.as_str().into(),
            BasicPublishOptions::default(),
            &bodies[m],
            BasicProperties::default(),
        )
        .await
        .expect("publish");
        sent.fetch_add(PER_BATCH as u64, Ordering::Relaxed);
    }
}

/// Delays of `samples` key presses, each answered by the help opening or closing.
fn measure(t: &Tmux, samples: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let opening = i % 2 == 0;
        t.run(&["send-keys", "-t", "b", if opening { "?" } else { "x" }]);
        let d = t
            .wait(Duration::from_secs(5), |s| s.contains(" keys ") == opening)
            .expect("the screen answers the key within 5 s");
        out.push(d.as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(50));
    }
    out.sort_by(f64::total_cmp);
    out
}

fn report(label: &str, ms: &[f64]) -> f64 {
    let q = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{label:<28} median {:6.1} ms   p95 {:6.1} ms   max {:6.1} ms   ({} keys)",
        q(0.5),
        q(0.95),
        q(1.0),
        ms.len()
    );
    q(0.5)
}

/// Accepted events/s as the header shows it (`ingest 199.8k/s`).
fn ingest_rate(screen: &str) -> f64 {
    let Some(i) = screen.find("ingest ") else {
        return 0.0;
    };
    let word = screen[i + 7..].split('/').next().unwrap_or("");
    let (num, scale) = word.strip_suffix('k').map_or((word, 1.0), |n| (n, 1000.0));
    num.trim().parse::<f64>().unwrap_or(0.0) * scale
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rate: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let samples: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let bin = env!("CARGO_BIN_EXE_modelmon-tui");
    let t = Tmux(format!("modelmon-keys-{}", std::process::id()));
    let cmd = format!(
        "env -i PATH=/usr/bin:/bin TERM=tmux-256color LANG=C.UTF-8 HOME=/tmp \
         XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME=/tmp/modelmon-keys-state \
         {bin} --amqp {AMQP} --models {}",
        (0..MODELS)
            .map(|m| format!("bench-{m:02}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    t.run(&[
        "new-session",
        "-d",
        "-s",
        "b",
        "-x",
        "160",
        "-y",
        "45",
        &cmd,
    ]);
    t.run(&["set-option", "-s", "escape-time", "10"]);
    t.wait(Duration::from_secs(20), |s| s.contains("broker connected"))
        .expect("the monitor connects to RabbitMQ");

    let idle = measure(&t, samples);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    rt.spawn(flood(rate, Arc::clone(&stop), Arc::clone(&sent)));
    // Let the flood reach its rate, as the monitor's header reports it.
    let _ = t.wait(Duration::from_secs(20), |s| {
        ingest_rate(s) >= rate as f64 * 0.8
    });
    let t0 = Instant::now();
    let sent0 = sent.load(Ordering::Relaxed);
    let loaded = measure(&t, samples);
    let offered = (sent.load(Ordering::Relaxed) - sent0) as f64 / t0.elapsed().as_secs_f64();
    let last = t.screen();
    let shown = ingest_rate(&last);
    stop.store(true, Ordering::Relaxed);

    println!("key-to-screen delay of modelmon-tui in tmux (160x45, --fps 4)");
    let base = report("baseline: no ingest", &idle);
    let load = report(&format!("under {offered:.0} events/s"), &loaded);
    println!("header ingest rate at the end: {shown:.0} events/s");
    for l in last.lines().take(2) {
        println!("  | {l}");
    }
    println!("median ratio loaded/baseline: {:.2}", load / base);
}
