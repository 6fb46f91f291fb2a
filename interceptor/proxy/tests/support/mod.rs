//! Real servers for the proxy tests: a small upstream model API, the proxy itself on
//! 127.0.0.1:0, and a RabbitMQ queue that reads back what the proxy published.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use clap::Parser;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel as AmqpChannel, Connection, ConnectionProperties};
use modelmon_contract::{EXCHANGE, Event, decode_batch, model_of_routing_key};
use modelmon_proxy::{Args, Proxy};
use modelmon_publisher::Publisher;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc, oneshot};

pub const AMQP: &str = "amqp://127.0.0.1:5672/%2f";
pub const PATIENCE: Duration = Duration::from_secs(15);

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

type UpBody = Either<Full<Bytes>, Channel<Bytes, Infallible>>;

/// The test model API. `/stream` sends "first", then waits for the test to open the
/// gate before sending "second": a proxy that buffers cannot deliver "first" early.
pub struct Upstream {
    pub addr: SocketAddr,
    gate: mpsc::Sender<()>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (gate, gate_rx) = mpsc::channel::<()>(16);
        let gate_rx = Arc::new(Mutex::new(gate_rx));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                let gate_rx = Arc::clone(&gate_rx);
                tokio::spawn(async move {
                    let svc = service_fn(move |req| answer(req, Arc::clone(&gate_rx)));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
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

/// The proxy under test, served in this process on 127.0.0.1:0.
pub struct RunningProxy {
    pub addr: SocketAddr,
    pub instance: String,
    pub publisher: Publisher,
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
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(modelmon_proxy::serve(listener, proxy, async move {
            let _ = stopped.await;
        }));
        RunningProxy {
            addr,
            instance,
            publisher,
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

/// A queue bound to `events.#`: what a monitor would see.
pub struct Sink {
    _conn: Connection,
    channel: AmqpChannel,
    queue: String,
}

impl Sink {
    pub async fn bind() -> Sink {
        let conn = Connection::connect(AMQP, ConnectionProperties::default())
            .await
            .expect("connect");
        let channel = conn.create_channel().await.expect("channel");
        modelmon_publisher::declare_exchange(&channel)
            .await
            .expect("exchange");
        let queue = unique("modelmon-proxy-test-q");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                EXCHANGE.into(),
                "events.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        Sink {
            _conn: conn,
            channel,
            queue,
        }
    }

    /// The valid events published by `instance`, until `want` of them or patience runs out.
    pub async fn events(&self, instance: &str, want: usize) -> Vec<Event<'static>> {
        let end = Instant::now() + PATIENCE;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < end {
            let got = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic_get");
            let Some(m) = got else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let d = m.delivery;
            let model = model_of_routing_key(d.routing_key.as_str()).map(str::to_owned);
            let batch =
                decode_batch(&d.data, model.as_deref(), now_us()).expect("a contract batch");
            if batch.source.instance != instance {
                continue;
            }
            assert!(
                batch.rejects.is_empty(),
                "the monitor rejects nothing: {:?}",
                batch.rejects
            );
            out.extend(batch.events.into_iter().map(Event::into_owned));
        }
        out
    }

    /// Events of `instance` arriving within a short quiet period: to show nothing else came.
    pub async fn more_events(&self, instance: &str) -> Vec<Event<'static>> {
        let end = Instant::now() + Duration::from_millis(400);
        let mut out = Vec::new();
        while Instant::now() < end {
            out.extend(self.events_once(instance).await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        out
    }

    async fn events_once(&self, instance: &str) -> Vec<Event<'static>> {
        let mut out = Vec::new();
        while let Some(m) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")
        {
            let d = m.delivery;
            let model = model_of_routing_key(d.routing_key.as_str()).map(str::to_owned);
            let batch =
                decode_batch(&d.data, model.as_deref(), now_us()).expect("a contract batch");
            if batch.source.instance == instance {
                out.extend(batch.events.into_iter().map(Event::into_owned));
            }
        }
        out
    }
}
