//! The store: the one owner of the monitor's state, and its only writer.
//!
//! Ingest hands it decoded batches; it keeps per model (and per route and per instance
//! inside a model) a rolling window, and on request builds a [`View`] that everything
//! downstream reads. Time is always passed in (`now_us`), never read here, so tests
//! drive it with a virtual clock.
//!
//! This module imports no I/O crate: no lapin, no ratatui, no axum.

pub mod containers;
pub mod hist;
pub mod history;
pub mod persist;
pub mod ring;
pub mod view;
pub mod window;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;
use modelmon_contract::{BatchError, Decoded, Event, RejectReason};

use hist::Merger;
use history::{HistoryView, Uptime};
use ring::{Ring, STEP_S, bucket_of_sec};
pub use view::{BrokerState, BrokerView, View};
use view::{
    IngestView, KeyStats, LATENCY_BUCKETS_S, ModelView, RejectRecord, SeriesPoint, Stats, Totals,
};
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

/// Routes and instances have coarser slots than models: one sixth of the window.
/// A busy model may have 64 routes and 64 instances; ten-second slots keep their
/// windows within the memory bound, at the price of window edges 10 s wide.
fn sub_slot_secs(window_s: u32) -> u32 {
    (window_s / 6).max(1)
}

type Map<V> = HashMap<Box<str>, V, RandomState>;

/// Named values with a cap: names beyond it share [`OTHER`]. One hash lookup per
/// access; values live in a vector so the hot path never allocates a key.
#[derive(Debug)]
struct Capped<V> {
    index: Map<usize>,
    entries: Vec<(Box<str>, V)>,
    cap: usize,
    overflowed: u64,
}

impl<V> Capped<V> {
    fn new(cap: usize) -> Self {
        Self {
            index: Map::default(),
            entries: Vec::new(),
            cap,
            overflowed: 0,
        }
    }

    /// The value of `name`, made by `make` on first use. `true` when folded into `(other)`.
    #[inline]
    fn get_or_insert(&mut self, name: &str, make: impl FnOnce() -> V) -> (&mut V, bool) {
        if let Some(&i) = self.index.get(name) {
            return (&mut self.entries[i].1, false);
        }
        let overflow = self.entries.len() >= self.cap.saturating_sub(1) && name != OTHER;
        let key = if overflow {
            self.overflowed += 1;
            OTHER
        } else {
            name
        };
        let i = if let Some(&i) = self.index.get(key) {
            i
        } else {
            self.entries.push((key.into(), make()));
            self.index.insert(key.into(), self.entries.len() - 1);
            self.entries.len() - 1
        };
        (&mut self.entries[i].1, overflow)
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&**k, v))
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut V> {
        let i = *self.index.get(name)?;
        Some(&mut self.entries[i].1)
    }
}

impl<'a, V> IntoIterator for &'a Capped<V> {
    type Item = (&'a str, &'a V);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Box<str>, V)>,
        fn(&'a (Box<str>, V)) -> (&'a str, &'a V),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }
}

/// The routes or instances of one model.
#[derive(Debug)]
struct Keyed {
    windows: Capped<Window>,
    slot_secs: u32,
    len: u32,
}

impl Keyed {
    fn new(cap: usize, slot_secs: u32, len: u32) -> Self {
        Self {
            windows: Capped::new(cap),
            slot_secs,
            len,
        }
    }

    #[inline]
    fn window(&mut self, name: &str) -> (&mut Window, bool) {
        let (slot_secs, len) = (self.slot_secs, self.len);
        self.windows
            .get_or_insert(name, || Window::new(slot_secs, len))
    }

    fn expire(&mut self, now_sec: i64) {
        for (_, w) in self.windows.iter_mut() {
            w.expire(now_sec, drop);
        }
    }

    fn stats(&self, now_sec: i64, first_sec: i64, merger: &mut Merger) -> Vec<KeyStats> {
        let mut out: Vec<KeyStats> = self
            .windows
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(name, w)| KeyStats {
                name: name.to_owned(),
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

    fn overflowed(&self) -> u64 {
        self.windows.overflowed
    }

    fn heap_bytes(&self) -> usize {
        self.windows
            .iter()
            .map(|(k, w)| 2 * k.len() + w.heap_bytes() + 96)
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
    /// 24 h of 10-s buckets, filled as slots leave the live window.
    ring: Ring,
    /// 10-s buckets still filling (slots retired from the live window, late events),
    /// moved into `ring` once the live window has passed their end.
    staging: BTreeMap<i64, Slot>,
    /// Latest resource sample per instance: (bucket, cpu %, memory bytes).
    resources: Map<(i64, Option<f32>, Option<u64>)>,
    totals: Totals,
}

/// All the state of the monitor.
pub struct Store {
    cfg: StoreConfig,
    models: Capped<ModelState>,
    /// Events folded into `(other)` by any cap.
    folded: u64,
    counters: Counters,
    rejects: VecDeque<RejectRecord>,
    dropped_by_source: BTreeMap<String, u64>,
    merger: Merger,
    /// For the ingest rate: events counted at the previous view.
    rate_mark: (i64, u64),
    /// The history readers see, rebuilt once per 10-s bucket.
    history: Arc<HistoryView>,
    history_bucket: i64,
    uptime: Uptime,
    /// The second this run started, set by the first view.
    run_start_s: Option<i64>,
    /// Rings loaded from a snapshot for models not seen since the restart: they stay
    /// out of the live view until the model sends again, but stay in the history.
    dormant: BTreeMap<String, Ring>,
    ring_merger: ring::Merger,
    /// Containers mapped to models, from the Docker poller.
    containers: containers::Containers,
}

/// Ingest counters as saved in snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestTotals {
    pub events: u64,
    pub rejected: u64,
    pub late: u64,
    pub dropped_at_source: u64,
    pub batches: u64,
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
            models: Capped::new(cfg.max_models),
            cfg,
            folded: 0,
            counters: Counters::default(),
            rejects: VecDeque::new(),
            dropped_by_source: BTreeMap::new(),
            merger: Merger::default(),
            rate_mark: (0, 0),
            history: Arc::default(),
            history_bucket: i64::MIN,
            uptime: Uptime::default(),
            run_start_s: None,
            dormant: BTreeMap::new(),
            ring_merger: ring::Merger::default(),
            containers: containers::Containers::default(),
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
            self.folded += folded;
            i += run;
        }
    }

    fn model_state(&mut self, model: &str, now_sec: i64) -> (&mut ModelState, bool) {
        let cfg = &self.cfg;
        let dormant = &mut self.dormant;
        self.models.get_or_insert(model, || {
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
                // A model back after a restart continues its saved history.
                ring: dormant.remove(model).unwrap_or_default(),
                staging: BTreeMap::new(),
                resources: Map::default(),
                totals: Totals::default(),
            }
        })
    }

    /// Builds the view at `now_us`, first letting old slots leave the windows.
    pub fn view(&mut self, now_us: i64, broker: BrokerView) -> View {
        let now_sec = now_us.div_euclid(1_000_000);
        let mut models: Vec<ModelView> = Vec::with_capacity(self.models.len());
        for (name, m) in self.models.iter_mut() {
            expire_model(m, now_sec, &mut self.merger, &mut self.ring_merger);
            m.routes.expire(now_sec);
            m.instances.expire(now_sec);
            models.push(model_view(
                name,
                m,
                now_us,
                self.cfg.window_s,
                &mut self.merger,
            ));
        }
        models.sort_by(|a, b| a.model.cmp(&b.model));
        if bucket_of_sec(now_sec) != self.history_bucket {
            self.rebuild_history(now_us);
        }

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
                overflowed: self.folded,
                batches: c.batches,
                events_per_s,
                dropped_by_source: self.dropped_by_source.clone(),
            },
            recent_rejects: self.rejects.iter().cloned().collect(),
            models,
            history: Arc::clone(&self.history),
            docker: self.containers.docker_view(),
            resources: self.containers.by_model(),
            alerts: Arc::default(),
        }
    }

    /// The Docker connection changed state.
    pub fn set_docker(&mut self, docker: view::DockerView) {
        self.containers.set_docker(docker);
    }

    /// A container mapped to a model appeared or changed state.
    pub fn container_info(&mut self, info: containers::ContainerInfo, now_us: i64) {
        // A model known only by its container still gets a row (and a history).
        self.model_state(&info.model, now_us.div_euclid(1_000_000));
        self.containers.upsert(info);
    }

    pub fn container_gone(&mut self, id: &str) {
        self.containers.remove(id);
    }

    pub fn container_event(&mut self, ev: containers::ContainerEvent) {
        self.containers.event(ev);
    }

    /// A resource sample: into the live view and the 24-hour rings.
    pub fn container_sample(&mut self, sample: containers::ContainerSample) {
        let (ts, cpu, mem) = (sample.ts_us, sample.cpu_percent, sample.mem_bytes);
        if let Some((model, instance)) = self.containers.sample(sample) {
            self.record_resources(&model, &instance, ts, cpu.map(|c| c as f32), mem);
        }
    }

    /// Brings the history up to `now_us` (windows expired, buckets moved into the rings)
    /// and returns it: for snapshots, which must not wait for the next 10-s bucket.
    pub fn fresh_history(&mut self, now_us: i64) -> Arc<HistoryView> {
        let now_sec = now_us.div_euclid(1_000_000);
        for m in self.models.values_mut() {
            expire_model(m, now_sec, &mut self.merger, &mut self.ring_merger);
        }
        self.rebuild_history(now_us);
        Arc::clone(&self.history)
    }

    /// The history as of the last rebuild.
    pub fn history(&self) -> Arc<HistoryView> {
        Arc::clone(&self.history)
    }

    fn rebuild_history(&mut self, now_us: i64) {
        let now_sec = now_us.div_euclid(1_000_000);
        let run_start = *self.run_start_s.get_or_insert(now_sec);
        self.uptime.mark(run_start, now_sec);
        let mut rings = BTreeMap::new();
        for (name, m) in &self.models {
            // The store's ring holds complete buckets; readers also get the ones still
            // filling, added to a copy (which shares every hour but the current one).
            let mut ring = m.ring.clone();
            let mut tail = BTreeMap::new();
            for s in m.staging.values().chain(m.live.slots()) {
                stage(&mut tail, s);
            }
            for s in tail.values() {
                ring.add(s, now_sec, &mut self.ring_merger);
            }
            if !ring.is_empty() {
                rings.insert(name.to_string(), ring);
            }
        }
        self.dormant.retain(|_, r| {
            r.age(now_sec, &mut self.ring_merger);
            !r.is_empty()
        });
        for (name, r) in &self.dormant {
            rings.insert(name.clone(), r.clone());
        }
        self.history = Arc::new(HistoryView::new(
            now_us.div_euclid(1000),
            rings,
            self.uptime.clone(),
        ));
        self.history_bucket = bucket_of_sec(now_sec);
    }

    /// Continues the rings of a loaded snapshot. Time since it was saved stays a gap.
    pub fn restore(&mut self, saved: &HistoryView, now_us: i64) {
        let now_sec = now_us.div_euclid(1_000_000);
        for (name, ring) in saved.rings() {
            if self.models.len() + self.dormant.len() >= self.cfg.max_models {
                break;
            }
            match self.models.get_mut(name) {
                Some(m) if m.ring.is_empty() => m.ring = ring.clone(),
                Some(_) => {}
                None => {
                    let mut ring = ring.clone();
                    ring.age(now_sec, &mut self.ring_merger);
                    if !ring.is_empty() {
                        self.dormant.insert(name.to_owned(), ring);
                    }
                }
            }
        }
        let mut spans = saved.uptime().spans().to_vec();
        spans.extend_from_slice(self.uptime.spans());
        self.uptime = Uptime::from_spans(spans);
        self.history_bucket = i64::MIN;
    }

    /// Records a CPU / memory sample of one instance of a model (from Docker polling).
    /// The model's figure in a 10-s bucket is the sum over its instances' latest samples.
    pub fn record_resources(
        &mut self,
        model: &str,
        instance: &str,
        ts_us: i64,
        cpu_percent: Option<f32>,
        mem_bytes: Option<u64>,
    ) {
        let sec = ts_us.div_euclid(1_000_000);
        let bucket = bucket_of_sec(sec);
        let cap = self.cfg.max_instances;
        let (state, _) = self.model_state(model, sec);
        // Instances gone for a minute no longer count; the cap bounds the map.
        state.resources.retain(|_, r| r.0 >= bucket - 60);
        if state.resources.len() >= cap && !state.resources.contains_key(instance) {
            return;
        }
        state
            .resources
            .insert(instance.into(), (bucket, cpu_percent, mem_bytes));
        let mut cpu: Option<f32> = None;
        let mut mem: Option<u64> = None;
        for (b, c, m) in state.resources.values() {
            if *b == bucket {
                if let Some(c) = c {
                    cpu = Some(cpu.unwrap_or(0.0) + c);
                }
                if let Some(m) = m {
                    mem = Some(mem.unwrap_or(0) + m);
                }
            }
        }
        state.ring.set_res(sec, sec, cpu, mem);
    }

    /// Ingest counters since this monitor started.
    pub fn ingest_totals(&self) -> IngestTotals {
        let c = &self.counters;
        IngestTotals {
            events: c.events,
            rejected: c.rejected,
            late: c.late,
            dropped_at_source: c.dropped_at_source,
            batches: c.batches,
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
                    + m.ring.heap_bytes()
            })
            .sum()
    }
}

/// Records one event of a model. Returns whether it was late, and how many names it folded into `(other)`.
#[inline]
fn record_one(m: &mut ModelState, ev: &Event<'_>, now_sec: i64) -> (bool, u64) {
    let sec = ev.ts.div_euclid(1_000_000);
    let err = ev.is_error();
    count_total(&mut m.totals, ev.status, ev.duration_us, err);
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
        let b = bucket_of_sec(sec);
        m.staging
            .entry(b)
            .or_insert_with(|| Slot {
                start: b,
                ..Slot::default()
            })
            .record(ev.status, ev.duration_us, err);
        return (true, 0);
    }
    m.first_sec = m.first_sec.min(sec);
    let (route, r_over) = m.routes.window(&ev.route);
    route.record(sec, now_sec, ev.status, ev.duration_us, err);
    let (inst, i_over) = m.instances.window(&ev.instance);
    inst.record(sec, now_sec, ev.status, ev.duration_us, err);
    (false, u64::from(r_over) + u64::from(i_over))
}

/// Adds one request to the counts since start, late ones included.
#[inline]
fn count_total(t: &mut Totals, status: u16, duration_us: u64, err: bool) {
    let c = &mut t.status;
    match status / 100 {
        1 => c.c1xx += 1,
        2 => c.c2xx += 1,
        3 => c.c3xx += 1,
        4 => c.c4xx += 1,
        _ => c.c5xx += 1,
    }
    t.errors += u64::from(err);
    let s = duration_us as f64 / 1e6;
    t.duration_sum_s += s;
    if let Some(i) = LATENCY_BUCKETS_S.iter().position(|&b| s <= b) {
        t.duration_buckets[i] += 1;
    }
}

/// A late event still belongs in the five-minute series, if its second is there.
fn add_late_to_past(m: &mut ModelState, sec: i64, err: bool) {
    if let Ok(i) = m.past.binary_search_by_key(&sec, |p| p.sec) {
        m.past[i].requests += 1;
        m.past[i].errors += u64::from(err);
    }
}

fn expire_model(
    m: &mut ModelState,
    now_sec: i64,
    merger: &mut Merger,
    ring_merger: &mut ring::Merger,
) {
    let past = &mut m.past;
    let staging = &mut m.staging;
    m.live.expire(now_sec, |slot| {
        past.push_back(series_point(&slot, merger));
        stage(staging, &slot);
    });
    while past.front().is_some_and(|p| p.sec <= now_sec - SERIES_SECS) {
        past.pop_front();
    }
    // A bucket is complete once the live window has passed its end.
    let complete_before = m.live.oldest_start(now_sec);
    while let Some(entry) = m.staging.first_entry() {
        if *entry.key() + STEP_S > complete_before {
            break;
        }
        m.ring.add(&entry.remove(), now_sec, ring_merger);
    }
    m.ring.age(now_sec, ring_merger);
}

/// Adds a slot to the 10-s bucket holding its start.
fn stage(staging: &mut BTreeMap<i64, Slot>, slot: &Slot) {
    let b = bucket_of_sec(slot.start);
    staging
        .entry(b)
        .or_insert_with(|| Slot {
            start: b,
            ..Slot::default()
        })
        .absorb(slot);
}

fn series_point(slot: &Slot, merger: &mut Merger) -> SeriesPoint {
    merger.add(&slot.latency);
    let q = merger.take();
    let ms = |v: f64| v.min(slot.max_us as f64) / 1000.0;
    SeriesPoint {
        sec: slot.start,
        requests: slot.requests(),
        errors: u64::from(slot.errors),
        p50_ms: q.map(|q| ms(q.p50)),
        p95_ms: q.map(|q| ms(q.p95)),
        p99_ms: q.map(|q| ms(q.p99)),
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
                ..SeriesPoint::default()
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
        routes_overflowed: m.routes.overflowed(),
        version: m.version.as_deref().map(str::to_owned),
        totals: m.totals.clone(),
    }
}

/// Figures over a window. QPS divides by the window's span, or by the time since the
/// key was first seen when that is shorter, so a model that just appeared is not
/// shown at a fraction of its real rate.
fn window_stats(w: &Window, now_sec: i64, first_sec: i64, merger: &mut Merger) -> Stats {
    // Totals in u64: a window holds many slots' worth of u32 counts.
    let (mut status, mut errors, mut sum_us, mut max_us) = ([0u64; 5], 0u64, 0u64, 0u64);
    for s in w.slots() {
        for (a, b) in status.iter_mut().zip(s.status) {
            *a += u64::from(b);
        }
        errors += u64::from(s.errors);
        sum_us += s.sum_us;
        max_us = max_us.max(s.max_us);
        merger.add(&s.latency);
    }
    let q = merger.take();
    let span = w.span_secs();
    let covered = (now_sec - first_sec + 1).clamp(1, span);
    let n: u64 = status.iter().sum();
    let rate = |x: u64| (n > 0).then(|| x as f64 / n as f64);
    // A bucket midpoint can sit above the largest sample; never report past it.
    let ms = |us: f64| us.min(max_us as f64) / 1000.0;
    Stats {
        requests: n,
        qps: n as f64 / covered as f64,
        errors,
        error_rate: rate(errors),
        client_errors: status[3],
        client_error_rate: rate(status[3]),
        status: status.into(),
        mean_ms: (n > 0).then(|| sum_us as f64 / n as f64 / 1000.0),
        p50_ms: q.map(|q| ms(q.p50)),
        p90_ms: q.map(|q| ms(q.p90)),
        p95_ms: q.map(|q| ms(q.p95)),
        p99_ms: q.map(|q| ms(q.p99)),
        max_ms: (n > 0).then(|| ms(max_us as f64)),
    }
}
