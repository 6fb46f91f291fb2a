//! The proxy reading OpenAI-compatible answers (issue 20): a small OpenAI-like server
//! streaming at a known pace, the real proxy in front of it, the events read back from the
//! real RabbitMQ.
// Token counts and flags travel as f64 and are exact.
#![allow(clippy::float_cmp)]

#[macro_use]
mod support;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use modelmon_contract::Event;
use modelmon_proxy::openai::{Failure, MAX_REQUEST_MODELS};
use support::{AMQP, RunningProxy, Sink, UpBody, serve_upstream, unique};

/// The first content chunk this long after the request.
const FIRST: Duration = Duration::from_millis(300);
/// Then one every this long.
const EVERY: Duration = Duration::from_millis(50);
/// Content chunks per streamed answer.
const CHUNKS: u32 = 20;
/// What the server's `usage` says.
const PROMPT_TOKENS: u64 = 17;
const COMPLETION_TOKENS: u64 = 23;
/// Not JSON, on an OpenAI route: it must arrive byte for byte.
const NOT_JSON: &[u8] = b"<html>\x00\xffnot json\r\n</html>";

/// An SSE answer compressed as a server sends it to a client that accepts gzip:
/// `gzip -n` of one content chunk with `finish_reason` "stop", then `[DONE]`.
const GZIPPED_SSE: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03\x1d\xcc\x31\x0a\x80\x30\x0c\x46\xe1\xbd\xa7\x90\x7f\x76\x70\xce\xac\xab\x1e\x40\x44\x4a\x1b\x69\x40\x52\xb1\x19\x84\xd2\xbb\x2b\xae\xef\x83\x17\xbd\x79\xea\x2a\x42\xca\x12\xb8\x80\xd6\x0a\xd1\xc8\x0f\x68\xe8\x11\xf9\x34\x0f\xfa\x38\xab\xb1\x1a\x08\x49\xd0\x7a\x1c\xa2\x52\xd2\x7e\xb3\x2f\x59\xbf\x5a\x2c\x5f\x68\x5b\x73\x2e\xfe\xc3\x75\x5c\xe6\x69\x73\xee\x05\x3a\xf1\x3d\x12\x5f\x00\x00\x00";

/// How the test server answers, from the request's headers.
#[derive(Debug, Clone, Copy, Default)]
struct Script {
    /// Send a `usage` chunk before `[DONE]`.
    usage: bool,
    /// `finish_reason` of the last chunk: `length` rather than `stop`.
    length: bool,
    /// After this many content chunks, an error chunk and the end.
    error_after: Option<u32>,
}

fn script_of(req: &Request<Incoming>) -> Script {
    let h = |k: &str| req.headers().get(k).and_then(|v| v.to_str().ok());
    Script {
        usage: h("x-usage").is_some(),
        length: h("x-length").is_some(),
        error_after: h("x-error-after").and_then(|v| v.parse().ok()),
    }
}

fn chunk(json: &str) -> Bytes {
    Bytes::from(format!("data: {json}\n\n"))
}

/// A small OpenAI-compatible server: streams when the body says `"stream": true`.
async fn start_llm() -> SocketAddr {
    serve_upstream(llm_answer).await
}

async fn llm_answer(req: Request<Incoming>) -> Result<Response<UpBody>, Infallible> {
    let asked = tokio::time::Instant::now();
    let script = script_of(&req);
    let path = req.uri().path().to_owned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    if path == "/v1/completions" {
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(NOT_JSON))));
        resp.headers_mut()
            .insert("content-type", "text/html".parse().expect("hv"));
        return Ok(resp);
    }
    let asked_json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON request");
    if asked_json["model"]
        .as_str()
        .is_some_and(|m| m.starts_with("typo"))
    {
        // As vLLM answers a model it does not serve.
        let answer = r#"{"object":"error","message":"The model does not exist.","type":"NotFoundError","param":null,"code":404}"#;
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(
            answer.as_bytes(),
        ))));
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp.headers_mut()
            .insert("content-type", "application/json".parse().expect("hv"));
        return Ok(resp);
    }
    let finish = if script.length { "length" } else { "stop" };
    if asked_json["stream"] != true {
        let answer = format!(
            r#"{{"id":"c1","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"hi"}},"finish_reason":"{finish}"}}],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{COMPLETION_TOKENS},"total_tokens":{}}}}}"#,
            PROMPT_TOKENS + COMPLETION_TOKENS
        );
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from(answer))));
        resp.headers_mut()
            .insert("content-type", "application/json".parse().expect("hv"));
        return Ok(resp);
    }
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(4);
    tokio::spawn(async move {
        // The role comes at once: a first byte, but no token yet.
        let role = r#"{"choices":[{"index":0,"delta":{"role":"assistant"},"finish_reason":null}]}"#;
        if tx.send_data(chunk(role)).await.is_err() {
            return;
        }
        for k in 0..CHUNKS {
            tokio::time::sleep_until(asked + FIRST + EVERY * k).await;
            if script.error_after == Some(k) {
                let _ = tx
                    .send_data(chunk(
                        r#"{"error":{"message":"CUDA out of memory","type":"InternalServerError","code":500}}"#,
                    ))
                    .await;
                return;
            }
            let c = format!(
                r#"{{"choices":[{{"index":0,"delta":{{"content":"t{k} "}},"finish_reason":null}}]}}"#
            );
            if tx.send_data(chunk(&c)).await.is_err() {
                return;
            }
        }
        let last =
            format!(r#"{{"choices":[{{"index":0,"delta":{{}},"finish_reason":"{finish}"}}]}}"#);
        let _ = tx.send_data(chunk(&last)).await;
        if script.usage {
            let usage = format!(
                r#"{{"choices":[],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{COMPLETION_TOKENS}}}}}"#
            );
            let _ = tx.send_data(chunk(&usage)).await;
        }
        let _ = tx.send_data(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let mut resp = Response::new(Either::Right(body));
    resp.headers_mut()
        .insert("content-type", "text/event-stream".parse().expect("hv"));
    Ok(resp)
}

/// The sink (bound first), the server, the proxy.
async fn setup(extra: &[&str]) -> (Sink, RunningProxy) {
    let sink = Sink::bind().await;
    let llm = start_llm().await;
    let proxy = RunningProxy::start(
        &format!("http://{llm}"),
        &[&["--model", "fallback"], extra].concat(),
    )
    .await;
    (sink, proxy)
}

fn http() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

fn post(url: &str, body: String, headers: &[&str]) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(Method::POST).uri(url);
    for h in headers {
        b = b.header(*h, "1");
    }
    b.header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

fn chat_body(model: &str, stream: bool) -> String {
    format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
    )
}

fn ml(e: &Event<'_>) -> BTreeMap<String, f64> {
    e.ml.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

/// Content chunks in the bytes of a stream.
fn contents(stream: &[u8]) -> usize {
    let key = b"\"content\"";
    stream.windows(key.len()).filter(|w| w == key).count()
}

async fn one_event(sink: &Sink, proxy: &RunningProxy) -> Event<'static> {
    proxy.flush().await;
    let mut events = sink.events(&proxy.instance, 1).await;
    assert_eq!(events.len(), 1, "{events:?}");
    events.remove(0)
}

/// Asks for a stream and reads it whole; the answer's bytes.
async fn stream_through(proxy: &RunningProxy, model: &str, headers: &[&str]) -> Vec<u8> {
    let resp = http()
        .request(post(
            &proxy.url("/v1/chat/completions"),
            chat_body(model, true),
            headers,
        ))
        .await
        .expect("proxied");
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec()
}

fn assert_paced(e: &Event<'_>, m: &BTreeMap<String, f64>) {
    let ttft = e.ttfb_us.expect("a time to first token") as f64;
    let first = FIRST.as_micros() as f64;
    assert!(
        (ttft - first).abs() <= 100_000.0,
        "TTFT {ttft} µs, the first token was sent at {first}: {e:?}"
    );
    let every = EVERY.as_micros() as f64;
    assert!(
        (m["itl_mean_us"] - every).abs() <= 15_000.0,
        "ITL mean {} µs, paced {every}: {m:?}",
        m["itl_mean_us"]
    );
    assert!(m["itl_max_us"] >= m["itl_mean_us"], "{m:?}");
    assert!(m["tokens_per_s"] > 0.0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_with_usage_gives_ttft_gaps_and_exact_tokens() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&[]).await;
    let model = unique("llama");
    let got = stream_through(&proxy, &model, &["x-usage"]).await;
    assert!(got.ends_with(b"data: [DONE]\n\n"));
    let e = one_event(&sink, &proxy).await;
    let m = ml(&e);
    assert_eq!(e.model, model.as_str(), "the model named by the request");
    assert_eq!((e.status, e.error.as_deref()), (200, None));
    assert_eq!(e.resp_bytes, Some(got.len() as u64));
    assert_paced(&e, &m);
    assert_eq!(m["tokens_in"], PROMPT_TOKENS as f64);
    assert_eq!(m["tokens_out"], COMPLETION_TOKENS as f64);
    assert_eq!(m["finish_stop"], 1.0);
    assert!(!m.contains_key("tokens_estimated"), "{m:?}");
    // The tokens after the first over the time from the first token chunk to the last,
    // which the gaps add up to.
    let span = m["itl_mean_us"] * f64::from(CHUNKS - 1) / 1e6;
    let rate = (COMPLETION_TOKENS - 1) as f64 / span;
    assert!((m["tokens_per_s"] - rate).abs() < 1e-6 * rate, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_usage_tokens_are_the_chunks_and_marked_estimated() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&[]).await;
    stream_through(&proxy, "mistral-7b", &["x-length"]).await;
    let e = one_event(&sink, &proxy).await;
    let m = ml(&e);
    assert_eq!(e.model, "mistral-7b");
    assert_paced(&e, &m);
    assert_eq!(m["tokens_out"], f64::from(CHUNKS));
    assert_eq!(m["tokens_estimated"], 1.0);
    assert_eq!(m["finish_length"], 1.0);
    assert!(!m.contains_key("tokens_in") && !m.contains_key("finish_stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_answer_gives_its_usage_and_finish_reason() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&[]).await;
    let resp = http()
        .request(post(
            &proxy.url("/v1/chat/completions"),
            chat_body("qwen", false),
            &[],
        ))
        .await
        .expect("proxied");
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = resp.into_body().collect().await.expect("body");
    let e = one_event(&sink, &proxy).await;
    let m = ml(&e);
    assert_eq!(e.model, "qwen");
    assert_eq!(e.ttfb_us, None, "an answer of declared length");
    assert_eq!(
        m,
        BTreeMap::from([
            ("finish_stop".to_owned(), 1.0),
            ("tokens_in".to_owned(), PROMPT_TOKENS as f64),
            ("tokens_out".to_owned(), COMPLETION_TOKENS as f64),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_gives_a_499_with_the_tokens_so_far() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&[]).await;
    let client = http();
    let resp = client
        .request(post(
            &proxy.url("/v1/chat/completions"),
            chat_body("gone", true),
            &[],
        ))
        .await
        .expect("proxied");
    let mut body = resp.into_body();
    let mut seen = Vec::new();
    // The role chunk, then 5 content chunks (frames may hold more than one).
    while contents(&seen) < 5 {
        let frame = body.frame().await.expect("a frame").expect("ok");
        if let Ok(d) = frame.into_data() {
            seen.extend_from_slice(&d);
        }
    }
    let seen_tokens = contents(&seen);
    drop(body);
    drop(client);
    let e = one_event(&sink, &proxy).await;
    let m = ml(&e);
    assert_eq!((e.status, e.model.as_ref()), (499, "gone"));
    // The proxy may have read one more before it learnt the client had gone.
    let out = m["tokens_out"] as usize;
    assert!(
        (seen_tokens..=seen_tokens + 2).contains(&out),
        "{out} tokens recorded, {seen_tokens} reached the client: {m:?}"
    );
    assert_eq!(m["tokens_estimated"], 1.0);
    assert!(m.contains_key("itl_mean_us"), "{m:?}");
    assert!(!m.keys().any(|k| k.starts_with("finish_")), "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_error_mid_stream_makes_the_event_an_error() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&[]).await;
    let resp = http()
        .request(post(
            &proxy.url("/v1/chat/completions"),
            chat_body("oom", true),
            &["x-error-after"],
        ))
        .await
        .expect("proxied");
    // x-error-after: 1, so one token and then the error.
    let got = resp.into_body().collect().await.expect("body").to_bytes();
    assert!(got.windows(5).any(|w| w == b"error"));
    let e = one_event(&sink, &proxy).await;
    assert_eq!((e.status, e.error.as_deref()), (200, Some("stream_error")));
    assert!(e.is_error(), "the monitor counts it as an error");
    assert_eq!(ml(&e)["tokens_out"], 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_is_not_json_is_proxied_unchanged_and_counted() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&[]).await;
    let resp = http()
        .request(post(
            &proxy.url("/v1/completions"),
            r#"{"model":"gpt2","prompt":"x"}"#.to_owned(),
            &[],
        ))
        .await
        .expect("proxied");
    assert_eq!(resp.status(), StatusCode::OK);
    let got = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(&got[..], NOT_JSON, "byte for byte");
    let e = one_event(&sink, &proxy).await;
    assert_eq!((e.status, e.model.as_ref()), (200, "gpt2"));
    assert!(e.ml.is_empty() && e.error.is_none(), "{e:?}");
    assert_eq!(proxy.openai.failures.get(Failure::NotJson), 1);
    assert_eq!(
        proxy.openai.failures.summary().as_deref(),
        Some("not_json 1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_openai_off_nothing_is_read() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&["--openai", "off"]).await;
    stream_through(&proxy, "llama", &["x-usage"]).await;
    let e = one_event(&sink, &proxy).await;
    assert_eq!(e.model, "fallback");
    assert!(e.ml.is_empty(), "{e:?}");
    // The first byte (the role chunk, sent at once), not the first token.
    assert!(e.ttfb_us.expect("a first byte") < FIRST.as_micros() as u64 / 2);
}

/// The binary tells each reason's first failure once, and totals them when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_tells_failures_once_and_totals_them_at_shutdown() {
    require!(Rabbitmq);
    let llm = start_llm().await;
    let listen = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .to_string();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelmon-proxy"))
        .args(["--listen", &listen, "--upstream", &format!("http://{llm}")])
        .args(["--model", "fallback", "--amqp", AMQP])
        .args(["--instance", &unique("proxy-openai-bin")])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let url = format!("http://{listen}/v1/completions");
    let client = http();
    let mut answered = 0;
    for _ in 0..200 {
        match client
            .request(post(&url, r#"{"model":"gpt2"}"#.to_owned(), &[]))
            .await
        {
            Ok(resp) => {
                let got = resp.into_body().collect().await.expect("body").to_bytes();
                assert_eq!(&got[..], NOT_JSON);
                answered += 1;
                if answered == 3 {
                    break;
                }
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert_eq!(answered, 3, "the proxy came up and answered");
    support::sigterm(&child);
    let out = child.wait_with_output().await.expect("exits");
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("(not_json)").count(),
        1,
        "told once: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("modelmon-proxy: stopped; 3 events recorded")
            && last.ends_with("; OpenAI-compatible bodies not read: not_json 3"),
        "{stderr}"
    );
}

/// A server that compresses: every answer is [`GZIPPED_SSE`] with `Content-Encoding:
/// gzip`, typed as a stream on `/v1/chat/completions` and as JSON elsewhere; it tells
/// how many request body bytes it got in `x-seen-bytes`.
async fn start_gzip_llm() -> SocketAddr {
    serve_upstream(|req: Request<Incoming>| async move {
        let sse = req.uri().path() == "/v1/chat/completions";
        let got = req
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let mut resp = Response::new(Either::Left(Full::new(Bytes::from_static(GZIPPED_SSE))));
        let h = resp.headers_mut();
        h.insert("content-encoding", "gzip".parse().expect("hv"));
        let kind = if sse {
            "text/event-stream"
        } else {
            "application/json"
        };
        h.insert("content-type", kind.parse().expect("hv"));
        h.insert("x-seen-bytes", got.len().into());
        Ok::<_, Infallible>(resp)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_proxied_unread_and_counted_as_such() {
    require!(Rabbitmq);
    let sink = Sink::bind().await;
    let llm = start_gzip_llm().await;
    let proxy = RunningProxy::start(&format!("http://{llm}"), &["--model", "fallback"]).await;
    let client = http();
    let mut sent = Vec::new();
    for (path, body, encoding) in [
        (
            "/v1/chat/completions",
            chat_body("gz-stream", true).into(),
            None,
        ),
        ("/v1/completions", chat_body("gz-json", false).into(), None),
        (
            "/v1/chat/completions",
            Bytes::from_static(GZIPPED_SSE),
            Some("gzip"),
        ),
    ] {
        sent.push(body.len() as u64);
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(proxy.url(path))
            .header("content-type", "application/json");
        if let Some(e) = encoding {
            req = req.header("content-encoding", e);
        }
        let req = req.body(Full::new(body)).expect("request");
        let resp = client.request(req).await.expect("proxied");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        assert_eq!(
            resp.headers()["x-seen-bytes"],
            sent.last().expect("sent").to_string().as_str(),
            "the request reached the server whole"
        );
        let got = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&got[..], GZIPPED_SSE, "byte for byte");
    }
    proxy.flush().await;
    let mut events = sink.events(&proxy.instance, 3).await;
    events.sort_by_key(|e| e.ts);
    let seen: Vec<(&str, u16, Option<u64>)> = events
        .iter()
        .map(|e| (e.model.as_ref(), e.status, e.req_bytes))
        .collect();
    assert_eq!(
        seen,
        [
            ("gz-stream", 200, Some(sent[0])),
            ("gz-json", 200, Some(sent[1])),
            ("fallback", 200, Some(sent[2])),
        ]
    );
    assert!(events.iter().all(|e| e.ml.is_empty()), "{events:?}");
    // Not garbage read as lines, nor a misleading not_json.
    assert_eq!(
        proxy.openai.failures.summary().as_deref(),
        Some("compressed 3, request_compressed 1")
    );
}

/// The model of each event in the order they were sent, with its status and error.
async fn models_seen(
    sink: &Sink,
    proxy: &RunningProxy,
    want: usize,
) -> Vec<(String, u16, Option<String>)> {
    proxy.flush().await;
    let mut events = sink.events(&proxy.instance, want).await;
    events.extend(sink.more_events(&proxy.instance).await);
    events.sort_by_key(|e| e.ts);
    events
        .iter()
        .map(|e| {
            (
                e.model.to_string(),
                e.status,
                e.error.as_deref().map(str::to_owned),
            )
        })
        .collect()
}

/// A model the server does not serve (vLLM answers it 404) is no model: however many
/// misspellings clients send, they take none of the 64 places, and a real model asked
/// for later still gets its row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misspelled_models_answered_404_take_none_of_the_model_places() {
    require!(Rabbitmq);
    let (sink, proxy) = setup(&[]).await;
    let client = http();
    let mut sent = Vec::new();
    for i in 0..MAX_REQUEST_MODELS {
        sent.push((format!("typo-{i}"), StatusCode::NOT_FOUND));
    }
    sent.push(("llama".to_owned(), StatusCode::OK));
    for (model, status) in &sent {
        let resp = client
            .request(post(
                &proxy.url("/v1/chat/completions"),
                chat_body(model, false),
                &[],
            ))
            .await
            .expect("proxied");
        assert_eq!(resp.status(), *status, "{model}");
        let _ = resp.into_body().collect().await;
    }
    let seen = models_seen(&sink, &proxy, sent.len()).await;
    let want: Vec<(String, u16, Option<String>)> = sent
        .iter()
        .map(|(m, s)| {
            let m = if *s == StatusCode::OK {
                m.as_str()
            } else {
                "fallback"
            };
            (m.to_owned(), s.as_u16(), None)
        })
        .collect();
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_is_recorded_under_the_requests_model() {
    require!(Rabbitmq);
    let sink = Sink::bind().await;
    let (llm, serving) = support::serve_upstream_until_aborted(llm_answer).await;
    // No idle upstream connection outlives a request: once the server stops listening,
    // the next request finds it unreachable.
    let proxy = RunningProxy::start(
        &format!("http://{llm}"),
        &["--model", "fallback", "--upstream-idle", "0"],
    )
    .await;
    let client = http();
    let ask = |body: String| {
        let client = &client;
        let url = proxy.url("/v1/chat/completions");
        async move {
            let resp = client
                .request(post(&url, body, &[]))
                .await
                .expect("the proxy answers");
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            status
        }
    };
    assert_eq!(ask(chat_body("a", false)).await, StatusCode::OK);
    serving.abort();
    let _ = serving.await;
    for body in [chat_body("a", false), chat_body("b", false), String::new()] {
        assert_eq!(ask(body).await, StatusCode::BAD_GATEWAY);
    }
    let unreachable = Some("upstream_unreachable".to_owned());
    assert_eq!(
        models_seen(&sink, &proxy, 4).await,
        [
            ("a".to_owned(), 200, None),
            // Model a's row shows its errors.
            ("a".to_owned(), 502, unreachable.clone()),
            // A model never answered is not proven one: the usual model.
            ("fallback".to_owned(), 502, unreachable.clone()),
            ("fallback".to_owned(), 502, unreachable),
        ],
    );
    // The empty body is read like any other, and is not JSON.
    assert_eq!(
        proxy.openai.failures.summary().as_deref(),
        Some("request_not_json 1")
    );
}
