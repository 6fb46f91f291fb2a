//! The handle callers hold: cheap to clone, never blocks on the broker.

use std::sync::mpsc::{RecvTimeoutError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use modelmon_contract::{Event, is_valid_model_name};
use tokio::sync::mpsc;

use crate::stats::Shared;
use crate::worker::{Command, Worker};
use crate::{BrokerState, Config, PublishError, Stats};

/// The queue between `record` and the publishing thread is a tokio channel: `try_send`
/// is lock-free, and its storage grows in small blocks that are reused, so a large
/// bound costs nothing until events actually pile up.
const MAX_BUFFER: usize = 10_000_000;

/// Records events and publishes them to RabbitMQ from a thread of its own.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
}

struct Inner {
    events: mpsc::Sender<Event<'static>>,
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Publisher {
    /// Spawns one OS thread running a current-thread tokio runtime that owns the AMQP
    /// connection. Returns at once and never fails: a bad URL or a dead broker shows in
    /// [`Publisher::stats`].
    pub fn start(config: Config) -> Publisher {
        let shared = Arc::new(Shared::new());
        let buffer = config.buffer_events.clamp(1, MAX_BUFFER);
        let (events, events_rx) = mpsc::channel(buffer);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let worker = Worker::new(config, buffer, Arc::clone(&shared), events_rx, commands_rx);
        let thread_shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("modelmon-publisher".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(worker.run()),
                    Err(e) => {
                        thread_shared.set_error(&PublishError::Thread(e));
                        thread_shared.set_state(BrokerState::Down);
                    }
                }
            });
        let thread = match spawned {
            Ok(handle) => Some(handle),
            Err(e) => {
                // The worker (and its receiver) is gone, so every record() counts as dropped.
                shared.set_error(&PublishError::Thread(e));
                shared.set_state(BrokerState::Down);
                None
            }
        };
        Publisher {
            inner: Arc::new(Inner {
                events,
                commands,
                shared,
                thread: Mutex::new(thread),
            }),
        }
    }

    /// Queues an event for publishing. Never blocks: when the buffer is full (or the
    /// publisher is shut down) the event is dropped and counted.
    pub fn record(&self, event: Event<'static>) {
        let shared = &self.inner.shared;
        Shared::add(&shared.recorded, 1);
        // An invalid name cannot be routed or accepted downstream; dropping it here
        // keeps it from costing a slot in the buffer.
        if !is_valid_model_name(&event.model) || self.inner.events.try_send(event).is_err() {
            Shared::add(&shared.dropped, 1);
        }
    }

    pub fn stats(&self) -> Stats {
        self.inner.shared.snapshot()
    }

    /// Sends what is buffered; true if, within `timeout`, nothing is left waiting: every
    /// event delivered (confirmed and routed) or counted as dropped. Events held for a
    /// queue to be bound are still waiting.
    /// Blocks the calling thread until then: from async code, call it via `spawn_blocking`.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = sync_channel(1);
        // The worker forgets a waiter once this call has given up on it: flushes with a
        // timeout during a long outage would otherwise pile up until the broker is back.
        let until = std::time::Instant::now().checked_add(timeout);
        if self
            .inner
            .commands
            .send(Command::Flush { reply: tx, until })
            .is_err()
        {
            return false;
        }
        rx.recv_timeout(timeout).unwrap_or(false)
    }

    /// Flushes (for at most `timeout`) and stops the publishing thread. Events recorded
    /// afterwards are dropped and counted. Blocks like [`Publisher::flush`].
    pub fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = sync_channel(1);
        if self
            .inner
            .commands
            .send(Command::Shutdown { timeout, done: tx })
            .is_err()
        {
            return;
        }
        // The worker bounds its own flush by `timeout`; the margin covers closing the connection.
        match rx.recv_timeout(timeout + Duration::from_secs(2)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                let handle = self
                    .inner
                    .thread
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                if let Some(handle) = handle {
                    let _ = handle.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("stats", &self.stats())
            .finish()
    }
}
