//! Container resources from the Docker engine (bollard): which containers serve which
//! model, their CPU and memory as `docker stats` computes them, and their restarts.
//!
//! One long-lived stats stream per mapped container (Docker pushes a sample a second;
//! we forward one per interval), started and stopped as containers come and go. The
//! events stream says when that happens; a periodic list catches what it missed and
//! maps containers whose id shows up later as an event `instance`. Everything goes to
//! the store task as [`Input`]s; nothing here blocks the broker or the display: when the
//! engine is unreachable the poller reports `unavailable` and retries with backoff.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCpuStats, ContainerInspectResponse, ContainerMemoryStats, ContainerStatsResponse,
    EventMessage,
};
use bollard::query_parameters::{
    EventsOptionsBuilder, ListContainersOptionsBuilder, StatsOptionsBuilder,
};
use futures_lite::StreamExt;
use modelmon_publisher::Backoff;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::Input;
use crate::clock::now_us;
use crate::config::Config;
use crate::live::Live;
use crate::store::View;
use crate::store::view::{DockerState, DockerView};
use crate::store::{ContainerEvent, ContainerInfo, ContainerSample};

/// Where Docker listens when neither `DOCKER_HOST` nor `[docker] host` says otherwise.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// How often the container list is read again: catches missed events and containers
/// that become mappable once their id shows up as an event `instance`.
const RESCAN: Duration = Duration::from_secs(5);

/// Retry delays while the engine is unreachable.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(8);

/// Docker actions that go on the model's timeline.
const TIMELINE: &[&str] = &[
    "die",
    "oom",
    "start",
    "restart",
    "stop",
    "pause",
    "unpause",
    "health_status",
];

/// How a session decides which containers it follows.
///
/// The monitor maps a container by its label, the config, then the `instance`s of its
/// request events ([`Mapping::Instances`]). An agent sees no request events: it follows
/// every labelled or configured container and, besides, every *running* container
/// ([`Mapping::Everything`]), so that the monitor it publishes to, which knows the
/// instances, can map those by short id, name or hostname.
#[derive(Debug, Clone)]
pub enum Mapping {
    /// The monitor's: label, config, event instances of the views.
    Instances(watch::Receiver<Live>),
    /// The agent's: label and config, then any running container with an **empty model**
    /// (`""`: "not mapped here"; it never reaches the store, only the agent, which sends
    /// it as an absent `model`). At most [`modelmon_contract::MAX_CONTAINERS_PER_MESSAGE`]
    /// containers, the labelled and configured ones first.
    Everything,
}

impl Mapping {
    fn everything(&self) -> bool {
        matches!(self, Self::Everything)
    }
}

/// What the poller needs from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// `None`: `DOCKER_HOST`, else [`DEFAULT_HOST`].
    pub host: Option<String>,
    pub label_key: String,
    pub interval: Duration,
    /// Explicit mappings: (container name or id prefix, model).
    pub containers: Vec<(String, String)>,
}

impl DockerSettings {
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            host: cfg.docker.host.clone(),
            label_key: cfg.docker.label_key.clone(),
            interval: cfg.docker.interval.0,
            containers: cfg
                .models
                .iter()
                .map(|m| (m.container.clone(), m.name.clone()))
                .collect(),
        }
    }

    fn host(&self) -> String {
        self.host
            .clone()
            .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| DEFAULT_HOST.to_owned())
    }
}

/// Why the engine cannot be used. The messages say how to fix what can be fixed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "no Docker socket at {path}: is the Docker engine running? (set DOCKER_HOST or [docker] host if it listens elsewhere)"
    )]
    NoSocket { path: String },
    #[error(
        "permission denied on {path}: add your user to the `docker` group (then log in again), or set DOCKER_HOST to an engine you may use"
    )]
    PermissionDenied { path: String },
    #[error(
        "{path} is not a socket: set DOCKER_HOST or [docker] host to the Docker engine's socket (unix:///var/run/docker.sock by default)"
    )]
    NotASocket { path: String },
    #[error("the Docker engine at {host} refused the connection: is it running?")]
    Refused { host: String },
    #[error("Docker at {host}: {message}")]
    Api { host: String, message: String },
}

impl DockerError {
    fn api(host: &str, e: &BollardError) -> Self {
        // bollard's own message often hides the cause (e.g. the I/O error) in `source()`.
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            message = format!("{message}: {c}");
            cause = c.source();
        }
        Self::Api {
            host: host.to_owned(),
            message,
        }
    }
}

/// Runs until the store goes away: connects, watches, and reconnects with backoff.
///
/// New `settings` (a reloaded config) end the session: the next one starts at once
/// with them, and maps every container again; one followed before that they no longer
/// map is dropped.
pub async fn run(
    settings_rx: watch::Receiver<DockerSettings>,
    tx: mpsc::Sender<Input>,
    views: watch::Receiver<Live>,
) {
    run_mapped(settings_rx, tx, Mapping::Instances(views)).await;
}

/// [`run`], with the containers chosen by `mapping` (the agent's is [`Mapping::Everything`]).
pub async fn run_mapped(
    mut settings_rx: watch::Receiver<DockerSettings>,
    tx: mpsc::Sender<Input>,
    mapping: Mapping,
) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX, rand::random());
    let mut connections = 0u64;
    // Say why once per outage, not at every retry: the state is in every view anyway.
    let mut last_warned: Option<String> = None;
    // What the last session followed: the next one checks each again, so that one no
    // longer mapped (a reloaded config) is forgotten and the store drops it, and one
    // found by instance stays its model's.
    let mut carried: HashMap<String, Tracked> = HashMap::new();
    loop {
        let settings = settings_rx.borrow_and_update().clone();
        let err = match connect(&settings).await {
            Ok(docker) => {
                connections += 1;
                backoff.reset();
                last_warned = None;
                let up = DockerView {
                    state: DockerState::Connected,
                    connections,
                    ..DockerView::default()
                };
                if tx.send(Input::Docker(up)).await.is_err() {
                    return;
                }
                let mut session = Session::new(
                    docker,
                    &settings,
                    tx.clone(),
                    mapping.clone(),
                    std::mem::take(&mut carried),
                );
                let result = tokio::select! {
                    r = session.run() => Some(r),
                    // A reloaded config; once the sender is gone, nothing changes any more.
                    Ok(()) = settings_rx.changed() => None,
                };
                session.stop_all();
                carried = session.tracked;
                match result {
                    Some(Ok(())) => return,
                    Some(Err(e)) => e,
                    // Reloaded: reconnect with the new settings at once.
                    None => continue,
                }
            }
            Err(e) => e,
        };
        let message = err.to_string();
        if last_warned.as_deref() != Some(message.as_str()) {
            tracing::warn!("docker unavailable: {message}");
            last_warned = Some(message);
        }
        let down = DockerView {
            state: DockerState::Unavailable,
            error: Some(err.to_string()),
            connections,
            ..DockerView::default()
        };
        if tx.send(Input::Docker(down)).await.is_err() {
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// Connects and pings. A Unix socket is probed first, so a missing socket and a
/// permission problem get messages that say what to do.
async fn connect(settings: &DockerSettings) -> Result<Docker, DockerError> {
    let host = settings.host();
    if let Some(path) = host.strip_prefix("unix://") {
        if let Err(e) = tokio::net::UnixStream::connect(path).await {
            // Connecting to a file that is not a socket is refused like a dead engine;
            // say what it really is.
            let not_socket = std::fs::metadata(path)
                .is_ok_and(|m| !std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()));
            let path = path.to_owned();
            if not_socket {
                return Err(DockerError::NotASocket { path });
            }
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => DockerError::NoSocket { path },
                std::io::ErrorKind::PermissionDenied => DockerError::PermissionDenied { path },
                std::io::ErrorKind::ConnectionRefused => DockerError::Refused { host },
                _ => DockerError::Api {
                    host,
                    message: e.to_string(),
                },
            });
        }
    }
    let docker = Docker::connect_with_host(&host).map_err(|e| DockerError::api(&host, &e))?;
    docker
        .ping()
        .await
        .map_err(|e| DockerError::api(&host, &e))?;
    Ok(docker)
}

/// A container mapped to a model, and its stats stream.
struct Tracked {
    state: String,
    /// The model it was found by (an event instance, or an agent's `""`), kept until the
    /// container is destroyed: an instance leaves the views once its model goes quiet,
    /// and an agent's candidate stops running when it exits or is OOM-killed, yet the
    /// container is still that model's, and its `die` and `oom` still tell.
    found: Option<String>,
    restarts: u64,
    /// Docker sends one or several `oom` events per kill; the `die` that follows
    /// says whether it killed the container. Counted once, there.
    oom_pending: bool,
    stats: Option<JoinHandle<()>>,
}

impl Tracked {
    fn streaming(&self) -> bool {
        self.stats.as_ref().is_some_and(|h| !h.is_finished())
    }
}

/// One connection's worth of watching.
struct Session<'a> {
    docker: Docker,
    settings: &'a DockerSettings,
    host: String,
    tx: mpsc::Sender<Input>,
    mapping: Mapping,
    tracked: HashMap<String, Tracked>,
}

/// `Err`: the engine went away. `Ok`: the store is gone, stop.
type Step = Result<(), DockerError>;

/// The store task has stopped: nothing left to do.
struct Closed;

impl<'a> Session<'a> {
    fn new(
        docker: Docker,
        settings: &'a DockerSettings,
        tx: mpsc::Sender<Input>,
        mapping: Mapping,
        mut carried: HashMap<String, Tracked>,
    ) -> Self {
        for t in carried.values_mut() {
            // Unknown until inspected again: the first scan refreshes or forgets each.
            t.state.clear();
        }
        Self {
            docker,
            settings,
            host: settings.host(),
            tx,
            mapping,
            tracked: carried,
        }
    }

    async fn run(&mut self) -> Step {
        loop {
            let docker = self.docker.clone();
            let mut filters = HashMap::new();
            filters.insert("type", vec!["container"]);
            let opts = EventsOptionsBuilder::new().filters(&filters).build();
            let mut events = pin!(docker.events(Some(opts)));
            let mut rescan = tokio::time::interval(RESCAN);
            rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let ended = loop {
                let step = tokio::select! {
                    _ = rescan.tick() => self.scan().await,
                    ev = events.next() => match ev {
                        Some(Ok(ev)) => self.on_event(ev).await,
                        Some(Err(e)) => break DockerError::api(&self.host, &e),
                        None => break DockerError::Api {
                            host: self.host.clone(),
                            message: "the events stream ended".into(),
                        },
                    },
                };
                match step {
                    Ok(Ok(())) => {}
                    Ok(Err(Closed)) => return Ok(()),
                    Err(e) => return Err(e),
                }
            };
            // A stream can end while the engine is fine (a proxy's idle timeout):
            // subscribe again if it still answers, else report it gone.
            if self.docker.ping().await.is_err() {
                return Err(ended);
            }
        }
    }

    async fn send(&self, input: Input) -> Result<(), Closed> {
        self.tx.send(input).await.map_err(|_| Closed)
    }

    /// The model of a container, from its label, the config, or event instances; for an
    /// agent, `""` for any other container that is `running`. A container followed
    /// already keeps the model it was found by. `true` with it: declared (label, config).
    fn model_for(
        &self,
        instances: &HashMap<String, String>,
        id: &str,
        name: &str,
        labels: Option<&HashMap<String, String>>,
        running: bool,
    ) -> Option<(String, bool)> {
        if let Some(m) = declared_model(self.settings, id, name, labels) {
            return Some((m, true));
        }
        instance_model(instances, id, name)
            .or_else(|| self.tracked.get(id).and_then(|t| t.found.clone()))
            .or_else(|| (running && self.mapping.everything()).then(String::new))
            .map(|m| (m, false))
    }

    fn instances(&self) -> HashMap<String, String> {
        match &self.mapping {
            Mapping::Instances(views) => instance_models(&views.borrow()),
            Mapping::Everything => HashMap::new(),
        }
    }

    /// Lists every container: new mapped ones are tracked, changed ones refreshed,
    /// vanished ones dropped.
    async fn scan(&mut self) -> Result<Result<(), Closed>, DockerError> {
        let opts = ListContainersOptionsBuilder::new().all(true).build();
        let list = self
            .docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| DockerError::api(&self.host, &e))?;
        let instances = self.instances();
        let mut wanted = Vec::new();
        for c in list {
            let Some(id) = c.id else { continue };
            let name = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map_or("", |n| n.trim_start_matches('/'));
            let state = c.state.map(|s| s.to_string()).unwrap_or_default();
            let Some((model, _)) =
                self.model_for(&instances, &id, name, c.labels.as_ref(), state == "running")
            else {
                continue;
            };
            wanted.push((id, state, !model.is_empty()));
        }
        if self.mapping.everything() {
            // The mapped ones first (the sort is stable), then the running others, then
            // those that stopped since, as many as fit.
            wanted.sort_by_key(|(_, state, mapped)| (!mapped, state != "running"));
            wanted.truncate(modelmon_contract::MAX_CONTAINERS_PER_MESSAGE);
        }
        let mut seen = HashSet::new();
        for (id, state, _) in wanted {
            let outdated = match self.tracked.get(&id) {
                None => true,
                Some(t) => t.state != state || (state == "running" && !t.streaming()),
            };
            seen.insert(id.clone());
            if outdated && let Err(Closed) = self.refresh(&id).await? {
                return Ok(Err(Closed));
            }
        }
        let gone: Vec<String> = self
            .tracked
            .keys()
            .filter(|id| !seen.contains(*id))
            .cloned()
            .collect();
        for id in gone {
            if let Err(Closed) = self.forget(&id).await {
                return Ok(Err(Closed));
            }
        }
        Ok(Ok(()))
    }

    /// Reads a container's state again; starts or stops its stats stream to match.
    async fn refresh(&mut self, id: &str) -> Result<Result<(), Closed>, DockerError> {
        Ok(self.refresh_inspected(id).await?.map(|_| ()))
    }

    /// [`Self::refresh`], returning the restart count before and after, and whether
    /// the last exit was an OOM kill.
    async fn refresh_inspected(
        &mut self,
        id: &str,
    ) -> Result<Result<(u64, u64, bool), Closed>, DockerError> {
        let inspect = match self.docker.inspect_container(id, None).await {
            Ok(i) => i,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(self.forget(id).await.map(|()| (0, 0, false))),
            Err(e) => return Err(DockerError::api(&self.host, &e)),
        };
        let name = inspect
            .name
            .as_deref()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_owned();
        let labels = inspect.config.as_ref().and_then(|c| c.labels.as_ref());
        let running = inspect
            .state
            .as_ref()
            .and_then(|s| s.running)
            .unwrap_or(false);
        let Some((model, declared)) = self.model_for(&self.instances(), id, &name, labels, running)
        else {
            return Ok(self.forget(id).await.map(|()| (0, 0, false)));
        };
        let found = (!declared).then(|| model.clone());
        // An agent's unmapped newcomer waits for room: the next scan decides who fits.
        if self.mapping.everything()
            && model.is_empty()
            && !self.tracked.contains_key(id)
            && self.tracked.len() >= modelmon_contract::MAX_CONTAINERS_PER_MESSAGE
        {
            return Ok(Ok((0, 0, false)));
        }
        let info = container_info(id, name, model, &inspect);
        let running = info.state == "running";
        let (state, restarts, oom_killed) = (info.state.clone(), info.restarts, info.oom_killed);
        if let Err(Closed) = self.send(Input::Container(info)).await {
            return Ok(Err(Closed));
        }
        let t = self.tracked.entry(id.to_owned()).or_insert(Tracked {
            state: String::new(),
            found: None,
            restarts,
            oom_pending: false,
            stats: None,
        });
        let before = t.restarts;
        t.state = state;
        t.found = found;
        // Docker counts a restart when it decides on it (at the `die`); the count is
        // taken only while running, so the `start` that follows sees it go up.
        if running {
            t.restarts = restarts;
        }
        if running && !t.streaming() {
            t.stats = Some(tokio::spawn(stream_stats(
                self.docker.clone(),
                id.to_owned(),
                self.settings.interval,
                self.tx.clone(),
            )));
        } else if !running && let Some(h) = t.stats.take() {
            h.abort();
        }
        Ok(Ok((before, restarts, oom_killed)))
    }

    async fn forget(&mut self, id: &str) -> Result<(), Closed> {
        if let Some(t) = self.tracked.remove(id) {
            if let Some(h) = t.stats {
                h.abort();
            }
            self.send(Input::ContainerGone(id.to_owned())).await?;
        }
        Ok(())
    }

    async fn on_event(&mut self, ev: EventMessage) -> Result<Result<(), Closed>, DockerError> {
        let (Some(action), Some(actor)) = (ev.action, ev.actor) else {
            return Ok(Ok(()));
        };
        let Some(id) = actor.id else {
            return Ok(Ok(()));
        };
        let attrs = actor.attributes.unwrap_or_default();
        // `health_status: healthy` and the like: the kind is before the colon.
        let kind = action.split(':').next().unwrap_or("").trim();
        if kind == "destroy" {
            return Ok(self.forget(&id).await);
        }
        if !TIMELINE.contains(&kind) {
            return Ok(Ok(()));
        }
        let name = attrs.get("name").map_or("", String::as_str);
        // The event's state is not known yet (an agent's running check comes with the
        // inspect that follows): `running` lets an agent's candidates through.
        if !self.tracked.contains_key(&id)
            && self
                .model_for(&self.instances(), &id, name, Some(&attrs), true)
                .is_none()
        {
            return Ok(Ok(()));
        }
        let at_ms = ev
            .time_nano
            .map(|n| n / 1_000_000)
            .or(ev.time.map(|s| s * 1000))
            .unwrap_or_else(|| now_us() / 1000);
        let mut action = action.clone();
        let mut detail = attrs.get("exitCode").map(|c| format!("exit code {c}"));
        if kind == "oom" {
            // No state changes until the `die` that follows.
            if let Some(t) = self.tracked.get_mut(&id) {
                t.oom_pending = true;
            }
            return Ok(Ok(()));
        }
        let oom_pending = self
            .tracked
            .get_mut(&id)
            .is_some_and(|t| std::mem::take(&mut t.oom_pending));
        match self.refresh_inspected(&id).await? {
            Err(Closed) => return Ok(Err(Closed)),
            // A restart policy restarts with `die` then `start`: the count says which.
            Ok((before, after, _)) if kind == "start" && after > before => {
                "restart".clone_into(&mut action);
                detail = Some(format!("restart {after} (restart policy)"));
            }
            Ok((_, _, oom_killed)) if kind == "die" && (oom_pending || oom_killed) => {
                "oom".clone_into(&mut action);
                detail = Some(format!(
                    "killed: out of memory ({})",
                    detail.as_deref().unwrap_or("exit code 137")
                ));
            }
            Ok(_) => {}
        }
        Ok(self
            .send(Input::ContainerEvent(ContainerEvent {
                id,
                at_ms,
                action,
                detail,
            }))
            .await)
    }

    fn stop_all(&mut self) {
        for t in self.tracked.values_mut() {
            if let Some(h) = t.stats.take() {
                h.abort();
            }
        }
    }
}

/// The model a container is declared to serve: its label first, then the config.
fn declared_model(
    settings: &DockerSettings,
    id: &str,
    name: &str,
    labels: Option<&HashMap<String, String>>,
) -> Option<String> {
    if let Some(m) = labels.and_then(|l| l.get(&settings.label_key))
        && modelmon_contract::is_valid_model_name(m)
    {
        return Some(m.clone());
    }
    settings
        .containers
        .iter()
        .find(|(container, _)| {
            container == name || (container.len() >= 12 && id.starts_with(container.as_str()))
        })
        .map(|(_, model)| model.clone())
}

/// The model whose events name the container as their `instance` (inside Docker an
/// app's hostname, hence its `instance`, is the short container id).
fn instance_model(instances: &HashMap<String, String>, id: &str, name: &str) -> Option<String> {
    let short = id.get(..12).unwrap_or(id);
    instances
        .get(short)
        .or_else(|| (!name.is_empty()).then(|| instances.get(name)).flatten())
        .cloned()
}

/// Every instance named by events, and its model.
fn instance_models(view: &View) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for m in &view.models {
        for i in &m.instances {
            out.insert(i.name.clone(), m.model.clone());
        }
    }
    out
}

fn container_info(
    id: &str,
    name: String,
    model: String,
    inspect: &ContainerInspectResponse,
) -> ContainerInfo {
    let state = inspect.state.as_ref();
    let host = inspect.host_config.as_ref();
    let cpu_limit_cores = host.and_then(|h| {
        let share = match (h.nano_cpus, h.cpu_quota, h.cpu_period) {
            (Some(n), _, _) if n > 0 => Some(n as f64 / 1e9),
            (_, Some(q), Some(p)) if q > 0 && p > 0 => Some(q as f64 / p as f64),
            _ => None,
        };
        // Pinned to a few cores (`--cpuset-cpus`), it can use no more than those, whatever
        // its share says.
        let pinned = h.cpuset_cpus.as_deref().and_then(cpuset_len).map(f64::from);
        match (share, pinned) {
            (Some(s), Some(p)) => Some(s.min(p)),
            (s, p) => s.or(p),
        }
    });
    ContainerInfo {
        id: id.to_owned(),
        name,
        model,
        hostname: inspect
            .config
            .as_ref()
            .and_then(|c| c.hostname.clone())
            .filter(|h| !h.is_empty()),
        state: state
            .and_then(|s| s.status)
            .map(|s| s.to_string())
            .unwrap_or_default(),
        health: state
            .and_then(|s| s.health.as_ref())
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        restarts: inspect
            .restart_count
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0),
        oom_killed: state.and_then(|s| s.oom_killed).unwrap_or(false),
        cpu_limit_cores,
    }
}

/// How many CPUs a cpuset list names (`"0-3,5"`: 5); `None` when empty or unreadable.
fn cpuset_len(list: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi) = (
            lo.trim().parse::<u32>().ok()?,
            hi.trim().parse::<u32>().ok()?,
        );
        n = n.checked_add(hi.checked_sub(lo)?.checked_add(1)?)?;
    }
    (n > 0).then_some(n)
}

/// Totals of the previous forwarded sample, for rates.
#[derive(Debug, Clone, Copy)]
struct Previous {
    at: Instant,
    rx: u64,
    tx: u64,
}

/// Follows one container's stats stream and forwards a sample per interval. Ends when
/// the container stops or the engine goes away; the session starts another if needed.
async fn stream_stats(docker: Docker, id: String, interval: Duration, tx: mpsc::Sender<Input>) {
    let opts = StatsOptionsBuilder::new().stream(true).build();
    let mut stream = pin!(docker.stats(&id, Some(opts)));
    let mut prev: Option<Previous> = None;
    // Docker pushes a sample about once a second; a little slack keeps a 2-s interval
    // from turning into 3 s when a sample comes a few ms early.
    let slack = interval / 4;
    while let Some(Ok(stats)) = stream.next().await {
        let now = Instant::now();
        if prev.is_some_and(|p| now.duration_since(p.at) + slack < interval) {
            continue;
        }
        let (sample, totals) = sample_of(&id, &stats, prev, now, now_us());
        prev = Some(totals);
        if tx.send(Input::Sample(sample)).await.is_err() {
            return;
        }
    }
}

fn sample_of(
    id: &str,
    s: &ContainerStatsResponse,
    prev: Option<Previous>,
    now: Instant,
    ts_us: i64,
) -> (ContainerSample, Previous) {
    let (rx, tx) = net_totals(s);
    let rate = |cur: u64, old: u64, p: &Previous| {
        let dt = now.duration_since(p.at).as_secs_f64();
        (dt > 0.0).then(|| cur.saturating_sub(old) as f64 / dt)
    };
    let mem = s.memory_stats.as_ref();
    let (blk_read, blk_write) = blkio_totals(s);
    let sample = ContainerSample {
        id: id.to_owned(),
        ts_us,
        cpu_percent: s
            .cpu_stats
            .as_ref()
            .zip(s.precpu_stats.as_ref())
            .and_then(|(c, p)| cpu_percent(c, p)),
        cpu_seconds: s
            .cpu_stats
            .as_ref()
            .and_then(|c| c.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .map(|ns| ns as f64 / 1e9),
        mem_bytes: mem.and_then(memory_used),
        mem_limit_bytes: mem.and_then(|m| m.limit).filter(|l| *l > 0),
        net_rx_bytes_per_s: prev
            .as_ref()
            .and_then(|p| rx.and_then(|rx| rate(rx, p.rx, p))),
        net_tx_bytes_per_s: prev
            .as_ref()
            .and_then(|p| tx.and_then(|tx| rate(tx, p.tx, p))),
        blk_read_bytes: blk_read,
        blk_write_bytes: blk_write,
        pids: s.pids_stats.as_ref().and_then(|p| p.current),
        online_cpus: s
            .cpu_stats
            .as_ref()
            .and_then(|c| c.online_cpus)
            .filter(|n| *n > 0),
    };
    let totals = Previous {
        at: now,
        rx: rx.unwrap_or(0),
        tx: tx.unwrap_or(0),
    };
    (sample, totals)
}

/// CPU % as `docker stats` computes it: the container's share of the host's CPU time
/// since the previous sample, times the online CPUs, so 100 % is one full core.
/// `None` on the first sample of a stream (no previous reading to compare with).
pub fn cpu_percent(cur: &ContainerCpuStats, prev: &ContainerCpuStats) -> Option<f64> {
    let prev_system = prev.system_cpu_usage.filter(|s| *s > 0)?;
    let system = cur.system_cpu_usage?;
    let total = cur.cpu_usage.as_ref()?.total_usage?;
    let prev_total = prev
        .cpu_usage
        .as_ref()
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    let online = match cur.online_cpus {
        Some(n) if n > 0 => f64::from(n),
        _ => cur
            .cpu_usage
            .as_ref()
            .and_then(|u| u.percpu_usage.as_ref())
            .map_or(0.0, |p| p.len() as f64),
    };
    let cpu_delta = total as f64 - prev_total as f64;
    let system_delta = system as f64 - prev_system as f64;
    if system_delta > 0.0 && cpu_delta > 0.0 {
        Some(cpu_delta / system_delta * online * 100.0)
    } else {
        Some(0.0)
    }
}

/// Memory used as `docker stats` shows it: usage minus the inactive file cache
/// (`total_inactive_file` on cgroup v1, `inactive_file` on v2), which the kernel
/// reclaims before it would ever OOM-kill: counting it would make every container
/// that reads files look full.
pub fn memory_used(m: &ContainerMemoryStats) -> Option<u64> {
    let usage = m.usage?;
    let stats = m.stats.as_ref();
    let inactive = stats
        .and_then(|s| s.get("total_inactive_file"))
        .or_else(|| stats.and_then(|s| s.get("inactive_file")));
    Some(match inactive {
        Some(&i) if i < usage => usage - i,
        _ => usage,
    })
}

fn net_totals(s: &ContainerStatsResponse) -> (Option<u64>, Option<u64>) {
    let Some(nets) = s.networks.as_ref().filter(|n| !n.is_empty()) else {
        return (None, None);
    };
    let rx = nets.values().filter_map(|n| n.rx_bytes).sum();
    let tx = nets.values().filter_map(|n| n.tx_bytes).sum();
    (Some(rx), Some(tx))
}

/// Bytes read and written since the container started (`Read`/`Write` on cgroup v1,
/// `read`/`write` on v2).
fn blkio_totals(s: &ContainerStatsResponse) -> (Option<u64>, Option<u64>) {
    let Some(entries) = s
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
    else {
        return (Some(0), Some(0));
    };
    let mut read = 0u64;
    let mut write = 0u64;
    for e in entries {
        let op = e.op.as_deref().unwrap_or("");
        let v = e.value.unwrap_or(0);
        if op.eq_ignore_ascii_case("read") {
            read += v;
        } else if op.eq_ignore_ascii_case("write") {
            write += v;
        }
    }
    (Some(read), Some(write))
}

#[cfg(test)]
mod tests {
    use bollard::models::ContainerCpuUsage;

    use super::*;

    fn cpu(total: u64, system: u64, online: u32) -> ContainerCpuStats {
        ContainerCpuStats {
            cpu_usage: Some(ContainerCpuUsage {
                total_usage: Some(total),
                ..ContainerCpuUsage::default()
            }),
            system_cpu_usage: Some(system),
            online_cpus: Some(online),
            ..ContainerCpuStats::default()
        }
    }

    #[test]
    fn one_busy_core_of_two_is_100_percent_like_docker_stats() {
        // Host: 2 CPUs, 1 s apart = 2e9 ns of system time; the container used 1e9 ns.
        let p = cpu_percent(
            &cpu(3_000_000_000, 12_000_000_000, 2),
            &cpu(2_000_000_000, 10_000_000_000, 2),
        );
        assert_eq!(p, Some(100.0));
    }

    #[test]
    fn the_first_sample_of_a_stream_has_no_cpu_figure() {
        assert_eq!(
            cpu_percent(&cpu(5, 10, 2), &ContainerCpuStats::default()),
            None
        );
        assert_eq!(
            cpu_percent(&cpu(5, 20, 2), &cpu(5, 10, 2)),
            Some(0.0),
            "idle is a known 0"
        );
    }

    fn mem(usage: u64, stats: &[(&str, u64)]) -> ContainerMemoryStats {
        ContainerMemoryStats {
            usage: Some(usage),
            stats: Some(stats.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()),
            ..ContainerMemoryStats::default()
        }
    }

    #[test]
    fn page_cache_is_not_used_memory_on_cgroup_v1_and_v2() {
        let v1 = mem(100, &[("total_inactive_file", 30), ("inactive_file", 1)]);
        assert_eq!(memory_used(&v1), Some(70));
        let v2 = mem(100, &[("inactive_file", 40), ("anon", 60)]);
        assert_eq!(memory_used(&v2), Some(60));
        assert_eq!(memory_used(&mem(100, &[("inactive_file", 400)])), Some(100));
        assert_eq!(memory_used(&ContainerMemoryStats::default()), None);
    }

    fn settings() -> DockerSettings {
        DockerSettings {
            host: None,
            label_key: "modelmon.model".into(),
            interval: Duration::from_secs(2),
            containers: vec![("iris-api".into(), "iris".into())],
        }
    }

    #[test]
    fn containers_map_by_label_then_config_then_instance() {
        let s = settings();
        let id = "0123456789ab0123456789ab";
        let labels: HashMap<String, String> =
            [("modelmon.model".to_owned(), "bert".to_owned())].into();
        assert_eq!(
            declared_model(&s, id, "iris-api", Some(&labels)).as_deref(),
            Some("bert")
        );
        assert_eq!(
            declared_model(&s, id, "iris-api", None).as_deref(),
            Some("iris")
        );
        assert_eq!(declared_model(&s, id, "other", None), None);
        let mut inst = HashMap::new();
        assert_eq!(instance_model(&inst, id, "other"), None);
        inst.insert("0123456789ab".to_owned(), "gpt".to_owned());
        assert_eq!(instance_model(&inst, id, "other").as_deref(), Some("gpt"));
    }

    #[test]
    fn a_cpuset_counts_its_cpus() {
        assert_eq!(cpuset_len("0"), Some(1));
        assert_eq!(cpuset_len("0-3,5"), Some(5));
        assert_eq!(cpuset_len(" 1 , 4-5 "), Some(3));
        assert_eq!(cpuset_len(""), None);
        assert_eq!(cpuset_len("3-1"), None);
        assert_eq!(cpuset_len("x"), None);
    }

    #[test]
    fn a_container_pinned_to_fewer_cores_than_its_share_is_limited_by_the_pin() {
        use bollard::models::HostConfig;
        let inspect = |cpuset: &str, nano: i64| ContainerInspectResponse {
            host_config: Some(HostConfig {
                cpuset_cpus: Some(cpuset.to_owned()),
                nano_cpus: Some(nano),
                ..HostConfig::default()
            }),
            ..ContainerInspectResponse::default()
        };
        let cores = |i| container_info("a", "a".into(), "m".into(), &i).cpu_limit_cores;
        assert_eq!(cores(inspect("0", 0)), Some(1.0));
        assert_eq!(cores(inspect("0-1", 1_500_000_000)), Some(1.5));
        assert_eq!(cores(inspect("0", 1_500_000_000)), Some(1.0));
        assert_eq!(cores(inspect("", 0)), None);
    }
}
