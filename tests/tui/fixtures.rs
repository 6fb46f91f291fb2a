//! The fixed views every screen test draws: five models in known states, their
//! containers, alerts and learnt normals, plus variants (a rollout, six hours of real
//! history, a blind monitor). Built by hand, so a snapshot changes only when the
//! drawing does.

use std::collections::BTreeMap;
use std::sync::Arc;

use modelmon::alert::Silence;
use modelmon::alert::{Alert, AlertKey, AlertsView, Baseline, SilenceTarget};
use modelmon::live::Live;
use modelmon::store::view::{
    BrokerState, BrokerView, ContainerEventView, ContainerView, DockerState, DockerView,
    IngestView, KeyStats, MeasureStats, ModelResources, ModelView, RejectRecord, SeriesPoint,
    Stats, StatusClasses, Usage, VersionStats, View,
};

/// 2026-11-28 12:00:00 UTC.
pub const NOW_MS: i64 = 1_795_867_200_000;

struct Spec {
    name: &'static str,
    qps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
    err: f64,
    client: f64,
    seen_ms: i64,
}

pub fn stats(qps: f64, p50: f64, p95: f64, p99: f64, err: f64, client: f64) -> Stats {
    let requests = (qps * 60.0) as u64;
    let errors = (requests as f64 * err).round() as u64;
    let client_errors = (requests as f64 * client).round() as u64;
    let known = requests > 0;
    Stats {
        requests,
        qps,
        errors,
        error_rate: known.then_some(err),
        client_errors,
        client_error_rate: known.then_some(client),
        status: StatusClasses {
            c1xx: 0,
            c2xx: requests - errors - client_errors,
            c3xx: 0,
            c4xx: client_errors,
            c5xx: errors,
        },
        mean_ms: known.then_some(p50 * 1.2),
        p50_ms: known.then_some(p50),
        p90_ms: known.then_some(f64::midpoint(p50, p95)),
        p95_ms: known.then_some(p95),
        p99_ms: known.then_some(p99),
        max_ms: known.then_some(p99 * 1.5),
        ..Stats::default()
    }
}

/// What a model that streams its answers (an LLM) adds: TTFB over most of its requests.
fn streamed(mut s: Stats, ttfb: [f64; 3]) -> Stats {
    s.ttfb_requests = s.requests * 9 / 10;
    s.ttfb_mean_ms = Some(ttfb[0] * 1.1);
    [s.ttfb_p50_ms, s.ttfb_p95_ms, s.ttfb_p99_ms] = ttfb.map(Some);
    s.gen_p50_ms = s.p50_ms.map(|p| p - ttfb[0]);
    s.gen_p95_ms = s.p95_ms.map(|p| p - ttfb[1]);
    s
}

/// Five minutes of per-second points with a repeatable shape: traffic ramps up with
/// some jitter, and p95 has one six-second spike.
fn series(qps: f64, p95: f64) -> Vec<SeriesPoint> {
    let now_sec = NOW_MS / 1000;
    (0..300_i64)
        .map(|i| {
            let ramp = 0.4 + 0.8 * i as f64 / 300.0;
            let jitter = 1.0 + ((i * 7 % 13) - 6) as f64 / 40.0;
            let requests = (qps * ramp * jitter) as u64;
            let spike = if (200..206).contains(&i) { 4.0 } else { 1.0 };
            SeriesPoint {
                sec: now_sec - 299 + i,
                requests,
                errors: if i % 10 == 0 { requests / 20 } else { 0 },
                p95_ms: (requests > 0).then(|| p95 * spike * (0.8 + (i % 9) as f64 / 20.0)),
                ..SeriesPoint::default()
            }
        })
        .collect()
}

fn keyed(name: &str, share: f64, s: &Stats) -> KeyStats {
    let mut st = s.clone();
    st.qps *= share;
    st.requests = (st.requests as f64 * share) as u64;
    KeyStats {
        name: name.to_owned(),
        stats: st,
    }
}

/// A fixed view: a healthy model, a slow one (critical p95), one with errors (warn),
/// a silent one and a quiet healthy one.
pub fn fixture() -> Live {
    Live {
        view: Arc::new(fixture_view()),
        alerts: Arc::new(alerts()),
        warnings: Arc::default(),
    }
}

pub fn fixture_view() -> View {
    let specs = [
        Spec {
            name: "fraud-xgb",
            qps: 181.3,
            p50: 2.4,
            p95: 4.9,
            p99: 7.7,
            err: 0.0,
            client: 0.004,
            seen_ms: 12,
        },
        Spec {
            name: "llm-chat",
            qps: 6.2,
            p50: 640.0,
            p95: 1840.0,
            p99: 3120.0,
            err: 0.003,
            client: 0.0,
            seen_ms: 410,
        },
        Spec {
            name: "iris-classifier",
            qps: 59.8,
            p50: 3.9,
            p95: 6.8,
            p99: 9.1,
            err: 0.021,
            client: 0.012,
            seen_ms: 40,
        },
        Spec {
            name: "embedder-v2",
            qps: 0.0,
            p50: 0.0,
            p95: 0.0,
            p99: 0.0,
            err: 0.0,
            client: 0.0,
            seen_ms: 125_000,
        },
        Spec {
            name: "resnet50",
            qps: 24.5,
            p50: 18.2,
            p95: 41.0,
            p99: 77.5,
            err: 0.0,
            client: 0.0,
            seen_ms: 95,
        },
    ];
    let models = specs
        .iter()
        .map(|s| {
            let mut st = stats(s.qps, s.p50, s.p95, s.p99, s.err, s.client);
            if s.name == "llm-chat" {
                st = streamed(st, [182.0, 420.0, 615.0]);
            }
            ModelView {
                model: s.name.to_owned(),
                window_s: 60,
                routes: vec![
                    keyed("/v1/predict", 0.7, &st),
                    keyed("/v1/predict/batch", 0.3, &st),
                ],
                instances: vec![keyed("pod-a", 0.5, &st), keyed("pod-b", 0.5, &st)],
                stats: st,
                last_seen_ms_ago: Some(s.seen_ms),
                series: series(s.qps, s.p95),
                version: Some("1.2.0".to_owned()),
                ..ModelView::default()
            }
        })
        .collect();
    View {
        ts_ms: NOW_MS,
        broker: BrokerView {
            state: BrokerState::Connected,
            error: None,
            queue: Some("modelmon.tui".to_owned()),
            node: None,
            connections: 1,
        },
        ingest: IngestView {
            events: 1_234_567,
            rejected: 3,
            dropped_at_source: 12,
            late: 1,
            batches: 4567,
            events_per_s: 271.8,
            ..IngestView::default()
        },
        recent_rejects: vec![
            RejectRecord {
                at_ms: NOW_MS - 5_000,
                reason: "bad_status".to_owned(),
                model: Some("iris-classifier".to_owned()),
                detail: "status 999 is outside 100..599".to_owned(),
            },
            RejectRecord {
                at_ms: NOW_MS - 2_000,
                reason: "bad_duration".to_owned(),
                model: Some("iris-classifier".to_owned()),
                detail: "duration_us is negative".to_owned(),
            },
        ],
        models,
        docker: DockerView {
            state: DockerState::Connected,
            error: None,
            connections: 1,
            containers: 3,
        },
        resources: resources(),
        ..View::default()
    }
}

pub const MIB: u64 = 1024 * 1024;

fn container(name: &str, state: &str, cpu: Option<f64>, mem_mib: Option<u64>) -> ContainerView {
    let limit = 2048 * MIB;
    ContainerView {
        id: format!("{name:0>12}").chars().take(12).collect(),
        name: name.to_owned(),
        state: state.to_owned(),
        usage: Usage {
            cpu_percent: cpu,
            mem_bytes: mem_mib.map(|m| m * MIB),
            mem_limit_bytes: mem_mib.map(|_| limit),
            mem_percent: mem_mib.map(|m| (m * MIB) as f64 / limit as f64 * 100.0),
            ..Usage::default()
        },
        sampled_at_ms: cpu.map(|_| NOW_MS - 1_000),
        ..ContainerView::default()
    }
}

/// llm-chat runs two replicas, one of them OOM-killed and restarting at 97 % memory;
/// iris-classifier one healthy replica. The other models have no container.
fn resources() -> BTreeMap<String, ModelResources> {
    let mut llm_a = container("llm-chat-1", "running", Some(183.4), Some(1987));
    llm_a.health = Some("healthy".to_owned());
    let mut llm_b = container("llm-chat-2", "restarting", None, None);
    llm_b.health = Some("unhealthy".to_owned());
    llm_b.restarts = 3;
    llm_b.oom_kills = 1;
    llm_b.oom_killed = true;
    let event = |secs_ago: i64, c: &str, action: &str, detail: Option<&str>| ContainerEventView {
        at_ms: NOW_MS - secs_ago * 1000,
        container: c.to_owned(),
        action: action.to_owned(),
        detail: detail.map(str::to_owned),
    };
    let llm = ModelResources {
        usage: Usage {
            cpu_percent: Some(183.4),
            mem_bytes: Some(1987 * MIB),
            mem_limit_bytes: Some(2048 * MIB),
            mem_percent: Some(1987.0 / 2048.0 * 100.0),
            ..Usage::default()
        },
        restarts: 3,
        oom_kills: 1,
        state: "restarting".to_owned(),
        health: Some("unhealthy".to_owned()),
        containers: vec![llm_a, llm_b],
        events: vec![
            event(95, "llm-chat-2", "oom", None),
            event(95, "llm-chat-2", "die", Some("exit 137")),
            event(94, "llm-chat-2", "restart", None),
            event(30, "llm-chat-2", "health_status: unhealthy", None),
        ],
        silent_hosts: Vec::new(),
    };
    let mut iris_1 = container("iris-1", "running", Some(12.5), Some(310));
    iris_1.health = Some("healthy".to_owned());
    let iris = ModelResources {
        usage: Usage {
            cpu_percent: Some(12.5),
            mem_bytes: Some(310 * MIB),
            mem_limit_bytes: Some(2048 * MIB),
            mem_percent: Some(310.0 / 2048.0 * 100.0),
            ..Usage::default()
        },
        state: "running".to_owned(),
        health: Some("healthy".to_owned()),
        containers: vec![iris_1],
        ..ModelResources::default()
    };
    BTreeMap::from([
        ("llm-chat".to_owned(), llm),
        ("iris-classifier".to_owned(), iris),
    ])
}

/// An alert as the engine would publish it. Built from JSON: the engine's bookkeeping
/// fields are not for outsiders to set.
#[allow(clippy::too_many_arguments)]
pub fn alert(
    rule: &str,
    model: &str,
    metric: &str,
    severity: &str,
    state: &str,
    value: Option<f64>,
    threshold: f64,
    since_s_ago: i64,
) -> Alert {
    let since = NOW_MS - since_s_ago * 1000;
    serde_json::from_value(serde_json::json!({
        "rule": rule, "model": model, "metric": metric, "severity": severity,
        "state": state, "value": value, "threshold": threshold, "resolve": threshold * 0.8,
        "since_ms": since, "active_since_ms": since - 30_000,
        "started_ms": (state != "pending").then_some(since),
        "resolved_ms": (state == "resolved").then_some(since),
        "last_bad_ms": since, "last_notified_ms": null, "notified": state != "pending",
        "acknowledged": false, "silenced": false, "notify": null,
    }))
    .expect("an alert")
}

/// An alert judged against the model's normal, with the engine's sentence for it.
fn relative(mut a: Alert, normal: f64, explanation: &str) -> Alert {
    a.normal = Some(normal);
    explanation.clone_into(&mut a.explanation);
    a
}

/// An alert with the engine's sentence for it.
pub fn explained(mut a: Alert, explanation: &str) -> Alert {
    explanation.clone_into(&mut a.explanation);
    a
}

/// Two firing alerts (llm-chat: a latency regression, warning, and OOM, critical and
/// silenced), one pending (iris-classifier's error spike) and two resolved (fraud-xgb's
/// latency, and the monitor's own broker outage of earlier today).
pub fn alerts() -> AlertsView {
    let mut oom = explained(
        alert(
            "oom_killed",
            "llm-chat",
            "oom_kills",
            "critical",
            "firing",
            Some(1.0),
            0.0,
            95,
        ),
        "container llm-chat-2 was killed for lack of memory (limit 2048 MiB)",
    );
    oom.silenced = true;
    AlertsView {
        baselines: Arc::new(baselines()),
        active: vec![
            oom,
            relative(
                alert(
                    "latency_regression",
                    "llm-chat",
                    "p95_ms",
                    "warning",
                    "firing",
                    Some(1840.0),
                    480.0,
                    240,
                ),
                160.0,
                "p95 1.8 s, 12× its normal 160 ms (last hour)",
            ),
            relative(
                alert(
                    "error_spike",
                    "iris-classifier",
                    "error_rate",
                    "critical",
                    "pending",
                    Some(0.061),
                    0.054,
                    12,
                ),
                0.004,
                "6.1 % errors (11 of 180 requests in 30 s), normal 0.40 % (last hour)",
            ),
        ],
        recent: vec![
            relative(
                alert(
                    "latency_regression",
                    "fraud-xgb",
                    "p95_ms",
                    "warning",
                    "resolved",
                    Some(5.1),
                    24.0,
                    1800,
                ),
                4.0,
                "p95 5.1 ms, 1.3× its normal 4.0 ms (last hour)",
            ),
            explained(
                alert(
                    "broker_down",
                    "",
                    "broker_down",
                    "critical",
                    "resolved",
                    Some(0.0),
                    0.0,
                    7200,
                ),
                "connected to the broker (connected)",
            ),
        ],
        silences: vec![Silence {
            target: SilenceTarget::Alert(AlertKey {
                rule: "oom_killed".to_owned(),
                model: "llm-chat".to_owned(),
            }),
            until_ms: NOW_MS + 3_600_000,
        }],
    }
}

/// Normals as the engine learns them: llm-chat and iris-classifier have an hour of
/// history, embedder-v2 is still learning, the others have none yet.
fn baselines() -> BTreeMap<String, Arc<Baseline>> {
    let ready = |p95: f64, err: f64, qps: f64, explanation: &str| Baseline {
        p50_ms: Some(p95 / 2.0),
        p95_ms: Some(p95),
        p99_ms: Some(p95 * 1.5),
        error_rate: Some(err),
        qps: Some(qps),
        over_s: 3300,
        from_ms: NOW_MS - 65 * 60_000,
        to_ms: NOW_MS - 5 * 60_000,
        excluded_s: 0,
        ready: true,
        held: false,
        explanation: explanation.to_owned(),
        ..Baseline::default()
    };
    BTreeMap::from([
        (
            "llm-chat".to_owned(),
            Arc::new(ready(
                160.0,
                0.002,
                6.0,
                "p95 160 ms, 0.20 % errors, 6.0 req/s: per-minute medians over 55 min \
                 of the last 60 min (the last 5 min left out)",
            )),
        ),
        (
            "iris-classifier".to_owned(),
            Arc::new(ready(
                6.5,
                0.004,
                58.0,
                "p95 6.5 ms, 0.40 % errors, 58 req/s: per-minute medians over 55 min \
                 of the last 60 min (the last 5 min left out)",
            )),
        ),
        (
            "embedder-v2".to_owned(),
            Arc::new(Baseline {
                over_s: 240,
                explanation: "learning: 4 min of the 10 min of history needed \
                              (a minute counts once 5 min old)"
                    .to_owned(),
                ..Baseline::default()
            }),
        ),
    ])
}

/// A view built by the real store from six hours of events, so the long ranges have
/// history to draw: steady traffic, and an error burst two hours ago.
pub fn view_with_history() -> View {
    use modelmon::store::{ContainerInfo, ContainerSample};
    use modelmon::store::{Store, StoreConfig};
    let now_us = NOW_MS * 1000;
    let mut store = Store::new(StoreConfig::default());
    // One container for iris-classifier, sampled with every batch: the CPU and memory
    // charts read the same rings the real Docker poller fills.
    store.set_docker(DockerView {
        state: DockerState::Connected,
        ..DockerView::default()
    });
    store.container_info(
        ContainerInfo {
            id: "0123456789abcdef".to_owned(),
            name: "iris-1".to_owned(),
            model: "iris-classifier".to_owned(),
            hostname: None,
            state: "running".to_owned(),
            health: None,
            restarts: 0,
            oom_killed: false,
            cpu_limit_cores: None,
        },
        now_us - 181 * 120 * 1_000_000,
    );
    let step_us = 120 * 1_000_000;
    for k in (1..=180_i64).rev() {
        let at = now_us - k * step_us;
        // CPU climbs from 20 % to 110 % over the six hours; memory from 300 to 1200 MiB.
        let climb = (180 - k) as f64 / 180.0;
        store.container_sample(ContainerSample {
            id: "0123456789abcdef".to_owned(),
            ts_us: at,
            cpu_percent: Some(20.0 + 90.0 * climb),
            mem_bytes: Some(((300.0 + 900.0 * climb) as u64) * MIB),
            mem_limit_bytes: Some(2048 * MIB),
            ..ContainerSample::default()
        });
        let burst = (55..65).contains(&k);
        let events: Vec<serde_json::Value> = (0..30_i64)
            .map(|j| {
                let status = if burst && j % 3 == 0 { 503 } else { 200 };
                serde_json::json!({"ts": at + j * 1000, "model": "iris-classifier",
                    "instance": "pod-a", "method": "POST", "route": "/v1/predict",
                    "status": status, "duration_us": 2000 + (j * 37 + k * 11) % 900 * 10})
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({"v": 1,
            "source": {"kind": "demo", "instance": "t", "pid": 1}, "dropped": 0,
            "events": events}))
        .expect("json");
        let decoded = modelmon_contract::decode_batch(&body, None, now_us).expect("a batch");
        assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects);
        store.apply(&decoded, now_us);
    }
    store.view(
        now_us,
        BrokerView {
            state: BrokerState::Demo,
            ..BrokerView::default()
        },
    )
}

/// A version's share of a model's figures: `share` of its requests, with its own
/// latency, errors and TTFB.
fn version(
    name: &str,
    share: f64,
    qps: f64,
    lat: [f64; 3],
    err: f64,
    ttfb: [f64; 3],
) -> VersionStats {
    let s = streamed(stats(qps * share, lat[0], lat[1], lat[2], err, 0.0), ttfb);
    VersionStats {
        version: name.to_owned(),
        share: Some(share),
        stats: s,
    }
}

/// An `ml` key or a size over the window, as the store reports it.
pub fn measure(count: u64, qps: f64, mean: f64, p: [f64; 3]) -> MeasureStats {
    MeasureStats {
        count,
        sum: mean * count as f64,
        rate_per_s: mean * qps,
        mean: Some(mean),
        p50: Some(p[0]),
        p95: Some(p[1]),
        p99: Some(p[2]),
        max: Some(p[2] * 1.3),
    }
}

/// The fixture with llm-chat in the middle of a rollout: 1.2.0 serves 88 % of the
/// requests, the canary 1.3.0 the rest, with twice the p95 and 2.7 % errors (regressed
/// on both counts). Its events carry tokens in and out and the queue time, and their
/// request and response sizes.
pub fn rollout_view() -> View {
    let mut view = fixture_view();
    let llm = view
        .models
        .iter_mut()
        .find(|m| m.model == "llm-chat")
        .expect("llm-chat");
    let qps = llm.stats.qps;
    let n = llm.stats.requests;
    llm.versions = vec![
        version(
            "1.2.0",
            0.88,
            qps,
            [610.0, 1720.0, 2950.0],
            0.0,
            [175.0, 410.0, 600.0],
        ),
        version(
            "1.3.0",
            0.12,
            qps,
            [880.0, 3480.0, 5120.0],
            0.027,
            [240.0, 980.0, 1310.0],
        ),
    ];
    llm.version = Some("1.3.0".to_owned());
    llm.ml = BTreeMap::from([
        (
            "queue_us".to_owned(),
            measure(n, qps, 2_930.0, [850.0, 12_400.0, 48_000.0]),
        ),
        (
            "tokens_in".to_owned(),
            measure(n, qps, 412.0, [380.0, 910.0, 1_400.0]),
        ),
        (
            "tokens_out".to_owned(),
            measure(n, qps, 301.0, [256.0, 740.0, 1_020.0]),
        ),
    ]);
    llm.sizes = BTreeMap::from([
        (
            "req_bytes".to_owned(),
            measure(n, qps, 1_840.0, [1_650.0, 3_900.0, 6_100.0]),
        ),
        (
            "resp_bytes".to_owned(),
            measure(n, qps, 16_300.0, [14_200.0, 52_000.0, 81_000.0]),
        ),
    ]);
    view
}

/// The fixture with the broker gone for a while and the monitor's own alerts firing.
pub fn blind() -> Live {
    let mut view = fixture_view();
    view.broker = BrokerView {
        state: BrokerState::Down,
        error: Some("IO error: Connection refused (os error 111)".to_owned()),
        queue: None,
        node: None,
        connections: 1,
    };
    view.docker.state = DockerState::Unavailable;
    let mut alerts = alerts();
    let broker = explained(
        alert(
            "broker_down",
            "",
            "broker_down",
            "critical",
            "firing",
            Some(1.0),
            0.0,
            80,
        ),
        "no connection to the broker for 1 min (IO error: Connection refused (os error 111)); \
         request figures are unknown until it is back",
    );
    let docker = explained(
        alert(
            "docker_unavailable",
            "",
            "docker_down",
            "warning",
            "firing",
            Some(1.0),
            0.0,
            30,
        ),
        "cannot reach the Docker engine for 40 s; container figures are unknown until it is back",
    );
    alerts.active.insert(0, broker);
    alerts.active.insert(2, docker);
    Live::new(view, alerts)
}

/// A view by the real store of one request a second (at .6 of each) for the two hours up
/// to `now_ms`, the monitor up and refreshed every minute all along: model `steady`.
pub fn steady_view(now_ms: i64) -> View {
    use modelmon::store::{Store, StoreConfig};
    let end = now_ms.div_euclid(1000);
    let mut store = Store::new(StoreConfig::default());
    let mut from = end - 7200;
    while from < end {
        let to = (from + 60).min(end);
        let events: Vec<serde_json::Value> = (from..to)
            .map(|s| {
                serde_json::json!({"ts": s * 1_000_000 + 600_000, "model": "steady",
                    "instance": "pod-a", "method": "POST", "route": "/v1/predict",
                    "status": 200, "duration_us": 2000})
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({"v": 1,
            "source": {"kind": "demo", "instance": "t", "pid": 1}, "dropped": 0,
            "events": events}))
        .expect("json");
        let at_us = to * 1_000_000;
        let decoded = modelmon_contract::decode_batch(&body, None, at_us).expect("a batch");
        assert!(decoded.rejects.is_empty(), "{:?}", decoded.rejects);
        store.apply(&decoded, at_us);
        store.view(at_us, BrokerView::default());
        from = to;
    }
    store.view(now_ms * 1000, BrokerView::default())
}
