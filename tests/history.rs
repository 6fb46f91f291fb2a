//! The 24-hour history in process, on a virtual clock: buckets, exact range figures,
//! gaps, resources, and a snapshot round trip.

use std::sync::Arc;
use std::time::Duration;

use modelmon::store::history::{HistoryView, KeyKind, Range, RangeSummary};
use modelmon::store::persist::{self, Snapshot};
use modelmon::store::{BrokerView, IngestTotals, OTHER, Store, StoreConfig};
use modelmon_contract::decode_batch;
use serde_json::{Value, json};

use crate::support::exact_percentile_ms;

/// A "now" on a 5-minute boundary, so ranges reaching into the 5-minute tier start on
/// one of its edges and the exact reference is well defined. Seconds.
const NOW_S: i64 = 1_800_001_500;

struct Sample {
    ts_us: i64,
    status: u16,
    duration_us: u64,
    /// Which of three routes, and independently which of two instances, served it.
    route: u8,
    instance: u8,
}

impl Sample {
    /// The second the store places it in: the one its request ended in, the clock's own
    /// for an end ahead of it (every sample is applied at `NOW_S`).
    fn placed_s(&self) -> i64 {
        (self.ts_us + self.duration_us as i64)
            .div_euclid(1_000_000)
            .min(NOW_S)
    }
}

/// Deterministic log-normal-ish latencies (median ~8 ms, long tail) over `span_s`.
fn samples(n: usize, span_s: i64, seed: u64) -> Vec<Sample> {
    let mut x = seed;
    let mut next = move || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let age_us = (next() * (span_s * 1_000_000) as f64) as i64;
            // Sum of uniforms ~ normal; exp of it ~ log-normal.
            let z = (0..4).map(|_| next()).sum::<f64>() - 2.0;
            let duration_us = (8_000.0 * (z * 1.1).exp()) as u64 + 50;
            let r = next();
            let status = if r < 0.02 {
                503
            } else if r < 0.05 {
                404
            } else {
                200
            };
            Sample {
                ts_us: NOW_S * 1_000_000 - 1 - age_us,
                status,
                duration_us,
                route: (next() * 3.0) as u8,
                instance: (next() * 2.0) as u8,
            }
        })
        .collect()
}

fn apply(store: &mut Store, model: &str, samples: &[Sample], now_us: i64) {
    for chunk in samples.chunks(5000) {
        let events = chunk.iter().map(|s| {
            json!({"ts": s.ts_us, "model": model, "instance": format!("i-{}", s.instance),
                   "method": "POST", "route": format!("/r{}", s.route),
                   "status": s.status, "duration_us": s.duration_us})
        });
        send(store, events.collect(), now_us);
    }
}

/// One batch of good events into the store.
fn send(store: &mut Store, events: Vec<Value>, now_us: i64) {
    let body = serde_json::to_vec(&json!({"v": 1,
        "source": {"kind": "demo", "instance": "t", "pid": 1}, "events": events}))
    .expect("json");
    let d = decode_batch(&body, None, now_us).expect("a batch");
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    store.apply(&d, now_us);
}

fn history_at(store: &mut Store, now_s: i64) -> Arc<HistoryView> {
    store.view(now_s * 1_000_000, BrokerView::default()).history
}
/// What a restart reads: `history` and `ingest` written to a snapshot saved at
/// `saved_ms`, and read back.
fn saved_and_loaded(history: Arc<HistoryView>, ingest: IngestTotals, saved_ms: i64) -> Snapshot {
    let snap = Snapshot {
        format_version: persist::VERSION,
        saved_ms,
        history,
        ingest,
        stream: None,
    };
    persist::decode(&persist::encode(&snap)).expect("round trip")
}

fn within(ours: Option<f64>, exact: f64, what: &str) {
    let ours = ours.unwrap_or_else(|| panic!("{what}: no value"));
    assert!(
        (ours - exact).abs() <= exact * 0.01,
        "{what}: {ours} ms vs exact {exact} ms"
    );
}

/// Checks a range's figures against the samples whose second lies in `[from, to)`.
fn check_range(h: &HistoryView, model: &str, range: &Range, all: &[Sample], what: &str) {
    let sum = h
        .summary(model, range, NOW_S * 1000)
        .expect("model in history");
    check_summary(&sum, range, all.iter(), what);
}

/// Checks figures over `range` against `samples` (those whose second lies inside it).
fn check_summary<'a>(
    sum: &RangeSummary,
    range: &Range,
    samples: impl Iterator<Item = &'a Sample>,
    what: &str,
) {
    let (from, to) = range.bounds_s(NOW_S * 1000);
    let inside: Vec<&Sample> = samples
        .filter(|s| (from..to).contains(&s.placed_s()))
        .collect();
    let d: Vec<u64> = inside.iter().map(|s| s.duration_us).collect();
    assert_eq!(sum.requests, inside.len() as u64, "{what}: requests");
    assert_eq!(
        sum.errors,
        inside.iter().filter(|s| s.status >= 500).count() as u64,
        "{what}: errors"
    );
    assert_eq!(
        sum.client_errors,
        inside.iter().filter(|s| s.status == 404).count() as u64,
        "{what}: 4xx"
    );
    within(
        sum.p50_ms,
        exact_percentile_ms(&d, 0.50),
        &format!("{what} p50"),
    );
    within(
        sum.p95_ms,
        exact_percentile_ms(&d, 0.95),
        &format!("{what} p95"),
    );
    within(
        sum.p99_ms,
        exact_percentile_ms(&d, 0.99),
        &format!("{what} p99"),
    );
    let max = d.iter().max().copied().unwrap_or(0) as f64 / 1000.0;
    assert_eq!(sum.max_ms, Some(max), "{what}: max");
}

#[test]
fn twenty_hours_of_old_events_land_in_their_buckets_with_exact_percentiles() {
    let mut store = Store::new(StoreConfig::default());
    let all = samples(60_000, 20 * 3600, 7);
    let now_us = NOW_S * 1_000_000;
    apply(&mut store, "scorer", &all, now_us);
    let h = history_at(&mut store, NOW_S);

    for (r, what) in [
        ("24h", "24 h"),
        ("6h", "6 h"),
        ("1h", "1 h"),
        ("5m", "5 min"),
    ] {
        let range = Range::parse(r).expect("valid");
        check_range(&h, "scorer", &range, &all, what);
    }
    // An explicit window inside the last hour: exact to its 10-s edges.
    let between = Range::Between {
        from_ms: (NOW_S - 1800) * 1000,
        to_ms: (NOW_S - 600) * 1000,
    };
    check_range(&h, "scorer", &between, &all, "between");

    // Every hour of the hourly series counts exactly the samples of that hour.
    let series = h.series(
        "scorer",
        &Range::parse("24h").expect("valid"),
        NOW_S * 1000,
        24,
    );
    assert!(series.iter().all(|p| p.step_s == 3600));
    for p in &series {
        let from = p.start_ms / 1000;
        let n = all
            .iter()
            .filter(|s| (from..from + 3600).contains(&s.placed_s()))
            .count() as u64;
        assert_eq!(p.requests, n, "hour starting {from}");
    }
    let total: u64 = series.iter().map(|p| p.requests).sum();
    assert_eq!(total, all.len() as u64);
    // Asked between two 10-s marks, the range's rounded ends span just over a day: still
    // hourly points, and every sample in one of them.
    let between_marks = NOW_S * 1000 + 4_321;
    for (r, points, step) in [("24h", 24, 3600), ("6h", 24, 900), ("1h", 360, 10)] {
        let range = Range::parse(r).expect("valid");
        let series = h.series("scorer", &range, between_marks, points);
        assert!(series.iter().all(|p| p.step_s == step), "{r}: {series:?}");
    }

    // Ten-second points inside the last hour count their own bucket.
    let last_hour = h.series(
        "scorer",
        &Range::parse("1h").expect("valid"),
        NOW_S * 1000,
        360,
    );
    assert!(last_hour.iter().all(|p| p.step_s == 10));
    for p in last_hour.iter().step_by(37) {
        let from = p.start_ms / 1000;
        let n = all
            .iter()
            .filter(|s| (from..from + 10).contains(&s.placed_s()))
            .count() as u64;
        assert_eq!(p.requests, n, "bucket starting {from}");
    }
}

/// A store whose every view carries the route and instance rings (as with `--range`).
fn keyed_store() -> Store {
    Store::new(StoreConfig {
        keys_in_views: true,
        ..StoreConfig::default()
    })
}

#[test]
fn routes_and_instances_keep_24_hours_with_exact_counts_and_percentiles() {
    let mut store = keyed_store();
    let all = samples(60_000, 20 * 3600, 9);
    apply(&mut store, "scorer", &all, NOW_S * 1_000_000);
    let h = history_at(&mut store, NOW_S);
    let now_ms = NOW_S * 1000;

    // Route and instance cells are 5 minutes wide; these ranges start on 5-minute edges.
    // Their distributions are per 5 minutes for two hours, then per hour, so percentiles
    // are checked where the range covers whole distributions: 24 h, the last hour, 5 min.
    for (r, percentiles) in [("24h", true), ("6h", false), ("1h", true), ("5m", true)] {
        let range = Range::parse(r).expect("valid");
        let routes = h.key_summaries("scorer", KeyKind::Route, &range, now_ms);
        let instances = h.key_summaries("scorer", KeyKind::Instance, &range, now_ms);
        assert_eq!(routes.len(), 3, "{r}: three routes");
        assert_eq!(instances.len(), 2, "{r}: two instances");
        for k in &routes {
            let i: u8 = k.name.trim_start_matches("/r").parse().expect("route name");
            let mine = all.iter().filter(|s| s.route == i);
            if percentiles {
                check_summary(&k.summary, &range, mine, &format!("{r} route {}", k.name));
            } else {
                let (from, to) = range.bounds_s(now_ms);
                let n = mine.filter(|s| (from..to).contains(&s.placed_s())).count() as u64;
                assert_eq!(k.summary.requests, n, "{r} route {}: requests", k.name);
            }
        }
        for k in &instances {
            let i: u8 = k
                .name
                .trim_start_matches("i-")
                .parse()
                .expect("instance name");
            if percentiles {
                let mine = all.iter().filter(|s| s.instance == i);
                check_summary(
                    &k.summary,
                    &range,
                    mine,
                    &format!("{r} instance {}", k.name),
                );
            }
        }
        let model = h.summary("scorer", &range, now_ms).expect("model");
        let by_route: u64 = routes.iter().map(|k| k.summary.requests).sum();
        let by_instance: u64 = instances.iter().map(|k| k.summary.requests).sum();
        assert_eq!(
            (by_route, by_instance),
            (model.requests, model.requests),
            "{r}"
        );
    }

    // Ten minutes later the routes still hold it all, and a snapshot keeps it.
    let later = NOW_S + 600;
    let h = history_at(&mut store, later);
    let day = Range::parse("24h").expect("valid");
    let routes = h.key_summaries("scorer", KeyKind::Route, &day, later * 1000);
    assert_eq!(
        routes.iter().map(|k| k.summary.requests).sum::<u64>(),
        all.len() as u64
    );
    let back = saved_and_loaded(Arc::clone(&h), IngestTotals::default(), later * 1000);
    assert_eq!(
        back.history
            .key_summaries("scorer", KeyKind::Route, &day, later * 1000),
        routes
    );

    // A restarted store continues them.
    let mut next = keyed_store();
    next.restore(&back.history, later * 1_000_000);
    apply(&mut next, "scorer", &samples(100, 60, 1), later * 1_000_000);
    let h = history_at(&mut next, later + 120);
    let routes = h.key_summaries("scorer", KeyKind::Route, &day, (later + 120) * 1000);
    assert_eq!(
        routes.iter().map(|k| k.summary.requests).sum::<u64>(),
        all.len() as u64 + 100
    );
}

#[test]
fn by_default_only_snapshots_carry_route_and_instance_rings() {
    let mut store = Store::new(StoreConfig::default());
    apply(&mut store, "m", &samples(1000, 3600, 4), NOW_S * 1_000_000);
    assert!(history_at(&mut store, NOW_S).key_heap_bytes("m").is_none());
    let full = store.fresh_history(NOW_S * 1_000_000);
    let day = Range::parse("24h").expect("valid");
    let routes = full.key_summaries("m", KeyKind::Route, &day, NOW_S * 1000);
    assert_eq!(routes.len(), 3, "the snapshot has them");
    assert!(
        store.history().key_heap_bytes("m").is_none(),
        "the views still do not"
    );
}

#[test]
fn route_history_past_its_memory_budget_loses_its_oldest_hours_first() {
    let cfg = StoreConfig {
        key_history_bytes: 64 << 10,
        keys_in_views: true,
        ..StoreConfig::default()
    };
    let mut store = Store::new(cfg);
    let all = samples(60_000, 20 * 3600, 2);
    apply(&mut store, "m", &all, NOW_S * 1_000_000);
    let h = history_at(&mut store, NOW_S);
    let day = Range::parse("24h").expect("valid");
    let now_ms = NOW_S * 1000;
    let kept: u64 = h
        .key_summaries("m", KeyKind::Route, &day, now_ms)
        .iter()
        .map(|k| k.summary.requests)
        .sum();
    assert!(kept > 0 && kept < all.len() as u64, "kept {kept}");
    let hour = Range::parse("1h").expect("valid");
    let last_hour: u64 = h
        .key_summaries("m", KeyKind::Route, &hour, now_ms)
        .iter()
        .map(|k| k.summary.requests)
        .sum();
    let model_hour = h.summary("m", &hour, now_ms).map(|s| s.requests);
    assert_eq!(
        Some(last_hour),
        model_hour,
        "the newest hours are kept whole"
    );
    assert_eq!(
        h.summary("m", &day, now_ms).map(|s| s.requests),
        Some(all.len() as u64),
        "the model's own ring is not affected"
    );
    let bytes = h.key_heap_bytes("m").expect("routes");
    assert!(bytes <= 96 << 10, "{bytes} bytes kept for a 64 KiB budget");
}

#[test]
fn the_rings_keep_24_hours_and_no_more() {
    let mut store = Store::new(StoreConfig::default());
    let now_us = NOW_S * 1_000_000;
    let mut old = samples(500, 3600, 3);
    for s in &mut old {
        s.ts_us -= 22 * 3_600_000_000; // 22 to 23 hours ago
    }
    apply(&mut store, "m", &old, now_us);
    apply(&mut store, "m", &samples(100, 600, 4), now_us);
    let day = Range::parse("24h").expect("valid");
    let h = history_at(&mut store, NOW_S);
    assert_eq!(
        h.summary("m", &day, NOW_S * 1000).map(|s| s.requests),
        Some(600)
    );

    // Two hours later the old events are more than 24 h old.
    let later = NOW_S + 2 * 3600;
    let h = history_at(&mut store, later);
    let sum = h.summary("m", &day, later * 1000).expect("present");
    assert_eq!(sum.requests, 100, "events older than 24 h are not counted");
    let hours = h.hours_of("m").expect("present");
    assert!(
        hours.iter().all(|start| start + 3600 > later - 24 * 3600),
        "hours past 24 h are freed"
    );
}

#[test]
fn history_continues_after_a_restore_with_a_gap_for_the_time_down() {
    let mut first = Store::new(StoreConfig::default());
    let t1 = NOW_S - 3000;
    // The first run: up from t1 - 120 s to t1, traffic throughout.
    first.view((t1 - 120) * 1_000_000, BrokerView::default());
    let mut before = samples(2000, 120, 11);
    for s in &mut before {
        s.ts_us -= 3000 * 1_000_000;
    }
    apply(&mut first, "m", &before, t1 * 1_000_000);
    let loaded = saved_and_loaded(
        first.fresh_history(t1 * 1_000_000),
        first.ingest_totals(),
        t1 * 1000,
    );
    assert_eq!(loaded.ingest, first.ingest_totals());

    // Down for 20 minutes, then a second run with new traffic.
    let mut second = Store::new(StoreConfig::default());
    let t2 = t1 + 1200;
    second.restore(&loaded.history, t2 * 1_000_000);
    second.view(t2 * 1_000_000, BrokerView::default());
    let mut after = samples(1000, 60, 12);
    for s in &mut after {
        s.ts_us -= (NOW_S - t2 - 60) * 1_000_000;
    }
    apply(&mut second, "m", &after, (t2 + 60) * 1_000_000);
    let h = history_at(&mut second, t2 + 70);

    let range = Range::Between {
        from_ms: (t1 - 120) * 1000,
        to_ms: (t2 + 70) * 1000,
    };
    let sum = h.summary("m", &range, 0).expect("present");
    assert_eq!(
        sum.requests, 3000,
        "history from before the restart is kept"
    );
    let points = h.series("m", &range, 0, 1000);
    let down: Vec<_> = points
        .iter()
        .filter(|p| p.start_ms / 1000 >= t1 + 10 && p.start_ms / 1000 + 10 <= t2)
        .collect();
    assert!(!down.is_empty());
    assert!(
        down.iter().all(|p| !p.covered && p.requests == 0),
        "the time down is a gap, not zeros"
    );
    assert!(
        points
            .iter()
            .filter(|p| p.start_ms / 1000 >= t2 + 10 && p.start_ms / 1000 < t2 + 60)
            .all(|p| p.covered),
        "the second run is covered"
    );
    // QPS divides by the time the monitor was up, not by the gap.
    assert!(sum.covered_s < 400, "covered {}", sum.covered_s);
}

#[test]
fn resources_are_kept_per_bucket_and_summed_over_instances() {
    let mut store = Store::new(StoreConfig::default());
    let t = NOW_S - 100;
    store.record_resources("m", "a", t * 1_000_000, Some(50.0), Some(1 << 30));
    store.record_resources("m", "b", t * 1_000_000 + 1, Some(25.0), Some(1 << 29));
    apply(&mut store, "m", &samples(10, 5, 1), NOW_S * 1_000_000);
    let h = history_at(&mut store, NOW_S);
    let points = h.series("m", &Range::parse("5m").expect("valid"), NOW_S * 1000, 30);
    let at = points
        .iter()
        .find(|p| p.start_ms / 1000 == t - t.rem_euclid(10))
        .expect("the bucket");
    assert_eq!(at.cpu_percent, Some(75.0));
    assert_eq!(at.mem_bytes, Some((1 << 30) + (1 << 29)));
    assert!(
        points
            .iter()
            .filter(|p| p.start_ms != at.start_ms)
            .all(|p| p.cpu_percent.is_none()),
        "no sample: unknown, not 0"
    );
}

#[test]
fn snapshots_round_trip_every_figure() {
    let mut store = Store::new(StoreConfig::default());
    let all = samples(20_000, 20 * 3600, 5);
    apply(&mut store, "a", &all, NOW_S * 1_000_000);
    apply(&mut store, "b", &all[..500], NOW_S * 1_000_000);
    let h = store.fresh_history(NOW_S * 1_000_000);
    let back = saved_and_loaded(Arc::clone(&h), IngestTotals::default(), NOW_S * 1000);
    assert_eq!(*back.history, *h, "identical rings after a round trip");
    let r = Range::Last(Duration::from_secs(24 * 3600));
    assert_eq!(
        back.history.summary("a", &r, NOW_S * 1000),
        h.summary("a", &r, NOW_S * 1000)
    );
    assert_eq!(back.history.models(), vec!["a", "b"]);
}

/// Streamed answers of two versions with `tokens_out`, one every 2 s over `span_s`
/// ending at `end_s`: (ts µs, version, ttfb µs, duration µs, tokens).
fn llm_answers(span_s: i64, end_s: i64) -> Vec<(i64, &'static str, u64, u64, u64)> {
    (0..span_s / 2)
        .map(|i| {
            let ts = (end_s - span_s + 2 * i) * 1_000_000;
            let canary = i % 4 == 0;
            let ttfb = 200_000 + (i as u64 % 50) * 4_000 + if canary { 300_000 } else { 0 };
            let tokens = 40 + i as u64 % 200;
            // 25 ms a token after the first byte.
            let duration = ttfb + tokens * 25_000;
            let version = if canary { "2.0" } else { "1.0" };
            (ts, version, ttfb, duration, tokens)
        })
        .collect()
}

fn apply_llm(store: &mut Store, answers: &[(i64, &str, u64, u64, u64)], now_us: i64) {
    for chunk in answers.chunks(2000) {
        let events = chunk.iter().map(|&(ts, version, ttfb, duration, tokens)| {
            json!({"ts": ts, "model": "llm", "version": version, "instance": "gpu-0",
                   "method": "POST", "route": "/v1/chat/completions", "status": 200,
                   "duration_us": duration, "ttfb_us": ttfb, "ml": {"tokens_out": tokens}})
        });
        send(store, events.collect(), now_us);
    }
}

#[test]
fn versions_measures_and_first_bytes_keep_24_hours_and_survive_a_snapshot() {
    let mut store = keyed_store();
    // Six hours replayed at once (late for the live window), then ten minutes live, the
    // clock moving on so their first bytes leave the live window for the rings too.
    let backlog = llm_answers(6 * 3600, NOW_S - 600);
    apply_llm(&mut store, &backlog, NOW_S * 1_000_000 - 600_000_000);
    let live = llm_answers(600, NOW_S);
    for (i, chunk) in live.chunks(15).enumerate() {
        let now_s = NOW_S - 600 + 30 * (i as i64 + 1);
        apply_llm(&mut store, chunk, now_s * 1_000_000);
        store.view(now_s * 1_000_000, BrokerView::default());
    }
    let later = NOW_S + 120;
    let h = store.fresh_history(later * 1_000_000);
    let all: Vec<_> = backlog.iter().chain(&live).collect();
    let day = Range::parse("24h").expect("valid");
    let now_ms = later * 1000;

    let versions = h.key_summaries("llm", KeyKind::Version, &day, now_ms);
    let names: Vec<(&str, u64)> = versions
        .iter()
        .map(|k| (k.name.as_str(), k.summary.requests))
        .collect();
    let canaries = all.iter().filter(|a| a.1 == "2.0").count() as u64;
    assert_eq!(
        names,
        [("1.0", all.len() as u64 - canaries), ("2.0", canaries)],
        "every answer in its version, busiest first"
    );
    let slow: Vec<u64> = all.iter().filter(|a| a.1 == "2.0").map(|a| a.3).collect();
    within(
        versions[1].summary.p95_ms,
        exact_percentile_ms(&slow, 0.95),
        "canary p95 over 24 h",
    );

    let streams = h.key_summaries("llm", KeyKind::Stream, &day, now_ms);
    let by_name = |n: &str| {
        &streams
            .iter()
            .find(|k| k.name == n)
            .unwrap_or_else(|| panic!("{n} kept"))
            .summary
    };
    let ttfbs: Vec<u64> = all.iter().map(|a| a.2).collect();
    let gens: Vec<u64> = all.iter().map(|a| a.3 - a.2).collect();
    assert_eq!(by_name("ttfb").requests, all.len() as u64);
    within(
        by_name("ttfb").p95_ms,
        exact_percentile_ms(&ttfbs, 0.95),
        "ttfb p95 over 24 h",
    );
    within(
        by_name("generation").p50_ms,
        exact_percentile_ms(&gens, 0.50),
        "generation p50 over 24 h",
    );

    let ml = h.measure_summaries("llm", &day, now_ms);
    let tokens = &ml
        .iter()
        .find(|m| m.name == "tokens_out")
        .expect("tokens_out")
        .stats;
    let sum: u64 = all.iter().map(|a| a.4).sum();
    assert_eq!(tokens.count, all.len() as u64);
    assert!(
        (tokens.sum - sum as f64).abs() <= sum as f64 * 0.01,
        "24-h sum {} vs exact {sum}",
        tokens.sum
    );
    let mut t: Vec<u64> = all.iter().map(|a| a.4).collect();
    t.sort_unstable();
    let p95 = t[(0.95 * t.len() as f64).ceil() as usize - 1] as f64;
    assert!(
        tokens.p95.is_some_and(|v| (v - p95).abs() <= p95 * 0.01),
        "tokens p95 {:?} vs {p95}",
        tokens.p95
    );

    // A snapshot keeps all three, and a restarted store continues them.
    let back = saved_and_loaded(Arc::clone(&h), IngestTotals::default(), now_ms);
    assert_eq!(*back.history, *h, "identical rings after a round trip");
    let mut next = keyed_store();
    next.restore(&back.history, later * 1_000_000);
    apply_llm(
        &mut next,
        &llm_answers(60, later + 60),
        (later + 60) * 1_000_000,
    );
    let h = next.fresh_history((later + 180) * 1_000_000);
    let versions = h.key_summaries("llm", KeyKind::Version, &day, (later + 180) * 1000);
    assert_eq!(
        versions.iter().map(|k| k.summary.requests).sum::<u64>(),
        all.len() as u64 + 30
    );
}

/// Two requests a second over `[from_s, to_s)`, for model `m`.
fn steady(from_s: i64, to_s: i64) -> Vec<Value> {
    (from_s..to_s)
        .flat_map(|s| [s * 1_000_000 + 100_000, s * 1_000_000 + 600_000])
        .map(|ts| {
            json!({"ts": ts, "model": "m", "instance": "pod", "method": "GET",
                   "route": "/", "status": 200, "duration_us": 1000})
        })
        .collect()
}

#[test]
fn a_backlog_replayed_after_a_restart_is_counted_over_its_own_seconds() {
    // The first run is up for the hour before it crashes at `crash`, two requests a
    // second all along.
    let crash = NOW_S - 3000;
    let mut first = Store::new(StoreConfig::default());
    let mut t = crash - 3600;
    first.view(t * 1_000_000, BrokerView::default());
    while t < crash {
        send(&mut first, steady(t, t + 60), (t + 60) * 1_000_000);
        t += 60;
        first.view(t * 1_000_000, BrokerView::default());
    }
    let loaded = saved_and_loaded(
        first.fresh_history(crash * 1_000_000),
        first.ingest_totals(),
        crash * 1000,
    );

    // Restarted 50 minutes later, the monitor reads the durable queue's backlog: the
    // same two requests a second, for the time it was down and since.
    let restart = crash + 3000;
    let mut second = Store::new(StoreConfig::default());
    second.restore(&loaded.history, restart * 1_000_000);
    second.view(restart * 1_000_000, BrokerView::default());
    let now = restart + 60;
    for chunk in steady(crash, now).chunks(5000) {
        send(&mut second, chunk.to_vec(), now * 1_000_000);
    }
    let h = history_at(&mut second, now);

    let hour = Range::parse("1h").expect("valid");
    let sum = h.summary("m", &hour, now * 1000).expect("present");
    assert_eq!(sum.requests, 7200, "the hour holds the backlog");
    assert!(
        (sum.qps - 2.0).abs() < 0.05,
        "2 req/s all along, not {} (over {} s)",
        sum.qps,
        sum.covered_s
    );
    // Each point of the series is over its own seconds too.
    for p in h.series("m", &hour, now * 1000, 60) {
        let rate = p.requests as f64 / p.covered_s as f64;
        assert!((rate - 2.0).abs() < 0.05, "{p:?}");
    }
}

#[test]
fn a_model_gone_for_a_day_leaves_the_history_with_its_routes() {
    let t0 = NOW_S - 30 * 3600;
    let one = |model: &str, ts_s: i64| {
        json!({"ts": ts_s * 1_000_000, "model": model, "instance": "pod", "method": "GET",
               "route": "/", "status": 200, "duration_us": 1000})
    };
    // `ghost` is seen once; `real` 23 hours later, when the snapshot is saved.
    let mut first = Store::new(StoreConfig::default());
    send(&mut first, vec![one("ghost", t0)], t0 * 1_000_000);
    let saved_s = t0 + 23 * 3600;
    send(
        &mut first,
        vec![one("real", saved_s - 5)],
        saved_s * 1_000_000,
    );
    let loaded = saved_and_loaded(
        first.fresh_history(saved_s * 1_000_000),
        first.ingest_totals(),
        saved_s * 1000,
    );
    assert_eq!(loaded.history.models(), ["ghost", "real"]);

    // Restarted two hours later, `ghost` is more than a day old: only `real` is left,
    // and it takes the one place there is.
    let now = saved_s + 2 * 3600;
    let mut second = Store::new(StoreConfig {
        max_models: 1,
        ..StoreConfig::default()
    });
    second.restore(&loaded.history, now * 1_000_000);
    let h = second.fresh_history(now * 1_000_000);
    assert_eq!(h.models(), ["real"], "{h:?}");
    assert_eq!(
        h.key_heap_bytes("ghost"),
        None,
        "no routes of `ghost` either"
    );
    let day = Range::parse("24h").expect("valid");
    assert_eq!(
        h.summary("real", &day, now * 1000).map(|s| s.requests),
        Some(1)
    );
}

#[test]
fn a_restart_keeps_every_named_version_of_a_model_at_its_cap() {
    // Nine versions for a cap of 8: seven named ones and `(other)` for the last two.
    // The newest named one sorts last, after `(other)`.
    let versions: Vec<String> = (1..=9).map(|d| format!("2026.11.0{d}")).collect();
    let t = NOW_S - 600;
    let events = versions
        .iter()
        .map(|v| {
            json!({"ts": t * 1_000_000, "model": "m", "version": v, "instance": "pod",
                   "method": "GET", "route": "/", "status": 200, "duration_us": 1000})
        })
        .collect();
    let mut first = Store::new(StoreConfig::default());
    send(&mut first, events, t * 1_000_000);
    let loaded = saved_and_loaded(
        first.fresh_history(NOW_S * 1_000_000),
        first.ingest_totals(),
        NOW_S * 1000,
    );
    let day = Range::parse("24h").expect("valid");
    let before = loaded
        .history
        .key_summaries("m", KeyKind::Version, &day, NOW_S * 1000);
    assert_eq!(before.len(), 8, "seven named versions and (other)");

    let mut second = Store::new(StoreConfig::default());
    second.restore(&loaded.history, NOW_S * 1_000_000);
    let newest = &versions[6];
    let again = json!({"ts": NOW_S * 1_000_000, "model": "m", "version": newest,
                       "instance": "pod", "method": "GET", "route": "/", "status": 200,
                       "duration_us": 1000});
    send(&mut second, vec![again], (NOW_S + 1) * 1_000_000);
    let v = second.view((NOW_S + 1) * 1_000_000, BrokerView::default());
    let live: Vec<&str> = v
        .model("m")
        .expect("m")
        .versions
        .iter()
        .map(|v| v.version.as_str())
        .collect();
    assert_eq!(live, [newest.as_str()], "its new request in its own row");

    let h = second.fresh_history((NOW_S + 1) * 1_000_000);
    let after = h.key_summaries("m", KeyKind::Version, &day, (NOW_S + 1) * 1000);
    let count = |list: &[modelmon::store::history::KeySummary], name: &str| {
        list.iter()
            .find(|k| k.name == name)
            .map(|k| k.summary.requests)
    };
    for name in &versions[..7] {
        let more = u64::from(name == newest);
        assert_eq!(
            count(&after, name),
            count(&before, name).map(|n| n + more),
            "{name} kept with its history: {after:?}"
        );
    }
    assert_eq!(count(&after, modelmon::store::OTHER), Some(2));
}

#[test]
fn a_version_that_gives_its_place_leaves_its_day_under_other() {
    let mut store = Store::new(StoreConfig::default());
    let start = NOW_S - 23 * 3600;
    let count = |i: i64| 20 + i as u64;
    // A version every two hours, the previous one quiet from then: twelve through a
    // cap of eight (seven named and `(other)`).
    for i in 0..12 {
        let t = start + i * 7200;
        let events = (0..count(i) as i64)
            .map(|k| {
                json!({"ts": (t + k) * 1_000_000, "model": "m", "instance": "i-1",
                       "method": "POST", "route": "/r", "version": format!("v{i}"),
                       "status": 200, "duration_us": 1_000})
            })
            .collect();
        send(&mut store, events, (t + count(i) as i64) * 1_000_000);
        store.view((t + 60) * 1_000_000, BrokerView::default());
    }
    let h = store.fresh_history(NOW_S * 1_000_000);
    let day = Range::parse("24h").expect("valid");
    let mut got: Vec<(String, u64)> = h
        .key_summaries("m", KeyKind::Version, &day, NOW_S * 1000)
        .into_iter()
        .map(|k| (k.name, k.summary.requests))
        .collect();
    got.sort_unstable();
    // The five oldest gave their places, each to the next one.
    let mut want: Vec<(String, u64)> = (5..12).map(|i| (format!("v{i}"), count(i))).collect();
    want.push((OTHER.to_owned(), (0..5).map(count).sum()));
    want.sort_unstable();
    assert_eq!(got, want);
    let model = h.summary("m", &day, NOW_S * 1000).expect("model");
    assert_eq!(
        model.requests,
        got.iter().map(|(_, n)| n).sum::<u64>(),
        "the versions still add up to the model"
    );
}
