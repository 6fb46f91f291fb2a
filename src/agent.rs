//! `modelmon-tui agent`: a headless reader of one host's Docker engine that publishes the
//! host's containers and their latest samples to RabbitMQ, for monitors elsewhere.
//!
//! Three parts on one current-thread runtime:
//!
//! - the Docker poller of the monitor ([`crate::ingest::docker`]), in the agent's mapping
//!   ([`Mapping::Everything`]): labelled and configured containers, and every other running
//!   one without a model, so that a monitor can map it by the instances of its events;
//! - the loop here, which folds the poller's [`Input`]s into the host's current picture
//!   ([`Picture`]) and, once per interval, turns it into one [`Resources`] message;
//! - the publisher task, which owns the broker connection. It is handed only the newest
//!   message (a `watch`): each message is the whole picture, so nothing is ever queued
//!   while the broker is away. A message that is never sent, or that the broker does not
//!   confirm, is dropped and counted, and the count goes in the next delivered message.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use modelmon_contract::{
    AgentInfo, CONTENT_TYPE, EXCHANGE, MAX_CONTAINER_EVENTS_PER_MESSAGE,
    MAX_CONTAINERS_PER_MESSAGE, RESOURCES_MESSAGE_TYPE, RemoteContainer, RemoteEvent, RemoteSample,
    Resources, resources_routing_key,
};
use modelmon_publisher::{Backoff, Redacted, broker_nodes};
use tokio::sync::{mpsc, watch};

use crate::clock::now_us;
use crate::config::{Config, ConfigError};
use crate::ingest::Input;
use crate::ingest::docker::{DockerSettings, Mapping, run_mapped};
use crate::store::view::DockerState;
use crate::store::{ContainerEvent, ContainerInfo, ContainerSample};

/// The agent's version, in `agent.version` and in the `app_id` property.
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Longest host name the contract takes.
const MAX_HOST_CHARS: usize = 256;
/// Sampling intervals the agent accepts: Docker samples once a second, and the contract
/// takes at most a minute.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// After (re)connecting to Docker, the poller lists and inspects every container: give it
/// this long before publishing, so a half-read host is not announced as the whole one.
const SETTLE: Duration = Duration::from_secs(1);
/// Broker reconnect delays, as the monitor's consumer has them.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// The longest a connection's setup, or a message's confirm, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);
/// The AMQP frame size the agent asks for, in bytes (see [`connect`]).
const FRAME_MAX: u32 = 16 * 1024;

/// Why the agent cannot start. All are usage or config faults (exit code 2) except
/// [`AgentError::Runtime`] (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("--host {0:?}: a host name must be 1 to 256 characters without control characters")]
    BadHost(String),
    #[error(
        "cannot tell this machine's hostname (neither /proc/sys/kernel/hostname nor `hostname` answered): pass --host NAME"
    )]
    NoHostname,
    #[error("--interval {0:?}: must be 1s to 60s (Docker samples once a second)")]
    BadInterval(Duration),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

impl AgentError {
    /// The process exit code this error calls for.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Runtime(_) => 1,
            _ => 2,
        }
    }
}

/// What the agent runs with, from the command line over the config file.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    /// The broker setting: one URL, or a cluster's nodes comma-separated.
    pub amqp: String,
    /// AMQP heartbeat asked of the broker (`[amqp] heartbeat`), in seconds.
    pub heartbeat_s: u16,
    pub docker: DockerSettings,
}

impl Options {
    /// Reads and checks the config file (`config`, else the usual location) and lays the
    /// flags over it. `host` defaults to the machine's hostname.
    pub fn resolve(
        config: Option<&std::path::Path>,
        amqp: Option<&str>,
        host: Option<&str>,
        interval: Option<Duration>,
    ) -> Result<Self, AgentError> {
        let (mut cfg, path) = Config::load(config)?;
        if let Some(url) = amqp {
            url.clone_into(&mut cfg.amqp.url);
        }
        cfg.validate(path.as_deref())?;
        let host = match host {
            Some(h) => h.to_owned(),
            None => machine_hostname().ok_or(AgentError::NoHostname)?,
        };
        if host.is_empty() || !modelmon_contract::is_clean_text(&host, MAX_HOST_CHARS) {
            return Err(AgentError::BadHost(host));
        }
        let mut docker = DockerSettings::from_config(&cfg);
        if let Some(i) = interval {
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&i) {
                return Err(AgentError::BadInterval(i));
            }
            docker.interval = i;
        }
        Ok(Self {
            host,
            heartbeat_s: u16::try_from(cfg.amqp.heartbeat.0.as_secs()).unwrap_or(u16::MAX),
            amqp: cfg.amqp.url,
            docker,
        })
    }
}

/// The machine's hostname: the kernel's, else what `hostname` prints.
fn machine_hostname() -> Option<String> {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let name = from_proc.or_else(|| {
        let out = std::process::Command::new("hostname").output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    })?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// `modelmon-tui agent`: runs until SIGINT or SIGTERM.
pub fn main(opts: Options) -> Result<(), AgentError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(AgentError::Runtime)?;
    rt.block_on(run(opts));
    Ok(())
}

/// The agent itself, until a stop signal.
pub async fn run(opts: Options) {
    let interval = opts.docker.interval;
    tracing::info!(
        "agent of host {:?}: publishing to {} with routing key {} every {:?}",
        opts.host,
        Redacted(&opts.amqp),
        resources_routing_key(&opts.host),
        interval,
    );
    let (inputs_tx, mut inputs) = mpsc::channel(256);
    let (_settings_tx, settings_rx) = watch::channel(opts.docker.clone());
    let poller = tokio::spawn(run_mapped(settings_rx, inputs_tx, Mapping::Everything));
    let (outbox_tx, outbox_rx) = watch::channel(None);
    let (delivered_tx, mut delivered_rx) = watch::channel(0u64);
    let link = LinkSettings {
        nodes: broker_nodes(&opts.amqp)
            .into_iter()
            .map(str::to_owned)
            .collect(),
        host: opts.host.clone(),
        heartbeat_s: opts.heartbeat_s,
    };
    let publisher = tokio::spawn(publish_loop(link, outbox_rx, delivered_tx));

    let mut picture = Picture::new(opts.host.clone(), interval);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let stop = crate::runtime::exit_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            input = inputs.recv() => match input {
                Some(input) => picture.apply(input),
                None => break,
            },
            _ = tick.tick() => {
                picture.forget_events_through(*delivered_rx.borrow_and_update());
                if let Some((message, last_event)) = picture.message(now_us()) {
                    seq += 1;
                    outbox_tx.send_replace(Some(Outgoing { seq, last_event, message }));
                }
            }
        }
    }
    poller.abort();
    publisher.abort();
    tracing::info!("agent stopped");
}

/// A container as the poller last described it, and its latest sample.
struct Entry {
    info: ContainerInfo,
    sample: Option<ContainerSample>,
}

/// The host's current picture, built from the poller's [`Input`]s.
struct Picture {
    host: String,
    interval_ms: u32,
    containers: HashMap<String, Entry>,
    /// Docker events not yet in a delivered message, oldest first, each with its number.
    events: VecDeque<(u64, RemoteEvent)>,
    next_event: u64,
    docker_up: bool,
    /// Not before this instant after (re)connecting to Docker: see [`SETTLE`].
    settle_until: Option<tokio::time::Instant>,
}

impl Picture {
    fn new(host: String, interval: Duration) -> Self {
        let ms = u32::try_from(interval.as_millis()).unwrap_or(u32::MAX);
        Self {
            host,
            interval_ms: ms.clamp(100, 60_000),
            containers: HashMap::new(),
            events: VecDeque::new(),
            next_event: 1,
            docker_up: false,
            settle_until: None,
        }
    }

    fn apply(&mut self, input: Input) {
        match input {
            Input::Docker(d) => match d.state {
                DockerState::Connected => {
                    if d.connections > 1 {
                        tracing::info!("docker is back (connection {})", d.connections);
                    } else {
                        tracing::info!("docker connected");
                    }
                    // The new session reports every container again.
                    self.containers.clear();
                    self.docker_up = true;
                    self.settle_until = Some(tokio::time::Instant::now() + SETTLE);
                }
                // The poller says why (once per outage). Nothing is published meanwhile:
                // the monitors see the host go silent, and its figures unknown.
                DockerState::Unavailable | DockerState::Disabled => {
                    self.containers.clear();
                    self.docker_up = false;
                }
            },
            Input::Container(info) => {
                let running = info.state == "running";
                let entry = self
                    .containers
                    .entry(info.id.clone())
                    .or_insert_with(|| Entry {
                        info: info.clone(),
                        sample: None,
                    });
                entry.info = info;
                if !running {
                    entry.sample = None;
                }
            }
            Input::ContainerGone(id) => {
                self.containers.remove(&id);
            }
            Input::Sample(s) => {
                if let Some(e) = self.containers.get_mut(&s.id)
                    && e.info.state == "running"
                {
                    e.sample = Some(s);
                }
            }
            Input::ContainerEvent(e) => self.push_event(e),
            Input::Body { .. } | Input::Broker(_) | Input::Resources { .. } => {}
        }
    }

    fn push_event(&mut self, e: ContainerEvent) {
        if self.events.len() >= MAX_CONTAINER_EVENTS_PER_MESSAGE {
            self.events.pop_front();
        }
        let event = RemoteEvent {
            id: e.id,
            at_ms: e.at_ms,
            action: e.action,
            detail: e.detail,
        };
        self.events.push_back((self.next_event, event));
        self.next_event += 1;
    }

    /// A delivered message carried the events up to number `n`.
    fn forget_events_through(&mut self, n: u64) {
        while self.events.front().is_some_and(|(k, _)| *k <= n) {
            self.events.pop_front();
        }
    }

    /// The message to publish now, and the number of its last Docker event; `None` while
    /// Docker is away or still being read.
    fn message(&mut self, ts_us: i64) -> Option<(Resources, u64)> {
        if !self.docker_up {
            return None;
        }
        if let Some(t) = self.settle_until {
            if tokio::time::Instant::now() < t {
                return None;
            }
            self.settle_until = None;
        }
        let mut entries: Vec<&Entry> = self.containers.values().collect();
        // Mapped ones first, then by name: a stable order that keeps the cap fair.
        entries.sort_by(|a, b| {
            (a.info.model.is_empty(), &a.info.name).cmp(&(b.info.model.is_empty(), &b.info.name))
        });
        entries.truncate(MAX_CONTAINERS_PER_MESSAGE);
        let containers = entries.into_iter().map(remote_container).collect();
        let last_event = self.events.back().map_or(0, |(k, _)| *k);
        let message = Resources {
            host: self.host.clone(),
            agent: AgentInfo {
                version: VERSION.to_owned(),
                pid: Some(std::process::id()),
            },
            ts_us,
            interval_ms: self.interval_ms,
            dropped: 0,
            containers,
            events: self.events.iter().map(|(_, e)| e.clone()).collect(),
        };
        Some((message, last_event))
    }
}

fn remote_container(e: &Entry) -> RemoteContainer {
    let info = &e.info;
    RemoteContainer {
        id: info.id.clone(),
        name: info.name.clone(),
        // Empty: "not mapped here" (see `Mapping::Everything`).
        model: (!info.model.is_empty()).then(|| info.model.clone()),
        hostname: info.hostname.clone(),
        state: if info.state.is_empty() {
            "unknown".to_owned()
        } else {
            info.state.clone()
        },
        health: info.health.clone(),
        restarts: info.restarts,
        oom_killed: info.oom_killed,
        cpu_limit_cores: info.cpu_limit_cores.filter(|c| c.is_finite() && *c > 0.0),
        sample: e.sample.as_ref().map(remote_sample),
    }
}

fn remote_sample(s: &ContainerSample) -> RemoteSample {
    let finite = |x: Option<f64>| x.filter(|v| v.is_finite() && *v >= 0.0);
    RemoteSample {
        ts_us: s.ts_us,
        cpu_percent: finite(s.cpu_percent),
        cpu_seconds: finite(s.cpu_seconds),
        mem_bytes: s.mem_bytes,
        mem_limit_bytes: s.mem_limit_bytes,
        net_rx_bytes_per_s: finite(s.net_rx_bytes_per_s),
        net_tx_bytes_per_s: finite(s.net_tx_bytes_per_s),
        blk_read_bytes: s.blk_read_bytes,
        blk_write_bytes: s.blk_write_bytes,
        pids: s.pids,
        online_cpus: s.online_cpus,
    }
}

/// One built message, numbered; the publisher counts the numbers it never sent.
#[derive(Clone)]
struct Outgoing {
    seq: u64,
    /// The number of the last Docker event it carries (0: none ever).
    last_event: u64,
    message: Resources,
}

struct LinkSettings {
    nodes: Vec<String>,
    host: String,
    heartbeat_s: u16,
}

/// Why a connection could not be used.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Broker(#[from] lapin::Error),
    #[error("invalid broker URL: {0}")]
    Url(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// Owns the broker connection: publishes the newest message whenever there is one, and
/// reconnects (the next node of a cluster at each failure) with backoff.
async fn publish_loop(
    link: LinkSettings,
    mut outbox: watch::Receiver<Option<Outgoing>>,
    delivered: watch::Sender<u64>,
) {
    let key = resources_routing_key(&link.host);
    let properties = BasicProperties::default()
        .with_content_type(CONTENT_TYPE.into())
        .with_type(RESOURCES_MESSAGE_TYPE.into())
        .with_app_id(format!("modelmon-agent/{VERSION}").as_str().into())
        .with_delivery_mode(1);
    let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_MAX, rand::random());
    let mut node = 0;
    // Messages dropped since the last delivered one.
    let mut dropped = 0u64;
    // The last message taken from the outbox (sent or not).
    let mut last_seq = 0u64;
    // Whether the broker is known to be away (said once per outage).
    let mut away = false;
    let mut connections = 0u64;
    loop {
        let url = link.nodes[node].as_str();
        let (conn, channel) = match connect(url, &link).await {
            Ok(c) => c,
            Err(e) => {
                let delay = backoff.next_delay();
                let what = format!(
                    "broker {} unreachable: {e}; retrying (with {} node{}), messages are dropped and counted meanwhile",
                    Redacted(url),
                    link.nodes.len(),
                    if link.nodes.len() == 1 { "" } else { "s" }
                );
                if away {
                    tracing::debug!("{what}");
                } else {
                    tracing::warn!("{what}");
                    away = true;
                }
                node = (node + 1) % link.nodes.len();
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        connections += 1;
        if away || connections > 1 {
            tracing::info!("broker {} connected again: publishing", Redacted(url));
        } else {
            tracing::info!("broker {} connected: publishing", Redacted(url));
        }
        let lost = loop {
            if outbox.changed().await.is_err() {
                return;
            }
            let Some(out) = outbox.borrow_and_update().clone() else {
                continue;
            };
            // Messages built since the last one taken, that nobody sent.
            dropped += out.seq.saturating_sub(last_seq + 1);
            last_seq = out.seq;
            let mut message = out.message;
            message.dropped = dropped;
            match publish(&channel, &key, &properties, &message.to_json()).await {
                Ok(true) => {
                    dropped = 0;
                    delivered.send_replace(out.last_event);
                }
                Ok(false) => {
                    dropped += 1;
                    tracing::debug!("the broker refused a message (nack): dropped");
                }
                Err(e) => {
                    dropped += 1;
                    break e;
                }
            }
        };
        tracing::warn!(
            "broker {} lost: {lost}; reconnecting, messages are dropped and counted meanwhile",
            Redacted(url)
        );
        away = true;
        drop(channel);
        drop(conn);
        node = (node + 1) % link.nodes.len();
    }
}

async fn connect(
    url: &str,
    link: &LinkSettings,
) -> Result<(Connection, lapin::Channel), LinkError> {
    let mut uri: AMQPUri = url.parse().map_err(LinkError::Url)?;
    // Heartbeats notice a broker that stopped answering; a URL's own setting stays.
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(link.heartbeat_s);
    }
    // lapin keeps two buffers of 32 frames each: at RabbitMQ's default frame size (128 KiB)
    // that is 8 MiB, most of the agent's memory. Small frames cost nothing here (a message
    // is one per interval, 200 KiB at most); a URL's own `frame_max` stays.
    if uri.query.frame_max.is_none() {
        uri.query.frame_max = Some(FRAME_MAX);
    }
    // The host and pid let an operator find this connection in `rabbitmqctl`.
    let name = format!("modelmon-agent {} pid {}", link.host, std::process::id());
    let props = ConnectionProperties::default().with_connection_name(name.as_str().into());
    let open = async {
        let conn = Connection::connect_uri(uri, props).await?;
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        modelmon_publisher::declare_exchange(&channel).await?;
        Ok::<_, LinkError>((conn, channel))
    };
    tokio::time::timeout(CONNECT_TIMEOUT, open)
        .await
        .map_err(|_| LinkError::Timeout(CONNECT_TIMEOUT))?
}

/// Publishes one body and waits for its confirm: `Ok(false)` when the broker refused it.
async fn publish(
    channel: &lapin::Channel,
    key: &str,
    properties: &BasicProperties,
    body: &[u8],
) -> Result<bool, LinkError> {
    let confirm = channel
        .basic_publish(
            EXCHANGE.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            properties.clone(),
        )
        .await?;
    let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
        .await
        .map_err(|_| LinkError::Timeout(CONFIRM_TIMEOUT))??;
    Ok(confirmation.is_ack())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::view::DockerView;

    fn info(id: &str, name: &str, model: &str, state: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.to_owned(),
            name: name.to_owned(),
            model: model.to_owned(),
            hostname: None,
            state: state.to_owned(),
            health: None,
            restarts: 0,
            oom_killed: false,
            cpu_limit_cores: None,
        }
    }

    fn connected() -> Input {
        Input::Docker(DockerView {
            state: DockerState::Connected,
            connections: 1,
            ..DockerView::default()
        })
    }

    fn event(n: i64) -> Input {
        Input::ContainerEvent(ContainerEvent {
            id: "0123456789ab".into(),
            at_ms: n,
            action: "start".into(),
            detail: None,
        })
    }

    #[test]
    fn the_picture_lists_mapped_containers_first_and_unmapped_ones_without_a_model() {
        let mut p = Picture::new("h".into(), Duration::from_secs(1));
        assert!(p.message(1).is_none(), "nothing before Docker answers");
        p.apply(connected());
        assert!(
            p.message(1).is_none(),
            "nothing while the first scan settles"
        );
        // As if the settling second had passed.
        p.settle_until = None;
        p.apply(Input::Container(info("aaaaaaaaaaaa", "a", "", "running")));
        p.apply(Input::Container(info(
            "bbbbbbbbbbbb",
            "b",
            "iris",
            "running",
        )));
        p.apply(Input::Sample(ContainerSample {
            id: "bbbbbbbbbbbb".into(),
            ts_us: 5,
            cpu_percent: Some(f64::NAN),
            mem_bytes: Some(7),
            ..ContainerSample::default()
        }));
        let (m, _) = p.message(10).expect("a message");
        let names: Vec<&str> = m.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
        assert_eq!(m.containers[0].model.as_deref(), Some("iris"));
        assert_eq!(m.containers[1].model, None);
        let s = m.containers[0].sample.as_ref().expect("sampled");
        assert_eq!((s.cpu_percent, s.mem_bytes), (None, Some(7)));

        // Stopped: no sample; gone: not listed.
        p.apply(Input::Container(info(
            "bbbbbbbbbbbb",
            "b",
            "iris",
            "exited",
        )));
        p.apply(Input::ContainerGone("aaaaaaaaaaaa".into()));
        let (m, _) = p.message(11).expect("a message");
        assert_eq!(m.containers.len(), 1);
        assert!(m.containers[0].sample.is_none());
    }

    #[test]
    fn docker_events_wait_for_a_delivered_message_and_the_oldest_go_first() {
        let mut p = Picture::new("h".into(), Duration::from_secs(1));
        p.docker_up = true;
        for n in 0..300 {
            p.apply(event(n));
        }
        let (m, last) = p.message(1).expect("a message");
        assert_eq!(m.events.len(), MAX_CONTAINER_EVENTS_PER_MESSAGE);
        assert_eq!(
            m.events[0].at_ms,
            300 - MAX_CONTAINER_EVENTS_PER_MESSAGE as i64
        );
        p.apply(event(300));
        // The message with events up to `last` was delivered: only the newer one stays.
        p.forget_events_through(last);
        let (m, _) = p.message(2).expect("a message");
        assert_eq!(m.events.len(), 1);
        assert_eq!(m.events[0].at_ms, 300);
    }
}
