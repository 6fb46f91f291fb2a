//! Latency distributions: HDR-style log-linear buckets, stored sparse.
//!
//! A value in microseconds maps to a bucket whose width is 1/128 of its octave, the
//! layout of an `HdrHistogram` with 2 significant digits. Percentiles report the bucket's
//! midpoint, so every percentile is within 0.4 % of the exact sample value. We keep two
//! digits rather than three because the store holds one distribution per second per
//! model, route and instance: at three digits a busy model's second needs eight times the
//! buckets, and 256 models × 64 routes would no longer fit the memory bound.
//!
//! A [`SparseHist`] holds only the buckets that were hit (sorted once sealed). Distributions
//! are merged into a reusable dense [`Merger`] to read percentiles over any span.

use super::varint::{read_varint, write_varint};

/// Sub-buckets per octave.
const SUB_BITS: u32 = 7;
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are their own bucket.
const LINEAR: u64 = 2 * SUB;
/// One past the largest bucket index (values up to `u64::MAX`).
pub const BUCKETS: usize = (LINEAR + (64 - SUB_BITS as u64 - 1) * SUB) as usize;

/// The bucket of a value.
#[inline]
pub fn bucket_of(v: u64) -> u16 {
    if v < LINEAR {
        return v as u16;
    }
    let top = v.ilog2(); // at least SUB_BITS + 1 here
    let shift = top - SUB_BITS;
    let sub = (v >> shift) - SUB; // 0..SUB
    (LINEAR + u64::from(shift - 1) * SUB + sub) as u16
}

/// The lowest value of a bucket and its width.
#[inline]
pub fn bucket_bounds(idx: u16) -> (u64, u64) {
    let idx = u64::from(idx);
    if idx < LINEAR {
        return (idx, 1);
    }
    let k = idx - LINEAR;
    let shift = k / SUB + 1;
    let sub = k % SUB + SUB;
    (sub << shift, 1 << shift)
}

/// The value a bucket stands for: its midpoint.
#[inline]
pub fn bucket_value(idx: u16) -> f64 {
    let (low, width) = bucket_bounds(idx);
    low as f64 + (width - 1) as f64 / 2.0
}

/// The buckets hit in one time slot.
///
/// A slot is written while it is the newest one of its window, then only read. Once
/// sealed it drops from 8 bytes per hit bucket to about 2 (varint deltas), which is most
/// of the live store's memory at its caps: 32 768 route and instance windows of six slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SparseHist {
    repr: Repr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    Open(OpenTable),
    /// Per entry, in bucket order: the index minus the previous one (the first: itself),
    /// then the count, both as varints.
    Sealed(Box<[u8]>),
}

impl Default for SparseHist {
    fn default() -> Self {
        Self {
            repr: Repr::Open(OpenTable::default()),
        }
    }
}

impl SparseHist {
    #[cfg(test)]
    pub fn record(&mut self, v: u64) {
        self.record_bucket(bucket_of(v), 1);
    }

    #[inline]
    pub fn record_bucket(&mut self, idx: u16, n: u32) {
        self.open_mut().add(idx, n);
    }

    /// The table to write to, unsealing first (a late event into an old slot).
    ///
    /// Inlined, with the rare unsealing out of line: as one call it cost more than the
    /// table's own add (every event records into some twenty of these).
    #[inline]
    fn open_mut(&mut self) -> &mut OpenTable {
        if let Repr::Sealed(_) = self.repr {
            self.unseal();
        }
        match &mut self.repr {
            Repr::Open(t) => t,
            Repr::Sealed(_) => unreachable!("unsealed above"),
        }
    }

    #[cold]
    #[inline(never)]
    fn unseal(&mut self) {
        let mut t = OpenTable::default();
        for (idx, n) in self.iter() {
            t.add(idx, n);
        }
        self.repr = Repr::Open(t);
    }

    pub fn merge_from(&mut self, other: &SparseHist) {
        for (idx, n) in other.iter() {
            self.record_bucket(idx, n);
        }
    }

    /// `(bucket, count)`: in bucket order once sealed, in no particular order while open
    /// (every reader adds them into a dense array, where order does not matter).
    pub fn iter(&self) -> impl Iterator<Item = (u16, u32)> + '_ {
        let (open, sealed): (&[(u16, u32)], &[u8]) = match &self.repr {
            Repr::Open(t) => (&t.entries, &[]),
            Repr::Sealed(b) => (&[], b),
        };
        open.iter()
            .copied()
            .filter(|e| e.0 != FREE)
            .chain(SealedIter {
                bytes: sealed,
                idx: 0,
            })
    }

    /// Compacts the entries for a slot that will only be read from now on.
    pub fn seal(&mut self) {
        let Repr::Open(t) = &self.repr else {
            return;
        };
        let mut sorted: Vec<(u16, u32)> =
            t.entries.iter().copied().filter(|e| e.0 != FREE).collect();
        sorted.sort_unstable_by_key(|e| e.0);
        let mut out = Vec::with_capacity(sorted.len() * 2 + 4);
        let mut prev = 0u16;
        for (idx, n) in sorted {
            write_varint(&mut out, u64::from(idx - prev));
            write_varint(&mut out, u64::from(n));
            prev = idx;
        }
        self.repr = Repr::Sealed(out.into_boxed_slice());
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Open(t) => t.entries.capacity() * std::mem::size_of::<(u16, u32)>(),
            Repr::Sealed(b) => b.len(),
        }
    }
}

/// Marks a free entry of an [`OpenTable`]: no bucket has this index (see [`BUCKETS`]).
const FREE: u16 = u16::MAX;
const _: () = assert!(BUCKETS < FREE as usize);

/// The buckets of a slot still being written, in an open-addressing table with linear
/// probing. Recording is every event's most repeated step (once per window it enters,
/// up to sixteen times an event), and a sorted vector paid a binary search, and for each
/// new bucket a shift of the ones above it, on every record. The bucket index is its own
/// hash: one slot's values fall in a few neighbouring octaves, so its buckets are near
/// consecutive indices and land in distinct entries.
#[derive(Debug, Clone, Default)]
struct OpenTable {
    /// Empty, or a power of two long; [`FREE`] where no bucket is.
    entries: Vec<(u16, u32)>,
    len: usize,
}

impl OpenTable {
    #[inline]
    fn add(&mut self, idx: u16, n: u32) {
        // At most three quarters full, so a probe always meets a free entry.
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        let mask = self.entries.len() - 1;
        let mut i = usize::from(idx) & mask;
        loop {
            let e = &mut self.entries[i];
            if e.0 == idx {
                e.1 = e.1.saturating_add(n);
                return;
            }
            if e.0 == FREE {
                *e = (idx, n);
                self.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    #[cold]
    fn grow(&mut self) {
        let size = (self.entries.len() * 2).max(8);
        let old = std::mem::replace(&mut self.entries, vec![(FREE, 0); size]);
        self.len = 0;
        for (idx, n) in old.into_iter().filter(|e| e.0 != FREE) {
            self.add(idx, n);
        }
    }

    fn get(&self, idx: u16) -> Option<u32> {
        let mask = self.entries.len().checked_sub(1)?;
        let mut i = usize::from(idx) & mask;
        loop {
            match self.entries[i] {
                (FREE, _) => return None,
                (j, n) if j == idx => return Some(n),
                _ => i = (i + 1) & mask,
            }
        }
    }
}

/// Equal when they hold the same buckets and counts, however they were laid out.
impl PartialEq for OpenTable {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len
            && self
                .entries
                .iter()
                .filter(|e| e.0 != FREE)
                .all(|&(idx, n)| other.get(idx) == Some(n))
    }
}

impl Eq for OpenTable {}

/// Reads sealed entries. The bytes were written by [`SparseHist::seal`] in this process,
/// so they are well formed; a short read simply ends the iteration.
struct SealedIter<'a> {
    bytes: &'a [u8],
    idx: u16,
}

impl Iterator for SealedIter<'_> {
    type Item = (u16, u32);

    #[inline]
    fn next(&mut self) -> Option<(u16, u32)> {
        let delta = read_varint(&mut self.bytes)?;
        let n = read_varint(&mut self.bytes)?;
        self.idx = self.idx.wrapping_add(delta as u16);
        Some((self.idx, n as u32))
    }
}

/// Percentiles read from a merged distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quantiles {
    pub count: u64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Counts per bucket over a fixed number of buckets, for merging many distributions
/// and reading them. Reused: it remembers the range it touched and clears only that, so
/// a read costs the entries merged, not the number of buckets.
pub struct Dense {
    counts: Vec<u64>,
    lo: usize,
    hi: usize,
    total: u64,
}

impl Dense {
    pub fn new(buckets: usize) -> Self {
        Self {
            counts: vec![0; buckets],
            lo: buckets,
            hi: 0,
            total: 0,
        }
    }

    #[inline]
    pub fn bump(&mut self, idx: usize, n: u64) {
        self.counts[idx] += n;
        self.total += n;
        self.lo = self.lo.min(idx);
        self.hi = self.hi.max(idx + 1);
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// The first bucket touched and the counts from there to the last one touched.
    pub fn touched(&self) -> (usize, &[u64]) {
        (self.lo, &self.counts[self.lo..self.hi.max(self.lo)])
    }

    /// Values at the given quantiles (ascending), by nearest rank; `value` maps a bucket
    /// index to the value it stands for.
    pub fn quantiles<const N: usize>(
        &self,
        qs: &[f64; N],
        value: impl Fn(usize) -> f64,
    ) -> Option<[f64; N]> {
        let (lo, counts) = self.touched();
        nearest_rank(counts, self.total, qs, |i| value(lo + i))
    }

    pub fn reset(&mut self) {
        if self.lo < self.hi {
            self.counts[self.lo..self.hi].fill(0);
        }
        self.lo = self.counts.len();
        self.hi = 0;
        self.total = 0;
    }
}

/// A dense scratch histogram at live resolution that sparse ones are merged into, then read.
pub struct Merger {
    dense: Dense,
}

impl Default for Merger {
    fn default() -> Self {
        Self {
            dense: Dense::new(BUCKETS),
        }
    }
}

impl Merger {
    pub fn add(&mut self, h: &SparseHist) {
        for (idx, n) in h.iter() {
            self.dense.bump(usize::from(idx), u64::from(n));
        }
    }

    /// Reads the percentiles and resets the merger for the next use.
    pub fn take(&mut self) -> Option<Quantiles> {
        let q = self.quantiles(&[0.50, 0.90, 0.95, 0.99]);
        self.reset();
        q.map(|v| Quantiles {
            count: v.0,
            p50: v.1[0],
            p90: v.1[1],
            p95: v.1[2],
            p99: v.1[3],
        })
    }

    /// Values at the given quantiles (ascending), by nearest rank, as bucket midpoints.
    pub fn quantiles<const N: usize>(&self, qs: &[f64; N]) -> Option<(u64, [f64; N])> {
        let out = self.dense.quantiles(qs, |i| bucket_value(i as u16))?;
        Some((self.dense.total(), out))
    }

    pub fn reset(&mut self) {
        self.dense.reset();
    }
}

/// Values at quantiles `qs` (ascending) of a dense histogram of `total` samples, by
/// nearest rank; `value` maps a bucket's position in `counts` to the value it stands for.
pub fn nearest_rank<const N: usize>(
    counts: &[u64],
    total: u64,
    qs: &[f64; N],
    value: impl Fn(usize) -> f64,
) -> Option<[f64; N]> {
    if total == 0 {
        return None;
    }
    let mut out = [0.0; N];
    let mut next = 0;
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        seen += c;
        while next < N && seen >= rank(qs[next], total) {
            out[next] = value(i);
            next += 1;
        }
        if next == N {
            break;
        }
    }
    Some(out)
}

/// The 1-based nearest rank of quantile `q` among `n` samples.
fn rank(q: f64, n: u64) -> u64 {
    ((q * n as f64).ceil() as u64).clamp(1, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order_and_within_one_percent() {
        let mut prev = 0u16;
        for v in (0..5_000u64)
            .chain((1..60).map(|s| 1u64 << s))
            .chain([u64::MAX])
        {
            let idx = bucket_of(v);
            let (low, width) = bucket_bounds(idx);
            assert!(
                low <= v && v - low < width,
                "{v} not in bucket {idx} [{low}, +{width})"
            );
            assert!(idx >= prev || v < 5_000, "buckets must grow with values");
            prev = idx;
            let mid = bucket_value(idx);
            assert!(
                (mid - v as f64).abs() <= v as f64 * 0.004 + 0.5,
                "{v} vs {mid}"
            );
        }
        assert!((bucket_of(u64::MAX) as usize) < BUCKETS);
    }

    #[test]
    fn percentiles_match_hdrhistogram_at_three_digits() {
        // The reference is the real HdrHistogram; ours must agree within its own 0.4 %.
        let mut reference = hdrhistogram::Histogram::<u64>::new(3).expect("valid");
        let mut sparse = SparseHist::default();
        let mut x = 12_345u64;
        for _ in 0..50_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let v = 200 + (x >> 40) % 80_000;
            reference.record(v).expect("in range");
            sparse.record(v);
        }
        let mut m = Merger::default();
        m.add(&sparse);
        let q = m.take().expect("samples");
        for (ours, p) in [(q.p50, 50.0), (q.p95, 95.0), (q.p99, 99.0)] {
            let theirs = reference.value_at_percentile(p) as f64;
            assert!(
                (ours - theirs).abs() / theirs < 0.005,
                "p{p}: {ours} vs {theirs}"
            );
        }
        assert_eq!(q.count, 50_000);
    }

    #[test]
    fn sealing_keeps_every_entry_and_a_late_record_reopens() {
        let mut h = SparseHist::default();
        for v in [3u64, 900, 901, 70_000, 70_000, 5_000_000_000, 900] {
            h.record(v);
        }
        let mut before: Vec<_> = h.iter().collect();
        before.sort_unstable();
        let open_bytes = h.heap_bytes();
        h.seal();
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            before,
            "sealed: in bucket order"
        );
        assert!(h.heap_bytes() < open_bytes, "sealing must shrink");
        h.record(901);
        let mut want = before.clone();
        let b = bucket_of(901);
        if let Some(e) = want.iter_mut().find(|e| e.0 == b) {
            e.1 += 1;
        }
        let mut reopened: Vec<_> = h.iter().collect();
        reopened.sort_unstable();
        assert_eq!(reopened, want);
    }

    #[test]
    fn an_open_slot_counts_every_bucket_whatever_the_order_and_spread() {
        // Far-apart buckets that share table entries, neighbours that probe past each
        // other, and enough of them to grow the table several times.
        let values: Vec<u64> = (0..3_000u64)
            .map(|i| match i % 3 {
                0 => 800 + i * 13,
                1 => (i % 40) << 30,
                _ => i % 200,
            })
            .collect();
        let mut want = std::collections::BTreeMap::<u16, u32>::new();
        let mut forward = SparseHist::default();
        for &v in &values {
            forward.record(v);
            *want.entry(bucket_of(v)).or_default() += 1;
        }
        let mut backward = SparseHist::default();
        for &v in values.iter().rev() {
            backward.record(v);
        }
        let mut got: Vec<_> = forward.iter().collect();
        got.sort_unstable();
        assert_eq!(got, want.into_iter().collect::<Vec<_>>());
        assert_eq!(forward, backward, "the same buckets, laid out differently");
        backward.record(1);
        assert_ne!(forward, backward);
    }

    #[test]
    fn merger_resets_between_reads() {
        let mut a = SparseHist::default();
        a.record(1000);
        let mut m = Merger::default();
        m.add(&a);
        assert_eq!(m.take().map(|q| q.count), Some(1));
        assert_eq!(m.take(), None);
        let mut b = SparseHist::default();
        b.record(10);
        m.add(&b);
        let q = m.take().expect("one sample");
        assert!((q.p99 - 10.0).abs() < 0.5, "stale counts leaked: {q:?}");
    }
}
