//! Alert rules: what the config says, the built-in defaults, and the rules each model gets.
//!
//! A rule spec in the config either overrides a rule of the same name (built-in or
//! user-defined) or defines a new one. Specs with `models` apply to those models only,
//! on top of the generic rule, so `threshold = 5000` for one slow LLM is one short entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ml::{self, MlMetric};
use crate::config::Secs;

/// What a rule watches. Every metric but `qps` fires when *above* its threshold.
///
/// Written as its name everywhere (config, alerts, webhooks): `p95_ms`, `error_rate`, or
/// `ml.<key>.<stat>` for a model's own measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    P50Ms,
    P95Ms,
    P99Ms,
    /// Time to first byte (to first token, through the proxy's OpenAI mode) of streamed
    /// answers in the live window; answers that were not streamed have none and do not count.
    TtfbP50Ms,
    TtfbP95Ms,
    TtfbP99Ms,
    ErrorRate,
    /// Fires when traffic drops *below* the threshold after the model had traffic.
    Qps,
    /// 100 % = one core, summed over the model's replicas (as `docker stats`).
    CpuPercent,
    /// CPU as a share of what the containers may use: their CPU limits, or the host's
    /// cores for a container without one. 100 % = throttled.
    CpuLimitPercent,
    MemoryPercent,
    /// Container restarts over the window (fed by the Docker poller).
    Restarts,
    /// OOM kills over the window (fed by the Docker poller).
    OomKills,
    /// 1 while the container's health check fails (fed by the Docker poller).
    Unhealthy,
    /// The model's containers that are not running (stopped, died, gone).
    ContainersDown,
    /// The monitor's own: 1 while the broker is not connected.
    BrokerDown,
    /// The monitor's own: events the publishers reported dropping within the window.
    SourceDrops,
    /// The monitor's own: 1 while the Docker engine cannot be reached.
    DockerDown,
    /// A statistic of one of the model's `ml` keys over the live window (see [`ml`]).
    Measure(MlMetric),
}

/// Every metric with a fixed name, in the order the docs list them.
const NAMED: [Metric; 18] = [
    Metric::P50Ms,
    Metric::P95Ms,
    Metric::P99Ms,
    Metric::TtfbP50Ms,
    Metric::TtfbP95Ms,
    Metric::TtfbP99Ms,
    Metric::ErrorRate,
    Metric::Qps,
    Metric::CpuPercent,
    Metric::CpuLimitPercent,
    Metric::MemoryPercent,
    Metric::Restarts,
    Metric::OomKills,
    Metric::Unhealthy,
    Metric::ContainersDown,
    Metric::BrokerDown,
    Metric::SourceDrops,
    Metric::DockerDown,
];

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Metric {
    /// A metric from its name; the error names it and says what is accepted.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(m) = NAMED.iter().find(|m| m.as_str() == s) {
            return Ok(*m);
        }
        if s.starts_with(ml::PREFIX) {
            return MlMetric::parse(s)
                .map(Self::Measure)
                .map_err(|e| format!("invalid metric `{s}`: {e}"));
        }
        let names: Vec<&str> = NAMED.iter().map(Metric::as_str).collect();
        Err(format!(
            "unknown metric `{s}`, expected one of {}, or ml.<key>.<stat> for a measure events carry",
            names.join(", ")
        ))
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::P50Ms => "p50_ms",
            Self::P95Ms => "p95_ms",
            Self::P99Ms => "p99_ms",
            Self::TtfbP50Ms => "ttfb_p50_ms",
            Self::TtfbP95Ms => "ttfb_p95_ms",
            Self::TtfbP99Ms => "ttfb_p99_ms",
            Self::ErrorRate => "error_rate",
            Self::Qps => "qps",
            Self::CpuPercent => "cpu_percent",
            Self::CpuLimitPercent => "cpu_limit_percent",
            Self::MemoryPercent => "memory_percent",
            Self::Restarts => "restarts",
            Self::OomKills => "oom_kills",
            Self::Unhealthy => "unhealthy",
            Self::ContainersDown => "containers_down",
            Self::BrokerDown => "broker_down",
            Self::SourceDrops => "source_drops",
            Self::DockerDown => "docker_down",
            Self::Measure(m) => m.as_str(),
        }
    }

    /// A value of this metric in its unit, for people: "470 ms", "31 %", "2.1 req/s".
    pub fn show(self, v: f64) -> String {
        use super::baseline::{show_ms, show_qps, show_rate};
        match self {
            Self::P50Ms
            | Self::P95Ms
            | Self::P99Ms
            | Self::TtfbP50Ms
            | Self::TtfbP95Ms
            | Self::TtfbP99Ms => show_ms(v),
            Self::ErrorRate => show_rate(v),
            Self::Qps => format!("{} req/s", show_qps(v)),
            Self::CpuPercent | Self::CpuLimitPercent | Self::MemoryPercent => format!("{v:.0} %"),
            Self::SourceDrops => format!("{v:.0} events"),
            Self::Restarts
            | Self::OomKills
            | Self::Unhealthy
            | Self::ContainersDown
            | Self::BrokerDown
            | Self::DockerDown => format!("{v:.0}"),
            Self::Measure(m) => m.show(v),
        }
    }

    /// `qps` is the one metric that is bad when low.
    pub fn fires_below(self) -> bool {
        matches!(self, Self::Qps)
    }

    /// Figures computed from request events: meaningless on a handful of them, and
    /// unknown while the broker is not connected. For a measure, the events that carry
    /// its key count.
    pub fn needs_requests(self) -> bool {
        matches!(
            self,
            Self::P50Ms
                | Self::P95Ms
                | Self::P99Ms
                | Self::TtfbP50Ms
                | Self::TtfbP95Ms
                | Self::TtfbP99Ms
                | Self::ErrorRate
                | Self::Qps
                | Self::Measure(_)
        )
    }

    /// Figures read from the Docker engine: unknown while it cannot be reached.
    pub fn from_docker(self) -> bool {
        matches!(
            self,
            Self::CpuPercent
                | Self::CpuLimitPercent
                | Self::MemoryPercent
                | Self::Restarts
                | Self::OomKills
                | Self::Unhealthy
                | Self::ContainersDown
        )
    }

    /// About the monitor itself, not about a model.
    pub fn of_monitor(self) -> bool {
        matches!(
            self,
            Self::BrokerDown | Self::SourceDrops | Self::DockerDown
        )
    }

    /// Whether a model's baseline has a figure for it, so a rule can be relative.
    pub fn has_baseline(self) -> bool {
        self.needs_requests() && !matches!(self, Self::Measure(_))
    }

    /// Figures a version of a model has of its own (its latency and errors in the live
    /// window), so a rule can be narrowed to one version.
    pub fn per_version(self) -> bool {
        matches!(
            self,
            Self::P50Ms | Self::P95Ms | Self::P99Ms | Self::ErrorRate
        )
    }

    /// Rate rules judged over a window of the per-second series.
    pub fn takes_window(self) -> bool {
        matches!(
            self,
            Self::ErrorRate | Self::Qps | Self::Restarts | Self::OomKills | Self::SourceDrops
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

/// A threshold that follows the model's own normal (its baseline) instead of a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Relative {
    /// Above rules: fire past `factor ×` normal (≥ 1). `qps`: below `factor ×` normal (< 1).
    pub factor: f64,
    /// And at least this far from normal, in the metric's unit, so a 2 → 4 ms wobble
    /// on a tiny model is not an incident.
    pub min_change: f64,
}

/// How far past a figure's high (its slowest minutes or slow requests, `Baseline`) a rule
/// fires (or its factor, if smaller): a model with two modes of latency is judged
/// against both.
const PAST_HIGH: f64 = 1.5;

impl Relative {
    /// `(threshold, resolve)` for a model whose normal is `normal` and whose high (its
    /// slowest minutes or slow requests reach it) is `high` (latency figures). An "above" rule fires past `factor ×`
    /// normal, `min_change` above it, and past `high` by 1.5× (or the factor, if smaller),
    /// so the slow mode of a model with two (a cache's misses) is not taken for a
    /// regression. A firing alert resolves halfway back to normal (to `high`, if higher):
    /// far enough from the threshold not to flap.
    pub fn limits(&self, metric: Metric, normal: f64, high: Option<f64>) -> (f64, f64) {
        if metric.fires_below() {
            let threshold = (normal * self.factor).min(normal - self.min_change);
            return (threshold, threshold + (normal - threshold) / 2.0);
        }
        let usual = high.map_or(normal, |h| h.max(normal));
        let threshold = (normal * self.factor)
            .max(normal + self.min_change)
            .max(usual * self.factor.min(PAST_HIGH));
        (threshold, threshold + (usual - threshold) / 2.0)
    }
}

/// A rule as the engine uses it: every field known.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub metric: Metric,
    /// Absolute rules only; a relative rule's limits come from the baseline.
    pub threshold: f64,
    /// The other side of the hysteresis: a firing alert resolves only once the value is
    /// back on this side (below it for "above" rules, above it for `qps`).
    pub resolve: f64,
    /// `Some`: judged against the model's baseline, `threshold` and `resolve` unused.
    pub relative: Option<Relative>,
    /// `None`: the store's live window (for a relative `qps` rule, a window long enough
    /// to expect 20 requests at the model's normal rate, or 20 bursts of a model whose
    /// requests come in bursts with lulls between them; for a relative or backstop
    /// `error_rate` rule, 30 requests: see `measure`). Error rate and qps can
    /// use any window up to the 5-minute per-second series; latency percentiles always
    /// use the live window.
    pub window: Option<Duration>,
    /// How long the condition must hold before pending turns firing. Short dips (and
    /// samples without a figure) inside the pending time do not restart the clock; the
    /// condition must have held in three quarters of the checks.
    pub for_: Duration,
    /// How long a firing alert stays firing after its condition cleared.
    pub keep_firing_for: Duration,
    /// Reminders while firing and not acknowledged; zero: never.
    pub repeat_interval: Duration,
    /// Below this many requests in the window the value is unknown and never fires.
    pub min_requests: u64,
    /// Error-rate rules: fewer errors than this in the window never fire.
    pub min_errors: u64,
    pub severity: Severity,
    /// Notifier names (`desktop` or a webhook's name); `None`: all of them.
    pub notify: Option<Vec<String>>,
    /// Judge only this version of the model (its figures in the live window): a canary
    /// held to its own limit. `None`: the whole model.
    pub version: Option<String>,
    /// A fixed limit under the relative rules of its metric, for a model whose normal is
    /// itself broken (failing since it first sent): it does not start while one of
    /// them fires for the model (that alert tells already), and its sentence says it
    /// judges whatever the model's normal.
    pub backstop: bool,
    /// Another rule that tells of the same incident: this one does not start while that
    /// one fires for the model, as long as both judge the whole model against its normal
    /// and would reach the same people the same way (severity, notifiers). A slowdown
    /// that moves p50 and p95 is one alert; a fixed SLO, a canary's limit or a rule a
    /// team made critical tells of something else.
    pub defers_to: Option<String>,
}

impl Rule {
    /// A rule with a fixed limit and the defaults every other key starts from.
    pub fn fixed(
        name: &str,
        metric: Metric,
        threshold: f64,
        resolve: f64,
        for_: Duration,
        severity: Severity,
    ) -> Self {
        Self {
            name: name.to_owned(),
            metric,
            threshold,
            resolve,
            relative: None,
            window: None,
            for_,
            keep_firing_for: Duration::ZERO,
            repeat_interval: secs(4 * 3600),
            min_requests: if metric.needs_requests() { 20 } else { 0 },
            min_errors: 0,
            severity,
            notify: None,
            version: None,
            backstop: false,
            defers_to: None,
        }
    }

    /// Whether `value` breaks limits `(threshold, resolve)`; a firing alert is judged
    /// against `resolve`.
    pub fn is_bad(&self, value: f64, limits: (f64, f64), firing: bool) -> bool {
        let limit = if firing { limits.1 } else { limits.0 };
        if self.metric.fires_below() {
            value < limit
        } else {
            value > limit
        }
    }

    /// `(threshold, resolve)` given the model's normal (and, for latency, how far its
    /// slowest minutes go); `None` for a relative rule whose model has no baseline yet.
    pub fn limits(&self, normal: Option<f64>, high: Option<f64>) -> Option<(f64, f64)> {
        match self.relative {
            None => Some((self.threshold, self.resolve)),
            Some(r) => normal.map(|n| r.limits(self.metric, n, high)),
        }
    }

    /// Whether a notifier named `name` gets this rule's notifications.
    pub fn notifies(&self, name: &str) -> bool {
        self.notify
            .as_ref()
            .is_none_or(|n| n.iter().any(|x| x == name))
    }

    /// How long a pending alert may go without a bad sample before it is dropped: a
    /// quarter of `for`, from 2 to 10 s. One noisy sample must not restart the clock.
    pub fn grace(&self) -> Duration {
        (self.for_ / 4).clamp(secs(2), secs(10))
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

/// The rules every model (and the monitor itself) gets with no configuration at all.
/// docs/alerts.md gives the reasoning behind each figure.
pub fn builtin_rules() -> Vec<Rule> {
    let rule = |name: &str, metric, threshold, resolve, for_s, severity| {
        Rule::fixed(name, metric, threshold, resolve, secs(for_s), severity)
    };
    let relative = |factor, min_change| Some(Relative { factor, min_change });
    vec![
        Rule {
            relative: relative(3.0, 20.0),
            min_requests: 20,
            defers_to: Some("median_latency_regression".to_owned()),
            ..rule(
                "latency_regression",
                Metric::P95Ms,
                0.0,
                0.0,
                15,
                Severity::Warning,
            )
        },
        // The body of the answers, where p95 sees the tail: more requests taking a
        // model's slow path (its cache failing), or a model with two modes whose p95 sits
        // in its slow one anyway, slows the median first. One of the two tells of a
        // slowdown that moves both.
        Rule {
            relative: relative(3.0, 20.0),
            min_requests: 20,
            defers_to: Some("latency_regression".to_owned()),
            ..rule(
                "median_latency_regression",
                Metric::P50Ms,
                0.0,
                0.0,
                15,
                Severity::Warning,
            )
        },
        // The first token of a streamed answer (an LLM's) slowing down is an incident
        // of its own: a queue filling up in front of the model shows there first, while
        // whole answers still take their usual seconds.
        Rule {
            relative: relative(3.0, 20.0),
            min_requests: 20,
            ..rule(
                "ttfb_regression",
                Metric::TtfbP95Ms,
                0.0,
                0.0,
                15,
                Severity::Warning,
            )
        },
        // No `window`: long enough to expect 30 requests at the model's rate (30 s to
        // 5 min), so a quiet model's errors are judged at all.
        Rule {
            relative: relative(2.0, 0.05),
            min_requests: 20,
            min_errors: 5,
            ..rule(
                "error_spike",
                Metric::ErrorRate,
                0.0,
                0.0,
                15,
                Severity::Critical,
            )
        },
        // Under error_spike: a model failing since it first sent learns the failure as
        // its normal, and no relative limit is ever crossed. Most requests failing is
        // broken for any model, whatever its normal.
        Rule {
            min_requests: 20,
            min_errors: 5,
            backstop: true,
            ..rule(
                "most_requests_failing",
                Metric::ErrorRate,
                0.5,
                0.25,
                60,
                Severity::Critical,
            )
        },
        Rule {
            relative: relative(0.25, 0.0),
            ..rule(
                "traffic_drop",
                Metric::Qps,
                0.0,
                0.0,
                10,
                Severity::Critical,
            )
        },
        rule(
            "cpu_saturation",
            Metric::CpuLimitPercent,
            90.0,
            80.0,
            20,
            Severity::Warning,
        ),
        rule(
            "memory_saturation",
            Metric::MemoryPercent,
            90.0,
            85.0,
            20,
            Severity::Warning,
        ),
        // Held 2 min after its containers run again: a crash-looping container is
        // "restarting" most of the time and "running" for seconds in between, and once
        // Docker's restart backoff is a minute, each of those seconds would otherwise
        // resolve it and the next crash fire it anew.
        Rule {
            keep_firing_for: secs(120),
            ..rule(
                "container_down",
                Metric::ContainersDown,
                0.0,
                0.0,
                0,
                Severity::Critical,
            )
        },
        rule(
            "container_restarted",
            Metric::Restarts,
            0.0,
            0.0,
            0,
            Severity::Warning,
        ),
        rule(
            "oom_killed",
            Metric::OomKills,
            0.0,
            0.0,
            0,
            Severity::Critical,
        ),
        rule(
            "unhealthy",
            Metric::Unhealthy,
            0.0,
            0.0,
            15,
            Severity::Critical,
        ),
        rule(
            "broker_down",
            Metric::BrokerDown,
            0.0,
            0.0,
            10,
            Severity::Critical,
        ),
        Rule {
            window: Some(secs(60)),
            ..rule(
                "source_dropping",
                Metric::SourceDrops,
                0.0,
                0.0,
                0,
                Severity::Warning,
            )
        },
        rule(
            "docker_unavailable",
            Metric::DockerDown,
            0.0,
            0.0,
            10,
            Severity::Warning,
        ),
    ]
}

/// Fixed limits that are off unless a config names them (see [`RuleSet::new`]): an SLO
/// every model is held to is rarely right for all of them.
pub fn fixed_limit_rules() -> Vec<Rule> {
    let rule = |name: &str, metric, threshold, resolve, severity| {
        Rule::fixed(name, metric, threshold, resolve, secs(30), severity)
    };
    vec![
        rule(
            "high_latency",
            Metric::P95Ms,
            500.0,
            400.0,
            Severity::Warning,
        ),
        rule(
            "high_error_rate",
            Metric::ErrorRate,
            0.05,
            0.02,
            Severity::Critical,
        ),
    ]
}

/// `[alerts.baseline]`: how each model's normal is learnt (see docs/alerts.md).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineSection {
    /// History the normal is learnt from.
    pub learn: Secs,
    /// The most recent stretch left out, so an incident cannot teach itself as normal.
    pub skip_recent: Secs,
    /// Usable history needed before relative rules judge a model.
    pub min_history: Secs,
    /// The span before `learn` whose normal latency rules also judge against, so a
    /// slowdown creeping up for hours (which drags the last hour's median along) is still
    /// a slowdown; 0 turns it off.
    pub earlier: Secs,
}

impl Default for BaselineSection {
    fn default() -> Self {
        Self {
            learn: Secs(secs(3600)),
            skip_recent: Secs(secs(300)),
            min_history: Secs(secs(600)),
            earlier: Secs(secs(5 * 3600)),
        }
    }
}

impl BaselineSection {
    /// What the types cannot check: `(key, message)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let whole_minutes = |d: Duration| d.as_secs() % 60 == 0 && d.subsec_nanos() == 0;
        if !whole_minutes(self.learn.0) || self.learn.0 < secs(60) || self.learn.0 > secs(6 * 3600)
        {
            return Err((
                "alerts.baseline.learn",
                "must be whole minutes from 1m to 6h".into(),
            ));
        }
        if self.skip_recent.0 > secs(3600) {
            return Err(("alerts.baseline.skip_recent", "must be at most 1h".into()));
        }
        if self.min_history.0 < secs(60) || self.min_history.0 > self.learn.0 {
            return Err((
                "alerts.baseline.min_history",
                "must be from 1m to `learn`".into(),
            ));
        }
        // The rings hold 24 hours: the earlier span must end inside them.
        let room = secs(24 * 3600).saturating_sub(self.learn.0 + self.skip_recent.0);
        let room_m = room.as_secs() / 60;
        let off = self.earlier.0.is_zero();
        if !off
            && (self.earlier.0.as_secs() % 300 != 0
                || self.earlier.0.subsec_nanos() != 0
                || self.earlier.0 < self.min_history.0
                || self.earlier.0 > room)
        {
            return Err((
                "alerts.baseline.earlier",
                format!(
                    "must be 0s (off) or whole 5 minutes from `min_history` to {}h{}m (24h less `learn` and `skip_recent`)",
                    room_m / 60,
                    room_m % 60
                ),
            ));
        }
        Ok(())
    }
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
    pub min_errors: Option<u64>,
    /// Makes the rule relative to the model's normal (see [`Relative`]).
    pub factor: Option<f64>,
    pub min_change: Option<f64>,
    pub severity: Option<Severity>,
    pub notify: Option<Vec<String>>,
    /// Only this version of each model the rule applies to (see [`Rule::version`]).
    pub version: Option<String>,
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsSection {
    pub enabled: bool,
    /// Start from the built-in rules (false: only the rules written here).
    pub builtin: bool,
    pub rules: Vec<RuleSpec>,
    pub baseline: BaselineSection,
}

impl Default for AlertsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            builtin: true,
            rules: Vec::new(),
            baseline: BaselineSection::default(),
        }
    }
}

/// A rule spec that cannot become a rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("rule `{0}` is new, so it needs `metric` and `threshold` (or `factor`)")]
    Incomplete(String),
    #[error("rule `{name}`: {message}")]
    Invalid { name: String, message: String },
    /// The specs naming `model`, stacked, make a rule that `error` refuses.
    #[error(
        "for model `{model}` (the specs naming it apply in config order, each over the ones before): {error}"
    )]
    ForModel {
        model: String,
        error: Box<RuleError>,
    },
}

impl RuleSpec {
    /// This spec laid over `base`, or a new rule when there is none.
    fn apply(&self, base: Option<&Rule>) -> Result<Rule, RuleError> {
        let mut rule = match (base, self.metric) {
            (Some(b), _) => b.clone(),
            (None, Some(metric)) if self.threshold.is_some() || self.factor.is_some() => {
                Rule::fixed(&self.name, metric, 0.0, 0.0, secs(60), Severity::Warning)
            }
            (None, _) => return Err(RuleError::Incomplete(self.name.clone())),
        };
        if let Some(m) = self.metric {
            rule.metric = m;
        }
        // A threshold makes the rule absolute (an SLO), a factor makes it relative.
        if let Some(t) = self.threshold {
            rule.relative = None;
            rule.threshold = t;
            rule.resolve = default_resolve(rule.metric, t);
        }
        if let Some(r) = self.resolve {
            rule.resolve = r;
        }
        // `min_change` alone only tunes a rule that is relative already: on a fixed one
        // it is refused below, not taken as a wish to drop the written threshold.
        if self.factor.is_some() || (self.min_change.is_some() && rule.relative.is_some()) {
            let was = rule.relative.unwrap_or(Relative {
                factor: if rule.metric.fires_below() { 0.25 } else { 3.0 },
                min_change: 0.0,
            });
            rule.relative = Some(Relative {
                factor: self.factor.unwrap_or(was.factor),
                min_change: self.min_change.unwrap_or(was.min_change),
            });
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
        if let Some(n) = self.min_errors {
            rule.min_errors = n;
        }
        if let Some(s) = self.severity {
            rule.severity = s;
        }
        if let Some(n) = &self.notify {
            rule.notify = Some(n.clone());
        }
        if let Some(v) = &self.version {
            rule.version = Some(v.clone());
        }
        check(self, &rule)?;
        Ok(rule)
    }
}

fn check(spec: &RuleSpec, rule: &Rule) -> Result<(), RuleError> {
    let invalid = |message: &str| RuleError::Invalid {
        name: rule.name.clone(),
        message: message.to_owned(),
    };
    if spec.threshold.is_some() && spec.factor.is_some() {
        return Err(invalid(
            "set `threshold` (a fixed limit) or `factor` (relative to the model's normal), not both",
        ));
    }
    if spec.min_change.is_some() && rule.relative.is_none() {
        return Err(invalid(if spec.threshold.is_some() {
            "set `threshold` (a fixed limit) or `min_change` (relative to the model's normal), not both: min_change belongs to relative rules"
        } else {
            "`min_change` belongs to relative rules and this one has a fixed `threshold`: set `factor` to make it relative, or drop min_change"
        }));
    }
    if let Some(r) = rule.relative {
        if spec.resolve.is_some() {
            return Err(invalid(
                "`resolve` needs a fixed `threshold`; a relative rule resolves halfway back to normal",
            ));
        }
        if !rule.metric.has_baseline() {
            let learnt: Vec<&str> = NAMED
                .iter()
                .filter(|m| m.has_baseline())
                .map(Metric::as_str)
                .collect();
            return Err(invalid(&format!(
                "`factor` needs a metric with a baseline ({}), not {}",
                learnt.join(", "),
                rule.metric.as_str()
            )));
        }
        if !r.factor.is_finite() || !r.min_change.is_finite() || r.min_change < 0.0 {
            return Err(invalid(
                "factor and min_change must be finite, min_change at least 0",
            ));
        }
        let sane = if rule.metric.fires_below() {
            r.factor > 0.0 && r.factor < 1.0
        } else {
            r.factor >= 1.0
        };
        if !sane {
            return Err(invalid(if rule.metric.fires_below() {
                "factor must be between 0 and 1 for qps (a drop below that share of normal)"
            } else {
                "factor must be at least 1 (a rise above that many times normal)"
            }));
        }
    } else {
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
    }
    // A share of the requests: a limit written as a percentage (5 for 5 %) would load
    // and never fire, the rate being at most 1.
    if rule.metric == Metric::ErrorRate {
        let outside = match rule.relative {
            Some(r) => (r.min_change >= 1.0).then_some(("min_change", r.min_change)),
            None if !(0.0..1.0).contains(&rule.threshold) => Some(("threshold", rule.threshold)),
            None => (rule.resolve < 0.0).then_some(("resolve", rule.resolve)),
        };
        if let Some((key, v)) = outside {
            return Err(invalid(&format!(
                "error_rate is a fraction: 0.05 means 5 %, so `{key}` must be from 0 to below 1, not {v}"
            )));
        }
    }
    if let Some(w) = rule.window {
        if w < secs(1) || w > secs(300) || w.subsec_nanos() != 0 {
            return Err(invalid("window must be whole seconds from 1s to 5m"));
        }
        if !rule.metric.takes_window() {
            return Err(invalid(
                "only error_rate, qps, restarts, oom_kills and source_drops take `window`; latency and ml measures use the live window ([store] window)",
            ));
        }
    }
    if let Some(v) = &rule.version {
        if v.is_empty() {
            return Err(invalid("`version` must not be empty"));
        }
        if !rule.metric.per_version() {
            return Err(invalid(&format!(
                "`version` takes p50_ms, p95_ms, p99_ms or error_rate (what each version has of its own), not {}",
                rule.metric.as_str()
            )));
        }
        if rule.relative.is_some() || rule.window.is_some() {
            return Err(invalid(
                "a rule with `version` takes a fixed `threshold` over the live window: no `factor` (normals are learnt per model) and no `window`",
            ));
        }
    }
    if rule.metric.of_monitor() && !spec.models.is_empty() {
        return Err(invalid(&format!(
            "{} is about the monitor itself, not a model: remove `models`",
            rule.metric.as_str()
        )));
    }
    Ok(())
}

/// The rules that apply to each model, resolved once per model and then shared.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    base: Vec<Rule>,
    /// Rules off for every model (switched off, or fixed limits no spec named), kept so
    /// a per-model spec can switch them on.
    disabled_base: Vec<Rule>,
    /// Specs that name models, in config order.
    per_model: Vec<RuleSpec>,
    cache: HashMap<String, Arc<[Rule]>>,
    /// How baselines are learnt.
    pub baseline: BaselineSection,
}

impl RuleSet {
    /// Checks every spec now, so a bad rule is a config error at start, not at runtime.
    pub fn new(section: &AlertsSection) -> Result<Self, RuleError> {
        let mut base = if section.builtin {
            builtin_rules()
        } else {
            Vec::new()
        };
        // Off unless a spec names them: the fixed limits that were built in before the
        // rules judged each model against its normal. Naming one (for every model or a
        // few) turns it on with the spec's keys, so configs written for them still work.
        let mut dormant = if section.builtin {
            fixed_limit_rules()
        } else {
            Vec::new()
        };
        let mut disabled = Vec::new();
        for spec in section.rules.iter().filter(|s| s.models.is_empty()) {
            if let Some(i) = dormant.iter().position(|r| r.name == spec.name) {
                base.push(dormant.swap_remove(i));
            }
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
        let (base, mut disabled_base): (Vec<Rule>, Vec<Rule>) =
            base.into_iter().partition(|r| !disabled.contains(&r.name));
        disabled_base.extend(dormant);
        let mut set = Self {
            base,
            disabled_base,
            per_model,
            cache: HashMap::new(),
            baseline: section.baseline,
        };
        // Specs naming a model stack up, each on what the ones before made of the rule,
        // so only the whole stack says whether a model's rule is valid: build each named
        // model's now, and a bad one is a config error instead of a rule gone missing.
        let named: Vec<String> = set
            .per_model
            .iter()
            .flat_map(|s| s.models.iter().cloned())
            .collect();
        for model in named {
            if set.cache.contains_key(&model) {
                continue;
            }
            let rules = set.stack(&model).map_err(|e| RuleError::ForModel {
                model: model.clone(),
                error: Box::new(e),
            })?;
            set.cache.insert(model, rules.into());
        }
        Ok(set)
    }

    /// The rules about the monitor itself (broker, sources, Docker engine).
    pub fn for_monitor(&self) -> impl Iterator<Item = &Rule> {
        self.base.iter().filter(|r| r.metric.of_monitor())
    }

    /// The rules for `model`.
    pub fn for_model(&mut self, model: &str) -> Arc<[Rule]> {
        if let Some(r) = self.cache.get(model) {
            return Arc::clone(r);
        }
        // Every model a spec names was stacked in `new`: this one gets the base rules.
        let rules: Arc<[Rule]> = self
            .base
            .iter()
            .filter(|r| !r.metric.of_monitor())
            .cloned()
            .collect();
        // Bounded by the store's model cap: models are the store's names.
        self.cache.insert(model.to_owned(), Arc::clone(&rules));
        rules
    }

    /// The base rules with the specs naming `model` laid over them in config order.
    fn stack(&self, model: &str) -> Result<Vec<Rule>, RuleError> {
        let mut rules: Vec<Rule> = self
            .base
            .iter()
            .filter(|r| !r.metric.of_monitor())
            .cloned()
            .collect();
        // Switched off for this model by a spec: a later one tunes it and it stays off
        // unless that one says `enabled = true`.
        let mut off: Vec<Rule> = Vec::new();
        for spec in self
            .per_model
            .iter()
            .filter(|s| s.models.iter().any(|m| m == model))
        {
            let named = |r: &Rule| r.name == spec.name;
            let on = rules.iter().position(named);
            let was_off = off.iter().position(named);
            // Then one switched off for every model, or one about the monitor, which
            // `check` refuses for naming models.
            let base = on
                .map(|i| &rules[i])
                .or_else(|| was_off.map(|i| &off[i]))
                .or_else(|| {
                    self.disabled_base
                        .iter()
                        .chain(&self.base)
                        .find(|r| named(r))
                });
            let rule = spec.apply(base)?;
            match (on, was_off, spec.enabled) {
                (Some(i), _, Some(false)) => {
                    rules.remove(i);
                    off.push(rule);
                }
                (Some(i), _, _) => rules[i] = rule,
                (None, Some(i), Some(true)) => {
                    off.remove(i);
                    rules.push(rule);
                }
                (None, Some(i), _) => off[i] = rule,
                (None, None, Some(false)) => off.push(rule),
                (None, None, _) => rules.push(rule),
            }
        }
        Ok(rules)
    }

    /// Every rule name in the base set (for docs and tests).
    pub fn names(&self) -> Vec<&str> {
        self.base.iter().map(|r| r.name.as_str()).collect()
    }
}
