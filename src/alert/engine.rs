//! The alert lifecycle, as a pure function of the store's view and a clock.
//!
//! inactive → pending → firing → resolved, with Prometheus' semantics: a pending alert
//! whose condition clears is dropped without a word, and `for` must hold without a break.
//! Nothing here does I/O or reads the time: [`evaluate`] is driven by the store task in
//! production and by a virtual clock in tests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::rules::{Metric, Rule, RuleSet, Severity};
use crate::store::view::{ModelResources, ModelView, View};

/// Resolved alerts are kept this long for the alerts pane and `--batch`.
pub const HISTORY_MS: i64 = 24 * 3600 * 1000;
/// And at most this many, so a flapping fleet cannot grow memory.
pub const HISTORY_MAX: usize = 1000;
/// A `qps` rule fires only for a model that had traffic this recently: a model that
/// went away yesterday is not "dropping traffic" today.
pub const TRAFFIC_MEMORY_MS: i64 = 3600 * 1000;

/// One alert is one rule on one model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertKey {
    pub rule: String,
    pub model: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertPhase {
    Pending,
    Firing,
    Resolved,
}

impl AlertPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// An alert and everything a notifier or a screen needs to show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: String,
    pub model: String,
    pub metric: Metric,
    pub severity: Severity,
    pub state: AlertPhase,
    /// The latest value; `None` once unknown (too few requests, no data).
    pub value: Option<f64>,
    pub threshold: f64,
    pub resolve: f64,
    /// When the current state began, Unix ms.
    pub since_ms: i64,
    /// When the condition first held (pending began), Unix ms.
    pub active_since_ms: i64,
    /// When it started firing.
    pub started_ms: Option<i64>,
    pub resolved_ms: Option<i64>,
    /// Last evaluation at which the condition held.
    pub last_bad_ms: i64,
    /// Last firing notification or reminder sent.
    pub last_notified_ms: Option<i64>,
    /// Whether the firing was notified: only then is the resolve notified too.
    pub notified: bool,
    pub acknowledged: bool,
    pub silenced: bool,
    /// The rule's notifier names, kept so the resolve goes where the firing went.
    pub notify: Option<Vec<String>>,
    /// The evaluation that last visited it.
    #[serde(skip)]
    pub(crate) epoch: u64,
}

impl Alert {
    pub fn key(&self) -> AlertKey {
        AlertKey {
            rule: self.rule.clone(),
            model: self.model.clone(),
        }
    }

    /// Whether a notifier named `name` gets this alert.
    pub fn notifies(&self, name: &str) -> bool {
        self.notify
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == name))
    }
}

/// What a silence covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceTarget {
    /// Every alert of this model.
    Model(String),
    /// One alert.
    Alert(AlertKey),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub target: SilenceTarget,
    pub until_ms: i64,
}

impl Silence {
    fn covers(&self, key: &AlertKey) -> bool {
        match &self.target {
            SilenceTarget::Model(m) => *m == key.model,
            SilenceTarget::Alert(k) => k == key,
        }
    }
}

/// What a notifier must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransitionKind {
    Firing,
    /// Still firing after `repeat_interval`, not acknowledged.
    Reminder,
    Resolved,
}

/// One notification to send: the alert as it is after the transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub kind: TransitionKind,
    pub alert: Alert,
}

/// All alert state: the engine's memory between evaluations.
#[derive(Debug, Default)]
pub struct AlertState {
    rules: RuleSet,
    active: BTreeMap<AlertKey, Alert>,
    history: VecDeque<Alert>,
    silences: Vec<Silence>,
    /// Last time each `qps` rule saw healthy traffic, per model.
    traffic_seen: HashMap<AlertKey, i64>,
    /// Restart and OOM counters: the last count seen and when it last went up.
    counters: HashMap<AlertKey, (u64, Option<i64>)>,
    /// Counts evaluations; an active alert not stamped with the current one was not
    /// visited (its model or rule left the view).
    epoch: u64,
    /// After a restart the store's window is empty for a while: until then a restored
    /// firing alert whose value is unknown stays firing instead of resolving.
    hold_unknown_until_ms: i64,
}

/// How long restored firing alerts wait for data before unknown counts as cleared.
pub const RESTORE_GRACE_MS: i64 = 120_000;

/// What the screens and `--batch` read: a frozen copy of the alert state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertsView {
    /// Firing first, then pending; worst severity first, then oldest.
    pub active: Vec<Alert>,
    /// Resolved in the last 24 h, newest first.
    pub recent: Vec<Alert>,
    pub silences: Vec<Silence>,
}

impl AlertsView {
    /// A model's alerts: active ones, then its resolved ones, newest first.
    pub fn for_model<'a>(&'a self, model: &'a str) -> impl Iterator<Item = &'a Alert> + 'a {
        self.active
            .iter()
            .chain(&self.recent)
            .filter(move |a| a.model == model)
    }

    /// Whether `model` has a firing alert (the overview marks it).
    pub fn is_firing(&self, model: &str) -> bool {
        self.active
            .iter()
            .any(|a| a.model == model && a.state == AlertPhase::Firing)
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl AlertState {
    pub fn new(rules: RuleSet) -> Self {
        Self {
            rules,
            ..Self::default()
        }
    }

    /// Mutes notifications for `target` until `now_ms + for_`. Alerts still change state
    /// and show; they just do not notify. A firing alert notifies once the silence ends.
    pub fn silence(&mut self, target: SilenceTarget, for_: Duration, now_ms: i64) {
        let until_ms = now_ms.saturating_add(ms(for_));
        self.silences.retain(|s| s.target != target);
        self.silences.push(Silence { target, until_ms });
        self.refresh_silenced(now_ms);
    }

    /// Ends silences of `target` early.
    pub fn unsilence(&mut self, target: &SilenceTarget, now_ms: i64) {
        self.silences.retain(|s| s.target != *target);
        self.refresh_silenced(now_ms);
    }

    /// Stops reminders for this firing alert until it resolves. `false` if not firing.
    pub fn acknowledge(&mut self, key: &AlertKey) -> bool {
        match self.active.get_mut(key) {
            Some(a) if a.state == AlertPhase::Firing => {
                a.acknowledged = true;
                true
            }
            _ => false,
        }
    }

    fn is_silenced(&self, key: &AlertKey, now_ms: i64) -> bool {
        self.silences
            .iter()
            .any(|s| s.until_ms > now_ms && s.covers(key))
    }

    fn refresh_silenced(&mut self, now_ms: i64) {
        self.silences.retain(|s| s.until_ms > now_ms);
        let silences = &self.silences;
        for (k, a) in &mut self.active {
            a.silenced = silences.iter().any(|s| s.covers(k));
        }
    }

    /// A frozen copy for readers.
    pub fn view(&self) -> AlertsView {
        let mut active: Vec<Alert> = self.active.values().cloned().collect();
        active.sort_by(|a, b| {
            (b.state == AlertPhase::Firing)
                .cmp(&(a.state == AlertPhase::Firing))
                .then(b.severity.cmp(&a.severity))
                .then(a.active_since_ms.cmp(&b.active_since_ms))
        });
        AlertsView {
            active,
            recent: self.history.iter().rev().cloned().collect(),
            silences: self.silences.clone(),
        }
    }

    /// Copies of what is saved across restarts: active alerts, history, silences.
    pub fn parts(&self) -> (Vec<Alert>, Vec<Alert>, Vec<Silence>) {
        (
            self.active.values().cloned().collect(),
            self.history.iter().cloned().collect(),
            self.silences.clone(),
        )
    }

    /// Takes back saved state: firing alerts stay firing (and notified), so a restart
    /// does not notify them again; what has expired meanwhile is dropped.
    pub fn restore(&mut self, saved: super::persist::Saved, now_ms: i64) {
        for a in saved.active {
            self.active.insert(a.key(), a);
        }
        self.history = saved
            .history
            .into_iter()
            .filter(|a| a.resolved_ms.unwrap_or(0) >= now_ms - HISTORY_MS)
            .collect();
        self.silences = saved.silences;
        self.hold_unknown_until_ms = now_ms + RESTORE_GRACE_MS;
        self.refresh_silenced(now_ms);
    }

    /// Active alerts (pending and firing), for tests and the snapshot.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }
}

/// The value `rule` judges for model `m`, or `None` when it is unknown: too few
/// requests, or a container figure nobody feeds (no Docker, no container mapped).
pub fn value_of(rule: &Rule, m: &ModelView, res: Option<&ModelResources>) -> Option<f64> {
    let s = &m.stats;
    let enough = |requests: u64| requests >= rule.min_requests.max(1);
    match rule.metric {
        Metric::P50Ms => s.p50_ms.filter(|_| enough(s.requests)),
        Metric::P95Ms => s.p95_ms.filter(|_| enough(s.requests)),
        Metric::P99Ms => s.p99_ms.filter(|_| enough(s.requests)),
        Metric::ErrorRate => match rule.window {
            None => s.error_rate.filter(|_| enough(s.requests)),
            Some(w) => {
                let (requests, errors, _) = series_sums(m, w);
                enough(requests).then(|| errors as f64 / requests as f64)
            }
        },
        // Zero requests is a known zero, not unknown: that is what a dead model looks like.
        Metric::Qps => match rule.window {
            None => Some(s.qps),
            Some(w) => {
                let (requests, _, secs) = series_sums(m, w);
                Some(if secs == 0 {
                    0.0
                } else {
                    requests as f64 / secs as f64
                })
            }
        },
        Metric::CpuPercent => res?.cpu_percent,
        Metric::MemoryPercent => res?.mem_percent,
        Metric::Unhealthy => res?
            .health
            .as_deref()
            .map(|h| f64::from(u8::from(h == "unhealthy"))),
        // Counters become "went up within the window" in `counter_gate`.
        Metric::Restarts => res.map(|r| r.restarts as f64),
        Metric::OomKills => res.map(|r| r.oom_kills as f64),
    }
}

/// Requests, errors and seconds over the last `window` of the per-second series.
fn series_sums(m: &ModelView, window: Duration) -> (u64, u64, u64) {
    let n = usize::try_from(window.as_secs()).unwrap_or(usize::MAX);
    let tail = &m.series[m.series.len().saturating_sub(n)..];
    let (r, e) = tail
        .iter()
        .fold((0, 0), |(r, e), p| (r + p.requests, e + p.errors));
    (r, e, tail.len() as u64)
}

/// Advances every alert to `now_ms` given `view`, and returns what must be notified.
pub fn evaluate(state: &mut AlertState, view: &View, now_ms: i64) -> Vec<Transition> {
    let mut out = Vec::new();
    state.silences.retain(|s| s.until_ms > now_ms);
    state.epoch += 1;
    for m in &view.models {
        let rules = state.rules.for_model(&m.model);
        for rule in rules.iter() {
            let mut value = value_of(rule, m, view.resources(&m.model));
            let key = AlertKey {
                rule: rule.name.clone(),
                model: m.model.clone(),
            };
            match rule.metric {
                Metric::Qps => value = traffic_gate(state, &key, rule, m, value, now_ms),
                Metric::Restarts | Metric::OomKills => {
                    value = counter_gate(state, &key, rule, value, now_ms);
                }
                _ => {}
            }
            step(state, key, Some(rule), value, now_ms, &mut out);
        }
    }
    // Alerts whose model or rule vanished from the view: their value is unknown now.
    let epoch = state.epoch;
    let gone: Vec<AlertKey> = state
        .active
        .iter()
        .filter(|(_, a)| a.epoch != epoch)
        .map(|(k, _)| k.clone())
        .collect();
    for key in gone {
        step(state, key, None, None, now_ms, &mut out);
    }
    let horizon = now_ms - HISTORY_MS;
    while state
        .history
        .front()
        .is_some_and(|a| a.resolved_ms.unwrap_or(0) < horizon)
        || state.history.len() > HISTORY_MAX
    {
        state.history.pop_front();
    }
    out
}

/// A drop in traffic counts only for a model that had healthy traffic within the last
/// hour: otherwise a model that never had much (or left long ago) would fire forever.
fn traffic_gate(
    state: &mut AlertState,
    key: &AlertKey,
    rule: &Rule,
    m: &ModelView,
    value: Option<f64>,
    now_ms: i64,
) -> Option<f64> {
    let v = value?;
    let requests = rule
        .window
        .map_or(m.stats.requests, |w| series_sums(m, w).0);
    if v >= rule.resolve && requests >= rule.min_requests {
        state.traffic_seen.insert(key.clone(), now_ms);
    }
    let recent = state
        .traffic_seen
        .get(key)
        .is_some_and(|&t| now_ms - t <= TRAFFIC_MEMORY_MS);
    recent.then_some(v)
}

/// A cumulative counter as "how many times it went up within the window": counts that
/// were already there when the monitor first saw the model never fire.
fn counter_gate(
    state: &mut AlertState,
    key: &AlertKey,
    rule: &Rule,
    value: Option<f64>,
    now_ms: i64,
) -> Option<f64> {
    let count = value? as u64;
    let window = ms(rule.window.unwrap_or(Duration::from_secs(300)));
    let entry = state.counters.entry(key.clone()).or_insert((count, None));
    if count > entry.0 {
        entry.1 = Some(now_ms);
    }
    entry.0 = count;
    Some(f64::from(u8::from(
        entry.1.is_some_and(|t| now_ms - t < window),
    )))
}

/// One alert's step of the lifecycle.
fn step(
    state: &mut AlertState,
    key: AlertKey,
    rule: Option<&Rule>,
    value: Option<f64>,
    now_ms: i64,
    out: &mut Vec<Transition>,
) {
    let silenced = state.is_silenced(&key, now_ms);
    let firing = state
        .active
        .get(&key)
        .is_some_and(|a| a.state == AlertPhase::Firing);
    let bad = match (rule, value) {
        (Some(r), Some(v)) => r.is_bad(v, firing),
        _ => false,
    };
    if firing && value.is_none() && now_ms < state.hold_unknown_until_ms {
        return;
    }
    let Some(alert) = state.active.get_mut(&key) else {
        let Some(rule) = rule.filter(|_| bad) else {
            return;
        };
        let mut alert = Alert {
            rule: key.rule.clone(),
            model: key.model.clone(),
            metric: rule.metric,
            severity: rule.severity,
            state: AlertPhase::Pending,
            value,
            threshold: rule.threshold,
            resolve: rule.resolve,
            since_ms: now_ms,
            active_since_ms: now_ms,
            started_ms: None,
            resolved_ms: None,
            last_bad_ms: now_ms,
            last_notified_ms: None,
            notified: false,
            acknowledged: false,
            silenced,
            notify: rule.notify.clone(),
            epoch: state.epoch,
        };
        // `for = 0` fires on the first evaluation, like Prometheus.
        if rule.for_.is_zero() {
            fire(&mut alert, now_ms, silenced, out);
        }
        state.active.insert(key, alert);
        return;
    };
    alert.silenced = silenced;
    alert.epoch = state.epoch;
    if value.is_some() || rule.is_none() {
        alert.value = value;
    }
    match alert.state {
        AlertPhase::Pending => {
            let Some(rule) = rule.filter(|_| bad) else {
                // `for` must hold continuously: a break drops the pending alert silently.
                state.active.remove(&key);
                return;
            };
            alert.last_bad_ms = now_ms;
            if now_ms - alert.active_since_ms >= ms(rule.for_) {
                fire(alert, now_ms, silenced, out);
            }
        }
        AlertPhase::Firing => {
            let keep = rule.map_or(0, |r| ms(r.keep_firing_for));
            if bad {
                alert.last_bad_ms = now_ms;
            } else if now_ms - alert.last_bad_ms >= keep {
                let Some(mut alert) = state.active.remove(&key) else {
                    return;
                };
                alert.state = AlertPhase::Resolved;
                alert.since_ms = now_ms;
                alert.resolved_ms = Some(now_ms);
                if alert.notified {
                    out.push(Transition {
                        kind: TransitionKind::Resolved,
                        alert: alert.clone(),
                    });
                }
                state.history.push_back(alert);
                return;
            }
            if silenced {
                return;
            }
            if !alert.notified {
                // A silence ended while it was firing: tell now, once.
                alert.notified = true;
                alert.last_notified_ms = Some(now_ms);
                out.push(Transition {
                    kind: TransitionKind::Firing,
                    alert: alert.clone(),
                });
                return;
            }
            let repeat = rule.map_or(0, |r| ms(r.repeat_interval));
            let due = alert.last_notified_ms.is_some_and(|t| now_ms - t >= repeat);
            if repeat > 0 && due && !alert.acknowledged {
                alert.last_notified_ms = Some(now_ms);
                out.push(Transition {
                    kind: TransitionKind::Reminder,
                    alert: alert.clone(),
                });
            }
        }
        AlertPhase::Resolved => {}
    }
}

fn fire(alert: &mut Alert, now_ms: i64, silenced: bool, out: &mut Vec<Transition>) {
    alert.state = AlertPhase::Firing;
    alert.since_ms = now_ms;
    alert.started_ms = Some(now_ms);
    alert.last_bad_ms = now_ms;
    if !silenced {
        alert.notified = true;
        alert.last_notified_ms = Some(now_ms);
        out.push(Transition {
            kind: TransitionKind::Firing,
            alert: alert.clone(),
        });
    }
}

/// Shared, cheap copy of the alert view, as the store publishes it.
pub type SharedAlerts = Arc<AlertsView>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::rules::AlertsSection;
    use crate::store::view::Stats;

    fn model(name: &str, requests: u64, p95: f64) -> ModelView {
        ModelView {
            model: name.to_owned(),
            window_s: 60,
            stats: Stats {
                requests,
                qps: requests as f64 / 60.0,
                p95_ms: Some(p95),
                error_rate: Some(0.0),
                ..Stats::default()
            },
            last_seen_ms_ago: Some(0),
            series: Vec::new(),
            routes: Vec::new(),
            instances: Vec::new(),
            routes_overflowed: 0,
            version: None,
            totals: crate::store::view::Totals::default(),
        }
    }

    #[test]
    fn latency_fires_after_for_and_resolves() {
        let mut st = AlertState::new(RuleSet::new(&AlertsSection::default()).expect("ok"));
        let view = |p95| View {
            models: vec![model("m", 100, p95)],
            ..View::default()
        };
        assert!(evaluate(&mut st, &view(900.0), 0).is_empty());
        assert!(evaluate(&mut st, &view(900.0), 29_000).is_empty());
        let t = evaluate(&mut st, &view(900.0), 30_000);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].kind, TransitionKind::Firing);
        let t = evaluate(&mut st, &view(100.0), 31_000);
        assert_eq!(t[0].kind, TransitionKind::Resolved);
    }
}
