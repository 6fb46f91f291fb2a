//! A day of history for many models, as the store would have built it, without
//! replaying hundreds of millions of events: each model gets a realistic traffic shape
//! (1 to 200 req/s, log-normal latency with its own median and spread), 16 real 10-s
//! slots drawn from it, and every bucket of the day is one of those slots.
//! Benchmarks and memory figures (`benches/history.rs`, `benches/alerts.rs`,
//! `examples/history_memory.rs`) measure a full day without reaching into the rings.

use std::collections::BTreeMap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Poisson};

use super::history::{HistoryView, KeyRings, Uptime};
use super::ring::{COARSE_S, HOUR_S, KEEP_S, Merger, Ring, STEP_S};
use super::window::Slot;

/// "Now" of the filled history, Unix seconds (on an hour boundary plus a bit).
pub const NOW_S: i64 = 1_800_000_000 + 1234;

/// Slots drawn per model.
const TEMPLATES: usize = 16;

/// Ten seconds of one model's traffic.
fn draw_slot(rng: &mut SmallRng, qps: f64, latency: &LogNormal<f64>) -> Slot {
    let n = Poisson::new(qps * STEP_S as f64).map_or(0.0, |p| p.sample(rng)) as u64;
    let mut slot = Slot::default();
    for _ in 0..n {
        let us = latency.sample(rng).max(50.0) as u64;
        let status = if rng.random::<f64>() < 0.01 { 503 } else { 200 };
        slot.record(status, us, status >= 500);
    }
    slot
}

/// 24 hours of 10-s buckets for `models` models.
pub fn fill(models: usize, seed: u64) -> HistoryView {
    fill_with_keys(models, [0; 4], seed)
}

/// A key's day: each 5-minute cell is thirty slots drawn from `templates`.
fn key_ring(random: &mut SmallRng, templates: &[Slot], merger: &mut Merger) -> Ring {
    let mut ring = Ring::keyed();
    let first = NOW_S - KEEP_S + COARSE_S;
    let mut t = first - first.rem_euclid(COARSE_S);
    while t <= NOW_S {
        let mut cell = Slot {
            start: t,
            ..Slot::default()
        };
        for _ in 0..COARSE_S / STEP_S {
            cell.absorb(&templates[random.random_range(0..templates.len())]);
        }
        ring.add(&cell, t, merger);
        if t.rem_euclid(HOUR_S) == 0 {
            ring.age(t, merger);
        }
        t += COARSE_S;
    }
    ring.age(NOW_S, merger);
    ring
}

/// 24 hours for `models` models, each with `keys` routes, instances, versions and `ml`
/// measures (a measure's values drawn like latencies: the same spread of a distribution).
pub fn fill_with_keys(models: usize, keys: [usize; 4], seed: u64) -> HistoryView {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut merger = Merger::default();
    let mut rings = BTreeMap::new();
    let mut keyed = BTreeMap::new();
    for i in 0..models {
        let qps = (rng.random::<f64>() * 200f64.ln()).exp();
        let median_us = (rng.random::<f64>() * (100f64).ln()).exp() * 2_000.0;
        let sigma = 0.25 + rng.random::<f64>() * 0.55;
        let Ok(latency) = LogNormal::new(median_us.ln(), sigma) else {
            continue;
        };
        let templates: Vec<Slot> = (0..TEMPLATES)
            .map(|_| draw_slot(&mut rng, qps, &latency))
            .collect();
        let mut day = Ring::default();
        let first = NOW_S - KEEP_S + STEP_S;
        let mut t = first - first.rem_euclid(STEP_S);
        while t <= NOW_S {
            let mut slot = templates[rng.random_range(0..TEMPLATES)].clone();
            slot.start = t;
            day.add(&slot, t, &mut merger);
            // As in the store: hours leave the 10-s tier as the clock moves on.
            if t.rem_euclid(HOUR_S) == 0 {
                day.age(t, &mut merger);
            }
            t += STEP_S;
        }
        day.age(NOW_S, &mut merger);
        let name = format!("model-{i:03}");
        let mut key_rings = KeyRings::default();
        let prefixes = ["/v1/route-", "pod-", "v", "measure_"];
        for ((map, n), prefix) in key_rings.by_kind_mut().into_iter().zip(keys).zip(prefixes) {
            for k in 0..n {
                let templates: Vec<Slot> = (0..TEMPLATES)
                    .map(|_| draw_slot(&mut rng, qps / n as f64, &latency))
                    .collect();
                map.insert(
                    format!("{prefix}{k}"),
                    key_ring(&mut rng, &templates, &mut merger),
                );
            }
        }
        keyed.insert(name.clone(), key_rings);
        rings.insert(name, day);
    }
    HistoryView::new(
        NOW_S * 1000,
        rings,
        Uptime::from_spans(vec![(NOW_S - KEEP_S, NOW_S + 1)]),
    )
    .with_keys(keyed)
}
