//! Sending alert transitions out: desktop notifications, webhooks and Alertmanager.
//!
//! Each notifier is a task with its own bounded queue. The store task only ever
//! `try_send`s into those queues, so a dead or slow endpoint fills its own queue and
//! loses its own notifications (counted, told once) but never blocks ingest or the UI.
//!
//! What one evaluation changed travels as one [`Group`]: an incident that hits five
//! models at once is one message per receiver, not five.

pub mod alertmanager;
pub mod desktop;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::engine::{Alert, Transition, TransitionKind};
use crate::config::Secs;

/// The transitions of one evaluation that one notifier receives, firing first. Shared:
/// a notifier that gets every transition gets the very same allocation as the others.
pub type Group = Arc<[Transition]>;

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
    /// Prometheus Alertmanager's `POST /api/v2/alerts`, firing alerts re-sent every
    /// `resend` so that Alertmanager does not resolve them on its own.
    Alertmanager,
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
    /// `format = "alertmanager"` only: how often firing alerts are posted again (default
    /// 60 s, as Prometheus does). Each post says the alert ends four of these later
    /// unless posted again, so Alertmanager resolves it by itself if the monitor dies.
    #[serde(default)]
    pub resend: Option<Secs>,
}

impl WebhookConfig {
    /// How often an Alertmanager webhook re-posts its firing alerts.
    pub fn resend_every(&self) -> Duration {
        self.resend.map_or(alertmanager::DEFAULT_RESEND, |r| r.0)
    }
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
            let url = match w.format {
                WebhookFormat::Alertmanager => alertmanager::alerts_url(&w.url),
                WebhookFormat::Json | WebhookFormat::Slack => webhook::parse_url(&w.url),
            };
            if let Err(e) = url {
                return Err(("notify.webhooks.url", e.to_string()));
            }
            match (w.format, w.resend) {
                (WebhookFormat::Alertmanager, Some(r)) if r.0.is_zero() => {
                    return Err(("notify.webhooks.resend", "must be above 0".into()));
                }
                (WebhookFormat::Json | WebhookFormat::Slack, Some(_)) => {
                    return Err((
                        "notify.webhooks.resend",
                        "only applies to format = \"alertmanager\"".into(),
                    ));
                }
                _ => {}
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
    tx: mpsc::Sender<Group>,
    /// Groups lost because the queue was full.
    dropped: u64,
    /// Whether it keeps firing alerts alive by re-posting them (Alertmanager), and so
    /// must be told after a restart which alerts are still firing.
    resends: bool,
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
                resends: false,
            });
        }
        for w in &cfg.webhooks {
            let (tx, rx) = mpsc::channel(w.queue);
            let resends = w.format == WebhookFormat::Alertmanager;
            if resends {
                tokio::spawn(alertmanager::run(w.clone(), cfg.link.clone(), rx));
            } else {
                tokio::spawn(webhook::run(w.clone(), cfg.link.clone(), rx));
            }
            sinks.push(Sink {
                name: w.name.clone(),
                tx,
                dropped: 0,
                resends,
            });
        }
        Self { sinks }
    }

    /// No notifier at all (`--no-alerts`, tests of the engine alone).
    pub fn none() -> Self {
        Self { sinks: Vec::new() }
    }

    /// Queues what one evaluation changed: one group per notifier, holding the
    /// transitions whose rule names it.
    pub fn dispatch(&mut self, mut transitions: Vec<Transition>) {
        if transitions.is_empty() {
            return;
        }
        // Firing, then reminders, then resolved: what needs a look comes first. Stable,
        // so the engine's order (monitor, then models as the view lists them) stays.
        transitions.sort_by_key(|t| match t.kind {
            TransitionKind::Firing => 0,
            TransitionKind::Reminder => 1,
            TransitionKind::Resolved => 2,
        });
        let all: Group = transitions.into();
        for sink in &mut self.sinks {
            let mine = all.iter().filter(|t| t.alert.notifies(&sink.name)).count();
            let group = if mine == all.len() {
                Arc::clone(&all)
            } else if mine == 0 {
                continue;
            } else {
                all.iter()
                    .filter(|t| t.alert.notifies(&sink.name))
                    .cloned()
                    .collect()
            };
            sink.send(group);
        }
    }

    /// Tells the notifiers that keep alerts alive (Alertmanager) which alerts are still
    /// firing, when they start with alerts already notified: after a restart brought
    /// them back, or a reload started new notifiers. Without this Alertmanager would
    /// resolve them while they still fire. Nothing is sent to the other notifiers.
    pub fn resume(&mut self, firing: &[Alert]) {
        for sink in self.sinks.iter_mut().filter(|s| s.resends) {
            let group: Group = firing
                .iter()
                .filter(|a| a.notified && !a.silenced && a.notifies(&sink.name))
                .map(|a| Transition {
                    kind: TransitionKind::Reminder,
                    alert: a.clone(),
                })
                .collect();
            if !group.is_empty() {
                sink.send(group);
            }
        }
    }
}

impl Sink {
    fn send(&mut self, group: Group) {
        let alerts = group.len();
        if self.tx.try_send(group).is_err() {
            self.dropped += 1;
            // Told on the first loss and then every 100, not per notification.
            if self.dropped % 100 == 1 {
                tracing::warn!(
                    notifier = %self.name,
                    dropped = self.dropped,
                    alerts,
                    "alert notifier is not keeping up (endpoint down or slow); notifications dropped"
                );
            }
        }
    }
}

/// How many alerts of `group` fire (reminders included) and how many resolved.
pub fn counts(group: &[Transition]) -> (usize, usize) {
    let resolved = group
        .iter()
        .filter(|t| t.kind == TransitionKind::Resolved)
        .count();
    (group.len() - resolved, resolved)
}

/// Where the dashboard shows `alert`: the model's page, or the dashboard's root for an
/// alert about the monitor itself. `base` is `[notify] link`.
pub fn deep_link(base: &str, alert: &Alert) -> String {
    let base = base.trim_end_matches('/');
    if alert.is_monitor() {
        format!("{base}/")
    } else {
        // The dashboard's hash route is `#/model/NAME`, NAME read with
        // decodeURIComponent (web/src/App.vue).
        format!("{base}/#/model/{}", percent_encode(&alert.model))
    }
}

/// Every byte outside RFC 3986's unreserved characters as `%XX`: a model name may hold
/// spaces, slashes, `#` or non-ASCII letters, and none of them may end the route.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// A value with the unit its metric has, for people.
pub fn show_value(metric: super::rules::Metric, v: Option<f64>) -> String {
    v.map_or_else(|| "unknown".into(), |v| metric.show(v))
}

/// The word for a transition, in capitals for log lines and chat.
pub fn word(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Firing => "FIRING",
        TransitionKind::Reminder => "STILL FIRING",
        TransitionKind::Resolved => "RESOLVED",
    }
}

/// One line a person reads: what, where, how bad, against what. The alert's
/// explanation says it with the figures; an alert saved by an older version has none,
/// and then the metric, its value and the threshold stand in.
pub fn headline(t: &Transition) -> String {
    headline_on(t, t.alert.subject())
}

/// [`headline`] with the subject written as `subject` (a chat link, say).
pub fn headline_on(t: &Transition, subject: &str) -> String {
    let a = &t.alert;
    format!(
        "[{}] {} {} on {subject}: {}",
        word(t.kind),
        a.severity.as_str(),
        a.rule,
        explanation(a)
    )
}

/// The alert's one sentence, or the bare figures when it has none.
pub fn explanation(a: &Alert) -> String {
    if !a.explanation.is_empty() {
        return a.explanation.clone();
    }
    let op = if a.metric.fires_below() { "<" } else { ">" };
    format!(
        "{} = {} ({op} {})",
        a.metric.as_str(),
        show_value(a.metric, a.value),
        show_value(a.metric, Some(a.threshold)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::engine::{AlertPhase, MONITOR};
    use crate::alert::rules::{Metric, Severity};

    /// An alert as the engine hands it over after `kind`.
    pub(super) fn transition(kind: TransitionKind, rule: &str, model: &str) -> Transition {
        let resolved = kind == TransitionKind::Resolved;
        Transition {
            kind,
            alert: Alert {
                rule: rule.into(),
                model: model.into(),
                metric: Metric::P95Ms,
                severity: Severity::Warning,
                state: if resolved {
                    AlertPhase::Resolved
                } else {
                    AlertPhase::Firing
                },
                value: Some(470.0),
                threshold: 12.0,
                resolve: 8.0,
                normal: Some(4.0),
                relative: true,
                explanation: "p95 470 ms, 117× its normal 4.0 ms (last hour)".into(),
                since_ms: 1_795_905_631_200,
                active_since_ms: 1_795_905_616_200,
                started_ms: Some(1_795_905_631_200),
                resolved_ms: resolved.then_some(1_795_905_931_200),
                last_bad_ms: 1_795_905_631_200,
                last_notified_ms: Some(1_795_905_631_200),
                notified: true,
                acknowledged: false,
                silenced: false,
                notify: None,
                checks: 4,
                bad_checks: 4,
                earlier: false,
                stayed_from_ms: None,
                epoch: 0,
            },
        }
    }

    #[test]
    fn deep_links_use_the_dashboards_route_and_encode_the_name() {
        let t = transition(TransitionKind::Firing, "slow", "fraud det/v2+ü#1");
        assert_eq!(
            deep_link("http://mon:9464/", &t.alert),
            "http://mon:9464/#/model/fraud%20det%2Fv2%2B%C3%BC%231"
        );
        assert_eq!(percent_encode("a-b.c_d~9"), "a-b.c_d~9");
        let m = transition(TransitionKind::Firing, "broker_down", MONITOR);
        assert_eq!(deep_link("http://mon:9464", &m.alert), "http://mon:9464/");
    }

    #[test]
    fn headlines_carry_the_explanation() {
        let t = transition(TransitionKind::Firing, "latency_regression", "resnet50");
        assert_eq!(
            headline(&t),
            "[FIRING] warning latency_regression on resnet50: p95 470 ms, 117× its normal 4.0 ms (last hour)"
        );
        let mut old = transition(TransitionKind::Resolved, "slow", MONITOR);
        old.alert.explanation.clear();
        assert_eq!(
            headline(&old),
            "[RESOLVED] warning slow on monitor: p95_ms = 470 ms (> 12.0 ms)"
        );
    }

    #[test]
    fn one_evaluation_is_one_group_per_notifier_filtered_by_the_rules_notify() {
        let (all_tx, mut all_rx) = mpsc::channel(4);
        let (ops_tx, mut ops_rx) = mpsc::channel(4);
        let (full_tx, _full_rx) = mpsc::channel(1);
        let sink = |name: &str, tx| Sink {
            name: name.into(),
            tx,
            dropped: 0,
            resends: false,
        };
        let mut n = Notifiers {
            sinks: vec![
                sink("all", all_tx),
                sink("ops", ops_tx),
                sink("full", full_tx),
            ],
        };
        let resolved = transition(TransitionKind::Resolved, "slow", "a");
        let mut only_all = transition(TransitionKind::Firing, "errors", "b");
        only_all.alert.notify = Some(vec!["all".into(), "full".into()]);
        let firing = transition(TransitionKind::Firing, "slow", "c");
        n.dispatch(vec![resolved, only_all, firing]);
        let got = all_rx.try_recv().expect("one group");
        let order: Vec<(&str, TransitionKind)> = got
            .iter()
            .map(|t| (t.alert.model.as_str(), t.kind))
            .collect();
        assert_eq!(
            order,
            [
                ("b", TransitionKind::Firing),
                ("c", TransitionKind::Firing),
                ("a", TransitionKind::Resolved)
            ],
            "firing first, in the engine's order"
        );
        assert!(all_rx.try_recv().is_err(), "one message, not one per alert");
        let ops = ops_rx.try_recv().expect("ops gets its part");
        assert_eq!(ops.len(), 2);
        assert!(ops.iter().all(|t| t.alert.rule == "slow"));
        // A full queue loses the group, counted once however many alerts it held.
        n.dispatch(vec![
            transition(TransitionKind::Firing, "slow", "d"),
            transition(TransitionKind::Firing, "errors", "d"),
        ]);
        assert_eq!(n.sinks[2].dropped, 1);
        n.dispatch(Vec::new());
        assert_eq!(all_rx.try_recv().map(|g| g.len()).ok(), Some(2));
        assert!(
            all_rx.try_recv().is_err(),
            "nothing for an empty evaluation"
        );
    }

    #[test]
    fn a_restart_resumes_only_the_notifiers_that_re_send() {
        let (am_tx, mut am_rx) = mpsc::channel(4);
        let (hook_tx, mut hook_rx) = mpsc::channel(4);
        let mut n = Notifiers {
            sinks: vec![
                Sink {
                    name: "am".into(),
                    tx: am_tx,
                    dropped: 0,
                    resends: true,
                },
                Sink {
                    name: "hook".into(),
                    tx: hook_tx,
                    dropped: 0,
                    resends: false,
                },
            ],
        };
        let firing = transition(TransitionKind::Firing, "slow", "a").alert;
        let mut silenced = transition(TransitionKind::Firing, "slow", "b").alert;
        silenced.silenced = true;
        n.resume(&[firing, silenced]);
        let got = am_rx.try_recv().expect("the Alertmanager notifier is told");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].kind, TransitionKind::Reminder);
        assert!(hook_rx.try_recv().is_err(), "nothing is notified again");
    }
}
