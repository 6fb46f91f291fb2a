//! The request handler: forward to the upstream, stream the answer back, record it.

use std::borrow::Cow;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body::Body;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, TRANSFER_ENCODING};
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use modelmon_contract::{Event, is_valid_model_name};
use modelmon_publisher::Publisher;

use crate::body::{CLIENT_CLOSED, CountingBody, RecordedBody, Recorder, Upload};
use crate::config::ProxyConfig;
use crate::headers::{
    accepts_trailers, append_forwarded_for, ask_for_trailers, is_encoded, strip_hop_by_hop,
};
use crate::naming::Naming;
use crate::openai::{Exchange, Failure, MAX_REQUEST, RequestTap};
use crate::route::{OTHER_ROUTE, Routed};

/// A body passed on as it streams, or one held whole.
type Passed = Either<Incoming, Full<Bytes>>;

/// What the client receives: the upstream's body, or the proxy's own error page.
pub type ProxyBody = RecordedBody<Passed>;

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub struct Proxy {
    /// Shared with the requests whose route or model waits for the upstream's answer.
    config: Arc<ProxyConfig>,
    client: Client<HttpConnector, CountingBody<Passed>>,
    publisher: Publisher,
}

impl Proxy {
    pub fn new(config: ProxyConfig, publisher: Publisher) -> Self {
        let mut connector = HttpConnector::new();
        // Small request/response exchanges must not wait on Nagle's algorithm.
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let mut builder = Client::builder(TokioExecutor::new());
        // A connection the upstream closes as idle while a request is being written on it
        // fails that request (a 502 nobody caused): the proxy lets go of idle connections
        // first. The timer closes them when they expire, not only when next looked at.
        builder.pool_timer(TokioTimer::new());
        if config.upstream_idle.is_zero() {
            builder.pool_max_idle_per_host(0);
        } else {
            builder.pool_idle_timeout(config.upstream_idle);
        }
        let client = builder.build(connector);
        Proxy {
            config: Arc::new(config),
            client,
            publisher,
        }
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    pub async fn handle(
        &self,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let start = Instant::now();
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
        let upload = Arc::new(Upload::default());
        let head = req.method() == Method::HEAD;
        let (event, naming) = self.event_for(&req, ts).unzip();
        let is_recorded = event.is_some();
        // From here on, dropping the recorder (client gone) still records the request.
        let mut recorder = Recorder::new(self.publisher.clone(), event, start, Arc::clone(&upload));
        if let Some(naming) = naming.flatten() {
            recorder.set_naming(naming);
        }
        let openai = &self.config.openai;
        let mut tap = None;
        if is_recorded && openai.mode.applies(req.method(), req.uri().path()) {
            let (exchange, t) = Exchange::new(Arc::clone(openai));
            recorder.set_openai(exchange);
            if is_encoded(req.headers()) {
                openai.failures.count(Failure::RequestCompressed);
            } else {
                tap = Some(t);
            }
        }
        // A body of declared length that the tap can keep is read whole before it is
        // forwarded: an upstream that is unreachable, or times out before reading it,
        // never polls it, and its 502 or 504 must still land on the request's model (when
        // an earlier answer made it one, see `naming.rs`).
        let (req, tap) = match tap {
            Some(mut tap)
                if req
                    .body()
                    .size_hint()
                    .exact()
                    .is_some_and(|n| n <= MAX_REQUEST as u64) =>
            {
                let (parts, body) = req.into_parts();
                let read = tokio::time::timeout(self.config.upstream_timeout, body.collect());
                let body = match read.await {
                    Ok(Ok(whole)) => whole.to_bytes(),
                    // The connection ended before the declared length (a read error is
                    // the connection's too): the client is gone.
                    Ok(Err(_)) => return Ok(client_gone(recorder, head)),
                    Err(_) => {
                        return Ok(own_answer(
                            recorder,
                            head,
                            StatusCode::REQUEST_TIMEOUT,
                            "request_body_incomplete",
                        ));
                    }
                };
                tap.feed(&body);
                tap.finish();
                (
                    Request::from_parts(parts, Either::Right(Full::new(body))),
                    None,
                )
            }
            tap => (req.map(Either::Left), tap),
        };

        let Ok(upstream_req) = self.upstream_request(req, client, Arc::clone(&upload), tap) else {
            return Ok(own_answer(
                recorder,
                head,
                StatusCode::BAD_REQUEST,
                "bad_request_uri",
            ));
        };
        let answer = tokio::time::timeout(
            self.config.upstream_timeout,
            self.client.request(upstream_req),
        )
        .await;
        match answer {
            Ok(Ok(resp)) => {
                let (mut parts, body) = resp.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                recorder.upstream_status(parts.status.as_u16());
                recorder.openai_answer(
                    parts.status.as_u16(),
                    parts
                        .headers
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok()),
                    is_encoded(&parts.headers),
                );
                Ok(Response::from_parts(
                    parts,
                    RecordedBody::new(Either::Left(body), recorder),
                ))
            }
            // The upstream request fails when the client's body does: not the upstream's error.
            Ok(Err(_)) if upload.broken() => Ok(client_gone(recorder, head)),
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    "upstream_unreachable"
                } else {
                    "upstream_error"
                };
                Ok(own_answer(recorder, head, StatusCode::BAD_GATEWAY, kind))
            }
            Err(_) => Ok(own_answer(
                recorder,
                head,
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
            )),
        }
    }

    /// The event to fill in, with the names that wait for the answer, or `None` for an
    /// excluded path.
    fn event_for(
        &self,
        req: &Request<Incoming>,
        ts: i64,
    ) -> Option<(Event<'static>, Option<Naming>)> {
        let path = req.uri().path();
        let (route, new_route) = match self.config.router.route(path) {
            Routed::Excluded => return None,
            Routed::Template(t) => (t, None),
            Routed::New(collapsed) => (OTHER_ROUTE, Some(collapsed)),
        };
        let (model, new_model) = match self
            .config
            .model_from_path
            .as_ref()
            .and_then(|p| p.capture(path, "model"))
            .filter(|m| is_valid_model_name(m))
        {
            Some(m) => match self.config.models.known(m) {
                Some(known) => (known, None),
                None => (self.config.model, Some(m.to_owned())),
            },
            None => (self.config.model, None),
        };
        let naming = Naming::new(&self.config, new_route, new_model);
        let event = Event {
            ts,
            model: Cow::Borrowed(model),
            version: self.config.model_version.map(Cow::Borrowed),
            instance: Cow::Borrowed(self.config.instance),
            method: method_name(req.method()),
            route: Cow::Borrowed(route),
            status: 0,
            duration_us: 0,
            ttfb_us: None,
            req_bytes: None,
            resp_bytes: None,
            error: None,
            ml: Vec::new(),
        };
        Some((event, naming))
    }

    fn upstream_request(
        &self,
        req: Request<Passed>,
        client: SocketAddr,
        upload: Arc<Upload>,
        tap: Option<RequestTap>,
    ) -> Result<Request<CountingBody<Passed>>, ()> {
        let (mut parts, body) = req.into_parts();
        let up = &self.config.upstream;
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let target = if up.prefix.is_empty() {
            Cow::Borrowed(path_and_query)
        } else {
            Cow::Owned(format!("{}{path_and_query}", up.prefix))
        };
        parts.uri = Uri::builder()
            .scheme(up.scheme.clone())
            .authority(up.authority.clone())
            .path_and_query(target.as_ref())
            .build()
            .map_err(|_| ())?;
        // The upstream hop is ours: HTTP/1.1 with keep-alive, whatever the client spoke.
        parts.version = Version::HTTP_11;
        let trailers = accepts_trailers(&parts.headers);
        // The server takes only chunked framing: the client sent a body of unknown length,
        // which hyper would send as none at all on a GET unless told it is chunked.
        let chunked = parts.method != Method::HEAD && parts.headers.contains_key(TRANSFER_ENCODING);
        strip_hop_by_hop(&mut parts.headers);
        if trailers {
            ask_for_trailers(&mut parts.headers);
        }
        if chunked {
            parts
                .headers
                .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        }
        append_forwarded_for(&mut parts.headers, client.ip());
        Ok(Request::from_parts(
            parts,
            CountingBody::new(body, upload, tap),
        ))
    }
}

/// The proxy's own answer when the upstream gave none; recorded with the error kind.
fn own_answer(
    mut recorder: Recorder,
    head: bool,
    status: StatusCode,
    kind: &'static str,
) -> Response<ProxyBody> {
    recorder.own_status(status.as_u16());
    recorder.set_error(kind);
    page(recorder, head, status, kind)
}

/// The client went away while sending its body: a 499, no error of the model's. The
/// answer is for a client that only half-closed; it is recorded already.
fn client_gone(mut recorder: Recorder, head: bool) -> Response<ProxyBody> {
    recorder.own_status(CLIENT_CLOSED);
    recorder.finish(false);
    page(
        recorder,
        head,
        StatusCode::BAD_REQUEST,
        "request_body_incomplete",
    )
}

fn page(
    recorder: Recorder,
    head: bool,
    status: StatusCode,
    kind: &'static str,
) -> Response<ProxyBody> {
    // An answer to HEAD has no body: the server drops it unsent, and a body dropped
    // before its end is a client gone (499).
    let text = if head {
        Bytes::new()
    } else {
        Bytes::from(format!("modelmon-proxy: {kind}\n"))
    };
    let mut resp = Response::new(RecordedBody::new(Either::Right(Full::new(text)), recorder));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

fn method_name(m: &Method) -> Cow<'static, str> {
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    match known.iter().position(|k| k == m) {
        Some(i) => Cow::Borrowed(
            [
                "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
            ][i],
        ),
        None => Cow::Owned(
            m.as_str()
                .chars()
                .take(modelmon_contract::MAX_METHOD_CHARS)
                .collect(),
        ),
    }
}
