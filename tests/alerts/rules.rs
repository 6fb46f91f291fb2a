//! Rule specs as a user writes them: the combinations the config refuses and what it says.

use modelmon::alert::{AlertState, RuleSet};
use modelmon::config::Config;

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
