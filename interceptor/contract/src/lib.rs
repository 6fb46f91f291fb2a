//! The modelmon wire contract, version 1.
//!
//! An interceptor next to a model API publishes *batches* of request events to the
//! RabbitMQ topic exchange [`EXCHANGE`], one model per batch, with the routing key
//! [`routing_key`]`(model)`. The monitor decodes them with [`decode_batch`], which
//! validates every event on its own: one bad event is rejected with a [`RejectReason`]
//! and the good events of the same batch are kept.
//!
//! Agents (`modelmon-tui agent`) publish a second kind of message to the same exchange:
//! [`Resources`], the containers of one host and their resource samples, routed as
//! [`resources_routing_key`]`(host)` and read with [`decode_resources`] (see `resources.rs`).
//!
//! Both sides live in this crate so the publisher and the consumer can never drift
//! apart; the golden vectors in `tests/vectors/` pin the rules for the Python side too.

mod decode;
mod encode;
mod event;
mod exclude;
mod json;
mod resources;

pub use decode::{BatchError, Decoded, Reject, RejectReason, decode_batch};
pub use event::{Batch, Event, Source, SourceKind};
pub use exclude::{DEFAULT_EXCLUDES, Exclusions};
pub use resources::{
    AgentInfo, DecodedResources, EntryKind, EntryReason, EntryReject,
    MAX_CONTAINER_EVENTS_PER_MESSAGE, MAX_CONTAINERS_PER_MESSAGE, RESOURCES_MESSAGE_TYPE,
    RESOURCES_ROUTING_PREFIX, RemoteContainer, RemoteEvent, RemoteSample, Resources,
    ResourcesError, ResourcesErrorReason, decode_resources, host_of_routing_key,
    resources_routing_key,
};

/// The topic exchange every publisher writes to and every monitor binds to.
pub const EXCHANGE: &str = "modelmon";
/// AMQP `type` property of a batch message.
pub const MESSAGE_TYPE: &str = "modelmon.events.v1";
/// AMQP `content_type` property of a batch message.
pub const CONTENT_TYPE: &str = "application/json";
/// The only body version this crate speaks.
pub const VERSION: u64 = 1;
/// Largest accepted message body.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// Most events one batch may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 10_000;
/// Longest model name, in characters.
pub const MAX_MODEL_CHARS: usize = 128;
/// Longest model name, in bytes of UTF-8: its routing key `events.<model>` is an AMQP
/// short string, at most 255 bytes, and 128 characters can take up to 512.
pub const MAX_MODEL_BYTES: usize = 255 - ROUTING_PREFIX.len();
/// Longest route, instance, version or error string, in characters.
pub const MAX_TEXT_CHARS: usize = 256;
/// Longest HTTP method, in characters.
pub const MAX_METHOD_CHARS: usize = 16;
/// Most entries in an event's `ml` object.
pub const MAX_ML_ENTRIES: usize = 16;
/// Longest key of an `ml` entry.
pub const MAX_ML_KEY_CHARS: usize = 64;
/// An event may claim to start at most this far in the future (clock skew between hosts).
pub const MAX_FUTURE_US: i64 = 5 * 60 * 1_000_000;
/// An event older than this is of no use to a 24-hour monitor.
pub const MAX_AGE_US: i64 = 24 * 3600 * 1_000_000;
/// Longest accepted duration: one day. Anything longer is a unit mistake.
pub const MAX_DURATION_US: u64 = 24 * 3600 * 1_000_000;

/// Routing key prefix; the full key is `events.<model>`.
pub const ROUTING_PREFIX: &str = "events.";

/// The routing key of a batch of `model`'s events.
pub fn routing_key(model: &str) -> String {
    format!("{ROUTING_PREFIX}{model}")
}

/// The model named by a routing key, if it is one of ours.
pub fn model_of_routing_key(key: &str) -> Option<&str> {
    key.strip_prefix(ROUTING_PREFIX).filter(|m| !m.is_empty())
}

/// Whether `s` is an acceptable model name: 1..=128 characters and at most 248 bytes,
/// none of them control characters.
pub fn is_valid_model_name(s: &str) -> bool {
    s.len() <= MAX_MODEL_BYTES && is_clean_text(s, MAX_MODEL_CHARS)
}

/// Whether `k` is an acceptable `ml` key: 1..=64 bytes of `[a-z0-9_]`.
pub fn is_valid_ml_key(k: &str) -> bool {
    json::is_ml_key(k, MAX_ML_KEY_CHARS)
}

/// 1..=`max` characters and no control characters: what the decoder accepts as text.
pub fn is_clean_text(s: &str, max: usize) -> bool {
    if s.is_empty() {
        return false;
    }
    // Nearly every string on the wire is printable ASCII: one vectorisable pass decides.
    // Otherwise byte length still bounds the char count from above.
    if s.bytes().all(|b| b.wrapping_sub(0x20) < 0x5f) {
        return s.len() <= max;
    }
    (s.len() <= max || s.chars().count() <= max) && !s.chars().any(char::is_control)
}
