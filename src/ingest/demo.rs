//! `--demo`: simulated models with realistic latency and scripted incidents.
//!
//! Latencies are log-normal (a long right tail, like real inference), traffic is Poisson,
//! and every five minutes the script plays two latency regressions (a fast model and a
//! slow one), an error burst and a traffic stop on different models, so every rule has
//! something to catch. Batches are encoded as real wire-contract JSON and decoded like
//! broker traffic.
//!
//! A fresh demo has no history to learn each model's normal from, so it first plays the
//! last hour, quietly, into the store on a virtual clock ([`backfill`]): the first
//! incident is judged against a normal, as it would be after an hour of real running.

use std::borrow::Cow;
use std::time::Duration;

use modelmon_contract::{Batch, Decoded, Event, Source, SourceKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Poisson};
use tokio::sync::mpsc;

use super::Input;
use crate::clock::now_us;
use crate::store::{BrokerState, BrokerView, Store};

/// Length of the incident script; it repeats.
pub const CYCLE_S: i64 = 300;

/// A scripted incident: during `[from, to)` seconds of each cycle.
#[derive(Debug, Clone, Copy)]
pub enum Incident {
    /// Latency multiplied.
    Slow { from: i64, to: i64, factor: f64 },
    /// This share of requests fail with 503.
    Errors { from: i64, to: i64, share: f64 },
    /// Traffic stops.
    Silent { from: i64, to: i64 },
}

/// One simulated model.
#[derive(Debug, Clone)]
pub struct Sim {
    pub name: &'static str,
    pub version: &'static str,
    pub qps: f64,
    /// Median latency, ms.
    pub median_ms: f64,
    /// Log-normal sigma: the spread of the tail.
    pub sigma: f64,
    pub routes: &'static [&'static str],
    pub replicas: u32,
    pub incident: Option<Incident>,
    /// Streams its answer (time to first byte is recorded).
    pub streams: bool,
}

/// The models `--demo` shows.
pub fn default_models() -> Vec<Sim> {
    vec![
        Sim {
            name: "fraud-xgb",
            version: "2026.11.02",
            qps: 180.0,
            median_ms: 2.5,
            sigma: 0.45,
            routes: &["/v1/score", "/v1/score/batch"],
            replicas: 3,
            incident: Some(Incident::Errors {
                from: 150,
                to: 200,
                share: 0.25,
            }),
            streams: false,
        },
        Sim {
            name: "iris-classifier",
            version: "1.4.0",
            qps: 60.0,
            median_ms: 4.0,
            sigma: 0.35,
            routes: &["/predict", "/predict_proba"],
            replicas: 2,
            // A fast model gone slow: 4 ms → 80 ms, far under any fixed "slow" limit.
            incident: Some(Incident::Slow {
                from: 10,
                to: 50,
                factor: 20.0,
            }),
            streams: false,
        },
        Sim {
            name: "resnet50",
            version: "v2",
            qps: 25.0,
            median_ms: 38.0,
            sigma: 0.3,
            routes: &["/v2/models/{model_name}/infer"],
            replicas: 2,
            incident: Some(Incident::Slow {
                from: 60,
                to: 120,
                factor: 4.0,
            }),
            streams: false,
        },
        Sim {
            name: "sentiment-bert",
            version: "0.9.1",
            qps: 40.0,
            median_ms: 16.0,
            sigma: 0.4,
            routes: &["/analyze"],
            replicas: 1,
            incident: Some(Incident::Silent { from: 220, to: 270 }),
            streams: false,
        },
        Sim {
            name: "llm-chat",
            version: "7b-q4",
            qps: 4.0,
            median_ms: 900.0,
            sigma: 0.6,
            routes: &["/v1/chat/completions"],
            replicas: 1,
            incident: None,
            streams: true,
        },
    ]
}

/// `MODELMON_DEMO_CYCLE=40s` plays the whole incident script in that time, starting
/// from the first event of the run, so tests see every incident in well under a minute.
const CYCLE_ENV: &str = "MODELMON_DEMO_CYCLE";
/// `MODELMON_DEMO_INCIDENTS=off`: only the models' own noise, for false-alarm runs.
const INCIDENTS_ENV: &str = "MODELMON_DEMO_INCIDENTS";

fn incidents_on() -> bool {
    !std::env::var(INCIDENTS_ENV).is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "false"))
}

/// The second of the script `from_us` falls in.
fn phase_of(from_us: i64) -> i64 {
    static SHORT: std::sync::OnceLock<Option<(i64, i64)>> = std::sync::OnceLock::new();
    let short = SHORT.get_or_init(|| {
        let cycle = std::env::var(CYCLE_ENV).ok()?;
        let cycle = crate::config::parse_duration(&cycle).ok()?;
        let cycle_us = i64::try_from(cycle.as_micros()).ok().filter(|&c| c > 0)?;
        Some((from_us, cycle_us))
    });
    match *short {
        Some((start_us, cycle_us)) => {
            (from_us - start_us).rem_euclid(cycle_us) * CYCLE_S / cycle_us
        }
        None => (from_us / 1_000_000).rem_euclid(CYCLE_S),
    }
}

/// Generates the events of `sim` that started in `[from_us, to_us)`, its incident
/// playing when the script says so.
pub fn events(sim: &Sim, from_us: i64, to_us: i64, rng: &mut SmallRng) -> Vec<Event<'static>> {
    let incident = if incidents_on() { sim.incident } else { None };
    events_with(sim, incident, from_us, to_us, rng)
}

fn events_with(
    sim: &Sim,
    incident: Option<Incident>,
    from_us: i64,
    to_us: i64,
    rng: &mut SmallRng,
) -> Vec<Event<'static>> {
    let phase = if incident.is_some() {
        phase_of(from_us)
    } else {
        0
    };
    let (mut factor, mut error_share, mut silent) = (1.0, 0.003, false);
    match incident {
        Some(Incident::Slow {
            from,
            to,
            factor: f,
        }) if (from..to).contains(&phase) => factor = f,
        Some(Incident::Errors { from, to, share }) if (from..to).contains(&phase) => {
            error_share = share;
        }
        Some(Incident::Silent { from, to }) if (from..to).contains(&phase) => silent = true,
        _ => {}
    }
    if silent {
        return Vec::new();
    }
    let span = (to_us - from_us).max(0) as f64 / 1e6;
    let n = Poisson::new((sim.qps * span).max(1e-9)).map_or(0.0, |p| p.sample(rng)) as usize;
    let latency = LogNormal::new((sim.median_ms * factor * 1000.0).ln(), sim.sigma).ok();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let duration_us = latency.as_ref().map_or(1000.0, |d| d.sample(rng)).round() as u64;
        let roll: f64 = rng.random();
        let (status, error) = if roll < error_share {
            (503, Some(Cow::Borrowed("ServiceUnavailable")))
        } else if roll < error_share + 0.01 {
            (422, None)
        } else {
            (200, None)
        };
        let replica = rng.random_range(0..sim.replicas.max(1));
        let route = sim.routes[rng.random_range(0..sim.routes.len())];
        out.push(Event {
            ts: rng.random_range(from_us..to_us.max(from_us + 1)),
            model: Cow::Borrowed(sim.name),
            version: Some(Cow::Borrowed(sim.version)),
            instance: Cow::Owned(format!("{}-{replica}", sim.name)),
            method: Cow::Borrowed("POST"),
            route: Cow::Borrowed(route),
            status,
            duration_us,
            ttfb_us: sim.streams.then_some(duration_us / 8),
            req_bytes: Some(rng.random_range(200..2_000)),
            resp_bytes: Some(rng.random_range(100..4_000)),
            error,
            ml: Vec::new(),
        });
    }
    out
}

fn batch(events: Vec<Event<'static>>, pid: u32) -> Batch<'static> {
    Batch {
        v: 1,
        source: Source {
            kind: SourceKind::Demo,
            instance: Cow::Borrowed("demo"),
            pid,
        },
        dropped: 0,
        events,
    }
}

/// Plays `[from_us, to_us)` of the models' own traffic, incidents off, straight into the
/// store on a virtual clock, so the demo starts with the history a baseline is learnt
/// from. The store sees each second as it happens (no event is late); the history
/// shows the demo as running over that span.
pub fn backfill(store: &mut Store, models: &[Sim], from_us: i64, to_us: i64) {
    let mut rng = SmallRng::from_os_rng();
    let pid = std::process::id();
    let broker = BrokerView {
        state: BrokerState::Demo,
        ..BrokerView::default()
    };
    let mut t = from_us;
    while t < to_us {
        let next = (t + 1_000_000).min(to_us);
        for sim in models {
            let events = events_with(sim, None, t, next, &mut rng);
            if events.is_empty() {
                continue;
            }
            let b = batch(events, pid);
            let decoded = Decoded {
                source: b.source,
                dropped: 0,
                events: b.events,
                rejects: Vec::new(),
            };
            store.apply(&decoded, next);
        }
        // Seconds leave the live window into the 24-hour rings as views are built.
        if (next / 1_000_000) % 10 == 0 {
            store.view(next, broker.clone());
        }
        t = next;
    }
}

/// Feeds the store with simulated batches every `tick` until the store goes away.
pub async fn run(models: Vec<Sim>, tick: Duration, tx: mpsc::Sender<Input>) {
    let mut rng = SmallRng::from_os_rng();
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = now_us();
    let pid = std::process::id();
    loop {
        interval.tick().await;
        let now = now_us();
        for sim in &models {
            let events = events(sim, last, now, &mut rng);
            if events.is_empty() {
                continue;
            }
            let body = batch(events, pid).to_json();
            let input = Input::Body {
                body,
                routing_model: Some(sim.name.to_owned()),
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
        last = now;
    }
}
