//! Memory of the live store at its cardinality caps (issue 2): 256 models × 64 routes,
//! every route busy every second of the window, realistic latency spreads. A view is
//! built every second, as the monitor does; `SECS` (default 70) sets how long it runs.
//! The heap figure splits the live windows from the 24-hour rings they feed.
//!
//! ```sh
//! cargo run --release --example memory            # 64 routes and 64 instances per model
//! INSTANCES=1 cargo run --release --example memory  # 64 routes, one instance each
//! TTFB=1 cargo run --release --example memory       # every event a streamed answer
//! ```
//!
//! Without `TTFB=1` no event carries `ttfb_us`, as for models that never stream.

use modelmon::store::{BrokerView, Store, StoreConfig};
use modelmon_contract::{Batch, Event, Source, SourceKind, decode_batch};

fn rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn env_or(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (routes, instances) = (env_or("ROUTES", 64), env_or("INSTANCES", 64));
    let before = rss_mib();
    let mut store = Store::new(StoreConfig::default());
    let t0 = modelmon::clock::now_us() / 1_000_000 * 1_000_000;
    let mut x = 7u64;
    let mut events = 0u64;
    let secs = env_or("SECS", 70) as i64;
    let ttfb = env_or("TTFB", 0) != 0;
    for sec in 0..secs {
        let now = t0 + sec * 1_000_000;
        for m in 0..256 {
            let model = format!("model-{m:03}");
            // Two events per route per second: 256 × 64 × 2 = 32 768 events/s.
            let evs: Vec<Event> = (0..128)
                .map(|i| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                    let duration_us = (3000.0 * (2.0 * u).exp()) as u64;
                    Event {
                        ts: now - 1000,
                        model: model.clone().into(),
                        version: None,
                        instance: format!("{model}-{}", i % instances).into(),
                        method: "POST".into(),
                        route: format!("/v1/models/{model}/route{}", i % routes).into(),
                        status: 200,
                        duration_us,
                        ttfb_us: ttfb.then_some(duration_us / 3),
                        req_bytes: None,
                        resp_bytes: None,
                        error: None,
                        ml: Vec::new(),
                    }
                })
                .collect();
            let body = Batch {
                v: 1,
                source: Source {
                    kind: SourceKind::Demo,
                    instance: "m".into(),
                    pid: 1,
                },
                dropped: 0,
                events: evs,
            }
            .to_json();
            let d = decode_batch(&body, Some(&model), now).expect("valid");
            events += d.events.len() as u64;
            store.apply(&d, now);
        }
        let v = store.view(now, BrokerView::default());
        if sec % 10 == 9 {
            let (live, rings) = store.heap_bytes();
            println!(
                "t={:>3}s models {} routes/model {} events {events}: heap ~{:.1} MiB \
                 (live windows {:.1}, 24-h rings {:.1}), RSS {:.1} MiB (baseline {before:.1})",
                sec + 1,
                v.models.len(),
                v.models[0].routes.len(),
                (live + rings) as f64 / 1_048_576.0,
                live as f64 / 1_048_576.0,
                rings as f64 / 1_048_576.0,
                rss_mib()
            );
        }
    }
}
