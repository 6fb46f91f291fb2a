//! A latency figure staying in a model's slow mode. A slow mode reached now and then is
//! normal, and raises the limit its figure is judged against (`Baseline::p95_high_ms`).
//! The same figure past the usual limit minute after minute is not: the slow requests'
//! share grew (a cache's misses from 2 % to 10 %), which the median cannot see. How many
//! minutes are too many is the model's own: it depends on how often its minutes get
//! there, and on how rarely that many of them in a row come by chance.

use super::rules::Metric;
use crate::store::history::{HistoryPoint, HistoryView, Range};

/// Minutes looked back at, at most: enough for a figure past its limit in half its
/// minutes (its normal is their median, so no more than that), whose runs of 18 come by
/// chance once in 10 000. Past that a run tells nothing.
const RECENT: usize = 20;
/// A stay is this many minutes at least, whatever the model's minutes say: a minute or
/// two is what a chance cluster of slow requests lasts.
const SHORTEST: usize = 5;
/// An alert that fired for a stay is judged on this many minutes too (or on its stay's,
/// if more): at 2 req/s with 8 % of slow requests, 3 minutes of 5 have their p95 out of
/// the slow mode about once an hour, 5 of 8 about once in a day and a half.
const HELD: usize = 8;
/// A run as long as a stay comes by chance once in this many runs looked at.
const CHANCE: f64 = 1e-4;
/// A minute's figure counts with this many requests.
const MIN_REQUESTS: u64 = 5;

/// The latency figures a stay is judged on, in this order.
const FIGURES: usize = 6;

fn slot(metric: Metric) -> Option<usize> {
    Some(match metric {
        Metric::P50Ms => 0,
        Metric::P95Ms => 1,
        Metric::P99Ms => 2,
        Metric::TtfbP50Ms => 3,
        Metric::TtfbP95Ms => 4,
        Metric::TtfbP99Ms => 5,
        _ => return None,
    })
}

/// The minutes behind a model's latency figures: those a baseline was learnt from, and
/// the last few.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Minutes {
    /// Each figure of the learnt minutes (with enough requests), sorted.
    learnt: [Vec<f64>; FIGURES],
    /// Each figure of the last [`RECENT`] complete minutes, oldest first; `None` for a
    /// minute with too few requests or unseen.
    recent: [Vec<Option<f64>>; FIGURES],
}

/// A figure past a limit in `past` of the last `of` minutes (`median` their median
/// figure), where the model's learnt minutes get past it in `share` of them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stay {
    pub past: usize,
    pub of: usize,
    pub share: f64,
    pub median: f64,
}

impl Stay {
    /// Past it in all of those minutes but one: longer than chance keeps it there.
    pub fn holds(&self) -> bool {
        self.past + 1 >= self.of
    }
}

impl Minutes {
    /// From the learnt minutes' figures, in any order: p50, p95, p99, then the first
    /// byte's.
    pub fn learnt(figures: [&[f64]; FIGURES]) -> Self {
        Self {
            learnt: figures.map(|xs| {
                let mut xs = xs.to_vec();
                xs.sort_by(f64::total_cmp);
                xs
            }),
            recent: Default::default(),
        }
    }

    /// Takes the last complete minutes of `model` before `now_ms`.
    pub fn read_recent(&mut self, history: &HistoryView, model: &str, now_ms: i64) {
        let to_ms = now_ms.div_euclid(60_000) * 60_000;
        let range = Range::Between {
            from_ms: to_ms - 60_000 * RECENT as i64,
            to_ms,
        };
        let figures = |p: &HistoryPoint| {
            let counts = p.covered && p.requests >= MIN_REQUESTS;
            [p.p50_ms, p.p95_ms, p.p99_ms].map(|v| v.filter(|_| counts))
        };
        let requests = history.series(model, &range, now_ms, RECENT);
        let first_bytes = history.ttfb_series(model, &range, now_ms, RECENT);
        for (offset, points) in [(0, requests), (3, first_bytes)] {
            for i in 0..3 {
                self.recent[offset + i] = points.iter().map(|p| figures(p)[i]).collect();
            }
        }
    }

    /// How `metric` fared against `limit` in the last minutes: as many of them as its
    /// learnt minutes get past it in a row once in [`CHANCE`] runs (at least
    /// [`SHORTEST`]). `None` when no run that long is rare, or too few minutes are known.
    ///
    /// `median` is of those minutes, or for an alert that fired for a stay the higher of
    /// that and the median of [`HELD`] minutes: it resolves once most of both are back,
    /// not at the few fast minutes a quiet model has while the share stays up.
    pub fn stay(&self, metric: Metric, limit: f64, firing: bool) -> Option<Stay> {
        let i = slot(metric)?;
        let learnt = &self.learnt[i];
        if learnt.is_empty() {
            return None;
        }
        let over = learnt.len() - learnt.partition_point(|&x| x <= limit);
        // One minute of the span might have been past it, seen or not.
        let share = over.max(1) as f64 / learnt.len() as f64;
        let of = (SHORTEST..=RECENT).find(|&k| all_but_one(k, share) <= CHANCE)?;
        let recent = &self.recent[i];
        let last = recent.get(recent.len().checked_sub(of)?..)?;
        let past = last.iter().filter(|v| v.is_some_and(|v| v > limit)).count();
        let median = if firing {
            let longer = &recent[recent.len().saturating_sub(HELD)..];
            median(last)?.max(median(longer)?)
        } else {
            median(last)?
        };
        Some(Stay {
            past,
            of,
            share: over as f64 / learnt.len() as f64,
            median,
        })
    }
}

/// The median of the known figures (the upper one of an even count).
fn median(minutes: &[Option<f64>]) -> Option<f64> {
    let mut known: Vec<f64> = minutes.iter().flatten().copied().collect();
    known.sort_by(f64::total_cmp);
    known.get(known.len() / 2).copied()
}

/// The chance that at least `k - 1` of `k` minutes are past a limit that each minute
/// passes with chance `p`.
fn all_but_one(k: usize, p: f64) -> f64 {
    let k_i = i32::try_from(k).unwrap_or(i32::MAX);
    f64::from(k_i) * p.powi(k_i - 1) * (1.0 - p) + p.powi(k_i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes(learnt: &[f64], recent: &[Option<f64>]) -> Minutes {
        let mut m = Minutes::learnt([learnt; FIGURES]);
        m.recent = std::array::from_fn(|_| recent.to_vec());
        m
    }

    /// A p95 stay past 30 ms, if it holds.
    fn stay(learnt: &[f64], recent: &[Option<f64>]) -> Option<Stay> {
        minutes(learnt, recent)
            .stay(Metric::P95Ms, 30.0, false)
            .filter(Stay::holds)
    }

    #[test]
    fn a_run_is_as_long_as_the_models_own_minutes_make_it_rare() {
        let fast = vec![10.0; 57];
        let mut rare = fast.clone();
        rare.extend([300.0; 3]); // 5 % of its minutes in the slow mode
        let mut often = fast[..40].to_vec();
        often.extend([300.0; 12]); // 23 %
        let slow = |n| {
            let mut r = vec![Some(10.0); RECENT - n];
            r.extend(std::iter::repeat_n(Some(300.0), n));
            r
        };
        // Rare: 5 minutes, one of them may be fast.
        let s = stay(&rare, &slow(4)).expect("a stay");
        assert_eq!((s.past, s.of), (4, 5));
        assert!((s.share - 0.05).abs() < 1e-9, "{s:?}");
        // Judged on those minutes: their median figure.
        assert!((s.median - 300.0).abs() < 1e-9, "{s:?}");
        assert_eq!(stay(&rare, &slow(3)), None);
        // Often there: a longer run is needed.
        assert_eq!(stay(&often, &slow(6)), None);
        let s = stay(&often, &slow(10));
        assert!(s.is_some_and(|s| s.of > 5 && s.of <= 10), "{s:?}");
        // A model never past the limit in its minutes still needs five.
        assert_eq!(stay(&fast, &slow(5)).map(|s| s.of), Some(5));
        // Minutes with too few requests do not count as past it.
        let mut sparse = slow(5);
        sparse[RECENT - 1] = None;
        sparse[RECENT - 2] = None;
        assert_eq!(stay(&rare, &sparse), None);
        // Once fired, judged on eight minutes too: three fast ones of the last five do
        // not end it, nor do fast ones before a stay of five.
        let mut back = slow(10);
        back[RECENT - 3..].fill(Some(10.0));
        let m = minutes(&rare, &back);
        let s = m.stay(Metric::P95Ms, 30.0, true).expect("known");
        assert!((s.median - 300.0).abs() < 1e-9, "{s:?}");
        let s = m.stay(Metric::P95Ms, 30.0, false).expect("known");
        assert!((s.median - 10.0).abs() < 1e-9, "{s:?}");
        let s = minutes(&rare, &slow(5)).stay(Metric::P95Ms, 30.0, true);
        assert!(s.is_some_and(|s| (s.median - 300.0).abs() < 1e-9), "{s:?}");
        // Most of both back: resolved.
        let s = minutes(&rare, &slow(2)).stay(Metric::P95Ms, 30.0, true);
        assert!(s.is_some_and(|s| (s.median - 10.0).abs() < 1e-9), "{s:?}");
    }

    #[test]
    fn a_figure_past_its_limit_half_the_time_stays_only_for_most_of_the_twenty() {
        let mut half = vec![10.0; 30];
        half.extend([300.0; 30]);
        let mut recent = vec![Some(10.0); 4];
        recent.extend([Some(300.0); RECENT - 4]);
        assert_eq!(stay(&half, &recent), None);
        recent[3] = Some(300.0);
        let s = stay(&half, &recent);
        assert_eq!(s.map(|s| (s.past, s.of)), Some((17, 18)));
        let mut more = half.clone();
        more.extend([300.0; 10]); // past it in most minutes: no run is rare
        let recent = vec![Some(300.0); RECENT];
        assert_eq!(stay(&more, &recent), None);
        // And neither do figures that are not latency, nor unlearnt ones.
        assert_eq!(minutes(&half, &recent).stay(Metric::Qps, 30.0, false), None);
        assert_eq!(minutes(&[], &recent).stay(Metric::P95Ms, 30.0, false), None);
    }

    #[test]
    fn all_but_one_is_a_binomial_tail() {
        assert!((all_but_one(5, 0.5) - 6.0 / 32.0).abs() < 1e-12);
        assert!((all_but_one(5, 1.0) - 1.0).abs() < 1e-12);
        assert!(all_but_one(5, 0.0).abs() < 1e-12);
    }
}
