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
/// Minutes before the recent ones whose spells a stay must outlast: the fine tier of
/// the rings keeps two hours of minutes.
const OLDER: usize = 100;
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
    /// Each figure of the learnt points (with enough requests), oldest first.
    learnt: [Vec<f64>; FIGURES],
    /// The same over every point seen, incidents' too, for the hours before the last
    /// (5-minute points; empty for the last hour, whose spells are in `older`, whole):
    /// how long the model's spells past a limit last, a spell that fired once (an
    /// hourly batch job's) among them.
    spells: [Vec<f64>; FIGURES],
    /// Each figure of the [`OLDER`] minutes before the recent ones, incidents' too,
    /// oldest first (those with too few requests left out): the last two hours' spells,
    /// none of them cut in two where the learnt hour begins.
    older: [Vec<f64>; FIGURES],
    /// Minutes a learnt point spans: 1, or 5 for the hours before the last.
    step_min: usize,
    /// Each figure of the last [`RECENT`] complete minutes, oldest first; `None` for a
    /// minute with too few requests or not seen whole.
    recent: [Vec<Option<f64>>; FIGURES],
    /// The end of the newest of them, Unix ms; 0: not read yet.
    pub recent_to_ms: i64,
}

/// A figure past a limit in `past` of the last `of` minutes, where the model's learnt
/// minutes get past it in `share` of them; `median` is the median figure of the last
/// `span` minutes (`of`, or more for an alert that fired for a stay).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stay {
    pub past: usize,
    pub of: usize,
    pub share: f64,
    pub median: f64,
    pub span: usize,
    /// The start of the first of the `of` minutes, Unix ms.
    pub from_ms: i64,
}

impl Stay {
    /// Past it in all of those minutes but one: longer than chance keeps it there.
    pub fn holds(&self) -> bool {
        self.past + 1 >= self.of
    }
}

impl Minutes {
    /// From the learnt points' figures and every seen point's, oldest first (p50, p95,
    /// p99, then the first byte's), each `step_min` minutes long.
    pub fn learnt(
        figures: [&[f64]; FIGURES],
        spells: [Vec<f64>; FIGURES],
        step_min: usize,
    ) -> Self {
        Self {
            learnt: figures.map(<[f64]>::to_vec),
            spells,
            step_min,
            ..Self::default()
        }
    }

    /// The longest spell of the seen points past `limit`, in minutes: minutes past it in
    /// all of them but one, or 5-minute points past it in all of them (a point is past
    /// it with one slow minute or two, so one missed would double a spell).
    fn usual_spell(&self, figure: usize, limit: f64) -> usize {
        if self.step_min <= 1 {
            return longest_stay(&self.older[figure], limit, 1);
        }
        // A run of points, plus the minute beside it a spell of minutes counts.
        match longest_stay(&self.spells[figure], limit, 0) {
            0 => 0,
            n => n * self.step_min + 1,
        }
    }

    /// Whether the last complete minute before `now_ms` is read already.
    pub fn is_current(&self, now_ms: i64) -> bool {
        self.recent_to_ms == now_ms.div_euclid(60_000) * 60_000
    }

    /// Takes the last complete minutes of `model` before `now_ms`, and the [`OLDER`]
    /// before them.
    pub fn read_recent(&mut self, history: &HistoryView, model: &str, now_ms: i64) {
        let to_ms = now_ms.div_euclid(60_000) * 60_000;
        let all = RECENT + OLDER;
        let range = Range::Between {
            from_ms: to_ms - 60_000 * all as i64,
            to_ms,
        };
        // As a baseline learns: a minute seen only in part is no minute's figure.
        let figures = |p: &HistoryPoint| {
            let counts = p.covered_s >= u64::from(p.step_s) && p.requests >= MIN_REQUESTS;
            [p.p50_ms, p.p95_ms, p.p99_ms].map(|v| v.filter(|_| counts))
        };
        let requests = history.series(model, &range, now_ms, all);
        let first_bytes = history.ttfb_series(model, &range, now_ms, all);
        for (offset, points) in [(0, requests), (3, first_bytes)] {
            let split = points.len().saturating_sub(RECENT);
            let (older, recent) = points.split_at(split);
            for i in 0..3 {
                self.recent[offset + i] = recent.iter().map(|p| figures(p)[i]).collect();
                self.older[offset + i] = older.iter().filter_map(|p| figures(p)[i]).collect();
            }
        }
        self.recent_to_ms = to_ms;
    }

    /// How `metric` fared against `limit` in the last minutes: as many of them as its
    /// learnt minutes get past it in a row once in [`CHANCE`] runs, and a quarter more
    /// than the longest spell past it of the two hours before them or of the hours
    /// before the last (`earlier`) (slow minutes come in spells: a cold cache, an hourly
    /// batch job), from [`SHORTEST`] to [`RECENT`]. `None` when no run that long is
    /// rare, or too few minutes are known.
    ///
    /// For an alert that fired for a stay (`firing`), the run is that long, or
    /// [`HELD`] minutes if no run is rare any more, and `median` the higher of its
    /// minutes' and of the last [`HELD`]: it resolves once most of both are back, not at
    /// the few fast minutes a quiet model has while the share stays up.
    pub fn stay(
        &self,
        metric: Metric,
        limit: f64,
        earlier: Option<&Self>,
        firing: bool,
    ) -> Option<Stay> {
        let figure = slot(metric)?;
        let learnt = &self.learnt[figure];
        let over = learnt.iter().filter(|&&x| x > limit).count();
        // A share from an hour of minutes is an estimate: judged at a standard error
        // above it, and one minute past it at least, seen or not.
        let (minutes, learnt_past) = (learnt.len() as f64, over as f64);
        let share = ((learnt_past + 1.0 + learnt_past.sqrt()) / minutes).min(1.0);
        // A quarter longer than its longest spell: a spell's edges move by a minute or
        // two as a chance slow minute falls beside it or not.
        let spell = self.usual_spell(figure, limit);
        let spell = spell.max(earlier.map_or(0, |e| e.usual_spell(figure, limit)));
        let usual = (spell * 5).div_ceil(4) + 1;
        // A spell of 20 minutes or more that the model had (an incident, lately) makes a
        // stay 20 minutes long, not none.
        let shortest = SHORTEST.max(usual.min(RECENT));
        let rare = (shortest..=RECENT).find(|&k| all_but_one(k, share) <= CHANCE);
        let of = match rare {
            Some(of) if !learnt.is_empty() => of,
            _ if firing => HELD,
            _ => return None,
        };
        let recent = &self.recent[figure];
        let last = recent.get(recent.len().checked_sub(of)?..)?;
        let past = last.iter().filter(|v| v.is_some_and(|v| v > limit)).count();
        let (median, span) = if firing {
            let held = &recent[recent.len().saturating_sub(HELD)..];
            let (a, b) = (median(last)?, median(held)?);
            if b > a { (b, held.len()) } else { (a, of) }
        } else {
            (median(last)?, of)
        };
        Some(Stay {
            past,
            of,
            share: if learnt.is_empty() {
                0.0
            } else {
                learnt_past / minutes
            },
            median,
            span,
            from_ms: self.recent_to_ms - 60_000 * of as i64,
        })
    }
}

/// The longest stretch of `points` past `limit` in all of them but `allowed`.
fn longest_stay(points: &[f64], limit: f64, allowed: usize) -> usize {
    let (mut start, mut misses, mut longest) = (0, 0, 0);
    for (end, &v) in points.iter().enumerate() {
        misses += usize::from(v <= limit);
        while misses > allowed {
            misses -= usize::from(points[start] <= limit);
            start += 1;
        }
        longest = longest.max(end + 1 - start);
    }
    longest
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
        let mut m = Minutes::learnt([learnt; FIGURES], Default::default(), 1);
        m.recent = std::array::from_fn(|_| recent.to_vec());
        m.older = std::array::from_fn(|_| learnt.to_vec());
        m
    }

    /// A p95 stay past 30 ms, if it holds.
    fn stay(learnt: &[f64], recent: &[Option<f64>]) -> Option<Stay> {
        minutes(learnt, recent)
            .stay(Metric::P95Ms, 30.0, None, false)
            .filter(Stay::holds)
    }

    /// The last [`RECENT`] minutes, the newest `n` of them slow.
    fn slow(n: usize) -> Vec<Option<f64>> {
        let mut r = vec![Some(10.0); RECENT - n];
        r.extend(std::iter::repeat_n(Some(300.0), n));
        r
    }

    /// An hour of fast minutes with the slow ones at `at`.
    fn hour(at: &[usize]) -> Vec<f64> {
        (0..60)
            .map(|i| if at.contains(&i) { 300.0 } else { 10.0 })
            .collect()
    }

    #[test]
    fn a_run_is_as_long_as_the_models_own_minutes_make_it_rare() {
        // Never past it: five minutes, one of them may be fast.
        let s = stay(&hour(&[]), &slow(4)).expect("a stay");
        assert_eq!((s.past, s.of), (4, 5));
        assert!(s.share.abs() < 1e-12, "{s:?}");
        assert_eq!(stay(&hour(&[]), &slow(3)), None);
        // Past it in 3 scattered minutes of 60 (a share estimated from an hour is
        // judged a standard error above it, 9.5 %): six.
        let scattered = hour(&[10, 30, 50]);
        let s = stay(&scattered, &slow(5)).expect("a stay");
        assert_eq!((s.past, s.of), (5, 6));
        assert!((s.share - 0.05).abs() < 1e-9, "{s:?}");
        // Judged on those minutes: their median figure.
        assert!((s.median - 300.0).abs() < 1e-9, "{s:?}");
        assert_eq!(stay(&scattered, &slow(4)), None);
        // Past it in a quarter of its minutes: a longer run.
        let quarter = hour(&(0..60).step_by(4).collect::<Vec<_>>());
        assert_eq!(stay(&quarter, &slow(10)), None);
        let s = stay(&quarter, &slow(12)).expect("a stay");
        assert_eq!((s.past, s.of), (12, 12));
        // Minutes with too few requests do not count as past it.
        let mut sparse = slow(5);
        sparse[RECENT - 1] = None;
        sparse[RECENT - 2] = None;
        assert_eq!(stay(&hour(&[]), &sparse), None);
    }

    #[test]
    fn a_spell_as_long_as_its_usual_ones_is_no_stay() {
        // A six-minute spell in the hour (a cold cache, a batch job): the same share
        // scattered would make a stay of seven; a spell must outlast its usual ones by a
        // quarter (7 minutes with the one beside it: 10).
        let spell = hour(&[20, 21, 22, 23, 24, 25]);
        assert_eq!(stay(&spell, &slow(8)), None);
        let s = stay(&spell, &slow(9)).expect("longer than its spells");
        assert_eq!((s.past, s.of), (9, 10));
        assert_eq!(longest_stay(&spell, 30.0, 1), 7);
        assert_eq!(longest_stay(&spell, 30.0, 0), 6);
        // The hours before the last had a spell of two 5-minute points (10 minutes, and
        // the minute beside it as a spell of minutes counts one; a quarter more): a stay
        // is then 15 minutes, all but one of them past it.
        let earlier_hours = hour(&[40, 41]);
        let mut before = Minutes::learnt(
            [&earlier_hours[..]; FIGURES],
            [(); FIGURES].map(|()| earlier_hours.clone()),
            5,
        );
        before.recent_to_ms = 0;
        let judged = |n| {
            minutes(&spell, &slow(n))
                .stay(Metric::P95Ms, 30.0, Some(&before), false)
                .filter(Stay::holds)
        };
        assert_eq!(judged(13), None);
        assert_eq!(judged(14).map(|s| (s.past, s.of)), Some((14, 15)));
        // And a model whose points never get there keeps its five.
        let never = hour(&[]);
        let quiet = Minutes::learnt(
            [&never[..]; FIGURES],
            [(); FIGURES].map(|()| never.clone()),
            5,
        );
        let s = minutes(&hour(&[]), &slow(4)).stay(Metric::P95Ms, 30.0, Some(&quiet), false);
        assert_eq!(s.filter(Stay::holds).map(|s| s.of), Some(5));
        // A spell of 20 minutes or more (an incident, lately) makes a stay 20 long.
        let incident = hour(&(20..45).collect::<Vec<_>>());
        let m = minutes(&hour(&[]), &slow(19));
        let mut long = m.clone();
        long.older = [(); FIGURES].map(|()| incident.clone());
        let s = long
            .stay(Metric::P95Ms, 30.0, None, false)
            .filter(Stay::holds);
        assert_eq!(s.map(|s| s.of), Some(RECENT));
        assert_eq!(longest_stay(&hour(&[]), 30.0, 1), 1);
        assert_eq!(longest_stay(&hour(&[]), 30.0, 0), 0);
        assert_eq!(longest_stay(&[], 30.0, 1), 0);
    }

    #[test]
    fn once_fired_it_is_judged_on_more_minutes_and_never_on_none() {
        let m = |recent: &[Option<f64>]| minutes(&hour(&[]), recent);
        // Three fast minutes of the last five do not end it, nor do fast ones before a
        // stay of five.
        let mut back = slow(10);
        back[RECENT - 3..].fill(Some(10.0));
        let s = m(&back)
            .stay(Metric::P95Ms, 30.0, None, true)
            .expect("known");
        assert_eq!((s.median, s.span), (300.0, HELD));
        let s = m(&back)
            .stay(Metric::P95Ms, 30.0, None, false)
            .expect("known");
        assert_eq!((s.median, s.span), (10.0, 5));
        let s = m(&slow(5))
            .stay(Metric::P95Ms, 30.0, None, true)
            .expect("known");
        assert_eq!((s.median, s.span), (300.0, 5));
        // Most of both back: resolved.
        let s = m(&slow(2))
            .stay(Metric::P95Ms, 30.0, None, true)
            .expect("known");
        assert!((s.median - 10.0).abs() < 1e-9, "{s:?}");
        // A model past it in half its minutes has no stay; an alert that fired for one
        // is still judged, on the last eight (and after a restart, with nothing learnt).
        let half = hour(&(0..60).step_by(2).collect::<Vec<_>>());
        let recent = vec![Some(300.0); RECENT];
        assert_eq!(stay(&half, &recent), None);
        let s = minutes(&half, &recent).stay(Metric::P95Ms, 30.0, None, true);
        assert_eq!(s.map(|s| (s.of, s.median)), Some((HELD, 300.0)));
        let s = minutes(&[], &slow(2)).stay(Metric::P95Ms, 30.0, None, true);
        assert_eq!(s.map(|s| (s.of, s.median)), Some((HELD, 10.0)));
        // Nothing read yet: no figure at all.
        assert_eq!(
            minutes(&half, &[]).stay(Metric::P95Ms, 30.0, None, true),
            None
        );
        // Nor for figures that are not latency, nor unlearnt ones before a firing.
        assert_eq!(
            minutes(&half, &recent).stay(Metric::Qps, 30.0, None, false),
            None
        );
        assert_eq!(
            minutes(&[], &recent).stay(Metric::P95Ms, 30.0, None, false),
            None
        );
    }

    #[test]
    fn all_but_one_is_a_binomial_tail() {
        assert!((all_but_one(5, 0.5) - 6.0 / 32.0).abs() < 1e-12);
        assert!((all_but_one(5, 1.0) - 1.0).abs() < 1e-12);
        assert!(all_but_one(5, 0.0).abs() < 1e-12);
    }
}
