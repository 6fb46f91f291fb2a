//! Webhooks: an HTTP POST of JSON per evaluation that changed something (a [`Group`]).
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

use crate::clock::rfc3339;
use modelmon_publisher::Backoff;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{Group, WebhookConfig, WebhookFormat, counts, deep_link, explanation, headline_on};
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

/// The version of the `format = "json"` body: 2 is the group (1 was one alert per POST).
pub const JSON_VERSION: u32 = 2;

/// The body sent for `group`. (The Alertmanager notifier builds its own bodies, with
/// its `resend`; the body here is the one it sends with the default.)
pub fn payload(format: WebhookFormat, group: &Group, link: Option<&str>) -> Value {
    match format {
        WebhookFormat::Json => {
            let (firing, resolved) = counts(group);
            let alerts: Vec<Value> = group
                .iter()
                .map(|t| {
                    let a = &t.alert;
                    json!({
                        "status": status(t.kind),
                        "reminder": t.kind == TransitionKind::Reminder,
                        "rule": a.rule,
                        "model": a.model,
                        "metric": a.metric.as_str(),
                        "severity": a.severity.as_str(),
                        "value": a.value,
                        "threshold": a.threshold,
                        "resolve_threshold": a.resolve,
                        "normal": a.normal,
                        "explanation": explanation(a),
                        "started_at": a.started_ms.map(rfc3339),
                        "resolved_at": a.resolved_ms.map(rfc3339),
                        "started_at_ms": a.started_ms,
                        "resolved_at_ms": a.resolved_ms,
                        "acknowledged": a.acknowledged,
                        "link": link.map(|base| deep_link(base, a)),
                    })
                })
                .collect();
            json!({
                "version": JSON_VERSION,
                "status": if firing > 0 { "firing" } else { "resolved" },
                "firing": firing,
                "resolved": resolved,
                "alerts": alerts,
            })
        }
        WebhookFormat::Slack => {
            let lines: Vec<String> = group
                .iter()
                .map(|t| match link {
                    Some(base) => headline_on(
                        t,
                        &format!("<{}|{}>", deep_link(base, &t.alert), t.alert.subject()),
                    ),
                    None => headline_on(t, t.alert.subject()),
                })
                .collect();
            json!({ "text": lines.join("\n") })
        }
        WebhookFormat::Alertmanager => super::alertmanager::payload(
            group.iter(),
            link,
            crate::clock::now_us() / 1000,
            super::alertmanager::DEFAULT_RESEND,
        ),
    }
}

fn status(kind: TransitionKind) -> &'static str {
    match kind {
        TransitionKind::Resolved => "resolved",
        TransitionKind::Firing | TransitionKind::Reminder => "firing",
    }
}

/// One endpoint: where, through which client, and how hard to try.
pub(super) struct Endpoint {
    name: String,
    uri: Uri,
    client: HttpsClient,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl Endpoint {
    /// `None` (told once in the log) when the URL or `ca_file` cannot be used: the
    /// config check refuses both, so this only happens if a file changed since.
    pub(super) fn new(cfg: &WebhookConfig, uri: Result<Uri, WebhookError>) -> Option<Self> {
        let built = uri.and_then(|uri| Ok((uri, client(cfg.ca_file.as_deref())?)));
        match built {
            Ok((uri, client)) => Some(Self {
                name: cfg.name.clone(),
                uri,
                client,
                timeout: cfg.timeout.0,
                retries: cfg.retries,
                backoff: cfg.backoff.0,
            }),
            Err(e) => {
                tracing::warn!(webhook = %cfg.name, "{e}; this webhook is off");
                None
            }
        }
    }

    /// POSTs `body`, retrying what may succeed on retry; `what` names the alerts in the
    /// log line of a notification that could not be delivered.
    pub(super) async fn deliver(&self, body: Bytes, what: impl FnOnce() -> String) -> bool {
        self.deliver_with(body, self.retries, what).await
    }

    /// [`Endpoint::deliver`] with `retries` of its own: one attempt while the endpoint is
    /// known to be down, so a dead receiver costs each later delivery one timeout, not the
    /// whole retry schedule.
    pub(super) async fn deliver_with(
        &self,
        body: Bytes,
        retries: u32,
        what: impl FnOnce() -> String,
    ) -> bool {
        let mut pause = Backoff::new(self.backoff, MAX_BACKOFF, rand::random());
        let mut attempt = 0;
        loop {
            match post(&self.client, &self.uri, body.clone(), self.timeout).await {
                Ok(()) => return true,
                Err(e) if e.retryable() && attempt < retries => {
                    let delay = pause.next_delay();
                    tracing::debug!(webhook = %self.name, attempt, "{e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(e) => {
                    tracing::warn!(
                        webhook = %self.name,
                        alerts = %what(),
                        "alert notification not delivered after {} attempt(s): {e}",
                        attempt + 1
                    );
                    return false;
                }
            }
        }
    }
}

/// `rule@subject, …` for log lines.
pub(super) fn names<'a>(group: impl IntoIterator<Item = &'a Transition>) -> String {
    group
        .into_iter()
        .map(|t| format!("{}@{}", t.alert.rule, t.alert.subject()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sends what arrives on `rx` to the endpoint until the monitor stops.
///
/// A slow or hanging receiver must not hold every later alert behind it for minutes:
/// whatever queued up meanwhile goes out together in the next POST (in the order it
/// happened, so a resolve still follows its firing), and while the endpoint is down
/// (its last delivery failed) each POST gets one attempt instead of the full retries.
pub async fn run(cfg: WebhookConfig, link: Option<String>, mut rx: mpsc::Receiver<Group>) {
    let Some(endpoint) = Endpoint::new(&cfg, parse_url(&cfg.url)) else {
        return;
    };
    let mut down = false;
    while let Some(first) = rx.recv().await {
        let mut alerts: Vec<Transition> = first.to_vec();
        while let Ok(more) = rx.try_recv() {
            alerts.extend(more.iter().cloned());
        }
        let group: Group = alerts.into();
        let body = Bytes::from(payload(cfg.format, &group, link.as_deref()).to_string());
        let retries = if down { 0 } else { endpoint.retries };
        down = !endpoint
            .deliver_with(body, retries, || names(group.iter()))
            .await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::MONITOR;
    use crate::alert::notify::tests::transition;

    #[test]
    fn the_json_body_is_a_group_with_each_alert_as_before() {
        let group: Group = vec![
            transition(TransitionKind::Firing, "slow", "resnet50"),
            transition(TransitionKind::Resolved, "broker_down", MONITOR),
        ]
        .into();
        let body = payload(WebhookFormat::Json, &group, Some("http://mon:9464"));
        assert_eq!(body["version"], 2);
        assert_eq!(body["status"], "firing");
        assert_eq!(body["firing"], 1);
        assert_eq!(body["resolved"], 1);
        let a = &body["alerts"][0];
        assert_eq!(a["status"], "firing");
        assert_eq!(a["reminder"], false);
        assert_eq!(a["model"], "resnet50");
        assert_eq!(a["threshold"], 12.0);
        assert_eq!(a["resolve_threshold"], 8.0);
        assert_eq!(a["normal"], 4.0);
        assert_eq!(
            a["explanation"],
            "p95 470 ms, 117× its normal 4.0 ms (last hour)"
        );
        assert_eq!(a["link"], "http://mon:9464/#/model/resnet50");
        let m = &body["alerts"][1];
        assert_eq!(m["status"], "resolved");
        assert_eq!(m["model"], "");
        assert_eq!(m["link"], "http://mon:9464/");
        assert!(m["resolved_at"].as_str().is_some_and(|s| s.ends_with('Z')));

        let resolved: Group = vec![transition(TransitionKind::Resolved, "slow", "a")].into();
        assert_eq!(
            payload(WebhookFormat::Json, &resolved, None)["status"],
            "resolved"
        );
    }

    #[test]
    fn the_slack_text_is_one_line_per_alert_ending_with_the_explanation() {
        let group: Group = vec![
            transition(TransitionKind::Firing, "slow", "a b"),
            transition(TransitionKind::Reminder, "slow", "c"),
        ]
        .into();
        let text = payload(WebhookFormat::Slack, &group, Some("http://mon:9464/"))["text"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "[FIRING] warning slow on <http://mon:9464/#/model/a%20b|a b>: p95 470 ms, 117× its normal 4.0 ms (last hour)",
                "[STILL FIRING] warning slow on <http://mon:9464/#/model/c|c>: p95 470 ms, 117× its normal 4.0 ms (last hour)",
            ]
        );
    }
}
