//! Publishes modelmon request events to RabbitMQ (wire contract v1).
//!
//! [`Publisher::record`] is called on the hot path of a model API, so it only pushes
//! into a bounded queue and returns. One OS thread, started by [`Publisher::start`],
//! owns the AMQP connection: it groups events by model, publishes one message per
//! model per batch with publisher confirms, reconnects with backoff when the broker
//! goes away, and reports what it dropped in the next batch it delivers.

mod backoff;
mod config;
mod error;
mod held;
mod link;
mod nodes;
mod pending;
mod publisher;
mod stats;
mod worker;

pub use backoff::Backoff;
pub use config::Config;
pub use error::PublishError;
pub use nodes::{Redacted, broker_nodes};
pub use publisher::Publisher;
pub use stats::{BrokerState, FailureKind, Stats};

pub use modelmon_contract::{Event, SourceKind};

/// Declares the `modelmon` exchange as the wire contract has it: topic, durable.
/// Every side declares it the same way (a different declaration fails on the broker
/// with PRECONDITION_FAILED), so every side calls this.
pub async fn declare_exchange(channel: &lapin::Channel) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            modelmon_contract::EXCHANGE.into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..lapin::options::ExchangeDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
}
