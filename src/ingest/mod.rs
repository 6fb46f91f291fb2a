//! Where events come from. Every source hands raw message bodies to the store task, so
//! the demo goes through the same decoder and validation as real traffic.

pub mod amqp;
pub mod demo;

use crate::store::BrokerView;

/// What a source sends to the store task.
#[derive(Debug)]
pub enum Input {
    /// One message body, and the model its routing key names (if any).
    Body {
        body: Vec<u8>,
        routing_model: Option<String>,
    },
    /// The broker connection changed state.
    Broker(BrokerView),
}
