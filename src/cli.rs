//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{Config, ConfigError, parse_duration};

#[derive(Debug, Parser)]
#[command(
    name = "modelmon-tui",
    version,
    about = "Watch machine-learning model APIs live: latency, errors and traffic per model",
    after_help = "Run `modelmon-tui --demo` to see it on simulated models, no broker needed."
)]
pub struct Cli {
    /// Simulated models with scripted incidents instead of a broker.
    #[arg(long)]
    pub demo: bool,

    /// Config file [default: $XDG_CONFIG_HOME/modelmon/config.toml].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Broker URL [default: amqp://127.0.0.1:5672/%2f].
    #[arg(
        long,
        value_name = "URL",
        env = "MODELMON_AMQP_URL",
        hide_env_values = true
    )]
    pub amqp: Option<String>,

    /// Watch only these models (comma-separated); binds only their routing keys.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub models: Vec<String>,

    /// Consume from this durable named queue, so events wait while the monitor is down.
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,

    /// Live window behind QPS, error rate and percentiles [default: 60s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub window: Option<Duration>,

    /// Print one JSON object per refresh instead of the interactive display (like `top -b`).
    #[arg(long)]
    pub batch: bool,

    /// Refresh interval for --batch and the plain table.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    pub interval: Duration,

    /// Stop after this many refreshes (with --batch).
    #[arg(long, value_name = "N")]
    pub iterations: Option<u64>,
}

impl Cli {
    /// The file config with this command line laid over it.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let (mut cfg, path) = Config::load(self.config.as_deref())?;
        if let Some(url) = &self.amqp {
            cfg.amqp.url.clone_from(url);
        }
        if !self.models.is_empty() {
            cfg.amqp.models.clone_from(&self.models);
        }
        if let Some(q) = &self.queue {
            cfg.amqp.queue.clone_from(q);
        }
        if let Some(w) = self.window {
            cfg.store.window.0 = w;
        }
        cfg.validate(path.as_deref())?;
        if self.interval < Duration::from_millis(50) {
            return Err(ConfigError::Invalid {
                key: "--interval",
                path: None,
                message: "must be at least 50ms".into(),
            });
        }
        Ok(cfg)
    }
}
