//! The bottom line: the keys that work on this screen, the filter being typed, or what
//! the last key did (a silence, an acknowledgement).

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::live::Live;
use crate::tui::app::{AppState, Screen};

pub fn render(frame: &mut Frame, area: Rect, _view: &Live, app: &AppState) {
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
