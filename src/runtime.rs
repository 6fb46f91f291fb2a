//! Wiring: one ingest source, the store task, and a watch channel of views.
//!
//! The store task is the only writer. It drains its input queue in bursts and, on
//! every refresh tick, publishes a fresh `Arc<View>`; readers clone the `Arc` and never
//! block the writer.

use std::sync::Arc;
use std::time::Duration;

use modelmon_contract::decode_batch;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::clock::now_us;
use crate::config::Config;
use crate::ingest::{self, Input};
use crate::store::{BrokerState, BrokerView, Store, View};

/// Bodies queued between ingest and the store. Together with the broker's prefetch
/// this bounds what the monitor holds in memory when it falls behind.
const INPUT_QUEUE: usize = 1024;

/// Where events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Amqp,
    Demo,
}

/// A running monitor: the views it publishes, and its tasks.
pub struct Monitor {
    pub views: watch::Receiver<Arc<View>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Monitor {
    /// Starts ingest and the store task. Views are published every `refresh`.
    pub fn start(cfg: &Config, source: Source, refresh: Duration) -> Self {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let (view_tx, views) = watch::channel(Arc::new(View::default()));
        let broker = match source {
            Source::Demo => BrokerView {
                state: BrokerState::Demo,
                ..BrokerView::default()
            },
            Source::Amqp => BrokerView::default(),
        };
        let store = Store::new(cfg.store_config());
        let mut tasks = vec![tokio::spawn(store_task(
            store, broker, rx, view_tx, refresh,
        ))];
        tasks.push(match source {
            Source::Demo => tokio::spawn(ingest::demo::run(
                ingest::demo::default_models(),
                Duration::from_millis(100),
                tx,
            )),
            Source::Amqp => tokio::spawn(ingest::amqp::run(cfg.amqp.clone(), tx)),
        });
        Self { views, tasks }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Applies one input to the store.
pub fn apply(store: &mut Store, broker: &mut BrokerView, input: Input) {
    match input {
        Input::Body {
            body,
            routing_model,
        } => {
            let now = now_us();
            match decode_batch(&body, routing_model.as_deref(), now) {
                Ok(batch) => store.apply(&batch, now),
                Err(e) => store.apply_error(&e, routing_model.as_deref(), now),
            }
        }
        Input::Broker(b) => *broker = b,
    }
}

async fn store_task(
    mut store: Store,
    mut broker: BrokerView,
    mut rx: mpsc::Receiver<Input>,
    views: watch::Sender<Arc<View>>,
    refresh: Duration,
) {
    let mut tick = tokio::time::interval(refresh);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            // Views first: under a flood of input the display must still refresh on time.
            biased;
            _ = tick.tick() => {
                let view = store.view(now_us(), broker.clone());
                if views.send(Arc::new(view)).is_err() {
                    return;
                }
            }
            input = rx.recv() => {
                let Some(input) = input else { return };
                apply(&mut store, &mut broker, input);
                // Drain what is already queued without going back to the scheduler.
                for _ in 0..256 {
                    match rx.try_recv() {
                        Ok(input) => apply(&mut store, &mut broker, input),
                        Err(_) => break,
                    }
                }
            }
        }
    }
}
