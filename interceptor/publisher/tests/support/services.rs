//! The real services some tests talk to, and the gate in front of those tests.
//!
//! A plain `cargo test` on a fresh clone runs every test that needs nothing, and each test
//! that needs a service this machine lacks returns early with one line on stderr naming
//! the service and how to start it, rather than panicking deep inside a connect. With
//! `MODELMON_TEST_SERVICES=1` (`./scripts/test.sh`, so CI) that line is a failure instead:
//! a machine that should have everything must not pass on skips.
//!
//! Start a test that needs services with `require!(Rabbitmq);` or `require!(Rabbitmq,
//! Docker);`. Each service is probed at most once per test binary, so the gate is free.
//!
//! The publisher's tests, the proxy's and the monitor's (`tests/support/mod.rs`) include
//! this one file, each as `support::services` under `#[macro_use]`: `require!` is found
//! there.
#![allow(dead_code)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The shared broker the tests publish to and consume from (guest/guest, default vhost).
pub const AMQP_URL: &str = "amqp://127.0.0.1:5672/%2f";

/// Where `scripts/services.sh modelapi` builds the model API's venv unless
/// `MODELMON_VENV` says otherwise.
pub const DEFAULT_VENV: &str = "/var/cache/modelmon/iris-venv";

/// Set to `1` to make a missing service fail the test instead of skipping it.
pub const STRICT_VAR: &str = "MODELMON_TEST_SERVICES";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The shared RabbitMQ at [`AMQP_URL`].
    Rabbitmq,
    /// RabbitMQ's own scripts, for the private nodes and clusters the tests start from the
    /// installation (`private_node.rs`, `scripts/cluster.sh`) and for `rabbitmqctl`.
    RabbitmqServer,
    /// A Docker engine the CLI reaches, for containers of the tests' own.
    Docker,
    /// The venv that runs the iris model API in a container (`tests/support/model_api.rs`).
    ModelApi,
    /// A session bus and a notification daemon on a virtual display.
    Desktop,
    /// tmux, the terminal the end-to-end TUI tests drive.
    Tmux,
    /// Prometheus Alertmanager, started by the test on a loopback port.
    Alertmanager,
    /// Prometheus, started by the test on a loopback port to scrape the monitor.
    Prometheus,
}

impl Service {
    /// How many there are: the last one's index, plus one.
    const COUNT: usize = Service::Prometheus as usize + 1;

    /// What the skip line says is missing.
    fn what(self) -> String {
        match self {
            Service::Rabbitmq => format!("RabbitMQ on {}", broker_authority(AMQP_URL)),
            Service::RabbitmqServer => "rabbitmq-server and rabbitmqctl installed".into(),
            Service::Docker => "a Docker engine answering `docker version`".into(),
            Service::ModelApi => format!("the model API venv at {}", model_api_venv().display()),
            Service::Desktop => "dbus-daemon, Xvfb, dunst and dunstctl".into(),
            Service::Tmux => "tmux".into(),
            Service::Alertmanager => "prometheus-alertmanager".into(),
            Service::Prometheus => "prometheus".into(),
        }
    }

    /// The command that installs or starts it.
    fn how(self) -> &'static str {
        match self {
            Service::Rabbitmq | Service::RabbitmqServer => "./scripts/services.sh rabbitmq",
            Service::Docker => "./scripts/services.sh docker",
            Service::ModelApi => "./scripts/services.sh modelapi",
            Service::Desktop => "./scripts/services.sh notify",
            Service::Tmux => "./scripts/services.sh tools",
            Service::Alertmanager => "./scripts/services.sh alertmanager",
            Service::Prometheus => "./scripts/services.sh prometheus",
        }
    }

    /// Asks the machine. Each probe checks what the tests themselves go on to use, and
    /// is quick: a connect with a short timeout, a file lookup, one short command.
    fn probe(self) -> bool {
        match self {
            Service::Rabbitmq => broker_answers(AMQP_URL),
            // Where private_node.rs and scripts/cluster.sh look for them.
            Service::RabbitmqServer => ["rabbitmq-server", "rabbitmqctl"]
                .iter()
                .all(|t| executable(&Path::new("/usr/lib/rabbitmq/bin").join(t)) || on_path(t)),
            // The check scripts/services.sh waits on: the CLI runs and the engine answers.
            Service::Docker => succeeds(Command::new("docker").args([
                "version",
                "--format",
                "{{.Server.Version}}",
            ])),
            // What ModelApi::start asks of it first.
            Service::ModelApi => {
                succeeds(Command::new(model_api_venv().join("bin/python")).args(["-c", ""]))
            }
            Service::Desktop => ["dbus-daemon", "Xvfb", "dunst", "dunstctl"]
                .iter()
                .all(|t| on_path(t)),
            Service::Tmux => on_path("tmux"),
            Service::Alertmanager => on_path("prometheus-alertmanager"),
            Service::Prometheus => on_path("prometheus"),
        }
    }

    /// The probe's answer, asked once per test binary.
    fn answers(self) -> bool {
        static SEEN: [OnceLock<bool>; Service::COUNT] = [const { OnceLock::new() }; Service::COUNT];
        *SEEN[self as usize].get_or_init(|| self.probe())
    }
}

/// The model API's venv: `MODELMON_VENV`, or where `scripts/services.sh` builds it.
pub fn model_api_venv() -> PathBuf {
    std::env::var_os("MODELMON_VENV").map_or_else(|| PathBuf::from(DEFAULT_VENV), PathBuf::from)
}

/// Whether every service in `needs` is there. When one is not, says so in one line on
/// stderr naming the test and what is missing, with how to start it, and returns false
/// (the test then returns); with `MODELMON_TEST_SERVICES=1` it panics with that line.
///
/// `test` is the path of a function inside the test, as `require!` passes it.
pub fn available(test: &str, needs: &[Service]) -> bool {
    let missing: Vec<Service> = needs.iter().copied().filter(|s| !s.answers()).collect();
    if missing.is_empty() {
        return true;
    }
    let needs: Vec<String> = missing
        .iter()
        .map(|s| format!("{} ({}", s.what(), s.how()))
        .collect();
    let line = format!(
        "skipped {}: needs {}; {STRICT_VAR}=1 makes this a failure)",
        test_name(test),
        needs.join("), ")
    );
    assert!(std::env::var(STRICT_VAR).as_deref() != Ok("1"), "{line}");
    // Straight to stderr: the test harness captures `eprintln!` of a passing test, and
    // a skip must be seen.
    let _ = writeln!(std::io::stderr(), "{line}");
    false
}

/// Returns from the test it starts unless every named [`Service`] is there; see
/// [`available`].
macro_rules! require {
    ($($service:ident),+ $(,)?) => {{
        // A function's type name is its path, which names the test this one sits in.
        fn here() {}
        if !$crate::support::services::available(
            ::std::any::type_name_of_val(&here),
            &[$($crate::support::services::Service::$service),+],
        ) {
            return;
        }
    }};
}

/// `main::alerts::desktop::some_test::{{closure}}::here` -> `alerts::desktop::some_test`,
/// the name `cargo test` lists (async tests add the closure segments).
fn test_name(path: &str) -> String {
    let mut parts: Vec<&str> = path.split("::").filter(|p| *p != "{{closure}}").collect();
    if parts.last() == Some(&"here") {
        parts.pop();
    }
    // The first segment is the test binary's crate.
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.join("::")
}

/// `host:port` of an AMQP URL, the port defaulting to AMQP's.
fn broker_authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or(rest);
    if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5672")
    }
}

/// Whether something accepts TCP connections where the URL points. A refused or
/// unreachable port fails at once; the timeout only bounds a silently dropped SYN.
fn broker_answers(url: &str) -> bool {
    let addrs: Vec<SocketAddr> = broker_authority(url)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    addrs
        .iter()
        .any(|a| TcpStream::connect_timeout(a, Duration::from_secs(1)).is_ok())
}

fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| executable(&dir.join(name))))
}

fn executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
