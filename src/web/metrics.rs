//! `/metrics`: the Prometheus text exposition format (version 0.0.4).
//!
//! Two kinds of per-model series. Counters since the monitor started
//! (`modelmon_requests_total`, `modelmon_errors_total` and the histogram
//! `modelmon_request_duration_seconds`), for `rate()` and `histogram_quantile()` in the
//! Prometheus a team already runs. And the live window's own figures as gauges and a
//! summary (`modelmon_window_*`, `modelmon_latency_seconds`), which are exactly what the
//! terminal shows (the window slides, so those are not counters). Time to first byte has
//! one of each, only for models whose events carry it. What events carry beyond the
//! request (`version`, the `ml` measures, body sizes) has window series only, each
//! family present once some model has such figures in its window.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::api::model_state;
use crate::live::Live;
use crate::store::view::{MeasureStats, ModelView, Stats, StatusClasses, TtfbTotals};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let view = state.views.borrow().clone();
    let body = render(&view, state.ws_clients());
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// Escapes a label value: backslash, double quote and newline.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Writes `# HELP` and `# TYPE` for a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP modelmon_{name} {help}");
    let _ = writeln!(out, "# TYPE modelmon_{name} {kind}");
}

/// One model's cumulative histogram, buckets `LATENCY_BUCKETS_S`, of `modelmon_{name}`.
fn histogram(o: &mut String, name: &str, model: &str, buckets: &[u64], sum_s: f64, count: u64) {
    let mut cumulative = 0;
    for (bound, n) in crate::store::view::LATENCY_BUCKETS_S.iter().zip(buckets) {
        cumulative += n;
        let _ = writeln!(
            o,
            "modelmon_{name}_bucket{{model=\"{model}\",le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        o,
        "modelmon_{name}_bucket{{model=\"{model}\",le=\"+Inf\"}} {count}"
    );
    let _ = writeln!(o, "modelmon_{name}_sum{{model=\"{model}\"}} {sum_s}");
    let _ = writeln!(o, "modelmon_{name}_count{{model=\"{model}\"}} {count}");
}

/// Window quantiles (given in ms, written in seconds) of `modelmon_{name}` for the
/// (escaped) `labels`.
fn summary(
    o: &mut String,
    name: &str,
    labels: &str,
    quantiles: &[(&str, Option<f64>)],
    count: u64,
    mean_ms: Option<f64>,
) {
    let seconds: Vec<(&str, Option<f64>)> = quantiles
        .iter()
        .map(|&(q, v)| (q, v.map(|ms| ms / 1e3)))
        .collect();
    summary_of(
        o,
        name,
        labels,
        &seconds,
        count,
        mean_ms.map(|mean| mean / 1e3 * count as f64),
    );
}

/// One window summary of `modelmon_{name}` for the (escaped) `labels`, its values
/// already in the family's unit.
fn summary_of(
    o: &mut String,
    name: &str,
    labels: &str,
    quantiles: &[(&str, Option<f64>)],
    count: u64,
    sum: Option<f64>,
) {
    for (q, v) in quantiles {
        // An unknown quantile is absent, not a fake 0.
        if let Some(v) = v {
            let _ = writeln!(o, "modelmon_{name}{{{labels},quantile=\"{q}\"}} {v}");
        }
    }
    let _ = writeln!(o, "modelmon_{name}_count{{{labels}}} {count}");
    if let Some(sum) = sum {
        let _ = writeln!(o, "modelmon_{name}_sum{{{labels}}} {sum}");
    }
}

/// A measure's window percentiles, in its own unit, with its sum and count.
fn measure_summary(o: &mut String, name: &str, labels: &str, s: &MeasureStats) {
    summary_of(
        o,
        name,
        labels,
        &[("0.5", s.p50), ("0.95", s.p95), ("0.99", s.p99)],
        s.count,
        Some(s.sum),
    );
}

/// One series per model and status class.
fn by_class(
    out: &mut String,
    name: &str,
    view: &Live,
    classes: impl Fn(&ModelView) -> &StatusClasses,
) {
    for m in &view.models {
        class_series(
            out,
            name,
            &format!("model=\"{}\"", label(&m.model)),
            classes(m),
        );
    }
}

/// One series per status class for the (escaped) `labels`.
fn class_series(out: &mut String, name: &str, labels: &str, s: &StatusClasses) {
    for (class, v) in [
        ("1xx", s.c1xx),
        ("2xx", s.c2xx),
        ("3xx", s.c3xx),
        ("4xx", s.c4xx),
        ("5xx", s.c5xx),
    ] {
        let _ = writeln!(out, "modelmon_{name}{{{labels},class=\"{class}\"}} {v}");
    }
}

/// `modelmon_time_to_first_byte_seconds`: a histogram since start, on the request
/// duration's buckets so the two compare bucket for bucket, for models that have sent a
/// TTFB (a model that never streams has no series, rather than series of zeros).
fn ttfb_histograms(o: &mut String, view: &Live) {
    let streaming: Vec<(&str, &TtfbTotals)> = view
        .models
        .iter()
        .filter_map(|m| Some((m.model.as_str(), m.totals.ttfb.as_deref()?)))
        .collect();
    if streaming.is_empty() {
        return;
    }
    family(
        o,
        "time_to_first_byte_seconds",
        "histogram",
        "Time to first response byte (first token of a streamed answer) since the monitor started, over events that carry one.",
    );
    for (model, t) in streaming {
        histogram(
            o,
            "time_to_first_byte_seconds",
            &label(model),
            &t.buckets,
            t.sum_s,
            t.count,
        );
    }
}

/// `modelmon_window_time_to_first_byte_seconds`: the window's TTFB percentiles, as
/// `modelmon_latency_seconds` has the latency's, for models with a TTFB in the window.
fn ttfb_summaries(o: &mut String, view: &Live) {
    let streaming: Vec<&ModelView> = view
        .models
        .iter()
        .filter(|m| m.stats.ttfb_requests > 0)
        .collect();
    if streaming.is_empty() {
        return;
    }
    family(
        o,
        "window_time_to_first_byte_seconds",
        "summary",
        "Time to first response byte over the live window, over events that carry one.",
    );
    for m in streaming {
        let s = &m.stats;
        summary(
            o,
            "window_time_to_first_byte_seconds",
            &format!("model=\"{}\"", label(&m.model)),
            &[
                ("0.5", s.ttfb_p50_ms),
                ("0.95", s.ttfb_p95_ms),
                ("0.99", s.ttfb_p99_ms),
            ],
            s.ttfb_requests,
            s.ttfb_mean_ms,
        );
    }
}

/// `modelmon_window_measure`: each `ml` key's window percentiles, per model, in the key's
/// own unit (`queue_us` in µs, `tokens_out` in tokens): the figures the TUI shows.
fn measure_summaries(o: &mut String, view: &Live) {
    if view.models.iter().all(|m| m.ml.is_empty()) {
        return;
    }
    family(
        o,
        "window_measure",
        "summary",
        "Model measures (the ml numbers events carry) over the live window, in each key's own unit, over the events that carry the key.",
    );
    for m in &view.models {
        let model = label(&m.model);
        for (key, s) in &m.ml {
            let labels = format!("model=\"{model}\",key=\"{}\"", label(key));
            measure_summary(o, "window_measure", &labels, s);
        }
    }
}

/// Each version's window figures, for models whose events carry a `version`: requests
/// by status class, errors and a latency summary, so a rollout shows side by side.
fn version_series(o: &mut String, view: &Live) {
    let rows: Vec<(String, &Stats)> = view
        .models
        .iter()
        .flat_map(|m| {
            let model = label(&m.model);
            m.versions.iter().map(move |v| {
                (
                    format!("model=\"{model}\",version=\"{}\"", label(&v.version)),
                    &v.stats,
                )
            })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    family(
        o,
        "window_version_requests",
        "gauge",
        "Requests in the live window per version, by status class (events without a version are in no version).",
    );
    for (labels, s) in &rows {
        class_series(o, "window_version_requests", labels, &s.status);
    }
    family(
        o,
        "window_version_errors",
        "gauge",
        "Errors (5xx and failures) in the live window per version.",
    );
    for (labels, s) in &rows {
        let _ = writeln!(o, "modelmon_window_version_errors{{{labels}}} {}", s.errors);
    }
    family(
        o,
        "window_version_request_duration_seconds",
        "summary",
        "Request latency over the live window per version.",
    );
    for (labels, s) in &rows {
        summary(
            o,
            "window_version_request_duration_seconds",
            labels,
            &[
                ("0.5", s.p50_ms),
                ("0.9", s.p90_ms),
                ("0.95", s.p95_ms),
                ("0.99", s.p99_ms),
            ],
            s.requests,
            s.mean_ms,
        );
    }
}

/// `modelmon_window_request_size_bytes` and `modelmon_window_response_size_bytes`: body
/// sizes over the live window, for models whose events carry them.
fn size_summaries(o: &mut String, view: &Live) {
    for (key, name, help) in [
        (
            "req_bytes",
            "window_request_size_bytes",
            "Request body size over the live window, over events that carry req_bytes.",
        ),
        (
            "resp_bytes",
            "window_response_size_bytes",
            "Response body size over the live window, over events that carry resp_bytes.",
        ),
    ] {
        let sized: Vec<(&str, &MeasureStats)> = view
            .models
            .iter()
            .filter_map(|m| Some((m.model.as_str(), m.sizes.get(key)?)))
            .collect();
        if sized.is_empty() {
            continue;
        }
        family(o, name, "summary", help);
        for (model, s) in sized {
            measure_summary(o, name, &format!("model=\"{}\"", label(model)), s);
        }
    }
}

pub(crate) fn render(view: &Live, ws_clients: usize) -> String {
    let mut o = String::with_capacity(512 + view.models.len() * 1024);
    let window = view.models.first().map_or(0, |m| m.window_s);
    family(
        &mut o,
        "window_seconds",
        "gauge",
        "Length of the live window behind the per-model figures.",
    );
    let _ = writeln!(o, "modelmon_window_seconds {window}");

    family(
        &mut o,
        "window_requests",
        "gauge",
        "Requests in the live window, by status class.",
    );
    by_class(&mut o, "window_requests", view, |m| &m.stats.status);
    family(
        &mut o,
        "requests_total",
        "counter",
        "Requests since the monitor started, by status class.",
    );
    by_class(&mut o, "requests_total", view, |m| &m.totals.status);
    family(
        &mut o,
        "errors_total",
        "counter",
        "Errors (status >= 500 or an error set) since the monitor started.",
    );
    for m in &view.models {
        let _ = writeln!(
            o,
            "modelmon_errors_total{{model=\"{}\"}} {}",
            label(&m.model),
            m.totals.errors
        );
    }
    family(
        &mut o,
        "request_duration_seconds",
        "histogram",
        "Request duration (start to last response byte) since the monitor started.",
    );
    for m in &view.models {
        let t = &m.totals;
        histogram(
            &mut o,
            "request_duration_seconds",
            &label(&m.model),
            &t.duration_buckets,
            t.duration_sum_s,
            t.requests(),
        );
    }
    ttfb_histograms(&mut o, view);
    family(
        &mut o,
        "window_errors",
        "gauge",
        "Errors (5xx and failures) in the live window.",
    );
    for m in &view.models {
        let _ = writeln!(
            o,
            "modelmon_window_errors{{model=\"{}\"}} {}",
            label(&m.model),
            m.stats.errors
        );
    }
    family(
        &mut o,
        "qps",
        "gauge",
        "Requests per second over the live window.",
    );
    for m in &view.models {
        let _ = writeln!(
            o,
            "modelmon_qps{{model=\"{}\"}} {}",
            label(&m.model),
            m.stats.qps
        );
    }
    family(
        &mut o,
        "latency_seconds",
        "summary",
        "Request latency over the live window.",
    );
    for m in &view.models {
        let s = &m.stats;
        summary(
            &mut o,
            "latency_seconds",
            &format!("model=\"{}\"", label(&m.model)),
            &[
                ("0.5", s.p50_ms),
                ("0.9", s.p90_ms),
                ("0.95", s.p95_ms),
                ("0.99", s.p99_ms),
            ],
            s.requests,
            s.mean_ms,
        );
    }
    ttfb_summaries(&mut o, view);
    measure_summaries(&mut o, view);
    version_series(&mut o, view);
    size_summaries(&mut o, view);
    family(
        &mut o,
        "model_up",
        "gauge",
        "1 when the model served a request in the live window.",
    );
    for m in &view.models {
        let up = u8::from(model_state(view, m) != "idle");
        let _ = writeln!(o, "modelmon_model_up{{model=\"{}\"}} {up}", label(&m.model));
    }

    family(
        &mut o,
        "container_cpu_percent",
        "gauge",
        "CPU of the model's containers, 100 = one core.",
    );
    for (model, r) in &view.resources {
        if let Some(v) = r.cpu_percent {
            let _ = writeln!(
                o,
                "modelmon_container_cpu_percent{{model=\"{}\"}} {v}",
                label(model)
            );
        }
    }
    family(
        &mut o,
        "container_memory_bytes",
        "gauge",
        "Memory of the model's containers (without file cache).",
    );
    for (model, r) in &view.resources {
        if let Some(v) = r.mem_bytes {
            let _ = writeln!(
                o,
                "modelmon_container_memory_bytes{{model=\"{}\"}} {v}",
                label(model)
            );
        }
    }
    family(
        &mut o,
        "container_restarts",
        "gauge",
        "Restarts of the model's containers (Docker's count).",
    );
    for (model, r) in &view.resources {
        let _ = writeln!(
            o,
            "modelmon_container_restarts{{model=\"{}\"}} {}",
            label(model),
            r.restarts
        );
    }

    family(
        &mut o,
        "alert_active",
        "gauge",
        "1 per pending or firing alert; the monitor's own have scope=\"monitor\" and no model.",
    );
    for a in &view.alerts.active {
        // An alert about the monitor has no model: an empty `model` label would read as
        // a model named "" and would vanish in `by (model)` aggregations.
        let subject = if a.is_monitor() {
            "scope=\"monitor\"".to_owned()
        } else {
            format!("model=\"{}\"", label(&a.model))
        };
        let _ = writeln!(
            o,
            "modelmon_alert_active{{{subject},rule=\"{}\",severity=\"{}\",state=\"{}\"}} 1",
            label(&a.rule),
            a.severity.as_str(),
            a.state.as_str()
        );
    }

    let i = &view.ingest;
    for (name, v, help) in [
        (
            "ingest_events_total",
            i.events,
            "Events accepted since the monitor started.",
        ),
        (
            "ingest_rejected_total",
            i.rejected,
            "Events rejected since the monitor started.",
        ),
        (
            "ingest_batches_total",
            i.batches,
            "Messages (batches) received.",
        ),
        (
            "ingest_dropped_at_source_total",
            i.dropped_at_source,
            "Events publishers reported dropping.",
        ),
        (
            "ingest_late_total",
            i.late,
            "Events older than the live window on arrival.",
        ),
        (
            "ingest_overflowed_total",
            i.overflowed,
            "Events folded into (other) by a cardinality cap.",
        ),
    ] {
        family(&mut o, name, "counter", help);
        let _ = writeln!(o, "modelmon_{name} {v}");
    }
    family(
        &mut o,
        "broker_connected",
        "gauge",
        "1 while connected to the broker (or running --demo).",
    );
    let up = matches!(
        view.broker.state,
        crate::store::BrokerState::Connected | crate::store::BrokerState::Demo
    );
    let _ = writeln!(o, "modelmon_broker_connected {}", u8::from(up));
    family(
        &mut o,
        "broker_connections_total",
        "counter",
        "Successful broker connections.",
    );
    let _ = writeln!(
        o,
        "modelmon_broker_connections_total {}",
        view.broker.connections
    );
    family(
        &mut o,
        "ws_clients",
        "gauge",
        "WebSocket clients connected to --serve.",
    );
    let _ = writeln!(o, "modelmon_ws_clients {ws_clients}");
    if let Some(cpu) = super::proc_stats::cpu_seconds() {
        family(
            &mut o,
            "process_cpu_seconds_total",
            "counter",
            "CPU time used by the monitor.",
        );
        let _ = writeln!(o, "modelmon_process_cpu_seconds_total {cpu}");
    }
    if let Some(rss) = super::proc_stats::rss_bytes() {
        family(
            &mut o,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the monitor.",
        );
        let _ = writeln!(o, "modelmon_process_resident_memory_bytes {rss}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::label;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label("resnet50"), "resnet50");
    }
}
