//! The bottom line: the keys that work on this screen, the filter being typed, or what
//! the last key did (a silence, an acknowledgement).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::live::Live;
use crate::tui::app::{AppState, Screen};
use crate::tui::health::Health;

/// How long a new warning takes the footer's place before the key hints come back.
const NEW_WARNING_MS: i64 = 15_000;

pub fn render(frame: &mut Frame, area: Rect, view: &Live, app: &AppState) {
    let th = app.theme;
    let line = if app.editing_filter {
        Line::from(vec![
            Span::styled("filter: ", th.accent()),
            Span::raw(app.filter.as_str()),
            Span::styled("_", th.selected()),
            Span::styled("   Enter keep · Esc clear", th.dim()),
        ])
    } else if let Some(n) = &app.notice {
        Line::from(Span::styled(n.as_str(), th.accent()))
    } else if let Some(w) = view
        .warnings
        .newest()
        .filter(|w| app.unseen_warnings(view) > 0 && view.ts_ms - w.at_ms < NEW_WARNING_MS)
    {
        Line::from(vec![
            Span::styled("warning: ", th.health(Health::Warn)),
            Span::raw(w.text.as_str()),
            Span::styled("  (w: all warnings)", th.dim()),
        ])
    } else {
        let hints: &[(&str, &str)] = match app.screen {
            Screen::Overview => &[
                ("↑↓", "move"),
                ("Enter", "detail"),
                ("/", "filter"),
                ("s", "sort"),
                ("r", "reverse"),
                ("a", "alerts"),
                ("p", "pause"),
                ("?", "help"),
                ("q", "quit"),
            ],
            Screen::Detail => &[
                ("Tab/→", "next"),
                ("S-Tab/←", "prev"),
                ("1-4", "range"),
                ("Esc", "back"),
                ("p", "pause"),
                ("?", "help"),
                ("q", "quit"),
            ],
            Screen::Warnings => &[
                ("Esc", "back"),
                ("p", "pause"),
                ("?", "help"),
                ("q", "quit"),
            ],
            Screen::Alerts => &[
                ("↑↓", "move"),
                ("x", "silence 15m/1h/4h/off"),
                ("X", "silence model"),
                ("a", "acknowledge"),
                ("Esc", "back"),
                ("p", "pause"),
                ("?", "help"),
                ("q", "quit"),
            ],
        };
        let mut spans = Vec::with_capacity(hints.len() * 2);
        for (k, what) in hints {
            spans.push(Span::styled(*k, th.accent()));
            spans.push(Span::raw(format!(" {what}  ")));
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}
