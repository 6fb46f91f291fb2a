//! What every consumer reads: an immutable picture of the store at one instant.
//!
//! The TUI, `--batch`, alerts and the web server all render a [`View`]; none of them
//! aggregates on its own, so they can never disagree. Unknown values are `None` (JSON
//! `null`), never a fake 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    /// Successful connections so far: above 1 means the monitor has reconnected.
    pub connections: u64,
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
}

/// A route or an instance of a model, with its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyStats {
    pub name: String,
    #[serde(flatten)]
    pub stats: Stats,
}

/// One second of a model's recent past, for sparklines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Unix second.
    pub sec: i64,
    pub requests: u64,
    pub errors: u64,
    pub p95_ms: Option<f64>,
}

/// A model and everything known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    pub model: String,
    pub window_s: u32,
    #[serde(flatten)]
    pub stats: Stats,
    /// Milliseconds since the newest event's start; `None` if never seen.
    pub last_seen_ms_ago: Option<i64>,
    /// Per-second points over the last five minutes, oldest first, gaps filled with zeros
    /// (a second with no traffic had zero requests: that is known, not unknown).
    pub series: Vec<SeriesPoint>,
    pub routes: Vec<KeyStats>,
    pub instances: Vec<KeyStats>,
    /// Routes folded into `(other)` after the per-model cap.
    pub routes_overflowed: u64,
    pub version: Option<String>,
}

/// The whole picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub ts_ms: i64,
    pub broker: BrokerView,
    pub ingest: IngestView,
    pub recent_rejects: Vec<RejectRecord>,
    pub models: Vec<ModelView>,
}

impl View {
    pub fn model(&self, name: &str) -> Option<&ModelView> {
        self.models.iter().find(|m| m.model == name)
    }
}
