//! Each model's normal, learnt from its own history, so rules can judge "slow for this
//! model" instead of "slower than a number one slow model breaks forever".
//!
//! A baseline is computed from the per-minute figures of the 24-hour rings the store
//! already keeps: the last hour (`learn`), leaving out the most recent minutes
//! (`skip_recent`), the minutes spent in an incident and the minutes the monitor was
//! blind (broker down). Latency and traffic are medians of the minutes, so a burst that
//! never became an alert moves them little; the error rate is pooled over the minutes
//! kept. An incident therefore does not become the new normal: its minutes are left out
//! while it lasts, and a long one would take half the learning window to move a median.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::BaselineSection;
use super::stay::Minutes;
use crate::store::history::{HistoryPoint, HistoryView, Range};

/// A minute needs this many requests for its percentiles to count.
const MIN_REQUESTS_PER_MINUTE: u64 = 5;
/// And this many such minutes make a latency baseline (fewer if `min_history` is shorter).
const MIN_LATENCY_MINUTES: usize = 3;
/// Baselines move slowly: each is recomputed once a minute; one still learning every
/// 10 s (a cell of the rings), so rules can judge as soon as there is enough history.
const REFRESH_MS: i64 = 60_000;
const LEARNING_REFRESH_MS: i64 = 10_000;
/// Recomputed per evaluation at most, so a fleet of models spreads the work over ticks.
const PER_TICK: usize = 4;
/// Models whose last minutes are read per evaluation at most: 150 a minute at the
/// longest interval (10 s), in seconds at the default one.
const RECENT_PER_TICK: usize = 25;

/// One model's normal. Figures are `None` until enough history is learnt.
///
/// Saved in `alerts.json`: a field missing from another version's file takes its
/// default, rather than failing the whole file (and every alert and silence in it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Baseline {
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub error_rate: Option<f64>,
    pub qps: Option<f64>,
    /// How many times more the model's minutes vary from one to the next than requests
    /// arriving each on its own would make them: about the size of its bursts when a
    /// client sends many at a time (a batch job's 60 every minute or two). A traffic
    /// drop is judged over a window that many times longer (`measure`): an empty half
    /// minute between two bursts is no drop. From the last hour's minutes; `None` under
    /// 2 (independent requests vary that much by chance over an hour), when too few
    /// minutes tell, and always in `earlier`.
    pub qps_bursts: Option<f64>,
    /// Minutes of the last hour under a quarter of the mean (lulls, a drop were they a
    /// window): only a model with [`MIN_LULLS`] of them has its window lengthened past a
    /// minute for its bursts. Traffic that wobbles from minute to minute varies as much,
    /// but never comes near a drop, and a longer window would only make an outage slower
    /// to see.
    pub qps_lulls: u32,
    /// Time to first byte of the streamed answers (an LLM's first token), learnt like
    /// latency from the minutes that had enough of them; `None` for a model that does
    /// not stream.
    pub ttfb_p50_ms: Option<f64>,
    pub ttfb_p95_ms: Option<f64>,
    pub ttfb_p99_ms: Option<f64>,
    /// How far each latency figure goes in the slowest 5 % of the same minutes (their
    /// 95th percentile) or, for p95 and p99 of the last hour, in a live window by chance
    /// (the latency of the slowest requests of those minutes, as many as a window's
    /// figure can reach once in 10 000 windows and at least one a window on average:
    /// `chance_percentile`), whichever is further, and no further than in the older
    /// half of the minutes. A model whose normal has two modes (a cache's misses, a
    /// cold path) reaches its slow one there from time to time, and is not judged
    /// regressed when it does (`rules::Relative::limits`); a slowdown creeping up over
    /// the hour reaches only the newer half, and does not raise its own limit.
    pub p50_high_ms: Option<f64>,
    pub p95_high_ms: Option<f64>,
    pub p99_high_ms: Option<f64>,
    pub ttfb_p50_high_ms: Option<f64>,
    pub ttfb_p95_high_ms: Option<f64>,
    pub ttfb_p99_high_ms: Option<f64>,
    /// Seconds of history the figures come from.
    pub over_s: u64,
    /// The span looked at, Unix ms.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Seconds of that span left out as incidents or blindness.
    pub excluded_s: u64,
    /// Whether `over_s` reaches `min_history`: relative rules judge only then.
    pub ready: bool,
    /// Kept from an earlier computation because incidents now fill too much of the
    /// learning window: a long incident must not leave the model without a normal.
    pub held: bool,
    /// The same figures over the `earlier` span before this one (5 h before the last
    /// hour), when enough of it is known: a slowdown that crept up for hours has dragged
    /// this normal along but not that one, and latency rules judge against the lower of
    /// the two (`measure`). Its own `earlier` is always `None`.
    pub earlier: Option<Box<Baseline>>,
    /// How it was computed, in one sentence.
    pub explanation: String,
    /// The minutes behind the latency figures, learnt and recent: whether a figure stays
    /// in its slow mode for longer than its minutes do by chance. Not saved: the first
    /// refresh after a restart reads them again.
    #[serde(skip)]
    pub minutes: Arc<Minutes>,
    /// Judged as a model with one mode (its slow modes left out of its limits): the
    /// normal an alert that fired for a stay in one is judged against until it resolves.
    #[serde(skip)]
    pub one_mode: bool,
}

/// Which span a baseline's sentence describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// `learn`, up to `skip_recent` ago.
    Last,
    /// `earlier`, before that.
    Before,
}

/// What a minute of history is to a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Minute {
    Kept,
    /// Part of an incident or of an outage: left out, and counted as such.
    Excluded,
    /// Not seen (or seen only in part) by the monitor.
    Unseen,
}

/// Spans `[from_ms, to_ms)` a baseline must not learn from.
pub type Spans = Vec<(i64, i64)>;

fn overlaps(spans: &[(i64, i64)], from_ms: i64, to_ms: i64) -> bool {
    spans.iter().any(|&(a, b)| a < to_ms && b > from_ms)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        f64::midpoint(xs[n / 2 - 1], xs[n / 2])
    })
}

/// Pairs of neighbouring minutes needed to tell how a model's requests arrive.
const MIN_MINUTE_PAIRS: usize = 5;

/// How many times more `minutes` (`(start, requests)`, in time order) vary from one to
/// the next than requests arriving each on its own would make them, when past
/// [`BURSTY`].
// Neighbours' differences rather than the spread of all minutes: traffic that rises
// over the hour (its busy time coming) moves neighbours alike and is no burst. The
// largest tenth are left out: a step (a second client starting) is one large
// difference, where bursts make many. For independent arrivals (a - b)² is 2μ on
// average, and the smallest nine tenths average [`NINE_TENTHS`] of that. A busy
// model's traffic wobbling 10 % from minute to minute is past it too (7 at 10 req/s),
// and the window that expects 20 × it of its requests is still under 30 s.
fn bursts(minutes: &[(i64, u64)]) -> Option<f64> {
    let per_minute = per_minute(minutes);
    let mut squares: Vec<f64> = minutes
        .windows(2)
        .filter(|w| w[1].0 - w[0].0 == 60_000)
        .map(|w| (w[1].1 as f64 - w[0].1 as f64).powi(2))
        .collect();
    if squares.len() < MIN_MINUTE_PAIRS || per_minute == 0.0 {
        return None;
    }
    squares.sort_by(f64::total_cmp);
    squares.truncate(squares.len() - squares.len().div_ceil(10));
    let usual = squares.iter().sum::<f64>() / squares.len() as f64;
    Some(usual / (NINE_TENTHS * 2.0 * per_minute)).filter(|&d| d >= BURSTY)
}

/// The mean of the smallest nine tenths of the squares of a normal variable.
const NINE_TENTHS: f64 = 0.623;

/// The mean requests of `minutes` (`(start, requests)`), 0 for none.
fn per_minute(minutes: &[(i64, u64)]) -> f64 {
    let total: u64 = minutes.iter().map(|m| m.1).sum();
    total as f64 / minutes.len().max(1) as f64
}

/// How many of `minutes` (`(start, requests)`) had under a quarter of their mean.
fn lulls(minutes: &[(i64, u64)]) -> u32 {
    let quarter = per_minute(minutes) / 4.0;
    let n = minutes.iter().filter(|m| (m.1 as f64) < quarter).count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The value 5 % of `xs` reach or pass (nearest rank).
fn slowest_twentieth(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let rank = (xs.len() * 19).div_ceil(20).max(1);
    Some(xs[rank - 1])
}

/// How far a figure goes in its slowest 5 % of `minutes` (oldest first), but no further
/// than the slowest of their older half: a second mode of the model's shows there too,
/// while a slowdown creeping up over the hour shows only in the newer half, and must not
/// raise the limit it is judged against.
fn usual_high(minutes: &[f64]) -> Option<f64> {
    let older = minutes[..minutes.len() / 2]
        .iter()
        .copied()
        .max_by(f64::total_cmp)?;
    Some(slowest_twentieth(minutes.to_vec())?.min(older))
}

/// How rarely a live window may reach a latency by chance for it to count as the model's
/// own (its slow mode): once in 10 000 windows, about once a week of windows a minute.
const CHANCE: f64 = 1e-4;

/// The percentile of all of a model's requests that the figure at percentile `q` of a
/// live window of `n` requests reaches by chance once in [`CHANCE`] windows.
///
/// A window's p95 is past a latency when 5 % of its requests are. A model whose slow
/// mode (a cache's misses) is 4 % of its requests has its p95 in the fast mode in most
/// minutes and in the slow one in too few to show in their slowest 5 %, yet a window
/// gets there every few minutes while nothing changed. How far short of 5 % a share may
/// be and still get there depends on how many requests a window holds: at 10 req/s (600
/// a minute) the slowest 2.4 % of the hour's requests are reached, at 2 req/s the
/// slowest 0.9 %. The count past a latency is Poisson: summed exactly up to 500, normal
/// beyond.
fn chance_percentile(q: f64, n: f64) -> Option<f64> {
    let n = n.round();
    if n < 1.0 || !(0.0..1.0).contains(&q) {
        return None;
    }
    // Past a latency: the nearest-rank percentile of `n` is past it when this many are.
    let k = n - (q * n).ceil() + 1.0;
    let expected = if k <= 500.0 {
        // The expected count whose chance of reaching `k` is CHANCE, by bisection.
        let reach = |lambda: f64| {
            let (mut term, mut below) = ((-lambda).exp(), 0.0);
            for i in 0..k as u32 {
                below += term;
                term *= lambda / f64::from(i + 1);
            }
            1.0 - below
        };
        let (mut lo, mut hi) = (0.0, k);
        for _ in 0..50 {
            let mid = f64::midpoint(lo, hi);
            if reach(mid) < CHANCE {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    } else {
        // lambda + z sqrt(lambda) = k - 1/2, z the normal's 1 - CHANCE quantile.
        const Z: f64 = 3.719;
        let root = f64::midpoint(-Z, (Z * Z + 4.0 * (k - 0.5)).sqrt());
        root * root
    };
    Some((1.0 - expected / n).clamp(q, 1.0))
}

/// A point's span in Unix seconds.
fn seconds_of(p: &HistoryPoint) -> (i64, i64) {
    let start = p.start_ms.div_euclid(1000);
    (start, start + i64::from(p.step_s))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

/// The baseline of `model` at `now_ms`, leaving out `excluded` spans, with the normal of
/// the `earlier` span before it (whether or not that one is ready: see [`Baselines`]).
/// `window_s`: the live window's length, which the figures judged are taken over.
pub fn compute(
    history: &HistoryView,
    model: &str,
    cfg: &BaselineSection,
    excluded: &[(i64, i64)],
    now_ms: i64,
    window_s: u32,
) -> Baseline {
    // Whole minutes, so a minute's figures are never half a minute's.
    let to_ms = (now_ms - ms(cfg.skip_recent.0)).div_euclid(60_000) * 60_000;
    let from_ms = to_ms - ms(cfg.learn.0);
    let last = Learn {
        span: (from_ms, to_ms),
        step_min: 1,
        need_s: cfg.min_history.0.as_secs(),
        window_s: Some(window_s),
    };
    let mut b = learn(history, model, cfg, excluded, now_ms, &last);
    b.explanation = describe(&b, cfg, Span::Last);
    if !cfg.earlier.0.is_zero() {
        // Their distributions are kept per 5 minutes (`store::ring`): points of a minute
        // would repeat them five times over. Whole points, so none is cut short (the
        // config holds `earlier` to whole 5 minutes).
        let step_min = 5;
        let to_ms = from_ms.div_euclid(step_min * 60_000) * step_min * 60_000;
        let before = Learn {
            span: (to_ms - ms(cfg.earlier.0), to_ms),
            step_min,
            // A few minutes must not stand for hours (a model that first sent 70 min
            // ago, a monitor that was off): as much as the last hour's span at least.
            need_s: cfg
                .min_history
                .0
                .max(cfg.learn.0.min(cfg.earlier.0))
                .as_secs(),
            // Its slow minutes only: it judges a creep that the last hour's live
            // figures are past, not a live window (`measure::judged_base`).
            window_s: None,
        };
        let mut e = learn(history, model, cfg, excluded, now_ms, &before);
        e.explanation = describe(&e, cfg, Span::Before);
        b.earlier = Some(Box::new(e));
    }
    b
}

/// The span a baseline is learnt from, the points it is read in, how much of it must be
/// known, and the live window its figures are judged over (`None`: none is).
struct Learn {
    span: (i64, i64),
    step_min: i64,
    need_s: u64,
    window_s: Option<u32>,
}

/// ", up from p95 60.0 ms in the 5 h before" when the last hour's p95 is half as high
/// again as the earlier span's or more: a creeping slowdown shows in the sentence before
/// it is an incident.
fn rise(b: &Baseline, cfg: &BaselineSection) -> String {
    let earlier = b.earlier.as_deref().filter(|e| e.ready);
    match (b.p95_ms, earlier.and_then(|e| e.p95_ms)) {
        (Some(now), Some(then)) if now >= 1.5 * then => format!(
            "; up from p95 {} in the {} before",
            show_ms(then),
            minutes(cfg.earlier.0.as_secs())
        ),
        _ => String::new(),
    }
}

/// The figures of `model` over the whole minutes of `[from_ms, to_ms)`.
fn learn(
    history: &HistoryView,
    model: &str,
    cfg: &BaselineSection,
    excluded: &[(i64, i64)],
    now_ms: i64,
    how: &Learn,
) -> Baseline {
    let (from_ms, to_ms) = how.span;
    let points_of = usize::try_from((to_ms - from_ms) / 60_000 / how.step_min).unwrap_or(60);
    let points = history.series(
        model,
        &Range::Between { from_ms, to_ms },
        now_ms,
        points_of.max(1),
    );
    // As many requests a minute for a point's percentiles to count, whatever its length.
    let min_requests = MIN_REQUESTS_PER_MINUTE * how.step_min.unsigned_abs();
    let (mut qps, mut p50, mut p95, mut p99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // The points whose percentiles count, in seconds, for their requests merged.
    let mut timed = Vec::new();
    let (mut requests, mut errors, mut used_s, mut excluded_s) = (0u64, 0u64, 0u64, 0u64);
    // Each whole minute's requests, in time order, for how they arrive (`bursts`).
    let mut arrivals = Vec::new();
    let uptime = history.uptime();
    let born_ms = first_minute_ms(history, model, from_ms, now_ms);
    // A minute the monitor saw only part of would count its requests against the whole
    // minute (a backlog replayed for a minute it never ran is still whole); a minute of
    // an incident or of blindness is no normal.
    let judge = |p: &HistoryPoint| {
        let (start_s, end_s) = seconds_of(p);
        let seen_s = uptime.covered(start_s, end_s);
        // The monitor ran then, but the model was not there yet: no traffic of it to
        // learn, not a traffic of 0.
        let unborn = born_ms.is_some_and(|b| p.start_ms < b);
        if unborn || !p.covered || (seen_s > 0 && seen_s < u64::from(p.step_s)) {
            Minute::Unseen
        } else if overlaps(
            excluded,
            p.start_ms,
            p.start_ms + i64::from(p.step_s) * 1000,
        ) {
            Minute::Excluded
        } else {
            Minute::Kept
        }
    };
    // Every seen point's figures of the hours before the last, incidents' too, for how
    // long its slow spells last: a spell that fired once (an hourly batch job's) is one
    // the model has. The last hour's minutes are read whole with the recent ones.
    let mut spells: [Vec<f64>; 6] = Default::default();
    let mut spell = |first: usize, p: &HistoryPoint| {
        if how.step_min > 1 && p.requests >= min_requests {
            for (i, v) in [p.p50_ms, p.p95_ms, p.p99_ms].into_iter().enumerate() {
                spells[first + i].extend(v);
            }
        }
    };
    for p in &points {
        match judge(p) {
            Minute::Unseen => continue,
            Minute::Excluded => {
                spell(0, p);
                excluded_s += u64::from(p.step_s);
                continue;
            }
            Minute::Kept => spell(0, p),
        }
        used_s += u64::from(p.step_s);
        requests += p.requests;
        errors += p.errors;
        qps.push(p.requests as f64 / f64::from(p.step_s.max(1)));
        // Not the model's first minute: it sent for only part of it.
        if how.step_min == 1 && born_ms != Some(p.start_ms) {
            arrivals.push((p.start_ms, p.requests));
        }
        if p.requests >= min_requests {
            p50.extend(p.p50_ms);
            p95.extend(p.p95_ms);
            p99.extend(p.p99_ms);
            timed.push(seconds_of(p));
        }
    }
    // The streamed answers' first bytes, minute by minute over the same span.
    let (mut t50, mut t95, mut t99) = (Vec::new(), Vec::new(), Vec::new());
    let (mut streamed_timed, mut streamed_rate) = (Vec::new(), Vec::new());
    let streamed = history.ttfb_series(
        model,
        &Range::Between { from_ms, to_ms },
        now_ms,
        points_of.max(1),
    );
    for p in &streamed {
        match judge(p) {
            Minute::Unseen => continue,
            Minute::Excluded => {
                spell(3, p);
                continue;
            }
            Minute::Kept => spell(3, p),
        }
        streamed_rate.push(p.requests as f64 / f64::from(p.step_s.max(1)));
        if p.requests >= min_requests {
            t50.extend(p.p50_ms);
            t95.extend(p.p95_ms);
            t99.extend(p.p99_ms);
            streamed_timed.push(seconds_of(p));
        }
    }
    let ready = used_s >= how.need_s;
    let min_minutes = MIN_LATENCY_MINUTES
        .min(usize::try_from(cfg.min_history.0.as_secs() / 60).unwrap_or(MIN_LATENCY_MINUTES));
    let qps_bursts = if ready { bursts(&arrivals) } else { None };
    let qps_lulls = lulls(&arrivals);
    let qps = if ready { median(qps) } else { None };
    // How far p95 and p99 of a live window go by chance at the normal rate (of
    // requests, or of streamed answers), over the older half of the timed minutes, as
    // `usual_high`: a climb over the hour must not raise its own limit. A mode gives a
    // window one request on average, at least (30 of the older half hour's with a 60-s
    // window): a window of 20 reaches its hour's slowest few now and then, a long tail
    // and no mode, and 1.5 × those would hide a model 4 × slower; half the figure's
    // share instead left 2 % at 2 req/s unlearnt, a minute's p95 in it some 15 times a
    // day. Not the median: a share near half is no rare mode, and 25 % of a widely
    // spread model's requests are far enough past its median to hide a slowdown.
    let by_chance = |first_bytes: bool, rate: Option<f64>, timed: &[(i64, i64)]| {
        let in_window = rate.zip(how.window_s).map(|(r, w)| r * f64::from(w));
        let at = [0.95, 0.99].map(|q| {
            let n = in_window?;
            Some(chance_percentile(q, n)?.min((1.0 - 1.0 / n).max(q)))
        });
        let ([Some(at95), Some(at99)], true) = (at, ready) else {
            return [None; 2];
        };
        let older = &timed[..timed.len() / 2];
        history
            .merged_percentiles(model, first_bytes, older, &[at95, at99])
            .map_or([None; 2], |v| v.map(Some))
    };
    let of_requests = by_chance(false, qps, &timed);
    let of_answers = by_chance(true, median(streamed_rate), &streamed_timed);
    // How far each goes in its slowest 5 % of minutes or by chance, and the median of the
    // minutes.
    let latency = |xs: Vec<f64>, chance: Option<f64>| {
        if !ready || xs.len() < min_minutes.max(1) {
            return (None, None);
        }
        let high = match (usual_high(&xs), chance) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        (high, median(xs))
    };
    let minutes = Minutes::learnt(
        [&p50, &p95, &p99, &t50, &t95, &t99].map(Vec::as_slice),
        spells,
        how.step_min.unsigned_abs() as usize,
    );
    let ((p50_high_ms, p50_ms), (p95_high_ms, p95_ms), (p99_high_ms, p99_ms)) = (
        latency(p50, None),
        latency(p95, of_requests[0]),
        latency(p99, of_requests[1]),
    );
    let ((ttfb_p50_high_ms, ttfb_p50_ms), (ttfb_p95_high_ms, ttfb_p95_ms)) =
        (latency(t50, None), latency(t95, of_answers[0]));
    let (ttfb_p99_high_ms, ttfb_p99_ms) = latency(t99, of_answers[1]);
    Baseline {
        p50_ms,
        p95_ms,
        p99_ms,
        ttfb_p50_ms,
        ttfb_p95_ms,
        ttfb_p99_ms,
        p50_high_ms,
        p95_high_ms,
        p99_high_ms,
        ttfb_p50_high_ms,
        ttfb_p95_high_ms,
        ttfb_p99_high_ms,
        error_rate: (ready && requests > 0).then(|| errors as f64 / requests as f64),
        qps,
        qps_bursts,
        qps_lulls,
        over_s: used_s,
        from_ms,
        to_ms,
        excluded_s,
        ready,
        held: false,
        earlier: None,
        explanation: String::new(),
        minutes: Arc::new(minutes),
        one_mode: false,
    }
}

/// The start of the first minute with requests of a model whose history begins within
/// the hour before `from_ms` or later (older ones were there all along); `None` for those.
fn first_minute_ms(history: &HistoryView, model: &str, from_ms: i64, now_ms: i64) -> Option<i64> {
    let first_hour_ms = history.hours_of(model)?.into_iter().min()? * 1000;
    if first_hour_ms + 3_600_000 <= from_ms {
        return None;
    }
    let hour = Range::Between {
        from_ms: first_hour_ms,
        to_ms: first_hour_ms + 3_600_000,
    };
    let first = history
        .series(model, &hour, now_ms, 60)
        .iter()
        .find(|p| p.requests > 0)
        .map(|p| p.start_ms);
    Some(first.unwrap_or(first_hour_ms))
}

fn minutes(s: u64) -> String {
    let m = s / 60;
    if m >= 120 && m % 60 == 0 {
        format!("{} h", m / 60)
    } else {
        format!("{m} min")
    }
}

/// A latency figure's high (its slowest minutes, or its slow requests), when that is
/// twice its median or more: the model's second mode (a cache's misses), shown beside
/// its normal.
pub fn second_mode(median: f64, high: Option<f64>) -> Option<f64> {
    high.filter(|h| *h >= 2.0 * median)
}

/// One sentence: what the normal is and where it comes from.
fn describe(b: &Baseline, cfg: &BaselineSection, span: Span) -> String {
    let learn = minutes(cfg.learn.0.as_secs());
    if !b.ready {
        return format!(
            "learning: {} of the {} of history needed{}",
            minutes(b.over_s),
            minutes(cfg.min_history.0.as_secs()),
            if cfg.skip_recent.0.as_secs() >= 60 {
                format!(
                    " (a minute counts once {} old)",
                    minutes(cfg.skip_recent.0.as_secs())
                )
            } else {
                String::new()
            }
        );
    }
    let mut figures = Vec::new();
    // A high well above the median (slow minutes, or slow requests enough to make one
    // by chance) is the model's second mode: said, since a regression is then judged
    // against it.
    let latency = |name: &str, median: f64, high: Option<f64>| match second_mode(median, high) {
        Some(h) => format!("{name} {} (slow mode {})", show_ms(median), show_ms(h)),
        _ => format!("{name} {}", show_ms(median)),
    };
    if let Some(p) = b.p95_ms {
        figures.push(latency("p95", p, b.p95_high_ms));
    }
    if let Some(p) = b.ttfb_p95_ms {
        figures.push(latency("TTFB p95", p, b.ttfb_p95_high_ms));
    }
    if let Some(e) = b.error_rate {
        figures.push(format!("{} errors", show_rate(e)));
    }
    if let Some(q) = b.qps {
        // Said only of a model whose bursts leave lulls: its traffic drop waits longer.
        figures.push(match b.bursts_with_lulls() {
            Some(d) => format!("{} req/s, {}", show_qps(q), show_bursts(d)),
            None => format!("{} req/s", show_qps(q)),
        });
    }
    let mut left_out = Vec::new();
    if span == Span::Last && cfg.skip_recent.0.as_secs() >= 60 {
        left_out.push(format!("the last {}", minutes(cfg.skip_recent.0.as_secs())));
    }
    if b.excluded_s > 0 {
        left_out.push(format!(
            "{} of incidents and outages",
            minutes(b.excluded_s)
        ));
    }
    let left_out = if left_out.is_empty() {
        String::new()
    } else {
        format!(" ({} left out)", left_out.join(" and "))
    };
    let of = match span {
        Span::Last => format!("the last {learn}"),
        Span::Before => format!(
            "the {} before the last {learn}",
            minutes(cfg.earlier.0.as_secs())
        ),
    };
    format!(
        "{}: per-minute medians over {} of {of}{left_out}",
        figures.join(", "),
        minutes(b.over_s),
    )
}

/// Past this, a model's requests come in bursts: under it, the minutes of independent
/// requests can vary as much by chance over an hour (60 pairs of 12 requests a minute
/// reach 1.5 now and then).
const BURSTY: f64 = 2.0;

/// How bursty a model's requests are (`qps_bursts`), for people: "40× as uneven as
/// steady traffic".
pub fn show_bursts(d: f64) -> String {
    format!("{d:.0}× as uneven as steady traffic")
}

/// Milliseconds for people: 0.42 ms, 4.0 ms, 470 ms, 2.3 s.
pub fn show_ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0} s", v / 1000.0)
    } else if v >= 1000.0 {
        format!("{:.1} s", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0} ms")
    } else if v >= 1.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.2} ms")
    }
}

/// A ratio as a percentage with the precision it deserves: 0.04 %, 2.5 %, 31 %.
pub fn show_rate(r: f64) -> String {
    let p = r * 100.0;
    if p >= 10.0 {
        format!("{p:.0} %")
    } else if p >= 1.0 {
        format!("{p:.1} %")
    } else {
        format!("{p:.2} %")
    }
}

pub fn show_qps(q: f64) -> String {
    if q >= 100.0 {
        format!("{q:.0}")
    } else if q >= 1.0 {
        format!("{q:.1}")
    } else {
        format!("{q:.2}")
    }
}

/// Lulls in an hour that make a way of sending, not a deploy's one minute.
pub const MIN_LULLS: u32 = 2;

impl Baseline {
    /// `qps_bursts` of a model whose bursts leave lulls between them ([`MIN_LULLS`]).
    #[must_use]
    pub fn bursts_with_lulls(&self) -> Option<f64> {
        self.qps_bursts.filter(|_| self.qps_lulls >= MIN_LULLS)
    }

    /// This normal of the last hour without its slow modes: what an alert that fired for
    /// staying in one is judged against until it resolves.
    #[must_use]
    pub fn with_one_mode(&self) -> Self {
        Self {
            one_mode: true,
            earlier: None,
            ..self.clone()
        }
    }
}

/// The normal to keep while incidents fill the learning window.
fn held(old: &Baseline) -> Baseline {
    Baseline {
        held: true,
        explanation: if old.held {
            old.explanation.clone()
        } else {
            format!(
                "{}; kept while incidents fill the recent history",
                old.explanation
            )
        },
        ..old.clone()
    }
}

/// `new`, or the normal before it (`held`) when incidents left too little history for it.
fn or_held(new: Baseline, old: Option<&Baseline>) -> Baseline {
    match old {
        Some(o) if o.ready && !new.ready && new.excluded_s > 0 => held(o),
        _ => new,
    }
}

/// Every model's baseline, as readers get it: shared, rebuilt only when one changes.
pub type SharedBaselines = Arc<BTreeMap<String, Arc<Baseline>>>;

/// The baselines of every model, refreshed a few per evaluation.
#[derive(Debug, Default)]
pub struct Baselines {
    by_model: HashMap<String, (i64, Arc<Baseline>)>,
    shared: SharedBaselines,
}

impl Baselines {
    /// Computes the baselines of models seen for the first time, recomputes those that
    /// are a minute old (at most [`PER_TICK`] of them), and forgets models no longer in
    /// `models`. `excluded(model)` gives the spans to leave out.
    pub fn refresh<'a>(
        &mut self,
        history: &HistoryView,
        models: impl Iterator<Item = &'a str>,
        cfg: &BaselineSection,
        now_ms: i64,
        window_s: u32,
        mut excluded: impl FnMut(&str) -> Spans,
    ) {
        let mut seen = Vec::new();
        let mut budget = PER_TICK;
        let mut changed = false;
        for model in models {
            seen.push(model);
            let stale = self.by_model.get(model).is_none_or(|(at, b)| {
                let every = if b.ready {
                    REFRESH_MS
                } else {
                    LEARNING_REFRESH_MS
                };
                now_ms - at >= every || now_ms < *at
            });
            // A model seen for the first time gets its normal at once (a restart with a
            // snapshot judges from its first view); refreshes share the budget.
            let first = !self.by_model.contains_key(model);
            if first || (stale && budget > 0) {
                budget = budget.saturating_sub(1);
                let mut b = compute(history, model, cfg, &excluded(model), now_ms, window_s);
                let old = self.get(model);
                let earlier = b
                    .earlier
                    .take()
                    .map(|e| or_held(*e, old.and_then(|o| o.earlier.as_deref())));
                b = or_held(b, old);
                // A held normal keeps the hours before it too: the two spans stay one
                // after the other, and a long incident is judged as it began.
                if !b.held {
                    b.earlier = earlier.filter(|e| e.ready).map(Box::new);
                    b.explanation.push_str(&rise(&b, cfg));
                }
                changed |= self.get(model) != Some(&b);
                self.by_model
                    .insert(model.to_owned(), (now_ms, Arc::new(b)));
            }
        }
        // The last minutes of every model, once a minute, whatever the learning budget:
        // a stay is judged on them, and a held normal keeps reading them too. A few
        // dozen a tick, so a fleet's minute boundary is no one long tick.
        let mut reads = RECENT_PER_TICK;
        for model in &seen {
            if let Some((_, b)) = self.by_model.get_mut(*model)
                && !b.minutes.is_current(now_ms)
                && reads > 0
            {
                reads -= 1;
                let b = Arc::make_mut(b);
                Arc::make_mut(&mut b.minutes).read_recent(history, model, now_ms);
                changed = true;
            }
        }
        if self.by_model.len() > seen.len() {
            self.by_model.retain(|k, _| seen.contains(&k.as_str()));
            changed = true;
        }
        if changed {
            self.shared = Arc::new(
                self.by_model
                    .iter()
                    .map(|(k, (_, b))| (k.clone(), Arc::clone(b)))
                    .collect(),
            );
        }
    }

    /// Takes back normals saved with the alerts: each stands until it is recomputed (at
    /// the first refresh), and is held if incidents then leave too little history.
    pub fn restore(&mut self, saved: impl IntoIterator<Item = (String, Baseline)>, now_ms: i64) {
        for (model, b) in saved.into_iter().filter(|(_, b)| b.ready) {
            self.by_model
                .insert(model, (now_ms - REFRESH_MS, Arc::new(b)));
        }
        self.shared = Arc::new(
            self.by_model
                .iter()
                .map(|(k, (_, b))| (k.clone(), Arc::clone(b)))
                .collect(),
        );
    }

    pub fn get(&self, model: &str) -> Option<&Baseline> {
        self.by_model.get(model).map(|(_, b)| &**b)
    }

    /// Every model's baseline, for readers.
    pub fn shared(&self) -> SharedBaselines {
        Arc::clone(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_shown_figures() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        // Nearest rank: of an hour's 55 minutes, the third slowest.
        let minutes: Vec<f64> = (1..=55).map(f64::from).collect();
        assert_eq!(slowest_twentieth(minutes), Some(53.0));
        let minutes: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(slowest_twentieth(minutes), Some(19.0));
        assert_eq!(slowest_twentieth(vec![5.0]), Some(5.0));
        assert_eq!(slowest_twentieth(Vec::new()), None);
        // A second mode in the older half of the hour is usual; a climb in the newer
        // only is not.
        let two_modes: Vec<f64> = (0..40)
            .map(|i| if i % 9 == 0 { 200.0 } else { 20.0 })
            .collect();
        assert_eq!(usual_high(&two_modes), Some(200.0));
        let climbing: Vec<f64> = (0..40).map(|i| 20.0 * 1.05_f64.powi(i)).collect();
        assert_eq!(
            usual_high(&climbing),
            Some(climbing[19]),
            "the older half's slowest"
        );
        // One slow minute in the older half is not a mode: the 5 % rank bounds it.
        let mut blip = vec![20.0; 40];
        blip[3] = 500.0;
        assert_eq!(usual_high(&blip), Some(20.0));
        assert_eq!(usual_high(&[20.0]), None, "no older half");
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(Vec::new()), None);
        assert_eq!(show_ms(4.04), "4.0 ms");
        assert_eq!(show_ms(470.2), "470 ms");
        assert_eq!(show_ms(2300.0), "2.3 s");
        assert_eq!(show_rate(0.3123), "31 %");
        assert_eq!(show_rate(0.001), "0.10 %");
    }

    #[test]
    fn a_window_reaches_by_chance_less_the_fewer_requests_it_holds() {
        let share = |q, n| chance_percentile(q, n).map(|at| 1.0 - at);
        let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 0.001);
        // A p95 over a minute at 10 req/s: 4 % slow requests (a cache's misses) reach it
        // now and then, 1 % never.
        assert!(near(share(0.95, 600.0), 0.024), "{:?}", share(0.95, 600.0));
        assert!(near(share(0.95, 120.0), 0.0086), "{:?}", share(0.95, 120.0));
        assert!(
            near(share(0.95, 6000.0), 0.0404),
            "{:?}",
            share(0.95, 6000.0)
        );
        // Past 500 requests needed past it, the normal approximation: no jump there.
        let (exact, normal) = (share(0.5, 998.0), share(0.5, 1000.0));
        let jump = exact.zip(normal).map(|(e, n)| (e - n).abs());
        assert!(jump.is_some_and(|j| j < 0.003), "{exact:?} {normal:?}");
        let more: Vec<f64> = [20.0, 60.0, 600.0, 60_000.0]
            .iter()
            .filter_map(|&n| share(0.95, n))
            .collect();
        assert!(more.windows(2).all(|w| w[0] < w[1]), "{more:?}");
        assert!(
            more.iter().all(|&s| s < 0.05),
            "always short of the window's 5 %"
        );
        assert_eq!(
            chance_percentile(0.95, 0.4),
            None,
            "no requests in a window"
        );
    }

    #[test]
    fn a_clients_bursts_are_told_from_independent_requests_and_from_busy_hours() {
        let minutes = |counts: &[u64]| -> Vec<(i64, u64)> {
            (0..).zip(counts).map(|(i, &c)| (i * 60_000, c)).collect()
        };
        // 60 requests at a time, in two minutes of five.
        let batch: Vec<u64> = (0..60).map(|i| [60, 0, 60, 0, 0][i % 5]).collect();
        let d = bursts(&minutes(&batch)).expect("bursts");
        assert!((50.0..150.0).contains(&d), "{d}");
        // Independent requests vary by their square root, and traffic rising over the
        // hour moves neighbouring minutes alike: neither is a burst.
        let steady: Vec<u64> = (0..60).map(|i| [12, 9, 15, 11, 13][i % 5]).collect();
        assert_eq!(bursts(&minutes(&steady)), None);
        let rising: Vec<u64> = (0..60).map(|i| 100 + 10 * i).collect();
        assert_eq!(bursts(&minutes(&rising)), None);
        // Nor is a second client starting.
        let mut step = steady.clone();
        for c in &mut step[30..] {
            *c += 12;
        }
        assert_eq!(bursts(&minutes(&step)), None);
        // A busy model's traffic wobbling 10 % from minute to minute varies more than
        // independent requests do, but a minute holds hundreds of its "bursts".
        let busy: Vec<u64> = (0..60).map(|i| [600, 540, 660, 570, 630][i % 5]).collect();
        let d = bursts(&minutes(&busy)).expect("past independent requests");
        assert!((4.0..10.0).contains(&d), "{d}");
        // It has no lulls, where the batch client's pauses are its lulls.
        assert_eq!(lulls(&minutes(&busy)), 0);
        assert_eq!(lulls(&minutes(&batch)), 36);
        assert_eq!(lulls(&minutes(&steady)), 0);
        // Only neighbours count: two minutes an hour apart are no pair.
        let apart: Vec<(i64, u64)> = (0..60)
            .map(|i| (i * 3_600_000, batch[i as usize]))
            .collect();
        assert_eq!(bursts(&apart), None, "too few pairs");
        assert_eq!(bursts(&minutes(&[0; 30])), None, "no requests");
    }

    #[test]
    fn a_saved_normal_missing_a_field_still_decodes() {
        let b = Baseline {
            p95_ms: Some(4.0),
            error_rate: Some(0.01),
            over_s: 3600,
            ready: true,
            held: true,
            explanation: "over 60 min".to_owned(),
            ..Baseline::default()
        };
        // As another version's alerts.json would hold it: without a field this one has.
        let mut json = serde_json::to_value(&b).expect("a baseline encodes");
        let fields = json.as_object_mut().expect("an object");
        assert!(fields.remove("held").is_some());
        assert!(fields.remove("ttfb_p95_ms").is_some());
        let back: Baseline = serde_json::from_value(json).expect("decodes without them");
        assert_eq!(back, Baseline { held: false, ..b });
    }
}
