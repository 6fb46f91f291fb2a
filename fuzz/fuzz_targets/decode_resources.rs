//! Any bytes, any clock: the resources decoder returns, it never panics; what it accepts
//! obeys the contract's limits, and comes back unchanged through the agent's encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelmon_contract::{
    EntryKind, MAX_CONTAINER_EVENTS_PER_MESSAGE, MAX_CONTAINERS_PER_MESSAGE, decode_resources,
    is_valid_model_name,
};

fuzz_target!(|data: &[u8]| {
    let (now, body) = match data.split_first_chunk::<8>() {
        Some((clock, rest)) => (i64::from_le_bytes(*clock), rest),
        None => (0, data),
    };
    let Ok(d) = decode_resources(body, None, now) else {
        return;
    };
    let r = &d.resources;
    let rejected = |kind| d.rejects.iter().filter(|x| x.kind == kind).count();
    assert!(r.containers.len() + rejected(EntryKind::Container) <= MAX_CONTAINERS_PER_MESSAGE);
    assert!(r.events.len() + rejected(EntryKind::Event) <= MAX_CONTAINER_EVENTS_PER_MESSAGE);
    for c in &r.containers {
        assert!(c.model.as_deref().is_none_or(is_valid_model_name));
        assert!(c.cpu_limit_cores.is_none_or(|l| l > 0.0 && l <= 4096.0));
    }
    // The round trip is exact: serde_json here parses floats with `float_roundtrip`
    // (Cargo.toml), so a float written back reads as the very same value.
    let again = decode_resources(&r.to_json(), Some(&r.host), now)
        .expect("a message the decoder accepted, encoded again, is accepted");
    assert!(again.rejects.is_empty(), "{:?}", again.rejects);
    assert_eq!(&again.resources, r);
});
