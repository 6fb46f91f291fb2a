//! The command line, and the validated settings the proxy runs with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hyper::Uri;
use modelmon_contract::{MAX_TEXT_CHARS, SourceKind, is_valid_model_name};
use modelmon_publisher::Config as PublisherConfig;

use crate::ConfigError;
use crate::openai::{Mode, Shared};
use crate::route::{Interner, RoutePattern, Router};

/// Paths that are proxied but never recorded unless `--no-default-excludes`: the same
/// as the Python middleware's.
pub use modelmon_contract::DEFAULT_EXCLUDES;
/// Distinct model names taken from paths; more would be a cardinality leak.
const MAX_MODELS_FROM_PATH: usize = 256;

/// Reverse proxy in front of a model API: forwards every request untouched and
/// publishes one modelmon event per request to RabbitMQ.
#[derive(Debug, Clone, Parser)]
#[command(name = "modelmon-proxy", version)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// The model API, e.g. http://127.0.0.1:8000 (http only; a path is used as a prefix).
    #[arg(long)]
    pub upstream: String,
    /// Model name recorded for every request (the fallback with --model-from-path).
    #[arg(long)]
    pub model: Option<String>,
    /// Model version recorded with every event.
    #[arg(long)]
    pub model_version: Option<String>,
    /// Route template such as '/v1/models/{name}/predict'; repeatable. Paths matching
    /// none are collapsed (ids become {id}).
    #[arg(long = "route", value_name = "PATTERN")]
    pub routes: Vec<String>,
    /// Take the model name from the {model} segment of this pattern, e.g. '/v2/models/{model}/infer'.
    #[arg(long, value_name = "PATTERN")]
    pub model_from_path: Option<String>,
    /// Path proxied but not recorded, or `/prefix/*` for everything below it; repeatable,
    /// added to /health /healthz /livez /metrics /ready /readyz.
    #[arg(long = "exclude", value_name = "PATH")]
    pub excludes: Vec<String>,
    /// Record /health, /healthz, /livez, /metrics, /ready and /readyz too.
    #[arg(long)]
    pub no_default_excludes: bool,
    /// Most distinct collapsed routes; the rest are recorded as "(other)".
    #[arg(long, default_value_t = 200)]
    pub max_routes: usize,
    /// RabbitMQ URL.
    #[arg(
        long = "amqp",
        env = "MODELMON_AMQP_URL",
        default_value = "amqp://127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Instance recorded in events and batches (default: $HOSTNAME or host:pid). A proxy
    /// in a container of its own should name the model's container here: the monitor
    /// maps the container named by the instance to the model.
    #[arg(long)]
    pub instance: Option<String>,
    /// Seconds to wait for the upstream's response headers before answering 504.
    #[arg(long, default_value_t = 300)]
    pub upstream_timeout: u64,
    /// Seconds an unused upstream connection is kept for the next request; keep it below
    /// the upstream's own keep-alive timeout (uvicorn 5, gunicorn 2). 0: a new connection
    /// per request.
    #[arg(long, default_value_t = 4, value_name = "SECS")]
    pub upstream_idle: u64,
    /// Publish batches as persistent messages.
    #[arg(long)]
    pub persistent: bool,
    /// Threads serving requests (default: one per core). 1 runs everything on one
    /// thread, which saves cross-thread wake-ups when cores are scarce.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Read requests and answers as OpenAI-compatible (model from the body, tokens, time
    /// to first token, gaps between tokens): `auto` for POSTs to paths ending in
    /// /chat/completions, /completions or /embeddings, `on` for every POST, `off` never.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub openai: Mode,
}

/// Where requests are forwarded.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: hyper::http::uri::Scheme,
    pub authority: hyper::http::uri::Authority,
    /// Prepended to every request path; empty or starting with '/', never ending with it.
    pub prefix: String,
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Upstream, ConfigError> {
        let bad = |why: &str| ConfigError::BadUpstream {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| bad("no scheme (http://...)"))?;
        if scheme != hyper::http::uri::Scheme::HTTP {
            return Err(bad("only http:// upstreams are supported"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if uri.query().is_some() {
            return Err(bad("a query string makes no sense here"));
        }
        Ok(Upstream {
            scheme,
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// Everything the request handler needs, validated.
#[derive(Debug)]
pub struct ProxyConfig {
    pub upstream: Upstream,
    pub model: &'static str,
    pub model_version: Option<&'static str>,
    pub instance: &'static str,
    pub router: Router,
    pub model_from_path: Option<RoutePattern>,
    pub models: Interner,
    pub upstream_timeout: Duration,
    /// How long an unused upstream connection is kept; zero keeps none.
    pub upstream_idle: Duration,
    /// The OpenAI-compatible reading: its mode, failure counts and request models.
    pub openai: Arc<Shared>,
}

/// Validated settings for the proxy and its publisher.
#[derive(Debug)]
pub struct Setup {
    pub listen: SocketAddr,
    /// `None`: one per core.
    pub threads: Option<usize>,
    pub proxy: ProxyConfig,
    pub publisher: PublisherConfig,
}

/// Settings live as long as the process; events borrow them instead of copying.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

impl Args {
    pub fn into_setup(self) -> Result<Setup, ConfigError> {
        let upstream = Upstream::parse(&self.upstream)?;
        let model_from_path = self
            .model_from_path
            .as_deref()
            .map(|p| {
                let pattern = RoutePattern::parse(p)?;
                if pattern.has_param("model") {
                    Ok(pattern)
                } else {
                    Err(ConfigError::NoModelParam(p.to_owned()))
                }
            })
            .transpose()?;
        let model = match (self.model, &model_from_path) {
            (Some(m), _) if is_valid_model_name(&m) => m,
            (Some(m), _) => return Err(ConfigError::BadModel(m)),
            (None, Some(_)) => "unknown".to_owned(),
            (None, None) => return Err(ConfigError::MissingModel),
        };
        let mut publisher = PublisherConfig {
            amqp_url: self.amqp_url,
            source_kind: SourceKind::Proxy,
            app_id: concat!("modelmon-proxy/", env!("CARGO_PKG_VERSION")).to_owned(),
            persistent: self.persistent,
            ..PublisherConfig::default()
        };
        if let Some(i) = self.instance {
            let clean = !i.is_empty()
                && i.chars().count() <= MAX_TEXT_CHARS
                && !i.chars().any(char::is_control);
            if !clean {
                return Err(ConfigError::BadInstance(i));
            }
            publisher.instance = i;
        }
        let mut patterns = self
            .routes
            .iter()
            .map(|r| RoutePattern::parse(r))
            .collect::<Result<Vec<_>, _>>()?;
        // The model pattern is a route of its own when no --route covers it.
        patterns.extend(model_from_path.clone());
        let mut excludes = self.excludes;
        if !self.no_default_excludes {
            excludes.extend(DEFAULT_EXCLUDES.iter().map(|s| (*s).to_owned()));
        }
        let model_version = match self.model_version {
            Some(v)
                if v.is_empty()
                    || v.chars().count() > MAX_TEXT_CHARS
                    || v.chars().any(char::is_control) =>
            {
                return Err(ConfigError::BadVersion(v));
            }
            v => v.map(leak),
        };
        Ok(Setup {
            listen: self.listen,
            threads: self.threads.map(|t| t.max(1)),
            proxy: ProxyConfig {
                upstream,
                model: leak(model),
                model_version,
                instance: leak(publisher.instance.clone()),
                router: Router::new(patterns, &excludes, self.max_routes),
                model_from_path,
                models: Interner::new(MAX_MODELS_FROM_PATH),
                upstream_timeout: Duration::from_secs(self.upstream_timeout.max(1)),
                upstream_idle: Duration::from_secs(self.upstream_idle),
                openai: Arc::new(Shared::new(self.openai)),
            },
            publisher,
        })
    }
}
