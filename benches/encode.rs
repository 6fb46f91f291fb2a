//! Encoding a batch body on the publisher's thread: `Batch::to_json` (hand-written)
//! against `serde_json::to_vec` over the derived `Serialize`, which writes the same bytes,
//! in the same run.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/encode_batches.rs"]
mod encode_batches;
use encode_batches::{EVENTS_PER_BATCH, batch};

fn encode(c: &mut Criterion) {
    for (name, measures) in [("middleware", true), ("proxy", false)] {
        let batch = batch(measures);
        let body = batch.to_json();
        assert_eq!(body, serde_json::to_vec(&batch).expect("encodes"));
        eprintln!("{name}: {} bytes/event", body.len() / EVENTS_PER_BATCH);
        let mut g = c.benchmark_group(format!("encode {EVENTS_PER_BATCH} events, {name}"));
        g.throughput(Throughput::Elements(EVENTS_PER_BATCH as u64));
        g.bench_function("baseline: serde_json::to_vec", |b| {
            b.iter(|| black_box(serde_json::to_vec(black_box(&batch)).expect("encodes")));
        });
        g.bench_function("Batch::to_json", |b| {
            b.iter(|| black_box(black_box(&batch).to_json()));
        });
        g.finish();
    }
}

criterion_group!(benches, encode);
criterion_main!(benches);
