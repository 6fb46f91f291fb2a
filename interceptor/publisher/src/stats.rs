//! Counters shared between the callers of `record` and the publishing thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// Where the link to the broker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerState {
    Connected,
    Connecting,
    /// Not connected; the publisher retries with backoff (or has been shut down).
    Down,
}

/// What went wrong with the broker link, coarsely: enough to tell an operator whether to
/// look at the network or at the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The broker refused the user name or password (`ACCESS_REFUSED`).
    LoginRefused,
    /// Anything else: not reachable, closed, timed out, refused a batch.
    Other,
}

/// A snapshot of a publisher's counters. Counts are in events unless named otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Events handed to `record`, including the ones dropped.
    pub recorded: u64,
    /// Events the broker confirmed.
    pub published_events: u64,
    /// Messages the broker confirmed.
    pub published_batches: u64,
    /// Events dropped: buffer full, broker down past the buffer, invalid model name,
    /// refused by the broker, held for a queue longer than the hold bound, or still
    /// waiting at shutdown. Each is reported in the `dropped` field of a later batch.
    pub dropped: u64,
    /// Messages the broker returned because no queue was bound to their routing key (a
    /// message sent again and returned again counts again). Not published: their events
    /// are held and sent again, or counted in `dropped` or `unrouted`.
    pub returned: u64,
    /// Events let go because no queue took their model's batches for longer than the hold
    /// bound: the model is watched by nobody. Not counted in `dropped` (no monitor lost
    /// them) and so not reported on the wire.
    pub unrouted: u64,
    /// Events held now, out of batches that came back unrouted, waiting for a queue.
    pub held: u64,
    /// Successful connections to the broker: above 1 means it reconnected.
    pub connections: u64,
    pub state: BrokerState,
    /// The node in use (its URL, password hidden) while connected, or the last one used.
    /// Of interest when the broker setting lists a cluster's nodes.
    pub node: Option<String>,
    pub last_error: Option<String>,
    /// What kind of failure `last_error` is, for callers that word their own message.
    pub last_error_kind: Option<FailureKind>,
    /// The broker sent `connection.blocked` (alarm) and has not unblocked yet.
    pub blocked: bool,
    /// Events whose `ml` lost non-finite values or entries past the contract's 16.
    pub sanitised: u64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub recorded: AtomicU64,
    pub published_events: AtomicU64,
    pub published_batches: AtomicU64,
    pub dropped: AtomicU64,
    pub sanitised: AtomicU64,
    pub returned: AtomicU64,
    pub unrouted: AtomicU64,
    pub held: AtomicU64,
    pub connections: AtomicU64,
    state: AtomicU8,
    blocked: AtomicBool,
    last_error: Mutex<Option<(String, FailureKind)>>,
    node: Mutex<Option<String>>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            recorded: AtomicU64::new(0),
            published_events: AtomicU64::new(0),
            published_batches: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sanitised: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            unrouted: AtomicU64::new(0),
            held: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            state: AtomicU8::new(encode(BrokerState::Connecting)),
            blocked: AtomicBool::new(false),
            last_error: Mutex::new(None),
            node: Mutex::new(None),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(counter: &AtomicU64, n: u64) {
        counter.store(n, Ordering::Relaxed);
    }

    pub fn set_state(&self, state: BrokerState) {
        self.state.store(encode(state), Ordering::Relaxed);
    }

    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, Ordering::Relaxed);
    }

    pub fn set_error(&self, error: &crate::PublishError) {
        // A poisoned lock only means a reader panicked; the text is still usable.
        let mut slot = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some((error.to_string(), error.kind()));
    }

    pub fn set_node(&self, url: &str) {
        let shown = crate::Redacted(url).to_string();
        *self
            .node
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shown);
    }

    pub fn snapshot(&self) -> Stats {
        let (last_error, last_error_kind) = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .unzip();
        Stats {
            recorded: self.recorded.load(Ordering::Relaxed),
            published_events: self.published_events.load(Ordering::Relaxed),
            published_batches: self.published_batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            returned: self.returned.load(Ordering::Relaxed),
            unrouted: self.unrouted.load(Ordering::Relaxed),
            held: self.held.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            state: decode(self.state.load(Ordering::Relaxed)),
            node: self
                .node
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            last_error,
            last_error_kind,
            blocked: self.blocked.load(Ordering::Relaxed),
            sanitised: self.sanitised.load(Ordering::Relaxed),
        }
    }
}

fn encode(state: BrokerState) -> u8 {
    match state {
        BrokerState::Connected => 0,
        BrokerState::Connecting => 1,
        BrokerState::Down => 2,
    }
}

fn decode(v: u8) -> BrokerState {
    match v {
        0 => BrokerState::Connected,
        1 => BrokerState::Connecting,
        _ => BrokerState::Down,
    }
}
