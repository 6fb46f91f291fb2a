//! The monitor's own warnings (a webhook that fails, snapshots that cannot be written,
//! desktop notifications that are off), kept for the screen that owns the terminal.
//!
//! Warnings are logged to stderr, but the full-screen display cannot show stderr without
//! tearing, so a user at the TUI would never learn that their alerts stopped reaching
//! anyone. A tracing layer copies each warning here as well; the store task publishes
//! them with every view, so the screens read them as they read any figure.

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

use crate::clock::now_us;

/// How many warnings are kept: enough for the last hours of a monitor in trouble, whose
/// warnings are each said once when a condition starts (not at every occurrence).
const KEPT: usize = 100;

/// One warning, as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// When it was logged, Unix ms.
    pub at_ms: i64,
    /// The message, with its fields after it (`… (webhook=oncall)`).
    pub text: String,
}

/// The warnings the fronts show: the newest [`KEPT`], oldest first, and how many were
/// logged in all (so a screen can tell which it has not shown yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warnings {
    pub total: u64,
    pub recent: Vec<Warning>,
}

impl Warnings {
    /// The newest warning, if any.
    pub fn newest(&self) -> Option<&Warning> {
        self.recent.last()
    }
}

/// A bounded log of warnings, written by [`Layer`] and read by the store task.
#[derive(Debug, Default)]
pub struct WarningLog {
    inner: Mutex<Warnings>,
}

impl WarningLog {
    /// The process's log: tracing's subscriber is process-wide, and so is this.
    pub fn global() -> &'static WarningLog {
        static LOG: LazyLock<WarningLog> = LazyLock::new(WarningLog::default);
        &LOG
    }

    pub fn push(&self, warning: Warning) {
        let mut w = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if w.recent.len() == KEPT {
            w.recent.remove(0);
        }
        w.recent.push(warning);
        w.total += 1;
    }

    /// How many warnings were logged so far.
    pub fn total(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    /// A copy of what is kept now.
    pub fn snapshot(&self) -> Warnings {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What the store task publishes: a new copy only when a warning was logged since the
/// last one, so a view costs one lock and a compare when nothing happened.
#[derive(Debug, Default)]
pub struct Published {
    current: Arc<Warnings>,
}

impl Published {
    pub fn latest(&mut self, log: &WarningLog) -> Arc<Warnings> {
        if log.total() != self.current.total {
            self.current = Arc::new(log.snapshot());
        }
        Arc::clone(&self.current)
    }
}

/// Copies WARN and ERROR events into a [`WarningLog`]; the caller filters by target.
pub struct Layer {
    log: &'static WarningLog,
}

impl Layer {
    pub fn new(log: &'static WarningLog) -> Self {
        Self { log }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > tracing::Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        self.log.push(Warning {
            at_ms: now_us() / 1000,
            text: text.finish(),
        });
    }
}

/// An event's message, then its other fields in parentheses.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Text {
    fn finish(self) -> String {
        if self.fields.is_empty() {
            self.message
        } else {
            format!("{} ({})", self.message, self.fields)
        }
    }
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
            return;
        }
        if !self.fields.is_empty() {
            self.fields.push_str(", ");
        }
        let _ = write!(self.fields, "{}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &format_args!("{value}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn logged(log: &'static WarningLog, f: impl FnOnce()) {
        let subscriber = tracing_subscriber::registry().with(Layer::new(log));
        tracing::subscriber::with_default(subscriber, f);
    }

    #[test]
    fn warnings_and_errors_are_kept_with_their_fields_info_is_not() {
        let log: &'static WarningLog = Box::leak(Box::default());
        logged(log, || {
            tracing::info!("serving on http://127.0.0.1:8080");
            tracing::warn!(webhook = %"oncall", attempts = 3, "alert notification not delivered");
            tracing::error!("the web server stopped: address in use");
        });
        let w = log.snapshot();
        assert_eq!(w.total, 2);
        let texts: Vec<&str> = w.recent.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "alert notification not delivered (webhook=oncall, attempts=3)",
                "the web server stopped: address in use",
            ]
        );
        assert!(
            w.recent[0].at_ms > 1_700_000_000_000,
            "stamped with the clock"
        );
    }

    #[test]
    fn the_log_keeps_the_newest_and_counts_them_all() {
        let log = WarningLog::default();
        for i in 0..KEPT + 5 {
            log.push(Warning {
                at_ms: i as i64,
                text: format!("w{i}"),
            });
        }
        let w = log.snapshot();
        assert_eq!(w.total, (KEPT + 5) as u64);
        assert_eq!(w.recent.len(), KEPT);
        assert_eq!(w.recent[0].text, "w5");
        assert_eq!(w.newest().map(|w| w.text.as_str()), Some("w104"));
    }

    #[test]
    fn a_new_copy_is_published_only_after_a_new_warning() {
        let log: &'static WarningLog = Box::leak(Box::default());
        let mut published = Published::default();
        let first = published.latest(log);
        assert!(Arc::ptr_eq(&first, &published.latest(log)));
        log.push(Warning {
            at_ms: 1,
            text: "disk full".into(),
        });
        let second = published.latest(log);
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.recent.len(), 1);
        assert!(Arc::ptr_eq(&second, &published.latest(log)));
    }
}
