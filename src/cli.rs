//! The command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::duration::parse_duration;
use crate::store::history::Range;

#[derive(Debug, Parser)]
// Command-line switches are booleans by nature.
#[allow(clippy::struct_excessive_bools)]
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

    /// Config file [default: $XDG_CONFIG_HOME/modelmon/config.toml]. Before or after a
    /// subcommand; `agent` reads its `[docker]`, `[[models]]` and `[amqp]` sections.
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,

    /// Broker URL, or a cluster's nodes comma-separated [default: amqp://127.0.0.1:5672/%2f].
    #[arg(
        long,
        value_name = "URL",
        env = "MODELMON_AMQP_URL",
        hide_env_values = true,
        global = true
    )]
    pub amqp: Option<String>,

    /// Watch only these models (comma-separated); binds only their routing keys.
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    pub models: Vec<String>,

    /// Consume from this durable named queue, so events wait while the monitor is down.
    #[arg(long, value_name = "NAME")]
    pub queue: Option<String>,

    /// Consume from this RabbitMQ stream, resuming after the last snapshot: restarts
    /// lose and repeat nothing (retention: `[amqp] stream_max_age`, `stream_max_bytes`).
    #[arg(long, value_name = "NAME", conflicts_with = "queue")]
    pub stream: Option<String>,

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

    /// Run without a display (no terminal needed), e.g. under a service manager.
    #[arg(long)]
    pub headless: bool,

    /// Most screen refreshes per second of the interactive display.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub fps: u32,

    /// When to use colour: auto honours NO_COLOR.
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = crate::tui::theme::ColorChoice::Auto)]
    pub color: crate::tui::theme::ColorChoice,

    /// Draw with ASCII only (automatic when the locale is not UTF-8).
    #[arg(long)]
    pub ascii: bool,

    /// Do not read container resources from Docker (same as `[docker] enabled = false`).
    #[arg(long)]
    pub no_docker: bool,

    /// Evaluate no alert rules and send no notifications (same as `[alerts] enabled = false`).
    #[arg(long)]
    pub no_alerts: bool,

    /// Where the 24-hour history is saved [default: $XDG_STATE_HOME/modelmon].
    #[arg(long, value_name = "DIR", global = true)]
    pub snapshot_dir: Option<PathBuf>,

    /// With --batch: add per model its figures over this much history (5m, 1h, 6h, 24h).
    #[arg(long, value_name = "RANGE", value_parser = Range::parse)]
    pub range: Option<Range>,

    /// Serve the live view over HTTP, WebSocket and /metrics (with the display or --headless).
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = crate::web::DEFAULT_ADDR)]
    pub serve: Option<std::net::SocketAddr>,

    /// With --serve: the token clients must send (`Authorization: Bearer`, or `?token=`);
    /// also MODELMON_TOKEN, which --token-file overrides.
    // MODELMON_TOKEN is read in `web_options`, not by clap: clap counts a value from the
    // environment as `--token` given, so a service setting both would exit 2 on a
    // conflict with a flag nobody passed.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// With --serve: read the token from this file (a mounted secret; `[web] token_file`).
    #[arg(long, value_name = "PATH", conflicts_with = "token")]
    pub token_file: Option<std::path::PathBuf>,

    /// With --serve: allow a non-loopback address without a token.
    #[arg(long)]
    pub insecure_public: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise the saved history per model, like `sar`: no broker needed.
    Report(ReportArgs),
    /// Check a config file as the monitor would read it (default: `--config`, else the
    /// usual location); exit 0 when it is valid, 2 naming the key at fault when not (and
    /// its line, for syntax and type errors).
    CheckConfig {
        /// The file to check (or `--config PATH`).
        path: Option<std::path::PathBuf>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) to stdout.
    Man,
    /// Headless: read this host's Docker engine and publish its containers and their
    /// resource samples to RabbitMQ, for monitors elsewhere (docs/docker.md).
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The host its messages name (routing key `resources.<NAME>`) [default: this
    /// machine's hostname].
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,

    /// Sampling and publishing interval, 1s to 60s [default: `[docker] interval`, 2s].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How much history: 5m, 1h, 6h, 24h (up to 24h), or FROM_MS..TO_MS.
    #[arg(long, value_name = "RANGE", value_parser = Range::parse, default_value = "24h")]
    pub range: Range,

    /// One JSON document for scripts instead of text.
    #[arg(long)]
    pub json: bool,

    /// Only this model.
    #[arg(long, value_name = "NAME")]
    pub model: Option<String>,
}

impl Cli {
    /// Whether this run draws the full-screen display: a terminal on stdout, and
    /// neither `--batch`, `--headless` nor a subcommand.
    pub fn interactive(&self) -> bool {
        use std::io::IsTerminal;
        self.command.is_none() && !self.batch && !self.headless && std::io::stdout().is_terminal()
    }

    /// How `--serve` runs, from the resolved `cfg` (`--token-file` is already laid over
    /// `[web]` there). The token file is read here, so a missing or empty one stops the
    /// monitor before it starts. Command line over environment over file: `--token` or
    /// `--token-file`, then MODELMON_TOKEN (empty counts as unset), then `[web] token_file`.
    pub fn web_options(&self, cfg: &Config) -> Result<crate::web::Options, ConfigError> {
        let from_env = || {
            std::env::var("MODELMON_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        };
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => Some(read_token(path)?),
            (None, None) => match (from_env(), &cfg.web.token_file) {
                (Some(t), _) => Some(t),
                (None, Some(path)) => Some(read_token(path)?),
                (None, None) => None,
            },
        };
        Ok(crate::web::Options {
            token,
            insecure_public: self.insecure_public,
            ..crate::web::Options::default()
        })
    }

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
        if let Some(s) = &self.stream {
            cfg.amqp.stream.clone_from(s);
        }
        if let Some(w) = self.window {
            cfg.store.window.0 = w;
        }
        if self.no_docker {
            cfg.docker.enabled = false;
        }
        if self.no_alerts {
            cfg.alerts.enabled = false;
        }
        match &self.snapshot_dir {
            Some(d) => cfg.history.snapshot_dir = Some(d.clone()),
            // A config file names the real monitor's directory: simulated traffic there
            // would mix into its history and alerts, or load them into the demo.
            None if self.demo => {
                cfg.history.snapshot_dir = cfg.history.snapshot_dir.take().map(|d| d.join("demo"));
            }
            None => {}
        }
        if let Some(f) = &self.token_file {
            cfg.web.token_file = Some(f.clone());
        }
        cfg.history.keys_in_views = self.range.is_some();
        cfg.validate(path.as_deref())
            .map_err(|e| self.blame_the_command_line(e))?;
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

impl Cli {
    /// The file `check-config` checks: its PATH, else `--config`, else `None` (the usual
    /// location). Two different files are refused: checking one while the user means the
    /// other would call a broken file valid.
    pub fn config_to_check<'a>(
        &'a self,
        path: Option<&'a Path>,
    ) -> Result<Option<&'a Path>, clap::Error> {
        match (path, self.config.as_deref()) {
            (Some(p), Some(c)) if !same_file(p, c) => {
                Err(<Self as clap::CommandFactory>::command().error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!(
                        "check-config was given two files, {} and --config {}: give one",
                        p.display(),
                        c.display()
                    ),
                ))
            }
            (p, c) => Ok(p.or(c)),
        }
    }

    /// The file was valid on its own (`Config::load` checked it): a value refused now
    /// came from the command line or the environment, and the message names that.
    fn blame_the_command_line(&self, e: ConfigError) -> ConfigError {
        let ConfigError::Invalid { key, path, message } = e else {
            return e;
        };
        let given = match key {
            "store.window" if self.window.is_some() => Some("--window"),
            "amqp.models" if !self.models.is_empty() => Some("--models"),
            "amqp.url" => self.amqp.as_deref().map(|url| {
                let from_env = std::env::var("MODELMON_AMQP_URL").is_ok_and(|v| v == url);
                if from_env {
                    "MODELMON_AMQP_URL"
                } else {
                    "--amqp"
                }
            }),
            _ => None,
        };
        match given {
            Some(flag) => ConfigError::Invalid {
                key: flag,
                path: None,
                message,
            },
            None => ConfigError::Invalid { key, path, message },
        }
    }
}

/// Whether `a` and `b` name one file, also when spelt differently (`./c.toml`, `c.toml`).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || std::fs::canonicalize(a).is_ok_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
}

/// A token kept in a file: its content without surrounding whitespace (files end with a
/// newline), never empty.
fn read_token(path: &std::path::Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ConfigError::TokenFile {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the file is empty"),
        });
    }
    Ok(token.to_owned())
}
