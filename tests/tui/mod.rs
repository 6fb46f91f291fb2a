//! The terminal UI: every screen rendered from a fixed, hand-built view and compared
//! with reviewed snapshots; key handling as state transitions; and the real binary
//! driven in tmux, as a user at a terminal would drive it.
//!
//! - `fixtures`: the hand-built views (models, containers, alerts, normals) the screen
//!   tests draw.
//! - `overview`, `detail`, `alerts`: what each screen shows, asserted on its text and
//!   cells and snapshotted (`snapshots/`, one file per module and snapshot name).
//! - `keys`: key and mouse handling as state transitions, and the help's list of keys.
//! - `warnings`: the monitor's own warnings in the header, the footer and their screen.
//! - `tmux`: the real binary in a private tmux server (needs tmux).
//!
//! The helpers below draw on ratatui's `TestBackend` and press keys: every module uses
//! them.

mod alerts;
mod detail;
pub mod fixtures;
mod keys;
mod overview;
mod tmux;
mod warnings;

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use modelmon::live::Live;
use modelmon::tui::app::{AppState, Outcome};
use modelmon::tui::health::Thresholds;
use modelmon::tui::theme::Theme;
use modelmon::tui::views;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;

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
