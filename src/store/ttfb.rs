//! Time to first byte in the live windows, beside the latency they already keep.
//!
//! Only streamed answers (SSE, LLM tokens) carry `ttfb_us`, and most models never send
//! it. So a window holds no TTFB state at all until an event with one lands in it, and
//! drops it again once such events have left the window: a model without TTFB pays one
//! pointer per window, nothing per slot. TTFB slots are sparse like the window's own:
//! only seconds that saw a streamed answer have one.
//!
//! Two distributions per slot: the TTFB itself, and the generation time (duration minus
//! TTFB, first byte to last: an LLM's tokens after the first). Both only over events
//! that carry a TTFB, so the generation time of non-streamed answers (all of it "before
//! the first byte") never dilutes them.

use std::collections::VecDeque;

use super::hist::{Merger, SparseHist, bucket_of};
use super::window::Slot;

/// One event's TTFB and generation time, bucketed once for every window it lands in.
#[derive(Debug, Clone, Copy)]
pub struct FirstByte {
    pub ttfb_us: u64,
    pub gen_us: u64,
    ttfb_bucket: u16,
    gen_bucket: u16,
}

impl FirstByte {
    /// The decoder guarantees `ttfb_us <= duration_us`; saturating keeps a hand-built
    /// event from wrapping all the same.
    #[inline]
    pub fn new(duration_us: u64, ttfb_us: u64) -> Self {
        let gen_us = duration_us.saturating_sub(ttfb_us);
        Self {
            ttfb_us,
            gen_us,
            ttfb_bucket: bucket_of(ttfb_us),
            gen_bucket: bucket_of(gen_us),
        }
    }
}

/// The streamed answers of one slot of a window.
#[derive(Debug, Clone, Default, PartialEq)]
struct TtfbSlot {
    /// Same start as the window's slot it shadows.
    start: i64,
    count: u32,
    sum_ttfb_us: u64,
    sum_gen_us: u64,
    max_ttfb_us: u64,
    max_gen_us: u64,
    ttfb: SparseHist,
    generation: SparseHist,
}

impl TtfbSlot {
    fn new(start: i64) -> Self {
        Self {
            start,
            ..Self::default()
        }
    }

    #[inline]
    fn record(&mut self, fb: &FirstByte) {
        self.count = self.count.saturating_add(1);
        self.sum_ttfb_us = self.sum_ttfb_us.saturating_add(fb.ttfb_us);
        self.sum_gen_us = self.sum_gen_us.saturating_add(fb.gen_us);
        self.max_ttfb_us = self.max_ttfb_us.max(fb.ttfb_us);
        self.max_gen_us = self.max_gen_us.max(fb.gen_us);
        self.ttfb.record_bucket(fb.ttfb_bucket, 1);
        self.generation.record_bucket(fb.gen_bucket, 1);
    }

    fn seal(&mut self) {
        self.ttfb.seal();
        self.generation.seal();
    }

    /// As two window slots of `count` answers each, whose durations are the TTFBs and
    /// the generation times: what a 24-hour ring keeps.
    fn into_slots(self) -> [Slot; 2] {
        let slot = |sum_us, max_us, latency| Slot {
            start: self.start,
            status: [0, self.count, 0, 0, 0],
            errors: 0,
            sum_us,
            max_us,
            latency,
        };
        [
            slot(self.sum_ttfb_us, self.max_ttfb_us, self.ttfb),
            slot(self.sum_gen_us, self.max_gen_us, self.generation),
        ]
    }
}

/// The TTFB slots of one window, oldest first, keyed by the window's slot starts.
/// The window places events (late ones never get here) and tells which slot.
#[derive(Debug, Clone, Default)]
pub struct TtfbSlots {
    slots: VecDeque<TtfbSlot>,
}

impl TtfbSlots {
    /// Records into the slot starting at `start`, which the window has just placed.
    ///
    /// The usual case, the newest slot, is inlined; the rest is out of line (every
    /// streamed answer records into four windows).
    #[inline]
    pub fn record(&mut self, start: i64, fb: &FirstByte) {
        if let Some(last) = self.slots.back_mut()
            && last.start == start
        {
            last.record(fb);
            return;
        }
        self.record_elsewhere(start, fb);
    }

    #[inline(never)]
    fn record_elsewhere(&mut self, start: i64, fb: &FirstByte) {
        let pos = match self.slots.back() {
            Some(last) if last.start > start => {
                match self.slots.binary_search_by_key(&start, |s| s.start) {
                    Ok(i) => i,
                    Err(i) => {
                        self.slots.insert(i, TtfbSlot::new(start));
                        i
                    }
                }
            }
            _ => {
                // The previous newest slot is mostly complete: compact it, as the window does.
                if let Some(prev) = self.slots.back_mut() {
                    prev.seal();
                }
                self.slots.push_back(TtfbSlot::new(start));
                self.slots.len() - 1
            }
        };
        self.slots[pos].record(fb);
    }

    /// Hands out the slots that started before `oldest` or after `newest`, as the
    /// window does (see [`TtfbSlot::into_slots`]); `true` when none is left.
    pub fn expire(&mut self, oldest: i64, newest: i64, mut retired: impl FnMut([Slot; 2])) -> bool {
        while self.slots.front().is_some_and(|s| s.start < oldest) {
            if let Some(s) = self.slots.pop_front() {
                retired(s.into_slots());
            }
        }
        while self.slots.back().is_some_and(|s| s.start > newest) {
            if let Some(s) = self.slots.pop_back() {
                retired(s.into_slots());
            }
        }
        self.slots.is_empty()
    }

    /// Figures over every slot held. `merger` must be empty; it is left empty.
    pub fn stats(&self, merger: &mut Merger) -> TtfbStats {
        let (mut sum, mut max_ttfb, mut max_gen) = (0u64, 0u64, 0u64);
        for s in &self.slots {
            sum = sum.saturating_add(s.sum_ttfb_us);
            max_ttfb = max_ttfb.max(s.max_ttfb_us);
            max_gen = max_gen.max(s.max_gen_us);
            merger.add(&s.ttfb);
        }
        let ttfb = merger.take();
        for s in &self.slots {
            merger.add(&s.generation);
        }
        let generation = merger.take();
        let count = ttfb.map_or(0, |q| q.count);
        // A bucket midpoint can sit above the largest sample; never report past it.
        let ms = |us: f64, max: u64| us.min(max as f64) / 1000.0;
        TtfbStats {
            count,
            mean_ms: (count > 0).then(|| sum as f64 / count as f64 / 1000.0),
            ttfb_ms: ttfb.map(|q| [q.p50, q.p95, q.p99].map(|v| ms(v, max_ttfb))),
            gen_ms: generation.map(|q| [q.p50, q.p95].map(|v| ms(v, max_gen))),
        }
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<TtfbSlot>()
            + self
                .slots
                .iter()
                .map(|s| s.ttfb.heap_bytes() + s.generation.heap_bytes())
                .sum::<usize>()
    }
}

/// What a window's TTFB slots add up to.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TtfbStats {
    /// Events that carried a TTFB.
    pub count: u64,
    pub mean_ms: Option<f64>,
    /// p50, p95, p99.
    pub ttfb_ms: Option<[f64; 3]>,
    /// Generation time p50, p95.
    pub gen_ms: Option<[f64; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_in_time_order_and_expire() {
        let mut t = TtfbSlots::default();
        t.record(10, &FirstByte::new(5_000, 1_000));
        t.record(12, &FirstByte::new(5_000, 2_000));
        t.record(11, &FirstByte::new(5_000, 3_000));
        t.record(12, &FirstByte::new(9_000, 4_000));
        let starts: Vec<i64> = t.slots.iter().map(|s| s.start).collect();
        assert_eq!(starts, vec![10, 11, 12]);
        let mut m = Merger::default();
        let st = t.stats(&mut m);
        assert_eq!(st.count, 4);
        assert_eq!(st.mean_ms, Some(2.5));
        assert!(!t.expire(12, 12, |_| {}), "the newest slot stays");
        assert_eq!(t.stats(&mut m).count, 2);
        let mut left = Vec::new();
        assert!(t.expire(13, 13, |s| left.push(s)), "nothing left");
        let [ttfb, generation] = &left[0];
        assert_eq!((ttfb.start, ttfb.requests(), ttfb.sum_us), (12, 2, 6_000));
        assert_eq!((generation.requests(), generation.sum_us), (2, 8_000));
        assert_eq!(t.stats(&mut m), TtfbStats::default());
    }

    #[test]
    fn generation_is_duration_minus_ttfb() {
        let mut t = TtfbSlots::default();
        for i in 1..=100u64 {
            // TTFB i ms, then 10 × i ms of generation.
            t.record(0, &FirstByte::new(11_000 * i, 1_000 * i));
        }
        let st = t.stats(&mut Merger::default());
        let [p50, p95, p99] = st.ttfb_ms.expect("ttfb known");
        let [g50, g95] = st.gen_ms.expect("generation known");
        for (got, want) in [
            (p50, 50.0),
            (p95, 95.0),
            (p99, 99.0),
            (g50, 500.0),
            (g95, 950.0),
        ] {
            assert!((got - want).abs() / want < 0.005, "{got} vs {want}");
        }
    }

    #[test]
    fn a_ttfb_equal_to_the_duration_is_zero_generation() {
        let mut t = TtfbSlots::default();
        t.record(0, &FirstByte::new(3_000, 3_000));
        let st = t.stats(&mut Merger::default());
        assert_eq!(st.gen_ms, Some([0.0, 0.0]));
        let [p50, _, p99] = st.ttfb_ms.expect("ttfb known");
        assert!((p50 - 3.0).abs() < 0.01 && p50 <= 3.0, "{p50}");
        assert!((p50 - p99).abs() < 1e-9, "one sample: {p50} vs {p99}");
    }
}
