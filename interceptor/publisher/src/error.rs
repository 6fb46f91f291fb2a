//! Why publishing failed, as reported in [`crate::Stats::last_error`].

use std::time::Duration;

/// A failure of the broker link. The publisher never returns these to callers of
/// `record`; it keeps the latest one, as text, in the stats.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// Opening the connection failed: the one step where the broker judges the login.
    #[error("amqp: {0}")]
    Open(#[source] lapin::Error),
    #[error("the {what} is {bytes} bytes long, over the 255 AMQP allows")]
    TooLong { what: &'static str, bytes: usize },
    #[error("connecting to the broker took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("the broker did not confirm a batch within {0:?}")]
    ConfirmTimeout(Duration),
    #[error("the broker refused a batch (nack)")]
    Nacked,
    #[error("the broker closed the connection")]
    ConnectionLost,
    #[error("cannot start the publishing thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl PublishError {
    /// The broker refused our credentials: retrying will not help until they change,
    /// which an operator should be told in other words than "unreachable". Only an
    /// error opening the connection says so: the same code on a channel (a topic
    /// permission refusing one routing key) comes after the login worked.
    pub fn kind(&self) -> crate::FailureKind {
        use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
        match self {
            PublishError::Open(e) => match e.kind() {
                lapin::ErrorKind::ProtocolError(p)
                    if matches!(p.kind(), AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)) =>
                {
                    crate::FailureKind::LoginRefused
                }
                _ => crate::FailureKind::Other,
            },
            _ => crate::FailureKind::Other,
        }
    }
}
