//! Rules on a model's own measures: the `ml` numbers its events carry (queue time, batch
//! size, tokens out), named `ml.<key>.<stat>` in a rule's `metric`, e.g.
//! `metric = "ml.queue_us.p95"`.
//!
//! One string names the figure, as `p95_ms` does for latency, and the same string is the
//! alert's `metric` everywhere it is shown (webhooks, Alertmanager labels, `--batch`).
//! The name is kept inline rather than on the heap so that [`Metric`](super::Metric)
//! stays `Copy`: the wire contract bounds a key to 64 bytes.

use std::fmt;

use modelmon_contract::{MAX_ML_KEY_CHARS, is_valid_ml_key};

use crate::store::view::MeasureStats;

/// What every measure metric starts with.
pub const PREFIX: &str = "ml.";
/// `ml.` + the longest key + `.` + the longest statistic (`mean`, `rate`).
const MAX_NAME: usize = PREFIX.len() + MAX_ML_KEY_CHARS + 1 + 4;

/// Which figure of a measure's live window a rule judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlStat {
    P50,
    P95,
    P99,
    /// Per event that carried the key.
    Mean,
    Max,
    /// The window's sum per second: `ml.tokens_out.rate` is tokens per second.
    Rate,
}

impl MlStat {
    pub const ALL: [Self; 6] = [
        Self::P50,
        Self::P95,
        Self::P99,
        Self::Mean,
        Self::Max,
        Self::Rate,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::P50 => "p50",
            Self::P95 => "p95",
            Self::P99 => "p99",
            Self::Mean => "mean",
            Self::Max => "max",
            Self::Rate => "rate",
        }
    }

    /// This statistic of a window's figures; `None` when the window has none.
    pub fn of(self, s: &MeasureStats) -> Option<f64> {
        match self {
            Self::P50 => s.p50,
            Self::P95 => s.p95,
            Self::P99 => s.p99,
            Self::Mean => s.mean,
            Self::Max => s.max,
            Self::Rate => (s.count > 0).then_some(s.rate_per_s),
        }
    }
}

/// A measure metric, `ml.<key>.<stat>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MlMetric {
    /// The whole name; bytes past `len` are zero, so the derived equality holds.
    name: [u8; MAX_NAME],
    len: u8,
    key_len: u8,
    stat: MlStat,
}

fn stats_list() -> String {
    let names: Vec<&str> = MlStat::ALL.iter().map(|s| s.as_str()).collect();
    names.join(", ")
}

impl MlMetric {
    pub fn new(key: &str, stat: MlStat) -> Result<Self, String> {
        if !is_valid_ml_key(key) {
            return Err(format!(
                "`{key}` is not an ml key: keys are 1 to {MAX_ML_KEY_CHARS} characters from a-z, 0-9 and _, \
                 as events send them (e.g. ml.queue_us.p95)"
            ));
        }
        let mut name = [0u8; MAX_NAME];
        let mut len = 0;
        for part in [PREFIX, key, ".", stat.as_str()] {
            name[len..len + part.len()].copy_from_slice(part.as_bytes());
            len += part.len();
        }
        // Both fit in a u8: the name is at most MAX_NAME (72) bytes.
        Ok(Self {
            name,
            len: u8::try_from(len).unwrap_or(u8::MAX),
            key_len: u8::try_from(key.len()).unwrap_or(u8::MAX),
            stat,
        })
    }

    /// Reads `ml.<key>.<stat>`; the error says what is wrong and how to write it.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(rest) = s.strip_prefix(PREFIX) else {
            return Err(format!("`{s}` does not start with `{PREFIX}`"));
        };
        let Some((key, stat)) = rest.split_once('.') else {
            return Err(format!(
                "`{s}` names no statistic: write `{s}.p95` (one of {})",
                stats_list()
            ));
        };
        let Some(stat) = MlStat::ALL.iter().copied().find(|x| x.as_str() == stat) else {
            // The key is the likelier mistake when both are wrong: say that first.
            if !is_valid_ml_key(key) {
                return Self::new(key, MlStat::P95);
            }
            return Err(format!(
                "`{stat}` is not a statistic of ml.{key}: use one of {}",
                stats_list()
            ));
        };
        Self::new(key, stat)
    }

    /// `ml.queue_us.p95`.
    pub fn as_str(&self) -> &str {
        // Built from ASCII only (`is_valid_ml_key` and the statistics' names).
        std::str::from_utf8(&self.name[..usize::from(self.len)]).unwrap_or("ml")
    }

    /// `queue_us`.
    pub fn key(&self) -> &str {
        let from = PREFIX.len();
        std::str::from_utf8(&self.name[from..from + usize::from(self.key_len)]).unwrap_or("")
    }

    pub fn stat(&self) -> MlStat {
        self.stat
    }

    /// A value of it for people: `240 000`, `3.5`, `1 520/s` for a rate.
    pub fn show(&self, v: f64) -> String {
        self.shower()(v)
    }

    /// [`show`](Self::show) as a plain function.
    pub fn shower(&self) -> fn(f64) -> String {
        if self.stat == MlStat::Rate {
            show_per_s
        } else {
            show_number
        }
    }
}

impl fmt::Debug for MlMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MlMetric({})", self.as_str())
    }
}

/// A rate: `1 520/s`.
pub fn show_per_s(v: f64) -> String {
    format!("{}/s", show_number(v))
}

/// A measure's value with the precision it deserves (values are kept to 0.001): whole
/// numbers from 100 on, thousands set apart by a space (`240 000`), three significant
/// digits below (`3.5`, `0.125`), no trailing zeros.
pub fn show_number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a >= 100.0 {
        let digits = format!("{a:.0}");
        let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
        if v < 0.0 && digits != "0" {
            out.push('-');
        }
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 && digits.len() > 4 {
                out.push(' ');
            }
            out.push(c);
        }
        return out;
    }
    let decimals = if a >= 10.0 {
        1
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" || s.is_empty() {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let m = MlMetric::parse("ml.queue_us.p95").expect("valid");
        assert_eq!(m.as_str(), "ml.queue_us.p95");
        assert_eq!(m.key(), "queue_us");
        assert_eq!(m.stat(), MlStat::P95);
        let long = "k".repeat(64);
        let m = MlMetric::parse(&format!("ml.{long}.mean")).expect("64 is the limit");
        assert_eq!(m.key(), long);
        assert_eq!(m, MlMetric::new(&long, MlStat::Mean).expect("valid"));
    }

    #[test]
    fn bad_names_say_what_is_wrong() {
        let err = MlMetric::parse("ml.Queue-us.p95").expect_err("not a key");
        assert!(err.contains("`Queue-us` is not an ml key"), "{err}");
        let err = MlMetric::parse("ml.queue_us").expect_err("no statistic");
        assert!(err.contains("ml.queue_us.p95"), "{err}");
        let err = MlMetric::parse("ml.queue_us.p90").expect_err("no such statistic");
        assert!(err.contains("`p90` is not a statistic"), "{err}");
        assert!(MlMetric::parse(&format!("ml.{}.p95", "k".repeat(65))).is_err());
        assert!(MlMetric::parse("ml..p95").is_err());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(show_number(240_000.0), "240 000");
        assert_eq!(show_number(1520.4), "1520");
        assert_eq!(show_number(12_345.0), "12 345");
        assert_eq!(show_number(1_234_567.0), "1 234 567");
        assert_eq!(show_number(100.0), "100");
        assert_eq!(show_number(32.0), "32");
        assert_eq!(show_number(3.5), "3.5");
        assert_eq!(show_number(0.125), "0.125");
        assert_eq!(show_number(0.0), "0");
        assert_eq!(show_number(-250_000.0), "-250 000");
    }
}
