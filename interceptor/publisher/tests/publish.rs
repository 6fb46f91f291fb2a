//! The publisher against the real RabbitMQ on 127.0.0.1:5672.

#[macro_use]
mod support;

use std::time::{Duration, Instant};

use modelmon_contract::{CONTENT_TYPE, MESSAGE_TYPE, SourceKind, decode_batch};
use modelmon_publisher::{BrokerState, Config, FailureKind, Publisher};
use support::private_node::PrivateNode;
use support::{Sink, event, now_us, unique};

const PATIENCE: Duration = Duration::from_secs(15);

/// Flushes off the async runtime (flush blocks); whether everything was confirmed.
async fn flushed(publisher: &Publisher) -> bool {
    let p = publisher.clone();
    tokio::task::spawn_blocking(move || p.flush(PATIENCE))
        .await
        .expect("join")
}

async fn shut_down(publisher: Publisher) {
    tokio::task::spawn_blocking(move || publisher.shutdown(Duration::from_secs(5)))
        .await
        .expect("join");
}

/// Shuts the publisher down, then stops its private node (both block, off the runtime).
async fn shut_down_on(publisher: Publisher, node: PrivateNode) {
    shut_down(publisher).await;
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .expect("join");
}

fn config(instance: &str) -> Config {
    Config {
        amqp_url: support::URL.into(),
        source_kind: SourceKind::Proxy,
        instance: instance.into(),
        app_id: "modelmon-publisher-test/0".into(),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_events_arrive_as_a_contract_batch_with_the_right_properties() {
    require!(Rabbitmq);
    let sink = Sink::bind("events.#").await;
    let instance = unique("pub-props");
    let model = unique("iris");
    let publisher = Publisher::start(Config {
        persistent: true,
        ..config(&instance)
    });
    for status in [200, 404, 500] {
        publisher.record(event(&model, status));
    }
    assert!(flushed(&publisher).await);

    let got = sink.collect(&instance, 1, PATIENCE).await;
    assert_eq!(got.len(), 1, "one model, one flush: one message");
    let m = &got[0];
    assert_eq!(m.routing_key, format!("events.{model}"));
    assert_eq!(
        m.properties
            .content_type()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some(CONTENT_TYPE)
    );
    assert_eq!(
        m.properties
            .kind()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some(MESSAGE_TYPE)
    );
    assert_eq!(
        m.properties
            .app_id()
            .as_ref()
            .map(lapin::types::ShortString::as_str),
        Some("modelmon-publisher-test/0")
    );
    assert_eq!(*m.properties.delivery_mode(), Some(2));

    let batch = decode_batch(&m.body, Some(&model), now_us()).expect("the monitor accepts it");
    assert!(batch.rejects.is_empty(), "{:?}", batch.rejects);
    assert_eq!(batch.source.kind, SourceKind::Proxy);
    assert_eq!(batch.source.instance, instance);
    assert_eq!(batch.source.pid, std::process::id());
    assert_eq!(batch.dropped, 0);
    let statuses: Vec<u16> = batch.events.iter().map(|e| e.status).collect();
    assert_eq!(statuses, vec![200, 404, 500]);
    assert_eq!(batch.events[0].ml, vec![("tokens_out".into(), 7.0)]);

    let s = publisher.stats();
    assert_eq!(
        (
            s.recorded,
            s.published_events,
            s.published_batches,
            s.dropped
        ),
        (3, 3, 1, 0)
    );
    assert_eq!(s.state, BrokerState::Connected);
    shut_down(publisher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_models_make_one_message_per_model_per_batch() {
    require!(Rabbitmq);
    let sink = Sink::bind("events.#").await;
    let instance = unique("pub-models");
    let models: Vec<String> = (0..4).map(|i| unique(&format!("model{i}"))).collect();
    // A long delay so that only the flush sends: everything lands in one batch.
    let publisher = Publisher::start(Config {
        max_batch_delay: Duration::from_secs(60),
        ..config(&instance)
    });
    for round in 0..5 {
        for m in &models {
            let mut e = event(m, 200);
            e.duration_us = round;
            e.ttfb_us = None;
            publisher.record(e);
        }
    }
    assert!(flushed(&publisher).await);

    let mut got = sink.collect(&instance, 4, PATIENCE).await;
    got.extend(sink.drain(&instance, Duration::from_millis(300)).await);
    assert_eq!(got.len(), 4);
    let mut keys: Vec<&str> = got.iter().map(|m| m.routing_key.as_str()).collect();
    keys.sort_unstable();
    let mut want: Vec<String> = models.iter().map(|m| format!("events.{m}")).collect();
    want.sort();
    assert_eq!(keys, want);
    for m in &got {
        let model = m.routing_key.strip_prefix("events.").expect("prefix");
        let batch = decode_batch(&m.body, Some(model), now_us()).expect("decodes");
        assert!(batch.rejects.is_empty());
        let order: Vec<u64> = batch.events.iter().map(|e| e.duration_us).collect();
        assert_eq!(
            order,
            vec![0, 1, 2, 3, 4],
            "events keep their recording order"
        );
    }
    shut_down(publisher).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_batches_are_split_and_non_finite_ml_does_not_poison_them() {
    require!(Rabbitmq);
    let sink = Sink::bind("events.#").await;
    let instance = unique("pub-split");
    let model = unique("split");
    let publisher = Publisher::start(Config {
        max_batch_events: 10,
        ..config(&instance)
    });
    for i in 0..25 {
        let mut e = event(&model, 200);
        if i == 3 {
            e.ml.push(("bad".into(), f64::NAN));
        }
        publisher.record(e);
    }
    assert!(flushed(&publisher).await);
    let mut got = sink.collect(&instance, 3, PATIENCE).await;
    got.extend(sink.drain(&instance, Duration::from_millis(300)).await);
    let mut total = 0;
    for m in &got {
        let batch = decode_batch(&m.body, Some(&model), now_us()).expect("decodes");
        assert!(batch.rejects.is_empty());
        assert!(batch.events.len() <= 10);
        total += batch.events.len();
    }
    assert_eq!(total, 25);
    let s = publisher.stats();
    assert_eq!((s.published_events, s.sanitised, s.dropped), (25, 1, 0));
    shut_down(publisher).await;
}

#[test]
fn an_unreachable_broker_never_blocks_record_and_drops_are_counted() {
    let publisher = Publisher::start(Config {
        amqp_url: "amqp://127.0.0.1:1/%2f".into(),
        buffer_events: 100,
        max_batch_events: 10,
        ..config(&unique("pub-down"))
    });
    for _ in 0..10_000 {
        publisher.record(event("iris", 200));
    }
    // Events with a name the monitor would reject are dropped at once.
    publisher.record(event("", 200));
    let s = publisher.stats();
    assert_eq!(s.recorded, 10_001);
    // At most the buffer plus one batch can be held while the broker is away.
    assert!(s.dropped >= 10_001 - 110, "dropped {}", s.dropped);
    assert_eq!(s.published_events, 0);
    assert!(
        !publisher.flush(Duration::from_millis(300)),
        "nothing can be delivered"
    );

    let s = publisher.stats();
    assert!(
        matches!(s.state, BrokerState::Down | BrokerState::Connecting),
        "{:?}",
        s.state
    );
    assert!(s.last_error.is_some(), "the refusal is reported");

    publisher.shutdown(Duration::from_millis(200));
    let s = publisher.stats();
    assert_eq!(
        s.dropped, s.recorded,
        "at shutdown every undelivered event is counted"
    );
    assert_eq!(s.state, BrokerState::Down);
    publisher.record(event("iris", 200));
    assert_eq!(publisher.stats().dropped, 10_002);
}

/// Flushes with a timeout while the broker is away, as an app's periodic flush does: each
/// flush takes what is queued, and what the buffer cannot hold is dropped, not kept.
#[test]
fn flushes_during_an_outage_keep_the_publisher_within_its_buffer() {
    const BUFFER: u64 = 100;
    const BATCH: u64 = 10;
    let publisher = Publisher::start(Config {
        amqp_url: "amqp://127.0.0.1:1/%2f".into(),
        buffer_events: BUFFER as usize,
        max_batch_events: BATCH as usize,
        ..config(&unique("pub-down-flush"))
    });
    for _ in 0..20 {
        for _ in 0..100 {
            publisher.record(event("iris", 200));
        }
        assert!(!publisher.flush(Duration::from_millis(50)));
    }
    let s = publisher.stats();
    assert_eq!(s.recorded, 2000);
    assert_eq!(s.published_events, 0);
    // Waiting at most: the buffer and a batch taken from it, plus the queue in front of
    // them (as long as the buffer) if the last flush had not reached the thread yet.
    let waiting = s.recorded - s.dropped;
    assert!(
        waiting <= 2 * BUFFER + BATCH,
        "{waiting} events kept for a broker that is away: {s:?}"
    );
    publisher.shutdown(Duration::from_millis(100));
    let s = publisher.stats();
    assert_eq!(s.dropped, s.recorded);
}

/// `app_id` goes out as an AMQP short string (255 bytes at most): one longer is a setting
/// no connection can carry, reported in the stats, not a panic of the publishing thread.
#[test]
fn an_app_id_too_long_for_amqp_shows_in_stats() {
    let publisher = Publisher::start(Config {
        app_id: "modelmon-é".repeat(30),
        ..config(&unique("pub-appid"))
    });
    publisher.record(event("iris", 200));
    let end = Instant::now() + PATIENCE;
    while publisher.stats().last_error.is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = publisher.stats();
    let error = s.last_error.clone().unwrap_or_default();
    assert!(error.contains("app_id"), "{s:?}");
    assert_ne!(s.state, BrokerState::Connected);
    publisher.shutdown(Duration::from_millis(100));
    let s = publisher.stats();
    assert_eq!(
        (s.recorded, s.dropped, s.state),
        (1, 1, BrokerState::Down),
        "the thread was alive to count it at shutdown"
    );
}

/// A name within 128 characters can still be too long in bytes for its routing key
/// (`events.` and 83 × 3 bytes is over AMQP's 255): such an event is dropped and counted,
/// and the publisher goes on publishing. One byte shorter is fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_name_too_long_in_bytes_is_dropped_and_publishing_goes_on() {
    require!(Rabbitmq);
    let sink = Sink::bind("events.#").await;
    let instance = unique("pub-longname");
    let model = unique("iris");
    let longest = "模".repeat(82);
    let publisher = Publisher::start(config(&instance));
    publisher.record(event(&"模".repeat(83), 200));
    for _ in 0..10 {
        publisher.record(event(&model, 200));
    }
    publisher.record(event(&longest, 200));
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());
    publisher.record(event(&model, 201));
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());

    let s = publisher.stats();
    assert_eq!(
        (s.recorded, s.published_events, s.dropped, s.state),
        (13, 12, 1, BrokerState::Connected),
        "{s:?}"
    );
    let mut got = sink.collect(&instance, 3, PATIENCE).await;
    got.extend(sink.drain(&instance, Duration::from_millis(300)).await);
    let (mut statuses, mut reported, mut longest_events) = (Vec::new(), 0, 0);
    for m in &got {
        let routed = m.routing_key.strip_prefix("events.").expect("prefix");
        let b = decode_batch(&m.body, Some(routed), now_us()).expect("decodes");
        assert!(b.rejects.is_empty(), "{:?}", b.rejects);
        reported += b.dropped;
        if routed == longest {
            longest_events += b.events.len();
        } else {
            assert_eq!(routed, model);
            statuses.extend(b.events.iter().map(|e| e.status));
        }
    }
    assert_eq!(statuses.len(), 11);
    assert_eq!(statuses.last(), Some(&201), "events after it are published");
    assert_eq!(longest_events, 1, "a 246-byte name is routed");
    assert_eq!(reported, 1, "the drop is reported");
    shut_down(publisher).await;
}

#[test]
fn a_bad_url_shows_in_stats_instead_of_failing() {
    let publisher = Publisher::start(Config {
        amqp_url: "not a url".into(),
        ..config(&unique("pub-badurl"))
    });
    publisher.record(event("iris", 200));
    let end = Instant::now() + PATIENCE;
    while publisher.stats().last_error.is_none() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    let s = publisher.stats();
    assert!(s.last_error.is_some());
    assert_ne!(s.state, BrokerState::Connected);
    publisher.shutdown(Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_broker_closes_the_connection_and_reports_drops() {
    require!(Rabbitmq, RabbitmqServer);
    let sink = Sink::bind("events.#").await;
    let instance = unique("pub-reconnect");
    let model = unique("reco");
    let publisher = Publisher::start(Config {
        buffer_events: 5,
        max_batch_events: 5,
        ..config(&instance)
    });

    publisher.record(event(&model, 200));
    assert!(flushed(&publisher).await);

    let before = support::connections_with(&instance);
    assert_eq!(
        before.len(),
        1,
        "our connection is listed by name: {before:?}"
    );
    support::close_connection(&before[0]);

    // Wait until the publisher has noticed; then records pile up beyond its buffer.
    let end = Instant::now() + PATIENCE;
    while publisher.stats().state == BrokerState::Connected && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_ne!(
        publisher.stats().state,
        BrokerState::Connected,
        "the close was noticed"
    );
    assert!(publisher.stats().last_error.is_some());
    for _ in 0..50 {
        publisher.record(event(&model, 200));
    }
    let dropped = publisher.stats().dropped;
    assert!(
        dropped > 0,
        "a 5-event buffer cannot hold 50 events while the link is down"
    );

    assert!(flushed(&publisher).await);
    publisher.record(event(&model, 201));
    assert!(flushed(&publisher).await);

    let s = publisher.stats();
    assert_eq!(s.state, BrokerState::Connected);
    assert_eq!(s.dropped, dropped, "nothing else was lost");
    let after = support::connections_with(&instance);
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "a new connection");

    let want_events = usize::try_from(s.published_events).expect("small");
    let mut got = sink
        .collect(&instance, usize::MAX, Duration::from_millis(500))
        .await;
    let end = Instant::now() + PATIENCE;
    let (events, reported) = loop {
        let mut events = 0;
        let mut reported = 0;
        for m in &got {
            let b = decode_batch(&m.body, Some(&model), now_us()).expect("decodes");
            events += b.events.len();
            reported += b.dropped;
        }
        if events >= want_events || Instant::now() > end {
            break (events, reported);
        }
        got.extend(
            sink.collect(&instance, usize::MAX, Duration::from_millis(200))
                .await,
        );
    };
    assert_eq!(events, want_events);
    assert_eq!(s.published_events + s.dropped, s.recorded);
    assert_eq!(
        reported, dropped,
        "the drops are reported in the batches after reconnecting"
    );
    let last =
        decode_batch(&got.last().expect("some").body, Some(&model), now_us()).expect("decodes");
    assert_eq!(
        last.events.last().map(|e| e.status),
        Some(201),
        "events after the reconnect arrive"
    );
    publisher.shutdown(Duration::from_secs(5));
}

/// Polls `cond` until it holds or `patience` runs out; whether it held.
async fn eventually(patience: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + patience;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A resource alarm on a node of our own (the shared broker is never alarmed): the broker
/// blocks the publisher's connection, `record` keeps returning and drops what does not
/// fit, every drop is counted and reported, and publishing resumes when the alarm clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_by_a_resource_alarm_drops_and_counts_then_resumes() {
    // The publisher sees a block once a confirm is 5 s late, and an unblock at once; the
    // rest is margin for a loaded machine.
    const STATE_CHANGE: Duration = Duration::from_secs(30);
    const BUFFER: usize = 100;
    const BATCH: usize = 10;
    const WHILE_BLOCKED: u64 = 5_000;
    const AFTER: u64 = 20;

    require!(RabbitmqServer);

    let node = tokio::task::spawn_blocking(PrivateNode::start)
        .await
        .expect("join");
    let sink = Sink::bind_at(&node.url, "events.#").await;
    let instance = unique("pub-blocked");
    let model = unique("blocked");
    let publisher = Publisher::start(Config {
        amqp_url: node.url.clone(),
        buffer_events: BUFFER,
        max_batch_events: BATCH,
        max_batch_delay: Duration::from_millis(20),
        ..config(&instance)
    });
    publisher.record(event(&model, 200));
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());
    assert!(!publisher.stats().blocked);

    node.memory_alarm(true);
    // RabbitMQ blocks a connection when it next publishes, so keep giving it something to send.
    let blocked = eventually(STATE_CHANGE, || {
        publisher.record(event(&model, 200));
        publisher.stats().blocked
    })
    .await;
    assert!(
        blocked,
        "connection.blocked never showed in the stats: {:?}\n{}",
        publisher.stats(),
        node.output()
    );

    // Far more than the buffer holds, from a thread of its own: if `record` waited for
    // room it would never return, since nothing leaves while the broker is not reading,
    // and the deadline turns that hang into a failure.
    let before = publisher.stats();
    let (recorder, m) = (publisher.clone(), model.clone());
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..WHILE_BLOCKED {
            recorder.record(event(&m, 202));
        }
        let _ = done.send(());
    });
    let returned = tokio::task::spawn_blocking(move || finished.recv_timeout(STATE_CHANGE))
        .await
        .expect("join");
    assert!(returned.is_ok(), "record() waited for the blocked broker");
    let during = publisher.stats();
    assert!(during.blocked);
    assert_eq!(during.recorded, before.recorded + WHILE_BLOCKED);
    assert_eq!(
        during.published_events, before.published_events,
        "nothing is confirmed while blocked"
    );
    // Waiting for the broker: the buffer, a batch taken from it, and what was sent
    // when the block came (at most a batch, and kept for the broker's confirm).
    let most = (BUFFER + 2 * BATCH) as u64;
    let held = during.recorded - during.published_events - during.dropped;
    assert!(
        held <= most,
        "{held} events wait for the broker: {during:?}"
    );
    assert!(
        during.dropped - before.dropped >= WHILE_BLOCKED - most,
        "what does not fit is dropped and counted: {before:?} -> {during:?}"
    );
    let p = publisher.clone();
    let delivered = tokio::task::spawn_blocking(move || p.flush(Duration::from_millis(200)))
        .await
        .expect("join");
    assert!(!delivered, "a flush cannot succeed while blocked");

    node.memory_alarm(false);
    let unblocked = eventually(STATE_CHANGE, || !publisher.stats().blocked).await;
    assert!(
        unblocked,
        "connection.unblocked never showed in the stats: {:?}\n{}",
        publisher.stats(),
        node.output()
    );
    for _ in 0..AFTER {
        publisher.record(event(&model, 201));
    }
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());
    let s = publisher.stats();
    assert!(!s.blocked);
    assert_eq!(s.state, BrokerState::Connected);
    assert_eq!(
        s.recorded,
        s.published_events + s.dropped,
        "once flushed, every event was either delivered or counted as dropped: {s:?}"
    );

    // What the monitor sees: each confirmed event once, and the drops reported.
    let mut got = Vec::new();
    let (mut events, mut reported, mut after) = (0, 0, 0);
    let end = Instant::now() + PATIENCE;
    while events < s.published_events && Instant::now() < end {
        got.extend(
            sink.collect(&instance, usize::MAX, Duration::from_millis(200))
                .await,
        );
        (events, reported, after) = (0, 0, 0);
        for m in &got {
            let b = decode_batch(&m.body, Some(&model), now_us()).expect("decodes");
            assert!(b.rejects.is_empty(), "{:?}", b.rejects);
            events += b.events.len() as u64;
            reported += b.dropped;
            after += b.events.iter().filter(|e| e.status == 201).count() as u64;
        }
    }
    let extra = sink.drain(&instance, Duration::from_millis(300)).await;
    assert!(
        extra.is_empty(),
        "{} more messages than the publisher confirmed",
        extra.len()
    );
    assert_eq!(
        events, s.published_events,
        "each confirmed event arrives once"
    );
    assert_eq!(reported, s.dropped, "the drops are reported to the monitor");
    assert_eq!(
        after, AFTER,
        "events recorded after the alarm cleared arrive"
    );

    shut_down_on(publisher, node).await;
}

/// The monitor's default queue vanishes with a broker restart, and a publisher that is
/// back first publishes into an exchange with nothing bound. On a node of our own (where
/// no other test binds `events.#`): a batch nobody routes comes back, is held rather than
/// counted as published, goes out again once a queue is bound, and arrives once, with
/// the drop count it carried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_no_queue_takes_comes_back_and_arrives_once_a_queue_is_bound() {
    require!(RabbitmqServer);
    let node = tokio::task::spawn_blocking(PrivateNode::start)
        .await
        .expect("join");
    let instance = unique("pub-returned");
    let model = unique("unbound");
    let publisher = Publisher::start(Config {
        amqp_url: node.url.clone(),
        max_batch_delay: Duration::from_millis(20),
        ..config(&instance)
    });
    // A name the monitor would refuse is dropped at once: the first batch carries that.
    publisher.record(event("", 200));
    for _ in 0..3 {
        publisher.record(event(&model, 200));
    }
    let returned = eventually(PATIENCE, || {
        let s = publisher.stats();
        s.returned >= 1 && s.held == 3
    })
    .await;
    let s = publisher.stats();
    assert!(returned, "the unrouted batch came back and is held: {s:?}");
    assert_eq!(
        (
            s.published_events,
            s.published_batches,
            s.dropped,
            s.unrouted
        ),
        (0, 0, 1, 0),
        "a returned batch is not published"
    );
    // More of the same model wait behind it instead of being sent to come back too.
    publisher.record(event(&model, 201));
    publisher.record(event(&model, 202));
    assert!(
        eventually(PATIENCE, || publisher.stats().held == 5).await,
        "{:?}",
        publisher.stats()
    );
    let p = publisher.clone();
    let delivered = tokio::task::spawn_blocking(move || p.flush(Duration::from_millis(300)))
        .await
        .expect("join");
    assert!(!delivered, "held events are not delivered yet");
    let probes = publisher.stats().returned;

    let sink = Sink::bind_at(&node.url, "events.#").await;
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());
    let s = publisher.stats();
    assert_eq!(
        (
            s.recorded,
            s.published_events,
            s.dropped,
            s.held,
            s.unrouted
        ),
        (6, 5, 1, 0, 0),
        "{s:?}"
    );
    // Probes back off: a handful of returns, not one per loop.
    assert!(probes < 10, "{probes} returns before the queue was bound");

    let mut got = sink
        .collect(&instance, usize::MAX, Duration::from_secs(1))
        .await;
    got.extend(sink.drain(&instance, Duration::from_millis(500)).await);
    let mut statuses = Vec::new();
    let mut reported = 0;
    for m in &got {
        let b = decode_batch(&m.body, Some(&model), now_us()).expect("decodes");
        assert!(b.rejects.is_empty(), "{:?}", b.rejects);
        statuses.extend(b.events.iter().map(|e| e.status));
        reported += b.dropped;
        assert!(
            m.properties.message_id().is_some(),
            "each message has an id"
        );
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 201, 202],
        "each event once, oldest first"
    );
    assert_eq!(reported, 1, "the drop count travels until it is delivered");

    shut_down_on(publisher, node).await;
}

/// A model nobody binds (every monitor runs with `--models` for others): its batches are
/// held for the hold bound (30 s), then let go as they come, counted as `unrouted` and
/// not reported as drops; the broker sees a probe now and then, not every batch, and
/// memory stays flat. The watched model is not held up meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_nobody_binds_costs_neither_memory_nor_a_flood_of_returns() {
    /// Past the 30-s hold, so that the model is taken to be watched by nobody.
    const RUN: Duration = Duration::from_secs(45);
    const EVERY: Duration = Duration::from_millis(10);

    require!(RabbitmqServer);

    let node = tokio::task::spawn_blocking(PrivateNode::start)
        .await
        .expect("join");
    let instance = unique("pub-unbound");
    let watched = unique("watched");
    let nobody = unique("nobody");
    let sink = Sink::bind_at(&node.url, &format!("events.{watched}")).await;
    let publisher = Publisher::start(Config {
        amqp_url: node.url.clone(),
        ..config(&instance)
    });
    let start = Instant::now();
    let (mut rounds, mut most_held) = (0u64, 0u64);
    while start.elapsed() < RUN {
        publisher.record(event(&watched, 200));
        publisher.record(event(&nobody, 200));
        rounds += 1;
        most_held = most_held.max(publisher.stats().held);
        tokio::time::sleep(EVERY).await;
    }
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());
    let s = publisher.stats();
    // Shown with --nocapture.
    println!("{rounds} rounds, held at most {most_held}: {s:?}");

    assert_eq!(s.recorded, 2 * rounds);
    assert_eq!(
        s.recorded,
        s.published_events + s.dropped + s.unrouted,
        "every event accounted for: {s:?}"
    );
    assert_eq!(
        s.published_events, rounds,
        "the watched model's events all went out"
    );
    assert_eq!(
        s.held, 0,
        "nothing is held once nobody is taken to watch the model"
    );
    assert!(s.unrouted > 0, "{s:?}");
    // At most 30 s of the unwatched model's events are ever held, and those are the
    // only ones reported as dropped.
    let thirty_s = 30 * 1000 / EVERY.as_millis() as u64;
    assert!(most_held <= thirty_s, "held at most {most_held}");
    assert!(s.dropped <= thirty_s, "{s:?}");
    // One batch goes out every 250 ms: returning each would be some 180 returns.
    assert!(s.returned < 40, "{} returns", s.returned);

    let mut got = sink
        .collect(&instance, usize::MAX, Duration::from_secs(2))
        .await;
    got.extend(sink.drain(&instance, Duration::from_millis(500)).await);
    let (mut events, mut reported) = (0, 0);
    for m in &got {
        let b = decode_batch(&m.body, Some(&watched), now_us()).expect("decodes");
        events += b.events.len() as u64;
        reported += b.dropped;
    }
    assert_eq!(
        events, rounds,
        "the watched model's monitor gets each event once"
    );
    assert_eq!(
        reported, s.dropped,
        "drops are reported; what nobody watched is not a drop"
    );

    shut_down_on(publisher, node).await;
}

/// A topic permission on a node of our own refuses one model's routing key: the broker
/// closes the channel over each message of it. That message is dropped and counted after
/// a few tries; the other model's events are all delivered, the publisher does not
/// reconnect in a loop, and the refusal is not reported as a refused login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_broker_refuses_is_dropped_and_the_others_are_delivered() {
    require!(RabbitmqServer);
    let node = tokio::task::spawn_blocking(PrivateNode::start)
        .await
        .expect("join");
    let instance = unique("pub-refused");
    let model = unique("iris");
    let refused = unique("other");
    let out = node.ctl(&[
        "set_topic_permissions",
        "-p",
        "/",
        "guest",
        "modelmon",
        &format!("^events\\.{model}$"),
        ".*",
    ]);
    assert!(out.status.success(), "{out:?}");
    let sink = Sink::bind_at(&node.url, "events.#").await;
    let publisher = Publisher::start(Config {
        amqp_url: node.url.clone(),
        ..config(&instance)
    });
    publisher.record(event(&refused, 200));
    for _ in 0..50 {
        publisher.record(event(&model, 200));
    }
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());
    // After the refusal: delivered, and carrying its drop count.
    publisher.record(event(&model, 201));
    assert!(flushed(&publisher).await, "{:?}", publisher.stats());

    let s = publisher.stats();
    assert_eq!(
        (s.recorded, s.published_events, s.dropped),
        (52, 51, 1),
        "{s:?}"
    );
    // One connection per try of the refused message, and one to go on with.
    assert!(s.connections <= 6, "{} connections", s.connections);
    assert_eq!(s.last_error_kind, Some(FailureKind::Other), "{s:?}");

    let mut got = sink
        .collect(&instance, usize::MAX, Duration::from_secs(1))
        .await;
    got.extend(sink.drain(&instance, Duration::from_millis(300)).await);
    // The broker may have routed a message whose confirm the closed channel lost: sent
    // again under its id, it is counted once, as the monitor counts it.
    let mut seen = std::collections::HashSet::new();
    let (mut events, mut reported) = (0, 0);
    for m in &got {
        assert_eq!(m.routing_key, format!("events.{model}"));
        let id = m.properties.message_id().clone().expect("an id");
        if !seen.insert(id) {
            continue;
        }
        let b = decode_batch(&m.body, Some(&model), now_us()).expect("decodes");
        events += b.events.len();
        reported += b.dropped;
    }
    assert_eq!(events, 51, "each of the other model's events arrives");
    assert_eq!(reported, 1, "the refused event is reported as dropped");

    shut_down_on(publisher, node).await;
}
