//! A RabbitMQ cluster losing nodes under a monitor and under publishers: each moves to
//! another node by itself, and with the monitor's quorum queue nothing published is lost
//! or counted twice. The cluster is the project's own (`scripts/cluster.sh`), three
//! private nodes on loopback; the shared broker on 127.0.0.1:5672 is never touched.
//!
//! With `--nocapture` the test prints how long each failover took: from the node's stop
//! to events counted again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use modelmon_contract::SourceKind;
use modelmon_publisher::{BrokerState, Config, Publisher};
use serde_json::Value;

use crate::support::cluster::Cluster;
use crate::support::{Monitor, unique};

/// Events a second and model: steady traffic all through the stops.
const RATE: u32 = 500;
/// Generous on a loaded machine; the failover times are printed, not asserted.
const PATIENCE: Duration = Duration::from_secs(60);

/// One publisher per model, recording at a steady rate from a thread of its own.
struct Traffic {
    publisher: Publisher,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(nodes: &str, model: &str) -> Self {
        let publisher = Publisher::start(Config {
            amqp_url: nodes.to_owned(),
            source_kind: SourceKind::Proxy,
            instance: unique("cluster-src"),
            ..Config::default()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, p, model) = (Arc::clone(&stop), publisher.clone(), model.to_owned());
        let thread = std::thread::spawn(move || {
            let tick = Duration::from_secs(1) / RATE;
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                p.record(crate::support::request(&model));
                next += tick;
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        });
        Traffic {
            publisher,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops recording and delivers what is left.
    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().expect("the traffic thread");
        }
        self.publisher.shutdown(Duration::from_secs(10));
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn events(line: &Value) -> u64 {
    line["ingest"]["events"].as_u64().unwrap_or(0)
}

fn on_node(line: &Value, authority: &str) -> bool {
    line["broker"]["state"] == "connected"
        && line["broker"]["node"]
            .as_str()
            .is_some_and(|n| n.contains(authority))
}

/// Stops node `k` under `mon`, and returns once `mon` counts events again from
/// another node: how long that took, from the stop.
fn monitor_fails_over(cluster: &Cluster, k: usize, mon: &Monitor) -> Duration {
    let lost = cluster.authority(k);
    let t = Instant::now();
    cluster.stop_node(k);
    let moved = mon.wait_for("the monitor on another node", PATIENCE, |l| {
        l["broker"]["state"] == "connected"
            && l["broker"]["node"]
                .as_str()
                .is_some_and(|n| !n.contains(&lost))
    });
    let counted = events(&moved);
    mon.wait_for("events counted from the new node", PATIENCE, |l| {
        events(l) > counted
    });
    t.elapsed()
}

/// Node 1 stops under the monitor, which consumes a quorum queue; later node 2 stops
/// under it again and under a second model's publisher. The first model's publisher sits
/// on node 3 all along: the monitor counts every event it published, once. The second
/// model's publisher moves to node 3 and says what, if anything, it dropped; a second
/// monitor, on node 3 too, counts that model.
#[test]
fn a_cluster_losing_nodes_under_the_monitor_and_a_publisher_loses_no_event() {
    require!(RabbitmqServer);
    let cluster = Cluster::start();
    let (steady, moving) = (unique("steady"), unique("moving"));
    let queue = unique("modelmon-test-quorum");
    let mon = Monitor::start(&[
        "--amqp",
        &cluster.setting(),
        "--queue",
        &queue,
        "--models",
        &steady,
        "--no-docker",
    ]);
    let other = Monitor::start(&[
        "--amqp",
        &cluster.setting_from([3, 1, 2]),
        "--models",
        &moving,
        "--no-docker",
    ]);
    let first = mon.wait_for("the monitor connected", PATIENCE, |l| {
        l["broker"]["state"] == "connected"
    });
    assert!(
        on_node(&first, &cluster.authority(1)),
        "the first node: {first}"
    );
    other.wait_for("the second monitor on node 3", PATIENCE, |l| {
        on_node(l, &cluster.authority(3))
    });
    let queues = cluster.ctl(2, &["-q", "list_queues", "name", "type"]);
    assert!(
        queues
            .lines()
            .any(|l| l.contains(&queue) && l.contains("quorum")),
        "a quorum queue, seen from another node: {queues}"
    );

    let mut steady_traffic = Traffic::start(&cluster.setting_from([3, 1, 2]), &steady);
    let mut moving_traffic = Traffic::start(&cluster.setting_from([2, 3, 1]), &moving);
    mon.wait_for("events flowing", PATIENCE, |l| events(l) > 0);

    let monitor_first = monitor_fails_over(&cluster, 1, &mon);
    // A quorum queue needs a majority of its three nodes: node 1 comes back before
    // node 2 goes.
    cluster.start_node(1);
    let published = moving_traffic.publisher.stats().published_events;
    let t = Instant::now();
    let monitor_second = monitor_fails_over(&cluster, 2, &mon);
    let node3 = cluster.authority(3);
    loop {
        let p = moving_traffic.publisher.stats();
        if p.state == BrokerState::Connected
            && p.node.as_deref().is_some_and(|n| n.contains(&node3))
            && p.published_events > published
        {
            break;
        }
        assert!(
            t.elapsed() < PATIENCE,
            "the publisher did not move to node 3: {p:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let publisher_failover = t.elapsed();
    println!(
        "failover, from a node's stop to events counted again: monitor {:.1} s and {:.1} s, \
         publisher {:.1} s",
        monitor_first.as_secs_f64(),
        monitor_second.as_secs_f64(),
        publisher_failover.as_secs_f64()
    );

    steady_traffic.finish();
    moving_traffic.finish();
    let (s, m) = (
        steady_traffic.publisher.stats(),
        moving_traffic.publisher.stats(),
    );
    assert_eq!((s.dropped, s.published_events), (0, s.recorded), "{s:?}");
    assert_eq!(m.recorded, m.published_events + m.dropped, "{m:?}");
    mon.wait_for("every published event counted", PATIENCE, |l| {
        events(l) >= s.published_events
    });
    // A batch whose confirm was lost with node 2 may have reached the broker and been
    // sent again: the moving model may count a few events twice, never fewer.
    other.wait_for("every published event counted", PATIENCE, |l| {
        events(l) >= m.published_events
            && l["ingest"]["dropped_at_source"].as_u64() == Some(m.dropped)
    });
    // Anything more would come within a few lines.
    std::thread::sleep(Duration::from_secs(2));
    let (last, other_last) = (
        mon.wait_for("a line", PATIENCE, |_| true),
        other.wait_for("a line", PATIENCE, |_| true),
    );
    println!(
        "steady model: published {}, counted {}; moving model: published {}, counted {}, \
         dropped {}",
        s.published_events,
        events(&last),
        m.published_events,
        events(&other_last),
        m.dropped
    );
    assert_eq!(
        events(&last),
        s.published_events,
        "the quorum queue's monitor counts every event once, across two failovers"
    );
    assert!(events(&other_last) <= m.recorded, "{other_last}");
}
