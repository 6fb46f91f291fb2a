//! The JSON API: every model with its figures, normals and alerts explained, events from
//! the real broker, and bodies built once per refresh, gzipped and revalidated.

use std::io::Read;

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{AMQP, Publisher, batch, event, runtime, unique};

use super::{Fixed, Served, http_get, http_get_bytes, model_names, ws_next};

#[test]
fn api_serves_every_demo_model_with_its_figures() {
    let s = Served::start(&["--demo"]);
    assert_eq!(s.get("/healthz").status, 200);
    let overview = s.wait_json("/api/v1/models", "demo traffic", |v| {
        v["models"].as_array().is_some_and(|m| {
            !m.is_empty() && m.iter().all(|m| m["requests"].as_u64().unwrap_or(0) > 0)
        })
    });
    assert_eq!(overview["broker"]["state"], "demo");
    let names = model_names(&overview);
    for m in overview["models"].as_array().expect("models") {
        assert!(m["qps"].as_f64().is_some(), "{m}");
        assert!(m["p95_ms"].as_f64().is_some(), "{m}");
        assert!(
            ["ok", "idle", "pending", "firing"].contains(&m["state"].as_str().unwrap_or("")),
            "{m}"
        );
        // Per-second points only when asked for (below): they are most of the weight.
        assert!(m.get("series").is_none(), "{m}");
    }
    let with_series = s.get("/api/v1/models?series=1").json();
    for m in with_series["models"].as_array().expect("models") {
        assert!(!m["series"].as_array().expect("series").is_empty(), "{m}");
    }

    let name = &names[0];
    // The history is rebuilt once per 10-s bucket: its first points come within one.
    s.wait_json(
        &format!("/api/v1/models/{name}?range=5m"),
        "history points",
        |d| d["history"].as_array().is_some_and(|h| !h.is_empty()),
    );
    for range in ["5m", "1h", "6h", "24h"] {
        let d = s.get(&format!("/api/v1/models/{name}?range={range}"));
        assert_eq!(d.status, 200, "{}", d.body);
        let d = d.json();
        assert_eq!(d["model"], name.as_str());
        assert_eq!(d["range"], range);
        assert!(!d["history"].as_array().expect("history").is_empty());
        assert!(d["routes"].as_array().is_some());
    }
    assert_eq!(s.get("/api/v1/models/no-such-model").status, 404);
    assert_eq!(
        s.get(&format!("/api/v1/models/{name}?range=lots")).status,
        400
    );

    let alerts = s.get("/api/v1/alerts").json();
    assert!(alerts["active"].is_array() && alerts["recent"].is_array());
    let status = s.get("/api/v1/status").json();
    assert_eq!(status["broker"]["state"], "demo");
    // The demo may have started another model since; none goes away.
    assert!(
        status["models"].as_u64() >= Some(names.len() as u64),
        "{status}"
    );
    assert!(status["ingest"]["events"].as_u64().unwrap_or(0) > 0);
    assert!(status["process"]["rss_bytes"].as_u64().unwrap_or(0) > 0);
}

#[test]
fn each_history_point_says_the_seconds_its_requests_are_over() {
    use crate::tui::fixtures::{NOW_MS, steady_view};
    // One request a second, 15 s into an hour: the newest point holds 15 s of its step.
    let f = Fixed::start(modelmon::live::Live::from(steady_view(NOW_MS + 15_000)));
    let d = f.json("/api/v1/models/steady?range=24h");
    let points = d["history"].as_array().expect("history");
    let last = points.last().expect("points");
    assert_eq!(last["covered_s"], 15, "{last}");
    let rate = |p: &Value| {
        let n = p["requests"].as_f64().expect("requests");
        n / p["covered_s"]
            .as_f64()
            .unwrap_or_else(|| panic!("covered_s in {p}"))
    };
    let qps = d["summary"]["qps"].as_f64().expect("qps");
    assert!((qps - 1.0).abs() < 0.05, "{}", d["summary"]);
    assert!((rate(last) - qps).abs() < 0.05, "{last}");
    let full = &points[points.len() - 2];
    assert!((rate(full) - qps).abs() < 0.05, "{full}");
}

fn find<'a>(list: &'a Value, key: &str, want: &str) -> &'a Value {
    list.as_array()
        .and_then(|l| l.iter().find(|v| v[key] == want))
        .unwrap_or_else(|| panic!("no {key} = {want} in {list}"))
}

#[test]
fn the_api_carries_each_models_normal_and_every_alerts_explanation() {
    let mut live = crate::tui::fixtures::blind();
    // A broker error quoting its URL, password included, as lapin's errors may.
    let mut alerts = (*live.alerts).clone();
    for a in &mut alerts.active {
        if a.rule == "broker_down" {
            a.explanation = "no connection to the broker for 1 min (amqp://u:SECRET@mq:5672/%2f \
                             refused); request figures are unknown until it is back"
                .to_owned();
        }
    }
    live.alerts = std::sync::Arc::new(alerts);
    let server = Fixed::start(live);

    // The overview: per model the --batch baseline and explained alerts; the monitor's own
    // alerts at the top level.
    let overview = server.json("/api/v1/models");
    let llm = find(&overview["models"], "model", "llm-chat");
    assert_eq!(llm["baseline"]["p95_ms"], 160.0);
    assert_eq!(llm["baseline"]["ready"], true);
    assert!(
        llm["baseline"]["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("per-minute medians over 55 min")),
        "{llm}"
    );
    let regression = find(&llm["alerts"], "rule", "latency_regression");
    assert_eq!(
        regression["explanation"],
        "p95 1.8 s, 12× its normal 160 ms (last hour)"
    );
    assert_eq!(regression["normal"], 160.0);
    assert_eq!(regression["threshold"], 480.0);
    assert_eq!(regression["resolve"], 384.0);
    let learning = find(&overview["models"], "model", "embedder-v2");
    assert_eq!(learning["baseline"]["ready"], false);
    assert!(learning["baseline"]["p95_ms"].is_null(), "unknown, not 0");
    assert!(find(&overview["models"], "model", "resnet50")["baseline"].is_null());
    let broker = find(&overview["alerts"], "rule", "broker_down");
    assert_eq!(broker["state"], "firing");
    assert!(
        broker["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("amqp://u:***@mq:5672")),
        "{broker}"
    );

    // A model's detail: the same objects.
    let detail = server.json("/api/v1/models/llm-chat?range=1h");
    assert_eq!(detail["baseline"], llm["baseline"]);
    assert_eq!(
        find(&detail["alerts"], "rule", "oom_killed")["explanation"],
        "container llm-chat-2 was killed for lack of memory (limit 2048 MiB)"
    );

    // The alerts list: explanation, normal and resolve on each; the monitor's own listed
    // apart too, with a scope instead of an empty model.
    let list = server.json("/api/v1/alerts");
    let pending = find(&list["active"], "rule", "error_spike");
    assert_eq!(pending["scope"], "model");
    assert_eq!(pending["normal"], 0.004);
    assert_eq!(pending["resolve"], 0.054 * 0.8);
    assert!(
        pending["explanation"]
            .as_str()
            .is_some_and(|e| e.starts_with("6.1 % errors (11 of 180 requests in 30 s)")),
        "{pending}"
    );
    let monitor: Vec<(&str, &str)> = list["monitor"]
        .as_array()
        .expect("monitor")
        .iter()
        .map(|m| {
            (
                m["rule"].as_str().unwrap_or(""),
                m["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        monitor,
        [
            ("broker_down", "firing"),
            ("docker_unavailable", "firing"),
            ("broker_down", "resolved")
        ]
    );
    assert!(list["monitor"].as_array().is_some_and(|m| {
        m.iter()
            .all(|m| m["scope"] == "monitor" && m["model"] == "")
    }));

    // /metrics: the monitor's alerts have a scope, never an empty model label.
    let metrics = http_get(server.addr, "/metrics", &[]).body;
    assert!(
        metrics.contains(
            "modelmon_alert_active{scope=\"monitor\",rule=\"broker_down\",severity=\"critical\",state=\"firing\"} 1"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "modelmon_alert_active{model=\"llm-chat\",rule=\"latency_regression\",severity=\"warning\",state=\"firing\"} 1"
    ));
    assert!(!metrics.contains("model=\"\""), "{metrics}");

    // The WebSocket: the monitor's active alerts with each overview, the baseline and
    // explained alerts in a subscribed detail.
    server.rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr))
            .await
            .expect("the WebSocket opens");
        let pushed = ws_next(&mut ws, |v| v["t"] == "o").await;
        let broker = find(&pushed["monitor"], "rule", "broker_down");
        assert!(
            broker["explanation"]
                .as_str()
                .is_some_and(|e| e.contains("request figures are unknown")),
            "{pushed}"
        );
        assert_eq!(
            pushed["monitor"].as_array().map(Vec::len),
            Some(2),
            "active only"
        );
        ws.send(Message::Text("{\"sub\":\"llm-chat\"}".into()))
            .await
            .expect("subscribe");
        let sub = ws_next(&mut ws, |v| v["t"] == "d").await;
        assert_eq!(sub["detail"]["baseline"]["qps"], 6.0);
        assert_eq!(
            find(&sub["detail"]["alerts"], "rule", "latency_regression")["normal"],
            160.0
        );
        assert!(!sub.to_string().contains("SECRET") && !pushed.to_string().contains("SECRET"));
    });
    for path in [
        "/api/v1/models",
        "/api/v1/models/llm-chat",
        "/api/v1/alerts",
        "/metrics",
    ] {
        let r = http_get(server.addr, path, &[]);
        assert!(!r.body.contains("SECRET"), "{path}: {}", r.body);
    }
}

/// A model whose name has a `/`: its detail by `?name=`, which a proxy leaves as it is
/// (nginx's `proxy_pass` with a URI decodes the `%2F` of `/api/v1/models/team%2Franker`).
/// A path no route takes is answered in JSON, naming the path that arrived.
#[test]
fn a_model_named_with_a_slash_has_its_detail_by_query() {
    let mut view = crate::tui::fixtures::fixture_view();
    view.models[0].model = "team/ranker".to_owned();
    let server = Fixed::start(modelmon::live::Live::new(
        view,
        crate::tui::fixtures::alerts(),
    ));
    let by_query = server.json("/api/v1/model?name=team%2Franker&range=1h");
    assert_eq!(by_query["model"], "team/ranker");
    assert_eq!(by_query["range"], "1h");
    assert!(by_query["history"].is_array(), "{by_query}");
    assert_eq!(
        by_query,
        server.json("/api/v1/models/team%2Franker?range=1h"),
        "the same body as by path"
    );

    // What the path becomes behind the proxy: a JSON 404 that says what arrived.
    let decoded = http_get(server.addr, "/api/v1/models/team/ranker?range=1h", &[]);
    assert_eq!(decoded.status, 404);
    assert!(
        decoded.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("no such API path: /api/v1/models/team/ranker")),
        "{}",
        decoded.body
    );
    let unknown = http_get(server.addr, "/api/v1/model?name=nobody", &[]);
    assert_eq!(
        (unknown.status, unknown.json()["error"].as_str()),
        (404, Some("no such model"))
    );
    let nameless = http_get(server.addr, "/api/v1/model?range=1h", &[]);
    assert_eq!(nameless.status, 400);
    assert!(nameless.json()["error"].is_string(), "{}", nameless.body);
}

/// The alerts list gives each value in its metric's unit, as the explanations do: a bare
/// 0.061 does not say it is 6.1 % of requests.
#[test]
fn every_alert_carries_its_value_in_its_unit() {
    let server = Fixed::start(crate::tui::fixtures::blind());
    let list = server.json("/api/v1/alerts");
    let text = |rule: &str| find(&list["active"], "rule", rule)["value_text"].clone();
    assert_eq!(text("latency_regression"), "1.8 s");
    assert_eq!(text("error_spike"), "6.1 %");
    assert_eq!(text("oom_killed"), "1");
    assert_eq!(
        find(&list["recent"], "rule", "latency_regression")["value_text"],
        "5.1 ms"
    );
    assert_eq!(
        find(&list["monitor"], "rule", "broker_down")["value_text"],
        "1"
    );
}

#[test]
fn events_from_the_real_broker_appear_in_the_api() {
    require!(Rabbitmq);
    let name = unique("web");
    let s = Served::start(&["--amqp", AMQP, "--models", &name]);
    let status = s.wait_json("/api/v1/status", "the broker connection", |v| {
        v["broker"]["state"] == "connected"
    });
    assert_eq!(status["broker"]["node"], AMQP, "the node in use: {status}");
    runtime().block_on(async {
        let p = Publisher::connect().await;
        // Half of them streamed: first byte after 2 ms of the 5.
        let events = (0..20)
            .map(|i| {
                let mut e = event(&name, if i < 18 { 200 } else { 503 }, 5_000);
                if i % 2 == 0 {
                    e["ttfb_us"] = serde_json::json!(2_000);
                }
                e
            })
            .collect();
        p.publish(&name, &batch(events, 0)).await;
    });
    let overview = s.wait_json("/api/v1/models", "the published events", |v| {
        v["models"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m["model"] == name.as_str() && m["requests"] == 20)
        })
    });
    let m = overview["models"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["model"] == name.as_str()))
        .expect("the model");
    assert_eq!(m["errors"], 2);
    assert_eq!(m["status"]["5xx"], 2);
    assert_eq!(m["ttfb_requests"], 10, "{m}");
    assert_eq!(
        (m["ttfb_p95_ms"].as_f64(), m["gen_p95_ms"].as_f64()),
        (Some(2.0), Some(3.0)),
        "{m}"
    );
    // Routes and instances carry the same figures.
    let detail = s.get(&format!("/api/v1/models/{name}")).json();
    for key in ["routes", "instances"] {
        let k = &detail[key][0];
        assert_eq!(
            (k["ttfb_requests"].as_u64(), k["ttfb_p50_ms"].as_f64()),
            (Some(10), Some(2.0)),
            "{key}: {k}"
        );
    }
    let metrics = s.get("/metrics").body;
    assert!(metrics.contains(&format!(
        "modelmon_window_requests{{model=\"{name}\",class=\"5xx\"}} 2"
    )));
    // Counters since start, and a histogram Prometheus can take quantiles of:
    // every request took 5 ms, so the 5 ms bucket holds all 20 and the 2.5 ms one none.
    // Counters since start per route, method and status class (no version, no label),
    // and a histogram Prometheus can take quantiles of: every request took 5 ms, so the
    // 5 ms bucket holds all of them and the 2.5 ms one none.
    let ok = format!("model=\"{name}\",route=\"/predict\",method=\"POST\",class=\"2xx\"");
    let failed = format!("model=\"{name}\",route=\"/predict\",method=\"POST\",class=\"5xx\"");
    for needle in [
        format!("modelmon_requests_total{{{ok}}} 18\n"),
        format!("modelmon_requests_total{{{failed}}} 2\n"),
        format!("modelmon_errors_total{{{ok}}} 0\n"),
        format!("modelmon_errors_total{{{failed}}} 2\n"),
        format!("modelmon_request_duration_seconds_bucket{{{ok},le=\"0.0025\"}} 0\n"),
        format!("modelmon_request_duration_seconds_bucket{{{ok},le=\"0.005\"}} 18\n"),
        format!("modelmon_request_duration_seconds_bucket{{{ok},le=\"+Inf\"}} 18\n"),
        format!("modelmon_request_duration_seconds_bucket{{{ok},le=\"300\"}} 18\n"),
        format!("modelmon_request_duration_seconds_count{{{ok}}} 18\n"),
        format!("modelmon_request_duration_seconds_sum{{{failed}}} 0.01\n"),
        // Time to first byte: the ten streamed answers only, on the same buckets.
        format!("modelmon_time_to_first_byte_seconds_bucket{{model=\"{name}\",le=\"0.001\"}} 0\n"),
        format!(
            "modelmon_time_to_first_byte_seconds_bucket{{model=\"{name}\",le=\"0.0025\"}} 10\n"
        ),
        format!("modelmon_time_to_first_byte_seconds_bucket{{model=\"{name}\",le=\"+Inf\"}} 10\n"),
        format!("modelmon_time_to_first_byte_seconds_count{{model=\"{name}\"}} 10\n"),
        format!("modelmon_time_to_first_byte_seconds_sum{{model=\"{name}\"}} 0.02\n"),
        format!(
            "modelmon_window_time_to_first_byte_seconds{{model=\"{name}\",quantile=\"0.99\"}} 0.002\n"
        ),
    ] {
        assert!(metrics.contains(&needle), "missing {needle} in\n{metrics}");
    }
}

#[test]
fn api_bodies_are_shared_per_refresh_gzipped_and_revalidated() {
    // A slow refresh, so that several requests fall within one view.
    let s = Served::start(&["--demo", "--interval", "3s"]);
    s.wait_json("/api/v1/models", "demo traffic", |v| {
        v["models"].as_array().is_some_and(|m| !m.is_empty())
    });
    let name = model_names(&s.get("/api/v1/models").json())[0].clone();
    let detail = format!("/api/v1/models/{name}?range=1h");
    for path in [
        "/api/v1/models",
        "/api/v1/models?series=1",
        &detail,
        "/api/v1/alerts",
    ] {
        let mut checked = false;
        for _ in 0..10 {
            let plain = http_get_bytes(s.addr, path, &[]);
            let zipped = http_get_bytes(s.addr, path, &[("Accept-Encoding", "gzip")]);
            assert_eq!((plain.0, zipped.0), (200, 200), "{path}");
            let etag = |head: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix("etag: ").or(l.strip_prefix("ETag: ")))
                    .map_or_else(|| panic!("{path}: no ETag in {head}"), str::to_owned)
            };
            let (tag, tag_zipped) = (etag(&plain.1), etag(&zipped.1));
            let head = zipped.1.to_ascii_lowercase();
            let body: Vec<u8> = if head.contains("content-encoding: gzip") {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&zipped.2[..])
                    .read_to_end(&mut out)
                    .expect("a gzip body");
                // JSON of figures shrinks 3 to 5 times; twice is the least that pays.
                assert!(
                    zipped.2.len() * 2 < out.len(),
                    "{path}: gzip barely shrinks it ({} of {} bytes)",
                    zipped.2.len(),
                    out.len()
                );
                out
            } else {
                // Tiny bodies (no alert yet) go out plain.
                assert!(
                    zipped.2.len() < 1024,
                    "{path}: {} bytes not gzipped",
                    zipped.2.len()
                );
                zipped.2.clone()
            };
            assert!(
                !plain.1.to_ascii_lowercase().contains("content-encoding"),
                "{path}"
            );
            serde_json::from_slice::<Value>(&body).expect("JSON");
            if tag != tag_zipped {
                continue; // a refresh fell between the two requests
            }
            // The same view: the very same body, whichever encoding.
            assert_eq!(plain.2, body, "{path}");
            // A client holding it is told so, without the body.
            let again = http_get_bytes(s.addr, path, &[("If-None-Match", &tag)]);
            if etag(&again.1) != tag {
                continue;
            }
            assert_eq!(again.0, 304, "{path}");
            assert!(again.2.is_empty(), "{path}");
            checked = true;
            break;
        }
        assert!(checked, "{path}: never two requests within one view of 3 s");
    }
}
