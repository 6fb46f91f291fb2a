//! The monitor's side of snapshot files: opening the directory and loading the history
//! at start, and writing snapshots off the ingest path while it runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::now_us;
use crate::config::Config;
use crate::runtime::Source;
use crate::store::Store;
use crate::store::persist::{self, Loaded, Snapshot, SnapshotDir, StreamMark};

/// Snapshot writing, when this monitor holds the directory's lock.
pub struct Snapshots {
    dir: Arc<SnapshotDir>,
    pub interval: Duration,
    /// The write in flight, if any: at most one at a time.
    writing: Option<JoinHandle<()>>,
    /// Whether the last write failed: a full disk is told once when writes start
    /// failing and once when they succeed again, not at every interval.
    failing: Arc<AtomicBool>,
    /// The stream the monitor reads, if any: snapshots record how far into it they go.
    stream: Option<String>,
}

impl Snapshots {
    /// The directory this monitor holds the lock of (alerts save their file there too).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.dir()
    }

    /// Hands a frozen copy of the history to a blocking thread that encodes and writes
    /// it, so the store task (and ingest) never waits for the disk.
    pub fn save(&mut self, store: &mut Store) {
        if self.writing.as_ref().is_some_and(|w| !w.is_finished()) {
            return;
        }
        let now = now_us();
        let snap = Snapshot {
            format_version: persist::VERSION,
            saved_ms: now / 1000,
            history: store.fresh_history(now),
            ingest: store.ingest_totals(),
            stream: self
                .stream
                .clone()
                .zip(store.stream_next())
                .map(|(name, next_offset)| StreamMark { name, next_offset }),
        };
        let dir = Arc::clone(&self.dir);
        let failing = Arc::clone(&self.failing);
        self.writing = Some(tokio::task::spawn_blocking(move || {
            match dir.write(&snap) {
                Err(e) => {
                    if !failing.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            "{e}; the history is kept in memory and saved again once writing works"
                        );
                    }
                }
                Ok(_) => {
                    if failing.swap(false, Ordering::Relaxed) {
                        tracing::warn!("snapshots are written again to {}", dir.dir().display());
                    }
                }
            }
        }));
    }

    /// The last snapshot of a clean exit: waits for the write in flight, then writes.
    pub async fn finish(&mut self, store: &mut Store) {
        if let Some(w) = self.writing.take() {
            let _ = w.await;
        }
        self.save(store);
        if let Some(w) = self.writing.take() {
            let _ = w.await;
        }
    }
}

/// The snapshot directory: `[history] snapshot_dir`, else the state directory's.
/// Simulated traffic must never mix into the real history: the demo keeps its own
/// `demo/` beside it (for a directory from the config file, `Cli::resolve` adds it).
pub fn snapshot_dir(cfg: &Config, demo: bool) -> Option<std::path::PathBuf> {
    let default = || persist::default_dir().map(|d| if demo { d.join("demo") } else { d });
    cfg.history.snapshot_dir.clone().or_else(default)
}

/// Opens the snapshot directory, loads its history into `store`, and returns the
/// writer when this monitor got the lock. Problems are told on stderr: the monitor
/// runs on without history rather than not at all.
pub fn open_snapshots(cfg: &Config, source: Source, store: &mut Store) -> Option<Snapshots> {
    let Some(dir) = snapshot_dir(cfg, source == Source::Demo) else {
        eprintln!(
            "modelmon-tui: no snapshot directory (set XDG_STATE_HOME, HOME or --snapshot-dir); history will not be saved"
        );
        return None;
    };
    let (dir, notice) = match SnapshotDir::open(&dir) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("modelmon-tui: {e}; history will not be saved");
            return None;
        }
    };
    if let Some(n) = notice {
        eprintln!("modelmon-tui: {n}");
    }
    let now = now_us();
    match dir.load(now.div_euclid(1_000_000)) {
        Ok(Loaded::Snapshot(s)) => {
            store.restore(&s.history, now);
            match s.stream {
                Some(mark) if mark.name == cfg.amqp.stream => {
                    store.set_stream_next(mark.next_offset);
                }
                Some(mark) if !cfg.amqp.stream.is_empty() => eprintln!(
                    "modelmon-tui: the snapshot's history was read from stream `{}`, not `{}`: \
                     reading `{}` from its start",
                    mark.name, cfg.amqp.stream, cfg.amqp.stream
                ),
                _ => {}
            }
        }
        Ok(Loaded::Nothing) => {}
        Ok(Loaded::SetAside { path, aside, error }) => match aside {
            Some(aside) => eprintln!(
                "modelmon-tui: snapshot {} is unusable: {error}; kept as {}, starting with empty history",
                path.display(),
                aside.display()
            ),
            None => eprintln!(
                "modelmon-tui: snapshot {} is unusable: {error}; starting with empty history",
                path.display()
            ),
        },
        Err(e) => eprintln!("modelmon-tui: {e}; starting with empty history"),
    }
    dir.is_writer().then(|| Snapshots {
        dir: Arc::new(dir),
        interval: cfg.history.snapshot_interval.0,
        writing: None,
        failing: Arc::new(AtomicBool::new(false)),
        stream: (!cfg.amqp.stream.is_empty()).then(|| cfg.amqp.stream.clone()),
    })
}
