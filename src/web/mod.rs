//! `--serve`: the live view over HTTP (JSON API, `/metrics`) and a WebSocket.
//!
//! The server only reads the store's `watch` channel of views, like the TUI: it never
//! aggregates, so the browser, Prometheus and the terminal always agree. See docs/api.md.

mod api;
pub mod assets;
mod auth;
mod cache;
mod metrics;
mod redact;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::live::Live;

/// Where `--serve` listens when given no address: loopback, Prometheus' port range.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";

/// Kernel send buffer per connection: room for several updates of 100 models.
const SEND_BUFFER_BYTES: usize = 64 * 1024;

/// Every request is a GET: nothing legitimate carries a body bigger than this.
const MAX_BODY_BYTES: usize = 1024;

/// How `--serve` was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Required (unless `insecure_public`) to bind anything but loopback.
    pub token: Option<String>,
    /// Serve a public address without a token, knowingly.
    pub insecure_public: bool,
    /// WebSocket clients served at once; more get 503.
    pub max_ws_clients: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            token: None,
            insecure_public: false,
            max_ws_clients: 256,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(
        "refusing to serve on {0} without a token: it is reachable from other machines. \
         Pass --token SECRET (clients send `Authorization: Bearer SECRET`), or \
         --insecure-public to serve it to anyone, or bind 127.0.0.1"
    )]
    PublicWithoutToken(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Refuses a non-loopback address without a token or an explicit opt-out. Called
/// before anything starts, so the refusal is the only thing the user sees.
pub fn check_bind(addr: SocketAddr, opts: &Options) -> Result<(), WebError> {
    let has_token = opts.token.as_deref().is_some_and(|t| !t.is_empty());
    if addr.ip().is_loopback() || has_token || opts.insecure_public {
        Ok(())
    } else {
        Err(WebError::PublicWithoutToken(addr))
    }
}

/// A running server.
pub struct Server {
    /// The bound address (the real port when asked for port 0).
    pub local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    pub fn stop(self) {
        self.task.abort();
    }
}

/// What every handler reads.
#[derive(Clone)]
pub(crate) struct AppState {
    views: watch::Receiver<Live>,
    cache: Arc<cache::Cache>,
    token: Option<Arc<str>>,
    ws_slots: Arc<Semaphore>,
    ws_max: usize,
    overview: ws::Broadcast,
    started: std::time::Instant,
}

/// Binds `addr` and serves the views in a background task.
pub async fn serve(
    addr: SocketAddr,
    views: watch::Receiver<Live>,
    opts: Options,
) -> Result<Server, WebError> {
    check_bind(addr, &opts)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| WebError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| WebError::Bind { addr, source })?;
    let state = AppState {
        overview: ws::Broadcast::start(views.clone()),
        cache: Arc::new(cache::Cache::new(views.clone())),
        views,
        token: opts
            .token
            .filter(|t| !t.is_empty())
            .map(|t| Arc::from(t.as_str())),
        ws_slots: Arc::new(Semaphore::new(opts.max_ws_clients)),
        ws_max: opts.max_ws_clients,
        started: std::time::Instant::now(),
    };
    let app = router(state);
    let listener = listener.tap_io(|tcp| {
        // The kernel would otherwise buffer up to 4 MiB for a client that stopped
        // reading, hiding it from the per-client queue (ws.rs) for minutes.
        if let Err(e) = socket2::SockRef::from(&*tcp).set_send_buffer_size(SEND_BUFFER_BYTES) {
            tracing::debug!("cannot bound a connection's send buffer: {e}");
        }
    });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("the web server stopped: {e}");
        }
    });
    Ok(Server { local_addr, task })
}

impl AppState {
    /// WebSocket clients connected now.
    pub(crate) fn ws_clients(&self) -> usize {
        self.ws_max - self.ws_slots.available_permits()
    }
}

fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::app_js))
        .route("/assets/app.css", get(assets::app_css))
        .route("/api/v1/models", get(api::models))
        .route("/api/v1/models/{name}", get(api::model))
        .route("/api/v1/model", get(api::model_by_query))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/status", get(api::status))
        .route("/metrics", get(metrics::metrics))
        .route("/ws", get(ws::upgrade))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        // Health checks come from probes that hold no token, and reveal nothing.
        .route("/healthz", get(api::healthz))
        .merge(protected)
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
