//! The detail of one model: its ranges and history, normal and alerts, versions, model
//! measures, time to first byte, and containers.

use std::collections::BTreeMap;

use crossterm::event::KeyCode;
use modelmon::live::Live;
use modelmon::store::view::VersionStats;
use modelmon::tui::app::Screen;
use modelmon::tui::range::Range;
use modelmon::tui::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::style::Color;

use super::fixtures::{
    NOW_MS, alerts, fixture, fixture_view, measure, rollout_view, steady_view, view_with_history,
};
use super::{app, colour, draw, press, row_of, screen, text};

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
fn steady_traffic_draws_no_drop_at_the_end_of_any_range() {
    use modelmon::tui::range::{self, RangeData};
    // One request a second, viewed 15 s into a minute: the newest minute of the hour
    // chart and the newest seconds of the 5-minute chart are still filling.
    let live = Live::from(steady_view(NOW_MS + 15_000));
    let tail = |data: RangeData| match data {
        RangeData::Points(p) => p.last().map(|p| p.qps).expect("a point"),
        RangeData::Unavailable(why) => panic!("{why}"),
    };
    for r in [Range::Hour1, Range::Hour6, Range::Day1] {
        let qps = tail(range::history_points(&live, "steady", r, 76));
        assert!(
            (0.9..1.1).contains(&qps),
            "{}: the last point at {qps}",
            r.label()
        );
    }
    let m = live.model("steady").expect("the model");
    let qps = tail(range::points(&live, m, Range::Min5, 76));
    assert!((0.9..1.1).contains(&qps), "5m: the last point at {qps}");
}

#[test]
fn detail_shows_the_normal_the_alert_engine_learnt_from_the_history() {
    use modelmon::alert::{AlertState, evaluate};
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
    let p95 = modelmon::alert::show_ms(learnt.p95_ms.expect("a p95 normal"));
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

#[test]
fn a_normal_with_two_modes_shows_as_the_range_its_minutes_keep_to() {
    // iris-classifier's cache: its slowest minutes reach 40 ms, six times its median.
    let mut alerts = alerts();
    let mut baselines = (*alerts.baselines).clone();
    let iris = baselines
        .get_mut("iris-classifier")
        .expect("iris has a normal");
    *iris = std::sync::Arc::new(modelmon::alert::Baseline {
        p95_high_ms: Some(40.0),
        ..(**iris).clone()
    });
    alerts.baselines = std::sync::Arc::new(baselines);
    let view = Live::new(fixture_view(), alerts);
    let mut a = app(colour());
    a.selected = Some("iris-classifier".to_owned());
    a.screen = Screen::Detail;
    let wide = screen(&view, &a, 160, 45);
    assert!(wide.contains(", normal 6.5–40.0 ms "), "{wide}");
    let narrow = screen(&view, &a, 80, 24);
    assert!(narrow.contains("/6.5–40.0 ms "), "{narrow}");
    // One mode (its slowest minutes under twice its median): the normal alone.
    a.selected = Some("llm-chat".to_owned());
    let s = screen(&fixture(), &a, 160, 45);
    assert!(s.contains(", normal 160 ms "), "{s}");
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
fn replicas_from_agents_show_their_host_and_a_silent_agent_says_so_once() {
    use modelmon::store::view::{AgentState, AgentView};
    let mut v = fixture_view();
    let res = v
        .resources
        .get_mut("llm-chat")
        .expect("llm-chat has containers");
    res.containers[1].host = Some("gpu-b".to_owned());
    res.silent_hosts = vec!["gpu-b".to_owned()];
    res.usage = modelmon::store::view::Usage::default();
    v.agents = vec![
        AgentView {
            host: "gpu-a".to_owned(),
            ..AgentView::default()
        },
        AgentView {
            host: "gpu-b".to_owned(),
            state: AgentState::Silent,
            ..AgentView::default()
        },
    ];
    let view = Live {
        view: std::sync::Arc::new(v),
        ..fixture()
    };
    let mut a = app(colour());
    a.selected = Some("llm-chat".to_owned());
    a.screen = Screen::Detail;
    let s = screen(&view, &a, 160, 45);
    assert!(
        s.contains("agents 1 live, 1 silent (gpu-b)"),
        "the header:\n{s}"
    );
    assert!(
        s.contains("agent silent on gpu-b: figures unknown"),
        "the containers box says why:\n{s}"
    );
    assert_eq!(s.matches("agent silent on").count(), 1, "once:\n{s}");
    let header = s.lines().nth(row_of(&s, "HOST")).unwrap_or_default();
    assert!(header.contains("NAME"), "{header}");
    let local = s.lines().nth(row_of(&s, "llm-chat-1 ")).unwrap_or_default();
    assert!(local.contains("local"), "{local}");
    let remote = s
        .lines()
        .nth(row_of(&s, "llm-chat-2   "))
        .unwrap_or_default();
    assert!(remote.contains("gpu-b"), "{remote}");
    // Without agents, no HOST column: the replicas are all this engine's.
    a.selected = Some("iris".to_owned());
    let s = screen(&view, &a, 160, 45);
    assert!(!s.contains("HOST"), "{s}");
}
