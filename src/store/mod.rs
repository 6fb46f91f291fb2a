//! The store: the one owner of the monitor's state, and its only writer.
//!
//! Ingest hands it decoded batches; it keeps per model (and per route and per instance
//! inside a model) a rolling window, and on request builds a [`View`] that everything
//! downstream reads. Time is always passed in (`now_us`), never read here, so tests
//! drive it with a virtual clock.
//!
//! This module imports no I/O crate: no lapin, no ratatui, no axum.

pub mod hist;
pub mod view;
pub mod window;

use std::collections::{BTreeMap, HashMap, VecDeque};

use foldhash::fast::RandomState;
use modelmon_contract::{BatchError, Decoded, Event, RejectReason};

use hist::Merger;
pub use view::{BrokerState, BrokerView, View};
use view::{IngestView, KeyStats, ModelView, RejectRecord, SeriesPoint, Stats};
use window::{Placement, Slot, Window};

/// The name that takes the overflow of a cardinality cap.
pub const OTHER: &str = "(other)";

/// Seconds of per-second series kept for sparklines.
pub const SERIES_SECS: i64 = 300;

/// Limits and shape of the store. Cardinality caps keep memory bounded whatever arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Length of the live window, in seconds.
    pub window_s: u32,
    pub max_models: usize,
    pub max_routes: usize,
    pub max_instances: usize,
    /// Rejected events kept for display.
    pub recent_rejects: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            window_s: 60,
            max_models: 256,
            max_routes: 64,
            max_instances: 64,
            recent_rejects: 50,
        }
    }
}

/// Routes and instances have coarser slots than models: one twelfth of the window.
/// A busy model may have 64 routes and 64 instances; five-second slots keep their
/// windows within the memory bound, at the price of edges 5 s wide.
fn sub_slot_secs(window_s: u32) -> u32 {
    (window_s / 12).max(1)
}

type Map<V> = HashMap<Box<str>, V, RandomState>;

/// A set of named windows with a cap: names beyond it share [`OTHER`].
#[derive(Debug)]
struct Keyed {
    map: Map<Window>,
    cap: usize,
    slot_secs: u32,
    len: u32,
    overflowed: u64,
}

impl Keyed {
    fn new(cap: usize, slot_secs: u32, len: u32) -> Self {
        Self {
            map: Map::default(),
            cap,
            slot_secs,
            len,
            overflowed: 0,
        }
    }

    #[inline]
    fn window(&mut self, name: &str) -> (&mut Window, bool) {
        // Two lookups on the rare insert path keep the common path allocation-free.
        if self.map.contains_key(name) {
            return (self.map.get_mut(name).expect("just checked"), false);
        }
        let overflow = self.map.len() >= self.cap.saturating_sub(1) && name != OTHER;
        let key = if overflow { OTHER } else { name };
        if overflow {
            self.overflowed += 1;
        }
        let (slot_secs, len) = (self.slot_secs, self.len);
        let w = self
            .map
            .entry(key.into())
            .or_insert_with(|| Window::new(slot_secs, len));
        (w, overflow)
    }

    fn expire(&mut self, now_sec: i64) {
        for w in self.map.values_mut() {
            w.expire(now_sec, drop);
        }
    }

    fn stats(&self, now_sec: i64, first_sec: i64, merger: &mut Merger) -> Vec<KeyStats> {
        let mut out: Vec<KeyStats> = self
            .map
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(name, w)| KeyStats {
                name: name.to_string(),
                stats: window_stats(w, now_sec, first_sec, merger),
            })
            .collect();
        out.sort_by(|a, b| {
            b.stats
                .requests
                .cmp(&a.stats.requests)
                .then_with(|| a.name.cmp(&b.name))
        });
        out
    }

    fn heap_bytes(&self) -> usize {
        self.map
            .iter()
            .map(|(k, w)| k.len() + w.heap_bytes() + 64)
            .sum()
    }
}

#[derive(Debug)]
struct ModelState {
    live: Window,
    /// Per-second points of seconds that have left the live window, newest last.
    past: VecDeque<SeriesPoint>,
    routes: Keyed,
    instances: Keyed,
    /// Newest event start seen, Unix µs.
    last_seen_us: i64,
    /// The first second seen, so QPS is not diluted before a full window has passed.
    first_sec: i64,
    version: Option<Box<str>>,
}

/// All the state of the monitor.
pub struct Store {
    cfg: StoreConfig,
    models: Map<ModelState>,
    models_overflowed: u64,
    counters: Counters,
    rejects: VecDeque<RejectRecord>,
    dropped_by_source: BTreeMap<String, u64>,
    merger: Merger,
    /// For the ingest rate: events counted at the previous view.
    rate_mark: (i64, u64),
}

#[derive(Debug, Default)]
struct Counters {
    events: u64,
    rejected: u64,
    by_reason: [u64; RejectReason::ALL.len()],
    dropped_at_source: u64,
    late: u64,
    batches: u64,
}

impl Store {
    pub fn new(cfg: StoreConfig) -> Self {
        Self {
            cfg,
            models: Map::default(),
            models_overflowed: 0,
            counters: Counters::default(),
            rejects: VecDeque::new(),
            dropped_by_source: BTreeMap::new(),
            merger: Merger::default(),
            rate_mark: (0, 0),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Applies one decoded batch: its good events, its rejects and its drop count.
    pub fn apply(&mut self, batch: &Decoded<'_>, now_us: i64) {
        self.counters.batches += 1;
        if batch.dropped > 0 {
            self.counters.dropped_at_source += batch.dropped;
            let key = format!(
                "{}/{}/{}",
                batch.source.kind.as_str(),
                batch.source.instance,
                batch.source.pid
            );
            *self.dropped_by_source.entry(key).or_default() += batch.dropped;
        }
        for r in &batch.rejects {
            self.note_reject(r.reason, 1, r.model.clone(), r.detail.clone(), now_us);
        }
        self.record_all(&batch.events, now_us);
    }

    /// Counts a body that could not be read as a batch at all.
    pub fn apply_error(&mut self, err: &BatchError, routing_model: Option<&str>, now_us: i64) {
        self.counters.batches += 1;
        self.note_reject(
            err.reason,
            err.events as u64,
            routing_model.map(str::to_owned),
            err.detail.clone(),
            now_us,
        );
    }

    fn note_reject(
        &mut self,
        reason: RejectReason,
        n: u64,
        model: Option<String>,
        detail: String,
        now_us: i64,
    ) {
        self.counters.rejected += n;
        if let Some(i) = RejectReason::ALL.iter().position(|r| *r == reason) {
            self.counters.by_reason[i] += n;
        }
        if self.rejects.len() >= self.cfg.recent_rejects {
            self.rejects.pop_front();
        }
        self.rejects.push_back(RejectRecord {
            at_ms: now_us / 1000,
            reason: reason.as_str().to_owned(),
            model,
            detail,
        });
    }

    /// Records valid events. Consecutive events of one model (the usual batch) share one lookup.
    pub fn record_all(&mut self, events: &[Event<'_>], now_us: i64) {
        let now_sec = now_us.div_euclid(1_000_000);
        let mut i = 0;
        while i < events.len() {
            let model = &events[i].model;
            let run = events[i..].iter().take_while(|e| e.model == *model).count();
            let (state, overflowed) = self.model_state(model, now_sec);
            let mut late = 0u64;
            let mut folded = u64::from(overflowed) * run as u64;
            for ev in &events[i..i + run] {
                let (l, f) = record_one(state, ev, now_sec);
                late += u64::from(l);
                folded += f;
            }
            self.counters.events += run as u64;
            self.counters.late += late;
            self.models_overflowed += folded;
            i += run;
        }
    }

    fn model_state(&mut self, model: &str, now_sec: i64) -> (&mut ModelState, bool) {
        let overflow = !self.models.contains_key(model)
            && self.models.len() >= self.cfg.max_models.saturating_sub(1);
        let key = if overflow { OTHER } else { model };
        let cfg = &self.cfg;
        let state = self.models.entry(key.into()).or_insert_with(|| {
            let sub = sub_slot_secs(cfg.window_s);
            let sub_len = cfg.window_s.div_ceil(sub);
            ModelState {
                live: Window::new(1, cfg.window_s),
                past: VecDeque::new(),
                routes: Keyed::new(cfg.max_routes, sub, sub_len),
                instances: Keyed::new(cfg.max_instances, sub, sub_len),
                last_seen_us: i64::MIN,
                first_sec: now_sec,
                version: None,
            }
        });
        (state, overflow)
    }

    /// Builds the view at `now_us`, first letting old slots leave the windows.
    pub fn view(&mut self, now_us: i64, broker: BrokerView) -> View {
        let now_sec = now_us.div_euclid(1_000_000);
        let mut models: Vec<ModelView> = Vec::with_capacity(self.models.len());
        let mut routes_overflowed = 0;
        for (name, m) in &mut self.models {
            expire_model(m, now_sec, &mut self.merger);
            m.routes.expire(now_sec);
            m.instances.expire(now_sec);
            routes_overflowed += m.routes.overflowed + m.instances.overflowed;
            models.push(model_view(
                name,
                m,
                now_us,
                self.cfg.window_s,
                &mut self.merger,
            ));
        }
        models.sort_by(|a, b| a.model.cmp(&b.model));

        let c = &self.counters;
        let (mark_us, mark_events) = self.rate_mark;
        let dt = (now_us - mark_us) as f64 / 1e6;
        let events_per_s = if mark_us > 0 && dt > 0.0 {
            (c.events - mark_events) as f64 / dt
        } else {
            0.0
        };
        self.rate_mark = (now_us, c.events);
        let rejected_by_reason = RejectReason::ALL
            .iter()
            .zip(c.by_reason)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.as_str().to_owned(), n))
            .collect();
        View {
            ts_ms: now_us / 1000,
            broker,
            ingest: IngestView {
                events: c.events,
                rejected: c.rejected,
                rejected_by_reason,
                dropped_at_source: c.dropped_at_source,
                late: c.late,
                overflowed: self.models_overflowed + routes_overflowed,
                batches: c.batches,
                events_per_s,
                dropped_by_source: self.dropped_by_source.clone(),
            },
            recent_rejects: self.rejects.iter().cloned().collect(),
            models,
        }
    }

    /// Approximate heap bytes held by the windows, for the memory benchmark.
    pub fn heap_bytes(&self) -> usize {
        self.models
            .iter()
            .map(|(k, m)| {
                k.len()
                    + m.live.heap_bytes()
                    + m.past.capacity() * std::mem::size_of::<SeriesPoint>()
                    + m.routes.heap_bytes()
                    + m.instances.heap_bytes()
            })
            .sum()
    }
}

/// Records one event of a model. Returns whether it was late, and how many names it folded into `(other)`.
#[inline]
fn record_one(m: &mut ModelState, ev: &Event<'_>, now_sec: i64) -> (bool, u64) {
    let sec = ev.ts.div_euclid(1_000_000);
    let err = ev.is_error();
    if ev.ts > m.last_seen_us {
        m.last_seen_us = ev.ts;
        if let Some(v) = &ev.version
            && m.version.as_deref() != Some(v.as_ref())
        {
            m.version = Some(v.as_ref().into());
        }
    }
    let placement = m.live.record(sec, now_sec, ev.status, ev.duration_us, err);
    if placement == Placement::Late {
        add_late_to_past(m, sec, err);
        return (true, 0);
    }
    m.first_sec = m.first_sec.min(sec);
    let (route, r_over) = m.routes.window(&ev.route);
    route.record(sec, now_sec, ev.status, ev.duration_us, err);
    let (inst, i_over) = m.instances.window(&ev.instance);
    inst.record(sec, now_sec, ev.status, ev.duration_us, err);
    (false, u64::from(r_over) + u64::from(i_over))
}

/// A late event still belongs in the five-minute series, if its second is there.
fn add_late_to_past(m: &mut ModelState, sec: i64, err: bool) {
    if let Ok(i) = m.past.binary_search_by_key(&sec, |p| p.sec) {
        m.past[i].requests += 1;
        m.past[i].errors += u64::from(err);
    }
}

fn expire_model(m: &mut ModelState, now_sec: i64, merger: &mut Merger) {
    let past = &mut m.past;
    m.live
        .expire(now_sec, |slot| past.push_back(series_point(&slot, merger)));
    while past.front().is_some_and(|p| p.sec <= now_sec - SERIES_SECS) {
        past.pop_front();
    }
}

fn series_point(slot: &Slot, merger: &mut Merger) -> SeriesPoint {
    merger.add(&slot.latency);
    SeriesPoint {
        sec: slot.start,
        requests: slot.requests,
        errors: slot.errors,
        p95_ms: merger.take().map(|q| q.p95 / 1000.0),
    }
}

fn model_view(
    name: &str,
    m: &ModelState,
    now_us: i64,
    window_s: u32,
    merger: &mut Merger,
) -> ModelView {
    let now_sec = now_us.div_euclid(1_000_000);
    let stats = window_stats(&m.live, now_sec, m.first_sec, merger);

    // Five minutes of seconds, gaps as zero-request points.
    let mut series = Vec::with_capacity(SERIES_SECS as usize);
    let mut past = m.past.iter().peekable();
    let mut live = m.live.slots().peekable();
    for sec in (now_sec - SERIES_SECS + 1)..=now_sec {
        while past.peek().is_some_and(|p| p.sec < sec) {
            past.next();
        }
        while live.peek().is_some_and(|s| s.start < sec) {
            live.next();
        }
        let point = if let Some(p) = past.next_if(|p| p.sec == sec) {
            *p
        } else if let Some(s) = live.next_if(|s| s.start == sec) {
            series_point(s, merger)
        } else {
            SeriesPoint {
                sec,
                requests: 0,
                errors: 0,
                p95_ms: None,
            }
        };
        series.push(point);
    }

    ModelView {
        model: name.to_owned(),
        window_s,
        stats,
        last_seen_ms_ago: (m.last_seen_us != i64::MIN)
            .then(|| ((now_us - m.last_seen_us) / 1000).max(0)),
        series,
        routes: m.routes.stats(now_sec, m.first_sec, merger),
        instances: m.instances.stats(now_sec, m.first_sec, merger),
        routes_overflowed: m.routes.overflowed,
        version: m.version.as_deref().map(str::to_owned),
    }
}

/// Figures over a window. QPS divides by the window's span, or by the time since the
/// key was first seen when that is shorter, so a model that just appeared is not
/// shown at a fraction of its real rate.
fn window_stats(w: &Window, now_sec: i64, first_sec: i64, merger: &mut Merger) -> Stats {
    let mut total = Slot::default();
    for s in w.slots() {
        total.requests += s.requests;
        total.errors += s.errors;
        for (a, b) in total.status.iter_mut().zip(s.status) {
            *a += b;
        }
        total.sum_us += s.sum_us;
        total.max_us = total.max_us.max(s.max_us);
        merger.add(&s.latency);
    }
    let q = merger.take();
    let span = w.span_secs();
    let covered = (now_sec - first_sec + 1).clamp(1, span);
    let n = total.requests;
    let rate = |x: u64| (n > 0).then(|| x as f64 / n as f64);
    // A bucket midpoint can sit above the largest sample; never report past it.
    let ms = |us: f64| us.min(total.max_us as f64) / 1000.0;
    Stats {
        requests: n,
        qps: n as f64 / covered as f64,
        errors: total.errors,
        error_rate: rate(total.errors),
        client_errors: total.client_errors(),
        client_error_rate: rate(total.client_errors()),
        status: total.status.into(),
        mean_ms: (n > 0).then(|| total.sum_us as f64 / n as f64 / 1000.0),
        p50_ms: q.map(|q| ms(q.p50)),
        p90_ms: q.map(|q| ms(q.p90)),
        p95_ms: q.map(|q| ms(q.p95)),
        p99_ms: q.map(|q| ms(q.p99)),
        max_ms: (n > 0).then(|| ms(total.max_us as f64)),
    }
}
