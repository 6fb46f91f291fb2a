//! The monitor's own CPU and memory, for the header: a monitor that eats the box it
//! watches must be caught by its own display first.

use std::time::Instant;

use crate::proc_self;

/// CPU and resident memory of this process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OwnUsage {
    /// Percent of one core since the previous sample.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// Samples /proc/self between refreshes.
#[derive(Debug, Default)]
pub struct Sampler {
    /// Where the current CPU measurement started.
    mark: Option<(Instant, f64)>,
    cpu_percent: Option<f64>,
}

/// CPU time moves in 10-ms ticks: over a quarter second that is 4 % steps. A second
/// between measurements keeps the figure steady enough to read.
const MIN_SPAN_S: f64 = 1.0;

impl Sampler {
    pub fn sample(&mut self) -> OwnUsage {
        let now = Instant::now();
        let cpu_s = proc_self::cpu_seconds();
        match (self.mark, cpu_s) {
            (Some((t0, c0)), Some(c1)) => {
                let wall = now.duration_since(t0).as_secs_f64();
                if wall >= MIN_SPAN_S {
                    self.cpu_percent = Some((c1 - c0) / wall * 100.0);
                    self.mark = Some((now, c1));
                }
            }
            (None, Some(c)) => self.mark = Some((now, c)),
            (_, None) => {}
        }
        OwnUsage {
            cpu_percent: self.cpu_percent,
            rss_bytes: proc_self::rss_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_nonzero_rss_and_a_cpu_figure_after_a_second() {
        let mut s = Sampler::default();
        let first = s.sample();
        assert!(first.cpu_percent.is_none());
        assert!(first.rss_bytes.is_some_and(|b| b > 0));
        assert!(s.sample().cpu_percent.is_none(), "too soon to measure");
        // Burn some CPU so the figure is above zero.
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed().as_secs_f64() < MIN_SPAN_S {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(s.sample().cpu_percent.is_some_and(|c| c > 0.0));
    }
}
