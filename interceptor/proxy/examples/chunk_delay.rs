//! What the proxy adds to each chunk of a stream, and what reading OpenAI-compatible
//! answers (`--openai on`) adds to that.
//!
//! One process: an SSE upstream sends `N` chat-completion chunks one every millisecond,
//! each carrying the moment it was handed to the connection (nanoseconds since a shared
//! base `Instant`); a client reads them directly, then through the proxy with `--openai
//! off` and with `--openai on`, and takes each chunk's delay as its arrival minus that
//! moment. Upstream and client share one single-threaded runtime, and each proxy runs on
//! a thread of its own, as a proxy does on a host where it has a core: on a two-core
//! machine, three busy threads (upstream, proxy, client) would measure the scheduler's
//! queue more than the proxy. A second `--openai off` proxy, measured like the others,
//! shows the noise between two runs of the same thing on this machine.
//!
//! Usage: `cargo run --release -p modelmon-proxy --example chunk_delay [N] [ROUNDS]`
//! (default 5000 chunks, 1 round; each round measures the three paths in turn). The
//! proxy's events go to the broker at $MODELMON_AMQP_URL or 127.0.0.1:5672; without one
//! they are dropped and counted, which does not change what is measured.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use modelmon_proxy::{Args, Proxy};
use modelmon_publisher::Publisher;
use tokio::net::TcpListener;

static BASE: OnceLock<Instant> = OnceLock::new();

fn now_ns() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn single_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Starts the SSE upstream on `rt` (it serves while the client's reads drive `rt`); its
/// address.
fn start_upstream(rt: &tokio::runtime::Runtime, chunks: u32) -> SocketAddr {
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.expect("accept");
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| async move {
                        let _ = req.into_body().collect().await;
                        let (mut tx, body) = Channel::<Bytes, Infallible>::new(64);
                        tokio::spawn(async move {
                            let mut tick = tokio::time::interval(Duration::from_millis(1));
                            tick.set_missed_tick_behavior(
                                tokio::time::MissedTickBehavior::Delay,
                            );
                            for k in 0..chunks {
                                tick.tick().await;
                                let line = format!(
                                    "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{k} \"}},\"finish_reason\":null}}],\"t\":{}}}\n\n",
                                    now_ns()
                                );
                                if tx.send_data(Bytes::from(line)).await.is_err() {
                                    return;
                                }
                            }
                            let _ = tx
                                .send_data(Bytes::from_static(
                                    b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
                                ))
                                .await;
                        });
                        let mut resp = Response::new(body);
                        resp.headers_mut()
                            .insert("content-type", "text/event-stream".parse().expect("hv"));
                        Ok::<_, Infallible>(resp)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
    });
    addr
}

/// Starts the proxy (the library's `serve`) on its own thread; its address.
fn start_proxy(upstream: SocketAddr, openai: &str) -> SocketAddr {
    let up = format!("http://{upstream}");
    let setup = Args::try_parse_from([
        "modelmon-proxy",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &up,
        "--model",
        "chunk-delay",
        "--openai",
        openai,
    ])
    .expect("args")
    .into_setup()
    .expect("setup");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        single_thread().block_on(async move {
            let publisher = Publisher::start(setup.publisher);
            let listener = TcpListener::bind(setup.listen).await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            let proxy = Arc::new(Proxy::new(setup.proxy, publisher));
            modelmon_proxy::serve(listener, proxy, std::future::pending()).await;
        });
    });
    rx.recv().expect("proxy address")
}

/// Starts a byte relay on its own thread, as the proxy runs: each connection is copied
/// both ways to the upstream, nothing read or parsed. The least any proxy adds on this
/// machine (a wake-up of its thread, a read and a write per chunk): the floor the
/// proxy's own figures are read against.
fn start_relay(upstream: SocketAddr) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        single_thread().block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            tx.send(listener.local_addr().expect("addr")).expect("send");
            loop {
                let (mut inbound, _) = listener.accept().await.expect("accept");
                let _ = inbound.set_nodelay(true);
                tokio::spawn(async move {
                    let mut outbound = tokio::net::TcpStream::connect(upstream)
                        .await
                        .expect("upstream");
                    let _ = outbound.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
    });
    rx.recv().expect("relay address")
}

/// Reads one stream from `addr`; the delay of each chunk, in nanoseconds.
async fn delays(addr: SocketAddr) -> Vec<u64> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"go"}]}"#,
        )))
        .expect("request");
    let mut body = client.request(req).await.expect("answer").into_body();
    let mut out = Vec::new();
    let mut partial = Vec::new();
    while let Some(frame) = body.frame().await {
        let arrived = now_ns();
        let Ok(data) = frame.expect("frame").into_data() else {
            continue;
        };
        partial.extend_from_slice(&data);
        while let Some(i) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            if let Some(t) = sent_at(&line) {
                out.push(arrived.saturating_sub(t));
            }
        }
    }
    out
}

/// The `"t":` of a chunk line.
fn sent_at(line: &[u8]) -> Option<u64> {
    let key = b"\"t\":";
    let at = line.windows(key.len()).position(|w| w == key)? + key.len();
    let digits: String = line[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| char::from(b))
        .collect();
    digits.parse().ok()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Figures {
    p50: u64,
    p99: u64,
    max: u64,
    n: usize,
}

fn figures(mut d: Vec<u64>) -> Figures {
    d.sort_unstable();
    Figures {
        p50: percentile(&d, 0.5),
        p99: percentile(&d, 0.99),
        max: d.last().copied().unwrap_or(0),
        n: d.len(),
    }
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

fn main() {
    let chunks: u32 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5000);
    let rounds: u32 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let _ = now_ns();
    let client = single_thread();
    let upstream = start_upstream(&client, chunks);
    let via_off = start_proxy(upstream, "off");
    let via_on = start_proxy(upstream, "on");
    // A second, identical `off` proxy: how far two runs of the same thing differ here.
    let via_off_again = start_proxy(upstream, "off");
    let via_relay = start_relay(upstream);
    let paths = [
        ("direct", upstream),
        ("byte relay (floor)", via_relay),
        ("proxy --openai off", via_off),
        ("proxy --openai on", via_on),
        ("proxy --openai off #2", via_off_again),
    ];
    let mut all: Vec<Vec<u64>> = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        // Every other round in reverse: neither proxy always runs right after the other.
        let mut order: Vec<usize> = (0..paths.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let (name, addr) = paths[i];
            let d = client.block_on(delays(addr));
            eprintln!("round {}: {name}: {} chunks", round + 1, d.len());
            all[i].extend(d);
        }
    }
    println!("{chunks} chunks, one every 1 ms, {rounds} round(s); per-chunk delay in µs:");
    let figs: Vec<Figures> = all.into_iter().map(figures).collect();
    for ((name, _), f) in paths.iter().zip(&figs) {
        println!(
            "  {name:<22} p50 {:>8.1}  p99 {:>8.1}  max {:>9.1}  (n={})",
            us(f.p50),
            us(f.p99),
            us(f.max),
            f.n
        );
    }
    // The reading's own cost, apart from scheduling: the same chunks fed to the reader.
    let lines: Vec<Vec<u8>> = (0..chunks)
        .map(|k| {
            format!(
                "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{k} \"}},\"finish_reason\":null}}],\"t\":{}}}\n\n",
                now_ns()
            )
            .into_bytes()
        })
        .collect();
    let mut reader = modelmon_proxy::openai::SseReader::default();
    let started = Instant::now();
    for (k, line) in lines.iter().enumerate() {
        reader.feed(std::hint::black_box(line), k as u64);
    }
    let per_chunk = started.elapsed().as_nanos() as f64 / f64::from(chunks.max(1));
    assert_eq!(reader.stats.content_chunks, u64::from(chunks));
    println!(
        "  reading one chunk (SseReader::feed alone): {:.2} µs",
        per_chunk / 1000.0
    );
    let direct = &figs[0];
    for ((name, _), f) in paths.iter().zip(&figs).skip(1) {
        println!(
            "  added by {name:<22} p50 {:>8.1}  p99 {:>8.1}",
            us(f.p50) - us(direct.p50),
            us(f.p99) - us(direct.p99)
        );
    }
    // What the proxy adds beyond the floor any relay pays here.
    let floor = &figs[1];
    for ((name, _), f) in paths.iter().zip(&figs).skip(2) {
        println!(
            "  over the relay, {name:<22} p50 {:>8.1}  p99 {:>8.1}",
            us(f.p50) - us(floor.p50),
            us(f.p99) - us(floor.p99)
        );
    }
}
