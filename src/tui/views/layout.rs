//! Where things are on screen. Shared by the renderers and by mouse handling, so a
//! click lands on the row that was drawn there.

use ratatui::layout::{Constraint, Layout, Margin, Rect};

pub const HEADER_H: u16 = 2;
pub const FOOTER_H: u16 = 1;

/// Header, body and footer of the whole screen.
pub fn frame_areas(size: Rect) -> [Rect; 3] {
    Layout::vertical([
        Constraint::Length(HEADER_H),
        Constraint::Min(0),
        Constraint::Length(FOOTER_H),
    ])
    .areas(size)
}

/// The overview's table, inside its border.
pub fn overview_table(size: Rect) -> Rect {
    frame_areas(size)[1].inner(Margin::new(1, 1))
}

/// The overview's data rows: the table less its column header line.
pub fn overview_rows(size: Rect) -> Rect {
    let t = overview_table(size);
    Rect {
        y: t.y.saturating_add(1),
        height: t.height.saturating_sub(1),
        ..t
    }
}
