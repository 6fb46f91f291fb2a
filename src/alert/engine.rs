//! The alert lifecycle, as a pure function of the store's view and a clock.
//!
//! inactive → pending → firing → resolved, with Prometheus' semantics and two changes
//! that noisy figures need: a pending alert survives short dips and samples without a
//! figure (it is dropped only once the condition has been clear for the rule's grace),
//! and it fires only if the condition holds now and held in at least three quarters of
//! the checks of its pending time, so one quiet sample cannot reset the clock and a few
//! spikes cannot fire.
//!
//! Nothing here does I/O or reads the time: [`evaluate`] is driven by the store task in
//! production and by a virtual clock in tests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, Baselines, SharedBaselines, Spans};
use super::measure::{self, Reading, Sight};
use super::rules::{Metric, Rule, RuleSet, Severity};
use crate::store::SERIES_SECS;
use crate::store::view::{BrokerState, DockerState, ModelResources, ModelView, SeriesPoint, View};

/// Resolved alerts are kept this long for the alerts pane and `--batch`.
pub const HISTORY_MS: i64 = 24 * 3600 * 1000;
/// And at most this many, so a flapping fleet cannot grow memory.
pub const HISTORY_MAX: usize = 1000;
/// An absolute `qps` rule fires only for a model that had traffic this recently: a model
/// that went away yesterday is not "dropping traffic" today. A model whose containers
/// all went away is "down" for as long.
pub const TRAFFIC_MEMORY_MS: i64 = 3600 * 1000;
/// The `model` of an alert about the monitor itself (a model name is never empty).
pub const MONITOR: &str = "";
/// Spans of blindness kept for the baselines (they look back at most a few hours).
const BLIND_SPANS: usize = 64;

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
// Its flags are independent facts (notified, acknowledged, silenced, relative,
// earlier), not a state machine folded into booleans: that is `state`.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub rule: String,
    /// Empty ([`MONITOR`]) for an alert about the monitor itself.
    pub model: String,
    pub metric: Metric,
    pub severity: Severity,
    pub state: AlertPhase,
    /// The latest value; `None` once unknown (too few requests, no data).
    pub value: Option<f64>,
    /// The limits in force at the latest evaluation (for a relative rule, from the
    /// model's normal at that time).
    pub threshold: f64,
    pub resolve: f64,
    /// The model's normal for this metric, when known.
    #[serde(default)]
    pub normal: Option<f64>,
    /// Judged against the model's normal (a relative rule), not a fixed limit.
    #[serde(default)]
    pub relative: bool,
    /// One sentence with the figures: why it fired, or how it stands now.
    #[serde(default)]
    pub explanation: String,
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
    /// Checks with a known value while pending, and how many of them were bad: the
    /// share decides the firing.
    #[serde(default)]
    pub(crate) checks: u32,
    #[serde(default)]
    pub(crate) bad_checks: u32,
    /// Judged against the normal of the hours before the last one (a creep): kept from
    /// when it fired until it resolves, so an alert that fired against the last hour
    /// resolves against it, and one that crept keeps its figures and sentence.
    #[serde(default)]
    pub(crate) earlier: bool,
    /// Fired because its figure stayed in the model's slow mode (`stay`), since this
    /// Unix ms: judged as a model with one mode, on its minutes, until it resolves, so it
    /// does not resolve while the slow path still takes more of the requests than it
    /// used to; the baseline leaves those minutes out from the first of them.
    #[serde(default)]
    pub(crate) stayed_from_ms: Option<i64>,
    /// The evaluation that last visited it.
    #[serde(skip)]
    pub(crate) epoch: u64,
}

impl Alert {
    /// Where its incident began: when it went pending, or for a stay in the slow mode
    /// the first minute of the stay, which a normal must not learn either.
    fn incident_from_ms(&self) -> i64 {
        self.stayed_from_ms
            .map_or(self.active_since_ms, |s| s.min(self.active_since_ms))
    }

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

    /// Whether it is about the monitor itself rather than a model.
    pub fn is_monitor(&self) -> bool {
        self.model == MONITOR
    }

    /// What it is about, for people: the model, or "monitor".
    pub fn subject(&self) -> &str {
        if self.is_monitor() {
            "monitor"
        } else {
            &self.model
        }
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

/// What the engine watches of the monitor's own inputs between evaluations.
#[derive(Debug, Default)]
struct Watch {
    /// Whether the broker was connected (or the demo running) at the last evaluation,
    /// and since when that holds.
    broker_up: Option<bool>,
    /// Whether the broker was ever connected (or the demo running).
    was_up: bool,
    broker_since_ms: i64,
    docker_state: Option<DockerState>,
    docker_since_ms: i64,
    /// Spans the broker was down, for the baselines to leave out.
    blind: VecDeque<(i64, i64)>,
    /// `(ms, dropped_by_source)` samples over the source-drop window.
    drops: VecDeque<(i64, BTreeMap<String, u64>)>,
    /// Last time each model had a running container.
    had_running: HashMap<String, i64>,
}

/// All alert state: the engine's memory between evaluations.
#[derive(Debug, Default)]
pub struct AlertState {
    rules: RuleSet,
    active: BTreeMap<AlertKey, Alert>,
    history: VecDeque<Alert>,
    silences: Vec<Silence>,
    /// Last time each absolute `qps` rule saw healthy traffic, per model.
    traffic_seen: HashMap<AlertKey, i64>,
    /// Restart and OOM counters: the last count seen and when it last went up.
    counters: HashMap<AlertKey, (u64, Option<i64>)>,
    baselines: Baselines,
    watch: Watch,
    /// Counts evaluations; an active alert not stamped with the current one was not
    /// visited (its model or rule left the view).
    epoch: u64,
    /// After a restart the store's window is empty for a while: until then a restored
    /// firing alert whose value is unknown stays firing instead of resolving.
    hold_unknown_until_ms: i64,
}

/// How long restored firing alerts wait for data before unknown counts as cleared.
pub const RESTORE_GRACE_MS: i64 = 120_000;
/// How long a firing alert holds through too few requests to judge, from when it was
/// last seen bad: a quiet model's fault stays one alert through its lulls, and a model
/// that went silent for this long is no longer judged.
pub const SCARCE_HOLD_MS: i64 = 600_000;

/// What the screens and `--batch` read: a frozen copy of the alert state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertsView {
    /// Firing first, then pending; worst severity first, then oldest.
    pub active: Vec<Alert>,
    /// Resolved in the last 24 h, newest first.
    pub recent: Vec<Alert>,
    pub silences: Vec<Silence>,
    /// Each model's normal, as the relative rules judge it.
    #[serde(skip)]
    pub baselines: SharedBaselines,
}

impl AlertsView {
    /// A model's alerts (or, for [`MONITOR`], the monitor's own): active ones, then its
    /// resolved ones, newest first.
    pub fn for_model<'a>(&'a self, model: &'a str) -> impl Iterator<Item = &'a Alert> + 'a {
        self.active
            .iter()
            .chain(&self.recent)
            .filter(move |a| a.model == model)
    }

    /// The monitor's own alerts (broker, sources, Docker engine).
    pub fn monitor(&self) -> impl Iterator<Item = &Alert> {
        self.for_model(MONITOR)
    }

    /// Whether `model` has a firing alert (the overview marks it).
    pub fn is_firing(&self, model: &str) -> bool {
        self.active
            .iter()
            .any(|a| a.model == model && a.state == AlertPhase::Firing)
    }

    pub fn baseline(&self, model: &str) -> Option<&super::baseline::Baseline> {
        self.baselines.get(model).map(|b| &**b)
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

    /// Judges by `rules` from the next evaluation on.
    pub fn set_rules(&mut self, rules: RuleSet) {
        self.rules = rules;
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
            baselines: self.baselines.shared(),
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
            // A firing absolute `qps` alert had healthy traffic before it began: without
            // that memory it would turn unknown and resolve while the model is still dead.
            if a.metric == Metric::Qps && !a.relative && a.state == AlertPhase::Firing {
                self.traffic_seen.insert(a.key(), a.active_since_ms);
            }
            self.active.insert(a.key(), a);
        }
        self.history = saved
            .history
            .into_iter()
            .filter(|a| a.resolved_ms.unwrap_or(0) >= now_ms - HISTORY_MS)
            .collect();
        self.silences = saved.silences;
        self.baselines.restore(saved.baselines, now_ms);
        self.hold_unknown_until_ms = now_ms + RESTORE_GRACE_MS;
        self.refresh_silenced(now_ms);
    }

    /// The normals of the models with a relative alert that fired and is still active:
    /// what a restart needs to go on judging them (see `persist::Saved::baselines`).
    pub fn incident_baselines(&self) -> BTreeMap<String, super::baseline::Baseline> {
        self.active
            .values()
            .filter(|a| a.relative && a.started_ms.is_some())
            .filter_map(|a| {
                let b = self.baselines.get(&a.model)?;
                b.ready.then(|| (a.model.clone(), b.clone()))
            })
            .collect()
    }

    /// Active alerts (pending and firing), for tests and the snapshot.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// The spans a model's baseline must not learn from: its incidents (relative
    /// alerts that fired, from when they were first pending) and the times the monitor
    /// could not see events. A broken SLO is not left out: a model that is always over
    /// its fixed limit would otherwise never get a normal.
    fn excluded(&self, model: &str, now_ms: i64) -> Spans {
        let incident = |a: &Alert| a.model == model && a.relative && a.started_ms.is_some();
        self.active
            .values()
            .filter(|a| incident(a))
            .map(|a| (a.incident_from_ms(), now_ms))
            .chain(
                self.history
                    .iter()
                    .filter(|a| incident(a))
                    .map(|a| (a.incident_from_ms(), a.resolved_ms.unwrap_or(now_ms))),
            )
            .chain(self.watch.blind.iter().copied())
            .collect()
    }
}

/// Notes what changed in the monitor's own inputs, and what it can see now.
fn observe(state: &mut AlertState, view: &View, now_ms: i64) -> Sight {
    let w = &mut state.watch;
    let up = matches!(
        view.broker.state,
        BrokerState::Connected | BrokerState::Demo
    );
    if w.broker_up != Some(up) {
        // Blind spans are outages: the wait for the first connection is not one.
        if up && w.broker_up == Some(false) && w.was_up {
            if w.blind.len() >= BLIND_SPANS {
                w.blind.pop_front();
            }
            w.blind.push_back((w.broker_since_ms, now_ms));
        }
        w.broker_up = Some(up);
        w.was_up |= up;
        w.broker_since_ms = now_ms;
    }
    if w.docker_state != Some(view.docker.state) {
        w.docker_state = Some(view.docker.state);
        w.docker_since_ms = now_ms;
    }
    Sight {
        now_ms,
        events_since_ms: up.then_some(w.broker_since_ms),
        docker: view.docker.state == DockerState::Connected,
        docker_blind: view.docker.state == DockerState::Unavailable,
    }
}

/// Events dropped at the source within `window_ms`, in all and by source (largest
/// first). One sample of the counters every few seconds, kept for the longest window a
/// rule may take (5 min), is enough to tell "within the last minute".
fn source_drops(
    w: &mut Watch,
    view: &View,
    window_ms: i64,
    now_ms: i64,
) -> (u64, Vec<(String, u64)>) {
    let latest = &view.ingest.dropped_by_source;
    if w.drops.back().is_none_or(|(t, _)| now_ms - t >= 5_000) {
        w.drops.push_back((now_ms, latest.clone()));
    }
    while w.drops.len() > 1 && w.drops[1].0 <= now_ms - 300_000 {
        w.drops.pop_front();
    }
    // The newest sample at least `window_ms` old, or the oldest there is.
    let old = w
        .drops
        .iter()
        .rev()
        .find(|(t, _)| *t <= now_ms - window_ms)
        .or(w.drops.front())
        .map(|(_, m)| m);
    let Some(old) = old else {
        return (0, Vec::new());
    };
    let mut by: Vec<(String, u64)> = latest
        .iter()
        .map(|(k, &n)| {
            (
                k.clone(),
                n.saturating_sub(old.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    by.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    (by.iter().map(|(_, n)| n).sum(), by)
}

/// Advances every alert to `now_ms` given `view`, and returns what must be notified.
pub fn evaluate(state: &mut AlertState, view: &View, now_ms: i64) -> Vec<Transition> {
    let mut out = Vec::new();
    state.silences.retain(|s| s.until_ms > now_ms);
    state.epoch += 1;
    let sight = observe(state, view, now_ms);
    let dormant = dormant_models(state, view, now_ms);
    refresh_baselines(state, view, &dormant, now_ms);

    let monitor_rules: Vec<Rule> = state.rules.for_monitor().cloned().collect();
    for rule in &monitor_rules {
        let drops = if rule.metric == Metric::SourceDrops {
            let window_ms = ms(rule.window.unwrap_or(Duration::from_secs(60)));
            source_drops(&mut state.watch, view, window_ms, now_ms)
        } else {
            (0, Vec::new())
        };
        let w = &state.watch;
        let reading = measure::monitor_reading(
            rule,
            view,
            now_ms,
            w.broker_since_ms,
            w.docker_since_ms,
            &drops,
        );
        let key = AlertKey {
            rule: rule.name.clone(),
            model: MONITOR.to_owned(),
        };
        step(state, key, Some(rule), reading, now_ms, &mut out);
    }

    for m in &view.models {
        judge_model(state, view, m, &sight, false, now_ms, &mut out);
    }
    for m in &dormant {
        judge_model(state, view, m, &sight, true, now_ms, &mut out);
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
        let why = if key.model != MONITOR && view.model(&key.model).is_none() {
            "the model is no longer watched"
        } else {
            "its rule no longer applies"
        };
        let reading = Reading {
            why: why.to_owned(),
            ..Reading::default()
        };
        step(state, key, None, reading, now_ms, &mut out);
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
    state
        .watch
        .had_running
        .retain(|_, t| now_ms - *t <= TRAFFIC_MEMORY_MS);
    out
}

/// Judges one model by each of its rules; with `only_active`, only the rules that have
/// an alert for it already.
fn judge_model(
    state: &mut AlertState,
    view: &View,
    m: &ModelView,
    sight: &Sight,
    only_active: bool,
    now_ms: i64,
    out: &mut Vec<Transition>,
) {
    let res = view.resources(&m.model);
    // Only containers this monitor's own engine reads: `gone_gate` judges removals that
    // engine saw, and an agent's containers also vanish when a silent host is forgotten.
    let local_running = |r: &ModelResources| {
        r.containers
            .iter()
            .any(|c| c.state == "running" && c.host.is_none())
    };
    if res.is_some_and(local_running) {
        state.watch.had_running.insert(m.model.clone(), now_ms);
    }
    let rules = state.rules.for_model(&m.model);
    let container_down = rules
        .iter()
        .filter(|r| r.metric == Metric::ContainersDown)
        .any(|r| {
            state
                .active
                .get(&AlertKey {
                    rule: r.name.clone(),
                    model: m.model.clone(),
                })
                .is_some_and(|a| a.state == AlertPhase::Firing)
        });
    let is_firing = |state: &AlertState, rule: &Rule| {
        state
            .active
            .get(&AlertKey {
                rule: rule.name.clone(),
                model: m.model.clone(),
            })
            .is_some_and(|a| a.state == AlertPhase::Firing)
    };
    let saturated = res.map(|r| saturation(&rules, r)).unwrap_or_default();
    for rule in rules.iter() {
        let key = AlertKey {
            rule: rule.name.clone(),
            model: m.model.clone(),
        };
        if only_active && !state.active.contains_key(&key) {
            continue;
        }
        let base = state.baselines.get(&m.model);
        let active = state
            .active
            .get(&key)
            .filter(|a| a.state == AlertPhase::Firing);
        let firing = active.is_some();
        // A firing alert is judged against the normal it fired against.
        let last_only;
        let base = match (active, base) {
            (Some(a), Some(b)) if a.stayed_from_ms.is_some() => {
                last_only = b.with_one_mode();
                Some(&last_only)
            }
            (Some(a), Some(b)) if !a.earlier && b.earlier.is_some() => {
                last_only = Baseline {
                    earlier: None,
                    ..b.clone()
                };
                Some(&last_only)
            }
            _ => base,
        };
        let mut reading = measure::model_reading(rule, m, res, base, sight, firing);
        match rule.metric {
            Metric::Qps if container_down && reading.value.is_some() => {
                // The container being down is the cause, already told; its missing
                // traffic is the consequence.
                reading = Reading {
                    why: format!("{} (its container is down)", reading.why),
                    ..Reading::default()
                };
            }
            Metric::Qps if rule.relative.is_none() => {
                traffic_gate(state, &key, rule, m, &mut reading, now_ms);
            }
            Metric::Restarts | Metric::OomKills => {
                counter_gate(state, &key, rule, &mut reading, now_ms);
            }
            Metric::ContainersDown => gone_gate(state, m, res.is_some(), sight, &mut reading),
            Metric::P50Ms
            | Metric::P95Ms
            | Metric::P99Ms
            | Metric::TtfbP50Ms
            | Metric::TtfbP95Ms
            | Metric::TtfbP99Ms
                if reading.value.is_some() =>
            {
                // A throttled or swapping container is the likely cause of the slowness:
                // named in the sentence, as cpu_saturation itself fires only later.
                reading.why.push_str(&saturated);
            }
            _ => {}
        }
        if !firing {
            // Another rule already tells of this incident: a backstop's relative rule of
            // the same metric, or the rule it defers to, both judging the whole model
            // against its normal and reaching the same people the same way (a team's
            // fixed limit, a canary's or a rule it made critical tells of another).
            let about_its_normal = |r: &Rule| r.relative.is_some() && r.version.is_none();
            let alike = |r: &Rule| {
                about_its_normal(rule) && r.severity == rule.severity && r.notify == rule.notify
            };
            let tells = |r: &Rule| {
                about_its_normal(r)
                    && ((rule.backstop && r.metric == rule.metric)
                        || (rule.defers_to.as_deref() == Some(r.name.as_str()) && alike(r)))
            };
            if let Some(r) = rules.iter().find(|r| tells(r) && is_firing(state, r)) {
                reading.may_fire = false;
                reading.why = format!("{} ({} fires already)", reading.why, r.name);
            }
        }
        step(state, key, Some(rule), reading, now_ms, out);
    }
}

/// "; CPU at 98 % of what its containers may use" (and the same of memory) when the
/// model's containers are past the limit its own saturation rule fires at, else "".
fn saturation(rules: &[Rule], res: &ModelResources) -> String {
    let limit = |metric: Metric| {
        rules
            .iter()
            .find(|r| r.metric == metric && r.relative.is_none())
            .map_or(90.0, |r| r.threshold)
    };
    let cpu = res
        .usage
        .cpu_limit_percent
        .filter(|v| *v >= limit(Metric::CpuLimitPercent))
        .map(|v| format!("; CPU at {v:.0} % of what its containers may use"));
    let mem = res
        .usage
        .mem_percent
        .filter(|v| *v >= limit(Metric::MemoryPercent))
        .map(|v| format!("; memory at {v:.0} % of its containers' limit"));
    cpu.into_iter().chain(mem).collect()
}

/// Models with active alerts that the store keeps history of but leaves out of the live
/// view: restored from the snapshot and silent since the restart. Each as a view with
/// no request at all, which is what the monitor sees of them: a dead model's traffic
/// alert goes on firing, its latency alert turns unknown, as they would have without
/// the restart.
fn dormant_models(state: &AlertState, view: &View, now_ms: i64) -> Vec<ModelView> {
    let mut names: Vec<&str> = state
        .active
        .keys()
        .map(|k| k.model.as_str())
        .filter(|m| *m != MONITOR && view.model(m).is_none())
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    names.sort_unstable();
    names.dedup();
    let kept = view.history.models();
    let last = now_ms.div_euclid(1000);
    names
        .into_iter()
        .filter(|n| kept.binary_search(n).is_ok())
        .map(|n| ModelView {
            model: n.to_owned(),
            window_s: view.window_s,
            series: (last - SERIES_SECS + 1..=last)
                .map(|sec| SeriesPoint {
                    sec,
                    ..SeriesPoint::default()
                })
                .collect(),
            ..ModelView::default()
        })
        .collect()
}

fn refresh_baselines(state: &mut AlertState, view: &View, dormant: &[ModelView], now_ms: i64) {
    let cfg = state.rules.baseline;
    // The closure borrows the alerts while the baselines are written: take them out.
    let mut baselines = std::mem::take(&mut state.baselines);
    baselines.refresh(
        &view.history,
        view.models.iter().chain(dormant).map(|m| m.model.as_str()),
        &cfg,
        now_ms,
        view.window_s,
        |model| state.excluded(model, now_ms),
    );
    state.baselines = baselines;
}

/// A drop under an absolute `qps` threshold counts only for a model that had healthy
/// traffic within the last hour: otherwise a model that never had much (or left long
/// ago) would fire forever.
fn traffic_gate(
    state: &mut AlertState,
    key: &AlertKey,
    rule: &Rule,
    m: &ModelView,
    reading: &mut Reading,
    now_ms: i64,
) {
    let Some(v) = reading.value else { return };
    if v >= rule.resolve && m.stats.requests >= rule.min_requests {
        state.traffic_seen.insert(key.clone(), now_ms);
    }
    let recent = state
        .traffic_seen
        .get(key)
        .is_some_and(|&t| now_ms - t <= TRAFFIC_MEMORY_MS);
    if !recent {
        reading.value = None;
    }
}

/// A cumulative counter as "went up within the window": counts that were already there
/// when the monitor first saw the model never fire.
fn counter_gate(
    state: &mut AlertState,
    key: &AlertKey,
    rule: &Rule,
    reading: &mut Reading,
    now_ms: i64,
) {
    let Some(count) = reading.value else { return };
    let count = count as u64;
    let window = ms(rule.window.unwrap_or(Duration::from_secs(300)));
    let entry = state.counters.entry(key.clone()).or_insert((count, None));
    if count > entry.0 {
        entry.1 = Some(now_ms);
    }
    entry.0 = count;
    let recent = entry.1.is_some_and(|t| now_ms - t < window);
    reading.value = Some(f64::from(u8::from(recent)));
}

/// A model whose every container is gone (removed while Docker watches) is down, if it
/// had one running within the last hour.
fn gone_gate(
    state: &AlertState,
    m: &ModelView,
    has_containers: bool,
    sight: &Sight,
    reading: &mut Reading,
) {
    if has_containers || !sight.docker {
        return;
    }
    if let Some(&t) = state.watch.had_running.get(&m.model) {
        *reading = Reading {
            value: Some(1.0),
            limits: reading.limits.or(Some((0.0, 0.0))),
            may_fire: true,
            why: format!(
                "its container is gone (removed {} ago at most); none running",
                measure::show_duration_ms(sight.now_ms - t)
            ),
            ..Reading::default()
        };
    }
}

/// One alert's step of the lifecycle.
fn step(
    state: &mut AlertState,
    key: AlertKey,
    rule: Option<&Rule>,
    reading: Reading,
    now_ms: i64,
    out: &mut Vec<Transition>,
) {
    let silenced = state.is_silenced(&key, now_ms);
    let current = state.active.get(&key).map(|a| a.state);
    let firing = current == Some(AlertPhase::Firing);
    let value = reading.value;
    let bad = match (rule, value, reading.limits) {
        (Some(r), Some(v), Some(l)) => reading.may_fire && r.is_bad(v, l, firing),
        _ => false,
    };
    // The monitor cannot see: hold every alert as it is, neither firing nor resolving.
    if reading.blind && value.is_none() {
        if let Some(a) = state.active.get_mut(&key) {
            a.epoch = state.epoch;
        }
        return;
    }
    if firing && value.is_none() && now_ms < state.hold_unknown_until_ms {
        if let Some(a) = state.active.get_mut(&key) {
            a.epoch = state.epoch;
        }
        return;
    }
    // A firing alert that cannot be judged for now holds, for a bounded time since it
    // was last seen bad: too few requests (a quiet model's lull is no recovery), or a
    // relative rule without a normal (after a restart in a long incident, what is left
    // of the learning window is too short): only a known good value resolves it. It
    // holds as a firing alert: a silence that ends is seen, and it still notifies.
    let last_bad_ms = state.active.get(&key).map_or(now_ms, |a| a.last_bad_ms);
    let unjudged = rule.is_some_and(|r| {
        if value.is_none() {
            reading.scarce && now_ms - last_bad_ms < SCARCE_HOLD_MS
        } else {
            r.relative.is_some()
                && reading.limits.is_none()
                && now_ms - last_bad_ms < ms(state.rules.baseline.learn.0)
        }
    });
    let Some(alert) = state.active.get_mut(&key) else {
        let Some(rule) = rule.filter(|_| bad) else {
            return;
        };
        let (threshold, resolve) = reading.limits.unwrap_or((rule.threshold, rule.resolve));
        let mut alert = Alert {
            rule: key.rule.clone(),
            model: key.model.clone(),
            metric: rule.metric,
            severity: rule.severity,
            state: AlertPhase::Pending,
            value,
            threshold,
            resolve,
            normal: reading.normal,
            relative: rule.relative.is_some(),
            explanation: reading.why,
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
            checks: 1,
            bad_checks: 1,
            earlier: reading.earlier,
            stayed_from_ms: reading.stayed_from_ms,
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
    if alert.state != AlertPhase::Firing {
        alert.earlier = reading.earlier;
        alert.stayed_from_ms = reading.stayed_from_ms;
    } else if alert.stayed_from_ms.is_none() {
        // Fired past its slow mode's limit, and stays: judged on its minutes from now
        // on, or a quiet model's live window would resolve it at its first fast second.
        alert.stayed_from_ms = reading.stayed_from_ms;
    }
    if value.is_some() {
        alert.value = value;
        alert.normal = reading.normal;
        if let Some((t, r)) = reading.limits {
            alert.threshold = t;
            alert.resolve = r;
        }
        if !reading.why.is_empty() {
            alert.explanation.clone_from(&reading.why);
        }
    }
    match alert.state {
        AlertPhase::Pending => {
            let Some(rule) = rule else {
                state.active.remove(&key);
                return;
            };
            if value.is_some() {
                alert.checks = alert.checks.saturating_add(1);
                alert.bad_checks = alert.bad_checks.saturating_add(u32::from(bad));
            }
            if bad {
                alert.last_bad_ms = now_ms;
            } else if now_ms - alert.last_bad_ms > ms(rule.grace()) {
                // Clear for longer than a dip: the pending alert goes without a word.
                state.active.remove(&key);
                return;
            }
            let mostly = u64::from(alert.bad_checks) * 4 >= u64::from(alert.checks) * 3;
            // Fired on a bad check, so the alert's sentence is one that says why.
            if now_ms - alert.active_since_ms >= ms(rule.for_) && mostly && bad {
                fire(alert, now_ms, silenced, out);
            }
        }
        AlertPhase::Firing => {
            // A known good value resolves after `keep_firing_for`; an unknown one (a
            // missed sample) only once it has lasted the rule's grace as well.
            let keep = rule.map_or(0, |r| {
                let keep = ms(r.keep_firing_for);
                if value.is_some() {
                    keep
                } else {
                    keep.max(ms(r.grace()))
                }
            });
            if bad {
                alert.last_bad_ms = now_ms;
            } else if !unjudged && now_ms - alert.last_bad_ms >= keep {
                let Some(mut alert) = state.active.remove(&key) else {
                    return;
                };
                if value.is_none() || reading.limits.is_none() {
                    // It ends because it can no longer be judged, not because it got
                    // better: the firing sentence and figure would say it is still bad,
                    // and a figure without limits (a relative rule still learning its
                    // normal) would read as a recovery.
                    alert.value = None;
                    alert.explanation = if reading.why.is_empty() {
                        "no longer judged".to_owned()
                    } else {
                        format!("no longer judged: {}", reading.why)
                    };
                }
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
