//! `/metrics`: Prometheus text with every model, versions, `ml` measures and body sizes,
//! checked against a real store's figures.

use modelmon::store::OTHER;
use serde_json::Value;

use crate::support::batch;

use super::{Fixed, Served, http_get, model_names};

#[test]
fn metrics_are_prometheus_text_with_every_model() {
    let s = Served::start(&["--demo"]);
    let overview = s.wait_json("/api/v1/models", "demo traffic", |v| {
        v["models"].as_array().is_some_and(|m| !m.is_empty())
    });
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        r.header("content-type")
    );
    for line in r.body.lines().filter(|l| !l.is_empty()) {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        assert!(name.starts_with("modelmon_"), "unprefixed series: {line}");
    }
    for name in model_names(&overview) {
        for needle in [
            format!("modelmon_window_requests{{model=\"{name}\",class=\"2xx\"}}"),
            format!("modelmon_window_errors{{model=\"{name}\"}}"),
            format!(
                "modelmon_window_request_duration_seconds{{model=\"{name}\",quantile=\"0.5\"}}"
            ),
        ] {
            assert!(r.body.contains(&needle), "missing {needle}");
        }
        // The demo's LLM streams its answers; the other models never send a TTFB and
        // get no TTFB series (not series of zeros).
        let ttfb = format!("modelmon_time_to_first_byte_seconds_count{{model=\"{name}\"}}");
        assert_eq!(r.body.contains(&ttfb), name == "llm-chat", "{ttfb}");
    }
    let events: f64 = r
        .body
        .lines()
        .find_map(|l| l.strip_prefix("modelmon_ingest_events_total "))
        .and_then(|v| v.parse().ok())
        .expect("the ingest counter");
    assert!(events > 0.0);
}

/// `name{labels}` → value, for every sample of an exposition; each sample's family
/// must have its `# HELP` and `# TYPE` lines, once.
fn samples(body: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("`series value`");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        let name = series.split('{').next().unwrap_or(series);
        let family = ["_count", "_sum", "_bucket"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| body.contains(&format!("# TYPE {f} ")))
            })
            .unwrap_or(name);
        for kind in ["HELP", "TYPE"] {
            let head = format!("# {kind} {family} ");
            assert_eq!(body.matches(&head).count(), 1, "{head}for {line}");
        }
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "twice: {line}"
        );
    }
    out
}

/// The value of one sample, which must be there.
fn sample(samples: &std::collections::BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {:#?}", samples.keys().collect::<Vec<_>>()))
}

/// Whether `v` is `want` within the store's 1 % on distributions.
fn near(v: f64, want: f64) -> bool {
    (v - want).abs() <= want.abs() * 0.01
}

/// A view from a real store fed these batches (one model each) at `NOW_US`.
fn store_view(batches: &[Vec<Value>]) -> modelmon::live::Live {
    let mut store = modelmon::store::Store::new(modelmon::store::StoreConfig::default());
    for events in batches {
        let body = batch(events.clone(), 0);
        let d = modelmon_contract::decode_batch(&body, None, STORE_NOW_US).expect("a batch");
        assert!(d.rejects.is_empty(), "{:?}", d.rejects);
        store.apply(&d, STORE_NOW_US);
    }
    let view = store.view(
        STORE_NOW_US,
        modelmon::store::BrokerView {
            state: modelmon::store::BrokerState::Connected,
            ..modelmon::store::BrokerView::default()
        },
    );
    modelmon::live::Live::from(view)
}

const STORE_NOW_US: i64 = 1_800_000_000 * 1_000_000;

fn store_event(model: &str, i: i64, extra: Value) -> Value {
    let mut e = serde_json::json!({"ts": STORE_NOW_US - 20_000_000 + i * 100_000,
        "model": model, "instance": "i-1", "method": "POST", "route": "/rank",
        "status": 200, "duration_us": 10_000});
    if let (Some(e), Value::Object(x)) = (e.as_object_mut(), extra) {
        e.extend(x);
    }
    e
}

#[test]
fn metrics_carry_each_versions_latency_the_ml_measures_and_body_sizes() {
    use serde_json::json;
    // A rollout: 30 requests of v1 at 10 ms, 10 of v2 at 40 ms (2 of them failing), each
    // with its queue time and request size; v1's answers carry their size too.
    let ranker: Vec<Value> = (0..40)
        .map(|i| {
            if i < 30 {
                json!({"version": "v1", "ml": {"queue_us": 1000}, "req_bytes": 512,
                       "resp_bytes": 2048})
            } else {
                json!({"version": "v2", "duration_us": 40_000, "status": if i >= 38 { 503 } else { 200 },
                       "ml": {"queue_us": 5000}, "req_bytes": 512})
            }
        })
        .enumerate()
        .map(|(i, x)| store_event("ranker", i as i64, x))
        .collect();
    // A model named with quotes, with no version and no sizes: tokens 100, 150 … 300.
    let llm: Vec<Value> = (0..5)
        .map(|i| {
            store_event(
                "llm \"chat\"",
                i,
                json!({"ml": {"tokens_out": 100 + 50 * i}}),
            )
        })
        .collect();
    let live = store_view(&[ranker, llm]);
    let server = Fixed::start(live.clone());
    let body = http_get(server.addr, "/metrics", &[]).body;
    let got = samples(&body);
    let at = |series: &str| sample(&got, series);
    for (family, kind) in [
        ("modelmon_window_measure", "gauge"),
        ("modelmon_window_measure_rate", "gauge"),
        ("modelmon_window_measure_events", "gauge"),
        ("modelmon_window_version_requests", "gauge"),
        ("modelmon_window_version_errors", "gauge"),
        ("modelmon_window_version_request_duration_seconds", "gauge"),
        ("modelmon_window_request_size_bytes", "gauge"),
        ("modelmon_window_response_size_bytes", "gauge"),
    ] {
        assert!(
            body.contains(&format!("# TYPE {family} {kind}\n")),
            "{family}: {body}"
        );
    }

    let queue = r#"model="ranker",key="queue_us""#;
    let tokens = r#"model="llm \"chat\"",key="tokens_out""#;
    let (v1, v2) = (
        r#"model="ranker",version="v1""#,
        r#"model="ranker",version="v2""#,
    );
    let dur = "modelmon_window_version_request_duration_seconds";
    let ranker = r#"model="ranker""#;
    let q = |labels: &str, q: &str| format!("{{{labels},quantile=\"{q}\"}}");
    // Counts, exact.
    let exact = [
        // ml measures: over the events that carry the key.
        (format!("modelmon_window_measure_events{{{queue}}}"), 40.0),
        (format!("modelmon_window_measure_events{{{tokens}}}"), 5.0),
        // Each version side by side: requests by class, errors.
        (
            format!("modelmon_window_version_requests{{{v1},class=\"2xx\"}}"),
            30.0,
        ),
        (
            format!("modelmon_window_version_requests{{{v1},class=\"5xx\"}}"),
            0.0,
        ),
        (
            format!("modelmon_window_version_requests{{{v2},class=\"2xx\"}}"),
            8.0,
        ),
        (
            format!("modelmon_window_version_requests{{{v2},class=\"5xx\"}}"),
            2.0,
        ),
        (format!("modelmon_window_version_errors{{{v1}}}"), 0.0),
        (format!("modelmon_window_version_errors{{{v2}}}"), 2.0),
    ];
    for (series, want) in &exact {
        assert_eq!(at(series), *want, "{series}");
    }
    // Quantiles (seconds for latencies, each measure's own unit), within the store's 1 %;
    // "1" is the largest.
    let mut close = vec![
        (
            format!("modelmon_window_measure{}", q(queue, "0.5")),
            1000.0,
        ),
        (
            format!("modelmon_window_measure{}", q(queue, "0.95")),
            5000.0,
        ),
        (format!("modelmon_window_measure{}", q(queue, "1")), 5000.0),
        (
            format!("modelmon_window_measure{}", q(tokens, "0.5")),
            200.0,
        ),
        (
            format!("modelmon_window_measure{}", q(tokens, "0.99")),
            300.0,
        ),
        (
            format!("modelmon_window_request_size_bytes{}", q(ranker, "0.5")),
            512.0,
        ),
        (
            format!("modelmon_window_response_size_bytes{}", q(ranker, "0.99")),
            2048.0,
        ),
    ];
    for quantile in ["0.5", "0.9", "0.95", "0.99"] {
        close.push((format!("{dur}{}", q(v1, quantile)), 0.010));
        close.push((format!("{dur}{}", q(v2, quantile)), 0.040));
    }
    for (series, want) in &close {
        let v = at(series);
        assert!(near(v, *want), "{series}: {v}, not within 1 % of {want}");
    }
    // Tokens per second: the figure the detail view shows, 1000 tokens over the span.
    let view = live.model("llm \"chat\"").expect("the model").ml["tokens_out"].rate_per_s;
    assert!(view > 0.0);
    assert_eq!(
        at(&format!("modelmon_window_measure_rate{{{tokens}}}")),
        view
    );

    // Counts since start carry the version: Grafana can split a rollout by it.
    let since = |version: &str, class: &str| {
        format!(
            "modelmon_requests_total{{model=\"ranker\",route=\"/rank\",method=\"POST\",version=\"{version}\",class=\"{class}\"}}"
        )
    };
    assert_eq!(at(&since("v1", "2xx")), 30.0);
    assert_eq!(at(&since("v2", "2xx")), 8.0);
    assert_eq!(at(&since("v2", "5xx")), 2.0);

    // A model without versions or sizes has no such series, rather than series of zeros.
    let llm_series: Vec<&String> = got.keys().filter(|k| k.contains("llm \\\"chat")).collect();
    assert!(
        llm_series
            .iter()
            .all(|k| !k.contains("version") && !k.contains("size_bytes")),
        "{llm_series:?}"
    );
    assert!(!llm_series.is_empty());

    // Models whose events carry none of it: no such family at all.
    let plain = Fixed::start(store_view(&[(0..5)
        .map(|i| store_event("plain", i, json!({})))
        .collect()]));
    let body = http_get(plain.addr, "/metrics", &[]).body;
    samples(&body);
    for family in ["window_measure", "window_version_", "size_bytes"] {
        assert!(!body.contains(family), "{family}: {body}");
    }
}

#[test]
fn request_counters_stay_monotonic_when_a_quiet_version_gives_its_place() {
    use serde_json::json;
    let mut store = modelmon::store::Store::new(modelmon::store::StoreConfig {
        max_versions: 3,
        ..modelmon::store::StoreConfig::default()
    });
    let mut scrape = |version: &str, n: i64, at_s: i64| {
        let now = STORE_NOW_US + at_s * 1_000_000;
        let events: Vec<Value> = (0..n)
            .map(|i| {
                let mut e = store_event("ranker", i, json!({"version": version}));
                e["ts"] = json!(now - 1_000_000 - i * 1000);
                e
            })
            .collect();
        let body = batch(events, 0);
        let d = modelmon_contract::decode_batch(&body, None, now).expect("a batch");
        store.apply(&d, now);
        modelmon::live::Live::from(store.view(now, modelmon::store::BrokerView::default()))
    };
    // Two versions fill the cap (two named and `(other)`); two hours later a third
    // takes the place of the one quiet the longest, and goes on.
    let steps = [
        ("v0", 5, 0),
        ("v1", 7, 60),
        ("v2", 3, 7200),
        ("v2", 4, 7260),
    ];
    let scrapes: Vec<_> = steps
        .iter()
        .map(|&(version, n, at_s)| {
            let server = Fixed::start(scrape(version, n, at_s));
            samples(&http_get(server.addr, "/metrics", &[]).body)
        })
        .collect();
    let requests = |s: &std::collections::BTreeMap<String, f64>, version: &str| {
        let series = format!(
            r#"modelmon_requests_total{{model="ranker",route="/rank",method="POST",version="{version}",class="2xx"}}"#
        );
        s.get(&series).copied()
    };
    let counters = [
        "modelmon_requests_total",
        "modelmon_errors_total",
        "modelmon_request_duration_seconds_count",
    ];
    for pair in scrapes.windows(2) {
        for (series, before) in &pair[0] {
            if !counters
                .iter()
                .any(|c| series.starts_with(&format!("{c}{{")))
            {
                continue;
            }
            if let Some(after) = pair[1].get(series) {
                assert!(after >= before, "{series}: {before} then {after}");
            }
        }
    }
    assert_eq!(requests(&scrapes[2], "v2"), Some(3.0), "its own count");
    assert_eq!(
        requests(&scrapes[2], OTHER),
        Some(5.0),
        "v0's, which gave its place"
    );
    assert_eq!(requests(&scrapes[2], "v1"), Some(7.0));
    assert_eq!(requests(&scrapes[2], "v0"), None);
    assert_eq!(requests(&scrapes[3], "v2"), Some(7.0));
}
