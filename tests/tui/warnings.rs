//! The monitor's own warnings, which the full screen keeps off stderr: counted in the
//! header until seen, the newest in the footer for a while, all of them under `w`.

use std::sync::Arc;

use crossterm::event::KeyCode;
use modelmon::live::Live;
use modelmon::tui::app::Screen;
use modelmon::warnings::{Warning, Warnings};

use super::fixtures::{NOW_MS, fixture};
use super::{app, colour, press, screen};

/// The fixture with two warnings: a webhook that failed long ago and a full disk just now.
fn warned() -> Live {
    Live {
        warnings: Arc::new(Warnings {
            total: 2,
            recent: vec![
                Warning {
                    at_ms: NOW_MS - 600_000,
                    text: "alert notification not delivered after 3 attempt(s): connection \
                           refused (webhook=\"oncall\")"
                        .to_owned(),
                },
                Warning {
                    at_ms: NOW_MS - 2_000,
                    text: "cannot write the snapshot: No space left on device (os error 28); \
                           the history is kept in memory"
                        .to_owned(),
                },
            ],
        }),
        ..fixture()
    }
}

#[test]
fn new_warnings_are_counted_in_the_header_and_the_newest_takes_the_footer() {
    let view = warned();
    let a = app(colour());
    let s = screen(&view, &a, 160, 45);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[1].contains("2 new warnings (w)"), "header:\n{s}");
    let footer = lines.last().copied().unwrap_or_default();
    assert!(
        footer.starts_with("warning: cannot write the snapshot: No space left on device"),
        "footer:\n{s}"
    );
    // Without warnings, neither: the header and the key hints as before.
    let quiet = screen(&fixture(), &a, 160, 45);
    assert!(!quiet.contains("warning"), "{quiet}");
    assert!(
        quiet.lines().last().is_some_and(|l| l.contains("help")),
        "{quiet}"
    );
}

#[test]
fn a_warning_leaves_the_footer_after_15_seconds_but_stays_counted() {
    let mut view = warned();
    let mut v = (*view.view).clone();
    v.ts_ms = NOW_MS + 14_000;
    view.view = Arc::new(v);
    let a = app(colour());
    let s = screen(&view, &a, 160, 45);
    assert!(
        s.lines().last().is_some_and(|l| l.contains("help")),
        "footer:\n{s}"
    );
    assert!(
        s.lines()
            .nth(1)
            .is_some_and(|l| l.contains("2 new warnings (w)")),
        "{s}"
    );
}

#[test]
fn w_lists_them_newest_first_and_what_was_shown_is_no_longer_new() {
    let view = warned();
    let mut a = app(colour());
    press(&mut a, &view, &[KeyCode::Char('w')]);
    assert_eq!(a.screen, Screen::Warnings);
    // What the loop does with every frame it draws.
    a.see_warnings(&view);
    let s = screen(&view, &a, 160, 45);
    let disk = s.find("No space left on device").expect("the disk warning");
    let hook = s
        .find("not delivered after 3 attempt(s)")
        .expect("the webhook warning");
    assert!(disk < hook, "newest first:\n{s}");
    assert!(s.contains("the monitor's warnings: 2"), "{s}");
    assert!(
        s.contains("UTC  alert notification"),
        "each with its time:\n{s}"
    );
    insta::assert_snapshot!("warnings", s);

    press(&mut a, &view, &[KeyCode::Esc]);
    assert_eq!(a.screen, Screen::Overview);
    let s = screen(&view, &a, 160, 45);
    let header = s.lines().nth(1).unwrap_or_default();
    assert!(
        header.contains("warnings (w)") && !header.contains("new"),
        "{s}"
    );
    assert!(s.lines().last().is_some_and(|l| l.contains("help")), "{s}");

    // A third warning is new again.
    let mut more = (*view.warnings).clone();
    more.total += 1;
    more.recent.push(Warning {
        at_ms: NOW_MS - 1_000,
        text: "the agent on gpu-b has gone silent".to_owned(),
    });
    let view = Live {
        warnings: Arc::new(more),
        ..view
    };
    let s = screen(&view, &a, 160, 45);
    assert!(
        s.lines()
            .nth(1)
            .is_some_and(|l| l.contains("1 new warning (w)")),
        "{s}"
    );
}

#[test]
fn the_warnings_screen_says_when_there_are_none() {
    let view = fixture();
    let mut a = app(colour());
    press(&mut a, &view, &[KeyCode::Char('w')]);
    let s = screen(&view, &a, 100, 20);
    assert!(s.contains("no warning since the monitor started"), "{s}");
}
