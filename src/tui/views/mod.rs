//! Pure render functions: each draws a [`View`] and the [`AppState`] into a frame and
//! reads nothing else. They never aggregate; the figures come from the view as they are.

pub mod alerts;
pub mod detail;
pub mod footer;
pub mod header;
pub mod help;
pub mod layout;
pub mod overview;
pub mod panels;
pub mod warnings;

use ratatui::Frame;
use ratatui::buffer::Buffer;

use super::app::{AppState, Screen};
use crate::live::Live;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, view: &Live, app: &AppState) {
    let [head, body, foot] = layout::frame_areas(frame.area());
    header::render(frame, head, view, app);
    match app.screen {
        Screen::Overview => overview::render(frame, body, view, app),
        Screen::Detail => detail::render(frame, body, view, app),
        Screen::Alerts => alerts::render(frame, body, view, app),
        Screen::Warnings => warnings::render(frame, body, view, app),
    }
    footer::render(frame, foot, view, app);
    if app.help {
        help::render(frame, frame.area(), view, app);
    }
    if app.theme.ascii {
        asciify(frame.buffer_mut());
    }
}

/// Replaces every non-ASCII glyph the widgets drew (borders, braille, blocks) with an
/// ASCII look-alike. One pass at the end keeps every widget free of the concern.
pub fn asciify(buf: &mut Buffer) {
    for cell in &mut buf.content {
        let s = cell.symbol();
        if s.is_ascii() {
            continue;
        }
        let c = s.chars().next().unwrap_or(' ');
        let a = ascii_for(c);
        cell.set_char(a);
    }
}

fn ascii_for(c: char) -> char {
    match c {
        '─' | '━' | '═' | '╌' | '┄' | '┈' | '–' | '—' | '▃' | '▄' => '-',
        '│' | '┃' | '║' | '╎' | '┆' | '┊' => '|',
        '┌' | '┐' | '└' | '┘' | '╭' | '╮' | '╰' | '╯' | '├' | '┤' | '┬' | '┴' | '┼' => {
            '+'
        }
        '▁' | '▂' => '_',
        '▅' | '▆' => '=',
        '▇' | '█' => '#',
        '↑' | '▲' => '^',
        '↓' | '▼' => 'v',
        '…' => '~',
        '•' | '·' => '.',
        // Figures in explanations (`12× its normal`) and key hints (`Tab/→ next`).
        '×' | '✖' => 'x',
        '→' | '≥' => '>',
        '←' | '≤' => '<',
        '\u{2800}' => ' ',
        '\u{2801}'..='\u{28ff}' => '*',
        _ => '?',
    }
}
