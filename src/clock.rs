//! Wall-clock time, in the units the contract uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time now, in microseconds.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A Unix time in milliseconds as UTC calendar fields, for timestamps people and other
/// tools read (RFC 3339 in alerts, `YYYY-MM-DD HH:MM` in reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
    pub millis: i64,
}

impl Utc {
    pub fn from_ms(ms: i64) -> Self {
        let secs = ms.div_euclid(1000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Howard Hinnant's days-to-civil: proleptic Gregorian, exact for any day count.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day: doy - (153 * mp + 2) / 5 + 1,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            millis: ms.rem_euclid(1000),
        }
    }
}

/// `ms` as an RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let t = Utc::from_ms(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

#[cfg(test)]
mod tests {
    use super::{Utc, rfc3339};

    #[test]
    fn calendar_fields_of_known_instants() {
        let leap = Utc::from_ms(951_782_400_000 + 3_723_004); // 2000-02-29 01:02:03.004
        assert_eq!(
            (
                leap.year,
                leap.month,
                leap.day,
                leap.hour,
                leap.minute,
                leap.second,
                leap.millis
            ),
            (2000, 2, 29, 1, 2, 3, 4)
        );
        let before_epoch = Utc::from_ms(-1); // 1969-12-31 23:59:59.999
        assert_eq!(
            (
                before_epoch.year,
                before_epoch.month,
                before_epoch.day,
                before_epoch.millis
            ),
            (1969, 12, 31, 999)
        );
    }

    #[test]
    fn rfc3339_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }
}
