//! Keeping strings inside the wire contract's limits, so one odd route or exception name
//! costs a replaced character rather than a rejected event at the monitor.

use std::borrow::Cow;

use modelmon_contract::is_clean_text;

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
