//! The overview: one row per model, worst first, with the header above it; its sort,
//! filter, narrow-terminal and no-colour/ASCII variants.

use std::sync::Arc;

use crossterm::event::KeyCode;
use modelmon::live::Live;
use modelmon::tui::app::{Screen, SortKey};
use modelmon::tui::theme::Theme;
use ratatui::style::Color;

use super::fixtures::{alert, alerts, fixture, fixture_view, measure, rollout_view, stats};
use super::{app, colour, draw, press, row_of, screen, text};

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
    assert_last(&s, "embedder-v2");
    press(&mut a, &view, &[KeyCode::Char('r')]);
    let s = screen(&view, &a, 160, 45);
    assert!(row_of(&s, "resnet50") < row_of(&s, "llm-chat"));
    // Reversing orders the figures; embedder-v2 has none (–) and stays last.
    assert_last(&s, "embedder-v2");
    insta::assert_snapshot!("overview_by_p95_reversed", s);
}

/// `model` is the last model row on screen.
fn assert_last(screen: &str, model: &str) {
    for other in MODELS.iter().filter(|m| **m != model) {
        assert!(
            row_of(screen, other) < row_of(screen, model),
            "{model} is not below {other}:\n{screen}"
        );
    }
}

const MODELS: [&str; 5] = [
    "fraud-xgb",
    "llm-chat",
    "iris-classifier",
    "embedder-v2",
    "resnet50",
];

/// embedder-v2 had no request in the window: idle, not a warning, and below the
/// healthy models; its stale last-seen figure alone is coloured.
#[test]
fn a_model_without_requests_is_idle_and_sorted_last() {
    let view = fixture();
    let mut a = app(colour());
    let buf = draw(&view, &a, 160, 45);
    let s = text(&buf);
    let y = row_of(&s, "embedder-v2");
    let line = s.lines().nth(y).unwrap_or_default();
    assert!(line.starts_with("│○ embedder-v2"), "{line}");
    assert_eq!(buf[(1, y as u16)].fg, Color::DarkGray, "idle is grey");
    assert_last(&s, "embedder-v2");
    // The SEEN cell (2m) is yellow: it has been silent for longer than 30 s.
    let x = line.find(" 2m ").expect("its last seen") + 1;
    let x = line[..x].chars().count() as u16;
    assert_eq!(buf[(x, y as u16)].symbol(), "2");
    assert_eq!(buf[(x, y as u16)].fg, Color::Yellow);
    // Health reversed: best first, and idle, which has no health to judge, still last.
    press(&mut a, &view, &[KeyCode::Char('r')]);
    let s = screen(&view, &a, 160, 45);
    assert!(row_of(&s, "fraud-xgb") < row_of(&s, "llm-chat"), "{s}");
    assert_last(&s, "embedder-v2");

    // An alert of its own, here its traffic gone, makes it a warning again.
    let mut dropped = (*view.alerts).clone();
    dropped.active.push(alert(
        "traffic_drop",
        "embedder-v2",
        "qps",
        "warning",
        "firing",
        Some(0.0),
        1.0,
        60,
    ));
    let mut alerted = view.clone();
    alerted.alerts = Arc::new(dropped);
    let s = screen(&alerted, &app(colour()), 160, 45);
    let line = s.lines().nth(row_of(&s, "embedder-v2")).unwrap_or_default();
    assert!(line.starts_with("│▲ embedder-v2"), "{line}");
    assert!(row_of(&s, "embedder-v2") < row_of(&s, "fraud-xgb"), "{s}");
}

/// Names sort A to Z whatever their case, reversed Z to A.
#[test]
fn the_name_sort_ignores_case() {
    let mut view = fixture_view();
    let names = [
        "Zeta-gpt",
        "alpha-bert",
        "beta-vit",
        "Alpha-bert",
        "embedder-v2",
    ];
    for (m, name) in view.models.iter_mut().zip(names) {
        name.clone_into(&mut m.model);
    }
    let view = Live::from(view);
    let mut a = app(colour());
    press(&mut a, &view, &[KeyCode::Char('s')]);
    assert_eq!(a.sort, SortKey::Name);
    let s = screen(&view, &a, 160, 45);
    let order = |s: &str| {
        let mut rows: Vec<(usize, &str)> = names.iter().map(|n| (row_of(s, n), *n)).collect();
        rows.sort_unstable();
        rows.into_iter().map(|(_, n)| n).collect::<Vec<_>>()
    };
    // Names equal but for case keep a fixed order: capitals first, as bytes go.
    assert_eq!(
        order(&s),
        [
            "Alpha-bert",
            "alpha-bert",
            "beta-vit",
            "embedder-v2",
            "Zeta-gpt"
        ],
        "{s}"
    );
    press(&mut a, &view, &[KeyCode::Char('r')]);
    let s = screen(&view, &a, 160, 45);
    assert_eq!(
        order(&s),
        [
            "Zeta-gpt",
            "embedder-v2",
            "beta-vit",
            "alpha-bert",
            "Alpha-bert"
        ],
        "{s}"
    );
}

/// A terminal a line or two high, or none at all (a pane squeezed in tmux, a resize
/// under way), shows what fits of every screen rather than panicking.
#[test]
fn a_terminal_a_few_lines_high_draws_every_screen() {
    let view = fixture();
    for screen_to in [Screen::Overview, Screen::Detail, Screen::Alerts] {
        for help in [false, true] {
            let mut a = app(colour());
            a.selected = Some("llm-chat".to_owned());
            a.screen = screen_to;
            a.help = help;
            for (w, h) in [(80, 4), (80, 3), (80, 2), (80, 1), (80, 0), (10, 2), (1, 1)] {
                let s = screen(&view, &a, w, h);
                if (w, h) == (80, 2) && !help {
                    assert!(s.starts_with("modelmon"), "{screen_to:?} at {w}x{h}:\n{s}");
                }
            }
        }
    }
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
fn overview_shows_an_llms_tokens_per_second_and_inter_token_latency() {
    // llm-chat reports its output tokens and, per answer, the mean gap between tokens.
    let mut view = rollout_view();
    let llm = view
        .models
        .iter_mut()
        .find(|m| m.model == "llm-chat")
        .expect("llm-chat");
    let (n, qps) = (llm.stats.requests, llm.stats.qps);
    llm.ml.insert(
        "itl_mean_us".to_owned(),
        measure(n, qps, 24_800.0, [23_100.0, 41_700.0, 88_000.0]),
    );
    // 301 tokens an answer at 6.2 answers/s.
    assert_eq!(llm.tokens_per_s().map(f64::round), Some(1866.0));
    let live = Live::new(view, alerts());
    let s = screen(&live, &app(colour()), 180, 45);
    let header = s.lines().nth(row_of(&s, "MODEL")).unwrap_or_default();
    assert!(header.contains("TTFB95  ITL95  TOK/S    ERR"), "{header}");
    // TTFB p95 420 ms, ITL p95 41.7 ms, 1.9k tokens/s.
    let llm = s.lines().nth(row_of(&s, "llm-chat")).unwrap_or_default();
    assert!(llm.contains("420   41.7   1.9k   0.3%"), "{llm}");
    let fraud = s.lines().nth(row_of(&s, "fraud-xgb")).unwrap_or_default();
    assert!(fraud.contains("–      –      –"), "{fraud}");
    // At 80 columns they give way to what matters for every model; at 92 (docs/tui.md)
    // they are back.
    let s = screen(&live, &app(colour()), 80, 24);
    assert!(!s.contains("ITL95") && !s.contains("TOK/S"), "{s}");
    let s = screen(&live, &app(colour()), 92, 24);
    assert!(s.contains("ITL95") && s.contains("TOK/S"), "{s}");

    // Without tokens, no LLM columns at all.
    let s = screen(&fixture(), &app(colour()), 180, 45);
    assert!(!s.contains("ITL95") && !s.contains("TOK/S"), "{s}");
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
