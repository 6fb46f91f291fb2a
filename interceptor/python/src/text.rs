//! Keeping strings inside the wire contract's limits, so one odd route or exception name
//! costs a replaced character rather than a rejected event at the monitor.

use std::borrow::Cow;

use modelmon_contract::{MAX_ML_KEY_CHARS, is_clean_text};

/// `s` as clean contract text: control characters become `?`, at most `max` characters,
/// never empty.
pub fn clean_text(s: &str, max: usize) -> Cow<'static, str> {
    if is_clean_text(s, max) {
        return Cow::Owned(s.to_owned());
    }
    let cleaned: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if cleaned.is_empty() {
        Cow::Borrowed("?")
    } else {
        Cow::Owned(cleaned)
    }
}

/// `[a-z0-9_]{1,64}`.
pub fn is_ml_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= MAX_ML_KEY_CHARS
        && k.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}
