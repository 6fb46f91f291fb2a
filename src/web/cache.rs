//! Responses built once per refresh and shared by every reader.
//!
//! Each reader of the overview used to serialise its own copy of every model: 64 readers
//! of 256 models held 64 copies of several MB at once and queued behind each other's
//! serialisation. Here a body is built once per published view and per kind (the
//! overview, one model's detail over one range, the alerts), gzipped once, and handed out
//! as shared `Bytes`; readers that ask for a body being built wait for that one build.
//! Distinct builds run at most [`MAX_BUILDS`] at a time off the async threads, so a flood
//! of different requests queues instead of taking every core; a reader that waits longer
//! than [`WAIT`] for its turn gets `503` with `Retry-After`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{OnceCell, Semaphore, watch};

use crate::live::Live;

/// Distinct bodies built at once. Each build is CPU work: more than the cores buys nothing.
const MAX_BUILDS: usize = 2;
/// How long a reader waits for a build slot before it is told to come back.
const WAIT: Duration = Duration::from_secs(2);
/// Bodies kept per view. Details are one per model and range asked for; past this many,
/// a detail is still served (built under the same bound) but not kept.
const MAX_BODIES: usize = 64;
/// Bodies smaller than this go out plain: gzip would save nothing worth its CPU.
const GZIP_FROM: usize = 1024;

/// What a body is of. Readers asking for equal keys of the same view share one body.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Overview {
        series: bool,
    },
    Detail {
        model: String,
        range: String,
    },
    Alerts,
    /// The WebSocket's detail message of a model.
    WsDetail {
        model: String,
    },
}

/// A serialised JSON body, and its gzip form when that is worth sending.
#[derive(Debug)]
pub(crate) struct Body {
    pub json: Bytes,
    gzip: Option<Bytes>,
    etag: HeaderValue,
}

/// The builder of a body was not given a turn in time.
#[derive(Debug)]
pub(crate) struct Busy;

impl IntoResponse for Busy {
    fn into_response(self) -> Response {
        let mut resp = (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({"error": "busy: too many requests at once, retry in a second"}),
            ),
        )
            .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        resp
    }
}

struct Generation {
    live: Live,
    /// Counts views, so an ETag names the view its body was built from.
    number: u64,
    bodies: HashMap<Key, Arc<OnceCell<Arc<Body>>>>,
}

pub(crate) struct Cache {
    views: watch::Receiver<Live>,
    current: Mutex<Generation>,
    builds: Arc<Semaphore>,
    /// Tells this process's ETags from an earlier run's.
    run: u64,
}

impl Cache {
    pub(crate) fn new(views: watch::Receiver<Live>) -> Self {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let live = views.borrow().clone();
        Self {
            current: Mutex::new(Generation {
                live,
                number: 0,
                bodies: HashMap::new(),
            }),
            views,
            builds: Arc::new(Semaphore::new(MAX_BUILDS)),
            run,
        }
    }

    /// The newest view: what every handler reads.
    pub(crate) fn live(&self) -> Live {
        self.views.borrow().clone()
    }

    /// The body for `key` on the newest view, built by `build` unless another reader
    /// already built it (or is building it) for that view.
    pub(crate) async fn get<F>(&self, key: Key, build: F) -> Result<Arc<Body>, Busy>
    where
        F: FnOnce(&Live) -> Vec<u8> + Send + 'static,
    {
        let (live, number, cell) = self.cell(key);
        cell.get_or_try_init(|| async {
            let permit = tokio::time::timeout(WAIT, self.builds.clone().acquire_owned())
                .await
                .map_err(|_| Busy)?
                .map_err(|_| Busy)?;
            let etag = HeaderValue::from_str(&format!("\"{:x}-{number}\"", self.run))
                .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
            let body = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let json = build(&live);
                Body {
                    gzip: (json.len() >= GZIP_FROM).then(|| gzip(&json)).flatten(),
                    json: Bytes::from(json),
                    etag,
                }
            })
            .await
            .map_err(|_| Busy)?;
            Ok(Arc::new(body))
        })
        .await
        .cloned()
    }

    /// The cell for `key` in the newest view's generation, starting a new generation
    /// when the view changed since the last request.
    fn cell(&self, key: Key) -> (Live, u64, Arc<OnceCell<Arc<Body>>>) {
        let newest = self.live();
        let mut g = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !g.live.same_as(&newest) {
            g.live = newest;
            g.number += 1;
            g.bodies.clear();
        }
        let cell = if let Some(cell) = g.bodies.get(&key) {
            cell.clone()
        } else if g.bodies.len() < MAX_BODIES {
            g.bodies.entry(key).or_default().clone()
        } else {
            Arc::default()
        };
        (g.live.clone(), g.number, cell)
    }
}

fn gzip(json: &[u8]) -> Option<Bytes> {
    // Level 1: JSON this repetitive still shrinks several times, for a fraction of the
    // CPU of the default level; the monitor shares its host with the models it watches.
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(json.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(json).ok()?;
    enc.finish().ok().map(Bytes::from)
}

/// Whether the client takes gzip (`Accept-Encoding`, a `q=0` refusing it).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

impl Body {
    /// The body as a response to a request with `headers`: gzipped when accepted, and
    /// `304` when the client already holds this very body.
    pub(crate) fn respond(&self, headers: &HeaderMap) -> Response {
        if headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == self.etag.as_bytes())
        {
            let mut resp = StatusCode::NOT_MODIFIED.into_response();
            resp.headers_mut().insert(header::ETAG, self.etag.clone());
            return resp;
        }
        let gzip = self.gzip.as_ref().filter(|_| accepts_gzip(headers));
        let mut resp = gzip.unwrap_or(&self.json).clone().into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        h.insert(header::ETAG, self.etag.clone());
        if gzip.is_some() {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(accept).expect("a header"),
        );
        h
    }

    #[test]
    fn gzip_is_taken_unless_refused() {
        assert!(accepts_gzip(&headers("gzip, deflate, br")));
        assert!(accepts_gzip(&headers("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&headers("*")));
        assert!(!accepts_gzip(&headers("gzip;q=0")));
        assert!(!accepts_gzip(&headers("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[tokio::test]
    async fn one_build_per_view_and_key_shared_by_every_reader() {
        let (tx, rx) = watch::channel(Live::default());
        let cache = Arc::new(Cache::new(rx));
        let builds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut readers = Vec::new();
        for _ in 0..32 {
            let (cache, builds) = (cache.clone(), builds.clone());
            readers.push(tokio::spawn(async move {
                cache
                    .get(Key::Overview { series: false }, move |_| {
                        builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        vec![b'x'; 4096]
                    })
                    .await
                    .expect("built")
            }));
        }
        let mut bodies = Vec::new();
        for r in readers {
            bodies.push(r.await.expect("the reader ends"));
        }
        assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(bodies.iter().all(|b| Arc::ptr_eq(b, &bodies[0])));
        assert!(bodies[0].gzip.as_ref().expect("gzipped").len() < 100);

        // A new view: a new body, with a new ETag.
        tx.send(Live::default()).expect("a receiver");
        let again = cache
            .get(Key::Overview { series: false }, |_| b"{}".to_vec())
            .await
            .expect("built");
        assert_eq!(&again.json[..], b"{}");
        assert_ne!(again.etag, bodies[0].etag);
        assert!(again.gzip.is_none(), "a tiny body goes out plain");
    }

    #[tokio::test]
    async fn a_reader_that_finds_every_build_slot_taken_is_told_to_come_back() {
        let (_tx, rx) = watch::channel(Live::default());
        let cache = Arc::new(Cache::new(rx));
        let slow = |model: &str| Key::Detail {
            model: model.to_owned(),
            range: "24h".to_owned(),
        };
        let mut holders = Vec::new();
        for i in 0..MAX_BUILDS {
            let cache = cache.clone();
            let key = slow(&format!("m{i}"));
            holders.push(tokio::spawn(async move {
                cache
                    .get(key, |_| {
                        std::thread::sleep(WAIT + Duration::from_secs(1));
                        b"{}".to_vec()
                    })
                    .await
                    .is_ok()
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let late = cache.get(slow("late"), |_| b"{}".to_vec()).await;
        assert!(late.is_err(), "a third build ran beside {MAX_BUILDS}");
        let resp = late.expect_err("busy").into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
        for h in holders {
            assert!(
                h.await.expect("the build ends"),
                "the builds that started finish"
            );
        }
    }
}
