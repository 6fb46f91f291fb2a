//! `--batch`: one JSON object per line per refresh, like `top -b`.
//!
//! The line is a stable interface for scripts (see README): keys are only ever added.
//! Values the monitor does not know are `null`, never a fake 0.

use std::io::Write;

use serde::Serialize;

use crate::store::View;
use crate::store::view::{BrokerState, ModelView, StatusClasses};

#[derive(Serialize)]
pub struct Line<'a> {
    pub ts_ms: i64,
    pub broker: BrokerLine<'a>,
    pub ingest: &'a crate::store::view::IngestView,
    pub models: Vec<ModelLine<'a>>,
}

#[derive(Serialize)]
pub struct BrokerLine<'a> {
    pub state: BrokerState,
    pub error: Option<&'a str>,
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
    pub status: StatusClasses,
    pub last_seen_ms_ago: Option<i64>,
    /// Container resources arrive with Docker polling; unknown until then.
    pub cpu_percent: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    pub alerts: Vec<serde_json::Value>,
}

impl<'a> Line<'a> {
    pub fn new(view: &'a View) -> Self {
        Self {
            ts_ms: view.ts_ms,
            broker: BrokerLine {
                state: view.broker.state,
                error: view.broker.error.as_deref(),
                connections: view.broker.connections,
            },
            ingest: &view.ingest,
            models: view.models.iter().map(ModelLine::new).collect(),
        }
    }
}

impl<'a> ModelLine<'a> {
    fn new(m: &'a ModelView) -> Self {
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
            status: s.status,
            last_seen_ms_ago: m.last_seen_ms_ago,
            cpu_percent: None,
            mem_bytes: None,
            mem_limit_bytes: None,
            alerts: Vec::new(),
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Writes one line for `view`.
pub fn write_line(out: &mut impl Write, view: &View) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &Line::new(view))?;
    out.write_all(b"\n")?;
    out.flush()
}
