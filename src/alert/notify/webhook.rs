//! Webhooks: an HTTP POST of JSON per alert transition.
//!
//! One task per endpoint sends its queue in order (a resolve never overtakes its
//! firing), each attempt bounded by a timeout, retried with doubling pauses. Only
//! answers that may change on retry (timeouts, refused connections, 5xx, 408, 429) are
//! retried; a 4xx is the payload's fault and retrying it would only spam. A rejected
//! certificate is not retried either: it will not change within the backoff.
//!
//! `https://` goes through rustls (ring): the system's roots, Mozilla's bundled roots when
//! the system has none, plus the webhook's own `ca_file` (a private CA or self-signed relay).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
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
    #[error("TLS error: {0}")]
    Tls(rustls::Error),
    #[error("cannot use ca_file {path:?}: {why}")]
    CaFile { path: PathBuf, why: String },
}

/// The client every attempt of one webhook goes through.
type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

impl WebhookError {
    /// Whether another attempt may succeed.
    fn retryable(&self) -> bool {
        match self {
            Self::Url { .. } | Self::Request(_) | Self::Tls(_) | Self::CaFile { .. } => false,
            Self::Status(s) => *s >= 500 || *s == 408 || *s == 429,
            Self::Timeout(_) | Self::Http(_) => true,
        }
    }
}

/// Checks a webhook URL: `http://` or `https://` with a host.
pub fn parse_url(url: &str) -> Result<Uri, WebhookError> {
    let bad = |why: &str| WebhookError::Url {
        url: url.to_owned(),
        why: why.to_owned(),
    };
    let uri: Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(&e.to_string()))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad("must start with http:// or https://")),
    }
    if uri.host().is_none() {
        return Err(bad("has no host"));
    }
    Ok(uri)
}

/// The PEM certificates in `path`: at least one, each one a usable root.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, WebhookError> {
    let bad = |why: String| WebhookError::CaFile {
        path: path.to_path_buf(),
        why,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("holds no PEM certificate".into()));
    }
    let mut probe = RootCertStore::empty();
    for c in &certs {
        probe.add(c.clone()).map_err(|e| bad(e.to_string()))?;
    }
    Ok(certs)
}

/// Trusted roots: the system's, else Mozilla's bundle, plus `extra`.
fn roots(extra: Vec<CertificateDer<'static>>) -> RootCertStore {
    let mut store = RootCertStore::empty();
    // Unreadable system certificates are skipped: one broken file must not turn TLS off.
    let native = rustls_native_certs::load_native_certs();
    let (added, _) = store.add_parsable_certificates(native.certs);
    if added == 0 {
        // A minimal container without ca-certificates still reaches Slack and friends.
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    store.add_parsable_certificates(extra);
    store
}

/// A client for both schemes, trusting `ca_file` on top of the usual roots.
fn client(ca_file: Option<&Path>) -> Result<HttpsClient, WebhookError> {
    let extra = match ca_file {
        Some(p) => read_ca_file(p)?,
        None => Vec::new(),
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(WebhookError::Tls)?
    .with_root_certificates(roots(extra))
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The rustls error behind a failed request, if TLS is what failed.
fn tls_cause(err: &hyper_util::client::legacy::Error) -> Option<rustls::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return Some(t.clone());
        }
        // An io::Error's `source` skips the error it wraps, and the connector nests
        // rustls's error in two of them: step into the wrapped one instead.
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
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
    let client = match client(cfg.ca_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(webhook = %cfg.name, "{e}; this webhook is off");
            return;
        }
    };
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
    client: &HttpsClient,
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
        .map_err(|_| WebhookError::Timeout(timeout))?
        .map_err(|e| match tls_cause(&e) {
            Some(t) => WebhookError::Tls(t),
            None => WebhookError::Http(e),
        })?;
    let status = resp.status();
    // The answer's body is not read: dropping it closes or recycles the connection.
    if status.is_success() {
        Ok(())
    } else {
        Err(WebhookError::Status(status.as_u16()))
    }
}
