//! The monitor's own CPU and memory, for the header: a monitor that eats the box it
//! watches must be caught by its own display first.

use std::time::Instant;

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

/// The kernel reports CPU time in USER_HZ ticks, which is 100 on every Linux ABI.
const TICKS_PER_S: f64 = 100.0;

/// CPU time moves in 10-ms ticks: over a quarter second that is 4 % steps. A second
/// between measurements keeps the figure steady enough to read.
const MIN_SPAN_S: f64 = 1.0;

impl Sampler {
    pub fn sample(&mut self) -> OwnUsage {
        let now = Instant::now();
        let cpu_s = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| cpu_seconds(&s));
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
            rss_bytes: std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| rss_bytes(&s)),
        }
    }
}

/// User plus system CPU seconds from the text of `/proc/<pid>/stat`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_S)
}

/// `VmRSS` from the text of `/proc/<pid>/status`.
pub fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parens() {
        let stat = "4242 (modelmon (x) y) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 99";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tmodelmon\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(rss_bytes(status), Some(1234 * 1024));
    }

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
