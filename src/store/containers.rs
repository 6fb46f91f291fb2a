//! Containers mapped to models, as the Docker poller reports them: their state, their
//! latest resource sample and the events on their timeline.
//!
//! Plain data only (no bollard here): the poller turns Docker's answers into these
//! types, the store keeps them and sums the replicas of a model in the view.
//!
//! Containers on other hosts arrive whole, one agent's picture at a time
//! (`modelmon-tui agent`, the contract's resources messages): each picture replaces what
//! was known of its host, a host whose agent stops talking turns unknown, and one
//! silent for [`FORGET_HOST_AFTER_MS`] is forgotten.

use std::collections::{BTreeMap, HashMap, VecDeque};

use modelmon_contract::{RemoteContainer, RemoteSample, Resources};

use super::OTHER;
use super::view::{
    AgentState, AgentView, ContainerEventView, ContainerView, DockerState, DockerView,
    ModelResources, ResourceCounters, Usage,
};

/// Hosts whose agents are followed; pictures from more hosts are refused and counted
/// under [`OTHER`], so a misbehaving fleet cannot grow the monitor's memory.
pub const MAX_AGENT_HOSTS: usize = 64;

/// An agent is silent after this many of its intervals without a picture...
const SILENT_AFTER_INTERVALS: i64 = 3;
/// ...and never sooner than this: a scheduling hiccup is not an outage.
const SILENT_AFTER_MIN_MS: i64 = 5_000;
/// A host silent this long is gone (decommissioned, renamed): it is forgotten, so its
/// models' figures are known again from their other replicas and it frees its place
/// among the [`MAX_AGENT_HOSTS`].
pub const FORGET_HOST_AFTER_MS: i64 = 10 * 60 * 1000;

/// Docker events kept per model for the timeline.
pub const EVENTS_PER_MODEL: usize = 32;

/// What Docker's inspect says about a container mapped to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    pub name: String,
    pub model: String,
    /// The container's hostname (Docker's `Config.Hostname`): what an app inside reports
    /// as its event `instance`.
    pub hostname: Option<String>,
    pub state: String,
    pub health: Option<String>,
    pub restarts: u64,
    pub oom_killed: bool,
    /// Cores the container may use (`--cpus`, or quota / period), when limited.
    pub cpu_limit_cores: Option<f64>,
}

/// One resource sample of a container, computed with the docker/cli formulas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerSample {
    pub id: String,
    pub ts_us: i64,
    pub cpu_percent: Option<f64>,
    /// CPU time used since the container started (Docker's `cpu_usage.total_usage`).
    pub cpu_seconds: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub mem_limit_bytes: Option<u64>,
    pub net_rx_bytes_per_s: Option<f64>,
    pub net_tx_bytes_per_s: Option<f64>,
    pub blk_read_bytes: Option<u64>,
    pub blk_write_bytes: Option<u64>,
    pub pids: Option<u64>,
    /// The host's online CPUs, what a container without a CPU limit may use.
    pub online_cpus: Option<u32>,
}

/// A Docker event of a container mapped to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerEvent {
    pub id: String,
    pub at_ms: i64,
    pub action: String,
    pub detail: Option<String>,
}

#[derive(Debug)]
struct Entry {
    info: ContainerInfo,
    sample: Option<ContainerSample>,
    /// What it adds to its model's counters: its latest figures, kept while it has none
    /// (stopped, its host silent), so that a sum does not fall when a replica stops. Its
    /// OOM kills are counted here as they are seen: they only ever go up.
    counted: ResourceCounters,
}

impl Entry {
    fn new(info: ContainerInfo, sample: Option<ContainerSample>, was: Counted) -> Self {
        Self {
            info,
            sample,
            counted: was.unwrap_or_default(),
        }
    }

    /// Takes in the container's latest figures. Returns what a counter of its own that
    /// went back (the container restarted, or Docker reset its count) had counted: its
    /// model keeps that.
    fn recount(&mut self) -> ResourceCounters {
        let mut gone = ResourceCounters::default();
        let c = &mut self.counted;
        if let Some(now) = self.sample.as_ref().and_then(|s| s.cpu_seconds) {
            gone.cpu_seconds = c.cpu_seconds.filter(|was| now < *was);
            c.cpu_seconds = Some(now);
        }
        if self.info.restarts < c.restarts {
            gone.restarts = c.restarts;
        }
        c.restarts = self.info.restarts;
        gone
    }
}

/// A container's counts from before, when it is known again (an agent's new picture,
/// Docker back after an outage).
type Counted = Option<ResourceCounters>;

/// One agent's host: what its last picture said, and when it came.
#[derive(Debug)]
struct Host {
    version: String,
    interval_ms: i64,
    /// The last picture's own time (the agent's clock), to refuse older ones.
    sent_us: i64,
    /// The newest picture heard, applied or not: when it came (this monitor's clock) and
    /// its own time (the agent's), ms.
    heard: Option<(i64, i64)>,
    /// How far the agent's clock is behind this monitor's (ms; negative: ahead), transit
    /// included: learnt from pictures that come as far apart as they were sent.
    offset_ms: i64,
    /// A refusal for lateness was logged; again only after a picture is applied.
    told_late: bool,
    /// When the last picture was applied (this monitor's clock).
    seen_ms: i64,
    silent: bool,
    dropped: u64,
    rejected: u64,
    /// Mapped containers, by full id.
    by_id: BTreeMap<String, Entry>,
}

impl Host {
    fn silent_at_ms(&self) -> i64 {
        self.seen_ms + (SILENT_AFTER_INTERVALS * self.interval_ms).max(SILENT_AFTER_MIN_MS)
    }
}

/// Every container mapped to a model, and the Docker connection's state.
#[derive(Debug, Default)]
pub struct Containers {
    docker: DockerView,
    /// This monitor's own Docker engine.
    by_id: BTreeMap<String, Entry>,
    /// Other hosts, through their agents.
    hosts: BTreeMap<String, Host>,
    /// Pictures refused because [`MAX_AGENT_HOSTS`] hosts are followed already.
    refused_hosts: u64,
    /// Kept across container removals and Docker outages: it is history.
    events: BTreeMap<String, VecDeque<ContainerEventView>>,
    /// Per model, what replicas had counted before they were removed or their counters
    /// went back: added to the model's counters so that they never fall. One entry per
    /// model that had a container.
    retired: BTreeMap<String, ResourceCounters>,
    /// The local containers known when Docker's connection was last lost, by id, with
    /// their model: those that come back go on from their counts (not counted twice),
    /// the rest are retired at the next loss. Still in their models' counters meanwhile.
    parked: BTreeMap<String, (String, ResourceCounters)>,
    /// The same for the containers of the hosts forgotten last (see
    /// [`FORGET_HOST_AFTER_MS`]): a host back after all goes on from their counts.
    forgotten: BTreeMap<String, (String, ResourceCounters)>,
}

/// What an applied picture means for the rows and the 24-hour rings: per mapped
/// container, its model and name, and its sample (µs, CPU %, memory bytes) if running.
#[derive(Debug, PartialEq)]
pub struct RemoteUsage {
    pub model: String,
    pub instance: String,
    pub sample: Option<(i64, Option<f64>, Option<u64>)>,
}

impl Containers {
    pub fn set_docker(&mut self, docker: DockerView) {
        // Without a connection nothing is known: figures go back to null, not stale.
        if docker.state != DockerState::Connected && !self.by_id.is_empty() {
            // Those parked at the last loss that did not come back are gone for good.
            for (model, counted) in std::mem::take(&mut self.parked).into_values() {
                retire(&mut self.retired, &model, &counted);
            }
            for (id, e) in std::mem::take(&mut self.by_id) {
                self.parked.insert(id, (e.info.model, e.counted));
            }
        }
        self.docker = docker;
    }

    /// Adds or updates a container. A container that is not running has no figures.
    pub fn upsert(&mut self, info: ContainerInfo) {
        let running = info.state == "running";
        let e = match self.by_id.entry(info.id.clone()) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let e = e.into_mut();
                e.info = info;
                if !running {
                    e.sample = None;
                }
                e
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                let was = self.parked.remove(&info.id).map(|(_, c)| c);
                v.insert(Entry::new(info, None, was))
            }
        };
        let gone = e.recount();
        retire(&mut self.retired, &e.info.model, &gone);
    }

    pub fn remove(&mut self, id: &str) {
        if let Some(e) = self.by_id.remove(id) {
            retire(&mut self.retired, &e.info.model, &e.counted);
        }
    }

    /// Stores a sample; returns the model and the instance name it belongs to, for the rings.
    pub fn sample(&mut self, sample: ContainerSample) -> Option<(String, String)> {
        let e = self.by_id.get_mut(&sample.id)?;
        // A sample in flight when the container stopped must not bring its figures back.
        if e.info.state != "running" {
            return None;
        }
        e.sample = Some(sample);
        let gone = e.recount();
        retire(&mut self.retired, &e.info.model, &gone);
        Some((e.info.model.clone(), e.info.name.clone()))
    }

    /// Marks an event on the container's model timeline.
    pub fn event(&mut self, ev: ContainerEvent) {
        let Some(e) = self.by_id.get_mut(&ev.id) else {
            return;
        };
        mark_event(&mut self.events, e, ev);
    }

    /// Applies an agent's picture of its host: it replaces what was known of the host.
    /// Containers the agent could not map are mapped by `instances` (event instances
    /// and their models), as local ones are; the rest are left out, as are models not in
    /// `only` (`--models`) when it names any. Returns the
    /// samples for the rings, or `None` when the picture is refused (too many hosts,
    /// older than the last one, or too old to be the present by the host's own clock).
    pub fn apply_remote(
        &mut self,
        res: Resources,
        rejected: usize,
        now_ms: i64,
        instances: &HashMap<String, String>,
        only: &[String],
    ) -> Option<Vec<RemoteUsage>> {
        if !self.hosts.contains_key(&res.host) && self.hosts.len() >= MAX_AGENT_HOSTS {
            self.refused_hosts += 1;
            return None;
        }
        let interval_ms = i64::from(res.interval_ms);
        let host = self.hosts.entry(res.host.clone()).or_insert_with(|| Host {
            version: String::new(),
            interval_ms,
            sent_us: i64::MIN,
            heard: None,
            offset_ms: 0,
            told_late: false,
            seen_ms: now_ms,
            silent: false,
            dropped: 0,
            rejected: 0,
            by_id: BTreeMap::new(),
        });
        host.rejected += rejected as u64;
        host.dropped += res.dropped;
        if res.ts_us <= host.sent_us {
            return None;
        }
        // A replayed or delayed picture (a durable queue after a restart) is the past, by
        // the agent's own clock: one a few seconds behind or ahead of this monitor's is
        // no reason to refuse a live host. Pictures that come as far apart as they were
        // sent are live, and their lag is that clock's offset; a backlog comes at once.
        let ts_ms = res.ts_us / 1000;
        let lag_ms = now_ms - ts_ms;
        if let Some((came, sent)) = host.heard {
            let (came_apart, sent_apart) = (now_ms - came, ts_ms - sent);
            if sent_apart > 0 && (came_apart - sent_apart).abs() <= sent_apart / 2 {
                host.offset_ms = lag_ms;
            }
        }
        host.heard = Some((now_ms, ts_ms));
        let late_ms = lag_ms - host.offset_ms;
        if late_ms > (SILENT_AFTER_INTERVALS * interval_ms).max(SILENT_AFTER_MIN_MS) {
            if !host.told_late {
                host.told_late = true;
                tracing::warn!(
                    "refused a picture from the agent on {}: {:.1} s old by this monitor's \
                     clock (a replayed backlog, or that host's clock is that far behind); \
                     taken again from its next pictures if they come in step",
                    res.host,
                    lag_ms as f64 / 1000.0,
                );
            }
            return None;
        }
        host.told_late = false;
        host.version = res.agent.version;
        host.interval_ms = interval_ms;
        host.sent_us = res.ts_us;
        host.seen_ms = now_ms;
        host.silent = false;
        let mut old = std::mem::take(&mut host.by_id);
        let mut usage = Vec::new();
        for c in res.containers {
            let Some(model) = c
                .model
                .clone()
                .or_else(|| instance_model(instances, &c).cloned())
            else {
                continue;
            };
            if !only.is_empty() && !only.contains(&model) {
                continue;
            }
            let was = old
                .remove(&c.id)
                .map(|e| e.counted)
                .or_else(|| self.forgotten.remove(&c.id).map(|(_, c)| c));
            let mut entry = remote_entry(c, model, was);
            let gone = entry.recount();
            // A container this monitor reads itself is counted as local only.
            if !self.by_id.contains_key(&entry.info.id) {
                retire(&mut self.retired, &entry.info.model, &gone);
            }
            usage.push(RemoteUsage {
                model: entry.info.model.clone(),
                instance: entry.info.name.clone(),
                sample: entry
                    .sample
                    .as_ref()
                    .map(|s| (s.ts_us, s.cpu_percent, s.mem_bytes)),
            });
            host.by_id.insert(entry.info.id.clone(), entry);
        }
        for ev in res.events {
            if let Some(e) = host.by_id.get_mut(&ev.id) {
                let ev = ContainerEvent {
                    id: ev.id,
                    at_ms: ev.at_ms,
                    action: ev.action,
                    detail: ev.detail,
                };
                mark_event(&mut self.events, e, ev);
            }
        }
        // Gone from the host, or no longer mapped to a model.
        for (id, e) in old {
            if !self.by_id.contains_key(&id) {
                retire(&mut self.retired, &e.info.model, &e.counted);
            }
        }
        Some(usage)
    }

    /// Hosts whose agents have gone quiet by `now_ms`, each returned once when it goes
    /// quiet: their containers' figures are unknown from then on, not zero. A host
    /// quiet for [`FORGET_HOST_AFTER_MS`] is forgotten: what its replicas had counted
    /// stays in their models' counters.
    pub fn silence(&mut self, now_ms: i64) -> Vec<String> {
        let gone: Vec<String> = self
            .hosts
            .iter()
            .filter(|(_, h)| now_ms - h.seen_ms >= FORGET_HOST_AFTER_MS)
            .map(|(name, _)| name.clone())
            .collect();
        if !gone.is_empty() {
            for (model, counted) in std::mem::take(&mut self.forgotten).into_values() {
                retire(&mut self.retired, &model, &counted);
            }
        }
        for name in gone {
            let Some(host) = self.hosts.remove(&name) else {
                continue;
            };
            tracing::info!(
                "forgot the agent on {name}: silent for {} min",
                FORGET_HOST_AFTER_MS / 60_000
            );
            for (id, e) in host.by_id {
                if !self.by_id.contains_key(&id) {
                    self.forgotten.insert(id, (e.info.model, e.counted));
                }
            }
        }
        let mut quiet = Vec::new();
        for (name, host) in &mut self.hosts {
            if !host.silent && now_ms >= host.silent_at_ms() {
                host.silent = true;
                for e in host.by_id.values_mut() {
                    e.sample = None;
                }
                quiet.push(name.clone());
            }
        }
        quiet
    }

    /// The agents as outputs show them, by host name.
    pub fn agents_view(&self) -> Vec<AgentView> {
        let mut out: Vec<AgentView> = self
            .hosts
            .iter()
            .map(|(name, h)| AgentView {
                host: name.clone(),
                version: h.version.clone(),
                state: if h.silent {
                    AgentState::Silent
                } else {
                    AgentState::Live
                },
                last_seen_ms: h.seen_ms,
                interval_ms: h.interval_ms,
                containers: h.by_id.len(),
                dropped: h.dropped,
                rejected: h.rejected,
            })
            .collect();
        if self.refused_hosts > 0 {
            out.push(AgentView {
                host: OTHER.to_owned(),
                state: AgentState::Refused,
                rejected: self.refused_hosts,
                ..AgentView::default()
            });
        }
        out
    }

    /// The Docker state as outputs show it.
    pub fn docker_view(&self) -> DockerView {
        DockerView {
            containers: self.by_id.len(),
            ..self.docker.clone()
        }
    }

    /// Per model: its replicas on every host and their sums. A model with a replica on a
    /// silent host has unknown sums: a total missing a part would look like a drop.
    pub fn by_model(&self) -> BTreeMap<String, ModelResources> {
        let mut out: BTreeMap<String, ModelResources> = BTreeMap::new();
        for e in self.by_id.values() {
            let r = out.entry(e.info.model.clone()).or_default();
            r.containers.push(container_view(e, None));
        }
        for (name, host) in &self.hosts {
            // An agent on this monitor's own host reports containers the monitor reads
            // itself: a container id is unique, so one seen here counts once, as local.
            for e in host
                .by_id
                .values()
                .filter(|e| !self.by_id.contains_key(&e.info.id))
            {
                let r = out.entry(e.info.model.clone()).or_default();
                r.containers.push(container_view(e, Some(name)));
                if host.silent && !r.silent_hosts.contains(name) {
                    r.silent_hosts.push(name.clone());
                }
            }
        }
        for (model, r) in &mut out {
            r.containers
                .sort_by(|a, b| (&a.host, &a.name).cmp(&(&b.host, &b.name)));
            sum_replicas(r);
            if !r.silent_hosts.is_empty() {
                r.usage = Usage::default();
            }
            if let Some(ev) = self.events.get(model) {
                r.events = ev.iter().cloned().collect();
            }
        }
        out
    }

    /// Per model with a replica, as [`Containers::by_model`]: its counters, which never
    /// go back (what its replicas count now, those retired and those parked).
    pub fn counters(&self) -> BTreeMap<String, ResourceCounters> {
        let mut out: BTreeMap<String, ResourceCounters> = BTreeMap::new();
        let remote = self
            .hosts
            .values()
            .flat_map(|h| h.by_id.values())
            .filter(|e| !self.by_id.contains_key(&e.info.id));
        for e in self.by_id.values().chain(remote) {
            out.entry(e.info.model.clone()).or_default().add(&e.counted);
        }
        let parked = self
            .parked
            .values()
            .chain(self.forgotten.values())
            .map(|(model, c)| (model, c));
        for (model, c) in self.retired.iter().chain(parked) {
            if let Some(r) = out.get_mut(model) {
                r.add(c);
            }
        }
        out
    }
}

/// Adds what a replica had counted to its model's retired counts.
fn retire(retired: &mut BTreeMap<String, ResourceCounters>, model: &str, gone: &ResourceCounters) {
    if gone.is_zero() {
        return;
    }
    match retired.get_mut(model) {
        Some(r) => r.add(gone),
        None => {
            retired.insert(model.to_owned(), *gone);
        }
    }
}

/// Counts and keeps a Docker event on its model's timeline.
fn mark_event(
    events: &mut BTreeMap<String, VecDeque<ContainerEventView>>,
    e: &mut Entry,
    ev: ContainerEvent,
) {
    if ev.action == "oom" {
        e.counted.oom_kills += 1;
    }
    let list = events.entry(e.info.model.clone()).or_default();
    if list.len() >= EVENTS_PER_MODEL {
        list.pop_front();
    }
    list.push_back(ContainerEventView {
        at_ms: ev.at_ms,
        container: e.info.name.clone(),
        action: ev.action,
        detail: ev.detail,
    });
}

/// The model of a container an agent could not map: the one whose events name it as
/// their instance (inside Docker an app's hostname is the short container id).
fn instance_model<'a>(
    instances: &'a HashMap<String, String>,
    c: &RemoteContainer,
) -> Option<&'a String> {
    let short = c.id.get(..12).unwrap_or(&c.id);
    [Some(short), c.hostname.as_deref(), Some(c.name.as_str())]
        .into_iter()
        .flatten()
        .find_map(|k| instances.get(k))
}

fn remote_entry(c: RemoteContainer, model: String, was: Counted) -> Entry {
    let sample = c.sample.map(|s: RemoteSample| ContainerSample {
        id: c.id.clone(),
        ts_us: s.ts_us,
        cpu_percent: s.cpu_percent,
        cpu_seconds: s.cpu_seconds,
        mem_bytes: s.mem_bytes,
        mem_limit_bytes: s.mem_limit_bytes,
        net_rx_bytes_per_s: s.net_rx_bytes_per_s,
        net_tx_bytes_per_s: s.net_tx_bytes_per_s,
        blk_read_bytes: s.blk_read_bytes,
        blk_write_bytes: s.blk_write_bytes,
        pids: s.pids,
        online_cpus: s.online_cpus,
    });
    let running = c.state == "running";
    let info = ContainerInfo {
        id: c.id,
        name: c.name,
        model,
        hostname: c.hostname,
        state: c.state,
        health: c.health,
        restarts: c.restarts,
        oom_killed: c.oom_killed,
        cpu_limit_cores: c.cpu_limit_cores,
    };
    // As for local containers: one that is not running has no figures.
    Entry::new(info, sample.filter(|_| running), was)
}

fn container_view(e: &Entry, host: Option<&String>) -> ContainerView {
    let s = e.sample.as_ref();
    let cpu = s.and_then(|s| s.cpu_percent);
    let mem = s.and_then(|s| s.mem_bytes);
    let limit = s.and_then(|s| s.mem_limit_bytes);
    // What it may use: its CPU limit, or every core of its host.
    let cores = e
        .info
        .cpu_limit_cores
        .or_else(|| s.and_then(|s| s.online_cpus).map(f64::from));
    ContainerView {
        id: e.info.id.chars().take(12).collect(),
        name: e.info.name.clone(),
        host: host.cloned(),
        state: e.info.state.clone(),
        health: e.info.health.clone(),
        restarts: e.info.restarts,
        oom_kills: e.counted.oom_kills,
        oom_killed: e.info.oom_killed,
        usage: Usage {
            cpu_percent: cpu,
            cpu_limit_percent: cpu.zip(cores).map(|(c, l)| c / l),
            cpu_cores: cores,
            cpu_seconds: s.and_then(|s| s.cpu_seconds),
            mem_bytes: mem,
            mem_limit_bytes: limit,
            mem_percent: percent(mem, limit),
            net_rx_bytes_per_s: s.and_then(|s| s.net_rx_bytes_per_s),
            net_tx_bytes_per_s: s.and_then(|s| s.net_tx_bytes_per_s),
            blk_read_bytes: s.and_then(|s| s.blk_read_bytes),
            blk_write_bytes: s.and_then(|s| s.blk_write_bytes),
            pids: s.and_then(|s| s.pids),
        },
        sampled_at_ms: s.map(|s| s.ts_us / 1000),
    }
}

fn percent(used: Option<u64>, limit: Option<u64>) -> Option<f64> {
    match (used, limit) {
        (Some(u), Some(l)) if l > 0 => Some(u as f64 / l as f64 * 100.0),
        _ => None,
    }
}

/// A sum over the replicas that have the figure; `None` when none has it.
fn sum<T: Copy + std::ops::Add<Output = T>>(xs: impl Iterator<Item = Option<T>>) -> Option<T> {
    xs.flatten().reduce(|a, b| a + b)
}

/// Lower is worse: the model shows its worst replica.
fn state_rank(state: &str) -> u8 {
    match state {
        "dead" => 0,
        "restarting" => 1,
        "exited" => 2,
        "removing" => 3,
        "paused" => 4,
        "created" => 5,
        "running" => 7,
        _ => 6,
    }
}

fn health_rank(health: &str) -> u8 {
    match health {
        "unhealthy" => 0,
        "starting" => 1,
        "healthy" => 3,
        _ => 2,
    }
}

fn sum_replicas(r: &mut ModelResources) {
    let c = &r.containers;
    let u = |f: fn(&Usage) -> Option<f64>| sum(c.iter().map(|c| f(&c.usage)));
    let n = |f: fn(&Usage) -> Option<u64>| sum(c.iter().map(|c| f(&c.usage)));
    // Only replicas with both figures, so a missing sample does not look like idle cores.
    let both = || {
        c.iter()
            .filter_map(|c| c.usage.cpu_percent.zip(c.usage.cpu_cores))
    };
    let cpu_cores = sum(both().map(|(_, k)| Some(k)));
    let (mem_bytes, mem_limit_bytes) = (n(|u| u.mem_bytes), n(|u| u.mem_limit_bytes));
    r.usage = Usage {
        cpu_percent: u(|u| u.cpu_percent),
        cpu_limit_percent: sum(both().map(|(u, _)| Some(u)))
            .zip(cpu_cores)
            .filter(|(_, k)| *k > 0.0)
            .map(|(u, k)| u / k),
        cpu_cores,
        cpu_seconds: u(|u| u.cpu_seconds),
        mem_bytes,
        mem_limit_bytes,
        mem_percent: percent(mem_bytes, mem_limit_bytes),
        net_rx_bytes_per_s: u(|u| u.net_rx_bytes_per_s),
        net_tx_bytes_per_s: u(|u| u.net_tx_bytes_per_s),
        blk_read_bytes: n(|u| u.blk_read_bytes),
        blk_write_bytes: n(|u| u.blk_write_bytes),
        pids: n(|u| u.pids),
    };
    r.restarts = c.iter().map(|c| c.restarts).sum();
    r.oom_kills = c.iter().map(|c| c.oom_kills).sum();
    r.state = c
        .iter()
        .map(|c| c.state.as_str())
        .min_by_key(|s| state_rank(s))
        .unwrap_or("unknown")
        .to_owned();
    r.health = c
        .iter()
        .filter_map(|c| c.health.as_deref())
        .min_by_key(|h| health_rank(h))
        .map(str::to_owned);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, name: &str, model: &str, state: &str) -> ContainerInfo {
        ContainerInfo {
            id: id.into(),
            name: name.into(),
            model: model.into(),
            hostname: None,
            state: state.into(),
            health: None,
            restarts: 0,
            oom_killed: false,
            cpu_limit_cores: None,
        }
    }

    fn sample(id: &str, cpu: f64, mem: u64) -> ContainerSample {
        ContainerSample {
            id: id.into(),
            ts_us: 1_000_000,
            cpu_percent: Some(cpu),
            mem_bytes: Some(mem),
            mem_limit_bytes: Some(1000),
            ..ContainerSample::default()
        }
    }

    #[test]
    fn replicas_are_summed_per_model_and_shown_per_instance() {
        let mut c = Containers::default();
        c.set_docker(DockerView {
            state: DockerState::Connected,
            ..DockerView::default()
        });
        c.upsert(info("aaaa", "iris-1", "iris", "running"));
        c.upsert(info("bbbb", "iris-2", "iris", "running"));
        c.sample(sample("aaaa", 50.0, 100));
        c.sample(sample("bbbb", 25.0, 300));
        let m = &c.by_model()["iris"];
        assert_eq!(m.usage.cpu_percent, Some(75.0));
        assert_eq!(m.usage.mem_bytes, Some(400));
        assert_eq!(m.usage.mem_limit_bytes, Some(2000));
        assert_eq!(m.usage.mem_percent, Some(20.0));
        assert_eq!(m.containers.len(), 2);
        assert_eq!(m.state, "running");
    }

    #[test]
    fn a_stopped_container_has_no_figures_and_the_model_shows_it() {
        let mut c = Containers::default();
        c.upsert(info("aaaa", "iris-1", "iris", "running"));
        c.upsert(info("bbbb", "iris-2", "iris", "running"));
        c.sample(sample("aaaa", 50.0, 100));
        c.upsert(info("aaaa", "iris-1", "iris", "exited"));
        assert_eq!(c.sample(sample("aaaa", 50.0, 100)), None, "late sample");
        let m = &c.by_model()["iris"];
        assert_eq!(
            m.usage.cpu_percent, None,
            "no replica has a figure: unknown, not 0"
        );
        assert_eq!(m.state, "exited");
    }

    #[test]
    fn oom_events_are_counted_and_kept_on_the_timeline() {
        let mut c = Containers::default();
        c.upsert(info("aaaa", "iris-1", "iris", "running"));
        for action in ["oom", "die", "start"] {
            c.event(ContainerEvent {
                id: "aaaa".into(),
                at_ms: 5,
                action: action.into(),
                detail: None,
            });
        }
        let m = &c.by_model()["iris"];
        assert_eq!(m.oom_kills, 1);
        let actions: Vec<_> = m.events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["oom", "die", "start"]);
    }

    #[test]
    fn losing_docker_drops_every_figure() {
        let mut c = Containers::default();
        c.upsert(info("aaaa", "iris-1", "iris", "running"));
        c.sample(sample("aaaa", 50.0, 100));
        c.set_docker(DockerView {
            state: DockerState::Unavailable,
            ..DockerView::default()
        });
        assert!(c.by_model().is_empty());
        assert_eq!(c.docker_view().containers, 0);
    }

    fn picture(host: &str, ts_ms: i64, containers: Vec<RemoteContainer>) -> Resources {
        Resources {
            host: host.into(),
            agent: modelmon_contract::AgentInfo {
                version: "0.1.0".into(),
                pid: None,
            },
            ts_us: ts_ms * 1000,
            interval_ms: 1000,
            dropped: 0,
            containers,
            events: Vec::new(),
        }
    }

    fn remote(id: &str, model: Option<&str>, cpu: f64, mem: u64) -> RemoteContainer {
        RemoteContainer {
            id: id.into(),
            name: format!("c-{id}"),
            model: model.map(Into::into),
            hostname: None,
            state: "running".into(),
            health: None,
            restarts: 0,
            oom_killed: false,
            cpu_limit_cores: None,
            sample: Some(RemoteSample {
                ts_us: 1_000_000,
                cpu_percent: Some(cpu),
                mem_bytes: Some(mem),
                ..RemoteSample::default()
            }),
        }
    }

    const T: i64 = 1_800_000_000_000;

    #[test]
    fn replicas_on_two_hosts_and_this_one_sum_per_model() {
        let mut c = Containers::default();
        c.upsert(info("local000000a", "iris-0", "iris", "running"));
        c.sample(sample("local000000a", 10.0, 100));
        let none = HashMap::new();
        let a = picture(
            "gpu-a",
            T,
            vec![remote("aaaaaaaaaaaa", Some("iris"), 50.0, 200)],
        );
        let b = picture(
            "gpu-b",
            T,
            vec![remote("bbbbbbbbbbbb", Some("iris"), 25.0, 300)],
        );
        assert!(c.apply_remote(a, 0, T, &none, &[]).is_some());
        let usage = c.apply_remote(b, 0, T, &none, &[]).expect("applied");
        assert_eq!(usage[0].model, "iris");
        let m = &c.by_model()["iris"];
        assert_eq!(m.usage.cpu_percent, Some(85.0));
        assert_eq!(m.usage.mem_bytes, Some(600));
        let hosts: Vec<_> = m.containers.iter().map(|c| c.host.as_deref()).collect();
        assert_eq!(hosts, [None, Some("gpu-a"), Some("gpu-b")]);
        assert_eq!(c.docker_view().containers, 1, "the local engine's count");
    }

    #[test]
    fn a_new_picture_replaces_its_host_and_an_older_one_is_refused() {
        let mut c = Containers::default();
        let none = HashMap::new();
        let two = vec![
            remote("aaaaaaaaaaaa", Some("iris"), 50.0, 200),
            remote("cccccccccccc", Some("iris"), 50.0, 200),
        ];
        c.apply_remote(picture("gpu-a", T, two), 0, T, &none, &[]);
        let one = vec![remote("aaaaaaaaaaaa", Some("iris"), 20.0, 200)];
        c.apply_remote(picture("gpu-a", T + 1000, one), 0, T + 1000, &none, &[]);
        let m = &c.by_model()["iris"];
        assert_eq!(m.containers.len(), 1, "the removed container is gone");
        assert_eq!(m.usage.cpu_percent, Some(20.0));
        let late = picture(
            "gpu-a",
            T,
            vec![remote("aaaaaaaaaaaa", Some("iris"), 99.0, 1)],
        );
        assert!(c.apply_remote(late, 0, T + 1500, &none, &[]).is_none());
        assert_eq!(c.by_model()["iris"].usage.cpu_percent, Some(20.0));
        let replayed = picture("gpu-a", T + 2000, Vec::new());
        assert!(
            c.apply_remote(replayed, 0, T + 60_000, &none, &[])
                .is_none(),
            "a minute-old picture is not the present"
        );
    }

    #[test]
    fn a_silent_agent_turns_its_models_figures_unknown_once_and_back() {
        let mut c = Containers::default();
        let none = HashMap::new();
        let a = vec![remote("aaaaaaaaaaaa", Some("iris"), 50.0, 200)];
        c.apply_remote(picture("gpu-a", T, a.clone()), 0, T, &none, &[]);
        let b = vec![remote("bbbbbbbbbbbb", Some("iris"), 25.0, 300)];
        c.apply_remote(picture("gpu-b", T, b), 0, T, &none, &[]);
        assert!(
            c.silence(T + 4_999).is_empty(),
            "3 intervals, but at least 5 s"
        );
        // gpu-b keeps talking; gpu-a does not.
        let b = vec![remote("bbbbbbbbbbbb", Some("iris"), 25.0, 300)];
        c.apply_remote(picture("gpu-b", T + 4_000, b), 0, T + 4_000, &none, &[]);
        assert_eq!(c.silence(T + 5_000), ["gpu-a"]);
        assert!(c.silence(T + 6_000).is_empty(), "said once");
        let m = &c.by_model()["iris"];
        assert_eq!(m.silent_hosts, ["gpu-a"]);
        assert_eq!(m.usage.cpu_percent, None, "unknown, not 25 %");
        assert_eq!(m.usage.mem_bytes, None);
        let agents = c.agents_view();
        assert_eq!(agents[0].state, AgentState::Silent);
        assert_eq!(agents[1].state, AgentState::Live);
        // Back.
        c.apply_remote(picture("gpu-a", T + 7_000, a), 0, T + 7_000, &none, &[]);
        assert_eq!(c.by_model()["iris"].usage.cpu_percent, Some(75.0));
    }

    #[test]
    fn unmapped_containers_are_mapped_by_event_instance_or_left_out() {
        let mut c = Containers::default();
        let instances = HashMap::from([("dddddddddddd".to_owned(), "ranker".to_owned())]);
        let pic = picture(
            "gpu-a",
            T,
            vec![
                remote("dddddddddddd0123", None, 10.0, 1),
                remote("eeeeeeeeeeee0123", None, 10.0, 1),
            ],
        );
        c.apply_remote(pic, 0, T, &instances, &[]);
        let by = c.by_model();
        assert_eq!(by.len(), 1);
        assert_eq!(by["ranker"].containers[0].id, "dddddddddddd");
        assert_eq!(c.agents_view()[0].containers, 1);
    }

    #[test]
    fn a_container_this_monitor_reads_itself_counts_once_though_an_agent_reports_it() {
        let mut c = Containers::default();
        c.upsert(info("aaaaaaaaaaaa", "c-aaaaaaaaaaaa", "iris", "running"));
        c.sample(sample("aaaaaaaaaaaa", 10.0, 100));
        let pic = picture(
            "gpu-a",
            T,
            vec![remote("aaaaaaaaaaaa", Some("iris"), 12.0, 110)],
        );
        c.apply_remote(pic, 0, T, &HashMap::new(), &[]);
        let m = &c.by_model()["iris"];
        assert_eq!(m.containers.len(), 1);
        assert_eq!(m.containers[0].host, None, "the monitor's own reading");
        assert_eq!(m.usage.cpu_percent, Some(10.0));
        assert_eq!(m.usage.mem_bytes, Some(100));
    }

    #[test]
    fn with_models_named_only_their_containers_are_kept() {
        let mut c = Containers::default();
        let pic = picture(
            "gpu-a",
            T,
            vec![
                remote("aaaaaaaaaaaa", Some("iris"), 1.0, 1),
                remote("bbbbbbbbbbbb", Some("ranker"), 1.0, 1),
            ],
        );
        c.apply_remote(pic, 0, T, &HashMap::new(), &["ranker".to_owned()]);
        let models: Vec<String> = c.by_model().into_keys().collect();
        assert_eq!(models, ["ranker"]);
    }

    #[test]
    fn hosts_past_the_cap_are_refused_and_counted_as_other() {
        let mut c = Containers::default();
        let none = HashMap::new();
        for i in 0..=MAX_AGENT_HOSTS {
            let pic = picture(
                &format!("h{i}"),
                T,
                vec![remote("aaaaaaaaaaaa", Some("m"), 1.0, 1)],
            );
            c.apply_remote(pic, 0, T, &none, &[]);
        }
        let agents = c.agents_view();
        assert_eq!(agents.len(), MAX_AGENT_HOSTS + 1);
        let other = agents.last().expect("the (other) row");
        assert_eq!(
            (other.host.as_str(), other.state, other.rejected),
            (OTHER, AgentState::Refused, 1)
        );
    }

    #[test]
    fn a_remote_replica_gone_from_its_hosts_picture_keeps_its_counts_in_the_models() {
        let mut c = Containers::default();
        let none = HashMap::new();
        let replica = |id: &str, cpu_seconds: f64| {
            let mut r = remote(id, Some("iris"), 1.0, 1);
            r.restarts = 1;
            if let Some(s) = r.sample.as_mut() {
                s.cpu_seconds = Some(cpu_seconds);
            }
            r
        };
        let two = vec![replica("aaaaaaaaaaaa", 10.0), replica("bbbbbbbbbbbb", 6.0)];
        c.apply_remote(picture("gpu-a", T, two), 0, T, &none, &[]);
        let one = vec![replica("aaaaaaaaaaaa", 11.0)];
        c.apply_remote(picture("gpu-a", T + 1000, one), 0, T + 1000, &none, &[]);
        assert_eq!(
            c.by_model()["iris"].usage.cpu_seconds,
            Some(11.0),
            "the replicas running now"
        );
        let m = &c.counters()["iris"];
        assert_eq!(m.cpu_seconds, Some(17.0), "and what b had used");
        assert_eq!(m.restarts, 2);
        // The same replica in the next picture is not counted twice.
        let one = vec![replica("aaaaaaaaaaaa", 12.0)];
        c.apply_remote(picture("gpu-a", T + 2000, one), 0, T + 2000, &none, &[]);
        assert_eq!(c.counters()["iris"].cpu_seconds, Some(18.0));
    }

    #[test]
    fn oom_kills_of_a_remote_container_outlive_the_picture_that_told_them() {
        let mut c = Containers::default();
        let none = HashMap::new();
        let mut pic = picture(
            "gpu-a",
            T,
            vec![remote("aaaaaaaaaaaa", Some("iris"), 1.0, 1)],
        );
        pic.events.push(modelmon_contract::RemoteEvent {
            id: "aaaaaaaaaaaa".into(),
            at_ms: T,
            action: "oom".into(),
            detail: Some("killed: out of memory".into()),
        });
        c.apply_remote(pic, 0, T, &none, &[]);
        let next = picture(
            "gpu-a",
            T + 1000,
            vec![remote("aaaaaaaaaaaa", Some("iris"), 1.0, 1)],
        );
        c.apply_remote(next, 0, T + 1000, &none, &[]);
        let m = &c.by_model()["iris"];
        assert_eq!(m.oom_kills, 1);
        assert_eq!(m.events[0].action, "oom");
    }

    #[test]
    fn a_host_silent_for_ten_minutes_is_forgotten_and_its_counts_stay_with_its_models() {
        let mut c = Containers::default();
        let none = HashMap::new();
        let replica = |id: &str, cpu: f64, cpu_seconds: f64| {
            let mut r = remote(id, Some("iris"), cpu, 100);
            r.restarts = 1;
            if let Some(s) = r.sample.as_mut() {
                s.cpu_seconds = Some(cpu_seconds);
            }
            r
        };
        let old = |at: i64, cpu_seconds: f64| {
            picture(
                "old-host",
                at,
                vec![replica("aaaaaaaaaaaa", 40.0, cpu_seconds)],
            )
        };
        c.apply_remote(old(T, 30.0), 0, T, &none, &[]);
        // gpu-b goes on talking; old-host was decommissioned.
        let mut now = T;
        while now < T + FORGET_HOST_AFTER_MS {
            let b = vec![replica("bbbbbbbbbbbb", 10.0, 5.0)];
            c.apply_remote(picture("gpu-b", now, b), 0, now, &none, &[]);
            c.silence(now);
            if now >= T + SILENT_AFTER_MIN_MS {
                assert_eq!(c.by_model()["iris"].silent_hosts, ["old-host"]);
            }
            now += 1000;
        }
        c.apply_remote(
            picture("gpu-b", now, vec![replica("bbbbbbbbbbbb", 10.0, 5.0)]),
            0,
            now,
            &none,
            &[],
        );
        c.silence(now);
        let m = &c.by_model()["iris"];
        assert!(m.silent_hosts.is_empty(), "{:?}", m.silent_hosts);
        assert_eq!(m.usage.cpu_percent, Some(10.0), "known again, from gpu-b");
        assert_eq!(m.containers.len(), 1);
        let hosts: Vec<_> = c.agents_view().into_iter().map(|a| a.host).collect();
        assert_eq!(hosts, ["gpu-b"]);
        let counted = c.counters()["iris"];
        assert_eq!(counted.cpu_seconds, Some(35.0), "its CPU time still counts");
        assert_eq!(counted.restarts, 2);
        // Back after all: it goes on from its counts, not counted twice.
        now += 1000;
        assert!(c.apply_remote(old(now, 31.0), 0, now, &none, &[]).is_some());
        assert_eq!(c.counters()["iris"].cpu_seconds, Some(36.0));
        assert_eq!(c.counters()["iris"].restarts, 2);
    }

    #[test]
    fn forgotten_hosts_make_room_for_new_ones() {
        let mut c = Containers::default();
        let none = HashMap::new();
        let pic = |host: &str, at: i64| {
            picture(host, at, vec![remote("aaaaaaaaaaaa", Some("m"), 1.0, 1)])
        };
        for i in 0..MAX_AGENT_HOSTS {
            c.apply_remote(pic(&format!("h{i}"), T), 0, T, &none, &[]);
        }
        assert!(
            c.apply_remote(pic("renamed", T), 0, T, &none, &[])
                .is_none()
        );
        let later = T + FORGET_HOST_AFTER_MS;
        c.silence(later);
        assert!(
            c.apply_remote(pic("renamed", later), 0, later, &none, &[])
                .is_some()
        );
        let agents = c.agents_view();
        assert_eq!(agents[0].host, "renamed");
        assert_eq!(agents.len(), 2, "and the (other) row of the one refused");
    }

    #[test]
    fn an_agent_whose_clock_is_behind_is_taken_once_its_pictures_come_in_step() {
        let mut c = Containers::default();
        let none = HashMap::new();
        // Its clock is 10 s behind this monitor's; it sends a picture a second.
        let pic = |at: i64, cpu: f64| {
            picture(
                "gpu-a",
                at - 10_000,
                vec![remote("aaaaaaaaaaaa", Some("iris"), cpu, 1)],
            )
        };
        // Alone, the first could be a replayed one: by this clock it is 10 s old.
        assert!(c.apply_remote(pic(T, 10.0), 0, T, &none, &[]).is_none());
        for (k, jitter) in [(1, 0), (2, 120), (3, -80), (4, 300), (5, 0)] {
            let at = T + k * 1000;
            let usage = c.apply_remote(pic(at, 20.0), 0, at + jitter, &none, &[]);
            assert!(usage.is_some(), "picture {k} applied");
        }
        assert!(c.silence(T + 6_000).is_empty(), "live, not silent");
        assert_eq!(c.by_model()["iris"].usage.cpu_percent, Some(20.0));
        assert_eq!(c.agents_view()[0].state, AgentState::Live);
        // A backlog of its pictures that comes all at once is still the past.
        let late = T + 60_000;
        for k in 6..9 {
            let usage = c.apply_remote(pic(T + k * 1000, 99.0), 0, late, &none, &[]);
            assert!(usage.is_none(), "backlog picture {k} refused");
        }
        assert_eq!(c.by_model()["iris"].usage.cpu_percent, Some(20.0));
    }
}
