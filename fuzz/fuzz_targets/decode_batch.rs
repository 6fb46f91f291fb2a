//! Any bytes, any routing key, any clock: the decoder returns, it never panics, and
//! what it accepts obeys the contract's limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelmon_contract::{MAX_EVENTS_PER_BATCH, decode_batch, is_valid_model_name};

fuzz_target!(|data: &[u8]| {
    let (now, body) = match data.split_first_chunk::<8>() {
        Some((clock, rest)) => (i64::from_le_bytes(*clock), rest),
        None => (0, data),
    };
    if let Ok(d) = decode_batch(body, None, now) {
        assert!(d.events.len() + d.rejects.len() <= MAX_EVENTS_PER_BATCH);
        for e in &d.events {
            assert!(is_valid_model_name(&e.model));
            assert!((100..=599).contains(&e.status));
            assert!(e.ttfb_us.is_none_or(|t| t <= e.duration_us));
        }
    }
});
