//! Resource samples: the second kind of message, published by `modelmon-tui agent`.
//!
//! An agent reads its host's Docker engine and publishes, about once per sampling
//! interval, one [`Resources`] message: every container it knows with its latest sample,
//! and the Docker events seen since its last message. Each message is the agent's whole
//! current picture of its host; the monitor replaces what it knew of that host with it.
//!
//! These messages are few (one per host per second), so unlike event batches they are read
//! with serde_json into a [`Value`] and checked field by field: every failure gets a reason
//! and a field name. As for events, one bad container or Docker event is rejected on its
//! own ([`EntryReject`]) and the good ones are kept; only a message that cannot be read as a
//! whole is refused ([`ResourcesError`]). Unknown fields are ignored so that a newer agent
//! can add fields without breaking an older monitor.

use std::fmt;
use std::ops::RangeInclusive;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    MAX_AGE_US, MAX_BODY_BYTES, MAX_FUTURE_US, MAX_MODEL_BYTES, MAX_MODEL_CHARS, MAX_TEXT_CHARS,
    VERSION, is_clean_text, is_valid_model_name,
};

/// AMQP `type` property of a resources message.
pub const RESOURCES_MESSAGE_TYPE: &str = "modelmon.resources.v1";
/// Routing key prefix; the full key is `resources.<host>`, so that a monitor can bind
/// `resources.#` apart from the event batches' `events.#`.
pub const RESOURCES_ROUTING_PREFIX: &str = "resources.";
/// Most containers one message may list.
pub const MAX_CONTAINERS_PER_MESSAGE: usize = 256;
/// Most Docker events one message may carry.
pub const MAX_CONTAINER_EVENTS_PER_MESSAGE: usize = 256;

/// Longest agent version, container state or health, and Docker event action.
const MAX_AGENT_VERSION_CHARS: usize = 64;
const MAX_STATE_CHARS: usize = 32;
const MAX_ACTION_CHARS: usize = 64;
/// Sampling more often than 10 times a second is a unit mistake; less than once a minute
/// is too slow for a live view.
const INTERVAL_MS: RangeInclusive<u64> = 100..=60_000;
/// The largest machine we expect to see, in cores; it bounds CPU limits and percentages.
const MAX_CORES: u64 = 4096;

/// The ranges of the float fields.
#[derive(Clone, Copy)]
enum Measure {
    /// Rates and totals.
    NonNegative,
    /// Docker's CPU percentage: 100 per fully used core.
    CpuPercent,
    /// A CPU limit, in cores.
    Cores,
}

impl Measure {
    fn accepts(self, x: f64) -> bool {
        match self {
            Self::NonNegative => x >= 0.0,
            Self::CpuPercent => (0.0..=(100 * MAX_CORES) as f64).contains(&x),
            Self::Cores => x > 0.0 && x <= MAX_CORES as f64,
        }
    }

    fn rule(self) -> &'static str {
        match self {
            Self::NonNegative => "must be 0 or more",
            Self::CpuPercent => "must be 0..=409600",
            Self::Cores => "must be above 0 and at most 4096",
        }
    }
}

/// The routing key of `host`'s resources messages.
pub fn resources_routing_key(host: &str) -> String {
    format!("{RESOURCES_ROUTING_PREFIX}{host}")
}

/// The host named by a routing key, if it is a resources key.
pub fn host_of_routing_key(key: &str) -> Option<&str> {
    key.strip_prefix(RESOURCES_ROUTING_PREFIX)
        .filter(|h| !h.is_empty())
}

/// One message: everything one agent knows of its host now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resources {
    /// The host the agent runs on; also the last part of the routing key.
    pub host: String,
    pub agent: AgentInfo,
    /// Unix time the message was built, in microseconds.
    #[serde(rename = "ts")]
    pub ts_us: i64,
    /// The agent's sampling interval: a monitor tells a silent host by it.
    pub interval_ms: u32,
    /// Messages the agent dropped since its last delivered one.
    pub dropped: u64,
    pub containers: Vec<RemoteContainer>,
    pub events: Vec<RemoteEvent>,
}

/// Which agent published a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// One container of the host, running or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteContainer {
    /// Docker's id: 12 to 64 lowercase hex digits (short or full).
    pub id: String,
    pub name: String,
    /// The model it serves; absent when the agent could not map it (no label, no config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The container's hostname: what an app inside reports as its events' `instance`,
    /// which is how the monitor joins requests to resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Docker's state: created, running, paused, restarting, removing, exited, dead...
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    pub restarts: u64,
    pub oom_killed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_limit_cores: Option<f64>,
    /// Absent when the container is not running or has no sample yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<RemoteSample>,
}

/// The latest resource reading of a container. Every measure is optional: the engine
/// does not report all of them on every platform (no block I/O on some, no network in
/// `--network host`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RemoteSample {
    /// Unix time of the reading, in microseconds.
    #[serde(rename = "ts")]
    pub ts_us: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_limit_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_rx_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub net_tx_bytes_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blk_read_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blk_write_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub online_cpus: Option<u32>,
}

/// A Docker event of a container (die, oom, start, restart, health_status...), kept so
/// the monitor can show why a container went away even between two samples.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteEvent {
    /// The container's id, as in [`RemoteContainer::id`].
    pub id: String,
    /// Unix time of the event, in milliseconds (Docker's own resolution for most events).
    pub at_ms: i64,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Resources {
    /// The JSON body to publish. It always carries `"v": 1`; what [`decode_resources`]
    /// makes of it equals `self` when `self` obeys the rules.
    pub fn to_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Wire<'a> {
            v: u64,
            #[serde(flatten)]
            body: &'a Resources,
        }
        // Serialising plain data into memory cannot fail: the keys are all strings, and a
        // non-finite float is written as `null` (which the decoder rejects).
        serde_json::to_vec(&Wire {
            v: VERSION,
            body: self,
        })
        .unwrap_or_default()
    }
}

/// Why a whole message was refused. The `as_str` names are stable: counters use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourcesErrorReason {
    /// The body is over [`MAX_BODY_BYTES`].
    BodyTooLarge,
    /// The body is not UTF-8 JSON.
    NotJson,
    /// The body is JSON but not an object.
    NotAnObject,
    /// `v` is missing or not 1.
    BadVersion,
    /// `host` missing, not a string, empty, too long or with control characters.
    BadHost,
    /// `host` is not the host the routing key names.
    HostMismatch,
    /// `agent` missing or malformed.
    BadAgent,
    /// `ts` missing, not an integer, or outside the accepted window.
    BadTimestamp,
    /// `interval_ms` missing, not an integer, or outside 100..=60000.
    BadInterval,
    /// `dropped` negative or not an integer.
    BadDropped,
    /// `containers` missing or not an array, or `events` not an array.
    NotAnArray,
    /// More than [`MAX_CONTAINERS_PER_MESSAGE`] containers.
    TooManyContainers,
    /// More than [`MAX_CONTAINER_EVENTS_PER_MESSAGE`] Docker events.
    TooManyEvents,
}

impl ResourcesErrorReason {
    pub const ALL: [ResourcesErrorReason; 13] = [
        Self::BodyTooLarge,
        Self::NotJson,
        Self::NotAnObject,
        Self::BadVersion,
        Self::BadHost,
        Self::HostMismatch,
        Self::BadAgent,
        Self::BadTimestamp,
        Self::BadInterval,
        Self::BadDropped,
        Self::NotAnArray,
        Self::TooManyContainers,
        Self::TooManyEvents,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BodyTooLarge => "body_too_large",
            Self::NotJson => "not_json",
            Self::NotAnObject => "not_an_object",
            Self::BadVersion => "bad_version",
            Self::BadHost => "bad_host",
            Self::HostMismatch => "host_mismatch",
            Self::BadAgent => "bad_agent",
            Self::BadTimestamp => "bad_timestamp",
            Self::BadInterval => "bad_interval",
            Self::BadDropped => "bad_dropped",
            Self::NotAnArray => "not_an_array",
            Self::TooManyContainers => "too_many_containers",
            Self::TooManyEvents => "too_many_events",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for ResourcesErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A body that could not be read as a resources message at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct ResourcesError {
    pub reason: ResourcesErrorReason,
    /// A short sentence naming the field and the value.
    pub detail: String,
}

/// Which list a rejected entry was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// An element of `containers`.
    Container,
    /// An element of `events`.
    Event,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Event => "event",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one container or Docker event was rejected. The `as_str` names are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryReason {
    /// The element is not a JSON object.
    NotAnObject,
    /// A required field is absent or `null`.
    MissingField,
    /// A field holds the wrong JSON type (a string for a number, a float for a count).
    WrongType,
    /// A container id that is not 12..=64 lowercase hex digits.
    BadId,
    /// A text field empty, too long, or with control characters.
    BadText,
    /// A model name empty, too long, or with control characters.
    BadModel,
    /// A number outside its field's range (a negative percentage, zero CPUs...).
    OutOfRange,
    /// A time outside the accepted window, or not a 64-bit integer.
    BadTimestamp,
}

impl EntryReason {
    pub const ALL: [EntryReason; 8] = [
        Self::NotAnObject,
        Self::MissingField,
        Self::WrongType,
        Self::BadId,
        Self::BadText,
        Self::BadModel,
        Self::OutOfRange,
        Self::BadTimestamp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotAnObject => "not_an_object",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::BadId => "bad_id",
            Self::BadText => "bad_text",
            Self::BadModel => "bad_model",
            Self::OutOfRange => "out_of_range",
            Self::BadTimestamp => "bad_timestamp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for EntryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected container or Docker event: which, where, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryReject {
    pub kind: EntryKind,
    /// Position in its array (`containers` or `events`).
    pub index: usize,
    pub reason: EntryReason,
    /// A short sentence naming the field and the value.
    pub detail: String,
}

/// A decoded message: the valid entries in `resources`, one [`EntryReject`] per invalid one.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedResources {
    pub resources: Resources,
    pub rejects: Vec<EntryReject>,
}

/// Decodes and validates one resources message body.
///
/// `routing_host` is the host named by the routing key, when known: a message about
/// another host is refused, so that a binding by host stays honest. `now_us` is the
/// receiver's clock, against which every time is checked with the events' rules (at most
/// [`MAX_FUTURE_US`] ahead, at most [`MAX_AGE_US`] old).
pub fn decode_resources(
    body: &[u8],
    routing_host: Option<&str>,
    now_us: i64,
) -> Result<DecodedResources, ResourcesError> {
    use ResourcesErrorReason as R;

    if body.len() > MAX_BODY_BYTES {
        return Err(whole(
            R::BodyTooLarge,
            format!(
                "body of {} bytes is over the {MAX_BODY_BYTES}-byte limit",
                body.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| whole(R::NotJson, format!("the body is not JSON: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(whole(
            R::NotAnObject,
            format!("the body is {}, not an object", describe(&value)),
        ));
    };
    let top = Obj::new(map, "");
    match top.get("v") {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(v) => {
            return Err(whole(
                R::BadVersion,
                format!("`v` is {}, only 1 is understood", describe(v)),
            ));
        }
        None => return Err(whole(R::BadVersion, "`v` is missing".into())),
    }
    let host = top
        .text("host", MAX_TEXT_CHARS)
        .map_err(as_whole(R::BadHost))?;
    if let Some(expected) = routing_host
        && expected != host
    {
        return Err(whole(
            R::HostMismatch,
            format!(
                "host {:?} in a message routed as {:?}",
                truncate(&host),
                truncate(expected)
            ),
        ));
    }
    let agent = agent(top).map_err(as_whole(R::BadAgent))?;
    let ts_us = top
        .ts_us("ts", 1, now_us)
        .map_err(as_whole(R::BadTimestamp))?;
    let interval_ms = top
        .u64_in("interval_ms", INTERVAL_MS)
        .map_err(as_whole(R::BadInterval))? as u32;
    let dropped = top
        .count("dropped")
        .map_err(as_whole(R::BadDropped))?
        .unwrap_or(0);
    let containers = top.array(
        "containers",
        true,
        MAX_CONTAINERS_PER_MESSAGE,
        R::TooManyContainers,
    )?;
    let events = top.array(
        "events",
        false,
        MAX_CONTAINER_EVENTS_PER_MESSAGE,
        R::TooManyEvents,
    )?;

    let mut rejects = Vec::new();
    let containers = entries(EntryKind::Container, containers, &mut rejects, |c| {
        container(c, now_us)
    });
    let events = entries(EntryKind::Event, events, &mut rejects, |e| {
        docker_event(e, now_us)
    });
    Ok(DecodedResources {
        resources: Resources {
            host,
            agent,
            ts_us,
            interval_ms,
            dropped,
            containers,
            events,
        },
        rejects,
    })
}

fn whole(reason: ResourcesErrorReason, detail: String) -> ResourcesError {
    ResourcesError { reason, detail }
}

/// A field failure of the message itself, charged to `reason`; the detail names the field.
fn as_whole(reason: ResourcesErrorReason) -> impl Fn(Bad) -> ResourcesError {
    move |(_, detail)| whole(reason, detail)
}

/// Validates every element of a list on its own: the good ones are returned, the others
/// are added to `rejects`.
fn entries<T>(
    kind: EntryKind,
    list: &[Value],
    rejects: &mut Vec<EntryReject>,
    check: impl Fn(Obj<'_>) -> Result<T, Bad>,
) -> Vec<T> {
    let array = match kind {
        EntryKind::Container => "containers",
        EntryKind::Event => "events",
    };
    let mut good = Vec::with_capacity(list.len());
    for (index, value) in list.iter().enumerate() {
        let checked = match value {
            Value::Object(map) => check(Obj::new(map, "")),
            other => Err((
                EntryReason::NotAnObject,
                format!("`{array}[{index}]` is {}, not an object", describe(other)),
            )),
        };
        match checked {
            Ok(entry) => good.push(entry),
            Err((reason, detail)) => rejects.push(EntryReject {
                kind,
                index,
                reason,
                detail,
            }),
        }
    }
    good
}

fn agent(top: Obj<'_>) -> Result<AgentInfo, Bad> {
    let a = top
        .obj("agent", "agent.")?
        .ok_or_else(|| top.missing("agent"))?;
    Ok(AgentInfo {
        version: a.text("version", MAX_AGENT_VERSION_CHARS)?,
        pid: a
            .opt_u64_in("pid", 0..=u64::from(u32::MAX))?
            .map(|p| p as u32),
    })
}

fn container(c: Obj<'_>, now_us: i64) -> Result<RemoteContainer, Bad> {
    Ok(RemoteContainer {
        id: c.id("id")?,
        name: c.text("name", MAX_TEXT_CHARS)?,
        model: c.opt_model("model")?,
        hostname: c.opt_text("hostname", MAX_TEXT_CHARS)?,
        state: c.text("state", MAX_STATE_CHARS)?,
        health: c.opt_text("health", MAX_STATE_CHARS)?,
        restarts: c.count("restarts")?.unwrap_or(0),
        oom_killed: c.opt_bool("oom_killed")?.unwrap_or(false),
        cpu_limit_cores: c.opt_f64("cpu_limit_cores", Measure::Cores)?,
        sample: match c.obj("sample", "sample.")? {
            Some(s) => Some(sample(s, now_us)?),
            None => None,
        },
    })
}

fn sample(s: Obj<'_>, now_us: i64) -> Result<RemoteSample, Bad> {
    let count = |name| s.count(name);
    let rate = |name| s.opt_f64(name, Measure::NonNegative);
    Ok(RemoteSample {
        ts_us: s.ts_us("ts", 1, now_us)?,
        cpu_percent: s.opt_f64("cpu_percent", Measure::CpuPercent)?,
        cpu_seconds: rate("cpu_seconds")?,
        mem_bytes: count("mem_bytes")?,
        mem_limit_bytes: count("mem_limit_bytes")?,
        net_rx_bytes_per_s: rate("net_rx_bytes_per_s")?,
        net_tx_bytes_per_s: rate("net_tx_bytes_per_s")?,
        blk_read_bytes: count("blk_read_bytes")?,
        blk_write_bytes: count("blk_write_bytes")?,
        pids: count("pids")?,
        online_cpus: s
            .opt_u64_in("online_cpus", 1..=MAX_CORES)?
            .map(|n| n as u32),
    })
}

fn docker_event(e: Obj<'_>, now_us: i64) -> Result<RemoteEvent, Bad> {
    let id = e.id("id")?;
    let at_us = e.ts_us("at_ms", 1000, now_us)?;
    Ok(RemoteEvent {
        id,
        at_ms: at_us / 1000,
        action: e.text("action", MAX_ACTION_CHARS)?,
        detail: e.opt_text("detail", MAX_TEXT_CHARS)?,
    })
}

/// A field check's failure: the reason and a sentence naming the field.
type Bad = (EntryReason, String);

/// A JSON object whose fields are checked one by one. `prefix` is prepended to field
/// names in details, so that a sample's fields read `sample.cpu_percent`.
#[derive(Clone, Copy)]
struct Obj<'a> {
    map: &'a Map<String, Value>,
    prefix: &'static str,
}

impl<'a> Obj<'a> {
    fn new(map: &'a Map<String, Value>, prefix: &'static str) -> Self {
        Self { map, prefix }
    }

    /// The field's value; `null` means absent, as everywhere in the contract.
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.map.get(name).filter(|v| !v.is_null())
    }

    fn missing(&self, name: &str) -> Bad {
        (
            EntryReason::MissingField,
            format!("`{}{name}` is missing", self.prefix),
        )
    }

    fn bad(&self, reason: EntryReason, name: &str, value: &Value, rule: &str) -> Bad {
        (
            reason,
            format!("`{}{name}` is {}, {rule}", self.prefix, describe(value)),
        )
    }

    fn opt_text(&self, name: &str, max: usize) -> Result<Option<String>, Bad> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if is_clean_text(s, max) => Ok(Some(s.clone())),
            Some(v @ Value::String(_)) => Err(self.bad(
                EntryReason::BadText,
                name,
                v,
                &format!("must be 1..={max} characters without control characters"),
            )),
            Some(v) => Err(self.bad(EntryReason::WrongType, name, v, "must be a string")),
        }
    }

    fn text(&self, name: &str, max: usize) -> Result<String, Bad> {
        self.opt_text(name, max)?.ok_or_else(|| self.missing(name))
    }

    /// A model name: the events' rule ([`is_valid_model_name`]), so the two join.
    fn opt_model(&self, name: &str) -> Result<Option<String>, Bad> {
        let model =
            self.opt_text(name, MAX_MODEL_CHARS)
                .map_err(|(reason, detail)| match reason {
                    EntryReason::BadText => (EntryReason::BadModel, detail),
                    other => (other, detail),
                })?;
        if let Some(m) = model.as_deref()
            && m.len() > MAX_MODEL_BYTES
        {
            return Err((
                EntryReason::BadModel,
                format!(
                    "`{}{name}` is {} bytes long, over {MAX_MODEL_BYTES}",
                    self.prefix,
                    m.len()
                ),
            ));
        }
        debug_assert!(model.as_deref().is_none_or(is_valid_model_name));
        Ok(model)
    }

    /// Docker's container id: 12 (short) to 64 (full) lowercase hex digits.
    fn id(&self, name: &str) -> Result<String, Bad> {
        let id = self
            .text(name, 64)
            .map_err(|(reason, detail)| match reason {
                EntryReason::BadText => (EntryReason::BadId, detail),
                other => (other, detail),
            })?;
        let hex = id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hex && id.len() >= 12 {
            Ok(id)
        } else {
            Err(self.bad(
                EntryReason::BadId,
                name,
                &Value::String(id),
                "must be 12..=64 lowercase hex digits",
            ))
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, Bad> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.bad(EntryReason::WrongType, name, v, "must be true or false")),
        }
    }

    /// A count: a JSON integer (not `5.0`) within `range`.
    fn opt_u64_in(&self, name: &str, range: RangeInclusive<u64>) -> Result<Option<u64>, Bad> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        let rule = || format!("must be {}..={}", range.start(), range.end());
        match v.as_u64() {
            Some(n) if range.contains(&n) => Ok(Some(n)),
            Some(_) => Err(self.bad(EntryReason::OutOfRange, name, v, &rule())),
            None if v.is_i64() => Err(self.bad(EntryReason::OutOfRange, name, v, &rule())),
            None => Err(self.bad(EntryReason::WrongType, name, v, "must be an integer")),
        }
    }

    fn u64_in(&self, name: &str, range: RangeInclusive<u64>) -> Result<u64, Bad> {
        self.opt_u64_in(name, range)?
            .ok_or_else(|| self.missing(name))
    }

    fn count(&self, name: &str) -> Result<Option<u64>, Bad> {
        self.opt_u64_in(name, 0..=u64::MAX)
    }

    /// A measure: any finite JSON number that `measure` accepts.
    fn opt_f64(&self, name: &str, measure: Measure) -> Result<Option<f64>, Bad> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        match v.as_f64() {
            Some(x) if x.is_finite() && measure.accepts(x) => Ok(Some(x)),
            Some(_) => Err(self.bad(EntryReason::OutOfRange, name, v, measure.rule())),
            None => Err(self.bad(EntryReason::WrongType, name, v, "must be a number")),
        }
    }

    /// A required time in units of `unit_us` microseconds, returned in microseconds and
    /// held to the events' window around `now_us`.
    fn ts_us(&self, name: &str, unit_us: i64, now_us: i64) -> Result<i64, Bad> {
        let v = self.get(name).ok_or_else(|| self.missing(name))?;
        let ts = match v {
            Value::Number(n) if n.is_f64() => {
                return Err(self.bad(EntryReason::WrongType, name, v, "must be an integer"));
            }
            Value::Number(n) => n.as_i64().and_then(|t| t.checked_mul(unit_us)),
            _ => return Err(self.bad(EntryReason::WrongType, name, v, "must be an integer")),
        };
        match ts {
            Some(ts) if ts > now_us.saturating_add(MAX_FUTURE_US) => Err(self.bad(
                EntryReason::BadTimestamp,
                name,
                v,
                &format!("{} s in the future", (ts - now_us) / 1_000_000),
            )),
            Some(ts) if ts < now_us.saturating_sub(MAX_AGE_US) => Err(self.bad(
                EntryReason::BadTimestamp,
                name,
                v,
                &format!("{} h old", (now_us - ts) / 3_600_000_000),
            )),
            Some(ts) => Ok(ts),
            None => Err(self.bad(
                EntryReason::BadTimestamp,
                name,
                v,
                "out of any clock's range",
            )),
        }
    }

    /// An optional object; `prefix` (its name and a dot) names its fields in details.
    fn obj(&self, name: &str, prefix: &'static str) -> Result<Option<Obj<'a>>, Bad> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj::new(map, prefix))),
            Some(v) => Err(self.bad(EntryReason::WrongType, name, v, "must be an object")),
        }
    }

    /// A list of the message of at most `max` elements (else `too_many`); absent is
    /// empty unless `required`.
    fn array(
        &self,
        name: &str,
        required: bool,
        max: usize,
        too_many: ResourcesErrorReason,
    ) -> Result<&'a [Value], ResourcesError> {
        let not_array = ResourcesErrorReason::NotAnArray;
        match self.get(name) {
            None if required => Err(whole(not_array, format!("`{name}` is missing"))),
            None => Ok(&[]),
            Some(Value::Array(list)) if list.len() > max => Err(whole(
                too_many,
                format!("{} {name}, at most {max} per message", list.len()),
            )),
            Some(Value::Array(list)) => Ok(list),
            Some(v) => Err(whole(
                not_array,
                format!("`{name}` is {}, not an array", describe(v)),
            )),
        }
    }
}

/// A value as a detail shows it: strings quoted and cut at 40 characters, containers by kind.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{:?}", truncate(s)),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_780_000_000_000_000;

    fn minimal() -> Resources {
        Resources {
            host: "gpu-01".into(),
            agent: AgentInfo {
                version: "0.1.0".into(),
                pid: None,
            },
            ts_us: NOW - 1_000,
            interval_ms: 1000,
            dropped: 0,
            containers: vec![],
            events: vec![],
        }
    }

    fn full() -> Resources {
        let sample = RemoteSample {
            ts_us: NOW - 500_000,
            cpu_percent: Some(153.25),
            cpu_seconds: Some(8123.5),
            mem_bytes: Some(1 << 30),
            mem_limit_bytes: Some(u64::MAX),
            net_rx_bytes_per_s: Some(0.1),
            net_tx_bytes_per_s: Some(2048.0),
            blk_read_bytes: Some(7),
            blk_write_bytes: Some(0),
            pids: Some(12),
            online_cpus: Some(4096),
        };
        Resources {
            agent: AgentInfo {
                version: "0.1.0".into(),
                pid: Some(4242),
            },
            dropped: 3,
            containers: vec![
                RemoteContainer {
                    id: "0123456789abcdef".repeat(4),
                    name: "iris-1".into(),
                    model: Some("iris".into()),
                    hostname: Some("0123456789ab".into()),
                    state: "running".into(),
                    health: Some("healthy".into()),
                    restarts: 2,
                    oom_killed: true,
                    cpu_limit_cores: Some(1.5),
                    sample: Some(sample),
                },
                RemoteContainer {
                    id: "abcdefabcdef".into(),
                    name: "Ünïcode ✓".into(),
                    model: None,
                    hostname: None,
                    state: "exited".into(),
                    health: None,
                    restarts: 0,
                    oom_killed: false,
                    cpu_limit_cores: None,
                    sample: None,
                },
            ],
            events: vec![RemoteEvent {
                id: "abcdefabcdef".into(),
                at_ms: NOW / 1000 - 10,
                action: "die".into(),
                detail: Some("exitCode=137".into()),
            }],
            ..minimal()
        }
    }

    fn decode(body: &[u8]) -> Result<DecodedResources, ResourcesError> {
        decode_resources(body, None, NOW)
    }

    #[test]
    fn full_and_minimal_messages_round_trip() {
        for r in [full(), minimal()] {
            let body = r.to_json();
            let d = decode_resources(&body, Some(&r.host), NOW).expect("valid");
            assert!(d.rejects.is_empty(), "{:?}", d.rejects);
            assert_eq!(d.resources, r);
        }
    }

    #[test]
    fn the_wire_names_are_the_documented_ones() {
        let v: Value = serde_json::from_slice(&full().to_json()).expect("JSON");
        assert_eq!(v["v"], 1);
        assert_eq!(v["ts"], NOW - 1_000);
        assert_eq!(v["interval_ms"], 1000);
        assert_eq!(v["containers"][0]["sample"]["ts"], NOW - 500_000);
        assert_eq!(v["events"][0]["at_ms"], NOW / 1000 - 10);
        // Absent options are omitted, not null.
        let minimal: Value = serde_json::from_slice(&minimal().to_json()).expect("JSON");
        assert!(minimal["agent"].get("pid").is_none());
        assert!(v["containers"][1].get("sample").is_none());
        assert!(v["containers"][1].get("model").is_none());
    }

    #[test]
    fn a_container_model_is_bounded_in_bytes_like_an_events_model() {
        let mut r = minimal();
        let mut c = full().containers[0].clone();
        c.model = Some("é".repeat(124));
        r.containers = vec![c.clone()];
        c.model = Some("é".repeat(125));
        r.containers.push(c);
        let d = decode(&r.to_json()).expect("valid");
        assert_eq!(d.resources.containers.len(), 1);
        let reasons: Vec<EntryReason> = d.rejects.iter().map(|r| r.reason).collect();
        assert_eq!(reasons, vec![EntryReason::BadModel]);
    }

    #[test]
    fn routing_keys_name_the_host() {
        assert_eq!(resources_routing_key("gpu-01"), "resources.gpu-01");
        assert_eq!(
            host_of_routing_key("resources.gpu-01.lan"),
            Some("gpu-01.lan")
        );
        assert_eq!(host_of_routing_key("resources."), None);
        assert_eq!(host_of_routing_key("events.iris"), None);
    }

    #[test]
    fn too_many_containers_or_events_refuse_the_message() {
        let c = full().containers[1].clone();
        let mut r = minimal();
        r.containers = vec![c; MAX_CONTAINERS_PER_MESSAGE];
        assert!(decode(&r.to_json()).is_ok());
        r.containers.push(r.containers[0].clone());
        let err = decode(&r.to_json()).expect_err("too many");
        assert_eq!(err.reason, ResourcesErrorReason::TooManyContainers);

        let e = full().events[0].clone();
        let mut r = minimal();
        r.events = vec![e; MAX_CONTAINER_EVENTS_PER_MESSAGE + 1];
        let err = decode(&r.to_json()).expect_err("too many");
        assert_eq!(err.reason, ResourcesErrorReason::TooManyEvents);
        assert!(err.detail.contains("257 events"), "{}", err.detail);
    }

    #[test]
    fn a_body_over_one_mebibyte_is_refused() {
        let mut body = minimal().to_json();
        body.pop();
        body.extend_from_slice(b",\"pad\":\"");
        body.resize(MAX_BODY_BYTES + 1, b'x');
        body.extend_from_slice(b"\"}");
        let err = decode(&body).expect_err("too large");
        assert_eq!(err.reason, ResourcesErrorReason::BodyTooLarge);
    }

    fn one_container_reject(container: &str) -> EntryReject {
        let body = format!(
            r#"{{"v":1,"host":"h","agent":{{"version":"1"}},"ts":{NOW},"interval_ms":1000,
                "containers":[{container}]}}"#
        );
        let d = decode(body.as_bytes()).expect("a message");
        assert!(d.resources.containers.is_empty());
        assert_eq!(d.rejects.len(), 1);
        d.rejects[0].clone()
    }

    #[test]
    fn reject_details_name_the_field_and_the_value() {
        let id = "abcdefabcdef";
        let r = one_container_reject(&format!(
            r#"{{"id":"{id}","name":"n","state":"running","sample":{{"ts":{NOW},"cpu_percent":-3}}}}"#
        ));
        assert_eq!(r.reason, EntryReason::OutOfRange);
        assert_eq!(r.kind, EntryKind::Container);
        assert_eq!(r.detail, "`sample.cpu_percent` is -3, must be 0..=409600");

        let r = one_container_reject(r#"{"id":"ABCDEFABCDEF","name":"n","state":"running"}"#);
        assert_eq!(r.reason, EntryReason::BadId);
        assert!(r.detail.contains("`id`"), "{}", r.detail);

        let r = one_container_reject(&format!(r#"{{"id":"{id}","state":"running"}}"#));
        assert_eq!(r.reason, EntryReason::MissingField);
        assert_eq!(r.detail, "`name` is missing");

        let r = one_container_reject(&format!(
            r#"{{"id":"{id}","name":"n","state":"running","restarts":1.0}}"#
        ));
        assert_eq!(r.reason, EntryReason::WrongType);

        let r = one_container_reject(&format!(
            r#"{{"id":"{id}","name":"n","state":"running","sample":{{"ts":1}}}}"#
        ));
        assert_eq!(r.reason, EntryReason::BadTimestamp);
        assert!(r.detail.starts_with("`sample.ts` is 1, "), "{}", r.detail);

        let r = one_container_reject(&format!(
            r#"{{"id":"{id}","name":"n","state":"running","cpu_limit_cores":0}}"#
        ));
        assert_eq!(r.reason, EntryReason::OutOfRange);

        let r = one_container_reject("[1]");
        assert_eq!(r.reason, EntryReason::NotAnObject);
    }

    #[test]
    fn message_errors_name_the_field() {
        let err = decode(br#"{"v":1,"host":"h","agent":{},"ts":0}"#).expect_err("bad agent");
        assert_eq!(err.reason, ResourcesErrorReason::BadAgent);
        assert_eq!(err.detail, "`agent.version` is missing");
        assert_eq!(err.to_string(), "bad_agent: `agent.version` is missing");

        let err = decode(&minimal().to_json()[..20]).expect_err("cut");
        assert_eq!(err.reason, ResourcesErrorReason::NotJson);

        let body = String::from_utf8(minimal().to_json()).expect("UTF-8");
        let body = body.replace("\"interval_ms\":1000", "\"interval_ms\":99");
        let err = decode(body.as_bytes()).expect_err("interval");
        assert_eq!(err.reason, ResourcesErrorReason::BadInterval);
        assert_eq!(err.detail, "`interval_ms` is 99, must be 100..=60000");
    }

    #[test]
    fn measure_rules_state_the_ranges_they_check() {
        let percent = (100 * MAX_CORES) as f64;
        assert!(
            Measure::CpuPercent.accepts(percent) && !Measure::CpuPercent.accepts(percent + 0.5)
        );
        assert_eq!(Measure::CpuPercent.rule(), format!("must be 0..={percent}"));
        let cores = MAX_CORES as f64;
        assert!(Measure::Cores.accepts(cores) && !Measure::Cores.accepts(cores + 0.5));
        assert!(Measure::Cores.accepts(f64::from_bits(1)) && !Measure::Cores.accepts(0.0));
        assert_eq!(
            Measure::Cores.rule(),
            format!("must be above 0 and at most {cores}")
        );
        assert!(Measure::NonNegative.accepts(0.0) && !Measure::NonNegative.accepts(-1e-300));
    }

    #[test]
    fn reason_names_are_distinct_and_parse_back() {
        for r in ResourcesErrorReason::ALL {
            assert_eq!(ResourcesErrorReason::parse(r.as_str()), Some(r));
        }
        for r in EntryReason::ALL {
            assert_eq!(EntryReason::parse(r.as_str()), Some(r));
        }
    }
}
