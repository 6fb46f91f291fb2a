//! Alerts: rules with a Prometheus-like lifecycle, evaluated on every view the store
//! publishes, and sent to desktop notifications and webhooks.
//!
//! The engine ([`engine::evaluate`]) is pure. [`Alerting`] is its one owner: it runs in
//! the store task right after each view is built, so the alert state has one writer and
//! the alerts published beside a view were judged on exactly its figures. The store
//! knows nothing of alerts. The UI changes alert state only by sending commands through
//! an [`AlertControl`].

pub(crate) mod baseline;
pub(crate) mod engine;
pub(crate) mod measure;
pub(crate) mod ml;
pub(crate) mod notify;
pub(crate) mod persist;
pub(crate) mod rules;
pub(crate) mod stay;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

// The engine's whole surface: its modules are the crate's own.
pub use baseline::{Baseline, compute as compute_baseline, show_ms};
pub use engine::{
    Alert, AlertKey, AlertPhase, AlertState, AlertsView, MONITOR, Silence, SilenceTarget,
    Transition, TransitionKind, evaluate,
};
pub use measure::{Reading, Sight, model_reading};
pub use ml::show_number;
pub use notify::{Notifiers, NotifySection};
pub use persist::Saved;
pub use rules::{AlertsSection, BaselineSection, Metric, Rule, RuleSet, Severity, builtin_rules};

use crate::store::View;

/// UI commands waiting for the next evaluation; a human cannot type faster than this.
const COMMAND_QUEUE: usize = 64;

/// What the UI may ask of the alert state.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Silence {
        target: SilenceTarget,
        for_: Duration,
    },
    Unsilence(SilenceTarget),
    Acknowledge(AlertKey),
}

/// A handle the TUI (and later the web server) keeps to silence and acknowledge alerts.
/// Cheap to clone; commands apply at the next evaluation (the next view).
#[derive(Debug, Clone)]
pub struct AlertControl {
    tx: mpsc::Sender<Command>,
}

impl AlertControl {
    /// Mutes notifications of a model's alerts, or of one alert, for `for_`.
    /// `false` if the monitor stopped or the command queue is full.
    pub fn silence(&self, target: SilenceTarget, for_: Duration) -> bool {
        self.tx.try_send(Command::Silence { target, for_ }).is_ok()
    }

    /// Ends a silence early.
    pub fn unsilence(&self, target: SilenceTarget) -> bool {
        self.tx.try_send(Command::Unsilence(target)).is_ok()
    }

    /// Stops reminders of a firing alert until it resolves.
    pub fn acknowledge(&self, key: AlertKey) -> bool {
        self.tx.try_send(Command::Acknowledge(key)).is_ok()
    }
}

/// The alert engine, its notifiers and its command queue, owned by the store task.
pub struct Alerting {
    state: AlertState,
    notifiers: Notifiers,
    commands: mpsc::Receiver<Command>,
}

impl Alerting {
    /// `rules` were checked when the config was validated.
    pub fn new(rules: RuleSet, notifiers: Notifiers) -> (Self, AlertControl) {
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        (
            Self {
                state: AlertState::new(rules),
                notifiers,
                commands,
            },
            AlertControl { tx },
        )
    }

    /// New rules and notifiers from a reloaded config. Alert state (active alerts,
    /// silences, baselines) is kept; an alert whose rule is gone ends at the next
    /// evaluation. The old notifiers finish what they were sending.
    pub fn reload(&mut self, rules: RuleSet, notifiers: Notifiers) {
        self.state.set_rules(rules);
        self.notifiers = notifiers;
        // The new notifiers start with nothing firing: an Alertmanager among them would
        // re-post nothing, and Alertmanager would end every alert still firing.
        self.resume_notifiers();
    }

    /// Tells the notifiers that keep alerts alive by re-posting them (Alertmanager)
    /// which alerts are firing.
    fn resume_notifiers(&mut self) {
        let firing: Vec<Alert> = self
            .state
            .active()
            .filter(|a| a.state == AlertPhase::Firing)
            .cloned()
            .collect();
        self.notifiers.resume(&firing);
    }

    /// Takes back the state saved in `dir` by a previous run, if any.
    pub fn load(&mut self, dir: &std::path::Path, now_ms: i64) {
        match persist::load(dir) {
            Ok(Some(saved)) => {
                self.state.restore(saved, now_ms);
                // Alertmanager must go on with what the previous run left firing.
                self.resume_notifiers();
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("{e}; alerts start afresh"),
        }
    }

    /// Saves the state to `dir` (called with the history snapshot).
    pub fn save(&self, dir: &std::path::Path, now_ms: i64) {
        if let Err(e) = persist::save(&self.state, dir, now_ms) {
            tracing::warn!("{e}");
        }
    }

    /// Applies queued commands, evaluates `view`, hands transitions to the notifiers
    /// (without waiting) and returns what readers show.
    pub fn tick(&mut self, view: &View, now_ms: i64) -> Arc<AlertsView> {
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Silence { target, for_ } => self.state.silence(target, for_, now_ms),
                Command::Unsilence(target) => self.state.unsilence(&target, now_ms),
                Command::Acknowledge(key) => {
                    self.state.acknowledge(&key);
                }
            }
        }
        let transitions = evaluate(&mut self.state, view, now_ms);
        for t in &transitions {
            tracing::info!("{}", notify::headline(t));
        }
        self.notifiers.dispatch(transitions);
        Arc::new(self.state.view())
    }
}
