//! Where events come from. Every source hands raw message bodies to the store task, so
//! the demo goes through the same decoder and validation as real traffic.

pub mod amqp;
pub mod demo;
pub mod docker;

use crate::store::BrokerView;
use crate::store::view::DockerView;
use crate::store::{ContainerEvent, ContainerInfo, ContainerSample};

/// What a source sends to the store task.
#[derive(Debug)]
pub enum Input {
    /// One message body, and the model its routing key names (if any); from a stream,
    /// its offset there.
    Body {
        body: Vec<u8>,
        routing_model: Option<String>,
        offset: Option<u64>,
    },
    /// The broker connection changed state.
    Broker(BrokerView),
    /// The Docker connection changed state.
    Docker(DockerView),
    /// A container mapped to a model appeared or changed state.
    Container(ContainerInfo),
    /// A container is gone (removed, or no longer mapped): by full id.
    ContainerGone(String),
    /// A resource sample of a container.
    Sample(ContainerSample),
    /// A Docker event of a container (die, oom, start, health changes).
    ContainerEvent(ContainerEvent),
    /// An agent's resources message body, and the host its routing key names.
    Resources {
        body: Vec<u8>,
        routing_host: Option<String>,
    },
}
