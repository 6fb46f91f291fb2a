//! The batch reader must accept exactly the JSON that serde_json accepts, and must never
//! panic, whatever the bytes. Inputs: the golden vectors, mutated many thousand times.
//! (The cargo-fuzz target in `fuzz/` explores further; this runs in every test pass.)

mod support;

use modelmon_contract::{RejectReason, decode_batch};
use support::Rng;

fn seeds() -> Vec<Vec<u8>> {
    // The events' vectors only: `resources/` holds the agents' (resource_vectors.rs).
    let mut out: Vec<Vec<u8>> = support::vectors("")
        .iter()
        .map(|(_, v)| support::body(v))
        .filter(|body| body.len() < 20_000)
        .collect();
    out.sort();
    out
}

const INTERESTING: &[&[u8]] = &[
    b"\"", b"\\", b",", b":", b"{", b"}", b"[", b"]", b"-", b"0", b"1e9", b".", b"null", b"\\u00",
    b"\\ud800", b" ", b"\x01", b"1e999", b"-0", b"01", b"true",
];

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(b.len() + 1);
        match rng.below(4) {
            0 if !b.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(b.len());
                b.drain(at.min(b.len())..end.max(at.min(b.len())));
            }
            1 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                b.splice(at..at, piece.iter().copied());
            }
            2 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] = (rng.next() & 0x7f) as u8;
            }
            _ => b.truncate(at),
        }
    }
    b
}

#[test]
fn accepts_exactly_what_serde_json_accepts_and_never_panics() {
    let seeds = seeds();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut disagreements = Vec::new();
    let mut json_errors = 0;
    for i in 0..40_000 {
        let body = mutate(&seeds[i % seeds.len()], &mut rng);
        let ours = decode_batch(&body, None, 1_780_000_000_000_000);
        let ours_json_error = matches!(&ours, Err(e) if e.reason == RejectReason::NotJson);
        let reference = serde_json::from_slice::<serde_json::Value>(&body);
        // serde_json stops at a number past f64's range; we read it as infinite and let
        // its field reject the event (tests/vectors/huge_number.json). serde's answer
        // says nothing about the rest of such a body: no reference to compare with.
        if reference
            .as_ref()
            .is_err_and(|e| e.to_string().contains("number out of range"))
        {
            continue;
        }
        let serde_error = reference.is_err();
        json_errors += usize::from(serde_error);
        if ours_json_error != serde_error {
            disagreements.push(String::from_utf8_lossy(&body).into_owned());
        }
    }
    assert!(
        json_errors > 5_000,
        "the mutations must produce broken JSON too ({json_errors})"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements with serde_json, first: {:?}",
        disagreements.len(),
        disagreements.first()
    );
}
