//! Decoding and validating a batch body.
//!
//! The body is read in one pass. Every field is read as whatever JSON value it holds, so
//! a mistyped field in one event cannot stop the reading of the batch; each event is
//! validated as soon as it is read, into an [`Event`] or a [`Reject`] naming the reason.
//! Only a body that is not JSON at all, or not a batch, is rejected as a whole.

// The `inline(always)` below are measured: plain `inline` left the small fast paths of the
// field checks as calls, each copying a 32-byte value in and a result out.
#![allow(clippy::inline_always)]

use std::borrow::Cow;
use std::fmt;
use std::mem::take;

use crate::event::{Event, Source, SourceKind};
use crate::json::{J, Reader, SyntaxError, is_ml_key};
use crate::{
    MAX_AGE_US, MAX_BODY_BYTES, MAX_DURATION_US, MAX_EVENTS_PER_BATCH, MAX_FUTURE_US,
    MAX_METHOD_CHARS, MAX_ML_ENTRIES, MAX_ML_KEY_CHARS, MAX_MODEL_BYTES, MAX_MODEL_CHARS,
    MAX_TEXT_CHARS, VERSION,
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
    // One UTF-8 check of the whole body; the reader then borrows strings from it.
    let text = std::str::from_utf8(body).map_err(|e| BatchError {
        reason: RejectReason::NotJson,
        detail: format!("the body is not UTF-8: {e}"),
        events: 1,
    })?;
    let raw = read_batch(text, expected_model, now_us).map_err(|e| BatchError {
        reason: RejectReason::NotJson,
        detail: format!("{} at byte {}", e.what, e.pos),
        events: 1,
    })?;
    let RawBatch {
        v,
        source,
        dropped,
        events,
    } = raw;
    match v {
        J::U(VERSION) => {}
        J::Absent => return Err(version_error("`v` is missing".into())),
        other => {
            return Err(version_error(format!(
                "`v` is {}, only 1 is understood",
                other.describe()
            )));
        }
    }
    let Some((good, rejects, n)) = events else {
        return Err(not_a_batch("`events` is missing or not an array"));
    };
    if n > MAX_EVENTS_PER_BATCH {
        return Err(BatchError {
            reason: RejectReason::TooManyEvents,
            detail: format!("{n} events, at most {MAX_EVENTS_PER_BATCH} per batch"),
            events: n,
        });
    }
    let source = match source {
        RawSource::Object {
            kind,
            instance,
            pid,
        } => {
            let kind = match kind {
                J::S(s) => SourceKind::parse(&s.text),
                _ => return Err(not_a_batch_n("`source.kind` is missing or not a string", n)),
            };
            let instance = match instance {
                J::S(s) if s.is_clean(MAX_TEXT_CHARS) => s.text,
                _ => {
                    return Err(not_a_batch_n(
                        "`source.instance` is missing or not clean text",
                        n,
                    ));
                }
            };
            let pid = match pid {
                J::U(p) => u32::try_from(p).unwrap_or(u32::MAX),
                J::Absent | J::Null => 0,
                _ => {
                    return Err(not_a_batch_n(
                        "`source.pid` is not a non-negative integer",
                        n,
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
            return Err(not_a_batch_n("`source` is missing or not an object", n));
        }
    };
    let dropped = match dropped {
        J::Absent | J::Null => 0,
        J::U(d) => d,
        J::I(_) => return Err(not_a_batch_n("`dropped` is negative", n)),
        other => {
            return Err(not_a_batch_n(
                &format!("`dropped` is {}, not a count", other.describe()),
                n,
            ));
        }
    };
    Ok(Decoded {
        source,
        dropped,
        events: good,
        rejects,
    })
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

/// A required field that is absent or null.
#[cold]
fn missing(name: &str, model: Option<&str>) -> Reject {
    reject(
        RejectReason::MissingField,
        model,
        format!("`{name}` is missing"),
    )
}

/// A field of the wrong JSON type; `want` is what it should be ("a string", "an integer").
#[cold]
fn wrong_type(name: &str, model: Option<&str>, got: &J<'_>, want: &str) -> Reject {
    reject(
        RejectReason::WrongType,
        model,
        format!("`{name}` is {}, not {want}", got.describe()),
    )
}

/// Validates one event, taking its fields out of `raw`: all of them when it is valid.
fn validate<'a>(
    raw: &mut RawEvent<'a>,
    expected_model: Option<&str>,
    now_us: i64,
) -> Result<Event<'a>, Reject> {
    let model = model_field(take(&mut raw.model))?;
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
    let ts = int_field(take(&mut raw.ts), "ts", m)?;
    if ts > now_us.saturating_add(MAX_FUTURE_US) {
        return Err(reject(
            RejectReason::TsInFuture,
            m,
            format!(
                "`ts` is {} s in the future",
                ts.saturating_sub(now_us) / 1_000_000
            ),
        ));
    }
    if ts < now_us.saturating_sub(MAX_AGE_US) {
        return Err(reject(
            RejectReason::TsTooOld,
            m,
            format!(
                "`ts` is {} h old",
                now_us.saturating_sub(ts) / 3_600_000_000
            ),
        ));
    }
    let instance = text_field(take(&mut raw.instance), "instance", MAX_TEXT_CHARS, m)?;
    let method = text_field(take(&mut raw.method), "method", MAX_METHOD_CHARS, m)?;
    let route = text_field(take(&mut raw.route), "route", MAX_TEXT_CHARS, m)?;
    let status = int_field(take(&mut raw.status), "status", m)?;
    if !(100..=599).contains(&status) {
        return Err(reject(
            RejectReason::BadStatus,
            m,
            format!("`status` {status} is outside 100..599"),
        ));
    }
    let duration_us = duration_field(take(&mut raw.duration_us), "duration_us", m)?
        .ok_or_else(|| missing("duration_us", m))?;
    let ttfb_us = duration_field(take(&mut raw.ttfb_us), "ttfb_us", m)?;
    if let Some(t) = ttfb_us
        && t > duration_us
    {
        return Err(reject(
            RejectReason::BadDuration,
            m,
            format!("`ttfb_us` {t} is above `duration_us` {duration_us}"),
        ));
    }
    let req_bytes = bytes_field(take(&mut raw.req_bytes), "req_bytes", m)?;
    let resp_bytes = bytes_field(take(&mut raw.resp_bytes), "resp_bytes", m)?;
    let version = opt_text_field(take(&mut raw.version), "version", MAX_TEXT_CHARS, m)?;
    let error = opt_text_field(take(&mut raw.error), "error", MAX_TEXT_CHARS, m)?;
    let ml = ml_field(take(&mut raw.ml), m)?;
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

// Each field check comes in two parts: an inlined fast path for a well-typed, valid value,
// and the complete check, out of line, for everything else (including the values the fast
// path also accepts, so the complete check alone defines the rules).

#[inline(always)]
fn model_field(j: J<'_>) -> Result<Cow<'_, str>, Reject> {
    match j {
        J::S(s) if s.text.len() <= MAX_MODEL_BYTES && s.is_clean(MAX_MODEL_CHARS) => Ok(s.text),
        j => model_field_any(j),
    }
}

#[cold]
#[inline(never)]
fn model_field_any(j: J<'_>) -> Result<Cow<'_, str>, Reject> {
    match j {
        J::S(s) if s.text.len() <= MAX_MODEL_BYTES && s.is_clean(MAX_MODEL_CHARS) => Ok(s.text),
        J::S(s) => Err(reject(
            RejectReason::BadModel,
            None,
            format!(
                "model {:?} is empty, over {MAX_MODEL_CHARS} characters or {MAX_MODEL_BYTES} bytes, or has control characters",
                truncate(&s.text)
            ),
        )),
        J::Absent | J::Null => Err(missing("model", None)),
        other => Err(wrong_type("model", None, &other, "a string")),
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[inline(always)]
fn int_field(j: J<'_>, name: &str, m: Option<&str>) -> Result<i64, Reject> {
    if let J::U(u) = j
        && let Ok(i) = i64::try_from(u)
    {
        return Ok(i);
    }
    int_field_any(j, name, m)
}

#[cold]
#[inline(never)]
fn int_field_any(j: J<'_>, name: &str, m: Option<&str>) -> Result<i64, Reject> {
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
        J::Absent | J::Null => Err(missing(name, m)),
        other => Err(wrong_type(name, m, &other, "an integer")),
    }
}

#[inline(always)]
fn duration_field(j: J<'_>, name: &str, m: Option<&str>) -> Result<Option<u64>, Reject> {
    match j {
        J::U(u) if u <= MAX_DURATION_US => Ok(Some(u)),
        J::Absent => Ok(None),
        j => duration_field_any(j, name, m),
    }
}

#[cold]
#[inline(never)]
fn duration_field_any(j: J<'_>, name: &str, m: Option<&str>) -> Result<Option<u64>, Reject> {
    let bad = |what: String| reject(RejectReason::BadDuration, m, format!("`{name}` {what}"));
    let v = match j {
        J::Absent | J::Null => return Ok(None),
        J::U(u) => u,
        J::I(i) => return Err(bad(format!("is negative ({i})"))),
        J::F(f) if !f.is_finite() => return Err(bad("is not finite".into())),
        J::F(f) if f < 0.0 => return Err(bad(format!("is negative ({f})"))),
        J::F(f) => f.round() as u64,
        other => return Err(wrong_type(name, m, &other, "a number")),
    };
    if v > MAX_DURATION_US {
        return Err(bad(format!("{v} is over one day")));
    }
    Ok(Some(v))
}

#[inline(always)]
fn bytes_field(j: J<'_>, name: &str, m: Option<&str>) -> Result<Option<u64>, Reject> {
    match j {
        J::U(u) => Ok(Some(u)),
        J::Absent => Ok(None),
        j => bytes_field_any(j, name, m),
    }
}

#[cold]
#[inline(never)]
fn bytes_field_any(j: J<'_>, name: &str, m: Option<&str>) -> Result<Option<u64>, Reject> {
    match j {
        J::Absent | J::Null => Ok(None),
        J::U(u) => Ok(Some(u)),
        J::I(i) => Err(reject(
            RejectReason::BadBytes,
            m,
            format!("`{name}` is negative ({i})"),
        )),
        J::F(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 => Ok(Some(f as u64)),
        other => Err(wrong_type(name, m, &other, "a byte count")),
    }
}

#[inline(always)]
fn text_field<'a>(
    j: J<'a>,
    name: &str,
    max: usize,
    m: Option<&str>,
) -> Result<Cow<'a, str>, Reject> {
    match j {
        J::S(s) if s.is_clean(max) => Ok(s.text),
        j => text_field_any(j, name, max, m),
    }
}

#[cold]
#[inline(never)]
fn text_field_any<'a>(
    j: J<'a>,
    name: &str,
    max: usize,
    m: Option<&str>,
) -> Result<Cow<'a, str>, Reject> {
    opt_text_field_any(j, name, max, m)?.ok_or_else(|| missing(name, m))
}

#[inline(always)]
fn opt_text_field<'a>(
    j: J<'a>,
    name: &str,
    max: usize,
    m: Option<&str>,
) -> Result<Option<Cow<'a, str>>, Reject> {
    match j {
        J::S(s) if s.is_clean(max) => Ok(Some(s.text)),
        J::Absent => Ok(None),
        j => opt_text_field_any(j, name, max, m),
    }
}

#[cold]
#[inline(never)]
fn opt_text_field_any<'a>(
    j: J<'a>,
    name: &str,
    max: usize,
    m: Option<&str>,
) -> Result<Option<Cow<'a, str>>, Reject> {
    match j {
        J::Absent | J::Null => Ok(None),
        J::S(s) if s.is_clean(max) => Ok(Some(s.text)),
        J::S(s) => Err(reject(
            RejectReason::BadText,
            m,
            format!(
                "`{name}` {:?} is empty, over {max} characters, or has control characters",
                truncate(&s.text)
            ),
        )),
        other => Err(wrong_type(name, m, &other, "a string")),
    }
}

#[inline]
fn ml_field<'a>(raw: RawMl<'a>, m: Option<&str>) -> Result<Vec<(Cow<'a, str>, f64)>, Reject> {
    let bad = |what: String| reject(RejectReason::BadMl, m, format!("`ml` {what}"));
    let (values, first_bad, count) = match raw {
        RawMl::Absent => return Ok(Vec::new()),
        RawMl::NotObject => return Err(bad("is not an object".into())),
        RawMl::Entries {
            values,
            first_bad,
            count,
        } => (values, first_bad, count),
    };
    if count > MAX_ML_ENTRIES {
        return Err(bad(format!("has more than {MAX_ML_ENTRIES} entries")));
    }
    match first_bad {
        None => Ok(values),
        Some((k, BadEntry::Key)) => Err(bad(format!(
            "key {:?} is not [a-z0-9_]{{1,64}}",
            truncate(&k)
        ))),
        Some((k, BadEntry::Value(v))) => Err(bad(format!(
            "value of {k:?} is {}, not a finite number",
            v.describe()
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Reading. Nothing below fails on a wrong type, only on broken JSON.

impl J<'_> {
    fn describe(&self) -> String {
        match self {
            J::Absent => "absent".into(),
            J::Null => "null".into(),
            J::Bool(b) => format!("the boolean {b}"),
            J::I(i) => format!("the number {i}"),
            J::U(u) => format!("the number {u}"),
            J::F(f) => format!("the number {f}"),
            J::S(s) => format!("the string {:?}", truncate(&s.text)),
            J::Arr => "an array".into(),
            J::Obj => "an object".into(),
        }
    }
}

/// Valid events, rejects, and how many elements `events` held.
type Events<'a> = (Vec<Event<'a>>, Vec<Reject>, usize);

struct RawBatch<'a> {
    v: J<'a>,
    source: RawSource<'a>,
    dropped: J<'a>,
    /// `None` when absent or not an array.
    events: Option<Events<'a>>,
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

fn read_batch<'a>(
    text: &'a str,
    expected_model: Option<&str>,
    now_us: i64,
) -> Result<RawBatch<'a>, SyntaxError> {
    let mut r = Reader::new(text);
    let mut batch = RawBatch {
        v: J::Absent,
        source: RawSource::Absent,
        dropped: J::Absent,
        events: None,
    };
    if !r.open_object() {
        r.skip(0)?;
        r.finish()?;
        // Not an object: `events` stays missing, which reports it as not a batch.
        batch.v = J::U(VERSION);
        return Ok(batch);
    }
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        match &*key {
            "v" => batch.v = r.value()?,
            "dropped" => batch.dropped = r.value()?,
            "source" => batch.source = read_source(&mut r)?,
            "events" if r.open_array() => {
                batch.events = Some(read_events(&mut r, text.len(), expected_model, now_us)?);
            }
            "events" => {
                r.skip(0)?;
                batch.events = None;
            }
            _ => r.skip(0)?,
        }
    }
    r.finish()?;
    Ok(batch)
}

fn read_source<'a>(r: &mut Reader<'a>) -> Result<RawSource<'a>, SyntaxError> {
    if !r.open_object() {
        return Ok(match r.value()? {
            J::Null => RawSource::Absent,
            _ => RawSource::NotObject,
        });
    }
    let (mut kind, mut instance, mut pid) = (J::Absent, J::Absent, J::Absent);
    let mut first = true;
    while let Some(key) = r.next_key(&mut first)? {
        match &*key {
            "kind" => kind = r.value()?,
            "instance" => instance = r.value()?,
            "pid" => pid = r.value()?,
            _ => r.skip(0)?,
        }
    }
    Ok(RawSource::Object {
        kind,
        instance,
        pid,
    })
}

/// Reads the open `events` array, validating each event as soon as it is read.
fn read_events<'a>(
    r: &mut Reader<'a>,
    body_len: usize,
    expected_model: Option<&str>,
    now_us: i64,
) -> Result<Events<'a>, SyntaxError> {
    // A typical event is 150 to 250 bytes: size the vector once, not by doubling.
    let mut good = Vec::with_capacity((body_len / 160).min(MAX_EVENTS_PER_BATCH));
    let mut rejects = Vec::new();
    let mut n = 0usize;
    let mut first = true;
    while r.next_element(&mut first)? {
        let index = n;
        n += 1;
        if n > MAX_EVENTS_PER_BATCH {
            // Keep checking the syntax, but stop validating: the batch will be refused.
            r.skip(0)?;
            continue;
        }
        if !r.open_object() {
            r.skip(0)?;
            let mut rej = reject(
                RejectReason::NotAnObject,
                None,
                "an element of `events` is not an object".into(),
            );
            rej.index = index;
            rejects.push(rej);
            continue;
        }
        // Filled and validated in place: a read event is some 400 bytes, not worth moving.
        let mut raw = RawEvent::default();
        read_event(r, &mut raw)?;
        match validate(&mut raw, expected_model, now_us) {
            Ok(ev) => {
                good.push(ev);
                // A valid event has had every field taken: there is nothing left to drop,
                // and forgetting spares a check of all thirteen. Debug builds (every test)
                // check that nothing was left behind to leak.
                debug_assert!(raw.is_spent(), "validate left a field untaken");
                std::mem::forget(raw);
            }
            Err(mut rej) => {
                rej.index = index;
                rejects.push(rej);
            }
        }
    }
    Ok((good, rejects, n))
}

/// An event's fields as read, before validation. [`validate`] must take every one of them
/// from a valid event, which `read_events` then forgets without dropping.
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

impl RawEvent<'_> {
    /// Every field taken (or never read).
    fn is_spent(&self) -> bool {
        [
            &self.ts,
            &self.model,
            &self.version,
            &self.instance,
            &self.method,
            &self.route,
            &self.status,
            &self.duration_us,
            &self.ttfb_us,
            &self.req_bytes,
            &self.resp_bytes,
            &self.error,
        ]
        .iter()
        .all(|j| matches!(j, J::Absent))
            && matches!(self.ml, RawMl::Absent)
    }
}

/// The known event fields.
#[derive(Clone, Copy)]
enum Field {
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
    Unknown,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Ts => "ts",
            Field::Model => "model",
            Field::Version => "version",
            Field::Instance => "instance",
            Field::Method => "method",
            Field::Route => "route",
            Field::Status => "status",
            Field::DurationUs => "duration_us",
            Field::TtfbUs => "ttfb_us",
            Field::ReqBytes => "req_bytes",
            Field::RespBytes => "resp_bytes",
            Field::Error => "error",
            Field::Ml => "ml",
            Field::Unknown => "",
        }
    }

    /// The field whose key is written plainly (no escapes) at the start of `ahead`, with
    /// the `:` right after it, and the length of that `"key":`. This is the common case,
    /// recognised by comparing a few bytes in place instead of reading the key as a string.
    #[inline]
    fn written_at(ahead: &[u8]) -> Option<(Field, usize)> {
        let is = |token: &[u8]| ahead.starts_with(token);
        let field = match ahead.get(1)? {
            b't' if is(b"\"ts\":") => Field::Ts,
            b't' if is(b"\"ttfb_us\":") => Field::TtfbUs,
            b'm' if is(b"\"model\":") => Field::Model,
            b'm' if is(b"\"method\":") => Field::Method,
            b'm' if is(b"\"ml\":") => Field::Ml,
            b'v' if is(b"\"version\":") => Field::Version,
            b'i' if is(b"\"instance\":") => Field::Instance,
            b'r' if is(b"\"route\":") => Field::Route,
            b'r' if is(b"\"req_bytes\":") => Field::ReqBytes,
            b'r' if is(b"\"resp_bytes\":") => Field::RespBytes,
            b's' if is(b"\"status\":") => Field::Status,
            b'd' if is(b"\"duration_us\":") => Field::DurationUs,
            b'e' if is(b"\"error\":") => Field::Error,
            _ => return None,
        };
        Some((field, field.name().len() + 3))
    }

    /// The field named by a key as read, escapes resolved.
    fn named(key: &str) -> Field {
        let is = |name: &str| key == name;
        match key.len() {
            2 if is("ts") => Field::Ts,
            2 if is("ml") => Field::Ml,
            5 if is("model") => Field::Model,
            5 if is("route") => Field::Route,
            5 if is("error") => Field::Error,
            6 if is("method") => Field::Method,
            6 if is("status") => Field::Status,
            7 if is("version") => Field::Version,
            7 if is("ttfb_us") => Field::TtfbUs,
            8 if is("instance") => Field::Instance,
            9 if is("req_bytes") => Field::ReqBytes,
            10 if is("resp_bytes") => Field::RespBytes,
            11 if is("duration_us") => Field::DurationUs,
            _ => Field::Unknown,
        }
    }

    /// Reads the key of a member, and the `:` after it.
    #[inline]
    fn read(r: &mut Reader<'_>) -> Result<Field, SyntaxError> {
        match Field::written_at(r.ahead()) {
            Some((field, len)) => {
                r.skip_known(len);
                Ok(field)
            }
            None => Ok(Field::named(&r.key()?)),
        }
    }
}

/// Reads the fields of an open event object into `e`, which starts all absent.
///
/// Out of line: inlined into the batch loop, the field loop competes with it for registers
/// (measured: some 4% more instructions).
#[inline(never)]
fn read_event<'a>(r: &mut Reader<'a>, e: &mut RawEvent<'a>) -> Result<(), SyntaxError> {
    let mut first = true;
    while r.next_member(&mut first)? {
        let slot = match Field::read(r)? {
            Field::Ts => &mut e.ts,
            Field::Model => &mut e.model,
            Field::Version => &mut e.version,
            Field::Instance => &mut e.instance,
            Field::Method => &mut e.method,
            Field::Route => &mut e.route,
            Field::Status => &mut e.status,
            Field::DurationUs => &mut e.duration_us,
            Field::TtfbUs => &mut e.ttfb_us,
            Field::ReqBytes => &mut e.req_bytes,
            Field::RespBytes => &mut e.resp_bytes,
            Field::Error => &mut e.error,
            Field::Ml => {
                e.ml = read_ml(r)?;
                continue;
            }
            Field::Unknown => {
                r.skip(0)?;
                continue;
            }
        };
        r.value_into(slot)?;
    }
    Ok(())
}

#[derive(Default)]
enum RawMl<'a> {
    #[default]
    Absent,
    NotObject,
    /// The entries read, values converted once. Reading stops keeping entries at the
    /// first bad one (which rejects the event) or one past the limit.
    Entries {
        values: Vec<(Cow<'a, str>, f64)>,
        first_bad: Option<(Cow<'a, str>, BadEntry<'a>)>,
        /// Entries seen, up to one past the limit.
        count: usize,
    },
}

/// What is wrong with an `ml` entry: its key, or else its value.
enum BadEntry<'a> {
    Key,
    Value(J<'a>),
}

/// Out of line, like [`read_event`]: inlined into it, the entry loop cost some 140
/// instructions more an event (four entries), and events without `ml` never call it.
#[inline(never)]
fn read_ml<'a>(r: &mut Reader<'a>) -> Result<RawMl<'a>, SyntaxError> {
    if !r.open_object() {
        return Ok(match r.value()? {
            J::Null => RawMl::Absent,
            _ => RawMl::NotObject,
        });
    }
    // Sized for the usual few entries at once: growing from empty costs twice the allocation.
    let mut values = Vec::with_capacity(4);
    let mut first_bad = None;
    let mut count = 0;
    let mut first = true;
    while r.next_member(&mut first)? {
        // The usual `"key":12.0` is read by the fast paths, which check the key as they
        // find its end; anything else is read in full, and its key checked apart.
        let (key, checked) = match r.ml_key(MAX_ML_KEY_CHARS) {
            Some(k) => (Cow::Borrowed(k), true),
            None => (r.key()?, false),
        };
        let value = match r.short_number() {
            Some(f) => J::F(f),
            None => r.value()?,
        };
        // Keep one past the limit so the check can see it was exceeded, no more.
        if count > MAX_ML_ENTRIES {
            continue;
        }
        count += 1;
        if first_bad.is_some() {
            continue;
        }
        if !checked && !is_ml_key(&key, MAX_ML_KEY_CHARS) {
            first_bad = Some((key, BadEntry::Key));
            continue;
        }
        match value {
            J::U(u) => values.push((key, u as f64)),
            J::I(i) => values.push((key, i as f64)),
            J::F(f) if f.is_finite() => values.push((key, f)),
            other => first_bad = Some((key, BadEntry::Value(other))),
        }
    }
    Ok(RawMl::Entries {
        values,
        first_bad,
        count,
    })
}
