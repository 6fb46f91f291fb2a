//! Who may read: a public address needs a token (header, query, cookie or file), and the
//! broker's password is never in a response.

use std::process::Command;

use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{runtime, unique};

use super::{Served, ws_next};

#[test]
fn a_public_address_without_a_token_is_refused_with_exit_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_modelmon-tui"))
        .args(["--headless", "--demo", "--serve", "0.0.0.0:0"])
        .env_remove("MODELMON_TOKEN")
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .expect("the binary runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve on 0.0.0.0"), "{err}");
    assert!(
        err.contains("--token") && err.contains("--insecure-public"),
        "{err}"
    );
}

/// A token that arrives as a file (a mounted secret), newline and all, or through the
/// config's `[web] token_file`.
#[test]
fn a_token_file_guards_the_api_like_a_token() {
    let dir = std::env::temp_dir().join(unique("modelmon-token"));
    std::fs::create_dir_all(&dir).expect("dir");
    let token = dir.join("token");
    std::fs::write(&token, "s3cret-from-file\n").expect("write");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[web]\ntoken_file = {:?}\n", token.display().to_string()),
    )
    .expect("write");
    let token = token.display().to_string();
    let config = config.display().to_string();
    for args in [
        vec!["--demo", "--token-file", &token],
        vec!["--demo", "--config", &config],
    ] {
        let s = Served::start(&args);
        assert_eq!(s.get("/api/v1/status").status, 401, "{args:?}");
        let ok = s.get_with(
            "/api/v1/status",
            &[("Authorization", "Bearer s3cret-from-file")],
        );
        assert_eq!(
            ok.status, 200,
            "{args:?}: the file's newline is not part of the token"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_is_required_by_header_query_or_cookie() {
    let s = Served::start(&["--demo", "--token", "letmein"]);
    // Probes hold no token; the health check reveals nothing.
    assert_eq!(s.get("/healthz").status, 200);
    for path in [
        "/api/v1/models",
        "/api/v1/status",
        "/api/v1/alerts",
        "/metrics",
        "/ws",
    ] {
        assert_eq!(s.get(path).status, 401, "{path} without a token");
        let wrong = s.get_with(path, &[("Authorization", "Bearer nope")]);
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        assert!(!wrong.body.contains("letmein"));
    }
    let ok = s.get_with("/api/v1/status", &[("Authorization", "Bearer letmein")]);
    assert_eq!(ok.status, 200);
    let q = s.get("/api/v1/status?token=letmein");
    assert_eq!(q.status, 200);
    let cookie = q.header("set-cookie").expect("the token becomes a cookie");
    let cookie = cookie.split(';').next().expect("name=value");
    assert_eq!(s.get_with("/metrics", &[("Cookie", cookie)]).status, 200);
    assert_eq!(s.get("/api/v1/status?token=letmeout").status, 401);
    runtime().block_on(async {
        let url = format!("ws://{}/ws", s.addr);
        assert!(tokio_tungstenite::connect_async(url.clone()).await.is_err());
        let mut req = url.into_client_request().expect("request");
        req.headers_mut()
            .insert("Authorization", "Bearer letmein".parse().expect("header"));
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("the token opens the socket");
        ws_next(&mut ws, |v| v["t"] == "o").await;
    });
}

#[test]
fn the_amqp_password_never_appears_in_any_response() {
    let s = Served::start(&["--amqp", "amqp://u:SECRET@127.0.0.1:1/%2f"]);
    let status = s.wait_json("/api/v1/status", "the broker to be down", |v| {
        v["broker"]["state"] == "down" || v["broker"]["error"].is_string()
    });
    assert!(!status.to_string().contains("SECRET"), "{status}");
    // broker_down's explanation quotes the broker's error, URL included.
    let alerts = s.wait_json("/api/v1/alerts", "broker_down", |v| {
        v["monitor"]
            .as_array()
            .is_some_and(|m| m.iter().any(|a| a["rule"] == "broker_down"))
    });
    assert!(!alerts.to_string().contains("SECRET"), "{alerts}");
    for path in [
        "/healthz",
        "/api/v1/models",
        "/api/v1/status",
        "/api/v1/alerts",
        "/metrics",
        "/api/v1/models/x?range=1h",
        "/nonexistent",
    ] {
        let r = s.get(path);
        assert!(!r.body.contains("SECRET"), "{path}: {}", r.body);
        assert!(
            r.headers.iter().all(|(_, v)| !v.contains("SECRET")),
            "{path}"
        );
    }
    runtime().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.addr))
            .await
            .expect("the WebSocket opens");
        for _ in 0..3 {
            let v = ws_next(&mut ws, |_| true).await;
            assert!(!v.to_string().contains("SECRET"), "{v}");
        }
    });
}

/// A token made by `openssl rand -base64` has `+`, `/` and `=`: pasted into the address
/// bar it opens the dashboard. The page's response sets a cookie a link from another site
/// (chat, webmail) still carries, and keeps its address out of Referers.
#[test]
fn a_base64_token_in_the_address_opens_the_dashboard() {
    let s = Served::start(&["--demo", "--token", "k+9/Zw=="]);
    let page = s.get("/?token=k+9/Zw==");
    assert_eq!(page.status, 200, "{}", page.body);
    let cookie = page
        .header("set-cookie")
        .expect("the token becomes a cookie");
    assert!(
        cookie.starts_with("modelmon_token=k+9/Zw==;") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    let cookie = cookie.split(';').next().expect("name=value");
    assert_eq!(
        s.get_with("/api/v1/status", &[("Cookie", cookie)]).status,
        200
    );
    // Percent-encoded, it is the same token; a `+` read as a space is not.
    assert_eq!(s.get("/api/v1/status?token=k%2B9%2FZw%3D%3D").status, 200);
    assert_eq!(s.get("/api/v1/status?token=k%209/Zw==").status, 401);
}
