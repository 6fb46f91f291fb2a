//! A staging area between the request path and the publisher.
//!
//! The publisher's queue wakes its thread on every event it receives while that thread
//! sleeps. At model-API request rates (one request every few hundred µs) the thread is
//! always asleep when the next event comes, so every request would pay a wake-up system
//! call, several µs, on the interpreter's thread. Here events are appended to a vector
//! under an uncontended lock, and a small thread of ours hands them over in bulk every
//! few milliseconds: one wake-up per interval instead of one per request.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use modelmon_contract::Event;
use modelmon_publisher::Publisher;

/// Past this many staged events the request path hands its event over directly, so a
/// stalled mover can never make the stage grow without bound.
const MAX_STAGED: usize = 8192;

pub struct Stage {
    shared: Arc<Shared>,
    mover: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    staged: Mutex<Vec<Event<'static>>>,
    publisher: Publisher,
    stop: AtomicBool,
    last_moved: AtomicUsize,
}

impl Shared {
    /// The staged events, leaving room for as many again, so that the request path does
    /// not grow the vector (a reallocation and a copy) a few times every interval.
    /// Allocated outside the lock, and not at all while nothing is recorded.
    fn take(&self) -> Vec<Event<'static>> {
        let last = self.last_moved.load(Ordering::Relaxed);
        let fresh = if last == 0 {
            Vec::new()
        } else {
            Vec::with_capacity(last.min(MAX_STAGED))
        };
        let mut staged = self.staged.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *staged, fresh)
    }

    fn move_all(&self) {
        let events = self.take();
        self.last_moved.store(events.len(), Ordering::Relaxed);
        for event in events {
            self.publisher.record(event);
        }
    }
}

impl Stage {
    pub fn start(publisher: Publisher, interval: Duration) -> Stage {
        let shared = Arc::new(Shared {
            staged: Mutex::new(Vec::with_capacity(256)),
            publisher,
            stop: AtomicBool::new(false),
            last_moved: AtomicUsize::new(0),
        });
        let mover_shared = Arc::clone(&shared);
        let mover = std::thread::Builder::new()
            .name("modelmon-stage".into())
            .spawn(move || {
                while !mover_shared.stop.load(Ordering::Relaxed) {
                    std::thread::sleep(interval);
                    mover_shared.move_all();
                }
            })
            .ok();
        Stage {
            shared,
            mover: Mutex::new(mover),
        }
    }

    pub fn record(&self, event: Event<'static>) {
        let overflow = {
            let mut staged = self
                .shared
                .staged
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if staged.len() < MAX_STAGED && !self.shared.stop.load(Ordering::Relaxed) {
                staged.push(event);
                None
            } else {
                Some(event)
            }
        };
        if let Some(event) = overflow {
            self.shared.publisher.record(event);
        }
    }

    pub fn publisher(&self) -> &Publisher {
        &self.shared.publisher
    }

    /// Hands every staged event to the publisher now (before a flush or a shutdown).
    pub fn move_all(&self) {
        self.shared.move_all();
    }

    /// Stops the mover thread after a last hand-over.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let handle = self
            .mover
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        self.shared.move_all();
    }

    /// See `Core::abandon`: after a fork nothing of this may ever be dropped.
    pub fn leak(&self) {
        std::mem::forget(Arc::clone(&self.shared));
        // The mover thread does not exist in a forked child; its handle must not be
        // dropped (that would detach a thread of the parent). try_lock: the parent may
        // have held this lock at the fork, and then it stays held here forever.
        if let Ok(mut mover) = self.mover.try_lock()
            && let Some(handle) = mover.take()
        {
            std::mem::forget(handle);
        }
    }
}
