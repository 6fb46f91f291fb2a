//! The configuration file, its defaults, and the overrides from the command line.
//!
//! Precedence: command line > environment > file > defaults. Unknown keys and bad
//! values are errors that name the key and the line, so a typo never passes silently.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::duration::parse_duration;
use crate::store::Buckets;
use crate::store::StoreConfig;

/// The broker the monitor uses when nothing else is said.
pub const DEFAULT_AMQP_URL: &str = "amqp://127.0.0.1:5672/%2f";

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub amqp: AmqpConfig,
    pub store: StoreSection,
    pub history: HistorySection,
    pub docker: DockerSection,
    /// `[[models]]`: explicit container-to-model mappings.
    pub models: Vec<ModelSection>,
    /// `[alerts]` and `[[alerts.rules]]`: see docs/alerts.md.
    pub alerts: crate::alert::AlertsSection,
    /// `[notify.desktop]` and `[[notify.webhooks]]`.
    pub notify: crate::alert::NotifySection,
    /// `[web]`: `--serve`.
    pub web: WebSection,
}

impl Config {
    /// The sections of `self` that differ from `running` and that only a restart
    /// applies (a reload takes the alerts, notifiers and container mapping).
    pub fn needs_restart_for(&self, running: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.amqp != running.amqp {
            out.push("[amqp]");
        }
        if self.store != running.store {
            out.push("[store]");
        }
        if self.history != running.history {
            out.push("[history]");
        }
        if self.web != running.web {
            out.push("[web]");
        }
        if self.docker.enabled != running.docker.enabled {
            out.push("[docker] enabled");
        }
        out
    }
}

/// `[web]`: the `--serve` server.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSection {
    /// A file holding the token clients must send (a mounted secret, a service
    /// credential): read at start, surrounding whitespace trimmed. Also `--token-file`.
    pub token_file: Option<PathBuf>,
    /// Upper bounds of the `/metrics` duration histograms (`["5ms", "1s", "2m"]`);
    /// empty: the defaults, 1ms to 5m.
    pub duration_buckets: Vec<Secs>,
}

/// `[docker]`: container resources per model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerSection {
    pub enabled: bool,
    /// The engine; `None`: `DOCKER_HOST`, else the default socket.
    pub host: Option<String>,
    /// Containers with this label are mapped to the model it names.
    pub label_key: String,
    /// How often each container's figures are taken.
    pub interval: Secs,
}

impl Default for DockerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            host: None,
            label_key: "modelmon.model".to_owned(),
            interval: Secs(Duration::from_secs(2)),
        }
    }
}

/// `[[models]]`: a model served by a container that has no label.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub name: String,
    /// Container name or id (a prefix of at least 12 hex digits is enough).
    pub container: String,
}

/// `[history]`: the 24-hour history's snapshot files.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// How often the history is saved (and always on a clean exit).
    pub snapshot_interval: Secs,
    /// Where; `None`: `$XDG_STATE_HOME/modelmon` (else `~/.local/state/modelmon`).
    pub snapshot_dir: Option<PathBuf>,
    /// MiB the route and instance rings may take; past it their oldest hours go first.
    pub key_history_mib: u32,
    /// Set by `--range`: every view carries the route and instance rings, not only
    /// the snapshots. Not a file key.
    #[serde(skip)]
    pub keys_in_views: bool,
}

impl Default for HistorySection {
    fn default() -> Self {
        Self {
            snapshot_interval: Secs(Duration::from_secs(30)),
            snapshot_dir: None,
            key_history_mib: 64,
            keys_in_views: false,
        }
    }
}

/// `[amqp]`: where events come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AmqpConfig {
    pub url: String,
    /// A durable named queue, so events published while the monitor is down wait for it.
    /// Empty: a server-named, exclusive, auto-delete queue.
    pub queue: String,
    /// Bound of the named queue (`x-max-length`); the oldest messages are dropped beyond it.
    pub queue_max_length: u64,
    /// A RabbitMQ stream to consume instead of a queue: an append-only log the monitor
    /// reads from the offset after its last snapshot, so a restart (even `kill -9`)
    /// neither loses nor repeats an event. Empty: no stream.
    pub stream: String,
    /// The stream's retention by age (`x-max-age`): how long a stopped monitor can
    /// stay stopped and still catch up.
    pub stream_max_age: Secs,
    /// The stream's retention by size on the broker's disk (`x-max-length-bytes`).
    pub stream_max_bytes: u64,
    /// Unacknowledged messages the broker may push before waiting for the monitor.
    pub prefetch: u16,
    /// Bind only these models (empty: all).
    pub models: Vec<String>,
    /// AMQP heartbeat asked of the broker (unless the URL sets `heartbeat`): a broker that
    /// stops answering is noticed within twice this.
    pub heartbeat: Secs,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        Self {
            url: DEFAULT_AMQP_URL.to_owned(),
            queue: String::new(),
            queue_max_length: 2_000_000,
            stream: String::new(),
            stream_max_age: Secs(Duration::from_secs(24 * 3600)),
            stream_max_bytes: 5_000_000_000,
            prefetch: 256,
            models: Vec::new(),
            heartbeat: Secs(Duration::from_secs(5)),
        }
    }
}

/// `[store]`: windows and cardinality caps.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub window: Secs,
    pub max_models: usize,
    pub max_routes: usize,
    pub max_instances: usize,
    pub max_versions: usize,
    pub max_measures: usize,
}

impl Default for StoreSection {
    fn default() -> Self {
        let d = StoreConfig::default();
        Self {
            window: Secs(Duration::from_secs(u64::from(d.window_s))),
            max_models: d.max_models,
            max_routes: d.max_routes,
            max_instances: d.max_instances,
            max_versions: d.max_versions,
            max_measures: d.max_measures,
        }
    }
}

/// A duration written with units: `250ms`, `60s`, `5m`, `1h`, `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub Duration);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s)
            .map(Secs)
            .map_err(serde::de::Error::custom)
    }
}

/// What went wrong with the configuration. `main` maps every variant to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The toml message carries the line, the column and the key.
    #[error("invalid config file {}:\n{message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("cannot read the token file {}: {source}", path.display())]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid value for `{key}`{}: {message}", origin(.path.as_deref()))]
    Invalid {
        key: &'static str,
        path: Option<PathBuf>,
        message: String,
    },
}

fn origin(path: Option<&Path>) -> String {
    path.as_ref()
        .map_or_else(String::new, |p| format!(" in {}", p.display()))
}

impl Config {
    /// Reads `path`, or the default location when `None`. A missing default file means defaults.
    pub fn load(path: Option<&Path>) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let (path, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match default_path() {
                Some(p) => (p, false),
                None => return Ok((Self::default(), None)),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Self::default(), None));
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let cfg = Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.clone(),
            message,
        })?;
        cfg.validate(Some(&path))?;
        Ok((cfg, Some(path)))
    }

    /// Parses TOML text; the error is toml's message, with line, column and key.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self, path: Option<&Path>) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            path: path.map(Path::to_path_buf),
            message: message.to_owned(),
        };
        let w = self.store.window.0;
        if w < Duration::from_secs(1) || w > Duration::from_secs(3600) || w.subsec_nanos() != 0 {
            return Err(invalid(
                "store.window",
                "must be whole seconds between 1s and 1h",
            ));
        }
        let st = &self.store;
        if [
            st.max_models,
            st.max_routes,
            st.max_instances,
            st.max_versions,
            st.max_measures,
        ]
        .iter()
        .any(|&cap| cap < 2)
        {
            return Err(invalid(
                "store.max_*",
                "caps must be at least 2 (one slot is `(other)`)",
            ));
        }
        let buckets = &self.web.duration_buckets;
        if buckets.len() > 40 || buckets.iter().any(|b| b.0.is_zero()) {
            return Err(invalid(
                "web.duration_buckets",
                "at most 40 bounds, each above zero",
            ));
        }
        if !self.amqp.url.starts_with("amqp://") && !self.amqp.url.starts_with("amqps://") {
            return Err(invalid("amqp.url", "must start with amqp:// or amqps://"));
        }
        if self.history.snapshot_interval.0 < Duration::from_millis(100) {
            return Err(invalid(
                "history.snapshot_interval",
                "must be at least 100ms",
            ));
        }
        if self.docker.interval.0 < Duration::from_secs(1) {
            return Err(invalid(
                "docker.interval",
                "must be at least 1s (Docker samples once a second)",
            ));
        }
        if self.docker.label_key.is_empty() {
            return Err(invalid("docker.label_key", "must not be empty"));
        }
        for m in &self.models {
            if !modelmon_contract::is_valid_model_name(&m.name) || m.container.is_empty() {
                return Err(invalid(
                    "models",
                    &format!(
                        "{:?} / {:?} is not a model and a container",
                        m.name, m.container
                    ),
                ));
            }
        }
        let hb = self.amqp.heartbeat.0;
        if hb < Duration::from_secs(1) || hb > Duration::from_secs(600) || hb.subsec_nanos() != 0 {
            return Err(invalid(
                "amqp.heartbeat",
                "must be whole seconds from 1s to 10m",
            ));
        }
        if self.amqp.prefetch == 0 {
            return Err(invalid("amqp.prefetch", "must be at least 1"));
        }
        // The broker takes 0 at its word: a queue that keeps nothing drops every event on
        // arrival, a stream of 0 bytes keeps none for a restart. Both look like a monitor
        // that receives nothing, so refuse them here.
        if self.amqp.queue_max_length == 0 {
            return Err(invalid(
                "amqp.queue_max_length",
                "must be at least 1 (a queue bounded at 0 drops every event)",
            ));
        }
        if self.amqp.stream_max_bytes == 0 {
            return Err(invalid(
                "amqp.stream_max_bytes",
                "must be at least 1 (a stream bounded at 0 bytes keeps no event)",
            ));
        }
        if !self.amqp.stream.is_empty() && !self.amqp.queue.is_empty() {
            return Err(invalid(
                "amqp.stream",
                "a monitor reads a stream or a queue, not both (unset amqp.queue / --queue)",
            ));
        }
        let age = self.amqp.stream_max_age.0;
        if age < Duration::from_secs(60) || age.subsec_nanos() != 0 {
            return Err(invalid(
                "amqp.stream_max_age",
                "must be whole seconds, at least 1m",
            ));
        }
        // Each name becomes the binding `events.<model>`, carried as is: a `.` only splits
        // words there, which the same model's routing key splits alike, so it matches that
        // key alone. `*` and `#` would bind other models' keys too.
        for m in &self.amqp.models {
            if !modelmon_contract::is_valid_model_name(m) {
                return Err(invalid(
                    "amqp.models",
                    &format!("{m:?} is not a model name"),
                ));
            }
            if m.contains(['*', '#']) {
                return Err(invalid(
                    "amqp.models",
                    &format!(
                        "{m:?}: `*` and `#` are wildcards in a routing key, so a binding \
                         cannot name this model alone (it would take in others too); \
                         an empty list watches every model"
                    ),
                ));
            }
        }
        if let Err(e) = crate::alert::RuleSet::new(&self.alerts) {
            return Err(invalid("alerts.rules", &e.to_string()));
        }
        if let Err((key, message)) = self.alerts.baseline.check() {
            return Err(invalid(key, &message));
        }
        if let Err((key, message)) = self.notify.check() {
            return Err(invalid(key, &message));
        }
        Ok(())
    }

    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            window_s: u32::try_from(self.store.window.0.as_secs()).unwrap_or(60),
            max_models: self.store.max_models,
            max_routes: self.store.max_routes,
            max_instances: self.store.max_instances,
            max_versions: self.store.max_versions,
            max_measures: self.store.max_measures,
            key_history_bytes: (self.history.key_history_mib as usize) << 20,
            keys_in_views: self.history.keys_in_views,
            only_models: self.amqp.models.clone(),
            buckets: if self.web.duration_buckets.is_empty() {
                Buckets::default()
            } else {
                let seconds: Vec<f64> = self
                    .web
                    .duration_buckets
                    .iter()
                    .map(|b| b.0.as_secs_f64())
                    .collect();
                Buckets::from_seconds(&seconds)
            },
            ..StoreConfig::default()
        }
    }
}

/// `$XDG_CONFIG_HOME/modelmon/config.toml`, else `~/.config/modelmon/config.toml`.
pub fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("modelmon").join("config.toml"))
}

/// A broker setting (one URL or a cluster's list) with its passwords replaced, fit to show.
pub use modelmon_publisher::Redacted;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let text = include_str!("../config.example.toml");
        let cfg = Config::parse(text).expect("config.example.toml parses");
        cfg.validate(None).expect("and is valid");
        assert_eq!(cfg, Config::default(), "the example documents the defaults");
    }

    #[test]
    fn metrics_buckets_come_from_the_config_sorted_or_are_refused_by_name() {
        let cfg = Config::parse("[web]\nduration_buckets = [\"2m\", \"100ms\", \"1s\"]\n")
            .expect("parses");
        cfg.validate(None).expect("valid");
        assert_eq!(cfg.store_config().buckets.seconds(), vec![0.1, 1.0, 120.0]);
        assert_eq!(
            Config::default().store_config().buckets.seconds().last(),
            Some(&300.0),
            "the defaults reach minutes"
        );
        let zero = Config::parse("[web]\nduration_buckets = [\"0s\"]\n").expect("parses");
        let err = zero.validate(None).expect_err("a zero bound").to_string();
        assert!(err.contains("web.duration_buckets"), "{err}");
    }

    #[test]
    fn unknown_keys_name_the_key_and_the_line() {
        let err = Config::parse("[amqp]\nurl = \"amqp://x\"\nqueu = \"q\"\n").expect_err("typo");
        assert!(err.contains("queu") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn retention_of_nothing_is_refused_by_name() {
        for key in ["queue_max_length", "stream_max_bytes", "prefetch"] {
            let cfg = Config::parse(&format!("[amqp]\n{key} = 0\n")).expect("parses");
            let err = cfg.validate(None).expect_err("0 is refused").to_string();
            assert!(err.contains(&format!("amqp.{key}")), "{err}");
        }
        let one =
            Config::parse("[amqp]\nqueue_max_length = 1\nstream_max_bytes = 1\n").expect("parses");
        one.validate(None).expect("the smallest bounds are allowed");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = Config::parse("[store]\nwindow = \"60x\"\n").expect_err("bad unit");
        assert!(
            err.contains("window") && err.contains("unknown unit"),
            "{err}"
        );
        let cfg = Config::parse("[store]\nwindow = \"2h\"\n").expect("parses");
        let err = cfg.validate(None).expect_err("too long").to_string();
        assert!(err.contains("store.window"), "{err}");
    }
}
