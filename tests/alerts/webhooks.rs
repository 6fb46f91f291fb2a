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
    require!(Rabbitmq);
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
    // The value as the terminal shows it, in the metric's unit.
    let shown = a["value"].as_f64().map(modelmon::alert::show_ms);
    assert_eq!(a["value_text"].as_str(), shown.as_deref(), "{a}");
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
    for (r, status) in got.iter().zip(["firing", "resolved"]) {
        let g = &r.body;
        assert_eq!(g["version"], 2, "{g}");
        assert_eq!(g["alerts"].as_array().map(Vec::len), Some(1), "{g}");
        assert_eq!(g[status], 1, "{g}");
    }
    let (firing, resolved) = (&got[0].body["alerts"][0], &got[1].body["alerts"][0]);
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["reminder"], false);
    assert_eq!(firing["rule"], "slow");
    assert_eq!(firing["model"], model.as_str());
    assert_eq!(firing["threshold"], 100.0);
    assert!(firing["value"].as_f64().is_some_and(|v| v > 100.0));
    assert!(firing["normal"].is_null(), "an absolute rule has no normal");
    let why = firing["explanation"].as_str().unwrap_or("");
    assert!(
        why.starts_with("p95 ") && why.contains("above its limit 100 ms"),
        "{firing}"
    );
    assert!(
        firing["started_at"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(firing["resolved_at"].is_null());
    assert!(firing["link"].is_null(), "no [notify] link, no link");
    assert_eq!(resolved["status"], "resolved");
    assert!(resolved["resolved_at"].as_str().is_some());
    assert_eq!(resolved["started_at"], firing["started_at"]);
    assert!(
        resolved["explanation"]
            .as_str()
            .is_some_and(|w| !w.is_empty()),
        "{resolved}"
    );
    let texts: Vec<String> = slack
        .bodies()
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        texts[0].starts_with(&format!("[FIRING] warning slow on {model}: p95 "))
            && texts[0].ends_with(why),
        "the line ends with the explanation: {texts:?}"
    );
    assert!(texts[1].starts_with("[RESOLVED]"), "{texts:?}");
    assert_eq!(texts[1].lines().count(), 1, "{texts:?}");
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
fn alerts_of_one_evaluation_arrive_in_one_post_linking_to_each_model() {
    require!(Rabbitmq);
    let hook = Hook::start(Mode::Ok);
    // Takes whatever is posted to it, at any path: here, what Alertmanager would get.
    let am = Hook::start(Mode::Ok);
    // A name the dashboard's route can only take percent-encoded.
    let plain = unique("alert-group");
    let odd = format!("{} /v2+ü", unique("alert-group"));
    let hooks = "[notify]\nlink = \"http://monitor.example:9464/\"\n".to_owned()
        + &webhook("ops", &hook.url, "")
        + &webhook("am", &am.url, "format = \"alertmanager\"");
    // `for = 0s` fires on the first evaluation that sees the slow events.
    let cfg = alerts_config(&hooks, "").replace("for = \"1s\"", "for = \"0s\"");
    let mon = Mon::watching(&cfg, &format!("{plain},{odd}"), &[]);
    play_together(
        &mon,
        &[&plain, &odd],
        Duration::from_secs(4),
        Duration::ZERO,
    );
    hook.wait("the firing", Duration::from_secs(15), |b| !b.is_empty());
    // Whatever else arrives (the resolves, later) must not be a second firing.
    std::thread::sleep(Duration::from_secs(1));
    let got = hook.bodies();
    let firing: Vec<&serde_json::Value> = got
        .iter()
        .filter(|r| r.body["firing"].as_u64() > Some(0))
        .map(|r| &r.body)
        .collect();
    assert_eq!(firing.len(), 1, "one POST for one evaluation: {firing:?}");
    let group = firing[0];
    assert_eq!(group["version"], 2);
    assert_eq!(group["status"], "firing");
    assert_eq!(group["firing"], 2, "{group}");
    assert_eq!(group["resolved"], 0, "{group}");
    let alerts = group["alerts"].as_array().cloned().unwrap_or_default();
    let mut models: Vec<&str> = alerts.iter().filter_map(|a| a["model"].as_str()).collect();
    models.sort_unstable();
    let mut want = vec![plain.as_str(), odd.as_str()];
    want.sort_unstable();
    assert_eq!(models, want);
    let link = |m: &str| {
        alerts
            .iter()
            .find(|a| a["model"] == m)
            .and_then(|a| a["link"].as_str())
            .map(str::to_owned)
    };
    let encoded = odd.replace(" /v2+ü", "%20%2Fv2%2B%C3%BC");
    assert_eq!(
        link(&odd).as_deref(),
        Some(format!("http://monitor.example:9464/#/model/{encoded}").as_str())
    );
    assert_eq!(
        link(&plain).as_deref(),
        Some(format!("http://monitor.example:9464/#/model/{plain}").as_str())
    );
    for a in &alerts {
        assert_eq!(a["status"], "firing");
        assert!(
            a["explanation"]
                .as_str()
                .is_some_and(|w| w.contains("above its limit 100 ms")),
            "{a}"
        );
    }
    // Alertmanager gets the same two alerts in one post too.
    let posts = am.bodies();
    let first = &posts.first().expect("a post to Alertmanager").body;
    let mut labelled: Vec<&str> = first
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["labels"]["model"].as_str())
                .collect()
        })
        .unwrap_or_default();
    labelled.sort_unstable();
    assert_eq!(labelled, want, "{first}");
    assert!(!mon.stderr().contains("not delivered"), "{}", mon.stderr());
}

#[test]
fn failing_and_hanging_webhooks_are_retried_and_never_stall_the_monitor() {
    require!(Rabbitmq);
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
    require!(Rabbitmq);
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
    let firing = &tls.hook.bodies()[0].body["alerts"][0];
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
    require!(Rabbitmq);
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

#[test]
fn what_queues_behind_a_hanging_receiver_goes_out_together_in_the_next_post() {
    require!(Rabbitmq);
    // The receiver hangs on its first three requests: the first notification's attempt
    // and both retries. Alerts that fire meanwhile must not each wait their turn behind
    // it: they go out together in the next POST.
    let hook = Hook::start(Mode::HangFirst(3));
    let models: Vec<String> = (0..4).map(|_| unique("alert-queue")).collect();
    // Each hung attempt takes its 2-s timeout: the hang lasts about 6 s, time enough for
    // the other alerts to fire behind it however loaded the machine is.
    let cfg = alerts_config(&webhook_timing_out("ops", &hook.url, "2s", ""), "");
    let mon = Mon::start(
        &cfg,
        &["--window", "2s", "--models", &models.join(",")],
        &[],
    );
    mon.wait_for("the broker", Duration::from_secs(20), |v| {
        v["broker"]["state"] == "connected"
    });
    // The first model's alert starts the hang; only then do the others go slow, so
    // their alerts surely queue behind it rather than share its first notification.
    play(
        &models[0],
        Duration::from_secs(20),
        Duration::ZERO,
        (200, 300_000),
    );
    hook.wait("the first, hung attempt", Duration::from_secs(30), |b| {
        !b.is_empty()
    });
    for m in &models[1..] {
        play(m, Duration::from_secs(20), Duration::ZERO, (200, 300_000));
    }
    let firing = |b: &[Received]| -> Vec<String> {
        alerts(b)
            .filter(|a| a["status"] == "firing")
            .map(|a| a["model"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    hook.wait("the alerts that queued", Duration::from_secs(30), |b| {
        b.len() > 3
    });
    std::thread::sleep(Duration::from_secs(2));
    let b = hook.bodies();
    assert_eq!(
        b.len(),
        4,
        "three hung attempts of the first notification, then one POST: {:?}",
        b.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let mut all = firing(&b);
    all.sort();
    all.dedup();
    let mut want = models.clone();
    want.sort();
    assert_eq!(all, want, "every model's alert was in one of them");
    let queued = firing(&b[3..]);
    assert!(
        models[1..].iter().all(|m| queued.contains(m)),
        "the POST after the hang carries all that queued: {}",
        b[3].body
    );
}
