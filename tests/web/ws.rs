//! The WebSocket: the overview pushed each refresh, a subscribed detail, a client that
//! stops reading, and the load figures with 100 clients (ignored: run by hand).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{AMQP, Publisher, batch, event, runtime, unique};

use super::{Served, http_get, ws_next};

#[test]
fn websocket_pushes_the_overview_and_a_subscribed_detail() {
    let s = Served::start(&["--demo"]);
    s.wait_json("/api/v1/models", "demo traffic", |v| {
        v["models"].as_array().is_some_and(|m| !m.is_empty())
    });
    runtime().block_on(async {
        let url = format!("ws://{}/ws", s.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the WebSocket opens");
        let hello = ws_next(&mut ws, |v| v["t"] == "hello").await;
        assert_eq!(hello["cols"][0], "model");
        let first = ws_next(&mut ws, |v| {
            v["t"] == "o" && v["m"].as_array().is_some_and(|m| !m.is_empty())
        })
        .await;
        let ts = first["ts"].as_i64().expect("ts");
        // A pushed update: a later refresh arrives without asking.
        let next = ws_next(&mut ws, |v| v["t"] == "o" && v["ts"].as_i64() > Some(ts)).await;
        let name = next["m"][0][0].as_str().expect("a model name").to_owned();
        assert!(next.to_string().len() < 10 * 1024);

        ws.send(Message::Text(format!("{{\"sub\":\"{name}\"}}").into()))
            .await
            .expect("subscribe");
        let d = ws_next(&mut ws, |v| v["t"] == "d").await;
        assert_eq!(d["detail"]["model"], name.as_str());
        assert!(d["detail"]["p99_ms"].is_number() || d["detail"]["p99_ms"].is_null());
        // Details keep coming with the overview.
        let d2 = ws_next(&mut ws, |v| {
            v["t"] == "d" && v["ts"].as_i64() > d["ts"].as_i64()
        })
        .await;
        assert_eq!(d2["detail"]["model"], name.as_str());
    });
}

/// CPU seconds used so far by process `pid` (Linux, 100 ticks/s).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process runs");
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().expect("utime") + f[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// Load figures, not a pass/fail check: 100 models fed through the real broker at one
/// refresh per second, the server's CPU with no client (baseline) and with 100 WebSocket
/// clients, and the size of the overview messages. Run:
/// `cargo test --release --test main web::ws::ws_load -- --ignored --nocapture`
#[test]
#[ignore = "a load measurement: run by hand, see docs/api.md"]
fn ws_load_100_clients_100_models() {
    const MODELS: usize = 100;
    const CLIENTS: usize = 100;
    const MEASURE: Duration = Duration::from_secs(20);
    require!(Rabbitmq);
    let prefix = unique("load");
    let s = Served::start(&["--amqp", AMQP, "--interval", "1s"]);
    s.wait_json("/api/v1/status", "the broker connection", |v| {
        v["broker"]["state"] == "connected"
    });
    let pid = s.child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let names: Vec<String> = (0..MODELS).map(|i| format!("{prefix}-{i}")).collect();
    let feeder_names = names.clone();
    let feeder = rt.spawn(async move {
        let p = Publisher::connect().await;
        loop {
            for n in &feeder_names {
                let events = (0..10)
                    .map(|i| event(n, if i == 0 { 500 } else { 200 }, 3_000 + i * 500))
                    .collect();
                p.publish(n, &batch(events, 0)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    s.wait_json("/api/v1/models", "all load models", |v| {
        v["models"].as_array().is_some_and(|m| {
            m.iter()
                .filter(|m| m["model"].as_str().is_some_and(|n| n.starts_with(&prefix)))
                .count()
                == MODELS
        })
    });
    let c0 = cpu_seconds(pid);
    std::thread::sleep(MEASURE);
    let baseline = (cpu_seconds(pid) - c0) / MEASURE.as_secs_f64();

    let addr = s.addr;
    let stats = rt.block_on(async move {
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
                .await
                .expect("the WebSocket opens");
            tasks.push(tokio::spawn(async move {
                let mut ws = ws;
                let (mut n, mut bytes, mut max) = (0usize, 0usize, 0usize);
                let end = tokio::time::Instant::now() + MEASURE + Duration::from_secs(1);
                while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, ws.next()).await {
                    if let Message::Text(t) = m {
                        if t.as_str().starts_with("{\"t\":\"o\"")
                            || t.as_str().contains("\"t\":\"o\"")
                        {
                            n += 1;
                            bytes += t.len();
                            max = max.max(t.len());
                        }
                    }
                }
                (n, bytes, max)
            }));
        }
        let c1 = cpu_seconds(pid);
        tokio::time::sleep(MEASURE).await;
        let loaded = (cpu_seconds(pid) - c1) / MEASURE.as_secs_f64();
        let mut all = Vec::new();
        for t in tasks {
            all.push(t.await.expect("client task"));
        }
        (loaded, all)
    });
    feeder.abort();
    let (loaded, all) = stats;
    let msgs: usize = all.iter().map(|a| a.0).sum();
    let bytes: usize = all.iter().map(|a| a.1).sum();
    let max = all.iter().map(|a| a.2).max().unwrap_or(0);
    println!(
        "ws load: {MODELS} models, {CLIENTS} clients, {}s each phase\n\
         server CPU without clients: {:.2} % of one core\n\
         server CPU with {CLIENTS} clients: {:.2} % of one core ({:.2}x the baseline)\n\
         overview messages: {msgs} received, mean {} bytes, max {max} bytes",
        MEASURE.as_secs(),
        baseline * 100.0,
        loaded * 100.0,
        loaded / baseline.max(1e-9),
        bytes / msgs.max(1),
    );
    assert!(msgs >= CLIENTS, "every client received overviews");
}

#[test]
fn a_client_that_stops_reading_is_dropped_while_others_keep_receiving() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Served::start(&["--demo", "--interval", "50ms"]);
    s.wait_json("/api/v1/models", "demo traffic", |v| {
        v["models"].as_array().is_some_and(|m| !m.is_empty())
    });
    let addr = s.addr;
    runtime().block_on(async {
        // A client with a tiny receive buffer that completes the handshake, then never
        // reads again: the server's writes to it soon block.
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(2048).expect("small buffer");
        let mut stalled = sock.connect(addr).await.expect("connects");
        let handshake = format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stalled
            .write_all(handshake.as_bytes())
            .await
            .expect("handshake sent");
        let mut head = [0u8; 12];
        stalled.read_exact(&mut head).await.expect("an answer");
        assert_eq!(&head, b"HTTP/1.1 101");

        let (mut healthy, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
            .await
            .expect("the WebSocket opens");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut clients = 2;
        while clients > 1 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the stalled client was never dropped"
            );
            // The healthy client keeps getting overviews meanwhile.
            ws_next(&mut healthy, |v| v["t"] == "o").await;
            let status = tokio::task::spawn_blocking(move || http_get(addr, "/api/v1/status", &[]))
                .await
                .expect("status");
            clients = status.json()["process"]["ws_clients"]
                .as_u64()
                .expect("count");
        }
        // Still served after the other was dropped.
        let first = ws_next(&mut healthy, |v| v["t"] == "o").await;
        ws_next(&mut healthy, |v| {
            v["t"] == "o" && v["ts"].as_i64() > first["ts"].as_i64()
        })
        .await;
        drop(stalled);
    });
}
