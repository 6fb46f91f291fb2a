//! The monitor's own warnings, newest first: what it logged about itself (a webhook that
//! fails, snapshots that cannot be written, desktop notifications that are off), which
//! the full screen keeps off stderr.

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

use crate::live::Live;
use crate::tui::app::AppState;
use crate::tui::format;

pub fn render(frame: &mut Frame, area: Rect, view: &Live, app: &AppState) {
    let th = app.theme;
    let w = &view.warnings;
    let kept = w.recent.len() as u64;
    let title = if w.total > kept {
        format!(
            " the monitor's warnings: {} (the newest {kept} kept) ",
            w.total
        )
    } else {
        format!(" the monitor's warnings: {} ", w.total)
    };
    let block = Block::bordered().title(title);
    if w.recent.is_empty() {
        frame.render_widget(
            Paragraph::new("no warning since the monitor started")
                .style(th.dim())
                .alignment(Alignment::Center)
                .block(block),
            area,
        );
        return;
    }
    let lines: Vec<Line> = w
        .recent
        .iter()
        .rev()
        .map(|w| {
            Line::from(vec![
                Span::styled(format!("{} UTC  ", format::clock(w.at_ms)), th.dim()),
                Span::raw(w.text.as_str()),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        area,
    );
}
