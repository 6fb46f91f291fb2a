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
    /// refused by the broker, or still buffered at shutdown.
    pub dropped: u64,
    pub state: BrokerState,
    pub last_error: Option<String>,
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
    state: AtomicU8,
    blocked: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new() -> Self {
        Shared {
            recorded: AtomicU64::new(0),
            published_events: AtomicU64::new(0),
            published_batches: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            sanitised: AtomicU64::new(0),
            state: AtomicU8::new(encode(BrokerState::Connecting)),
            blocked: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
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
        *slot = Some(error.to_string());
    }

    pub fn snapshot(&self) -> Stats {
        let last_error = self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        Stats {
            recorded: self.recorded.load(Ordering::Relaxed),
            published_events: self.published_events.load(Ordering::Relaxed),
            published_batches: self.published_batches.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            state: decode(self.state.load(Ordering::Relaxed)),
            last_error,
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
