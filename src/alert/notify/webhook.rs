//! Webhooks: an HTTP POST of JSON per alert transition.
//!
//! One task per endpoint sends its queue in order (a resolve never overtakes its
//! firing), each attempt bounded by a timeout, retried with doubling pauses. Only
//! answers that may change on retry (timeouts, refused connections, 5xx, 408, 429) are
//! retried; a 4xx is the payload's fault and retrying it would only spam.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{WebhookConfig, WebhookFormat, headline, rfc3339};
use crate::alert::engine::{Transition, TransitionKind};

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("invalid webhook URL {url:?}: {why}")]
    Url { url: String, why: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Http(#[from] hyper_util::client::legacy::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("answered {0}")]
    Status(u16),
}

impl WebhookError {
    /// Whether another attempt may succeed.
    fn retryable(&self) -> bool {
        match self {
            Self::Url { .. } | Self::Request(_) => false,
            Self::Status(s) => *s >= 500 || *s == 408 || *s == 429,
            Self::Timeout(_) | Self::Http(_) => true,
        }
    }
}

/// Checks a webhook URL: plain `http://` with a host (TLS is not built in).
pub fn parse_url(url: &str) -> Result<Uri, WebhookError> {
    let bad = |why: &str| WebhookError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(bad(
                "https is not supported yet; point it at a local relay over http",
            ));
        }
        _ => return Err(bad("must start with http://")),
    }
    if uri.host().is_none() {
        return Err(bad("has no host"));
    }
    Ok(uri)
}

/// The body sent for `t`.
pub fn payload(format: WebhookFormat, t: &Transition, link: Option<&str>) -> Value {
    let a = &t.alert;
    let link = link.map(|base| format!("{}/#/models/{}", base.trim_end_matches('/'), a.model));
    match format {
        WebhookFormat::Json => json!({
            "status": match t.kind {
                TransitionKind::Resolved => "resolved",
                TransitionKind::Firing | TransitionKind::Reminder => "firing",
            },
            "reminder": t.kind == TransitionKind::Reminder,
            "rule": a.rule,
            "model": a.model,
            "metric": a.metric.as_str(),
            "severity": a.severity.as_str(),
            "value": a.value,
            "threshold": a.threshold,
            "resolve_threshold": a.resolve,
            "started_at": a.started_ms.map(rfc3339),
            "resolved_at": a.resolved_ms.map(rfc3339),
            "started_at_ms": a.started_ms,
            "resolved_at_ms": a.resolved_ms,
            "acknowledged": a.acknowledged,
            "link": link,
        }),
        WebhookFormat::Slack => {
            let text = match link {
                Some(l) => format!("{} <{l}|open>", headline(t)),
                None => headline(t),
            };
            json!({ "text": text })
        }
    }
}

/// Sends what arrives on `rx` to the endpoint until the monitor stops.
pub async fn run(
    cfg: WebhookConfig,
    link: Option<String>,
    mut rx: mpsc::Receiver<Arc<Transition>>,
) {
    let uri = match parse_url(&cfg.url) {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(webhook = %cfg.name, "{e}; this webhook is off");
            return;
        }
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    while let Some(t) = rx.recv().await {
        let body = Bytes::from(payload(cfg.format, &t, link.as_deref()).to_string());
        let mut pause = cfg.backoff.0;
        let mut attempt = 0;
        loop {
            match post(&client, &uri, body.clone(), cfg.timeout.0).await {
                Ok(()) => break,
                Err(e) if e.retryable() && attempt < cfg.retries => {
                    tracing::debug!(webhook = %cfg.name, attempt, "{e}; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
                Err(e) => {
                    tracing::warn!(
                        webhook = %cfg.name,
                        rule = %t.alert.rule,
                        model = %t.alert.model,
                        "alert notification not delivered after {} attempt(s): {e}",
                        attempt + 1
                    );
                    break;
                }
            }
        }
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &Uri,
    body: Bytes,
    timeout: Duration,
) -> Result<(), WebhookError> {
    let req = hyper::Request::post(uri.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("modelmon/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))?;
    let resp = tokio::time::timeout(timeout, client.request(req))
        .await
        .map_err(|_| WebhookError::Timeout(timeout))??;
    let status = resp.status();
    // The answer's body is not read: dropping it closes or recycles the connection.
    if status.is_success() {
        Ok(())
    } else {
        Err(WebhookError::Status(status.as_u16()))
    }
}
