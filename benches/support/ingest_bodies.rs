//! The bodies the ingest benchmarks decode: 200 batches of 100 realistic events.
//! Shared by `benches/ingest.rs` and `examples/ingest_cost.rs`.

use modelmon_contract::{Batch, Event, Source, SourceKind};

/// "Now" of every decode, Unix µs.
pub const NOW: i64 = 1_800_000_000_000_000;
pub const EVENTS_PER_BATCH: usize = 100;

/// 200 batches of 100 realistic events: 10 models, 8 routes and 4 instances each. A
/// batch comes from one publishing process, so its events share an instance (as every
/// interceptor sends them); routes vary event by event. Every event carries a version,
/// sizes, a `ttfb_us` and four `ml` measures: the costliest case for the store (a
/// streamed LLM answer with its token counts).
pub fn bodies() -> Vec<(Vec<u8>, String)> {
    bodies_with(true, 4)
}

/// The `ml` keys an event may carry, in the order it carries them.
const ML_KEYS: [&str; 4] = ["tokens_in", "tokens_out", "queue_us", "batch_size"];

/// [`bodies`], with or without `ttfb_us`, and with the first `ml` of [`ML_KEYS`].
pub fn bodies_with(ttfb: bool, ml: usize) -> Vec<(Vec<u8>, String)> {
    let mut x = 42u64;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        x >> 33
    };
    (0..200)
        .map(|b| {
            let model = format!("model-{:02}", b % 10);
            let events = (0..EVENTS_PER_BATCH)
                .map(|i| {
                    let r = next();
                    let duration_us = 800 + r % 40_000;
                    // One request ends every 9 ms, in order (a publisher sends each one
                    // when it ends), and each starts and ends in the same second: the
                    // count is the same whether the store places a request by its start
                    // or by its end (as it does).
                    let end = NOW - 1_950_000 + (i as i64) * 9_000;
                    Event {
                        ts: end - duration_us as i64,
                        model: model.clone().into(),
                        version: Some("2026.11.1".into()),
                        instance: format!("{model}-7d9f8c-{}", b / 10 % 4).into(),
                        method: "POST".into(),
                        route: format!("/v1/models/{{name}}/route{}", r % 8).into(),
                        status: if r % 97 == 0 { 503 } else { 200 },
                        duration_us,
                        ttfb_us: ttfb.then_some(duration_us / 2),
                        req_bytes: Some(512 + r % 1000),
                        resp_bytes: Some(128 + r % 300),
                        error: None,
                        ml: ML_KEYS
                            .iter()
                            .take(ml)
                            .enumerate()
                            .map(|(k, key)| ((*key).into(), ((r >> (4 * k)) % 500) as f64))
                            .collect(),
                    }
                })
                .collect();
            let batch = Batch {
                v: 1,
                source: Source {
                    kind: SourceKind::Asgi,
                    instance: "bench".into(),
                    pid: 1,
                },
                dropped: 0,
                events,
            };
            (batch.to_json(), model)
        })
        .collect()
}
