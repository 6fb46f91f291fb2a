//! The alerts pane and its keys (silence, acknowledge), the monitor's own alerts in the
//! header, and the health thresholds the alert rules set.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::KeyCode;
use modelmon::alert::{AlertKey, AlertPhase, AlertsView, Command, SilenceTarget};
use modelmon::live::Live;
use modelmon::tui::app::{AppState, Outcome, SILENCE_STEPS, Screen};
use modelmon::tui::health::Thresholds;
use ratatui::style::Color;

use super::fixtures::{NOW_MS, alert, blind, explained, fixture, fixture_view};
use super::{app, colour, draw, press, row_of, screen};

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
fn thresholds_follow_the_alert_rules() {
    let mut rules = modelmon::alert::builtin_rules();
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

/// The engine re-sorts its alerts at every evaluation: the keys act on the alert the
/// cursor was put on, not on whatever alert moved into its row.
#[test]
fn the_selection_follows_its_alert_when_the_engine_re_sorts() {
    let view = fixture();
    let mut a = alerts_app(&view);
    // Row 1: llm-chat's latency regression.
    press(&mut a, &view, &[KeyCode::Down]);
    let regression = AlertKey {
        rule: "latency_regression".to_owned(),
        model: "llm-chat".to_owned(),
    };
    // At the next evaluation iris-classifier's error spike fires: critical, it sorts
    // before the warning, into row 1.
    let mut alerts = (*view.alerts).clone();
    let at = alerts
        .active
        .iter()
        .position(|al| al.rule == "error_spike")
        .expect("the error spike");
    let mut spike = alerts.active.remove(at);
    spike.state = AlertPhase::Firing;
    spike.since_ms = NOW_MS;
    spike.started_ms = Some(NOW_MS);
    alerts.active.insert(1, spike);
    let mut next = view.clone();
    next.alerts = Arc::new(alerts);
    let s = screen(&next, &a, 160, 45);
    assert!(
        row_of(&s, "error_spike") < row_of(&s, "latency_regression"),
        "{s}"
    );
    assert!(
        s.contains("latency_regression on llm-chat"),
        "the box still tells the selected alert:\n{s}"
    );
    press(&mut a, &next, &[KeyCode::Char('x')]);
    assert_eq!(
        a.take_commands(),
        [Command::Silence {
            target: SilenceTarget::Alert(regression.clone()),
            for_: SILENCE_STEPS[0],
        }]
    );
    press(&mut a, &next, &[KeyCode::Char('a')]);
    assert_eq!(a.take_commands(), [Command::Acknowledge(regression)]);
    // Down moves from where the alert is now (row 2) to the next row.
    press(&mut a, &next, &[KeyCode::Down]);
    let s = screen(&next, &a, 160, 45);
    assert!(s.contains("latency_regression on fraud-xgb"), "{s}");

    // Once the selected alert has left the list, the cursor stays on its row.
    let mut gone = (*next.alerts).clone();
    gone.recent.retain(|al| al.model != "fraud-xgb");
    let mut last = next.clone();
    last.alerts = Arc::new(gone);
    let s = screen(&last, &a, 160, 45);
    assert!(s.contains("broker_down on monitor"), "{s}");
    // That frame anchors the cursor to what it drew there: when a new alert then sorts
    // in above it before a key, the key still acts on the alert the user saw.
    a.follow_alert(&last);
    let mut more = (*last.alerts).clone();
    let mut new = more.active[0].clone();
    new.model = "new-model".to_owned();
    more.active.insert(0, new);
    let mut resorted = last.clone();
    resorted.alerts = Arc::new(more);
    press(&mut a, &resorted, &[KeyCode::Char('X')]);
    assert_eq!(
        a.take_commands(),
        [Command::Silence {
            target: SilenceTarget::Model(String::new()),
            for_: SILENCE_STEPS[0],
        }]
    );
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
