//! A webhook receiver: axum on 127.0.0.1:0 that records every request's JSON body and
//! answers as a test tells it to (fail, hang). A real HTTP/1.1 server, so the notifier
//! is tested against what a receiver does on the wire (keep-alive included), and no
//! request parsing of our own can hide a bug in the notifier's.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

/// How the receiver answers.
#[derive(Clone, Copy)]
pub enum Mode {
    Ok,
    /// 500 to the first N requests, then 200.
    FailFirst(usize),
    /// Reads the request and never answers.
    Hang,
    /// Hangs on the first N requests, then answers 200.
    HangFirst(usize),
}

/// One request the hook received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub body: Value,
}

/// The receiver, serving until the test process ends; its URL ends in `/hook`, though
/// any path is received.
pub struct Hook {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
}

type Seen = (Mode, Arc<Mutex<Vec<Received>>>);

impl Hook {
    pub fn start(mode: Mode) -> Self {
        // Bound here rather than in the server's thread, so the URL is known at once.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let got = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(receive)
            .with_state((mode, Arc::clone(&got)));
        // Its own thread and runtime: the tests that use it are plain #[test]s.
        std::thread::spawn(move || {
            super::runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = axum::serve(listener, app).await;
            });
        });
        Self { url, got }
    }

    pub fn bodies(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Waits until `pred` holds for the bodies received so far.
    pub fn wait(&self, what: &str, timeout: Duration, pred: impl Fn(&[Received]) -> bool) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.bodies()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let bodies: Vec<Value> = self.bodies().into_iter().map(|r| r.body).collect();
        panic!("timed out waiting for {what}; received: {bodies:?}");
    }
}

/// Records the body, then answers by the mode. A body that is not JSON panics this
/// request's task: the notifier sees the connection drop and the test's wait fails
/// with what did arrive.
async fn receive(State((mode, seen)): State<Seen>, body: Bytes) -> (StatusCode, &'static str) {
    let body: Value = serde_json::from_slice(&body).expect("webhook bodies are JSON");
    let n = {
        let mut seen = seen.lock().expect("lock");
        seen.push(Received {
            at: Instant::now(),
            body,
        });
        seen.len()
    };
    match mode {
        Mode::Hang => std::future::pending().await,
        Mode::HangFirst(k) if n <= k => std::future::pending().await,
        Mode::FailFirst(k) if n <= k => (StatusCode::INTERNAL_SERVER_ERROR, "no"),
        _ => (StatusCode::OK, "ok"),
    }
}
