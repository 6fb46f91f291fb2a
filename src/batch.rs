//! `--batch`: one JSON object per line per refresh, like `top -b`.
//!
//! The line is a stable interface for scripts (see README): keys are only ever added.
//! Values the monitor does not know are `null`, never a fake 0.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use crate::live::Live;
use crate::store::history::{KeyKind, KeySummary, MeasureSummary, Range, RangeSummary};
use crate::store::view::{
    AgentView, BrokerState, ContainerEventView, ContainerView, DockerState, MeasureStats,
    ModelResources, ModelView, StatusClasses, VersionStats,
};

#[derive(Serialize)]
pub struct Line<'a> {
    pub ts_ms: i64,
    pub broker: BrokerLine<'a>,
    pub ingest: &'a crate::store::view::IngestView,
    pub docker: DockerLine<'a>,
    /// Agents publishing other hosts' containers (`modelmon-tui agent`).
    pub agents: &'a [AgentView],
    pub models: Vec<ModelLine<'a>>,
    /// The monitor's own alerts (broker, sources, Docker engine), as each model's.
    pub alerts: Vec<serde_json::Value>,
}

#[derive(Serialize)]
pub struct DockerLine<'a> {
    pub state: DockerState,
    pub error: Option<&'a str>,
    pub connections: u64,
    pub containers: usize,
}

#[derive(Serialize)]
pub struct BrokerLine<'a> {
    pub state: BrokerState,
    pub error: Option<&'a str>,
    /// The node in use, password hidden (`null` when not connected).
    pub node: Option<&'a str>,
    pub connections: u64,
}

#[derive(Serialize)]
pub struct ModelLine<'a> {
    pub model: &'a str,
    pub window_s: u32,
    pub requests: u64,
    pub qps: f64,
    pub errors: u64,
    pub error_rate: Option<f64>,
    pub client_errors: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Streamed answers (events with `ttfb_us`) in the window; the TTFB and generation
    /// figures are over those only, `null` when there were none.
    pub ttfb_requests: u64,
    pub ttfb_mean_ms: Option<f64>,
    pub ttfb_p50_ms: Option<f64>,
    pub ttfb_p95_ms: Option<f64>,
    pub ttfb_p99_ms: Option<f64>,
    /// Generation time: duration − TTFB per streamed answer.
    pub gen_p50_ms: Option<f64>,
    pub gen_p95_ms: Option<f64>,
    /// Each version in the window side by side, busiest first, with its share.
    pub versions: &'a [VersionStats],
    /// Model measures (`ml` keys) by key: distribution, sum and rate per second.
    pub ml: &'a BTreeMap<String, MeasureStats>,
    /// `req_bytes` and `resp_bytes`, the same way, when events carry them.
    pub sizes: &'a BTreeMap<String, MeasureStats>,
    pub status: StatusClasses,
    pub last_seen_ms_ago: Option<i64>,
    /// Container resources arrive with Docker polling; unknown until then.
    pub cpu_percent: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    /// Restarts of the model's containers (Docker's restart count, summed).
    pub restarts: Option<u64>,
    pub oom_kills: Option<u64>,
    /// The least healthy replica's state: running, restarting, exited, paused...
    pub container_state: Option<&'a str>,
    pub health: Option<&'a str>,
    /// Per replica, and the last Docker events; absent when no container is mapped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub containers: Option<&'a [ContainerView]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_events: Option<&'a [ContainerEventView]>,
    /// Hosts of its replicas whose agents went silent: the sums above are `null` then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silent_hosts: Option<&'a [String]>,
    pub alerts: Vec<serde_json::Value>,
    /// The model's normal, as the relative alert rules judge it; `null` before the
    /// monitor has any history of it.
    pub baseline: Option<&'a crate::alert::Baseline>,
    /// With `--range`: the same figures over that much history.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<RangeSummary>,
    /// With `--range`: per route and per instance, busiest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_routes: Option<Vec<KeySummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_instances: Option<Vec<KeySummary>>,
    /// With `--range`: per version, per `ml` key, and the streams' `ttfb` and
    /// `generation` (durations, like latency).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_versions: Option<Vec<KeySummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_ml: Option<Vec<MeasureSummary>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range_streams: Option<Vec<KeySummary>>,
}

impl<'a> Line<'a> {
    pub fn new(view: &'a Live) -> Self {
        Self {
            ts_ms: view.ts_ms,
            broker: BrokerLine {
                state: view.broker.state,
                error: view.broker.error.as_deref(),
                node: view.broker.node.as_deref(),
                connections: view.broker.connections,
            },
            ingest: &view.ingest,
            docker: DockerLine {
                state: view.docker.state,
                error: view.docker.error.as_deref(),
                connections: view.docker.connections,
                containers: view.docker.containers,
            },
            agents: &view.agents,
            models: view.models.iter().map(|m| model_line(view, m)).collect(),
            alerts: alert_objects(&view.alerts, crate::alert::MONITOR),
        }
    }
}

/// One model's object of a line, with its alerts and normal.
pub fn model_line<'a>(view: &'a Live, m: &'a ModelView) -> ModelLine<'a> {
    let mut line = ModelLine::new(m, view.resources(&m.model));
    line.alerts = alert_objects(&view.alerts, &m.model);
    line.baseline = view.alerts.baseline(&m.model);
    line
}

impl<'a> ModelLine<'a> {
    fn new(m: &'a ModelView, res: Option<&'a ModelResources>) -> Self {
        let s = &m.stats;
        Self {
            model: &m.model,
            window_s: m.window_s,
            requests: s.requests,
            qps: round3(s.qps),
            errors: s.errors,
            error_rate: s.error_rate.map(round6),
            client_errors: s.client_errors,
            p50_ms: s.p50_ms.map(round3),
            p90_ms: s.p90_ms.map(round3),
            p95_ms: s.p95_ms.map(round3),
            p99_ms: s.p99_ms.map(round3),
            max_ms: s.max_ms.map(round3),
            ttfb_requests: s.ttfb_requests,
            ttfb_mean_ms: s.ttfb_mean_ms.map(round3),
            ttfb_p50_ms: s.ttfb_p50_ms.map(round3),
            ttfb_p95_ms: s.ttfb_p95_ms.map(round3),
            ttfb_p99_ms: s.ttfb_p99_ms.map(round3),
            gen_p50_ms: s.gen_p50_ms.map(round3),
            gen_p95_ms: s.gen_p95_ms.map(round3),
            versions: &m.versions,
            ml: &m.ml,
            sizes: &m.sizes,
            status: s.status,
            last_seen_ms_ago: m.last_seen_ms_ago,
            cpu_percent: res.and_then(|r| r.usage.cpu_percent).map(round3),
            mem_bytes: res.and_then(|r| r.usage.mem_bytes),
            mem_limit_bytes: res.and_then(|r| r.usage.mem_limit_bytes),
            restarts: res.map(|r| r.restarts),
            oom_kills: res.map(|r| r.oom_kills),
            container_state: res.map(|r| r.state.as_str()),
            health: res.and_then(|r| r.health.as_deref()),
            containers: res.map(|r| r.containers.as_slice()),
            container_events: res.map(|r| r.events.as_slice()),
            silent_hosts: res
                .map(|r| r.silent_hosts.as_slice())
                .filter(|h| !h.is_empty()),
            alerts: Vec::new(),
            baseline: None,
            range: None,
            range_routes: None,
            range_instances: None,
            range_versions: None,
            range_ml: None,
            range_streams: None,
        }
    }
}

/// A model's alerts (or the monitor's own) as `--batch` shows them: active ones first,
/// then those resolved in the last 24 h, newest first. `since` is when the alert entered
/// its current state; `explanation` says why in one sentence, with the figures.
fn alert_objects(alerts: &crate::alert::AlertsView, model: &str) -> Vec<serde_json::Value> {
    alerts
        .for_model(model)
        .map(|a| {
            serde_json::json!({
                "rule": a.rule,
                "state": a.state.as_str(),
                "metric": a.metric.as_str(),
                "severity": a.severity.as_str(),
                "value": a.value.map(round6),
                // As the web API's alert objects: the value in its metric's unit.
                "value_text": a.value.map(|v| a.metric.show(v)),
                "threshold": a.threshold,
                "resolve": a.resolve,
                "normal": a.normal,
                "explanation": a.explanation,
                "since": a.since_ms,
                "started_ms": a.started_ms,
                "resolved_ms": a.resolved_ms,
                "silenced": a.silenced,
                "acknowledged": a.acknowledged,
            })
        })
        .collect()
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Writes one line for `view`, with each model's figures over `range` when given.
pub fn write_line_with_range(
    out: &mut impl Write,
    view: &Live,
    range: Option<&Range>,
) -> std::io::Result<()> {
    let mut line = Line::new(view);
    if let Some(range) = range {
        for m in &mut line.models {
            let h = &view.history;
            m.range = h.summary(m.model, range, view.ts_ms);
            let keys = |kind| Some(h.key_summaries(m.model, kind, range, view.ts_ms));
            m.range_routes = keys(KeyKind::Route);
            m.range_instances = keys(KeyKind::Instance);
            m.range_versions = keys(KeyKind::Version);
            m.range_ml = Some(h.measure_summaries(m.model, range, view.ts_ms));
            m.range_streams = keys(KeyKind::Stream);
        }
    }
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes one line for `view`.
pub fn write_line(out: &mut impl Write, view: &Live) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &Line::new(view))?;
    out.write_all(b"\n")?;
    out.flush()
}
