//! One model in depth: its normal beside its live figures and its active alerts with
//! their explanations, charts over the chosen range, its containers (CPU and memory
//! charts, replicas, Docker events), the latency distribution, status codes, recent
//! rejects, its versions and model measures (see [`super::panels`]), and tables per
//! route and per instance.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Bar, BarChart, BarGroup, Block, Borders, Cell, Chart, Dataset, GraphType, Paragraph, Row,
    Table, Wrap,
};

use super::alerts::level_of;
use super::panels::Panels;
use crate::alert::baseline::{second_mode, show_ms, show_qps, show_rate};
use crate::alert::{AlertPhase, Metric};
use crate::live::Live;
use crate::store::view::{DockerState, KeyStats, ModelResources, ModelView};
use crate::tui::app::AppState;
use crate::tui::format;
use crate::tui::range::{self, ChartPoint, Range, RangeData};

/// Braille packs two points across per cell; the y labels and borders take about eight.
fn max_points(chart_width: u16) -> usize {
    usize::from(chart_width.saturating_sub(8)).max(1) * 2
}

pub fn render(frame: &mut Frame, area: Rect, view: &Live, app: &AppState) {
    let th = app.theme;
    let Some(m) = app.detail_model(view) else {
        frame.render_widget(
            Paragraph::new("this model is no longer in the view (Esc goes back)")
                .style(th.dim())
                .alignment(Alignment::Center)
                .block(Block::bordered()),
            area,
        );
        return;
    };
    let resources = view.resources(&m.model);
    // The judgement (normal and alerts) gets a sixth of the height at most: the charts
    // below show what it is about. On a short terminal only a top rule frames it.
    let tall = area.height >= 30;
    let judged = judgement_lines(view, m, app, (area.height / 6).max(2).into(), area.width);
    let frame_h = if tall { 2 } else { 1 };
    let [title, judgement, rest] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(judged.len() as u16 + frame_h),
        Constraint::Fill(1),
    ])
    .areas(area);
    let panels = Panels::of(m);
    let [charts, containers, middle, model_row, tables] =
        split_rest(rest, resources.is_some(), panels.height());
    render_title(frame, title, view, m, app);
    let block = if tall {
        Block::bordered()
    } else {
        Block::new().borders(Borders::TOP)
    };
    frame.render_widget(
        Paragraph::new(judged).block(block.title(" normal and alerts ")),
        judgement,
    );

    // Without containers a small box says why; on a narrow terminal the charts need the
    // room more.
    let res_w = if resources.is_none() && area.width >= 120 {
        22
    } else {
        0
    };
    let [lat, qps, err, res] = Layout::horizontal([
        Constraint::Fill(3),
        Constraint::Fill(2),
        Constraint::Fill(2),
        Constraint::Length(res_w),
    ])
    .areas(charts);
    // One fetch for the three charts, at the resolution of the narrowest.
    let narrowest = lat.width.min(qps.width).min(err.width);
    let data = range::points(view, m, app.range, max_points(narrowest));
    let x = app.range.secs() as f64;
    render_chart(
        frame,
        lat,
        "latency ms",
        &data,
        x,
        &[
            ("p50", |p: &ChartPoint| p.p50_ms),
            ("p95", |p: &ChartPoint| p.p95_ms),
            ("p99", |p: &ChartPoint| p.p99_ms),
        ],
        app,
    );
    if let Some(fb) = FirstByte::of(m) {
        bottom_edge(frame, lat, fb.line(lat.width, th.unknown()));
    }
    render_chart(
        frame,
        qps,
        "requests/s",
        &data,
        x,
        &[("qps", |p: &ChartPoint| Some(p.qps))],
        app,
    );
    render_chart(
        frame,
        err,
        "error %",
        &data,
        x,
        &[("err", |p: &ChartPoint| p.error_rate.map(|r| r * 100.0))],
        app,
    );
    // No figures without a container: say why instead of drawing zeros.
    if res.width > 0 {
        let why = match view.docker.state {
            DockerState::Connected => "no container mapped to this model",
            DockerState::Unavailable => "docker unavailable",
            DockerState::Disabled => "docker disabled",
        };
        frame.render_widget(
            Paragraph::new(vec![
                Line::from(format!("cpu {}", th.unknown())),
                Line::from(format!("mem {}", th.unknown())),
                Line::from(""),
                Line::styled(why, th.dim()),
            ])
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title(" container ")),
            res,
        );
    }
    if let Some(r) = resources {
        render_resources(frame, containers, view, m, r, app);
    }

    // Short of room, the versions and measures take this row's place (see split_rest).
    if middle.height > 0 {
        let [dist, status, rejects] = Layout::horizontal([
            Constraint::Fill(3),
            Constraint::Fill(2),
            Constraint::Fill(4),
        ])
        .areas(middle);
        render_distribution(frame, dist, m, app);
        render_status(frame, status, m, app);
        render_rejects(frame, rejects, view, m, app);
    }
    panels.render(frame, model_row, app);
    if tables.height == 0 {
        return;
    }

    let [routes, instances] =
        Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(tables);
    let routes_title = if m.routes_overflowed > 0 {
        format!(" routes ({} folded into (other)) ", m.routes_overflowed)
    } else {
        " routes ".to_owned()
    };
    render_keyed(frame, routes, &routes_title, &m.routes, app);
    render_keyed(frame, instances, " instances ", &m.instances, app);
}

/// The rows below the judgement: charts, containers (for a model with containers
/// mapped to it), the latency distribution with status and rejects, the versions and
/// measures (for a model that has some, `panels_h` rows wanted, else 0), then routes
/// and instances.
///
/// The panels get what they want, up to a third of the height, and the other rows share
/// the rest in their usual proportions, as long as that leaves the distribution three
/// lines and the route tables one row. Short of that room the panels take the place of
/// the distribution row and the route tables instead (which show little at that height
/// anyway), so the charts and containers keep their size and a regressed version still
/// shows at 80×24; room the panels do not need goes back to the route tables.
fn split_rest(area: Rect, containers: bool, panels_h: u16) -> [Rect; 5] {
    // A model with containers gets a row for them; the others keep the room for requests.
    let usual = |area: Rect| -> [Rect; 4] {
        Layout::vertical([
            Constraint::Percentage(if containers { 32 } else { 40 }),
            Constraint::Percentage(if containers { 28 } else { 0 }),
            Constraint::Percentage(if containers { 20 } else { 28 }),
            Constraint::Fill(1),
        ])
        .areas(area)
    };
    let rows = |y: u16, height: u16| Rect { y, height, ..area };
    if panels_h == 0 {
        let [charts, boxes, middle, tables] = usual(area);
        return [charts, boxes, middle, rows(tables.y, 0), tables];
    }
    let roomy = panels_h.min(area.height / 3);
    let [charts, boxes, middle, tables] = usual(rows(area.y, area.height - roomy));
    if middle.height >= 5 && tables.height >= 4 {
        let panels = rows(tables.y, roomy);
        let tables = rows(tables.y + roomy, tables.height);
        return [charts, boxes, middle, panels, tables];
    }
    let [charts, boxes, middle, tables] = usual(area);
    let lower = middle.height + tables.height;
    let spare = lower.saturating_sub(panels_h);
    let tables_h = if spare >= 4 { spare } else { 0 };
    let panels = rows(middle.y, lower - tables_h);
    [
        charts,
        boxes,
        rows(middle.y, 0),
        panels,
        rows(panels.bottom(), tables_h),
    ]
}

/// Time to first byte and generation time (first byte to last) of the streamed
/// answers in the live window, for the latency chart's bottom edge. The live window at
/// every range: the per-second series carries no TTFB, and the views the TUI gets carry
/// no 24-hour rings of a model's streams (see [`super::panels`]).
struct FirstByte {
    ttfb: [Option<f64>; 3],
    generation: [Option<f64>; 2],
    window_s: u32,
}

impl FirstByte {
    /// `None` for a model that did not stream in the window: no zeros for it.
    fn of(m: &ModelView) -> Option<Self> {
        let s = &m.stats;
        s.ttfb_p50_ms?;
        Some(Self {
            ttfb: [s.ttfb_p50_ms, s.ttfb_p95_ms, s.ttfb_p99_ms],
            generation: [s.gen_p50_ms, s.gen_p95_ms],
            window_s: m.window_s,
        })
    }

    /// The longest form that fits a box `width` wide: labelled, then the figures alone
    /// (p50/p95/p99 and p50/p95, as on the distribution's edge), then without the span.
    fn line(&self, width: u16, dash: &str) -> String {
        let [t50, t95, t99] = self.ttfb.map(|v| format::ms(v, dash));
        let [g50, g95] = self.generation.map(|v| format::ms(v, dash));
        let span = format!("{}s window", self.window_s);
        [
            format!(" ttfb p50 {t50} p95 {t95} p99 {t99} · gen p50 {g50} p95 {g95} ms, {span} "),
            format!(" ttfb {t50}/{t95}/{t99} · gen {g50}/{g95} ms, {span} "),
            format!(" ttfb {t50}/{t95}/{t99} · gen {g50}/{g95} ms "),
            format!(" ttfb {t50}/{t95}/{t99} gen {g50}/{g95} "),
            format!(" ttfb p95 {t95} "),
        ]
        .into_iter()
        // Two cells for the corners.
        .find(|l| l.chars().count() + 2 <= usize::from(width))
        .unwrap_or_default()
    }
}

/// Writes `text` over the bottom border of a box already drawn in `area`, where a
/// block's bottom title goes.
fn bottom_edge(frame: &mut Frame, area: Rect, text: String) {
    if area.height < 2 || area.width < 3 || text.is_empty() {
        return;
    }
    let edge = Rect::new(area.x + 1, area.bottom() - 1, area.width - 2, 1);
    frame.render_widget(Paragraph::new(text), edge);
}

/// CPU and memory over the range (from the history at every range: containers have no
/// per-second series), then the replicas and their Docker events. Below 120 columns
/// the charts give way to the table.
fn render_resources(
    frame: &mut Frame,
    area: Rect,
    view: &Live,
    m: &ModelView,
    r: &ModelResources,
    app: &AppState,
) {
    let charts_w = if area.width >= 120 { 2 } else { 0 };
    let [cpu, mem, boxed] = Layout::horizontal([
        Constraint::Fill(charts_w),
        Constraint::Fill(charts_w),
        Constraint::Fill(4),
    ])
    .areas(area);
    if charts_w > 0 {
        let data = range::history_points(view, &m.model, app.range, max_points(cpu.width));
        let x = app.range.secs() as f64;
        render_chart(
            frame,
            cpu,
            "cpu %",
            &data,
            x,
            &[("cpu", |p: &ChartPoint| p.cpu_percent)],
            app,
        );
        render_chart(
            frame,
            mem,
            "memory MiB",
            &data,
            x,
            &[("mem", |p: &ChartPoint| p.mem_mib)],
            app,
        );
    }
    render_containers(frame, boxed, r, app);
}

fn render_containers(frame: &mut Frame, area: Rect, r: &ModelResources, app: &AppState) {
    let th = app.theme;
    let dash = th.unknown();
    // Said once, here: the figures above read "—" while it lasts.
    let silent = if r.silent_hosts.is_empty() {
        String::new()
    } else {
        format!(
            ", agent silent on {}: figures unknown",
            r.silent_hosts.join(", ")
        )
    };
    let block = Block::bordered().title(format!(
        " containers: {}{}{silent} ",
        r.state,
        r.health
            .as_deref()
            .map_or(String::new(), |h| format!(", {h}"))
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let table_h = (r.containers.len() as u16 + 1).min(inner.height);
    let [table_area, events_area] =
        Layout::vertical([Constraint::Length(table_h), Constraint::Fill(1)]).areas(inner);
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    // Which host a replica runs on matters only once some run elsewhere.
    let hosts = r.containers.iter().any(|c| c.host.is_some());
    let host_cell = |c: Cell<'static>| hosts.then_some(c);
    let header = Row::new(host_cell(Cell::from("HOST")).into_iter().chain([
        Cell::from("NAME"),
        Cell::from("STATE"),
        Cell::from("HEALTH"),
        Cell::from(Line::from("CPU").right_aligned()),
        Cell::from(Line::from("MEM/LIMIT").right_aligned()),
        Cell::from(Line::from("RST").right_aligned()),
        Cell::from(Line::from("OOM").right_aligned()),
    ]))
    .style(th.header());
    let rows = r.containers.iter().map(|c| {
        let bad_state = c.state != "running";
        let bad_health = c.health.as_deref() == Some("unhealthy");
        let mem = match (c.usage.mem_bytes, c.usage.mem_limit_bytes) {
            (Some(u), Some(l)) => format!("{}/{}", format::bytes_short(u), format::bytes_short(l)),
            (Some(u), None) => format::bytes_short(u),
            _ => dash.to_owned(),
        };
        let level = |bad: bool| {
            if bad {
                th.health(crate::tui::health::Health::Crit)
            } else {
                Style::new()
            }
        };
        let mem_style = app
            .thresholds
            .mem_level(c.usage.mem_percent)
            .map_or(Style::new(), |l| th.health(l));
        let host = host_cell(Cell::from(c.host.clone().unwrap_or_else(|| "local".into())));
        Row::new(
            host.into_iter().chain([
                Cell::from(c.name.clone()),
                Cell::from(c.state.clone()).style(level(bad_state)),
                Cell::from(c.health.clone().unwrap_or_else(|| dash.to_owned()))
                    .style(level(bad_health)),
                right(
                    c.usage
                        .cpu_percent
                        .map_or_else(|| dash.to_owned(), format::cpu),
                ),
                Cell::from(Line::from(mem).right_aligned()).style(mem_style),
                right(c.restarts.to_string()),
                Cell::from(Line::from(c.oom_kills.to_string()).right_aligned())
                    .style(level(c.oom_kills > 0 || c.oom_killed)),
            ]),
        )
    });
    let table = Table::new(
        rows,
        hosts.then_some(Constraint::Max(16)).into_iter().chain([
            Constraint::Min(8),
            Constraint::Length(10),
            Constraint::Length(9),
            Constraint::Length(5),
            Constraint::Length(11),
            Constraint::Length(3),
            Constraint::Length(3),
        ]),
    )
    .header(header);
    frame.render_widget(table, table_area);
    // Newest first: the event that explains the chart's dip is usually the last one.
    let lines: Vec<Line> = r
        .events
        .iter()
        .rev()
        .take(usize::from(events_area.height))
        .map(|e| {
            let bad = e.action == "die" || e.action == "oom" || e.action.contains("unhealthy");
            let mut spans = vec![
                Span::styled(format::clock(e.at_ms), th.dim()),
                Span::raw(format!(" {} ", e.container)),
                Span::styled(
                    e.action.clone(),
                    if bad {
                        th.health(crate::tui::health::Health::Crit)
                    } else {
                        th.accent()
                    },
                ),
            ];
            if let Some(d) = &e.detail {
                spans.push(Span::styled(format!(" ({d})"), th.dim()));
            }
            Line::from(spans)
        })
        .collect();
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new("no docker events since the monitor started").style(th.dim()),
            events_area,
        );
    } else {
        frame.render_widget(Paragraph::new(lines), events_area);
    }
}

fn render_title(frame: &mut Frame, area: Rect, view: &Live, m: &ModelView, app: &AppState) {
    let th = app.theme;
    let rows = app.rows(view);
    let pos = rows
        .iter()
        .position(|r| r.model == m.model)
        .map_or_else(|| th.unknown().to_owned(), |i| (i + 1).to_string());
    let health = app.thresholds.health(m, &view.alerts);
    let mut spans = vec![
        Span::styled(format!("{} ", th.health_mark(health)), th.health(health)),
        Span::styled(m.model.clone(), th.header()),
    ];
    if let Some(v) = &m.version {
        spans.push(Span::raw(format!("  v{v}")));
    }
    spans.push(Span::raw(format!(
        "  {}/{}  window {}s  {} req  range ",
        pos,
        rows.len(),
        m.window_s,
        format::count(m.stats.requests)
    )));
    for r in Range::ALL {
        let label = format!("[{}] {}", r.key(), r.label());
        if r == app.range {
            spans.push(Span::styled(label, th.selected()));
        } else {
            spans.push(Span::styled(label, th.dim()));
        }
        spans.push(Span::raw(" "));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// At most `max` lines: the live p95, error rate and traffic beside the model's normal,
/// how that normal was learnt, then each active alert with the sentence that explains
/// it. Short of room, the alerts go before the sentence about the normal.
fn judgement_lines(
    view: &Live,
    m: &ModelView,
    app: &AppState,
    max: usize,
    width: u16,
) -> Vec<Line<'static>> {
    let th = app.theme;
    let dash = th.unknown();
    let base = view.alerts.baseline(&m.model);
    let active: Vec<_> = view
        .alerts
        .for_model(&m.model)
        .filter(|a| a.state != AlertPhase::Resolved)
        .collect();
    // A live figure an active alert is about takes that alert's colour.
    let style_of = |metrics: &[Metric]| {
        active
            .iter()
            .filter(|a| metrics.contains(&a.metric))
            .map(|a| level_of(a))
            .max()
            .map_or(Style::new(), |l| th.health(l))
    };
    let show = |v: Option<f64>, f: fn(f64) -> String| v.map_or_else(|| dash.to_owned(), f);
    let s = &m.stats;
    let latency = style_of(&[Metric::P50Ms, Metric::P95Ms, Metric::P99Ms]);
    let errors = style_of(&[Metric::ErrorRate]);
    let traffic = style_of(&[Metric::Qps]);
    // A model with two modes: its normal from its median to its slow mode (its high),
    // which its alerts are judged past.
    let normal_p95 = base
        .and_then(|b| {
            let n = b.p95_ms?;
            Some(match second_mode(n, b.p95_high_ms) {
                Some(h) => {
                    let (lo, hi) = (show_ms(n), show_ms(h));
                    // One unit for both ends when they share it: 6.5–40.0 ms.
                    match (lo.split_once(' '), hi.split_once(' ')) {
                        (Some((num, lo_unit)), Some((_, hi_unit))) if lo_unit == hi_unit => {
                            format!("{num}–{hi}")
                        }
                        _ => format!("{lo}–{hi}"),
                    }
                }
                None => show_ms(n),
            })
        })
        .unwrap_or_else(|| dash.to_owned());
    let normal_err = show(base.and_then(|b| b.error_rate), show_rate);
    let figures = if width >= 100 {
        let normal = |v: String| Span::styled(format!(", normal {v}"), th.dim());
        Line::from(vec![
            Span::raw("p95 "),
            Span::styled(show(s.p95_ms, show_ms), latency),
            normal(normal_p95),
            Span::raw("   errors "),
            Span::styled(show(s.error_rate, show_rate), errors),
            normal(normal_err),
            Span::raw("   traffic "),
            Span::styled(format!("{} req/s", show_qps(s.qps)), traffic),
            normal(show(base.and_then(|b| b.qps), |q| {
                format!("{} req/s", show_qps(q))
            })),
        ])
    } else {
        // Narrow: "now/normal" pairs, so the three still fit in 80 columns.
        let normal = |v: String| Span::styled(format!("/{v}"), th.dim());
        Line::from(vec![
            Span::styled("now/normal ", th.dim()),
            Span::raw("p95 "),
            Span::styled(show(s.p95_ms, show_ms), latency),
            normal(normal_p95),
            Span::raw("  err "),
            Span::styled(show(s.error_rate, show_rate), errors),
            normal(normal_err),
            Span::raw("  req/s "),
            Span::styled(show_qps(s.qps), traffic),
            normal(show(base.and_then(|b| b.qps), show_qps)),
        ])
    };
    let learnt = match base {
        Some(b) if !b.explanation.is_empty() => b.explanation.clone(),
        _ => "normal not known yet: nothing learnt of this model so far".to_owned(),
    };
    let mut alerts: Vec<Line> = active
        .iter()
        .map(|a| {
            let level = level_of(a);
            Line::from(vec![
                Span::styled(format!("{} ", th.health_mark(level)), th.health(level)),
                Span::styled(a.rule.clone(), th.header()),
                Span::styled(
                    format!(
                        " {} {}",
                        a.state.as_str(),
                        format::age(Some(view.ts_ms - a.since_ms), dash)
                    ),
                    th.health(level),
                ),
                Span::raw(format!(": {}", a.explanation)),
            ])
        })
        .collect();
    if alerts.is_empty() {
        alerts.push(Line::styled("no alert firing or pending", th.dim()));
    }
    let max = max.max(2);
    let mut lines = vec![figures];
    let with_learnt = 2 + alerts.len() <= max;
    if with_learnt {
        lines.push(Line::styled(learnt, th.dim()));
    }
    let room = max - lines.len();
    if alerts.len() > room {
        // Say how many more the alerts pane has: on a line of its own when there is
        // room for one besides an alert, else at the end of the one alert shown.
        let keep = room.saturating_sub(1).max(1);
        let more = Span::styled(
            format!("and {} more: a opens the alerts pane", alerts.len() - keep),
            th.dim(),
        );
        alerts.truncate(keep);
        if keep < room {
            alerts.push(Line::from(more));
        } else if let Some(last) = alerts.last_mut() {
            last.spans.insert(1, more);
            last.spans.insert(2, Span::raw(" · "));
        }
    }
    lines.extend(alerts);
    lines
}

type Pick = fn(&ChartPoint) -> Option<f64>;

fn render_chart(
    frame: &mut Frame,
    area: Rect,
    title: &str,
    data: &RangeData,
    range_s: f64,
    lines: &[(&str, Pick)],
    app: &AppState,
) {
    let th = app.theme;
    let block = Block::bordered().title(format!(" {title} "));
    let points = match data {
        RangeData::Points(p) => p,
        RangeData::Unavailable(why) => {
            frame.render_widget(
                Paragraph::new(*why)
                    .style(th.dim())
                    .wrap(Wrap { trim: true })
                    .block(block),
                area,
            );
            return;
        }
    };
    let series: Vec<(&str, Vec<(f64, f64)>)> = lines
        .iter()
        .map(|(name, pick)| {
            let pts = points
                .iter()
                .filter_map(|p| pick(p).map(|v| (p.t, v)))
                .collect();
            (*name, pts)
        })
        .collect();
    let max = series
        .iter()
        .flat_map(|(_, s)| s.iter().map(|(_, v)| *v))
        .fold(0.0, f64::max);
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let marker = if th.ascii {
        Marker::Custom('*')
    } else {
        Marker::Braille
    };
    let datasets: Vec<Dataset> = series
        .iter()
        .enumerate()
        .filter(|(_, (_, s))| !s.is_empty())
        .map(|(i, (name, s))| {
            let d = Dataset::default();
            // A lone line is named by the chart's title; a legend would only hide data.
            let d = if lines.len() > 1 { d.name(*name) } else { d };
            d.marker(marker)
                .graph_type(GraphType::Line)
                .style(th.series(i))
                .data(s)
        })
        .collect();
    let unit = if title.ends_with('%') { "%" } else { "" };
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .bounds([-range_s, 0.0])
                .labels([format!("-{}", label_of(range_s)), "now".to_owned()])
                .style(th.dim()),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(["0".to_owned(), format!("{}{unit}", compact(top))])
                .style(th.dim()),
        )
        // Always show the legend: without colour it is what tells the lines apart.
        .hidden_legend_constraints((Constraint::Percentage(100), Constraint::Percentage(100)));
    frame.render_widget(chart, area);
}

/// An axis label in at most five characters from 0.01 up; below 0.1 two significant
/// digits, so a rare error rate (0.0034 %) is not labelled 0.00 over a drawn line.
fn compact(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 || v <= 0.0 {
        format!("{v:.2}")
    } else {
        // The first significant digit is at decimal place -floor(log10 v); one more.
        let places = (1.0 - v.log10().floor()).clamp(2.0, 12.0) as usize;
        format!("{v:.places$}")
    }
}

fn label_of(secs: f64) -> String {
    if secs >= 3600.0 {
        format!("{}h", (secs / 3600.0) as i64)
    } else {
        format!("{}m", (secs / 60.0) as i64)
    }
}

/// Latency percentiles of the live window as bars: the shape of the tail at a glance.
fn render_distribution(frame: &mut Frame, area: Rect, m: &ModelView, app: &AppState) {
    let th = app.theme;
    let s = &m.stats;
    let bars: Vec<Bar> = [
        ("p50", s.p50_ms),
        ("p90", s.p90_ms),
        ("p95", s.p95_ms),
        ("p99", s.p99_ms),
        ("max", s.max_ms),
    ]
    .into_iter()
    .map(|(label, v)| {
        // Bars carry integers: microseconds keep sub-millisecond models visible.
        Bar::default()
            .label(Line::from(label))
            .value(v.map_or(0, |ms| (ms * 1000.0) as u64))
            .text_value(format::ms(v, th.unknown()))
            .style(th.series(3))
    })
    .collect();
    let mut block = Block::bordered().title(format!(" latency ms ({}s window) ", m.window_s));
    if let Some(ttfb) = ttfb_title(m, area.width, th.unknown()) {
        block = block.title_bottom(ttfb);
    }
    let chart = BarChart::default()
        .block(block)
        .data(BarGroup::default().bars(&bars))
        // Five bars share the width; values are printed inside, so keep at least 3 cells.
        .bar_width(
            (area.width.saturating_sub(1) / 5)
                .saturating_sub(1)
                .clamp(3, 8),
        )
        .bar_gap(1);
    frame.render_widget(chart, area);
}

/// Time to first byte over the window, for the bottom edge of the latency box: only
/// when some answer in the window streamed (a model that never does gets no zeros).
/// Labelled when it fits the box, else the three figures alone.
fn ttfb_title(m: &ModelView, width: u16, dash: &str) -> Option<String> {
    let s = &m.stats;
    s.ttfb_p50_ms?;
    let [p50, p95, p99] =
        [s.ttfb_p50_ms, s.ttfb_p95_ms, s.ttfb_p99_ms].map(|v| format::ms(v, dash));
    let full = format!(" ttfb ms: p50 {p50} p95 {p95} p99 {p99} ");
    // Two cells for the corners.
    if full.chars().count() + 2 <= usize::from(width) {
        Some(full)
    } else {
        Some(format!(" ttfb {p50}/{p95}/{p99} "))
    }
}

fn render_status(frame: &mut Frame, area: Rect, m: &ModelView, app: &AppState) {
    let th = app.theme;
    let st = &m.stats.status;
    let total = m.stats.requests;
    let share = |n: u64| format::pct((total > 0).then(|| n as f64 / total as f64), th.unknown());
    // Narrow: drop the counts and keep the shares, which carry the story.
    let counts = area.width >= 26;
    let line = |class: &'static str, n: u64, share: String| {
        let mut cells = vec![Cell::from(class)];
        if counts {
            cells.push(Cell::from(Line::from(format::count(n)).right_aligned()));
        }
        cells.push(Cell::from(Line::from(share).right_aligned()));
        Row::new(cells)
    };
    let rows = [
        ("1xx", st.c1xx),
        ("2xx", st.c2xx),
        ("3xx", st.c3xx),
        ("4xx", st.c4xx),
        ("5xx", st.c5xx),
    ]
    .into_iter()
    .map(|(class, n)| line(class, n, share(n)))
    .chain(std::iter::once(line(
        "errors",
        m.stats.errors,
        format::pct(m.stats.error_rate, th.unknown()),
    )));
    let widths: &[Constraint] = if counts {
        &[
            Constraint::Length(6),
            Constraint::Fill(1),
            Constraint::Length(6),
        ]
    } else {
        &[Constraint::Length(6), Constraint::Fill(1)]
    };
    let table = Table::new(rows, widths.iter().copied()).block(Block::bordered().title(" status "));
    frame.render_widget(table, area);
}

fn render_rejects(frame: &mut Frame, area: Rect, view: &Live, m: &ModelView, app: &AppState) {
    let th = app.theme;
    let lines: Vec<Line> = view
        .recent_rejects
        .iter()
        .rev()
        .filter(|r| r.model.as_deref() == Some(m.model.as_str()))
        .take(area.height.saturating_sub(2) as usize)
        .map(|r| {
            Line::from(vec![
                Span::styled(format::clock(r.at_ms), th.dim()),
                Span::raw(" "),
                Span::styled(
                    r.reason.clone(),
                    th.health(crate::tui::health::Health::Warn),
                ),
                Span::raw(" "),
                Span::raw(r.detail.clone()),
            ])
        })
        .collect();
    let block = Block::bordered().title(" recent rejects ");
    if lines.is_empty() {
        frame.render_widget(
            Paragraph::new("none for this model")
                .style(th.dim())
                .block(block),
            area,
        );
    } else {
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }
}

fn render_keyed(frame: &mut Frame, area: Rect, title: &str, items: &[KeyStats], app: &AppState) {
    let th = app.theme;
    let dash = th.unknown();
    let right = |s: String| Cell::from(Line::from(s).right_aligned());
    let header = Row::new(
        ["NAME", "QPS", "P50", "P95", "P99", "ERR"]
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let l = Line::from(t);
                Cell::from(if i == 0 { l } else { l.right_aligned() })
            }),
    )
    .style(th.header());
    let rows = items
        .iter()
        .take(area.height.saturating_sub(3) as usize)
        .map(|k| {
            let s = &k.stats;
            Row::new([
                Cell::from(k.name.clone()),
                right(format::qps(s.qps)),
                right(format::ms(s.p50_ms, dash)),
                right(format::ms(s.p95_ms, dash)),
                right(format::ms(s.p99_ms, dash)),
                right(format::pct(s.error_rate, dash)),
            ])
        });
    let table = Table::new(
        rows,
        [
            Constraint::Min(10),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
        ],
    )
    .header(header)
    .block(Block::bordered().title(title.to_owned()))
    .style(Style::new());
    frame.render_widget(table, area);
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn an_axis_top_below_a_tenth_keeps_two_significant_digits() {
        // A rare error rate: a line is drawn, so its top is not 0.00.
        assert_eq!(compact(0.0031 * 1.1), "0.0034");
        assert_eq!(compact(0.05), "0.050");
        assert_eq!(compact(0.099), "0.099");
        assert_eq!(compact(0.000_012), "0.000012");
        // At and above a tenth, as before.
        assert_eq!(compact(0.1), "0.10");
        assert_eq!(compact(1.0), "1.00");
        assert_eq!(compact(42.34), "42.3");
        assert_eq!(compact(480.0), "480");
        assert_eq!(compact(12_400.0), "12k");
    }
}
