//! Alert evaluation (issue 7): 100 models × 10 rules per evaluation, the work the store
//! task adds to every view it publishes.
//!
//! Goal: ≤ 1 ms per evaluation. Baseline in the same run: cloning the same view (what
//! any reader that keeps a view pays), so the figure is also reported as a ratio.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modelmon::alert::{AlertState, RuleSet, evaluate};
use modelmon::config::Config;
use modelmon::store::View;
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
                routes: Vec::new(),
                instances: Vec::new(),
                routes_overflowed: 0,
                version: None,
                totals: modelmon::store::view::Totals::default(),
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

criterion_group!(benches, bench);
criterion_main!(benches);
