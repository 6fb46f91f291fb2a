//! Sending alert transitions out: desktop notifications and webhooks.
//!
//! Each notifier is a task with its own bounded queue. The store task only ever
//! `try_send`s into those queues, so a dead or slow endpoint fills its own queue and
//! loses its own notifications (counted, told once) but never blocks ingest or the UI.

pub mod desktop;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::engine::Transition;
use crate::config::Secs;

/// `[notify]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    pub desktop: DesktopConfig,
    pub webhooks: Vec<WebhookConfig>,
    /// Base URL of the `--serve` dashboard, linked from notifications when set.
    pub link: Option<String>,
}

/// `[notify.desktop]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DesktopConfig {
    pub enabled: bool,
}

impl Default for DesktopConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// What a webhook's body looks like.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The generic JSON object (see docs/alerts.md).
    #[default]
    Json,
    /// `{"text": …}`, what Slack's (and Mattermost's, Rocket.Chat's) incoming webhooks take.
    Slack,
}

/// `[[notify.webhooks]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// What rules name in `notify = [...]`.
    pub name: String,
    /// `http://host:port/path` or `https://…`.
    pub url: String,
    /// PEM roots trusted for this webhook on top of the system's (a private CA, a
    /// self-signed relay).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub format: WebhookFormat,
    /// Per attempt: connect, send, and the answer's head.
    #[serde(default = "default_timeout")]
    pub timeout: Secs,
    /// Attempts after the first one fails.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First pause between attempts; doubled each time, at most 30 s.
    #[serde(default = "default_backoff")]
    pub backoff: Secs,
    /// Notifications waiting for this endpoint; beyond it new ones are dropped and counted.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

fn default_timeout() -> Secs {
    Secs(Duration::from_secs(5))
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> Secs {
    Secs(Duration::from_millis(500))
}
fn default_queue() -> usize {
    256
}

impl NotifySection {
    /// What the types cannot check: `(key, message)` of the first problem.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let mut names = vec!["desktop"];
        for w in &self.webhooks {
            if names.contains(&w.name.as_str()) {
                return Err((
                    "notify.webhooks.name",
                    format!("{:?} is used twice (or is `desktop`)", w.name),
                ));
            }
            names.push(&w.name);
            if let Err(e) = webhook::parse_url(&w.url) {
                return Err(("notify.webhooks.url", e.to_string()));
            }
            if let Some(Err(e)) = w.ca_file.as_deref().map(webhook::read_ca_file) {
                return Err(("notify.webhooks.ca_file", e.to_string()));
            }
            if w.queue == 0 {
                return Err(("notify.webhooks.queue", "must be at least 1".into()));
            }
            if w.timeout.0.is_zero() {
                return Err(("notify.webhooks.timeout", "must be above 0".into()));
            }
        }
        Ok(())
    }
}

/// The queue of one notifier, and what it lost.
struct Sink {
    name: String,
    tx: mpsc::Sender<Arc<Transition>>,
    dropped: u64,
}

/// All notifiers. Owned by the store task; `dispatch` never waits.
pub struct Notifiers {
    sinks: Vec<Sink>,
}

/// Desktop notifications queue this many before dropping.
const DESKTOP_QUEUE: usize = 64;

impl Notifiers {
    /// Starts one task per notifier. Must run inside a tokio runtime.
    pub fn start(cfg: &NotifySection) -> Self {
        let mut sinks = Vec::new();
        if cfg.desktop.enabled {
            let (tx, rx) = mpsc::channel(DESKTOP_QUEUE);
            tokio::spawn(desktop::run(rx, cfg.link.clone()));
            sinks.push(Sink {
                name: "desktop".into(),
                tx,
                dropped: 0,
            });
        }
        for w in &cfg.webhooks {
            let (tx, rx) = mpsc::channel(w.queue);
            tokio::spawn(webhook::run(w.clone(), cfg.link.clone(), rx));
            sinks.push(Sink {
                name: w.name.clone(),
                tx,
                dropped: 0,
            });
        }
        Self { sinks }
    }

    /// No notifier at all (`--no-alerts`, tests of the engine alone).
    pub fn none() -> Self {
        Self { sinks: Vec::new() }
    }

    /// Queues each transition for the notifiers its rule names.
    pub fn dispatch(&mut self, transitions: Vec<Transition>) {
        for t in transitions {
            let t = Arc::new(t);
            for sink in &mut self.sinks {
                if !t.alert.notifies(&sink.name) {
                    continue;
                }
                if sink.tx.try_send(Arc::clone(&t)).is_err() {
                    sink.dropped += 1;
                    // Told on the first loss and then every 100, not per notification.
                    if sink.dropped % 100 == 1 {
                        tracing::warn!(
                            notifier = %sink.name,
                            dropped = sink.dropped,
                            "alert notifier is not keeping up (endpoint down or slow); notifications dropped"
                        );
                    }
                }
            }
        }
    }
}

/// `ms` as an RFC 3339 UTC timestamp with milliseconds.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil: proleptic Gregorian, exact for any day count.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

/// A value with the unit its metric has, for people.
pub fn show_value(metric: super::rules::Metric, v: Option<f64>) -> String {
    v.map_or_else(|| "unknown".into(), |v| metric.show(v))
}

/// One line a person reads: what, where, how bad, against what.
pub fn headline(t: &Transition) -> String {
    use super::engine::TransitionKind;
    let a = &t.alert;
    let word = match t.kind {
        TransitionKind::Firing => "FIRING",
        TransitionKind::Reminder => "STILL FIRING",
        TransitionKind::Resolved => "RESOLVED",
    };
    let op = if a.metric.fires_below() { "<" } else { ">" };
    format!(
        "[{word}] {} {} on {}: {} = {} ({op} {})",
        a.severity.as_str(),
        a.rule,
        a.model,
        a.metric.as_str(),
        show_value(a.metric, a.value),
        show_value(a.metric, Some(a.threshold)),
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_798_761_599_000), "2026-12-31T23:59:59.000Z");
    }
}
