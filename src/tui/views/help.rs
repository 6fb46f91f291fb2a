//! The `?` overlay: every key, from the same table the docs are checked against.

use ratatui::Frame;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph};

use crate::live::Live;
use crate::tui::app::AppState;

/// Every key: where it works, the key, what it does.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("anywhere", "q, Ctrl-C", "quit"),
    ("anywhere", "?", "this help (any key closes it)"),
    ("anywhere", "p", "pause the display; data keeps flowing"),
    ("anywhere", "w", "the monitor's own warnings, newest first"),
    ("overview", "↑ ↓, j k", "select a model (mouse wheel too)"),
    ("overview", "PgUp PgDn", "a page up or down"),
    ("overview", "g G, Home End", "first or last model"),
    ("overview", "Enter, click", "detail of the selected model"),
    ("overview", "/", "filter by name; Enter keeps, Esc clears"),
    ("overview", "s S", "next or previous sort column"),
    ("overview", "r", "reverse the sort"),
    ("overview", "a", "alerts: firing, pending, resolved"),
    ("overview", "Esc", "clear the filter"),
    ("detail", "Tab, →, l", "next model"),
    ("detail", "Shift-Tab, ←, h", "previous model"),
    ("detail", "1 2 3 4", "range: 5m, 1h, 6h, 24h"),
    ("detail", "Esc, Backspace", "back to the overview"),
    ("alerts", "↑ ↓, j k", "select an alert"),
    ("alerts", "x", "silence it: 15m, again 1h, 4h, then lift"),
    ("alerts", "X", "silence its model the same way"),
    ("alerts", "a", "acknowledge it: no more reminders"),
    ("alerts", "Esc, Backspace", "back to the overview"),
    ("warnings", "Esc, Backspace", "back to the overview"),
];

pub fn render(frame: &mut Frame, area: Rect, _view: &Live, app: &AppState) {
    let th = app.theme;
    let width = 70.min(area.width);
    let height = (KEYS.len() as u16 + 4).min(area.height);
    let popup = area.centered(Constraint::Length(width), Constraint::Length(height));
    let mut lines = Vec::with_capacity(KEYS.len() + 2);
    let mut last = "";
    for (screen, key, what) in KEYS {
        let place = if *screen == last { "" } else { screen };
        last = screen;
        lines.push(Line::from(vec![
            Span::styled(format!("{place:<9}"), th.dim()),
            Span::styled(format!("{key:<17}"), th.accent()),
            Span::raw(*what),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::styled(
        "Colours: green ok, yellow warn, red critical, grey idle.",
        th.dim(),
    ));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys ")),
        popup,
    );
}
