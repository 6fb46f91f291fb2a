//! Two lines on top: what the monitor cannot see (its own firing alerts), the broker,
//! Docker and ingest counters, then the monitor's own cost, the alert counts, its own
//! warnings and the clock.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::alert::{AlertPhase, Metric, Severity};
use crate::live::Live;
use crate::store::view::{AgentState, AgentView, BrokerState, DockerState};
use crate::tui::app::AppState;
use crate::tui::format;
use crate::tui::health::Health;
use crate::tui::theme::Theme;

pub fn render(frame: &mut Frame, area: Rect, view: &Live, app: &AppState) {
    let th = app.theme;
    let dash = th.unknown();
    let i = &view.ingest;
    let broker_health = match view.broker.state {
        BrokerState::Connected | BrokerState::Demo => Health::Ok,
        BrokerState::Connecting => Health::Warn,
        BrokerState::Down => Health::Crit,
    };
    let mut first = vec![Span::styled("modelmon", th.header())];
    // What the monitor cannot see comes first: on a narrow terminal the end of the line
    // is cut, and every figure on screen is only as good as this.
    for (text, level) in monitor_banners(view) {
        first.push(Span::raw("  "));
        first.push(Span::styled(
            text,
            th.health(level).add_modifier(Modifier::REVERSED),
        ));
    }
    first.push(Span::raw("  broker "));
    first.push(Span::styled(
        view.broker.state.as_str(),
        th.health(broker_health),
    ));
    if let Some(e) = &view.broker.error {
        first.push(Span::styled(format!(" ({e})"), th.dim()));
    } else if let Some(node) = view.broker.node_authority() {
        // Which of a cluster's nodes is in use: after a failover, the one that took over.
        first.push(Span::styled(format!(" ({node})"), th.dim()));
    }
    let d = &view.docker;
    first.push(Span::raw("  docker "));
    match d.state {
        DockerState::Connected => {
            first.push(Span::styled(d.state.as_str(), th.health(Health::Ok)));
            // On a narrow terminal the ingest counters need the room more.
            if area.width >= 120 {
                let plural = if d.containers == 1 { "" } else { "s" };
                first.push(Span::raw(format!(" ({} container{plural})", d.containers)));
            }
        }
        DockerState::Unavailable => {
            first.push(Span::styled(d.state.as_str(), th.health(Health::Warn)));
            if let Some(e) = &d.error {
                first.push(Span::styled(format!(" ({e})"), th.dim()));
            }
        }
        DockerState::Disabled => first.push(Span::styled(d.state.as_str(), th.dim())),
    }
    agents(&mut first, &view.agents, th);
    first.push(Span::raw(format!(
        "  ingest {}/s  events {}  rejected {}  dropped {}  late {}",
        format::qps(i.events_per_s),
        format::count(i.events),
        format::count(i.rejected),
        format::count(i.dropped_at_source),
        format::count(i.late),
    )));

    // The counts are the alert engine's, so the header agrees with the alerts pane.
    let (mut crit, mut warn, mut pending) = (0, 0, 0);
    for a in &view.alerts.active {
        match (a.state, a.severity) {
            (AlertPhase::Firing, Severity::Critical) => crit += 1,
            (AlertPhase::Firing, _) => warn += 1,
            _ => pending += 1,
        }
    }
    let mut second = vec![
        Span::raw(format!(
            "self cpu {}  rss {}  models {}  alerts ",
            app.own
                .cpu_percent
                .map_or_else(|| dash.to_owned(), |c| format!("{c:.1}%")),
            app.own
                .rss_bytes
                .map_or_else(|| dash.to_owned(), format::bytes),
            view.models.len(),
        )),
        Span::styled(
            format!("{crit} crit"),
            th.health(if crit > 0 { Health::Crit } else { Health::Idle }),
        ),
        Span::raw(" "),
        Span::styled(
            format!("{warn} warn"),
            th.health(if warn > 0 { Health::Warn } else { Health::Idle }),
        ),
        Span::styled(format!(" {pending} pend"), th.dim()),
    ];
    // The monitor's own warnings: loud while some are unread, then a reminder of the key.
    let unseen = app.unseen_warnings(view);
    if unseen > 0 {
        let plural = if unseen == 1 { "" } else { "s" };
        second.push(Span::raw("  "));
        second.push(Span::styled(
            format!("{unseen} new warning{plural} (w)"),
            th.health(Health::Warn),
        ));
    } else if view.warnings.total > 0 {
        second.push(Span::styled("  warnings (w)", th.dim()));
    }
    second.push(Span::raw(format!("  {} UTC", format::clock(view.ts_ms))));
    if app.paused() {
        second.push(Span::raw("  "));
        second.push(Span::styled(" PAUSED (p resumes) ", th.paused()));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}

/// One short badge per firing alert about the monitor itself, saying what it means for
/// the figures on screen: blind to requests, blind to containers, or losing events.
/// The full sentence is in the alerts pane.
fn monitor_banners(view: &Live) -> Vec<(String, Health)> {
    view.alerts
        .active
        .iter()
        .filter(|a| a.is_monitor() && a.state == AlertPhase::Firing)
        .map(|a| {
            let for_ = format::age(Some(view.ts_ms - a.active_since_ms), "");
            let text = match a.metric {
                Metric::BrokerDown => format!(" BLIND: broker down {for_}, no request figures "),
                Metric::DockerDown => {
                    format!(" BLIND to containers: Docker unreachable {for_} ")
                }
                Metric::SourceDrops => format!(
                    " DROPPING: sources lost {} events ",
                    a.value
                        .map_or_else(|| "some".to_owned(), |v| format!("{v:.0}"))
                ),
                _ => format!(" monitor: {} ", a.rule),
            };
            let level = if a.severity == Severity::Critical {
                Health::Crit
            } else {
                Health::Warn
            };
            (text, level)
        })
        .collect()
}

/// Other hosts' agents: how many speak, and which have gone silent (by name, while few).
fn agents(spans: &mut Vec<Span<'static>>, agents: &[AgentView], th: Theme) {
    if agents.is_empty() {
        return;
    }
    let live = agents
        .iter()
        .filter(|a| a.state == AgentState::Live)
        .count();
    spans.push(Span::raw(format!("  agents {live} live")));
    let silent: Vec<&str> = agents
        .iter()
        .filter(|a| a.state == AgentState::Silent)
        .map(|a| a.host.as_str())
        .collect();
    if !silent.is_empty() {
        let names = if silent.len() <= 2 {
            format!(" ({})", silent.join(", "))
        } else {
            String::new()
        };
        spans.push(Span::styled(
            format!(", {} silent{names}", silent.len()),
            th.health(Health::Warn),
        ));
    }
}
