//! Rules that name a model's own measure (`ml.<key>.<stat>`) or one of its versions,
//! through the real store on a virtual clock: events are decoded and aggregated as they
//! are from the broker, and the engine reads each view the store builds.

use modelmon::alert::{
    Alert, AlertPhase, AlertState, RuleSet, Transition, TransitionKind, evaluate,
};
use modelmon::alert::{Sight, model_reading, show_number};
use modelmon::config::Config;
use modelmon::store::view::View;
use modelmon::store::{BrokerState, BrokerView, Store, StoreConfig};
use modelmon_contract::decode_batch;
use serde_json::{Value, json};

/// A Unix second on an hour boundary.
const T0: i64 = 1_800_000_000;
const MODEL: &str = "ranker";

/// The store, the engine and a clock, one second at a time.
struct Sim {
    store: Store,
    alerts: AlertState,
    rules: RuleSet,
    now_s: i64,
    /// Everything notified so far, with the second it happened.
    sent: Vec<(i64, Transition)>,
    last: View,
}

impl Sim {
    fn new(config: &str) -> Self {
        let cfg = Config::parse(config).expect("the config parses");
        cfg.validate(None).expect("and is valid");
        Self {
            store: Store::new(StoreConfig::default()),
            alerts: AlertState::new(RuleSet::new(&cfg.alerts).expect("rules build")),
            rules: RuleSet::new(&cfg.alerts).expect("rules build"),
            now_s: T0,
            sent: Vec::new(),
            last: View::default(),
        }
    }

    /// One second of `rps` requests of `MODEL`, the `i`th with `extra(i)`'s fields laid
    /// over a plain 10 ms answer, then one evaluation.
    fn second(&mut self, rps: u32, extra: &impl Fn(u32) -> Value) {
        let now_us = self.now_s * 1_000_000;
        let events: Vec<Value> = (0..rps)
            .map(|i| {
                let mut e = json!({"ts": now_us - 1_000_000 + i64::from(i) * 1_000_000 / i64::from(rps),
                                   "model": MODEL, "instance": "i-1", "method": "POST",
                                   "route": "/predict", "status": 200, "duration_us": 10_000});
                if let (Some(e), Value::Object(x)) = (e.as_object_mut(), extra(i)) {
                    e.extend(x);
                }
                e
            })
            .collect();
        if !events.is_empty() {
            let body = serde_json::to_vec(&json!({"v": 1,
                "source": {"kind": "proxy", "instance": "edge-1", "pid": 42},
                "dropped": 0, "events": events}))
            .expect("json");
            let d = decode_batch(&body, None, now_us).expect("a batch");
            assert!(d.rejects.is_empty(), "{:?}", d.rejects);
            self.store.apply(&d, now_us);
        }
        let view = self.store.view(
            now_us,
            BrokerView {
                state: BrokerState::Connected,
                ..BrokerView::default()
            },
        );
        for t in evaluate(&mut self.alerts, &view, self.now_s * 1000) {
            self.sent.push((self.now_s, t));
        }
        self.last = view;
        self.now_s += 1;
    }

    fn run(&mut self, secs: i64, rps: u32, extra: impl Fn(u32) -> Value) {
        for _ in 0..secs {
            self.second(rps, &extra);
        }
    }

    fn active(&self, rule: &str) -> Option<&Alert> {
        self.alerts.active().find(|a| a.rule == rule)
    }

    fn phase(&self, rule: &str) -> Option<AlertPhase> {
        self.active(rule).map(|a| a.state)
    }

    /// The first notification of `kind` for `rule` since second `from`, with its second.
    fn sent_since(&self, from: i64, rule: &str, kind: TransitionKind) -> Option<(i64, &Alert)> {
        self.sent
            .iter()
            .find(|(s, t)| *s >= from && t.kind == kind && t.alert.rule == rule)
            .map(|(s, t)| (*s, &t.alert))
    }

    /// What `rule` reads of `MODEL` in the latest view.
    fn reading(&mut self, rule: &str) -> modelmon::alert::Reading {
        let rules = self.rules.for_model(MODEL);
        let rule = rules
            .iter()
            .find(|r| r.name == rule)
            .expect("the rule applies to the model");
        let m = self.last.model(MODEL).expect("the model is in the view");
        let sight = Sight {
            now_ms: self.last.ts_ms,
            events_since_ms: Some(T0 * 1000),
            docker: false,
            docker_blind: false,
        };
        model_reading(rule, m, None, None, &sight, false)
    }
}

fn queue(us: u32) -> impl Fn(u32) -> Value {
    move |_| json!({"ml": {"queue_us": us, "batch_size": 8}})
}

const QUEUE_SLOW: &str = r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "queue_slow"
metric = "ml.queue_us.p95"
threshold = 100000.0
for = "1m"
"#;

#[test]
fn a_measure_rule_goes_pending_then_firing_then_resolved_with_its_figures() {
    let mut sim = Sim::new(QUEUE_SLOW);
    sim.run(90, 10, queue(20_000));
    assert!(sim.sent.is_empty());
    assert_eq!(sim.phase("queue_slow"), None);
    // The reading is the view's figure for the key, with the events it was judged on.
    let r = sim.reading("queue_slow");
    let q = &sim.last.model(MODEL).expect("the model").ml["queue_us"];
    assert!((590..=600).contains(&q.count), "{}", q.count);
    let p95 = q.p95.expect("a p95");
    assert!((p95 - 20_000.0).abs() <= 200.0, "within 1 %: {p95}");
    assert_eq!(r.value, Some(p95));
    assert_eq!(
        r.why,
        format!(
            "ml.queue_us p95 {} ({} events in 60 s), within its limit 100 000",
            show_number(p95),
            q.count
        )
    );

    // The queue grows to 240 ms: within seconds the window's p95 is past the limit.
    let bad_from = sim.now_s;
    sim.run(10, 10, queue(240_000));
    let pending = sim.active("queue_slow").expect("pending").clone();
    assert_eq!(pending.state, AlertPhase::Pending);
    assert_eq!(pending.metric.as_str(), "ml.queue_us.p95");
    assert!(sim.sent.is_empty(), "pending notifies nothing");

    // Firing once it has held for `for` (1 min), not before.
    sim.run(70, 10, queue(240_000));
    let (fired_s, fired) = sim
        .sent_since(bad_from, "queue_slow", TransitionKind::Firing)
        .expect("fired");
    assert_eq!(
        fired_s * 1000 - fired.active_since_ms,
        60_000,
        "fired once `for` had passed since pending began"
    );
    let v = fired.value.expect("a value");
    assert!(
        (v - 240_000.0).abs() <= 2_400.0,
        "p95 of 240 000 µs within 1 %: {v}"
    );
    assert_eq!((fired.threshold, fired.resolve), (100_000.0, 80_000.0));
    assert!(
        fired
            .explanation
            .starts_with(&format!("ml.queue_us p95 {} (", show_number(v)))
            && fired
                .explanation
                .ends_with(" events in 60 s), above its limit 100 000"),
        "{}",
        fired.explanation
    );
    // Written as its name wherever alerts travel (webhooks, --batch, the saved state).
    let json = serde_json::to_value(fired).expect("serialises");
    assert_eq!(json["metric"], "ml.queue_us.p95");
    let back: Alert = serde_json::from_value(json).expect("reads back");
    assert_eq!(back.metric, fired.metric);

    // Back to normal: resolved once the window's p95 is under `resolve` (80 % of the
    // threshold by default), i.e. once the slow events have left the live window (a
    // measure's window slides in steps of a sixth of it: 50 to 60 s back).
    let good_from = sim.now_s;
    sim.run(90, 10, queue(20_000));
    let (resolved_s, resolved) = sim
        .sent_since(good_from, "queue_slow", TransitionKind::Resolved)
        .expect("resolved");
    assert!(
        (50..=70).contains(&(resolved_s - good_from)),
        "resolved {} s after the queue recovered",
        resolved_s - good_from
    );
    assert!(
        resolved.value.is_some_and(|v| v < 80_000.0),
        "{:?}",
        resolved.value
    );
    assert_eq!(sim.phase("queue_slow"), None);
    assert_eq!(
        sim.alerts
            .view()
            .recent
            .iter()
            .map(|a| (a.rule.as_str(), a.state))
            .collect::<Vec<_>>(),
        [("queue_slow", AlertPhase::Resolved)]
    );
    let firings = sim
        .sent
        .iter()
        .filter(|(_, t)| t.kind == TransitionKind::Firing)
        .count();
    assert_eq!(firings, 1, "one incident, one firing");
}

#[test]
fn a_rate_rule_judges_the_sum_per_second() {
    let mut sim = Sim::new(
        r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "token_flood"
metric = "ml.tokens_out.rate"
threshold = 5000.0
for = "10s"
"#,
    );
    // 10 answers a second of 300 tokens: 3 000 tokens/s.
    sim.run(70, 10, |_| json!({"ml": {"tokens_out": 300}}));
    let r = sim.reading("token_flood");
    let t = &sim.last.model(MODEL).expect("the model").ml["tokens_out"];
    // The window's sum per second: its events (the newest second is still empty) over
    // its 60 s.
    assert_eq!(r.value, Some(t.sum / 60.0));
    assert_eq!(r.value, Some(t.rate_per_s));
    assert!(
        (2950.0..=3000.0).contains(&t.rate_per_s),
        "{}",
        t.rate_per_s
    );
    assert_eq!(
        r.why,
        format!(
            "ml.tokens_out rate {}/s ({} events in 60 s), within its limit 5000/s",
            show_number(t.rate_per_s),
            t.count
        )
    );
    assert!(sim.sent.is_empty());
    // 900 tokens each: past 5 000/s once enough of the window holds them.
    let from = sim.now_s;
    sim.run(60, 10, |_| json!({"ml": {"tokens_out": 900}}));
    let (_, fired) = sim
        .sent_since(from, "token_flood", TransitionKind::Firing)
        .expect("fired");
    let v = fired.value.expect("a value");
    assert!(v > 5000.0, "{v}");
    assert!(
        fired
            .explanation
            .starts_with(&format!("ml.tokens_out rate {}/s (", show_number(v)))
            && fired
                .explanation
                .ends_with(" events in 60 s), above its limit 5000/s"),
        "{}",
        fired.explanation
    );
}

const ANY_QUEUE: &str = r#"
[alerts]
builtin = false
# Fires on any value at all, 0 included: only "no value" keeps it quiet.
[[alerts.rules]]
name = "any_queue"
metric = "ml.queue_us.max"
threshold = -1.0
resolve = -1.0
for = "0s"
min_requests = 1
"#;

#[test]
fn a_measure_no_event_carries_is_no_data_not_zero() {
    let mut sim = Sim::new(ANY_QUEUE);
    // Traffic, but no event carries `ml`.
    sim.run(30, 10, |_| json!({}));
    assert!(sim.sent.is_empty(), "{:?}", sim.sent);
    let r = sim.reading("any_queue");
    assert_eq!(r.value, None, "unknown, not 0");
    assert_eq!(r.why, "no event carried ml.queue_us in the last 60 s");

    // Another key does not stand in for it.
    sim.run(5, 10, |_| json!({"ml": {"batch_size": 4}}));
    assert!(sim.sent.is_empty(), "{:?}", sim.sent);
    assert_eq!(sim.reading("any_queue").value, None);

    // An event that carries it, even as 0, is a value: the rule fires on it at once.
    let from = sim.now_s;
    sim.run(1, 1, |_| json!({"ml": {"queue_us": 0}}));
    let (_, fired) = sim
        .sent_since(from, "any_queue", TransitionKind::Firing)
        .expect("fired");
    assert_eq!(fired.value, Some(0.0));
    assert_eq!(
        fired.explanation,
        "ml.queue_us max 0 (1 events in 60 s), above its limit -1"
    );
}

#[test]
fn too_few_events_with_the_key_are_unknown() {
    let mut sim = Sim::new(QUEUE_SLOW);
    // 100 requests a window, only one in ten carries the key: 10 of the 20 needed.
    sim.run(10, 10, |i| {
        if i == 0 {
            json!({"ml": {"queue_us": 900_000}})
        } else {
            json!({})
        }
    });
    let r = sim.reading("queue_slow");
    assert_eq!(r.value, None);
    assert_eq!(
        r.why,
        "too few events with ml.queue_us to judge its p95 (10 in the last 60 s, 20 needed)"
    );
    assert_eq!(sim.phase("queue_slow"), None);
}

const CANARY: &str = r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "canary_slow"
metric = "p95_ms"
version = "v2"
threshold = 100.0
for = "10s"
# The same limit on the whole model, which the canary's few requests do not move.
[[alerts.rules]]
name = "slow"
metric = "p95_ms"
threshold = 100.0
for = "10s"
"#;

#[test]
fn a_version_rule_judges_that_version_alone() {
    let mut sim = Sim::new(CANARY);
    // 29 requests a second of v1 at 10 ms, one of v2 at 300 ms: the model's p95 is 10 ms.
    let rollout = |i: u32| {
        if i == 0 {
            json!({"version": "v2", "duration_us": 300_000})
        } else {
            json!({"version": "v1"})
        }
    };
    sim.run(60, 30, rollout);
    let (fired_s, fired) = sim
        .sent_since(T0, "canary_slow", TransitionKind::Firing)
        .expect("the canary's rule fired");
    assert!(
        fired.explanation.starts_with("version v2: p95 ")
            && fired.explanation.ends_with(", above its limit 100 ms"),
        "{}",
        fired.explanation
    );
    assert_eq!(
        (fired.active_since_ms / 1000 - T0, fired_s - T0),
        (19, 29),
        "pending at the 20th v2 request (one a second from the first), firing 10 s later"
    );
    assert_eq!(
        sim.sent_since(T0, "slow", TransitionKind::Firing)
            .map(|x| x.0),
        None,
        "the model as a whole is fast"
    );
    assert_eq!(sim.phase("slow"), None);

    // The canary is rolled back: its version leaves the window, unknown, then resolved.
    let from = sim.now_s;
    sim.run(90, 30, |_| json!({"version": "v1"}));
    assert!(
        sim.sent_since(from, "canary_slow", TransitionKind::Resolved)
            .is_some()
    );
    let r = sim.reading("canary_slow");
    assert_eq!(
        (r.value, r.why.as_str()),
        (None, "version v2: no request in the last 60 s")
    );
}

/// The error a config's text gets, from parsing or from validating.
fn config_error(toml: &str) -> String {
    match Config::parse(toml) {
        Err(e) => e,
        Ok(cfg) => cfg
            .validate(None)
            .expect_err("an invalid config")
            .to_string(),
    }
}

fn rule_with(lines: &str) -> String {
    format!("[alerts]\nbuiltin = false\n\n[[alerts.rules]]\nname = \"q\"\n{lines}")
}

#[test]
fn bad_measure_rules_are_config_errors_that_name_the_key() {
    // A key events could never send: the line, the key and why.
    let err = config_error(&rule_with(
        "metric = \"ml.Queue-us.p95\"\nthreshold = 1000.0\n",
    ));
    assert!(
        err.contains("line 6")
            && err.contains("metric = \"ml.Queue-us.p95\"")
            && err.contains("`Queue-us` is not an ml key"),
        "{err}"
    );
    let err = config_error(&rule_with("metric = \"ml.queue_us\"\nthreshold = 1000.0\n"));
    assert!(
        err.contains("line 6") && err.contains("write `ml.queue_us.p95`"),
        "{err}"
    );
    let err = config_error(&rule_with(
        "metric = \"ml.queue_us.p90\"\nthreshold = 1000.0\n",
    ));
    assert!(
        err.contains("line 6") && err.contains("`p90` is not a statistic of ml.queue_us"),
        "{err}"
    );
    let err = config_error(&rule_with("metric = \"queue_us\"\nthreshold = 1000.0\n"));
    assert!(
        err.contains("line 6") && err.contains("unknown metric `queue_us`"),
        "{err}"
    );

    // What the types accept but a measure cannot do: named with the rule.
    for (lines, says) in [
        (
            "metric = \"ml.queue_us.p95\"\nfactor = 3.0\n",
            "`factor` needs a metric with a baseline",
        ),
        (
            "metric = \"ml.queue_us.p95\"\nthreshold = 1.0\nwindow = \"5m\"\n",
            "ml measures use the live window",
        ),
        (
            "metric = \"ml.queue_us.p95\"\nthreshold = 1.0\nversion = \"v2\"\n",
            "`version` takes p50_ms, p95_ms, p99_ms or error_rate",
        ),
        (
            "metric = \"qps\"\nthreshold = 1.0\nversion = \"v2\"\n",
            "`version` takes p50_ms, p95_ms, p99_ms or error_rate",
        ),
        (
            "metric = \"error_rate\"\nthreshold = 0.1\nversion = \"v2\"\nwindow = \"1m\"\n",
            "a rule with `version` takes a fixed `threshold` over the live window",
        ),
    ] {
        let err = config_error(&rule_with(lines));
        assert!(
            err.contains("alerts.rules") && err.contains("rule `q`") && err.contains(says),
            "{lines}: {err}"
        );
    }
    // The built-in relative rules cannot be narrowed to a version: normals are per model.
    let err = config_error("[[alerts.rules]]\nname = \"error_spike\"\nversion = \"v2\"\n");
    assert!(
        err.contains("rule `error_spike`") && err.contains("no `factor`"),
        "{err}"
    );
}

const TTFT_SLOW: &str = r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "ttft_slow"
metric = "ttfb_p95_ms"
threshold = 800.0
for = "30s"
"#;

#[test]
fn a_time_to_first_token_rule_judges_the_streamed_answers_only() {
    let mut sim = Sim::new(TTFT_SLOW);
    // Every other answer streams, its first token after 300 ms; the rest carry none.
    let streamed = |ttfb_us: u64| {
        move |i: u32| {
            if i % 2 == 0 {
                json!({"ttfb_us": ttfb_us, "duration_us": 2_000_000})
            } else {
                json!({})
            }
        }
    };
    sim.run(60, 10, streamed(300_000));
    assert_eq!(sim.phase("ttft_slow"), None);
    let r = sim.reading("ttft_slow");
    assert!(
        r.why.starts_with("TTFB p95 ") && r.why.ends_with("within its limit 800 ms"),
        "{}",
        r.why
    );
    // The first token slows to 1.5 s: pending at once, firing 30 s later.
    let from = sim.now_s;
    sim.run(45, 10, streamed(1_500_000));
    let (_, fired) = sim
        .sent_since(from, "ttft_slow", TransitionKind::Firing)
        .expect("fired");
    let v = fired.value.expect("a value");
    assert!((v - 1500.0).abs() <= 1500.0 * 0.05, "p95 of 1.5 s: {v}");
    assert!(
        fired.explanation.starts_with("TTFB p95 "),
        "{}",
        fired.explanation
    );
    // A model with no streamed answer has no figure: unknown, not 0.
    let mut quiet = Sim::new(TTFT_SLOW);
    quiet.run(30, 10, |_| json!({}));
    let r = quiet.reading("ttft_slow");
    assert_eq!(r.value, None);
    assert!(r.why.contains("too few streamed answers"), "{}", r.why);
}
