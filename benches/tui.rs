//! Rendering cost of the terminal UI, one frame at a time.
//!
//! Goals (issue 5): the overview with 100 models in at most 1 ms per frame, the detail
//! view in at most 2 ms. Baseline in the same run: drawing an empty frame of the same
//! size, which is the cost of the terminal buffer diff that every frame pays anyway.
//! The view comes from the real store fed with synthetic traffic, so series, routes,
//! instances and the 24-hour history have realistic shapes and sizes.

use std::borrow::Cow;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use modelmon::store::{BrokerState, BrokerView, Store, StoreConfig, View};
use modelmon::tui::app::{AppState, Screen};
use modelmon::tui::health::Thresholds;
use modelmon::tui::range::Range;
use modelmon::tui::theme::Theme;
use modelmon::tui::views;
use modelmon_contract::Event;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const NOW_US: i64 = 1_800_000_000_000_000;
const MODELS: usize = 100;

fn event(model: &str, ts: i64, r: u64) -> Event<'static> {
    Event {
        ts,
        model: Cow::Owned(model.to_owned()),
        version: Some(Cow::Borrowed("1.0.0")),
        instance: Cow::Owned(format!("{model}-pod-{}", r % 3)),
        method: Cow::Borrowed("POST"),
        route: Cow::Owned(format!("/v1/route{}", r % 4)),
        status: if r % 53 == 0 { 503 } else { 200 },
        duration_us: 1000 + r % 50_000,
        ttfb_us: None,
        req_bytes: None,
        resp_bytes: None,
        error: None,
        ml: Vec::default(),
    }
}

/// 100 models: six hours of history, then five minutes of per-second traffic, fed in
/// time order with views taken along the way, as the running store would see them.
fn view() -> View {
    let mut store = Store::new(StoreConfig::default());
    let mut x = 7u64;
    let mut next = move || {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        x >> 33
    };
    let names: Vec<String> = (0..MODELS).map(|m| format!("model-{m:03}")).collect();
    let broker = BrokerView {
        state: BrokerState::Connected,
        ..BrokerView::default()
    };
    let start = NOW_US / 1_000_000 - 6 * 3600;
    for sec in start..=NOW_US / 1_000_000 {
        let recent = NOW_US / 1_000_000 - sec < 300;
        let per_model = if recent {
            5
        } else if sec % 60 == 0 {
            3
        } else {
            0
        };
        if per_model == 0 {
            continue;
        }
        let now = sec * 1_000_000;
        for name in &names {
            let events: Vec<Event> = (0..per_model)
                .map(|k| event(name, now + k * 1000, next()))
                .collect();
            store.record_all(&events, now + 500_000);
        }
        if sec % if recent { 10 } else { 60 } == 0 {
            store.view(now + 500_000, broker.clone());
        }
    }
    store.view(NOW_US + 500_000, broker)
}

fn bench(c: &mut Criterion) {
    let view = modelmon::live::Live::from(view());
    let theme = Theme {
        color: true,
        ascii: false,
    };
    let overview = AppState::new(Thresholds::default(), theme);
    let mut detail = overview.clone();
    detail.screen = Screen::Detail;
    detail.selected = Some("model-042".to_owned());

    let mut g = c.benchmark_group("tui_frame");
    for (w, h) in [(160, 45), (80, 24)] {
        let mut term = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        g.bench_function(format!("baseline_empty_frame_{w}x{h}"), |b| {
            b.iter(|| {
                term.draw(|f| {
                    black_box(f.area());
                })
                .map(drop)
            });
        });
        g.bench_function(format!("overview_100_models_{w}x{h}"), |b| {
            b.iter(|| {
                term.draw(|f| views::draw(f, black_box(&view), &overview))
                    .map(drop)
            });
        });
        for r in [Range::Min5, Range::Hour1, Range::Day1] {
            let mut d = detail.clone();
            d.range = r;
            g.bench_function(format!("detail_{}_{w}x{h}", r.label()), |b| {
                b.iter(|| {
                    term.draw(|f| views::draw(f, black_box(&view), &d))
                        .map(drop)
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
