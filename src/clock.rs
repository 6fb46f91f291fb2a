//! Wall-clock time, in the units the contract uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time now, in microseconds.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
