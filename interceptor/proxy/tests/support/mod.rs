//! Real servers for the proxy tests: a small upstream model API, the proxy itself on
//! 127.0.0.1:0, a RabbitMQ queue that reads back what the proxy published, and the real
//! monitor (`modelmon-tui --batch`) where what it counts is the question.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use modelmon_contract::{Event, decode_batch, model_of_routing_key};
use modelmon_proxy::{Args, Proxy};
use modelmon_publisher::Publisher;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot};

#[path = "../../../publisher/tests/support/broker.rs"]
mod broker;
pub use broker::{URL as AMQP, now_us, unique};
#[path = "../../../publisher/tests/support/cluster.rs"]
pub mod cluster;
#[path = "../../../publisher/tests/support/private_node.rs"]
pub mod private_node;
// The gate for tests that need a service, as the publisher's tests have it.
#[macro_use]
#[path = "../../../publisher/tests/support/services.rs"]
pub mod services;

pub const PATIENCE: Duration = Duration::from_secs(15);

/// A test upstream's answer body: whole, or streamed as the test sends it.
pub type UpBody = Either<Full<Bytes>, Channel<Bytes, Infallible>>;

/// Serves HTTP/1.1 on a free loopback port, `answer` for every request, until the test
/// ends; returns the address.
pub async fn serve_upstream<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<UpBody>, Infallible>> + Send + 'static,
{
    serve_upstream_until_aborted(answer).await.0
}

/// As [`serve_upstream`], until the returned task is aborted and awaited: from then on,
/// connecting to the address is refused (connections already open live on).
pub async fn serve_upstream_until_aborted<F, Fut>(
    answer: F,
) -> (SocketAddr, tokio::task::JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<UpBody>, Infallible>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let answer = answer.clone();
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    });
    (addr, task)
}

/// The test model API. `/stream` sends "first", then waits for the test to open the
/// gate before sending "second": a proxy that buffers cannot deliver "first" early.
pub struct Upstream {
    pub addr: SocketAddr,
    gate: mpsc::Sender<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let (gate, gate_rx) = mpsc::channel::<()>(16);
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        let addr = serve_upstream(move |req| answer(req, Arc::clone(&gate_rx))).await;
        Upstream { addr, gate }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets `/stream` send its second chunk.
    pub async fn open_gate(&self) {
        self.gate.send(()).await.expect("gate");
    }
}

async fn answer(
    req: Request<Incoming>,
    gate: Arc<Mutex<mpsc::Receiver<()>>>,
) -> Result<Response<UpBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let forwarded = req.headers().get("x-forwarded-for").cloned();
    let saw_hop = req.headers().contains_key("x-hop");
    if path == "/stream" {
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
        tokio::spawn(async move {
            let _ = tx.send_data(Bytes::from_static(b"data: first\n\n")).await;
            gate.lock().await.recv().await;
            let _ = tx.send_data(Bytes::from_static(b"data: second\n\n")).await;
        });
        let mut resp = Response::new(Either::Right(body));
        resp.headers_mut()
            .insert("content-type", "text/event-stream".parse().expect("hv"));
        return Ok(resp);
    }
    let status = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .unwrap_or(StatusCode::OK);
    let body = req
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let mut resp = Response::new(Either::Left(Full::new(body)));
    *resp.status_mut() = status;
    if let Some(f) = forwarded {
        resp.headers_mut().insert("x-seen-forwarded-for", f);
    }
    resp.headers_mut().insert(
        "x-seen-hop",
        if saw_hop { "yes" } else { "no" }.parse().expect("hv"),
    );
    if path == "/close" {
        // This upstream ends every connection after one response.
        resp.headers_mut()
            .insert("connection", "close".parse().expect("hv"));
    }
    Ok(resp)
}

/// How an LLM-like model API paces its answer: the first token `first` after the
/// request, then `tokens` more, each `every` after the one before.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub first: Duration,
    pub tokens: u32,
    pub every: Duration,
}

impl Pace {
    /// The SSE event of token `k`.
    pub fn event(k: u32) -> String {
        format!("data: {{\"token\":\"t{k}\"}}\n\n")
    }

    /// The whole answer, as the client must receive it.
    pub fn answer(&self) -> Vec<u8> {
        let mut all: String = (0..=self.tokens).map(Pace::event).collect();
        all.push_str("data: [DONE]\n\n");
        all.into_bytes()
    }
}

/// A model API whose `/v1/chat/completions` streams its answer as Server-Sent Events at
/// a known [`Pace`]; any other path answers at once, with a body of declared length.
pub struct PacedUpstream {
    pub addr: SocketAddr,
}

impl PacedUpstream {
    pub async fn start(pace: Pace) -> PacedUpstream {
        let addr = serve_upstream(move |req| {
            std::future::ready(Ok::<_, Infallible>(paced_answer(&req, pace)))
        })
        .await;
        PacedUpstream { addr }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn paced_answer(req: &Request<Incoming>, pace: Pace) -> Response<UpBody> {
    let asked = tokio::time::Instant::now();
    if req.uri().path() != "/v1/chat/completions" {
        return Response::new(Either::Left(Full::new(Bytes::from_static(
            br#"{"embedding":[0.1,0.2]}"#,
        ))));
    }
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
    tokio::spawn(async move {
        tokio::time::sleep_until(asked + pace.first).await;
        let first = tokio::time::Instant::now();
        for k in 0..=pace.tokens {
            // Each token on a schedule counted from the first: a late one does not push
            // the later ones back, and none leaves before its time.
            if k > 0 {
                tokio::time::sleep_until(first + pace.every * k).await;
            }
            if tx.send_data(Pace::event(k).into()).await.is_err() {
                return;
            }
        }
        let _ = tx.send_data(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let mut resp = Response::new(Either::Right(body));
    resp.headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("hv"));
    resp
}

/// The proxy under test, served in this process on 127.0.0.1:0.
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub instance: String,
    pub publisher: Publisher,
    /// What its OpenAI-compatible reading counted.
    pub openai: Arc<modelmon_proxy::openai::Shared>,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningProxy {
    /// `extra` are command-line flags after --upstream, --instance and --amqp.
    pub async fn start(upstream: &str, extra: &[&str]) -> RunningProxy {
        let instance = unique("proxy-test");
        let mut argv = vec![
            "modelmon-proxy",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
            "--instance",
            &instance,
            "--amqp",
            AMQP,
        ];
        argv.extend_from_slice(extra);
        let setup = Args::try_parse_from(argv)
            .expect("args")
            .into_setup()
            .expect("setup");
        let mut publisher_config = setup.publisher;
        // Short batches keep the tests quick; flush() covers the rest.
        publisher_config.max_batch_delay = Duration::from_millis(50);
        let publisher = Publisher::start(publisher_config);
        let listener = TcpListener::bind(setup.listen).await.expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let proxy = Arc::new(Proxy::new(setup.proxy, publisher.clone()));
        let openai = Arc::clone(&proxy.config().openai);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(modelmon_proxy::serve(listener, proxy, async move {
            let _ = stopped.await;
        }));
        RunningProxy {
            addr,
            instance,
            publisher,
            openai,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until every recorded event is confirmed by the broker.
    pub async fn flush(&self) {
        let p = self.publisher.clone();
        let ok = tokio::task::spawn_blocking(move || p.flush(PATIENCE))
            .await
            .expect("join");
        assert!(ok, "publisher flushed: {:?}", self.publisher.stats());
    }
}

impl Drop for RunningProxy {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A queue bound to `events.#`: what a monitor would see, read back as events.
pub struct Sink(broker::Sink);

impl Sink {
    pub async fn bind() -> Sink {
        Sink(broker::Sink::bind("events.#").await)
    }

    /// The valid events published by `instance`, until `want` of them or patience runs out.
    pub async fn events(&self, instance: &str, want: usize) -> Vec<Event<'static>> {
        let end = Instant::now() + PATIENCE;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < end {
            match self.0.next().await {
                Some(m) => out.extend(events_of(&m, instance)),
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        out
    }

    /// Events of `instance` arriving within a short quiet period: to show nothing else came.
    pub async fn more_events(&self, instance: &str) -> Vec<Event<'static>> {
        let end = Instant::now() + Duration::from_millis(400);
        let mut out = Vec::new();
        while Instant::now() < end {
            while let Some(m) = self.0.next().await {
                out.extend(events_of(&m, instance));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        out
    }
}

/// The events of a message if `instance` published it, decoded as the monitor would.
fn events_of(m: &broker::Received, instance: &str) -> Vec<Event<'static>> {
    let model = model_of_routing_key(&m.routing_key);
    let batch = decode_batch(&m.body, model, now_us()).expect("a contract batch");
    if batch.source.instance != instance {
        return Vec::new();
    }
    assert!(
        batch.rejects.is_empty(),
        "the monitor rejects nothing: {:?}",
        batch.rejects
    );
    batch.events.into_iter().map(Event::into_owned).collect()
}

/// The real monitor, `modelmon-tui --batch`, on its default queue, as a user runs it;
/// its latest JSON line is kept.
pub struct Monitor {
    child: tokio::process::Child,
    last: tokio::sync::watch::Receiver<Option<serde_json::Value>>,
    _state: TempDir,
}

/// A directory removed on drop, for the monitor's snapshots and config lookups.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `modelmon-tui` of this build. Cargo builds it for the workspace's tests
/// (`cargo test --workspace`); a run of this package alone needs
/// `cargo build --bin modelmon-tui` first.
fn monitor_binary() -> std::path::PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/modelmon-tui
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target dir")
        .join("modelmon-tui");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --bin modelmon-tui` (cargo test --workspace builds it)",
        bin.display()
    );
    bin
}

impl Monitor {
    pub fn start(amqp_url: &str) -> Monitor {
        Monitor::start_with(amqp_url, &[])
    }

    /// Like `start`, with more flags (`--models M` to watch one model only).
    pub fn start_with(amqp_url: &str, extra: &[&str]) -> Monitor {
        use tokio::io::AsyncBufReadExt;
        let state = TempDir::new("modelmon-proxy-test-monitor");
        let mut child = tokio::process::Command::new(monitor_binary())
            .args([
                "--batch",
                "--interval",
                "250ms",
                "--no-docker",
                "--no-alerts",
            ])
            .args(["--amqp", amqp_url])
            .args(extra)
            .arg("--snapshot-dir")
            .arg(&state.0)
            .env("XDG_CONFIG_HOME", &state.0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("modelmon-tui starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, last) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
                if tx.send(Some(v)).is_err() {
                    return;
                }
            }
        });
        Monitor {
            child,
            last,
            _state: state,
        }
    }

    /// The first line for which `pred` holds, or the last one seen when `patience` runs out.
    pub async fn wait(
        &mut self,
        patience: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        let end = tokio::time::Instant::now() + patience;
        loop {
            let seen = self.last.borrow_and_update().clone();
            if seen.as_ref().is_some_and(&pred) {
                return seen;
            }
            if tokio::time::timeout_at(end, self.last.changed())
                .await
                .is_err()
            {
                return seen;
            }
        }
    }

    /// `ingest.<key>` of a line, as a count.
    pub fn ingest(line: &serde_json::Value, key: &str) -> u64 {
        line["ingest"][key].as_u64().unwrap_or(0)
    }
}

/// The entry of `model` in a `--batch` line.
pub fn model_line<'a>(line: &'a serde_json::Value, model: &str) -> Option<&'a serde_json::Value> {
    line["models"]
        .as_array()?
        .iter()
        .find(|m| m["model"] == model)
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Sends SIGTERM to a proxy started as a process: how an operator stops it.
pub fn sigterm(child: &tokio::process::Child) {
    let pid = child.id().expect("still running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success(), "kill -TERM {pid}");
}
