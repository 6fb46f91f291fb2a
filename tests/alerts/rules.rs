//! Rule specs as a user writes them: the combinations the config refuses and what it says,
//! how specs naming a model stack up, and the sentences a rule's figures make.

use modelmon::alert::{
    AlertPhase, AlertState, AlertsSection, Baseline, Reading, RuleSet, Sight, Transition,
    TransitionKind, evaluate, model_reading,
};
use modelmon::config::Config;
use modelmon::store::View;
use modelmon::store::view::{ModelView, SeriesPoint, Stats};

use super::engine::view;

/// The error a config loads with; a config that loads fails the test.
fn refused(toml: &str) -> String {
    let cfg = Config::parse(toml).expect("the rules parse");
    cfg.validate(None)
        .expect_err("a config error at start")
        .to_string()
}

fn engine(toml: &str) -> AlertState {
    let cfg = Config::parse(toml).expect("the rules parse");
    cfg.validate(None).expect("and are valid");
    AlertState::new(RuleSet::new(&cfg.alerts).expect("rules build"))
}

/// `model` with 100 requests in the live window at this p95.
fn model(name: &str, p95_ms: f64) -> ModelView {
    ModelView {
        model: name.to_owned(),
        window_s: 60,
        stats: Stats {
            requests: 100,
            qps: 100.0 / 60.0,
            error_rate: Some(0.0),
            p50_ms: Some(p95_ms / 2.0),
            p95_ms: Some(p95_ms),
            p99_ms: Some(p95_ms * 1.5),
            ..Stats::default()
        },
        last_seen_ms_ago: Some(0),
        ..ModelView::default()
    }
}

/// Evaluates every second of `[from, to)` and gathers what was notified.
fn run(st: &mut AlertState, from: i64, to: i64, f: impl Fn(i64) -> View) -> Vec<Transition> {
    (from..to)
        .flat_map(|s| evaluate(st, &f(s), s * 1000))
        .collect()
}

fn explanation(st: &AlertState, rule: &str, model: &str) -> String {
    st.active()
        .find(|a| a.rule == rule && a.model == model)
        .map(|a| a.explanation.clone())
        .unwrap_or_default()
}

#[test]
fn a_written_threshold_is_never_turned_into_a_relative_rule_by_min_change() {
    let err = refused(
        "[[alerts.rules]]\nname = \"p95_slo\"\nmetric = \"p95_ms\"\nthreshold = 500.0\nmin_change = 50.0\n",
    );
    assert!(
        err.contains("rule `p95_slo`")
            && err.contains("`threshold`")
            && err.contains("min_change belongs to relative rules"),
        "{err}"
    );
    // Tuning a fixed rule's `min_change` would drop its limit just the same.
    let err = refused("[[alerts.rules]]\nname = \"high_latency\"\nmin_change = 50.0\n");
    assert!(
        err.contains("rule `high_latency`") && err.contains("belongs to relative rules"),
        "{err}"
    );
    // On a relative rule it is what it always was.
    engine("[[alerts.rules]]\nname = \"latency_regression\"\nmin_change = 50.0\n");
}

#[test]
fn an_error_rate_limit_written_as_a_percentage_is_refused() {
    for (toml, key) in [
        (
            "[[alerts.rules]]\nname = \"errors\"\nmetric = \"error_rate\"\nthreshold = 5.0\n",
            "`threshold`",
        ),
        (
            "[[alerts.rules]]\nname = \"high_error_rate\"\nthreshold = 1.0\n",
            "`threshold`",
        ),
        (
            "[[alerts.rules]]\nname = \"error_spike\"\nmin_change = 5.0\n",
            "`min_change`",
        ),
        (
            "[[alerts.rules]]\nname = \"errors\"\nmetric = \"error_rate\"\nthreshold = 0.05\nresolve = -0.01\n",
            "`resolve`",
        ),
    ] {
        let err = refused(toml);
        assert!(
            err.contains("error_rate is a fraction: 0.05 means 5 %") && err.contains(key),
            "{toml}: {err}"
        );
    }
    engine(
        "[[alerts.rules]]\nname = \"errors\"\nmetric = \"error_rate\"\nthreshold = 0.05\n\
         [[alerts.rules]]\nname = \"error_spike\"\nmin_change = 0.1\n",
    );
}

#[test]
fn factor_on_a_metric_without_a_normal_lists_every_metric_that_has_one() {
    let err = refused("[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu_percent\"\nfactor = 2.0\n");
    for metric in [
        "p95_ms",
        "ttfb_p50_ms",
        "ttfb_p95_ms",
        "ttfb_p99_ms",
        "error_rate",
        "qps",
    ] {
        assert!(err.contains(metric), "{metric} missing: {err}");
    }
}

#[test]
fn specs_naming_a_model_are_checked_as_that_model_stacks_them() {
    // Each alone would do, stacked they invert the hysteresis: a config error naming the
    // model and the rule, not a rule quietly missing its resolve at runtime.
    let err = refused(
        "[[alerts.rules]]\nname = \"high_latency\"\nmodels = [\"llm\"]\nthreshold = 300.0\n\
         [[alerts.rules]]\nname = \"high_latency\"\nmodels = [\"llm\", \"cnn\"]\nresolve = 450.0\n",
    );
    assert!(
        err.contains("model `llm`")
            && err.contains("rule `high_latency`")
            && err.contains("resolve must be at or below threshold"),
        "{err}"
    );
    // A fixed threshold for one model, then its resolve: valid once stacked, though the
    // resolve alone would not fit the relative rule underneath.
    let mut st = engine(
        "[[alerts.rules]]\nname = \"latency_regression\"\nmodels = [\"llm\"]\nthreshold = 5000.0\n\
         [[alerts.rules]]\nname = \"latency_regression\"\nmodels = [\"llm\"]\nresolve = 3000.0\n",
    );
    let out = run(&mut st, 0, 30, |_| view(vec![model("llm", 6000.0)]));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].alert.explanation, "p95 6.0 s, above its limit 5.0 s");
    assert_eq!(out[0].alert.resolve, 3000.0);
    // A model switched off, then tuned for it and others, stays off for it.
    let mut st = engine(
        "[[alerts.rules]]\nname = \"high_latency\"\nmodels = [\"llm\"]\nenabled = false\n\
         [[alerts.rules]]\nname = \"high_latency\"\nmodels = [\"llm\", \"cnn\"]\nthreshold = 1000.0\n",
    );
    let out = run(&mut st, 0, 60, |_| {
        view(vec![model("llm", 6000.0), model("cnn", 6000.0)])
    });
    let fired: Vec<&str> = out.iter().map(|t| t.alert.model.as_str()).collect();
    assert_eq!(fired, ["cnn"]);
}

#[test]
fn a_firing_fixed_limit_says_it_is_still_past_its_resolve_level() {
    let mut st = engine(
        "[alerts]\nbuiltin = false\n[[alerts.rules]]\nname = \"slow\"\nmetric = \"p95_ms\"\n\
         threshold = 500.0\nresolve = 400.0\nfor = \"10s\"\nrepeat_interval = \"1m\"\n",
    );
    run(&mut st, 0, 11, |_| view(vec![model("m", 900.0)]));
    assert_eq!(
        st.active().next().map(|a| a.state),
        Some(AlertPhase::Firing)
    );
    let out = run(&mut st, 11, 80, |_| view(vec![model("m", 450.0)]));
    let reminders: Vec<&str> = out
        .iter()
        .filter(|t| t.kind == TransitionKind::Reminder)
        .map(|t| t.alert.explanation.as_str())
        .collect();
    let still = "p95 450 ms, above its resolve level 400 ms (limit 500 ms)";
    assert_eq!(reminders, [still]);
    assert_eq!(explanation(&st, "slow", "m"), still);
    // Below its resolve level it resolves, and says it is within its limit.
    let out = run(&mut st, 80, 81, |_| view(vec![model("m", 300.0)]));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, TransitionKind::Resolved);
    assert_eq!(
        out[0].alert.explanation,
        "p95 300 ms, within its limit 500 ms"
    );
}

/// How built-in rule `rule` reads model `m` against normal `base`, an hour into the run.
fn builtin_reading(rule: &str, m: &ModelView, base: &Baseline) -> Reading {
    let mut rules = RuleSet::new(&AlertsSection::default()).expect("builtin");
    let rules = rules.for_model(&m.model);
    let rule = rules.iter().find(|r| r.name == rule).expect("built in");
    let sight = Sight {
        now_ms: 3_600_000,
        events_since_ms: Some(0),
        docker: false,
        docker_blind: false,
    };
    model_reading(rule, m, None, Some(base), &sight, false)
}

#[test]
fn a_bursty_models_silence_is_judged_over_as_many_bursts_as_a_steady_ones_requests() {
    // Five minutes without a request.
    let silent = ModelView {
        model: "batch".into(),
        window_s: 60,
        series: (0..300)
            .map(|sec| SeriesPoint {
                sec,
                ..SeriesPoint::default()
            })
            .collect(),
        ..ModelView::default()
    };
    let normal = |qps: f64, bursts: Option<f64>, lulls: u32| Baseline {
        qps: Some(qps),
        qps_bursts: bursts,
        qps_lulls: lulls,
        ready: true,
        from_ms: 0,
        to_ms: 3_600_000,
        ..Baseline::default()
    };
    let over = |b: &Baseline| {
        let r = builtin_reading("traffic_drop", &silent, b);
        assert_eq!(r.value, Some(0.0), "{}", r.why);
        r.why.split(',').next().unwrap_or_default().to_owned()
    };
    // Sent request by request, 0.6 req/s: 34 s expect 20 of them.
    assert_eq!(over(&normal(0.6, None, 0)), "0.00 req/s over the last 34 s");
    // In bursts 4 × as uneven, with lulls between them in the last hour: 134 s expect
    // 20 bursts.
    assert_eq!(
        over(&normal(0.6, Some(4.0), 3)),
        "0.00 req/s over the last 134 s"
    );
    // As uneven without a lull in an hour (traffic that wobbles): a minute is known to
    // hold enough of it.
    assert_eq!(
        over(&normal(0.6, Some(4.0), 0)),
        "0.00 req/s over the last 60 s"
    );
    assert_eq!(
        over(&normal(0.6, Some(30.0), 0)),
        "0.00 req/s over the last 60 s"
    );
    assert_eq!(
        over(&normal(2.0, Some(6.0), 0)),
        "0.00 req/s over the last 60 s"
    );
    // 30 × as uneven with lulls: 20 bursts take 1000 s, past the 5 min the monitor keeps
    // by the second. A lull is its normal: not judged.
    let r = builtin_reading("traffic_drop", &silent, &normal(0.6, Some(30.0), 20));
    assert_eq!(r.value, None);
    assert_eq!(
        r.why,
        "0.00 req/s over the last 298 s; its 0.60 req/s are 30× as uneven as steady traffic: \
         300 s is too short to tell a drop from a lull"
    );
}

#[test]
fn a_normal_of_zero_reads_as_a_sentence() {
    let m = ModelView {
        stats: Stats {
            ttfb_requests: 100,
            ttfb_p95_ms: Some(25.0),
            ..Stats::default()
        },
        ..model("llm", 30.0)
    };
    let base = Baseline {
        ttfb_p95_ms: Some(0.0),
        from_ms: 0,
        to_ms: 3_600_000,
        ready: true,
        ..Baseline::default()
    };
    let r = builtin_reading("ttfb_regression", &m, &base);
    assert_eq!(
        r.why,
        "TTFB p95 25.0 ms, above its normal 0.00 ms (last hour)"
    );
}

#[test]
fn a_latency_rule_fires_past_what_the_models_slowest_minutes_reach() {
    let read = |p95: f64, high: Option<f64>| {
        let m = model("cached", p95);
        let base = Baseline {
            p95_ms: Some(20.0),
            p95_high_ms: high,
            from_ms: 0,
            to_ms: 3_600_000,
            ready: true,
            ..Baseline::default()
        };
        builtin_reading("latency_regression", &m, &base)
    };
    // One mode: its slowest minutes a little above the median leave 3 × normal the
    // limit, and the sentence as it was.
    let one = read(70.0, Some(26.0));
    assert_eq!(one.limits.map(|l| l.0), Some(60.0));
    assert_eq!(one.why, "p95 70.0 ms, 3.5× its normal 20.0 ms (last hour)");
    // Two modes: its slowest minutes reach 200 ms, so 1.5 × that is the limit, and
    // halfway back to them the resolve level.
    let two = read(250.0, Some(200.0));
    assert_eq!(two.limits, Some((300.0, 250.0)));
    assert_eq!(
        two.why,
        "p95 250 ms, 1.2× the 200 ms of its slow mode (normal 20.0 ms, last hour)"
    );
    let past = read(450.0, Some(200.0));
    assert!(
        past.why.starts_with("p95 450 ms, 2.2× the 200 ms"),
        "{}",
        past.why
    );
    // A normal saved by an earlier version has no high: judged as before.
    assert_eq!(read(70.0, None).limits, Some((60.0, 40.0)));
}

#[test]
fn a_latency_rule_judges_a_normal_that_crept_up_against_the_hours_before() {
    /// The last hour's and the hours' before: (p50, p95, p95's slowest minutes, req/s).
    type Normal = (f64, f64, f64, f64);
    let read = |now: Normal, then: Normal, p95: f64, firing: bool| {
        let m = model("ranker", p95);
        let normal = |n: Normal, from_ms, to_ms| Baseline {
            p50_ms: Some(n.0),
            p50_high_ms: Some(n.0 * 1.1),
            p95_ms: Some(n.1),
            p95_high_ms: Some(n.2),
            qps: Some(n.3),
            from_ms,
            to_ms,
            ready: true,
            ..Baseline::default()
        };
        let base = Baseline {
            earlier: Some(Box::new(normal(then, 0, 5 * 3_600_000))),
            ..normal(now, 5 * 3_600_000, 6 * 3_600_000)
        };
        let mut rules = RuleSet::new(&AlertsSection::default()).expect("builtin");
        let rules = rules.for_model(&m.model);
        let rule = rules
            .iter()
            .find(|r| r.name == "latency_regression")
            .expect("built in");
        let sight = Sight {
            now_ms: 6 * 3_600_000,
            events_since_ms: Some(0),
            docker: false,
            docker_blind: false,
        };
        model_reading(rule, &m, None, Some(&base), &sight, firing)
    };
    let before = (10.0, 20.0, 24.0, 10.0);
    let crept = (20.0, 40.0, 48.0, 10.0);
    // Its answers, body and tail, twice as slow as in the hours before at the same
    // traffic, and still climbing: 3 × their normal is the limit (the last hour's,
    // 120 ms, would let 100 ms pass).
    let r = read(crept, before, 100.0, false);
    assert_eq!(r.limits.map(|l| l.0), Some(60.0));
    assert_eq!(r.normal, Some(20.0));
    assert_eq!(
        r.why,
        "p95 100 ms, 5.0× its normal 20.0 ms (5 h before the last hour; 40.0 ms in the last hour, crept up since)"
    );
    // Past the last hour's limit anyway: judged and told as it always was.
    let r = read(crept, before, 130.0, false);
    assert_eq!(r.why, "p95 130 ms, 3.2× its normal 40.0 ms (last hour)");
    // Not a creep, so the last hour judges, as before: its rise within the noise of two
    // medians; within where the hours before went in their slowest minutes; its p95
    // alone risen (a two-mode model's slow share grew; its body did not move); twice
    // the traffic (its busy hours); levelled out (a step: the live figure no further
    // than the last hour's normal); a model whose slow minutes set its limit.
    for (now, p95, why) in [
        ((11.0, 23.0, 30.0, 10.0), 60.0, "noise"),
        (
            (20.0, 28.0, 60.0, 10.0),
            80.0,
            "within its slowest minutes before",
        ),
        ((11.0, 40.0, 60.0, 10.0), 100.0, "tail only"),
        ((20.0, 40.0, 48.0, 20.0), 100.0, "busier"),
        ((20.0, 40.0, 48.0, 10.0), 45.0, "levelled out"),
        ((20.0, 40.0, 200.0, 10.0), 100.0, "two modes"),
    ] {
        let r = read(now, before, p95, false);
        assert_eq!(r.normal, Some(now.1), "{why}: {}", r.why);
        assert!(
            r.why.ends_with("last hour)") && !r.why.contains("before"),
            "{why}: {}",
            r.why
        );
    }
    // Firing, it need not climb on: 45 ms is bad against the hours before (resolve level
    // 42 ms), which hold it; back at 40 ms both let it go, told against the last hour.
    let held = read(crept, before, 45.0, true);
    assert!(
        held.why.contains("5 h before the last hour"),
        "{}",
        held.why
    );
    assert_eq!(held.limits, Some((60.0, 42.0)));
    let back = read(crept, before, 40.0, true);
    assert_eq!(back.normal, Some(40.0), "{}", back.why);
    // The hours before were slower: the last hour judges.
    assert_eq!(read(before, crept, 100.0, false).normal, Some(20.0));
    assert!(
        read(before, crept, 100.0, false)
            .why
            .ends_with("(last hour)")
    );
}
