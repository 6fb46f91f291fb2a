//! Instructions per event of decoding and of aggregating, counted by callgrind: unlike
//! a timing, the count is the same on a busy or a quiet machine.
//!
//! ```sh
//! cargo build --release --example ingest_cost
//! valgrind --tool=callgrind --toggle-collect='ingest_cost::decode_all' target/release/examples/ingest_cost
//! valgrind --tool=callgrind --toggle-collect='ingest_cost::apply_all' target/release/examples/ingest_cost
//! ```
//!
//! Divide the `Collected` total by the events it prints. Without valgrind it prints the
//! time per event of each step. `ingest_cost plain` uses events without `ttfb_us` and
//! `ml` (the default carries both, see `benches/support/ingest_bodies.rs`).

use std::hint::black_box;
use std::time::Instant;

use modelmon::store::{Store, StoreConfig};
use modelmon_contract::{Decoded, decode_batch};

#[path = "../benches/support/ingest_bodies.rs"]
mod ingest_bodies;
use ingest_bodies::{EVENTS_PER_BATCH, NOW, bodies, bodies_with};

const ROUNDS: usize = 10;

#[inline(never)]
fn decode_all(bodies: &[(Vec<u8>, String)]) -> usize {
    let mut n = 0;
    for (body, model) in bodies {
        n += black_box(decode_batch(body, Some(model), NOW).map_or(0, |d| d.events.len()));
    }
    n
}

#[inline(never)]
fn apply_all(store: &mut Store, decoded: &[Decoded<'_>]) {
    for d in decoded {
        store.apply(d, NOW);
    }
}

fn main() {
    let bodies = if std::env::args().nth(1).as_deref() == Some("plain") {
        bodies_with(false, 0)
    } else {
        bodies()
    };
    let decoded: Vec<Decoded<'_>> = bodies
        .iter()
        .filter_map(|(b, m)| decode_batch(b, Some(m), NOW).ok())
        .collect();
    let mut store = Store::new(StoreConfig::default());
    // One warm-up round: the store's maps and slots exist before anything is counted.
    apply_all(&mut store, &decoded);
    let events = bodies.len() * EVENTS_PER_BATCH * ROUNDS;

    let t = Instant::now();
    for _ in 0..ROUNDS {
        black_box(decode_all(&bodies));
    }
    let decode_ns = t.elapsed().as_nanos() as f64 / events as f64;
    let t = Instant::now();
    for _ in 0..ROUNDS {
        apply_all(&mut store, &decoded);
    }
    let apply_ns = t.elapsed().as_nanos() as f64 / events as f64;
    println!(
        "{events} events per step: decode {decode_ns:.0} ns/event, aggregate {apply_ns:.0} ns/event"
    );
}
