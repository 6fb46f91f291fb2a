//! Publisher settings and their defaults.

use std::time::Duration;

use modelmon_contract::SourceKind;

/// The broker a publisher talks to when nothing else is said.
pub const DEFAULT_AMQP_URL: &str = "amqp://127.0.0.1:5672/%2f";
/// Environment variable naming the broker, shared with `modelmon-tui`.
pub const AMQP_URL_ENV: &str = "MODELMON_AMQP_URL";

/// How a [`crate::Publisher`] behaves. Build one with [`Config::default`] or
/// [`Config::from_env`] and change the fields you care about.
#[derive(Debug, Clone)]
pub struct Config {
    /// One AMQP URL, or the comma-separated URLs of one cluster's nodes: the first that
    /// answers is used, and the next when it is lost.
    pub amqp_url: String,
    pub source_kind: SourceKind,
    /// Who publishes: `$HOSTNAME` (a container's name) or `<hostname>:<pid>`.
    pub instance: String,
    /// A batch is sent when it holds this many events (capped at the contract's 10 000).
    pub max_batch_events: usize,
    /// ... or when its oldest event is this old. The queue is looked at every fifth of
    /// this (1 to 50 ms) while events arrive, and less often, up to every 50 ms, while
    /// none do: after an idle spell the first event may wait that long.
    pub max_batch_delay: Duration,
    /// Events waiting for the broker; beyond this they are dropped and counted.
    pub buffer_events: usize,
    /// Delivery mode 2 (persistent) rather than 1 (transient).
    pub persistent: bool,
    /// AMQP `app_id`: the publisher and its version.
    pub app_id: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            amqp_url: DEFAULT_AMQP_URL.to_owned(),
            source_kind: SourceKind::Other,
            instance: default_instance(),
            max_batch_events: 1000,
            max_batch_delay: Duration::from_millis(250),
            buffer_events: 100_000,
            persistent: false,
            app_id: concat!("modelmon-publisher/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl Config {
    /// The defaults, with the broker URL taken from `MODELMON_AMQP_URL` when it is set.
    pub fn from_env() -> Self {
        let mut config = Config::default();
        if let Ok(url) = std::env::var(AMQP_URL_ENV)
            && !url.trim().is_empty()
        {
            url.trim().clone_into(&mut config.amqp_url);
        }
        config
    }
}

/// `$HOSTNAME` when set (Docker sets it to the container id), else `<hostname>:<pid>`.
pub(crate) fn default_instance() -> String {
    if let Ok(h) = std::env::var("HOSTNAME")
        && !h.trim().is_empty()
    {
        return h.trim().to_owned();
    }
    format!("{}:{}", hostname(), std::process::id())
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}
