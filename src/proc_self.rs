//! This process's CPU time and resident memory, from /proc (Linux); `None` elsewhere.
//! The TUI's header and the web API and `/metrics` all read them here, so the monitor
//! reports one figure for its own footprint wherever it is looked at.

/// The kernel reports CPU time in USER_HZ ticks, which is 100 on every Linux ABI.
const TICKS_PER_S: f64 = 100.0;

/// User plus system CPU seconds this process has used so far.
pub fn cpu_seconds() -> Option<f64> {
    parse_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Resident set size in bytes. Read from `VmRSS`, which the kernel gives in kB, so the
/// page size (4 KiB on x86-64, often 16 or 64 KiB on arm64) never enters into it.
pub fn rss_bytes() -> Option<u64> {
    parse_rss_bytes(&std::fs::read_to_string("/proc/self/status").ok()?)
}

/// User plus system CPU seconds from the text of `/proc/<pid>/stat`.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_S)
}

/// `VmRSS` from the text of `/proc/<pid>/status`.
fn parse_rss_bytes(status: &str) -> Option<u64> {
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
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
        assert_eq!(parse_cpu_seconds("garbage"), None);
    }

    #[test]
    fn parses_vmrss() {
        let status = "Name:\tmodelmon\nVmPeak:\t  9000 kB\nVmRSS:\t  1234 kB\n";
        assert_eq!(parse_rss_bytes(status), Some(1234 * 1024));
        assert_eq!(parse_rss_bytes("Name:\tmodelmon\n"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time_and_a_nonzero_rss() {
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
        assert!(rss_bytes().is_some_and(|b| b > 0));
    }
}
