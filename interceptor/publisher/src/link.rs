//! One live AMQP connection with a confirming channel on which the exchange exists.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::{Stream, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm,
};
use modelmon_contract::{CONTENT_TYPE, EXCHANGE, MESSAGE_TYPE, routing_key};

use crate::pending::Group;
use crate::{Config, PublishError};

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the broker told us about the connection, reduced to what the worker acts on.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    Blocked,
    Unblocked,
    Lost(PublishError),
}

/// A message being written; yields the future of its confirm.
pub(crate) type Sending =
    Pin<Box<dyn Future<Output = Result<PublisherConfirm, lapin::Error>> + Send>>;

/// A message as it goes out, kept until the broker confirms it.
///
/// A connection can die after the broker delivered a message and before its confirm
/// reached us. So what a lost connection did not confirm goes out again on the next one
/// as it was, body and `message_id` alike: the monitor, which remembers the ids it
/// counted lately, counts it once whichever copy arrives.
pub(crate) struct Sent {
    pub group: Group,
    /// Shared with the write in flight, so keeping it costs no copy.
    pub body: Arc<Vec<u8>>,
    /// The drop count this message carries.
    pub dropped: u64,
    /// Its `message_id`: how a returned message is told apart from the others, and a
    /// message sent again from its first copy.
    pub id: u64,
    /// It is its model's probe (see `held`).
    pub probe: bool,
    /// It was unconfirmed when the broker closed the channel over a message it refused
    /// (a topic permission, say): maybe the culprit, so it next goes out alone.
    pub suspect: bool,
    /// Times the broker closed the channel over it while it was alone in flight.
    pub refusals: u32,
}

/// A message sent but not confirmed yet, kept while the broker blocks the connection.
///
/// Once lapin has queued a message's frames it sends them whatever happens to our
/// future, and a blocked broker reads them, routes them and confirms them when the
/// alarm clears. Publishing it again on this connection would only make the broker
/// route it twice, so it waits for that confirm.
pub(crate) struct Unconfirmed {
    pub sent: Sent,
    pub confirm: Pin<Box<dyn Future<Output = Result<Confirmation, lapin::Error>> + Send>>,
}

pub(crate) struct Link {
    connection: Connection,
    channel: Channel,
    events: Pin<Box<dyn Stream<Item = lapin::Event> + Send>>,
    properties: BasicProperties,
}

impl Link {
    /// Connects to one node: `url` is one of the nodes `config.amqp_url` names.
    pub async fn open(config: &Config, url: &str) -> Result<Link, PublishError> {
        let fut = Self::open_inner(config, url);
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| PublishError::ConnectTimeout(CONNECT_TIMEOUT))?
    }

    async fn open_inner(config: &Config, url: &str) -> Result<Link, PublishError> {
        // The name lets an operator (and our tests) find this connection in
        // `rabbitmqctl list_connections` among many interceptors.
        let name = format!(
            "modelmon {} {} pid {}",
            config.app_id,
            config.instance,
            std::process::id()
        );
        // Checked before connecting: a value AMQP cannot carry fails the same way on every
        // attempt, and lapin's conversion would panic the publishing thread.
        let app_id =
            ShortString::try_new(config.app_id.as_str()).map_err(|_| PublishError::TooLong {
                what: "app_id",
                bytes: config.app_id.len(),
            })?;
        let props = ConnectionProperties::default()
            .with_connection_name(name.into())
            .with_client_property("product".into(), "modelmon-publisher".into())
            .with_client_property("version".into(), env!("CARGO_PKG_VERSION").into());
        let connection = Connection::connect(url, props)
            .await
            .map_err(PublishError::Open)?;
        // Subscribe before anything else so a block sent right after the handshake is seen.
        let events = Box::pin(connection.events_listener());
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        crate::declare_exchange(&channel).await?;
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_type(MESSAGE_TYPE.into())
            .with_app_id(app_id)
            .with_delivery_mode(if config.persistent { 2 } else { 1 });
        Ok(Link {
            connection,
            channel,
            events,
            properties,
        })
    }

    pub fn is_blocked(&self) -> bool {
        self.connection.status().blocked()
    }

    /// Sends one body: the returned future resolves once lapin has written it, with a
    /// future of the broker's confirm. Both own what they need, so the worker can set
    /// them aside while the broker blocks us (see [`Unconfirmed`]).
    ///
    /// Published `mandatory`: a body no queue takes comes back to us (before its confirm)
    /// instead of vanishing, and `id`, in its `message_id`, tells which one it was.
    ///
    /// The `message_id` is `<run>-<id>`, `run` being random per publisher: unique among
    /// every publisher's messages, so a monitor can tell a message delivered again (the
    /// broker's redelivery after losing the monitor's connection, or our copy after
    /// losing ours, see [`Sent`]) from a new one.
    ///
    /// A routing key over AMQP's 255 bytes is refused here, before anything is written.
    pub fn publish(
        &self,
        model: &str,
        body: Arc<Vec<u8>>,
        run: u64,
        id: u64,
    ) -> Result<Sending, PublishError> {
        let key = routing_key(model);
        let bytes = key.len();
        let routing_key = ShortString::try_new(key).map_err(|_| PublishError::TooLong {
            what: "routing key",
            bytes,
        })?;
        let channel = self.channel.clone();
        let properties = self
            .properties
            .clone()
            .with_message_id(format!("{run:016x}-{id}").into());
        Ok(Box::pin(async move {
            channel
                .basic_publish(
                    EXCHANGE.into(),
                    routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &body,
                    properties,
                )
                .await
        }))
    }

    /// The next thing the broker said about the connection; pends forever if nothing.
    pub async fn next_event(&mut self) -> LinkEvent {
        loop {
            match self.events.next().await {
                Some(lapin::Event::ConnectionBlocked(_)) => return LinkEvent::Blocked,
                Some(lapin::Event::ConnectionUnblocked) => return LinkEvent::Unblocked,
                Some(lapin::Event::Error(e)) => return LinkEvent::Lost(e.into()),
                None => return LinkEvent::Lost(PublishError::ConnectionLost),
                Some(_) => {}
            }
        }
    }

    pub async fn close(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            self.connection.close(200, "publisher shutting down".into()),
        )
        .await;
    }
}

/// The `id` of a `message_id` that [`Link::publish`] wrote.
pub(crate) fn message_number(message_id: &str) -> Option<u64> {
    message_id.rsplit_once('-')?.1.parse().ok()
}
