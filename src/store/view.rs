//! What every consumer reads: an immutable picture of the store at one instant.
//!
//! The TUI, `--batch`, alerts and the web server all render a [`View`]; none of them
//! aggregates on its own, so they can never disagree. Unknown values are `None` (JSON
//! `null`), never a fake 0.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::history::HistoryView;

/// The state of the connection to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BrokerState {
    Connected,
    #[default]
    Connecting,
    Down,
    /// `--demo`: no broker is used.
    Demo,
}

impl BrokerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Connecting => "connecting",
            Self::Down => "down",
            Self::Demo => "demo",
        }
    }
}

/// The broker as every output shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerView {
    pub state: BrokerState,
    /// Why it is down, when it is.
    pub error: Option<String>,
    /// The queue this monitor consumes from.
    pub queue: Option<String>,
    /// The node in use (its URL, password hidden): one of the cluster's nodes when the
    /// broker setting lists several.
    pub node: Option<String>,
    /// Successful connections so far: above 1 means the monitor has reconnected.
    pub connections: u64,
}

impl BrokerView {
    /// `host:port` of the node in use: what tells one node of a cluster from another.
    pub fn node_authority(&self) -> Option<&str> {
        let url = self.node.as_deref()?;
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        Some(
            authority
                .rsplit_once('@')
                .map_or(authority, |(_, host)| host),
        )
    }
}

/// Ingest counters since the monitor started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestView {
    /// Events accepted.
    pub events: u64,
    /// Events rejected (a body that could not be read at all counts as one).
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Events the publishers reported dropping before they reached the broker.
    pub dropped_at_source: u64,
    /// Events older than the live window when they arrived (still counted in history).
    pub late: u64,
    /// Events folded into `(other)` because a cardinality cap was reached.
    pub overflowed: u64,
    /// Messages (batches) received.
    pub batches: u64,
    /// Accepted events per second over the last refresh.
    pub events_per_s: f64,
    /// Drops reported per publisher, `kind/instance/pid`.
    pub dropped_by_source: BTreeMap<String, u64>,
}

/// One rejected event, kept for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectRecord {
    pub at_ms: i64,
    pub reason: String,
    pub model: Option<String>,
    pub detail: String,
}

/// Requests by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusClasses {
    #[serde(rename = "1xx")]
    pub c1xx: u64,
    #[serde(rename = "2xx")]
    pub c2xx: u64,
    #[serde(rename = "3xx")]
    pub c3xx: u64,
    #[serde(rename = "4xx")]
    pub c4xx: u64,
    #[serde(rename = "5xx")]
    pub c5xx: u64,
}

impl From<[u64; 5]> for StatusClasses {
    fn from(s: [u64; 5]) -> Self {
        Self {
            c1xx: s[0],
            c2xx: s[1],
            c3xx: s[2],
            c4xx: s[3],
            c5xx: s[4],
        }
    }
}

/// Figures over the live window for one model, route or instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub requests: u64,
    pub qps: f64,
    pub errors: u64,
    /// `errors / requests`; `None` with no requests.
    pub error_rate: Option<f64>,
    /// 4xx answers: the client's fault, not counted as errors.
    pub client_errors: u64,
    pub client_error_rate: Option<f64>,
    pub status: StatusClasses,
    pub mean_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Requests of the window whose event carried `ttfb_us` (streamed answers); the
    /// figures below are over those only, and `None` when there were none.
    #[serde(default)]
    pub ttfb_requests: u64,
    /// Time to first byte.
    #[serde(default)]
    pub ttfb_mean_ms: Option<f64>,
    #[serde(default)]
    pub ttfb_p50_ms: Option<f64>,
    #[serde(default)]
    pub ttfb_p95_ms: Option<f64>,
    #[serde(default)]
    pub ttfb_p99_ms: Option<f64>,
    /// Generation time: duration − TTFB of each streamed answer (first byte to last),
    /// then its percentiles (not the difference of two percentiles).
    #[serde(default)]
    pub gen_p50_ms: Option<f64>,
    #[serde(default)]
    pub gen_p95_ms: Option<f64>,
}

/// A route or an instance of a model, with its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStats {
    pub name: String,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One version of a model, with its figures: versions side by side show a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionStats {
    pub version: String,
    /// Its part of the requests that carried a version, in the window: 0..1, and the
    /// shares of a model's versions add up to 1.
    pub share: Option<f64>,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One model measure (an `ml` key, or a request or response size) over the live window.
/// Distributions keep values to 0.001 and within 1 %; negative values count as 0.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MeasureStats {
    /// Events that carried it.
    pub count: u64,
    pub sum: f64,
    /// `sum` per second of the window: `tokens_out` gives tokens per second.
    pub rate_per_s: f64,
    /// Per event that carried it.
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl MeasureStats {
    /// From a window's figures over values kept in thousandths (so its "ms" are units).
    /// Rounded to the thousandth the values are kept to: more digits would be noise.
    pub fn from_window(s: &Stats) -> Self {
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        let mean = s.mean_ms.unwrap_or(0.0);
        Self {
            count: s.requests,
            sum: r(mean * s.requests as f64),
            rate_per_s: r(mean * s.qps),
            mean: s.mean_ms.map(r),
            p50: s.p50_ms.map(r),
            p95: s.p95_ms.map(r),
            p99: s.p99_ms.map(r),
            max: s.max_ms.map(r),
        }
    }
}

/// One second of a model's recent past, for sparklines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Unix second.
    pub sec: i64,
    pub requests: u64,
    pub errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// Counts since the monitor started, per label set, for `/metrics` (see
/// [`crate::store::totals`]): monotonic, for Prometheus' `rate()`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub series: Vec<SeriesTotals>,
    /// Times to first byte; `None` until the model sends an event with `ttfb_us`, so
    /// models that never stream carry nothing.
    pub ttfb: Option<Histogram>,
}

/// A model's requests with one route, method, version and status class.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesTotals {
    pub route: String,
    pub method: &'static str,
    /// Empty for events without a version.
    pub version: String,
    pub class: &'static str,
    /// Errors (5xx, or an error set) among them.
    pub errors: u64,
    pub duration: Histogram,
}

/// A distribution on the view's [`View::buckets`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub count: u64,
    /// Sum of all values, microseconds: whole numbers add up without rounding noise.
    pub sum_us: u64,
    /// Values at or under each bound and above the one before (not cumulative; those
    /// above the last bound only in `count`).
    pub buckets: Vec<u64>,
}

/// A model and everything known about it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    pub model: String,
    pub window_s: u32,
    #[serde(flatten)]
    pub stats: Stats,
    /// Milliseconds since the newest request ended; `None` if never seen.
    pub last_seen_ms_ago: Option<i64>,
    /// Per-second points over the last five minutes, oldest first, gaps filled with zeros
    /// (a second with no traffic had zero requests: that is known, not unknown).
    pub series: Vec<SeriesPoint>,
    pub routes: Vec<KeyStats>,
    pub instances: Vec<KeyStats>,
    /// Routes folded into `(other)` after the per-model cap.
    pub routes_overflowed: u64,
    /// The newest event's version.
    pub version: Option<String>,
    /// Each version seen in the window, busiest first (events without one are not here).
    #[serde(default)]
    pub versions: Vec<VersionStats>,
    /// Model measures (`ml` keys), by key.
    #[serde(default)]
    pub ml: BTreeMap<String, MeasureStats>,
    /// `req_bytes` and `resp_bytes`, when events carry them.
    #[serde(default)]
    pub sizes: BTreeMap<String, MeasureStats>,
    /// Everything accepted since the monitor started, for `/metrics` only.
    #[serde(skip)]
    pub totals: Totals,
}

/// The `ml` keys an LLM's answers carry (as `modelmon-proxy --openai` writes them, and
/// the `record()` recipe of docs/python.md): output tokens, and each answer's mean gap
/// between tokens.
pub const ML_TOKENS_OUT: &str = "tokens_out";
pub const ML_ITL_MEAN_US: &str = "itl_mean_us";

impl ModelView {
    /// Output tokens per second over the window, all answers together: the model's
    /// throughput as an LLM's team reads it. `None` for a model that reports no tokens.
    pub fn tokens_per_s(&self) -> Option<f64> {
        self.ml.get(ML_TOKENS_OUT).map(|m| m.rate_per_s)
    }

    /// The inter-token latency (ITL) that 95 % of streamed answers stay under, ms: the
    /// p95 of each answer's mean gap between tokens.
    pub fn itl_p95_ms(&self) -> Option<f64> {
        self.ml.get(ML_ITL_MEAN_US)?.p95.map(|us| us / 1000.0)
    }
}

/// The whole picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub ts_ms: i64,
    pub broker: BrokerView,
    pub ingest: IngestView,
    pub recent_rejects: Vec<RejectRecord>,
    pub models: Vec<ModelView>,
    /// The live window's length (each model's `window_s`), known with no model yet.
    #[serde(default)]
    pub window_s: u32,
    /// The 24-hour history, rebuilt at most once per 10-s bucket and shared (not
    /// copied) by every view until then.
    #[serde(skip)]
    pub history: Arc<HistoryView>,
    /// The Docker engine the resource figures come from.
    #[serde(default)]
    pub docker: DockerView,
    /// Container resources per model (only models with a container mapped to them).
    #[serde(default)]
    pub resources: BTreeMap<String, ModelResources>,
    /// The container counters `/metrics` exposes, per model in `resources`.
    #[serde(skip)]
    pub resource_counters: BTreeMap<String, ResourceCounters>,
    /// Agents publishing the containers of other hosts, by host name.
    #[serde(default)]
    pub agents: Vec<AgentView>,
    /// The bounds every [`Histogram`] of the view counts on.
    #[serde(skip)]
    pub buckets: crate::store::Buckets,
}

impl View {
    pub fn model(&self, name: &str) -> Option<&ModelView> {
        self.models.iter().find(|m| m.model == name)
    }

    /// The container resources of a model, when a container is mapped to it.
    pub fn resources(&self, model: &str) -> Option<&ModelResources> {
        self.resources.get(model)
    }
}

/// Whether an agent's pictures are coming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    #[default]
    Live,
    /// No picture for 3 intervals (at least 5 s): its containers' figures are unknown.
    Silent,
    /// Hosts past the cap, counted together under `(other)`: their pictures are refused.
    Refused,
}

/// An agent on another host, as the monitor last heard from it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentView {
    pub host: String,
    /// The agent's version, from its messages.
    pub version: String,
    pub state: AgentState,
    /// When its last picture was applied, Unix ms (this monitor's clock).
    pub last_seen_ms: i64,
    /// How often it sends a picture.
    pub interval_ms: i64,
    /// Containers of its host mapped to a model.
    pub containers: usize,
    /// Pictures it could not deliver (broker away), as it reported them.
    pub dropped: u64,
    /// Containers or events of its pictures that failed validation; for `(other)`, the
    /// refused pictures.
    pub rejected: u64,
}

/// Whether container resources can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DockerState {
    Connected,
    /// No socket, no permission, or the daemon went away: retried with backoff.
    Unavailable,
    /// `--no-docker`, `[docker] enabled = false`, or `--demo`.
    #[default]
    Disabled,
}

impl DockerState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Unavailable => "unavailable",
            Self::Disabled => "disabled",
        }
    }
}

/// The Docker engine as every output shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DockerView {
    pub state: DockerState,
    /// Why it is unavailable, with how to fix it when that is known.
    pub error: Option<String>,
    /// Successful connections so far: above 1 means the engine came back.
    pub connections: u64,
    /// Containers mapped to a model.
    pub containers: usize,
}

/// What a container uses, as `docker stats` shows it: one replica's, or a model's
/// replicas summed. `None` until a sample says, and again once a container stops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// 100 % = one core.
    pub cpu_percent: Option<f64>,
    /// Percent of what may be used: CPU limits, or the hosts' cores where there are
    /// none. 100 % = throttled.
    #[serde(default)]
    pub cpu_limit_percent: Option<f64>,
    /// Cores that may be used: limits, or the hosts' online CPUs.
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    /// CPU time used since the container started, seconds (Docker's total usage): a
    /// counter that starts over with the container.
    #[serde(default)]
    pub cpu_seconds: Option<f64>,
    /// Usage minus inactive file cache.
    pub mem_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    pub mem_percent: Option<f64>,
    pub net_rx_bytes_per_s: Option<f64>,
    pub net_tx_bytes_per_s: Option<f64>,
    pub blk_read_bytes: Option<u64>,
    pub blk_write_bytes: Option<u64>,
    pub pids: Option<u64>,
}

/// One container (an instance of a model) and its latest sample. Figures are `None`
/// until the first sample, and again once the container stops.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerView {
    /// Short (12-hex) id, as `docker ps` shows it and as the container's hostname.
    pub id: String,
    pub name: String,
    /// The host whose agent reported it; `None`: this monitor's own Docker engine.
    #[serde(default)]
    pub host: Option<String>,
    /// running, restarting, exited, paused, created, dead, removing.
    pub state: String,
    /// Health-check status, when the image has a health check.
    pub health: Option<String>,
    /// Docker's restart count (restart policy restarts).
    pub restarts: u64,
    /// OOM kills seen by this monitor (a `die` after Docker `oom` events).
    pub oom_kills: u64,
    /// Whether the last exit was an OOM kill (from Docker's inspect).
    pub oom_killed: bool,
    #[serde(flatten)]
    pub usage: Usage,
    /// When the sample was taken, Unix ms.
    pub sampled_at_ms: Option<i64>,
}

/// A Docker event on a model's timeline: die, oom, start, restart, health changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerEventView {
    pub at_ms: i64,
    pub container: String,
    /// Docker's action: `die`, `oom`, `start`, `restart`, `stop`, `pause`, `unpause`,
    /// `health_status: unhealthy`, ...
    pub action: String,
    /// E.g. the exit code of a `die`.
    pub detail: Option<String>,
}

/// A model's containers, summed over its replicas.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelResources {
    /// The replicas' figures summed (their percentages of the sums).
    #[serde(flatten)]
    pub usage: Usage,
    /// Sum of the replicas' restart counts.
    pub restarts: u64,
    pub oom_kills: u64,
    /// The least healthy state among the replicas (running only when all run).
    pub state: String,
    /// The least healthy health status among replicas that have a health check.
    pub health: Option<String>,
    /// Per replica, by host then name.
    pub containers: Vec<ContainerView>,
    /// Hosts of its replicas whose agents went silent: while any is, the sums are
    /// unknown (a total missing a part would read as a drop).
    #[serde(default)]
    pub silent_hosts: Vec<String>,
    /// The last Docker events of the model's containers, oldest first.
    pub events: Vec<ContainerEventView>,
}

/// A model's container counters that never go back while the monitor runs: what its
/// replicas count now, plus what replicas since removed or reset had counted (a sum that
/// fell would read as a counter reset to Prometheus, and `rate()` would jump).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ResourceCounters {
    /// CPU time, seconds; `None` while no replica ever had a sample with it.
    pub cpu_seconds: Option<f64>,
    /// Docker's restart counts.
    pub restarts: u64,
    pub oom_kills: u64,
}

impl ResourceCounters {
    pub(crate) fn add(&mut self, other: &Self) {
        self.cpu_seconds = match (self.cpu_seconds, other.cpu_seconds) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.restarts += other.restarts;
        self.oom_kills += other.oom_kills;
    }

    pub(crate) fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}
