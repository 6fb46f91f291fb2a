//! Prometheus Alertmanager as a receiver: `POST <base>/api/v2/alerts`.
//!
//! Alertmanager takes an alert as resolved once its `endsAt` has passed (and an alert
//! posted without one once `resolve_timeout` passes without a new post). So, as
//! Prometheus does, every post says a firing alert ends four re-send intervals later,
//! and the notifier posts its firing alerts again every interval; a resolve is posted
//! with `endsAt` = when it resolved. If the monitor dies, what it had firing ends by
//! itself within four intervals instead of firing forever.
//!
//! Alertmanager groups, routes, inhibits, silences and deduplicates on its own side, so
//! every post simply carries every alert this notifier has firing, plus the resolves of
//! the evaluation that caused it. The HTTP side (client, TLS, timeouts, retries) is the
//! webhooks' own [`Endpoint`].

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use hyper::Uri;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};

use super::webhook::{Endpoint, WebhookError, names, parse_url};
use super::{Group, WebhookConfig, deep_link, explanation, show_value};
use crate::alert::engine::{AlertKey, Transition, TransitionKind};
use crate::clock::rfc3339;

/// How often firing alerts are posted again unless `resend` says otherwise; what
/// Prometheus does (`--rules.alert.resend-delay`).
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);
/// A firing alert is posted as ending this many re-send intervals ahead: a few lost
/// posts do not resolve it, a dead monitor's alerts still end.
const ENDS_AFTER: u32 = 4;
/// The path of Alertmanager's alerts API below its base URL.
const API_PATH: &str = "/api/v2/alerts";

/// Where alerts are posted: `url` (Alertmanager's base URL, with its route prefix if it
/// has one) with `/api/v2/alerts` appended, unless it already ends with it.
pub fn alerts_url(url: &str) -> Result<Uri, WebhookError> {
    let base = parse_url(url)?;
    let path = base.path().trim_end_matches('/');
    if path.ends_with(API_PATH) {
        return Ok(base);
    }
    let query = base.query().map(|q| format!("?{q}")).unwrap_or_default();
    let full = format!("{path}{API_PATH}{query}");
    let mut parts = base.into_parts();
    let bad = |why: String| WebhookError::Url {
        url: url.to_owned(),
        why,
    };
    parts.path_and_query = Some(full.parse().map_err(|e| bad(format!("{e}")))?);
    Uri::from_parts(parts).map_err(|e| bad(e.to_string()))
}

/// The JSON array of postable alerts for `alerts`, as posted at `now_ms`.
pub fn payload<'a>(
    alerts: impl Iterator<Item = &'a Transition>,
    link: Option<&str>,
    now_ms: i64,
    resend: Duration,
) -> Value {
    let ahead = i64::try_from(resend.saturating_mul(ENDS_AFTER).as_millis()).unwrap_or(i64::MAX);
    Value::Array(
        alerts
            .map(|t| {
                let a = &t.alert;
                let mut labels = Map::new();
                labels.insert("alertname".into(), a.rule.clone().into());
                // Alertmanager drops empty labels anyway; say what the alert is about.
                if a.is_monitor() {
                    labels.insert("scope".into(), "monitor".into());
                } else {
                    labels.insert("model".into(), a.model.clone().into());
                }
                labels.insert("severity".into(), a.severity.as_str().into());
                labels.insert("metric".into(), a.metric.as_str().into());
                let starts = a.started_ms.unwrap_or(a.active_since_ms);
                let ends = match t.kind {
                    TransitionKind::Resolved => a.resolved_ms.unwrap_or(now_ms),
                    TransitionKind::Firing | TransitionKind::Reminder => {
                        now_ms.saturating_add(ahead)
                    }
                };
                let mut alert = json!({
                    "labels": labels,
                    "annotations": {
                        "summary": format!(
                            "{} on {}: {} {}",
                            a.rule,
                            a.subject(),
                            a.metric.as_str(),
                            show_value(a.metric, a.value)
                        ),
                        "description": explanation(a),
                    },
                    "startsAt": rfc3339(starts),
                    // Alertmanager refuses an alert that ends before it starts.
                    "endsAt": rfc3339(ends.max(starts)),
                });
                if let Some(base) = link {
                    alert["generatorURL"] = deep_link(base, a).into();
                }
                alert
            })
            .collect(),
    )
}

/// Posts what arrives on `rx`, and every firing alert again each `resend`, until the
/// monitor stops.
pub async fn run(cfg: WebhookConfig, link: Option<String>, mut rx: mpsc::Receiver<Group>) {
    let Some(endpoint) = Endpoint::new(&cfg, alerts_url(&cfg.url)) else {
        return;
    };
    let resend = cfg.resend_every();
    // What this notifier posted as firing and has not posted resolved: the latest
    // transition of each, so a reminder's newer explanation is what gets re-sent.
    let mut firing: BTreeMap<AlertKey, Transition> = BTreeMap::new();
    let mut tick = tokio::time::interval_at(Instant::now() + resend, resend);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let resolved: Vec<Transition> = tokio::select! {
            group = rx.recv() => {
                let Some(group) = group else { return };
                let mut resolved = Vec::new();
                for t in group.iter() {
                    if t.kind == TransitionKind::Resolved {
                        firing.remove(&t.alert.key());
                        resolved.push(t.clone());
                    } else {
                        firing.insert(t.alert.key(), t.clone());
                    }
                }
                resolved
            }
            _ = tick.tick(), if !firing.is_empty() => Vec::new(),
        };
        // Every post refreshes every firing alert, so the next re-send is due one
        // interval after this one, whatever caused it.
        tick.reset();
        let now_ms = crate::clock::now_us() / 1000;
        let all: Vec<&Transition> = firing.values().chain(&resolved).collect();
        let body = payload(all.iter().copied(), link.as_deref(), now_ms, resend);
        let body = Bytes::from(body.to_string());
        endpoint.deliver(body, || names(all.iter().copied())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::MONITOR;
    use crate::alert::notify::tests::transition;

    #[test]
    fn the_api_path_is_appended_to_the_base_url_once() {
        let url = |u: &str| alerts_url(u).map(|u| u.to_string()).ok();
        let want = Some("http://127.0.0.1:9093/api/v2/alerts".to_owned());
        assert_eq!(url("http://127.0.0.1:9093"), want);
        assert_eq!(url("http://127.0.0.1:9093/"), want);
        assert_eq!(url("http://127.0.0.1:9093/api/v2/alerts"), want);
        assert_eq!(
            url("https://ops.example/alertmanager/").as_deref(),
            Some("https://ops.example/alertmanager/api/v2/alerts")
        );
        assert!(alerts_url("ftp://127.0.0.1:9093").is_err());
    }

    #[test]
    fn alerts_are_labelled_annotated_and_end_ahead_while_firing() {
        let now = 1_795_905_700_000;
        let group = [
            transition(TransitionKind::Firing, "latency_regression", "resnet 50"),
            transition(TransitionKind::Resolved, "broker_down", MONITOR),
        ];
        let body = payload(
            group.iter(),
            Some("http://mon:9464"),
            now,
            Duration::from_secs(60),
        );
        let firing = &body[0];
        assert_eq!(
            firing["labels"],
            json!({"alertname": "latency_regression", "model": "resnet 50",
                   "severity": "warning", "metric": "p95_ms"})
        );
        assert_eq!(
            firing["annotations"]["description"],
            "p95 470 ms, 117× its normal 4.0 ms (last hour)"
        );
        assert_eq!(
            firing["annotations"]["summary"],
            "latency_regression on resnet 50: p95_ms 470 ms"
        );
        assert_eq!(firing["startsAt"], rfc3339(1_795_905_631_200));
        assert_eq!(firing["endsAt"], rfc3339(now + 240_000));
        assert_eq!(
            firing["generatorURL"],
            "http://mon:9464/#/model/resnet%2050"
        );
        let resolved = &body[1];
        assert_eq!(
            resolved["labels"],
            json!({"alertname": "broker_down", "scope": "monitor",
                   "severity": "warning", "metric": "p95_ms"})
        );
        assert_eq!(resolved["endsAt"], rfc3339(1_795_905_931_200));
        assert_eq!(resolved["generatorURL"], "http://mon:9464/");
    }
}
