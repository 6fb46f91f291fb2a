//! Decoding and validating a batch body.
//!
//! The body is parsed in one pass into *lenient* values: every field is read as whatever
//! JSON scalar it holds, so a mistyped field in one event cannot make `serde_json` give up
//! on the whole batch. Validation then turns each lenient event into an [`Event`] or a
//! [`Reject`] naming the reason. Only a body that is not JSON at all, or not a batch, is
//! rejected as a whole.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::event::{Event, Source, SourceKind};
use crate::{
    MAX_AGE_US, MAX_BODY_BYTES, MAX_DURATION_US, MAX_EVENTS_PER_BATCH, MAX_FUTURE_US,
    MAX_METHOD_CHARS, MAX_ML_ENTRIES, MAX_ML_KEY_CHARS, MAX_MODEL_CHARS, MAX_TEXT_CHARS, VERSION,
    is_clean_text,
};

/// Why an event (or a whole body) was rejected. The `as_str` names are part of the
/// contract: they are the keys of `rejected_by_reason` in every output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// The body is not JSON.
    NotJson,
    /// The body is over [`MAX_BODY_BYTES`].
    BodyTooLarge,
    /// `v` is missing or not 1.
    BadVersion,
    /// The body is JSON but not a batch object (no `events` array, no `source`).
    NotABatch,
    /// More than [`MAX_EVENTS_PER_BATCH`] events.
    TooManyEvents,
    /// An element of `events` is not an object.
    NotAnObject,
    /// A required field is absent or null.
    MissingField,
    /// A field holds the wrong JSON type.
    WrongType,
    /// Model name empty, too long, or with control characters.
    BadModel,
    /// The event's model is not the one its routing key names.
    ModelMismatch,
    /// A text field (route, instance, method, version, error) empty, too long or with control characters.
    BadText,
    /// Status outside 100..=599.
    BadStatus,
    /// A negative, non-finite or absurdly long duration, or a `ttfb_us` above `duration_us`.
    BadDuration,
    /// A negative byte count.
    BadBytes,
    /// `ts` more than five minutes in the future.
    TsInFuture,
    /// `ts` older than 24 hours.
    TsTooOld,
    /// `ml` not an object, too many entries, a bad key or a non-finite value.
    BadMl,
}

impl RejectReason {
    pub const ALL: [RejectReason; 17] = [
        Self::NotJson,
        Self::BodyTooLarge,
        Self::BadVersion,
        Self::NotABatch,
        Self::TooManyEvents,
        Self::NotAnObject,
        Self::MissingField,
        Self::WrongType,
        Self::BadModel,
        Self::ModelMismatch,
        Self::BadText,
        Self::BadStatus,
        Self::BadDuration,
        Self::BadBytes,
        Self::TsInFuture,
        Self::TsTooOld,
        Self::BadMl,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotJson => "not_json",
            Self::BodyTooLarge => "body_too_large",
            Self::BadVersion => "bad_version",
            Self::NotABatch => "not_a_batch",
            Self::TooManyEvents => "too_many_events",
            Self::NotAnObject => "not_an_object",
            Self::MissingField => "missing_field",
            Self::WrongType => "wrong_type",
            Self::BadModel => "bad_model",
            Self::ModelMismatch => "model_mismatch",
            Self::BadText => "bad_text",
            Self::BadStatus => "bad_status",
            Self::BadDuration => "bad_duration",
            Self::BadBytes => "bad_bytes",
            Self::TsInFuture => "ts_in_future",
            Self::TsTooOld => "ts_too_old",
            Self::BadMl => "bad_ml",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rejected event: why, where, and for which model when that much was readable.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub reason: RejectReason,
    /// Position in the batch's `events` array.
    pub index: usize,
    pub model: Option<String>,
    /// A short human sentence naming the field and the value.
    pub detail: String,
}

/// A body that could not be read as a batch at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct BatchError {
    pub reason: RejectReason,
    pub detail: String,
    /// How many events the body held, when that is known (1 otherwise), so counters stay in events.
    pub events: usize,
}

/// A decoded batch: the valid events, and one [`Reject`] per invalid one.
#[derive(Debug, Clone)]
pub struct Decoded<'a> {
    pub source: Source<'a>,
    pub dropped: u64,
    pub events: Vec<Event<'a>>,
    pub rejects: Vec<Reject>,
}

/// Decodes and validates one message body.
///
/// `expected_model` is the model named by the routing key, when known: events of
/// another model are rejected so that binding by model stays honest. `now_us` is the
/// receiver's clock, against which `ts` is checked.
pub fn decode_batch<'a>(
    body: &'a [u8],
    expected_model: Option<&str>,
    now_us: i64,
) -> Result<Decoded<'a>, BatchError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(BatchError {
            reason: RejectReason::BodyTooLarge,
            detail: format!(
                "body of {} bytes is over the {MAX_BODY_BYTES}-byte limit",
                body.len()
            ),
            events: 1,
        });
    }
    let raw: RawBatch<'a> = serde_json::from_slice(body).map_err(|e| BatchError {
        reason: RejectReason::NotJson,
        detail: e.to_string(),
        events: 1,
    })?;
    let RawBatch::Object {
        v,
        source,
        dropped,
        events,
    } = raw
    else {
        return Err(not_a_batch("the body is not a JSON object"));
    };
    match v {
        J::U(VERSION) => {}
        J::I(i) if i == VERSION as i64 => {}
        J::Absent => return Err(version_error("`v` is missing".into())),
        other => {
            return Err(version_error(format!(
                "`v` is {}, only 1 is understood",
                other.describe()
            )));
        }
    }
    let Some(events) = events else {
        return Err(not_a_batch("`events` is missing or not an array"));
    };
    if events.len() > MAX_EVENTS_PER_BATCH {
        return Err(BatchError {
            reason: RejectReason::TooManyEvents,
            detail: format!(
                "{} events, at most {MAX_EVENTS_PER_BATCH} per batch",
                events.len()
            ),
            events: events.len(),
        });
    }
    let source = match source {
        RawSource::Object {
            kind,
            instance,
            pid,
        } => {
            let kind = match kind {
                J::S(s) => SourceKind::parse(&s),
                _ => {
                    return Err(not_a_batch_n(
                        "`source.kind` is missing or not a string",
                        events.len(),
                    ));
                }
            };
            let instance = match instance {
                J::S(s) if is_clean_text(&s, MAX_TEXT_CHARS) => s,
                _ => {
                    return Err(not_a_batch_n(
                        "`source.instance` is missing or not clean text",
                        events.len(),
                    ));
                }
            };
            let pid = match pid {
                J::U(p) => u32::try_from(p).unwrap_or(u32::MAX),
                J::Absent | J::Null => 0,
                _ => {
                    return Err(not_a_batch_n(
                        "`source.pid` is not a non-negative integer",
                        events.len(),
                    ));
                }
            };
            Source {
                kind,
                instance,
                pid,
            }
        }
        RawSource::Absent | RawSource::NotObject => {
            return Err(not_a_batch_n(
                "`source` is missing or not an object",
                events.len(),
            ));
        }
    };
    let dropped = match dropped {
        J::Absent | J::Null => 0,
        J::U(d) => d,
        J::I(_) => return Err(not_a_batch_n("`dropped` is negative", events.len())),
        other => {
            return Err(not_a_batch_n(
                &format!("`dropped` is {}, not a count", other.describe()),
                events.len(),
            ));
        }
    };

    let mut out = Decoded {
        source,
        dropped,
        events: Vec::with_capacity(events.len()),
        rejects: Vec::new(),
    };
    for (index, slot) in events.into_iter().enumerate() {
        match slot.and_then(|raw| validate(raw, expected_model, now_us)) {
            Ok(ev) => out.events.push(ev),
            Err(mut r) => {
                r.index = index;
                out.rejects.push(r);
            }
        }
    }
    Ok(out)
}

fn version_error(detail: String) -> BatchError {
    BatchError {
        reason: RejectReason::BadVersion,
        detail,
        events: 1,
    }
}

fn not_a_batch(detail: &str) -> BatchError {
    not_a_batch_n(detail, 1)
}

fn not_a_batch_n(detail: &str, events: usize) -> BatchError {
    BatchError {
        reason: RejectReason::NotABatch,
        detail: detail.to_owned(),
        events: events.max(1),
    }
}

fn reject(reason: RejectReason, model: Option<&str>, detail: String) -> Reject {
    Reject {
        reason,
        index: 0,
        model: model.map(str::to_owned),
        detail,
    }
}

fn validate<'a>(
    raw: RawEvent<'a>,
    expected_model: Option<&str>,
    now_us: i64,
) -> Result<Event<'a>, Reject> {
    let model = match raw.model {
        J::S(s) if is_clean_text(&s, MAX_MODEL_CHARS) => s,
        J::S(s) => {
            return Err(reject(
                RejectReason::BadModel,
                None,
                format!(
                    "model {:?} is empty, over {MAX_MODEL_CHARS} characters, or has control characters",
                    truncate(&s)
                ),
            ));
        }
        J::Absent | J::Null => {
            return Err(reject(
                RejectReason::MissingField,
                None,
                "`model` is missing".into(),
            ));
        }
        other => {
            return Err(reject(
                RejectReason::WrongType,
                None,
                format!("`model` is {}, not a string", other.describe()),
            ));
        }
    };
    let m = Some(&*model);
    if let Some(expected) = expected_model
        && expected != model
    {
        return Err(reject(
            RejectReason::ModelMismatch,
            m,
            format!("model {model:?} in a batch routed as {expected:?}"),
        ));
    }
    let ts = int_field(raw.ts, "ts", m)?;
    if ts > now_us.saturating_add(MAX_FUTURE_US) {
        return Err(reject(
            RejectReason::TsInFuture,
            m,
            format!("`ts` is {} s in the future", (ts - now_us) / 1_000_000),
        ));
    }
    if ts < now_us.saturating_sub(MAX_AGE_US) {
        return Err(reject(
            RejectReason::TsTooOld,
            m,
            format!("`ts` is {} h old", (now_us - ts) / 3_600_000_000),
        ));
    }
    let instance = text_field(raw.instance, "instance", MAX_TEXT_CHARS, m)?;
    let method = text_field(raw.method, "method", MAX_METHOD_CHARS, m)?;
    let route = text_field(raw.route, "route", MAX_TEXT_CHARS, m)?;
    let status = int_field(raw.status, "status", m)?;
    if !(100..=599).contains(&status) {
        return Err(reject(
            RejectReason::BadStatus,
            m,
            format!("`status` {status} is outside 100..599"),
        ));
    }
    let duration_us = duration_field(raw.duration_us, "duration_us", m)?.ok_or_else(|| {
        reject(
            RejectReason::MissingField,
            m,
            "`duration_us` is missing".into(),
        )
    })?;
    let ttfb_us = duration_field(raw.ttfb_us, "ttfb_us", m)?;
    if let Some(t) = ttfb_us
        && t > duration_us
    {
        return Err(reject(
            RejectReason::BadDuration,
            m,
            format!("`ttfb_us` {t} is above `duration_us` {duration_us}"),
        ));
    }
    let req_bytes = bytes_field(raw.req_bytes, "req_bytes", m)?;
    let resp_bytes = bytes_field(raw.resp_bytes, "resp_bytes", m)?;
    let version = opt_text_field(raw.version, "version", MAX_TEXT_CHARS, m)?;
    let error = opt_text_field(raw.error, "error", MAX_TEXT_CHARS, m)?;
    let ml = ml_field(raw.ml, m)?;
    Ok(Event {
        ts,
        model,
        version,
        instance,
        method,
        route,
        status: status as u16,
        duration_us,
        ttfb_us,
        req_bytes,
        resp_bytes,
        error,
        ml,
    })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn int_field(j: J<'_>, name: &str, m: Option<&str>) -> Result<i64, Reject> {
    match j {
        J::I(i) => Ok(i),
        J::U(u) => i64::try_from(u).map_err(|_| {
            reject(
                RejectReason::WrongType,
                m,
                format!("`{name}` {u} is too large"),
            )
        }),
        // 1.0 is an integer written by a careless encoder; 1.5 is not.
        J::F(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        J::Absent | J::Null => Err(reject(
            RejectReason::MissingField,
            m,
            format!("`{name}` is missing"),
        )),
        other => Err(reject(
            RejectReason::WrongType,
            m,
            format!("`{name}` is {}, not an integer", other.describe()),
        )),
    }
}

fn duration_field(j: J<'_>, name: &str, m: Option<&str>) -> Result<Option<u64>, Reject> {
    let bad = |what: String| reject(RejectReason::BadDuration, m, format!("`{name}` {what}"));
    let v = match j {
        J::Absent | J::Null => return Ok(None),
        J::U(u) => u,
        J::I(i) => return Err(bad(format!("is negative ({i})"))),
        J::F(f) if !f.is_finite() => return Err(bad("is not finite".into())),
        J::F(f) if f < 0.0 => return Err(bad(format!("is negative ({f})"))),
        J::F(f) => f.round() as u64,
        other => {
            return Err(reject(
                RejectReason::WrongType,
                m,
                format!("`{name}` is {}, not a number", other.describe()),
            ));
        }
    };
    if v > MAX_DURATION_US {
        return Err(bad(format!("{v} is over one day")));
    }
    Ok(Some(v))
}

fn bytes_field(j: J<'_>, name: &str, m: Option<&str>) -> Result<Option<u64>, Reject> {
    match j {
        J::Absent | J::Null => Ok(None),
        J::U(u) => Ok(Some(u)),
        J::I(i) => Err(reject(
            RejectReason::BadBytes,
            m,
            format!("`{name}` is negative ({i})"),
        )),
        J::F(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as u64)),
        other => Err(reject(
            RejectReason::WrongType,
            m,
            format!("`{name}` is {}, not a byte count", other.describe()),
        )),
    }
}

fn text_field<'a>(
    j: J<'a>,
    name: &str,
    max: usize,
    m: Option<&str>,
) -> Result<Cow<'a, str>, Reject> {
    opt_text_field(j, name, max, m)?.ok_or_else(|| {
        reject(
            RejectReason::MissingField,
            m,
            format!("`{name}` is missing"),
        )
    })
}

fn opt_text_field<'a>(
    j: J<'a>,
    name: &str,
    max: usize,
    m: Option<&str>,
) -> Result<Option<Cow<'a, str>>, Reject> {
    match j {
        J::Absent | J::Null => Ok(None),
        J::S(s) if is_clean_text(&s, max) => Ok(Some(s)),
        J::S(s) => Err(reject(
            RejectReason::BadText,
            m,
            format!(
                "`{name}` {:?} is empty, over {max} characters, or has control characters",
                truncate(&s)
            ),
        )),
        other => Err(reject(
            RejectReason::WrongType,
            m,
            format!("`{name}` is {}, not a string", other.describe()),
        )),
    }
}

fn ml_field<'a>(raw: RawMl<'a>, m: Option<&str>) -> Result<Vec<(Cow<'a, str>, f64)>, Reject> {
    let bad = |what: String| reject(RejectReason::BadMl, m, format!("`ml` {what}"));
    let entries = match raw {
        RawMl::Absent => return Ok(Vec::new()),
        RawMl::NotObject => return Err(bad("is not an object".into())),
        RawMl::Entries(e) => e,
    };
    if entries.len() > MAX_ML_ENTRIES {
        return Err(bad(format!("has more than {MAX_ML_ENTRIES} entries")));
    }
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let key_ok = !k.is_empty()
            && k.len() <= MAX_ML_KEY_CHARS
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !key_ok {
            return Err(bad(format!(
                "key {:?} is not [a-z0-9_]{{1,64}}",
                truncate(&k)
            )));
        }
        let v = match v {
            J::U(u) => u as f64,
            J::I(i) => i as f64,
            J::F(f) if f.is_finite() => f,
            other => {
                return Err(bad(format!(
                    "value of {k:?} is {}, not a finite number",
                    other.describe()
                )));
            }
        };
        out.push((k, v));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Lenient parsing. Nothing below fails on a wrong type; it records what it saw.

/// The scalar arms of a visitor that expects a container: every scalar becomes `$val`,
/// and `null` becomes `$null` (absent, for optional containers).
macro_rules! scalars_are {
    ($ty:ty, $val:expr) => {
        scalars_are!($ty, $val, $val);
    };
    ($ty:ty, $val:expr, $null:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$ty, E> {
            Ok($val)
        }
        fn visit_i64<E>(self, _: i64) -> Result<$ty, E> {
            Ok($val)
        }
        fn visit_u64<E>(self, _: u64) -> Result<$ty, E> {
            Ok($val)
        }
        fn visit_f64<E>(self, _: f64) -> Result<$ty, E> {
            Ok($val)
        }
        fn visit_str<E>(self, _: &str) -> Result<$ty, E> {
            Ok($val)
        }
        fn visit_unit<E>(self) -> Result<$ty, E> {
            Ok($null)
        }
    };
}

/// Any JSON value, with containers reduced to their kind.
#[derive(Debug, Default)]
enum J<'a> {
    #[default]
    Absent,
    Null,
    Bool(bool),
    I(i64),
    U(u64),
    F(f64),
    S(Cow<'a, str>),
    Arr,
    Obj,
}

impl J<'_> {
    fn describe(&self) -> String {
        match self {
            J::Absent => "absent".into(),
            J::Null => "null".into(),
            J::Bool(b) => format!("the boolean {b}"),
            J::I(i) => format!("the number {i}"),
            J::U(u) => format!("the number {u}"),
            J::F(f) => format!("the number {f}"),
            J::S(s) => format!("the string {:?}", truncate(s)),
            J::Arr => "an array".into(),
            J::Obj => "an object".into(),
        }
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<J<'de>, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<J<'de>, E> {
        // serde_json hands non-negative integers to visit_u64; keep one form for each.
        Ok(if v >= 0 { J::U(v as u64) } else { J::I(v) })
    }
    fn visit_u64<E>(self, v: u64) -> Result<J<'de>, E> {
        Ok(J::U(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<J<'de>, E> {
        Ok(J::F(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<J<'de>, E> {
        Ok(J::S(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<J<'de>, E> {
        Ok(J::S(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<J<'de>, E> {
        Ok(J::S(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_none<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<J<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(J::Arr)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<J<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(J::Obj)
    }
}

impl<'de> Deserialize<'de> for J<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

/// Object keys, matched without allocating; unknown keys are skipped for forward compatibility.
#[derive(Clone, Copy)]
enum Key {
    V,
    Source,
    Dropped,
    Events,
    Ts,
    Model,
    Version,
    Instance,
    Method,
    Route,
    Status,
    DurationUs,
    TtfbUs,
    ReqBytes,
    RespBytes,
    Error,
    Ml,
    Kind,
    Pid,
    Unknown,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "v" => Key::V,
                    "source" => Key::Source,
                    "dropped" => Key::Dropped,
                    "events" => Key::Events,
                    "ts" => Key::Ts,
                    "model" => Key::Model,
                    "version" => Key::Version,
                    "instance" => Key::Instance,
                    "method" => Key::Method,
                    "route" => Key::Route,
                    "status" => Key::Status,
                    "duration_us" => Key::DurationUs,
                    "ttfb_us" => Key::TtfbUs,
                    "req_bytes" => Key::ReqBytes,
                    "resp_bytes" => Key::RespBytes,
                    "error" => Key::Error,
                    "ml" => Key::Ml,
                    "kind" => Key::Kind,
                    "pid" => Key::Pid,
                    _ => Key::Unknown,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

enum RawBatch<'a> {
    Object {
        v: J<'a>,
        source: RawSource<'a>,
        dropped: J<'a>,
        /// `None` when absent or not an array. Each slot is the event or why it is not one.
        events: Option<Vec<Result<RawEvent<'a>, Reject>>>,
    },
    NotObject,
}

impl<'de> Deserialize<'de> for RawBatch<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawBatch<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a batch object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawBatch<'de>, A::Error> {
                let mut v = J::Absent;
                let mut source = RawSource::Absent;
                let mut dropped = J::Absent;
                let mut events = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::V => v = map.next_value()?,
                        Key::Source => source = map.next_value()?,
                        Key::Dropped => dropped = map.next_value()?,
                        Key::Events => events = map.next_value::<RawEvents<'de>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawBatch::Object {
                    v,
                    source,
                    dropped,
                    events,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawBatch<'de>, A::Error> {
                JVisitor.visit_seq(seq).map(|_| RawBatch::NotObject)
            }
            scalars_are!(RawBatch<'de>, RawBatch::NotObject);
        }
        d.deserialize_any(V)
    }
}

struct RawEvents<'a>(Option<Vec<Result<RawEvent<'a>, Reject>>>);

impl<'de> Deserialize<'de> for RawEvents<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEvents<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEvents<'de>, A::Error> {
                let mut out =
                    Vec::with_capacity(seq.size_hint().unwrap_or(64).min(MAX_EVENTS_PER_BATCH));
                while let Some(slot) = seq.next_element::<Slot<'de>>()? {
                    out.push(slot.0);
                }
                Ok(RawEvents(Some(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEvents<'de>, A::Error> {
                JVisitor.visit_map(map).map(|_| RawEvents(None))
            }
            scalars_are!(RawEvents<'de>, RawEvents(None));
        }
        d.deserialize_any(V)
    }
}

/// One element of `events`: an object becomes a [`RawEvent`], anything else a reject.
struct Slot<'a>(Result<RawEvent<'a>, Reject>);

impl<'de> Deserialize<'de> for Slot<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Slot<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Slot<'de>, A::Error> {
                read_event(map).map(|e| Slot(Ok(e)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Slot<'de>, A::Error> {
                JVisitor.visit_seq(seq).map(|_| not_object())
            }
            scalars_are!(Slot<'de>, not_object());
        }
        d.deserialize_any(V)
    }
}

fn not_object<'a>() -> Slot<'a> {
    Slot(Err(reject(
        RejectReason::NotAnObject,
        None,
        "an element of `events` is not an object".into(),
    )))
}

#[derive(Default)]
struct RawEvent<'a> {
    ts: J<'a>,
    model: J<'a>,
    version: J<'a>,
    instance: J<'a>,
    method: J<'a>,
    route: J<'a>,
    status: J<'a>,
    duration_us: J<'a>,
    ttfb_us: J<'a>,
    req_bytes: J<'a>,
    resp_bytes: J<'a>,
    error: J<'a>,
    ml: RawMl<'a>,
}

fn read_event<'de, A: MapAccess<'de>>(mut map: A) -> Result<RawEvent<'de>, A::Error> {
    let mut e = RawEvent::default();
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Ts => e.ts = map.next_value()?,
            Key::Model => e.model = map.next_value()?,
            Key::Version => e.version = map.next_value()?,
            Key::Instance => e.instance = map.next_value()?,
            Key::Method => e.method = map.next_value()?,
            Key::Route => e.route = map.next_value()?,
            Key::Status => e.status = map.next_value()?,
            Key::DurationUs => e.duration_us = map.next_value()?,
            Key::TtfbUs => e.ttfb_us = map.next_value()?,
            Key::ReqBytes => e.req_bytes = map.next_value()?,
            Key::RespBytes => e.resp_bytes = map.next_value()?,
            Key::Error => e.error = map.next_value()?,
            Key::Ml => e.ml = map.next_value()?,
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(e)
}

#[derive(Default)]
enum RawMl<'a> {
    #[default]
    Absent,
    NotObject,
    Entries(Vec<(Cow<'a, str>, J<'a>)>),
}

impl<'de> Deserialize<'de> for RawMl<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMl<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ml object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawMl<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<J<'de>>()? {
                    let v: J<'de> = map.next_value()?;
                    // Keep one past the limit so the check can see it was exceeded, no more.
                    if out.len() <= MAX_ML_ENTRIES {
                        let k = match k {
                            J::S(s) => s,
                            _ => Cow::Borrowed(""),
                        };
                        out.push((k, v));
                    }
                }
                Ok(RawMl::Entries(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawMl<'de>, A::Error> {
                JVisitor.visit_seq(seq).map(|_| RawMl::NotObject)
            }
            scalars_are!(RawMl<'de>, RawMl::NotObject, RawMl::Absent);
        }
        d.deserialize_any(V)
    }
}

enum RawSource<'a> {
    Absent,
    NotObject,
    Object {
        kind: J<'a>,
        instance: J<'a>,
        pid: J<'a>,
    },
}

impl<'de> Deserialize<'de> for RawSource<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawSource<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a source object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawSource<'de>, A::Error> {
                let (mut kind, mut instance, mut pid) = (J::Absent, J::Absent, J::Absent);
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Kind => kind = map.next_value()?,
                        Key::Instance => instance = map.next_value()?,
                        Key::Pid => pid = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(RawSource::Object {
                    kind,
                    instance,
                    pid,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawSource<'de>, A::Error> {
                JVisitor.visit_seq(seq).map(|_| RawSource::NotObject)
            }
            scalars_are!(RawSource<'de>, RawSource::NotObject, RawSource::Absent);
        }
        d.deserialize_any(V)
    }
}
