//! The values that travel: one [`Event`] per request, grouped in a [`Batch`].

use std::borrow::Cow;

// The derives are the reference the hand-written encoder (`encode.rs`) is tested and
// measured against, and let users embed these types in their own serde output.
use serde::Serialize;

/// One request to a model API, as recorded by an interceptor.
///
/// Strings borrow from the message body where they can, so decoding a batch does not
/// allocate per field; publishers build `Event<'static>` values with owned strings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event<'a> {
    /// Unix time of the request start, in microseconds.
    pub ts: i64,
    pub model: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<Cow<'a, str>>,
    /// Who served it: the container hostname, or `host:pid`.
    pub instance: Cow<'a, str>,
    pub method: Cow<'a, str>,
    /// The route template (`/v1/models/{name}/predict`), never a raw path.
    pub route: Cow<'a, str>,
    pub status: u16,
    /// Request start to the last response byte.
    pub duration_us: u64,
    /// Request start to the first response byte, for streamed responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttfb_us: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resp_bytes: Option<u64>,
    /// Exception class or error kind; its presence makes the request an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'a, str>>,
    /// Model-specific measures (`queue_us`, `tokens_out`, ...).
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ser_ml")]
    pub ml: Vec<(Cow<'a, str>, f64)>,
}

impl Event<'_> {
    /// Errors are server failures or requests the app marked with an error kind.
    /// A 4xx is the client's fault and counted apart.
    pub fn is_error(&self) -> bool {
        self.status >= 500 || self.error.is_some()
    }

    /// A copy that owns its strings.
    pub fn into_owned(self) -> Event<'static> {
        Event {
            ts: self.ts,
            model: Cow::Owned(self.model.into_owned()),
            version: self.version.map(|v| Cow::Owned(v.into_owned())),
            instance: Cow::Owned(self.instance.into_owned()),
            method: Cow::Owned(self.method.into_owned()),
            route: Cow::Owned(self.route.into_owned()),
            status: self.status,
            duration_us: self.duration_us,
            ttfb_us: self.ttfb_us,
            req_bytes: self.req_bytes,
            resp_bytes: self.resp_bytes,
            error: self.error.map(|e| Cow::Owned(e.into_owned())),
            ml: self
                .ml
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v))
                .collect(),
        }
    }
}

fn ser_ml<S: serde::Serializer>(ml: &[(Cow<'_, str>, f64)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(ml.iter().map(|(k, v)| (k, v)))
}

/// What kind of interceptor published a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Asgi,
    Wsgi,
    Proxy,
    Demo,
    /// Anything this version does not know; kept so a newer publisher is not rejected.
    Other,
}

impl SourceKind {
    pub fn parse(s: &str) -> Self {
        match s {
            "asgi" => Self::Asgi,
            "wsgi" => Self::Wsgi,
            "proxy" => Self::Proxy,
            "demo" => Self::Demo,
            _ => Self::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Asgi => "asgi",
            Self::Wsgi => "wsgi",
            Self::Proxy => "proxy",
            Self::Demo => "demo",
            Self::Other => "other",
        }
    }
}

/// The publisher of a batch: one process of one interceptor.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Source<'a> {
    pub kind: SourceKind,
    pub instance: Cow<'a, str>,
    pub pid: u32,
}

impl Source<'_> {
    pub fn into_owned(self) -> Source<'static> {
        Source {
            kind: self.kind,
            instance: Cow::Owned(self.instance.into_owned()),
            pid: self.pid,
        }
    }
}

/// A message body: events of one model from one source.
#[derive(Debug, Clone, Serialize)]
pub struct Batch<'a> {
    pub v: u64,
    pub source: Source<'a>,
    /// Events this source dropped since its last delivered batch.
    pub dropped: u64,
    pub events: Vec<Event<'a>>,
}

impl Batch<'_> {
    /// The JSON body to publish: the bytes `serde_json::to_vec` makes of this batch, at a
    /// fraction of its cost. Like serde_json it cannot fail: a non-finite `ml` value is
    /// written as `null`, which the monitor rejects (`bad_ml`), so publishers remove such
    /// values first.
    pub fn to_json(&self) -> Vec<u8> {
        crate::encode::batch_json(self)
    }
}
