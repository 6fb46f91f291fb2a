//! Instructions per event of encoding a batch body, hand-written (`Batch::to_json`) and
//! through serde_json (`serde_json::to_vec`, same bytes), counted by callgrind.
//!
//! ```sh
//! cargo build --release --example encode_cost
//! valgrind --tool=callgrind --toggle-collect='encode_cost::encode_all' target/release/examples/encode_cost
//! valgrind --tool=callgrind --toggle-collect='encode_cost::serde_all' target/release/examples/encode_cost
//! ```
//!
//! Divide the `Collected` total by the events it prints. `proxy` as the first argument
//! encodes modelmon-proxy's batches (no `ml`) instead of the middleware's. Without
//! valgrind it prints the time per event of each.

use std::hint::black_box;
use std::time::Instant;

use modelmon_contract::Batch;

#[path = "../benches/support/encode_batches.rs"]
mod encode_batches;
use encode_batches::{EVENTS_PER_BATCH, batch};

const ROUNDS: usize = 100;

#[inline(never)]
fn encode_all(batch: &Batch<'_>) -> usize {
    let mut n = 0;
    for _ in 0..ROUNDS {
        n += black_box(black_box(batch).to_json()).len();
    }
    n
}

#[inline(never)]
fn serde_all(batch: &Batch<'_>) -> usize {
    let mut n = 0;
    for _ in 0..ROUNDS {
        n += black_box(serde_json::to_vec(black_box(batch)).expect("encodes")).len();
    }
    n
}

fn main() {
    let measures = std::env::args().nth(1).as_deref() != Some("proxy");
    let batch = batch(measures);
    assert_eq!(
        batch.to_json(),
        serde_json::to_vec(&batch).expect("encodes"),
        "the two encoders must agree"
    );
    let events = EVENTS_PER_BATCH * ROUNDS;
    let t = Instant::now();
    black_box(encode_all(&batch));
    let ours = t.elapsed().as_nanos() as f64 / events as f64;
    let t = Instant::now();
    black_box(serde_all(&batch));
    let serde = t.elapsed().as_nanos() as f64 / events as f64;
    println!(
        "{events} events each ({}): to_json {ours:.1} ns/event, serde_json {serde:.1} ns/event",
        if measures { "middleware" } else { "proxy" }
    );
}
