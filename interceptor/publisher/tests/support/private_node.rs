//! A RabbitMQ node of the test's own, for what must not happen to the shared broker on
//! 127.0.0.1:5672 (other tests publish to it concurrently): resource alarms, outages.
//!
//! The node runs as the test's user, with its own ports, data, logs, config and Erlang
//! cookie in a temporary directory, so nothing it does reaches the shared node or its files.
//!
//! The publisher's tests and the monitor's (`tests/support/mod.rs`) include this one file.
#![allow(dead_code)]

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A cold node boots in about 5 s here; the margin is for a loaded CI machine.
const BOOT_PATIENCE: Duration = Duration::from_secs(60);
/// How long a clean `rabbitmqctl stop` may take before the node is killed.
const STOP_PATIENCE: Duration = Duration::from_secs(15);
/// `stop_app` returns once the listeners are closed; the margin is for a loaded machine.
const LISTENER_PATIENCE: Duration = Duration::from_secs(15);

/// Debian's `/usr/sbin/rabbitmq-*` wrappers re-run themselves as the `rabbitmq` user
/// through `su` when started as root, which resets `HOME` (so the cookie below would not
/// be used) and could not write to our private directory. The scripts they wrap take
/// every setting from the environment and run as whoever starts them.
fn tool(name: &str) -> PathBuf {
    let debian = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if debian.exists() {
        debian
    } else {
        PathBuf::from(name)
    }
}

/// A free TCP port on loopback; the listener is handed back so that a second call
/// cannot return the same port while the first is still unused.
fn free_port() -> (u16, TcpListener) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = l.local_addr().expect("local addr").port();
    (port, l)
}

pub struct PrivateNode {
    /// `name@localhost`, what `rabbitmqctl -n` takes.
    pub node: String,
    /// The AMQP URL of this node, guest/guest.
    pub url: String,
    /// Its AMQP port: the same for the node's whole life, across `stop_app`/`start_app`.
    pub port: u16,
    dir: PathBuf,
    env: Vec<(String, String)>,
    server: Child,
}

impl PrivateNode {
    /// Starts the node and returns once it accepts AMQP connections and has finished
    /// booting. Panics with the node's output if it does not come up.
    pub fn start() -> PrivateNode {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let tag = format!("{}-{nanos}", std::process::id());
        let node = format!("modelmon-private-{tag}@localhost");
        let dir = std::env::temp_dir().join(format!("modelmon-rabbit-{tag}"));
        fs::create_dir_all(&dir).expect("private node directory");

        // Erlang reads the cookie from $HOME, and refuses one that others can read. With
        // our own HOME the node and the CLI agree on it without touching the shared
        // node's cookie (/var/lib/rabbitmq) or root's (/root/.erlang.cookie).
        let cookie = dir.join(".erlang.cookie");
        fs::write(&cookie, format!("modelmon-test-{tag}")).expect("write cookie");
        fs::set_permissions(&cookie, fs::Permissions::from_mode(0o400)).expect("chmod cookie");
        // No plugins: what /etc/rabbitmq/enabled_plugins turns on for the shared node (the
        // management UI on 15672, say) would clash with it, and slows the boot.
        let plugins = dir.join("enabled_plugins");
        fs::write(&plugins, "[].\n").expect("write enabled_plugins");
        // Our own config files instead of /etc/rabbitmq's, which name the shared node's
        // listener and node name. The watermark is spelled out because clearing the alarm
        // sets it back to that value.
        let conf = dir.join("rabbitmq.conf");
        fs::write(&conf, "vm_memory_high_watermark.relative = 0.4\n").expect("write conf");
        let conf_env = dir.join("rabbitmq-env.conf");
        fs::write(&conf_env, "").expect("write env conf");

        let (amqp_port, l1) = free_port();
        let (dist_port, l2) = free_port();
        drop((l1, l2));
        let path = |p: &Path| p.display().to_string();
        let env: Vec<(String, String)> = [
            ("HOME", path(&dir)),
            ("RABBITMQ_NODENAME", node.clone()),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", amqp_port.to_string()),
            // The default (AMQP port + 20000) may not be a valid port, or may be taken.
            ("RABBITMQ_DIST_PORT", dist_port.to_string()),
            (
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
            // Only used if no epmd runs yet: then the one the node starts stays on loopback.
            ("ERL_EPMD_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_MNESIA_BASE", path(&dir.join("mnesia"))),
            ("RABBITMQ_LOG_BASE", path(&dir.join("log"))),
            ("RABBITMQ_PID_FILE", path(&dir.join("node.pid"))),
            ("RABBITMQ_ENABLED_PLUGINS_FILE", path(&plugins)),
            ("RABBITMQ_CONFIG_FILE", path(&conf)),
            ("RABBITMQ_CONF_ENV_FILE", path(&conf_env)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();

        let out = fs::File::create(dir.join("server.out")).expect("server.out");
        let err = out.try_clone().expect("server.out");
        // Its own process group, so that the script, the Erlang VM and its helpers can be
        // killed together if the node does not stop when asked.
        let server = Command::new(tool("rabbitmq-server"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server starts (installed by scripts/services.sh)");
        let mut me = PrivateNode {
            url: format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f"),
            port: amqp_port,
            node,
            dir,
            env,
            server,
        };
        me.wait_until_booted();
        me
    }

    fn listening(&self) -> bool {
        TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    fn wait_until_booted(&mut self) {
        let end = Instant::now() + BOOT_PATIENCE;
        loop {
            if let Ok(Some(status)) = self.server.try_wait() {
                panic!(
                    "the private RabbitMQ node exited ({status}) while booting:\n{}",
                    self.output()
                );
            }
            // The AMQP listener opens in one of the last boot steps.
            if self.listening() {
                break;
            }
            assert!(
                Instant::now() < end,
                "the private RabbitMQ node did not listen within {BOOT_PATIENCE:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let timeout = BOOT_PATIENCE.as_secs().to_string();
        let out = self.ctl(&["await_startup", "--timeout", &timeout]);
        assert!(
            out.status.success(),
            "rabbitmqctl await_startup failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.output()
        );
    }

    /// `rabbitmqctl -n <node> args…`, with the node's cookie.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(tool("rabbitmqctl"))
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .args(["-q", "-n", &self.node])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("rabbitmqctl runs")
    }

    fn ctl_ok(&self, args: &[&str]) {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "rabbitmqctl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Raises (or clears) the memory alarm: a watermark of 0 is always exceeded, and
    /// the node then blocks every connection that publishes.
    pub fn memory_alarm(&self, on: bool) {
        self.ctl_ok(&["set_vm_memory_high_watermark", if on { "0" } else { "0.4" }]);
    }

    /// An outage, as clients see one: RabbitMQ itself stops inside the node, closing every
    /// client connection (clients read `CONNECTION_FORCED`, or a reset when the socket
    /// goes first) and its AMQP listener, so reconnects are refused until
    /// [`PrivateNode::start_app`]. The Erlang VM keeps running, which keeps
    /// the node's name, ports and data, and lets `rabbitmqctl` reach it meanwhile.
    pub fn stop_app(&self) {
        self.ctl_ok(&["stop_app"]);
        let end = Instant::now() + LISTENER_PATIENCE;
        while self.listening() {
            assert!(
                Instant::now() < end,
                "port {} still accepts connections after stop_app:\n{}",
                self.port,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ends the outage: the same node comes back on the same port and URL, with the
    /// durable exchange it had; returns once it accepts AMQP connections again.
    pub fn start_app(&mut self) {
        self.ctl_ok(&["start_app"]);
        self.wait_until_booted();
    }

    /// One line per client connection: its `name` (the client's address and port, so a
    /// reconnect shows as a new name), a tab, and its client properties, which hold the
    /// name the client gave it (RabbitMQ 3.10 has no `user_provided_name` column).
    pub fn connections(&self) -> Vec<String> {
        let out = self.ctl(&[
            "list_connections",
            "--no-table-headers",
            "name",
            "client_properties",
        ]);
        assert!(
            out.status.success(),
            "rabbitmqctl list_connections failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// A frozen broker, as a paused VM or a hung node looks to clients: the node's whole
    /// process group stops (SIGSTOP). The kernel still accepts TCP connections on its
    /// port and nothing answers them; connections already open stay open and silent.
    pub fn freeze(&self) {
        self.signal_group("STOP");
    }

    /// Ends [`PrivateNode::freeze`]: the node carries on where it stopped.
    pub fn thaw(&self) {
        self.signal_group("CONT");
    }

    fn signal_group(&self, signal: &str) {
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -{signal} -{}", self.server.id())])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot send SIG{signal} to the node's process group");
    }

    /// The node's console output and log, for failure messages.
    pub fn output(&self) -> String {
        let console = fs::read_to_string(self.dir.join("server.out")).unwrap_or_default();
        let log = fs::read_to_string(self.dir.join("log").join(format!("{}.log", self.node)))
            .unwrap_or_default();
        let tail = |s: &str| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!("--- console\n{}\n--- log\n{}", tail(&console), tail(&log))
    }
}

impl Drop for PrivateNode {
    /// Runs when the test passes and when it panics, so no node outlives its test.
    fn drop(&mut self) {
        // A node frozen by a failed test would not answer `stop`.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -CONT -{}", self.server.id())])
            .status();
        let stopped = self.ctl(&["stop"]).status.success();
        let end = Instant::now()
            + if stopped {
                STOP_PATIENCE
            } else {
                Duration::ZERO
            };
        while matches!(self.server.try_wait(), Ok(None)) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.server.try_wait(), Ok(None)) {
            // Killing only the script's pid would leave the Erlang VM running: kill the
            // group it leads, which holds the VM and its helpers. The shell's own `kill`
            // takes a group, and unlike /bin/kill (procps) it is always there.
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -KILL -{}", self.server.id())])
                .status();
            let _ = self.server.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
