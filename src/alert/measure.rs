//! What each rule reads from a view, and the one sentence that says it with its figures.
//!
//! A reading is unknown (`value: None`) when there is nothing to judge: too few requests,
//! no container, no baseline yet. It is *blind* when the monitor cannot see at all (the
//! broker or the Docker engine is unreachable): then alerts stay as they are instead of
//! taking "no events" for "no traffic".

use std::time::Duration;

use super::baseline::{Baseline, show_bursts, show_ms, show_qps, show_rate};
use super::ml::MlMetric;
use super::rules::{Metric, Rule};
use crate::store::view::{ModelResources, ModelView, Stats, View};

/// Seconds of the per-second series left out at its young end: their events may still
/// be on their way (publishers batch, the broker delivers).
const SETTLING_S: usize = 2;
/// A traffic drop is judged over a window long enough to expect this many requests at
/// the model's normal rate: fewer would make silence a matter of luck.
const TRAFFIC_EXPECTED: f64 = 20.0;
const TRAFFIC_MIN_WINDOW_S: f64 = 30.0;
const TRAFFIC_MAX_WINDOW_S: f64 = 300.0;
/// An error rate without a `window` of its own is judged over a window long enough to
/// expect this many times the requests it needs at the model's rate (its normal, or the
/// live window's until a normal is learnt): expecting just the 20 needed would leave it
/// unknown half the time. Within the traffic window's bounds.
const ERRORS_EXPECTED_SHARE: f64 = 1.5;

/// One rule's look at one model (or at the monitor) at one evaluation.
// Its flags are independent facts about the figure (blind, scarce, may fire, judged
// against the hours before), which the engine reads one by one.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    pub value: Option<f64>,
    /// `(threshold, resolve)` in force; `None` when the rule cannot judge yet.
    pub limits: Option<(f64, f64)>,
    /// The model's normal for this metric, for relative rules.
    pub normal: Option<f64>,
    /// Unknown because the monitor cannot see: alerts hold their state.
    pub blind: bool,
    /// `false` when the value is past the threshold on too little evidence (fewer
    /// errors than `min_errors`): shown, but never fires.
    pub may_fire: bool,
    /// Unknown for too few requests (or events) in the window, not for want of a
    /// figure at all: a firing alert holds rather than resolving on a lull.
    pub scarce: bool,
    /// Judged against the normal of the hours before the last one (a creep).
    pub earlier: bool,
    /// Judged as a model with one mode, its slow mode left out of the limit, because
    /// the figure has stayed there for longer than chance keeps it (`stay`): since when
    /// (the first of those minutes, Unix ms).
    pub stayed_from_ms: Option<i64>,
    pub why: String,
}

impl Reading {
    fn known(value: f64, limits: Option<(f64, f64)>, why: String) -> Self {
        Self {
            value: Some(value),
            limits,
            may_fire: true,
            why,
            ..Self::default()
        }
    }

    fn unknown(why: String) -> Self {
        Self {
            why,
            ..Self::default()
        }
    }

    fn scarce(why: String) -> Self {
        Self {
            scarce: true,
            why,
            ..Self::default()
        }
    }

    fn blind(why: &str) -> Self {
        Self {
            blind: true,
            why: why.to_owned(),
            ..Self::default()
        }
    }
}

/// What the engine knows beyond one view: how long the monitor has seen events and the
/// Docker engine without a break.
#[derive(Debug, Clone, Copy)]
pub struct Sight {
    pub now_ms: i64,
    /// Since when events arrive without a break (the broker connected, or the demo
    /// started); `None` while the broker is not connected.
    pub events_since_ms: Option<i64>,
    /// Whether container figures can be read (Docker connected).
    pub docker: bool,
    /// The Docker engine is configured but unreachable: container rules are blind.
    pub docker_blind: bool,
}

/// "2 s", "45 s", "3 min", "2 h 5 min".
pub fn show_duration_ms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{} h {} min", s / 3600, s / 60 % 60)
    }
}

/// The learning window as people say it: "last hour", "last 30 min".
fn over(b: &Baseline) -> String {
    if b.to_ms - b.from_ms == 3_600_000 {
        "last hour".into()
    } else {
        format!("last {}", span_length(b))
    }
}

/// How long a baseline's span is: "5 h", "90 min".
fn span_length(b: &Baseline) -> String {
    let m = (b.to_ms - b.from_ms) / 60_000;
    if m % 60 == 0 {
        format!("{} h", m / 60)
    } else {
        format!("{m} min")
    }
}

/// How `v` stands to the normal, as the sentence puts it before "its normal": "4.1×", or
/// in words when the normal is 0 and no multiple means anything.
fn ratio(v: f64, normal: f64) -> String {
    if normal <= 0.0 {
        return if v > normal { "above" } else { "at" }.into();
    }
    let r = v / normal;
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.1}×")
    }
}

/// Requests and errors over the last `secs` settled seconds of the series.
fn series_sums(m: &ModelView, secs: usize) -> (u64, u64, usize) {
    let end = m.series.len().saturating_sub(SETTLING_S);
    let tail = &m.series[end.saturating_sub(secs)..end];
    let (r, e) = tail
        .iter()
        .fold((0, 0), |(r, e), p| (r + p.requests, e + p.errors));
    (r, e, tail.len())
}

fn window_secs(w: Duration) -> usize {
    usize::try_from(w.as_secs()).unwrap_or(usize::MAX)
}

/// The reading of a model rule. `firing`: the rule's alert for this model is, so a fixed
/// limit's sentence speaks of the resolve level it is judged against.
pub fn model_reading(
    rule: &Rule,
    m: &ModelView,
    res: Option<&ModelResources>,
    base: Option<&Baseline>,
    sight: &Sight,
    firing: bool,
) -> Reading {
    if rule.metric.needs_requests() && sight.events_since_ms.is_none() {
        return Reading::blind("the broker is not connected: request figures are unknown");
    }
    if rule.metric.from_docker() {
        // Agents on other hosts report these containers: this monitor's own engine has
        // nothing to do with them, their agents' silence does.
        let remote = res.filter(|r| from_agents(r));
        if let Some(r) = remote.filter(|r| !r.silent_hosts.is_empty()) {
            return Reading::blind(&format!(
                "the agent on {} is silent: container figures are unknown",
                r.silent_hosts.join(", ")
            ));
        }
        if remote.is_none() && sight.docker_blind {
            return Reading::blind(
                "the Docker engine cannot be reached: container figures are unknown",
            );
        }
    }
    if let Some(v) = &rule.version {
        return version_reading(rule, v, m, firing);
    }
    match rule.metric {
        Metric::P50Ms
        | Metric::P95Ms
        | Metric::P99Ms
        | Metric::TtfbP50Ms
        | Metric::TtfbP95Ms
        | Metric::TtfbP99Ms => live_percentile(rule, &m.stats, m.window_s, base, firing),
        Metric::ErrorRate => error_rate(rule, m, &m.stats, base, firing),
        Metric::Qps => traffic(rule, m, base, sight, firing),
        Metric::Measure(mm) => measure(rule, mm, m, firing),
        _ => container(rule, res, sight, firing),
    }
}

/// A rule narrowed to one version (latency or error rate, fixed limits, live window):
/// judged on that version's own figures, its sentence saying which version.
fn version_reading(rule: &Rule, version: &str, m: &ModelView, firing: bool) -> Reading {
    let Some(v) = m.versions.iter().find(|v| v.version == version) else {
        return Reading::unknown(format!(
            "version {version}: no request in the last {} s",
            m.window_s
        ));
    };
    let mut reading = match rule.metric {
        Metric::ErrorRate => error_rate(rule, m, &v.stats, None, firing),
        _ => live_percentile(rule, &v.stats, m.window_s, None, firing),
    };
    reading.why = format!("version {version}: {}", reading.why);
    reading
}

/// A statistic of one of the model's `ml` keys. A key no event carried in the window is
/// unknown (no data), never 0: a model that stopped sending `queue_us` is not a model
/// whose queue is empty.
fn measure(rule: &Rule, mm: MlMetric, m: &ModelView, firing: bool) -> Reading {
    let (key, stat) = (mm.key(), mm.stat().as_str());
    let Some(s) = m.ml.get(key) else {
        return Reading::unknown(format!(
            "no event carried ml.{key} in the last {} s",
            m.window_s
        ));
    };
    let need = rule.min_requests.max(1);
    let Some(v) = mm.stat().of(s).filter(|_| s.count >= need) else {
        return Reading::scarce(format!(
            "too few events with ml.{key} to judge its {stat} ({} in the last {} s, {need} needed)",
            s.count, m.window_s
        ));
    };
    let what = format!(
        "ml.{key} {stat} {} ({} events in {} s)",
        mm.show(v),
        s.count,
        m.window_s
    );
    let why = absolute(&what, rule, v, mm.shower(), firing);
    Reading::known(v, rule.limits(None, None), why)
}

/// The model's normal for the rule's metric and, for a latency figure, how far its
/// slowest 5 % of minutes take it.
fn normal_of(metric: Metric, base: Option<&Baseline>) -> (Option<f64>, Option<f64>) {
    let Some(b) = base else {
        return (None, None);
    };
    match metric {
        Metric::P50Ms => (b.p50_ms, b.p50_high_ms),
        Metric::P95Ms => (b.p95_ms, b.p95_high_ms),
        Metric::P99Ms => (b.p99_ms, b.p99_high_ms),
        Metric::TtfbP50Ms => (b.ttfb_p50_ms, b.ttfb_p50_high_ms),
        Metric::TtfbP95Ms => (b.ttfb_p95_ms, b.ttfb_p95_high_ms),
        Metric::TtfbP99Ms => (b.ttfb_p99_ms, b.ttfb_p99_high_ms),
        Metric::ErrorRate => (b.error_rate, None),
        Metric::Qps => (b.qps, None),
        _ => (None, None),
    }
}

/// How far the last hour's normal must have risen past where the hours before it went
/// (in their slowest minutes too) for a latency figure to be judged against their normal,
/// and how far the live figure must be past the last hour's normal, still climbing. Less
/// is the noise of two medians. A step (a new version slower) has levelled out by the time
/// the last hour's median has followed it: that is judged against the last hour, as before.
const CREPT: f64 = 1.25;
/// A model whose traffic grew by more than this since the hours before is slower for a
/// reason its callers made (its busy hours): the last hour judges it, as before.
const SAME_TRAFFIC: f64 = 1.5;

/// The baseline a latency figure `v` is judged against: the model's, or that of the span
/// before it when the model crept up since and `v` is past that one's limit. A
/// slowdown creeping up for hours drags the last hour's median along (it lags half an
/// hour behind, and never reaches 3 × it), but not the median of the hours before.
///
/// Crept up means: the figure and the body of the answers (their median) both rose past
/// where the hours before went, at no more traffic than then, and the figure is still
/// climbing. A shift between the modes of a two-mode model moves its p95 only; busier
/// hours bring more traffic. A model whose high sets its limit (two modes) is
/// judged against the last hour only: the hours before are kept per 5 minutes, which
/// smooth a second mode away, and their limit would take every slow minute for a
/// regression. The hours before judge only what the last hour would let pass: a figure
/// past the last hour's limit is judged and told as it always was, and one within both
/// is told against the last hour. An alert keeps the normal it fired against until it
/// resolves (the engine gives an alert that fired against the last hour a `base` without
/// the hours before); one that fired against them need not climb on: it resolves when
/// the model is back, not when the climb stops.
fn judged_base<'a>(
    rule: &Rule,
    base: Option<&'a Baseline>,
    v: f64,
    firing: bool,
) -> Option<&'a Baseline> {
    let b = base?;
    let (normal, high) = normal_of(rule.metric, Some(b));
    let limits_of = |b: &Baseline| {
        let (normal, high) = normal_of(rule.metric, Some(b));
        rule.limits(normal, high)
    };
    let Some(limits) = limits_of(b).filter(|_| rule.relative.is_some()) else {
        return Some(b);
    };
    let two_modes = high.is_some() && rule.limits(normal, None).is_some_and(|(t, _)| t < limits.0);
    // Firing with the hours before still in `base`: it fired against them (the engine
    // takes them out for an alert that fired against the last hour), and stays so.
    let climbing = firing || normal.is_some_and(|n| v >= CREPT * n);
    let bad_anyway = !firing && rule.is_bad(v, limits, false);
    if two_modes || !climbing || bad_anyway {
        return Some(b);
    }
    let rose = |metric: Metric, e: &Baseline| {
        let of = |b| normal_of(metric, Some(b));
        match (of(b).0, of(e)) {
            (Some(now), (Some(then), high)) => now >= CREPT * high.map_or(then, |h| h.max(then)),
            _ => false,
        }
    };
    let body = match rule.metric {
        Metric::TtfbP50Ms | Metric::TtfbP95Ms | Metric::TtfbP99Ms => Metric::TtfbP50Ms,
        _ => Metric::P50Ms,
    };
    let calm = |e: &Baseline| match (b.qps, e.qps) {
        (Some(now), Some(then)) => now <= SAME_TRAFFIC * then,
        _ => false,
    };
    let crept = |e: &&Baseline| rose(rule.metric, e) && rose(body, e) && calm(e);
    let bad = |e: &&Baseline| limits_of(e).is_some_and(|l| rule.is_bad(v, l, firing));
    b.earlier
        .as_deref()
        .filter(|e| e.ready)
        .filter(crept)
        .filter(bad)
        .or(Some(b))
}

/// Why a relative rule cannot judge yet.
fn no_normal(what: &str, base: Option<&Baseline>) -> String {
    match base {
        Some(b) if !b.ready => format!(
            "{what}; its normal is still being learnt ({})",
            b.explanation
        ),
        _ => format!("{what}; no normal known for it yet"),
    }
}

/// A percentile of the live window: of every request, or for time to first byte of the
/// streamed answers only (the others have none).
fn live_percentile(
    rule: &Rule,
    s: &Stats,
    window_s: u32,
    base: Option<&Baseline>,
    firing: bool,
) -> Reading {
    let (all, streamed) = (
        (s.requests, "requests"),
        (s.ttfb_requests, "streamed answers"),
    );
    let (name, v, (n, of)) = match rule.metric {
        Metric::P50Ms => ("p50", s.p50_ms, all),
        Metric::P99Ms => ("p99", s.p99_ms, all),
        Metric::TtfbP50Ms => ("TTFB p50", s.ttfb_p50_ms, streamed),
        Metric::TtfbP95Ms => ("TTFB p95", s.ttfb_p95_ms, streamed),
        Metric::TtfbP99Ms => ("TTFB p99", s.ttfb_p99_ms, streamed),
        _ => ("p95", s.p95_ms, all),
    };
    let counted = Counted { n, of, window_s };
    percentile(rule, name, v, &counted, base, firing)
}

/// How many events a percentile of the live window comes from.
struct Counted {
    n: u64,
    of: &'static str,
    window_s: u32,
}

/// A duration percentile of the live window (`name` its figure, "p95" or "TTFB p95"),
/// against a fixed limit or the model's normal.
fn percentile(
    rule: &Rule,
    name: &str,
    v: Option<f64>,
    counted: &Counted,
    base: Option<&Baseline>,
    firing: bool,
) -> Reading {
    let need = rule.min_requests.max(1);
    let Some(v) = v.filter(|_| counted.n >= need) else {
        return Reading::scarce(format!(
            "too few {} to judge {name} ({} in the last {} s, {need} needed)",
            counted.of, counted.n, counted.window_s
        ));
    };
    let last = base;
    let base = judged_base(rule, base, v, firing);
    let (normal, high) = normal_of(rule.metric, base);
    // An alert that fired for a stay (below) is judged as one until it resolves.
    let one_mode = base.is_some_and(|b| b.one_mode);
    // Whether the model's slow minutes, not its median, set the limit: then they are
    // what the figure is measured against.
    let threshold = |n: f64, high| rule.limits(Some(n), high).map(|(t, _)| t);
    let raised = |n: f64| high.filter(|_| !one_mode && threshold(n, high) > threshold(n, None));
    // Unless the figure stays past the limit its median sets, minute after minute, for
    // longer than the slow mode keeps it there by chance: then more of its requests
    // take the slow path, and the model is judged as one with one mode, on those
    // minutes (a quiet model's live window leaves its slow mode and comes back from one
    // second to the next while the share stays up).
    let stay = match (rule.relative, normal, base) {
        (Some(_), Some(n), Some(b)) if one_mode || raised(n).is_some() => threshold(n, None)
            .and_then(|t| {
                let before = b.earlier.as_deref().map(|e| &*e.minutes);
                let stay = b.minutes.stay(rule.metric, t, before, one_mode)?;
                (one_mode || stay.holds()).then_some((stay, t))
            }),
        _ => None,
    };
    if one_mode && stay.is_none() {
        // Its minutes not read yet (a restart): held as it is, not judged on the live
        // window a quiet model's share leaves from one second to the next.
        return Reading {
            normal,
            ..Reading::scarce(format!(
                "{name} {} live; judged on its minutes since it stayed in its slow mode, \
                 none known yet (not read since a restart, or too few requests in them)",
                show_ms(v)
            ))
        };
    }
    let judged_by_high = |n: f64| raised(n).filter(|_| stay.is_none());
    let limits = rule.limits(normal, high.filter(|_| !one_mode && stay.is_none()));
    let v = stay.map_or(v, |(s, _)| s.median);
    let earlier = matches!((base, last), (Some(b), Some(l)) if !std::ptr::eq(b, l));
    let span = match (base, last) {
        (Some(b), Some(l)) if earlier => {
            // A held last hour is the one before this incident, not the last one.
            let (last_hour, in_it) = if l.held {
                let l = span_length(l);
                (format!("{l} before this incident"), format!("in that {l}"))
            } else {
                (over(l), format!("in the {}", over(l)))
            };
            let crept = normal_of(rule.metric, last)
                .0
                .map_or_else(String::new, |n| {
                    format!("; {} {in_it}, crept up since", show_ms(n))
                });
            format!("{} before the {last_hour}{crept}", span_length(b))
        }
        (Some(b), _) => over(b),
        (None, _) => String::new(),
    };
    let why = match (rule.relative, normal, limits) {
        (Some(_), Some(n), Some(_)) => match judged_by_high(n) {
            Some(h) => format!(
                "{name} {}, {} the {} of its slow mode (normal {}, {span})",
                show_ms(v),
                ratio(v, h),
                show_ms(h),
                show_ms(n),
            ),
            None => match stay {
                Some((st, t)) => format!(
                    "{name} {}, the median of the last {} min, {} its normal {} ({span}); \
                     past {} in {} of the last {} min, where its slow mode{} takes it in \
                     {} of its minutes",
                    show_ms(v),
                    st.span,
                    ratio(v, n),
                    show_ms(n),
                    show_ms(t),
                    st.past,
                    st.of,
                    high.map_or_else(String::new, |h| format!(" ({})", show_ms(h))),
                    show_share(st.share),
                ),
                None => format!(
                    "{name} {}, {} its normal {} ({span})",
                    show_ms(v),
                    ratio(v, n),
                    show_ms(n),
                ),
            },
        },
        (Some(_), _, _) => no_normal(&format!("{name} {}", show_ms(v)), base),
        (None, _, _) => absolute(&format!("{name} {}", show_ms(v)), rule, v, show_ms, firing),
    };
    Reading {
        normal,
        earlier,
        stayed_from_ms: stay.map(|(s, _)| s.from_ms),
        ..Reading::known(v, limits, why)
    }
}

/// A share of minutes: "none", "2.0 %", "0.50 %".
fn show_share(share: f64) -> String {
    if share <= 0.0 {
        "none".into()
    } else {
        show_rate(share)
    }
}

/// "p95 870 ms, above its limit 800 ms". A firing alert is judged against its resolve
/// level instead, so past that level but back within the limit it is still bad, and says
/// so: "p95 450 ms, above its resolve level 400 ms (limit 500 ms)".
fn absolute(what: &str, rule: &Rule, v: f64, show: fn(f64) -> String, firing: bool) -> String {
    let limits = (rule.threshold, rule.resolve);
    let past = if rule.metric.fires_below() {
        "below"
    } else {
        "above"
    };
    if rule.is_bad(v, limits, false) {
        format!("{what}, {past} its limit {}", show(rule.threshold))
    } else if firing && rule.is_bad(v, limits, true) {
        format!(
            "{what}, {past} its resolve level {} (limit {})",
            show(rule.resolve),
            show(rule.threshold)
        )
    } else {
        format!("{what}, within its limit {}", show(rule.threshold))
    }
}

/// The error rate over the rule's window of the model's series, or over the live window
/// of `live` (the model's figures, or a version's).
fn error_rate(
    rule: &Rule,
    m: &ModelView,
    live: &Stats,
    base: Option<&Baseline>,
    firing: bool,
) -> Reading {
    let need = rule.min_requests.max(1);
    let (normal, _) = normal_of(rule.metric, base);
    // As for traffic: a rule about the model's normal with no `window` of its own is
    // judged over a window sized to its traffic; a fixed one over the live window.
    let sized = rule.relative.is_some() || rule.backstop;
    let secs = match rule.window {
        Some(w) => Some(window_secs(w)),
        None if sized && rule.version.is_none() => Some(errors_window_s(need, m, base)),
        None => None,
    };
    let (requests, errors, span) = match secs {
        Some(secs) => {
            let (requests, errors, secs) = series_sums(m, secs);
            (requests, errors, format!("{secs} s"))
        }
        None => (live.requests, live.errors, format!("{} s", m.window_s)),
    };
    if requests < need {
        return Reading::scarce(format!(
            "too few requests to judge the error rate ({requests} in the last {span}, {need} needed)"
        ));
    }
    let v = errors as f64 / requests as f64;
    let limits = rule.limits(normal, None);
    let what = format!(
        "{} errors ({errors} of {requests} requests in {span})",
        show_rate(v)
    );
    let why = match (rule.relative, normal) {
        (Some(_), Some(n)) => format!(
            "{what}, normal {} ({})",
            show_rate(n),
            base.map_or_else(String::new, over)
        ),
        (Some(_), None) => no_normal(&what, base),
        (None, _) if rule.backstop => {
            // Fired whatever the model's normal: say so, with the normal it ignored.
            let whatever = match (normal, base) {
                (Some(n), Some(b)) => {
                    format!(", whatever its own normal ({}, {})", show_rate(n), over(b))
                }
                _ => String::new(),
            };
            format!(
                "{} for any model{whatever}",
                absolute(&what, rule, v, show_rate, firing)
            )
        }
        (None, _) => absolute(&what, rule, v, show_rate, firing),
    };
    Reading {
        normal,
        // `min_errors` is the evidence needed to start an incident, not to go on with
        // one: a quiet model's firing alert with 4 errors of 30 requests is still bad,
        // and letting it resolve there would fire it again at the next fifth error.
        may_fire: firing || errors >= rule.min_errors,
        ..Reading::known(v, limits, why)
    }
}

/// Seconds of the series an error rate without a `window` is judged over: enough to
/// expect [`ERRORS_EXPECTED_SHARE`] × the requests needed at the model's normal rate (or
/// the live window's, until a normal is learnt).
fn errors_window_s(need: u64, m: &ModelView, base: Option<&Baseline>) -> usize {
    let rate = base
        .and_then(|b| b.qps)
        .filter(|q| *q > 0.0)
        .or_else(|| (m.stats.qps > 0.0).then_some(m.stats.qps));
    let secs = rate.map_or(TRAFFIC_MIN_WINDOW_S, |q| {
        secs_to_expect(ERRORS_EXPECTED_SHARE * need as f64, q)
    });
    secs.ceil() as usize
}

/// Whole seconds in which `requests` are expected at `rate` req/s, within the bounds of
/// a window sized to a model's traffic (traffic and error rate alike).
// Rounded up: a window a fraction short would expect a fraction fewer than `requests`,
// and a traffic drop would never be judged.
fn secs_to_expect(requests: f64, rate: f64) -> f64 {
    (requests / rate)
        .ceil()
        .clamp(TRAFFIC_MIN_WINDOW_S, TRAFFIC_MAX_WINDOW_S)
}

fn traffic(
    rule: &Rule,
    m: &ModelView,
    base: Option<&Baseline>,
    sight: &Sight,
    firing: bool,
) -> Reading {
    let (normal, _) = normal_of(rule.metric, base);
    let bursts = base.and_then(|b| b.qps_bursts).unwrap_or(1.0);
    let lulls = base.and_then(Baseline::bursts_with_lulls).is_some();
    // A client sending many requests at a time leaves lulls between its bursts that are
    // its normal: it takes as many bursts as single requests to tell a drop. Without
    // lulls in the last hour, a minute is known to hold enough of them. A team's own
    // window is judged as it is.
    let expected = if lulls && rule.window.is_none() {
        TRAFFIC_EXPECTED * bursts
    } else {
        TRAFFIC_EXPECTED
    };
    let too_soon = |seen_s: f64| {
        Reading::unknown(format!(
            "events seen for only {} s since the broker connected: too soon to judge traffic",
            seen_s.max(0.0) as i64
        ))
    };
    // Only seconds the monitor saw whole: not before the broker (re)connected.
    let seen_s = sight.events_since_ms.map_or(0.0, |t| {
        ((sight.now_ms - t) / 1000) as f64 - SETTLING_S as f64
    });
    let wanted_s = match (rule.window, rule.relative, normal) {
        (Some(w), _, _) => w.as_secs_f64(),
        (None, Some(_), Some(n)) if n > 0.0 && lulls => secs_to_expect(expected, n),
        (None, Some(_), Some(n)) if n > 0.0 => {
            let plain = secs_to_expect(TRAFFIC_EXPECTED, n);
            secs_to_expect(TRAFFIC_EXPECTED * bursts, n).min(plain.max(60.0))
        }
        (None, Some(_), _) => TRAFFIC_MIN_WINDOW_S,
        (None, None, _) => f64::from(m.window_s),
    };
    let secs = wanted_s.min(seen_s).floor();
    if secs < wanted_s.min(TRAFFIC_MIN_WINDOW_S) {
        return too_soon(seen_s);
    }
    let (requests, _, n) = series_sums(m, secs as usize);
    let v = if n == 0 {
        0.0
    } else {
        requests as f64 / n as f64
    };
    let limits = rule.limits(normal, None);
    let what = format!("{} req/s over the last {n} s", show_qps(v));
    let why = match (rule.relative, normal) {
        (Some(_), Some(nq)) if nq * wanted_s < expected => {
            let why = if nq * wanted_s < TRAFFIC_EXPECTED {
                format!(
                    "{what}; its normal {} req/s is too little traffic to tell a drop from chance",
                    show_qps(nq)
                )
            } else {
                format!(
                    "{what}; its {} req/s are {}: {} s is too short to tell a drop from a lull",
                    show_qps(nq),
                    show_bursts(bursts),
                    wanted_s
                )
            };
            return Reading {
                normal,
                ..Reading::unknown(why)
            };
        }
        // Connected for less of the window than holds enough of its requests.
        (Some(_), Some(nq)) if nq * secs < expected => return too_soon(seen_s),
        (Some(_), Some(nq)) => format!(
            "{what}, {:.0} % of its normal {} req/s ({})",
            if nq > 0.0 { v / nq * 100.0 } else { 100.0 },
            show_qps(nq),
            base.map_or_else(String::new, over)
        ),
        (Some(_), None) => no_normal(&what, base),
        (None, _) => absolute(&what, rule, v, show_qps, firing),
    };
    Reading {
        normal,
        ..Reading::known(v, limits, why)
    }
}

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / f64::from(1u32 << 20))
}

/// The latest Docker event of one of `actions` on the model's timeline.
fn last_event<'a>(
    res: &'a ModelResources,
    actions: &[&str],
) -> Option<&'a crate::store::view::ContainerEventView> {
    res.events
        .iter()
        .rev()
        .find(|e| actions.iter().any(|a| e.action.starts_with(a)))
}

/// Whether every container of the model is reported by an agent on another host (none
/// read from this monitor's own Docker engine).
fn from_agents(res: &ModelResources) -> bool {
    !res.containers.is_empty() && res.containers.iter().all(|c| c.host.is_some())
}

fn container(rule: &Rule, res: Option<&ModelResources>, sight: &Sight, firing: bool) -> Reading {
    let limits = Some((rule.threshold, rule.resolve));
    let Some(res) = res.filter(|r| sight.docker || from_agents(r)) else {
        return Reading::unknown("no container is mapped to this model".into());
    };
    let known = |v: f64, why: String| Reading::known(v, limits, why);
    match rule.metric {
        Metric::CpuPercent => match res.usage.cpu_percent {
            Some(v) => known(
                v,
                absolute(
                    &format!("CPU {v:.0} % (100 % = one core)"),
                    rule,
                    v,
                    pct,
                    firing,
                ),
            ),
            None => Reading::unknown("no CPU sample yet".into()),
        },
        Metric::CpuLimitPercent => match (res.usage.cpu_limit_percent, res.usage.cpu_cores) {
            (Some(v), Some(cores)) => known(
                v,
                absolute(
                    &format!(
                        "CPU at {v:.0} % of what its containers may use ({cores:.1} {})",
                        if (cores - 1.0).abs() < 1e-9 {
                            "core"
                        } else {
                            "cores"
                        }
                    ),
                    rule,
                    v,
                    pct,
                    firing,
                ),
            ),
            _ => Reading::unknown("no CPU sample yet".into()),
        },
        Metric::MemoryPercent => match (
            res.usage.mem_percent,
            res.usage.mem_bytes,
            res.usage.mem_limit_bytes,
        ) {
            (Some(v), Some(used), Some(limit)) => known(
                v,
                absolute(
                    &format!("memory {} of {} ({v:.0} %)", mib(used), mib(limit)),
                    rule,
                    v,
                    pct,
                    firing,
                ),
            ),
            _ => Reading::unknown("no memory sample with a limit yet".into()),
        },
        Metric::Restarts => {
            let why = last_event(res, &["restart"]).map_or_else(
                || format!("{} restarts in all", res.restarts),
                |e| {
                    format!(
                        "container {} restarted ({})",
                        e.container,
                        e.detail.as_deref().unwrap_or("restart")
                    )
                },
            );
            known(res.restarts as f64, why)
        }
        Metric::OomKills => {
            let why = last_event(res, &["oom"]).map_or_else(
                || format!("{} OOM kills in all", res.oom_kills),
                |e| {
                    let limit = res
                        .containers
                        .iter()
                        .find(|c| c.name == e.container)
                        .and_then(|c| c.usage.mem_limit_bytes)
                        .or(res.usage.mem_limit_bytes);
                    format!(
                        "container {} was killed for lack of memory{}",
                        e.container,
                        limit.map_or_else(String::new, |l| format!(" (limit {})", mib(l)))
                    )
                },
            );
            known(res.oom_kills as f64, why)
        }
        Metric::Unhealthy => match res.health.as_deref() {
            Some(h) => {
                let sick: Vec<&str> = res
                    .containers
                    .iter()
                    .filter(|c| c.health.as_deref() == Some("unhealthy"))
                    .map(|c| c.name.as_str())
                    .collect();
                let why = if sick.is_empty() {
                    format!("health check {h}")
                } else {
                    format!("health check failing on {}", sick.join(", "))
                };
                known(f64::from(u8::from(h == "unhealthy")), why)
            }
            None => Reading::unknown("no health check".into()),
        },
        _ => down_reading(rule, res, sight.now_ms),
    }
}

fn pct(v: f64) -> String {
    format!("{v:.0} %")
}

/// A container's state as a sentence says it.
fn state_words(state: &str) -> String {
    match state {
        "exited" => "exited".into(),
        "created" => "was created but never started".into(),
        "removing" => "is being removed".into(),
        s => format!("is {s}"),
    }
}

/// How many of the model's containers are not running, and which.
fn down_reading(rule: &Rule, res: &ModelResources, now_ms: i64) -> Reading {
    let down: Vec<&crate::store::view::ContainerView> = res
        .containers
        .iter()
        .filter(|c| c.state != "running")
        .collect();
    let total = res.containers.len();
    let running = total - down.len();
    let why = match down.first() {
        None => format!("{running} of {total} running"),
        Some(c) => {
            // The exit (with its code) says most; a stop or kill only until it arrives.
            let last = |actions: &[&str]| {
                res.events
                    .iter()
                    .rev()
                    .find(|e| e.container == c.name && actions.contains(&e.action.as_str()))
            };
            let event = last(&["die", "oom"]).or_else(|| last(&["stop", "kill", "pause"]));
            let how = event.map_or_else(String::new, |e| {
                format!(
                    "{}{} ago",
                    e.detail
                        .as_deref()
                        .map_or_else(String::new, |d| format!(" ({d})")),
                    format_args!(" {}", show_duration_ms(now_ms - e.at_ms))
                )
            });
            let others = if down.len() > 1 {
                format!(" and {} more", down.len() - 1)
            } else {
                String::new()
            };
            format!(
                "container {} {}{how}{others}; {running} of {total} running",
                c.name,
                state_words(&c.state)
            )
        }
    };
    Reading::known(down.len() as f64, Some((rule.threshold, rule.resolve)), why)
}

/// The reading of a rule about the monitor itself. `since_ms` is when the broker or the
/// Docker engine entered its current state; `drops` the events dropped within the
/// rule's window and by whom.
pub fn monitor_reading(
    rule: &Rule,
    view: &View,
    now_ms: i64,
    broker_since_ms: i64,
    docker_since_ms: i64,
    drops: &(u64, Vec<(String, u64)>),
) -> Reading {
    use crate::store::view::{BrokerState, DockerState};
    let limits = Some((rule.threshold, rule.resolve));
    match rule.metric {
        Metric::BrokerDown => {
            let b = &view.broker;
            let down = matches!(b.state, BrokerState::Down | BrokerState::Connecting);
            let why = if down {
                format!(
                    "no connection to the broker for {}{}; request figures are unknown until it is back",
                    show_duration_ms(now_ms - broker_since_ms),
                    b.error
                        .as_deref()
                        .map_or_else(String::new, |e| format!(" ({e})"))
                )
            } else {
                format!("connected to the broker ({})", b.state.as_str())
            };
            Reading::known(f64::from(u8::from(down)), limits, why)
        }
        Metric::DockerDown => {
            let d = &view.docker;
            if d.state == DockerState::Unavailable && d.connections == 0 {
                // Never reached since the monitor started: most often a machine without
                // Docker at all, not an engine that went away. Held, not cleared, so an
                // alert a restart brought back stays until the engine answers.
                return Reading::blind(
                    "the Docker engine has not been reached since the monitor started",
                );
            }
            let down = d.state == DockerState::Unavailable;
            let why = if down {
                format!(
                    "cannot reach the Docker engine for {}{}; container figures are unknown until it is back",
                    show_duration_ms(now_ms - docker_since_ms),
                    d.error
                        .as_deref()
                        .map_or_else(String::new, |e| format!(" ({e})"))
                )
            } else {
                format!("Docker engine {}", d.state.as_str())
            };
            Reading::known(f64::from(u8::from(down)), limits, why)
        }
        _ => {
            let (total, by) = drops;
            let secs = rule.window.map_or(60, |w| w.as_secs());
            let why = if *total == 0 {
                format!("no events dropped at the source in the last {secs} s")
            } else {
                let who: Vec<String> = by
                    .iter()
                    .take(3)
                    .map(|(s, n)| format!("{s} dropped {n}"))
                    .collect();
                let more = if by.len() > 3 {
                    format!(" and {} more sources", by.len() - 3)
                } else {
                    String::new()
                };
                format!(
                    "{}{more} events in the last {secs} s before they reached the broker (buffer full or broker unreachable)",
                    who.join(", ")
                )
            };
            Reading::known(*total as f64, limits, why)
        }
    }
}
