//! One row per model. Columns drop by priority as the terminal narrows, so 80 columns
//! still show what matters most: health, name, traffic, tail latency and errors. The
//! TTFB column is there only when some model streams its answers, and the LLM columns
//! (inter-token latency, output tokens per second) only when some model reports them.

use std::fmt::Write as _;

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Style;
use ratatui::widgets::{Block, Paragraph};

use super::layout;
use crate::alert::{AlertPhase, Severity};
use crate::live::Live;
use crate::store::view::{ModelView, SeriesPoint};
use crate::tui::app::{AppState, SortKey, visible_offset};
use crate::tui::format::{self, Fold};
use crate::tui::health::{Health, Metric};

/// A column of the overview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Mark,
    Name,
    Qps,
    P50,
    P95,
    P99,
    /// Time to first byte, p95: streamed answers only.
    Ttfb,
    /// Inter-token latency, p95 of the answers' mean gaps: LLMs only.
    Itl,
    /// Output tokens per second: LLMs only.
    TokS,
    Err,
    Client,
    Cpu,
    Mem,
    QpsSpark,
    P95Spark,
    Seen,
    Alert,
}

/// Display order.
const ORDER: [Col; 17] = [
    Col::Mark,
    Col::Name,
    Col::Qps,
    Col::P50,
    Col::P95,
    Col::P99,
    Col::Ttfb,
    Col::Itl,
    Col::TokS,
    Col::Err,
    Col::Client,
    Col::Cpu,
    Col::Mem,
    Col::QpsSpark,
    Col::P95Spark,
    Col::Seen,
    Col::Alert,
];

/// Which columns survive a narrow terminal: earlier ones are kept first. At 80 columns
/// TTFB, when there, takes the place of 4XX; the LLM columns need a wider terminal.
const PRIORITY: [Col; 17] = [
    Col::Mark,
    Col::Name,
    Col::Qps,
    Col::P95,
    Col::Err,
    Col::P99,
    Col::Seen,
    Col::Alert,
    Col::Ttfb,
    Col::P50,
    Col::TokS,
    Col::Itl,
    Col::Client,
    Col::QpsSpark,
    Col::P95Spark,
    Col::Cpu,
    Col::Mem,
];

const NAME_MIN: u16 = 16;
/// The name grows up to this before the sparklines get the spare width.
const NAME_MAX: u16 = 40;
const SPARK_W: u16 = 24;

impl Col {
    fn width(self) -> u16 {
        match self {
            Self::Mark => 1,
            Self::Name => NAME_MIN,
            Self::Qps
            | Self::P50
            | Self::P95
            | Self::P99
            | Self::Ttfb
            | Self::Itl
            | Self::TokS
            | Self::Err
            | Self::Client => 6,
            Self::Cpu | Self::Seen => 5,
            Self::Mem | Self::Alert => 8,
            Self::QpsSpark | Self::P95Spark => SPARK_W,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::Mark => " ",
            Self::Name => "MODEL",
            Self::Qps => "QPS",
            Self::P50 => "P50",
            Self::P95 => "P95",
            Self::P99 => "P99",
            Self::Ttfb => "TTFB95",
            Self::Itl => "ITL95",
            Self::TokS => "TOK/S",
            Self::Err => "ERR",
            Self::Client => "4XX",
            Self::Cpu => "CPU",
            Self::Mem => "MEM",
            Self::QpsSpark => "QPS 5m",
            Self::P95Spark => "P95 5m",
            Self::Seen => "SEEN",
            Self::Alert => "ALERT",
        }
    }

    fn sort_key(self) -> Option<SortKey> {
        Some(match self {
            Self::Mark => SortKey::Health,
            Self::Name => SortKey::Name,
            Self::Qps => SortKey::Qps,
            Self::P50 => SortKey::P50,
            Self::P95 => SortKey::P95,
            Self::P99 => SortKey::P99,
            Self::Err => SortKey::ErrorRate,
            Self::Client => SortKey::ClientErrorRate,
            Self::Seen => SortKey::LastSeen,
            _ => return None,
        })
    }

    fn right_aligned(self) -> bool {
        !matches!(
            self,
            Self::Mark | Self::Name | Self::QpsSpark | Self::P95Spark | Self::Alert
        )
    }
}

/// The columns that fit in `width`, in display order, with their widths. Columns are
/// taken in priority order until one does not fit; the spare width goes to the name
/// (up to its longest value), then to the sparklines. The columns of figures only some
/// models have are there when `present` says some model has them.
fn columns(width: u16, longest_name: u16, present: impl Fn(Col) -> bool) -> Vec<(Col, u16)> {
    let mut kept: Vec<Col> = Vec::new();
    let mut used: u16 = 0;
    for c in PRIORITY.into_iter().filter(|c| present(*c)) {
        let add = c.width() + u16::from(!kept.is_empty());
        if used + add > width {
            break;
        }
        used += add;
        kept.push(c);
    }
    let mut spare = width - used;
    let sparks = kept
        .iter()
        .filter(|c| matches!(c, Col::QpsSpark | Col::P95Spark))
        .count() as u16;
    let name_extra = if sparks == 0 {
        spare
    } else {
        spare.min(longest_name.clamp(NAME_MIN, NAME_MAX) - NAME_MIN)
    };
    spare -= name_extra;
    ORDER
        .into_iter()
        .filter(|c| kept.contains(c))
        .map(|c| {
            let w = match c {
                Col::Name => NAME_MIN + name_extra,
                Col::QpsSpark | Col::P95Spark => SPARK_W + spare / sparks.max(1),
                c => c.width(),
            };
            (c, w)
        })
        .collect()
}

pub fn render(frame: &mut Frame, area: Rect, view: &Live, app: &AppState) {
    let th = app.theme;
    let rows = app.rows(view);
    let mut title = format!(
        " models {}/{} · latency in ms · sort {} {} ",
        rows.len(),
        view.models.len(),
        app.sort.label(),
        if app.reversed { "↑" } else { "↓" }
    );
    if !app.filter.is_empty() {
        let _ = write!(title, "· filter \"{}\" ", app.filter);
    }
    let block = Block::bordered().title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // A terminal a few lines high leaves no line inside the border, and the cells below
    // are written straight into the buffer, which has no line there to write to.
    if inner.is_empty() {
        return;
    }
    if rows.is_empty() {
        let msg = if view.models.is_empty() {
            "no events yet: waiting for the first batch"
        } else {
            "no model matches the filter (Esc clears it)"
        };
        frame.render_widget(
            Paragraph::new(msg)
                .style(th.dim())
                .alignment(Alignment::Center),
            inner,
        );
        return;
    }

    let longest = rows
        .iter()
        .map(|m| m.model.chars().count())
        .max()
        .unwrap_or(0);
    // Any model of the view, not only the rows shown: a column stays while filtering.
    let any_streams = view.models.iter().any(streams);
    let any_itl = view.models.iter().any(|m| m.itl_p95_ms().is_some());
    let any_tokens = view.models.iter().any(|m| m.tokens_per_s().is_some());
    let cols = columns(
        inner.width,
        u16::try_from(longest).unwrap_or(u16::MAX),
        |c| match c {
            Col::Ttfb => any_streams,
            Col::Itl => any_itl,
            Col::TokS => any_tokens,
            _ => true,
        },
    );
    let selected = app.selected_index(&rows);
    let body_h = layout::overview_rows(frame.area()).height as usize;
    let offset = visible_offset(app.offset, selected.unwrap_or(0), body_h);
    // Only the rows on screen are built: a thousand models cost what a screenful does.
    let shown: Vec<&ModelView> = rows
        .iter()
        .skip(offset)
        .take(body_h.max(1))
        .copied()
        .collect();
    let buf = frame.buffer_mut();
    let header: Vec<(String, Style)> = cols
        .iter()
        .map(|(c, _)| {
            let mut t = c.title().to_owned();
            if c.sort_key() == Some(app.sort) && *c != Col::Mark {
                t.push(if app.reversed { '↑' } else { '↓' });
            }
            (t, th.header())
        })
        .collect();
    put_row(buf, inner, inner.y, &cols, &header);
    for (i, m) in shown.iter().enumerate() {
        let y = inner.y + 1 + i as u16;
        if y >= inner.bottom() {
            break;
        }
        put_row(buf, inner, y, &cols, &row(view, m, &cols, app));
        if selected == Some(offset + i) {
            buf.set_style(Rect::new(inner.x, y, inner.width, 1), th.selected());
        }
    }
    draw_sparklines(buf, inner, &cols, &shown, app);
}

/// Whether the model streams its answers: some in the window carried a time to first
/// byte, or some did since the monitor started (so a quiet minute does not make the
/// column come and go).
fn streams(m: &ModelView) -> bool {
    m.stats.ttfb_requests > 0 || m.totals.ttfb.is_some()
}

/// Writes one line of cells at their columns (one space between columns). The table is
/// drawn by hand: its widths are computed above anyway, and writing the cells directly
/// keeps a 100-model frame well under a millisecond.
fn put_row(buf: &mut Buffer, table: Rect, y: u16, cols: &[(Col, u16)], cells: &[(String, Style)]) {
    let mut x = table.x;
    for ((c, w), (text, style)) in cols.iter().zip(cells) {
        let w = (*w).min(table.right().saturating_sub(x));
        if w == 0 {
            break;
        }
        put(buf, Rect::new(x, y, w, 1), text, *style, c.right_aligned());
        x = x.saturating_add(w + 1);
    }
}

/// Glyphs the display itself uses, each one cell wide.
const NARROW: &str = "–●▲✖○↑↓…";

fn put(buf: &mut Buffer, cell: Rect, text: &str, style: Style, right: bool) {
    buf.set_style(cell, style);
    let simple = text.chars().all(|c| c.is_ascii() || NARROW.contains(c));
    if !simple {
        // Model names can hold anything: let the buffer measure wide glyphs.
        buf.set_stringn(cell.x, cell.y, text, usize::from(cell.width), Style::new());
        return;
    }
    let n = text.chars().count().min(usize::from(cell.width));
    let start = if right {
        cell.right() - n as u16
    } else {
        cell.x
    };
    for (i, ch) in text.chars().take(n).enumerate() {
        buf[(start + i as u16, cell.y)].set_char(ch);
    }
}

/// Which figure of a second a sparkline shows.
type SeriesValue = fn(&SeriesPoint) -> Option<f64>;

/// Sparklines are written cell by cell into the table's empty columns: as text they
/// would be the bulk of the frame's glyphs, each shaped and measured one by one.
fn draw_sparklines(
    buf: &mut Buffer,
    table: Rect,
    cols: &[(Col, u16)],
    shown: &[&ModelView],
    app: &AppState,
) {
    let th = app.theme;
    let mut x = table.x;
    let mut values = Vec::new();
    for (c, w) in cols {
        let pick: Option<(SeriesValue, Fold, Style)> = match c {
            Col::QpsSpark => Some((|p| Some(p.requests as f64), Fold::Mean, th.series(3))),
            Col::P95Spark => Some((|p| p.p95_ms, Fold::Max, th.series(1))),
            _ => None,
        };
        if let Some((value, fold, style)) = pick {
            // Row 0 of the table is the column header.
            for (i, m) in shown.iter().enumerate() {
                let y = table.y + 1 + i as u16;
                if y >= table.bottom() {
                    break;
                }
                format::fit_into(&mut values, &m.series, usize::from(*w), value, fold);
                for (dx, ch) in format::spark_chars(&values, th.ascii).enumerate() {
                    if let Some(cell) = buf.cell_mut((x + dx as u16, y)) {
                        cell.set_char(ch).set_style(style);
                    }
                }
            }
        }
        x = x.saturating_add(*w + 1);
    }
}

fn row(view: &Live, m: &ModelView, cols: &[(Col, u16)], app: &AppState) -> Vec<(String, Style)> {
    let th = app.theme;
    let dash = th.unknown();
    let s = &m.stats;
    let breaches = app.thresholds.breaches(m, &view.alerts);
    let level_of = |metric: Metric| {
        breaches
            .iter()
            .find(|b| b.metric == metric)
            .map_or(Style::new(), |b| th.health(b.level))
    };
    let health = app.thresholds.health(m, &view.alerts);
    let res = view.resources(&m.model);
    let cpu = res.and_then(|r| r.usage.cpu_percent);
    let level_or_plain = |l: Option<Health>| l.map_or(Style::new(), |l| th.health(l));
    // A figure this model does not have, in a column others fill: a dimmed dash.
    let or_dim = |cell: Option<String>| match cell {
        Some(text) => (text, Style::new()),
        None => (dash.to_owned(), th.dim()),
    };
    cols.iter()
        .map(|(c, w)| match c {
            Col::Mark => (th.health_mark(health).to_owned(), th.health(health)),
            Col::Name => (
                format::truncate(&m.model, usize::from(*w), th.ascii),
                Style::new(),
            ),
            Col::Qps => (format::qps(s.qps), Style::new()),
            Col::P50 => (format::ms(s.p50_ms, dash), Style::new()),
            Col::P95 => (format::ms(s.p95_ms, dash), level_of(Metric::P95)),
            Col::P99 => (format::ms(s.p99_ms, dash), Style::new()),
            Col::Ttfb => or_dim(s.ttfb_p95_ms.map(|v| format::ms(Some(v), dash))),
            Col::Itl => or_dim(m.itl_p95_ms().map(|v| format::ms(Some(v), dash))),
            Col::TokS => or_dim(m.tokens_per_s().map(format::qps)),
            Col::Err => (format::pct(s.error_rate, dash), level_of(Metric::ErrorRate)),
            Col::Client => (format::pct(s.client_error_rate, dash), Style::new()),
            Col::Cpu => match cpu {
                Some(c) => (
                    format::cpu(c),
                    level_or_plain(app.thresholds.cpu_level(Some(c))),
                ),
                None => (dash.to_owned(), th.dim()),
            },
            Col::Mem => match res.and_then(|r| r.usage.mem_bytes) {
                Some(b) => (
                    format::bytes_short(b),
                    level_or_plain(
                        app.thresholds
                            .mem_level(res.and_then(|r| r.usage.mem_percent)),
                    ),
                ),
                None => (dash.to_owned(), th.dim()),
            },
            // Drawn by `draw_sparklines` straight into the buffer.
            Col::QpsSpark | Col::P95Spark => (String::new(), Style::new()),
            Col::Seen => (
                format::age(m.last_seen_ms_ago, dash),
                level_of(Metric::Silent),
            ),
            Col::Alert => alert_badge(view, &m.model, app),
        })
        .collect()
}

/// How many alerts of the model fire, in the colour of the worst severity; a model with
/// only pending alerts shows how many, dimmed. The rules are in the alerts pane (`a`).
fn alert_badge(view: &Live, model: &str, app: &AppState) -> (String, Style) {
    let th = app.theme;
    let (mut firing, mut pending) = (0, 0);
    let mut worst = Severity::Info;
    for a in view.alerts.active.iter().filter(|a| a.model == model) {
        if a.state == AlertPhase::Firing {
            firing += 1;
            worst = worst.max(a.severity);
        } else {
            pending += 1;
        }
    }
    if firing > 0 {
        let level = if worst == Severity::Critical {
            Health::Crit
        } else {
            Health::Warn
        };
        (format!("{firing} firing"), th.health(level))
    } else if pending > 0 {
        (format!("{pending} pend"), th.dim())
    } else {
        (String::new(), Style::new())
    }
}
