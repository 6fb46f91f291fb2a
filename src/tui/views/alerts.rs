//! The alert engine's alerts: firing, then pending, then resolved in the last 24 h, with
//! the silences in force. `x`/`X` silence the selected alert or its model, `a`
//! acknowledges it; the engine applies both at the next view.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::alert::{Alert, AlertPhase, Metric, Severity, SilenceTarget};
use crate::live::Live;
use crate::tui::app::AppState;
use crate::tui::format;
use crate::tui::health::Health;

pub fn render(frame: &mut Frame, area: Rect, view: &Live, app: &AppState) {
    let th = app.theme;
    let dash = th.unknown();
    let rows = app.alert_rows(view);
    let count = |p: AlertPhase| rows.iter().filter(|a| a.state == p).count();
    let block = Block::bordered().title(format!(
        " alerts: {} firing · {} pending · {} resolved (24 h) ",
        count(AlertPhase::Firing),
        count(AlertPhase::Pending),
        count(AlertPhase::Resolved),
    ));
    let silences = &view.alerts.silences;
    let [list, silences_area] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(if silences.is_empty() {
            0
        } else {
            silences.len().min(5) as u16 + 2
        }),
    ])
    .areas(area);
    if !silences.is_empty() {
        let lines: Vec<Line> = silences
            .iter()
            .map(|s| {
                let what = match &s.target {
                    SilenceTarget::Model(m) => format!("every alert of {m}"),
                    SilenceTarget::Alert(k) => format!("{} on {}", k.rule, k.model),
                };
                Line::from(vec![
                    Span::raw(what),
                    Span::styled(
                        format!("  until {} UTC", format::clock(s.until_ms)),
                        th.dim(),
                    ),
                ])
            })
            .collect();
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(" silences ")),
            silences_area,
        );
    }
    if rows.is_empty() {
        frame.render_widget(
            Paragraph::new("no alert firing, pending or resolved in the last 24 h")
                .style(th.dim())
                .alignment(Alignment::Center)
                .block(block),
            list,
        );
        return;
    }
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let body = rows.iter().map(|a| {
        let level = level_of(a);
        let flags = [
            a.silenced.then_some("silenced"),
            a.acknowledged.then_some("ack"),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let style = match a.state {
            AlertPhase::Firing => th.health(level),
            AlertPhase::Pending => Style::new(),
            AlertPhase::Resolved => th.dim(),
        };
        Row::new([
            Cell::from(format!("{} {}", th.health_mark(level), a.state.as_str())),
            Cell::from(a.severity.as_str()),
            Cell::from(a.rule.clone()),
            Cell::from(a.model.clone()),
            right(value(a.metric, a.value, dash)),
            right(format!(
                "{}{}",
                if a.metric.fires_below() { "< " } else { "> " },
                value(a.metric, Some(a.threshold), dash)
            )),
            right(format::age(Some(view.ts_ms - a.since_ms), dash)),
            Cell::from(flags),
        ])
        .style(style)
    });
    let header = Row::new([
        Cell::from("STATE"),
        Cell::from("SEVERITY"),
        Cell::from("RULE"),
        Cell::from("MODEL"),
        Cell::from(Line::from("VALUE").right_aligned()),
        Cell::from(Line::from("THRESHOLD").right_aligned()),
        Cell::from(Line::from("SINCE").right_aligned()),
        Cell::from("FLAGS"),
    ])
    .style(th.header());
    let table = Table::new(
        body,
        [
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Min(12),
            Constraint::Min(12),
            Constraint::Length(9),
            Constraint::Length(11),
            Constraint::Length(5),
            Constraint::Length(12),
        ],
    )
    .header(header)
    .column_spacing(2)
    .row_highlight_style(th.selected())
    .block(block);
    let mut state = TableState::default().with_selected(Some(app.alert_index.min(rows.len() - 1)));
    frame.render_stateful_widget(table, list, &mut state);
}

/// The colour of an alert: critical is red, anything else yellow; resolved is idle.
fn level_of(a: &Alert) -> Health {
    match (a.state, a.severity) {
        (AlertPhase::Resolved, _) => Health::Idle,
        (_, Severity::Critical) => Health::Crit,
        _ => Health::Warn,
    }
}

/// A rule's figure in the unit of its metric.
fn value(metric: Metric, v: Option<f64>, dash: &str) -> String {
    let Some(v) = v else {
        return dash.to_owned();
    };
    match metric {
        Metric::P50Ms | Metric::P95Ms | Metric::P99Ms => {
            format!("{} ms", format::ms(Some(v), dash))
        }
        Metric::ErrorRate => format::pct(Some(v), dash),
        Metric::Qps => format!("{}/s", format::qps(v)),
        Metric::CpuPercent | Metric::CpuLimitPercent | Metric::MemoryPercent => {
            format!("{v:.0}%")
        }
        m => m.show(v),
    }
}
