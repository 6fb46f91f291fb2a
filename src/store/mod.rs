//! The store: the one owner of the monitor's state, and its only writer.
//!
//! Ingest hands it decoded batches; it keeps per model (and per route and per instance
//! inside a model) a rolling window, and on request builds a [`View`] that everything
//! downstream reads. Time is always passed in (`now_us`), never read here, so tests
//! drive it with a virtual clock.
//!
//! This module imports no I/O crate: no lapin, no ratatui, no axum.

mod containers;
mod hist;
pub mod history;
pub mod persist;
mod ring;
pub mod synthetic;
mod totals;
mod ttfb;
mod varint;
pub mod view;
mod window;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use foldhash::fast::RandomState;
use modelmon_contract::{BatchError, Decoded, Event, MAX_ML_ENTRIES, RejectReason};

pub use containers::{ContainerEvent, ContainerInfo, ContainerSample};
use hist::Merger;
use history::{HistoryView, KeyKind, KeyRings, Uptime};
use ring::{HOUR_S, Ring, STEP_S, bucket_of_sec};
pub use totals::{Buckets, DEFAULT_BUCKETS_S};
use totals::{Labels, ModelTotals};
pub use view::{BrokerState, BrokerView, View};
use view::{
    IngestView, KeyStats, MeasureStats, ModelView, RejectRecord, SeriesPoint, Stats, VersionStats,
};
use window::{Hit, Placement, Slot, Window};

/// The name that takes the overflow of a cardinality cap.
pub const OTHER: &str = "(other)";

/// Publishing processes whose drops are counted apart (`ingest.dropped_by_source`).
pub const MAX_DROP_SOURCES: usize = 256;

/// The rings of a streaming model's first bytes: time to first byte, generation time.
pub const STREAMS: [&str; 2] = ["ttfb", "generation"];

/// The sizes a model's events may carry.
pub const SIZES: [&str; 2] = ["req_bytes", "resp_bytes"];

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
    /// Versions of one model tracked side by side.
    pub max_versions: usize,
    /// `ml` keys of one model.
    pub max_measures: usize,
    /// Rejected events kept for display.
    pub recent_rejects: usize,
    /// Memory the 24-hour rings of routes and instances may take, in bytes. Past it
    /// their oldest hours go first (models' own rings are not affected).
    pub key_history_bytes: usize,
    /// Whether every view's history carries the route and instance rings. Off, only
    /// snapshots do: a view held by a reader makes the store copy each ring's current
    /// hour on its next write, which at the caps is tens of MiB for nothing.
    pub keys_in_views: bool,
    /// Bounds of the `/metrics` duration histograms.
    pub buckets: Buckets,
    /// `--models`: the models this monitor follows, all when empty. Events are filtered
    /// by the broker's bindings; agents' pictures hold every model of a host and are
    /// filtered here.
    pub only_models: Vec<String>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            window_s: 60,
            max_models: 256,
            max_routes: 64,
            max_instances: 64,
            max_versions: 8,
            max_measures: 16,
            recent_rejects: 50,
            key_history_bytes: 64 << 20,
            keys_in_views: false,
            buckets: Buckets::default(),
            only_models: Vec::new(),
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
/// access; values live in a vector so the hot path never allocates a key. An entry's
/// index is stable while it holds its name; [`Capped::take_over`] gives the place to
/// another name.
#[derive(Debug)]
struct Capped<V> {
    index: Map<usize>,
    entries: Vec<(Box<str>, V)>,
    cap: usize,
    overflowed: u64,
    /// The index of the [`OTHER`] entry, once there is one. It takes no named place:
    /// restored from a snapshot, it comes first (it sorts first) and would otherwise
    /// leave the last named key out.
    other: Option<usize>,
    /// The entry found last. A batch comes from one process, so its events share an
    /// instance and often a route: comparing with the last name (and the next one)
    /// beats hashing it.
    last: usize,
}

impl<V> Capped<V> {
    fn new(cap: usize) -> Self {
        Self {
            index: Map::default(),
            entries: Vec::new(),
            cap,
            overflowed: 0,
            other: None,
            last: usize::MAX,
        }
    }

    /// The value of `name`, made by `make` on first use. `true` when folded into `(other)`.
    #[inline]
    fn get_or_insert(&mut self, name: &str, make: impl FnOnce() -> V) -> (&mut V, bool) {
        let (i, overflow) = self.index_of(name, make);
        (&mut self.entries[i].1, overflow)
    }

    /// Like [`Capped::get_or_insert`], the entry's index: stable until the entry is
    /// taken over by another name.
    ///
    /// The usual cases, the name found last or the next one, are inlined; a call costs
    /// as much as they do.
    #[inline]
    fn index_of(&mut self, name: &str, make: impl FnOnce() -> V) -> (usize, bool) {
        let last = self.last;
        if self.holds(last, name) {
            return (last, false);
        }
        // Names that come in the same order every time (an event's `ml` keys) are found
        // as the next entry, or the first one after the last.
        let next = if last.wrapping_add(1) < self.entries.len() {
            last + 1
        } else {
            0
        };
        if self.holds(next, name) {
            self.last = next;
            return (next, false);
        }
        self.index_of_other(name, make)
    }

    /// Whether the entry at `index` is `name`'s.
    #[inline]
    fn holds(&self, index: usize, name: &str) -> bool {
        self.entries
            .get(index)
            .is_some_and(|e| same_name(&e.0, name))
    }

    #[inline(never)]
    fn index_of_other(&mut self, name: &str, make: impl FnOnce() -> V) -> (usize, bool) {
        if let Some(&i) = self.index.get(name) {
            self.last = i;
            return (i, false);
        }
        let named = self.entries.len() - usize::from(self.other.is_some());
        let overflow = named >= self.cap.saturating_sub(1) && name != OTHER;
        if overflow {
            self.overflowed += 1;
        }
        let key = if overflow { OTHER } else { name };
        let i = match self.other {
            Some(i) if key == OTHER => i,
            _ => {
                self.entries.push((key.into(), make()));
                let i = self.entries.len() - 1;
                self.index.insert(key.into(), i);
                if key == OTHER {
                    self.other = Some(i);
                }
                i
            }
        };
        if !overflow {
            self.last = i;
        }
        (i, overflow)
    }

    /// Gives the named entry at `index` to `name` with a fresh value; returns the old
    /// value. The caller accounts for what the old one held.
    fn take_over(&mut self, index: usize, name: &str, value: V) -> V {
        let (old_name, old) = std::mem::replace(&mut self.entries[index], (name.into(), value));
        self.index.remove(&old_name);
        self.index.insert(name.into(), index);
        self.last = index;
        old
    }

    /// The name at `index`.
    fn name(&self, index: usize) -> Option<&str> {
        self.entries.get(index).map(|(k, _)| &**k)
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

/// `a == b` for names, eight bytes at a time. Every event compares a few names with the
/// last ones seen (its instance, version, `ml` keys), and most are 8 to 32 bytes long,
/// where the library call `==` makes costs more than the comparison itself.
#[inline]
fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    if !(8..=32).contains(&a.len()) {
        return a == b;
    }
    let word = |s: &[u8], at: usize| s[at..].first_chunk::<8>().map(|w| u64::from_le_bytes(*w));
    let mut at = 0;
    while at + 8 < a.len() {
        if word(a, at) != word(b, at) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words already compared.
    word(a, a.len() - 8) == word(b, b.len() - 8)
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

/// A route or an instance: its live window and its 24-hour ring.
#[derive(Debug)]
struct KeyState {
    window: Window,
    /// Filled as slots leave the window (and with late events), at [`ring::Grain::Key`].
    ring: Ring,
    /// Events older than the window, one slot per ring cell, until the next expiry.
    late: Vec<Slot>,
}

impl KeyState {
    fn new(slot_secs: u32, len: u32) -> Self {
        Self {
            window: Window::new(slot_secs, len),
            ring: Ring::keyed(),
            late: Vec::new(),
        }
    }

    /// A reader's copy of the ring (sharing every hour but the newest) with the live
    /// window's slots added.
    fn reader_ring(&self, now_sec: i64, merger: &mut ring::Merger) -> Ring {
        let mut ring = self.ring.clone();
        // One add per ring cell, not per slot: each add re-encodes the cell.
        let mut cell: Option<Slot> = None;
        for s in self.window.slots() {
            let start = s.start.div_euclid(ring::COARSE_S) * ring::COARSE_S;
            if cell.as_ref().is_some_and(|c| c.start != start)
                && let Some(c) = cell.take()
            {
                ring.add(&c, now_sec, merger);
            }
            cell.get_or_insert_with(|| Slot {
                start,
                ..Slot::default()
            })
            .absorb(s);
        }
        if let Some(c) = cell {
            ring.add(&c, now_sec, merger);
        }
        ring
    }

    fn record_late(&mut self, sec: i64, hit: &Hit) {
        self.late_cell(sec).record_hit(hit);
    }

    /// About when the key's last request ended (to the end of its slot or cell), if
    /// it had one in the last 24 hours.
    fn last_request_s(&self, slot_secs: u32) -> Option<i64> {
        let window = self
            .window
            .slots()
            .filter(|s| s.requests() > 0)
            .map(|s| s.start + i64::from(slot_secs));
        let late = self
            .late
            .iter()
            .filter(|s| s.requests() > 0)
            .map(|s| s.start + ring::COARSE_S);
        window.chain(late).chain(self.ring.last_request_s()).max()
    }

    /// The slot of late events for the ring cell holding `sec`.
    fn late_cell(&mut self, sec: i64) -> &mut Slot {
        let cell = sec.div_euclid(ring::COARSE_S) * ring::COARSE_S;
        let i = if let Some(i) = self.late.iter().position(|s| s.start == cell) {
            i
        } else {
            self.late.push(Slot {
                start: cell,
                ..Slot::default()
            });
            self.late.len() - 1
        };
        &mut self.late[i]
    }
}

/// How long a named key must have had no request before a new name may take its place.
pub const QUIET_S: i64 = HOUR_S;

/// The routes, instances, versions or measures of one model.
#[derive(Debug)]
struct Keyed {
    keys: Capped<KeyState>,
    slot_secs: u32,
    len: u32,
    /// Whether slots leaving the windows go into the rings (sizes keep only the window).
    history: bool,
    /// No named key can have been quiet for [`QUIET_S`] before this second: a full
    /// family that keeps getting new names (ids in paths) is not searched on each one.
    no_quiet_before: i64,
}

impl Keyed {
    fn new(cap: usize, slot_secs: u32, len: u32) -> Self {
        Self {
            keys: Capped::new(cap),
            slot_secs,
            len,
            history: true,
            no_quiet_before: i64::MIN,
        }
    }

    /// The sizes of a model's events: [`SIZES`], at their indices there (created now,
    /// so every event records them by index, not by name), in live windows only.
    fn sizes(slot_secs: u32, len: u32) -> Self {
        let mut sizes = Self::new(SIZES.len() + 1, slot_secs, len);
        sizes.history = false;
        for name in SIZES {
            sizes.key(name);
        }
        sizes
    }

    /// Adds a whole slot of `name` straight to its ring (TTFB slots leaving the model's
    /// live window).
    fn absorb_retired(&mut self, name: &str, slot: &Slot) {
        let (i, _) = self.key(name);
        self.keys.entries[i].1.late_cell(slot.start).absorb(slot);
    }

    /// The index of `name`'s entry, and whether it was folded into `(other)`. A full
    /// family folds every new name: restoring a snapshot takes no place over.
    #[inline]
    fn key(&mut self, name: &str) -> (usize, bool) {
        let (slot_secs, len) = (self.slot_secs, self.len);
        self.keys.index_of(name, || KeyState::new(slot_secs, len))
    }

    /// [`Keyed::key`] for an event at `now_sec`: a new name at a full family takes the
    /// place of the named key quiet the longest, if one has had no request for
    /// [`QUIET_S`], rather than folding into `(other)` for good (versions rolled out,
    /// containers recreated). `taken(index, other)` is called then, for what is counted
    /// by index elsewhere (`/metrics` totals) to move to `(other)` as well: a closure,
    /// so the hot path pays nothing for it.
    #[inline]
    fn key_at(
        &mut self,
        name: &str,
        now_sec: i64,
        taken: impl FnOnce(usize, usize),
    ) -> (usize, bool) {
        let found = self.key(name);
        if found.1 && now_sec >= self.no_quiet_before {
            return self.take_over_quiet(name, now_sec, taken).unwrap_or(found);
        }
        found
    }

    /// Gives `name` the place of the named key quiet the longest. What that key held
    /// goes to `(other)`: its day into `(other)`'s ring, so the family still adds up to
    /// the model; its live window goes with it, never shown under the new name.
    #[inline(never)]
    fn take_over_quiet(
        &mut self,
        name: &str,
        now_sec: i64,
        taken: impl FnOnce(usize, usize),
    ) -> Option<(usize, bool)> {
        let other = self.keys.other?;
        let quiet_until = now_sec - QUIET_S;
        // Least recently seen first; a key with nothing in its day before any other.
        let mut oldest: Option<(Option<i64>, usize)> = None;
        let mut soonest = i64::MAX;
        for (i, (_, k)) in self.keys.entries.iter().enumerate() {
            if i == other {
                continue;
            }
            let last = k.last_request_s(self.slot_secs);
            match last {
                Some(t) if t > quiet_until => soonest = soonest.min(t + QUIET_S),
                _ if oldest.is_none_or(|(seen, _)| last < seen) => oldest = Some((last, i)),
                _ => {}
            }
        }
        let Some((_, i)) = oldest else {
            self.no_quiet_before = soonest;
            return None;
        };
        let old = self
            .keys
            .take_over(i, name, KeyState::new(self.slot_secs, self.len));
        // `key` counted the event as folded.
        self.keys.overflowed -= 1;
        if self.history {
            let mut merger = ring::Merger::default();
            let mut day = old.reader_ring(now_sec, &mut merger);
            for slot in &old.late {
                day.add(slot, now_sec, &mut merger);
            }
            self.keys.entries[other]
                .1
                .ring
                .merge(&day, now_sec, &mut merger);
        }
        taken(i, other);
        Some((i, false))
    }

    /// [`Keyed::record`], first trying `was_at`: the index `name` had on the previous
    /// event of the run, set to where it is now. Inlined, with the lookup by name out of
    /// line: a batch's events mostly repeat the names of the one before (instance,
    /// version, `ml` keys).
    #[inline]
    fn record_hinted(
        &mut self,
        name: &str,
        was_at: &mut usize,
        sec: i64,
        now_sec: i64,
        hit: &Hit,
        taken: impl FnOnce(usize, usize),
    ) -> (usize, bool) {
        let found = if self.keys.holds(*was_at, name) {
            (*was_at, false)
        } else {
            self.key_cold(name, now_sec, taken)
        };
        *was_at = found.0;
        self.record_at(found.0, sec, now_sec, hit);
        found
    }

    #[inline(never)]
    fn key_cold(
        &mut self,
        name: &str,
        now_sec: i64,
        taken: impl FnOnce(usize, usize),
    ) -> (usize, bool) {
        self.key_at(name, now_sec, taken)
    }

    /// Records an event; returns its key's index, and `true` when the key was folded
    /// into `(other)`.
    #[inline]
    fn record(
        &mut self,
        name: &str,
        sec: i64,
        now_sec: i64,
        hit: &Hit,
        taken: impl FnOnce(usize, usize),
    ) -> (usize, bool) {
        let (i, overflowed) = self.key_at(name, now_sec, taken);
        self.record_at(i, sec, now_sec, hit);
        (i, overflowed)
    }

    /// Records an event for the key at index `i`.
    #[inline]
    fn record_at(&mut self, i: usize, sec: i64, now_sec: i64, hit: &Hit) {
        let k = &mut self.keys.entries[i].1;
        // The model's window has 1-s slots, ours wider ones: an event can be inside
        // the first and just before the second.
        if k.window.record_hit(sec, now_sec, hit) == Placement::Late {
            k.record_late(sec, hit);
        }
    }

    /// Records an event too old for the window: straight for the ring.
    fn record_late(
        &mut self,
        name: &str,
        sec: i64,
        now_sec: i64,
        hit: &Hit,
        taken: impl FnOnce(usize, usize),
    ) -> (usize, bool) {
        let (i, overflowed) = self.key_at(name, now_sec, taken);
        self.keys.entries[i].1.record_late(sec, hit);
        (i, overflowed)
    }

    /// Moves the slots that left the windows, and late events, into the rings.
    fn expire(&mut self, now_sec: i64, merger: &mut ring::Merger) {
        let history = self.history;
        for k in self.keys.values_mut() {
            let ring = &mut k.ring;
            k.window.expire(now_sec, |slot| {
                if history {
                    ring.add(&slot, now_sec, merger);
                }
            });
            for slot in k.late.drain(..) {
                if history {
                    ring.add(&slot, now_sec, merger);
                }
            }
        }
    }

    /// What readers get of the rings: copies that share every hour but the newest, with
    /// the live window's slots added, so a range over the last minutes is not short.
    fn rings(&self, now_sec: i64, merger: &mut ring::Merger) -> BTreeMap<String, Ring> {
        let mut out = BTreeMap::new();
        for (name, k) in self.keys.iter() {
            let ring = k.reader_ring(now_sec, merger);
            if !ring.is_empty() {
                out.insert(name.to_owned(), ring);
            }
        }
        out
    }

    /// [`Keyed::rings`] of one key alone; `None` when it has no data.
    fn ring(&self, name: &str, now_sec: i64, merger: &mut ring::Merger) -> Option<Ring> {
        let (_, k) = self.keys.iter().find(|(n, _)| *n == name)?;
        Some(k.reader_ring(now_sec, merger)).filter(|r| !r.is_empty())
    }

    /// Continues saved rings; keys beyond the cap are not restored.
    fn restore(&mut self, saved: &BTreeMap<String, Ring>) {
        for (name, ring) in saved {
            let (i, overflowed) = self.key(name);
            let k = &mut self.keys.entries[i].1;
            if !overflowed && k.ring.is_empty() {
                k.ring = ring.clone();
            }
        }
    }

    fn rings_mut(&mut self) -> impl Iterator<Item = &mut Ring> {
        self.keys.values_mut().map(|k| &mut k.ring)
    }

    /// Measures by name (values in thousandths, see [`measure_hit`]).
    fn measures(
        &self,
        now_sec: i64,
        first_sec: i64,
        merger: &mut Merger,
    ) -> BTreeMap<String, MeasureStats> {
        self.keys
            .iter()
            .filter(|(_, k)| !k.window.is_empty())
            .map(|(name, k)| {
                let s = window_stats(&k.window, now_sec, first_sec, merger);
                (name.to_owned(), MeasureStats::from_window(&s))
            })
            .collect()
    }

    fn stats(&self, now_sec: i64, first_sec: i64, merger: &mut Merger) -> Vec<KeyStats> {
        let mut out: Vec<KeyStats> = self
            .keys
            .iter()
            .filter(|(_, k)| !k.window.is_empty())
            .map(|(name, k)| KeyStats {
                name: name.to_owned(),
                stats: window_stats(&k.window, now_sec, first_sec, merger),
            })
            .collect();
        busiest_first(&mut out, |k| (k.stats.requests, &k.name));
        out
    }

    fn overflowed(&self) -> u64 {
        self.keys.overflowed
    }

    fn window_bytes(&self) -> usize {
        self.keys
            .iter()
            .map(|(k, s)| {
                2 * k.len()
                    + s.window.heap_bytes()
                    + s.late.capacity() * std::mem::size_of::<Slot>()
                    + 128
            })
            .sum()
    }

    fn ring_bytes(&self) -> usize {
        self.keys.iter().map(|(_, s)| s.ring.heap_bytes()).sum()
    }
}

#[derive(Debug)]
struct ModelState {
    live: Window,
    /// Per-second points of seconds that have left the live window, newest last.
    past: VecDeque<SeriesPoint>,
    routes: Keyed,
    instances: Keyed,
    versions: Keyed,
    /// `ml` keys, values kept in thousandths.
    measures: Keyed,
    /// `req_bytes` and `resp_bytes`: live windows only.
    sizes: Keyed,
    /// Time to first byte and generation time, as TTFB slots leave the live window:
    /// rings only, no live windows (the model's own window has them).
    streams: Keyed,
    /// Newest request end seen, Unix µs: when the model was last heard of.
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
    totals: ModelTotals,
}

impl ModelState {
    /// The families that keep 24-hour rings, in [`KeyKind::ALL`] order.
    fn ringed(&self) -> [&Keyed; KeyKind::ALL.len()] {
        [
            &self.routes,
            &self.instances,
            &self.versions,
            &self.measures,
            &self.streams,
        ]
    }

    fn ringed_mut(&mut self) -> [&mut Keyed; KeyKind::ALL.len()] {
        [
            &mut self.routes,
            &mut self.instances,
            &mut self.versions,
            &mut self.measures,
            &mut self.streams,
        ]
    }
}

/// The saved history of a model that has not sent since the restart.
#[derive(Debug, Default)]
struct Dormant {
    ring: Ring,
    keys: KeyRings,
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
    dormant: BTreeMap<String, Dormant>,
    ring_merger: ring::Merger,
    /// Containers mapped to models, from the Docker poller.
    containers: containers::Containers,
    /// In stream mode: the offset of the first message the store has not applied,
    /// which a snapshot records so that a restart resumes there.
    stream_next: Option<u64>,
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
            stream_next: None,
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    /// Applies one decoded batch: its good events, its rejects and its drop count.
    pub fn apply(&mut self, batch: &Decoded<'_>, now_us: i64) {
        self.counters.batches += 1;
        if batch.dropped > 0 {
            // Senders write `dropped`: a bogus one near 2^64 must not wrap the count.
            self.counters.dropped_at_source = self
                .counters
                .dropped_at_source
                .saturating_add(batch.dropped);
            let key = format!(
                "{}/{}/{}",
                batch.source.kind.as_str(),
                batch.source.instance,
                batch.source.pid
            );
            // One entry per publishing process; past the cap they share `(other)`, so
            // sources that come and go (new pids) cannot grow the map without bound.
            let key = if self.dropped_by_source.len() >= MAX_DROP_SOURCES
                && !self.dropped_by_source.contains_key(&key)
            {
                OTHER.to_owned()
            } else {
                key
            };
            let n = self.dropped_by_source.entry(key).or_default();
            *n = n.saturating_add(batch.dropped);
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
        let buckets = self.cfg.buckets.clone();
        let mut i = 0;
        while i < events.len() {
            let model = &events[i].model;
            let run = events[i..].iter().take_while(|e| e.model == *model).count();
            let (state, overflowed) = self.model_state(model, now_sec);
            let mut late = 0u64;
            // An event counts once however many of its names (model, route, instance)
            // a cap folded: `ingest.overflowed` is events, as documented.
            let mut folded = 0u64;
            let mut hints = Hints::default();
            for ev in &events[i..i + run] {
                let (l, f) = record_one(state, ev, now_sec, &buckets, &mut hints);
                late += u64::from(l);
                folded += u64::from(f || overflowed);
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
            // A model back after a restart continues its saved history.
            let saved = dormant.remove(model).unwrap_or_default();
            let mut routes = Keyed::new(cfg.max_routes, sub, sub_len);
            routes.restore(&saved.keys.routes);
            let mut instances = Keyed::new(cfg.max_instances, sub, sub_len);
            instances.restore(&saved.keys.instances);
            let mut versions = Keyed::new(cfg.max_versions, sub, sub_len);
            versions.restore(&saved.keys.versions);
            let mut measures = Keyed::new(cfg.max_measures, sub, sub_len);
            measures.restore(&saved.keys.measures);
            let mut streams = Keyed::new(STREAMS.len() + 1, sub, sub_len);
            streams.restore(&saved.keys.streams);
            ModelState {
                live: Window::new(1, cfg.window_s),
                past: VecDeque::new(),
                routes,
                instances,
                versions,
                measures,
                sizes: Keyed::sizes(sub, sub_len),
                streams,
                last_seen_us: i64::MIN,
                first_sec: now_sec,
                version: None,
                ring: saved.ring,
                staging: BTreeMap::new(),
                resources: Map::default(),
                totals: ModelTotals::default(),
            }
        })
    }

    /// Builds the view at `now_us`, first letting old slots leave the windows.
    pub fn view(&mut self, now_us: i64, broker: BrokerView) -> View {
        let now_sec = now_us.div_euclid(1_000_000);
        let mut models: Vec<ModelView> = Vec::with_capacity(self.models.len());
        for (name, m) in self.models.iter_mut() {
            expire_model(m, now_sec, &mut self.merger, &mut self.ring_merger);
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
            self.history = Arc::new(self.build_history(now_us, self.cfg.keys_in_views));
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
            window_s: self.cfg.window_s,
            history: Arc::clone(&self.history),
            docker: self.containers.docker_view(),
            resources: self.containers.by_model(),
            resource_counters: self.containers.counters(),
            agents: self.containers.agents_view(),
            buckets: self.cfg.buckets.clone(),
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

    /// An agent's picture of its host (already decoded): its containers replace what was
    /// known of that host, their samples go into the rings. `false`: refused (too many
    /// hosts, or an old picture).
    pub fn agent_resources(
        &mut self,
        res: modelmon_contract::Resources,
        rejected: usize,
        now_us: i64,
    ) -> bool {
        let instances = self.instance_models();
        let Some(usage) = self.containers.apply_remote(
            res,
            rejected,
            now_us.div_euclid(1000),
            &instances,
            &self.cfg.only_models,
        ) else {
            return false;
        };
        let now_sec = now_us.div_euclid(1_000_000);
        for u in usage {
            // As for local containers: a model known only by its container gets a row.
            self.model_state(&u.model, now_sec);
            if let Some((ts_us, cpu, mem)) = u.sample {
                self.record_resources(&u.model, &u.instance, ts_us, cpu.map(|c| c as f32), mem);
            }
        }
        true
    }

    /// Hosts whose agents went quiet since the last call (each reported once).
    pub fn silent_agents(&mut self, now_us: i64) -> Vec<String> {
        self.containers.silence(now_us.div_euclid(1000))
    }

    /// Every instance named by events, and its model: how an unlabelled container is
    /// recognised.
    fn instance_models(&self) -> HashMap<String, String> {
        let mut out = HashMap::new();
        for (model, state) in self.models.iter() {
            for (instance, _) in state.instances.keys.iter() {
                out.insert(instance.to_owned(), model.to_owned());
            }
        }
        out
    }

    /// A resource sample: into the live view and the 24-hour rings.
    pub fn container_sample(&mut self, sample: containers::ContainerSample) {
        let (ts, cpu, mem) = (sample.ts_us, sample.cpu_percent, sample.mem_bytes);
        if let Some((model, instance)) = self.containers.sample(sample) {
            self.record_resources(&model, &instance, ts, cpu.map(|c| c as f32), mem);
        }
    }

    /// Brings the history up to `now_us` (windows expired, buckets moved into the rings)
    /// and returns it with every ring: for snapshots, which must not wait for the next
    /// 10-s bucket.
    pub fn fresh_history(&mut self, now_us: i64) -> Arc<HistoryView> {
        let now_sec = now_us.div_euclid(1_000_000);
        for m in self.models.values_mut() {
            expire_model(m, now_sec, &mut self.merger, &mut self.ring_merger);
        }
        let full = Arc::new(self.build_history(now_us, true));
        self.history = if self.cfg.keys_in_views {
            Arc::clone(&full)
        } else {
            Arc::new(full.without_keys())
        };
        full
    }

    /// Seconds of `[from_s, to_s)` the history covers: this run's and the restored
    /// snapshot's spans. Reading it starts no run.
    pub fn covered_s(&self, from_s: i64, to_s: i64) -> u64 {
        self.uptime.covered(from_s, to_s)
    }

    /// The history as of the last rebuild.
    pub fn history(&self) -> Arc<HistoryView> {
        Arc::clone(&self.history)
    }

    /// The history as of `now_us`; `with_keys`: with the route and instance rings.
    fn build_history(&mut self, now_us: i64, with_keys: bool) -> HistoryView {
        let now_sec = now_us.div_euclid(1_000_000);
        let run_start = *self.run_start_s.get_or_insert(now_sec);
        self.uptime.mark(run_start, now_sec);
        self.age_key_rings(now_sec);
        let mut rings = BTreeMap::new();
        let mut keys = BTreeMap::new();
        let mut first_bytes = BTreeMap::new();
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
            if with_keys {
                let mut k = KeyRings::default();
                for (rings, keyed) in k.by_kind_mut().into_iter().zip(m.ringed()) {
                    *rings = keyed.rings(now_sec, &mut self.ring_merger);
                }
                keys.insert(name.to_string(), k);
            } else if let Some(r) = m.streams.ring(STREAMS[0], now_sec, &mut self.ring_merger) {
                first_bytes.insert(name.to_string(), r);
            }
        }
        self.dormant.retain(|_, d| {
            d.ring.age(now_sec, &mut self.ring_merger);
            !d.ring.is_empty() || !d.keys.is_empty()
        });
        for (name, d) in &self.dormant {
            rings.insert(name.clone(), d.ring.clone());
            if with_keys {
                keys.insert(name.clone(), d.keys.clone());
            } else if let Some(r) = d.keys.streams.get(STREAMS[0]) {
                first_bytes.insert(name.clone(), r.clone());
            }
        }
        self.history_bucket = bucket_of_sec(now_sec);
        // With keys, the first bytes come with them.
        HistoryView::new(now_us.div_euclid(1000), rings, self.uptime.clone())
            .with_first_bytes(first_bytes)
            .with_keys(keys)
    }

    /// Ages the route and instance rings, and keeps them within their memory budget by
    /// dropping their oldest hours: at the caps (256 models × 128 keys) a full day of
    /// them would take gigabytes, and the budget is the bound whatever the senders do.
    fn age_key_rings(&mut self, now_sec: i64) {
        let merger = &mut self.ring_merger;
        let mut by_hour: BTreeMap<i64, usize> = BTreeMap::new();
        for r in key_rings(&mut self.models, &mut self.dormant) {
            r.age(now_sec, merger);
            for h in r.hours() {
                *by_hour.entry(h.start_s).or_default() += h.heap_bytes() + 32;
            }
        }
        for d in self.dormant.values_mut() {
            d.keys.drop_empty();
        }
        let budget = self.cfg.key_history_bytes;
        if by_hour.values().sum::<usize>() <= budget {
            return;
        }
        // Keep the newest hours that fit; the current and the previous hour always stay.
        let mut kept = 0;
        let Some(cut) = by_hour.iter().rev().find_map(|(&start, &bytes)| {
            kept += bytes;
            (kept > budget && start < now_sec - HOUR_S).then_some(start + HOUR_S)
        }) else {
            return;
        };
        for r in key_rings(&mut self.models, &mut self.dormant) {
            r.drop_before(cut);
        }
        for d in self.dormant.values_mut() {
            d.keys.drop_empty();
        }
    }

    /// Continues the rings of a loaded snapshot. Time since it was saved stays a gap.
    pub fn restore(&mut self, saved: &HistoryView, now_us: i64) {
        let now_sec = now_us.div_euclid(1_000_000);
        let no_keys = KeyRings::default();
        let mut names: Vec<&str> = saved.models();
        names.extend(saved.keyed_models().map(|(n, _)| n));
        names.sort_unstable();
        names.dedup();
        for name in names {
            let ring = saved.ring(name).cloned().unwrap_or_default();
            let keys = saved.keys(name).unwrap_or(&no_keys);
            if let Some(m) = self.models.get_mut(name) {
                if m.ring.is_empty() {
                    m.ring = ring;
                }
                for (keyed, rings) in m.ringed_mut().into_iter().zip(keys.by_kind()) {
                    keyed.restore(rings);
                }
                continue;
            }
            if self.models.len() + self.dormant.len() >= self.cfg.max_models {
                continue;
            }
            let mut d = Dormant {
                ring,
                keys: keys.clone(),
            };
            d.ring.age(now_sec, &mut self.ring_merger);
            // Aged as the model's own ring, or a model gone for over a day would come
            // back with every restart by the keys it had, and take a place of `max_models`.
            for rings in d.keys.by_kind_mut() {
                for r in rings.values_mut() {
                    r.age(now_sec, &mut self.ring_merger);
                }
            }
            d.keys.drop_empty();
            if !d.ring.is_empty() || !d.keys.is_empty() {
                self.dormant.insert(name.to_owned(), d);
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

    /// The message at stream `offset` has been applied (or refused as a whole).
    pub fn stream_applied(&mut self, offset: u64) {
        self.stream_next = Some(offset + 1);
    }

    /// In stream mode, the offset of the first message not applied yet: from the last
    /// one applied, or the restored snapshot's mark.
    pub fn stream_next(&self) -> Option<u64> {
        self.stream_next
    }

    /// Resumes where a snapshot's history ends.
    pub fn set_stream_next(&mut self, next: u64) {
        self.stream_next = Some(next);
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

    /// Approximate heap bytes held: (live windows and series, 24-hour rings), for the
    /// memory benchmark.
    pub fn heap_bytes(&self) -> (usize, usize) {
        let mut live = 0;
        let mut rings = 0;
        for (k, m) in &self.models {
            live += k.len()
                + m.live.heap_bytes()
                + m.past.capacity() * std::mem::size_of::<SeriesPoint>()
                + m.sizes.window_bytes()
                + m.ringed().iter().map(|k| k.window_bytes()).sum::<usize>();
            rings += m.ring.heap_bytes() + m.ringed().iter().map(|k| k.ring_bytes()).sum::<usize>();
        }
        (live, rings)
    }
}

/// Every route and instance ring: of the models, and of the dormant ones.
fn key_rings<'a>(
    models: &'a mut Capped<ModelState>,
    dormant: &'a mut BTreeMap<String, Dormant>,
) -> impl Iterator<Item = &'a mut Ring> {
    let live = models
        .values_mut()
        .flat_map(|m| m.ringed_mut().into_iter().flat_map(Keyed::rings_mut));
    let saved = dormant.values_mut().flat_map(|d| {
        d.keys
            .by_kind_mut()
            .into_iter()
            .flat_map(|r| r.values_mut())
    });
    live.chain(saved)
}

/// Busiest first, then by name: the order of every per-key list readers get, live or
/// over a range.
fn busiest_first<T>(items: &mut [T], key: impl Fn(&T) -> (u64, &str)) {
    items.sort_by(|a, b| {
        let ((ra, na), (rb, nb)) = (key(a), key(b));
        rb.cmp(&ra).then_with(|| na.cmp(nb))
    });
}

/// Where the previous event of a run found its instance, version and `ml` keys.
struct Hints {
    instance: usize,
    version: usize,
    ml: [usize; MAX_ML_ENTRIES],
}

impl Default for Hints {
    fn default() -> Self {
        Self {
            instance: usize::MAX,
            version: usize::MAX,
            ml: [usize::MAX; MAX_ML_ENTRIES],
        }
    }
}

/// Records one event; returns whether it was late and whether its route, instance or
/// version was folded into `(other)`.
#[inline]
fn record_one(
    m: &mut ModelState,
    ev: &Event<'_>,
    now_sec: i64,
    buckets: &Buckets,
    hints: &mut Hints,
) -> (bool, bool) {
    // Placed by the second the request ended, not started: an event is published only
    // once its request has finished, so by its start a 90-s timeout would be older than
    // the window on arrival, and 30-s answers would count for half their rate. Every
    // figure is by completion, as a Prometheus counter's is.
    let end_us = ev.ts.saturating_add_unsigned(ev.duration_us);
    let sec = end_us.div_euclid(1_000_000);
    let err = ev.is_error();
    let hit = Hit::new(ev.status, ev.duration_us, err).with_ttfb(ev.ttfb_us);
    if end_us > m.last_seen_us {
        m.last_seen_us = end_us;
        if let Some(v) = &ev.version
            && m.version.as_deref() != Some(v.as_ref())
        {
            m.version = Some(v.as_ref().into());
        }
    }
    let late = m.live.record_hit(sec, now_sec, &hit) == Placement::Late;
    let ((route, r_over), (_, i_over), version) = if late {
        add_late_to_past(m, sec, err);
        let b = bucket_of_sec(sec);
        m.staging
            .entry(b)
            .or_insert_with(|| Slot {
                start: b,
                ..Slot::default()
            })
            .record_hit(&hit);
        for (key, value) in &ev.ml {
            m.measures
                .record_late(key, sec, now_sec, &measure_hit(*value), |_, _| {});
        }
        if let Some(fb) = &hit.first_byte {
            for (name, us) in STREAMS.iter().zip([fb.ttfb_us, fb.gen_us]) {
                m.streams
                    .record_late(name, sec, now_sec, &Hit::new(200, us, false), |_, _| {});
            }
        }
        (
            m.routes
                .record_late(&ev.route, sec, now_sec, &hit, |i, to| {
                    m.totals.fold(Some((i, to)), None);
                }),
            m.instances
                .record_late(&ev.instance, sec, now_sec, &hit, |_, _| {}),
            ev.version.as_ref().map(|v| {
                m.versions.record_late(v, sec, now_sec, &hit, |i, to| {
                    m.totals.fold(None, Some((i, to)));
                })
            }),
        )
    } else {
        // The window puts an end ahead of the clock in the current second. After the
        // monitor's clock steps back, `first_sec` (set when the model appeared) is ahead
        // of it too: it must come back to the events' seconds, or QPS divides by 1 s.
        m.first_sec = m.first_sec.min(sec.min(now_sec));
        for (j, (key, value)) in ev.ml.iter().enumerate() {
            // Events built by hand may carry more entries than a decoded one: no hint.
            let mut none = usize::MAX;
            let was_at = hints.ml.get_mut(j).unwrap_or(&mut none);
            m.measures
                .record_hinted(key, was_at, sec, now_sec, &measure_hit(*value), |_, _| {});
        }
        for (i, bytes) in [ev.req_bytes, ev.resp_bytes].into_iter().enumerate() {
            if let Some(b) = bytes {
                m.sizes.record_at(i, sec, now_sec, &measure_hit(b as f64));
            }
        }
        (
            m.routes.record(&ev.route, sec, now_sec, &hit, |i, to| {
                m.totals.fold(Some((i, to)), None);
            }),
            m.instances.record_hinted(
                &ev.instance,
                &mut hints.instance,
                sec,
                now_sec,
                &hit,
                |_, _| {},
            ),
            ev.version.as_ref().map(|v| {
                m.versions
                    .record_hinted(v, &mut hints.version, sec, now_sec, &hit, |i, to| {
                        m.totals.fold(None, Some((i, to)));
                    })
            }),
        )
    };
    // Counts since start take late events too: a counter never goes back.
    let labels = Labels::new(route, version.map(|v| v.0), &ev.method, ev.status);
    m.totals.record(buckets, labels, ev.duration_us, err);
    if let Some(ttfb_us) = ev.ttfb_us {
        m.totals.record_ttfb(buckets, ttfb_us);
    }
    let v_over = version.is_some_and(|v| v.1);
    (late, r_over || i_over || v_over)
}

/// A measure's value as a window records it: in thousandths, as if microseconds, so
/// the window's millisecond figures read as the value itself. Distributions need a
/// non-negative integer: negative values count as 0.
#[inline]
fn measure_hit(value: f64) -> Hit {
    // `as` saturates: a value past u64 (finite, the decoder checked) is the largest.
    // Adding a half rounds as `round` does for these non-negative values, without the
    // library call `round` is on baseline x86-64 (six values an event).
    Hit::new(200, (value.max(0.0) * 1000.0 + 0.5) as u64, false)
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
    let streams = &mut m.streams;
    // The five-minute series runs in order up to the live window. After the clock
    // steps back, its seconds past that would hide the ones the window hands over:
    // they leave it (the history keeps their requests).
    let oldest = m.live.oldest_start(now_sec);
    while past.back().is_some_and(|p| p.sec >= oldest) {
        past.pop_back();
    }
    m.live.expire_streamed(
        now_sec,
        |slot| {
            if slot.start < oldest {
                past.push_back(series_point(&slot, merger));
            }
            stage(staging, &slot);
        },
        |slots| {
            for (name, slot) in STREAMS.iter().zip(&slots) {
                streams.absorb_retired(name, slot);
            }
        },
    );
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
    m.sizes.expire(now_sec, ring_merger);
    for keyed in m.ringed_mut() {
        keyed.expire(now_sec, ring_merger);
    }
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
    let versions = m.versions.stats(now_sec, m.first_sec, merger);
    // Shares of the versioned requests: version windows have coarser slots than the
    // model's, so the model's own count is over a slightly longer span.
    let versioned: u64 = versions.iter().map(|v| v.stats.requests).sum();

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
        versions: versions
            .into_iter()
            .map(|k| VersionStats {
                version: k.name,
                share: (versioned > 0).then(|| k.stats.requests as f64 / versioned as f64),
                stats: k.stats,
            })
            .collect(),
        ml: m.measures.measures(now_sec, m.first_sec, merger),
        sizes: m.sizes.measures(now_sec, m.first_sec, merger),
        totals: m
            .totals
            .view(|i| m.routes.keys.name(i), |i| m.versions.keys.name(i)),
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
        sum_us = sum_us.saturating_add(s.sum_us);
        max_us = max_us.max(s.max_us);
        merger.add(&s.latency);
    }
    let q = merger.take();
    let t = w.ttfb_stats(merger);
    // The seconds the window holds: its span for 1-s slots, up to a slot less for wider
    // ones (a route's 10-s slots hold 51 to 60 s), so their rates are not understated.
    let span = now_sec - w.oldest_start(now_sec) + 1;
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
        ttfb_requests: t.count,
        ttfb_mean_ms: t.mean_ms,
        ttfb_p50_ms: t.ttfb_ms.map(|p| p[0]),
        ttfb_p95_ms: t.ttfb_ms.map(|p| p[1]),
        ttfb_p99_ms: t.ttfb_ms.map(|p| p[2]),
        gen_p50_ms: t.gen_ms.map(|p| p[0]),
        gen_p95_ms: t.gen_ms.map(|p| p[1]),
    }
}

#[cfg(test)]
mod tests {
    use super::same_name;

    #[test]
    fn names_compare_as_strings_do() {
        let names = [
            "",
            "a",
            "tokens_o",
            "tokens_out",
            "tokens_ou",
            "2026.11.1",
            "2026.11.2",
            "model-00-7d9f8c-0",
            "model-00-7d9f8c-1",
            "/v1/models/{name}/route7",
            "/v1/models/{name}/route6",
            "/v1/models/{name}/predict/and/a/longer/tail",
            "/v1/models/{name}/predict/and/a/longer/tale",
        ];
        for a in names {
            for b in names {
                assert_eq!(same_name(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
        // A difference in each byte of every word size.
        for len in [8, 9, 16, 17, 31, 32, 33] {
            let a = "x".repeat(len);
            for i in 0..len {
                let mut b = a.clone().into_bytes();
                b[i] = b'y';
                let b = String::from_utf8(b).expect("ascii");
                assert!(!same_name(&a, &b), "{len} bytes, differing at {i}");
            }
            assert!(same_name(&a, &a.clone()));
        }
    }
}
