//! Time ranges of the detail charts, and the one function that turns a range into points.
//!
//! Five minutes come from the per-second `series` of the view; longer ranges from the
//! 24-hour history the view carries. Both are read as they are: the store merged them.

use std::time::Duration;

use crate::live::Live;
use crate::store::history::{HistoryPoint, Range as HistoryRange};
use crate::store::view::ModelView;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Range {
    #[default]
    Min5,
    Hour1,
    Hour6,
    Day1,
}

impl Range {
    pub const ALL: [Self; 4] = [Self::Min5, Self::Hour1, Self::Hour6, Self::Day1];

    pub fn secs(self) -> i64 {
        match self {
            Self::Min5 => 300,
            Self::Hour1 => 3600,
            Self::Hour6 => 6 * 3600,
            Self::Day1 => 24 * 3600,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Min5 => "5m",
            Self::Hour1 => "1h",
            Self::Hour6 => "6h",
            Self::Day1 => "24h",
        }
    }

    /// The key that selects it in the detail view.
    pub fn key(self) -> char {
        match self {
            Self::Min5 => '1',
            Self::Hour1 => '2',
            Self::Hour6 => '3',
            Self::Day1 => '4',
        }
    }
}

/// One point of the detail charts. `t` is seconds before the view's time (≤ 0).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ChartPoint {
    pub t: f64,
    pub qps: f64,
    pub error_rate: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Container CPU (100 % = one core), from the history only.
    pub cpu_percent: Option<f64>,
    /// Container memory, MiB, from the history only.
    pub mem_mib: Option<f64>,
}

/// What the charts of one range can show.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeData {
    Points(Vec<ChartPoint>),
    /// Nothing to draw, and why.
    Unavailable(&'static str),
}

/// The chart points of `model` over `range`, at most `max_points` of them.
pub fn points(view: &Live, model: &ModelView, range: Range, max_points: usize) -> RangeData {
    match range {
        Range::Min5 => RangeData::Points(from_series(view, model, max_points)),
        Range::Hour1 | Range::Hour6 | Range::Day1 => {
            history_points(view, &model.model, range, max_points)
        }
    }
}

/// The points of `model` over `range` from the 24-hour history only. Container CPU and
/// memory have no per-second series, so their charts read this at every range.
pub fn history_points(view: &Live, model: &str, range: Range, max_points: usize) -> RangeData {
    let span = HistoryRange::Last(Duration::from_secs(range.secs().unsigned_abs()));
    let points = view.history.series(model, &span, view.ts_ms, max_points);
    if points.iter().all(|p| !p.covered) {
        return RangeData::Unavailable("no history for this model in this range yet");
    }
    RangeData::Points(
        points
            .iter()
            // Spans the monitor was down for are gaps, not zeros; so is a point made only
            // of the second still filling, which has no rate yet.
            .filter(|p| p.covered && p.covered_s > 0)
            .map(|p| from_history(p, view.ts_ms))
            .collect(),
    )
}

fn from_history(p: &HistoryPoint, now_ms: i64) -> ChartPoint {
    let step = f64::from(p.step_s.max(1));
    ChartPoint {
        // A point stands at the end of its step: its figures are complete there.
        t: ((p.start_ms - now_ms) as f64 / 1000.0 + step).min(0.0),
        // Over the seconds the point observed, not its whole step: the newest point is
        // still filling, and would show a drop at "now" that is not in the traffic.
        qps: if p.covered_s > 0 {
            p.requests as f64 / p.covered_s as f64
        } else {
            0.0
        },
        error_rate: (p.requests > 0).then(|| p.errors as f64 / p.requests as f64),
        p50_ms: p.p50_ms,
        p95_ms: p.p95_ms,
        p99_ms: p.p99_ms,
        cpu_percent: p.cpu_percent,
        mem_mib: p.mem_bytes.map(|b| b as f64 / (1024.0 * 1024.0)),
    }
}

/// The per-second series, folded to at most `max_points`: a point that covers several
/// seconds has their mean rate, their pooled error rate and their worst percentiles, so
/// a one-second spike still shows when five minutes squeeze into a narrow chart.
///
/// The current second is left out: it is still filling, and averaged in as a whole
/// second it would draw a drop at the chart's end that the traffic does not have.
fn from_series(view: &Live, model: &ModelView, max_points: usize) -> Vec<ChartPoint> {
    let now_sec = view.ts_ms.div_euclid(1000);
    let finished = model.series.partition_point(|p| p.sec < now_sec);
    let s = &model.series[..finished];
    let n = s.len();
    let k = max_points.clamp(1, n.max(1));
    (0..k)
        .filter_map(|i| {
            let part = &s[i * n / k..(i + 1) * n / k];
            let last = part.last()?;
            let requests: u64 = part.iter().map(|p| p.requests).sum();
            let errors: u64 = part.iter().map(|p| p.errors).sum();
            Some(ChartPoint {
                t: (last.sec - now_sec) as f64,
                qps: requests as f64 / part.len() as f64,
                error_rate: (requests > 0).then(|| errors as f64 / requests as f64),
                p50_ms: part.iter().filter_map(|p| p.p50_ms).reduce(f64::max),
                p95_ms: part.iter().filter_map(|p| p.p95_ms).reduce(f64::max),
                p99_ms: part.iter().filter_map(|p| p.p99_ms).reduce(f64::max),
                cpu_percent: None,
                mem_mib: None,
            })
        })
        .collect()
}
