//! Decode + validate + aggregate, in process, on one core.
//!
//! Goal (issue 2): at least 3 million events/s. Baseline in the same run: parsing the
//! same bodies into a generic `serde_json::Value`, the least any JSON consumer must do.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use modelmon::store::{BrokerView, Store, StoreConfig};
use modelmon_contract::{Batch, Event, Source, SourceKind, decode_batch};

const NOW: i64 = 1_800_000_000_000_000;
const EVENTS_PER_BATCH: usize = 100;

/// 200 batches of 100 realistic events: 10 models, 8 routes and 4 instances each.
fn bodies() -> Vec<(Vec<u8>, String)> {
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
                    Event {
                        ts: NOW - 2_000_000 + (i as i64) * 10_000,
                        model: model.clone().into(),
                        version: Some("2026.11.1".into()),
                        instance: format!("{model}-7d9f8c-{}", r % 4).into(),
                        method: "POST".into(),
                        route: format!("/v1/models/{{name}}/route{}", r % 8).into(),
                        status: if r % 97 == 0 { 503 } else { 200 },
                        duration_us,
                        ttfb_us: Some(duration_us / 2),
                        req_bytes: Some(512 + r % 1000),
                        resp_bytes: Some(128 + r % 300),
                        error: None,
                        ml: Vec::new(),
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
            (batch.to_json().expect("finite"), model)
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let bodies = bodies();
    let events = (bodies.len() * EVENTS_PER_BATCH) as u64;
    let bytes: usize = bodies.iter().map(|b| b.0.len()).sum();
    eprintln!(
        "{} batches, {events} events, {:.0} bytes/event",
        bodies.len(),
        bytes as f64 / events as f64
    );
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(events));
    g.bench_function("baseline: serde_json::Value parse", |b| {
        b.iter(|| {
            for (body, _) in &bodies {
                black_box(serde_json::from_slice::<serde_json::Value>(body).expect("json"));
            }
        });
    });
    g.bench_function("decode + validate", |b| {
        b.iter(|| {
            for (body, model) in &bodies {
                black_box(decode_batch(body, Some(model), NOW).expect("valid"));
            }
        });
    });
    let mut store = Store::new(StoreConfig::default());
    g.bench_function("decode + validate + aggregate", |b| {
        b.iter(|| {
            for (body, model) in &bodies {
                let d = decode_batch(body, Some(model), NOW).expect("valid");
                store.apply(&d, NOW);
            }
        });
    });
    g.finish();
    black_box(store.view(NOW, BrokerView::default()));
}

fn view(c: &mut Criterion) {
    // Building the view every refresh: 100 models with full windows.
    let bodies = bodies();
    let mut store = Store::new(StoreConfig::default());
    for sec in 0..60 {
        for (body, model) in &bodies {
            let now = NOW + sec * 1_000_000;
            let mut d = decode_batch(body, Some(model), NOW).expect("valid");
            for e in &mut d.events {
                e.ts += sec * 1_000_000;
            }
            store.apply(&d, now);
        }
    }
    let now = NOW + 59 * 1_000_000;
    c.bench_function("view: 10 models x 8 routes, 60 s full", |b| {
        b.iter(|| black_box(store.view(now, BrokerView::default())));
    });
}

criterion_group!(benches, ingest, view);
criterion_main!(benches);
