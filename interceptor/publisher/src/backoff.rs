//! Reconnect delays: 100 ms doubling to 5 s, with jitter so that many publishers
//! cut off by the same broker restart do not all come back in the same instant.

use std::time::Duration;

const FIRST: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(seed: u64) -> Self {
        Backoff {
            next: FIRST,
            // xorshift must not start at 0.
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt: between half and all of the current step.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(MAX);
        let frac = (self.random() % 1000) as u32;
        step / 2 + step / 2 * frac / 1000
    }

    pub fn reset(&mut self) {
        self.next = FIRST;
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
    fn delays_double_up_to_five_seconds_and_stay_within_jitter() {
        let mut b = Backoff::new(42);
        let mut step = FIRST;
        for _ in 0..12 {
            let d = b.next_delay();
            assert!(d >= step / 2 && d <= step, "{d:?} outside {step:?}");
            step = (step * 2).min(MAX);
        }
        assert_eq!(step, MAX);
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }
}
