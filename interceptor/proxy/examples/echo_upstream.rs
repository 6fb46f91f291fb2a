//! A tiny model API stand-in for benchmarks: answers every request with a small JSON
//! body after reading the request body and, optionally, burning `WORK_US` microseconds
//! of CPU as a stand-in for inference.
//! Usage: `echo_upstream [ADDR] [WORK_US]` (default 127.0.0.1:8000, 0); prints the
//! bound address on stdout.

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const ANSWER: &[u8] = br#"{"prediction":[0.1,0.7,0.2],"model":"iris"}"#;

async fn answer(
    req: Request<Incoming>,
    work: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the whole request like a model server would before predicting.
    let _ = req.into_body().collect().await;
    // Spinning, not sleeping: inference holds a core, and that is what a proxy competes
    // with. On the blocking pool, like a threaded model server, so the reactor stays free.
    if !work.is_zero() {
        let _ = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            while start.elapsed() < work {
                std::hint::spin_loop();
            }
        })
        .await;
    }
    let mut resp = Response::new(Full::new(Bytes::from_static(ANSWER)));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8000".to_owned());
    let work_us: u64 = std::env::args()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or(0);
    let work = Duration::from_micros(work_us);
    let listener = TcpListener::bind(&addr).await?;
    println!("{}", listener.local_addr()?);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(
                    TokioIo::new(stream),
                    service_fn(move |req| answer(req, work)),
                )
                .await;
        });
    }
}
