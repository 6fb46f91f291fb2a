//! What readers get of the 24-hour history: a frozen set of rings and range queries.
//!
//! The store rebuilds a [`HistoryView`] at most once per 10-s bucket; every [`View`]
//! carries it in an `Arc`, and its hours are shared with the store's own rings, so
//! handing it to the TUI, the web server or the snapshot writer copies nothing.
//!
//! Figures over a range are computed from merged counters and merged distributions,
//! never from per-bucket percentiles. Inside the last hour distributions are exact to
//! 10 s; further back they are kept per 5 minutes, so a range edge there widens the
//! percentile's samples to the enclosing 5 minutes (counts stay exact to 10 s).
//!
//! [`View`]: super::View

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::ring::{Cell, HOUR_S, KEEP_S, Merger, Ring, STEP_S};
use super::view::MeasureStats;

/// A span of history, relative to now or absolute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Last(Duration),
    Between { from_ms: i64, to_ms: i64 },
}

impl Range {
    /// `5m`, `1h`, `6h`, `24h` (any duration from 10s to 24h), or `FROM_MS..TO_MS`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some((a, b)) = s.split_once("..") {
            let parse = |x: &str| {
                x.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("invalid range `{s}`: `{x}` is not Unix milliseconds"))
            };
            let (from_ms, to_ms) = (parse(a)?, parse(b)?);
            if from_ms >= to_ms {
                return Err(format!(
                    "invalid range `{s}`: the start must be before the end"
                ));
            }
            return Ok(Self::Between { from_ms, to_ms });
        }
        let d = crate::duration::parse_duration(s)?;
        if d < Duration::from_secs(10) || d > Duration::from_secs(KEEP_S as u64) {
            return Err(format!(
                "invalid range `{s}`: must be between 10s and 24h (history is kept 24 h)"
            ));
        }
        Ok(Self::Last(d))
    }

    /// `[from, to)` in Unix seconds; the start rounded down to a 10-s bucket.
    pub fn bounds_s(&self, now_ms: i64) -> (i64, i64) {
        let (from_ms, to_ms) = match *self {
            Self::Last(d) => (
                now_ms - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
                now_ms,
            ),
            Self::Between { from_ms, to_ms } => (from_ms, to_ms),
        };
        let from = from_ms.div_euclid(1000).div_euclid(STEP_S) * STEP_S;
        let to = (to_ms + 999).div_euclid(1000).max(from + 1);
        (from, to)
    }

    /// The length the range names, in seconds: `24h` is 86 400 however its ends round.
    /// Steps are chosen by it: by the rounded bounds, a day just over 86 400 s took
    /// 2-hour points where the docs promise hourly ones.
    pub fn span_s(&self, now_ms: i64) -> i64 {
        match *self {
            Self::Last(d) => i64::try_from(d.as_secs()).unwrap_or(KEEP_S),
            Self::Between { .. } => {
                let (from, to) = self.bounds_s(now_ms);
                to - from
            }
        }
    }

    /// How the range reads in a report header.
    pub fn label(&self) -> String {
        match *self {
            Self::Last(d) => {
                let s = d.as_secs();
                if s % 3600 == 0 {
                    format!("last {}h", s / 3600)
                } else if s % 60 == 0 {
                    format!("last {}m", s / 60)
                } else {
                    format!("last {s}s")
                }
            }
            Self::Between { from_ms, to_ms } => format!("{from_ms}..{to_ms} ms"),
        }
    }
}

/// Figures of one model over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RangeSummary {
    pub requests: u64,
    /// Requests per second of time the monitor was up inside the range.
    pub qps: f64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub client_errors: u64,
    /// From the distributions: within 1 %.
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub worst_hour: Option<WorstHour>,
    /// Seconds of the range the monitor was running (or saw traffic for).
    pub covered_s: u64,
}

/// The clock hour that went worst: the highest error rate, or, with no error in the
/// range, the highest p99.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorstHour {
    pub start_ms: i64,
    /// `"errors"` or `"p99"`: what made it the worst.
    pub by: &'static str,
    pub requests: u64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One point of a history series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    pub start_ms: i64,
    pub step_s: u32,
    /// `false`: the monitor was down for all of it. A gap, not zeros.
    pub covered: bool,
    /// Seconds of the point that are observed: inside the range, with the monitor up or
    /// with traffic replayed for them. The point's rate is `requests / covered_s`: the
    /// newest point of a range is still filling, and its whole step would show a
    /// fraction of its rate.
    pub covered_s: u64,
    pub requests: u64,
    pub errors: u64,
    pub client_errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Mean over the point's samples.
    pub cpu_percent: Option<f64>,
    /// Peak over the point's samples.
    pub mem_bytes: Option<u64>,
}

/// When the monitor was running: sorted, disjoint `[from, to)` spans of Unix seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uptime {
    spans: Vec<(i64, i64)>,
}

impl Uptime {
    pub fn from_spans(spans: Vec<(i64, i64)>) -> Self {
        Self {
            spans: joined(spans),
        }
    }

    pub fn spans(&self) -> &[(i64, i64)] {
        &self.spans
    }

    /// The run that started at `run_start` is still up at `now_s`.
    pub fn mark(&mut self, run_start: i64, now_s: i64) {
        let end = now_s + 1;
        match self.spans.last_mut() {
            Some(last) if run_start <= last.1 => {
                last.1 = last.1.max(end);
            }
            _ => self.spans.push((run_start, end.max(run_start + 1))),
        }
        let keep_from = now_s - KEEP_S - HOUR_S;
        self.spans.retain(|s| s.1 > keep_from);
    }

    /// Seconds of `[from, to)` inside a span.
    pub fn covered(&self, from: i64, to: i64) -> u64 {
        self.spans
            .iter()
            .map(|&(a, b)| (b.min(to) - a.max(from)).max(0) as u64)
            .sum()
    }

    /// The downtime holding `sec` (which no span holds): from the end of the span
    /// before it to the start of the one after, unbounded where there is none.
    fn downtime_around(&self, sec: i64) -> (i64, i64) {
        let next = self.spans.partition_point(|s| s.1 <= sec);
        let down_from = next.checked_sub(1).map_or(i64::MIN, |i| self.spans[i].1);
        let down_to = self.spans.get(next).map_or(i64::MAX, |s| s.0);
        (down_from, down_to)
    }
}

/// Counters summed over buckets.
#[derive(Debug, Clone, Copy, Default)]
struct Acc {
    requests: u64,
    errors: u64,
    client_errors: u64,
    max_us: u64,
    cpu_sum: f64,
    cpu_n: u32,
    mem_max: Option<u64>,
}

impl Acc {
    fn add(&mut self, c: &Cell) {
        self.requests += c.requests();
        self.errors += u64::from(c.errors);
        self.client_errors += c.client_errors();
        self.max_us = self.max_us.max(u64::from(c.max_us));
    }

    fn absorb(&mut self, o: &Acc) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.client_errors += o.client_errors;
        self.max_us = self.max_us.max(o.max_us);
    }

    fn rate(&self, x: u64) -> Option<f64> {
        (self.requests > 0).then(|| x as f64 / self.requests as f64)
    }
}

/// `[from, to)` spans sorted, with those that overlap or touch made one; empty ones gone.
fn joined(mut spans: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    spans.retain(|(a, b)| a < b);
    spans.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (a, b) in spans {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The quantiles `qs` in ms, never above the slowest request (a bucket midpoint can be).
fn quantiles_ms<const N: usize>(m: &Merger, max_us: u64, qs: &[f64; N]) -> Option<[f64; N]> {
    m.quantiles(qs)
        .map(|q| q.map(|v| v.min(max_us as f64) / 1000.0))
}

/// p50, p95, p99 in ms (`quantiles_ms`).
fn percentiles(m: &Merger, max_us: u64) -> [Option<f64>; 3] {
    quantiles_ms(m, max_us, &[0.50, 0.95, 0.99]).map_or([None; 3], |q| q.map(Some))
}

/// Adds the cells `[from, to)` of one hour to `acc` and their distributions to `m`.
/// A cell partly inside the range counts whole.
fn add_hour_span(h: &super::ring::Hour, from: i64, to: i64, acc: &mut Acc, m: &mut Merger) {
    let (lo, hi) = cell_span(h, from, to);
    if lo >= hi {
        return;
    }
    for c in h.cells(lo, hi) {
        acc.add(&c);
    }
    if let Some(res) = &h.res {
        for r in &res[lo..hi] {
            if let Some(cpu) = r.cpu_percent() {
                acc.cpu_sum += f64::from(cpu);
                acc.cpu_n += 1;
            }
            if let Some(mem) = r.mem_bytes() {
                acc.mem_max = Some(acc.mem_max.map_or(mem, |x| x.max(mem)));
            }
        }
    }
    for d in h.dists.covering(lo, hi, h.cells_len()).iter().flatten() {
        m.add_dist(d);
    }
}

/// The cells `[lo, hi)` of an hour that overlap `[from, to)`.
fn cell_span(h: &super::ring::Hour, from: i64, to: i64) -> (usize, usize) {
    let step = h.cell_s();
    let lo = ((from.max(h.start_s) - h.start_s) / step) as usize;
    let hi = ((to.min(h.start_s + HOUR_S) - h.start_s + step - 1) / step) as usize;
    (lo, hi.min(h.cells_len()))
}

/// The stretches of `[from, to)` outside `uptime` with traffic replayed for them
/// afterwards (a backlog from a durable queue lands in its own seconds): each from the
/// first bucket with traffic to the downtime's end, since the queue held all that came
/// until the monitor was back. Observed seconds are the uptime's and these: without them
/// a range's rate would divide a backlog's requests by the minutes of uptime beside it;
/// with only the buckets that have traffic, sparse traffic would read as the rate of its
/// bursts. `until`: the second the history was built in; the rings hold nothing after it,
/// and only a fraction of it.
fn replayed(ring: &Ring, uptime: &Uptime, from: i64, to: i64, until: i64) -> Uptime {
    let to = to.min(until);
    let mut spans: Vec<(i64, i64)> = Vec::new();
    for h in ring.hours_between(from, to) {
        let step = h.cell_s();
        let (lo, hi) = cell_span(h, from, to);
        let mut start = h.start_s + lo as i64 * step;
        for c in h.cells(lo, hi.max(lo)) {
            let cell = (start, start + step);
            start += step;
            // Only a bucket the monitor was down for all along tells of a replay: the
            // one it went down in holds what it saw before.
            if c.requests() == 0
                || spans.last().is_some_and(|r| cell.0 < r.1)
                || uptime.covered(cell.0, cell.1) > 0
            {
                continue;
            }
            let (down_from, down_to) = uptime.downtime_around(cell.0);
            // Traffic from the first whole bucket of a downtime ran from its start.
            let begin = if cell.0.saturating_sub(down_from) < step {
                down_from
            } else {
                cell.0
            };
            let r = (begin.max(from), down_to.min(to));
            if r.0 < r.1 {
                spans.push(r);
            }
        }
    }
    // Sorted and disjoint already, outside the uptime spans.
    Uptime { spans }
}

/// The rings of one model's keys: routes, instances, versions, measures and streams.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct KeyRings {
    pub routes: BTreeMap<String, Ring>,
    pub instances: BTreeMap<String, Ring>,
    pub versions: BTreeMap<String, Ring>,
    /// `ml` keys; values in thousandths (a ring's "ms" read as the value).
    pub measures: BTreeMap<String, Ring>,
    /// `ttfb` and `generation` of streamed answers, as durations.
    pub streams: BTreeMap<String, Ring>,
}

impl KeyRings {
    pub fn get(&self, kind: KeyKind) -> &BTreeMap<String, Ring> {
        match kind {
            KeyKind::Route => &self.routes,
            KeyKind::Instance => &self.instances,
            KeyKind::Version => &self.versions,
            KeyKind::Measure => &self.measures,
            KeyKind::Stream => &self.streams,
        }
    }

    /// Every family, in [`KeyKind::ALL`] order.
    pub fn by_kind(&self) -> [&BTreeMap<String, Ring>; KeyKind::ALL.len()] {
        KeyKind::ALL.map(|k| self.get(k))
    }

    pub fn by_kind_mut(&mut self) -> [&mut BTreeMap<String, Ring>; KeyKind::ALL.len()] {
        [
            &mut self.routes,
            &mut self.instances,
            &mut self.versions,
            &mut self.measures,
            &mut self.streams,
        ]
    }

    /// No ring holds an hour: keys whose rings aged out do not keep a model's history
    /// (and its place under `max_models`) alive.
    pub fn is_empty(&self) -> bool {
        self.by_kind()
            .iter()
            .all(|rings| rings.values().all(Ring::is_empty))
    }

    /// Drops the rings left empty (every hour past 24 h, or past the memory budget).
    pub fn drop_empty(&mut self) {
        for rings in self.by_kind_mut() {
            rings.retain(|_, r| !r.is_empty());
        }
    }

    fn heap_bytes(&self) -> usize {
        self.by_kind()
            .into_iter()
            .flatten()
            .map(|(k, r)| k.len() + r.heap_bytes() + 64)
            .sum()
    }
}

/// Which keys inside a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Route,
    Instance,
    Version,
    Measure,
    Stream,
}

impl KeyKind {
    /// In the order snapshots keep them (routes and instances since version 2, the
    /// others since 3).
    pub const ALL: [Self; 5] = [
        Self::Route,
        Self::Instance,
        Self::Version,
        Self::Measure,
        Self::Stream,
    ];
}

/// One model measure (`ml` key) over a range, with the figures the live window gives
/// (the sum taken from the distributions, so within 1 %).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureSummary {
    pub name: String,
    #[serde(flatten)]
    pub stats: MeasureStats,
}

impl From<KeySummary> for MeasureSummary {
    /// The rings keep measures in thousandths: their "ms" are the values.
    fn from(k: KeySummary) -> Self {
        let s = k.summary;
        let sum = s.mean_ms.unwrap_or(0.0) * s.requests as f64;
        Self {
            name: k.name,
            stats: MeasureStats {
                count: s.requests,
                sum,
                rate_per_s: if s.covered_s > 0 {
                    sum / s.covered_s as f64
                } else {
                    0.0
                },
                mean: s.mean_ms,
                p50: s.p50_ms,
                p95: s.p95_ms,
                p99: s.p99_ms,
                max: s.max_ms,
            },
        }
    }
}

/// One route's or instance's figures over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeySummary {
    pub name: String,
    #[serde(flatten)]
    pub summary: RangeSummary,
}

/// The history every reader sees: per model rings frozen at `built_ms`.
#[derive(Clone, Default, PartialEq)]
pub struct HistoryView {
    pub built_ms: i64,
    models: BTreeMap<String, Ring>,
    /// Routes and instances, by model.
    keys: BTreeMap<String, KeyRings>,
    /// The time to first byte of each streaming model's answers, in every view (with
    /// keys or not): its normal is learnt from it.
    first_bytes: BTreeMap<String, Ring>,
    uptime: Uptime,
}

impl std::fmt::Debug for HistoryView {
    // The rings are megabytes of counters: a debug print names only what it holds.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryView")
            .field("built_ms", &self.built_ms)
            .field("models", &self.models.keys().collect::<Vec<_>>())
            .field("keyed", &self.keys.keys().collect::<Vec<_>>())
            .field("first_bytes", &self.first_bytes.keys().collect::<Vec<_>>())
            .field("uptime", &self.uptime)
            .finish()
    }
}

impl HistoryView {
    pub(crate) fn new(built_ms: i64, models: BTreeMap<String, Ring>, uptime: Uptime) -> Self {
        Self {
            built_ms,
            models,
            keys: BTreeMap::new(),
            first_bytes: BTreeMap::new(),
            uptime,
        }
    }

    /// The same history with each streaming model's time-to-first-byte ring.
    #[must_use]
    pub(crate) fn with_first_bytes(mut self, first_bytes: BTreeMap<String, Ring>) -> Self {
        self.first_bytes = first_bytes;
        self
    }

    /// The same history with the rings of routes and instances.
    #[must_use]
    pub(crate) fn with_keys(mut self, keys: BTreeMap<String, KeyRings>) -> Self {
        self.keys = keys;
        self.keys.retain(|_, k| !k.is_empty());
        for (model, k) in &self.keys {
            if let Some(r) = k.streams.get(super::STREAMS[0]) {
                self.first_bytes
                    .entry(model.clone())
                    .or_insert_with(|| r.clone());
            }
        }
        self
    }

    /// The same history without the route and instance rings (the model rings shared).
    #[must_use]
    pub fn without_keys(&self) -> Self {
        Self {
            built_ms: self.built_ms,
            models: self.models.clone(),
            keys: BTreeMap::new(),
            first_bytes: self.first_bytes.clone(),
            uptime: self.uptime.clone(),
        }
    }

    /// The route and instance rings of a model.
    pub(crate) fn keys(&self, model: &str) -> Option<&KeyRings> {
        self.keys.get(model)
    }

    /// Heap bytes of a model's route, instance, version and measure rings; `None` when
    /// this view carries none for it (views leave them out unless `keys_in_views`).
    pub fn key_heap_bytes(&self, model: &str) -> Option<usize> {
        self.keys.get(model).map(KeyRings::heap_bytes)
    }

    /// Hours with data in a model's own ring.
    pub fn hours_of(&self, model: &str) -> Option<Vec<i64>> {
        Some(self.models.get(model)?.hours().map(|h| h.start_s).collect())
    }

    /// Models that have route or instance rings.
    pub(crate) fn keyed_models(&self) -> impl Iterator<Item = (&str, &KeyRings)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Model names, sorted.
    pub fn models(&self) -> Vec<&str> {
        self.models.keys().map(String::as_str).collect()
    }

    pub(crate) fn ring(&self, model: &str) -> Option<&Ring> {
        self.models.get(model)
    }

    pub fn uptime(&self) -> &Uptime {
        &self.uptime
    }

    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    /// Heap bytes held by the rings, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.models
            .iter()
            .map(|(k, r)| k.len() + r.heap_bytes())
            .sum::<usize>()
            + self.keys.values().map(KeyRings::heap_bytes).sum::<usize>()
    }

    /// A model's figures over `range`; `None` for a model with no history.
    pub fn summary(&self, model: &str, range: &Range, now_ms: i64) -> Option<RangeSummary> {
        Some(self.ring_summary(self.models.get(model)?, range, now_ms))
    }

    /// The figures of each route (or instance) of a model over `range`, busiest first;
    /// keys with no request in the range are left out.
    pub fn key_summaries(
        &self,
        model: &str,
        kind: KeyKind,
        range: &Range,
        now_ms: i64,
    ) -> Vec<KeySummary> {
        let Some(keys) = self.keys.get(model) else {
            return Vec::new();
        };
        let mut out: Vec<KeySummary> = keys
            .get(kind)
            .iter()
            .map(|(name, ring)| KeySummary {
                name: name.clone(),
                summary: self.ring_summary(ring, range, now_ms),
            })
            .filter(|k| k.summary.requests > 0)
            .collect();
        super::busiest_first(&mut out, |k| (k.summary.requests, &k.name));
        out
    }

    /// A model's measures over `range`, busiest first.
    pub fn measure_summaries(
        &self,
        model: &str,
        range: &Range,
        now_ms: i64,
    ) -> Vec<MeasureSummary> {
        self.key_summaries(model, KeyKind::Measure, range, now_ms)
            .into_iter()
            .map(MeasureSummary::from)
            .collect()
    }

    fn ring_summary(&self, ring: &Ring, range: &Range, now_ms: i64) -> RangeSummary {
        let (from, to) = range.bounds_s(now_ms);
        let mut total = Acc::default();
        let mut all = Merger::default();
        let mut hour_m = Merger::default();
        let mut hours: Vec<(i64, Acc, Option<f64>)> = Vec::new();
        for h in ring.hours_between(from, to) {
            let mut acc = Acc::default();
            add_hour_span(h, from, to, &mut acc, &mut hour_m);
            if acc.requests > 0 {
                hours.push((h.start_s, acc, percentiles(&hour_m, acc.max_us)[2]));
            }
            all.add_merger(&hour_m);
            hour_m.reset();
            total.absorb(&acc);
        }
        let covered = self.up(from, to) + self.replayed(ring, from, to).covered(from, to);
        let [p50, p95, p99] = percentiles(&all, total.max_us);
        RangeSummary {
            requests: total.requests,
            qps: if covered > 0 {
                total.requests as f64 / covered as f64
            } else {
                0.0
            },
            errors: total.errors,
            error_rate: total.rate(total.errors),
            client_errors: total.client_errors,
            mean_ms: all.mean().map(|v| v.min(total.max_us as f64) / 1000.0),
            p50_ms: p50,
            p95_ms: p95,
            p99_ms: p99,
            max_ms: (total.requests > 0).then(|| total.max_us as f64 / 1000.0),
            worst_hour: worst_hour(&hours),
            covered_s: covered,
        }
    }

    /// The second the history was built in: still filling then, so not counted as
    /// observed (a rate would take its fraction of requests as a whole second's).
    fn until(&self) -> i64 {
        self.built_ms.div_euclid(1000)
    }

    fn replayed(&self, ring: &Ring, from: i64, to: i64) -> Uptime {
        replayed(ring, &self.uptime, from, to, self.until())
    }

    /// Seconds of `[from, to)` the monitor was up, up to the one the history was built in.
    fn up(&self, from: i64, to: i64) -> u64 {
        self.uptime.covered(from, to.min(self.until()))
    }

    /// A model's series over `range`, at most `max_points` points on a round step
    /// (10 s, 30 s, 1 m, 5 m, 10 m, 15 m, 30 m, 1 h, ...), aligned to that step.
    pub fn series(
        &self,
        model: &str,
        range: &Range,
        now_ms: i64,
        max_points: usize,
    ) -> Vec<HistoryPoint> {
        self.ring_series(self.models.get(model), range, now_ms, max_points)
    }

    /// [`Self::series`] of a model's time to first byte: its points count the streamed
    /// answers, and their percentiles are of the first byte. Empty for a model that
    /// does not stream.
    pub fn ttfb_series(
        &self,
        model: &str,
        range: &Range,
        now_ms: i64,
        max_points: usize,
    ) -> Vec<HistoryPoint> {
        self.ring_series(self.first_bytes.get(model), range, now_ms, max_points)
    }

    /// The percentiles `qs` of a model's requests in `spans` (Unix seconds, on cell
    /// bounds), all merged into one distribution: how an hour's requests
    /// spread, which no one minute's percentiles tell (a share of 3 % slow is under
    /// every minute's p95). Hours past the fine tier keep a distribution per 5 minutes:
    /// one counts only if the spans hold all of it, so nothing outside them (an
    /// incident left out) comes in. `first_bytes`: of its streamed answers' first bytes.
    /// `None` without any.
    pub fn merged_percentiles<const N: usize>(
        &self,
        model: &str,
        first_bytes: bool,
        spans: &[(i64, i64)],
        qs: &[f64; N],
    ) -> Option<[f64; N]> {
        let ring = if first_bytes {
            self.first_bytes.get(model)
        } else {
            self.models.get(model)
        }?;
        // Spans end to end are one: a 5-minute distribution is inside five of a minute.
        let (mut m, mut max_us) = (Merger::default(), 0u64);
        for (from, to) in joined(spans.to_vec()) {
            for h in ring.hours_between(from, to) {
                let (lo, hi) = cell_span(h, from, to);
                if lo >= hi {
                    continue;
                }
                for d in h.dists.within(lo, hi, h.cells_len()).iter().flatten() {
                    m.add_dist(d);
                }
                max_us = h
                    .cells(lo, hi)
                    .fold(max_us, |x, c| x.max(u64::from(c.max_us)));
            }
        }
        quantiles_ms(&m, max_us, qs)
    }

    /// The points of `ring`; none without one.
    fn ring_series(
        &self,
        ring: Option<&Ring>,
        range: &Range,
        now_ms: i64,
        max_points: usize,
    ) -> Vec<HistoryPoint> {
        let Some(ring) = ring else {
            return Vec::new();
        };
        let (from, to) = range.bounds_s(now_ms);
        let step = step_for(range.span_s(now_ms), max_points.max(1));
        let mut m = Merger::default();
        let mut out = Vec::new();
        let replayed = self.replayed(ring, from, to);
        let mut start = from.div_euclid(step) * step;
        while start < to {
            let end = start + step;
            // The points at either end count only their part inside the range: a range
            // ending in the past must not take in what came after it.
            let (lo, hi) = (start.max(from), end.min(to));
            let mut acc = Acc::default();
            for h in ring.hours_between(lo, hi) {
                add_hour_span(h, lo, hi, &mut acc, &mut m);
            }
            let [p50, p95, p99] = percentiles(&m, acc.max_us);
            m.reset();
            let covered_s = self.up(lo, hi) + replayed.covered(lo, hi);
            out.push(HistoryPoint {
                start_ms: start * 1000,
                step_s: step as u32,
                covered: acc.requests > 0 || covered_s > 0,
                covered_s,
                requests: acc.requests,
                errors: acc.errors,
                client_errors: acc.client_errors,
                p50_ms: p50,
                p95_ms: p95,
                p99_ms: p99,
                cpu_percent: (acc.cpu_n > 0).then(|| acc.cpu_sum / f64::from(acc.cpu_n)),
                mem_bytes: acc.mem_max,
            });
            start = end;
        }
        out
    }
}

fn worst_hour(hours: &[(i64, Acc, Option<f64>)]) -> Option<WorstHour> {
    let with_errors = hours.iter().filter(|h| h.1.errors > 0).max_by(|a, b| {
        let ra = a.1.errors as f64 / a.1.requests as f64;
        let rb = b.1.errors as f64 / b.1.requests as f64;
        ra.total_cmp(&rb).then(a.1.errors.cmp(&b.1.errors))
    });
    let (h, by) = match with_errors {
        Some(h) => (h, "errors"),
        None => (
            hours
                .iter()
                .max_by(|a, b| a.2.unwrap_or(0.0).total_cmp(&b.2.unwrap_or(0.0)))?,
            "p99",
        ),
    };
    Some(WorstHour {
        start_ms: h.0 * 1000,
        by,
        requests: h.1.requests,
        errors: h.1.errors,
        error_rate: h.1.rate(h.1.errors),
        p99_ms: h.2,
    })
}

/// The smallest round step that fits `span_s` in `max_points`.
fn step_for(span_s: i64, max_points: usize) -> i64 {
    const STEPS: [i64; 14] = [
        10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400,
    ];
    let n = i64::try_from(max_points).unwrap_or(i64::MAX).max(1);
    let need = (span_s + n - 1) / n;
    STEPS.iter().copied().find(|&s| s >= need).unwrap_or(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_bound() {
        assert_eq!(
            Range::parse("1h"),
            Ok(Range::Last(Duration::from_secs(3600)))
        );
        assert!(Range::parse("25h").is_err());
        assert!(Range::parse("5s").is_err());
        let r = Range::parse("1000..21000").expect("absolute");
        assert_eq!(r.bounds_s(0), (0, 21));
        assert_eq!(
            Range::Last(Duration::from_secs(60)).bounds_s(100_500),
            (40, 101)
        );
        assert_eq!(Range::parse("6h").map(|r| r.label()), Ok("last 6h".into()));
    }

    #[test]
    fn uptime_merges_and_measures() {
        let mut u = Uptime::default();
        u.mark(100, 100);
        u.mark(100, 150);
        assert_eq!(u.spans(), &[(100, 151)]);
        u.mark(300, 310);
        assert_eq!(u.covered(0, 1000), 51 + 11);
        assert_eq!(u.covered(151, 300), 0, "the gap while down");
        assert_eq!(u.downtime_around(200), (151, 300));
        assert_eq!(u.downtime_around(50), (i64::MIN, 100));
        assert_eq!(u.downtime_around(311), (311, i64::MAX));
        let merged = Uptime::from_spans(vec![(5, 10), (0, 6), (20, 30)]);
        assert_eq!(merged.spans(), &[(0, 10), (20, 30)]);
    }

    #[test]
    fn steps_are_round() {
        assert_eq!(step_for(86_400, 24), 3600);
        assert_eq!(step_for(300, 1000), 10);
        assert_eq!(step_for(21_600, 100), 300);
    }
}
