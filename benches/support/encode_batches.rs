//! The batches the encode benchmarks write: 200 events of one model from one process,
//! as a publisher hands them to `Batch::to_json`. Shared by `benches/encode.rs` and
//! `examples/encode_cost.rs`.

use modelmon_contract::{Batch, Event, Source, SourceKind};

pub const EVENTS_PER_BATCH: usize = 200;

const NOW: i64 = 1_800_000_000_000_000;
const ROUTES: [&str; 8] = [
    "/v1/models/{name}/predict",
    "/v1/models/{name}/explain",
    "/v1/models/{name}",
    "/v2/models/{name}/infer",
    "/v2/models/{name}/ready",
    "/health",
    "/metrics",
    "/v1/chat/completions",
];

/// A process's events: its routes vary event by event, its container does not. With
/// `measures`, what the Python middleware sends for an app that records them (every
/// field, an `error` on failures, fractional `inference_us` and a `batch_size`); without,
/// what modelmon-proxy sends (no `ml`).
pub fn batch(measures: bool) -> Batch<'static> {
    let mut x = 7u64;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    let events = (0..EVENTS_PER_BATCH)
        .map(|i| {
            let r = next();
            let duration_us = 800 + r % 40_000;
            let failed = r % 97 == 0;
            let route = ROUTES[(r % 8) as usize];
            Event {
                ts: NOW - 2_000_000 + (i as i64) * 9_973,
                model: "sentiment-bert".into(),
                version: Some("2026.11.1".into()),
                instance: "7f3c9a2b1d0e".into(),
                method: if r % 5 == 0 { "GET" } else { "POST" }.into(),
                route: route.into(),
                status: if failed { 503 } else { 200 },
                duration_us,
                ttfb_us: Some(duration_us * 9 / 10),
                req_bytes: Some(512 + r % 1000),
                resp_bytes: Some(128 + r % 300),
                error: failed.then(|| "TimeoutError".into()),
                ml: if measures {
                    vec![
                        (
                            "inference_us".into(),
                            (duration_us * 700 + r % 1000) as f64 / 1000.0,
                        ),
                        ("batch_size".into(), (1 + r % 8) as f64),
                    ]
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    Batch {
        v: 1,
        source: Source {
            kind: if measures {
                SourceKind::Asgi
            } else {
                SourceKind::Proxy
            },
            instance: "7f3c9a2b1d0e:4242".into(),
            pid: 4242,
        },
        dropped: 0,
        events,
    }
}
