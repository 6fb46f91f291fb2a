//! The alert engine's alerts: firing, then pending, then resolved in the last 24 h, each
//! with the sentence that explains it, the selected one in full below, and the silences
//! in force. Alerts about the monitor itself have "monitor" as their subject. `x`/`X` silence the selected alert or its model, `a`
//! acknowledges it; the engine applies both at the next view.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};

use crate::alert::{Alert, AlertPhase, MONITOR, Metric, Severity, SilenceTarget};
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
                    SilenceTarget::Model(m) if m == MONITOR => {
                        "every alert of the monitor".to_owned()
                    }
                    SilenceTarget::Model(m) => format!("every alert of {m}"),
                    SilenceTarget::Alert(k) if k.model == MONITOR => {
                        format!("{} on monitor", k.rule)
                    }
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
    let selected = app.alert_index.min(rows.len() - 1);
    // The selected alert's whole story below the table: the table's explanation column
    // is cut to the width left, and on a narrow terminal there is none.
    let chosen = rows[selected];
    let story = selected_lines(chosen, view, app, list.width.saturating_sub(2));
    let [table_area, story_area] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(story.len() as u16 + 2),
    ])
    .areas(list);
    frame.render_widget(
        Paragraph::new(story).block(Block::bordered().title(format!(
            " {} on {} ",
            chosen.rule,
            chosen.subject()
        ))),
        story_area,
    );

    // Rule and subject columns as wide as their longest entry, so the explanation gets
    // what is left.
    let widest = |f: fn(&Alert) -> usize, lo: usize, hi: usize| {
        rows.iter().map(|a| f(a)).max().unwrap_or(0).clamp(lo, hi) as u16
    };
    let rule_w = widest(|a| a.rule.chars().count(), 4, 24);
    let subject_w = widest(|a| a.subject().chars().count(), 5, 24);
    let mut widths = vec![
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(rule_w),
        Constraint::Length(subject_w),
        Constraint::Length(9),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(5),
        Constraint::Length(12),
    ];
    let spacing = 2;
    let used: u16 = widths
        .iter()
        .map(|c| match c {
            Constraint::Length(n) => *n + spacing,
            _ => 0,
        })
        .sum();
    // The explanation only where it can say something; the box below has it whole.
    let why_w = usize::from(table_area.width.saturating_sub(2 + used));
    let with_why = why_w >= 20;
    if with_why {
        widths.push(Constraint::Fill(1));
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
        let subject = if a.is_monitor() {
            Cell::from(a.subject().to_owned()).style(th.accent())
        } else {
            Cell::from(a.model.clone())
        };
        let mut cells = vec![
            Cell::from(format!("{} {}", th.health_mark(level), a.state.as_str())),
            Cell::from(a.severity.as_str()),
            Cell::from(a.rule.clone()),
            subject,
            right(value(a.metric, a.value, dash)),
            right(format!(
                "{}{}",
                if a.metric.fires_below() { "< " } else { "> " },
                value(a.metric, Some(a.threshold), dash)
            )),
            right(value(a.metric, a.normal, dash)),
            right(format::age(Some(view.ts_ms - a.since_ms), dash)),
            Cell::from(flags),
        ];
        if with_why {
            cells.push(Cell::from(format::truncate(
                &a.explanation,
                why_w,
                th.ascii,
            )));
        }
        Row::new(cells).style(style)
    });
    let mut titles = vec![
        Cell::from("STATE"),
        Cell::from("SEVERITY"),
        Cell::from("RULE"),
        Cell::from("MODEL"),
        Cell::from(Line::from("VALUE").right_aligned()),
        Cell::from(Line::from("THRESHOLD").right_aligned()),
        Cell::from(Line::from("NORMAL").right_aligned()),
        Cell::from(Line::from("SINCE").right_aligned()),
        Cell::from("FLAGS"),
    ];
    if with_why {
        titles.push(Cell::from("WHY"));
    }
    let header = Row::new(titles).style(th.header());
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(spacing)
        .row_highlight_style(th.selected())
        .block(block);
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(table, table_area, &mut state);
}

/// The selected alert in full: its figures against its limits, when it began, and its
/// explanation wrapped to `width` (at most four lines).
fn selected_lines(a: &Alert, view: &Live, app: &AppState, width: u16) -> Vec<Line<'static>> {
    let th = app.theme;
    let dash = th.unknown();
    let (fires, resolves) = if a.metric.fires_below() {
        ("below", "above")
    } else {
        ("above", "below")
    };
    let mut figures = vec![
        Span::styled(
            format!("{} {}", th.health_mark(level_of(a)), a.state.as_str()),
            th.health(level_of(a)),
        ),
        Span::raw(format!(
            " {}  {} {}  fires {fires} {}  resolves {resolves} {}",
            a.severity.as_str(),
            a.metric.as_str(),
            value(a.metric, a.value, dash),
            value(a.metric, Some(a.threshold), dash),
            value(a.metric, Some(a.resolve), dash),
        )),
    ];
    if a.normal.is_some() {
        figures.push(Span::raw(format!(
            "  normal {}",
            value(a.metric, a.normal, dash)
        )));
    }
    let mut when = format!(
        "{} since {} UTC ({} ago)",
        a.state.as_str(),
        format::clock(a.since_ms),
        format::age(Some(view.ts_ms - a.since_ms), dash)
    );
    if let Some(t) = a.started_ms.filter(|&t| t != a.since_ms) {
        let _ = write!(when, ", fired at {} UTC", format::clock(t));
    }
    if a.active_since_ms < a.started_ms.unwrap_or(a.since_ms) {
        let _ = write!(
            when,
            ", pending from {} UTC",
            format::clock(a.active_since_ms)
        );
    }
    figures.push(Span::styled(format!("  {when}"), th.dim()));
    let mut lines = vec![Line::from(figures)];
    let why = if a.explanation.is_empty() {
        "no explanation recorded"
    } else {
        a.explanation.as_str()
    };
    lines.extend(
        wrap(why, usize::from(width.max(10)))
            .into_iter()
            .take(4)
            .map(Line::from),
    );
    lines
}

/// Word-wraps `s` to `width` columns. Done here rather than by the paragraph, so the
/// box can be given exactly the height its text needs.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if needed > width && !line.is_empty() {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// The colour of an alert: critical is red, anything else yellow; resolved is idle.
pub(crate) fn level_of(a: &Alert) -> Health {
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
