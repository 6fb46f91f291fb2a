//! The built-in rules judged against each model's own normal, through the real store on
//! a virtual clock: events are decoded and aggregated as they are from the broker, the
//! 24-hour rings fill, baselines are learnt from them, and the engine reads each view.

use std::collections::BTreeMap;

use modelmon::alert::{
    AlertPhase, AlertState, RuleSet, Saved, Transition, TransitionKind, evaluate,
};
use modelmon::config::Config;
use modelmon::store::view::View;
use modelmon::store::{BrokerState, BrokerView, Store, StoreConfig};
use modelmon_contract::decode_batch;
use serde_json::{Value, json};

/// A Unix second on an hour boundary, so minutes and hours line up with the rings.
const T0: i64 = 1_800_000_000;

/// How a model behaves during one second.
#[derive(Debug, Clone, Copy)]
struct Traffic {
    rps: u32,
    /// Instead of `rps`: this many requests a minute on average, arriving at random (a
    /// quiet model, under one request a second, as independent callers make it).
    per_minute: Option<u32>,
    /// Median latency; each request is spread log-normally around it.
    median_ms: f64,
    /// Log-normal sigma.
    sigma: f64,
    error_share: f64,
    /// Median time to the first byte of a streamed answer (an LLM's first token), spread
    /// like latency; `None`: answers are not streamed.
    ttfb_ms: Option<f64>,
    /// A second mode: this share of requests takes `.1` ms (median, spread like latency),
    /// as a cache's misses or a cold path do.
    slow: Option<(f64, f64)>,
}

impl Traffic {
    fn steady(rps: u32, median_ms: f64) -> Self {
        Self {
            rps,
            per_minute: None,
            median_ms,
            sigma: 0.35,
            error_share: 0.002,
            ttfb_ms: None,
            slow: None,
        }
    }

    /// `share` of the requests take `median_ms` instead.
    fn two_modes(self, share: f64, median_ms: f64) -> Self {
        Self {
            slow: Some((share, median_ms)),
            ..self
        }
    }

    /// Streamed answers whose first byte comes after `ttfb_ms` (median).
    fn streaming(self, ttfb_ms: f64) -> Self {
        Self {
            ttfb_ms: Some(ttfb_ms),
            ..self
        }
    }

    fn slower(self, factor: f64) -> Self {
        Self {
            median_ms: self.median_ms * factor,
            slow: self.slow.map(|(share, ms)| (share, ms * factor)),
            ..self
        }
    }

    fn failing(self, share: f64) -> Self {
        Self {
            error_share: share,
            ..self
        }
    }

    /// `per_minute` requests a minute: 42 is 0.7 req/s.
    fn quiet(per_minute: u32, median_ms: f64) -> Self {
        Self {
            per_minute: Some(per_minute),
            ..Self::steady(0, median_ms)
        }
    }

    fn silent(self) -> Self {
        Self {
            rps: 0,
            per_minute: None,
            ..self
        }
    }
}

/// The store, the engine and a clock, one second at a time.
struct Sim {
    store: Store,
    alerts: AlertState,
    /// The config's alert rules, for a restart.
    rules: RuleSet,
    now_s: i64,
    rng: u64,
    broker: BrokerState,
    dropped: u64,
    /// Everything notified so far, with the second it happened.
    sent: Vec<(i64, Transition)>,
    last: View,
}

impl Sim {
    fn new(config: &str) -> Self {
        let cfg = Config::parse(config).expect("the config parses");
        cfg.validate(None).expect("and is valid");
        let rules = RuleSet::new(&cfg.alerts).expect("rules build");
        Self {
            store: Store::new(StoreConfig::default()),
            alerts: AlertState::new(rules.clone()),
            rules,
            now_s: T0,
            rng: 0x9e37_79b9_7f4a_7c15,
            broker: BrokerState::Connected,
            dropped: 0,
            sent: Vec::new(),
            last: View::default(),
        }
    }

    /// Short learning, so a test warms up in simulated minutes, not an hour.
    fn quick() -> Self {
        Self::new(QUICK)
    }

    fn uniform(&mut self) -> f64 {
        // xorshift64*: deterministic, no dependency.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Requests in one second at `mean` a second (Poisson, Knuth's way).
    fn poisson(&mut self, mean: f64) -> u32 {
        let (limit, mut p, mut n) = ((-mean).exp(), 1.0, 0);
        loop {
            p *= self.uniform();
            if p <= limit {
                return n;
            }
            n += 1;
        }
    }

    fn normal(&mut self) -> f64 {
        // Box-Muller.
        let (u, v) = (self.uniform().max(1e-12), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// One second of traffic for each model (none while the broker is down: the
    /// monitor receives nothing), then one evaluation.
    fn second(&mut self, traffic: &[(&str, Traffic)]) {
        let now_us = self.now_s * 1_000_000;
        if self.broker == BrokerState::Connected {
            for &(model, t) in traffic {
                let n = t
                    .per_minute
                    .map_or(t.rps, |pm| self.poisson(f64::from(pm) / 60.0));
                let events: Vec<Value> = (0..n)
                    .map(|i| {
                        let median = match t.slow {
                            Some((share, slow_ms)) if self.uniform() < share => slow_ms,
                            _ => t.median_ms,
                        };
                        let ms = median * (t.sigma * self.normal()).exp();
                        let failed = self.uniform() < t.error_share;
                        let mut e = json!({"ts": now_us - 1_000_000 + i64::from(i) * 1_000_000 / i64::from(n.max(1)),
                               "model": model, "instance": "i-1", "method": "POST",
                               "route": "/predict", "status": if failed { 503 } else { 200 },
                               "duration_us": (ms * 1000.0) as u64});
                        if let Some(first) = t.ttfb_ms {
                            // The rest of the answer follows its first token.
                            let first = first * (t.sigma * self.normal()).exp();
                            e["ttfb_us"] = json!((first * 1000.0) as u64);
                            e["duration_us"] = json!(((first + ms) * 1000.0) as u64);
                        }
                        e
                    })
                    .collect();
                let dropped = std::mem::take(&mut self.dropped);
                if events.is_empty() && dropped == 0 {
                    continue;
                }
                let body = serde_json::to_vec(&json!({"v": 1,
                    "source": {"kind": "proxy", "instance": "edge-1", "pid": 42},
                    "dropped": dropped, "events": events}))
                .expect("json");
                let d = decode_batch(&body, None, now_us).expect("a batch");
                self.store.apply(&d, now_us);
            }
        }
        let view = self.store.view(
            now_us,
            BrokerView {
                state: self.broker,
                ..BrokerView::default()
            },
        );
        for t in evaluate(&mut self.alerts, &view, self.now_s * 1000) {
            self.sent.push((self.now_s, t));
        }
        self.last = view;
        self.now_s += 1;
    }

    /// The monitor stops (its history and alert state saved, as a clean exit does) and
    /// starts again `down_s` later with both restored.
    fn restart(&mut self, down_s: i64) {
        self.restart_from(down_s, true);
    }

    /// `restart`, with the alerts file of a version that did not save normals when
    /// `normals` is false.
    fn restart_from(&mut self, down_s: i64, normals: bool) {
        let now_us = self.now_s * 1_000_000;
        let history = self
            .store
            .view(now_us, BrokerView::default())
            .history
            .clone();
        let mut saved = Saved::of(&self.alerts, self.now_s * 1000);
        if !normals {
            saved.baselines.clear();
        }
        // Through the file's JSON, as a restart reads it.
        let saved: Saved = serde_json::from_slice(&serde_json::to_vec(&saved).expect("json"))
            .expect("the saved state reads back");
        self.now_s += down_s;
        self.store = Store::new(StoreConfig::default());
        self.store.restore(&history, self.now_s * 1_000_000);
        self.alerts = AlertState::new(self.rules.clone());
        self.alerts.restore(saved, self.now_s * 1000);
    }

    fn run(&mut self, secs: i64, traffic: &[(&str, Traffic)]) {
        for _ in 0..secs {
            self.second(traffic);
        }
    }

    /// `(rule, model)` of every firing notification since second `from`.
    fn fired_since(&self, from: i64) -> Vec<(String, String)> {
        self.sent
            .iter()
            .filter(|(s, t)| *s >= from && t.kind == TransitionKind::Firing)
            .map(|(_, t)| (t.alert.rule.clone(), t.alert.model.clone()))
            .collect()
    }

    /// Seconds from `from` until `rule` on `model` first reached `phase`.
    fn seconds_to(&self, from: i64, rule: &str, model: &str, phase: TransitionKind) -> Option<i64> {
        self.sent
            .iter()
            .find(|(s, t)| {
                *s >= from && t.kind == phase && t.alert.rule == rule && t.alert.model == model
            })
            .map(|(s, _)| s - from)
    }

    /// The sentence of the first alert that fired since second `from`, or "".
    fn first_fired_why(&self, from: i64) -> String {
        self.sent
            .iter()
            .find(|(s, tr)| *s >= from && tr.kind == TransitionKind::Firing)
            .map(|(_, tr)| tr.alert.explanation.clone())
            .unwrap_or_default()
    }

    fn active(&self, rule: &str, model: &str) -> Option<AlertPhase> {
        self.alerts
            .active()
            .find(|a| a.rule == rule && a.model == model)
            .map(|a| a.state)
    }

    fn baseline(&self, model: &str) -> modelmon::alert::Baseline {
        self.alerts
            .view()
            .baseline(model)
            .cloned()
            .unwrap_or_default()
    }
}

/// Learning shortened to minutes; everything else is the zero-configuration default.
const QUICK: &str = r#"
[alerts.baseline]
learn = "20m"
skip_recent = "2m"
min_history = "5m"
"#;

fn fired_list(sim: &Sim) -> BTreeMap<(String, String), usize> {
    let mut m = BTreeMap::new();
    for k in sim.fired_since(0) {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

#[test]
fn before_a_normal_is_learnt_relative_rules_stay_quiet_and_say_why() {
    let mut sim = Sim::quick();
    let fast = Traffic::steady(20, 4.0);
    sim.run(60, &[("iris", fast)]);
    // Even a huge regression: nothing to compare with yet.
    sim.run(60, &[("iris", fast.slower(100.0))]);
    assert!(sim.fired_since(0).is_empty(), "{:?}", sim.fired_since(0));
    let b = sim.baseline("iris");
    assert!(!b.ready);
    assert!(b.explanation.starts_with("learning:"), "{}", b.explanation);
    assert_eq!(b.p95_ms, None);
}

#[test]
fn zero_config_names_a_latency_regression_an_error_burst_and_a_traffic_drop() {
    let mut sim = Sim::quick();
    let iris = Traffic::steady(20, 4.0);
    let fraud = Traffic::steady(40, 2.5);
    let bert = Traffic::steady(15, 16.0);
    sim.run(8 * 60, &[("iris", iris), ("fraud", fraud), ("bert", bert)]);
    let b = sim.baseline("iris");
    assert!(b.ready, "{}", b.explanation);
    let p95 = b.p95_ms.expect("a p95 baseline");
    assert!((5.0..9.0).contains(&p95), "iris normal p95 {p95}");
    let q = b.qps.expect("a traffic baseline");
    assert!((19.0..=21.0).contains(&q), "iris normal qps {q}");
    assert!(
        b.explanation.contains("per-minute medians"),
        "{}",
        b.explanation
    );
    assert!(sim.fired_since(0).is_empty(), "{:?}", fired_list(&sim));

    // Every request of iris 100× slower, fraud answers 30 % 503s, bert stops.
    let t = sim.now_s;
    sim.run(
        45,
        &[
            ("iris", iris.slower(100.0)),
            ("fraud", fraud.failing(0.3)),
            ("bert", bert.silent()),
        ],
    );
    let to = |rule, model, phase| sim.seconds_to(t, rule, model, phase);
    let shown = |rule: &str, model: &str| {
        sim.alerts
            .view()
            .active
            .iter()
            .chain(&sim.alerts.view().recent)
            .find(|a| a.rule == rule && a.model == model)
            .map(|a| a.active_since_ms / 1000 - t)
    };
    // A drop is judged over at least 30 s, so clients that send in bursts do not
    // look dead between them: it shows later than the others.
    for (rule, model, shown_s, firing_s) in [
        ("latency_regression", "iris", 10, 30),
        ("error_spike", "fraud", 10, 30),
        ("traffic_drop", "bert", 30, 45),
    ] {
        let pending = shown(rule, model).unwrap_or(i64::MAX);
        let firing = to(rule, model, TransitionKind::Firing).unwrap_or(i64::MAX);
        eprintln!("{rule} on {model}: shown after {pending} s, firing after {firing} s");
        assert!(
            pending <= shown_s,
            "{rule} on {model} shown after {pending} s"
        );
        assert!(
            firing <= firing_s,
            "{rule} on {model} firing after {firing} s"
        );
    }
    let fired = fired_list(&sim);
    assert_eq!(
        fired.len(),
        3,
        "exactly the three causes, nothing else: {fired:?}"
    );
    let view = sim.alerts.view();
    let why = |rule: &str| {
        view.active
            .iter()
            .find(|a| a.rule == rule)
            .map(|a| a.explanation.clone())
            .unwrap_or_default()
    };
    let latency = why("latency_regression");
    assert!(
        latency.starts_with("p95 ") && latency.contains("× its normal") && latency.contains("ms"),
        "{latency}"
    );
    let errors = why("error_spike");
    assert!(
        errors.contains("errors (") && errors.contains("normal"),
        "{errors}"
    );
    let traffic = why("traffic_drop");
    assert!(
        traffic.starts_with("0.00 req/s") && traffic.contains("of its normal"),
        "{traffic}"
    );

    // Back to normal: each resolves.
    sim.run(150, &[("iris", iris), ("fraud", fraud), ("bert", bert)]);
    for (rule, model) in [
        ("latency_regression", "iris"),
        ("error_spike", "fraud"),
        ("traffic_drop", "bert"),
    ] {
        assert!(
            sim.seconds_to(t, rule, model, TransitionKind::Resolved)
                .is_some(),
            "{rule} on {model} resolves after the fault"
        );
    }
}

#[test]
fn a_fast_models_wobble_and_a_slow_models_own_normal_never_fire() {
    let mut sim = Sim::quick();
    // A 2 ms model that doubles now and then, and an LLM whose normal p95 is seconds.
    let tiny = Traffic::steady(30, 2.0);
    let llm = Traffic {
        rps: 4,
        per_minute: None,
        median_ms: 900.0,
        sigma: 0.6,
        error_share: 0.01,
        ttfb_ms: None,
        slow: None,
    };
    sim.run(8 * 60, &[("tiny", tiny), ("llm", llm)]);
    // Ten minutes more: tiny doubles for 40 s every two minutes (2 → 4 ms), the LLM
    // keeps its own noise.
    for i in 0..600 {
        let t = if i % 120 < 40 { tiny.slower(2.0) } else { tiny };
        sim.second(&[("tiny", t), ("llm", llm)]);
    }
    assert!(
        sim.fired_since(0).is_empty(),
        "nothing fires: {:?}",
        fired_list(&sim)
    );
    let llm_normal = sim.baseline("llm").p95_ms.expect("the LLM's normal");
    assert!(
        llm_normal > 1500.0,
        "its own normal is seconds: {llm_normal}"
    );
}

#[test]
fn a_model_whose_normal_has_two_modes_is_judged_against_both() {
    // The real defaults: the last hour learnt, its last 5 minutes left out.
    let mut sim = Sim::new("");
    // 5 % of its requests miss a cache and take 20 times as long: its p95 sits on the
    // edge between the modes and moves from one to the other from minute to minute
    // while nothing is wrong.
    let cached = Traffic::steady(20, 20.0).two_modes(0.05, 400.0);
    let iris = Traffic::steady(20, 4.0);
    sim.run(75 * 60, &[("cached", cached), ("iris", iris)]);
    assert!(
        sim.fired_since(0).is_empty(),
        "its slow minutes are its normal: {:?}",
        fired_list(&sim)
    );
    let b = sim.baseline("cached");
    let (normal, high) = (
        b.p95_ms.expect("a p95 normal"),
        b.p95_high_ms.expect("and a high"),
    );
    assert!(
        high > 2.0 * normal,
        "its slow mode: {high} ({})",
        b.explanation
    );
    assert!(b.explanation.contains("(slow mode "), "{}", b.explanation);
    let iris_b = sim.baseline("iris");
    assert!(
        iris_b.p95_high_ms.expect("iris has one") < 1.5 * iris_b.p95_ms.expect("a normal"),
        "one mode: its minutes stay near their median ({})",
        iris_b.explanation
    );
    assert!(
        !iris_b.explanation.contains("slow mode"),
        "{}",
        iris_b.explanation
    );

    // Its fast path slows down 4 times (the cache's hits): the p95 stays within what
    // its slow minutes reach, the median tells.
    let t = sim.now_s;
    let hits_slow = Traffic {
        median_ms: 80.0,
        ..cached
    };
    sim.run(60, &[("cached", hits_slow), ("iris", iris)]);
    let firing = sim
        .seconds_to(
            t,
            "median_latency_regression",
            "cached",
            TransitionKind::Firing,
        )
        .expect("median_latency_regression fired");
    // The median of the live minute moves once half of it is slow, then 15 s of `for`.
    assert!(firing <= 60, "fired after {firing} s");
    let why = why_now(&sim, "median_latency_regression", "cached");
    assert!(
        why.starts_with("p50 ") && why.contains("its normal"),
        "{why}"
    );
    let t = sim.now_s;
    sim.run(120, &[("cached", cached), ("iris", iris)]);
    assert!(
        sim.seconds_to(
            t,
            "median_latency_regression",
            "cached",
            TransitionKind::Resolved
        )
        .is_some(),
        "resolved once the cache is back"
    );

    // Its cache fails (most requests take the slow path), then everything is 4 times
    // slower: each is one alert, of one of the two latency rules.
    for (what, fault) in [
        ("the cache failing", cached.two_modes(0.6, 400.0)),
        ("a slowdown", cached.slower(4.0)),
    ] {
        let t = sim.now_s;
        sim.run(60, &[("cached", fault), ("iris", iris)]);
        let fired = sim.fired_since(t);
        assert_eq!(fired.len(), 1, "{what}: one alert: {fired:?}");
        assert!(
            fired[0].0.ends_with("latency_regression"),
            "{what}: {fired:?}"
        );
        let firing = sim
            .seconds_to(t, &fired[0].0, "cached", TransitionKind::Firing)
            .expect("it fired");
        // Within the minute: by the p95 when it leaves what the slow minutes reach,
        // else by the median once half the live minute is slow.
        assert!(firing <= 60, "{what}: fired after {firing} s");
        eprintln!(
            "{what}: {} after {firing} s: {}",
            fired[0].0,
            why_now(&sim, &fired[0].0, "cached")
        );
        let back = sim.now_s;
        sim.run(180, &[("cached", cached), ("iris", iris)]);
        assert!(
            sim.seconds_to(back, &fired[0].0, "cached", TransitionKind::Resolved)
                .is_some(),
            "{what}: resolved"
        );
        assert_eq!(
            sim.fired_since(t).len(),
            1,
            "{what}: {:?}",
            sim.fired_since(t)
        );
    }
    assert_eq!(
        fired_list(&sim).keys().filter(|(_, m)| m == "iris").count(),
        0,
        "iris was never touched"
    );
}

#[test]
fn a_model_whose_slow_mode_shows_in_a_fifth_of_its_minutes_stays_quiet_for_hours() {
    let mut sim = Sim::new("");
    // One minute in five, 10 % of its requests miss the cache and its p95 is the slow
    // mode's; in the others 1 % do and its p95 is the fast mode's.
    let (busy, calm) = (
        Traffic::steady(20, 20.0).two_modes(0.10, 400.0),
        Traffic::steady(20, 20.0).two_modes(0.01, 400.0),
    );
    for minute in 0..4 * 60 {
        let t = if minute % 5 == 0 { busy } else { calm };
        sim.run(60, &[("cached", t)]);
    }
    let b = sim.baseline("cached");
    assert!(
        sim.fired_since(0).is_empty(),
        "{:?}; normal: {}",
        fired_list(&sim),
        b.explanation
    );
    assert!(
        b.explanation.contains("(slow mode "),
        "its slow mode is part of its normal: {}",
        b.explanation
    );
}

#[test]
fn a_teams_own_latency_rules_are_never_held_back_by_the_built_in_ones() {
    // For `cached`, the team made a p95 regression critical; for `ranker`, a fixed SLO
    // under the median rule's name: p50 over 60 ms is critical.
    let mut sim = Sim::new(
        r#"
[[alerts.rules]]
name = "latency_regression"
models = ["cached"]
severity = "critical"

[[alerts.rules]]
name = "median_latency_regression"
models = ["ranker"]
threshold = 60.0
severity = "critical"
"#,
    );
    let cached = Traffic::steady(20, 20.0).two_modes(0.05, 400.0);
    let ranker = Traffic::steady(20, 20.0);
    sim.run(75 * 60, &[("cached", cached), ("ranker", ranker)]);
    assert!(sim.fired_since(0).is_empty(), "{:?}", fired_list(&sim));

    // cached's fast path slows (the built-in median rule fires), then its cache fails
    // too: its critical p95 alert fires beside the warning.
    let t = sim.now_s;
    let hits_slow = Traffic {
        median_ms: 80.0,
        ..cached
    };
    sim.run(60, &[("cached", hits_slow), ("ranker", ranker)]);
    assert!(
        sim.active("median_latency_regression", "cached") == Some(AlertPhase::Firing),
        "{:?}",
        fired_list(&sim)
    );
    sim.run(
        60,
        &[
            ("cached", hits_slow.two_modes(0.6, 400.0)),
            ("ranker", ranker),
        ],
    );
    // ranker slows 10 times: the built-in p95 alert and its team's fixed limit on p50.
    sim.run(90, &[("cached", cached), ("ranker", ranker.slower(10.0))]);
    let fired = fired_list(&sim);
    for (rule, model) in [
        ("latency_regression", "cached"),
        ("latency_regression", "ranker"),
        ("median_latency_regression", "ranker"),
    ] {
        assert!(
            sim.seconds_to(t, rule, model, TransitionKind::Firing)
                .is_some(),
            "{rule} on {model} fired: {fired:?}"
        );
    }
}

#[test]
fn a_slowdown_creeping_up_over_the_hour_still_fires() {
    // The real defaults: the last hour learnt, its last 5 minutes left out.
    let mut sim = Sim::new("");
    let ranker = Traffic::steady(20, 20.0);
    sim.run(70 * 60, &[("ranker", ranker)]);
    assert!(sim.fired_since(0).is_empty(), "{:?}", fired_list(&sim));
    // 3.5 % slower every minute (an index growing, a leak): the slow minutes of the
    // last half hour are the regression itself, not a second mode to allow for.
    let t = sim.now_s;
    let mut fired_at = None;
    for minute in 0..60 {
        sim.run(60, &[("ranker", ranker.slower(1.035_f64.powi(minute)))]);
        if !sim.fired_since(t).is_empty() {
            fired_at = Some(minute);
            break;
        }
    }
    let minute = fired_at.expect("a latency rule fired during the climb");
    let slower = 1.035_f64.powi(minute);
    assert!(
        slower < 3.5,
        "fired only once {slower:.1}× slower: {:?}",
        sim.fired_since(t)
    );
    assert!(
        sim.fired_since(t)
            .iter()
            .all(|(rule, _)| rule.ends_with("latency_regression")),
        "{:?}",
        sim.fired_since(t)
    );
}

/// Two monitors to watch the same models: one with the defaults, one told not to look
/// before the last hour (`earlier = "0s"`, the judgement of earlier versions).
fn with_and_without_the_hours_before() -> [Sim; 2] {
    [
        Sim::new(""),
        Sim::new("[alerts.baseline]\nearlier = \"0s\"\n"),
    ]
}

/// What `sim` said against the hours before the last one.
fn told_against_the_hours_before(sim: &Sim) -> Vec<String> {
    sim.sent
        .iter()
        .map(|(_, t)| t.alert.explanation.clone())
        .filter(|why| why.contains("before the last hour"))
        .collect()
}

#[test]
fn a_slowdown_creeping_up_for_hours_is_judged_against_the_normal_before_it() {
    let mut sims = with_and_without_the_hours_before();
    let ranker = Traffic::steady(10, 20.0);
    for sim in &mut sims {
        sim.run(2 * 3600, &[("ranker", ranker)]);
        assert!(sim.fired_since(0).is_empty(), "{:?}", fired_list(sim));
    }
    // 1.2 % slower every minute (a leak, a queue growing): the last hour's median
    // follows half an hour behind, 1.5 × below, so against it alone nothing ever fires.
    let t = sims[0].now_s;
    let mut fired_at = None;
    let mut rise_said = false;
    for minute in 0..150 {
        let slower = ranker.slower(1.012_f64.powi(minute));
        for sim in &mut sims {
            sim.run(60, &[("ranker", slower)]);
        }
        rise_said |= sims[0]
            .baseline("ranker")
            .explanation
            .contains("up from p95");
        if fired_at.is_none() && !sims[0].fired_since(t).is_empty() {
            fired_at = Some(minute);
        }
    }
    let minute = fired_at.expect("a latency rule fired during the climb");
    let slower = 1.012_f64.powi(minute);
    assert!(
        (2.5..3.6).contains(&slower),
        "fired once {slower:.1}× slower, at minute {minute}: {:?}",
        sims[0].fired_since(t)
    );
    assert_eq!(
        sims[0].fired_since(t).len(),
        1,
        "one alert for one slowdown: {:?}",
        sims[0].fired_since(t)
    );
    let why = sims[0].first_fired_why(t);
    assert!(
        why.contains("before the last hour") && why.contains("crept up since"),
        "says what it was judged against: {why}"
    );
    assert!(
        rise_said,
        "the normal's sentence told of the rise before it was an incident: {}",
        sims[0].baseline("ranker").explanation
    );
    assert!(
        sims[1].fired_since(t).is_empty(),
        "against the last hour only, {:.1}× slower never fired: {:?}",
        1.012_f64.powi(150),
        sims[1].fired_since(t)
    );
    // A restart in the middle of it goes on with the same alert, judged the same way
    // (the normals are saved with the alerts).
    let (rule, model) = sims[0].fired_since(t)[0].clone();
    let sim = &mut sims[0];
    sim.restart(30);
    let slowest = ranker.slower(1.012_f64.powi(150));
    let r = sim.now_s;
    sim.run(5 * 60, &[("ranker", slowest)]);
    assert_eq!(sim.active(&rule, &model), Some(AlertPhase::Firing));
    assert!(sim.fired_since(r).is_empty(), "{:?}", sim.fired_since(r));
    // Fixed (the queue drained, the leak restarted away): it resolves.
    let fixed = sim.now_s;
    sim.run(5 * 60, &[("ranker", ranker)]);
    assert!(
        sim.seconds_to(fixed, &rule, &model, TransitionKind::Resolved)
            .is_some_and(|s| s < 120),
        "resolved once back to normal: {:?}",
        sim.active(&rule, &model)
    );
}

#[test]
fn the_hours_before_count_only_once_as_much_of_them_is_known_as_the_last_hour() {
    // Learning over 20 minutes: the hours before them need 20 minutes of their own, so
    // a model's first few minutes never stand for hours.
    let mut sim = Sim::quick();
    let ranker = Traffic::steady(10, 20.0);
    sim.run(30 * 60, &[("ranker", ranker)]);
    let b = sim.baseline("ranker");
    assert!(b.ready && b.earlier.is_none(), "{b:?}");
    sim.run(15 * 60, &[("ranker", ranker)]);
    let b = sim.baseline("ranker");
    let earlier = b.earlier.as_deref().expect("known after 45 min");
    assert!(earlier.ready && earlier.over_s >= 20 * 60, "{earlier:?}");
    assert!(
        (0..5 * 60_000).contains(&(b.from_ms - earlier.to_ms)),
        "the span right before the last one, in whole 5 minutes"
    );
    assert!(
        earlier
            .explanation
            .contains("of the 5 h before the last 20 min"),
        "{}",
        earlier.explanation
    );
}

#[test]
fn a_step_just_short_of_the_factor_and_a_two_mode_models_slower_hits_are_no_creep() {
    // A new version 2.85 × slower at the same traffic: short of the factor, and levelled
    // out by the time the last hour's median follows it. A cache's hits 1.6 × slower
    // after a deploy, its misses as before: its slow minutes set its limit, which the
    // hours before (kept per 5 minutes) cannot tell. Neither is a creep: the hours
    // before add no alert to what the last hour alone judges.
    let mut sims = with_and_without_the_hours_before();
    let ranker = Traffic::steady(10, 20.0);
    let cached = Traffic::steady(10, 20.0).two_modes(0.04, 400.0);
    let hits = |f: f64| Traffic {
        median_ms: 20.0 * f,
        ..cached
    };
    for sim in &mut sims {
        sim.run(2 * 3600, &[("ranker", ranker), ("cached", cached)]);
        sim.run(
            3 * 3600,
            &[("ranker", ranker.slower(2.85)), ("cached", hits(1.6))],
        );
    }
    let told = told_against_the_hours_before(&sims[0]);
    assert!(told.is_empty(), "{told:?}");
    assert_eq!(fired_list(&sims[0]), fired_list(&sims[1]));
}

#[test]
fn a_model_whose_slow_share_grows_for_hours_is_not_taken_for_a_creep() {
    // A cache whose misses go from 4 % to 8 % of the requests over four hours, its hits
    // a tenth slower: its p95 moves from the fast mode into the slow one, its median
    // hardly at all. Nothing crept up: the hours before add no alert to what the last
    // hour alone judges (which, at 4 %, sees the slow mode in too few minutes to know
    // it, and fires now and then: a weakness of its own, compared here as it is).
    let mut sims = with_and_without_the_hours_before();
    let cached = |share: f64, hits: f64| Traffic::steady(10, 20.0 * hits).two_modes(share, 400.0);
    for sim in &mut sims {
        sim.run(2 * 3600, &[("cached", cached(0.04, 1.0))]);
        for minute in 0..4 * 60 {
            let f = f64::from(minute) / 240.0;
            sim.run(60, &[("cached", cached(0.04 + 0.04 * f, 1.0 + 0.1 * f))]);
        }
    }
    let told = told_against_the_hours_before(&sims[0]);
    assert!(told.is_empty(), "{told:?}");
    assert_eq!(
        fired_list(&sims[0]),
        fired_list(&sims[1]),
        "normal: {}",
        sims[0].baseline("cached").explanation
    );
}

#[test]
fn an_alert_that_fired_against_the_last_hour_resolves_against_it() {
    // A model crept up 2.4 × for an hour and a quarter (short of firing), then a bad
    // deploy makes it 10 × slower: that fires against the last hour. Rolled back to
    // where it had crept, it is well within the last hour's resolve level, though not
    // within the hours' before: the alert resolves, as the normal it fired against says.
    let mut sim = Sim::new("");
    let ranker = Traffic::steady(10, 20.0);
    sim.run(2 * 3600, &[("ranker", ranker)]);
    let mut crept = ranker;
    for minute in 0..75 {
        crept = ranker.slower(1.012_f64.powi(minute));
        sim.run(60, &[("ranker", crept)]);
    }
    assert!(sim.fired_since(0).is_empty(), "{:?}", fired_list(&sim));
    let t = sim.now_s;
    sim.run(3 * 60, &[("ranker", crept.slower(4.0))]);
    let fired = sim.fired_since(t);
    assert_eq!(fired.len(), 1, "{fired:?}");
    let (rule, model) = fired[0].clone();
    let why = |sim: &Sim, kind| {
        sim.sent
            .iter()
            .find(|(s, tr)| *s >= t && tr.kind == kind)
            .map(|(_, tr)| tr.alert.explanation.clone())
            .unwrap_or_default()
    };
    assert!(
        why(&sim, TransitionKind::Firing).ends_with("(last hour)"),
        "{}",
        why(&sim, TransitionKind::Firing)
    );
    let back = sim.now_s;
    sim.run(5 * 60, &[("ranker", crept)]);
    assert!(
        sim.seconds_to(back, &rule, &model, TransitionKind::Resolved)
            .is_some_and(|s| s < 120),
        "resolved once back where it had crept: {:?}",
        sim.active(&rule, &model)
    );
    let resolved = why(&sim, TransitionKind::Resolved);
    assert!(resolved.ends_with("(last hour)"), "{resolved}");
}

#[test]
fn a_model_slower_at_its_busy_hours_stays_quiet() {
    // At its busy hours a model gets three times the traffic and queues: over four hours
    // its answers take up to 4.5 × as long as at night, then calm down again. Its callers
    // made that, and it comes back every day: no alert.
    let mut sim = Sim::new("");
    let night = Traffic::steady(10, 20.0);
    sim.run(2 * 3600, &[("ranker", night)]);
    for minute in 0..8 * 60 {
        let day = 0.5 - 0.5 * (f64::from(minute) / 240.0 * std::f64::consts::PI).cos();
        let busy = Traffic {
            rps: (10.0 * (1.0 + 2.0 * day)).round() as u32,
            ..night.slower(1.0 + 3.5 * day)
        };
        sim.run(60, &[("ranker", busy)]);
    }
    assert!(
        sim.fired_since(0).is_empty(),
        "{:?}; normal: {}",
        fired_list(&sim),
        sim.baseline("ranker").explanation
    );
}

#[test]
fn a_late_first_token_is_a_ttfb_regression_against_the_models_own_normal() {
    let mut sim = Sim::quick();
    // An LLM: first token after ~300 ms, then ~3 s of tokens; and a classifier.
    let llm = Traffic {
        rps: 6,
        per_minute: None,
        median_ms: 3000.0,
        sigma: 0.35,
        error_share: 0.002,
        ttfb_ms: None,
        slow: None,
    }
    .streaming(300.0);
    let iris = Traffic::steady(20, 4.0);
    sim.run(8 * 60, &[("llm", llm), ("iris", iris)]);
    let b = sim.baseline("llm");
    let normal = b.ttfb_p95_ms.expect("a first-byte normal");
    // A log-normal's p95 at σ 0.35 is 1.78 × its median (534 ms), read off the rings'
    // buckets.
    assert!((450.0..800.0).contains(&normal), "TTFB p95 normal {normal}");
    assert!(b.explanation.contains("TTFB p95"), "{}", b.explanation);
    assert_eq!(
        sim.baseline("iris").ttfb_p95_ms,
        None,
        "iris does not stream"
    );
    // Five quiet minutes more: its own noise is no incident.
    sim.run(5 * 60, &[("llm", llm), ("iris", iris)]);
    assert!(sim.fired_since(0).is_empty(), "{:?}", fired_list(&sim));

    // A queue fills in front of it: the first token comes after ~2 s, while whole
    // answers take 5 s instead of 3 (too little for a latency regression).
    let t = sim.now_s;
    sim.run(60, &[("llm", llm.streaming(2000.0)), ("iris", iris)]);
    let firing = sim
        .seconds_to(t, "ttfb_regression", "llm", TransitionKind::Firing)
        .expect("ttfb_regression fired");
    assert!(firing <= 45, "fired after {firing} s");
    let fired = sim
        .sent
        .iter()
        .find(|(_, x)| x.alert.rule == "ttfb_regression" && x.kind == TransitionKind::Firing)
        .map(|(_, x)| x.alert.explanation.clone())
        .unwrap_or_default();
    assert!(
        fired.starts_with("TTFB p95 ") && fired.contains("its normal"),
        "{fired}"
    );
    eprintln!("ttfb_regression fired {firing} s after the first token slowed: {fired}");
    assert_eq!(
        fired_list(&sim).keys().collect::<Vec<_>>(),
        [&("ttfb_regression".to_owned(), "llm".to_owned())],
        "only the first token regressed"
    );
    // Back to normal: it resolves.
    let t = sim.now_s;
    sim.run(90, &[("llm", llm), ("iris", iris)]);
    assert!(
        sim.seconds_to(t, "ttfb_regression", "llm", TransitionKind::Resolved)
            .is_some(),
        "resolved"
    );
}

#[test]
fn an_incident_does_not_become_the_new_normal() {
    let mut sim = Sim::quick();
    let fast = Traffic::steady(20, 4.0);
    sim.run(8 * 60, &[("iris", fast)]);
    let before = sim.baseline("iris").p95_ms.expect("learnt");
    // Twenty minutes slow: the whole learning window.
    let t = sim.now_s;
    sim.run(20 * 60, &[("iris", fast.slower(50.0))]);
    assert_eq!(
        sim.active("latency_regression", "iris"),
        Some(AlertPhase::Firing),
        "still firing after 20 min: the slow minutes were left out"
    );
    let during = sim.baseline("iris");
    assert!(during.held, "{}", during.explanation);
    let p95 = during.p95_ms.expect("still known");
    assert!(
        (p95 - before).abs() / before < 0.25,
        "normal {p95} vs {before} before: {}",
        during.explanation
    );
    assert!(
        during
            .explanation
            .contains("kept while incidents fill the recent history"),
        "{}",
        during.explanation
    );
    let fired = sim.fired_since(t);
    assert_eq!(fired.len(), 1, "one alert, not a storm: {fired:?}");
    // A shorter incident is left out of a normal that is still learnt afresh.
    let mut sim = Sim::quick();
    sim.run(8 * 60, &[("iris", fast)]);
    sim.run(4 * 60, &[("iris", fast.slower(50.0))]);
    sim.run(6 * 60, &[("iris", fast)]);
    let after = sim.baseline("iris");
    assert!(!after.held && after.excluded_s >= 4 * 60, "{after:?}");
    assert!(
        after.explanation.contains("of incidents and outages"),
        "{}",
        after.explanation
    );
    let p95 = after.p95_ms.expect("learnt");
    assert!((p95 - before).abs() / before < 0.25, "{p95} vs {before}");
    // Nor its slow mode: none of its requests are in the high either.
    let high = after.p95_high_ms;
    assert!(
        high.is_some_and(|h| h < 2.0 * before),
        "{high:?} vs {before}"
    );
}

#[test]
fn a_broker_outage_makes_figures_unknown_with_one_alert_about_the_monitor() {
    let mut sim = Sim::quick();
    let models = [
        ("a", Traffic::steady(20, 5.0)),
        ("b", Traffic::steady(10, 8.0)),
        ("c", Traffic::steady(5, 30.0)),
    ];
    sim.run(8 * 60, &models);
    assert!(sim.baseline("c").qps.is_some(), "traffic_drop is armed");
    let t = sim.now_s;
    sim.broker = BrokerState::Down;
    sim.run(60, &models);
    sim.broker = BrokerState::Connected;
    sim.run(90, &models);
    let fired = sim.fired_since(t);
    assert_eq!(
        fired,
        [("broker_down".to_owned(), String::new())],
        "one alert, about the monitor; no traffic_drop"
    );
    let down = sim.seconds_to(t, "broker_down", "", TransitionKind::Firing);
    assert_eq!(down, Some(10), "after the 10-s grace");
    assert!(
        sim.seconds_to(t, "broker_down", "", TransitionKind::Resolved)
            .is_some_and(|s| (60..=62).contains(&s)),
        "resolved once connected again"
    );
    let why = &sim
        .sent
        .iter()
        .find(|(_, t)| t.alert.rule == "broker_down")
        .map(|(_, t)| t.alert.explanation.clone())
        .unwrap_or_default();
    assert!(
        why.starts_with("no connection to the broker for 10 s"),
        "{why}"
    );
    // Counts resumed: the last view has traffic for every model again.
    for (m, _) in models {
        let mv = sim.last.model(m).expect("the model");
        assert!(
            mv.series.iter().rev().take(10).any(|p| p.requests > 0),
            "{m}"
        );
    }
}

#[test]
fn a_source_dropping_events_is_one_alert_naming_it() {
    let mut sim = Sim::quick();
    let m = [("iris", Traffic::steady(10, 4.0))];
    sim.run(30, &m);
    sim.dropped = 512;
    sim.run(5, &m);
    let fired = sim.fired_since(0);
    assert_eq!(fired, [("source_dropping".to_owned(), String::new())]);
    let why = sim
        .alerts
        .view()
        .monitor()
        .next()
        .map(|a| a.explanation.clone())
        .unwrap_or_default();
    assert!(
        why.starts_with("proxy/edge-1/42 dropped 512 events in the last 60 s"),
        "{why}"
    );
    // A minute without drops resolves it.
    sim.run(70, &m);
    assert!(
        sim.alerts
            .view()
            .monitor()
            .all(|a| a.state == AlertPhase::Resolved)
    );
}

#[test]
fn a_model_always_over_its_slo_still_learns_its_normal() {
    // The team's limit is 500 ms; the LLM's own normal is seconds. The SLO alert fires
    // and stays firing, which is right; its minutes are not "incidents" to leave out of
    // the normal, or the model would never get one.
    let mut sim = Sim::new(&format!(
        "{QUICK}\n[[alerts.rules]]\nname = \"p95_slo\"\nmodels = [\"llm\"]\nmetric = \"p95_ms\"\nthreshold = 500.0\nfor = \"30s\"\n"
    ));
    let llm = Traffic {
        rps: 4,
        per_minute: None,
        median_ms: 900.0,
        sigma: 0.6,
        error_share: 0.01,
        ttfb_ms: None,
        slow: None,
    };
    sim.run(8 * 60, &[("llm", llm)]);
    assert_eq!(sim.active("p95_slo", "llm"), Some(AlertPhase::Firing));
    let b = sim.baseline("llm");
    assert!(b.ready && b.excluded_s == 0, "{b:?}");
    assert_eq!(fired_list(&sim).len(), 1, "{:?}", fired_list(&sim));
}

#[test]
fn a_dead_models_traffic_drop_stays_firing_across_a_restart() {
    let mut sim = Sim::quick();
    let iris = Traffic::steady(20, 4.0);
    let bert = Traffic::steady(15, 16.0);
    sim.run(8 * 60, &[("iris", iris), ("bert", bert)]);
    sim.run(60, &[("iris", iris), ("bert", bert.silent())]);
    assert_eq!(sim.active("traffic_drop", "bert"), Some(AlertPhase::Firing));
    // Restarted while bert is still dead: it sends nothing afterwards either.
    sim.restart(20);
    let t = sim.now_s;
    sim.run(150, &[("iris", iris), ("bert", bert.silent())]);
    assert_eq!(
        sim.seconds_to(t, "traffic_drop", "bert", TransitionKind::Resolved),
        None,
        "not resolved while it is still dead"
    );
    assert_eq!(sim.active("traffic_drop", "bert"), Some(AlertPhase::Firing));
    assert!(sim.fired_since(t).is_empty(), "{:?}", sim.fired_since(t));
    // It sends again: resolved.
    sim.run(90, &[("iris", iris), ("bert", bert)]);
    assert!(
        sim.seconds_to(t, "traffic_drop", "bert", TransitionKind::Resolved)
            .is_some()
    );
}

#[test]
fn a_model_that_appears_while_the_monitor_runs_learns_its_normal_from_then_on() {
    let mut sim = Sim::quick();
    let a = Traffic::steady(20, 4.0);
    let b = Traffic::steady(10, 8.0);
    sim.run(20 * 60, &[("a", a)]);
    assert!(sim.baseline("a").ready);
    // b starts: the 20 minutes before it existed are no history of 0 requests.
    sim.run(60, &[("a", a), ("b", b)]);
    let nb = sim.baseline("b");
    assert!(!nb.ready, "{nb:?}");
    assert_eq!(nb.qps, None, "no normal of 0 req/s");
    assert!(
        nb.explanation.starts_with("learning:"),
        "{}",
        nb.explanation
    );
    // Once it has its own minutes (5 min of history, 2 min left out as recent), it is
    // judged on them.
    sim.run(9 * 60, &[("a", a), ("b", b)]);
    let nb = sim.baseline("b");
    assert!(nb.ready, "{}", nb.explanation);
    let q = nb.qps.expect("a traffic normal");
    assert!((9.0..=11.0).contains(&q), "b's normal qps {q}");
}

/// The explanation of the active `rule` alert on `model`.
fn why_now(sim: &Sim, rule: &str, model: &str) -> String {
    sim.alerts
        .active()
        .find(|a| a.rule == rule && a.model == model)
        .map(|a| a.explanation.clone())
        .unwrap_or_default()
}

#[test]
fn a_model_failing_from_its_first_minutes_is_caught_although_failure_is_its_normal() {
    let mut sim = Sim::quick();
    // iris answers 503 to every request from its first second on (or the monitor
    // started, without a snapshot, in the middle of that outage); fraud is healthy.
    let dead = Traffic::steady(20, 4.0).failing(1.0);
    let fraud = Traffic::steady(20, 3.0);
    sim.run(12 * 60, &[("iris", dead), ("fraud", fraud)]);
    let b = sim.baseline("iris");
    assert!(b.ready, "{}", b.explanation);
    assert!(
        b.error_rate.is_some_and(|e| e > 0.99),
        "the failure is its learnt normal: {b:?}"
    );
    assert_eq!(
        fired_list(&sim).into_keys().collect::<Vec<_>>(),
        [("most_requests_failing".to_owned(), "iris".to_owned())],
        "one alert, on iris"
    );
    let fired = sim
        .seconds_to(T0, "most_requests_failing", "iris", TransitionKind::Firing)
        .expect("fired");
    assert!(fired <= 75, "fired after {fired} s");
    let why = why_now(&sim, "most_requests_failing", "iris");
    assert!(
        why.starts_with("100 % errors (")
            && why.contains("above its limit 50 % for any model, whatever its own normal (100 %"),
        "{why}"
    );
    // fraud fails outright after its normal is learnt: error_spike tells, alone.
    let t = sim.now_s;
    sim.run(3 * 60, &[("iris", dead), ("fraud", fraud.failing(1.0))]);
    assert_eq!(
        sim.fired_since(t),
        [("error_spike".to_owned(), "fraud".to_owned())],
        "one alert for one incident"
    );
    assert!(
        why_now(&sim, "most_requests_failing", "fraud").is_empty(),
        "not even pending beside error_spike"
    );
    // iris is repaired: it resolves.
    sim.run(90, &[("iris", dead.failing(0.002)), ("fraud", fraud)]);
    assert!(
        sim.seconds_to(t, "most_requests_failing", "iris", TransitionKind::Resolved)
            .is_some()
    );
}

#[test]
fn a_restart_in_a_long_incident_neither_resolves_it_nor_learns_it_as_normal() {
    let mut sim = Sim::quick();
    let fast = Traffic::steady(20, 4.0);
    sim.run(8 * 60, &[("iris", fast)]);
    let before = sim.baseline("iris").p95_ms.expect("learnt");
    // Slow for the whole learning window, then the monitor restarts, the fault going on.
    sim.run(20 * 60, &[("iris", fast.slower(50.0))]);
    assert_eq!(
        sim.active("latency_regression", "iris"),
        Some(AlertPhase::Firing)
    );
    sim.restart(20);
    let t = sim.now_s;
    sim.run(10 * 60, &[("iris", fast.slower(50.0))]);
    assert_eq!(
        sim.seconds_to(t, "latency_regression", "iris", TransitionKind::Resolved),
        None,
        "not resolved while the fault persists: {:?}",
        why_now(&sim, "latency_regression", "iris")
    );
    assert_eq!(
        sim.active("latency_regression", "iris"),
        Some(AlertPhase::Firing)
    );
    let b = sim.baseline("iris");
    assert!(b.held, "{}", b.explanation);
    let p95 = b.p95_ms.expect("the normal from before the restart");
    assert!(
        (p95 - before).abs() / before < 0.25,
        "{p95} vs {before}: {}",
        b.explanation
    );
    assert!(sim.fired_since(t).is_empty(), "{:?}", sim.fired_since(t));
    // Repaired: judged against that normal, it resolves.
    sim.run(2 * 60, &[("iris", fast)]);
    assert!(
        sim.seconds_to(t, "latency_regression", "iris", TransitionKind::Resolved)
            .is_some(),
        "resolved once fast again: {}",
        why_now(&sim, "latency_regression", "iris")
    );

    // From an alerts file without normals (an earlier version's): no normal to judge
    // against, and a firing alert without one holds rather than resolving.
    let mut sim = Sim::quick();
    sim.run(8 * 60, &[("iris", fast)]);
    sim.run(20 * 60, &[("iris", fast.slower(50.0))]);
    sim.restart_from(20, false);
    let t = sim.now_s;
    sim.run(10 * 60, &[("iris", fast.slower(50.0))]);
    assert!(!sim.baseline("iris").ready, "{:?}", sim.baseline("iris"));
    assert_eq!(
        sim.seconds_to(t, "latency_regression", "iris", TransitionKind::Resolved),
        None,
        "not resolved for want of a normal: {:?}",
        why_now(&sim, "latency_regression", "iris")
    );
    let why = why_now(&sim, "latency_regression", "iris");
    assert!(why.contains("its normal is still being learnt"), "{why}");
    // Still slow `learn` after it was last seen bad: no longer judged, and it says so,
    // with no figure, rather than reading like a recovery.
    sim.run(12 * 60, &[("iris", fast.slower(50.0))]);
    let resolved: Vec<_> = sim
        .sent
        .iter()
        .filter(|(s, x)| {
            *s >= t && x.alert.rule == "latency_regression" && x.kind == TransitionKind::Resolved
        })
        .map(|(s, x)| (s - t, x.alert.clone()))
        .collect();
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    let (after, a) = &resolved[0];
    assert!(*after > 10 * 60, "resolved {after} s after the restart");
    assert_eq!(a.value, None, "{a:?}");
    assert!(
        a.explanation.starts_with("no longer judged: p95 ")
            && a.explanation.contains("its normal is still being learnt"),
        "{}",
        a.explanation
    );
}

#[test]
fn a_quiet_models_errors_are_one_alert_and_judged_below_one_request_a_second() {
    // 0.7 req/s: about 21 requests in 30 s, around the 20 an error rate needs.
    let mut sim = Sim::quick();
    let quiet = Traffic::quiet(42, 20.0);
    sim.run(8 * 60, &[("quiet", quiet)]);
    assert!(sim.baseline("quiet").ready);
    let t = sim.now_s;
    sim.run(30 * 60, &[("quiet", quiet.failing(1.0))]);
    let told: Vec<(i64, TransitionKind)> = sim
        .sent
        .iter()
        .filter(|(s, x)| *s >= t && x.alert.rule == "error_spike")
        .map(|(s, x)| (s - t, x.kind))
        .collect();
    assert_eq!(
        told.iter().map(|(_, k)| *k).collect::<Vec<_>>(),
        [TransitionKind::Firing],
        "one alert for half an hour of it, no resolve while it fails: {told:?}"
    );
    assert!(told[0].0 <= 60, "fired after {} s", told[0].0);
    assert_eq!(
        fired_list(&sim).len(),
        1,
        "nothing else: {:?}",
        fired_list(&sim)
    );
    // 0.3 req/s: 9 requests in 30 s, judged over long enough to expect 30.
    let mut sim = Sim::quick();
    let quieter = Traffic::quiet(18, 20.0);
    sim.run(8 * 60, &[("quieter", quieter)]);
    let t = sim.now_s;
    sim.run(5 * 60, &[("quieter", quieter.failing(1.0))]);
    let fired = sim
        .seconds_to(t, "error_spike", "quieter", TransitionKind::Firing)
        .expect("error_spike fires at 0.3 req/s");
    assert!(fired <= 90, "fired after {fired} s");
    let why = why_now(&sim, "error_spike", "quieter");
    assert!(why.starts_with("100 % errors ("), "{why}");
}

#[test]
fn a_model_whose_slow_mode_is_too_rare_to_show_in_its_minutes_stays_quiet_for_hours() {
    // 4 % of its requests miss a cache at 10 req/s (4.5 % at 50 req/s): most minutes'
    // p95 is the fast mode's and too few are the slow one's to be learnt from the
    // minutes, but a minute's p95 gets there every few minutes by chance. Judged by the
    // minutes alone, the first fired 10 times in these three hours (and 17 in six), an
    // alert meaning nothing each time.
    // At 2 req/s, 2 % misses (under half a window's 5 %) still put a window's p95 among
    // them some 15 times a day (7 misses in its 120 requests): 5 alerts in these three
    // hours while a mode had to be half the figure's share.
    let cached = Traffic::steady(10, 20.0).two_modes(0.04, 400.0);
    let busy = Traffic::steady(50, 20.0).two_modes(0.045, 400.0);
    let seldom = Traffic::steady(2, 20.0).two_modes(0.02, 400.0);
    let mut sims = [Sim::new(""), Sim::new(""), Sim::new("")];
    let models = [("cached", cached), ("busy", busy), ("seldom", seldom)];
    for (sim, (model, traffic)) in sims.iter_mut().zip(models) {
        sim.run(3 * 3600, &[(model, traffic)]);
        let normal = sim.baseline(model).explanation;
        eprintln!("{model}: {:?}; {normal}", fired_list(sim));
        assert!(
            sim.fired_since(0).is_empty(),
            "{:?}; {normal}",
            fired_list(sim)
        );
        assert!(normal.contains("(slow mode "), "{normal}");
    }
    // Still judged: its hits 4 × slower move its median, one alert within the minute.
    let sim = &mut sims[0];
    let t = sim.now_s;
    sim.run(
        60,
        &[(
            "cached",
            Traffic {
                median_ms: 80.0,
                ..cached
            },
        )],
    );
    let fired = sim.fired_since(t);
    assert_eq!(
        fired,
        [("median_latency_regression".to_owned(), "cached".to_owned())],
    );

    // 1 % misses: a window's p95 never gets there by chance, and is judged as a model
    // with one mode: its misses going to 8 % (its p95 into the slow mode) fire. (This
    // guards the other way: a chance share taken too large would hide it.)
    let mut sim = Sim::new("");
    let rare = Traffic::steady(10, 20.0).two_modes(0.01, 400.0);
    sim.run(75 * 60, &[("rare", rare)]);
    let normal = sim.baseline("rare").explanation;
    assert!(!normal.contains("slow mode"), "{normal}");
    let t = sim.now_s;
    sim.run(60, &[("rare", rare.two_modes(0.08, 400.0))]);
    assert_eq!(
        sim.fired_since(t),
        [("latency_regression".to_owned(), "rare".to_owned())],
        "{normal}"
    );
}

#[test]
fn a_slow_mode_that_takes_more_of_the_requests_fires_once_it_stays() {
    // A learnt slow mode raises the p95's limit past it, so a window's p95 landing there
    // now and then is no incident. But the slow path taking 2.5 × more of the requests
    // (a cache whose misses went from 4 % to 10 %) puts the p95 there minute after
    // minute while the median does not move: an incident no limit past the slow mode
    // sees. It fires once it has stayed longer than chance keeps it there, says so,
    // stays firing on its minutes, and resolves when the share is back.
    let cached = Traffic::steady(10, 20.0).two_modes(0.04, 400.0);
    let (mut sim, baseline) = quiet_with_its_slow_mode("cached", cached);
    let t = sim.now_s;
    sim.run(20 * 60, &[("cached", cached.two_modes(0.10, 400.0))]);
    assert_eq!(
        sim.fired_since(t),
        [("latency_regression".to_owned(), "cached".to_owned())],
        "{baseline}"
    );
    let after = sim
        .seconds_to(t, "latency_regression", "cached", TransitionKind::Firing)
        .unwrap_or(0);
    // Five minutes at least: what a chance cluster of misses lasts is no stay.
    assert!(after >= 5 * 60, "fired after {after} s");
    let why = sim.first_fired_why(t);
    assert!(
        why.starts_with("p95 ") && why.contains("its normal") && why.contains("of the last"),
        "{why}"
    );
    eprintln!("cached: fired after {after} s: {why}");
    // A long one stays one alert: its minutes are left out of the normal from the first
    // of them (learnt, they would become the normal in under an hour), and a restart
    // in the middle holds it.
    let t = sim.now_s;
    sim.run(40 * 60, &[("cached", cached.two_modes(0.10, 400.0))]);
    sim.restart(10);
    sim.run(40 * 60, &[("cached", cached.two_modes(0.10, 400.0))]);
    let moved: Vec<_> = sim.sent.iter().filter(|(s, _)| *s >= t).collect();
    assert!(moved.is_empty(), "{moved:?}");
    assert_eq!(
        sim.active("latency_regression", "cached"),
        Some(AlertPhase::Firing)
    );
    back_to_its_share(&mut sim, "cached", cached);

    // At 2 req/s, 1 % misses are learnt as a slow mode too (a window reaches it by
    // chance), with a limit inside it: their share going to 8 % takes a live window's
    // p95 past it and back from second to second, and fires (and may resolve once)
    // before the stay holds; from then on it is judged on its minutes and stays firing.
    let seldom = Traffic::steady(2, 20.0).two_modes(0.01, 400.0);
    let (mut sim, _) = quiet_with_its_slow_mode("seldom", seldom);
    let t = sim.now_s;
    sim.run(20 * 60, &[("seldom", seldom.two_modes(0.08, 400.0))]);
    let fired = sim.fired_since(t);
    assert!(
        (1..=2).contains(&fired.len()) && fired.iter().all(|(r, _)| r == "latency_regression"),
        "{fired:?}"
    );
    let settled = sim.sent.iter().filter(|(s, tr)| {
        *s >= t + 10 * 60 && tr.kind == TransitionKind::Resolved && tr.alert.model == "seldom"
    });
    assert_eq!(settled.count(), 0, "{:?}", fired_list(&sim));
    assert_eq!(
        sim.active("latency_regression", "seldom"),
        Some(AlertPhase::Firing)
    );
    back_to_its_share(&mut sim, "seldom", seldom);
}

#[test]
fn a_slow_spell_that_comes_every_hour_is_no_stay() {
    // An hourly batch job sends the misses of a cached model from 4 % to 12 % for ten
    // minutes: its p95 is in the slow mode that long every hour. Its normal, not a stay:
    // the first one fires, and once the last six hours hold one, none does.
    let cached = Traffic::steady(10, 20.0).two_modes(0.04, 400.0);
    let mut sim = Sim::new("");
    let hourly = |sim: &mut Sim| {
        sim.run(50 * 60, &[("cached", cached)]);
        sim.run(10 * 60, &[("cached", cached.two_modes(0.12, 400.0))]);
    };
    hourly(&mut sim);
    // The first spell is news: it fires.
    assert_eq!(
        sim.fired_since(0),
        [("latency_regression".to_owned(), "cached".to_owned())]
    );
    let t = sim.now_s;
    for _ in 0..6 {
        hourly(&mut sim);
    }
    let b = sim.baseline("cached");
    assert!(b.earlier.is_some(), "{}", b.explanation);
    assert!(
        sim.fired_since(t).is_empty(),
        "{:?}; {}",
        sim.fired_since(t),
        b.explanation
    );
    // A spell three times as long is a stay.
    let t = sim.now_s;
    sim.run(50 * 60, &[("cached", cached)]);
    sim.run(30 * 60, &[("cached", cached.two_modes(0.12, 400.0))]);
    assert_eq!(
        sim.fired_since(t),
        [("latency_regression".to_owned(), "cached".to_owned())]
    );
}

/// 90 quiet minutes of `model`: no alert, and a baseline (its sentence) that learnt its
/// slow mode.
fn quiet_with_its_slow_mode(model: &str, traffic: Traffic) -> (Sim, String) {
    let mut sim = Sim::new("");
    sim.run(90 * 60, &[(model, traffic)]);
    let baseline = sim.baseline(model).explanation;
    assert!(sim.fired_since(0).is_empty(), "{:?}", fired_list(&sim));
    assert!(baseline.contains("(slow mode "), "{baseline}");
    (sim, baseline)
}

/// The share back to `normal`: the stay's alert resolves, and stays quiet for half an
/// hour.
fn back_to_its_share(sim: &mut Sim, model: &str, normal: Traffic) {
    let t = sim.now_s;
    sim.run(30 * 60, &[(model, normal)]);
    let resolved = sim.seconds_to(t, "latency_regression", model, TransitionKind::Resolved);
    assert!(
        resolved.is_some(),
        "{model}: still {:?}",
        sim.active("latency_regression", model)
    );
    eprintln!("{model}: resolved {resolved:?} s after the share was back");
    let quiet = sim.now_s;
    sim.run(30 * 60, &[(model, normal)]);
    assert!(
        sim.fired_since(quiet).is_empty(),
        "{model}: {:?}",
        sim.fired_since(t)
    );
}

#[test]
fn a_quiet_models_long_tail_is_not_taken_for_a_slow_mode() {
    // 30 requests a minute spread widely (its p95 5 × its median), and one 30 × slower
    // than its median in 300 requests: a window of 30 reaches its hour's slowest few now
    // and then. They are a long tail, not a mode: 4 × slower is an incident. (Both also
    // fire now and then while nothing changed, as they did before: a p95 of 30 requests
    // is their two slowest.)
    let mut sim = Sim::new("");
    let spread = Traffic {
        sigma: 1.0,
        ..Traffic::quiet(30, 100.0)
    };
    let timeouts = Traffic::quiet(30, 100.0).two_modes(0.003, 3000.0);
    sim.run(90 * 60, &[("spread", spread), ("timeouts", timeouts)]);
    // The p95 limit of each stays near 3 × its normal (the spread one's slowest minutes
    // reach some 2 × it anyway); its hour's slowest few would make it 8 ×.
    for model in ["spread", "timeouts"] {
        let b = sim.baseline(model);
        let (normal, high) = (b.p95_ms.unwrap_or(0.0), b.p95_high_ms.unwrap_or(f64::MAX));
        assert!(high < 2.5 * normal, "{model}: {}", b.explanation);
    }
    let timeouts_normal = sim.baseline("timeouts").explanation;
    assert!(!timeouts_normal.contains("slow mode"), "{timeouts_normal}");
    sim.run(
        3 * 60,
        &[
            ("spread", spread.slower(4.0)),
            ("timeouts", timeouts.slower(4.0)),
        ],
    );
    for model in ["spread", "timeouts"] {
        let firing = ["latency_regression", "median_latency_regression"]
            .iter()
            .any(|rule| sim.active(rule, model) == Some(AlertPhase::Firing));
        assert!(firing, "{model}: {:?}", fired_list(&sim));
    }
}

/// Batch clients, one a model: each sends 60 requests in 3 s, then nothing for a time
/// drawn anew each time from its `(shortest, longest)` seconds; between its bursts the
/// model is silent, and that is its normal. `beside`: other models' traffic.
fn batch_clients(
    sim: &mut Sim,
    secs: i64,
    clients: &[(&str, (i64, i64))],
    beside: &[(&str, Traffic)],
) {
    let burst = Traffic::steady(20, 50.0);
    // When each client's next burst starts.
    let mut next: Vec<i64> = clients.iter().map(|_| sim.now_s).collect();
    for _ in 0..secs {
        let mut traffic = beside.to_vec();
        for (i, &(model, (shortest, longest))) in clients.iter().enumerate() {
            let since = sim.now_s - next[i];
            traffic.push((
                model,
                if (0..3).contains(&since) {
                    burst
                } else {
                    burst.silent()
                },
            ));
            if since == 2 {
                let pause = shortest + (sim.uniform() * (longest - shortest) as f64) as i64;
                next[i] = sim.now_s + 1 + pause;
            }
        }
        sim.second(&traffic);
    }
}

#[test]
fn a_batch_clients_pauses_are_no_traffic_drop_and_a_quiet_models_silence_is() {
    let mut sim = Sim::new("");
    // Under one request a second, a rate whose 20 requests take a fraction of a second
    // past a whole one (57.1 s).
    let quiet = Traffic::quiet(21, 40.0);
    // Most of `batch`'s minutes hold a burst; most of `nightly`'s hold none.
    let clients = [("batch", (57, 117)), ("nightly", (97, 197))];
    batch_clients(&mut sim, 3 * 3600, &clients, &[("quiet", quiet)]);
    assert_eq!(
        fired_list(&sim),
        BTreeMap::new(),
        "three hours of two batch clients' bursts and a quiet model"
    );
    for model in ["batch", "nightly"] {
        let b = sim.baseline(model);
        assert!(
            b.explanation.contains("× as uneven as steady traffic"),
            "{}",
            b.explanation
        );
    }
    assert_eq!(
        sim.baseline("quiet").qps_bursts,
        None,
        "independent requests"
    );
    // The quiet model's callers stop: its window (about a minute) expects 20 requests,
    // and none came.
    let from = sim.now_s;
    batch_clients(&mut sim, 300, &clients, &[("quiet", quiet.silent())]);
    let after = sim.seconds_to(from, "traffic_drop", "quiet", TransitionKind::Firing);
    assert!(after.is_some_and(|s| s <= 90), "{after:?}");
    assert_eq!(
        sim.fired_since(from).len(),
        1,
        "{:?}",
        sim.fired_since(from)
    );
}
