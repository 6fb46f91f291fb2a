//! `modelmon-tui report`: the saved history summarised per model, like `sar` over its
//! files. It only reads the snapshot file (no broker, no lock), so it works while a
//! monitor runs and after it stopped.
//!
//! The `--json` document is a stable interface for scripts (see README, "Report"):
//! keys are only ever added.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;

use crate::cli::ReportArgs;
use crate::config::Config;
use crate::store::IngestTotals;
use crate::store::history::{
    HistoryPoint, KeyKind, KeySummary, MeasureSummary, Range, RangeSummary,
};
use crate::store::persist::{self, PersistError, Snapshot};

/// Points in each model's series: hourly over 24 h, 15 minutes over 6 h, ...
pub const SERIES_POINTS: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "no snapshot in {} yet (a monitor writes one every snapshot_interval and on exit)",
        .0.display()
    )]
    NoSnapshot(PathBuf),
    #[error("no snapshot directory: set XDG_STATE_HOME or HOME, or pass --snapshot-dir")]
    NoDir,
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error("model {0:?} is not in the history")]
    UnknownModel(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The `--json` document.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub snapshot: SnapshotInfo<'a>,
    pub range: RangeInfo,
    pub models: Vec<ModelReport>,
}

#[derive(Debug, Serialize)]
pub struct SnapshotInfo<'a> {
    pub path: &'a Path,
    pub saved_ms: i64,
    pub format_version: u32,
    /// Ingest counters of the monitor run that wrote the snapshot, since it started.
    pub ingest: IngestTotals,
}

#[derive(Debug, Serialize)]
pub struct RangeInfo {
    pub label: String,
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct ModelReport {
    pub model: String,
    #[serde(flatten)]
    pub summary: RangeSummary,
    pub series: Vec<HistoryPoint>,
    /// The same figures per route and per instance, busiest first.
    pub routes: Vec<KeySummary>,
    pub instances: Vec<KeySummary>,
    /// Versions side by side, busiest first.
    pub versions: Vec<KeySummary>,
    /// Model measures (`ml` keys).
    pub ml: Vec<MeasureSummary>,
    /// Streamed answers: `ttfb` (time to first byte) and `generation` (the rest).
    pub streams: Vec<KeySummary>,
}

/// Builds the report of `snap` over `range` at `now_ms`.
pub fn build<'a>(
    snap: &Snapshot,
    path: &'a Path,
    range: &Range,
    model: Option<&str>,
    now_ms: i64,
) -> Result<Report<'a>, ReportError> {
    let h = &snap.history;
    let names: Vec<&str> = match model {
        Some(m) if h.ring(m).is_none() => return Err(ReportError::UnknownModel(m.to_owned())),
        Some(m) => vec![m],
        None => h.models(),
    };
    let models = names
        .into_iter()
        .filter_map(|name| {
            Some(ModelReport {
                model: name.to_owned(),
                summary: h.summary(name, range, now_ms)?,
                series: h.series(name, range, now_ms, SERIES_POINTS),
                routes: h.key_summaries(name, KeyKind::Route, range, now_ms),
                instances: h.key_summaries(name, KeyKind::Instance, range, now_ms),
                versions: h.key_summaries(name, KeyKind::Version, range, now_ms),
                ml: h.measure_summaries(name, range, now_ms),
                streams: h.key_summaries(name, KeyKind::Stream, range, now_ms),
            })
        })
        .collect();
    let (from, to) = range.bounds_s(now_ms);
    Ok(Report {
        snapshot: SnapshotInfo {
            path,
            saved_ms: snap.saved_ms,
            format_version: snap.format_version,
            ingest: snap.ingest,
        },
        range: RangeInfo {
            label: range.label(),
            from_ms: from * 1000,
            to_ms: to * 1000,
        },
        models,
    })
}

/// Reads the snapshot in `dir` and writes the report.
pub fn write(
    out: &mut impl Write,
    dir: &Path,
    args: &ReportArgs,
    now_ms: i64,
) -> Result<(), ReportError> {
    let path = dir.join(persist::FILE_NAME);
    let snap = persist::read_file(&path)?.ok_or_else(|| ReportError::NoSnapshot(dir.into()))?;
    let report = build(&snap, &path, &args.range, args.model.as_deref(), now_ms)?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    } else {
        out.write_all(render_text(&report, now_ms).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// `modelmon-tui report`: exit 0 with a report, 1 when there is none to give.
/// `demo` (`modelmon-tui --demo report`) reads the demo's own default directory.
pub fn main(args: &ReportArgs, cfg: &Config, demo: bool) -> ExitCode {
    let Some(dir) = crate::snapshots::snapshot_dir(cfg, demo) else {
        eprintln!("modelmon-tui report: {}", ReportError::NoDir);
        return ExitCode::from(1);
    };
    let now_ms = crate::clock::now_us() / 1000;
    match write(&mut std::io::stdout().lock(), &dir, args, now_ms) {
        Ok(()) => ExitCode::SUCCESS,
        Err(ReportError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("modelmon-tui report: {e}");
            ExitCode::from(1)
        }
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{:.2}", v * 100.0))
}

/// The columns REQUESTS, QPS, ERR%, P50ms, P95ms, P99ms of a range summary.
fn figures(x: &RangeSummary) -> String {
    format!(
        "{:>10} {:>9.2} {:>7} {:>9} {:>9} {:>9}",
        x.requests,
        x.qps,
        pct(x.error_rate),
        opt(x.p50_ms, 2),
        opt(x.p95_ms, 2),
        opt(x.p99_ms, 2),
    )
}

/// The text report: a summary table, then each model's series.
pub fn render_text(r: &Report<'_>, now_ms: i64) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "modelmon report: {} ({} -> {} UTC); snapshot {} saved {}s ago",
        r.range.label,
        utc(r.range.from_ms),
        utc(r.range.to_ms),
        r.snapshot.path.display(),
        ((now_ms - r.snapshot.saved_ms) / 1000).max(0)
    );
    let i = &r.snapshot.ingest;
    let _ = writeln!(
        s,
        "the monitor that saved it had taken {} events ({} rejected, {} late, {} dropped at source) since it started",
        i.events, i.rejected, i.late, i.dropped_at_source
    );
    let _ = writeln!(
        s,
        "\n{:<28} {:>10} {:>9} {:>7} {:>9} {:>9} {:>9}  WORST HOUR",
        "MODEL", "REQUESTS", "QPS", "ERR%", "P50ms", "P95ms", "P99ms"
    );
    for m in &r.models {
        let x = &m.summary;
        let worst = x.worst_hour.as_ref().map_or_else(String::new, |w| {
            if w.by == "errors" {
                format!("{} ({}% errors)", hhmm(w.start_ms), pct(w.error_rate))
            } else {
                format!("{} (p99 {} ms)", hhmm(w.start_ms), opt(w.p99_ms, 2))
            }
        });
        let _ = writeln!(s, "{:<28} {}  {worst}", m.model, figures(x));
    }
    for m in &r.models {
        for (what, keys) in [("ROUTE", &m.routes), ("INSTANCE", &m.instances)] {
            if keys.is_empty() {
                continue;
            }
            let _ = writeln!(
                s,
                "\n{} by {}:\n  {:<36} {:>10} {:>9} {:>7} {:>9} {:>9} {:>9}",
                m.model,
                what.to_lowercase(),
                what,
                "REQUESTS",
                "QPS",
                "ERR%",
                "P50ms",
                "P95ms",
                "P99ms"
            );
            for k in keys {
                let _ = writeln!(s, "  {:<36} {}", k.name, figures(&k.summary));
            }
        }
        let step = m.series.first().map_or(0, |p| p.step_s);
        let _ = writeln!(s, "\n{} every {}s:", m.model, step);
        let _ = writeln!(
            s,
            "  {:<16} {:>10} {:>9} {:>7} {:>9} {:>9} {:>9}",
            "START (UTC)", "REQUESTS", "QPS", "ERR%", "P50ms", "P95ms", "P99ms"
        );
        for p in &m.series {
            if !p.covered {
                let _ = writeln!(
                    s,
                    "  {:<16} {:>10}",
                    utc(p.start_ms),
                    "(monitor not running)"
                );
                continue;
            }
            let rate = (p.requests > 0).then(|| p.errors as f64 / p.requests as f64);
            let _ = writeln!(
                s,
                "  {:<16} {:>10} {:>9.2} {:>7} {:>9} {:>9} {:>9}",
                utc(p.start_ms),
                p.requests,
                // Over the seconds the point observed: the newest point is still
                // filling, and a whole step would show a fraction of its rate.
                p.requests as f64 / p.covered_s.max(1) as f64,
                pct(rate),
                opt(p.p50_ms, 2),
                opt(p.p95_ms, 2),
                opt(p.p99_ms, 2),
            );
        }
    }
    s
}

fn hhmm(ms: i64) -> String {
    utc(ms)[11..].to_owned()
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn utc(ms: i64) -> String {
    let t = crate::clock::Utc::from_ms(ms);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(1_800_000_000_000), "2027-01-15 08:00");
        assert_eq!(utc(951_782_400_000 + 3_660_000), "2000-02-29 01:01");
    }
}
