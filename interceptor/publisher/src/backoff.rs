//! Retry delays that double from a first step up to a ceiling, with jitter so that many
//! clients cut off by the same outage (a broker restart, a webhook receiver going down)
//! do not all come back in the same instant.
//!
//! Public because every retry loop of the workspace uses it: the publisher's reconnects
//! and the monitor's (broker, Docker engine, webhooks). Each loop keeps its own bounds.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    /// Steps `first`, `2 × first`, … up to `max`. `seed` only decorrelates the jitter of
    /// clients started together, so the clock or a process id is good enough.
    pub fn new(first: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            first,
            max,
            next: first.min(max),
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt: between half and all of the current step, so
    /// jitter never makes a loop wait longer than its unjittered schedule would.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let frac = (self.random() % 1000) as u32;
        step / 2 + step / 2 * frac / 1000
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.next = self.first.min(self.max);
    }

    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_ceiling_and_stay_within_jitter() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(first, max, 42);
        let mut step = first;
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(d >= step / 2 && d <= step, "{d:?} outside {step:?}");
            step = (step * 2).min(max);
        }
        assert_eq!(step, max);
        b.reset();
        assert!(b.next_delay() <= first);
    }

    #[test]
    fn different_seeds_spread_the_same_step() {
        let step = Duration::from_secs(1);
        let delays: std::collections::BTreeSet<Duration> = (0..8)
            .map(|seed| Backoff::new(step, step, seed).next_delay())
            .collect();
        assert!(delays.len() > 1, "{delays:?}");
    }

    #[test]
    fn a_zero_step_stays_zero() {
        let mut b = Backoff::new(Duration::ZERO, Duration::from_secs(1), 7);
        assert_eq!(b.next_delay(), Duration::ZERO);
        assert_eq!(b.next_delay(), Duration::ZERO);
    }
}
