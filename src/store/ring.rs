//! The 24-hour ring of one key: counters per time cell, compact latency distributions.
//!
//! Memory is the constraint: 100 models × 8640 ten-second buckets must fit in a few tens
//! of MiB. So a bucket's counters are a 28-byte [`Cell`] only while its hour can be
//! written to, and distributions are kept in two tiers, like rrdtool's consolidation.
//! A model's ring ([`Grain::Model`]):
//!
//! * counters per 10 s;
//! * the current and the previous clock hour keep one distribution per 10-s bucket
//!   (so any range inside the last hour is exact to 10 s);
//! * older hours keep one distribution per 5 minutes, merged from the 10-s ones.
//!
//! A route or an instance ([`Grain::Key`]) has up to 64 of each per model, so its ring
//! is thirty times coarser: counters per 5 minutes, one distribution per 5 minutes for
//! the current and the previous hour, one per hour before that.
//!
//! A distribution uses half the live histogram's resolution (64 sub-buckets per octave:
//! every percentile within 0.78 % of the sample) and is stored as a run of varints
//! (a few bytes per hit bucket, one per run of empty ones).
//!
//! The cells of an hour past the fine tier are packed ([`Cells`]): 7 varints a cell,
//! about 9 bytes instead of 28, in one shared byte string, the form snapshot files
//! hold them in (so writing one copies the bytes, and loading one keeps them packed).
//! Readers go through [`Hour::cells`], which gives cells by value whatever the form.
//! A late event into a packed hour unpacks it (copy on write); the next [`Ring::age`]
//! packs it again. For 100 models with 4 routes, 2 instances, 2 versions and 4
//! measures each, this took a day of history from 73.7 to 53.4 MiB RSS
//! (`examples/history_memory.rs`).
//!
//! Hours are `Arc`s: a closed hour is shared, not copied, by every [`HistoryView`] and
//! snapshot that holds it; the store writes through `Arc::make_mut`, which copies an
//! hour only when a reader still holds the old one.
//!
//! [`HistoryView`]: super::history::HistoryView

use std::collections::VecDeque;
use std::sync::Arc;

use super::hist::{Dense, SparseHist, bucket_bounds};
use super::varint::{read_varint, write_varint};
use super::window::Slot;

/// Resolution of the counters, seconds.
pub const STEP_S: i64 = 10;
pub const HOUR_S: i64 = 3600;
pub const CELLS_PER_HOUR: usize = (HOUR_S / STEP_S) as usize;
/// Resolution of distributions older than [`FINE_HOURS`].
pub const COARSE_S: i64 = 300;
pub const COARSE_PER_HOUR: usize = (HOUR_S / COARSE_S) as usize;
/// History kept.
pub const KEEP_S: i64 = 24 * HOUR_S;
/// Hours (the current one included) that keep a distribution per cell.
pub const FINE_HOURS: i64 = 2;
/// Cells per hour of a route's or an instance's ring: one per 5 minutes.
pub const KEY_CELLS_PER_HOUR: usize = (HOUR_S / COARSE_S) as usize;

/// How finely a ring keeps time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Grain {
    /// A model: 10-s cells; distributions per cell, then per 5 minutes.
    #[default]
    Model,
    /// A route or an instance: 5-minute cells; distributions per cell, then per hour.
    Key,
}

impl Grain {
    pub fn cells_per_hour(self) -> usize {
        match self {
            Self::Model => CELLS_PER_HOUR,
            Self::Key => KEY_CELLS_PER_HOUR,
        }
    }

    /// Distributions per hour once an hour has left the fine tier.
    pub fn coarse_per_hour(self) -> usize {
        match self {
            Self::Model => COARSE_PER_HOUR,
            Self::Key => 1,
        }
    }

    /// The grain whose hours have `cells` cells.
    pub fn of_cells(cells: usize) -> Option<Self> {
        [Self::Model, Self::Key]
            .into_iter()
            .find(|g| g.cells_per_hour() == cells)
    }
}

/// Values below this are their own bucket (as in the live histogram).
const LINEAR: u16 = 256;
const LIVE_SUB: u16 = 128;
const SUB: u16 = 64;
/// One past the largest history bucket index.
pub const H_BUCKETS: usize = LINEAR as usize + 56 * SUB as usize;

/// The history bucket of a live bucket: two live sub-buckets make one.
#[inline]
pub fn hist_index(live: u16) -> u16 {
    if live < LINEAR {
        return live;
    }
    let k = live - LINEAR;
    LINEAR + (k / LIVE_SUB) * SUB + (k % LIVE_SUB) / 2
}

/// The lowest value of a history bucket and its width.
pub fn hist_bounds(h: u16) -> (u64, u64) {
    if h < LINEAR {
        return (u64::from(h), 1);
    }
    let k = h - LINEAR;
    let child = LINEAR + (k / SUB) * LIVE_SUB + (k % SUB) * 2;
    let (low, width) = bucket_bounds(child);
    (low, width * 2)
}

/// The value a history bucket stands for: its midpoint.
pub fn hist_value(h: u16) -> f64 {
    let (low, width) = hist_bounds(h);
    low as f64 + (width - 1) as f64 / 2.0
}

/// Counters of one 10-second bucket. Requests are the sum of the status classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cell {
    /// Requests by status class 1xx..5xx.
    pub status: [u32; 5],
    /// Status ≥ 500 or an `error` set.
    pub errors: u32,
    /// Slowest request, µs (saturates at 71 minutes).
    pub max_us: u32,
}

impl Cell {
    pub fn requests(&self) -> u64 {
        self.status.iter().map(|&n| u64::from(n)).sum()
    }

    pub fn client_errors(&self) -> u64 {
        u64::from(self.status[3])
    }

    fn absorb(&mut self, slot: &Slot) {
        for (a, &b) in self.status.iter_mut().zip(&slot.status) {
            *a = a.saturating_add(b);
        }
        self.errors = self.errors.saturating_add(slot.errors);
        self.max_us = self
            .max_us
            .max(u32::try_from(slot.max_us).unwrap_or(u32::MAX));
    }

    /// Adds another cell of the same span: [`Cell::absorb`] for a cell.
    fn add(&mut self, other: &Cell) {
        for (a, &b) in self.status.iter_mut().zip(&other.status) {
            *a = a.saturating_add(b);
        }
        self.errors = self.errors.saturating_add(other.errors);
        self.max_us = self.max_us.max(other.max_us);
    }
}

/// CPU and memory of a model's containers in one bucket (filled by Docker polling).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Res {
    /// NaN: no sample.
    pub cpu: f32,
    /// KiB; `u32::MAX`: no sample. KiB keeps the cell at 8 bytes and loses nothing a user sees.
    pub mem_kib: u32,
}

impl Default for Res {
    fn default() -> Self {
        Self {
            cpu: f32::NAN,
            mem_kib: u32::MAX,
        }
    }
}

impl Res {
    pub fn cpu_percent(self) -> Option<f32> {
        (!self.cpu.is_nan()).then_some(self.cpu)
    }

    pub fn mem_bytes(self) -> Option<u64> {
        (self.mem_kib != u32::MAX).then(|| u64::from(self.mem_kib) * 1024)
    }
}

/// A latency distribution, encoded (see [`Merger::encode`]). Shared, never mutated.
pub type Dist = Arc<[u8]>;

/// The distributions of one hour, at one of the two resolutions.
#[derive(Debug, Clone, PartialEq)]
pub enum Dists {
    /// One per cell.
    Fine(Box<[Option<Dist>]>),
    /// Fewer: [`Grain::coarse_per_hour`].
    Coarse(Box<[Option<Dist>]>),
}

impl Dists {
    /// The distributions covering cells `[lo, hi)` of an hour of `cells` cells.
    pub fn covering(&self, lo: usize, hi: usize, cells: usize) -> &[Option<Dist>] {
        match self {
            Self::Fine(d) => &d[lo..hi],
            Self::Coarse(d) => {
                let per = cells / d.len().max(1);
                &d[lo / per..hi.div_ceil(per)]
            }
        }
    }

    /// The distributions of cells `[lo, hi)` alone: a coarse one counts only if all of
    /// its cells are inside (it cannot be split).
    pub fn within(&self, lo: usize, hi: usize, cells: usize) -> &[Option<Dist>] {
        match self {
            Self::Fine(d) => &d[lo..hi],
            Self::Coarse(d) => {
                let per = cells / d.len().max(1);
                let (first, end) = (lo.div_ceil(per), hi / per);
                &d[first.min(end)..end]
            }
        }
    }
}

/// Appends a cell as 7 varints: the five status classes, errors, the slowest request.
/// Snapshots write cells this way too, so a packed hour is written as it is.
pub fn pack_cell(out: &mut Vec<u8>, c: &Cell) {
    for &v in &c.status {
        write_varint(out, u64::from(v));
    }
    write_varint(out, u64::from(c.errors));
    write_varint(out, u64::from(c.max_us));
}

/// Reads a cell written by [`pack_cell`] off the front of `r`. The bytes come from
/// [`pack_cell`] in this process, so they are well formed; were they not, the fields
/// past the damage read 0 rather than panic.
fn unpack_cell(r: &mut &[u8]) -> Cell {
    let mut next = || {
        read_varint(r)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0)
    };
    let status = [next(), next(), next(), next(), next()];
    Cell {
        status,
        errors: next(),
        max_us: next(),
    }
}

/// What is left of `bytes` after its first `n` cells.
fn skip_cells(bytes: &[u8], n: usize) -> &[u8] {
    let mut left = n * 7;
    if left == 0 {
        return bytes;
    }
    // A varint ends at its only byte below 0x80: count them 8 bytes at a time while
    // whole words fall short of the count (a series of many points skips a lot).
    let mut start = 0;
    for word in bytes.chunks_exact(8) {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0x80; 8]));
        let ends = (!w & 0x8080_8080_8080_8080).count_ones() as usize;
        if ends >= left {
            break;
        }
        left -= ends;
        start += 8;
    }
    let rest = bytes.get(start..).unwrap_or_default();
    for (i, &b) in rest.iter().enumerate() {
        if b < 0x80 {
            left -= 1;
            if left == 0 {
                return rest.get(i + 1..).unwrap_or_default();
            }
        }
    }
    &[]
}

/// The counters of an hour's cells. Plain while the hour can be written to (the fine
/// tier); packed once it has left it, as one shared byte string of [`pack_cell`]s (a
/// third of the size: most counters take a byte or two). A late write into a packed
/// hour unpacks it; the next [`Ring::age`] packs it again.
#[derive(Debug, Clone)]
pub struct Cells(CellsRepr);

#[derive(Debug, Clone)]
enum CellsRepr {
    Plain(Box<[Cell]>),
    Packed { n: u32, bytes: Arc<[u8]> },
}

impl Cells {
    /// Cells to be filled one by one with [`CellsBuilder::push`], packed or not.
    pub fn builder(n: usize, packed: bool) -> CellsBuilder {
        CellsBuilder(if packed {
            BuilderRepr::Packed {
                n: 0,
                // Enough for a busy hour's cells, most of the time.
                bytes: Vec::with_capacity(n * 12),
            }
        } else {
            BuilderRepr::Plain(Vec::with_capacity(n))
        })
    }

    pub fn len(&self) -> usize {
        match &self.0 {
            CellsRepr::Plain(c) => c.len(),
            CellsRepr::Packed { n, .. } => *n as usize,
        }
    }

    pub fn is_packed(&self) -> bool {
        matches!(self.0, CellsRepr::Packed { .. })
    }

    /// Cells `[lo, hi)` (clamped to the cells there are).
    pub fn iter(&self, lo: usize, hi: usize) -> CellIter<'_> {
        let hi = hi.min(self.len());
        let lo = lo.min(hi);
        CellIter(match &self.0 {
            CellsRepr::Plain(c) => IterRepr::Plain(c[lo..hi].iter()),
            CellsRepr::Packed { bytes, .. } => IterRepr::Packed {
                bytes: skip_cells(bytes, lo),
                left: hi - lo,
            },
        })
    }

    /// Appends every cell as [`pack_cell`] writes it.
    pub fn put(&self, out: &mut Vec<u8>) {
        match &self.0 {
            CellsRepr::Plain(c) => c.iter().for_each(|c| pack_cell(out, c)),
            CellsRepr::Packed { bytes, .. } => out.extend_from_slice(bytes),
        }
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            CellsRepr::Plain(c) => c.len() * std::mem::size_of::<Cell>(),
            CellsRepr::Packed { bytes, .. } => bytes.len() + 16,
        }
    }

    fn pack(&mut self) {
        if let CellsRepr::Plain(c) = &self.0 {
            let mut b = Self::builder(c.len(), true);
            c.iter().for_each(|c| b.push(c));
            *self = b.finish();
        }
    }

    /// The cells, to be written to: a packed hour is unpacked first.
    fn plain_mut(&mut self) -> &mut [Cell] {
        if self.is_packed() {
            let cells: Box<[Cell]> = self.iter(0, self.len()).collect();
            self.0 = CellsRepr::Plain(cells);
        }
        match &mut self.0 {
            CellsRepr::Plain(c) => c,
            CellsRepr::Packed { .. } => &mut [],
        }
    }
}

/// Equal when they hold the same counters, packed or not.
impl PartialEq for Cells {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (CellsRepr::Plain(a), CellsRepr::Plain(b)) => a == b,
            // The packing is canonical: the same counters give the same bytes.
            (CellsRepr::Packed { n, bytes }, CellsRepr::Packed { n: m, bytes: b }) => {
                n == m && bytes == b
            }
            _ => {
                self.len() == other.len() && self.iter(0, self.len()).eq(other.iter(0, other.len()))
            }
        }
    }
}

/// Fills [`Cells`] one cell at a time (see [`Cells::builder`]).
pub struct CellsBuilder(BuilderRepr);

enum BuilderRepr {
    Plain(Vec<Cell>),
    Packed { n: u32, bytes: Vec<u8> },
}

impl CellsBuilder {
    pub fn push(&mut self, c: &Cell) {
        match &mut self.0 {
            BuilderRepr::Plain(v) => v.push(*c),
            BuilderRepr::Packed { n, bytes } => {
                pack_cell(bytes, c);
                *n += 1;
            }
        }
    }

    pub fn finish(self) -> Cells {
        Cells(match self.0 {
            BuilderRepr::Plain(v) => CellsRepr::Plain(v.into_boxed_slice()),
            BuilderRepr::Packed { n, bytes } => CellsRepr::Packed {
                n,
                bytes: bytes.into(),
            },
        })
    }
}

/// Cells of an hour, by value (see [`Hour::cells`]).
pub struct CellIter<'a>(IterRepr<'a>);

enum IterRepr<'a> {
    Plain(std::slice::Iter<'a, Cell>),
    Packed { bytes: &'a [u8], left: usize },
}

impl Iterator for CellIter<'_> {
    type Item = Cell;

    #[inline]
    fn next(&mut self) -> Option<Cell> {
        match &mut self.0 {
            IterRepr::Plain(it) => it.next().copied(),
            IterRepr::Packed { bytes, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                Some(unpack_cell(bytes))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.0 {
            IterRepr::Plain(it) => it.len(),
            IterRepr::Packed { left, .. } => *left,
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for CellIter<'_> {}

/// One clock hour of a ring.
#[derive(Debug, Clone, PartialEq)]
pub struct Hour {
    /// Unix second, a multiple of 3600.
    pub start_s: i64,
    /// Read through [`Hour::cells`]: packed once the hour has left the fine tier.
    cells: Cells,
    pub dists: Dists,
    /// Allocated on the first resource sample: most models never get one.
    pub res: Option<Box<[Res]>>,
}

impl Hour {
    pub fn new(start_s: i64, grain: Grain) -> Self {
        let n = grain.cells_per_hour();
        Self {
            start_s,
            cells: Cells(CellsRepr::Plain(
                vec![Cell::default(); n].into_boxed_slice(),
            )),
            dists: Dists::Fine(vec![None; n].into_boxed_slice()),
            res: None,
        }
    }

    /// An hour read back from a snapshot.
    pub fn from_parts(start_s: i64, cells: Cells, dists: Dists, res: Option<Box<[Res]>>) -> Self {
        Self {
            start_s,
            cells,
            dists,
            res,
        }
    }

    /// Number of cells: [`Grain::cells_per_hour`].
    pub fn cells_len(&self) -> usize {
        self.cells.len()
    }

    /// Cells `[lo, hi)` (clamped to the hour), by value, whether packed or not.
    pub fn cells(&self, lo: usize, hi: usize) -> CellIter<'_> {
        self.cells.iter(lo, hi)
    }

    /// Whether the cells are packed (the hour has left the fine tier and not been
    /// written to since).
    pub fn is_packed(&self) -> bool {
        self.cells.is_packed()
    }

    /// Appends the cells as snapshots hold them: [`pack_cell`] each.
    pub fn put_cells(&self, out: &mut Vec<u8>) {
        self.cells.put(out);
    }

    /// Seconds per cell.
    pub fn cell_s(&self) -> i64 {
        HOUR_S / self.cells.len().max(1) as i64
    }

    /// The cell holding `sec` (which must be inside this hour).
    fn cell_of(&self, sec: i64) -> usize {
        ((sec - self.start_s) / self.cell_s()) as usize
    }

    /// Replaces the per-cell distributions by coarser ones.
    fn consolidate(&mut self, merger: &mut Merger) {
        let Dists::Fine(fine) = &self.dists else {
            return;
        };
        let Some(grain) = Grain::of_cells(self.cells.len()) else {
            return;
        };
        let per = self.cells.len() / grain.coarse_per_hour();
        let coarse: Vec<Option<Dist>> = fine
            .chunks(per)
            .map(|group| {
                for d in group.iter().flatten() {
                    merger.add_dist(d);
                }
                let out = merger.encode();
                merger.reset();
                out
            })
            .collect();
        self.dists = Dists::Coarse(coarse.into_boxed_slice());
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        let dists = match &self.dists {
            Dists::Fine(d) | Dists::Coarse(d) => {
                d.len() * std::mem::size_of::<Option<Dist>>()
                    + d.iter().flatten().map(|d| d.len() + 16).sum::<usize>()
            }
        };
        self.cells.heap_bytes()
            + dists
            + self
                .res
                .as_ref()
                .map_or(0, |r| r.len() * std::mem::size_of::<Res>())
    }
}

/// Start of the 10-s bucket holding `sec`.
pub fn bucket_of_sec(sec: i64) -> i64 {
    sec.div_euclid(STEP_S) * STEP_S
}

fn hour_of(sec: i64) -> i64 {
    sec.div_euclid(HOUR_S) * HOUR_S
}

/// 24 hours of one key; hours with no traffic are not allocated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ring {
    /// Oldest first, by `start_s`.
    hours: VecDeque<Arc<Hour>>,
    grain: Grain,
}

impl Ring {
    /// An empty ring for a route or an instance.
    pub fn keyed() -> Self {
        Self {
            hours: VecDeque::new(),
            grain: Grain::Key,
        }
    }

    pub fn grain(&self) -> Grain {
        self.grain
    }

    pub fn hours(&self) -> impl Iterator<Item = &Hour> {
        self.hours.iter().map(AsRef::as_ref)
    }

    pub fn is_empty(&self) -> bool {
        self.hours.is_empty()
    }

    /// Builds a ring from hours read back from a snapshot (any order, all of `grain`).
    pub fn from_hours(mut hours: Vec<Hour>, grain: Grain) -> Self {
        hours.retain(|h| h.cells.len() == grain.cells_per_hour());
        hours.sort_by_key(|h| h.start_s);
        hours.dedup_by_key(|h| h.start_s);
        Self {
            hours: hours.into_iter().map(Arc::new).collect(),
            grain,
        }
    }

    fn hour_mut(&mut self, start_s: i64) -> &mut Hour {
        let i = match self.hours.binary_search_by_key(&start_s, |h| h.start_s) {
            Ok(i) => i,
            Err(i) => {
                self.hours
                    .insert(i, Arc::new(Hour::new(start_s, self.grain)));
                i
            }
        };
        Arc::make_mut(&mut self.hours[i])
    }

    /// The hours that overlap `[from_s, to_s)`, oldest first.
    pub fn hours_between(&self, from_s: i64, to_s: i64) -> impl Iterator<Item = &Hour> {
        let first = self.hours.partition_point(|h| h.start_s + HOUR_S <= from_s);
        self.hours
            .range(first..)
            .map(AsRef::as_ref)
            .take_while(move |h| h.start_s < to_s)
    }

    /// Adds a slot (any span inside one cell) to the cell of `slot.start`.
    /// Cells older than 24 h before `now_s` are dropped.
    pub fn add(&mut self, slot: &Slot, now_s: i64, merger: &mut Merger) {
        if slot.requests() == 0 || slot.start < now_s - KEEP_S {
            return;
        }
        let hour = self.hour_mut(hour_of(slot.start));
        let i = hour.cell_of(slot.start);
        let cells = hour.cells.len();
        hour.cells.plain_mut()[i].absorb(slot);
        let (target, i) = match &mut hour.dists {
            Dists::Fine(d) => (d, i),
            Dists::Coarse(d) => {
                let n = d.len();
                (d, i * n / cells)
            }
        };
        if let Some(old) = &target[i] {
            merger.add_dist(old);
        }
        merger.add_live(&slot.latency);
        target[i] = merger.encode();
        merger.reset();
    }

    /// Sets the resource figures of the cell holding `sec`.
    pub fn set_res(&mut self, sec: i64, now_s: i64, cpu: Option<f32>, mem_bytes: Option<u64>) {
        if sec < now_s - KEEP_S {
            return;
        }
        let hour = self.hour_mut(hour_of(sec));
        let i = hour.cell_of(sec);
        let n = hour.cells.len();
        let res = hour
            .res
            .get_or_insert_with(|| vec![Res::default(); n].into_boxed_slice());
        res[i] = Res {
            cpu: cpu.unwrap_or(f32::NAN),
            mem_kib: mem_bytes.map_or(u32::MAX, |b| {
                u32::try_from(b.div_ceil(1024)).unwrap_or(u32::MAX - 1)
            }),
        };
    }

    /// Drops hours older than 24 h, and consolidates the distributions and packs the
    /// cells of the ones past the fine tier.
    pub fn age(&mut self, now_s: i64, merger: &mut Merger) {
        while self
            .hours
            .front()
            .is_some_and(|h| h.start_s + HOUR_S <= now_s - KEEP_S)
        {
            self.hours.pop_front();
        }
        let fine_from = hour_of(now_s) - (FINE_HOURS - 1) * HOUR_S;
        for h in &mut self.hours {
            if h.start_s >= fine_from {
                break;
            }
            if matches!(h.dists, Dists::Fine(_)) || !h.is_packed() {
                let h = Arc::make_mut(h);
                h.consolidate(merger);
                h.cells.pack();
            }
        }
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.hours.iter().map(|h| h.heap_bytes() + 32).sum()
    }

    /// The end of the newest cell with a request in it, if any.
    pub fn last_request_s(&self) -> Option<i64> {
        self.hours.iter().rev().find_map(|h| {
            let (i, _) = h
                .cells(0, h.cells_len())
                .enumerate()
                .filter(|(_, c)| c.requests() > 0)
                .last()?;
            Some(h.start_s + (i as i64 + 1) * h.cell_s())
        })
    }

    /// Adds every cell and distribution of `other` (of the same grain) to this ring:
    /// folding one key's day into another's, so their sum stays what it was.
    pub fn merge(&mut self, other: &Ring, now_s: i64, merger: &mut Merger) {
        for src in other.hours() {
            if src.start_s + HOUR_S <= now_s - KEEP_S
                || src.cells_len() != self.grain.cells_per_hour()
            {
                continue;
            }
            let hour = self.hour_mut(src.start_s);
            // Distributions are merged at one resolution: the coarser of the two.
            let src_dists = match (&hour.dists, &src.dists) {
                (Dists::Fine(_), Dists::Coarse(_)) => {
                    hour.consolidate(merger);
                    src.dists.clone()
                }
                (Dists::Coarse(_), Dists::Fine(_)) => {
                    let mut copy = src.clone();
                    copy.consolidate(merger);
                    copy.dists
                }
                _ => src.dists.clone(),
            };
            for (c, s) in hour
                .cells
                .plain_mut()
                .iter_mut()
                .zip(src.cells(0, src.cells_len()))
            {
                c.add(&s);
            }
            let (Dists::Fine(to) | Dists::Coarse(to)) = &mut hour.dists;
            let (Dists::Fine(from) | Dists::Coarse(from)) = &src_dists;
            for (t, f) in to.iter_mut().zip(from.iter()) {
                let Some(f) = f else { continue };
                if let Some(old) = t {
                    merger.add_dist(old);
                }
                merger.add_dist(f);
                *t = merger.encode();
                merger.reset();
            }
        }
    }

    /// Drops the hours that start before `start_s`.
    pub fn drop_before(&mut self, start_s: i64) {
        while self.hours.front().is_some_and(|h| h.start_s < start_s) {
            self.hours.pop_front();
        }
    }
}

/// A dense histogram at history resolution that distributions are merged into, then
/// read or encoded.
pub struct Merger {
    dense: Dense,
}

impl Default for Merger {
    fn default() -> Self {
        Self {
            dense: Dense::new(H_BUCKETS),
        }
    }
}

/// A distribution that does not decode: only possible from a damaged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed latency distribution")]
pub struct BadDist;

impl Merger {
    /// Adds a live (full resolution) distribution.
    pub fn add_live(&mut self, h: &SparseHist) {
        for (idx, n) in h.iter() {
            self.dense.bump(usize::from(hist_index(idx)), u64::from(n));
        }
    }

    /// Adds an encoded distribution. Only a damaged file can hold a bad one; what
    /// decodes before the damage is kept (snapshots are checked on load anyway).
    pub fn add_dist(&mut self, d: &[u8]) {
        let _ = self.try_add_dist(d);
    }

    /// Adds an encoded distribution, failing on malformed bytes.
    pub fn try_add_dist(&mut self, d: &[u8]) -> Result<(), BadDist> {
        let mut r = d;
        let first = read_varint(&mut r).ok_or(BadDist)?;
        let mut idx = usize::try_from(first).map_err(|_| BadDist)?;
        while !r.is_empty() {
            let c = read_varint(&mut r).ok_or(BadDist)?;
            if c == 0 {
                let run = read_varint(&mut r).ok_or(BadDist)?;
                let run = usize::try_from(run).map_err(|_| BadDist)?;
                idx = idx.checked_add(run).ok_or(BadDist)?;
            } else {
                if idx >= H_BUCKETS {
                    return Err(BadDist);
                }
                self.dense.bump(idx, c);
                idx += 1;
            }
        }
        Ok(())
    }

    /// Adds everything another merger holds.
    pub fn add_merger(&mut self, other: &Merger) {
        let (lo, counts) = other.dense.touched();
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 {
                self.dense.bump(lo + i, c);
            }
        }
    }

    #[cfg(test)]
    pub fn total(&self) -> u64 {
        self.dense.total()
    }

    /// Encodes the counts: the first index, then per bucket its count as a varint, where
    /// a 0 is followed by the length of the run of empty buckets it starts.
    /// `None` when empty.
    pub fn encode(&self) -> Option<Dist> {
        if self.dense.total() == 0 {
            return None;
        }
        let (lo, counts) = self.dense.touched();
        let mut out = Vec::with_capacity(16 + counts.len());
        write_varint(&mut out, lo as u64);
        let mut i = 0;
        while i < counts.len() {
            if counts[i] == 0 {
                let run = counts[i..].iter().take_while(|&&c| c == 0).count();
                write_varint(&mut out, 0);
                write_varint(&mut out, run as u64);
                i += run;
            } else {
                write_varint(&mut out, counts[i]);
                i += 1;
            }
        }
        Some(out.into())
    }

    /// Values at the given quantiles (ascending), by nearest rank, as bucket midpoints.
    pub fn quantiles<const N: usize>(&self, qs: &[f64; N]) -> Option<[f64; N]> {
        self.dense.quantiles(qs, |i| hist_value(i as u16))
    }

    /// The mean, taking each bucket at its midpoint (so within a bucket's width).
    pub fn mean(&self) -> Option<f64> {
        let (lo, counts) = self.dense.touched();
        let total = self.dense.total();
        let sum: f64 = counts
            .iter()
            .enumerate()
            .map(|(i, &c)| c as f64 * hist_value((lo + i) as u16))
            .sum();
        (total > 0).then(|| sum / total as f64)
    }

    pub fn reset(&mut self) {
        self.dense.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::super::hist::bucket_of;
    use super::*;

    #[test]
    fn a_coarse_distribution_counts_within_cells_only_if_all_of_it_is() {
        // An hour past the fine tier: 360 cells of 10 s, a distribution per 30 of them.
        let blocks: Vec<Option<Dist>> = (0..12u8).map(|i| Some(Arc::from(vec![i]))).collect();
        let coarse = Dists::Coarse(blocks.into_boxed_slice());
        let first = |d: &[Option<Dist>]| d.first().map(|x| x.as_deref().map(|b| b[0]));
        let whole = coarse.within(30, 90, 360);
        assert_eq!((whole.len(), first(whole)), (2, Some(Some(1))));
        // Minutes 6 to 15 take in part of the blocks at either end: only the one inside.
        let part = coarse.within(35, 95, 360);
        assert_eq!((part.len(), first(part)), (1, Some(Some(2))));
        assert!(coarse.within(31, 59, 360).is_empty(), "inside one block");
        assert_eq!(
            coarse.covering(31, 59, 360).len(),
            1,
            "which covering takes"
        );
        assert_eq!(coarse.within(0, 360, 360).len(), 12);
    }

    #[test]
    fn history_buckets_nest_the_live_ones_within_one_percent() {
        for v in (0..20_000u64).chain((10..50).map(|s| (1u64 << s) + 12_345)) {
            let h = hist_index(bucket_of(v));
            let (low, width) = hist_bounds(h);
            assert!(low <= v && v - low < width, "{v} not in [{low}, +{width})");
            let mid = hist_value(h);
            assert!(
                (mid - v as f64).abs() <= v as f64 * 0.008 + 0.5,
                "{v}: {mid}"
            );
        }
        assert!(usize::from(hist_index(bucket_of(u64::MAX))) < H_BUCKETS);
    }

    #[test]
    fn encoding_round_trips_with_gaps() {
        let mut m = Merger::default();
        let mut live = SparseHist::default();
        for v in [5u64, 5, 900, 1_000_000, 1_000_100, 3_000_000_000] {
            live.record(v);
        }
        m.add_live(&live);
        let d = m.encode().expect("not empty");
        let q1 = m.quantiles(&[0.1, 0.5, 0.99]);
        m.reset();
        m.try_add_dist(&d).expect("decodes");
        assert_eq!(m.total(), 6);
        assert_eq!(m.quantiles(&[0.1, 0.5, 0.99]), q1);
        m.reset();
        assert!(m.try_add_dist(&d[..d.len() - 1]).is_err() || m.total() < 6);
    }

    #[test]
    fn old_hours_consolidate_and_expire() {
        let mut ring = Ring::default();
        let mut m = Merger::default();
        let t0 = 1_800_000_000 - 1_800_000_000 % HOUR_S;
        let mut keyed = Ring::keyed();
        let mut slot = Slot {
            start: t0,
            ..Slot::default()
        };
        slot.record(200, 1500, false);
        ring.add(&slot, t0, &mut m);
        keyed.add(&slot, t0, &mut m);
        slot.start = t0 + 610;
        keyed.add(&slot, t0, &mut m);
        ring.age(t0 + HOUR_S, &mut m);
        keyed.age(t0 + 2 * HOUR_S, &mut m);
        let kh = keyed.hours().next().expect("kept");
        assert_eq!(kh.cells_len(), KEY_CELLS_PER_HOUR);
        let kc: Vec<Cell> = kh.cells(0, 3).collect();
        assert_eq!((kc[0].requests(), kc[2].requests()), (1, 1));
        assert!(matches!(&kh.dists, Dists::Coarse(d) if d.len() == 1));
        assert!(matches!(
            ring.hours().next().map(|h| &h.dists),
            Some(Dists::Fine(_))
        ));
        ring.age(t0 + 2 * HOUR_S, &mut m);
        let h = ring.hours().next().expect("kept");
        assert!(matches!(h.dists, Dists::Coarse(_)));
        assert!(h.is_packed());
        assert_eq!(h.cells(0, 1).map(|c| c.requests()).sum::<u64>(), 1);
        ring.age(t0 + 25 * HOUR_S, &mut m);
        assert!(ring.is_empty());
    }

    #[test]
    fn packed_hours_give_back_their_cells_and_take_late_writes() {
        let mut ring = Ring::default();
        let mut m = Merger::default();
        let t0 = 1_800_000_000 - 1_800_000_000 % HOUR_S;
        for i in 0..CELLS_PER_HOUR as i64 {
            if i % 7 == 3 {
                continue; // some cells stay empty
            }
            let mut slot = Slot {
                start: t0 + i * STEP_S,
                ..Slot::default()
            };
            for k in 0..=i % 9 {
                let status = [101, 200, 302, 404, 503][(k % 5) as usize];
                slot.record(status, 50 << (i % 40), k % 4 == 0);
            }
            ring.add(&slot, t0 + i * STEP_S, &mut m);
        }
        let plain: Vec<Cell> = ring
            .hours()
            .flat_map(|h| h.cells(0, h.cells_len()))
            .collect();
        assert_eq!(plain.len(), CELLS_PER_HOUR);
        assert!(plain.iter().any(|c| c.max_us == u32::MAX));
        let unpacked = ring.clone();
        let plain_bytes = unpacked.hours().next().expect("an hour").heap_bytes();

        // Still fine, then packed once it leaves the fine tier.
        ring.age(t0 + HOUR_S, &mut m);
        assert!(!ring.hours().any(Hour::is_packed));
        ring.age(t0 + 2 * HOUR_S, &mut m);
        let h = ring.hours().next().expect("kept");
        assert!(h.is_packed());
        assert!(
            h.heap_bytes() < plain_bytes / 2,
            "{} vs {plain_bytes}",
            h.heap_bytes()
        );
        assert_eq!(h.cells_len(), CELLS_PER_HOUR);
        assert_eq!(h.cells(0, CELLS_PER_HOUR).collect::<Vec<_>>(), plain);
        for (lo, hi) in [
            (0, 1),
            (1, 2),
            (3, 4),
            (17, 200),
            (359, 360),
            (300, 999),
            (5, 5),
        ] {
            let got: Vec<Cell> = h.cells(lo, hi).collect();
            assert_eq!(got, plain[lo.min(360)..hi.min(360)], "[{lo}, {hi})");
            assert_eq!(h.cells(lo, hi).len(), got.len());
        }
        for lo in 0..=CELLS_PER_HOUR {
            let got: Vec<Cell> = h.cells(lo, lo + 2).collect();
            assert_eq!(got, plain[lo..(lo + 2).min(CELLS_PER_HOUR)], "from {lo}");
        }
        // Snapshots write the same bytes whichever the representation.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        h.put_cells(&mut a);
        unpacked.hours().for_each(|h| h.put_cells(&mut b));
        assert_eq!(a, b);
        // Packed or not, the counters are what equality compares.
        assert_eq!(
            ring.hours().next().map(|h| &h.cells),
            unpacked.hours().next().map(|h| &h.cells)
        );

        // A late event into the packed hour lands; a reader holding it keeps its copy.
        let reader = ring.clone();
        let mut late = Slot {
            start: t0 + 3 * STEP_S + 4,
            ..Slot::default()
        };
        late.record(200, 7_000, false);
        ring.add(&late, t0 + 2 * HOUR_S, &mut m);
        ring.set_res(t0 + 3 * STEP_S, t0 + 2 * HOUR_S, Some(12.5), Some(4096));
        let h = ring.hours().next().expect("kept");
        assert!(!h.is_packed());
        let mut expected = plain.clone();
        expected[3].status[1] += 1;
        expected[3].max_us = 7_000;
        assert_eq!(h.cells(0, CELLS_PER_HOUR).collect::<Vec<_>>(), expected);
        assert_eq!(h.res.as_ref().map(|r| r[3].mem_bytes()), Some(Some(4096)));
        let old = reader.hours().next().expect("kept");
        assert!(old.is_packed());
        assert_eq!(old.cells(0, CELLS_PER_HOUR).collect::<Vec<_>>(), plain);

        // The next age packs it again, with the late event.
        ring.age(t0 + 2 * HOUR_S + STEP_S, &mut m);
        let h = ring.hours().next().expect("kept");
        assert!(h.is_packed());
        assert_eq!(h.cells(0, CELLS_PER_HOUR).collect::<Vec<_>>(), expected);
        assert_ne!(ring, reader);
    }
}
