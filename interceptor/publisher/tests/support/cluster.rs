//! A private three-node RabbitMQ cluster, started and stopped by `scripts/cluster.sh`:
//! the tests drive the same script a user would, for failover under connected clients.
//!
//! The publisher's tests, the proxy's and the monitor's (`tests/support/mod.rs`) include
//! this one file.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Cluster {
    dir: PathBuf,
    /// The AMQP URL of each node, node 1 first.
    pub urls: Vec<String>,
}

/// The script, found from any crate of the workspace.
fn script() -> PathBuf {
    let mut dir = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    loop {
        let candidate = dir.join("scripts").join("cluster.sh");
        if candidate.exists() {
            return candidate;
        }
        assert!(dir.pop(), "scripts/cluster.sh not found above the crate");
    }
}

fn run(args: &[&str]) -> String {
    let out = Command::new(script())
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/cluster.sh runs");
    assert!(
        out.status.success(),
        "scripts/cluster.sh {args:?} failed ({})",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Cluster {
    /// Boots the three nodes and clusters them (half a minute or so here).
    pub fn start() -> Cluster {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("modelmon-cluster-{}-{nanos}", std::process::id()));
        let line = run(&["start", &dir.display().to_string()]);
        let urls: Vec<String> = line.split(',').map(str::to_owned).collect();
        assert_eq!(urls.len(), 3, "three node URLs: {line}");
        Cluster { dir, urls }
    }

    /// Every node, as one broker setting: `URL1,URL2,URL3`.
    pub fn setting(&self) -> String {
        self.urls.join(",")
    }

    /// The nodes in the order given (1-based), as one broker setting.
    pub fn setting_from(&self, order: [usize; 3]) -> String {
        order.map(|k| self.urls[k - 1].clone()).join(",")
    }

    /// Node `k`'s `host:port`, as the monitor and the proxy show the node in use.
    pub fn authority(&self, k: usize) -> String {
        let url = &self.urls[k - 1];
        let rest = url.split_once('@').map_or(url.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest).to_owned()
    }

    /// Stops node `k`'s whole VM; returns once its port refuses connections.
    pub fn stop_node(&self, k: usize) {
        run(&["stop-node", &self.dir.display().to_string(), &k.to_string()]);
    }

    /// Brings node `k` back; returns once it accepts connections again.
    pub fn start_node(&self, k: usize) {
        run(&[
            "start-node",
            &self.dir.display().to_string(),
            &k.to_string(),
        ]);
    }

    /// `rabbitmqctl` against node `k`.
    pub fn ctl(&self, k: usize, args: &[&str]) -> String {
        let dir = self.dir.display().to_string();
        let k = k.to_string();
        let mut all = vec!["ctl", dir.as_str(), k.as_str()];
        all.extend_from_slice(args);
        run(&all)
    }
}

impl Drop for Cluster {
    /// Runs when the test passes and when it panics, so no node outlives its test.
    fn drop(&mut self) {
        let _ = Command::new(script())
            .args(["stop", &self.dir.display().to_string()])
            .stdin(Stdio::null())
            .status();
    }
}
