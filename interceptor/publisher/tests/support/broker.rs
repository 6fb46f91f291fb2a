//! A real RabbitMQ consumer for the interceptor tests (the publisher's, and the proxy's,
//! which include this file): a queue of our own bound to the modelmon exchange, and the
//! `rabbitmqctl` calls that close connections from the broker's side.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use modelmon_contract::EXCHANGE;

pub const URL: &str = super::services::AMQP_URL;

pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

pub struct Received {
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

pub struct Sink {
    _conn: Connection,
    channel: Channel,
    queue: String,
}

impl Sink {
    /// A queue of our own bound to `binding` on the modelmon exchange.
    pub async fn bind(binding: &str) -> Sink {
        Self::bind_at(URL, binding).await
    }

    /// The same on the broker at `url` (a private node, for example).
    pub async fn bind_at(url: &str, binding: &str) -> Sink {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("connect");
        let channel = conn.create_channel().await.expect("channel");
        modelmon_publisher::declare_exchange(&channel)
            .await
            .expect("exchange");
        let queue = unique("modelmon-test-q");
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue");
        channel
            .queue_bind(
                queue.as_str().into(),
                EXCHANGE.into(),
                binding.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
        Sink {
            _conn: conn,
            channel,
            queue,
        }
    }

    /// The next message waiting in the queue, if any.
    pub async fn next(&self) -> Option<Received> {
        let m = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic_get")?;
        let d = m.delivery;
        Some(Received {
            routing_key: d.routing_key.to_string(),
            properties: d.properties,
            body: d.data,
        })
    }

    /// Messages whose body names `instance` as its source, until `want` of them arrived
    /// or `patience` ran out (the assertion is on what arrived, not on how fast).
    pub async fn collect(&self, instance: &str, want: usize, patience: Duration) -> Vec<Received> {
        let end = Instant::now() + patience;
        let mut out = Vec::new();
        while out.len() < want && Instant::now() < end {
            match self.next().await {
                Some(r) => {
                    let body: serde_json::Value =
                        serde_json::from_slice(&r.body).expect("json body");
                    if body["source"]["instance"] == instance {
                        out.push(r);
                    }
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        out
    }

    /// Whatever else arrives for `instance` in `quiet`: used to show nothing more came.
    pub async fn drain(&self, instance: &str, quiet: Duration) -> Vec<Received> {
        self.collect(instance, usize::MAX, quiet).await
    }
}

/// `rabbitmqctl` pids (what `close_connection` takes in 3.x) of the connections whose client properties mention `needle`.
pub fn connections_with(needle: &str) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args([
            "-q",
            "list_connections",
            "--no-table-headers",
            "pid",
            "client_properties",
        ])
        .output()
        .expect("rabbitmqctl runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split('\t').next().map(str::to_owned))
        .collect()
}

pub fn close_connection(name: &str) {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "close_connection", name, "closed by modelmon test"])
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "close_connection {name:?} failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
