//! Alert evaluation (issue 7): 100 models × 10 rules per evaluation, the work the store
//! task adds to every view it publishes.
//!
//! Goal: ≤ 1 ms per evaluation. Baseline in the same run: cloning the same view (what
//! any reader that keeps a view pays), so the figure is also reported as a ratio.
//!
//! The second group prices the baselines: learning 100 models' normals from a filled
//! 24-hour history (what the engine spreads over its evaluations, 4 models a tick,
//! once a minute each), beside a 1-hour range summary of the same models (what
//! `--batch --range 1h` reads from the same rings).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;
use std::time::Duration;

use modelmon::alert::{AlertState, RuleSet, evaluate};
use modelmon::alert::{BaselineSection, compute_baseline};
use modelmon::config::Config;
use modelmon::store::View;
use modelmon::store::history::Range;
use modelmon::store::synthetic;
use modelmon::store::view::{ModelView, SeriesPoint, Stats};

/// Eight built-in rules plus two of the user's: ten per model.
const RULES: &str = r#"
[[alerts.rules]]
name = "p99"
metric = "p99_ms"
threshold = 800.0
for = "1m"
[[alerts.rules]]
name = "p50"
metric = "p50_ms"
threshold = 200.0
for = "1m"
"#;

/// 100 models with 5 minutes of per-second series; every fifth one is slow and every
/// seventh one fails, so alerts are pending and firing as in a bad hour.
fn view() -> View {
    let models = (0..100)
        .map(|i| {
            let slow = i % 5 == 0;
            let failing = i % 7 == 0;
            ModelView {
                model: format!("model-{i:03}"),
                window_s: 60,
                stats: Stats {
                    requests: 6000,
                    qps: 100.0,
                    errors: if failing { 600 } else { 6 },
                    error_rate: Some(if failing { 0.1 } else { 0.001 }),
                    p50_ms: Some(if slow { 300.0 } else { 20.0 }),
                    p95_ms: Some(if slow { 900.0 } else { 60.0 }),
                    p99_ms: Some(if slow { 1500.0 } else { 90.0 }),
                    ..Stats::default()
                },
                last_seen_ms_ago: Some(5),
                series: (0..300)
                    .map(|s| SeriesPoint {
                        sec: s,
                        requests: 100,
                        errors: if failing { 10 } else { 0 },
                        p95_ms: Some(60.0),
                        ..SeriesPoint::default()
                    })
                    .collect(),
                ..ModelView::default()
            }
        })
        .collect();
    View {
        models,
        ..View::default()
    }
}

fn bench(c: &mut Criterion) {
    let cfg = Config::parse(RULES).expect("rules parse");
    let rules = RuleSet::new(&cfg.alerts).expect("rules build");
    let v = view();
    let mut g = c.benchmark_group("alerts_100_models_x_10_rules");
    g.bench_function("baseline_clone_view", |b| b.iter(|| black_box(v.clone())));
    let mut state = AlertState::new(rules.clone());
    let mut now = 0i64;
    // Warm: rules resolved per model, alerts past `for` and firing.
    for _ in 0..200 {
        now += 1000;
        evaluate(&mut state, &v, now);
    }
    g.bench_function("evaluate", |b| {
        b.iter(|| {
            now += 250;
            black_box(evaluate(&mut state, black_box(&v), now))
        });
    });
    g.bench_function("evaluate_and_publish_view", |b| {
        b.iter(|| {
            now += 250;
            black_box(evaluate(&mut state, black_box(&v), now));
            black_box(state.view())
        });
    });
    g.finish();
}

fn baselines(c: &mut Criterion) {
    let history = synthetic::fill(100, 7);
    let now_ms = synthetic::NOW_S * 1000;
    let names: Vec<String> = history.models().into_iter().map(str::to_owned).collect();
    let cfg = BaselineSection::default();
    let mut g = c.benchmark_group("baselines_100_models");
    g.bench_function("baseline_range_summary_1h", |b| {
        b.iter(|| {
            for m in &names {
                black_box(history.summary(m, &Range::Last(Duration::from_secs(3600)), now_ms));
            }
        });
    });
    g.bench_function("learn_every_normal", |b| {
        b.iter(|| {
            for m in &names {
                black_box(compute_baseline(&history, m, &cfg, &[], now_ms, 60));
            }
        });
    });
    // One evaluation that refreshes 4 stale baselines, as the engine does each tick
    // until every model's normal is a minute old at most.
    let mut v = view();
    v.broker.state = modelmon::store::BrokerState::Connected;
    v.history = Arc::new(history);
    let rules = RuleSet::new(&Config::parse(RULES).expect("rules parse").alerts).expect("rules");
    let mut state = AlertState::new(rules);
    let mut tick = 0i64;
    g.bench_function("evaluate_refreshing_4_normals", |b| {
        b.iter(|| {
            // A minute on, then back: every baseline is stale at every tick, and the
            // learning window stays on the filled history.
            tick += 1;
            let now = now_ms + (tick % 2) * 60_000;
            black_box(evaluate(&mut state, black_box(&v), now))
        });
    });
    g.finish();
}

criterion_group!(benches, bench, baselines);
criterion_main!(benches);
