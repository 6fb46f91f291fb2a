//! Decode + validate + aggregate, in process, on one core.
//!
//! Goal (issue 2): at least 3 million events/s. Baseline in the same run: parsing the
//! same bodies into a generic `serde_json::Value`, the least any JSON consumer must do.
//! The bodies carry `ttfb_us` and four `ml` measures on every event (issue 15's costlier
//! case); the `plain` variant (neither) measures models that never stream or measure.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use modelmon::store::{BrokerView, Store, StoreConfig};
use modelmon_contract::decode_batch;

#[path = "support/ingest_bodies.rs"]
mod ingest_bodies;
use ingest_bodies::{EVENTS_PER_BATCH, NOW, bodies, bodies_with};

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
    // Models that never stream nor measure: what those windows must not make dearer.
    let plain = bodies_with(false, 0);
    let mut store_plain = Store::new(StoreConfig::default());
    g.bench_function("decode + validate + aggregate, plain", |b| {
        b.iter(|| {
            for (body, model) in &plain {
                let d = decode_batch(body, Some(model), NOW).expect("valid");
                store_plain.apply(&d, NOW);
            }
        });
    });
    g.finish();
    black_box(store.view(NOW, BrokerView::default()));
    black_box(store_plain.view(NOW, BrokerView::default()));
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
