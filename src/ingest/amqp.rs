//! The RabbitMQ consumer.
//!
//! Declares the `modelmon` topic exchange and its own queue, binds `events.#` (or one
//! key per watched model), and forwards every body to the store. Acknowledgements are
//! sent only once the body is handed to the store, and the broker never has more than
//! `prefetch` unacknowledged messages out: a monitor that falls behind makes the broker
//! hold messages rather than losing ones it already took. When the broker goes away the
//! consumer reconnects with exponential backoff and reports its state all along; given a
//! cluster's nodes, it moves on to the next node at each failure.
//!
//! Three kinds of queue: a private one (the default), a named quorum queue (`--queue`,
//! replicated across a cluster), or a stream (`--stream`), read from the offset where the
//! restored history ends.

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use modelmon_contract::{
    EXCHANGE, host_of_routing_key, model_of_routing_key, resources_routing_key, routing_key,
};
use modelmon_publisher::Backoff;
use tokio::sync::{mpsc, watch};

use super::Input;
use crate::config::{AmqpConfig, Redacted};
use crate::store::{BrokerState, BrokerView};

/// Acknowledge in groups of this many deliveries (fewer under a small prefetch, see
/// [`ack_every`]), or when the stream goes idle.
const ACK_EVERY: u64 = 32;
const ACK_IDLE: Duration = Duration::from_millis(50);
/// An acknowledgement is done once its frame is written: milliseconds. lapin (4.12) never
/// answers one whose channel closes while it is queued (the broker restarting), and a
/// consumer waiting on it would sit "connected" to nothing for good: past this, the
/// connection is presumed lost and made again.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a consuming session ended.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    #[error("{0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker closed the consumer")]
    ConsumerClosed,
    #[error("the connection was lost")]
    ConnectionLost,
    #[error("the connection was lost (an acknowledgement went unanswered for {0:?})")]
    AckTimeout(Duration),
    #[error("invalid broker URL: {0}")]
    Url(String),
    #[error("the broker did not finish the connection within {0:?} (frozen or overloaded?)")]
    SetupTimeout(Duration),
    #[error(
        "queue `{name}` exists with other arguments than the monitor declares (a {kind}, \
         bounded by {keys}): most likely {keys} changed since it was made, or an earlier \
         version or a person made it; set the value back and change the bound on the broker \
         with a RabbitMQ policy instead (docs/scale.md), or choose another name; deleting it \
         (`rabbitmqctl delete_queue {name}`) also works but loses every message it holds \
         ({source})"
    )]
    QueueMismatch {
        name: String,
        kind: &'static str,
        /// The config keys that become the queue's arguments.
        keys: &'static str,
        source: lapin::Error,
    },
}

/// A named queue declared before with other arguments is refused with
/// PRECONDITION_FAILED, which the broker words in terms of arguments (`x-max-length`):
/// name the config keys behind them, since editing one of those is the usual cause, and
/// warn that the broker's own advice, deleting the queue, throws its backlog away.
fn queue_error(e: lapin::Error, queue: &str, kind: &'static str, keys: &'static str) -> AmqpError {
    // 406: PRECONDITION_FAILED.
    if matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_id() == 406) {
        AmqpError::QueueMismatch {
            name: queue.to_owned(),
            kind,
            keys,
            source: e,
        }
    } else {
        AmqpError::Broker(e)
    }
}

/// The longest a connection's setup may take, from TCP connect to consuming.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect delays: the next node of a cluster is usually up, so start short; the
/// ceiling keeps a monitor within seconds of a broker that came back.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Consumes until the store goes away, reconnecting as needed. The setting may name a
/// cluster's nodes: each failure (to connect, or of a session) moves on to the next
/// node, so losing the node in use costs one short backoff step, not an outage.
///
/// In stream mode, `resume` is the offset the restored history ends at (read from the
/// stream's start without one).
///
/// Once `stop` turns true, returns having acknowledged everything it handed over: on a
/// clean exit the store applies all of it before the last snapshot, and the broker must
/// not deliver it again to the next run.
pub async fn run(
    cfg: AmqpConfig,
    resume: Option<u64>,
    tx: mpsc::Sender<Input>,
    mut stop: watch::Receiver<bool>,
) {
    let nodes: Vec<String> = modelmon_publisher::broker_nodes(&cfg.url)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut node = 0;
    let mut position = Position {
        seen: Seen::new(),
        next_offset: resume,
    };
    let mut backoff = Backoff::new(RECONNECT_FIRST, RECONNECT_MAX, rand::random());
    let mut connections = 0;
    // Warn once per outage; the retries show in every view's broker state.
    let mut warned_at = None;
    let mut down = false;
    loop {
        // After a failure the state stays `down`, with its reason, while retrying: a
        // broker that went away is not "connecting" again every few seconds.
        if !down {
            let connecting = BrokerView {
                state: BrokerState::Connecting,
                connections,
                ..BrokerView::default()
            };
            if tx.send(Input::Broker(connecting)).await.is_err() {
                return;
            }
        }
        let url = &nodes[node];
        let Err(e) = consume(
            &cfg,
            url,
            &tx,
            &mut position,
            &mut backoff,
            &mut connections,
            &mut stop,
        )
        .await
        else {
            return;
        };
        let delay = backoff.next_delay();
        let message = format!(
            "{} ({}); retrying in {:.1}s",
            e,
            Redacted(url),
            delay.as_secs_f64()
        );
        if warned_at == Some(connections) {
            tracing::debug!("{message}");
        } else {
            tracing::warn!("{message}");
            warned_at = Some(connections);
        }
        let view = BrokerView {
            state: BrokerState::Down,
            error: Some(message),
            queue: None,
            node: None,
            connections,
        };
        if tx.send(Input::Broker(view)).await.is_err() {
            return;
        }
        node = (node + 1) % nodes.len();
        down = true;
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Resolves once the monitor is stopping (or gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// One connected session. Returns `Ok` only when the store has gone away.
async fn consume(
    cfg: &AmqpConfig,
    url: &str,
    tx: &mpsc::Sender<Input>,
    position: &mut Position,
    backoff: &mut Backoff,
    connections: &mut u64,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), AmqpError> {
    // A broker that accepts the connection and then never answers (frozen, overloaded)
    // must not leave the monitor "connecting" for ever: the whole setup has a deadline.
    let setup = tokio::time::timeout(SETUP_TIMEOUT, open(cfg, url, position.next_offset));
    let (conn, ch, queue, mut consumer) = tokio::select! {
        () = stopped(stop) => return Ok(()),
        setup = setup => setup.map_err(|_| AmqpError::SetupTimeout(SETUP_TIMEOUT))??,
    };
    *connections += 1;
    let connected = BrokerView {
        state: BrokerState::Connected,
        error: None,
        queue: Some(queue),
        node: Some(Redacted(url).to_string()),
        connections: *connections,
    };
    if tx.send(Input::Broker(connected)).await.is_err() {
        return Ok(());
    }
    backoff.reset();
    // The channel lives as long as the consumer reads from it.
    let _ch = ch;

    let ack_every = ack_every(cfg.prefetch);
    let mut unacked = 0u64;
    let mut last: Option<lapin::Acker> = None;
    loop {
        let next = tokio::select! {
            // Between deliveries, so nothing is half handed over; what lapin holds beyond
            // is unacknowledged and goes back to the queue with the connection.
            biased;
            () = stopped(stop) => {
                ack_through(&mut last, &mut unacked).await?;
                let bye = conn.close(200, "modelmon stopping".into());
                let _ = tokio::time::timeout(ACK_TIMEOUT, bye).await;
                return Ok(());
            }
            next = tokio::time::timeout(ACK_IDLE, consumer.next()) => next,
        };
        let delivery = match next {
            Err(_idle) => {
                // A quiet queue and a lost connection look alike from here: ask lapin.
                if !conn.status().connected() {
                    return Err(AmqpError::ConnectionLost);
                }
                ack_through(&mut last, &mut unacked).await?;
                continue;
            }
            Ok(None) => return Err(AmqpError::ConsumerClosed),
            Ok(Some(d)) => d?,
        };
        let offset = if cfg.stream.is_empty() {
            if position.seen_before(&delivery) {
                last = Some(delivery.acker);
                unacked += 1;
                if unacked >= ack_every {
                    ack_through(&mut last, &mut unacked).await?;
                }
                continue;
            }
            None
        } else {
            let offset = stream_offset(&delivery);
            match (offset, position.next_offset) {
                // Reading starts at the chunk holding the offset asked for: what comes
                // before it is already in the history.
                (Some(o), Some(next)) if o < next => {
                    last = Some(delivery.acker);
                    unacked += 1;
                    if unacked >= ack_every {
                        ack_through(&mut last, &mut unacked).await?;
                    }
                    continue;
                }
                (Some(o), Some(next)) if o > next => tracing::warn!(
                    "stream `{}` no longer holds offsets {next} to {}: its retention \
                     (amqp.stream_max_age, stream_max_bytes) removed them while the monitor \
                     was away; the history shows that span as not covered",
                    cfg.stream,
                    o - 1
                ),
                _ => {}
            }
            offset
        };
        let key = delivery.routing_key.as_str();
        let input = if let Some(host) = host_of_routing_key(key) {
            Input::Resources {
                body: delivery.data,
                routing_host: Some(host.to_owned()),
            }
        } else {
            Input::Body {
                body: delivery.data,
                routing_model: model_of_routing_key(key).map(str::to_owned),
                offset,
            }
        };
        // Waits while the store is busy: back-pressure reaches the broker through prefetch.
        if tx.send(input).await.is_err() {
            return Ok(());
        }
        if let Some(o) = offset {
            position.next_offset = Some(o + 1);
        }
        last = Some(delivery.acker);
        unacked += 1;
        if unacked >= ack_every {
            ack_through(&mut last, &mut unacked).await?;
        }
    }
}

/// Connects, declares the exchange and the queue, binds it and starts consuming.
async fn open(
    cfg: &AmqpConfig,
    url: &str,
    next_offset: Option<u64>,
) -> Result<(Connection, lapin::Channel, String, lapin::Consumer), AmqpError> {
    let mut uri: AMQPUri = url.parse().map_err(AmqpError::Url)?;
    // Heartbeats notice a broker that stopped answering (a paused VM, a SIGSTOPped node)
    // in twice this, instead of the broker's default of two minutes; a URL that sets its
    // own `heartbeat` keeps it.
    if uri.query.heartbeat.is_none() {
        uri.query.heartbeat = Some(u16::try_from(cfg.heartbeat.0.as_secs()).unwrap_or(u16::MAX));
    }
    // The pid in the name lets an operator (and the tests) find this connection in `rabbitmqctl`.
    let name = format!("modelmon-tui pid {}", std::process::id());
    let props = ConnectionProperties::default().with_connection_name(name.as_str().into());
    let conn = Connection::connect_uri(uri, props).await?;
    let ch = conn.create_channel().await?;
    modelmon_publisher::declare_exchange(&ch).await?;
    let queue = if !cfg.stream.is_empty() {
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("stream".into()),
        );
        args.insert(
            "x-max-age".into(),
            AMQPValue::LongString(format!("{}s", cfg.stream_max_age.0.as_secs()).into()),
        );
        args.insert(
            "x-max-length-bytes".into(),
            AMQPValue::LongLongInt(i64::try_from(cfg.stream_max_bytes).unwrap_or(i64::MAX)),
        );
        let opts = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(cfg.stream.as_str().into(), opts, args)
            .await
            .map_err(|e| {
                queue_error(
                    e,
                    &cfg.stream,
                    "stream",
                    "amqp.stream_max_age and amqp.stream_max_bytes",
                )
            })?
    } else if cfg.queue.is_empty() {
        let opts = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare("".into(), opts, FieldTable::default())
            .await?
    } else {
        let mut args = FieldTable::default();
        // Replicated on the cluster's nodes (a majority of them holds every message), so
        // losing the node it leads on loses nothing; on one node it behaves as before.
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        args.insert(
            "x-max-length".into(),
            AMQPValue::LongLongInt(i64::try_from(cfg.queue_max_length).unwrap_or(i64::MAX)),
        );
        // When full, lose the oldest events: the newest say more about the present.
        args.insert(
            "x-overflow".into(),
            AMQPValue::LongString("drop-head".into()),
        );
        let opts = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        ch.queue_declare(cfg.queue.as_str().into(), opts, args)
            .await
            .map_err(|e| {
                queue_error(
                    e,
                    &cfg.queue,
                    "quorum queue, which survives a node",
                    "amqp.queue_max_length",
                )
            })?
    };
    let mut keys: Vec<String> = if cfg.models.is_empty() {
        vec![routing_key("#")]
    } else {
        cfg.models.iter().map(|m| routing_key(m)).collect()
    };
    // Agents' pictures of other hosts; each holds every model of its host, so they are
    // bound whole even under --models (the store keeps only mapped containers).
    keys.push(resources_routing_key("#"));
    for key in &keys {
        ch.queue_bind(
            queue.name().clone(),
            EXCHANGE.into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    ch.basic_qos(cfg.prefetch, BasicQosOptions::default())
        .await?;
    let mut args = FieldTable::default();
    if !cfg.stream.is_empty() {
        // Without a position, the whole stream: a monitor with no history of it rebuilds
        // what the stream still holds.
        let from = match next_offset {
            Some(o) => AMQPValue::LongLongInt(i64::try_from(o).unwrap_or(i64::MAX)),
            None => AMQPValue::LongString("first".into()),
        };
        args.insert("x-stream-offset".into(), from);
    }
    let consumer = ch
        .basic_consume(
            queue.name().clone(),
            "modelmon-tui".into(),
            BasicConsumeOptions::default(),
            args,
        )
        .await?;
    Ok((conn, ch, queue.name().to_string(), consumer))
}

/// How many deliveries to acknowledge at once. The broker sends nothing past `prefetch`
/// unacknowledged messages, so a group the prefetch cannot fill would wait for
/// [`ACK_IDLE`] every round (a prefetch of 4 capped the monitor near 80 messages a
/// second); half of it keeps the other half arriving while an acknowledgement travels.
fn ack_every(prefetch: u16) -> u64 {
    (u64::from(prefetch) / 2).clamp(1, ACK_EVERY)
}

/// Acknowledges every delivery up to the last one handed over.
async fn ack_through(last: &mut Option<lapin::Acker>, unacked: &mut u64) -> Result<(), AmqpError> {
    if let Some(acker) = last.take() {
        tokio::time::timeout(ACK_TIMEOUT, acker.ack(BasicAckOptions { multiple: true }))
            .await
            .map_err(|_| AmqpError::AckTimeout(ACK_TIMEOUT))??;
    }
    *unacked = 0;
    Ok(())
}

/// How far the consumer has read, across its sessions: for a queue, the messages handed
/// over lately (a queue delivers again what was not acknowledged when a connection was
/// lost); for a stream, the next offset.
struct Position {
    seen: Seen,
    next_offset: Option<u64>,
}

impl Position {
    /// Whether a queue's delivery was handed to the store already; remembers it if not.
    ///
    /// Any copy counts, not only the broker's redeliveries: a publisher whose connection
    /// died before the broker's confirm reached it sends the message again, as it was,
    /// and the broker may have delivered the first copy already.
    fn seen_before(&mut self, delivery: &lapin::message::Delivery) -> bool {
        let Some(id) = delivery.properties.message_id().as_ref() else {
            return false;
        };
        let id = id.as_str();
        if self.seen.insert(id) {
            return false;
        }
        tracing::debug!("skipped a message delivered again: {id}");
        true
    }
}

/// A stream message's offset, which the broker sends in the `x-stream-offset` header.
fn stream_offset(delivery: &lapin::message::Delivery) -> Option<u64> {
    let headers = delivery.properties.headers().as_ref()?;
    match headers.inner().get("x-stream-offset")? {
        AMQPValue::LongLongInt(o) => u64::try_from(*o).ok(),
        AMQPValue::LongUInt(o) => Some(u64::from(*o)),
        AMQPValue::LongInt(o) => u64::try_from(*o).ok(),
        _ => None,
    }
}

/// The `message_id`s of the latest messages handed to the store, as 64-bit hashes: a
/// new id is taken for one of those remembered once in 2^48 messages.
///
/// A copy comes within seconds of the first: a queue's redelivery once the monitor
/// reconnects, a publisher's once it does (its confirm wait is 5 s, its reconnect delay
/// at most 5 s). [`SEEN_IDS`] covers some 13 s at 5 000 messages a second (500 000 events
/// in the interceptors' 100-event batches), in under 2 MB.
struct Seen {
    order: std::collections::VecDeque<u64>,
    ids: std::collections::HashSet<u64>,
}

/// How many message ids the consumer remembers.
const SEEN_IDS: usize = 65_536;

impl Seen {
    fn new() -> Self {
        Seen {
            order: std::collections::VecDeque::with_capacity(SEEN_IDS),
            ids: std::collections::HashSet::with_capacity(SEEN_IDS),
        }
    }

    /// Remembers `id`; `false` when it was remembered already.
    fn insert(&mut self, id: &str) -> bool {
        // A fixed hasher: the ids are the publishers' own, not chosen against us.
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(id, &mut h);
        let hash = std::hash::Hasher::finish(&h);
        if !self.ids.insert(hash) {
            return false;
        }
        if self.order.len() >= SEEN_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.order.push_back(hash);
        true
    }
}
