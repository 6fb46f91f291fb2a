//! Alert rules: what the config says, the built-in defaults, and the rules each model gets.
//!
//! A rule spec in the config either overrides a rule of the same name (built-in or
//! user-defined) or defines a new one. Specs with `models` apply to those models only,
//! on top of the generic rule, so `threshold = 5000` for one slow LLM is one short entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Secs;

/// What a rule watches. Every metric but `qps` fires when *above* its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    P50Ms,
    P95Ms,
    P99Ms,
    ErrorRate,
    /// Fires when traffic drops *below* the threshold after the model had traffic.
    Qps,
    CpuPercent,
    MemoryPercent,
    /// Container restarts over the window (fed by the Docker poller).
    Restarts,
    /// OOM kills over the window (fed by the Docker poller).
    OomKills,
    /// 1 while the container's health check fails (fed by the Docker poller).
    Unhealthy,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P50Ms => "p50_ms",
            Self::P95Ms => "p95_ms",
            Self::P99Ms => "p99_ms",
            Self::ErrorRate => "error_rate",
            Self::Qps => "qps",
            Self::CpuPercent => "cpu_percent",
            Self::MemoryPercent => "memory_percent",
            Self::Restarts => "restarts",
            Self::OomKills => "oom_kills",
            Self::Unhealthy => "unhealthy",
        }
    }

    /// `qps` is the one metric that is bad when low.
    pub fn fires_below(self) -> bool {
        matches!(self, Self::Qps)
    }

    /// Figures computed from requests: meaningless on a handful of them.
    pub fn needs_requests(self) -> bool {
        matches!(
            self,
            Self::P50Ms | Self::P95Ms | Self::P99Ms | Self::ErrorRate | Self::Qps
        )
    }
}

/// How loud an alert is: desktop urgency and the webhook's `severity`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// A rule as the engine uses it: every field known.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    pub threshold: f64,
    /// The other side of the hysteresis: a firing alert resolves only once the value is
    /// back on this side (below it for "above" rules, above it for `qps`).
    pub resolve: f64,
    /// `None`: the store's live window. Error rate and qps can use any window up to
    /// the 5-minute per-second series; latency percentiles always use the live window.
    pub window: Option<Duration>,
    /// How long the condition must hold, without a break, before pending turns firing.
    pub for_: Duration,
    /// How long a firing alert stays firing after its condition cleared.
    pub keep_firing_for: Duration,
    /// Reminders while firing and not acknowledged; zero: never.
    pub repeat_interval: Duration,
    /// Below this many requests in the window the value is unknown and never fires.
    pub min_requests: u64,
    pub severity: Severity,
    /// Notifier names (`desktop` or a webhook's name); `None`: all of them.
    pub notify: Option<Vec<String>>,
}

impl Rule {
    /// Whether `value` breaks the rule; a firing alert is judged against `resolve`.
    pub fn is_bad(&self, value: f64, firing: bool) -> bool {
        let limit = if firing { self.resolve } else { self.threshold };
        if self.metric.fires_below() {
            value < limit
        } else {
            value > limit
        }
    }

    /// Whether a notifier named `name` gets this rule's notifications.
    pub fn notifies(&self, name: &str) -> bool {
        self.notify
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == name))
    }
}

/// The default resolve threshold when a spec gives a threshold but no resolve.
fn default_resolve(metric: Metric, threshold: f64) -> f64 {
    if metric.fires_below() {
        threshold * 2.0
    } else {
        threshold * 0.8
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The rules every model gets with no configuration at all (see docs/alerts.md).
pub fn builtin_rules() -> Vec<Rule> {
    let rule = |name: &str, metric, threshold, resolve, for_s, min_requests, severity| Rule {
        name: name.to_owned(),
        metric,
        threshold,
        resolve,
        window: None,
        for_: secs(for_s),
        keep_firing_for: Duration::ZERO,
        repeat_interval: secs(4 * 3600),
        min_requests,
        severity,
        notify: None,
    };
    vec![
        rule(
            "high_latency",
            Metric::P95Ms,
            500.0,
            400.0,
            30,
            20,
            Severity::Warning,
        ),
        rule(
            "high_error_rate",
            Metric::ErrorRate,
            0.05,
            0.02,
            30,
            20,
            Severity::Critical,
        ),
        Rule {
            window: Some(secs(30)),
            ..rule(
                "traffic_drop",
                Metric::Qps,
                0.02,
                0.1,
                10,
                1,
                Severity::Critical,
            )
        },
        rule(
            "cpu_saturation",
            Metric::CpuPercent,
            90.0,
            80.0,
            120,
            0,
            Severity::Warning,
        ),
        rule(
            "memory_saturation",
            Metric::MemoryPercent,
            90.0,
            85.0,
            120,
            0,
            Severity::Warning,
        ),
        rule(
            "container_restarted",
            Metric::Restarts,
            0.0,
            0.0,
            0,
            0,
            Severity::Warning,
        ),
        rule(
            "oom_killed",
            Metric::OomKills,
            0.0,
            0.0,
            0,
            0,
            Severity::Critical,
        ),
        rule(
            "unhealthy",
            Metric::Unhealthy,
            0.0,
            0.0,
            30,
            0,
            Severity::Critical,
        ),
    ]
}

/// `[[alerts.rules]]`: a new rule, or an override of the rule with the same name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    /// Only these models; empty: every model.
    #[serde(default)]
    pub models: Vec<String>,
    pub enabled: Option<bool>,
    pub metric: Option<Metric>,
    pub threshold: Option<f64>,
    pub resolve: Option<f64>,
    pub window: Option<Secs>,
    #[serde(rename = "for")]
    pub for_: Option<Secs>,
    pub keep_firing_for: Option<Secs>,
    pub repeat_interval: Option<Secs>,
    pub min_requests: Option<u64>,
    pub severity: Option<Severity>,
    pub notify: Option<Vec<String>>,
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    pub enabled: bool,
    /// Start from the built-in rules (false: only the rules written here).
    pub builtin: bool,
    pub rules: Vec<RuleSpec>,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin: true,
            rules: Vec::new(),
        }
    }
}

/// A rule spec that cannot become a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("rule `{0}` is new, so it needs `metric` and `threshold`")]
    Incomplete(String),
    #[error("rule `{name}`: {message}")]
    Invalid { name: String, message: String },
}

impl RuleSpec {
    /// This spec laid over `base`, or a new rule when there is none.
    fn apply(&self, base: Option<&Rule>) -> Result<Rule, RuleError> {
        let mut rule = match (base, self.metric, self.threshold) {
            (Some(b), _, _) => b.clone(),
            (None, Some(metric), Some(threshold)) => Rule {
                name: self.name.clone(),
                metric,
                threshold,
                resolve: default_resolve(metric, threshold),
                window: None,
                for_: secs(60),
                keep_firing_for: Duration::ZERO,
                repeat_interval: secs(4 * 3600),
                min_requests: if metric.needs_requests() { 20 } else { 0 },
                severity: Severity::Warning,
                notify: None,
            },
            (None, _, _) => return Err(RuleError::Incomplete(self.name.clone())),
        };
        if let Some(m) = self.metric {
            rule.metric = m;
        }
        if let Some(t) = self.threshold {
            rule.threshold = t;
            rule.resolve = default_resolve(rule.metric, t);
        }
        if let Some(r) = self.resolve {
            rule.resolve = r;
        }
        if let Some(w) = self.window {
            rule.window = Some(w.0);
        }
        if let Some(f) = self.for_ {
            rule.for_ = f.0;
        }
        if let Some(k) = self.keep_firing_for {
            rule.keep_firing_for = k.0;
        }
        if let Some(r) = self.repeat_interval {
            rule.repeat_interval = r.0;
        }
        if let Some(n) = self.min_requests {
            rule.min_requests = n;
        }
        if let Some(s) = self.severity {
            rule.severity = s;
        }
        if let Some(n) = &self.notify {
            rule.notify = Some(n.clone());
        }
        check(&rule)?;
        Ok(rule)
    }
}

fn check(rule: &Rule) -> Result<(), RuleError> {
    let invalid = |message: &str| RuleError::Invalid {
        name: rule.name.clone(),
        message: message.to_owned(),
    };
    if !rule.threshold.is_finite() || !rule.resolve.is_finite() {
        return Err(invalid("threshold and resolve must be finite numbers"));
    }
    let wrong_side = if rule.metric.fires_below() {
        rule.resolve < rule.threshold
    } else {
        rule.resolve > rule.threshold
    };
    if wrong_side {
        return Err(invalid(if rule.metric.fires_below() {
            "resolve must be at or above threshold for qps"
        } else {
            "resolve must be at or below threshold"
        }));
    }
    if let Some(w) = rule.window {
        if w < secs(1) || w > secs(300) || w.subsec_nanos() != 0 {
            return Err(invalid("window must be whole seconds from 1s to 5m"));
        }
        if matches!(rule.metric, Metric::P50Ms | Metric::P95Ms | Metric::P99Ms) {
            return Err(invalid(
                "latency rules use the live window ([store] window); remove `window`",
            ));
        }
    }
    Ok(())
}

/// The rules that apply to each model, resolved once per model and then shared.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    base: Vec<Rule>,
    /// Rules switched off for every model, kept so a per-model spec can switch them on.
    disabled_base: Vec<Rule>,
    /// Specs that name models, in config order.
    per_model: Vec<RuleSpec>,
    cache: HashMap<String, Arc<[Rule]>>,
}

impl RuleSet {
    /// Checks every spec now, so a bad rule is a config error at start, not at runtime.
    pub fn new(section: &AlertsSection) -> Result<Self, RuleError> {
        let mut base = if section.builtin {
            builtin_rules()
        } else {
            Vec::new()
        };
        let mut disabled = Vec::new();
        for spec in section.rules.iter().filter(|s| s.models.is_empty()) {
            let at = base.iter().position(|r| r.name == spec.name);
            let rule = spec.apply(at.map(|i| &base[i]))?;
            if spec.enabled == Some(false) {
                disabled.push(spec.name.clone());
            }
            match at {
                Some(i) => base[i] = rule,
                None => base.push(rule),
            }
        }
        let per_model: Vec<RuleSpec> = section
            .rules
            .iter()
            .filter(|s| !s.models.is_empty())
            .cloned()
            .collect();
        // A per-model spec must make a valid rule too; try it against its base now.
        for spec in &per_model {
            spec.apply(base.iter().find(|r| r.name == spec.name))?;
        }
        let (base, disabled_base) = base.into_iter().partition(|r| !disabled.contains(&r.name));
        Ok(Self {
            base,
            disabled_base,
            per_model,
            cache: HashMap::new(),
        })
    }

    /// The rules for `model`.
    pub fn for_model(&mut self, model: &str) -> Arc<[Rule]> {
        if let Some(r) = self.cache.get(model) {
            return Arc::clone(r);
        }
        let mut rules = self.base.clone();
        for spec in self
            .per_model
            .iter()
            .filter(|s| s.models.iter().any(|m| m == model))
        {
            let at = rules.iter().position(|r| r.name == spec.name);
            let base = at
                .map(|i| &rules[i])
                .or_else(|| self.disabled_base.iter().find(|r| r.name == spec.name));
            let Ok(rule) = spec.apply(base) else { continue };
            match (at, spec.enabled) {
                (Some(i), Some(false)) => {
                    rules.remove(i);
                }
                (Some(i), _) => rules[i] = rule,
                (None, Some(false)) => {}
                (None, _) => rules.push(rule),
            }
        }
        let rules: Arc<[Rule]> = rules.into();
        // Bounded by the store's model cap: models are the store's names.
        self.cache.insert(model.to_owned(), Arc::clone(&rules));
        rules
    }

    /// Every rule name in the base set (for docs and tests).
    pub fn names(&self) -> Vec<&str> {
        self.base.iter().map(|r| r.name.as_str()).collect()
    }
}
