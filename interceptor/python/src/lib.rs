//! `modelmon_interceptor._core`: the one native call on a model API's request path.
//!
//! Python measures the request and calls [`Core::record`] once; this builds an owned
//! [`Event`] and pushes it into the publisher's bounded queue. Batching, JSON encoding and
//! AMQP all happen on the publisher's own Rust thread, which never takes the GIL, so a
//! busy broker link cannot slow the interpreter that serves the model.

mod intern;
mod stage;
mod text;

use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use modelmon_contract::{
    Event, MAX_METHOD_CHARS, MAX_ML_ENTRIES, MAX_TEXT_CHARS, SourceKind, is_valid_ml_key,
};
use modelmon_publisher::{BrokerState, Config, Publisher};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::intern::Interner;
use crate::stage::Stage;
use crate::text::clean_text;

/// How often staged events are handed to the publisher (see `stage`).
const STAGE_INTERVAL: Duration = Duration::from_millis(20);

/// A running publisher for one process.
///
/// `frozen` keeps the hot path free of the `PyO3` borrow flag: every method takes `&self`.
#[pyclass(module = "modelmon_interceptor._core", frozen)]
struct Core {
    stage: Stage,
    instance: Cow<'static, str>,
    /// One table per check a value passes before it is shared, since a value found in a
    /// table skips that check: model names (checked by the publisher, which counts the
    /// bad ones), methods and other text (clean, within two different limits), and
    /// measure names.
    models: Interner,
    methods: Interner,
    texts: Interner,
    ml_keys: Interner,
    /// One reading of Python's `time.perf_counter_ns()` and the `Instant` taken right
    /// after it. Both count the same monotonic clock, so this pair maps any later
    /// reading of Python's onto ours (see `wall_us_at`).
    py_clock_ns: i64,
    clock: Instant,
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (
        amqp_url, source_kind, instance, max_batch_events=500, max_batch_delay_ms=200,
        buffer_events=65_536, persistent=false, app_id=None,
    ))]
    fn new(
        py: Python<'_>,
        amqp_url: String,
        source_kind: &str,
        instance: &str,
        max_batch_events: usize,
        max_batch_delay_ms: u64,
        buffer_events: usize,
        persistent: bool,
        app_id: Option<String>,
    ) -> PyResult<Self> {
        if max_batch_events == 0 || buffer_events == 0 {
            return Err(PyValueError::new_err(
                "max_batch_events and buffer_events must be at least 1",
            ));
        }
        let instance = clean_text(instance, MAX_TEXT_CHARS);
        let config = Config {
            amqp_url,
            source_kind: SourceKind::parse(source_kind),
            instance: instance.clone().into_owned(),
            max_batch_events,
            max_batch_delay: Duration::from_millis(max_batch_delay_ms),
            buffer_events,
            persistent,
            app_id: app_id.unwrap_or_else(|| {
                concat!("modelmon-interceptor-python/", env!("CARGO_PKG_VERSION")).to_owned()
            }),
        };
        let py_clock_ns = py
            .import("time")?
            .getattr("perf_counter_ns")?
            .call0()?
            .extract::<i64>()?;
        let clock = Instant::now();
        Ok(Core {
            py_clock_ns,
            clock,
            stage: Stage::start(Publisher::start(config), STAGE_INTERVAL),
            // Leaked once per process, so that no event copies it.
            instance: Cow::Borrowed(Box::leak(instance.into_owned().into_boxed_str())),
            models: Interner::default(),
            methods: Interner::default(),
            texts: Interner::default(),
            ml_keys: Interner::default(),
        })
    }

    /// Queues one request's event. Never blocks: a full buffer drops and counts it.
    #[pyo3(signature = (
        ts, model, route, method, status, duration_us, ttfb_us=None, req_bytes=None,
        resp_bytes=None, error=None, version=None, ml=None,
    ))]
    fn record(
        &self,
        ts: i64,
        model: &str,
        route: &str,
        method: &str,
        status: u16,
        duration_us: u64,
        ttfb_us: Option<u64>,
        req_bytes: Option<u64>,
        resp_bytes: Option<u64>,
        error: Option<&str>,
        version: Option<&str>,
        ml: Option<&Bound<'_, PyDict>>,
    ) {
        let event = Event {
            ts,
            // The publisher drops (and counts) an invalid model name; nothing to fix here.
            model: self.models.get(model),
            version: version.map(|v| Self::intern_clean(&self.texts, v, MAX_TEXT_CHARS)),
            instance: self.instance.clone(),
            method: Self::intern_clean(&self.methods, method, MAX_METHOD_CHARS),
            route: Self::intern_clean(&self.texts, route, MAX_TEXT_CHARS),
            status: status.clamp(100, 599),
            duration_us,
            // A first byte after the last one is a clock oddity; the monitor would reject it.
            ttfb_us: ttfb_us.map(|t| t.min(duration_us)),
            req_bytes,
            resp_bytes,
            error: error.map(|e| clean_text(e, MAX_TEXT_CHARS)),
            ml: ml.map(|d| self.ml_entries(d)).unwrap_or_default(),
        };
        self.stage.record(event);
    }

    /// `record` for a request timed with Python's `time.perf_counter_ns()`: its start, its
    /// last byte, and its first byte when streamed (else 0). The wall-clock start and the
    /// durations are worked out here, where they cost no Python clock call or arithmetic.
    #[pyo3(signature = (
        start_ns, end_ns, first_ns, model, route, method, status, req_bytes, resp_bytes,
        error, version, ml,
    ))]
    fn request(
        &self,
        start_ns: i64,
        end_ns: i64,
        first_ns: i64,
        model: &str,
        route: &str,
        method: &str,
        status: u16,
        req_bytes: Option<u64>,
        resp_bytes: Option<u64>,
        error: Option<&str>,
        version: Option<&str>,
        ml: Option<&Bound<'_, PyDict>>,
    ) {
        let micros = |ns: i64| (ns.max(0) / 1000) as u64;
        self.record(
            self.wall_us_at(start_ns),
            model,
            route,
            method,
            status,
            micros(end_ns - start_ns),
            (first_ns != 0).then(|| micros(first_ns - start_ns)),
            req_bytes,
            resp_bytes,
            error,
            version,
            ml,
        );
    }

    /// Counters of this process's publisher, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        // Staged events count as recorded: hand them over first so the counters add up.
        self.stage.move_all();
        let s = self.stage.publisher().stats();
        let d = PyDict::new(py);
        d.set_item("recorded", s.recorded)?;
        d.set_item("published_events", s.published_events)?;
        d.set_item("published_batches", s.published_batches)?;
        d.set_item("dropped", s.dropped)?;
        d.set_item("returned", s.returned)?;
        d.set_item("unrouted", s.unrouted)?;
        d.set_item("held", s.held)?;
        d.set_item("connections", s.connections)?;
        d.set_item("state", state_name(s.state))?;
        d.set_item("node", s.node)?;
        d.set_item("last_error", s.last_error)?;
        d.set_item("blocked", s.blocked)?;
        d.set_item("sanitised", s.sanitised)?;
        Ok(d)
    }

    /// Publishes what is buffered; true when, in time, all of it was delivered (confirmed
    /// and routed) or counted as dropped.
    /// The GIL is released meanwhile so request threads keep running.
    fn flush(&self, py: Python<'_>, timeout_s: f64) -> bool {
        let timeout = seconds(timeout_s);
        py.detach(|| {
            self.stage.move_all();
            self.stage.publisher().flush(timeout)
        })
    }

    /// Flushes for at most `timeout_s` and stops the publishing thread.
    fn shutdown(&self, py: Python<'_>, timeout_s: f64) {
        let timeout = seconds(timeout_s);
        py.detach(|| {
            self.stage.stop();
            self.stage.publisher().shutdown(timeout);
        });
    }

    /// Called in a forked child: the publishing thread did not survive the fork, and the
    /// locks it shares with this handle may be frozen in a held state. Leaking one
    /// reference means nothing here is ever dropped, so the child never touches them.
    fn abandon(&self) {
        self.stage.leak();
    }

    #[getter]
    fn instance(&self) -> &str {
        &self.instance
    }
}

impl Core {
    /// Unix time in µs of a reading of Python's `time.perf_counter_ns()`: now on the wall
    /// clock, less how long ago that reading was on the monotonic one.
    fn wall_us_at(&self, py_ns: i64) -> i64 {
        let now_ns = self.py_clock_ns + self.clock.elapsed().as_nanos() as i64;
        let wall_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        wall_us - (now_ns - py_ns) / 1000
    }

    fn intern_clean(table: &Interner, s: &str, max: usize) -> Cow<'static, str> {
        // Only clean values enter the table, so a value found there needs no check.
        table
            .get_if(s, |s| modelmon_contract::is_clean_text(s, max))
            .unwrap_or_else(|| clean_text(s, max))
    }

    fn ml_entries(&self, d: &Bound<'_, PyDict>) -> Vec<(Cow<'static, str>, f64)> {
        let mut out = Vec::with_capacity(d.len().min(MAX_ML_ENTRIES));
        for (k, v) in d.iter() {
            if out.len() == MAX_ML_ENTRIES {
                break;
            }
            // A `Cow`, not a `&str`: it borrows where the ABI lets it (abi3 from 3.10, see
            // Cargo.toml) and copies where it does not, so the core builds either way.
            let (Ok(key), Ok(value)) = (k.extract::<Cow<'_, str>>(), v.extract::<f64>()) else {
                continue;
            };
            if !value.is_finite() {
                continue;
            }
            // Measure names repeat on every request, like routes.
            if let Some(key) = self.ml_keys.get_if(&key, is_valid_ml_key) {
                out.push((key, value));
            }
        }
        out
    }
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::from_secs(3600))
}

fn state_name(s: BrokerState) -> &'static str {
    match s {
        BrokerState::Connected => "connected",
        BrokerState::Connecting => "connecting",
        BrokerState::Down => "down",
    }
}

/// `rust_decode`'s answer, as documented there.
type Decoded<'py> = (
    Option<&'static str>,
    usize,
    u64,
    Bound<'py, PyDict>,
    Vec<String>,
);

/// What the monitor's Rust decoder makes of a body: `(batch_error, accepted, dropped,
/// {reason: count}, details)`, `details` being the refused batch's sentence or one
/// `reason: sentence` per rejected event. The Python tests check every batch the
/// middleware publishes, and the golden vectors, with it: the monitor's own decoder, so
/// the package carries no second copy of the contract's rules.
#[pyfunction]
#[pyo3(signature = (body, routing_model, now_us))]
fn rust_decode<'py>(
    py: Python<'py>,
    body: &[u8],
    routing_model: Option<&str>,
    now_us: i64,
) -> PyResult<Decoded<'py>> {
    let rejected = PyDict::new(py);
    match modelmon_contract::decode_batch(body, routing_model, now_us) {
        Err(e) => Ok((Some(e.reason.as_str()), 0, 0, rejected, vec![e.detail])),
        Ok(d) => {
            let mut details = Vec::with_capacity(d.rejects.len());
            for r in &d.rejects {
                let key = r.reason.as_str();
                let n: usize = match rejected.get_item(key)? {
                    Some(v) => v.extract()?,
                    None => 0,
                };
                rejected.set_item(key, n + 1)?;
                details.push(format!("{key}: {}", r.detail));
            }
            Ok((None, d.events.len(), d.dropped, rejected, details))
        }
    }
}

/// Whether `s` may name a model (1..=128 characters and at most 248 bytes, no control
/// character): the
/// contract's own rule, for the settings and for a model taken from a path parameter.
/// A string that is not valid UTF-8 (a lone surrogate, as an undecodable environment
/// variable holds) cannot go on the wire: not a name, rather than an exception.
#[pyfunction]
fn is_valid_model_name(s: &Bound<'_, PyString>) -> bool {
    s.to_str().is_ok_and(modelmon_contract::is_valid_model_name)
}

/// Whether `s` is clean contract text of at most `max_chars` characters (the rule every
/// text field follows), for the settings' version and instance; false, like above, for
/// a string that is not valid UTF-8.
#[pyfunction]
fn is_clean_text(s: &Bound<'_, PyString>, max_chars: usize) -> bool {
    s.to_str()
        .is_ok_and(|s| modelmon_contract::is_clean_text(s, max_chars))
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Core>()?;
    m.add_function(wrap_pyfunction!(rust_decode, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_model_name, m)?)?;
    m.add_function(wrap_pyfunction!(is_clean_text, m)?)?;
    // The wire contract's names and limits, from the crate that defines them, for the
    // settings' checks and for tests that read what the middleware publishes.
    m.add("EXCHANGE", modelmon_contract::EXCHANGE)?;
    m.add("MESSAGE_TYPE", modelmon_contract::MESSAGE_TYPE)?;
    m.add("CONTENT_TYPE", modelmon_contract::CONTENT_TYPE)?;
    m.add("ROUTING_PREFIX", modelmon_contract::ROUTING_PREFIX)?;
    m.add("MAX_MODEL_CHARS", modelmon_contract::MAX_MODEL_CHARS)?;
    m.add("MAX_MODEL_BYTES", modelmon_contract::MAX_MODEL_BYTES)?;
    m.add("MAX_TEXT_CHARS", MAX_TEXT_CHARS)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
