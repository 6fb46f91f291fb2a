//! `modelmon-proxy`: a reverse proxy in front of a model API that records one
//! modelmon event per request, without changing the API or buffering its answers.

mod body;
pub mod config;
mod error;
mod headers;
mod naming;
pub mod openai;
mod proxy;
pub mod route;
mod server;
mod watch;

use std::sync::Arc;

pub use config::{Args, ProxyConfig, Setup};
pub use error::{ConfigError, RunError};
pub use proxy::Proxy;
pub use server::serve;

use modelmon_publisher::Publisher;
use tokio::net::TcpListener;

/// How long the publisher may take to deliver the last events at shutdown.
const PUBLISH_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

/// Runs the proxy until SIGINT or SIGTERM.
pub async fn run(setup: Setup) -> Result<(), RunError> {
    let listener = TcpListener::bind(setup.listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: setup.listen,
            source,
        })?;
    let amqp_url = setup.publisher.amqp_url.clone();
    let publisher = Publisher::start(setup.publisher);
    let watcher = tokio::spawn(watch::watch(publisher.clone(), amqp_url));
    let proxy = Arc::new(Proxy::new(setup.proxy, publisher.clone()));
    eprintln!(
        "modelmon-proxy: listening on {}, forwarding to {}",
        listener
            .local_addr()
            .map_or_else(|_| setup.listen.to_string(), |a| a.to_string()),
        proxy_target(&proxy),
    );
    let openai = std::sync::Arc::clone(&proxy.config().openai);
    serve(listener, proxy, shutdown_signal()).await;
    // Stopped before the publisher: a shut-down publisher reads as down, and the watch
    // would tell it as an outage (with the last outage's reason). The shutdown's own
    // outcome is told below.
    watcher.abort();
    let _ = watcher.await;
    let p = publisher.clone();
    let _ = tokio::task::spawn_blocking(move || p.shutdown(PUBLISH_DRAIN)).await;
    let s = publisher.stats();
    let unrouted = if s.unrouted > 0 {
        format!(
            ", {} let go because no queue was bound to their model",
            s.unrouted
        )
    } else {
        String::new()
    };
    let unread = openai
        .failures
        .summary()
        .map(|f| format!("; OpenAI-compatible bodies not read: {f}"))
        .unwrap_or_default();
    eprintln!(
        "modelmon-proxy: stopped; {} events recorded, {} published, {} dropped{unrouted}{unread}",
        s.recorded, s.published_events, s.dropped
    );
    Ok(())
}

fn proxy_target(proxy: &Proxy) -> String {
    let up = &proxy.config().upstream;
    format!("{}://{}{}", up.scheme, up.authority, up.prefix)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
