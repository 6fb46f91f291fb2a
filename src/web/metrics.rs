//! `/metrics`, by Prometheus' conventions (base units, `_total` counters), encoded by
//! prometheus-client: OpenMetrics for scrapers that ask for it, as Prometheus does, and
//! the classic text format for everyone else (`curl`).
//!
//! Two kinds of series. Counts since the monitor started: requests, errors and request
//! durations per model, route, method, version and status class, time to first byte per
//! model, container CPU time and restarts; Prometheus computes rates and quantiles from
//! them (`rate()`, `histogram_quantile()`). And the live window's own figures, exactly
//! what the terminal shows, as gauges named `modelmon_window_*`: the window slides, so
//! they are not counters, and their quantiles are gauges with a `quantile` label.
//!
//! A family with no series (no model streams, none has a container) is left out rather
//! than written empty.

use std::fmt::{self, Write};

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::AppState;
use crate::live::Live;
use crate::store::view::{Histogram, MeasureStats, Stats, StatusClasses};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let view = state.views.borrow().clone();
    let format = Format::accepted(&headers);
    let body = render(&view, state.ws_clients(), format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

/// The exposition format of a scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    OpenMetrics,
    PrometheusText,
}

impl Format {
    /// OpenMetrics when the client lists it in `Accept` (Prometheus does, first).
    fn accepted(headers: &HeaderMap) -> Self {
        let asks = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/openmetrics-text"));
        if asks {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS,
            Self::PrometheusText => PROMETHEUS_TEXT,
        }
    }
}

pub(crate) fn render(view: &Live, ws_clients: usize, format: Format) -> String {
    let mut registry = Registry::with_prefix("modelmon");
    registry.register_collector(Box::new(Scrape {
        view: view.clone(),
        ws_clients,
    }));
    let mut out = String::with_capacity(4096 + view.models.len() * 4096);
    let written = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    // Writing into a String fails only if our own encoding code returns an error, which
    // it does only on a write error.
    if written.is_err() {
        let _ = writeln!(out, "# the exposition was cut short by an encoding error");
    }
    out
}

/// One scrape: the view it reads, collected when the registry is encoded.
#[derive(Debug)]
struct Scrape {
    view: Live,
    ws_clients: usize,
}

/// Label pairs of one series.
type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A family's descriptor, then its rows. Nothing at all when it has no rows.
fn family<'a, T>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (Labels<'a>, T)>,
    mut write: impl FnMut(&mut MetricEncoder, &T) -> fmt::Result,
) -> fmt::Result {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return Ok(());
    }
    let mut m = e.encode_descriptor(name, help, unit, kind)?;
    for (labels, v) in rows {
        write(&mut m.encode_family(&labels)?, &v)?;
    }
    Ok(())
}

fn gauges<'a, V: EncodeGaugeValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> fmt::Result {
    family(e, name, help, unit, MetricType::Gauge, rows, |m, v| {
        m.encode_gauge(v)
    })
}

fn counters<'a, V: EncodeCounterValue>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (Labels<'a>, V)>,
) -> fmt::Result {
    family(e, name, help, unit, MetricType::Counter, rows, |m, v| {
        m.encode_counter::<NoLabelSet, V, f64>(v, None)
    })
}

fn histograms<'a>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    bounds_s: &[f64],
    rows: impl IntoIterator<Item = (Labels<'a>, &'a Histogram)>,
) -> fmt::Result {
    family(
        e,
        name,
        help,
        Some(&Unit::Seconds),
        MetricType::Histogram,
        rows,
        |m, h| {
            let mut buckets: Vec<(f64, u64)> = bounds_s
                .iter()
                .copied()
                .zip(h.buckets.iter().copied().chain(std::iter::repeat(0)))
                .collect();
            let under: u64 = buckets.iter().map(|b| b.1).sum();
            buckets.push((f64::INFINITY, h.count.saturating_sub(under)));
            m.encode_histogram::<NoLabelSet>(h.sum_us as f64 / 1e6, h.count, &buckets, None)
        },
    )
}

/// Quantile gauges, in seconds, from figures in milliseconds; an unknown quantile is
/// absent, not a fake 0.
fn quantile_rows<'a>(
    labels: Labels<'a>,
    quantiles: [(&'static str, Option<f64>); 4],
    scale: f64,
) -> impl Iterator<Item = (Labels<'a>, f64)> {
    quantiles.into_iter().filter_map(move |(q, v)| {
        let mut l = labels.clone();
        l.push(("quantile", q));
        Some((l, v? * scale))
    })
}

fn latency_quantiles(s: &Stats) -> [(&'static str, Option<f64>); 4] {
    [
        ("0.5", s.p50_ms),
        ("0.9", s.p90_ms),
        ("0.95", s.p95_ms),
        ("0.99", s.p99_ms),
    ]
}

fn measure_quantiles(s: &MeasureStats) -> [(&'static str, Option<f64>); 4] {
    [
        ("0.5", s.p50),
        ("0.95", s.p95),
        ("0.99", s.p99),
        ("1", s.max),
    ]
}

/// One row per status class: the labels `l` and `class`, and the count.
fn by_class<'a>(l: Labels<'a>, s: &StatusClasses) -> impl Iterator<Item = (Labels<'a>, u64)> {
    [
        ("1xx", s.c1xx),
        ("2xx", s.c2xx),
        ("3xx", s.c3xx),
        ("4xx", s.c4xx),
        ("5xx", s.c5xx),
    ]
    .into_iter()
    .map(move |(c, n)| {
        let mut l = l.clone();
        l.push(("class", c));
        (l, n)
    })
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let view = &self.view;
        self.since_start(&mut e)?;
        self.window(&mut e)?;
        self.containers(&mut e)?;
        let alerts = view.alerts.active.iter().map(|a| {
            // An alert about the monitor has no model: an empty `model` label would read
            // as a model named "" and would vanish in `by (model)` aggregations.
            let mut l: Labels = if a.is_monitor() {
                vec![("scope", "monitor")]
            } else {
                vec![("model", a.model.as_str())]
            };
            l.extend([
                ("rule", a.rule.as_str()),
                ("severity", a.severity.as_str()),
                ("state", a.state.as_str()),
            ]);
            (l, 1u64)
        });
        gauges(
            &mut e,
            "alert_active",
            "1 per pending or firing alert; the monitor's own have scope=\"monitor\" and no model.",
            None,
            alerts,
        )?;
        self.monitor(&mut e)
    }
}

impl Scrape {
    /// Counters and histograms since the monitor started.
    fn since_start(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let view = &self.view;
        let series = || {
            view.models.iter().flat_map(|m| {
                m.totals.series.iter().map(move |s| {
                    let mut labels: Labels = vec![
                        ("model", m.model.as_str()),
                        ("route", s.route.as_str()),
                        ("method", s.method),
                    ];
                    // No version is no label (Prometheus reads both the same way).
                    if !s.version.is_empty() {
                        labels.push(("version", s.version.as_str()));
                    }
                    labels.push(("class", s.class));
                    (labels, s)
                })
            })
        };
        counters(
            e,
            "requests",
            "Requests since the monitor started, by route, method, version and status class.",
            None,
            series().map(|(l, s)| (l, s.duration.count)),
        )?;
        counters(
            e,
            "errors",
            "Errors (status >= 500, or an error the app named) since the monitor started.",
            None,
            series().map(|(l, s)| (l, s.errors)),
        )?;
        let bounds = view.buckets.seconds();
        histograms(
            e,
            "request_duration",
            "Request duration, start to last response byte, since the monitor started.",
            &bounds,
            series().map(|(l, s)| (l, &s.duration)),
        )?;
        histograms(
            e,
            "time_to_first_byte",
            "Time to the first response byte (the first token of a streamed answer) since the monitor started, over the requests that carry one.",
            &bounds,
            view.models
                .iter()
                .filter_map(|m| Some((vec![("model", m.model.as_str())], m.totals.ttfb.as_ref()?))),
        )
    }

    /// The live window's figures, as the terminal shows them.
    fn window(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let view = &self.view;
        let models = || {
            view.models
                .iter()
                .map(|m| (vec![("model", m.model.as_str())], m))
        };
        gauges(
            e,
            "window",
            "Length of the live window behind the modelmon_window_* figures.",
            Some(&Unit::Seconds),
            [(Labels::new(), view.window_s)],
        )?;
        gauges(
            e,
            "window_requests",
            "Requests in the live window, by status class.",
            None,
            models().flat_map(|(l, m)| by_class(l, &m.stats.status)),
        )?;
        gauges(
            e,
            "window_errors",
            "Errors (5xx and failures) in the live window.",
            None,
            models().map(|(l, m)| (l, m.stats.errors)),
        )?;
        gauges(
            e,
            "window_request_duration",
            "Request duration quantiles over the live window.",
            Some(&Unit::Seconds),
            models().flat_map(|(l, m)| quantile_rows(l, latency_quantiles(&m.stats), 1e-3)),
        )?;
        gauges(
            e,
            "window_time_to_first_byte",
            "Time to first byte quantiles over the live window, over the requests that carry one.",
            Some(&Unit::Seconds),
            models()
                .filter(|(_, m)| m.stats.ttfb_requests > 0)
                .flat_map(|(l, m)| {
                    let s = &m.stats;
                    let q = [
                        ("0.5", s.ttfb_p50_ms),
                        ("0.95", s.ttfb_p95_ms),
                        ("0.99", s.ttfb_p99_ms),
                        ("1", None),
                    ];
                    quantile_rows(l, q, 1e-3)
                }),
        )?;
        let measures = || {
            models().flat_map(|(l, m)| {
                m.ml.iter().map(move |(key, s)| {
                    let mut l = l.clone();
                    l.push(("key", key.as_str()));
                    (l, s)
                })
            })
        };
        gauges(
            e,
            "window_measure",
            "Model measures (the ml numbers events carry) over the live window, in each key's own unit: quantiles, 1 being the largest.",
            None,
            measures().flat_map(|(l, s)| quantile_rows(l, measure_quantiles(s), 1.0)),
        )?;
        gauges(
            e,
            "window_measure_rate",
            "A measure's sum per second of the live window (tokens_out gives tokens per second).",
            None,
            measures().map(|(l, s)| (l, s.rate_per_s)),
        )?;
        gauges(
            e,
            "window_measure_events",
            "Events in the live window that carry the measure.",
            None,
            measures().map(|(l, s)| (l, s.count)),
        )?;
        for (key, name, help) in [
            (
                "req_bytes",
                "window_request_size",
                "Request body size quantiles over the live window, over events that carry req_bytes.",
            ),
            (
                "resp_bytes",
                "window_response_size",
                "Response body size quantiles over the live window, over events that carry resp_bytes.",
            ),
        ] {
            gauges(
                e,
                name,
                help,
                Some(&Unit::Bytes),
                models().flat_map(|(l, m)| {
                    m.sizes
                        .get(key)
                        .into_iter()
                        .flat_map(move |s| quantile_rows(l.clone(), measure_quantiles(s), 1.0))
                }),
            )?;
        }
        self.versions(e)
    }

    /// Each version's window figures, so that a rollout shows side by side.
    fn versions(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let rows = || {
            self.view.models.iter().flat_map(|m| {
                m.versions.iter().map(move |v| {
                    let labels: Labels =
                        vec![("model", m.model.as_str()), ("version", v.version.as_str())];
                    (labels, &v.stats)
                })
            })
        };
        gauges(
            e,
            "window_version_requests",
            "Requests in the live window per version, by status class (events without a version are in no version).",
            None,
            rows().flat_map(|(l, s)| by_class(l, &s.status)),
        )?;
        gauges(
            e,
            "window_version_errors",
            "Errors (5xx and failures) in the live window per version.",
            None,
            rows().map(|(l, s)| (l, s.errors)),
        )?;
        gauges(
            e,
            "window_version_request_duration",
            "Request duration quantiles over the live window per version.",
            Some(&Unit::Seconds),
            rows().flat_map(|(l, s)| quantile_rows(l, latency_quantiles(s), 1e-3)),
        )
    }

    /// The model's containers, from Docker.
    fn containers(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let view = &self.view;
        let models = || {
            view.resources
                .iter()
                .map(|(model, r)| (vec![("model", model.as_str())], r))
        };
        let counted = || {
            view.resources.keys().map(|model| {
                let c = view.resource_counters.get(model).copied();
                (vec![("model", model.as_str())], c.unwrap_or_default())
            })
        };
        gauges(
            e,
            "model_up",
            "1 when the model served a request in the live window.",
            None,
            // Requests alone: a model that stopped serving is down, and the alert that
            // says so must not turn it up.
            view.models.iter().map(|m| {
                let up = u8::from(m.stats.requests > 0);
                (vec![("model", m.model.as_str())], u64::from(up))
            }),
        )?;
        counters(
            e,
            "container_cpu",
            "CPU time the model's containers have used, kept across their restarts and removals while the monitor runs.",
            Some(&Unit::Seconds),
            counted().filter_map(|(l, c)| Some((l, c.cpu_seconds?))),
        )?;
        gauges(
            e,
            "container_cpu_cores",
            "Cores the model's containers may use: their CPU limits, or their hosts' cores.",
            None,
            models().filter_map(|(l, r)| Some((l, r.usage.cpu_cores?))),
        )?;
        gauges(
            e,
            "container_memory",
            "Memory of the model's containers, without the file cache the kernel can reclaim.",
            Some(&Unit::Bytes),
            models().filter_map(|(l, r)| Some((l, r.usage.mem_bytes?))),
        )?;
        gauges(
            e,
            "container_memory_limit",
            "Memory limits of the model's containers, summed.",
            Some(&Unit::Bytes),
            models().filter_map(|(l, r)| Some((l, r.usage.mem_limit_bytes?))),
        )?;
        counters(
            e,
            "container_restarts",
            "Restarts of the model's containers (Docker's restart counts), kept across their removals while the monitor runs.",
            None,
            counted().map(|(l, c)| (l, c.restarts)),
        )?;
        counters(
            e,
            "container_oom_kills",
            "Out-of-memory kills of the model's containers seen since the monitor started.",
            None,
            counted().map(|(l, c)| (l, c.oom_kills)),
        )
    }

    /// The monitor itself: what it ingested, its broker, its process.
    fn monitor(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        let view = &self.view;
        let i = &view.ingest;
        for (name, v, help) in [
            (
                "ingest_events",
                i.events,
                "Events accepted since the monitor started.",
            ),
            (
                "ingest_rejected",
                i.rejected,
                "Events rejected since the monitor started.",
            ),
            ("ingest_batches", i.batches, "Messages (batches) received."),
            (
                "ingest_dropped_at_source",
                i.dropped_at_source,
                "Events publishers reported dropping.",
            ),
            (
                "ingest_late",
                i.late,
                "Events older than the live window on arrival.",
            ),
            (
                "ingest_overflowed",
                i.overflowed,
                "Events folded into (other) by a cardinality cap.",
            ),
            (
                "broker_connections",
                view.broker.connections,
                "Successful broker connections.",
            ),
        ] {
            counters(e, name, help, None, [(Labels::new(), v)])?;
        }
        let up = matches!(
            view.broker.state,
            crate::store::BrokerState::Connected | crate::store::BrokerState::Demo
        );
        gauges(
            e,
            "broker_connected",
            "1 while connected to the broker (or running --demo).",
            None,
            [(Labels::new(), u64::from(up))],
        )?;
        gauges(
            e,
            "ws_clients",
            "WebSocket clients connected to --serve.",
            None,
            [(Labels::new(), self.ws_clients as u64)],
        )?;
        counters(
            e,
            "process_cpu",
            "CPU time used by the monitor.",
            Some(&Unit::Seconds),
            crate::proc_self::cpu_seconds().map(|s| (Labels::new(), s)),
        )?;
        gauges(
            e,
            "process_resident_memory",
            "Resident memory of the monitor.",
            Some(&Unit::Bytes),
            crate::proc_self::rss_bytes().map(|b| (Labels::new(), b)),
        )?;
        let build: Labels = vec![("version", env!("CARGO_PKG_VERSION"))];
        let mut m = e.encode_descriptor(
            "build",
            "The monitor's version; always 1.",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&build)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_is_served_to_scrapers_that_ask_for_it() {
        let mut h = HeaderMap::new();
        assert_eq!(Format::accepted(&h), Format::PrometheusText);
        h.insert(
            header::ACCEPT,
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
                .parse()
                .expect("header"),
        );
        assert_eq!(Format::accepted(&h), Format::OpenMetrics);
    }

    #[test]
    fn label_values_are_escaped_and_both_formats_name_counters_the_same() {
        let mut view = crate::store::View::default();
        view.models.push(crate::store::view::ModelView {
            model: "a\"b\\c\nd".to_owned(),
            ..Default::default()
        });
        let live = Live::from(view);
        for format in [Format::OpenMetrics, Format::PrometheusText] {
            let out = render(&live, 0, format);
            assert!(out.contains(r#"model="a\"b\\c\nd""#), "{out}");
            assert!(out.contains("modelmon_ingest_events_total 0"), "{out}");
            assert!(out.contains("modelmon_build_info{version=\""), "{out}");
            assert_eq!(out.ends_with("# EOF\n"), format == Format::OpenMetrics);
        }
    }

    #[test]
    fn a_model_is_up_only_while_it_has_requests_in_the_window_whatever_its_alerts() {
        let mut view = crate::store::View::default();
        for (model, requests) in [("stopped", 0), ("serving", 40)] {
            let mut m = crate::store::view::ModelView {
                model: model.to_owned(),
                ..Default::default()
            };
            m.stats.requests = requests;
            view.models.push(m);
        }
        // What a model that stopped serving gets: a firing alert about it.
        let firing: crate::alert::engine::Alert = serde_json::from_value(serde_json::json!({
            "rule": "traffic_drop", "model": "stopped", "metric": "qps",
            "severity": "critical", "state": "firing", "value": 0.0, "threshold": 1.0,
            "resolve": 2.0, "since_ms": 0, "active_since_ms": 0, "started_ms": 0,
            "resolved_ms": null, "last_bad_ms": 0, "last_notified_ms": null,
            "notified": true, "acknowledged": false, "silenced": false, "notify": null,
        }))
        .expect("an alert");
        let alerts = crate::alert::engine::AlertsView {
            active: vec![firing],
            ..Default::default()
        };
        let out = render(&Live::new(view, alerts), 0, Format::PrometheusText);
        for line in [
            "modelmon_model_up{model=\"stopped\"} 0",
            "modelmon_model_up{model=\"serving\"} 1",
        ] {
            assert!(out.contains(&format!("{line}\n")), "{line}: {out}");
        }
    }

    #[test]
    fn the_window_length_is_the_configured_one_before_any_model_streams() {
        let mut store = crate::store::Store::new(crate::store::StoreConfig {
            window_s: 30,
            ..Default::default()
        });
        let view = store.view(1_800_000_000_000_000, crate::store::BrokerView::default());
        let out = render(&Live::from(view), 0, Format::PrometheusText);
        assert!(out.contains("\nmodelmon_window_seconds 30\n"), "{out}");
    }

    /// The model's value of a counter in a scrape of `store`, as printed.
    fn counter(store: &mut crate::store::Store, name: &str) -> String {
        let view = store.view(1_800_000_000_000_000, crate::store::BrokerView::default());
        let out = render(&Live::from(view), 0, Format::PrometheusText);
        let head = format!("{name}{{model=\"iris\"}} ");
        out.lines()
            .find_map(|l| l.strip_prefix(&head))
            .unwrap_or_else(|| panic!("no {head}in {out}"))
            .to_owned()
    }

    #[test]
    fn container_counters_never_go_back_when_a_replica_stops_restarts_or_is_removed() {
        use crate::store::{ContainerInfo, ContainerSample};
        let info = |id: &str, state: &str, restarts: u64| ContainerInfo {
            id: id.into(),
            name: format!("iris-{id}"),
            model: "iris".into(),
            hostname: None,
            state: state.into(),
            health: None,
            restarts,
            oom_killed: false,
            cpu_limit_cores: None,
        };
        let sample = |id: &str, cpu_seconds: f64| ContainerSample {
            id: id.into(),
            cpu_seconds: Some(cpu_seconds),
            ..ContainerSample::default()
        };
        let (cpu, restarts) = (
            "modelmon_container_cpu_seconds_total",
            "modelmon_container_restarts_total",
        );
        let mut store = crate::store::Store::new(crate::store::StoreConfig::default());
        let now = 1_800_000_000_000_000;
        store.set_docker(crate::store::view::DockerView {
            state: crate::store::view::DockerState::Connected,
            ..Default::default()
        });
        store.container_info(info("a", "running", 2), now);
        store.container_info(info("b", "running", 1), now);
        store.container_sample(sample("a", 10.0));
        store.container_sample(sample("b", 6.0));
        assert_eq!(counter(&mut store, cpu), "16.0");
        assert_eq!(counter(&mut store, restarts), "3");
        // b stops: no sample, but the CPU it used is still used.
        store.container_info(info("b", "exited", 1), now);
        assert_eq!(counter(&mut store, cpu), "16.0");
        // b starts again: its own CPU time and restart count begin anew.
        store.container_info(info("b", "running", 0), now);
        store.container_sample(sample("b", 1.0));
        assert_eq!(counter(&mut store, cpu), "17.0");
        assert_eq!(counter(&mut store, restarts), "3");
        // a is removed (and recreated as c): what it counted stays.
        store.container_gone("a");
        store.container_info(info("c", "running", 0), now);
        store.container_sample(sample("c", 0.5));
        assert_eq!(counter(&mut store, cpu), "17.5");
        assert_eq!(counter(&mut store, restarts), "3");
        // Docker lost and back: the same containers are not counted twice.
        store.set_docker(crate::store::view::DockerView {
            state: crate::store::view::DockerState::Unavailable,
            ..Default::default()
        });
        store.set_docker(crate::store::view::DockerView {
            state: crate::store::view::DockerState::Connected,
            ..Default::default()
        });
        store.container_info(info("b", "running", 0), now);
        store.container_info(info("c", "running", 0), now);
        store.container_sample(sample("b", 2.0));
        assert_eq!(counter(&mut store, cpu), "18.5");
    }

    #[test]
    fn container_cpu_time_and_restarts_are_counters_in_base_units() {
        let mut view = crate::store::View::default();
        view.resources.insert(
            "iris".to_owned(),
            crate::store::view::ModelResources {
                usage: crate::store::view::Usage {
                    cpu_cores: Some(2.0),
                    mem_bytes: Some(1 << 20),
                    ..crate::store::view::Usage::default()
                },
                ..Default::default()
            },
        );
        view.resource_counters.insert(
            "iris".to_owned(),
            crate::store::view::ResourceCounters {
                cpu_seconds: Some(12.5),
                restarts: 3,
                oom_kills: 0,
            },
        );
        let out = render(&Live::from(view), 0, Format::PrometheusText);
        for line in [
            "# TYPE modelmon_container_cpu_seconds_total counter",
            "modelmon_container_cpu_seconds_total{model=\"iris\"} 12.5",
            "modelmon_container_cpu_cores{model=\"iris\"} 2.0",
            "modelmon_container_memory_bytes{model=\"iris\"} 1048576",
            "# TYPE modelmon_container_restarts_total counter",
            "modelmon_container_restarts_total{model=\"iris\"} 3",
            "modelmon_container_oom_kills_total{model=\"iris\"} 0",
        ] {
            assert!(out.contains(&format!("{line}\n")), "{line}: {out}");
        }
        // A figure Docker did not give is absent, not 0.
        assert!(
            !out.contains("modelmon_container_memory_limit_bytes"),
            "{out}"
        );
    }
}
