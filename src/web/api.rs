//! The read-only JSON API (docs/api.md). Per-model figures reuse `--batch`'s shape, so
//! a script written against one reads the other.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::AppState;
use super::cache::Key;
use super::redact::redact_urls;
use crate::alert::engine::{Alert, AlertPhase};
use crate::batch::{Line, ModelLine, model_line};
use crate::live::Live;
use crate::store::history::Range;
use crate::store::view::{KeyStats, ModelResources, ModelView, SeriesPoint};

/// History points per detail series: enough for a chart as wide as a screen.
const MAX_POINTS: usize = 360;

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// A model's state, as the overview colours it.
pub(crate) fn model_state(view: &Live, m: &ModelView) -> &'static str {
    if view.alerts.is_firing(&m.model) {
        "firing"
    } else if view
        .alerts
        .active
        .iter()
        .any(|a| a.model == m.model && a.state == AlertPhase::Pending)
    {
        "pending"
    } else if m.stats.requests == 0 {
        "idle"
    } else {
        "ok"
    }
}

#[derive(Serialize)]
struct OverviewModel<'a> {
    #[serde(flatten)]
    line: ModelLine<'a>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    series: Option<&'a [SeriesPoint]>,
}

#[derive(Deserialize)]
pub(crate) struct OverviewQuery {
    /// `series=1`: each model's per-second points of the last five minutes too.
    #[serde(default)]
    series: Option<String>,
}

pub(crate) async fn models(
    State(state): State<AppState>,
    Query(q): Query<OverviewQuery>,
    headers: HeaderMap,
) -> Response {
    let series = q
        .series
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes"));
    match state
        .cache
        .get(Key::Overview { series }, move |view| overview(view, series))
        .await
    {
        Ok(body) => body.respond(&headers),
        Err(busy) => busy.into_response(),
    }
}

fn overview(view: &Live, with_series: bool) -> Vec<u8> {
    let mut line = Line::new(view);
    redact_alerts(&mut line.alerts);
    let models: Vec<OverviewModel<'_>> = line
        .models
        .into_iter()
        .zip(&view.models)
        .map(|(mut line, m)| {
            redact_alerts(&mut line.alerts);
            OverviewModel {
                line,
                state: model_state(view, m),
                series: with_series.then_some(m.series.as_slice()),
            }
        })
        .collect();
    to_json(&json!({
        "ts_ms": view.ts_ms,
        "broker": broker_json(view),
        "models": models,
        // The monitor's own alerts, as --batch's top-level `alerts`.
        "alerts": line.alerts,
    }))
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serialising plain data into memory cannot fail: no map has non-string keys.
    serde_json::to_vec(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}").into_bytes())
}

/// Alert explanations quote error messages (the broker's, Docker's), which may carry a
/// URL with a password: the same redaction as the broker's error.
pub(crate) fn redact_alerts(alerts: &mut [Value]) {
    for a in alerts {
        if let Some(Value::String(why)) = a.get_mut("explanation") {
            *why = redact_urls(why);
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct DetailQuery {
    range: Option<String>,
}

/// `/api/v1/model?name=`: the detail with the name in the query string, where a proxy
/// leaves it alone (a `proxy_pass` with a URI decodes a `%2F` in the path, so a model
/// named `team/ranker` would reach `/api/v1/models/{name}` as a path with no route).
#[derive(Deserialize)]
pub(crate) struct NamedDetailQuery {
    name: Option<String>,
    range: Option<String>,
}

#[derive(Serialize)]
struct Detail<'a> {
    ts_ms: i64,
    #[serde(flatten)]
    line: ModelLine<'a>,
    state: &'static str,
    series: &'a [SeriesPoint],
    routes: &'a [KeyStats],
    instances: &'a [KeyStats],
    resources: Option<&'a ModelResources>,
    range: String,
    summary: Option<crate::store::history::RangeSummary>,
    history: Vec<crate::store::history::HistoryPoint>,
}

pub(crate) async fn model(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<DetailQuery>,
    headers: HeaderMap,
) -> Response {
    model_detail(&state, name, q.range, &headers).await
}

pub(crate) async fn model_by_query(
    State(state): State<AppState>,
    Query(q): Query<NamedDetailQuery>,
    headers: HeaderMap,
) -> Response {
    let Some(name) = q.name.filter(|n| !n.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "name is required: /api/v1/model?name=MODEL&range=5m",
        );
    };
    model_detail(&state, name, q.range, &headers).await
}

async fn model_detail(
    state: &AppState,
    name: String,
    range: Option<String>,
    headers: &HeaderMap,
) -> Response {
    let range_s = range.unwrap_or_else(|| "5m".to_owned());
    let range = match Range::parse(&range_s) {
        Ok(r @ Range::Last(_)) => r,
        Ok(Range::Between { .. }) | Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "range must be a duration from 10s to 24h, e.g. 5m, 1h, 6h, 24h",
            );
        }
    };
    // Checked before the cache, so unknown names cost nothing and are not kept.
    if state.cache.live().model(&name).is_none() {
        return error(StatusCode::NOT_FOUND, "no such model");
    }
    // Keyed by the range as given: the body echoes it.
    let key = Key::Detail {
        model: name.clone(),
        range: range_s.clone(),
    };
    match state
        .cache
        .get(key, move |view| detail(view, &name, &range, range_s))
        .await
    {
        Ok(body) => body.respond(headers),
        Err(busy) => busy.into_response(),
    }
}

fn detail(view: &Live, name: &str, range: &Range, range_s: String) -> Vec<u8> {
    let Some(m) = view.model(name) else {
        // Gone between the check and this build (folded away): say so in the body.
        return to_json(&json!({"error": "no such model"}));
    };
    let mut line = model_line(view, m);
    redact_alerts(&mut line.alerts);
    to_json(&Detail {
        ts_ms: view.ts_ms,
        line,
        state: model_state(view, m),
        series: &m.series,
        routes: &m.routes,
        instances: &m.instances,
        resources: view.resources(&m.model),
        summary: view.history.summary(&m.model, range, view.ts_ms),
        history: view.history.series(&m.model, range, view.ts_ms, MAX_POINTS),
        range: range_s,
    })
}

pub(crate) async fn alerts(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let built = state.cache.get(Key::Alerts, |view| {
        to_json(&json!({
            "ts_ms": view.ts_ms,
            "active": view.alerts.active.iter().map(alert_json).collect::<Vec<_>>(),
            "recent": view.alerts.recent.iter().map(alert_json).collect::<Vec<_>>(),
            // The monitor's own alerts (also in `active` and `recent`), active first.
            "monitor": view.alerts.monitor().map(alert_json).collect::<Vec<_>>(),
        }))
    });
    match built.await {
        Ok(body) => body.respond(&headers),
        Err(busy) => busy.into_response(),
    }
}

/// Only what a viewer needs: notifier names and their targets stay out. `model` is ""
/// for an alert about the monitor itself; `scope` says so without string tests.
pub(crate) fn alert_json(a: &Alert) -> Value {
    json!({
        "model": a.model,
        "scope": if a.is_monitor() { "monitor" } else { "model" },
        "rule": a.rule,
        "state": a.state.as_str(),
        "metric": a.metric.as_str(),
        "severity": a.severity.as_str(),
        "value": a.value,
        // The value in its metric's unit ("1.8 s", "6.1 %"), as the explanation and the
        // terminal show it: a bare 0.061 does not say whether it is a rate or seconds.
        "value_text": a.value.map(|v| a.metric.show(v)),
        "threshold": a.threshold,
        "resolve": a.resolve,
        "normal": a.normal,
        "explanation": redact_urls(&a.explanation),
        "since_ms": a.since_ms,
        "started_ms": a.started_ms,
        "resolved_ms": a.resolved_ms,
        "silenced": a.silenced,
        "acknowledged": a.acknowledged,
    })
}

pub(crate) async fn status(State(state): State<AppState>) -> Response {
    let view = state.cache.live();
    Json(json!({
        "ts_ms": view.ts_ms,
        "broker": broker_json(&view),
        "docker": docker_json(&view),
        "agents": view.agents,
        "ingest": view.ingest,
        "models": view.models.len(),
        "process": {
            "cpu_seconds": crate::proc_self::cpu_seconds(),
            "rss_bytes": crate::proc_self::rss_bytes(),
            "uptime_s": state.started.elapsed().as_secs(),
            "ws_clients": state.ws_clients(),
        },
    }))
    .into_response()
}

pub(crate) fn broker_json(view: &Live) -> Value {
    json!({
        "state": view.broker.state,
        "error": view.broker.error.as_deref().map(redact_urls),
        "node": view.broker.node.as_deref(),
        "connections": view.broker.connections,
    })
}

fn docker_json(view: &Live) -> Value {
    json!({
        "state": view.docker.state,
        "error": view.docker.error.as_deref().map(redact_urls),
        "connections": view.docker.connections,
        "containers": view.docker.containers,
    })
}

/// Any path no route took. Under `/api/` a JSON body naming the path: behind a proxy that
/// rewrote it, the client sees what arrived instead of an empty 404.
pub(crate) async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        error(
            StatusCode::NOT_FOUND,
            &format!("no such API path: {path} (see docs/api.md)"),
        )
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({ "error": message }))).into_response()
}
