//! `--serve`: the JSON API, /metrics, the WebSocket and the token, against the real
//! binary serving on 127.0.0.1:0.
//!
//! - `api`: the JSON API's figures, normals and alerts; bodies shared, gzipped, revalidated.
//! - `metrics`: the Prometheus exposition.
//! - `ws`: the WebSocket's pushes, a slow client, and the load figures (ignored).
//! - `access`: the token and what is never served (the broker's password).
//! - `dashboard`: the embedded dashboard, built from the current sources and served gzipped.
//!
//! Below: the binary as a server (`Served`), the server over a fixed view (`Fixed`), and
//! the plain HTTP and WebSocket clients every module reads them with.

mod access;
mod api;
mod dashboard;
mod metrics;
mod ws;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::unique;

/// `modelmon-tui --headless --serve 127.0.0.1:0 ARGS`, and the address it serves on.
struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Served {
    fn start(args: &[&str]) -> Self {
        let mut child = spawn(args);
        let stderr = child.stderr.take().expect("piped");
        let mut lines = BufReader::new(stderr).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("the binary says where it serves before anything else")
                .expect("stderr is text");
            if let Some(a) = line.split("serving on http://").nth(1) {
                break a.trim().parse().expect("an address");
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self { child, addr }
    }

    fn get(&self, path: &str) -> Response {
        http_get(self.addr, path, &[])
    }

    fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        http_get(self.addr, path, headers)
    }

    /// GETs `path` until `pred` holds on its JSON body.
    fn wait_json(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let r = self.get(path);
            if r.status == 200 {
                last = r.json();
                if pred(&last) {
                    return last;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; last {path}: {last}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"));
    cmd.args(["--headless", "--no-docker"]);
    if !args.contains(&"--interval") {
        cmd.args(["--interval", "200ms"]);
    }
    if !args.contains(&"--serve") {
        cmd.args(["--serve", "127.0.0.1:0"]);
    }
    cmd.args(args)
        .env_remove("MODELMON_AMQP_URL")
        .env_remove("MODELMON_TOKEN")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .env(
            "XDG_STATE_HOME",
            std::env::temp_dir().join(unique("modelmon-web-state")),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs")
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 GET over a socket: the server must work with the simplest client.
fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    let (status, head, body) = http_get_bytes(addr, path, headers);
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: String::from_utf8(body).expect("a text response"),
    }
}

fn model_names(overview: &Value) -> Vec<String> {
    overview["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["model"].as_str().expect("name").to_owned())
        .collect()
}

async fn ws_next(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket stays open")
            .expect("a frame");
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).expect("JSON messages");
            if pred(&v) {
                return v;
            }
        }
    }
}

/// The server over a hand-built state (the TUI tests' view with the broker down): fixed
/// normals and alerts, no hour of traffic to wait for. Serves until dropped.
struct Fixed {
    addr: SocketAddr,
    _views: tokio::sync::watch::Sender<modelmon::live::Live>,
    rt: tokio::runtime::Runtime,
}

impl Fixed {
    fn start(live: modelmon::live::Live) -> Self {
        // Its own worker thread, so the test's blocking requests do not stall it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (tx, rx) = tokio::sync::watch::channel(live);
        let server = rt
            .block_on(modelmon::web::serve(
                "127.0.0.1:0".parse().expect("addr"),
                rx,
                modelmon::web::Options::default(),
            ))
            .expect("serves");
        Self {
            addr: server.local_addr,
            _views: tx,
            rt,
        }
    }

    fn json(&self, path: &str) -> Value {
        let r = http_get(self.addr, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()
    }
}

/// A GET returning the status, the raw head and the raw body bytes (for gzip).
fn http_get_bytes(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).expect("the server accepts connections");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(k);
        req.push_str(": ");
        req.push_str(v);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("request sent");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response read");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers end");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head, raw[end + 4..].to_vec())
}
