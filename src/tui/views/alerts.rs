//! The alert engine's alerts: firing, then pending, then resolved in the last 24 h, each
//! with the sentence that explains it, the selected one in full below, and the silences
//! in force. Alerts about the monitor itself have "monitor" as their subject. `x`/`X`
//! silence the selected alert or its model, `a` acknowledges it; the engine applies
//! both at the next view.

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
    let selected = app.selected_alert_index(&rows).unwrap_or(0);
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
    let spacing = 2;
    let inner = table_area.width.saturating_sub(2);
    let mut cols = vec![
        (Col::State, 10),
        (Col::Severity, 8),
        (Col::Rule, rule_w),
        (Col::Subject, subject_w),
        (Col::Value, 9),
        (Col::Threshold, 11),
        (Col::Normal, 9),
        (Col::Since, 5),
        (Col::Flags, 12),
    ];
    let used = |cols: &[(Col, u16)]| cols.iter().map(|(_, w)| w + spacing).sum::<u16>();
    // Narrow: columns go by priority (the mark tells the severity, the box below has
    // the normal, the flags and the limits) rather than being squeezed into stubs.
    for drop in [Col::Severity, Col::Normal, Col::Flags, Col::Threshold] {
        if used(&cols) <= inner + spacing {
            break;
        }
        cols.retain(|(c, _)| *c != drop);
    }
    // The explanation only where it can say something; the box below has it whole.
    let why_w = usize::from(inner.saturating_sub(used(&cols)));
    if why_w >= 20 {
        cols.push((Col::Why, 0));
    }
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|&(c, w)| {
            if c == Col::Why {
                Constraint::Fill(1)
            } else {
                Constraint::Length(w)
            }
        })
        .collect();
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let body = rows.iter().map(|a| {
        let level = level_of(a);
        let style = match a.state {
            AlertPhase::Firing => th.health(level),
            AlertPhase::Pending => Style::new(),
            AlertPhase::Resolved => th.dim(),
        };
        let cells = cols.iter().map(|&(c, _)| match c {
            Col::State => Cell::from(format!("{} {}", th.health_mark(level), a.state.as_str())),
            Col::Severity => Cell::from(a.severity.as_str()),
            Col::Rule => Cell::from(a.rule.clone()),
            Col::Subject if a.is_monitor() => Cell::from(a.subject().to_owned()).style(th.accent()),
            Col::Subject => Cell::from(a.model.clone()),
            Col::Value => right(value(a.metric, a.value, dash)),
            Col::Threshold => right(format!(
                "{}{}",
                if a.metric.fires_below() { "< " } else { "> " },
                value(a.metric, Some(a.threshold), dash)
            )),
            Col::Normal => right(value(a.metric, a.normal, dash)),
            Col::Since => right(format::age(Some(view.ts_ms - a.since_ms), dash)),
            Col::Flags => Cell::from(
                [
                    a.silenced.then_some("silenced"),
                    a.acknowledged.then_some("ack"),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            ),
            Col::Why => Cell::from(format::truncate(&a.explanation, why_w, th.ascii)),
        });
        Row::new(cells).style(style)
    });
    let titles = cols.iter().map(|&(c, _)| {
        let (title, right_aligned) = c.title();
        let line = Line::from(title);
        Cell::from(if right_aligned {
            line.right_aligned()
        } else {
            line
        })
    });
    let header = Row::new(titles).style(th.header());
    let table = Table::new(body, widths)
        .header(header)
        .column_spacing(spacing)
        .row_highlight_style(th.selected())
        .block(block);
    let mut state = TableState::default().with_selected(Some(selected));
    frame.render_stateful_widget(table, table_area, &mut state);
}

/// The selected alert in full: its figures against its limits and its flags, when it
/// began, and its explanation, each wrapped to `width` (the explanation to four lines).
fn selected_lines(a: &Alert, view: &Live, app: &AppState, width: u16) -> Vec<Line<'static>> {
    let th = app.theme;
    let dash = th.unknown();
    let width = usize::from(width.max(10));
    let level = level_of(a);
    let head = format!("{} {}", th.health_mark(level), a.state.as_str());
    let (fires, resolves) = if a.metric.fires_below() {
        ("below", "above")
    } else {
        ("above", "below")
    };
    let mut figures = vec![
        head.clone(),
        a.severity.as_str().to_owned(),
        format!("{} {}", a.metric.as_str(), value(a.metric, a.value, dash)),
        format!("fires {fires} {}", value(a.metric, Some(a.threshold), dash)),
        format!(
            "resolves {resolves} {}",
            value(a.metric, Some(a.resolve), dash)
        ),
    ];
    if a.normal.is_some() {
        figures.push(format!("normal {}", value(a.metric, a.normal, dash)));
    }
    // The flags too: the table drops its FLAGS column first on a narrow terminal.
    if a.silenced {
        figures.push("silenced".to_owned());
    }
    if a.acknowledged {
        figures.push("acknowledged".to_owned());
    }
    let mut when = vec![format!(
        "{} since {} UTC ({} ago)",
        a.state.as_str(),
        format::clock(a.since_ms),
        format::age(Some(view.ts_ms - a.since_ms), dash)
    )];
    if let Some(t) = a.started_ms.filter(|&t| t != a.since_ms) {
        when.push(format!("fired at {} UTC", format::clock(t)));
    }
    if a.active_since_ms < a.started_ms.unwrap_or(a.since_ms) {
        when.push(format!(
            "pending from {} UTC",
            format::clock(a.active_since_ms)
        ));
    }
    let mut lines: Vec<Line> = pack(&figures, "  ", width)
        .into_iter()
        .map(|l| match l.strip_prefix(&head) {
            // The mark and state in the alert's colour, as in its row.
            Some(rest) => Line::from(vec![
                Span::styled(head.clone(), th.health(level)),
                Span::raw(rest.to_owned()),
            ]),
            None => Line::from(l),
        })
        .collect();
    lines.extend(
        pack(&when, ", ", width)
            .into_iter()
            .map(|l| Line::styled(l, th.dim())),
    );
    let why = if a.explanation.is_empty() {
        "no explanation recorded"
    } else {
        a.explanation.as_str()
    };
    lines.extend(wrap(why, width).into_iter().take(4).map(Line::from));
    lines
}

/// Joins `parts` with `sep` into lines of at most `width` columns, never splitting a
/// part ("fires above 480 ms" stays whole).
fn pack(parts: &[String], sep: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for p in parts {
        let needed = line.chars().count() + sep.chars().count() + p.chars().count();
        if !line.is_empty() && needed > width {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push_str(sep);
        }
        line.push_str(p);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
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

/// The table's columns, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    State,
    Severity,
    Rule,
    Subject,
    Value,
    Threshold,
    Normal,
    Since,
    Flags,
    Why,
}

impl Col {
    /// The header, and whether the column is right-aligned (figures are).
    fn title(self) -> (&'static str, bool) {
        match self {
            Self::State => ("STATE", false),
            Self::Severity => ("SEVERITY", false),
            Self::Rule => ("RULE", false),
            Self::Subject => ("MODEL", false),
            Self::Value => ("VALUE", true),
            Self::Threshold => ("THRESHOLD", true),
            Self::Normal => ("NORMAL", true),
            Self::Since => ("SINCE", true),
            Self::Flags => ("FLAGS", false),
            Self::Why => ("WHY", false),
        }
    }
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
        Metric::P50Ms
        | Metric::P95Ms
        | Metric::P99Ms
        | Metric::TtfbP50Ms
        | Metric::TtfbP95Ms
        | Metric::TtfbP99Ms => {
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
