//! Webhooks through a real HTTP server on loopback: delivery, retries, hangs, https.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::fixtures::*;
use crate::support;
use crate::support::unique;
use modelmon::config::Config;
use std::time::Instant;

#[test]
fn webhooks_get_firing_then_resolved_once_each() {
    let json = Hook::start(Mode::Ok);
    let slack = Hook::start(Mode::Ok);
    let model = unique("alert-hook");
    let hooks = webhook("ops", &json.url, "") + &webhook("chat", &slack.url, "format = \"slack\"");
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    let first_bad = play(
        &model,
        Duration::from_secs(3),
        Duration::from_secs(8),
        (200, 300_000),
    );
    let line = mon.wait_for(
        "the alert firing in --batch",
        Duration::from_secs(15),
        |v| {
            support::model(v, &model).is_some_and(|m| {
                m["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["state"] == "firing"))
            })
        },
    );
    let a = &support::model(&line, &model).expect("model")["alerts"][0];
    assert_eq!(a["rule"], "slow");
    assert_eq!(a["threshold"], 100.0);
    assert!(a["value"].as_f64().is_some_and(|v| v > 100.0), "{a}");
    assert!(a["since"].as_i64().is_some_and(|s| s > 0), "{a}");
    json.wait("firing then resolved", Duration::from_secs(20), |b| {
        statuses(b) == ["firing", "resolved"]
    });
    slack.wait("both on the Slack hook", Duration::from_secs(5), |b| {
        b.len() == 2
    });
    // Nothing more arrives: one notification per transition.
    std::thread::sleep(Duration::from_secs(2));
    let got = json.bodies();
    assert_eq!(statuses(&got), ["firing", "resolved"]);
    let (firing, resolved) = (&got[0].body, &got[1].body);
    assert_eq!(firing["rule"], "slow");
    assert_eq!(firing["model"], model.as_str());
    assert_eq!(firing["threshold"], 100.0);
    assert!(firing["value"].as_f64().is_some_and(|v| v > 100.0));
    assert!(
        firing["started_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(firing["resolved_at"].is_null());
    assert!(resolved["resolved_at"].as_str().is_some());
    assert_eq!(resolved["started_at"], firing["started_at"]);
    let texts: Vec<String> = slack
        .bodies()
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        texts[0].contains("FIRING") && texts[0].contains(&model),
        "{texts:?}"
    );
    assert!(texts[1].contains("RESOLVED"), "{texts:?}");
    let resolved_line = mon.wait_for(
        "the resolved alert in --batch",
        Duration::from_secs(5),
        |v| support::model(v, &model).is_some_and(|m| m["alerts"][0]["state"] == "resolved"),
    );
    assert!(support::model(&resolved_line, &model).is_some());
    // The figure: first bad event to the firing POST (not asserted: tests never time).
    eprintln!(
        "figure: first bad event -> webhook POST = {:?} (rule for = 1s, --window 2s, refresh 200ms)",
        got[0].at.duration_since(first_bad)
    );
}

#[test]
fn failing_and_hanging_webhooks_are_retried_and_never_stall_the_monitor() {
    let ok = Hook::start(Mode::Ok);
    let flaky = Hook::start(Mode::FailFirst(2));
    let hang = Hook::start(Mode::Hang);
    let model = unique("alert-retry");
    let hooks = webhook("ok", &ok.url, "")
        + &webhook("flaky", &flaky.url, "")
        + &webhook("hang", &hang.url, "");
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    play(
        &model,
        Duration::from_secs(20),
        Duration::ZERO,
        (200, 300_000),
    );
    ok.wait("the healthy hook", Duration::from_secs(15), |b| {
        b.len() == 1
    });
    flaky.wait("two 500s then a success", Duration::from_secs(10), |b| {
        b.len() == 3
    });
    hang.wait(
        "three attempts (two retries)",
        Duration::from_secs(10),
        |b| b.len() == 3,
    );
    // The monitor keeps publishing fresh views while one endpoint hangs.
    let before = mon.wait_for("a line", Duration::from_secs(5), |_| true)["ts_ms"]
        .as_i64()
        .unwrap_or(0);
    for _ in 0..10 {
        let line = mon.wait_for("lines to keep coming", Duration::from_secs(5), |v| {
            v["ts_ms"].as_i64().unwrap_or(0) > before
        });
        assert!(support::model(&line, &model).is_some());
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        statuses(&flaky.bodies()),
        ["firing"; 3],
        "retries only, no duplicates after the success"
    );
    assert_eq!(hang.bodies().len(), 3, "retries stop after `retries`");
    assert_eq!(ok.bodies().len(), 1);
    assert!(
        mon.stderr().contains("not delivered after 3 attempt(s)"),
        "{}",
        mon.stderr()
    );
}

/// A certificate authority made for one test, and a server certificate for 127.0.0.1
/// that it signed.
struct TestCa {
    ca_pem: String,
    server: rustls::ServerConfig,
}

impl TestCa {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "modelmon test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA");
        let key = rcgen::KeyPair::generate().expect("server key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("server TLS config");
        Self {
            ca_pem: ca.pem(),
            server,
        }
    }
}

/// An HTTPS endpoint: TLS (tokio-rustls) on 127.0.0.1:0 in front of a plain [`Hook`],
/// so what gets through the handshake is recorded exactly as over http.
struct TlsHook {
    url: String,
    hook: Hook,
    /// Handshakes that failed, with rustls's reason.
    refused: Arc<Mutex<Vec<String>>>,
}

impl TlsHook {
    fn start(ca: &TestCa) -> Self {
        let hook = Hook::start(Mode::Ok);
        let plain = hook
            .url
            .trim_start_matches("http://")
            .trim_end_matches("/hook")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("https://{}/hook", listener.local_addr().expect("addr"));
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server.clone()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&refused);
        std::thread::spawn(move || {
            support::runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let (acceptor, plain, seen) =
                        (acceptor.clone(), plain.clone(), Arc::clone(&seen));
                    tokio::spawn(async move {
                        let mut tls = match acceptor.accept(tcp).await {
                            Ok(s) => s,
                            Err(e) => {
                                seen.lock().expect("lock").push(e.to_string());
                                return;
                            }
                        };
                        let Ok(mut back) = tokio::net::TcpStream::connect(plain).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                    });
                }
            });
        });
        Self { url, hook, refused }
    }
}

#[test]
fn https_urls_are_accepted_and_bad_ca_files_are_config_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, TestCa::new().ca_pem).expect("write");
    let hook = |url: &str, extra: &str| {
        Config::parse(&format!(
            "[[notify.webhooks]]\nname = \"x\"\nurl = \"{url}\"\n{extra}\n"
        ))
        .expect("parses")
        .validate(None)
        .map_err(|e| e.to_string())
    };
    let ca = |p: &std::path::Path| format!("ca_file = {:?}", p.display().to_string());
    hook("https://hooks.slack.example/services/T0/B0/x", "").expect("https is valid");
    hook("https://127.0.0.1:8443/hook", &ca(&good)).expect("a PEM CA is valid");
    let err = hook("ftp://127.0.0.1/hook", "").expect_err("not http");
    assert!(err.contains("notify.webhooks.url"), "{err}");
    for (path, why) in [
        (dir.path().join("missing.pem"), "missing"),
        (not_pem, "not PEM"),
    ] {
        let err = hook("https://127.0.0.1/hook", &ca(&path)).expect_err(why);
        assert!(err.contains("notify.webhooks.ca_file"), "{why}: {err}");
    }
}

#[test]
fn https_webhooks_deliver_to_a_server_trusted_through_ca_file() {
    let ca = TestCa::new();
    let tls = TlsHook::start(&ca);
    let certs = tempfile::tempdir().expect("tempdir");
    let ca_file = certs.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.ca_pem).expect("write the CA");
    let model = unique("alert-https");
    let hooks = webhook(
        "ops",
        &tls.url,
        &format!("ca_file = {:?}", ca_file.display().to_string()),
    );
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    play(
        &model,
        Duration::from_secs(20),
        Duration::ZERO,
        (200, 300_000),
    );
    tls.hook
        .wait("the firing over https", Duration::from_secs(20), |b| {
            statuses(b) == ["firing"]
        });
    let firing = &tls.hook.bodies()[0].body;
    assert_eq!(firing["rule"], "slow");
    assert_eq!(firing["model"], model.as_str());
    assert!(
        firing["value"].as_f64().is_some_and(|v| v > 100.0),
        "{firing}"
    );
    assert!(
        tls.refused.lock().expect("lock").is_empty(),
        "every handshake succeeded"
    );
    assert!(!mon.stderr().contains("TLS error"), "{}", mon.stderr());
}

#[test]
fn an_untrusted_https_webhook_is_a_tls_error_and_never_blocks_the_monitor() {
    // Signed by a CA nobody was told about: neither the system's roots nor a ca_file.
    let untrusted = TlsHook::start(&TestCa::new());
    let ok = Hook::start(Mode::Ok);
    let model = unique("alert-untrusted");
    let hooks = webhook("private", &untrusted.url, "") + &webhook("ok", &ok.url, "");
    let mon = Mon::watching(&alerts_config(&hooks, ""), &model, &[]);
    play(
        &model,
        Duration::from_secs(20),
        Duration::ZERO,
        (200, 300_000),
    );
    ok.wait("the http hook", Duration::from_secs(20), |b| {
        statuses(b) == ["firing"]
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !mon.stderr().contains("TLS error") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = mon.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("private") && l.contains("not delivered"))
        .unwrap_or_else(|| panic!("the TLS failure is logged:\n{log}"));
    assert!(
        line.contains("TLS error") && line.contains("UnknownIssuer"),
        "{line}"
    );
    // A certificate does not fix itself within the backoff: one attempt, not three.
    assert!(line.contains("after 1 attempt(s)"), "{line}");
    // The monitor keeps publishing fresh views.
    let before = mon.wait_for("a line", Duration::from_secs(5), |_| true)["ts_ms"]
        .as_i64()
        .unwrap_or(0);
    for _ in 0..5 {
        let line = mon.wait_for("lines to keep coming", Duration::from_secs(5), |v| {
            v["ts_ms"].as_i64().unwrap_or(0) > before
        });
        assert!(support::model(&line, &model).is_some());
    }
    assert!(
        untrusted.hook.bodies().is_empty(),
        "nothing is sent to a server whose certificate was refused"
    );
    assert!(
        !untrusted.refused.lock().expect("lock").is_empty(),
        "the monitor did try the endpoint"
    );
}
