//! `/metrics` scraped by a real Prometheus (Debian's `prometheus`, installed by
//! `./scripts/services.sh prometheus`), started by the test on a free loopback port with
//! a one-second scrape: after a minute of steady traffic through the real broker, the
//! PromQL a Grafana panel would use agrees with what `--batch` printed for the same
//! minute, per model and per route, and the series split by method and version.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Monitor, Publisher, batch, event, free_port, get, model, runtime, unique};

const BIN: &str = "prometheus";

/// A real Prometheus on 127.0.0.1 scraping `target` every second, killed when the
/// test ends.
struct Prometheus {
    child: Child,
    addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: modelmon\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("write the config");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(BIN)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("Prometheus starts");
        let p = Self { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&p.addr, "/-/ready").is_none_or(|(status, _)| status != 200) {
            assert!(
                Instant::now() < deadline,
                "Prometheus not ready on {}: {}",
                p.addr,
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The scrape target's health as Prometheus reports it, with its last error.
    fn target(&self) -> Value {
        let (_, body) = get(&self.addr, "/api/v1/targets").unwrap_or_default();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]["activeTargets"][0].clone()
    }

    /// An instant query at `at_s` (Unix seconds): each result's labels and value.
    fn query(&self, promql: &str, at_s: f64) -> Vec<(Value, f64)> {
        let path = format!("/api/v1/query?query={}&time={at_s:.3}", encode(promql));
        let (status, body) = get(&self.addr, &path).expect("Prometheus answers");
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(status, 200, "{promql}: {v}");
        v["data"]["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|r| {
                let value = r["value"][1]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(f64::NAN);
                (r["metric"].clone(), value)
            })
            .collect()
    }

    /// The one value of `promql` whose `label` is `want`.
    fn value(&self, promql: &str, at_s: f64, label: &str, want: &str) -> f64 {
        let all = self.query(promql, at_s);
        all.iter().find(|(m, _)| m[label] == want).map_or_else(
            || panic!("{promql}: no {label}={want} in {all:?}"),
            |(_, v)| *v,
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bucket bounds (seconds) around `v`: the resolution a histogram quantile has.
fn bucket_around(v: f64) -> (f64, f64) {
    let bounds = modelmon::store::DEFAULT_BUCKETS_S;
    let upper = bounds
        .iter()
        .position(|&b| v <= b)
        .expect("inside the buckets");
    (
        if upper == 0 { 0.0 } else { bounds[upper - 1] },
        bounds[upper],
    )
}

fn near(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= want.abs() * rel
}

#[test]
fn prometheus_queries_over_the_metrics_agree_with_batch() {
    require!(Rabbitmq, Prometheus);
    // Two models with latencies well inside different buckets: the chat model's p95 near
    // 43 ms in (25, 50] ms, the ranker's near 470 ms in (250, 500] ms.
    let chat = unique("prom-chat");
    let ranker = unique("prom-ranker");
    let port = free_port();
    let serve = format!("127.0.0.1:{port}");
    let models = format!("{chat},{ranker}");
    let monitor = Monitor::start_every(
        "1s",
        &["--serve", &serve, "--models", &models, "--no-docker"],
    );
    monitor.wait_connected();
    let prometheus = Prometheus::start(&serve);

    // 65 s of steady traffic, a batch every 100 ms: the chat model 40 req/s (3 of 4 on
    // POST /v1/chat, 1 on GET /health, every 20th a 503), the ranker 20 req/s split
    // between two versions.
    let traffic = Duration::from_secs(65);
    runtime().block_on(async {
        let p = Publisher::connect().await;
        let start = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut i: u64 = 0;
        while start.elapsed() < traffic {
            tick.tick().await;
            let mut chat_events = Vec::new();
            for _ in 0..4 {
                i += 1;
                let status = if i % 20 == 0 { 503 } else { 200 };
                let mut e = event(&chat, status, 26_000 + (i * 7_919) % 18_000);
                if i % 4 == 0 {
                    e["method"] = json!("GET");
                    e["route"] = json!("/health");
                } else {
                    e["route"] = json!("/v1/chat");
                }
                chat_events.push(e);
            }
            p.publish(&chat, &batch(chat_events, 0)).await;
            let ranker_events = (0..2)
                .map(|k| {
                    i += 1;
                    let mut e = event(&ranker, 200, 300_000 + (i * 7_919) % 180_000);
                    e["version"] = json!(if k == 0 { "v1" } else { "v2" });
                    e
                })
                .collect();
            p.publish(&ranker, &batch(ranker_events, 0)).await;
        }
    });
    // Two more scrapes after the last event, then the figures of one instant: the
    // latest --batch line and PromQL at its time, both over the minute before it.
    std::thread::sleep(Duration::from_millis(2_500));
    // Lines queue up while the test publishes: skip to one printed from now on.
    let now_ms = modelmon::clock::now_us() / 1000;
    let line = monitor.wait_for("a line after the traffic", Duration::from_secs(5), |v| {
        v["ts_ms"].as_i64().is_some_and(|t| t >= now_ms)
    });
    let at_s = line["ts_ms"].as_f64().expect("ts_ms") / 1e3;
    assert_eq!(
        prometheus.target()["health"],
        "up",
        "the scrape works: {}",
        prometheus.target()
    );

    let rate = "sum by (model) (rate(modelmon_requests_total[1m]))";
    let p95 = "histogram_quantile(0.95, sum by (model, le) \
               (rate(modelmon_request_duration_seconds_bucket[1m])))";
    let error_ratio = "sum by (model) (rate(modelmon_errors_total[1m])) \
                       / sum by (model) (rate(modelmon_requests_total[1m]))";
    let mut report = Vec::new();
    for name in [&chat, &ranker] {
        let m = model(&line, name).expect("the model in --batch");
        let qps = m["qps"].as_f64().expect("qps");
        let batch_p95_s = m["p95_ms"].as_f64().expect("p95") / 1e3;
        let prom_qps = prometheus.value(rate, at_s, "model", name);
        let prom_p95 = prometheus.value(p95, at_s, "model", name);
        report.push(format!(
            "{name}: qps batch {qps:.2} promql {prom_qps:.2}; p95 batch {batch_p95_s:.4}s promql {prom_p95:.4}s"
        ));
        // The window's edges are whole seconds and the range's are scrapes, each up to
        // a second apart from the line's instant: a few percent of a minute.
        assert!(
            near(prom_qps, qps, 0.06),
            "{name}: rate() {prom_qps} vs --batch qps {qps}"
        );
        let (lo, hi) = bucket_around(batch_p95_s);
        assert!(
            (lo..=hi).contains(&prom_p95),
            "{name}: histogram_quantile {prom_p95} s outside the bucket ({lo}, {hi}] of --batch p95 {batch_p95_s} s"
        );
        let batch_errors = m["error_rate"].as_f64().unwrap_or(0.0);
        let prom_errors = prometheus.value(error_ratio, at_s, "model", name);
        report.push(format!(
            "{name}: error ratio batch {batch_errors:.4} promql {prom_errors:.4}"
        ));
        assert!(
            (prom_errors - batch_errors).abs() < 0.01,
            "{name}: error ratio {prom_errors} vs --batch {batch_errors}"
        );
    }

    // Grafana can split by route and method: the chat model's three POSTs to /v1/chat
    // for every GET of /health.
    let by_route = prometheus.query(
        &format!("sum by (route, method) (modelmon_requests_total{{model=\"{chat}\"}})"),
        at_s,
    );
    let count = |route: &str, method: &str| {
        by_route
            .iter()
            .find(|(m, _)| m["route"] == route && m["method"] == method)
            .map_or_else(
                || panic!("no {method} {route} in {by_route:?}"),
                |(_, v)| *v,
            )
    };
    let (posts, gets) = (count("/v1/chat", "POST"), count("/health", "GET"));
    assert!(near(posts, 3.0 * gets, 0.01), "{by_route:?}");
    // And by version: each version's rate agrees with the versions --batch shows.
    let by_version =
        format!("sum by (version) (rate(modelmon_requests_total{{model=\"{ranker}\"}}[1m]))");
    let versions = model(&line, &ranker).expect("ranker")["versions"]
        .as_array()
        .expect("versions")
        .clone();
    let mut names: Vec<&str> = versions
        .iter()
        .filter_map(|v| v["version"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["v1", "v2"], "{versions:?}");
    for v in &versions {
        let name = v["version"].as_str().expect("version");
        let got = prometheus.value(&by_version, at_s, "version", name);
        let want = v["qps"].as_f64().expect("qps");
        report.push(format!(
            "{ranker} {name}: qps batch {want:.2} promql {got:.2}"
        ));
        // A version's window has 10-s slots: its edges are coarser than the model's.
        assert!(near(got, want, 0.1), "{name}: rate {got} vs --batch {want}");
    }
    eprintln!("{}", report.join("\n"));
}
