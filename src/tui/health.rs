//! What the display's colours say about a model. A cell turns yellow or red because the
//! alert engine judges it so: an alert pending or firing on that figure (judged against
//! the model's own normal), or the fixed level of an SLO rule the team set (see
//! [`Thresholds::with_rules`]). No fixed latency or error level is built in: a 3-s p95 is
//! an LLM's normal and would paint it red forever.

use crate::alert::{AlertPhase, AlertsView, Metric as RuleMetric, Rule, Severity};
use crate::store::view::ModelView;

/// Warn and critical levels. One struct, so the alert config can replace it wholesale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub p95_warn_ms: f64,
    pub p95_crit_ms: f64,
    /// Share of requests, 0..1.
    pub error_warn: f64,
    pub error_crit: f64,
    /// A model not heard from for this long is flagged as silent.
    pub silent_warn_s: f64,
    /// Container CPU, percent of one core summed over replicas (as `docker stats`).
    pub cpu_warn_pct: f64,
    pub cpu_crit_pct: f64,
    /// Container memory, percent of the limit.
    pub mem_warn_pct: f64,
    pub mem_crit_pct: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            p95_warn_ms: f64::INFINITY,
            p95_crit_ms: f64::INFINITY,
            error_warn: f64::INFINITY,
            error_crit: f64::INFINITY,
            silent_warn_s: 30.0,
            cpu_warn_pct: 90.0,
            cpu_crit_pct: f64::INFINITY,
            mem_warn_pct: 90.0,
            mem_crit_pct: 95.0,
        }
    }
}

/// The state a model is drawn in. Ordered from best to worst, so `max` is the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    /// No requests in the live window: nothing to judge.
    Idle,
    Ok,
    Warn,
    Crit,
}

/// What a breach is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    P95,
    ErrorRate,
    Silent,
}

impl Metric {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::P95 => "p95",
            Self::ErrorRate => "err",
            Self::Silent => "silent",
        }
    }
}

/// One threshold crossed by one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    pub metric: Metric,
    pub level: Health,
    pub value: f64,
    pub threshold: f64,
}

impl Thresholds {
    /// These thresholds with the levels of the absolute alert rules that watch the same
    /// figure. A rule has one threshold and a severity: a critical rule sets the critical
    /// level, any other the warning level; the other level keeps its default, moved if
    /// needed so that warn never exceeds critical. Relative rules are left out: their
    /// limit follows each model's own normal, so no one number can colour a column every
    /// model shares; so are backstops (`most_requests_failing`), limits for any model far
    /// past what a column should warn of. With the built-in rules nothing changes.
    #[must_use]
    pub fn with_rules(mut self, rules: &[Rule]) -> Self {
        for r in rules.iter().filter(|r| r.relative.is_none() && !r.backstop) {
            let (warn, crit) = match r.metric {
                RuleMetric::P95Ms => (&mut self.p95_warn_ms, &mut self.p95_crit_ms),
                RuleMetric::ErrorRate => (&mut self.error_warn, &mut self.error_crit),
                RuleMetric::CpuPercent => (&mut self.cpu_warn_pct, &mut self.cpu_crit_pct),
                RuleMetric::MemoryPercent => (&mut self.mem_warn_pct, &mut self.mem_crit_pct),
                _ => continue,
            };
            if r.severity == Severity::Critical {
                *crit = r.threshold;
                *warn = warn.min(r.threshold);
            } else {
                *warn = r.threshold;
                *crit = crit.max(r.threshold);
            }
        }
        self
    }

    /// The level of a container's CPU figure, `None` when fine or unknown.
    pub fn cpu_level(&self, pct: Option<f64>) -> Option<Health> {
        level(pct, self.cpu_warn_pct, self.cpu_crit_pct)
    }

    /// The level of a container's memory share of its limit.
    pub fn mem_level(&self, pct: Option<f64>) -> Option<Health> {
        level(pct, self.mem_warn_pct, self.mem_crit_pct)
    }

    /// Every threshold the model crosses, and every figure an alert of its is pending
    /// or firing on, worst first.
    pub fn breaches(&self, m: &ModelView, alerts: &AlertsView) -> Vec<Breach> {
        let mut out: Vec<Breach> = alerts
            .active
            .iter()
            .filter(|a| a.model == m.model)
            .filter_map(|a| {
                let metric = match a.metric {
                    RuleMetric::P50Ms | RuleMetric::P95Ms | RuleMetric::P99Ms => Metric::P95,
                    RuleMetric::ErrorRate => Metric::ErrorRate,
                    _ => return None,
                };
                let level = if a.state == AlertPhase::Firing && a.severity == Severity::Critical {
                    Health::Crit
                } else {
                    Health::Warn
                };
                Some(Breach {
                    metric,
                    level,
                    value: a.value?,
                    threshold: a.threshold,
                })
            })
            .collect();
        let mut check = |metric, value: Option<f64>, warn: f64, crit: f64| {
            let Some(v) = value else { return };
            let (level, threshold) = if v >= crit {
                (Health::Crit, crit)
            } else if v >= warn {
                (Health::Warn, warn)
            } else {
                return;
            };
            out.push(Breach {
                metric,
                level,
                value: v,
                threshold,
            });
        };
        check(
            Metric::P95,
            m.stats.p95_ms,
            self.p95_warn_ms,
            self.p95_crit_ms,
        );
        check(
            Metric::ErrorRate,
            m.stats.error_rate,
            self.error_warn,
            self.error_crit,
        );
        // Silence is never critical on its own: a model may simply have no callers.
        check(
            Metric::Silent,
            m.last_seen_ms_ago.map(|ms| ms as f64 / 1000.0),
            self.silent_warn_s,
            f64::INFINITY,
        );
        out.sort_by_key(|b| std::cmp::Reverse(b.level));
        out
    }

    /// The worst of the model's breaches and of its alerts (a firing critical one is
    /// red, anything else pending or firing yellow). A model without requests in the
    /// window is idle unless an alert of its is pending or firing: its silence colours
    /// its last-seen figure only. A model may simply have no callers, and silent after
    /// 30 s within a 60-s window would make every idle model a warning.
    pub fn health(&self, m: &ModelView, alerts: &AlertsView) -> Health {
        let idle = m.stats.requests == 0;
        let alerted = alerts
            .active
            .iter()
            .filter(|a| a.model == m.model)
            .map(|a| {
                if a.state == AlertPhase::Firing && a.severity == Severity::Critical {
                    Health::Crit
                } else {
                    Health::Warn
                }
            })
            .max();
        let worst = self
            .breaches(m, alerts)
            .iter()
            .filter(|b| !(idle && b.metric == Metric::Silent))
            .map(|b| b.level)
            .max()
            .max(alerted);
        match worst {
            Some(h) => h,
            None if idle => Health::Idle,
            None => Health::Ok,
        }
    }
}

fn level(v: Option<f64>, warn: f64, crit: f64) -> Option<Health> {
    let v = v?;
    if v >= crit {
        Some(Health::Crit)
    } else if v >= warn {
        Some(Health::Warn)
    } else {
        None
    }
}
