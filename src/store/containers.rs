//! Containers mapped to models, as the Docker poller reports them: their state, their
//! latest resource sample and the events on their timeline.
//!
//! Plain data only (no bollard here): the poller turns Docker's answers into these
//! types, the store keeps them and sums the replicas of a model in the view.

use std::collections::{BTreeMap, VecDeque};

use super::view::{
    ContainerEventView, ContainerView, DockerState, DockerView, ModelResources, Usage,
};

/// Docker events kept per model for the timeline.
pub const EVENTS_PER_MODEL: usize = 32;

/// What Docker's inspect says about a container mapped to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// Full id.
    pub id: String,
    pub name: String,
    pub model: String,
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
    oom_kills: u64,
}

/// Every container mapped to a model, and the Docker connection's state.
#[derive(Debug, Default)]
pub struct Containers {
    docker: DockerView,
    by_id: BTreeMap<String, Entry>,
    /// Kept across container removals and Docker outages: it is history.
    events: BTreeMap<String, VecDeque<ContainerEventView>>,
}

impl Containers {
    pub fn set_docker(&mut self, docker: DockerView) {
        // Without a connection nothing is known: figures go back to null, not stale.
        if docker.state != DockerState::Connected {
            self.by_id.clear();
        }
        self.docker = docker;
    }

    /// Adds or updates a container. A container that is not running has no figures.
    pub fn upsert(&mut self, info: ContainerInfo) {
        let running = info.state == "running";
        match self.by_id.get_mut(&info.id) {
            Some(e) => {
                e.info = info;
                if !running {
                    e.sample = None;
                }
            }
            None => {
                self.by_id.insert(
                    info.id.clone(),
                    Entry {
                        info,
                        sample: None,
                        oom_kills: 0,
                    },
                );
            }
        }
    }

    pub fn remove(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    /// Stores a sample; returns the model and the instance name it belongs to, for the rings.
    pub fn sample(&mut self, sample: ContainerSample) -> Option<(String, String)> {
        let e = self.by_id.get_mut(&sample.id)?;
        // A sample in flight when the container stopped must not bring its figures back.
        if e.info.state != "running" {
            return None;
        }
        e.sample = Some(sample);
        Some((e.info.model.clone(), e.info.name.clone()))
    }

    /// Marks an event on the container's model timeline.
    pub fn event(&mut self, ev: ContainerEvent) {
        let Some(e) = self.by_id.get_mut(&ev.id) else {
            return;
        };
        if ev.action == "oom" {
            e.oom_kills += 1;
        }
        let list = self.events.entry(e.info.model.clone()).or_default();
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

    /// The Docker state as outputs show it.
    pub fn docker_view(&self) -> DockerView {
        DockerView {
            containers: self.by_id.len(),
            ..self.docker.clone()
        }
    }

    /// Per model: its replicas and their sums.
    pub fn by_model(&self) -> BTreeMap<String, ModelResources> {
        let mut out: BTreeMap<String, ModelResources> = BTreeMap::new();
        for e in self.by_id.values() {
            let r = out.entry(e.info.model.clone()).or_default();
            r.containers.push(container_view(e));
        }
        for (model, r) in &mut out {
            r.containers.sort_by(|a, b| a.name.cmp(&b.name));
            sum_replicas(r);
            if let Some(ev) = self.events.get(model) {
                r.events = ev.iter().cloned().collect();
            }
        }
        out
    }
}

fn container_view(e: &Entry) -> ContainerView {
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
        state: e.info.state.clone(),
        health: e.info.health.clone(),
        restarts: e.info.restarts,
        oom_kills: e.oom_kills,
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
}
