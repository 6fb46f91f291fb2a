//! `--demo`: simulated models with realistic latency and scripted incidents.
//!
//! Latencies are log-normal (a long right tail, like real inference), traffic is Poisson,
//! and every five minutes the script plays two latency regressions (a fast model and a
//! slow one), an error burst and a traffic stop on different models, so every rule has
//! something to catch. Through the second half of each cycle `iris-classifier` rolls out a
//! new version to a growing share of its traffic (10, 25, then 50 %); that version is
//! 2.5 × slower and fails more often, too little in the model's totals for an alert but
//! plain beside the old version, and it is rolled back when the cycle ends.
//!
//! `llm-chat` streams its answers: the first token after a few hundred ms, then ~40 tokens
//! a second, so an answer lasts seconds. Every event carries its request and response
//! sizes and a few `ml` figures of its kind of model (`inference_us`, `batch_size`,
//! `queue_us`, `tokens_in`, `tokens_out`). Batches are encoded as real wire-contract JSON
//! and decoded like broker traffic.
//!
//! A fresh demo has no history to learn each model's normal from, so it first plays the
//! last hour, quietly, into the store on a virtual clock ([`backfill`]): the first
//! incident is judged against a normal, as it would be after an hour of real running.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use modelmon_contract::{Batch, Decoded, Event, Source, SourceKind};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Poisson};
use tokio::sync::mpsc;

use super::Input;
use crate::clock::now_us;
use crate::store::view::{ML_ITL_MEAN_US, ML_TOKENS_OUT};
use crate::store::{BrokerState, BrokerView, Store};

/// Length of the incident script; it repeats.
pub const CYCLE_S: i64 = 300;

/// Share of every model's requests that fail with 503 when nothing is wrong.
const NORMAL_ERRORS: f64 = 0.003;
/// Share of requests the client gets wrong (422), whatever the script plays.
const CLIENT_ERRORS: f64 = 0.01;

/// A streaming model's token rate varies by this fraction either way from request to
/// request (how busy the server is, how long the context).
pub const TOKEN_RATE_SPREAD: f64 = 0.15;

/// The canary steps of a [`Rollout`]: from this second of the cycle on, this share of
/// the model's requests goes to the new version. Before the first step, and again from
/// the start of the next cycle (rolled back), the old version takes everything.
pub const ROLLOUT_STEPS: [(i64, f64); 3] = [
    (CYCLE_S / 2, 0.10),
    (CYCLE_S * 2 / 3, 0.25),
    (CYCLE_S * 5 / 6, 0.50),
];

/// A scripted incident: during `[from, to)` seconds of each cycle.
#[derive(Debug, Clone, Copy)]
pub enum Incident {
    /// Latency multiplied.
    Slow { from: i64, to: i64, factor: f64 },
    /// This share of requests fail with 503.
    Errors { from: i64, to: i64, share: f64 },
    /// Traffic stops.
    Silent { from: i64, to: i64 },
    /// A queue in front of the model: the first byte of each answer (a streaming
    /// model's first token) comes `factor` × later; the rest of the answer takes its
    /// usual time.
    Queued { from: i64, to: i64, factor: f64 },
}

/// What a model does with a request, which sets its sizes, its `ml` figures and, for a
/// streaming model, its time to first token.
#[derive(Debug, Clone, Copy)]
pub enum Work {
    /// Rows of `features` numbers in as JSON, a score per row out. A route ending in
    /// `/batch` scores 8 to 64 rows at once.
    /// `ml`: `inference_us`, `batch_size`.
    Tabular { features: u32 },
    /// A text classifier: a sentence or a review in, a label and its score out.
    /// `ml`: `tokens_in`, `inference_us`.
    Text,
    /// An image (a base64 JPEG in a KServe v2 request) in, 1000 class scores out. The
    /// server batches concurrent requests, so part of the time is spent queued.
    /// `ml`: `batch_size`, `queue_us`, `inference_us`.
    Image,
    /// An LLM that streams its answer: the model's latency is its first token's (queue
    /// and prompt), then `tokens_out` tokens (log-normal around `median_tokens_out`)
    /// come at `tokens_per_s`. `ml`: `tokens_in`, `tokens_out`, `queue_us`.
    Chat {
        tokens_per_s: f64,
        median_tokens_out: f64,
    },
}

/// A new version of a model that takes a growing share of its traffic through the second
/// half of every cycle ([`ROLLOUT_STEPS`]), served by its own canary instance, and is
/// rolled back when the cycle ends. With incidents off it still rolls out, but answers
/// like the old version.
#[derive(Debug, Clone, Copy)]
pub struct Rollout {
    pub version: &'static str,
    /// Its latency as a multiple of the old version's: the regression it brings.
    pub slower: f64,
    /// Share of its requests that fail with 503 (the old version's is 0.3 %).
    pub error_share: f64,
}

/// One simulated model.
#[derive(Debug, Clone)]
pub struct Sim {
    pub name: &'static str,
    pub version: &'static str,
    pub qps: f64,
    /// Median latency, ms (for a streaming model: of its first token).
    pub median_ms: f64,
    /// Log-normal sigma: the spread of the tail.
    pub sigma: f64,
    pub routes: &'static [&'static str],
    pub replicas: u32,
    pub incident: Option<Incident>,
    pub work: Work,
    pub rollout: Option<Rollout>,
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
            work: Work::Tabular { features: 30 },
            rollout: None,
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
            work: Work::Tabular { features: 4 },
            // Its p95 goes from 7 to 18 ms on the new version: at half the traffic the
            // model's p95 reaches ~16 ms, under what `latency_regression` calls slow for
            // it (its normal + 20 ms), and 2 % errors on half of it stay far under
            // `error_spike`. The model's totals stay quiet; its versions side by side do not.
            rollout: Some(Rollout {
                version: "1.5.0",
                slower: 2.5,
                error_share: 0.02,
            }),
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
            work: Work::Image,
            rollout: None,
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
            work: Work::Text,
            rollout: None,
        },
        Sim {
            name: "llm-chat",
            version: "7b-q4",
            qps: 4.0,
            // First token: median 320 ms, p95 ~520 ms.
            median_ms: 320.0,
            sigma: 0.3,
            routes: &["/v1/chat/completions"],
            replicas: 1,
            // Requests queue in front of it: the first token 320 ms → 1.6 s, while whole
            // answers take ~5.5 s instead of ~4 (no latency regression for a model of
            // seconds). `ttfb_regression` names it.
            incident: Some(Incident::Queued {
                from: 100,
                to: 160,
                factor: 5.0,
            }),
            // Answers of 60 to 350 tokens (5 % to 95 %): 1.5 to 9 s.
            work: Work::Chat {
                tokens_per_s: 40.0,
                median_tokens_out: 150.0,
            },
            rollout: None,
        },
    ]
}

/// `MODELMON_DEMO_CYCLE=40s` plays the whole incident script in that time, starting
/// from the first event of the run, so tests see every incident in well under a minute.
const CYCLE_ENV: &str = "MODELMON_DEMO_CYCLE";
/// `MODELMON_DEMO_INCIDENTS=off`: only the models' own noise, for false-alarm runs. The
/// rollout still happens, but its new version is as fast and as reliable as the old one
/// (a healthy canary), so nothing should fire.
const INCIDENTS_ENV: &str = "MODELMON_DEMO_INCIDENTS";

fn incidents_on() -> bool {
    !std::env::var(INCIDENTS_ENV).is_ok_and(|v| matches!(v.as_str(), "off" | "0" | "false"))
}

/// The cycle `MODELMON_DEMO_CYCLE` asks for, in µs.
fn short_cycle_us() -> Option<i64> {
    static CYCLE: OnceLock<Option<i64>> = OnceLock::new();
    *CYCLE.get_or_init(|| {
        let cycle = std::env::var(CYCLE_ENV).ok()?;
        let cycle = crate::duration::parse_duration(&cycle).ok()?;
        i64::try_from(cycle.as_micros()).ok().filter(|&c| c > 0)
    })
}

/// The second of the script `t_us` falls in. The normal script follows the wall clock;
/// a short one counts its cycles from `start_us`.
fn script_second(t_us: i64, start_us: i64) -> i64 {
    match short_cycle_us() {
        Some(cycle_us) => (t_us - start_us).rem_euclid(cycle_us) * CYCLE_S / cycle_us,
        None => (t_us / 1_000_000).rem_euclid(CYCLE_S),
    }
}

/// The second of the live script `from_us` falls in; a short script starts with the
/// first call.
fn phase_of(from_us: i64) -> i64 {
    static START: OnceLock<i64> = OnceLock::new();
    script_second(from_us, *START.get_or_init(|| from_us))
}

/// The share of a model's requests its rolled-out version takes at second `phase` of
/// the cycle.
pub fn rollout_share(phase: i64) -> f64 {
    ROLLOUT_STEPS
        .iter()
        .rev()
        .find(|(from, _)| phase >= *from)
        .map_or(0.0, |&(_, share)| share)
}

/// Where the script is: the second of its cycle, and whether it plays its incidents.
#[derive(Debug, Clone, Copy)]
struct Scene {
    phase: i64,
    incidents: bool,
}

/// One version of a model as it serves during a stretch of the script.
struct Serving {
    version: &'static str,
    canary: bool,
    /// Latency multiplier (an incident, a slower version).
    factor: f64,
    /// The model's latency (a streaming model's first token) times `factor` and the
    /// time its requests wait in a queue (`queued`): only a streaming model's tokens
    /// after the first keep their pace without it.
    latency: Option<LogNormal<f64>>,
    error_share: f64,
}

impl Serving {
    fn new(sim: &Sim, version: &'static str, canary: bool, pace: Pace, error_share: f64) -> Self {
        let median_us = sim.median_ms * pace.factor * pace.queued * 1000.0;
        Self {
            version,
            canary,
            factor: pace.factor,
            latency: LogNormal::new(median_us.ln(), sim.sigma).ok(),
            error_share,
        }
    }
}

/// How an incident or a version changes a model's answers.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Everything slower (a slower model, or a slower version).
    factor: f64,
    /// Only the wait before the first byte longer (a queue in front of the model).
    queued: f64,
}

/// Generates the events of `sim` that started in `[from_us, to_us)`, its incident
/// playing when the script says so.
pub fn events(sim: &Sim, from_us: i64, to_us: i64, rng: &mut SmallRng) -> Vec<Event<'static>> {
    let scene = Scene {
        phase: phase_of(from_us),
        incidents: incidents_on(),
    };
    events_in(sim, scene, from_us, to_us, rng)
}

fn events_in(
    sim: &Sim,
    scene: Scene,
    from_us: i64,
    to_us: i64,
    rng: &mut SmallRng,
) -> Vec<Event<'static>> {
    let incident = if scene.incidents { sim.incident } else { None };
    let phase = scene.phase;
    let (mut factor, mut queued, mut error_share) = (1.0, 1.0, NORMAL_ERRORS);
    match incident {
        Some(Incident::Slow {
            from,
            to,
            factor: f,
        }) if (from..to).contains(&phase) => factor = f,
        Some(Incident::Errors { from, to, share }) if (from..to).contains(&phase) => {
            error_share = share;
        }
        Some(Incident::Silent { from, to }) if (from..to).contains(&phase) => {
            return Vec::new();
        }
        Some(Incident::Queued {
            from,
            to,
            factor: f,
        }) if (from..to).contains(&phase) => queued = f,
        _ => {}
    }
    let old = Serving::new(
        sim,
        sim.version,
        false,
        Pace { factor, queued },
        error_share,
    );
    // With incidents off the new version is the old one under another name.
    let new = sim.rollout.map(|r| {
        let (factor, error_share) = if scene.incidents {
            (factor * r.slower, error_share.max(r.error_share))
        } else {
            (factor, error_share)
        };
        let pace = Pace { factor, queued };
        Serving::new(sim, r.version, true, pace, error_share)
    });
    let share = if new.is_some() {
        rollout_share(phase)
    } else {
        0.0
    };
    let span = (to_us - from_us).max(0) as f64 / 1e6;
    let n = Poisson::new((sim.qps * span).max(1e-9)).map_or(0.0, |p| p.sample(rng)) as usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let serving = match &new {
            Some(new) if rng.random::<f64>() < share => new,
            _ => &old,
        };
        let roll: f64 = rng.random();
        let (status, error) = if roll < serving.error_share {
            (503, Some(Cow::Borrowed("ServiceUnavailable")))
        } else if roll < serving.error_share + CLIENT_ERRORS {
            (422, None)
        } else {
            (200, None)
        };
        let instance = if serving.canary {
            format!("{}-canary", sim.name)
        } else {
            format!("{}-{}", sim.name, rng.random_range(0..sim.replicas.max(1)))
        };
        let route = sim.routes[rng.random_range(0..sim.routes.len())];
        let a = answer(sim, serving, route, status == 200, rng);
        out.push(Event {
            ts: rng.random_range(from_us..to_us.max(from_us + 1)),
            model: Cow::Borrowed(sim.name),
            version: Some(Cow::Borrowed(serving.version)),
            instance: Cow::Owned(instance),
            method: Cow::Borrowed("POST"),
            route: Cow::Borrowed(route),
            status,
            duration_us: a.duration_us,
            ttfb_us: a.ttfb_us,
            req_bytes: Some(a.req_bytes),
            resp_bytes: Some(a.resp_bytes),
            error,
            ml: a.ml,
        });
    }
    out
}

/// A log-normal draw around `median`; `sigma` is the spread of its tail.
fn log_normal(median: f64, sigma: f64, rng: &mut SmallRng) -> f64 {
    LogNormal::new(median.ln(), sigma).map_or(median, |d| d.sample(rng))
}

/// How one request went, apart from its status.
struct Answer {
    duration_us: u64,
    ttfb_us: Option<u64>,
    req_bytes: u64,
    resp_bytes: u64,
    ml: Vec<(Cow<'static, str>, f64)>,
}

/// One request's timing, sizes and `ml` figures, as `serving` answers it; a failed
/// request (`ok` false) answers a short JSON error.
fn answer(sim: &Sim, serving: &Serving, route: &str, ok: bool, rng: &mut SmallRng) -> Answer {
    let base_us = serving.latency.as_ref().map_or(1000.0, |d| d.sample(rng));
    let ml = |k: &'static str, v: f64| (Cow::Borrowed(k), v.round());
    match sim.work {
        Work::Tabular { features } => {
            let rows: u32 = if route.ends_with("/batch") {
                rng.random_range(8..=64)
            } else {
                1
            };
            // One vectorised call scores the rows: a batch takes about as long as one row.
            let inference = base_us * rng.random_range(0.5..0.8);
            // A row is its features as JSON numbers (~18 bytes each), its answer a score.
            Answer {
                duration_us: base_us.round() as u64,
                ttfb_us: None,
                req_bytes: 40 + u64::from(rows * features) * 18,
                resp_bytes: error_or(ok, rng, 30 + u64::from(rows) * 40),
                ml: vec![
                    ml("inference_us", inference),
                    ml("batch_size", f64::from(rows)),
                ],
            }
        }
        Work::Text => {
            let tokens_in = log_normal(60.0, 0.7, rng).clamp(3.0, 512.0).round();
            let inference = base_us * rng.random_range(0.6..0.85);
            Answer {
                duration_us: base_us.round() as u64,
                ttfb_us: None,
                // About five characters a token.
                req_bytes: 40 + tokens_in as u64 * 5,
                resp_bytes: error_or(ok, rng, 80),
                ml: vec![ml("tokens_in", tokens_in), ml("inference_us", inference)],
            }
        }
        Work::Image => {
            let batch: u32 = rng.random_range(1..=8);
            let queue = base_us * rng.random_range(0.05..0.3);
            let inference = (base_us - queue) * rng.random_range(0.7..0.9);
            Answer {
                duration_us: base_us.round() as u64,
                ttfb_us: None,
                req_bytes: rng.random_range(60_000..220_000),
                // 1000 scores as JSON numbers.
                resp_bytes: error_or(ok, rng, 11_500),
                ml: vec![
                    ml("batch_size", f64::from(batch)),
                    ml("queue_us", queue),
                    ml("inference_us", inference),
                ],
            }
        }
        Work::Chat {
            tokens_per_s,
            median_tokens_out,
        } => {
            // A chat's prompt holds the conversation so far: tens to thousands of tokens.
            let tokens_in = log_normal(350.0, 0.8, rng).clamp(4.0, 4096.0).round();
            let ttfb_us = base_us.round() as u64;
            let queue = base_us * rng.random_range(0.02..0.3);
            // A failed request answers its error at once: no tokens follow.
            let (tokens_out, gen_us) = if ok {
                let tokens = log_normal(median_tokens_out, 0.55, rng)
                    .clamp(1.0, 1024.0)
                    .round();
                let rate = tokens_per_s
                    * rng.random_range(1.0 - TOKEN_RATE_SPREAD..1.0 + TOKEN_RATE_SPREAD)
                    / serving.factor;
                (tokens, (tokens / rate * 1e6).round() as u64)
            } else {
                (0.0, 0)
            };
            Answer {
                duration_us: ttfb_us + gen_us,
                ttfb_us: Some(ttfb_us),
                // About four characters a token, in a JSON list of messages.
                req_bytes: 300 + tokens_in as u64 * 4,
                // Server-sent events: one `data: {…}` chunk of ~160 bytes per token.
                resp_bytes: error_or(ok, rng, 200 + tokens_out as u64 * 160),
                ml: {
                    let mut v = vec![
                        ml("tokens_in", tokens_in),
                        ml(ML_TOKENS_OUT, tokens_out),
                        ml("queue_us", queue),
                    ];
                    // The mean gap between tokens, as the proxy reads it off a stream:
                    // only an answer of two tokens or more has one.
                    if tokens_out >= 2.0 {
                        v.push(ml(ML_ITL_MEAN_US, (gen_us as f64 / tokens_out).round()));
                    }
                    v
                },
            }
        }
    }
}

/// A response body of about `bytes` (within a tenth), or a short JSON error's.
fn error_or(ok: bool, rng: &mut SmallRng, bytes: u64) -> u64 {
    if ok {
        rng.random_range(bytes * 9 / 10..=bytes * 11 / 10)
    } else {
        rng.random_range(80..200)
    }
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
/// shows the demo as running over that span. The rollout plays too, healthy as with
/// incidents off; a short script's cycles are counted back from `to_us`, where the live
/// one starts.
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
        let scene = Scene {
            phase: script_second(t, to_us),
            incidents: false,
        };
        for sim in models {
            let events = events_in(sim, scene, t, next, &mut rng);
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
                offset: None,
            };
            if tx.send(input).await.is_err() {
                return;
            }
        }
        last = now;
    }
}

#[cfg(test)]
// The shares and token counts compared are exact constants of the script.
#[allow(clippy::float_cmp)]
mod tests {
    use modelmon_contract::decode_batch;

    use super::*;

    /// 2025-11-28 22:00:00 UTC.
    const T0: i64 = 1_764_367_200_000_000;

    fn model(name: &str) -> Sim {
        default_models()
            .into_iter()
            .find(|m| m.name == name)
            .expect("a demo model")
    }

    /// `seconds` of `sim`'s traffic, all at second `phase` of the script.
    fn play(sim: &Sim, phase: i64, incidents: bool, seconds: i64) -> Vec<Event<'static>> {
        let mut rng = SmallRng::seed_from_u64(15);
        let scene = Scene { phase, incidents };
        events_in(sim, scene, T0, T0 + seconds * 1_000_000, &mut rng)
    }

    fn ml(ev: &Event<'_>, key: &str) -> Option<f64> {
        ev.ml.iter().find(|(k, _)| k == key).map(|&(_, v)| v)
    }

    fn quantile(mut v: Vec<u64>, q: f64) -> u64 {
        v.sort_unstable();
        v.get(((v.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or_default()
    }

    fn durations<'a>(evs: impl Iterator<Item = &'a Event<'static>>) -> Vec<u64> {
        evs.map(|e| e.duration_us).collect()
    }

    fn of_version<'a>(
        evs: &'a [Event<'static>],
        version: &'a str,
    ) -> impl Iterator<Item = &'a Event<'static>> {
        evs.iter()
            .filter(move |e| e.version.as_deref() == Some(version))
    }

    fn error_rate<'a>(evs: impl Iterator<Item = &'a Event<'static>>) -> f64 {
        let (mut n, mut errors) = (0, 0);
        for e in evs {
            n += 1;
            errors += u32::from(e.is_error());
        }
        f64::from(errors) / f64::from(n.max(1))
    }

    #[test]
    fn llm_chat_streams_its_first_token_in_hundreds_of_ms_then_tokens_for_seconds() {
        let evs = play(&model("llm-chat"), 0, true, 600);
        assert!(evs.len() > 2000, "{} answers in 10 min at 4/s", evs.len());
        let mut answered = 0;
        for e in &evs {
            let ttfb = e.ttfb_us.expect("every answer is streamed");
            assert!(ttfb <= e.duration_us, "{e:?}");
            let tokens_in = ml(e, "tokens_in").expect("prompt tokens");
            let tokens_out = ml(e, "tokens_out").expect("answer tokens");
            assert!(tokens_in >= 1.0, "{e:?}");
            if e.status != 200 {
                assert_eq!(tokens_out, 0.0, "a failed request streams nothing: {e:?}");
                continue;
            }
            answered += 1;
            assert!(ttfb < e.duration_us, "tokens follow the first: {e:?}");
            // The rest of the answer took as long as its tokens at the model's rate.
            let generation_s = (e.duration_us - ttfb) as f64 / 1e6;
            let rate = tokens_out / generation_s;
            let (lo, hi) = (
                40.0 * (1.0 - TOKEN_RATE_SPREAD),
                40.0 * (1.0 + TOKEN_RATE_SPREAD),
            );
            assert!(
                rate > lo * 0.99 && rate < hi * 1.01,
                "{tokens_out} tokens in {generation_s} s: {rate} tokens/s"
            );
            // The mean gap between its tokens is the other face of that rate.
            if tokens_out >= 2.0 {
                let itl_s = ml(e, ML_ITL_MEAN_US).expect("a gap between tokens") / 1e6;
                assert!(
                    (itl_s * rate - 1.0).abs() < 0.01,
                    "{itl_s} s between tokens at {rate} tokens/s"
                );
            }
            let resp = e.resp_bytes.expect("response size");
            assert!(
                resp as f64 > 140.0 * tokens_out,
                "{resp} bytes for {tokens_out} tokens"
            );
        }
        assert!(answered > evs.len() * 9 / 10);
        let ttfb: Vec<u64> = evs.iter().filter_map(|e| e.ttfb_us).collect();
        let (p50, p95) = (quantile(ttfb.clone(), 0.5), quantile(ttfb, 0.95));
        assert!(
            (250_000..400_000).contains(&p50),
            "first token p50 {p50} µs"
        );
        assert!(p95 < 1_000_000, "first token p95 {p95} µs");
        let ok = durations(evs.iter().filter(|e| e.status == 200));
        let (p05, p50, p95) = (
            quantile(ok.clone(), 0.05),
            quantile(ok.clone(), 0.5),
            quantile(ok, 0.95),
        );
        assert!(
            p05 > 1_000_000,
            "short answers take a second or more: {p05} µs"
        );
        assert!(
            (3_000_000..6_000_000).contains(&p50),
            "answers take seconds: {p50} µs"
        );
        assert!(p95 < 15_000_000, "long answers: {p95} µs");
    }

    #[test]
    fn the_other_models_answer_at_once_with_sizes_and_ml_figures_of_their_kind() {
        let wanted: [(&str, &[&str]); 4] = [
            ("fraud-xgb", &["inference_us", "batch_size"]),
            ("iris-classifier", &["inference_us", "batch_size"]),
            ("resnet50", &["batch_size", "queue_us", "inference_us"]),
            ("sentiment-bert", &["tokens_in", "inference_us"]),
        ];
        for (name, keys) in wanted {
            let evs = play(&model(name), 0, true, 30);
            assert!(evs.len() > 100, "{name}");
            for e in &evs {
                assert_eq!(e.ttfb_us, None, "{name} does not stream");
                let got: Vec<&str> = e.ml.iter().map(|(k, _)| k.as_ref()).collect();
                assert_eq!(got, keys, "{name}");
                let inference = ml(e, "inference_us").expect("inference time");
                let queue = ml(e, "queue_us").unwrap_or(0.0);
                assert!(inference > 0.0, "{e:?}");
                assert!(inference + queue <= e.duration_us as f64 + 1.0, "{e:?}");
                assert!(e.req_bytes.is_some_and(|b| b > 0) && e.resp_bytes.is_some_and(|b| b > 0));
            }
        }
        let median_request = |name: &str| {
            let evs = play(&model(name), 0, true, 30);
            quantile(evs.iter().filter_map(|e| e.req_bytes).collect(), 0.5)
        };
        assert!(median_request("iris-classifier") < 300, "four numbers");
        assert!(median_request("resnet50") > 50_000, "an image");
        let fraud = play(&model("fraud-xgb"), 0, true, 30);
        let batches: Vec<f64> = fraud
            .iter()
            .filter(|e| e.route == "/v1/score/batch")
            .filter_map(|e| ml(e, "batch_size"))
            .collect();
        assert!(!batches.is_empty() && batches.iter().all(|b| (8.0..=64.0).contains(b)));
        assert!(
            fraud
                .iter()
                .filter(|e| e.route == "/v1/score")
                .all(|e| ml(e, "batch_size") == Some(1.0))
        );
    }

    #[test]
    fn llm_chats_queue_delays_its_first_token_and_not_its_tokens() {
        let llm = model("llm-chat");
        let first_tokens =
            |evs: &[Event<'_>]| -> Vec<u64> { evs.iter().filter_map(|e| e.ttfb_us).collect() };
        // Tokens a second after the first, over the answers that streamed some.
        let pace = |evs: &[Event<'_>]| -> f64 {
            let rates: Vec<u64> = evs
                .iter()
                .filter(|e| e.status == 200)
                .filter_map(|e| {
                    let gen_s = (e.duration_us - e.ttfb_us?) as f64 / 1e6;
                    Some((ml(e, ML_TOKENS_OUT)? / gen_s).round() as u64)
                })
                .collect();
            quantile(rates, 0.5) as f64
        };
        let quiet = play(&llm, 0, true, 300);
        let queued = play(&llm, 130, true, 300);
        let (before, during) = (
            quantile(first_tokens(&quiet), 0.5) as f64,
            quantile(first_tokens(&queued), 0.5) as f64,
        );
        assert!(
            (4.0..6.0).contains(&(during / before)),
            "first token {before} µs → {during} µs"
        );
        let (before, during) = (pace(&quiet), pace(&queued));
        assert!(
            (during / before - 1.0).abs() < 0.1,
            "{before} → {during} tokens/s"
        );
        // Off, the script plays no queue.
        let off = play(&llm, 130, false, 300);
        let ratio =
            quantile(first_tokens(&off), 0.5) as f64 / quantile(first_tokens(&quiet), 0.5) as f64;
        assert!((0.8..1.25).contains(&ratio), "{ratio}");
    }

    #[test]
    fn every_event_of_every_model_passes_the_monitors_validation() {
        for sim in default_models() {
            for (phase, incidents) in [
                (0, true),
                (30, true),
                (170, true),
                (280, true),
                (280, false),
            ] {
                let evs = play(&sim, phase, incidents, 5);
                let n = evs.len();
                let body = batch(evs, 1).to_json();
                let decoded =
                    decode_batch(&body, Some(sim.name), T0 + 5_000_000).expect("a readable batch");
                assert!(
                    decoded.rejects.is_empty(),
                    "{}: {:?}",
                    sim.name,
                    decoded.rejects
                );
                assert_eq!(decoded.events.len(), n);
            }
        }
    }

    #[test]
    fn the_rollout_takes_a_growing_share_in_the_second_half_and_is_rolled_back() {
        let iris = model("iris-classifier");
        let rollout = iris.rollout.expect("iris rolls out a new version");
        for phase in [0, 10, 60, CYCLE_S / 2 - 1] {
            let evs = play(&iris, phase, true, 60);
            assert!(
                evs.iter()
                    .all(|e| e.version.as_deref() == Some(iris.version)),
                "second {phase}: only the old version"
            );
        }
        for (phase, share) in [
            (150, 0.10),
            (199, 0.10),
            (200, 0.25),
            (250, 0.50),
            (299, 0.50),
        ] {
            let evs = play(&iris, phase, true, 300);
            let new: Vec<&Event<'_>> = of_version(&evs, rollout.version).collect();
            let got = new.len() as f64 / evs.len() as f64;
            assert!(
                (got - share).abs() < 0.02,
                "second {phase}: {got} of the requests on the new version, not {share}"
            );
            assert!(new.iter().all(|e| e.instance == "iris-classifier-canary"));
            assert_eq!(
                of_version(&evs, iris.version).count() + new.len(),
                evs.len(),
                "no third version"
            );
        }
        assert_eq!(rollout_share(CYCLE_S - 1), 0.5);
        assert_eq!(rollout_share(0), 0.0, "a new cycle starts rolled back");
        for sim in default_models().iter().filter(|s| s.rollout.is_none()) {
            let evs = play(sim, 280, true, 10);
            assert!(
                evs.iter()
                    .all(|e| e.version.as_deref() == Some(sim.version))
            );
        }
    }

    #[test]
    fn the_new_version_is_plainly_slower_and_failing_beside_the_old_but_not_in_the_totals() {
        let iris = model("iris-classifier");
        let new_version = iris.rollout.expect("a rollout").version;
        let evs = play(&iris, 280, true, 300);
        let old = durations(of_version(&evs, iris.version));
        let new = durations(of_version(&evs, new_version));
        let (old_p95, new_p95) = (quantile(old, 0.95), quantile(new, 0.95));
        let ratio = new_p95 as f64 / old_p95 as f64;
        assert!((2.2..2.8).contains(&ratio), "p95 {old_p95} → {new_p95} µs");
        let (old_err, new_err) = (
            error_rate(of_version(&evs, iris.version)),
            error_rate(of_version(&evs, new_version)),
        );
        assert!(
            old_err < 0.006 && new_err > 0.015,
            "errors {old_err} → {new_err}"
        );
        // The model as a whole stays under the built-in rules' limits (3 × its normal p95
        // and normal + 20 ms; twice its normal error rate and 5 points more): the
        // regression is the version comparison's to show, not an alert's.
        let normal_p95 = quantile(durations(play(&iris, 100, true, 300).iter()), 0.95);
        let all_p95 = quantile(durations(evs.iter()), 0.95);
        assert!(
            all_p95 < normal_p95 + 20_000,
            "p95 {normal_p95} → {all_p95} µs"
        );
        assert!(error_rate(evs.iter()) < 0.05);
    }

    #[test]
    fn with_incidents_off_both_versions_answer_alike() {
        let iris = model("iris-classifier");
        let new_version = iris.rollout.expect("a rollout").version;
        let evs = play(&iris, 280, false, 300);
        let (old, new): (Vec<u64>, Vec<u64>) = (
            durations(of_version(&evs, iris.version)),
            durations(of_version(&evs, new_version)),
        );
        assert!(new.len() > evs.len() / 3, "the rollout still happens");
        for q in [0.5, 0.95, 0.99] {
            let (a, b) = (
                quantile(old.clone(), q) as f64,
                quantile(new.clone(), q) as f64,
            );
            assert!((a / b - 1.0).abs() < 0.1, "q{q}: {a} against {b} µs");
        }
        let (old_err, new_err) = (
            error_rate(of_version(&evs, iris.version)),
            error_rate(of_version(&evs, new_version)),
        );
        assert!(
            old_err < 0.006 && new_err < 0.006,
            "errors {old_err}, {new_err}"
        );
    }
}
