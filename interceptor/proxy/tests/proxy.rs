//! The proxy between a real HTTP client, a real upstream and the real RabbitMQ.

#[macro_use]
mod support;

use std::collections::BTreeMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use support::{RunningProxy, Sink, Upstream};

type TestClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// A loopback address with a free port, for the proxy binary to listen on.
fn free_listen_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("127.0.0.1:{port}")
}

fn request(method: Method, url: &str, body: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request")
}

/// A sink bound to the broker, the test upstream, and the proxy in front of it run with
/// `args`, started in that order (the sink must be listening before anything is sent).
async fn upstream_and_proxy(args: &[&str]) -> (Sink, Upstream, RunningProxy) {
    let sink = Sink::bind().await;
    let upstream = Upstream::start().await;
    let proxy = RunningProxy::start(&upstream.url(), args).await;
    (sink, upstream, proxy)
}

/// The answer to a GET of `/stream` through `proxy`: the upstream sends its first chunk
/// and holds the second until its gate opens.
async fn get_stream(http: &TestClient, proxy: &RunningProxy) -> Response<Incoming> {
    http.request(request(Method::GET, &proxy.url("/stream"), ""))
        .await
        .expect("proxied")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_through_the_proxy_is_one_event_with_its_route_status_and_sizes() {
    require!(Rabbitmq);
    let (sink, _upstream, proxy) =
        upstream_and_proxy(&["--model", "iris", "--route", "/v1/models/{name}/predict"]).await;
    let http = client();

    for _ in 0..20 {
        let mut req = request(
            Method::POST,
            &proxy.url("/v1/models/iris/predict"),
            r#"{"x":[1,2,3,4]}"#,
        );
        req.headers_mut()
            .insert("connection", "keep-alive, x-hop".parse().expect("hv"));
        req.headers_mut().insert("x-hop", "1".parse().expect("hv"));
        let resp = http.request(req).await.expect("proxied");
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["x-seen-forwarded-for"],
            "127.0.0.1",
            "x-forwarded-for added"
        );
        assert_eq!(
            resp.headers()["x-seen-hop"],
            "no",
            "headers named by Connection are hop-by-hop"
        );
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(
            &body[..],
            br#"{"x":[1,2,3,4]}"#,
            "the body is passed through untouched"
        );
    }
    for id in 0..5 {
        let resp = http
            .request(request(
                Method::GET,
                &proxy.url(&format!("/status/40{id}")),
                "",
            ))
            .await
            .expect("proxied");
        assert_eq!(resp.status().as_u16(), 400 + id);
        let _ = resp.into_body().collect().await;
    }
    for _ in 0..3 {
        let resp = http
            .request(request(Method::GET, &proxy.url("/health"), ""))
            .await
            .expect("proxied");
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "excluded paths are still proxied"
        );
        let _ = resp.into_body().collect().await;
    }
    proxy.flush().await;

    let mut events = sink.events(&proxy.instance, 25).await;
    events.extend(sink.more_events(&proxy.instance).await);
    assert_eq!(
        events.len(),
        25,
        "one event per recorded request, none for /health"
    );
    let mut by_route: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for e in &events {
        by_route
            .entry(e.route.to_string())
            .or_default()
            .push(e.status);
        assert_eq!(e.model, "iris");
        assert_eq!(e.instance, proxy.instance.as_str());
        // These answers declare their length: not streams, so no first-byte time.
        assert_eq!(e.ttfb_us, None, "{e:?}");
    }
    assert_eq!(
        by_route.keys().collect::<Vec<_>>(),
        ["/status/{id}", "/v1/models/{name}/predict"]
    );
    assert_eq!(by_route["/v1/models/{name}/predict"], vec![200; 20]);
    let mut statuses = by_route["/status/{id}"].clone();
    statuses.sort_unstable();
    assert_eq!(statuses, vec![400, 401, 402, 403, 404]);
    let predict = events.iter().find(|e| e.method == "POST").expect("a POST");
    assert_eq!(
        (predict.req_bytes, predict.resp_bytes),
        (Some(15), Some(15))
    );
    let s = proxy.publisher.stats();
    assert_eq!((s.recorded, s.dropped), (25, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_its_connections_does_not_break_kept_alive_clients() {
    require!(Rabbitmq);
    let (sink, _upstream, proxy) = upstream_and_proxy(&["--model", "iris"]).await;
    // One pooled client connection, many requests: the proxy must reconnect upstream.
    let http = client();
    for _ in 0..10 {
        let resp = http
            .request(request(Method::POST, &proxy.url("/close"), "abc"))
            .await
            .expect("proxied");
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers().get("connection").is_none(),
            "hop-by-hop stays upstream"
        );
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], b"abc");
    }
    proxy.flush().await;
    let events = sink.events(&proxy.instance, 10).await;
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|e| e.status == 200 && e.error.is_none()));
}

/// An upstream that answers 200 to everything and counts the connections it was opened
/// and the ones that were closed (by the proxy: it never closes one itself).
async fn counting_upstream() -> (
    std::net::SocketAddr,
    tokio::sync::watch::Receiver<(usize, usize)>,
) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::watch::channel((0, 0));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            tx.send_modify(|(opened, _)| *opened += 1);
            let tx = tx.clone();
            tokio::spawn(async move {
                let answer = service_fn(|_req: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer)
                    .await;
                tx.send_modify(|(_, closed)| *closed += 1);
            });
        }
    });
    (addr, rx)
}

/// Model servers close idle keep-alive connections after a few seconds (uvicorn 5 s); a
/// request the proxy writes on one as it closes fails. The proxy closes its idle
/// upstream connections itself after `--upstream-idle`, and opens a new one for the next
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_upstream_connections_are_closed_by_the_proxy_first() {
    require!(Rabbitmq);
    let (upstream, mut conns) = counting_upstream().await;
    let proxy = RunningProxy::start(
        &format!("http://{upstream}"),
        &["--model", "iris", "--upstream-idle", "1"],
    )
    .await;
    let http = client();
    let ask = || async {
        let resp = http
            .request(request(Method::POST, &proxy.url("/predict"), "{}"))
            .await
            .expect("proxied");
        assert_eq!(resp.status(), StatusCode::OK);
        let _ = resp.into_body().collect().await;
    };
    ask().await;
    assert_eq!(*conns.borrow(), (1, 0));
    let closed = tokio::time::timeout(support::PATIENCE, conns.wait_for(|&(_, c)| c == 1))
        .await
        .is_ok();
    assert!(
        closed,
        "the idle connection was never closed: {:?}",
        *conns.borrow()
    );
    ask().await;
    assert_eq!(
        *conns.borrow(),
        (2, 1),
        "a new connection for the next request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_responses_are_forwarded_chunk_by_chunk() {
    require!(Rabbitmq);
    let (sink, upstream, proxy) = upstream_and_proxy(&["--model", "llm"]).await;
    let http = client();

    let resp = get_stream(&http, &proxy).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    // The upstream holds its second chunk until the gate opens: only an unbuffered
    // proxy can hand us the first one now.
    let first = body
        .frame()
        .await
        .expect("a frame")
        .expect("ok")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"data: first\n\n");
    upstream.open_gate().await;
    let remainder = body.collect().await.expect("rest").to_bytes();
    assert_eq!(&remainder[..], b"data: second\n\n");
    proxy.flush().await;

    let events = sink.events(&proxy.instance, 1).await;
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.route.as_ref(), e.status, e.resp_bytes),
        ("/stream", 200, Some(27))
    );
    assert!(e.ttfb_us.is_some_and(|t| t <= e.duration_us));
}

/// Trailer fields pass both ways when the client accepts them (`TE: trailers`): those of
/// a chunked upload reach the upstream, and the upstream's reach the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_both_ways_when_the_client_accepts_them() {
    use std::convert::Infallible;

    use http_body_util::Either;
    use http_body_util::channel::Channel;
    use hyper::HeaderMap;

    require!(Rabbitmq);
    let upstream = support::serve_upstream(|req: Request<Incoming>| async move {
        let upload = req.into_body().collect().await.expect("the upload");
        let digest = upload
            .trailers()
            .and_then(|t| t.get("x-upload-digest"))
            .cloned();
        let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
        tokio::spawn(async move {
            let _ = tx.send_data(Bytes::from_static(b"answer")).await;
            let mut trailers = HeaderMap::new();
            trailers.insert("x-answer-digest", "sha256=abc".parse().expect("hv"));
            let _ = tx.send_trailers(trailers).await;
        });
        let mut resp = Response::new(Either::Right(body));
        resp.headers_mut()
            .insert("trailer", "x-answer-digest".parse().expect("hv"));
        if let Some(d) = digest {
            resp.headers_mut().insert("x-seen-upload-digest", d);
        }
        Ok(resp)
    })
    .await;
    let proxy = RunningProxy::start(&format!("http://{upstream}"), &["--model", "iris"]).await;

    let http: Client<HttpConnector, Channel<Bytes, Infallible>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
    tokio::spawn(async move {
        let _ = tx.send_data(Bytes::from_static(b"upload")).await;
        let mut trailers = HeaderMap::new();
        trailers.insert("x-upload-digest", "sha256=def".parse().expect("hv"));
        let _ = tx.send_trailers(trailers).await;
    });
    let req = Request::builder()
        .method(Method::POST)
        .uri(proxy.url("/upload"))
        .header("te", "trailers")
        .header("trailer", "x-upload-digest")
        .body(body)
        .expect("request");
    let resp = http.request(req).await.expect("proxied");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()
            .get("x-seen-upload-digest")
            .map(hyper::header::HeaderValue::as_bytes),
        Some(&b"sha256=def"[..]),
        "the upload's trailer reached the upstream: {:?}",
        resp.headers()
    );
    let answer = resp.into_body().collect().await.expect("the answer");
    assert_eq!(
        answer.trailers().and_then(|t| t.get("x-answer-digest")),
        Some(&"sha256=abc".parse().expect("hv")),
        "the answer's trailer reached the client"
    );
    assert_eq!(&answer.to_bytes()[..], b"answer");
}

/// A GET with a chunked body (a search API taking its query as JSON) reaches the upstream
/// with its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_on_a_get_reaches_the_upstream() {
    use std::convert::Infallible;

    use http_body_util::channel::Channel;

    require!(Rabbitmq);
    let (sink, _upstream, proxy) = upstream_and_proxy(&["--model", "iris"]).await;
    let http: Client<HttpConnector, Channel<Bytes, Infallible>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let (mut tx, body) = Channel::<Bytes, Infallible>::new(1);
    tokio::spawn(async move {
        for part in [&b"{\"query\":"[..], b"\"iris\"}"] {
            let _ = tx.send_data(Bytes::from_static(part)).await;
        }
    });
    let req = Request::builder()
        .method(Method::GET)
        .uri(proxy.url("/search"))
        .header("transfer-encoding", "chunked")
        .body(body)
        .expect("request");
    let resp = http.request(req).await.expect("proxied");
    assert_eq!(resp.status(), StatusCode::OK);
    let echoed = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        &echoed[..],
        br#"{"query":"iris"}"#,
        "the upstream echoes what it got"
    );
    proxy.flush().await;
    let events = sink.events(&proxy.instance, 1).await;
    assert_eq!(
        events.iter().map(|e| e.req_bytes).collect::<Vec<_>>(),
        [Some(16)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_stream_is_recorded_as_499() {
    require!(Rabbitmq);
    let (sink, upstream, proxy) = upstream_and_proxy(&["--model", "llm"]).await;
    let http = client();

    let resp = get_stream(&http, &proxy).await;
    let mut body = resp.into_body();
    let _first = body.frame().await.expect("a frame").expect("ok");
    drop(body);
    drop(http);

    // The upstream is still holding its second chunk: the proxy learns of the client's
    // departure from the closed socket alone.
    let events = sink.events(&proxy.instance, 1).await;
    upstream.open_gate().await;
    assert_eq!(events.len(), 1, "the abandoned request is still recorded");
    assert_eq!(events[0].status, 499);
    assert_eq!(
        events[0].resp_bytes,
        Some(13),
        "what was sent before the client left"
    );
}

/// A client that declares a 100 000-byte body to `path`, sends its first bytes and gives
/// up, closing its side; returns once the proxy has closed the connection.
async fn abandon_upload(proxy: &RunningProxy, path: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: model\r\ncontent-type: application/json\r\n\
         content-length: 100000\r\n\r\n{{\"model\":"
    );
    conn.write_all(head.as_bytes()).await.expect("sent");
    conn.shutdown().await.expect("half-closed");
    let mut answer = Vec::new();
    // The proxy may answer the half-closed client or just close: either ends this.
    let _ = conn.read_to_end(&mut answer).await;
}

/// A client that goes away mid-upload is a 499, as one that leaves mid-answer: neither
/// an upstream error (when the body was streaming to the upstream) nor any error of the
/// model's (when an OpenAI-compatible request was being read first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_upload_is_recorded_as_499_and_no_error() {
    require!(Rabbitmq);
    let (sink, _upstream, proxy) = upstream_and_proxy(&["--model", "iris"]).await;
    abandon_upload(&proxy, "/predict").await;
    abandon_upload(&proxy, "/v1/chat/completions").await;
    proxy.flush().await;

    let mut events = sink.events(&proxy.instance, 2).await;
    events.extend(sink.more_events(&proxy.instance).await);
    events.sort_by_key(|e| e.ts);
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.route.as_ref(), e.status, e.error.as_deref(), e.req_bytes))
        .collect();
    assert_eq!(
        got,
        [
            // What reached the upstream before the client left; never answered, neither
            // path is proven a route.
            ("<unmatched>", 499, None, Some(9)),
            // Read whole before it is forwarded: nothing reached the upstream.
            ("<unmatched>", 499, None, Some(0)),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_answers_502_and_is_recorded() {
    require!(Rabbitmq);
    let sink = Sink::bind().await;
    // Port 1 on loopback: nothing listens there.
    let proxy = RunningProxy::start("http://127.0.0.1:1", &["--model", "iris"]).await;
    // HEAD too: its answer has no body to send, which is no client gone.
    for method in [Method::POST, Method::HEAD] {
        let resp = client()
            .request(request(method, &proxy.url("/predict"), ""))
            .await
            .expect("the proxy answers");
        assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
        let _ = resp.into_body().collect().await;
    }
    proxy.flush().await;

    let mut events = sink.events(&proxy.instance, 2).await;
    events.sort_by_key(|e| e.ts);
    let got: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.method.as_ref(),
                e.status,
                e.error.as_deref(),
                e.route.as_ref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            // Never answered, the path is not proven a route.
            ("POST", 502, Some("upstream_unreachable"), "<unmatched>"),
            ("HEAD", 502, Some("upstream_unreachable"), "<unmatched>"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_templated_models_taken_from_paths_and_exclusions_honoured() {
    require!(Rabbitmq);
    let (sink, _upstream, proxy) = upstream_and_proxy(&[
        "--model",
        "fallback",
        "--model-from-path",
        "/v2/models/{model}/infer",
        "--exclude",
        "/internal/ping",
        "--max-routes",
        "3",
    ])
    .await;
    let http = client();
    let paths = [
        (
            "/v2/models/resnet/infer",
            "resnet",
            "/v2/models/{model}/infer",
        ),
        ("/v2/models/bert/infer", "bert", "/v2/models/{model}/infer"),
        ("/users/12345/orders", "fallback", "/users/{id}/orders"),
        ("/users/777/orders?page=2", "fallback", "/users/{id}/orders"),
        (
            "/jobs/3f2b8c1e-0c55-4a8e-9b1f-1c2d3e4f5a6b",
            "fallback",
            "/jobs/{id}",
        ),
        ("/a/b/c/d/e/f", "fallback", "/a/b/c/d/{rest}"),
        ("/one-too-many", "fallback", "(other)"),
        ("/internal/ping", "", ""),
        ("/healthz", "", ""),
    ];
    for (path, _, _) in paths {
        let resp = http
            .request(request(Method::POST, &proxy.url(path), "x"))
            .await
            .expect("proxied");
        assert_eq!(resp.status(), StatusCode::OK);
        let _ = resp.into_body().collect().await;
    }
    proxy.flush().await;
    let mut events = sink.events(&proxy.instance, 7).await;
    events.extend(sink.more_events(&proxy.instance).await);
    let mut got: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.model.to_string(), e.route.to_string()))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = paths
        .iter()
        .filter(|(_, m, _)| !m.is_empty())
        .map(|(_, m, r)| ((*m).to_owned(), (*r).to_owned()))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// A vulnerability scanner, and clients with a misspelled model, against a small
/// `--max-routes`: their 404s are `<unmatched>` on the fallback model, and the API's own
/// routes and models, answered later, still get their names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_answered_404_use_up_neither_the_route_cap_nor_the_models() {
    require!(Rabbitmq);
    let sink = Sink::bind().await;
    // The API has /predict, /items/1 and the model resnet; everything else is a 404.
    let upstream = support::serve_upstream(|req: Request<Incoming>| async move {
        let mut resp = Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
        *resp.status_mut() = capped_api(req.uri().path());
        Ok(resp)
    })
    .await;
    let proxy = RunningProxy::start(&format!("http://{upstream}"), CAPPED).await;
    let http = client();
    let sent = [
        ("/wp-admin", 404, "fallback", "<unmatched>"),
        ("/.env", 404, "fallback", "<unmatched>"),
        ("/phpmyadmin/index.php", 404, "fallback", "<unmatched>"),
        (
            "/v2/models/resnte/infer",
            404,
            "fallback",
            "/v2/models/{model}/infer",
        ),
        ("/predict", 200, "fallback", "/predict"),
        ("/items/1", 200, "fallback", "/items/{id}"),
        // A route already known keeps its name on a 404 (an item that is not there).
        ("/items/2", 404, "fallback", "/items/{id}"),
        (
            "/v2/models/resnet/infer",
            200,
            "resnet",
            "/v2/models/{model}/infer",
        ),
        // The cap still holds for routes that answer.
        ("/third", 200, "fallback", "(other)"),
        (
            "/v2/models/resnte/infer",
            404,
            "fallback",
            "/v2/models/{model}/infer",
        ),
    ];
    for (path, status, _, _) in sent {
        let resp = http
            .request(request(Method::POST, &proxy.url(path), "x"))
            .await
            .expect("proxied");
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let _ = resp.into_body().collect().await;
    }
    let want: Vec<_> = sent
        .iter()
        .map(|&(_, s, m, r)| (s, m.to_owned(), r.to_owned()))
        .collect();
    assert_eq!(recorded_in_order(&sink, &proxy, sent.len()).await, want);
}

/// A scanner, and a client with a misspelled model, while the upstream is down: their
/// 502s prove no name, so they are `<unmatched>` on the fallback model and use up neither
/// `--max-routes` nor the models; once the upstream is up, the API's routes and models
/// get their names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_upstream_never_answered_use_up_neither_the_route_cap_nor_the_models() {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    require!(Rabbitmq);
    let sink = Sink::bind().await;
    // Bound and not listening: the port is the upstream's, and connecting to it is
    // refused until it listens.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let upstream = socket.local_addr().expect("addr");
    let proxy = RunningProxy::start(&format!("http://{upstream}"), CAPPED).await;
    let http = client();
    let send = |path: &'static str| {
        let http = &http;
        let url = proxy.url(path);
        async move {
            let resp = http
                .request(request(Method::POST, &url, "x"))
                .await
                .expect("the proxy answers");
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        }
    };
    let down = [
        ("/wp-admin", "fallback", "<unmatched>"),
        ("/.env", "fallback", "<unmatched>"),
        (
            "/v2/models/resnte/infer",
            "fallback",
            "/v2/models/{model}/infer",
        ),
    ];
    for (path, _, _) in down {
        assert_eq!(send(path).await, 502, "{path}");
    }

    // The upstream is up: the API has /predict, /items/1 and the model resnet.
    let listener = socket.listen(16).expect("listen");
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio::spawn(async move {
                let answer = service_fn(|req: Request<Incoming>| async move {
                    let mut resp = Response::new(Full::new(Bytes::new()));
                    *resp.status_mut() = capped_api(req.uri().path());
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), answer)
                    .await;
            });
        }
    });
    let up = [
        ("/predict", "fallback", "/predict"),
        ("/items/1", "fallback", "/items/{id}"),
        (
            "/v2/models/resnet/infer",
            "resnet",
            "/v2/models/{model}/infer",
        ),
        // The cap still holds for routes that answer.
        ("/third", "fallback", "(other)"),
    ];
    for (path, _, _) in up {
        assert_eq!(send(path).await, 200, "{path}");
    }
    let want: Vec<_> = down
        .iter()
        .map(|&(_, m, r)| (502, m, r))
        .chain(up.iter().map(|&(_, m, r)| (200, m, r)))
        .map(|(s, m, r)| (s, m.to_owned(), r.to_owned()))
        .collect();
    let recorded = recorded_in_order(&sink, &proxy, down.len() + up.len()).await;
    assert_eq!(recorded, want);
}

/// The proxy of the cap tests: two routes at most, models from a Triton-style path.
const CAPPED: &[&str] = &[
    "--model",
    "fallback",
    "--model-from-path",
    "/v2/models/{model}/infer",
    "--max-routes",
    "2",
];

/// The API behind it: /predict, /items/1, /third and the model resnet; the rest is a 404.
fn capped_api(path: &str) -> StatusCode {
    match path {
        "/predict" | "/items/1" | "/third" | "/v2/models/resnet/infer" => StatusCode::OK,
        _ => StatusCode::NOT_FOUND,
    }
}

/// The `(status, model, route)` of the proxy's events, at least `n`, in the order they
/// were sent: one request at a time, each recorded before its answer ended.
async fn recorded_in_order(
    sink: &Sink,
    proxy: &RunningProxy,
    n: usize,
) -> Vec<(u16, String, String)> {
    proxy.flush().await;
    let mut events = sink.events(&proxy.instance, n).await;
    events.extend(sink.more_events(&proxy.instance).await);
    events.sort_by_key(|e| e.ts);
    events
        .iter()
        .map(|e| (e.status, e.model.to_string(), e.route.to_string()))
        .collect()
}

#[test]
fn bad_usage_exits_with_code_2_and_says_why() {
    let bin = env!("CARGO_BIN_EXE_modelmon-proxy");
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .output()
            .expect("runs")
    };

    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--upstream"));

    let out = run(&["--upstream", "ftp://x", "--model", "iris"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http://"));

    let out = run(&["--upstream", "http://127.0.0.1:8000"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model is required"));

    let out = run(&[
        "--upstream",
        "http://127.0.0.1:8000",
        "--model",
        "m",
        "--route",
        "/v1/{a",
    ]);
    assert_eq!(out.status.code(), Some(2));

    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_proxies_and_delivers_its_events_when_terminated() {
    require!(Rabbitmq);
    let sink = Sink::bind().await;
    let upstream = Upstream::start().await;
    let instance = support::unique("proxy-bin");
    let listen = free_listen_addr();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelmon-proxy"))
        .args([
            "--listen",
            &listen,
            "--upstream",
            &upstream.url(),
            "--model",
            "iris",
        ])
        .args(["--instance", &instance, "--amqp", support::AMQP])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let url = format!("http://{listen}/v1/models/iris/predict");
    let http = client();
    let mut status = None;
    for _ in 0..200 {
        match http.request(request(Method::POST, &url, "{}")).await {
            Ok(resp) => {
                status = Some(resp.status());
                let _ = resp.into_body().collect().await;
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
        }
    }
    assert_eq!(
        status,
        Some(StatusCode::OK),
        "the proxy came up and answered"
    );

    support::sigterm(&child);
    let out = child.wait_with_output().await.expect("exits");
    assert_eq!(out.status.code(), Some(0), "SIGTERM is a clean stop");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 events recorded, 1 published, 0 dropped"),
        "{stderr}"
    );

    let events = sink.events(&instance, 1).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].route, "/v1/models/iris/predict");
}

/// The proxy binary in front of an upstream, with its stderr lines collected as they come.
struct ProxyBinary {
    child: tokio::process::Child,
    listen: String,
    log: tokio::sync::watch::Receiver<Vec<String>>,
    reader: tokio::task::JoinHandle<Vec<String>>,
}

impl ProxyBinary {
    fn spawn(upstream: &Upstream, amqp: &str, tag: &str) -> ProxyBinary {
        use tokio::io::AsyncBufReadExt;

        let listen = free_listen_addr();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelmon-proxy"))
            .args(["--listen", &listen, "--upstream", &upstream.url()])
            .args(["--model", "iris", "--amqp", amqp, "--threads", "1"])
            .args(["--instance", &support::unique(tag)])
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn");
        let (log_tx, log) = tokio::sync::watch::channel(Vec::<String>::new());
        let stderr = child.stderr.take().expect("stderr");
        let reader = tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                log_tx.send_modify(|l| l.push(line));
            }
            log_tx.borrow().clone()
        });
        ProxyBinary {
            child,
            listen,
            log,
            reader,
        }
    }

    /// Lines told so far that contain `what`.
    fn told(&self, what: &str) -> usize {
        self.log
            .borrow()
            .iter()
            .filter(|l| l.contains(what))
            .count()
    }

    /// Waits until `n` lines containing `what` were told; false past `patience`.
    async fn wait_told(&mut self, what: &str, n: usize, patience: std::time::Duration) -> bool {
        tokio::time::timeout(
            patience,
            self.log
                .wait_for(|l| l.iter().filter(|l| l.contains(what)).count() >= n),
        )
        .await
        .is_ok_and(|seen| seen.is_ok())
    }

    /// SIGTERM, a clean exit, and everything it said; with its final counts
    /// ("stopped; N events recorded, P published, D dropped").
    async fn terminate(mut self) -> (Vec<String>, [u64; 3]) {
        support::sigterm(&self.child);
        let status = self.child.wait().await.expect("exits");
        assert_eq!(status.code(), Some(0));
        let lines = self.reader.await.expect("stderr read");
        // Shown with --nocapture: how it went.
        println!("{}", lines.join("\n"));
        let last = lines.last().cloned().unwrap_or_default();
        let numbers: Vec<u64> = last
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|n| n.parse().ok())
            .collect();
        let [recorded, published, dropped] = numbers[..] else {
            panic!("no final counts: {lines:#?}");
        };
        (lines, [recorded, published, dropped])
    }
}

/// One client sending one request after another through the proxy until finished; any
/// failure once the proxy has answered is a failed test.
struct SteadyLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl SteadyLoad {
    fn start(proxy: &ProxyBinary) -> SteadyLoad {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let proxy_pid = proxy.child.id().expect("pid");
        let (flag, count) = (Arc::clone(&stop), Arc::clone(&answered));
        let url = format!("http://{}/v1/models/iris/predict", proxy.listen);
        let task = tokio::spawn(async move {
            let http = client();
            let mut failed = 0u64;
            while !flag.load(Ordering::Relaxed) {
                match http.request(request(Method::POST, &url, "{}")).await {
                    Ok(resp) => {
                        assert_eq!(resp.status(), StatusCode::OK, "the model API answers");
                        let _ = resp.into_body().collect().await;
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    // Only while the proxy starts.
                    Err(_) if count.load(Ordering::Relaxed) == 0 => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                    Err(e) => {
                        failed += 1;
                        let alive = std::path::Path::new(&format!("/proc/{proxy_pid}")).exists();
                        assert!(
                            failed < 3,
                            "the proxy stopped answering: {e:?} (its process is {})",
                            if alive { "alive" } else { "gone" }
                        );
                    }
                }
            }
        });
        SteadyLoad {
            stop,
            answered,
            task,
        }
    }

    /// Stops the client; the number of requests answered.
    async fn finish(self) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the client ran to the end");
        self.answered.load(Ordering::Relaxed)
    }
}

/// Broker restarts under load, as an operator sees them: a private node (the shared
/// broker is never stopped) restarted five times for five seconds while a client keeps
/// the proxy busy and the real monitor consumes on its default queue, which vanishes
/// with each restart. Every event the proxy published is counted by the monitor, and
/// whatever it dropped is reported to it; the proxy says once per outage that the broker
/// is gone, and once that it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restarts_under_load_lose_nothing_silently_and_are_told_once_each() {
    use std::time::Duration;

    use support::Monitor;
    use support::private_node::PrivateNode;

    const RESTARTS: usize = 5;
    const OUTAGE: Duration = Duration::from_secs(5);
    /// Reconnects back off to 5 s (jittered) on both sides; the rest is a loaded machine.
    const PATIENCE: Duration = Duration::from_secs(60);

    require!(RabbitmqServer);

    let mut node = tokio::task::spawn_blocking(PrivateNode::start)
        .await
        .expect("join");
    let mut monitor = Monitor::start(&node.url);
    let connected = monitor
        .wait(PATIENCE, |l| l["broker"]["state"] == "connected")
        .await;
    assert!(connected.is_some_and(|l| l["broker"]["state"] == "connected"));

    let upstream = Upstream::start().await;
    let mut proxy = ProxyBinary::spawn(&upstream, &node.url, "proxy-restarts");
    let load = SteadyLoad::start(&proxy);
    let flowing = monitor
        .wait(PATIENCE, |l| Monitor::ingest(l, "events") > 0)
        .await;
    assert!(flowing.is_some_and(|l| Monitor::ingest(&l, "events") > 0));

    for round in 1..=RESTARTS {
        tokio::time::sleep(Duration::from_secs(2)).await;
        node = tokio::task::spawn_blocking(move || {
            node.stop_app();
            node
        })
        .await
        .expect("join");
        tokio::time::sleep(OUTAGE).await;
        node = tokio::task::spawn_blocking(move || {
            node.start_app();
            node
        })
        .await
        .expect("join");
        let back = proxy.wait_told("reachable again", round, PATIENCE).await;
        assert!(back, "restart {round}: {:?}", proxy.log.borrow());
    }
    // Traffic that flows once the monitor is back, then a quiet end.
    let before = monitor.wait(PATIENCE, |_| true).await.expect("a line");
    let grown = monitor
        .wait(PATIENCE, |l| {
            Monitor::ingest(l, "events") > Monitor::ingest(&before, "events") + 100
        })
        .await
        .expect("a line");
    assert!(
        Monitor::ingest(&grown, "events") > Monitor::ingest(&before, "events"),
        "no traffic after the restarts; the proxy said: {:#?}",
        proxy.log.borrow()
    );
    let answered = load.finish().await;
    // The last events reach the monitor (batches leave every 250 ms) before the stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (outages, recoveries) = (
        proxy.told("cannot reach the broker"),
        proxy.told("reachable again"),
    );
    let lines = terminate_and_account(proxy, answered, &mut monitor).await;

    assert_eq!(
        outages,
        RESTARTS,
        "one line per outage:\n{}",
        lines.join("\n")
    );
    assert_eq!(
        recoveries,
        RESTARTS,
        "one line per recovery:\n{}",
        lines.join("\n")
    );
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .expect("join");
}

/// A broker that blocks publishing (a memory alarm on a private node) under load: the
/// connection stays up and nothing goes out, so only the proxy can say so, once when the
/// block starts and once when it ends; every answered request is still accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_blocking_publishing_is_told_once_and_so_is_its_end() {
    use std::time::Duration;

    use support::private_node::PrivateNode;

    /// The block reaches the publisher when it next publishes; the rest is a loaded machine.
    const PATIENCE: Duration = Duration::from_secs(60);
    const BLOCKED: &str = "blocked publishing (a resource alarm";
    const UNBLOCKED: &str = "unblocked publishing after";

    require!(RabbitmqServer);

    let node = tokio::task::spawn_blocking(PrivateNode::start)
        .await
        .expect("join");
    let upstream = Upstream::start().await;
    let mut proxy = ProxyBinary::spawn(&upstream, &node.url, "proxy-blocked");
    let load = SteadyLoad::start(&proxy);
    assert!(
        proxy
            .wait_told("publishing to the broker", 1, PATIENCE)
            .await,
        "{:?}",
        proxy.log.borrow()
    );
    let node = tokio::task::spawn_blocking(move || {
        node.memory_alarm(true);
        node
    })
    .await
    .expect("join");
    let told = proxy.wait_told(BLOCKED, 1, PATIENCE).await;
    assert!(told, "{:?}\n{}", proxy.log.borrow(), node.output());
    // Blocked a while, under load: still one line.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let node = tokio::task::spawn_blocking(move || {
        node.memory_alarm(false);
        node
    })
    .await
    .expect("join");
    let told = proxy.wait_told(UNBLOCKED, 1, PATIENCE).await;
    assert!(told, "{:?}\n{}", proxy.log.borrow(), node.output());
    let answered = load.finish().await;
    let (lines, [recorded, published, dropped]) = proxy.terminate().await;
    let count = |what: &str| lines.iter().filter(|l| l.contains(what)).count();
    assert_eq!((count(BLOCKED), count(UNBLOCKED)), (1, 1), "{lines:#?}");
    assert_eq!(recorded, answered, "every answered request was recorded");
    assert_eq!(recorded, published + dropped, "{lines:#?}");
    tokio::task::spawn_blocking(move || drop(node))
        .await
        .expect("join");
}

/// Stops the proxy and checks its account: it recorded each of the `answered` requests and
/// published or dropped each, and the monitor counts every event it published, once, and
/// is told of every drop. Returns what the proxy said.
async fn terminate_and_account(
    proxy: ProxyBinary,
    answered: u64,
    monitor: &mut support::Monitor,
) -> Vec<String> {
    use support::Monitor;
    let (proxy_log, [recorded, published, dropped]) = proxy.terminate().await;
    assert_eq!(recorded, answered, "every answered request was recorded");
    assert_eq!(
        recorded,
        published + dropped,
        "nothing is left unaccounted for"
    );
    let patience = std::time::Duration::from_secs(60);
    let counted = monitor
        .wait(patience, |l| {
            Monitor::ingest(l, "events") >= published
                && Monitor::ingest(l, "dropped_at_source") >= dropped
        })
        .await
        .expect("a line");
    // Anything more would arrive within a few refreshes.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let line = monitor.wait(patience, |_| true).await.expect("a line");
    assert_eq!(
        (
            Monitor::ingest(&line, "events"),
            Monitor::ingest(&line, "dropped_at_source")
        ),
        (published, dropped),
        "the monitor counts every published event once and is told of every drop \
         (first matching line {counted}); proxy log:\n{}",
        proxy_log.join("\n")
    );
    assert_eq!(Monitor::ingest(&line, "rejected"), 0);
    proxy_log
}

/// A cluster losing the node the proxy publishes through, under load: the model API
/// keeps answering, the proxy moves to the next node within seconds and says which,
/// and the monitor, on a node that stays, counts what was published and is told of
/// any drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_its_cluster_node_the_proxy_moves_on_and_keeps_serving() {
    use std::time::{Duration, Instant};

    use support::Monitor;
    use support::cluster::Cluster;

    const PATIENCE: Duration = Duration::from_secs(60);

    require!(RabbitmqServer);

    let cluster = tokio::task::spawn_blocking(Cluster::start)
        .await
        .expect("join");
    let mut monitor = Monitor::start(&cluster.urls[2]);
    let connected = monitor
        .wait(PATIENCE, |l| l["broker"]["state"] == "connected")
        .await;
    assert!(connected.is_some_and(|l| l["broker"]["state"] == "connected"));

    let upstream = Upstream::start().await;
    let nodes = cluster.setting_from([2, 3, 1]);
    let mut proxy = ProxyBinary::spawn(&upstream, &nodes, "proxy-cluster");
    let load = SteadyLoad::start(&proxy);
    let on_node_2 = proxy
        .wait_told(
            &format!("(node amqp://guest:***@{}/", cluster.authority(2)),
            1,
            PATIENCE,
        )
        .await;
    assert!(on_node_2, "{:?}", proxy.log.borrow());
    let flowing = monitor
        .wait(PATIENCE, |l| Monitor::ingest(l, "events") > 0)
        .await;
    assert!(flowing.is_some_and(|l| Monitor::ingest(&l, "events") > 0));

    let t = Instant::now();
    let stopped = cluster.authority(2);
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop_node(2);
        cluster
    })
    .await
    .expect("join");
    let moved = proxy
        .wait_told(
            &format!("(node amqp://guest:***@{}/", cluster.authority(3)),
            1,
            PATIENCE,
        )
        .await;
    assert!(
        moved,
        "the proxy moved on from {stopped}: {:?}",
        proxy.log.borrow()
    );
    let before = monitor.wait(PATIENCE, |_| true).await.expect("a line");
    monitor
        .wait(PATIENCE, |l| {
            Monitor::ingest(l, "events") > Monitor::ingest(&before, "events")
        })
        .await
        .expect("events counted again");
    println!(
        "the proxy's events are counted again {:.1} s after its node's stop",
        t.elapsed().as_secs_f64()
    );

    let answered = load.finish().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    terminate_and_account(proxy, answered, &mut monitor).await;
    tokio::task::spawn_blocking(move || drop(cluster))
        .await
        .expect("join");
}

/// Wrong credentials are not a network problem, and the operator is told so once, while
/// the proxy keeps serving and retrying (the shared broker is only asked to log us in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_told_once_with_the_reason() {
    use std::time::Duration;
    use tokio::io::AsyncBufReadExt;

    require!(Rabbitmq);

    let upstream = Upstream::start().await;
    let listen = free_listen_addr();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelmon-proxy"))
        .args(["--listen", &listen, "--upstream", &upstream.url()])
        .args(["--model", "iris"])
        .args([
            "--amqp",
            "amqp://modelmon-nobody:not-the-password@127.0.0.1:5672/%2f",
        ])
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut seen = Vec::new();
    // Long enough for several retries (100 ms doubling): each would be a line if the
    // proxy told every attempt.
    let end = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Ok(Some(line))) = tokio::time::timeout_at(end, lines.next_line()).await {
        seen.push(line);
    }
    let url = format!("http://{listen}/v1/models/iris/predict");
    let resp = client()
        .request(request(Method::POST, &url, "{}"))
        .await
        .expect("the proxy serves without a broker");
    assert_eq!(resp.status(), StatusCode::OK);
    let _ = child.start_kill();

    let refused: Vec<&String> = seen
        .iter()
        .filter(|l| l.contains("the broker refused the login at"))
        .collect();
    assert_eq!(refused.len(), 1, "{seen:#?}");
    assert!(
        refused[0].contains("modelmon-nobody:***@127.0.0.1:5672"),
        "the password is masked: {}",
        refused[0]
    );
    assert!(
        refused[0].contains("ACCESS_REFUSED") || refused[0].contains("ACCESS-REFUSED"),
        "the broker's reason is given: {}",
        refused[0]
    );
    assert!(!seen.iter().any(|l| l.contains("not-the-password")));
}

/// An LLM-like answer streamed through the proxy binary: the client gets each token as
/// the model API sends it, and the real monitor, reading the proxy's events from the
/// broker, shows the time to the first token and the generation time the API was paced at,
/// over the streamed answers only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_answers_reach_the_monitor_with_their_first_byte_and_generation_times() {
    use std::time::{Duration, Instant};

    use support::{Monitor, Pace, PacedUpstream};

    const PACE: Pace = Pace {
        first: Duration::from_millis(300),
        tokens: 10,
        every: Duration::from_millis(50),
    };
    /// Sent at once, so the test takes about one answer's time.
    const REQUESTS: usize = 8;
    /// Answers of declared length to the same model: counted, but not as streams.
    const PLAIN: usize = 4;
    /// The first byte cannot leave the model API before `first`: 1 % below is the
    /// monitor's bucket (its percentiles are within 0.4 % of the sample). Nor can the
    /// last leave before `tokens × every` after the first, but the proxy may see the
    /// first a few ms later than it left (the 8 answers reach their first token at the
    /// same instant), which shortens the generation as measured: 10 % below. Above, a
    /// loaded 2-core machine may be late by a scheduler's whims: a quarter of a second is
    /// far more than that and still far less than mistaking one figure for the other (a
    /// TTFB taken at the last byte would read 800 ms, one taken at the headers about 0).
    const TTFB_LOW: f64 = 0.99;
    const GEN_LOW: f64 = 0.9;
    const LATE_MS: f64 = 250.0;

    require!(Rabbitmq);

    let model = support::unique("llm");
    let mut monitor = Monitor::start_with(support::AMQP, &["--models", &model]);
    let connected = monitor
        .wait(support::PATIENCE, |l| l["broker"]["state"] == "connected")
        .await;
    assert!(connected.is_some_and(|l| l["broker"]["state"] == "connected"));

    let upstream = PacedUpstream::start(PACE).await;
    let listen = free_listen_addr();
    let _proxy = tokio::process::Command::new(env!("CARGO_BIN_EXE_modelmon-proxy"))
        .args(["--listen", &listen, "--upstream", &upstream.url()])
        .args(["--model", &model, "--amqp", support::AMQP])
        .args(["--instance", &support::unique("proxy-stream")])
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    // Up when it answers; /health is proxied but not recorded.
    let health = format!("http://{listen}/health");
    let mut up = false;
    for _ in 0..200 {
        if let Ok(resp) = client().request(request(Method::GET, &health, "")).await {
            up = resp.status() == StatusCode::OK;
            let _ = resp.into_body().collect().await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(up, "the proxy came up and answered");

    let url = format!("http://{listen}/v1/chat/completions");
    let answers: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let asked = Instant::now();
                let resp = client()
                    .request(request(Method::POST, &url, r#"{"prompt":"hi"}"#))
                    .await
                    .expect("proxied");
                assert_eq!(resp.status(), StatusCode::OK);
                assert_eq!(resp.headers()["content-type"], "text/event-stream");
                let mut body = resp.into_body();
                let mut got = Vec::new();
                let mut first = None;
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.expect("a frame").into_data() {
                        if first.is_none() && !data.is_empty() {
                            first = Some(asked.elapsed());
                        }
                        got.extend_from_slice(&data);
                    }
                }
                (got, first.expect("some data"), asked.elapsed())
            })
        })
        .collect();
    let mut gaps = Vec::new();
    for answer in answers {
        let (got, first, total) = answer.await.expect("the client ran");
        assert_eq!(got, PACE.answer(), "every token arrives, in order");
        gaps.push(total.saturating_sub(first));
    }
    for _ in 0..PLAIN {
        let resp = client()
            .request(request(
                Method::POST,
                &format!("http://{listen}/v1/embeddings"),
                "{}",
            ))
            .await
            .expect("proxied");
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(&body[..], br#"{"embedding":[0.1,0.2]}"#);
    }
    // The client had its first token long before its last: the proxy held nothing back.
    gaps.sort_unstable();
    let generation = PACE.every * PACE.tokens;
    assert!(
        gaps[REQUESTS / 2] > generation / 2,
        "first to last byte at the client, per request: {gaps:?}"
    );

    let line = monitor
        .wait(support::PATIENCE, |l| {
            support::model_line(l, &model).is_some_and(|m| {
                m["requests"].as_u64() >= Some((REQUESTS + PLAIN) as u64)
                    && m["ttfb_requests"].as_u64() >= Some(REQUESTS as u64)
            })
        })
        .await
        .expect("a line");
    let m = support::model_line(&line, &model).expect("the model's figures");
    assert_eq!(m["requests"], REQUESTS + PLAIN, "{m}");
    assert_eq!(
        m["ttfb_requests"], REQUESTS,
        "every streamed answer had a first byte, and only those: {m}"
    );
    assert_eq!(m["status"]["2xx"], REQUESTS + PLAIN, "{m}");
    let ms = |key: &str| m[key].as_f64().unwrap_or_else(|| panic!("{key}: {m}"));
    let (ttfb, generated) = (ms("ttfb_p50_ms"), ms("gen_p50_ms"));
    let (first_ms, gen_ms) = (
        PACE.first.as_secs_f64() * 1000.0,
        generation.as_secs_f64() * 1000.0,
    );
    assert!(
        (first_ms * TTFB_LOW..=first_ms + LATE_MS).contains(&ttfb),
        "ttfb p50 {ttfb} ms, paced {first_ms} ms: {m}"
    );
    assert!(
        (gen_ms * GEN_LOW..=gen_ms + LATE_MS).contains(&generated),
        "generation p50 {generated} ms, paced {gen_ms} ms: {m}"
    );
    assert_eq!(Monitor::ingest(&line, "rejected"), 0);
    // Shown with --nocapture: the figures of this run.
    println!(
        "ttfb p50 {ttfb} ms (paced {first_ms}), gen p50 {generated} ms (paced {gen_ms}), \
         client first-to-last {gaps:?}"
    );
}
