//! The 24-hour history (issue 4): range queries, snapshot write and load, and ingest
//! while a snapshot is written.
//!
//! Goals: a 24 h query for one model ≤ 5 ms; a snapshot of 100 models × 24 h written
//! (encode + fsync + rename) in ≤ 200 ms and loaded in ≤ 1 s; ingest throughput with a
//! snapshot being written on another thread equal to the same ingest alone (the ratio
//! is the figure; both are measured in this run).

#[path = "support/ingest_bodies.rs"]
mod ingest_bodies;

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingest_bodies::{NOW, bodies};
use modelmon::store::history::Range;
use modelmon::store::persist::{self, Snapshot, SnapshotDir};
use modelmon::store::synthetic::{self, NOW_S};
use modelmon::store::{IngestTotals, Store, StoreConfig};
use modelmon_contract::decode_batch;

fn snapshot() -> Snapshot {
    Snapshot {
        format_version: persist::VERSION,
        saved_ms: NOW_S * 1000,
        history: Arc::new(synthetic::fill(100, 42)),
        ingest: IngestTotals::default(),
        stream: None,
    }
}

fn queries(c: &mut Criterion) {
    let snap = snapshot();
    let h = &snap.history;
    let model = h.models()[0].to_owned();
    let now_ms = NOW_S * 1000;
    let day = Range::Last(Duration::from_secs(24 * 3600));
    let hour = Range::Last(Duration::from_secs(3600));
    let mut g = c.benchmark_group("history query, one model");
    g.bench_function("summary 24h", |b| {
        b.iter(|| black_box(h.summary(&model, &day, now_ms)));
    });
    g.bench_function("summary 1h", |b| {
        b.iter(|| black_box(h.summary(&model, &hour, now_ms)));
    });
    g.bench_function("series 24h, 24 points", |b| {
        b.iter(|| black_box(h.series(&model, &day, now_ms, 24)));
    });
    g.bench_function("series 24h, 600 points", |b| {
        b.iter(|| black_box(h.series(&model, &day, now_ms, 600)));
    });
    g.finish();
}

fn snapshots(c: &mut Criterion) {
    let snap = snapshot();
    let bytes = persist::encode(&snap);
    eprintln!(
        "snapshot of 100 models x 24 h: {:.1} MiB on disk",
        bytes.len() as f64 / 1_048_576.0
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (sd, _) = SnapshotDir::open(dir.path()).expect("open");
    let mut g = c.benchmark_group("snapshot, 100 models x 24 h");
    g.sample_size(10);
    g.bench_function("encode", |b| b.iter(|| black_box(persist::encode(&snap))));
    g.bench_function("encode + write + fsync + rename", |b| {
        b.iter(|| sd.write(&snap).expect("written"));
    });
    g.bench_function("load (read + verify + decode)", |b| {
        b.iter(|| black_box(persist::read_file(&sd.path()).expect("read")));
    });
    g.finish();
}

fn ingest_while_writing(c: &mut Criterion) {
    let bodies = bodies();
    let now_us = NOW;
    let mut store = Store::new(StoreConfig::default());
    let mut g = c.benchmark_group("ingest (decode + aggregate)");
    g.throughput(Throughput::Elements(20_000));
    let run = |store: &mut Store| {
        for (body, model) in &bodies {
            let d = decode_batch(body, Some(model), now_us).expect("valid");
            store.apply(&d, now_us);
        }
    };
    g.bench_function("alone", |b| b.iter(|| run(&mut store)));

    // Control: another thread keeping a core busy with unrelated work. On a 2-core box
    // any busy thread slows ingest; the writer is off the ingest path if ingest runs as
    // fast next to it as next to this.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut x = 1u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..10_000 {
                    x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
                }
            }
        });
        g.bench_function("next to a busy thread (control)", |b| {
            b.iter(|| run(&mut store));
        });
        stop.store(true, Ordering::Relaxed);
    });

    // The runtime's writer: a blocking thread encoding and writing snapshots of
    // 100 models x 24 h back to back, the worst case of a tiny snapshot_interval.
    let snap = snapshot();
    let dir = tempfile::tempdir().expect("tempdir");
    let (sd, _) = SnapshotDir::open(dir.path()).expect("open");
    let stop = Arc::new(AtomicBool::new(false));
    let writes = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                sd.write(&snap).expect("written");
                n += 1;
            }
            n
        });
        g.bench_function("while snapshots are written", |b| {
            b.iter(|| run(&mut store));
        });
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap_or(0)
    });
    eprintln!("{writes} snapshots written during the measurement");
    g.finish();

    // What the store task itself does per snapshot, on the ingest path: freeze the
    // history (Arc clones of closed hours, a copy of each current hour).
    let mut full = Store::new(StoreConfig::default());
    full.restore(&snap.history, now_us);
    run(&mut full);
    c.bench_function("store: freeze 100 models x 24 h for a snapshot", |b| {
        b.iter(|| black_box(full.fresh_history(now_us)));
    });
}

criterion_group!(benches, queries, snapshots, ingest_while_writing);
criterion_main!(benches);
