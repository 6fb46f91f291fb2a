//! The alert lifecycle on a virtual clock: no I/O, no real time.

use std::time::Duration;

use modelmon::alert::AlertsSection;
use modelmon::alert::{
    AlertKey, AlertPhase, AlertState, RuleSet, SilenceTarget, Transition, TransitionKind, evaluate,
};
use modelmon::config::Config;
use modelmon::store::view::{
    ContainerEventView, ContainerView, DockerState, DockerView, ModelResources, ModelView,
    SeriesPoint, Stats, Usage,
};
use modelmon::store::{BrokerState, BrokerView, View};

/// A model with `requests` in the live window at this p95 and error rate, and a
/// per-second series of `per_sec` requests over the last 60 s.
fn model(name: &str, requests: u64, p95_ms: f64, error_rate: f64, per_sec: u64) -> ModelView {
    ModelView {
        model: name.to_owned(),
        window_s: 60,
        stats: Stats {
            requests,
            qps: requests as f64 / 60.0,
            errors: (requests as f64 * error_rate) as u64,
            error_rate: (requests > 0).then_some(error_rate),
            p50_ms: (requests > 0).then_some(p95_ms / 2.0),
            p95_ms: (requests > 0).then_some(p95_ms),
            p99_ms: (requests > 0).then_some(p95_ms * 1.5),
            ..Stats::default()
        },
        last_seen_ms_ago: Some(0),
        series: (0..60)
            .map(|s| SeriesPoint {
                sec: s,
                requests: per_sec,
                errors: 0,
                ..SeriesPoint::default()
            })
            .collect(),
        ..ModelView::default()
    }
}

/// A view of `models` with the broker connected: the monitor sees events.
pub(super) fn view(models: Vec<ModelView>) -> View {
    View {
        models,
        broker: BrokerView {
            state: BrokerState::Connected,
            ..BrokerView::default()
        },
        ..View::default()
    }
}

/// Rules from TOML, as a user writes them.
fn engine(toml: &str) -> AlertState {
    let cfg = Config::parse(toml).expect("the rules parse");
    cfg.validate(None).expect("and are valid");
    AlertState::new(RuleSet::new(&cfg.alerts).expect("rules build"))
}

const SLOW: &str = r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "slow"
metric = "p95_ms"
threshold = 500.0
resolve = 400.0
for = "30s"
min_requests = 20
repeat_interval = "10m"
"#;

fn kinds(ts: &[Transition]) -> Vec<(TransitionKind, String)> {
    ts.iter().map(|t| (t.kind, t.alert.model.clone())).collect()
}

/// Runs `f(second)` every second over `[from, to)` and gathers what was notified.
fn run(st: &mut AlertState, from: i64, to: i64, mut f: impl FnMut(i64) -> View) -> Vec<Transition> {
    (from..to)
        .flat_map(|s| evaluate(st, &f(s), s * 1000))
        .collect()
}

#[test]
fn pending_turns_firing_only_after_for_held_and_survives_a_short_dip() {
    let mut st = engine(SLOW);
    let out = run(&mut st, 0, 20, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(out.is_empty());
    assert_eq!(
        st.active().next().map(|a| a.state),
        Some(AlertPhase::Pending)
    );
    // One good second and one second with too few requests: a dip, not a recovery.
    run(&mut st, 20, 21, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    run(&mut st, 21, 22, |_| {
        view(vec![model("m", 3, 900.0, 0.0, 2)])
    });
    assert_eq!(
        st.active().next().map(|a| a.state),
        Some(AlertPhase::Pending),
        "a dip shorter than the grace (for/4) keeps the pending alert"
    );
    let out = run(&mut st, 22, 31, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "m".to_owned())]);
    let a = &out[0].alert;
    assert_eq!((a.value, a.threshold), (Some(900.0), 500.0));
    assert_eq!(a.started_ms, Some(30_000), "30 s after it first held");
    assert_eq!(a.explanation, "p95 900 ms, above its limit 500 ms");
}

#[test]
fn a_pending_alert_clear_for_longer_than_the_grace_is_dropped_silently() {
    let mut st = engine(SLOW);
    run(&mut st, 0, 20, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    let out = run(&mut st, 20, 29, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert!(out.is_empty());
    assert_eq!(st.active().count(), 0, "8 s clear > 7.5 s grace: dropped");
    // Starting over: the `for` clock counts from the next bad sample.
    let out = run(&mut st, 29, 59, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(out.is_empty(), "29 s of the 30 s `for`: still pending");
    let out = run(&mut st, 59, 60, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "m".to_owned())]);
}

#[test]
fn spikes_never_fire_the_condition_must_hold_most_of_the_pending_time() {
    let mut st = engine(SLOW);
    // One enormous sample, then a bad one every 6 s (within the 7.5-s grace, so the
    // pending alert lives on): bad in a fifth of the checks, never fired.
    let out = run(&mut st, 0, 120, |s| {
        let p95 = match s {
            0 => 60_000.0,
            s if s % 6 == 0 => 510.0,
            _ => 120.0,
        };
        view(vec![model("m", 100, p95, 0.0, 2)])
    });
    assert!(out.is_empty(), "{:?}", kinds(&out));
}

#[test]
fn flapping_around_the_threshold_notifies_once_and_resolves_once() {
    let mut st = engine(SLOW);
    let out = run(&mut st, 0, 31, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert_eq!(out.len(), 1);
    // 450/550 around the 500 threshold, never under the 400 resolve threshold.
    let out = run(&mut st, 31, 300, |s| {
        let p95 = if s % 2 == 0 { 450.0 } else { 550.0 };
        view(vec![model("m", 100, p95, 0.0, 2)])
    });
    assert!(
        out.is_empty(),
        "hysteresis: no resolve, no re-fire: {:?}",
        kinds(&out)
    );
    let out = run(&mut st, 300, 310, |_| {
        view(vec![model("m", 100, 300.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "m".to_owned())]);
    assert_eq!(out[0].alert.resolved_ms, Some(300_000));
    let recent = st.view().recent;
    assert_eq!(recent.len(), 1, "the resolved alert is kept in the history");
    assert_eq!(recent[0].state, AlertPhase::Resolved);
}

#[test]
fn keep_firing_for_holds_a_firing_alert_through_a_short_dip() {
    let mut st = engine(&format!("{SLOW}keep_firing_for = \"20s\"\n"));
    run(&mut st, 0, 31, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    // A 15-s dip: still firing, nothing sent.
    let out = run(&mut st, 31, 46, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert!(out.is_empty());
    let out = run(&mut st, 46, 50, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(
        out.is_empty(),
        "the dip did not resolve it, so no new firing either"
    );
    // Cleared for good: resolved only after 20 s.
    let out = run(&mut st, 50, 69, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert!(out.is_empty());
    let out = run(&mut st, 69, 71, |_| {
        view(vec![model("m", 100, 100.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "m".to_owned())]);
}

#[test]
fn reminders_repeat_until_acknowledged() {
    let mut st = engine(SLOW);
    let bad = |_| view(vec![model("m", 100, 900.0, 0.0, 2)]);
    let out = run(&mut st, 0, 30 + 1800, bad);
    let reminders = out
        .iter()
        .filter(|t| t.kind == TransitionKind::Reminder)
        .count();
    assert_eq!(out[0].kind, TransitionKind::Firing);
    assert_eq!(reminders, 2, "30 min of firing, reminders every 10 min");
    let key = AlertKey {
        rule: "slow".into(),
        model: "m".into(),
    };
    assert!(st.acknowledge(&key));
    let out = run(&mut st, 1830, 5000, bad);
    assert!(out.is_empty(), "acknowledged: no more reminders");
    let out = run(&mut st, 5000, 5001, |_| {
        view(vec![model("m", 100, 1.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "m".to_owned())]);
}

#[test]
fn a_silenced_model_says_nothing_until_the_silence_ends() {
    let mut st = engine(SLOW);
    st.silence(SilenceTarget::Model("m".into()), Duration::from_secs(60), 0);
    let out = run(&mut st, 0, 60, |_| {
        view(vec![
            model("m", 100, 900.0, 0.0, 2),
            model("other", 100, 900.0, 0.0, 2),
        ])
    });
    assert_eq!(
        kinds(&out),
        [(TransitionKind::Firing, "other".to_owned())],
        "only the silenced model is muted"
    );
    let firing = st.view().active;
    assert!(
        firing
            .iter()
            .any(|a| a.model == "m" && a.silenced && a.state == AlertPhase::Firing)
    );
    // The silence ends while it still fires: told once, then quiet again.
    let out = run(&mut st, 60, 120, |_| {
        view(vec![
            model("m", 100, 900.0, 0.0, 2),
            model("other", 100, 900.0, 0.0, 2),
        ])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "m".to_owned())]);
    // A silenced alert that resolves unnoticed sends no orphan "resolved".
    let mut st = engine(SLOW);
    st.silence(
        SilenceTarget::Model("m".into()),
        Duration::from_secs(600),
        0,
    );
    run(&mut st, 0, 40, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    let out = run(&mut st, 40, 41, |_| {
        view(vec![model("m", 100, 1.0, 0.0, 2)])
    });
    assert!(out.is_empty());
}

#[test]
fn a_firing_alert_held_through_a_lull_still_tells_when_its_silence_ends_and_reminds() {
    let mut st = engine(SLOW);
    st.silence(SilenceTarget::Model("m".into()), Duration::from_secs(60), 0);
    let out = run(&mut st, 0, 40, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(out.is_empty(), "fired silenced: {:?}", kinds(&out));
    // A lull (too few requests to judge) in which the silence ends: the alert holds,
    // and is told as soon as the silence is over, not once the lull ends.
    let lull = |_| view(vec![model("m", 3, 900.0, 0.0, 2)]);
    let out = run(&mut st, 40, 61, lull);
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "m".to_owned())]);
    assert_eq!(out[0].alert.last_notified_ms, Some(60_000));
    let a = st.view().active;
    assert!(
        a.iter()
            .any(|a| a.model == "m" && !a.silenced && a.state == AlertPhase::Firing),
        "{a:?}"
    );
    // Bad again, then a lull over the reminder's time: reminded on time.
    run(&mut st, 61, 300, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    let out = run(&mut st, 300, 700, lull);
    assert_eq!(kinds(&out), [(TransitionKind::Reminder, "m".to_owned())]);
    assert_eq!(out[0].alert.last_notified_ms, Some(660_000));
    assert!(st.view().is_firing("m"));
}

#[test]
fn three_requests_never_fire_latency_or_error_alerts() {
    let mut st = AlertState::new(RuleSet::new(&AlertsSection::default()).expect("builtin"));
    let out = run(&mut st, 0, 600, |_| {
        view(vec![model("m", 3, 60_000.0, 1.0, 0)])
    });
    assert!(out.is_empty(), "{:?}", kinds(&out));
    assert_eq!(st.active().count(), 0, "not even pending");
}

#[test]
fn per_model_overrides_and_config_errors() {
    let mut st = engine(&format!(
        "{SLOW}\n[[alerts.rules]]\nname = \"slow\"\nmodels = [\"llm\"]\nthreshold = 5000.0\n"
    ));
    let out = run(&mut st, 0, 60, |_| {
        view(vec![
            model("llm", 100, 2000.0, 0.0, 2),
            model("cnn", 100, 2000.0, 0.0, 2),
        ])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Firing, "cnn".to_owned())]);
    // A new rule without a metric, and an inverted hysteresis, are config errors.
    for bad in [
        "[[alerts.rules]]\nname = \"x\"\nthreshold = 1.0\n",
        "[[alerts.rules]]\nname = \"slo\"\nmetric = \"p95_ms\"\nthreshold = 800.0\nresolve = 900.0\n",
        "[[alerts.rules]]\nname = \"latency_regression\"\nresolve = 900.0\n",
        "[[alerts.rules]]\nname = \"latency_regression\"\nfactor = 0.5\n",
        "[[alerts.rules]]\nname = \"traffic_drop\"\nfactor = 2.0\n",
        "[[alerts.rules]]\nname = \"x\"\nmetric = \"cpu_percent\"\nfactor = 2.0\n",
        "[[alerts.rules]]\nname = \"x\"\nmetric = \"p95_ms\"\nthreshold = 1.0\nfactor = 2.0\n",
        "[[alerts.rules]]\nname = \"broker_down\"\nmodels = [\"m\"]\nfor = \"1m\"\n",
        "[alerts.baseline]\nmin_history = \"2h\"\n",
        // Past what the 24-hour rings hold, shorter than `min_history`, part minutes.
        "[alerts.baseline]\nearlier = \"23h\"\n",
        "[alerts.baseline]\nearlier = \"5m\"\n",
        "[alerts.baseline]\nearlier = \"90s\"\n",
        "[alerts.baseline]\nearlier = \"12m\"\n",
    ] {
        let cfg = Config::parse(bad).expect("parses");
        let err = cfg.validate(None).expect_err("invalid").to_string();
        assert!(err.contains("alerts."), "{err}");
    }
    let err = Config::parse("[alerts.baseline]\nearlier = \"23h\"\n")
        .expect("parses")
        .validate(None)
        .expect_err("too long")
        .to_string();
    assert!(
        err.contains("alerts.baseline.earlier") && err.contains("22h55m"),
        "names the key and how long it may be: {err}"
    );
    for fine in [
        "earlier = \"0s\"",
        "earlier = \"22h55m\"",
        "earlier = \"10m\"",
    ] {
        let cfg = Config::parse(&format!("[alerts.baseline]\n{fine}\n")).expect("parses");
        cfg.validate(None).expect(fine);
    }
    let err = Config::parse("[[alerts.rules]]\nname = \"x\"\ntreshold = 1.0\n").expect_err("typo");
    assert!(err.contains("treshold"), "{err}");
}

// ---------------------------------------------------------------- containers

/// One container of `model` in `state`, with a CPU figure (100 % = one core) and a
/// one-core limit.
fn container(name: &str, state: &str, cpu: Option<f64>) -> ContainerView {
    ContainerView {
        id: format!("{name:0>12}"),
        name: name.to_owned(),
        state: state.to_owned(),
        usage: Usage {
            cpu_percent: cpu,
            cpu_cores: Some(1.0),
            cpu_limit_percent: cpu,
            ..Usage::default()
        },
        ..ContainerView::default()
    }
}

fn with_containers(models: Vec<ModelView>, containers: Vec<(&str, Vec<ContainerView>)>) -> View {
    let mut v = view(models);
    v.docker = DockerView {
        state: DockerState::Connected,
        connections: 1,
        ..DockerView::default()
    };
    for (model, cs) in containers {
        let cpu: Option<f64> = cs
            .iter()
            .filter_map(|c| c.usage.cpu_percent)
            .reduce(|a, b| a + b);
        v.resources.insert(
            model.to_owned(),
            ModelResources {
                usage: Usage {
                    cpu_percent: cpu,
                    cpu_limit_percent: cpu,
                    cpu_cores: cpu.map(|_| 1.0),
                    ..Usage::default()
                },
                state: cs.iter().map(|c| c.state.clone()).min().unwrap_or_default(),
                events: cs
                    .iter()
                    .filter(|c| c.state == "exited")
                    .map(|c| ContainerEventView {
                        at_ms: 1_000,
                        container: c.name.clone(),
                        action: "die".into(),
                        detail: Some("exit code 137".into()),
                    })
                    .collect(),
                containers: cs,
                ..ModelResources::default()
            },
        );
    }
    v
}

fn builtin() -> AlertState {
    AlertState::new(RuleSet::new(&AlertsSection::default()).expect("builtin"))
}

#[test]
fn a_cpu_pinned_at_its_limit_fires_through_dips_and_missing_samples() {
    let mut st = builtin();
    // Docker samples every 2 s: 98-100 % of the limit, one sample in five at 85 %, one
    // in seven missing. The old rule dropped its pending alert at the first of those.
    let out = run(&mut st, 0, 40, |s| {
        let cpu = match s {
            s if s % 7 == 0 => None,
            s if s % 5 == 0 => Some(85.0),
            s => Some(98.0 + (s % 3) as f64),
        };
        with_containers(
            vec![model("iris", 100, 5.0, 0.0, 2)],
            vec![("iris", vec![container("iris-1", "running", cpu)])],
        )
    });
    assert_eq!(
        out.iter()
            .map(|t| (t.kind, t.alert.rule.as_str()))
            .collect::<Vec<_>>(),
        [(TransitionKind::Firing, "cpu_saturation")]
    );
    let a = &out[0].alert;
    assert!(a.started_ms.is_some_and(|t| t <= 22_000), "{a:?}");
    assert!(
        a.explanation
            .starts_with("CPU at 99 % of what its containers may use (1.0 core)")
            || a.explanation.starts_with("CPU at 98 %")
            || a.explanation.starts_with("CPU at 100 %"),
        "{}",
        a.explanation
    );
    // A single busy sample among idle ones never fires.
    let mut st = builtin();
    let out = run(&mut st, 0, 120, |s| {
        let cpu = if s % 10 == 0 { 100.0 } else { 20.0 };
        with_containers(
            vec![model("iris", 100, 5.0, 0.0, 2)],
            vec![("iris", vec![container("iris-1", "running", Some(cpu))])],
        )
    });
    assert!(out.is_empty(), "{:?}", kinds(&out));
}

#[test]
fn a_stopped_container_fires_at_once_naming_it_and_its_exit() {
    let mut st = builtin();
    run(&mut st, 0, 30, |_| {
        with_containers(
            vec![model("iris", 100, 5.0, 0.0, 2)],
            vec![(
                "iris",
                vec![
                    container("iris-1", "running", Some(10.0)),
                    container("iris-2", "running", Some(10.0)),
                ],
            )],
        )
    });
    let out = run(&mut st, 30, 31, |_| {
        with_containers(
            vec![model("iris", 100, 5.0, 0.0, 2)],
            vec![(
                "iris",
                vec![
                    container("iris-1", "exited", None),
                    container("iris-2", "running", Some(10.0)),
                ],
            )],
        )
    });
    assert_eq!(
        out.iter()
            .map(|t| (t.kind, t.alert.rule.as_str()))
            .collect::<Vec<_>>(),
        [(TransitionKind::Firing, "container_down")],
        "on the first evaluation that sees it"
    );
    assert_eq!(
        out[0].alert.explanation,
        "container iris-1 exited (exit code 137) 29 s ago; 1 of 2 running"
    );
    // Removed altogether while Docker watches: still down, until one runs again.
    let out = run(&mut st, 31, 40, |_| {
        with_containers(vec![model("iris", 100, 5.0, 0.0, 2)], vec![])
    });
    assert!(out.is_empty(), "still the same alert: {:?}", kinds(&out));
    assert!(
        st.view().active[0]
            .explanation
            .starts_with("its container is gone"),
        "{}",
        st.view().active[0].explanation
    );
    // Running again: resolved once it has run for the 2 min container_down holds.
    let running = |_| {
        with_containers(
            vec![model("iris", 100, 5.0, 0.0, 2)],
            vec![("iris", vec![container("iris-3", "running", Some(5.0))])],
        )
    };
    let out = run(&mut st, 40, 158, running);
    assert!(out.is_empty(), "{:?}", kinds(&out));
    let out = run(&mut st, 158, 161, running);
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "iris".to_owned())]);
}

#[test]
fn an_unreachable_docker_engine_is_one_alert_and_holds_container_alerts() {
    let mut st = builtin();
    let busy = |_| {
        with_containers(
            vec![model("iris", 100, 5.0, 0.0, 2)],
            vec![("iris", vec![container("iris-1", "running", Some(100.0))])],
        )
    };
    run(&mut st, 0, 30, busy);
    assert!(st.view().is_firing("iris"));
    let out = run(&mut st, 30, 60, |s| {
        let mut v = busy(s);
        v.resources.clear();
        v.docker = DockerView {
            state: DockerState::Unavailable,
            error: Some("connection refused (/var/run/docker.sock)".into()),
            connections: 1,
            ..DockerView::default()
        };
        v
    });
    assert_eq!(
        out.iter()
            .map(|t| (t.kind, t.alert.rule.as_str(), t.alert.model.as_str()))
            .collect::<Vec<_>>(),
        [(TransitionKind::Firing, "docker_unavailable", "")],
        "one alert about the monitor; cpu_saturation neither resolves nor fires anew"
    );
    assert_eq!(
        out[0].alert.explanation,
        "cannot reach the Docker engine for 10 s (connection refused (/var/run/docker.sock)); container figures are unknown until it is back"
    );
    assert!(st.view().is_firing("iris"), "held while blind");
}

#[test]
fn configs_naming_the_former_fixed_limits_still_work_and_turn_them_on() {
    // `high_latency` (p95 > 500 ms) and `high_error_rate` (> 5 %) are no longer on for
    // every model; a config that names them turns them on where it says.
    let mut st = engine(
        "[[alerts.rules]]\nname = \"high_latency\"\nmodels = [\"llm\"]\nthreshold = 5000.0\n\
         [[alerts.rules]]\nname = \"high_error_rate\"\n",
    );
    let out = run(&mut st, 0, 60, |_| {
        view(vec![
            model("llm", 100, 6000.0, 0.0, 2),
            model("cnn", 100, 900.0, 0.2, 2),
        ])
    });
    let mut fired: Vec<(&str, &str)> = out
        .iter()
        .map(|t| (t.alert.rule.as_str(), t.alert.model.as_str()))
        .collect();
    fired.sort_unstable();
    assert_eq!(
        fired,
        [("high_error_rate", "cnn"), ("high_latency", "llm")],
        "cnn's 900 ms is not held to a limit nobody set for it"
    );
    let mut st = builtin();
    let out = run(&mut st, 0, 60, |_| {
        view(vec![model("cnn", 100, 900.0, 0.2, 2)])
    });
    assert!(out.is_empty(), "off by default: {:?}", kinds(&out));
}

/// Which rules notified what, in order.
fn rules_told(out: &[Transition]) -> Vec<(TransitionKind, &str)> {
    out.iter()
        .map(|t| (t.kind, t.alert.rule.as_str()))
        .collect()
}

#[test]
fn a_machine_without_docker_gets_no_docker_alert_an_engine_that_went_away_does() {
    // The default config on a machine with no Docker: the engine is never reached.
    let mut st = builtin();
    let never = |_| {
        let mut v = view(vec![model("iris", 100, 5.0, 0.0, 2)]);
        v.docker = DockerView {
            state: DockerState::Unavailable,
            error: Some("no such file (/var/run/docker.sock)".into()),
            ..DockerView::default()
        };
        v
    };
    let out = run(&mut st, 0, 60, never);
    assert!(out.is_empty(), "{:?}", rules_told(&out));
    assert_eq!(st.view().monitor().count(), 0, "not even pending");

    // An engine that was reached and then went away is an alert.
    let mut st = builtin();
    let docker = |state, connections| {
        let mut v = view(vec![model("iris", 100, 5.0, 0.0, 2)]);
        v.docker = DockerView {
            state,
            connections,
            ..DockerView::default()
        };
        v
    };
    run(&mut st, 0, 5, |_| docker(DockerState::Unavailable, 0));
    run(&mut st, 5, 30, |_| docker(DockerState::Connected, 1));
    let out = run(&mut st, 30, 60, |_| docker(DockerState::Unavailable, 1));
    assert_eq!(
        rules_told(&out),
        [(TransitionKind::Firing, "docker_unavailable")]
    );
}

/// A model whose per-second series has `per_sec` requests and, in every 15 s,
/// `errors_per_15s` errors (one per second from the start of each 15 s).
fn erring(per_sec: u64, errors_per_15s: u64) -> ModelView {
    let mut m = model("quiet", per_sec * 60, 5.0, 0.0, per_sec);
    for p in &mut m.series {
        p.errors = u64::from((p.sec as u64) % 15 < errors_per_15s);
    }
    m
}

#[test]
fn a_quiet_models_error_alert_stays_firing_below_min_errors_while_its_rate_is_bad() {
    let mut st = engine(
        r#"
[alerts]
builtin = false
[[alerts.rules]]
name = "errors"
metric = "error_rate"
threshold = 0.05
resolve = 0.02
min_errors = 5
window = "30s"
for = "10s"
"#,
    );
    // 2 req/s, 20 errors in every 30 s: 33 %.
    let out = run(&mut st, 0, 20, |_| view(vec![erring(2, 10)]));
    assert_eq!(rules_told(&out), [(TransitionKind::Firing, "errors")]);
    // Then 1 req/s with 4 errors in every 30 s: 13 %, far above the 2 % it resolves
    // at, on fewer errors than it takes to fire. Still the same incident.
    let out = run(&mut st, 20, 600, |_| view(vec![erring(1, 2)]));
    assert!(
        out.is_empty(),
        "no resolve, no new firing: {:?}",
        kinds(&out)
    );
    let a = st.view().active;
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].state, AlertPhase::Firing);
    assert!(
        a[0].explanation
            .starts_with("13 % errors (4 of 30 requests in 30 s), above its limit 5.0 %"),
        "{}",
        a[0].explanation
    );
    // Errors gone: it resolves.
    let out = run(&mut st, 600, 602, |_| view(vec![erring(1, 0)]));
    assert_eq!(rules_told(&out), [(TransitionKind::Resolved, "errors")]);
}

#[test]
fn a_crash_looping_container_is_one_container_down_alert() {
    let mut st = builtin();
    // Docker's restart backoff at a minute: restarting for 55 s, running for 5 s.
    let out = run(&mut st, 0, 600, |s| {
        let state = if s % 60 < 55 { "restarting" } else { "running" };
        with_containers(
            vec![model("iris", 100, 5.0, 0.0, 2)],
            vec![("iris", vec![container("iris-1", state, Some(10.0))])],
        )
    });
    let down: Vec<TransitionKind> = out
        .iter()
        .filter(|t| t.alert.rule == "container_down")
        .map(|t| t.kind)
        .collect();
    assert_eq!(down, [TransitionKind::Firing], "one alert for 10 min of it");
    assert!(st.view().is_firing("iris"));
}

#[test]
fn an_alert_that_can_no_longer_be_judged_resolves_without_repeating_why_it_fired() {
    let mut st = engine(SLOW);
    run(&mut st, 0, 31, |_| {
        view(vec![model("m", 100, 900.0, 0.0, 2)])
    });
    assert!(st.view().is_firing("m"));
    // Three requests: too few to judge. A lull is no recovery: it holds, and ends only
    // once the model has been too quiet to judge for 10 min since it was last bad.
    let out = run(&mut st, 31, 630, |_| {
        view(vec![model("m", 3, 900.0, 0.0, 2)])
    });
    assert!(out.is_empty(), "{:?}", kinds(&out));
    assert!(st.view().is_firing("m"));
    let out = run(&mut st, 630, 640, |_| {
        view(vec![model("m", 3, 900.0, 0.0, 2)])
    });
    assert_eq!(kinds(&out), [(TransitionKind::Resolved, "m".to_owned())]);
    let a = &out[0].alert;
    assert_eq!(
        a.resolved_ms,
        Some(630_000),
        "10 min after the last bad figure"
    );
    assert_eq!(a.value, None, "no figure: 900 ms is not how it ended");
    assert_eq!(
        a.explanation,
        "no longer judged: too few requests to judge p95 (3 in the last 60 s, 20 needed)"
    );
    assert!(!a.explanation.contains("above"), "{}", a.explanation);
}

#[test]
fn containers_reported_by_agents_are_judged_without_a_docker_engine_of_its_own() {
    // `--no-docker` and an agent on gpu-01: the many-host setup of docs/docker.md.
    let remote = |cpu: f64, silent: bool| {
        let mut v = with_containers(
            vec![model("llm", 100, 5.0, 0.0, 2)],
            vec![("llm", vec![container("llm-1", "running", Some(cpu))])],
        );
        v.docker = DockerView::default();
        assert_eq!(v.docker.state, DockerState::Disabled);
        for r in v.resources.values_mut() {
            for c in &mut r.containers {
                c.host = Some("gpu-01".into());
            }
            if silent {
                r.silent_hosts = vec!["gpu-01".into()];
                r.usage = Usage::default();
            }
        }
        v
    };
    let mut st = builtin();
    let out = run(&mut st, 0, 30, |_| remote(100.0, false));
    assert_eq!(
        rules_told(&out),
        [(TransitionKind::Firing, "cpu_saturation")]
    );
    // Its agent goes silent: the figures are unknown, the alert held as it is.
    let out = run(&mut st, 30, 90, |_| remote(0.0, true));
    assert!(out.is_empty(), "{:?}", rules_told(&out));
    assert!(st.view().is_firing("llm"));
}

#[test]
fn a_forgotten_agent_host_is_no_container_down() {
    // The monitor reads its own Docker engine too; llm runs only on gpu-01, whose agent
    // goes silent and is forgotten after 10 minutes: its container leaves the view, but
    // nothing was removed while an engine watched.
    let on_agent = |_| {
        let mut v = with_containers(
            vec![model("llm", 100, 5.0, 0.0, 2)],
            vec![("llm", vec![container("llm-1", "running", Some(5.0))])],
        );
        for c in v.resources.values_mut().flat_map(|r| &mut r.containers) {
            c.host = Some("gpu-01".into());
        }
        v
    };
    let mut st = builtin();
    let out = run(&mut st, 0, 30, on_agent);
    assert!(out.is_empty(), "{:?}", rules_told(&out));
    let forgotten = |_| with_containers(vec![model("llm", 100, 5.0, 0.0, 2)], vec![]);
    let out = run(&mut st, 30, 120, forgotten);
    assert!(out.is_empty(), "{:?}", rules_told(&out));
    assert!(!st.view().is_firing("llm"));
}

#[test]
fn a_latency_alert_names_a_container_at_its_cpu_limit() {
    let mut st = engine("[[alerts.rules]]\nname = \"high_latency\"\nfor = \"5s\"\n");
    // Both slow; iris's one container pinned at its 1-CPU limit, fraud's idle.
    let out = run(&mut st, 0, 10, |_| {
        with_containers(
            vec![
                model("iris", 100, 900.0, 0.0, 2),
                model("fraud", 100, 900.0, 0.0, 2),
            ],
            vec![
                ("iris", vec![container("iris-1", "running", Some(98.0))]),
                ("fraud", vec![container("fraud-1", "running", Some(20.0))]),
            ],
        )
    });
    let why = |model: &str| {
        out.iter()
            .find(|t| t.alert.rule == "high_latency" && t.alert.model == model)
            .map(|t| t.alert.explanation.clone())
            .unwrap_or_default()
    };
    assert_eq!(
        why("iris"),
        "p95 900 ms, above its limit 500 ms; CPU at 98 % of what its containers may use",
        "fired before cpu_saturation (20 s), naming the cause"
    );
    assert_eq!(why("fraud"), "p95 900 ms, above its limit 500 ms");
}
