//! The monitor's own blindness: a private RabbitMQ node stopped for a minute under three
//! models' traffic. While the broker is away the monitor sees no events at all, which must
//! read as one broker alert, never as every model's traffic dropping; and counting must
//! resume by itself when the broker comes back.
//!
//! The outage is made on a node of the test's own: the shared broker on 127.0.0.1:5672
//! carries other tests' traffic and is never stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use modelmon_contract::SourceKind;
use modelmon_publisher::{BrokerState, Config, Publisher};
use serde_json::Value;

use crate::alerts::fixtures::Mon;
use crate::support::private_node::PrivateNode;
use crate::support::{model, now_us, unique};

/// Baselines learn from a few minutes instead of an hour, so `traffic_drop` is armed
/// before the outage and the outage is a real test of its inhibition.
const CONFIG: &str = r#"
[alerts.baseline]
learn = "3m"
skip_recent = "0s"
min_history = "1m"
[notify.desktop]
enabled = false
"#;

const MODELS: usize = 3;
/// Requests per second and model: enough for the adaptive window to be short (20
/// requests expected in 1 s, so its 30-s floor), so it soon reaches into the outage.
const RATE: u32 = 20;
const OUTAGE: Duration = Duration::from_secs(60);
/// How long to keep watching once the monitor is connected again: covers the windows
/// that still reach back into the outage.
const AFTER: Duration = Duration::from_secs(30);
/// With min_history = 1m a baseline needs one full, usable minute; the rest is margin
/// for a loaded machine.
const BASELINE_PATIENCE: Duration = Duration::from_secs(6 * 60);
/// The monitor learns of the loss from the broker's `connection.close`, at once; a few
/// seconds allow for a loaded machine.
const DOWN_WITHIN: Duration = Duration::from_secs(10);
/// Reconnect backoffs (monitor and publisher) top out at 5 s plus jitter.
const RECONNECT_PATIENCE: Duration = Duration::from_secs(45);
const LINE_PATIENCE: Duration = Duration::from_secs(10);

/// One publisher per model, as three model APIs would each have their own interceptor,
/// recording fast 200s at a steady rate from a thread of its own.
struct Traffic {
    publishers: Vec<(String, Publisher)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(url: &str, models: &[String]) -> Self {
        let publishers: Vec<(String, Publisher)> = models
            .iter()
            .map(|_| {
                let instance = unique("outage-src");
                let publisher = Publisher::start(Config {
                    amqp_url: url.to_owned(),
                    source_kind: SourceKind::Proxy,
                    instance: instance.clone(),
                    ..Config::default()
                });
                (instance, publisher)
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let models = models.to_vec();
        let recorders: Vec<Publisher> = publishers.iter().map(|(_, p)| p.clone()).collect();
        let thread = std::thread::spawn(move || {
            let tick = Duration::from_secs(1) / RATE;
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                for (m, p) in models.iter().zip(&recorders) {
                    p.record(crate::support::request(m));
                }
                // Ticks from a schedule, not from sleeps alone, so that a slow round
                // does not lower the rate the baselines learn.
                next += tick;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Self {
            publishers,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for (_, p) in &self.publishers {
            p.shutdown(Duration::from_secs(2));
        }
    }
}

fn now_ms() -> i64 {
    now_us() / 1000
}

fn connected(line: &Value) -> bool {
    line["broker"]["state"] == "connected"
}

fn ts(line: &Value) -> i64 {
    line["ts_ms"].as_i64().expect("every line has ts_ms")
}

fn events(line: &Value) -> u64 {
    line["ingest"]["events"].as_u64().expect("ingest.events")
}

fn requests(line: &Value, name: &str) -> Option<u64> {
    model(line, name).and_then(|m| m["requests"].as_u64())
}

fn active(alert: &Value) -> bool {
    alert["state"] == "pending" || alert["state"] == "firing"
}

/// The monitor's own `broker_down` alerts in a line.
fn broker_down(line: &Value) -> Vec<&Value> {
    line["alerts"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["rule"] == "broker_down").collect())
        .unwrap_or_default()
}

fn baseline_ready(line: &Value, name: &str) -> bool {
    model(line, name)
        .is_some_and(|m| m["baseline"]["ready"] == true && m["baseline"]["qps"].is_number())
}

/// `--batch` lines from the monitor's receiver, each kept for the analysis at the end.
struct Watch<'a> {
    mon: &'a Mon,
    lines: Vec<Value>,
}

impl Watch<'_> {
    fn next(&mut self) -> &Value {
        let line = self
            .mon
            .lines
            .recv_timeout(LINE_PATIENCE)
            .unwrap_or_else(|e| {
                let why = match e {
                    RecvTimeoutError::Timeout => format!("no --batch line in {LINE_PATIENCE:?}"),
                    RecvTimeoutError::Disconnected => "the monitor's output ended".to_owned(),
                };
                panic!("{why}; stderr:\n{}", self.mon.stderr())
            });
        self.lines.push(line);
        self.lines.last().expect("just pushed")
    }

    /// Lines until `pred` holds for one, which is returned (its time in ms).
    fn until(&mut self, what: &str, patience: Duration, pred: impl Fn(&Value) -> bool) -> i64 {
        let end = Instant::now() + patience;
        loop {
            let line = self.next();
            if pred(line) {
                return ts(line);
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; last line: {line}"
            );
        }
    }
}

/// The node's connections that `names` made (each client names its connection), by name.
fn clients(node: &PrivateNode, names: &[String]) -> BTreeMap<String, String> {
    node.connections()
        .iter()
        .filter_map(|row| {
            let (addr, given) = row.split_once('\t')?;
            let who = names.iter().find(|n| given.contains(n.as_str()))?;
            Some((who.clone(), addr.to_owned()))
        })
        .collect()
}

fn wait_for_clients(node: &PrivateNode, names: &[String]) -> BTreeMap<String, String> {
    let end = Instant::now() + RECONNECT_PATIENCE;
    loop {
        let found = clients(node, names);
        if found.len() == names.len() {
            return found;
        }
        assert!(
            Instant::now() < end,
            "only {found:?} of {names:?} are connected to the private node"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

#[test]
fn a_minute_without_the_broker_is_one_broker_alert_and_no_traffic_drop() {
    require!(RabbitmqServer);
    // Declared first, dropped last: the node outlives the publishers and the monitor, and
    // its Drop stops it (and removes its files) even when an assertion fails.
    let mut node = PrivateNode::start();
    let models: Vec<String> = (0..MODELS).map(|i| unique(&format!("outage{i}"))).collect();
    let traffic = Traffic::start(&node.url, &models);
    // No Docker: these models are no containers, and the engine's Docker polling would
    // only add noise (and CPU on a shared machine) to a broker test.
    let mon = Mon::start(
        CONFIG,
        &["--interval", "500ms", "--amqp", &node.url, "--no-docker"],
        &[],
    );
    let mut watch = Watch {
        mon: &mon,
        lines: Vec::new(),
    };

    watch.until("the monitor to connect", RECONNECT_PATIENCE, connected);
    watch.until(
        "every model's baseline (ready, with a qps)",
        BASELINE_PATIENCE,
        |l| models.iter().all(|m| baseline_ready(l, m)),
    );
    // Only what happens from here on is judged; the warm-up is dropped.
    watch.lines.clear();
    let before = watch.next().clone();
    assert!(connected(&before), "{before}");

    // Every client by the name it gives its connection: the monitor's, then the sources'.
    let mut names = vec![format!("modelmon-tui pid {}", mon.child.id())];
    names.extend(traffic.publishers.iter().map(|(i, _)| format!("{i} pid")));
    let first = wait_for_clients(&node, &names);
    let published_before: Vec<u64> = traffic
        .publishers
        .iter()
        .map(|(_, p)| {
            let s = p.stats();
            assert_eq!(s.state, BrokerState::Connected, "before the stop: {s:?}");
            s.published_events
        })
        .collect();

    let stop_ms = now_ms();
    node.stop_app();
    let stopped_ms = now_ms();
    // The sources keep recording (model APIs do not stop serving); each must notice the
    // lost connection by itself while the monitor's lines go on.
    let mut saw_loss = vec![None; MODELS];
    while now_ms() < stop_ms + OUTAGE.as_millis() as i64 {
        watch.next();
        for ((_, p), seen) in traffic.publishers.iter().zip(&mut saw_loss) {
            let s = p.stats();
            if s.state != BrokerState::Connected && seen.is_none() {
                *seen = Some((now_ms() - stop_ms, s.last_error));
            }
        }
    }
    let restart_ms = now_ms();
    node.start_app();
    let started_ms = now_ms();

    let reconnect_ms = watch.until("the monitor to reconnect", RECONNECT_PATIENCE, |l| {
        connected(l) && ts(l) >= restart_ms
    });
    let second = wait_for_clients(&node, &names);
    while now_ms() < reconnect_ms + AFTER.as_millis() as i64 {
        watch.next();
    }
    let lines = std::mem::take(&mut watch.lines);
    let last = lines.last().expect("lines were watched");

    // ---- the timeline, printed before any assertion so that a failure still shows it
    let first_down = lines.iter().find(|l| !connected(l));
    let first_firing = lines
        .iter()
        .find(|l| broker_down(l).iter().any(|a| a["state"] == "firing"))
        .map(ts);
    // The monitor is blind during the outage: ingest.events stays flat until it reconnects.
    let blind_events = lines
        .iter()
        .filter(|l| ts(l) < reconnect_ms)
        .map(events)
        .max()
        .unwrap_or(0);
    let resumed = lines
        .iter()
        .find(|l| ts(l) >= reconnect_ms && events(l) > blind_events)
        .map(ts);
    // Per model: its fewest requests in the window while blind, when it first rose above
    // that again, and how many the window holds at the end.
    let counts: Vec<(&String, u64, Option<i64>, u64)> = models
        .iter()
        .map(|m| {
            let trough = lines
                .iter()
                .filter(|l| !connected(l))
                .filter_map(|l| requests(l, m))
                .min()
                .unwrap_or(0);
            let back = lines
                .iter()
                .find(|l| ts(l) >= reconnect_ms && requests(l, m).unwrap_or(0) > trough)
                .map(ts);
            (m, trough, back, requests(last, m).unwrap_or(0))
        })
        .collect();
    // What the broker confirmed to the sources from the stop on, against what reached the
    // monitor: the difference was routed to no queue (a backlog flushed before the
    // monitor had declared its queue again, say).
    let published: u64 = traffic
        .publishers
        .iter()
        .zip(&published_before)
        .map(|((_, p), before)| p.stats().published_events - before)
        .sum();
    let rel =
        |t: Option<i64>| t.map_or("never".to_owned(), |t| format!("{:.1}s", secs(t - stop_ms)));
    eprintln!("broker outage timeline, seconds after stop_app was called:");
    eprintln!(
        "  stop_app returned            {:.1}s",
        secs(stopped_ms - stop_ms)
    );
    eprintln!(
        "  broker.state not connected   {} {}",
        rel(first_down.map(ts)),
        first_down.map_or(Value::Null, |l| l["broker"].clone())
    );
    for (i, seen) in saw_loss.iter().enumerate() {
        let (at, error) = seen.as_ref().map_or(("never".to_owned(), None), |(at, e)| {
            (format!("{:.1}s", secs(*at)), e.as_deref())
        });
        eprintln!("  source {i} not connected     {at} {error:?}");
    }
    eprintln!("  broker_down firing           {}", rel(first_firing));
    eprintln!(
        "  start_app called, returned   {:.1}s, {:.1}s",
        secs(restart_ms - stop_ms),
        secs(started_ms - stop_ms)
    );
    eprintln!("  monitor connected again      {}", rel(Some(reconnect_ms)));
    eprintln!("  ingest.events rising again   {}", rel(resumed));
    for (m, trough, back, now) in &counts {
        eprintln!(
            "  {m}: requests rising again {} (from {trough} while blind, {now} at the end)",
            rel(*back)
        );
    }
    eprintln!("  connections before: {first:?}");
    eprintln!("  connections after:  {second:?}");
    eprintln!(
        "  broker.connections {} -> {}; ingest.events {} -> {} (at most {blind_events} while blind), late {}",
        before["broker"]["connections"],
        last["broker"]["connections"],
        events(&before),
        events(last),
        last["ingest"]["late"]
    );
    eprintln!(
        "  from the stop on, {published} events confirmed to the sources, {} ingested",
        events(last) - events(&before)
    );

    // ---- the outage as the clients saw it
    let down = first_down
        .map(ts)
        .expect("broker.state never left connected");
    assert!(
        down - stop_ms <= DOWN_WITHIN.as_millis() as i64,
        "broker.state left connected only {:.1}s after the stop",
        secs(down - stop_ms)
    );
    assert!(
        last["broker"]["connections"].as_u64() > before["broker"]["connections"].as_u64(),
        "the monitor's consumer did not reconnect: {} -> {}",
        before["broker"]["connections"],
        last["broker"]["connections"]
    );
    // A new client address and port for every client: each one really reconnected.
    for (who, addr) in &first {
        assert_ne!(
            second.get(who),
            Some(addr),
            "{who} kept its connection through the outage"
        );
    }
    for (i, seen) in saw_loss.iter().enumerate() {
        let (_, error) = seen.as_ref().expect("every source saw its connection drop");
        assert!(error.is_some(), "source {i} lost its link without an error");
    }
    for ((_, p), before) in traffic.publishers.iter().zip(&published_before) {
        let s = p.stats();
        assert_eq!(s.state, BrokerState::Connected, "{s:?}");
        assert!(s.published_events > *before, "{s:?}");
    }

    // ---- counts resume: fresh traffic fills each model's window again
    assert!(
        resumed.is_some(),
        "ingest.events never rose after the reconnect"
    );
    let enough = u64::from(RATE) * 10;
    for (m, trough, _, now) in &counts {
        assert!(
            *now >= trough + enough,
            "{m}: requests did not resume ({trough} while blind, {now} at the end)"
        );
    }

    // ---- alerts (the detection engine: rules and keys of the detection spec)
    let mut violations = Vec::new();
    for l in &lines {
        for m in &models {
            let shown = model(l, m)
                .and_then(|x| x["alerts"].as_array())
                .into_iter()
                .flatten()
                .filter(|a| a["rule"] == "traffic_drop" && active(a));
            violations.extend(shown.map(|a| format!("{:.1}s {m}: {a}", secs(ts(l) - stop_ms))));
        }
    }
    assert!(
        violations.is_empty(),
        "traffic_drop while the monitor, not the models, was blind ({} times), first:\n{}",
        violations.len(),
        violations[..violations.len().min(6)].join("\n")
    );

    let started: BTreeSet<i64> = lines
        .iter()
        .flat_map(broker_down)
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            a["started_ms"]
                .as_i64()
                .expect("a firing alert has started_ms")
        })
        .collect();
    assert_eq!(
        started.len(),
        1,
        "exactly one broker_down alert fires; started_ms seen: {started:?}; last line: {last}"
    );
    let fired = *started.first().expect("one");
    assert!(
        (stop_ms..reconnect_ms).contains(&fired),
        "broker_down fired at {:.1}s, outside the outage",
        secs(fired - stop_ms)
    );
    for l in &lines {
        assert!(
            broker_down(l).iter().filter(|a| active(a)).count() <= 1,
            "two broker_down alerts at once: {l}"
        );
    }
    // It holds until the broker is back, then resolves. The last blind line is left out:
    // a line pairs the newest view with the newest alerts, which may be one refresh apart.
    let last_blind = lines
        .iter()
        .filter(|l| !connected(l))
        .map(ts)
        .max()
        .expect("blind lines");
    for l in lines
        .iter()
        .filter(|l| ts(l) >= fired && ts(l) < last_blind)
    {
        assert!(
            broker_down(l).iter().any(|a| a["state"] == "firing"),
            "broker_down stopped firing while the broker was still down: {l}"
        );
    }
    assert!(
        !broker_down(last).iter().any(|a| active(a)),
        "broker_down still active {AFTER:?} after the reconnect: {last}"
    );
    for a in lines.iter().flat_map(broker_down) {
        if let Some(resolved) = a["resolved_ms"].as_i64() {
            assert!(
                resolved > last_blind,
                "broker_down resolved at {:.1}s, before the broker was back",
                secs(resolved - stop_ms)
            );
        }
    }
}
