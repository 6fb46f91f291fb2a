//! The detail view's breakdowns of one model besides routes and instances: its versions
//! side by side (a rollout, and whether the new version is worse than the one serving
//! most requests) and its model measures (`ml` keys such as tokens or queue time, and
//! request and response sizes).
//!
//! Both cover the live window at every range, as the routes, instances and latency
//! distribution do: the views the TUI gets carry no 24-hour rings of a model's keys
//! (`StoreConfig::keys_in_views` is on only for `--batch --range`, to spare the store a
//! copy of every key ring's current hour per view held), so each title says
//! `60s window`. A panel with nothing to show is not drawn at all: no empty boxes.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Block, Cell, Row, Table};

use crate::store::OTHER;
use crate::store::view::{MeasureStats, ModelView};
use crate::tui::app::AppState;
use crate::tui::format;
use crate::tui::health::Health;

/// A version whose p95 is at least this many times the busiest version's is marked.
pub const P95_FACTOR: f64 = 1.5;
/// A version whose error rate is at least this many times the busiest version's, plus
/// [`ERROR_POINTS`], is marked.
pub const ERROR_FACTOR: f64 = 2.0;
/// One percentage point: with no error at all in the busiest version, 1 % is enough.
pub const ERROR_POINTS: f64 = 0.01;
/// Both versions need this many requests in the window to be compared: the p95 of a
/// handful of requests says nothing.
pub const MIN_REQUESTS: u64 = 20;

/// One version's figures over the live window.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub version: String,
    /// Its part of the model's requests in the window, 0..1.
    pub share: Option<f64>,
    pub requests: u64,
    pub qps: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub error_rate: Option<f64>,
    /// `None` when none of its answers streamed.
    pub ttfb_p95_ms: Option<f64>,
}

/// What makes a version look worse than the busiest one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Regression {
    pub p95: bool,
    pub errors: bool,
}

impl Regression {
    pub fn any(self) -> bool {
        self.p95 || self.errors
    }
}

/// `v` against the busiest version: p95 at least [`P95_FACTOR`] times its p95, or an
/// error rate at least [`ERROR_FACTOR`] times its rate plus [`ERROR_POINTS`]. Nothing
/// is judged with fewer than [`MIN_REQUESTS`] requests on either side.
pub fn regression(v: &VersionRow, busiest: &VersionRow) -> Regression {
    if v.requests < MIN_REQUESTS || busiest.requests < MIN_REQUESTS {
        return Regression::default();
    }
    Regression {
        p95: matches!((v.p95_ms, busiest.p95_ms),
            (Some(a), Some(b)) if b > 0.0 && a >= P95_FACTOR * b),
        errors: matches!((v.error_rate, busiest.error_rate),
            (Some(a), Some(b)) if a >= ERROR_FACTOR * b + ERROR_POINTS),
    }
}

/// The versions panel: busiest first, as the store lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Versions {
    pub window_s: u32,
    pub rows: Vec<VersionRow>,
}

impl Versions {
    /// Shown when the model has two versions or more in the window: with one, the
    /// title already names it and the model's own figures are that version's.
    fn of(m: &ModelView) -> Option<Self> {
        if m.versions.len() < 2 {
            return None;
        }
        let rows = m
            .versions
            .iter()
            .map(|v| VersionRow {
                version: v.version.clone(),
                share: v.share,
                requests: v.stats.requests,
                qps: v.stats.qps,
                p50_ms: v.stats.p50_ms,
                p95_ms: v.stats.p95_ms,
                p99_ms: v.stats.p99_ms,
                error_rate: v.stats.error_rate,
                ttfb_p95_ms: v.stats.ttfb_p95_ms,
            })
            .collect();
        Some(Self {
            window_s: m.window_s,
            rows,
        })
    }

    /// Whether any version streamed in the window: only then is there a TTFB column.
    fn streams(&self) -> bool {
        self.rows.iter().any(|r| r.ttfb_p95_ms.is_some())
    }

    /// The busiest version the others are judged against: `(other)` is a mix of
    /// versions, so it is neither judged nor a reference.
    fn busiest(&self) -> Option<&VersionRow> {
        self.rows.iter().find(|r| r.version != OTHER)
    }

    /// How each row compares with the busiest version.
    pub fn regressions(&self) -> Vec<Regression> {
        let busiest = self.busiest();
        self.rows
            .iter()
            .map(|r| match busiest {
                Some(b) if !std::ptr::eq(b, r) && r.version != OTHER => regression(r, b),
                _ => Regression::default(),
            })
            .collect()
    }

    fn columns(&self) -> Vec<Col> {
        let mut cols = vec![
            Col::new(Fig::Share, 6, 1),
            Col::new(Fig::Qps, 6, 5),
            Col::new(Fig::P50, 6, 7),
            Col::new(Fig::P95, 6, 2),
            Col::new(Fig::P99, 6, 6),
            Col::new(Fig::Err, 6, 3),
        ];
        if self.streams() {
            cols.push(Col::new(Fig::Ttfb95, 6, 4));
        }
        cols
    }
}

/// One measure's figures over the live window.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureRow {
    pub name: String,
    /// A request or response size: shown in bytes.
    pub bytes: bool,
    pub count: u64,
    pub rate_per_s: f64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// The model measures panel: `ml` keys by name, then the sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Measures {
    pub window_s: u32,
    pub rows: Vec<MeasureRow>,
}

impl Measures {
    /// Shown when the model's events carried `ml` keys or sizes in the window.
    fn of(m: &ModelView) -> Option<Self> {
        let row = |(name, s): (&String, &MeasureStats), bytes: bool| MeasureRow {
            name: name.clone(),
            bytes,
            count: s.count,
            rate_per_s: s.rate_per_s,
            mean: s.mean,
            p50: s.p50,
            p95: s.p95,
            p99: s.p99,
        };
        // Keys by name (the maps are sorted), so a key keeps its row from frame to frame.
        let ml = m.ml.iter().map(|k| row(k, false));
        let rows: Vec<MeasureRow> = ml.chain(m.sizes.iter().map(|k| row(k, true))).collect();
        (!rows.is_empty()).then_some(Self {
            window_s: m.window_s,
            rows,
        })
    }

    fn columns() -> Vec<Col> {
        vec![
            // Eight wide: a size takes seven (`1.6 KiB`), and a space between two
            // sizes does not separate them well enough.
            Col::new(Fig::P50, 8, 2),
            Col::new(Fig::P95, 8, 1),
            Col::new(Fig::P99, 8, 5),
            Col::new(Fig::Mean, 8, 4),
            Col::new(Fig::Rate, 8, 3),
            Col::new(Fig::Count, 6, 6),
        ]
    }
}

/// A figure a panel's column shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fig {
    Share,
    Qps,
    P50,
    P95,
    P99,
    Err,
    Ttfb95,
    Mean,
    Rate,
    Count,
}

impl Fig {
    fn title(self) -> &'static str {
        match self {
            Self::Share => "SHARE",
            Self::Qps => "QPS",
            Self::P50 => "P50",
            Self::P95 => "P95",
            Self::P99 => "P99",
            Self::Err => "ERR",
            Self::Ttfb95 => "TTFB95",
            Self::Mean => "MEAN",
            Self::Rate => "RATE/S",
            Self::Count => "COUNT",
        }
    }
}

/// A figure column of a panel: what it shows, its width, and its rank (lower ranks
/// stay longer when the panel narrows).
#[derive(Debug, Clone, Copy)]
struct Col {
    fig: Fig,
    width: u16,
    rank: u8,
}

impl Col {
    fn new(fig: Fig, width: u16, rank: u8) -> Self {
        Self { fig, width, rank }
    }
}

/// The columns that fit in `width` beside a name column of `name_w`, in display order.
/// Columns go whole, by rank, rather than being squeezed into stubs.
fn fit(cols: &[Col], width: u16, name_w: u16) -> Vec<Col> {
    let mut by_rank: Vec<usize> = (0..cols.len()).collect();
    by_rank.sort_by_key(|&i| cols[i].rank);
    let mut used = name_w;
    let mut kept = Vec::with_capacity(cols.len());
    for i in by_rank {
        // One space before each column.
        let add = cols[i].width + 1;
        if used + add > width {
            break;
        }
        used += add;
        kept.push(i);
    }
    kept.sort_unstable();
    kept.into_iter().map(|i| cols[i]).collect()
}

/// The width a table wants: its longest name (within bounds) and every column.
fn natural_width(names: impl Iterator<Item = usize>, min: u16, cols: &[Col], extra: u16) -> u16 {
    let longest = names.max().unwrap_or(0);
    let name_w = u16::try_from(longest).unwrap_or(u16::MAX).clamp(min, 24);
    name_w + extra + cols.iter().map(|c| c.width + 1).sum::<u16>() + 2
}

const VERSION_MIN: u16 = 8;
const KEY_MIN: u16 = 10;

/// The panels of one model, built once per frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Panels {
    pub versions: Option<Versions>,
    pub measures: Option<Measures>,
}

impl Panels {
    pub fn of(m: &ModelView) -> Self {
        Self {
            versions: Versions::of(m),
            measures: Measures::of(m),
        }
    }

    /// Rows the taller panel wants, borders and header included; 0 without panels.
    pub fn height(&self) -> u16 {
        let h = |rows: usize| u16::try_from(rows).unwrap_or(u16::MAX).saturating_add(3);
        let v = self.versions.as_ref().map_or(0, |v| h(v.rows.len()));
        let m = self.measures.as_ref().map_or(0, |m| h(m.rows.len()));
        v.max(m)
    }

    pub fn render(&self, frame: &mut Frame, area: Rect, app: &AppState) {
        if area.height < 3 {
            return;
        }
        match (&self.versions, &self.measures) {
            (Some(v), Some(m)) => {
                let [left, right] =
                    Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(area);
                render_versions(frame, left, v, app);
                render_measures(frame, right, m, app);
            }
            (Some(v), None) => {
                let names = v.rows.iter().map(|r| r.version.chars().count());
                let w = natural_width(names, VERSION_MIN, &v.columns(), 2);
                render_versions(frame, alone(area, w), v, app);
            }
            (None, Some(m)) => {
                let names = m.rows.iter().map(|r| r.name.chars().count());
                let w = natural_width(names, KEY_MIN, &Measures::columns(), 0);
                render_measures(frame, alone(area, w), m, app);
            }
            (None, None) => {}
        }
    }
}

/// A lone panel takes the left half, like the routes below it, or more when its
/// columns need it: a table stretched across the whole screen is hard to read.
fn alone(area: Rect, natural: u16) -> Rect {
    let w = natural.max(area.width / 2).min(area.width);
    Rect { width: w, ..area }
}

/// `" versions, 60s window "`, and how many rows did not fit.
fn title(name: &str, window_s: u32, rows: usize, shown: usize) -> String {
    if shown < rows {
        format!(" {name}, {window_s}s window · {} more ", rows - shown)
    } else {
        format!(" {name}, {window_s}s window ")
    }
}

fn right(s: String) -> Cell<'static> {
    Cell::from(Line::from(s).right_aligned())
}

fn header(first: &[&'static str], cols: &[Col], style: Style) -> Row<'static> {
    let names = first.iter().map(|t| Cell::from(*t));
    let figures = cols
        .iter()
        .map(|c| Cell::from(Line::from(c.fig.title()).right_aligned()));
    Row::new(names.chain(figures).collect::<Vec<_>>()).style(style)
}

fn render_versions(frame: &mut Frame, area: Rect, v: &Versions, app: &AppState) {
    let th = app.theme;
    let dash = th.unknown();
    let room = usize::from(area.height.saturating_sub(3));
    let shown = v.rows.len().min(room);
    let mut block = Block::bordered().title(title("versions", v.window_s, v.rows.len(), shown));
    let regressions = v.regressions();
    if regressions.iter().take(shown).any(|r| r.any()) {
        // Why a row is red, when the edge has room to say it.
        let mark = th.health_mark(Health::Crit);
        let (ge, times) = if th.ascii { (">=", "x") } else { ("≥", "×") };
        let long = format!(
            " {mark} p95 {ge} {P95_FACTOR}{times} or errors {ge} {ERROR_FACTOR}{times} + 1 pt of the busiest "
        );
        let short = format!(" {mark} worse than the busiest ");
        if let Some(t) = [long, short]
            .into_iter()
            .find(|t| t.chars().count() + 2 <= usize::from(area.width))
        {
            block = block.title_bottom(t);
        }
    }
    let cols = fit(&v.columns(), area.width.saturating_sub(2), 2 + VERSION_MIN);
    let bad = th.health(Health::Crit);
    let rows = v.rows.iter().zip(&regressions).take(shown).map(|(r, reg)| {
        let (mark, name_style) = if reg.any() {
            (th.health_mark(Health::Crit), bad)
        } else {
            ("", Style::new())
        };
        let mut cells = vec![
            Cell::from(mark).style(name_style),
            Cell::from(r.version.clone()).style(name_style),
        ];
        let flagged = |on: bool| if on { bad } else { Style::new() };
        cells.extend(cols.iter().map(|c| match c.fig {
            Fig::Share => right(format::pct(r.share, dash)),
            Fig::Qps => right(format::qps(r.qps)),
            Fig::P50 => right(format::ms(r.p50_ms, dash)),
            Fig::P95 => right(format::ms(r.p95_ms, dash)).style(flagged(reg.p95)),
            Fig::P99 => right(format::ms(r.p99_ms, dash)),
            Fig::Err => right(format::pct(r.error_rate, dash)).style(flagged(reg.errors)),
            Fig::Ttfb95 => right(format::ms(r.ttfb_p95_ms, dash)),
            Fig::Mean | Fig::Rate | Fig::Count => right(dash.to_owned()),
        }));
        Row::new(cells)
    });
    let widths = [Constraint::Length(1), Constraint::Min(VERSION_MIN)]
        .into_iter()
        .chain(cols.iter().map(|c| Constraint::Length(c.width)));
    let table = Table::new(rows, widths)
        .header(header(&["", "VERSION"], &cols, th.header()))
        .block(block);
    frame.render_widget(table, area);
}

fn render_measures(frame: &mut Frame, area: Rect, m: &Measures, app: &AppState) {
    let th = app.theme;
    let dash = th.unknown();
    let room = usize::from(area.height.saturating_sub(3));
    let shown = m.rows.len().min(room);
    let block = Block::bordered().title(title("model measures", m.window_s, m.rows.len(), shown));
    let cols = fit(&Measures::columns(), area.width.saturating_sub(2), KEY_MIN);
    let rows = m.rows.iter().take(shown).map(|r| {
        let show = |v: Option<f64>| {
            if r.bytes {
                format::size(v, dash)
            } else {
                format::value(v, dash)
            }
        };
        let mut cells = vec![Cell::from(r.name.clone())];
        cells.extend(cols.iter().map(|c| match c.fig {
            Fig::P50 => right(show(r.p50)),
            Fig::P95 => right(show(r.p95)),
            Fig::P99 => right(show(r.p99)),
            Fig::Mean => right(show(r.mean)),
            Fig::Rate => right(show(Some(r.rate_per_s))),
            Fig::Count => right(format::count(r.count)),
            Fig::Share | Fig::Qps | Fig::Err | Fig::Ttfb95 => right(dash.to_owned()),
        }));
        Row::new(cells)
    });
    let widths = std::iter::once(Constraint::Min(KEY_MIN))
        .chain(cols.iter().map(|c| Constraint::Length(c.width)));
    let table = Table::new(rows, widths)
        .header(header(&["KEY"], &cols, th.header()))
        .block(block);
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(version: &str, requests: u64, p95: f64, err: f64) -> VersionRow {
        VersionRow {
            version: version.to_owned(),
            share: None,
            requests,
            qps: 0.0,
            p50_ms: Some(p95 / 2.0),
            p95_ms: Some(p95),
            p99_ms: Some(p95 * 1.5),
            error_rate: Some(err),
            ttfb_p95_ms: None,
        }
    }

    #[test]
    fn a_version_is_marked_past_one_and_a_half_times_the_p95_or_twice_the_errors_plus_a_point() {
        let busiest = row("1.0", 1000, 100.0, 0.004);
        let judged = |v: &VersionRow| regression(v, &busiest);
        assert_eq!(
            judged(&row("1.1", 100, 149.0, 0.004)),
            Regression::default()
        );
        assert!(judged(&row("1.1", 100, 150.0, 0.004)).p95);
        // 2 × 0.4 % + 1 point = 1.8 %.
        assert!(!judged(&row("1.1", 100, 100.0, 0.0179)).errors);
        assert!(judged(&row("1.1", 100, 100.0, 0.0181)).errors);
        // Too few requests to say anything.
        assert_eq!(
            judged(&row("1.1", MIN_REQUESTS - 1, 900.0, 0.5)),
            Regression::default()
        );
        // With no error at all in the busiest version, one point is enough.
        let clean = row("1.0", 1000, 100.0, 0.0);
        assert!(regression(&row("1.1", 100, 100.0, 0.01), &clean).errors);
    }

    #[test]
    fn the_busiest_and_other_are_never_marked() {
        let v = Versions {
            window_s: 60,
            rows: vec![
                row(OTHER, 5000, 900.0, 0.3),
                row("1.0", 1000, 100.0, 0.0),
                row("1.1", 100, 300.0, 0.0),
            ],
        };
        let r = v.regressions();
        assert_eq!(r[0], Regression::default(), "(other) is a mix of versions");
        assert_eq!(r[1], Regression::default(), "the reference");
        assert!(r[2].p95, "judged against 1.0, not (other)");
    }
}
