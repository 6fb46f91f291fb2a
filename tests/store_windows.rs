//! The store on a virtual clock: window edges, late events, caps, exact figures.

use modelmon::store::{BrokerView, OTHER, Store, StoreConfig};
use modelmon_contract::decode_batch;
use serde_json::{Value, json};

const T0: i64 = 1_800_000_000_000_000; // a fixed "now", in µs

fn ev(model: &str, route: &str, ts: i64, status: u16, duration_us: u64) -> Value {
    json!({"ts": ts, "model": model, "instance": "i-1", "method": "GET", "route": route,
           "status": status, "duration_us": duration_us})
}

fn apply(store: &mut Store, events: Vec<Value>, now: i64) {
    let body = serde_json::to_vec(
        &json!({"v": 1, "source": {"kind": "demo", "instance": "t", "pid": 1},
                                          "events": events}),
    )
    .expect("json");
    let d = decode_batch(&body, None, now).expect("a batch");
    store.apply(&d, now);
}

fn stats(store: &mut Store, model: &str, now: i64) -> modelmon::store::view::Stats {
    let v = store.view(now, BrokerView::default());
    v.model(model).expect("model present").stats.clone()
}

#[test]
fn events_leave_the_window_exactly_when_their_second_does() {
    let mut s = Store::new(StoreConfig::default());
    apply(&mut s, vec![ev("m", "/a", T0, 200, 1000)], T0);
    apply(
        &mut s,
        vec![ev("m", "/a", T0 + 30_000_000, 500, 1000)],
        T0 + 30_000_000,
    );
    assert_eq!(
        stats(&mut s, "m", T0 + 59_999_999).requests,
        2,
        "still inside 60 s"
    );
    let st = stats(&mut s, "m", T0 + 60_000_000);
    assert_eq!(
        (st.requests, st.errors),
        (1, 1),
        "the first second has left"
    );
    let st = stats(&mut s, "m", T0 + 90_000_000);
    assert_eq!(st.requests, 0);
    assert_eq!(st.error_rate, None, "no requests: unknown, not 0");
    assert_eq!(st.p95_ms, None);
}

#[test]
fn a_replayed_backlog_lands_in_the_seconds_it_happened() {
    let mut s = Store::new(StoreConfig::default());
    let now = T0 + 100_000_000;
    // Ten events from 20 s ago and five from 2 minutes ago arrive together.
    let mut events: Vec<Value> = (0..10)
        .map(|_| ev("m", "/a", now - 20_000_000, 200, 500))
        .collect();
    events.extend((0..5).map(|_| ev("m", "/a", now - 120_000_000, 200, 500)));
    apply(&mut s, events, now);
    let v = s.view(now, BrokerView::default());
    let m = v.model("m").expect("model");
    assert_eq!(m.stats.requests, 10, "the old five are outside the window");
    assert_eq!(v.ingest.late, 5, "and counted as late");
    let sec = now / 1_000_000 - 20;
    let point = m
        .series
        .iter()
        .find(|p| p.sec == sec)
        .expect("series covers 5 min");
    assert_eq!(
        point.requests, 10,
        "sparkline shows them in their own second"
    );
    assert_eq!(m.series.len(), 300);
}

#[test]
fn qps_is_not_diluted_before_a_full_window_has_passed() {
    let mut s = Store::new(StoreConfig::default());
    for sec in 0..10 {
        let t = T0 + sec * 1_000_000;
        apply(
            &mut s,
            (0..20).map(|_| ev("m", "/a", t, 200, 100)).collect(),
            t,
        );
    }
    let st = stats(&mut s, "m", T0 + 9_500_000);
    assert!(
        (st.qps - 20.0).abs() < 1e-9,
        "10 s seen at 20/s, got {}",
        st.qps
    );
    let st = stats(&mut s, "m", T0 + 120_000_000);
    assert_eq!(st.qps, 0.0);
}

#[test]
fn percentiles_over_the_window_match_exact_values() {
    let mut s = Store::new(StoreConfig::default());
    let mut all = Vec::new();
    let mut x = 99u64;
    for sec in 0..60 {
        let t = T0 + sec * 1_000_000;
        let batch: Vec<Value> = (0..200)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let d = 300 + (x >> 33) % 250_000 * ((sec as u64 % 7) + 1);
                all.push(d);
                ev("m", "/a", t, 200, d)
            })
            .collect();
        apply(&mut s, batch, t);
    }
    all.sort_unstable();
    let st = stats(&mut s, "m", T0 + 59_000_000);
    for (got, q) in [
        (st.p50_ms, 0.5),
        (st.p90_ms, 0.9),
        (st.p95_ms, 0.95),
        (st.p99_ms, 0.99),
    ] {
        let exact = all[((q * all.len() as f64).ceil() as usize) - 1] as f64 / 1000.0;
        let got = got.expect("percentile");
        assert!((got - exact).abs() / exact < 0.01, "p{q}: {got} vs {exact}");
    }
    assert_eq!(
        st.max_ms,
        Some(*all.last().expect("samples") as f64 / 1000.0)
    );
}

#[test]
fn cardinality_caps_fold_overflow_into_other() {
    let cfg = StoreConfig {
        max_models: 3,
        max_routes: 4,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg);
    let routes: Vec<Value> = (0..10)
        .map(|i| ev("m", &format!("/r{i}"), T0, 200, 100))
        .collect();
    apply(&mut s, routes, T0);
    for m in ["a", "b", "c", "d"] {
        apply(&mut s, vec![ev(m, "/", T0, 200, 100)], T0);
    }
    let v = s.view(T0, BrokerView::default());
    let names: Vec<&str> = v.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(
        names,
        vec![OTHER, "a", "m"],
        "two named models, then (other)"
    );
    assert_eq!(v.model(OTHER).expect("other").stats.requests, 3);
    let m = v.model("m").expect("m");
    assert_eq!(m.routes.len(), 4);
    assert!(
        m.routes
            .iter()
            .any(|r| r.name == OTHER && r.stats.requests == 7)
    );
    assert_eq!(m.stats.requests, 10, "nothing is lost, only folded");
    assert_eq!(
        v.ingest.overflowed, 10,
        "7 events of m's folded routes and 3 of folded models"
    );
    // A folded model's events whose routes fold too (within `(other)`) count once each.
    let routes: Vec<Value> = (0..10)
        .map(|i| ev("e", &format!("/x{i}"), T0, 200, 100))
        .collect();
    apply(&mut s, routes, T0);
    let v = s.view(T0, BrokerView::default());
    assert_eq!(v.ingest.overflowed, 20, "events, not cap hits");
}

#[test]
fn a_sender_claiming_huge_drops_cannot_wrap_the_counts() {
    let mut s = Store::new(StoreConfig::default());
    for dropped in [u64::MAX - 5, 100] {
        let body = serde_json::to_vec(&json!({"v": 1,
            "source": {"kind": "proxy", "instance": "edge", "pid": 9},
            "dropped": dropped, "events": [ev("m", "/a", T0, 200, 100)]}))
        .expect("json");
        let d = decode_batch(&body, None, T0).expect("a batch");
        s.apply(&d, T0);
    }
    let v = s.view(T0, BrokerView::default());
    assert_eq!(
        v.ingest.dropped_at_source,
        u64::MAX,
        "saturated, not wrapped"
    );
    assert_eq!(
        v.ingest.dropped_by_source.get("proxy/edge/9"),
        Some(&u64::MAX)
    );
    // Publishers that come and go (a new pid each time) share `(other)` past a cap.
    for pid in 0..300 {
        let body = serde_json::to_vec(&json!({"v": 1,
            "source": {"kind": "asgi", "instance": "w", "pid": pid},
            "dropped": 1, "events": []}))
        .expect("json");
        let d = decode_batch(&body, None, T0).expect("a batch");
        s.apply(&d, T0);
    }
    let v = s.view(T0, BrokerView::default());
    assert_eq!(
        v.ingest.dropped_by_source.len(),
        modelmon::store::MAX_DROP_SOURCES + 1
    );
    assert!(
        v.ingest
            .dropped_by_source
            .get(OTHER)
            .is_some_and(|n| *n > 0)
    );
}

#[test]
fn rejects_are_counted_by_reason_and_kept_for_display() {
    let mut s = Store::new(StoreConfig::default());
    let mut bad = ev("m", "/a", T0, 200, 100);
    bad["status"] = json!(42);
    apply(&mut s, vec![bad, ev("m", "/a", T0, 200, 100)], T0);
    let err = decode_batch(b"[]", Some("m"), T0).expect_err("not a batch");
    s.apply_error(&err, Some("m"), T0);
    let v = s.view(T0, BrokerView::default());
    assert_eq!(v.ingest.events, 1);
    assert_eq!(v.ingest.rejected, 2);
    assert_eq!(v.ingest.rejected_by_reason.get("bad_status"), Some(&1));
    assert_eq!(v.ingest.rejected_by_reason.get("not_a_batch"), Some(&1));
    assert_eq!(v.recent_rejects.len(), 2);
    assert!(v.recent_rejects[0].detail.contains("status"));
    assert_eq!(v.recent_rejects[0].model.as_deref(), Some("m"));
}

/// An event of a streamed answer: first byte after `ttfb_us`, last after `duration_us`.
fn streamed(model: &str, route: &str, ts: i64, duration_us: u64, ttfb_us: u64) -> Value {
    let mut e = ev(model, route, ts, 200, duration_us);
    e["ttfb_us"] = json!(ttfb_us);
    e
}

fn nearest_rank_ms(samples: &[u64], q: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_unstable();
    s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1] as f64 / 1000.0
}

fn close(got: Option<f64>, exact: f64, what: &str) {
    let got = got.unwrap_or_else(|| panic!("{what} unknown"));
    assert!(
        (got - exact).abs() / exact < 0.01,
        "{what}: {got} vs exact {exact}"
    );
}

#[test]
fn ttfb_and_generation_percentiles_come_from_streamed_events_only() {
    let mut s = Store::new(StoreConfig::default());
    let (mut ttfbs, mut gens) = (Vec::new(), Vec::new());
    for sec in 0..30 {
        let t = T0 + sec * 1_000_000;
        let mut batch = Vec::new();
        for i in 0..10u64 {
            // TTFB 20..320 ms; generation 5..40 times longer, not in step with it.
            let ttfb = 20_000 + (sec as u64 * 10 + i) * 1_000;
            let generation = ttfb * (5 + (i * 7 + sec as u64) % 36);
            ttfbs.push(ttfb);
            gens.push(generation);
            batch.push(streamed("llm", "/chat", t, ttfb + generation, ttfb));
        }
        // Answers that were not streamed: fast, and no TTFB to count.
        batch.extend((0..5).map(|_| ev("llm", "/health", t, 200, 400)));
        apply(&mut s, batch, t);
    }
    // A streamed answer from two minutes ago arrives late: outside the window.
    apply(
        &mut s,
        vec![streamed(
            "llm",
            "/chat",
            T0 - 120_000_000,
            9_000_000,
            8_000_000,
        )],
        T0 + 29_000_000,
    );
    apply(&mut s, vec![ev("plain", "/predict", T0, 200, 3_000)], T0);

    let v = s.view(T0 + 29_000_000, BrokerView::default());
    let m = v.model("llm").expect("model present");
    let st = &m.stats;
    assert_eq!(
        st.requests, 450,
        "streamed and plain answers are requests alike"
    );
    assert_eq!(st.ttfb_requests, 300, "only the streamed ones have a TTFB");
    close(st.ttfb_p50_ms, nearest_rank_ms(&ttfbs, 0.50), "ttfb p50");
    close(st.ttfb_p95_ms, nearest_rank_ms(&ttfbs, 0.95), "ttfb p95");
    close(st.ttfb_p99_ms, nearest_rank_ms(&ttfbs, 0.99), "ttfb p99");
    close(
        st.gen_p50_ms,
        nearest_rank_ms(&gens, 0.50),
        "generation p50",
    );
    close(
        st.gen_p95_ms,
        nearest_rank_ms(&gens, 0.95),
        "generation p95",
    );
    let mean = ttfbs.iter().sum::<u64>() as f64 / ttfbs.len() as f64 / 1000.0;
    close(st.ttfb_mean_ms, mean, "ttfb mean");

    let route = |name: &str| {
        m.routes
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("route {name}"))
    };
    let chat = &route("/chat").stats;
    assert_eq!(chat.ttfb_requests, 300);
    close(
        chat.ttfb_p95_ms,
        nearest_rank_ms(&ttfbs, 0.95),
        "/chat ttfb p95",
    );
    let health = &route("/health").stats;
    assert_eq!(
        (health.ttfb_requests, health.ttfb_p95_ms, health.gen_p50_ms),
        (0, None, None)
    );
    let inst = m.instances.first().expect("one instance");
    close(
        inst.stats.ttfb_p99_ms,
        nearest_rank_ms(&ttfbs, 0.99),
        "instance ttfb p99",
    );

    let plain = &v.model("plain").expect("model present").stats;
    assert_eq!(plain.requests, 1);
    assert_eq!(
        (
            plain.ttfb_requests,
            plain.ttfb_p50_ms,
            plain.ttfb_p95_ms,
            plain.ttfb_p99_ms
        ),
        (0, None, None, None),
        "a model that never streams has no TTFB: unknown, not 0"
    );
    assert_eq!(
        (plain.gen_p50_ms, plain.gen_p95_ms, plain.ttfb_mean_ms),
        (None, None, None)
    );
    let totals = m.totals.ttfb.as_ref().expect("counted since start");
    assert_eq!(
        totals.count, 301,
        "the late answer counts since start, not in the window"
    );
    assert!(v.model("plain").expect("model").totals.ttfb.is_none());
}

#[test]
fn ttfb_leaves_the_window_with_its_second() {
    let mut s = Store::new(StoreConfig::default());
    apply(
        &mut s,
        vec![streamed("llm", "/chat", T0, 900_000, 150_000)],
        T0,
    );
    apply(
        &mut s,
        vec![ev("llm", "/chat", T0 + 40_000_000, 200, 1_000)],
        T0 + 40_000_000,
    );
    let st = stats(&mut s, "llm", T0 + 59_000_000);
    close(st.ttfb_p50_ms, 150.0, "ttfb while in the window");
    close(st.gen_p50_ms, 750.0, "generation while in the window");
    let v = s.view(T0 + 60_000_000, BrokerView::default());
    let m = v.model("llm").expect("model present");
    assert_eq!(
        m.stats.requests, 1,
        "the plain answer is still in the window"
    );
    assert_eq!(
        (
            m.stats.ttfb_requests,
            m.stats.ttfb_p50_ms,
            m.stats.gen_p95_ms
        ),
        (0, None, None)
    );
    let route = m.routes.first().expect("route /chat");
    assert_eq!(
        route.stats.ttfb_p99_ms, None,
        "and has left the route's window too"
    );
}

/// An event of `version` carrying `ml` measures and sizes.
fn rich(version: &str, ts: i64, status: u16, duration_us: u64, ml: Value) -> Value {
    let mut e = ev("m", "/v1/chat", ts, status, duration_us);
    e["version"] = json!(version);
    e["ml"] = ml;
    e["req_bytes"] = json!(duration_us / 10);
    e["resp_bytes"] = json!(duration_us);
    e
}

#[test]
fn versions_are_counted_side_by_side_with_their_share() {
    let mut s = Store::new(StoreConfig::default());
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for sec in 0..20 {
        let t = T0 + sec * 1_000_000;
        let mut batch = Vec::new();
        for i in 0..9u64 {
            let us = 10_000 + i * 1_000;
            old.push(us);
            batch.push(rich("1.0", t, 200, us, json!({})));
        }
        // The canary: one request in ten, four times slower, one in three failing.
        let us = 40_000 + sec as u64 * 1_000;
        new.push(us);
        let status = if sec % 3 == 0 { 503 } else { 200 };
        batch.push(rich("1.1", t + 500_000, status, us, json!({})));
        apply(&mut s, batch, t);
    }
    let v = s.view(T0 + 19_000_000, BrokerView::default());
    let m = v.model("m").expect("model present");
    let names: Vec<&str> = m.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(names, ["1.0", "1.1"], "busiest first");
    let (stable, canary) = (&m.versions[0], &m.versions[1]);
    assert_eq!((stable.stats.requests, canary.stats.requests), (180, 20));
    close(stable.share, 0.9, "old share");
    close(canary.share, 0.1, "canary share");
    close(stable.stats.p95_ms, nearest_rank_ms(&old, 0.95), "old p95");
    close(
        canary.stats.p95_ms,
        nearest_rank_ms(&new, 0.95),
        "canary p95",
    );
    assert_eq!((stable.stats.errors, canary.stats.errors), (0, 7));
    close(canary.stats.error_rate, 7.0 / 20.0, "canary error rate");
    assert_eq!(
        m.version.as_deref(),
        Some("1.1"),
        "the newest event's version"
    );
}

#[test]
fn measures_give_distribution_sum_and_rate_per_key() {
    let mut s = Store::new(StoreConfig::default());
    let mut tokens = Vec::new();
    for sec in 0..30 {
        let t = T0 + sec * 1_000_000;
        let batch = (0..4u64)
            .map(|i| {
                let out = 50 + sec as u64 * 10 + i;
                tokens.push(out);
                rich(
                    "1.0",
                    t,
                    200,
                    1_000 + out,
                    json!({"tokens_out": out, "score": 0.25, "offset": -3.0}),
                )
            })
            .collect();
        apply(&mut s, batch, t);
    }
    let v = s.view(T0 + 29_000_000, BrokerView::default());
    let m = v.model("m").expect("model present");
    let t = m.ml.get("tokens_out").expect("tokens_out measured");
    let sum: u64 = tokens.iter().sum();
    assert_eq!(t.count, 120);
    close(Some(t.sum), sum as f64, "sum");
    // 30 s seen of a 60-s window: per second of what was seen.
    close(Some(t.rate_per_s), sum as f64 / 30.0, "tokens per second");
    close(t.mean, sum as f64 / 120.0, "tokens per request");
    for (got, q) in [(t.p50, 0.5), (t.p95, 0.95), (t.p99, 0.99)] {
        close(
            got,
            nearest_rank_ms(&tokens, q) * 1000.0,
            "tokens percentile",
        );
    }
    close(t.max, 50.0 + 290.0 + 3.0, "max");
    let score = m.ml.get("score").expect("score measured");
    close(score.p50, 0.25, "a fraction keeps its thousandths");
    let offset = m.ml.get("offset").expect("offset measured");
    assert_eq!(
        (offset.count, offset.p50),
        (120, Some(0.0)),
        "negative counts as 0"
    );

    let resp = m.sizes.get("resp_bytes").expect("response sizes");
    close(
        resp.p50,
        nearest_rank_ms(&tokens, 0.5) * 1000.0 + 1000.0,
        "resp p50",
    );
    let req = m.sizes.get("req_bytes").expect("request sizes");
    assert_eq!(req.count, 120);
    assert!(v.model("m").expect("m").ml.len() == 3);
}

#[test]
fn versions_and_measures_past_their_caps_share_other() {
    let cfg = StoreConfig {
        max_versions: 3,
        max_measures: 3,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg);
    let batch = (0..5)
        .map(|i| {
            let mut ml = serde_json::Map::new();
            ml.insert(format!("k{i}"), json!(i));
            rich(&format!("v{i}"), T0, 200, 1_000, Value::Object(ml))
        })
        .collect();
    apply(&mut s, batch, T0);
    let v = s.view(T0, BrokerView::default());
    let m = v.model("m").expect("model present");
    let mut versions: Vec<(&str, u64)> = m
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.stats.requests))
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [(OTHER, 3), ("v0", 1), ("v1", 1)]);
    let keys: Vec<(&str, u64)> = m.ml.iter().map(|(k, s)| (k.as_str(), s.count)).collect();
    assert_eq!(keys, [(OTHER, 3), ("k0", 1), ("k1", 1)]);
    assert_eq!(v.ingest.overflowed, 3, "events whose version was folded");
}

#[test]
fn route_and_version_rates_are_not_understated_by_their_wider_slots() {
    let mut s = Store::new(StoreConfig::default());
    // Two minutes of 10 req/s: 7 on version a via /x, 3 on version b via /y.
    for sec in 0..120 {
        let t = T0 + sec * 1_000_000;
        let batch = (0..10)
            .map(|i| {
                let (v, route) = if i < 7 { ("a", "/x") } else { ("b", "/y") };
                let mut e = ev("m", route, t, 200, 1_000);
                e["version"] = json!(v);
                e
            })
            .collect();
        apply(&mut s, batch, t);
        // Between two edges of the routes' 10-s slots, where they hold the least.
        if sec == 114 {
            let v = s.view(t, BrokerView::default());
            let m = v.model("m").expect("model present");
            close(Some(m.stats.qps), 10.0, "model qps");
            let shares: f64 = m.versions.iter().filter_map(|v| v.share).sum();
            close(Some(shares), 1.0, "shares add up");
            for (version, qps) in [("a", 7.0), ("b", 3.0)] {
                let got = m.versions.iter().find(|x| x.version == version);
                close(got.map(|x| x.stats.qps), qps, "version qps");
            }
            let routes: f64 = m.routes.iter().map(|r| r.stats.qps).sum();
            close(Some(routes), 10.0, "routes' qps add up to the model's");
        }
    }
}

#[test]
fn a_model_shows_only_the_sizes_its_events_carry() {
    let mut s = Store::new(StoreConfig::default());
    let mut only_resp = ev("resp-only", "/r", T0, 200, 1_000);
    only_resp["resp_bytes"] = json!(2_000);
    apply(
        &mut s,
        vec![ev("plain", "/r", T0, 200, 1_000), only_resp],
        T0,
    );
    let v = s.view(T0 + 1_000_000, BrokerView::default());
    let plain = v.model("plain").expect("plain");
    assert!(plain.sizes.is_empty(), "{:?}", plain.sizes);
    let resp = v.model("resp-only").expect("resp-only");
    let names: Vec<&str> = resp.sizes.keys().map(String::as_str).collect();
    assert_eq!(names, ["resp_bytes"]);
    close(resp.sizes["resp_bytes"].p50, 2_000.0, "resp p50");
}

#[test]
fn a_batch_counts_as_its_events_one_by_one_whatever_names_repeat() {
    // The store reuses where the previous event of a batch found its instance, version
    // and `ml` keys: events that change them, in any order, must count as if each came
    // alone.
    let mut x = 7u64;
    let mut next = move |n: u64| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (x >> 33) % n
    };
    let keys = ["tokens_in", "tokens_out", "queue_us", "batch_size", "score"];
    let events: Vec<Value> = (0..400)
        .map(|i| {
            let mut e = ev(
                "m",
                &format!("/r{}", next(3)),
                T0 - 5_000_000 + i * 10_000,
                200,
                1_000 + next(50_000),
            );
            e["instance"] = json!(format!("i-{}", next(3)));
            if next(4) > 0 {
                e["version"] = json!(format!("v{}", next(2)));
            }
            let mut ml = serde_json::Map::new();
            for _ in 0..next(5) {
                ml.insert(keys[next(5) as usize].to_owned(), json!(next(1000)));
            }
            e["ml"] = Value::Object(ml);
            if next(2) == 0 {
                e["req_bytes"] = json!(next(10_000));
            }
            e
        })
        .collect();
    let (mut together, mut alone) = (
        Store::new(StoreConfig::default()),
        Store::new(StoreConfig::default()),
    );
    apply(&mut together, events.clone(), T0);
    for e in events {
        apply(&mut alone, vec![e], T0);
    }
    let view = |s: &mut Store| {
        s.view(T0 + 1_000_000, BrokerView::default())
            .model("m")
            .cloned()
            .expect("m")
    };
    let (a, b) = (view(&mut together), view(&mut alone));
    assert_eq!(a.instances.len(), 3);
    assert!(a.versions.len() == 2 && a.ml.len() == 5 && a.sizes.len() == 1);
    assert_eq!(a.instances, b.instances);
    assert_eq!(a.versions, b.versions);
    assert_eq!(a.ml, b.ml);
    assert_eq!(a.sizes, b.sizes);
    assert_eq!(a.stats, b.stats);
}

#[test]
fn after_the_clock_steps_back_the_window_holds_only_what_came_since() {
    let mut s = Store::new(StoreConfig::default());
    let ahead = T0 + 3_600_000_000;
    let before: Vec<Value> = (0..100)
        .map(|i| ev("m", "/a", ahead - i * 100_000, 200, 1000))
        .collect();
    apply(&mut s, before, ahead);
    assert_eq!(stats(&mut s, "m", ahead).requests, 100);
    // The clock is set back an hour; ten requests come in the minute that follows.
    let after: Vec<Value> = (0..10)
        .map(|i| ev("m", "/a", T0 - i * 1_000_000, 500, 2000))
        .collect();
    apply(&mut s, after, T0);
    let v = s.view(T0, BrokerView::default());
    let m = v.model("m").expect("model");
    assert_eq!(m.stats.requests, 10, "{:?}", m.stats);
    assert_eq!(m.stats.errors, 10, "only the new ones: {:?}", m.stats);
    let route = m.routes.iter().find(|r| r.name == "/a").expect("the route");
    assert_eq!(route.stats.requests, 10, "the route's window too");
    let series: u64 = m.series.iter().map(|p| p.requests).sum();
    assert_eq!(series, 10, "the five-minute series holds the new seconds");
    // The requests from before the step are in the history, not lost.
    let day = modelmon::store::history::Range::parse("24h").expect("valid");
    let sum = v
        .history
        .summary("m", &day, ahead / 1000 + 1000)
        .expect("history");
    assert_eq!(sum.requests, 110);
}

#[test]
fn huge_measures_and_sizes_in_one_second_give_finite_figures() {
    let mut s = Store::new(StoreConfig::default());
    // Finite and valid, but their thousandths pass u64: two of them used to overflow
    // the second's sum (a panic in a debug build, a wrapped figure in a release one).
    let events: Vec<Value> = (0..2)
        .map(|_| {
            let mut e = ev("m", "/a", T0, 200, 1000);
            e["ml"] = json!({"x": 1e300});
            e["resp_bytes"] = json!(u64::MAX);
            e
        })
        .collect();
    apply(&mut s, events, T0);
    let v = s.view(T0, BrokerView::default());
    let m = v.model("m").expect("model");
    for (what, st) in [("ml x", &m.ml["x"]), ("resp_bytes", &m.sizes["resp_bytes"])] {
        assert_eq!(st.count, 2, "{what}: {st:?}");
        let mean = st.mean.unwrap_or_else(|| panic!("{what}: a mean"));
        assert!(mean.is_finite() && mean > 1e15, "{what}: {st:?}");
        assert!(st.sum.is_finite() && st.sum >= mean, "{what}: {st:?}");
    }
}

#[test]
fn a_request_counts_in_the_second_it_ended_however_long_it_took() {
    let mut s = Store::new(StoreConfig::default());
    // A hung upstream: the 504 comes 90 s after the request started, and is published
    // only then. By its start it would be older than the window on arrival.
    let hung = 90_000_000;
    apply(&mut s, vec![ev("m", "/a", T0, 504, hung)], T0 + hung as i64);
    let v = s.view(T0 + hung as i64, BrokerView::default());
    let m = v.model("m").expect("model");
    assert_eq!(v.ingest.late, 0, "not late: it just ended");
    assert_eq!((m.stats.requests, m.stats.errors), (1, 1), "{:?}", m.stats);
    close(m.stats.p95_ms, 90_000.0, "p95 of the hung request");
    let route = m.routes.first().expect("route /a");
    assert_eq!(route.stats.errors, 1, "in the route's window too");
    let end_sec = (T0 + hung as i64) / 1_000_000;
    let point = m.series.iter().find(|p| p.sec == end_sec).expect("series");
    assert_eq!((point.requests, point.errors), (1, 1), "in its end second");
    assert_eq!(m.last_seen_ms_ago, Some(0), "heard of when it ended");
}

#[test]
fn answers_that_take_30_s_show_their_full_rate() {
    let mut s = Store::new(StoreConfig::default());
    // One request a second, each answered 30 s after it started: at each second the
    // answer of the request started 30 s earlier arrives.
    let answer = 30_000_000;
    for sec in 30..240 {
        let now = T0 + sec * 1_000_000;
        apply(
            &mut s,
            vec![ev("m", "/a", now - answer, 200, answer as u64)],
            now,
        );
        s.view(now, BrokerView::default());
    }
    let now = T0 + 239_000_000;
    let v = s.view(now, BrokerView::default());
    let m = v.model("m").expect("model");
    close(Some(m.stats.qps), 1.0, "model qps once steady");
    close(
        m.routes.first().map(|r| r.stats.qps),
        1.0,
        "route qps once steady",
    );
    // What the traffic alert reads: every settled second of the last half minute.
    let tail = &m.series[m.series.len() - 32..m.series.len() - 2];
    assert!(tail.iter().all(|p| p.requests == 1), "{tail:?}");
    assert_eq!(v.ingest.late, 0);
}

#[test]
fn a_model_new_when_the_clock_steps_back_keeps_its_real_rate() {
    let mut s = Store::new(StoreConfig::default());
    apply(&mut s, vec![ev("m", "/a", T0, 200, 1000)], T0);
    s.view(T0, BrokerView::default());
    // The monitor's clock is set back 30 s; its publishers' clocks are not, so their
    // events keep coming at one a second, 30 s ahead of it.
    let back = 30_000_000;
    for sec in 1..=10 {
        let ts = T0 + sec * 1_000_000;
        apply(&mut s, vec![ev("m", "/a", ts, 200, 1000)], ts - back);
    }
    let st = stats(&mut s, "m", T0 + 10_000_000 - back);
    assert_eq!(st.requests, 10, "{st:?}");
    close(Some(st.qps), 1.0, "qps after the step back");
}

/// A version and its container, as a daily rollout names them.
fn rollout(day: i64, ts: i64) -> Value {
    let mut e = rich(
        &format!("v{day}"),
        ts,
        200,
        10_000 + day as u64 * 1_000,
        json!({}),
    );
    e["instance"] = json!(format!("c-{day}"));
    e
}

#[test]
fn a_new_version_takes_the_place_of_one_gone_quiet_rather_than_folding_into_other() {
    let cfg = StoreConfig {
        max_versions: 8,
        max_instances: 8,
        ..StoreConfig::default()
    };
    let mut store = Store::new(cfg);
    // One new version a day, in a new container; the old ones quiet.
    for day in 0..12 {
        let t = T0 + day * 86_400_000_000;
        let n = 5 + day;
        let batch = (0..n).map(|i| rollout(day, t + i * 100_000)).collect();
        apply(&mut store, batch, t + n * 100_000);
        let v = store.view(t + 5_000_000, BrokerView::default());
        let m = v.model("m").expect("model present");
        let rows: Vec<(&str, u64)> = m
            .versions
            .iter()
            .map(|v| (v.version.as_str(), v.stats.requests))
            .collect();
        let name = format!("v{day}");
        assert_eq!(rows, [(name.as_str(), n as u64)], "day {day}: its own row");
        let p99 = m.versions[0].stats.p99_ms.expect("a p99");
        let want = (10_000 + day * 1_000) as f64 / 1000.0;
        assert!((p99 - want).abs() <= want * 0.01, "day {day}: {p99} ms");
        let instances: Vec<&str> = m.instances.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(instances, [format!("c-{day}")], "day {day}");
        assert_eq!(v.ingest.overflowed, 0, "day {day}: nothing folded");
    }
}

#[test]
fn a_full_family_whose_versions_are_all_active_still_folds_a_newcomer() {
    let cfg = StoreConfig {
        max_versions: 3,
        ..StoreConfig::default()
    };
    let mut s = Store::new(cfg);
    // v0 every minute for two hours; v1 too, but quiet for the last 59 minutes.
    for minute in 0..120 {
        let t = T0 + minute * 60_000_000;
        let mut batch = vec![rich("v0", t, 200, 1_000, json!({}))];
        if minute <= 61 {
            batch.push(rich("v1", t, 200, 1_000, json!({})));
        }
        apply(&mut s, batch, t);
    }
    let t = T0 + 119 * 60_000_000 + 30_000_000;
    apply(&mut s, vec![rich("v2", t, 200, 1_000, json!({}))], t);
    let v = s.view(t, BrokerView::default());
    let m = v.model("m").expect("model present");
    let mut rows: Vec<(&str, u64)> = m
        .versions
        .iter()
        .map(|v| (v.version.as_str(), v.stats.requests))
        .collect();
    rows.sort_unstable();
    assert_eq!(
        rows,
        [(OTHER, 1), ("v0", 1)],
        "v1 has been quiet under an hour"
    );
    assert_eq!(v.ingest.overflowed, 1);
}
