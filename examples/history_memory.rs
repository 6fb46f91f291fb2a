//! Memory of a full day of history: 100 models × 24 h at 10-s resolution.
//!
//! `cargo run --release --example history_memory [MODELS] [KEEP_DIR]` prints the
//! process's resident memory (VmRSS from /proc/self/status) before and after filling
//! every ring, and after writing them as a snapshot (kept in KEEP_DIR when given).
//! `ROUTES=4 INSTANCES=2 VERSIONS=2 MEASURES=4` (the defaults are 0) adds that many
//! route, instance, version and `ml` measure rings per model. The bound: 64 MiB for
//! 100 models with those four.

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let models = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let before = status_kib("VmRSS:");
    let env = |k: &str| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let keys = ["ROUTES", "INSTANCES", "VERSIONS", "MEASURES"].map(env);
    let history = modelmon::store::synthetic::fill_with_keys(models, keys, 42);
    let after = status_kib("VmRSS:");
    let peak = status_kib("VmHWM:");
    // Ten-second buckets, as if every hour were still at its finest grain.
    let hours: usize = history
        .models()
        .iter()
        .filter_map(|m| history.hours_of(m))
        .map(|h| h.len())
        .sum();
    let buckets = hours * 360;
    println!(
        "{models} models ({} routes, {} instances, {} versions, {} measures each), {buckets} ten-second buckets: RSS {:.1} MiB (process before fill {:.1} MiB, \
         peak {:.1} MiB), heap estimate {:.1} MiB",
        keys[0],
        keys[1],
        keys[2],
        keys[3],
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
        history.heap_bytes() as f64 / 1_048_576.0
    );

    // Writing a snapshot streams it to disk: the peak must not grow by the file's size.
    // A second argument keeps the snapshot there, e.g. to start a monitor on it.
    let keep = std::env::args().nth(2).map(std::path::PathBuf::from);
    let dir = keep.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("modelmon-history-memory-{}", std::process::id()))
    });
    let written = modelmon::store::persist::SnapshotDir::open(&dir).and_then(|(sd, _)| {
        sd.write(&modelmon::store::persist::Snapshot {
            format_version: modelmon::store::persist::VERSION,
            saved_ms: modelmon::store::synthetic::NOW_S * 1000,
            history: std::sync::Arc::new(history),
            ingest: modelmon::store::IngestTotals::default(),
            stream: None,
        })
    });
    match written {
        Ok(bytes) => println!(
            "after writing a {:.1} MiB snapshot: RSS {:.1} MiB, peak {:.1} MiB",
            bytes as f64 / 1_048_576.0,
            status_kib("VmRSS:") as f64 / 1024.0,
            status_kib("VmHWM:") as f64 / 1024.0
        ),
        Err(e) => eprintln!("snapshot: {e}"),
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
