//! Durations as people write them in flags, config files and ranges: `250ms`, `90s`,
//! `1h30m`. Apart from `config` because the engine reads them too (history ranges, the
//! demo's cycle), and the engine must not depend on the config.

use std::time::Duration;

/// Parses `250ms`, `60s`, `5m`, `1h`, `1.5s`, and compound forms such as `1h30m` or
/// `1m30s` (each unit at most once, largest first).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, f64); 4] = [("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 0.001)];
    let s = s.trim();
    let mut rest = s;
    let mut total = 0.0;
    // Index into UNITS of the last unit read: the next must be a smaller one.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("invalid duration `{s}`: add a unit (ms, s, m, h)"))?;
        let (num, after) = rest.split_at(split);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, tail) = after.split_at(unit_len);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid duration `{s}`: `{num}` is not a number"))?;
        let Some(i) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(format!(
                "invalid duration `{s}`: unknown unit `{unit}` (use ms, s, m, h)"
            ));
        };
        if last.is_some_and(|l| i <= l) {
            return Err(format!(
                "invalid duration `{s}`: units go from largest to smallest, each once (e.g. 1h30m)"
            ));
        }
        last = Some(i);
        total += n * UNITS[i].1;
        rest = tail;
    }
    if last.is_none() {
        return Err(format!("invalid duration `{s}`: add a unit (ms, s, m, h)"));
    }
    Duration::try_from_secs_f64(total).map_err(|_| format!("invalid duration `{s}`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2s500ms"), Ok(Duration::from_millis(2500)));
        assert!(
            parse_duration("30m1h")
                .expect_err("out of order")
                .contains("largest to smallest")
        );
        assert!(parse_duration("1m1m").is_err());
        assert!(parse_duration("1h30").is_err());
        assert!(parse_duration("").is_err());
    }
}
