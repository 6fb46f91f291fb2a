//! What the proxy tells its operator about the broker, on stderr: once when an outage
//! starts (the broker cannot be reached, or refuses the login, with the reason), once
//! when it ends (with what was dropped meanwhile), and likewise when the broker blocks
//! publishing (a resource alarm) and unblocks it, and when batches start and stop coming
//! back unrouted. The publisher never blocks a request on the broker, so
//! without these lines a proxy in front of a working model API would look healthy while
//! none of its events reached a monitor.

use std::time::{Duration, Instant};

use modelmon_publisher::{BrokerState, FailureKind, Publisher, Redacted, Stats};

/// How often the publisher's counters are read: cheap (a few atomics), and short
/// enough that a broker restart is told within a second of the publisher noticing it.
const EVERY: Duration = Duration::from_millis(250);
/// Returns stop being an episode after this long without one: longer than the
/// publisher's longest wait between probes (5 s), so a model nobody binds, probed
/// now and then, stays one episode, told once.
const QUIET: Duration = Duration::from_secs(12);

struct Outage {
    since: Instant,
    dropped: u64,
}

/// Batches coming back unrouted; the counters as they were when it started.
struct Returns {
    last_return: Instant,
    returned: u64,
    dropped: u64,
    let_go: u64,
}

/// Turns successive looks at the publisher's stats into the lines worth printing.
pub(crate) struct BrokerWatch {
    url: String,
    /// The setting names a cluster's nodes: the lines say which one is in use.
    several: bool,
    outage: Option<Outage>,
    /// A block on a live connection: nothing goes out, and nothing says so but us.
    blocked: Option<Outage>,
    returns: Option<Returns>,
    connections: u64,
    returned: u64,
    /// The counters at the previous look: the baseline of an episode that starts now.
    dropped: u64,
    let_go: u64,
}

impl BrokerWatch {
    pub fn new(amqp_url: &str) -> Self {
        BrokerWatch {
            url: Redacted(amqp_url).to_string(),
            several: modelmon_publisher::broker_nodes(amqp_url).len() > 1,
            outage: None,
            blocked: None,
            returns: None,
            connections: 0,
            returned: 0,
            dropped: 0,
            let_go: 0,
        }
    }

    pub fn observe(&mut self, s: &Stats, now: Instant) -> Vec<String> {
        let mut lines = Vec::new();
        let connected = s.state == BrokerState::Connected;
        let reason = s.last_error.as_deref().unwrap_or("no reason given");
        let on_node = match &s.node {
            Some(node) if self.several => format!(" (node {node})"),
            _ => String::new(),
        };
        match (&self.outage, connected) {
            // Before the first attempt has failed there is nothing to tell yet.
            (None, false) if s.last_error.is_some() => {
                let what = if s.last_error_kind == Some(FailureKind::LoginRefused) {
                    "the broker refused the login"
                } else {
                    "cannot reach the broker"
                };
                lines.push(format!(
                    "{what} at {} ({reason}); requests are still served, their events wait in \
                     the buffer and are dropped and counted past it; retrying",
                    self.url
                ));
                self.outage = Some(Outage {
                    since: now,
                    // A link lost while blocked: one stretch without publishing.
                    dropped: self.blocked.as_ref().map_or(self.dropped, |b| b.dropped),
                });
            }
            (Some(o), true) => {
                lines.push(format!(
                    "the broker at {} is reachable again{on_node} after {:.1} s; {} events \
                     dropped meanwhile",
                    self.url,
                    now.saturating_duration_since(o.since).as_secs_f64(),
                    s.dropped.saturating_sub(o.dropped)
                ));
                self.outage = None;
            }
            // Lost and regained between two looks (a connection closed by the broker
            // and reopened at once): still an outage, told in one line.
            (None, true) if self.connections > 0 && s.connections > self.connections => {
                lines.push(format!(
                    "lost the connection to the broker at {} ({reason}) and reconnected{on_node}",
                    self.url
                ));
            }
            (None, true) if self.connections == 0 => {
                lines.push(format!("publishing to the broker at {}{on_node}", self.url));
            }
            _ => {}
        }
        if connected {
            self.connections = s.connections;
        }

        match &self.blocked {
            None if connected && s.blocked => {
                lines.push(format!(
                    "the broker at {}{on_node} blocked publishing (a resource alarm: memory or \
                     disk); requests are still served, their events wait in the buffer and are \
                     dropped and counted past it",
                    self.url
                ));
                self.blocked = Some(Outage {
                    since: now,
                    dropped: self.dropped,
                });
            }
            Some(b) if connected && !s.blocked => {
                lines.push(format!(
                    "the broker at {} unblocked publishing after {:.1} s; {} events dropped \
                     meanwhile",
                    self.url,
                    now.saturating_duration_since(b.since).as_secs_f64(),
                    s.dropped.saturating_sub(b.dropped)
                ));
                self.blocked = None;
            }
            // The link went while blocked: the outage's lines tell the rest.
            Some(_) if !connected => self.blocked = None,
            _ => {}
        }

        if s.returned > self.returned {
            if let Some(r) = &mut self.returns {
                r.last_return = now;
            } else {
                lines.push(
                    "batches come back unrouted: no queue is bound to their model (a \
                     monitor reconnecting, or none watching it); they are held up to 30 s \
                     and sent again"
                        .to_owned(),
                );
                self.returns = Some(Returns {
                    last_return: now,
                    returned: self.returned,
                    dropped: self.dropped,
                    let_go: self.let_go,
                });
            }
            self.returned = s.returned;
        }
        if let Some(r) = &self.returns
            && s.held == 0
            && now.saturating_duration_since(r.last_return) >= QUIET
        {
            lines.push(format!(
                "batches are routed again ({} came back meanwhile); {} events dropped meanwhile, \
                 {} let go because nobody watched their model",
                s.returned - r.returned,
                s.dropped.saturating_sub(r.dropped),
                s.unrouted.saturating_sub(r.let_go)
            ));
            self.returns = None;
        }
        self.dropped = s.dropped;
        self.let_go = s.unrouted;
        lines
    }
}

/// Prints what [`BrokerWatch`] finds, until the runtime stops.
pub(crate) async fn watch(publisher: Publisher, amqp_url: String) {
    let mut w = BrokerWatch::new(&amqp_url);
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for line in w.observe(&publisher.stats(), Instant::now()) {
            eprintln!("modelmon-proxy: {line}");
        }
    }
}

/// The URL without its password, fit for a log.
#[cfg(test)]
mod tests {
    use super::*;

    fn stats(state: BrokerState, connections: u64, dropped: u64) -> Stats {
        Stats {
            recorded: 0,
            published_events: 0,
            published_batches: 0,
            dropped,
            returned: 0,
            unrouted: 0,
            held: 0,
            connections,
            state,
            node: (state == BrokerState::Connected)
                .then(|| "amqp://guest:***@mq-2:5672/%2f".to_owned()),
            // No attempt has failed before the first connection.
            last_error: (state != BrokerState::Connecting || connections > 0)
                .then(|| "amqp: IO error: Connection refused (os error 111)".to_owned()),
            last_error_kind: None,
            blocked: false,
            sanitised: 0,
        }
    }

    #[test]
    fn with_a_cluster_the_node_in_use_is_told() {
        let mut w = BrokerWatch::new("amqp://guest:pw@mq-1:5672/%2f,amqp://guest:pw@mq-2:5672/%2f");
        let t0 = Instant::now();
        let up = w.observe(&stats(BrokerState::Connected, 1, 0), t0);
        assert_eq!(
            up,
            [
                "publishing to the broker at amqp://guest:***@mq-1:5672/%2f,amqp://guest:***@mq-2:5672/%2f \
              (node amqp://guest:***@mq-2:5672/%2f)"
            ]
        );
        let moved = w.observe(&stats(BrokerState::Connected, 2, 0), t0);
        assert!(
            moved[0].ends_with("and reconnected (node amqp://guest:***@mq-2:5672/%2f)"),
            "{moved:?}"
        );
        // One node: no need to say which.
        let mut one = BrokerWatch::new("amqp://guest:pw@mq-1:5672/%2f");
        let up = one.observe(&stats(BrokerState::Connected, 1, 0), t0);
        assert_eq!(
            up,
            ["publishing to the broker at amqp://guest:***@mq-1:5672/%2f"]
        );
    }

    #[test]
    fn one_line_when_an_outage_starts_and_one_when_it_ends() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = BrokerWatch::new("amqp://guest:secret@mq:5672/%2f");
        assert!(
            w.observe(&stats(BrokerState::Connecting, 0, 0), at(0))
                .is_empty()
        );
        let up = w.observe(&stats(BrokerState::Connected, 1, 0), at(0));
        assert_eq!(
            up,
            ["publishing to the broker at amqp://guest:***@mq:5672/%2f"]
        );

        let down = w.observe(&stats(BrokerState::Down, 1, 0), at(1));
        assert_eq!(down.len(), 1);
        assert!(down[0].starts_with("cannot reach the broker at amqp://guest:***@mq"));
        assert!(down[0].contains("Connection refused"), "{down:?}");
        // Retrying flips between down and connecting: nothing more is said.
        for (i, st) in [BrokerState::Connecting, BrokerState::Down]
            .iter()
            .enumerate()
        {
            assert!(w.observe(&stats(*st, 1, 10), at(2 + i as u64)).is_empty());
        }
        let back = w.observe(&stats(BrokerState::Connected, 2, 25), at(6));
        assert_eq!(
            back,
            [
                "the broker at amqp://guest:***@mq:5672/%2f is reachable again after 5.0 s; 25 events dropped meanwhile"
            ]
        );
        assert!(
            w.observe(&stats(BrokerState::Connected, 2, 25), at(7))
                .is_empty()
        );
        // A reconnect between two looks is told too.
        let blip = w.observe(&stats(BrokerState::Connected, 3, 25), at(8));
        assert_eq!(blip.len(), 1);
        assert!(blip[0].starts_with("lost the connection"), "{blip:?}");
    }

    #[test]
    fn a_blocked_broker_is_told_once_with_what_was_dropped_while_blocked() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = BrokerWatch::new("amqp://guest:secret@mq:5672/%2f");
        let mut s = stats(BrokerState::Connected, 1, 0);
        assert_eq!(w.observe(&s, at(0)).len(), 1);
        s.blocked = true;
        let blocked = w.observe(&s, at(1));
        assert_eq!(
            blocked,
            [
                "the broker at amqp://guest:***@mq:5672/%2f blocked publishing (a resource \
                 alarm: memory or disk); requests are still served, their events wait in the \
                 buffer and are dropped and counted past it"
            ]
        );
        // The buffer fills and overflows: nothing more is said until the alarm clears.
        for (sec, dropped) in [(2, 0), (3, 40), (4, 90)] {
            s.dropped = dropped;
            assert!(w.observe(&s, at(sec)).is_empty());
        }
        s.blocked = false;
        let unblocked = w.observe(&s, at(9));
        assert_eq!(
            unblocked,
            [
                "the broker at amqp://guest:***@mq:5672/%2f unblocked publishing after 8.0 s; \
                 90 events dropped meanwhile"
            ]
        );
        assert!(w.observe(&s, at(10)).is_empty());
    }

    #[test]
    fn a_link_lost_while_blocked_is_one_outage_counting_the_drops_since_the_block() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = BrokerWatch::new("amqp://mq");
        let mut s = stats(BrokerState::Connected, 1, 0);
        assert_eq!(w.observe(&s, at(0)).len(), 1);
        s.blocked = true;
        assert_eq!(w.observe(&s, at(1)).len(), 1);
        s.dropped = 30;
        assert!(w.observe(&s, at(2)).is_empty());
        // The broker closes the blocked connection: the publisher clears the block.
        let down = w.observe(&stats(BrokerState::Down, 1, 30), at(3));
        assert_eq!(down.len(), 1);
        assert!(down[0].starts_with("cannot reach the broker"), "{down:?}");
        let back = w.observe(&stats(BrokerState::Connected, 2, 50), at(5));
        assert_eq!(
            back,
            ["the broker at amqp://mq is reachable again after 2.0 s; 50 events dropped meanwhile"]
        );
    }

    #[test]
    fn a_refused_login_is_told_as_such() {
        let mut w = BrokerWatch::new("amqp://bob@mq/%2f");
        let mut s = stats(BrokerState::Down, 0, 0);
        s.last_error = Some("amqp: protocol error: ACCESS_REFUSED".into());
        s.last_error_kind = Some(FailureKind::LoginRefused);
        let lines = w.observe(&s, Instant::now());
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("the broker refused the login at amqp://bob@mq/%2f"),
            "{lines:?}"
        );
    }

    #[test]
    fn returns_are_one_episode_however_long_they_last() {
        let t0 = Instant::now();
        let mut w = BrokerWatch::new("amqp://mq");
        let mut s = stats(BrokerState::Connected, 1, 0);
        assert_eq!(w.observe(&s, t0).len(), 1);
        let mut told = Vec::new();
        // A model nobody binds: a probe comes back every 5 s for a minute.
        for sec in (1..60).step_by(5) {
            s.returned += 1;
            s.unrouted += 100;
            told.extend(w.observe(&s, t0 + Duration::from_secs(sec)));
        }
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].starts_with("batches come back unrouted"));
        let end = w.observe(&s, t0 + Duration::from_secs(56 + 12));
        assert_eq!(
            end,
            [
                "batches are routed again (12 came back meanwhile); 0 events dropped meanwhile, 1200 let go because nobody watched their model"
            ]
        );
    }
}
