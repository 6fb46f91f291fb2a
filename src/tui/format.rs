//! How numbers look on screen. Unknown values show as the theme's dash, never as 0.

use crate::store::view::SeriesPoint;

pub fn ms(v: Option<f64>, unknown: &str) -> String {
    match v {
        None => unknown.to_owned(),
        Some(x) if x >= 10_000.0 => format!("{:.1}s", x / 1000.0),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
    }
}

/// A share (0..1) as a percentage.
pub fn pct(v: Option<f64>, unknown: &str) -> String {
    match v {
        None => unknown.to_owned(),
        Some(0.0) => "0%".to_owned(),
        Some(x) if x < 0.001 => "<0.1%".to_owned(),
        Some(x) => format!("{:.1}%", x * 100.0),
    }
}

pub fn qps(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn count(n: u64) -> String {
    match n {
        0..10_000 => n.to_string(),
        10_000..10_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A model measure (an `ml` value: tokens, a batch size, a score, microseconds) in at
/// most six characters: whole numbers stay whole, large ones take k, M or G, small
/// ones keep two or three decimals.
pub fn value(v: Option<f64>, unknown: &str) -> String {
    let Some(x) = v else {
        return unknown.to_owned();
    };
    let a = x.abs();
    let scaled = |div: f64, unit: &str| {
        let y = x / div;
        if y.abs() < 99.95 {
            format!("{y:.1}{unit}")
        } else {
            format!("{y:.0}{unit}")
        }
    };
    if a >= 999_950_000.0 {
        scaled(1e9, "G")
    } else if a >= 999_950.0 {
        scaled(1e6, "M")
    } else if a >= 9_999.5 {
        scaled(1e3, "k")
    } else if a >= 99.95 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if a >= 9.995 {
        format!("{x:.1}")
    } else if a >= 0.00995 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

/// A size in bytes in at most seven characters (`512 B`, `1.2 KiB`, `48 MiB`), for
/// request and response sizes and their rates.
pub fn size(v: Option<f64>, unknown: &str) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let Some(mut x) = v else {
        return unknown.to_owned();
    };
    let mut u = 0;
    // The next unit before a fourth digit would be needed.
    while x >= 999.5 && u + 1 < UNITS.len() {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 || x >= 9.95 {
        format!("{x:.0} {}", UNITS[u])
    } else {
        format!("{x:.1} {}", UNITS[u])
    }
}

/// Container CPU, 100 % = one core, in at most five characters.
pub fn cpu(pct: f64) -> String {
    if pct >= 10.0 {
        format!("{pct:.0}%")
    } else {
        format!("{pct:.1}%")
    }
}

/// Bytes in at most five characters (`980K`, `512M`, `1.5G`), for narrow columns.
pub fn bytes_short(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = n as f64;
    let mut u = 0;
    // Round up to the next unit before a fourth digit would be needed.
    while v >= 999.5 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 9.95 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// Time since the model was last seen.
pub fn age(ms_ago: Option<i64>, unknown: &str) -> String {
    match ms_ago {
        None => unknown.to_owned(),
        Some(ms) if ms < 1000 => "now".to_owned(),
        Some(ms) if ms < 60_000 => format!("{}s", ms / 1000),
        Some(ms) if ms < 3_600_000 => format!("{}m", ms / 60_000),
        Some(ms) => format!("{}h", ms / 3_600_000),
    }
}

/// `HH:MM:SS` UTC of a Unix time in ms: the clock in the header, without a date crate.
pub fn clock(ts_ms: i64) -> String {
    let s = ts_ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Cuts `s` to `n` characters, marking the cut.
pub fn truncate(s: &str, n: usize, ascii: bool) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push(if ascii { '~' } else { '…' });
    t
}

/// Fits the last five minutes of a per-second series into `width` columns. A column
/// that covers several seconds shows their mean (`Mean`) or their worst (`Max`), so a
/// one-second latency spike survives the squeeze.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fold {
    Mean,
    Max,
}

#[cfg(test)]
fn fit(
    series: &[SeriesPoint],
    width: usize,
    value: impl Fn(&SeriesPoint) -> Option<f64>,
    fold: Fold,
) -> Vec<Option<f64>> {
    let mut out = Vec::with_capacity(width);
    fit_into(&mut out, series, width, value, fold);
    out
}

/// [`fit`] into a buffer the caller reuses from row to row.
pub fn fit_into(
    out: &mut Vec<Option<f64>>,
    series: &[SeriesPoint],
    width: usize,
    value: impl Fn(&SeriesPoint) -> Option<f64>,
    fold: Fold,
) {
    out.clear();
    if width == 0 {
        return;
    }
    let n = series.len();
    if n <= width {
        // Fewer seconds than columns: one second per column, newest at the right edge.
        out.resize(width - n, None);
        out.extend(series.iter().map(&value));
        return;
    }
    out.extend((0..width).map(|i| {
        let part = &series[i * n / width..(i + 1) * n / width];
        let known = part.iter().filter_map(&value);
        match fold {
            Fold::Max => known.reduce(f64::max),
            Fold::Mean => {
                let (sum, k) = known.fold((0.0, 0u32), |(s, k), v| (s + v, k + 1));
                (k > 0).then(|| sum / f64::from(k))
            }
        }
    }));
}

/// A one-line sparkline of `values`, scaled to their maximum.
#[cfg(test)]
fn spark(values: &[Option<f64>], ascii: bool) -> String {
    spark_chars(values, ascii).collect()
}

/// The glyphs of a sparkline, one per value, for callers that write cells directly.
pub fn spark_chars(values: &[Option<f64>], ascii: bool) -> impl Iterator<Item = char> + '_ {
    const BLOCKS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    const ASCII: [char; 9] = [' ', '.', ',', ':', '-', '=', '+', '*', '#'];
    let levels = if ascii { &ASCII } else { &BLOCKS };
    let max = values.iter().flatten().copied().fold(0.0, f64::max);
    values.iter().map(move |v| match v {
        Some(x) if max > 0.0 && *x > 0.0 => {
            // Any non-zero value gets at least the lowest bar: "some" must not look like "none".
            let i = ((x / max) * 8.0).round().clamp(1.0, 8.0) as usize;
            levels[i]
        }
        _ => levels[0],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pt(sec: i64, requests: u64, p95: Option<f64>) -> SeriesPoint {
        SeriesPoint {
            sec,
            requests,
            errors: 0,
            p95_ms: p95,
            ..SeriesPoint::default()
        }
    }

    #[test]
    fn a_one_second_spike_survives_folding() {
        let mut s: Vec<_> = (0..300).map(|i| pt(i, 10, Some(5.0))).collect();
        s[123].p95_ms = Some(900.0);
        let cols = fit(&s, 20, |p| p.p95_ms, Fold::Max);
        assert_eq!(cols.len(), 20);
        assert!(cols.contains(&Some(900.0)));
        let q = fit(&s, 20, |p| Some(p.requests as f64), Fold::Mean);
        assert!(q.iter().all(|v| *v == Some(10.0)));
    }

    #[test]
    fn short_series_are_right_aligned() {
        let s = [pt(0, 1, None), pt(1, 4, None)];
        let cols = fit(&s, 5, |p| Some(p.requests as f64), Fold::Mean);
        assert_eq!(cols, vec![None, None, None, Some(1.0), Some(4.0)]);
        assert_eq!(spark(&cols, false), "   ▂█");
        assert_eq!(spark(&cols, true), "   ,#");
    }

    #[test]
    fn container_figures_fit_their_narrow_columns() {
        let mib = 1024 * 1024;
        for (n, want) in [
            (512, "512B"),
            (980 * 1024, "980K"),
            (310 * mib, "310M"),
            (1987 * mib, "1.9G"),
            (20 * 1024 * mib, "20G"),
        ] {
            assert_eq!(bytes_short(n), want);
        }
        assert_eq!(cpu(183.4), "183%");
        assert_eq!(cpu(4.25), "4.2%");
        assert!(cpu(1234.0).chars().count() <= 5);
    }

    #[test]
    fn measures_fit_six_characters_and_sizes_seven() {
        for (v, want) in [
            (512.0, "512"),
            (4.0, "4"),
            (4.25, "4.25"),
            (0.87, "0.87"),
            (0.004, "0.004"),
            (12.34, "12.3"),
            (9_999.0, "9999"),
            (12_345.0, "12.3k"),
            (999_999.0, "1.0M"),
            (123_456.0, "123k"),
            (2.5e9, "2.5G"),
            (0.0, "0"),
        ] {
            assert_eq!(value(Some(v), "-"), want, "{v}");
            assert!(value(Some(v), "-").chars().count() <= 6, "{v}");
        }
        for (v, want) in [
            (0.0, "0 B"),
            (999.0, "999 B"),
            (1000.0, "1.0 KiB"),
            (1250.0, "1.2 KiB"),
            (48.0 * 1024.0 * 1024.0, "48 MiB"),
            (1_023_000.0, "999 KiB"),
        ] {
            assert_eq!(size(Some(v), "-"), want, "{v}");
        }
        assert_eq!(value(None, "-"), "-");
        assert_eq!(size(None, "-"), "-");
    }

    #[test]
    fn unknown_is_a_dash_not_zero() {
        assert_eq!(ms(None, "–"), "–");
        assert_eq!(pct(None, "-"), "-");
        assert_eq!(pct(Some(0.0), "-"), "0%");
        assert_eq!(clock(3_723_000), "01:02:03");
    }
}
