//! The terminal UI: every screen rendered from a fixed, hand-built view and compared
//! with reviewed snapshots; key handling as state transitions; and the real binary
//! driven in tmux, as a user at a terminal would drive it.

use std::sync::Arc;

use crossterm::event::{
    Event, KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use std::collections::BTreeMap;
use std::time::Duration;

use modelmon::alert::engine::Silence;
use modelmon::alert::{Alert, AlertKey, AlertsView, Baseline, Command, SilenceTarget};
use modelmon::live::Live;
use modelmon::store::view::{
    BrokerState, BrokerView, ContainerEventView, ContainerView, DockerState, DockerView,
    IngestView, KeyStats, MeasureStats, ModelResources, ModelView, RejectRecord, SeriesPoint,
    Stats, StatusClasses, VersionStats, View,
};
use modelmon::tui::app::{AppState, Outcome, SILENCE_STEPS, Screen, SortKey};
use modelmon::tui::health::Thresholds;
use modelmon::tui::range::Range;
use modelmon::tui::theme::Theme;
use modelmon::tui::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Color;

/// 2026-11-28 12:00:00 UTC.
const NOW_MS: i64 = 1_795_867_200_000;

struct Spec {
    name: &'static str,
    qps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    err: f64,
    client: f64,
    seen_ms: i64,
}

fn stats(qps: f64, p50: f64, p95: f64, p99: f64, err: f64, client: f64) -> Stats {
    let requests = (qps * 60.0) as u64;
    let errors = (requests as f64 * err).round() as u64;
    let client_errors = (requests as f64 * client).round() as u64;
    let known = requests > 0;
    Stats {
        requests,
        qps,
        errors,
        error_rate: known.then_some(err),
        client_errors,
        client_error_rate: known.then_some(client),
        status: StatusClasses {
            c1xx: 0,
            c2xx: requests - errors - client_errors,
            c3xx: 0,
            c4xx: client_errors,
            c5xx: errors,
        },
        mean_ms: known.then_some(p50 * 1.2),
        p50_ms: known.then_some(p50),
        p90_ms: known.then_some(f64::midpoint(p50, p95)),
        p95_ms: known.then_some(p95),
        p99_ms: known.then_some(p99),
        max_ms: known.then_some(p99 * 1.5),
        ..Stats::default()
    }
}

/// What a model that streams its answers (an LLM) adds: TTFB over most of its requests.
fn streamed(mut s: Stats, ttfb: [f64; 3]) -> Stats {
    s.ttfb_requests = s.requests * 9 / 10;
    s.ttfb_mean_ms = Some(ttfb[0] * 1.1);
    [s.ttfb_p50_ms, s.ttfb_p95_ms, s.ttfb_p99_ms] = ttfb.map(Some);
    s.gen_p50_ms = s.p50_ms.map(|p| p - ttfb[0]);
    s.gen_p95_ms = s.p95_ms.map(|p| p - ttfb[1]);
    s
}

/// Five minutes of per-second points with a repeatable shape: traffic ramps up with
/// some jitter, and p95 has one six-second spike.
fn series(qps: f64, p95: f64) -> Vec<SeriesPoint> {
    let now_sec = NOW_MS / 1000;
    (0..300_i64)
        .map(|i| {
            let ramp = 0.4 + 0.8 * i as f64 / 300.0;
            let jitter = 1.0 + ((i * 7 % 13) - 6) as f64 / 40.0;
            let requests = (qps * ramp * jitter) as u64;
            let spike = if (200..206).contains(&i) { 4.0 } else { 1.0 };
            SeriesPoint {
                sec: now_sec - 299 + i,
                requests,
                errors: if i % 10 == 0 { requests / 20 } else { 0 },
                p95_ms: (requests > 0).then(|| p95 * spike * (0.8 + (i % 9) as f64 / 20.0)),
                ..SeriesPoint::default()
            }
        })
        .collect()
}

fn keyed(name: &str, share: f64, s: &Stats) -> KeyStats {
    let mut st = s.clone();
    st.qps *= share;
    st.requests = (st.requests as f64 * share) as u64;
    KeyStats {
        name: name.to_owned(),
        stats: st,
    }
}

/// A fixed view: a healthy model, a slow one (critical p95), one with errors (warn),
/// a silent one and a quiet healthy one.
fn fixture() -> Live {
    Live {
        view: Arc::new(fixture_view()),
        alerts: Arc::new(alerts()),
    }
}

fn fixture_view() -> View {
    let specs = [
        Spec {
            name: "fraud-xgb",
            qps: 181.3,
            p50: 2.4,
            p95: 4.9,
            p99: 7.7,
            err: 0.0,
            client: 0.004,
            seen_ms: 12,
        },
        Spec {
            name: "llm-chat",
            qps: 6.2,
            p50: 640.0,
            p95: 1840.0,
            p99: 3120.0,
            err: 0.003,
            client: 0.0,
            seen_ms: 410,
        },
        Spec {
            name: "iris-classifier",
            qps: 59.8,
            p50: 3.9,
            p95: 6.8,
            p99: 9.1,
            err: 0.021,
            client: 0.012,
            seen_ms: 40,
        },
        Spec {
            name: "embedder-v2",
            qps: 0.0,
            p50: 0.0,
            p95: 0.0,
            p99: 0.0,
            err: 0.0,
            client: 0.0,
            seen_ms: 125_000,
        },
        Spec {
            name: "resnet50",
            qps: 24.5,
            p50: 18.2,
            p95: 41.0,
            p99: 77.5,
            err: 0.0,
            client: 0.0,
            seen_ms: 95,
        },
    ];
    let models = specs
        .iter()
        .map(|s| {
            let mut st = stats(s.qps, s.p50, s.p95, s.p99, s.err, s.client);
            if s.name == "llm-chat" {
                st = streamed(st, [182.0, 420.0, 615.0]);
            }
            ModelView {
                model: s.name.to_owned(),
                window_s: 60,
                routes: vec![
                    keyed("/v1/predict", 0.7, &st),
                    keyed("/v1/predict/batch", 0.3, &st),
                ],
                instances: vec![keyed("pod-a", 0.5, &st), keyed("pod-b", 0.5, &st)],
                stats: st,
                last_seen_ms_ago: Some(s.seen_ms),
                series: series(s.qps, s.p95),
                version: Some("1.2.0".to_owned()),
                ..ModelView::default()
            }
        })
        .collect();
    View {
        ts_ms: NOW_MS,
        broker: BrokerView {
            state: BrokerState::Connected,
            error: None,
            queue: Some("modelmon.tui".to_owned()),
            node: None,
            connections: 1,
        },
        ingest: IngestView {
            events: 1_234_567,
            rejected: 3,
            dropped_at_source: 12,
            late: 1,
            batches: 4567,
            events_per_s: 271.8,
            ..IngestView::default()
        },
        recent_rejects: vec![
            RejectRecord {
                at_ms: NOW_MS - 5_000,
                reason: "bad_status".to_owned(),
                model: Some("iris-classifier".to_owned()),
                detail: "status 999 is outside 100..599".to_owned(),
            },
            RejectRecord {
                at_ms: NOW_MS - 2_000,
                reason: "bad_duration".to_owned(),
                model: Some("iris-classifier".to_owned()),
                detail: "duration_us is negative".to_owned(),
            },
        ],
        models,
        docker: DockerView {
            state: DockerState::Connected,
            error: None,
            connections: 1,
            containers: 3,
        },
        resources: resources(),
        ..View::default()
    }
}

const MIB: u64 = 1024 * 1024;

fn container(name: &str, state: &str, cpu: Option<f64>, mem_mib: Option<u64>) -> ContainerView {
    let limit = 2048 * MIB;
    ContainerView {
        id: format!("{name:0>12}").chars().take(12).collect(),
        name: name.to_owned(),
        state: state.to_owned(),
        cpu_percent: cpu,
        mem_bytes: mem_mib.map(|m| m * MIB),
        mem_limit_bytes: mem_mib.map(|_| limit),
        mem_percent: mem_mib.map(|m| (m * MIB) as f64 / limit as f64 * 100.0),
        sampled_at_ms: cpu.map(|_| NOW_MS - 1_000),
        ..ContainerView::default()
    }
}

/// llm-chat runs two replicas, one of them OOM-killed and restarting at 97 % memory;
/// iris-classifier one healthy replica. The other models have no container.
fn resources() -> BTreeMap<String, ModelResources> {
    let mut llm_a = container("llm-chat-1", "running", Some(183.4), Some(1987));
    llm_a.health = Some("healthy".to_owned());
    let mut llm_b = container("llm-chat-2", "restarting", None, None);
    llm_b.health = Some("unhealthy".to_owned());
    llm_b.restarts = 3;
    llm_b.oom_kills = 1;
    llm_b.oom_killed = true;
    let event = |secs_ago: i64, c: &str, action: &str, detail: Option<&str>| ContainerEventView {
        at_ms: NOW_MS - secs_ago * 1000,
        container: c.to_owned(),
        action: action.to_owned(),
        detail: detail.map(str::to_owned),
    };
    let llm = ModelResources {
        cpu_percent: Some(183.4),
        mem_bytes: Some(1987 * MIB),
        mem_limit_bytes: Some(2048 * MIB),
        mem_percent: Some(1987.0 / 2048.0 * 100.0),
        restarts: 3,
        oom_kills: 1,
        state: "restarting".to_owned(),
        health: Some("unhealthy".to_owned()),
        containers: vec![llm_a, llm_b],
        events: vec![
            event(95, "llm-chat-2", "oom", None),
            event(95, "llm-chat-2", "die", Some("exit 137")),
            event(94, "llm-chat-2", "restart", None),
            event(30, "llm-chat-2", "health_status: unhealthy", None),
        ],
        ..ModelResources::default()
    };
    let mut iris_1 = container("iris-1", "running", Some(12.5), Some(310));
    iris_1.health = Some("healthy".to_owned());
    let iris = ModelResources {
        cpu_percent: Some(12.5),
        mem_bytes: Some(310 * MIB),
        mem_limit_bytes: Some(2048 * MIB),
        mem_percent: Some(310.0 / 2048.0 * 100.0),
        state: "running".to_owned(),
        health: Some("healthy".to_owned()),
        containers: vec![iris_1],
        ..ModelResources::default()
    };
    BTreeMap::from([
        ("llm-chat".to_owned(), llm),
        ("iris-classifier".to_owned(), iris),
    ])
}

/// An alert as the engine would publish it. Built from JSON: the engine's bookkeeping
/// fields are not for outsiders to set.
#[allow(clippy::too_many_arguments)]
fn alert(
    rule: &str,
    model: &str,
    metric: &str,
    severity: &str,
    state: &str,
    value: Option<f64>,
    threshold: f64,
    since_s_ago: i64,
) -> Alert {
    let since = NOW_MS - since_s_ago * 1000;
    serde_json::from_value(serde_json::json!({
        "rule": rule, "model": model, "metric": metric, "severity": severity,
        "state": state, "value": value, "threshold": threshold, "resolve": threshold * 0.8,
        "since_ms": since, "active_since_ms": since - 30_000,
        "started_ms": (state != "pending").then_some(since),
        "resolved_ms": (state == "resolved").then_some(since),
        "last_bad_ms": since, "last_notified_ms": null, "notified": state != "pending",
        "acknowledged": false, "silenced": false, "notify": null,
    }))
    .expect("an alert")
}

/// An alert judged against the model's normal, with the engine's sentence for it.
fn relative(mut a: Alert, normal: f64, explanation: &str) -> Alert {
    a.normal = Some(normal);
    explanation.clone_into(&mut a.explanation);
    a
}

fn explained(mut a: Alert, explanation: &str) -> Alert {
    explanation.clone_into(&mut a.explanation);
    a
}

/// Two firing alerts (llm-chat: a latency regression, warning, and OOM, critical and
/// silenced), one pending (iris-classifier's error spike) and two resolved (fraud-xgb's
/// latency, and the monitor's own broker outage of earlier today).
fn alerts() -> AlertsView {
    let mut oom = explained(
        alert(
            "oom_killed",
            "llm-chat",
            "oom_kills",
            "critical",
            "firing",
            Some(1.0),
            0.0,
            95,
        ),
        "container llm-chat-2 was killed for lack of memory (limit 2048 MiB)",
    );
    oom.silenced = true;
    AlertsView {
        baselines: Arc::new(baselines()),
        active: vec![
            oom,
            relative(
                alert(
                    "latency_regression",
                    "llm-chat",
                    "p95_ms",
                    "warning",
                    "firing",
                    Some(1840.0),
                    480.0,
                    240,
                ),
                160.0,
                "p95 1.8 s, 12× its normal 160 ms (last hour)",
            ),
            relative(
                alert(
                    "error_spike",
                    "iris-classifier",
                    "error_rate",
                    "critical",
                    "pending",
                    Some(0.061),
                    0.054,
                    12,
                ),
                0.004,
                "6.1 % errors (11 of 180 requests in 30 s), normal 0.40 % (last hour)",
            ),
        ],
        recent: vec![
            relative(
                alert(
                    "latency_regression",
                    "fraud-xgb",
                    "p95_ms",
                    "warning",
                    "resolved",
                    Some(5.1),
                    24.0,
                    1800,
                ),
                4.0,
                "p95 5.1 ms, 1.3× its normal 4.0 ms (last hour)",
            ),
            explained(
                alert(
                    "broker_down",
                    "",
                    "broker_down",
                    "critical",
                    "resolved",
                    Some(0.0),
                    0.0,
                    7200,
                ),
                "connected to the broker (connected)",
            ),
        ],
        silences: vec![Silence {
            target: SilenceTarget::Alert(AlertKey {
                rule: "oom_killed".to_owned(),
                model: "llm-chat".to_owned(),
            }),
            until_ms: NOW_MS + 3_600_000,
        }],
    }
}

/// Normals as the engine learns them: llm-chat and iris-classifier have an hour of
/// history, embedder-v2 is still learning, the others have none yet.
fn baselines() -> BTreeMap<String, Arc<Baseline>> {
    let ready = |p95: f64, err: f64, qps: f64, explanation: &str| Baseline {
        p50_ms: Some(p95 / 2.0),
        p95_ms: Some(p95),
        p99_ms: Some(p95 * 1.5),
        error_rate: Some(err),
        qps: Some(qps),
        over_s: 3300,
        from_ms: NOW_MS - 65 * 60_000,
        to_ms: NOW_MS - 5 * 60_000,
        excluded_s: 0,
        ready: true,
        held: false,
        explanation: explanation.to_owned(),
    };
    BTreeMap::from([
        (
            "llm-chat".to_owned(),
            Arc::new(ready(
                160.0,
                0.002,
                6.0,
                "p95 160 ms, 0.20 % errors, 6.0 req/s: per-minute medians over 55 min \
                 of the last 60 min (the last 5 min left out)",
            )),
        ),
        (
            "iris-classifier".to_owned(),
            Arc::new(ready(
                6.5,
                0.004,
                58.0,
                "p95 6.5 ms, 0.40 % errors, 58 req/s: per-minute medians over 55 min \
                 of the last 60 min (the last 5 min left out)",
            )),
        ),
        (
            "embedder-v2".to_owned(),
            Arc::new(Baseline {
                over_s: 240,
                explanation: "learning: 4 min of the 10 min of history needed \
                              (a minute counts once 5 min old)"
                    .to_owned(),
                ..Baseline::default()
            }),
        ),
    ])
}

fn app(theme: Theme) -> AppState {
    let mut app = AppState::new(Thresholds::default(), theme);
    app.own.cpu_percent = Some(0.4);
    app.own.rss_bytes = Some(14 * 1024 * 1024);
    app
}

fn colour() -> Theme {
    Theme {
        color: true,
        ascii: false,
    }
}

fn draw(view: &Live, app: &AppState, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    t.draw(|f| views::draw(f, view, app)).expect("draw");
    t.backend().buffer().clone()
}

fn text(buf: &Buffer) -> String {
    let a = buf.area;
    let mut out = String::with_capacity(usize::from(a.width + 1) * usize::from(a.height));
    for y in 0..a.height {
        let mut line = String::new();
        for x in 0..a.width {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn screen(view: &Live, app: &AppState, w: u16, h: u16) -> String {
    text(&draw(view, app, w, h))
}

fn key(code: KeyCode) -> Event {
    Event::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn press(app: &mut AppState, view: &Live, codes: &[KeyCode]) -> Outcome {
    press_at(app, view, codes, Rect::new(0, 0, 160, 45))
}

/// Keys in a terminal of `size`: paging and scrolling depend on it.
fn press_at(app: &mut AppState, view: &Live, codes: &[KeyCode], size: Rect) -> Outcome {
    let mut last = Outcome::Ignored;
    for c in codes {
        last = app.handle(&key(*c), view, size);
    }
    last
}

fn row_of(screen: &str, model: &str) -> usize {
    screen
        .lines()
        .position(|l| l.contains(model))
        .unwrap_or_else(|| panic!("{model} is not on screen:\n{screen}"))
}

// ---- snapshots -------------------------------------------------------------------

#[test]
fn overview_default_sort_puts_the_worst_first() {
    let view = fixture();
    let s = screen(&view, &app(colour()), 160, 45);
    assert!(row_of(&s, "llm-chat") < row_of(&s, "iris-classifier"));
    assert!(row_of(&s, "iris-classifier") < row_of(&s, "fraud-xgb"));
    insta::assert_snapshot!("overview_160x45", s);
}

#[test]
fn overview_sorted_by_p95_and_reversed() {
    let view = fixture();
    let mut a = app(colour());
    // health -> name -> qps -> p50 -> p95
    press(&mut a, &view, &[KeyCode::Char('s'); 4]);
    assert_eq!(a.sort, SortKey::P95);
    let s = screen(&view, &a, 160, 45);
    assert!(row_of(&s, "llm-chat") < row_of(&s, "resnet50"));
    insta::assert_snapshot!("overview_by_p95", s);
    press(&mut a, &view, &[KeyCode::Char('r')]);
    let s = screen(&view, &a, 160, 45);
    assert!(row_of(&s, "resnet50") < row_of(&s, "llm-chat"));
    insta::assert_snapshot!("overview_by_p95_reversed", s);
}

#[test]
fn overview_filtered_by_name() {
    let view = fixture();
    let mut a = app(colour());
    press(
        &mut a,
        &view,
        &[
            KeyCode::Char('/'),
            KeyCode::Char('R'),
            KeyCode::Char('e'),
            KeyCode::Char('s'),
        ],
    );
    let s = screen(&view, &a, 160, 45);
    assert!(
        s.contains("filter: Res"),
        "the filter line shows what is typed"
    );
    insta::assert_snapshot!("overview_filter_editing", s);
    press(&mut a, &view, &[KeyCode::Enter]);
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("resnet50") && !s.contains("fraud-xgb"));
    insta::assert_snapshot!("overview_filtered", s);
}

#[test]
fn small_terminal_keeps_the_essential_columns() {
    let view = fixture();
    let s = screen(&view, &app(colour()), 80, 24);
    let header = s
        .lines()
        .find(|l| l.contains("MODEL"))
        .expect("a column header");
    for col in ["MODEL", "QPS", "P95", "P99", "ERR"] {
        assert!(header.contains(col), "{col} missing at 80x24:\n{s}");
    }
    for m in [
        "fraud-xgb",
        "llm-chat",
        "iris-classifier",
        "embedder-v2",
        "resnet50",
    ] {
        assert!(s.contains(m), "{m} missing at 80x24");
    }
    assert!(
        !header.contains("QPS 5m"),
        "sparklines go first when space is short"
    );
    insta::assert_snapshot!("overview_80x24", s);
}

#[test]
fn detail_at_each_range() {
    let view = fixture();
    let mut a = app(colour());
    a.selected = Some("iris-classifier".to_owned());
    press(&mut a, &view, &[KeyCode::Enter]);
    assert_eq!(a.screen, Screen::Detail);
    for r in Range::ALL {
        press(&mut a, &view, &[KeyCode::Char(r.key())]);
        assert_eq!(a.range, r);
        let s = screen(&view, &a, 160, 45);
        assert!(s.contains("iris-classifier") && s.contains("/v1/predict") && s.contains("pod-a"));
        assert!(s.contains("status 999"), "this model's rejects are listed");
        insta::assert_snapshot!(format!("detail_{}", r.label()), s);
    }
}

/// A view built by the real store from six hours of events, so the long ranges have
/// history to draw: steady traffic, and an error burst two hours ago.
fn view_with_history() -> View {
    use modelmon::store::containers::{ContainerInfo, ContainerSample};
    use modelmon::store::{Store, StoreConfig};
    let now_us = NOW_MS * 1000;
    let mut store = Store::new(StoreConfig::default());
    // One container for iris-classifier, sampled with every batch: the CPU and memory
    // charts read the same rings the real Docker poller fills.
    store.set_docker(DockerView {
        state: DockerState::Connected,
        ..DockerView::default()
    });
    store.container_info(
        ContainerInfo {
            id: "0123456789abcdef".to_owned(),
            name: "iris-1".to_owned(),
            model: "iris-classifier".to_owned(),
            state: "running".to_owned(),
            health: None,
            restarts: 0,
            oom_killed: false,
            cpu_limit_cores: None,
        },
        now_us - 181 * 120 * 1_000_000,
    );
    let step_us = 120 * 1_000_000;
    for k in (1..=180_i64).rev() {
        let at = now_us - k * step_us;
        // CPU climbs from 20 % to 110 % over the six hours; memory from 300 to 1200 MiB.
        let climb = (180 - k) as f64 / 180.0;
        store.container_sample(ContainerSample {
            id: "0123456789abcdef".to_owned(),
            ts_us: at,
            cpu_percent: Some(20.0 + 90.0 * climb),
            mem_bytes: Some(((300.0 + 900.0 * climb) as u64) * MIB),
            mem_limit_bytes: Some(2048 * MIB),
            ..ContainerSample::default()
        });
        let burst = (55..65).contains(&k);
        let events: Vec<serde_json::Value> = (0..30_i64)
            .map(|j| {
                let status = if burst && j % 3 == 0 { 503 } else { 200 };
                serde_json::json!({"ts": at + j * 1000, "model": "iris-classifier",
                    "instance": "pod-a", "method": "POST", "route": "/v1/predict",
                    "status": status, "duration_us": 2000 + (j * 37 + k * 11) % 900 * 10})
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({"v": 1,
            "source": {"kind": "demo", "instance": "t", "pid": 1}, "dropped": 0,
            "events": events}))
        .expect("json");
        let decoded = modelmon_contract::decode_batch(&body, None, now_us).expect("a batch");
        assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects);
        store.apply(&decoded, now_us);
    }
    store.view(
        now_us,
        BrokerView {
            state: BrokerState::Demo,
            ..BrokerView::default()
        },
    )
}

#[test]
fn detail_long_ranges_draw_the_history() {
    let view = Live::from(view_with_history());
    let mut a = app(colour());
    a.selected = Some("iris-classifier".to_owned());
    a.screen = Screen::Detail;
    for r in [Range::Hour1, Range::Hour6, Range::Day1] {
        a.range = r;
        let s = screen(&view, &a, 160, 45);
        assert!(!s.contains("no history"), "{} has history:\n{s}", r.label());
        assert!(
            s.contains(&format!("-{}", r.label())),
            "the x axis spans {}",
            r.label()
        );
        insta::assert_snapshot!(format!("detail_history_{}", r.label()), s);
    }
}

#[test]
fn detail_shows_the_normal_the_alert_engine_learnt_from_the_history() {
    use modelmon::alert::engine::{AlertState, evaluate};
    use modelmon::alert::{AlertsSection, RuleSet};
    let view = view_with_history();
    // The real engine with the built-in rules, on the same view: what it learns is what
    // the detail must show.
    let mut engine = AlertState::new(RuleSet::new(&AlertsSection::default()).expect("builtin"));
    evaluate(&mut engine, &view, NOW_MS);
    let alerts = engine.view();
    let learnt = alerts
        .baseline("iris-classifier")
        .expect("a baseline for the model")
        .clone();
    assert!(learnt.ready, "{learnt:?}");
    let live = Live::new(view, alerts);
    let mut a = app(colour());
    a.selected = Some("iris-classifier".to_owned());
    a.screen = Screen::Detail;
    let s = screen(&live, &a, 160, 45);
    assert!(
        s.contains(&learnt.explanation),
        "{}\n{s}",
        learnt.explanation
    );
    let p95 = modelmon::alert::baseline::show_ms(learnt.p95_ms.expect("a p95 normal"));
    assert!(s.contains(&format!("normal {p95}")), "{p95}:\n{s}");
}

#[test]
fn detail_shows_ttfb_beside_latency_only_for_a_model_that_streams() {
    let view = fixture();
    let mut a = app(colour());
    a.screen = Screen::Detail;
    a.selected = Some("llm-chat".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("ttfb ms: p50 182 p95 420 p99 615"), "{s}");
    // Narrow, the labels go and the figures stay.
    let s = screen(&view, &a, 80, 24);
    assert!(s.contains("ttfb 182/420/615"), "{s}");
    a.selected = Some("iris-classifier".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(
        !s.contains("ttfb"),
        "a model that never streams shows no TTFB:\n{s}"
    );
}

#[test]
fn detail_at_80x24() {
    let view = fixture();
    let mut a = app(colour());
    a.selected = Some("llm-chat".to_owned());
    a.screen = Screen::Detail;
    insta::assert_snapshot!("detail_80x24", screen(&view, &a, 80, 24));
}

// ---- versions, model measures and time to first byte ------------------------------

/// A version's share of a model's figures: `share` of its requests, with its own
/// latency, errors and TTFB.
fn version(
    name: &str,
    share: f64,
    qps: f64,
    lat: [f64; 3],
    err: f64,
    ttfb: [f64; 3],
) -> VersionStats {
    let s = streamed(stats(qps * share, lat[0], lat[1], lat[2], err, 0.0), ttfb);
    VersionStats {
        version: name.to_owned(),
        share: Some(share),
        stats: s,
    }
}

/// An `ml` key or a size over the window, as the store reports it.
fn measure(count: u64, qps: f64, mean: f64, p: [f64; 3]) -> MeasureStats {
    MeasureStats {
        count,
        sum: mean * count as f64,
        rate_per_s: mean * qps,
        mean: Some(mean),
        p50: Some(p[0]),
        p95: Some(p[1]),
        p99: Some(p[2]),
        max: Some(p[2] * 1.3),
    }
}

/// The fixture with llm-chat in the middle of a rollout: 1.2.0 serves 88 % of the
/// requests, the canary 1.3.0 the rest, with twice the p95 and 2.7 % errors (regressed
/// on both counts). Its events carry tokens in and out and the queue time, and their
/// request and response sizes.
fn rollout_view() -> View {
    let mut view = fixture_view();
    let llm = view
        .models
        .iter_mut()
        .find(|m| m.model == "llm-chat")
        .expect("llm-chat");
    let qps = llm.stats.qps;
    let n = llm.stats.requests;
    llm.versions = vec![
        version(
            "1.2.0",
            0.88,
            qps,
            [610.0, 1720.0, 2950.0],
            0.0,
            [175.0, 410.0, 600.0],
        ),
        version(
            "1.3.0",
            0.12,
            qps,
            [880.0, 3480.0, 5120.0],
            0.027,
            [240.0, 980.0, 1310.0],
        ),
    ];
    llm.version = Some("1.3.0".to_owned());
    llm.ml = BTreeMap::from([
        (
            "queue_us".to_owned(),
            measure(n, qps, 2_930.0, [850.0, 12_400.0, 48_000.0]),
        ),
        (
            "tokens_in".to_owned(),
            measure(n, qps, 412.0, [380.0, 910.0, 1_400.0]),
        ),
        (
            "tokens_out".to_owned(),
            measure(n, qps, 301.0, [256.0, 740.0, 1_020.0]),
        ),
    ]);
    llm.sizes = BTreeMap::from([
        (
            "req_bytes".to_owned(),
            measure(n, qps, 1_840.0, [1_650.0, 3_900.0, 6_100.0]),
        ),
        (
            "resp_bytes".to_owned(),
            measure(n, qps, 16_300.0, [14_200.0, 52_000.0, 81_000.0]),
        ),
    ]);
    view
}

/// The x of the first cell of `needle` in row `y`, each cell holding one character.
fn cell_x(buf: &Buffer, y: u16, needle: &str) -> Option<u16> {
    let row: Vec<&str> = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
    let want: Vec<&str> = needle.split("").filter(|c| !c.is_empty()).collect();
    row.windows(want.len())
        .position(|w| w == want.as_slice())
        .map(|x| x as u16)
}

/// The row (y) of the versions panel that holds `version`.
fn version_row(s: &str, version: &str) -> u16 {
    let top = row_of(s, "┌ versions");
    let at = s
        .lines()
        .skip(top)
        .position(|l| l.contains(&format!(" {version} ")))
        .unwrap_or_else(|| panic!("{version} is not in the versions panel:\n{s}"));
    (top + at) as u16
}

#[test]
fn detail_shows_versions_side_by_side_and_marks_the_regressed_one() {
    let view = Live::new(rollout_view(), alerts());
    let mut a = app(colour());
    a.selected = Some("llm-chat".to_owned());
    a.screen = Screen::Detail;
    let buf = draw(&view, &a, 160, 45);
    let s = text(&buf);
    assert!(s.contains("┌ versions, 60s window "), "{s}");
    // Busiest first, each with its share, latency, errors and TTFB p95.
    let stable = version_row(&s, "1.2.0");
    let canary = version_row(&s, "1.3.0");
    assert!(stable < canary, "busiest first:\n{s}");
    let line = |y: u16| s.lines().nth(usize::from(y)).unwrap_or_default();
    for want in ["88.0%", "1720", "0%", "410"] {
        assert!(line(stable).contains(want), "{want} in {}", line(stable));
    }
    for want in ["12.0%", "3480", "2.7%", "980"] {
        assert!(line(canary).contains(want), "{want} in {}", line(canary));
    }
    // The canary's p95 (2× the busiest's) and errors (2.7 % against none) are red and
    // bold, and its row carries the critical mark so it reads without colour too.
    for (y, needle, red) in [
        (canary, "3480", true),
        (canary, "2.7%", true),
        (canary, "✖ 1.3.0", true),
        (stable, "1720", false),
        (stable, "1.2.0", false),
    ] {
        let x = cell_x(&buf, y, needle).unwrap_or_else(|| panic!("{needle} in {}", line(y)));
        let cell = &buf[(x, y)];
        assert_eq!(cell.fg == Color::Red, red, "{needle}: {cell:?}");
        assert_eq!(
            cell.modifier.contains(ratatui::style::Modifier::BOLD),
            red,
            "{needle}: {cell:?}"
        );
    }
    assert!(
        s.contains("✖ p95 ≥ 1.5× or errors ≥ 2× + 1 pt of the busiest"),
        "the rule is on the panel's edge:\n{s}"
    );
    // Without colour or Unicode the mark and the rule still say it.
    let mut plain = app(Theme {
        color: false,
        ascii: true,
    });
    plain.selected = a.selected.clone();
    plain.screen = Screen::Detail;
    let p = screen(&view, &plain, 160, 45);
    assert!(p.contains("|X 1.3.0 "), "{p}");
    assert!(
        p.contains("X p95 >= 1.5x or errors >= 2x + 1 pt of the busiest"),
        "{p}"
    );

    // Model measures: one row per key by name, then the sizes in bytes.
    assert!(s.contains("┌ model measures, 60s window "), "{s}");
    let row = |key: &str| line(row_of(&s, &format!("│{key} ")) as u16);
    for (key, want) in [
        ("queue_us", ["850", "12.4k", "48.0k", "2930"]),
        ("tokens_in", ["380", "910", "1400", "412"]),
        ("tokens_out", ["256", "740", "1020", "301"]),
        ("req_bytes", ["1.6 KiB", "3.8 KiB", "6.0 KiB", "1.8 KiB"]),
        ("resp_bytes", ["14 KiB", "51 KiB", "79 KiB", "16 KiB"]),
    ] {
        for w in want {
            assert!(row(key).contains(w), "{w} in {}", row(key));
        }
    }
    // tokens_out per second: its mean per request times the requests per second.
    assert!(row("tokens_out").contains("1866"), "{}", row("tokens_out"));
    assert!(
        row_of(&s, "│tokens_out ") < row_of(&s, "│req_bytes "),
        "ml keys, then sizes"
    );
    // The time to first byte and generation time over the chart's span.
    assert!(
        s.contains("ttfb 182/420/615 · gen 458/1420 ms, 60s window"),
        "{s}"
    );
    // The rest of the detail is still there.
    for want in [
        "containers: restarting",
        "latency ms (60s window)",
        "┌ routes",
    ] {
        assert!(s.contains(want), "{want}:\n{s}");
    }
    insta::assert_snapshot!("detail_versions_and_measures", s);
}

#[test]
fn detail_versions_and_measures_at_80x24_take_the_place_of_the_lower_rows() {
    let view = Live::new(rollout_view(), alerts());
    let mut a = app(colour());
    a.selected = Some("llm-chat".to_owned());
    a.screen = Screen::Detail;
    let buf = draw(&view, &a, 80, 24);
    let s = text(&buf);
    // Both versions, the canary marked; columns go whole by priority.
    let canary = version_row(&s, "1.3.0");
    version_row(&s, "1.2.0");
    let x = cell_x(&buf, canary, "3480").unwrap_or_else(|| panic!("the canary's p95:\n{s}"));
    assert_eq!(buf[(x, canary)].fg, Color::Red);
    for col in ["SHARE", "P95", "ERR", "TTFB95"] {
        assert!(s.contains(col), "{col}:\n{s}");
    }
    assert!(s.contains("tokens_in"), "{s}");
    // The charts and containers keep their rows; the time to first byte shows on the
    // latency chart though the distribution box gave way.
    assert!(
        s.contains("latency ms") && s.contains("containers: restarting"),
        "{s}"
    );
    assert!(s.contains("ttfb 182/420/615 gen 458/1420"), "{s}");
    assert!(!s.contains("recent rejects"), "{s}");
    insta::assert_snapshot!("detail_versions_80x24", s);
}

#[test]
fn detail_without_versions_or_measures_draws_no_empty_panels() {
    let mut view = fixture_view();
    // One version: the title names it; a panel would repeat the model's figures.
    let iris = view
        .models
        .iter_mut()
        .find(|m| m.model == "iris-classifier")
        .expect("iris-classifier");
    iris.versions = vec![VersionStats {
        version: "1.2.0".to_owned(),
        share: Some(1.0),
        stats: iris.stats.clone(),
    }];
    let view = Live::new(view, alerts());
    let mut a = app(colour());
    a.selected = Some("iris-classifier".to_owned());
    a.screen = Screen::Detail;
    for r in Range::ALL {
        a.range = r;
        for (w, h) in [(160, 45), (80, 24)] {
            let s = screen(&view, &a, w, h);
            assert!(
                !s.contains("versions") && !s.contains("model measures"),
                "{} at {w}x{h}:\n{s}",
                r.label()
            );
        }
    }
    // The same screen as before the panels existed.
    a.range = Range::Min5;
    assert_eq!(screen(&view, &a, 160, 45), screen(&fixture(), &a, 160, 45));

    // Sizes alone make a measures panel, with no versions panel beside it.
    let mut view = fixture_view();
    let fraud = view
        .models
        .iter_mut()
        .find(|m| m.model == "fraud-xgb")
        .expect("fraud-xgb");
    fraud.sizes = BTreeMap::from([(
        "req_bytes".to_owned(),
        measure(10_878, 181.3, 620.0, [512.0, 1_100.0, 2_048.0]),
    )]);
    let view = Live::new(view, alerts());
    a.selected = Some("fraud-xgb".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("model measures, 60s window"), "{s}");
    assert!(
        s.contains("512 B") && s.contains("110 KiB"),
        "p50 and bytes/s:\n{s}"
    );
    assert!(!s.contains("versions"), "{s}");
}

#[test]
fn detail_versions_and_measures_cover_the_live_window_at_every_range() {
    // The views the TUI gets carry no 24-hour rings of versions, measures or streams:
    // at a long range the charts follow it, the panels stay on the window and say so.
    let view = Live::new(rollout_view(), alerts());
    let mut a = app(colour());
    a.selected = Some("llm-chat".to_owned());
    a.screen = Screen::Detail;
    let panels = |s: &str| -> Vec<String> {
        let top = row_of(s, "┌ versions");
        s.lines().skip(top).take(6).map(str::to_owned).collect()
    };
    let live = panels(&screen(&view, &a, 160, 45));
    for r in [Range::Hour1, Range::Hour6, Range::Day1] {
        a.range = r;
        let s = screen(&view, &a, 160, 45);
        // The fixture has no history: the charts say so for their range.
        assert!(
            s.contains("no history for this model in this range yet"),
            "the charts follow:\n{s}"
        );
        assert_eq!(panels(&s), live, "{}", r.label());
        assert!(s.contains("ms, 60s window"), "{s}");
    }
}

#[test]
fn overview_shows_ttfb_only_when_a_model_streams() {
    // llm-chat streams: a TTFB column, its p95 on llm-chat's row, a dash elsewhere.
    let view = fixture();
    let s = screen(&view, &app(colour()), 160, 45);
    let header = s.lines().nth(row_of(&s, "MODEL")).unwrap_or_default();
    assert!(header.contains("P99 TTFB95    ERR"), "{header}");
    let llm = s.lines().nth(row_of(&s, "llm-chat")).unwrap_or_default();
    assert!(llm.contains("3120    420   0.3%"), "{llm}");
    let fraud = s.lines().nth(row_of(&s, "fraud-xgb")).unwrap_or_default();
    assert!(fraud.contains("7.7      –     0%"), "{fraud}");
    // At 80 columns it takes the place of 4XX.
    let s = screen(&view, &app(colour()), 80, 24);
    let header = s.lines().nth(row_of(&s, "MODEL")).unwrap_or_default();
    assert!(header.contains("TTFB95") && !header.contains("4XX"), "{s}");
    for col in ["QPS", "P50", "P95", "P99", "ERR", "SEEN", "ALERT"] {
        assert!(header.contains(col), "{col} at 80x24:\n{s}");
    }

    // No model streams: no column, and 4XX is back at 80 columns.
    let mut quiet = fixture_view();
    for m in &mut quiet.models {
        let s = &m.stats;
        m.stats = stats(
            s.qps,
            s.p50_ms.unwrap_or(0.0),
            s.p95_ms.unwrap_or(0.0),
            s.p99_ms.unwrap_or(0.0),
            s.error_rate.unwrap_or(0.0),
            s.client_error_rate.unwrap_or(0.0),
        );
    }
    let quiet = Live::new(quiet, alerts());
    let s = screen(&quiet, &app(colour()), 160, 45);
    assert!(!s.contains("TTFB"), "{s}");
    let s = screen(&quiet, &app(colour()), 80, 24);
    assert!(!s.contains("TTFB") && s.contains("4XX"), "{s}");
    insta::assert_snapshot!("overview_80x24_no_streaming", s);
}

#[test]
fn help_lists_every_key() {
    let view = fixture();
    let mut a = app(colour());
    press(&mut a, &view, &[KeyCode::Char('?')]);
    let s = screen(&view, &a, 160, 45);
    for (_, k, _) in views::help::KEYS {
        assert!(s.contains(k), "help lacks {k}");
    }
    insta::assert_snapshot!("help", s);
}

#[test]
fn the_docs_list_every_key_of_the_help() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/tui.md"))
        .expect("docs/tui.md");
    let keys_section = doc.split("## Keys").nth(1).expect("a Keys section");
    for (_, keys, _) in views::help::KEYS {
        for k in keys.split(", ") {
            assert!(
                keys_section.contains(&format!("`{k}`")),
                "docs/tui.md lacks `{k}`"
            );
        }
    }
}

#[test]
fn alerts_pane_lists_firing_then_pending_then_resolved() {
    let view = fixture();
    let mut a = app(colour());
    press(&mut a, &view, &[KeyCode::Char('a')]);
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("2 firing · 1 pending · 2 resolved"), "{s}");
    let line_of = |needle: &str| row_of(&s, needle);
    assert!(line_of("oom_killed") < line_of("error_spike"));
    assert!(line_of("error_spike") < line_of("fraud-xgb"));
    assert!(
        s.lines()
            .any(|l| l.contains("oom_killed") && l.contains("silenced")),
        "the silenced flag shows:\n{s}"
    );
    assert!(s.contains("until 13:00:00 UTC"), "the silence is listed");
    insta::assert_snapshot!("alerts", s);
}

#[test]
fn alerts_pane_explains_each_alert_and_the_selected_one_in_full() {
    let view = fixture();
    let mut a = alerts_app(&view);
    let s = screen(&view, &a, 160, 45);
    let row = |needle: &str| s.lines().nth(row_of(&s, needle)).unwrap_or_default();
    // A relative rule: the threshold in force and the normal it came from, then the why.
    let regression = row("latency_regression");
    for want in ["1840 ms", "> 480 ms", "160 ms", "p95 1.8 s, 12× its normal"] {
        assert!(regression.contains(want), "{want} in:\n{regression}");
    }
    // The monitor's own alert has "monitor" as its subject, not an empty cell.
    let broker = row("broker_down");
    assert!(broker.contains(" monitor "), "{broker}");
    // The selected alert (the first, OOM) in full below the table.
    let boxed = s
        .lines()
        .position(|l| l.contains("oom_killed on llm-chat"))
        .expect("the selected alert's box");
    assert!(boxed > row_of(&s, "broker_down"), "below the table:\n{s}");
    assert!(
        s.lines()
            .skip(boxed)
            .take(4)
            .any(|l| l
                .contains("container llm-chat-2 was killed for lack of memory (limit 2048 MiB)")),
        "the whole explanation of the selected alert:\n{s}"
    );
    // Moving the selection moves the box to the next alert, limits and normal included.
    press(&mut a, &view, &[KeyCode::Down]);
    let s = screen(&view, &a, 160, 45);
    let at = s
        .lines()
        .position(|l| l.contains("latency_regression on llm-chat"))
        .expect("the box follows the selection");
    let story: String = s.lines().skip(at).take(4).collect::<Vec<_>>().join("\n");
    for want in [
        "fires above 480 ms",
        "resolves below 384 ms",
        "normal 160 ms",
        "firing since 11:56:00 UTC",
        "p95 1.8 s, 12× its normal 160 ms (last hour)",
    ] {
        assert!(story.contains(want), "{want} in:\n{story}");
    }
    insta::assert_snapshot!("alerts_selected_regression", s);
    // On a narrow terminal columns go whole, by priority, instead of being squeezed into
    // stubs; the box keeps the sentence and the limits.
    let s = screen(&view, &a, 80, 24);
    let header = s.lines().nth(row_of(&s, "STATE")).unwrap_or_default();
    for (col, kept) in [
        ("RULE", true),
        ("MODEL", true),
        ("THRESHOLD", true),
        ("SEVERITY", false),
        ("NORMAL", false),
        ("WHY", false),
    ] {
        assert_eq!(header.contains(col), kept, "{col}:\n{s}");
    }
    assert!(s.contains("latency_regression  llm-chat"), "{s}");
    assert!(s.contains("p95 1.8 s, 12× its normal 160 ms"), "{s}");
    assert!(s.contains("normal 160 ms"), "{s}");
}

#[test]
fn detail_shows_the_normal_beside_the_live_figures_and_the_alerts_explained() {
    let view = fixture();
    let mut a = app(colour());
    a.selected = Some("llm-chat".to_owned());
    a.screen = Screen::Detail;
    let s = screen(&view, &a, 160, 45);
    let figures = s
        .lines()
        .nth(row_of(&s, "normal 160 ms"))
        .unwrap_or_default();
    for want in [
        "p95 1.8 s, normal 160 ms",
        "errors 0.30 %, normal 0.20 %",
        "traffic 6.2 req/s, normal 6.0 req/s",
    ] {
        assert!(figures.contains(want), "{want} in:\n{figures}");
    }
    assert!(
        s.contains("per-minute medians over 55 min of the last 60 min"),
        "how the normal was learnt:\n{s}"
    );
    let alert = s
        .lines()
        .nth(row_of(&s, "latency_regression firing 4m"))
        .unwrap_or_default();
    assert!(
        alert.contains("p95 1.8 s, 12× its normal 160 ms (last hour)"),
        "{alert}"
    );
    assert!(
        s.contains("oom_killed firing 1m: container llm-chat-2 was killed for lack of memory"),
        "{s}"
    );
    assert!(
        row_of(&s, "normal and alerts") < row_of(&s, "latency ms"),
        "the judgement comes before the charts:\n{s}"
    );
    insta::assert_snapshot!("detail_normal_and_alerts", s);

    // Still learning: the figures are unknown and the sentence says how far it got.
    a.selected = Some("embedder-v2".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("p95 –, normal –"), "{s}");
    assert!(
        s.contains("learning: 4 min of the 10 min of history needed"),
        "{s}"
    );
    assert!(s.contains("no alert firing or pending"), "{s}");
    // No history at all: said, not drawn as zeros.
    a.selected = Some("resnet50".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("normal not known yet"), "{s}");
    // A pending alert shows too, with its sentence.
    a.selected = Some("iris-classifier".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(
        s.contains("error_spike pending 12s: 6.1 % errors (11 of 180 requests in 30 s)"),
        "{s}"
    );
}

/// The fixture with the broker gone for a while and the monitor's own alerts firing.
pub(crate) fn blind() -> Live {
    let mut view = fixture_view();
    view.broker = BrokerView {
        state: BrokerState::Down,
        error: Some("IO error: Connection refused (os error 111)".to_owned()),
        queue: None,
        node: None,
        connections: 1,
    };
    view.docker.state = DockerState::Unavailable;
    let mut alerts = alerts();
    let broker = explained(
        alert(
            "broker_down",
            "",
            "broker_down",
            "critical",
            "firing",
            Some(1.0),
            0.0,
            80,
        ),
        "no connection to the broker for 1 min (IO error: Connection refused (os error 111)); \
         request figures are unknown until it is back",
    );
    let docker = explained(
        alert(
            "docker_unavailable",
            "",
            "docker_down",
            "warning",
            "firing",
            Some(1.0),
            0.0,
            30,
        ),
        "cannot reach the Docker engine for 40 s; container figures are unknown until it is back",
    );
    alerts.active.insert(0, broker);
    alerts.active.insert(2, docker);
    Live::new(view, alerts)
}

/// With a cluster's nodes configured, the header says which one is in use (after a
/// failover, the one that took over), never with its password.
#[test]
fn the_header_names_the_broker_node_in_use() {
    let mut view = fixture_view();
    view.broker.node = Some("amqp://guest:***@10.1.2.3:5673/%2f".to_owned());
    let view = Live::from(view);
    let s = screen(&view, &app(colour()), 160, 45);
    let first = s.lines().next().unwrap_or_default();
    assert!(
        first.contains("broker connected (10.1.2.3:5673)"),
        "{first}"
    );
    assert!(!first.contains("***"), "{first}");
}

#[test]
fn a_firing_monitor_alert_says_in_the_header_that_the_monitor_is_blind() {
    let view = blind();
    let s = screen(&view, &app(colour()), 160, 45);
    let first = s.lines().next().unwrap_or_default();
    // The broker has been down since the alert was first pending: 80 s + 30 s.
    assert!(
        first.starts_with("modelmon   BLIND: broker down 1m, no request figures"),
        "{first}"
    );
    assert!(
        first.contains("BLIND to containers: Docker unreachable 1m"),
        "{first}"
    );
    assert!(
        first.contains("broker down (IO error"),
        "the state stays:\n{first}"
    );
    let second = s.lines().nth(1).unwrap_or_default();
    assert!(second.contains("alerts 2 crit 2 warn 1 pend"), "{second}");
    // Reversed, in the colour of the severity, so it reads as a banner without colour.
    let buf = draw(&view, &app(colour()), 160, 45);
    let cell = &buf[(11, 0)];
    assert_eq!(cell.symbol(), "B");
    assert_eq!(cell.fg, Color::Red);
    assert!(cell.modifier.contains(ratatui::style::Modifier::REVERSED));
    // In the alerts pane the monitor is the subject, and the sentence says what it means.
    let mut a = alerts_app(&view);
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("broker_down on monitor"), "{s}");
    assert!(
        s.contains("request figures are unknown until it is back"),
        "{s}"
    );
    press(&mut a, &view, &[KeyCode::Char('X')]);
    assert_eq!(
        a.take_commands(),
        [Command::Silence {
            target: SilenceTarget::Model(String::new()),
            for_: SILENCE_STEPS[0],
        }]
    );
    let s = screen(&view, &a, 160, 45);
    assert!(
        s.contains("silenced every alert of the monitor for 15m"),
        "{s}"
    );

    // Events dropped at the source: the figures are low, not blind.
    let mut dropping = fixture();
    let mut alerts = (*dropping.alerts).clone();
    alerts.active.push(explained(
        alert(
            "source_dropping",
            "",
            "source_drops",
            "warning",
            "firing",
            Some(120.0),
            0.0,
            20,
        ),
        "api-1 dropped 120 events in the last 60 s before they reached the broker",
    ));
    dropping.alerts = Arc::new(alerts);
    let s = screen(&dropping, &app(colour()), 160, 45);
    let first = s.lines().next().unwrap_or_default();
    assert!(
        first.contains("DROPPING: sources lost 120 events"),
        "{first}"
    );
    // Pending is not yet a banner: the broker state already says "down".
    let s = screen(&fixture(), &app(colour()), 160, 45);
    assert!(!s.contains("BLIND") && !s.contains("DROPPING"), "{s}");
}

#[test]
fn overview_shows_container_figures_docker_state_and_firing_alerts() {
    let view = fixture();
    let s = screen(&view, &app(colour()), 160, 45);
    assert!(s.contains("docker connected (3 containers)"), "{s}");
    let llm = s.lines().nth(row_of(&s, "llm-chat")).unwrap_or_default();
    assert!(llm.contains("183%"), "CPU of llm-chat:\n{llm}");
    assert!(llm.contains("1.9G"), "memory of llm-chat:\n{llm}");
    assert!(llm.contains("2 firing"), "firing alerts:\n{llm}");
    let iris = s
        .lines()
        .nth(row_of(&s, "iris-classifier"))
        .unwrap_or_default();
    assert!(iris.contains("1 pend"), "{iris}");
    let fraud = s.lines().nth(row_of(&s, "fraud-xgb")).unwrap_or_default();
    assert!(
        fraud.contains('–'),
        "no container: unknown, not 0:\n{fraud}"
    );
    assert!(s.contains("alerts 1 crit 1 warn 1 pend "), "{s}");
}

#[test]
fn detail_shows_the_containers_and_their_events() {
    let view = fixture();
    let mut a = app(colour());
    a.selected = Some("llm-chat".to_owned());
    a.screen = Screen::Detail;
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("containers: restarting, unhealthy"), "{s}");
    // The replica's row, not the OOM alert's sentence that names it too.
    let replica = s
        .lines()
        .nth(row_of(&s, "llm-chat-2   "))
        .unwrap_or_default();
    for want in ["restarting", "unhealthy", "3", "1"] {
        assert!(replica.contains(want), "{want} in {replica}");
    }
    assert!(s.contains("1.9G/2.0G"), "memory used/limit:\n{s}");
    assert!(s.contains("die (exit 137)"), "the Docker events:\n{s}");
    assert!(
        s.contains("cpu %") && s.contains("memory MiB"),
        "the charts"
    );
    insta::assert_snapshot!("detail_containers", s);
    // A model without a container says why, rather than drawing zeros.
    a.selected = Some("fraud-xgb".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("no container mapped"), "{s}");
}

#[test]
fn thresholds_follow_the_alert_rules() {
    let mut rules = modelmon::alert::rules::builtin_rules();
    assert_eq!(
        Thresholds::default().with_rules(&rules),
        Thresholds::default(),
        "the built-in rules are the defaults: the relative ones follow each model's \
         normal, so they cannot colour a column every model shares"
    );
    // A user's SLO on p95 (an absolute rule) sets the warning level.
    let slo = modelmon::alert::Rule {
        name: "p95_slo".to_owned(),
        metric: modelmon::alert::Metric::P95Ms,
        threshold: 5000.0,
        resolve: 4000.0,
        relative: None,
        severity: modelmon::alert::Severity::Warning,
        ..rules
            .iter()
            .find(|r| r.name == "latency_regression")
            .expect("the built-in latency rule")
            .clone()
    };
    rules.push(slo);
    let t = Thresholds::default().with_rules(&rules);
    assert_eq!(t.p95_warn_ms, 5000.0);
    assert!(t.p95_crit_ms >= 5000.0, "warn never exceeds critical");
    assert_eq!(
        (t.error_warn, t.error_crit),
        (f64::INFINITY, f64::INFINITY),
        "error_spike is relative: no fixed error level colours every model"
    );
    let view = fixture();
    let llm = view.model("llm-chat").expect("llm-chat");
    assert_eq!(
        t.health(llm, &AlertsView::default()),
        modelmon::tui::health::Health::Ok,
        "1840 ms is fine under a 5 s rule, with nothing judged against its normal"
    );
    // What the engine judges colours it: llm-chat has a critical alert firing (oom_killed)
    // and latency_regression on its p95.
    assert_eq!(
        t.health(llm, &view.alerts),
        modelmon::tui::health::Health::Crit
    );
    assert!(
        t.breaches(llm, &view.alerts)
            .iter()
            .any(|b| b.metric == modelmon::tui::health::Metric::P95),
        "its p95 cell is coloured by latency_regression"
    );
}

fn alerts_app(view: &Live) -> AppState {
    let mut a = app(colour());
    press(&mut a, view, &[KeyCode::Char('a')]);
    assert_eq!(a.screen, Screen::Alerts);
    a
}

fn oom_key() -> AlertKey {
    AlertKey {
        rule: "oom_killed".to_owned(),
        model: "llm-chat".to_owned(),
    }
}

#[test]
fn x_silences_the_selected_alert_longer_on_each_press_then_lifts_it() {
    let view = fixture();
    let mut a = alerts_app(&view);
    let target = SilenceTarget::Alert(oom_key());
    let mut sent = Vec::new();
    for _ in 0..5 {
        assert_eq!(press(&mut a, &view, &[KeyCode::Char('x')]), Outcome::Redraw);
        sent.extend(a.take_commands());
    }
    let silence = |d: Duration| Command::Silence {
        target: target.clone(),
        for_: d,
    };
    assert_eq!(
        sent,
        [
            silence(SILENCE_STEPS[0]),
            silence(SILENCE_STEPS[1]),
            silence(SILENCE_STEPS[2]),
            Command::Unsilence(target.clone()),
            silence(SILENCE_STEPS[0]),
        ]
    );
    assert_eq!(SILENCE_STEPS[0], Duration::from_secs(15 * 60));
    assert!(a.take_commands().is_empty(), "commands are sent once");
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("silenced oom_killed on llm-chat for 15m"), "{s}");
}

#[test]
fn capital_x_silences_the_model_of_the_selected_alert_and_moving_restarts_the_cycle() {
    let view = fixture();
    let mut a = alerts_app(&view);
    // Down twice: the pending error-rate alert of iris-classifier.
    press(
        &mut a,
        &view,
        &[KeyCode::Down, KeyCode::Char('j'), KeyCode::Char('X')],
    );
    assert_eq!(
        a.take_commands(),
        [Command::Silence {
            target: SilenceTarget::Model("iris-classifier".to_owned()),
            for_: SILENCE_STEPS[0],
        }]
    );
    // Another alert: its own silence starts at the first step again.
    press(&mut a, &view, &[KeyCode::Up, KeyCode::Char('x')]);
    assert_eq!(
        a.take_commands(),
        [Command::Silence {
            target: SilenceTarget::Alert(AlertKey {
                rule: "latency_regression".to_owned(),
                model: "llm-chat".to_owned(),
            }),
            for_: SILENCE_STEPS[0],
        }]
    );
    // The selection stops at the ends of the list.
    press(
        &mut a,
        &view,
        &[KeyCode::Char('G'), KeyCode::Down, KeyCode::Down],
    );
    assert_eq!(a.alert_index, 4);
    press(&mut a, &view, &[KeyCode::Char('g'), KeyCode::Up]);
    assert_eq!(a.alert_index, 0);
}

#[test]
fn a_acknowledges_a_firing_alert_only() {
    let view = fixture();
    let mut a = alerts_app(&view);
    press(&mut a, &view, &[KeyCode::Char('a')]);
    assert_eq!(a.take_commands(), [Command::Acknowledge(oom_key())]);
    assert_eq!(
        a.screen,
        Screen::Alerts,
        "a acknowledges here; it does not leave"
    );
    // The pending alert: nothing is sent and the footer says why.
    press(
        &mut a,
        &view,
        &[KeyCode::Down, KeyCode::Down, KeyCode::Char('a')],
    );
    assert!(a.take_commands().is_empty());
    let s = screen(&view, &a, 160, 45);
    assert!(s.contains("only a firing alert can be acknowledged"), "{s}");
    // The next key clears the notice; Esc goes back.
    press(&mut a, &view, &[KeyCode::Esc]);
    assert_eq!(a.screen, Screen::Overview);
    assert!(a.notice.is_none());
}

#[test]
fn alert_keys_do_nothing_without_alerts() {
    let view = Live::from(fixture_view());
    let mut a = alerts_app(&view);
    for k in ['x', 'X', 'a'] {
        assert_eq!(press(&mut a, &view, &[KeyCode::Char(k)]), Outcome::Ignored);
    }
    assert!(a.take_commands().is_empty());
    assert!(screen(&view, &a, 160, 45).contains("no alert firing, pending or resolved"));
}

#[test]
fn no_color_draws_no_colour_and_ascii_draws_only_ascii() {
    let view = fixture();
    let plain = Theme {
        color: false,
        ascii: false,
    };
    let buf = draw(&view, &app(plain), 160, 45);
    for cell in &buf.content {
        assert_eq!(
            (cell.fg, cell.bg),
            (Color::Reset, Color::Reset),
            "colour at {cell:?}"
        );
    }
    insta::assert_snapshot!("overview_no_color", text(&buf));

    let coloured = draw(&view, &app(colour()), 160, 45);
    assert!(
        coloured.content.iter().any(|c| c.fg == Color::Red),
        "with colour, the critical model is red"
    );

    let ascii = Theme {
        color: false,
        ascii: true,
    };
    let mut a = app(ascii);
    let s = screen(&view, &a, 160, 45);
    assert!(s.is_ascii(), "non-ASCII in --ascii:\n{s}");
    insta::assert_snapshot!("overview_ascii", s);
    a.selected = Some("fraud-xgb".to_owned());
    a.screen = Screen::Detail;
    let s = screen(&view, &a, 160, 45);
    assert!(s.is_ascii(), "non-ASCII in the --ascii detail:\n{s}");
}

#[test]
fn an_empty_view_says_it_is_waiting() {
    let s = screen(&Live::default(), &app(colour()), 100, 20);
    assert!(s.contains("no events yet"), "{s}");
}

// ---- key handling as state transitions ---------------------------------------------

#[test]
fn selection_moves_clamps_and_follows_the_model_across_resorts() {
    let view = fixture();
    let mut a = app(colour());
    let names =
        |a: &AppState| -> Vec<String> { a.rows(&view).iter().map(|m| m.model.clone()).collect() };
    let order = names(&a);
    press(&mut a, &view, &[KeyCode::Down, KeyCode::Char('j')]);
    assert_eq!(a.selected.as_deref(), Some(order[2].as_str()));
    press(&mut a, &view, &[KeyCode::Char('k')]);
    assert_eq!(a.selected.as_deref(), Some(order[1].as_str()));
    press(&mut a, &view, &[KeyCode::Char('G')]);
    assert_eq!(a.selected.as_deref(), order.last().map(String::as_str));
    press(&mut a, &view, &[KeyCode::Down]);
    assert_eq!(
        a.selected.as_deref(),
        order.last().map(String::as_str),
        "clamped at the end"
    );
    press(&mut a, &view, &[KeyCode::Char('g'), KeyCode::Up]);
    assert_eq!(
        a.selected.as_deref(),
        Some(order[0].as_str()),
        "clamped at the top"
    );

    a.selected = Some("resnet50".to_owned());
    press(&mut a, &view, &[KeyCode::Char('s'), KeyCode::Char('r')]);
    assert_eq!(
        a.selected.as_deref(),
        Some("resnet50"),
        "re-sorting keeps the selection"
    );
    assert_eq!(
        names(&a).first().map(String::as_str),
        Some("resnet50"),
        "name, reversed"
    );
}

#[test]
fn sort_cycles_through_every_column_both_ways() {
    let view = fixture();
    let mut a = app(colour());
    for k in SortKey::ALL.iter().skip(1) {
        press(&mut a, &view, &[KeyCode::Char('s')]);
        assert_eq!(a.sort, *k);
    }
    press(&mut a, &view, &[KeyCode::Char('s')]);
    assert_eq!(a.sort, SortKey::ALL[0], "wraps around");
    press(&mut a, &view, &[KeyCode::Char('S')]);
    assert_eq!(a.sort, *SortKey::ALL.last().expect("keys"));
}

#[test]
fn filter_typing_backspace_enter_and_escape() {
    let view = fixture();
    let mut a = app(colour());
    press(
        &mut a,
        &view,
        &[KeyCode::Char('/'), KeyCode::Char('x'), KeyCode::Char('q')],
    );
    assert!(a.editing_filter);
    assert_eq!(a.filter, "xq");
    assert!(a.rows(&view).is_empty());
    assert_eq!(
        press(&mut a, &view, &[KeyCode::Char('q')]),
        Outcome::Redraw,
        "q types while filtering"
    );
    press(&mut a, &view, &[KeyCode::Backspace, KeyCode::Backspace]);
    press(&mut a, &view, &[KeyCode::Char('g'), KeyCode::Enter]);
    assert!(!a.editing_filter);
    assert_eq!(a.filter, "xg");
    let rows: Vec<_> = a.rows(&view).iter().map(|m| m.model.clone()).collect();
    assert_eq!(rows, ["fraud-xgb"]);
    press(&mut a, &view, &[KeyCode::Esc]);
    assert!(a.filter.is_empty(), "Esc on the overview clears the filter");
    press(
        &mut a,
        &view,
        &[KeyCode::Char('/'), KeyCode::Char('z'), KeyCode::Esc],
    );
    assert!(!a.editing_filter && a.filter.is_empty());
}

#[test]
fn detail_steps_through_models_without_going_back_and_esc_returns() {
    let view = fixture();
    let mut a = app(colour());
    let order: Vec<String> = a.rows(&view).iter().map(|m| m.model.clone()).collect();
    press(&mut a, &view, &[KeyCode::Enter]);
    assert_eq!(
        (a.screen, a.selected.as_deref()),
        (Screen::Detail, Some(order[0].as_str()))
    );
    press(&mut a, &view, &[KeyCode::Tab]);
    assert_eq!(a.selected.as_deref(), Some(order[1].as_str()));
    press(
        &mut a,
        &view,
        &[
            KeyCode::Right,
            KeyCode::Left,
            KeyCode::Left,
            KeyCode::BackTab,
        ],
    );
    assert_eq!(
        a.selected.as_deref(),
        order.last().map(String::as_str),
        "wraps"
    );
    press(&mut a, &view, &[KeyCode::Char('3')]);
    assert_eq!(a.range, Range::Hour6);
    assert_eq!(a.screen, Screen::Detail);
    press(&mut a, &view, &[KeyCode::Esc]);
    assert_eq!(a.screen, Screen::Overview);
    assert_eq!(
        a.range,
        Range::Hour6,
        "the range is remembered for the next detail"
    );
}

#[test]
fn pause_freezes_the_shown_view_while_new_views_arrive() {
    let first = fixture();
    let mut a = app(colour());
    press(&mut a, &first, &[KeyCode::Char('p')]);
    assert!(a.paused());
    let mut newer = fixture_view();
    newer.ts_ms += 1000;
    newer.models[0].stats.qps = 999.0;
    let newer = Live::new(newer, alerts());
    assert!(
        a.shown(&newer).same_as(&first),
        "paused: the old view stays"
    );
    let s = screen(a.shown(&newer), &a, 160, 45);
    assert!(s.contains("PAUSED"));
    // Keys still work on the frozen view.
    press(&mut a, &newer, &[KeyCode::Char('j')]);
    press(&mut a, &newer, &[KeyCode::Char('p')]);
    assert!(!a.paused());
    assert!(a.shown(&newer).same_as(&newer));
    assert!(!screen(&newer, &a, 160, 45).contains("PAUSED"));
}

#[test]
fn quit_keys_and_help_overlay() {
    let view = fixture();
    let mut a = app(colour());
    assert_eq!(press(&mut a, &view, &[KeyCode::Char('q')]), Outcome::Quit);
    let ctrl_c = Event::Key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    a.editing_filter = true;
    assert_eq!(
        a.handle(&ctrl_c, &view, Rect::new(0, 0, 80, 24)),
        Outcome::Quit,
        "even while typing"
    );
    a.editing_filter = false;
    press(&mut a, &view, &[KeyCode::Char('?')]);
    assert!(a.help);
    assert_eq!(press(&mut a, &view, &[KeyCode::Char('j')]), Outcome::Redraw);
    assert!(!a.help, "any key closes the help");
    assert_eq!(a.selected, None, "and does nothing else");
}

#[test]
fn mouse_wheel_moves_and_a_click_selects_then_opens() {
    let view = fixture();
    let mut a = app(colour());
    let size = Rect::new(0, 0, 160, 45);
    let order: Vec<String> = a.rows(&view).iter().map(|m| m.model.clone()).collect();
    let mouse = |kind, row| {
        Event::Mouse(MouseEvent {
            kind,
            column: 10,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    a.handle(&mouse(MouseEventKind::ScrollDown, 10), &view, size);
    assert_eq!(a.selected.as_deref(), Some(order[1].as_str()));
    // Row 0-1 header, 2 border, 3 column titles: the fourth model is on row 7.
    let s = screen(&view, &a, 160, 45);
    assert_eq!(row_of(&s, &order[3]), 7, "{s}");
    let click = mouse(MouseEventKind::Down(MouseButton::Left), 7);
    a.handle(&click, &view, size);
    assert_eq!(
        (a.screen, a.selected.as_deref()),
        (Screen::Overview, Some(order[3].as_str()))
    );
    a.handle(&click, &view, size);
    assert_eq!(
        a.screen,
        Screen::Detail,
        "a click on the selected row opens it"
    );
    let outside = mouse(MouseEventKind::Down(MouseButton::Left), 44);
    a.screen = Screen::Overview;
    assert_eq!(a.handle(&outside, &view, size), Outcome::Ignored);
}

#[test]
fn scrolling_a_long_list_keeps_the_selection_on_screen() {
    let mut view = fixture_view();
    let base = view.models[0].clone();
    view.models = (0..100)
        .map(|i| ModelView {
            model: format!("model-{i:03}"),
            ..base.clone()
        })
        .collect();
    let view = Live::new(view, alerts());
    let mut a = app(colour());
    let small = Rect::new(0, 0, 80, 24);
    press_at(&mut a, &view, &[KeyCode::Char('s')], small); // by name
    press_at(&mut a, &view, &[KeyCode::Char('G')], small);
    let s = screen(&view, &a, 80, 24);
    assert!(s.contains("model-099") && !s.contains("model-000"), "{s}");
    press_at(&mut a, &view, &[KeyCode::Up; 5], small);
    let s = screen(&view, &a, 80, 24);
    assert!(
        s.contains("model-099"),
        "moving up inside the page does not scroll:\n{s}"
    );
    press_at(&mut a, &view, &[KeyCode::PageUp], small);
    let s = screen(&view, &a, 80, 24);
    assert!(
        !s.contains("model-099") && s.contains("model-076"),
        "a page up:\n{s}"
    );
    press_at(&mut a, &view, &[KeyCode::Char('g')], small);
    assert!(screen(&view, &a, 80, 24).contains("model-000"));
}

// ---- end to end in tmux --------------------------------------------------------------

/// A private tmux server (its own socket) running one shell in a detached pane.
struct Tmux {
    socket: String,
    state: tempfile::TempDir,
}

impl Tmux {
    fn start(w: u16, h: u16, extra_env: &str) -> Self {
        let socket = format!("modelmon-test-{}", support::unique("tui"));
        let state = tempfile::tempdir().expect("temp dir");
        let path = std::env::var("PATH").unwrap_or_default();
        // A clean environment: what a user's login shell would have, and nothing of ours.
        let shell = format!(
            "env -i PATH={path} TERM=tmux-256color LANG=C.UTF-8 HOME={home} \
             XDG_CONFIG_HOME=/nonexistent XDG_STATE_HOME={home} {extra_env} \
             bash --norc --noprofile",
            home = state.path().display(),
        );
        let t = Self { socket, state };
        t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &w.to_string(),
            "-y",
            &h.to_string(),
            &shell,
        ]);
        // A lone Esc must reach the app at once, not after tmux's default 500 ms wait.
        t.tmux(&["set-option", "-s", "escape-time", "10"]);
        t
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux is installed (scripts/services.sh installs it)");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        for k in keys {
            self.tmux(&["send-keys", "-t", "t", k]);
        }
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "t"])
    }

    fn alternate_screen(&self) -> bool {
        self.tmux(&["display-message", "-p", "-t", "t", "#{alternate_on}"])
            .trim()
            == "1"
    }

    fn shell_pid(&self) -> u32 {
        self.tmux(&["display-message", "-p", "-t", "t", "#{pane_pid}"])
            .trim()
            .parse()
            .expect("a pid")
    }

    /// Polls the screen until `pred` holds; panics with the last screen otherwise.
    fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.state.path().join(name)).unwrap_or_default()
    }

    /// Runs the monitor in the pane's shell, noting the terminal settings before and after.
    fn run_monitor(&self, args: &str) {
        let bin = env!("CARGO_BIN_EXE_modelmon-tui");
        let cmd = format!(
            "stty -a > $HOME/before; {bin} {args}; echo EXIT=$?; stty -a > $HOME/after; echo PROMPT-$((40+2))-BACK"
        );
        self.tmux(&["send-keys", "-t", "t", "-l", &cmd]);
        self.keys(&["Enter"]);
    }

    /// After the monitor exited: the shell has its prompt, its settings and its screen back.
    fn assert_restored(&self) -> String {
        // The marker is computed by the shell, so the typed command line cannot match it.
        let s = self.wait("the shell to be back", |s| s.contains("PROMPT-42-BACK"));
        assert!(!self.alternate_screen(), "the alternate screen was left");
        // The first line holds the size, which a resize legitimately changes.
        let settings = |f: &str| self.file(f).lines().skip(1).collect::<Vec<_>>().join("\n");
        let (before, after) = (settings("before"), settings("after"));
        assert!(before.contains("icanon"), "stty ran before: {before}");
        assert_eq!(before, after, "stty -a differs after the monitor");
        for flag in ["icanon", "echo", "icrnl", "opost"] {
            assert!(
                after.split_whitespace().any(|w| w == flag),
                "{flag} is not restored: {after}"
            );
        }
        s
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

use crate::support;

#[test]
fn tmux_navigate_detail_help_resize_and_quit_restores_the_terminal() {
    require!(Tmux);
    let t = Tmux::start(160, 45, "");
    t.run_monitor("--demo");
    // One demo model goes silent for 50 s of every 5 minutes, so do not count on five.
    let s = t.wait("the overview with the demo models", |s| {
        s.contains("broker demo") && s.contains("fraud-xgb") && s.contains("llm-chat")
    });
    assert!(
        s.contains("MODEL") && s.contains("P95") && s.contains("QPS 5m"),
        "{s}"
    );
    assert!(t.alternate_screen(), "the UI draws on the alternate screen");

    // Down to the second row, then into its detail.
    t.keys(&["j", "Enter"]);
    let s = t.wait("the detail view", |s| {
        s.contains("range [1] 5m") && s.contains("instances")
    });
    assert!(s.contains(" 2/"), "the second model is shown:\n{s}");
    assert!(s.contains("latency ms") && s.contains("requests/s") && s.contains("status"));
    // The model's name heads the detail view. Which model comes next depends on the
    // demo's traffic-drop incident (a silent model leaves the list), so check that
    // another model is shown, still in the detail view.
    let title = |s: &str| {
        s.lines()
            .find(|l| l.contains("range [1] 5m"))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_owned)
    };
    let first = title(&s).expect("a model name in the detail header");
    t.keys(&["Tab"]);
    t.wait("the next model without going back", |s| {
        title(s).is_some_and(|m| m != first)
    });
    t.keys(&["2"]);
    t.wait("the 1h range", |s| s.contains("-1h"));
    t.keys(&["Escape"]);
    t.wait("the overview again", |s| {
        s.contains("sort health") && !s.contains("instances")
    });

    t.keys(&["?"]);
    t.wait("the help overlay", |s| {
        s.contains(" keys ") && s.contains("Shift-Tab")
    });
    t.keys(&["x"]);
    t.wait("the help to close", |s| !s.contains(" keys "));

    t.keys(&["p"]);
    t.wait("PAUSED in the header", |s| s.contains("PAUSED"));
    t.keys(&["p"]);
    t.wait("the pause to end", |s| !s.contains("PAUSED"));

    t.tmux(&["resize-window", "-t", "t", "-x", "80", "-y", "24"]);
    let s = t.wait("a redraw at 80x24", |s| {
        s.lines().count() <= 24
            && s.lines()
                .any(|l| l.starts_with('└') && l.chars().count() == 80)
    });
    for col in ["MODEL", "QPS", "P95", "P99", "ERR"] {
        assert!(s.contains(col), "{col} missing at 80x24:\n{s}");
    }

    t.keys(&["q"]);
    let s = t.assert_restored();
    assert!(s.contains("EXIT=0"), "{s}");
}

#[test]
fn tmux_sigterm_and_sighup_restore_the_terminal() {
    require!(Tmux);
    for signal in ["TERM", "HUP"] {
        let t = Tmux::start(120, 30, "");
        t.run_monitor("--demo");
        t.wait("the overview", |s| s.contains("fraud-xgb"));
        let shell = t.shell_pid();
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children"))
            .expect("the shell's children");
        let pid = children
            .split_whitespace()
            .next()
            .expect("the monitor runs");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let s = t.assert_restored();
        assert!(s.contains("EXIT=0"), "SIG{signal} is a clean exit:\n{s}");
        assert!(!s.contains("fraud-xgb"), "the UI's screen is gone:\n{s}");
    }
}

#[test]
fn tmux_no_color_and_ascii_fallback() {
    require!(Tmux);
    // A POSIX locale cannot show braille or box drawing: the UI falls back to ASCII.
    let t = Tmux::start(120, 30, "NO_COLOR=1 LC_ALL=C");
    t.run_monitor("--demo");
    let s = t.wait("the overview", |s| s.contains("fraud-xgb"));
    assert!(s.is_ascii(), "only ASCII without a UTF-8 locale:\n{s}");
    let styled = t.tmux(&["capture-pane", "-p", "-e", "-t", "t"]);
    for fg in ["[31", "[32", "[33", "[36", "[90", "38;"] {
        assert!(
            !styled.contains(&format!("\x1b{fg}")),
            "a colour ({fg}) with NO_COLOR set"
        );
    }
    t.keys(&["Enter"]);
    let s = t.wait("the detail", |s| s.contains("range [1] 5m"));
    assert!(s.is_ascii(), "only ASCII in the detail:\n{s}");
    t.keys(&["q"]);
    t.assert_restored();
}

#[test]
fn tmux_broker_down_shows_in_the_header_without_log_lines_tearing_the_screen() {
    require!(Tmux);
    let t = Tmux::start(120, 30, "");
    // Port 1 on loopback: nothing listens, so every connection attempt fails at once.
    // Without Docker: containers other tests run on this machine's engine would appear.
    t.run_monitor("--amqp amqp://127.0.0.1:1/%2f --no-docker");
    let s = t.wait("the broker reported down", |s| s.contains("broker down"));
    assert!(s.contains("no events yet"), "{s}");
    // After broker_down's 10 s the header says the monitor is blind, first thing.
    let s = t.wait("broker_down to fire", |s| s.contains("BLIND: broker down"));
    assert!(
        s.lines()
            .next()
            .is_some_and(|l| l.starts_with("modelmon   BLIND: broker down")),
        "{s}"
    );
    // Give the reconnect loop time to log a few warnings, had they gone to the screen.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let s = t.screen();
    assert!(
        !s.contains("WARN") && !s.contains("modelmon::"),
        "a log line on screen:\n{s}"
    );
    assert!(
        s.lines().next().is_some_and(|l| l.starts_with("modelmon")),
        "{s}"
    );
    t.keys(&["q"]);
    t.assert_restored();
}
