//! Wiring: one ingest source, the store task, and a watch channel of views.
//!
//! The store task is the only writer. It drains its input queue in bursts and, on
//! every refresh tick, publishes a fresh `Arc<View>`; readers clone the `Arc` and never
//! block the writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use modelmon_contract::{ResourcesErrorReason, decode_batch, decode_resources};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::alert::{AlertControl, Alerting, Notifiers, RuleSet};
use crate::clock::now_us;
use crate::config::Config;
use crate::ingest::{self, Input};
use crate::live::Live;
use crate::snapshots::{Snapshots, open_snapshots};
use crate::store::{BrokerState, BrokerView, Store};
use crate::warnings::{Published, WarningLog};

/// Bodies queued between ingest and the store. Together with the broker's prefetch
/// this bounds what the monitor holds in memory when it falls behind.
const INPUT_QUEUE: usize = 1024;
/// How long a clean exit waits for the broker consumer to acknowledge what it handed
/// over: its acknowledgement and its goodbye each give up after 5 s.
const INGEST_STOP: Duration = Duration::from_secs(12);

/// Where events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Amqp,
    Demo,
}

/// A running monitor: the views it publishes (with the alerts judged on each), and its
/// tasks.
pub struct Monitor {
    pub views: watch::Receiver<Live>,
    /// Silence and acknowledge alerts (see docs/alerts.md).
    pub alerts: AlertControl,
    /// Where a reloaded config goes: the alert rules and notifiers to the store task,
    /// the container mapping to the Docker poller.
    reload: mpsc::Sender<(RuleSet, Notifiers)>,
    docker: Option<watch::Sender<ingest::docker::DockerSettings>>,
    tasks: Vec<JoinHandle<()>>,
    /// The broker consumer, stopped in order on a clean exit rather than aborted.
    amqp: Option<(JoinHandle<()>, watch::Sender<bool>)>,
    store: Option<JoinHandle<()>>,
    stop: Option<oneshot::Sender<()>>,
}

impl Monitor {
    /// Starts ingest and the store task. Views are published every `refresh`.
    pub fn start(cfg: &Config, source: Source, refresh: Duration) -> Self {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let (view_tx, views) = watch::channel(Live::default());
        let broker = match source {
            Source::Demo => BrokerView {
                state: BrokerState::Demo,
                ..BrokerView::default()
            },
            Source::Amqp => BrokerView::default(),
        };
        let mut store = Store::new(cfg.store_config());
        if source == Source::Amqp && cfg.docker.enabled {
            // Until the first answer, figures are unknown: not "disabled".
            store.set_docker(crate::store::view::DockerView {
                state: crate::store::view::DockerState::Unavailable,
                error: Some("connecting".to_owned()),
                ..Default::default()
            });
        }
        let snapshots = open_snapshots(cfg, source, &mut store);
        // In stream mode, where the restored history ends.
        let resume = store.stream_next();
        if source == Source::Demo {
            demo_history(&mut store, cfg);
        }
        let (stop, stop_rx) = oneshot::channel();
        let (rules, notifiers) = alerting_parts(cfg);
        let (alerting, alerts) = Alerting::new(rules, notifiers);
        let (reload, reload_rx) = mpsc::channel(1);
        let store = Some(tokio::spawn(store_task(
            store,
            broker,
            rx,
            view_tx,
            refresh,
            snapshots,
            stop_rx,
            (alerting, reload_rx),
        )));
        let mut tasks = Vec::with_capacity(2);
        let mut docker = None;
        // The demo's models have no containers: Docker stays out of it.
        if source == Source::Amqp && cfg.docker.enabled {
            let (settings, settings_rx) =
                watch::channel(ingest::docker::DockerSettings::from_config(cfg));
            docker = Some(settings);
            tasks.push(tokio::spawn(ingest::docker::run(
                settings_rx,
                tx.clone(),
                views.clone(),
            )));
        }
        let mut amqp = None;
        match source {
            Source::Demo => tasks.push(tokio::spawn(ingest::demo::run(
                ingest::demo::default_models(),
                Duration::from_millis(100),
                tx,
            ))),
            Source::Amqp => {
                let (stop_ingest, stop_rx) = watch::channel(false);
                let task = tokio::spawn(ingest::amqp::run(cfg.amqp.clone(), resume, tx, stop_rx));
                amqp = Some((task, stop_ingest));
            }
        }
        Self {
            views,
            alerts,
            reload,
            docker,
            tasks,
            amqp,
            store,
            stop: Some(stop),
        }
    }

    /// Applies what a reloaded config may change while running: alert rules and
    /// thresholds, notifiers (desktop, webhooks, Alertmanager), and the Docker mapping.
    /// The rest (broker, store, history, web) is read at start only.
    pub async fn reload(&self, cfg: &Config) {
        let (rules, notifiers) = alerting_parts(cfg);
        let _ = self.reload.send((rules, notifiers)).await;
        if let Some(docker) = &self.docker {
            docker.send_if_modified(|s| {
                let new = ingest::docker::DockerSettings::from_config(cfg);
                let changed = *s != new;
                *s = new;
                changed
            });
        }
    }

    /// A clean exit: stops ingest, writes the last snapshot and waits for it to be on disk.
    ///
    /// The broker consumer stops first and acknowledges what it handed over, then the
    /// store applies all of it before saving: aborted, it left deliveries applied but
    /// unacknowledged, which the broker gave the next run to count a second time.
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Some((mut task, stop)) = self.amqp.take() {
            let _ = stop.send(true);
            if tokio::time::timeout(INGEST_STOP, &mut task).await.is_err() {
                task.abort();
            }
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(store) = self.store.take() {
            let _ = store.await;
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let amqp = self.amqp.as_ref().map(|(t, _)| t);
        for t in self.tasks.iter().chain(amqp).chain(&self.store) {
            t.abort();
        }
    }
}

/// A demo with no history of the span baselines learn from gets that span played in
/// quietly first; one that ran recently (its snapshot covers any of it) keeps its own.
fn demo_history(store: &mut Store, cfg: &Config) {
    let b = &cfg.alerts.baseline;
    let span_us = i64::try_from((b.learn.0 + b.skip_recent.0).as_micros()).unwrap_or(0);
    let now = now_us();
    let from = now - span_us;
    if store.covered_s(from / 1_000_000, now / 1_000_000) == 0 {
        ingest::demo::backfill(store, &ingest::demo::default_models(), from, now);
    }
}

/// Resolves when the process is asked to stop: Ctrl-C (SIGINT) or SIGTERM.
pub async fn exit_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// The alert rules and notifiers a config asks for (none when alerts are off). The
/// config was validated, so the rules build; an empty set is the safe fallback.
fn alerting_parts(cfg: &Config) -> (RuleSet, Notifiers) {
    if cfg.alerts.enabled {
        (
            RuleSet::new(&cfg.alerts).unwrap_or_default(),
            Notifiers::start(&cfg.notify),
        )
    } else {
        (RuleSet::default(), Notifiers::none())
    }
}

/// SIGHUP, for a service to reload its config. Registered once, so no hangup between
/// two waits is missed (and none kills the process, the default).
pub struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    pub fn new() -> Self {
        Self {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    /// The next hangup; pends for ever where there are none.
    pub async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(s) = &mut self.signal {
            s.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    }
}

impl Default for Hangups {
    fn default() -> Self {
        Self::new()
    }
}

/// Agents whose resources messages are refused, by host, with why. An agent speaks at
/// every interval: each is told once (on stderr and in the TUI's warnings, which keep
/// only the newest 100), and again only after a message of its was accepted or it is
/// refused for another reason.
#[derive(Debug, Default)]
pub struct Refusals(HashMap<String, ResourcesErrorReason>);

/// Applies one input to the store.
pub fn apply(store: &mut Store, broker: &mut BrokerView, refusals: &mut Refusals, input: Input) {
    match input {
        Input::Body {
            body,
            routing_model,
            offset,
        } => {
            let now = now_us();
            match decode_batch(&body, routing_model.as_deref(), now) {
                Ok(batch) => store.apply(&batch, now),
                Err(e) => store.apply_error(&e, routing_model.as_deref(), now),
            }
            if let Some(o) = offset {
                store.stream_applied(o);
            }
        }
        Input::Broker(b) => *broker = b,
        Input::Docker(d) => store.set_docker(d),
        Input::Container(info) => store.container_info(info, now_us()),
        Input::ContainerGone(id) => store.container_gone(&id),
        Input::Sample(s) => store.container_sample(s),
        Input::ContainerEvent(e) => store.container_event(e),
        Input::Resources { body, routing_host } => {
            let now = now_us();
            let host = routing_host.as_deref().unwrap_or("an unnamed host");
            match decode_resources(&body, routing_host.as_deref(), now) {
                Ok(d) => {
                    for r in &d.rejects {
                        tracing::debug!("agent resources: {} {}: {}", r.kind, r.index, r.detail);
                    }
                    refusals.0.remove(host);
                    store.agent_resources(d.resources, d.rejects.len(), now);
                }
                Err(e) if refusals.0.get(host) == Some(&e.reason) => {
                    tracing::debug!("refused a resources message from {host}: {e}");
                }
                Err(e) => {
                    refusals.0.insert(host.to_owned(), e.reason);
                    tracing::warn!(
                        "refused a resources message from {host}: {e} (its next ones refused \
                         for the same reason are logged at debug level only)"
                    );
                }
            }
        }
    }
}

/// A clean exit, whichever way it comes: the last snapshot and the alert state are written.
async fn save_last(snapshots: Option<&mut Snapshots>, store: &mut Store, alerting: &Alerting) {
    if let Some(s) = snapshots {
        s.finish(store).await;
        alerting.save(s.dir(), now_us() / 1000);
    }
}

// The store task owns everything it writes; bundling them would only rename the list.
#[allow(clippy::too_many_arguments)]
async fn store_task(
    mut store: Store,
    mut broker: BrokerView,
    mut rx: mpsc::Receiver<Input>,
    views: watch::Sender<Live>,
    refresh: Duration,
    mut snapshots: Option<Snapshots>,
    mut stop: oneshot::Receiver<()>,
    (mut alerting, mut reload): (Alerting, mpsc::Receiver<(RuleSet, Notifiers)>),
) {
    if let Some(s) = &snapshots {
        alerting.load(s.dir(), now_us() / 1000);
    }
    let mut tick = tokio::time::interval(refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let period = snapshots
        .as_ref()
        .map_or(Duration::from_secs(3600), |s| s.interval);
    let mut snap_tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    snap_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warnings = Published::default();
    let mut refusals = Refusals::default();
    loop {
        tokio::select! {
            // Views first: under a flood of input the display must still refresh on time.
            biased;
            _ = &mut stop => {
                // Ingest has stopped, its inputs queued here already acknowledged to the
                // broker: the snapshot must hold them, or nobody would count them. The
                // bound keeps a source still sending (Docker's streams) from holding the exit.
                for _ in 0..2 * INPUT_QUEUE {
                    match rx.try_recv() {
                        Ok(input) => apply(&mut store, &mut broker, &mut refusals, input),
                        Err(_) => break,
                    }
                }
                save_last(snapshots.as_mut(), &mut store, &alerting).await;
                return;
            }
            _ = tick.tick() => {
                let now = now_us();
                for host in store.silent_agents(now) {
                    tracing::warn!(
                        "the agent on {host} has gone silent: its containers' figures are \
                         unknown until it publishes again"
                    );
                }
                let view = Arc::new(store.view(now, broker.clone()));
                // Judged here, on this very view, so the alerts published beside it
                // match its figures exactly.
                let alerts = alerting.tick(&view, now / 1000);
                let warnings = warnings.latest(WarningLog::global());
                if views.send(Live { view, alerts, warnings }).is_err() {
                    return;
                }
            }
            input = rx.recv() => {
                let Some(input) = input else {
                    save_last(snapshots.as_mut(), &mut store, &alerting).await;
                    return;
                };
                apply(&mut store, &mut broker, &mut refusals, input);
                // Drain what is already queued without going back to the scheduler.
                for _ in 0..256 {
                    match rx.try_recv() {
                        Ok(input) => apply(&mut store, &mut broker, &mut refusals, input),
                        Err(_) => break,
                    }
                }
            }
            Some((rules, notifiers)) = reload.recv() => alerting.reload(rules, notifiers),
            _ = snap_tick.tick(), if snapshots.is_some() => {
                if let Some(s) = &mut snapshots {
                    s.save(&mut store);
                    alerting.save(s.dir(), now_us() / 1000);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use modelmon_contract::{AgentInfo, Resources};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::warnings::{Layer, WarningLog};

    /// A resources message from `host`, of wire version `v` (only 1 is understood).
    fn resources(host: &str, v: u8) -> Input {
        let r = Resources {
            host: host.into(),
            agent: AgentInfo {
                version: "0.1.0".into(),
                pid: None,
            },
            ts_us: now_us(),
            interval_ms: 1000,
            dropped: 0,
            containers: vec![],
            events: vec![],
        };
        let body = String::from_utf8(r.to_json()).expect("UTF-8").replacen(
            "\"v\":1",
            &format!("\"v\":{v}"),
            1,
        );
        Input::Resources {
            body: body.into_bytes(),
            routing_host: Some(host.into()),
        }
    }

    #[test]
    fn a_broken_agent_is_told_once_and_again_only_after_it_was_accepted() {
        let log: &'static WarningLog = Box::leak(Box::default());
        let subscriber = tracing_subscriber::registry().with(Layer::new(log));
        let mut store = Store::new(crate::store::StoreConfig::default());
        let (mut broker, mut refusals) = (BrokerView::default(), Refusals::default());
        tracing::subscriber::with_default(subscriber, || {
            // An agent of another version speaks every second for a minute; a second
            // broken agent still gets its own warning.
            for _ in 0..60 {
                apply(
                    &mut store,
                    &mut broker,
                    &mut refusals,
                    resources("gpu-a", 2),
                );
            }
            apply(
                &mut store,
                &mut broker,
                &mut refusals,
                resources("gpu-b", 2),
            );
            assert_eq!(log.total(), 2, "{:?}", log.snapshot());
            // Fixed, then broken again: a new episode, told anew.
            apply(
                &mut store,
                &mut broker,
                &mut refusals,
                resources("gpu-a", 1),
            );
            apply(
                &mut store,
                &mut broker,
                &mut refusals,
                resources("gpu-a", 2),
            );
        });
        let w = log.snapshot();
        let texts: Vec<&str> = w.recent.iter().map(|w| w.text.as_str()).collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(
            texts[0].starts_with("refused a resources message from gpu-a: "),
            "{texts:?}"
        );
        assert!(
            texts[1].starts_with("refused a resources message from gpu-b: "),
            "{texts:?}"
        );
        assert!(texts[2].contains("gpu-a"), "{texts:?}");
    }
}
