//! A rolling window: the last N time slots of one key (a model, a route, an instance).
//!
//! Events land in the slot of their own second (the store passes the second the request
//! ended), not of their arrival, so a backlog replayed after an outage is counted in the
//! seconds it happened. Only slots that saw
//! events are kept (a quiet route costs nothing); a slot that falls out of the window is
//! handed back to the caller as a [`Slot`] so it can be folded into longer history.

use std::collections::VecDeque;

use super::hist::{Merger, SparseHist, bucket_of};
use super::ttfb::{FirstByte, TtfbSlots, TtfbStats};

/// One request as the windows record it. The histogram buckets are computed once per
/// event, not once per window it lands in (a model's, a route's, an instance's).
#[derive(Debug, Clone, Copy)]
pub struct Hit {
    /// The status class, 0 for 1xx to 4 for 5xx (out-of-range codes join the nearest).
    pub class: u8,
    pub duration_us: u64,
    pub bucket: u16,
    pub is_error: bool,
    /// A streamed answer's first byte; only the live windows keep it.
    pub first_byte: Option<FirstByte>,
}

impl Hit {
    #[inline]
    pub fn new(status: u16, duration_us: u64, is_error: bool) -> Self {
        Self {
            class: (status / 100).clamp(1, 5) as u8 - 1,
            duration_us,
            bucket: bucket_of(duration_us),
            is_error,
            first_byte: None,
        }
    }

    /// With the event's `ttfb_us`, when it has one.
    #[inline]
    #[must_use]
    pub fn with_ttfb(mut self, ttfb_us: Option<u64>) -> Self {
        self.first_byte = ttfb_us.map(|t| FirstByte::new(self.duration_us, t));
        self
    }
}

/// Counters and latency distribution of one slot.
///
/// Kept small (72 bytes plus the histogram): a full store holds tens of thousands of
/// slots. Counts are per slot, so `u32` is ample (four billion requests in one slot).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slot {
    /// Start of the slot, in Unix seconds.
    pub start: i64,
    /// Requests by status class 1xx..5xx.
    pub status: [u32; 5],
    /// Status ≥ 500 or an `error` set.
    pub errors: u32,
    pub sum_us: u64,
    pub max_us: u64,
    pub latency: SparseHist,
}

impl Slot {
    #[inline]
    pub fn record(&mut self, status: u16, duration_us: u64, is_error: bool) {
        self.record_hit(&Hit::new(status, duration_us, is_error));
    }

    #[inline]
    pub fn record_hit(&mut self, h: &Hit) {
        self.errors = self.errors.saturating_add(u32::from(h.is_error));
        let class = usize::from(h.class).min(4);
        self.status[class] = self.status[class].saturating_add(1);
        // Saturating: a measure (an `ml` value in thousandths) may be as large as u64.
        self.sum_us = self.sum_us.saturating_add(h.duration_us);
        self.max_us = self.max_us.max(h.duration_us);
        self.latency.record_bucket(h.bucket, 1);
    }

    pub fn requests(&self) -> u64 {
        self.status.iter().map(|&n| u64::from(n)).sum()
    }

    /// Adds another slot's counts into this one (the distribution included).
    pub fn absorb(&mut self, other: &Slot) {
        self.errors = self.errors.saturating_add(other.errors);
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a = a.saturating_add(b);
        }
        self.sum_us = self.sum_us.saturating_add(other.sum_us);
        self.max_us = self.max_us.max(other.max_us);
        self.latency.merge_from(&other.latency);
    }

    #[cfg(test)]
    pub fn client_errors(&self) -> u64 {
        u64::from(self.status[3])
    }
}

/// Where an event's timestamp fell relative to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Counted in the window.
    InWindow,
    /// Older than the window: not counted here.
    Late,
}

/// The last `len` slots of `slot_secs` seconds each.
#[derive(Debug, Clone)]
pub struct Window {
    slot_secs: i64,
    len: i64,
    /// Slots that saw events, oldest first, keyed by `start`.
    slots: VecDeque<Slot>,
    /// Time to first byte, in slots of the same starts: `None` until a streamed answer
    /// lands in the window, and again once the last has left it. Not in [`Slot`], which
    /// every window and ring cell holds by the ten thousand, streamed or not.
    ttfb: Option<Box<TtfbSlots>>,
}

impl Window {
    pub fn new(slot_secs: u32, len: u32) -> Self {
        Self {
            slot_secs: i64::from(slot_secs.max(1)),
            len: i64::from(len.max(1)),
            slots: VecDeque::new(),
            ttfb: None,
        }
    }

    /// Seconds the window spans.
    pub fn span_secs(&self) -> i64 {
        self.slot_secs * self.len
    }

    fn slot_start(&self, sec: i64) -> i64 {
        sec.div_euclid(self.slot_secs) * self.slot_secs
    }

    /// The first second still inside the window at `now_sec`.
    pub fn oldest_start(&self, now_sec: i64) -> i64 {
        self.slot_start(now_sec) - (self.len - 1) * self.slot_secs
    }

    /// Records one request placed at `sec`. Seconds ahead of `now_sec` (clock skew)
    /// count in the current slot.
    #[cfg(test)]
    pub fn record(
        &mut self,
        sec: i64,
        now_sec: i64,
        status: u16,
        duration_us: u64,
        is_error: bool,
    ) -> Placement {
        self.record_hit(sec, now_sec, &Hit::new(status, duration_us, is_error))
    }

    /// [`Window::record`] with the bucket already computed.
    ///
    /// The usual case, the newest slot, is inlined: an event records into some ten
    /// windows, and a call cost as much as the recording.
    #[inline]
    pub fn record_hit(&mut self, sec: i64, now_sec: i64, h: &Hit) -> Placement {
        // The usual case: the newest slot, still inside the window. Checked without the
        // divisions that rounding to a slot takes (they cost more than the rest).
        let (slot_secs, span) = (self.slot_secs, self.span_secs());
        if let Some(last) = self.slots.back_mut()
            && sec >= last.start
            && sec < last.start + slot_secs
            && sec <= now_sec
            && last.start > now_sec - span
        {
            last.record_hit(h);
            if let Some(fb) = &h.first_byte {
                let start = last.start;
                self.ttfb.get_or_insert_default().record(start, fb);
            }
            return Placement::InWindow;
        }
        self.record_elsewhere(sec, now_sec, h)
    }

    /// [`Window::record_hit`] of an event that is not for the newest slot.
    #[inline(never)]
    fn record_elsewhere(&mut self, sec: i64, now_sec: i64, h: &Hit) -> Placement {
        let start = self.slot_start(sec.min(now_sec));
        if start < self.oldest_start(now_sec) {
            return Placement::Late;
        }
        // Events arrive roughly in order: the newest slot is the usual target.
        let pos = match self.slots.back() {
            Some(last) if last.start == start => self.slots.len() - 1,
            Some(last) if last.start < start => self.push_slot(start),
            None => self.push_slot(start),
            Some(_) => match self.slots.binary_search_by_key(&start, |s| s.start) {
                Ok(i) => i,
                Err(i) => {
                    self.slots.insert(
                        i,
                        Slot {
                            start,
                            ..Slot::default()
                        },
                    );
                    i
                }
            },
        };
        self.slots[pos].record_hit(h);
        if let Some(fb) = &h.first_byte {
            self.ttfb.get_or_insert_default().record(start, fb);
        }
        Placement::InWindow
    }

    fn push_slot(&mut self, start: i64) -> usize {
        if self.slots.capacity() == 0 {
            // Exactly the window, plus the slot that opens before the next expiry drops
            // the oldest: doubling growth past that would waste half of thousands of windows.
            self.slots.reserve_exact(self.len as usize + 1);
        }
        // The previous newest slot is now mostly complete: compact it.
        if let Some(prev) = self.slots.back_mut() {
            prev.latency.seal();
        }
        self.slots.push_back(Slot {
            start,
            ..Slot::default()
        });
        self.slots.len() - 1
    }

    /// Removes the slots that left the window at `now_sec`, oldest first, then those
    /// that start after it (the clock stepped back), newest first.
    pub fn expire(&mut self, now_sec: i64, retired: impl FnMut(Slot)) {
        self.expire_streamed(now_sec, retired, |_| {});
    }

    /// [`Window::expire`], also handing out the TTFB slots that left, as two slots
    /// (time to first byte, generation time) for a ring. With the last of them goes the
    /// allocation, so a model that stopped streaming is back to costing nothing.
    pub fn expire_streamed(
        &mut self,
        now_sec: i64,
        mut retired: impl FnMut(Slot),
        streamed: impl FnMut([Slot; 2]),
    ) {
        let oldest = self.oldest_start(now_sec);
        while self.slots.front().is_some_and(|s| s.start < oldest) {
            if let Some(s) = self.slots.pop_front() {
                retired(s);
            }
        }
        // After the clock steps back, the slots of the seconds it left would count in the
        // window's figures until it caught up with them, an hour for an hour's step.
        while self.slots.back().is_some_and(|s| s.start > now_sec) {
            if let Some(s) = self.slots.pop_back() {
                retired(s);
            }
        }
        if self
            .ttfb
            .as_mut()
            .is_some_and(|t| t.expire(oldest, now_sec, streamed))
        {
            self.ttfb = None;
        }
    }

    /// TTFB over the window's streamed answers (all zero and `None` without any).
    /// Call [`Window::expire`] first. `merger` must be empty; it is left empty.
    pub fn ttfb_stats(&self, merger: &mut Merger) -> TtfbStats {
        self.ttfb
            .as_ref()
            .map_or_else(TtfbStats::default, |t| t.stats(merger))
    }

    /// The slots inside the window, oldest first. Call [`Window::expire`] first.
    pub fn slots(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self
                .slots
                .iter()
                .map(|s| s.latency.heap_bytes())
                .sum::<usize>()
            + self
                .ttfb
                .as_ref()
                .map_or(0, |t| std::mem::size_of::<TtfbSlots>() + t.heap_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_land_in_their_own_second_and_age_out() {
        let mut w = Window::new(1, 60);
        assert_eq!(w.record(1000, 1000, 200, 5, false), Placement::InWindow);
        assert_eq!(w.record(990, 1000, 500, 7, true), Placement::InWindow);
        assert_eq!(w.record(941, 1000, 200, 9, false), Placement::InWindow);
        assert_eq!(w.record(940, 1000, 200, 9, false), Placement::Late);
        let starts: Vec<i64> = w.slots().map(|s| s.start).collect();
        assert_eq!(starts, vec![941, 990, 1000], "slots stay in time order");

        let mut retired = Vec::new();
        w.expire(1050, |s| retired.push(s.start));
        assert_eq!(retired, vec![941, 990]);
        assert_eq!(w.slots().map(Slot::requests).sum::<u64>(), 1);
    }

    #[test]
    fn future_seconds_count_now() {
        let mut w = Window::new(1, 60);
        w.record(1010, 1000, 200, 1, false);
        assert_eq!(w.slots().next().map(|s| s.start), Some(1000));
    }

    #[test]
    fn ttfb_is_held_only_while_a_streamed_answer_is_in_the_window() {
        let mut w = Window::new(1, 60);
        let mut m = Merger::default();
        w.record(1000, 1000, 200, 5_000, false);
        assert!(w.ttfb.is_none(), "a plain answer allocates nothing");
        let streamed = Hit::new(200, 9_000, false).with_ttfb(Some(2_000));
        assert_eq!(w.record_hit(1010, 1010, &streamed), Placement::InWindow);
        // Late in the window (an older second) and past it (not counted).
        assert_eq!(w.record_hit(1005, 1010, &streamed), Placement::InWindow);
        assert_eq!(w.record_hit(900, 1010, &streamed), Placement::Late);
        assert_eq!(w.ttfb_stats(&mut m).count, 2);
        w.expire(1065, |_| {});
        assert_eq!(w.ttfb_stats(&mut m).count, 1, "the 1005 answer has left");
        w.expire(1070, |_| {});
        assert!(w.ttfb.is_none(), "freed with the last streamed answer");
        assert_eq!(w.ttfb_stats(&mut m), TtfbStats::default());
    }

    #[test]
    fn wide_slots_round_down() {
        let mut w = Window::new(5, 12);
        w.record(1003, 1004, 200, 1, false);
        w.record(1001, 1004, 404, 1, false);
        let s = w.slots().next().expect("one slot");
        assert_eq!((s.start, s.requests(), s.client_errors()), (1000, 2, 1));
        assert_eq!(w.span_secs(), 60);
    }
}
