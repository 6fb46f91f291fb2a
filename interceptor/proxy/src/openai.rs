//! Reading OpenAI-compatible requests and answers (`/v1/chat/completions`,
//! `/v1/completions`, `/v1/embeddings`) as they pass through, for the event's `ml`
//! figures: tokens in and out, time to the first token, gaps between tokens, the finish
//! reason.
//!
//! Nothing here holds a byte back (the proxy reads a small request body whole before
//! forwarding it, see `proxy.rs`): the taps are fed slices of frames that are forwarded
//! as they are, and keep bounded copies: a request body up to [`MAX_REQUEST`], a partial
//! Server-Sent-Events line up to [`MAX_LINE`], a JSON answer up to [`MAX_JSON_ANSWER`].
//! Past a bound, or on bytes that are not what an OpenAI-compatible server sends, the tap
//! gives up: the exchange is still proxied and recorded, without `ml` figures, and the
//! failure is counted by reason ([`Failures`]).

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use hyper::Method;
use modelmon_contract::is_valid_model_name;
use serde::Deserialize;
use serde::de::IgnoredAny;

use crate::naming::proves_names;
use crate::route::Interner;

/// Most bytes of a request body kept to read its `model` and `stream`.
pub const MAX_REQUEST: usize = 256 * 1024;
/// Longest partial SSE line kept while its end has not arrived.
pub const MAX_LINE: usize = 64 * 1024;
/// Most bytes of a non-streamed JSON answer kept to read its `usage`.
pub const MAX_JSON_ANSWER: usize = 4 * 1024 * 1024;
/// Distinct model names taken from request bodies; past that, the usual model.
pub const MAX_REQUEST_MODELS: usize = 64;

/// Appends `data` to `buf`, whose length the caller keeps within `max`, growing its
/// capacity no further than `max` (a plain `extend` could double it past the bound).
fn push_bounded(buf: &mut Vec<u8>, data: &[u8], max: usize) {
    let needed = buf.len() + data.len();
    if needed > buf.capacity() {
        let target = needed.max(buf.capacity() * 2).clamp(256, max).max(needed);
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(data);
}

/// When requests and answers are read as OpenAI-compatible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Mode {
    /// POSTs to paths ending in /chat/completions, /completions or /embeddings.
    #[default]
    Auto,
    /// Every POST.
    On,
    /// Never.
    Off,
}

impl Mode {
    /// Whether a request is read as an OpenAI-compatible one.
    pub fn applies(self, method: &Method, path: &str) -> bool {
        match self {
            Mode::Off => false,
            Mode::On => method == Method::POST,
            Mode::Auto => {
                method == Method::POST
                    && (path.ends_with("/completions") || path.ends_with("/embeddings"))
            }
        }
    }
}

/// Why a request or answer could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// An answer (or an SSE `data:` line) that is not the JSON expected.
    NotJson,
    /// An SSE line longer than [`MAX_LINE`].
    LineTooLong,
    /// A JSON answer longer than [`MAX_JSON_ANSWER`].
    BodyTooLarge,
    /// An answer with a `Content-Encoding` (gzip, br, …): not decoded.
    Compressed,
    /// A request body that is not the JSON expected.
    RequestNotJson,
    /// A request body longer than [`MAX_REQUEST`].
    RequestTooLarge,
    /// A request body with a `Content-Encoding`: not decoded.
    RequestCompressed,
}

impl Failure {
    pub const ALL: [Failure; 7] = [
        Failure::NotJson,
        Failure::LineTooLong,
        Failure::BodyTooLarge,
        Failure::Compressed,
        Failure::RequestNotJson,
        Failure::RequestTooLarge,
        Failure::RequestCompressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Failure::NotJson => "not_json",
            Failure::LineTooLong => "line_too_long",
            Failure::BodyTooLarge => "body_too_large",
            Failure::Compressed => "compressed",
            Failure::RequestNotJson => "request_not_json",
            Failure::RequestTooLarge => "request_too_large",
            Failure::RequestCompressed => "request_compressed",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            Failure::NotJson => "an answer on an OpenAI-compatible route is not the JSON expected",
            Failure::LineTooLong => "a streamed answer has a line over 64 KiB",
            Failure::BodyTooLarge => "a JSON answer is over 4 MiB",
            Failure::Compressed => {
                "an answer on an OpenAI-compatible route is compressed (Content-Encoding, \
                 sent because the client accepts it), which the proxy does not decode"
            }
            Failure::RequestNotJson => {
                "a request on an OpenAI-compatible route is not the JSON expected"
            }
            Failure::RequestTooLarge => "a request body is over 256 KiB",
            Failure::RequestCompressed => {
                "a request on an OpenAI-compatible route is compressed (Content-Encoding), \
                 which the proxy does not decode; its event keeps the usual model"
            }
        }
    }
}

/// Parse failures by reason, for the whole process.
#[derive(Debug, Default)]
pub struct Failures {
    counts: [AtomicU64; Failure::ALL.len()],
    told: [AtomicBool; Failure::ALL.len()],
}

impl Failures {
    /// Counts one; the first of each reason is told on stderr.
    pub fn count(&self, f: Failure) {
        let i = f as usize;
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        if !self.told[i].swap(true, Ordering::Relaxed) {
            eprintln!(
                "modelmon-proxy: {} ({}); it is proxied unchanged and recorded without token \
                 figures; such failures are counted and totalled at shutdown",
                f.explain(),
                f.as_str()
            );
        }
    }

    pub fn get(&self, f: Failure) -> u64 {
        self.counts[f as usize].load(Ordering::Relaxed)
    }

    /// `not_json 3, line_too_long 1`, or `None` when there were none.
    pub fn summary(&self) -> Option<String> {
        let parts: Vec<String> = Failure::ALL
            .iter()
            .filter_map(|&f| {
                let n = self.get(f);
                (n > 0).then(|| format!("{} {n}", f.as_str()))
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// What every request of the process shares: the mode, the failure counts, the model
/// names seen in request bodies.
#[derive(Debug)]
pub struct Shared {
    pub mode: Mode,
    pub failures: Failures,
    models: Interner,
}

impl Shared {
    pub fn new(mode: Mode) -> Self {
        Shared {
            mode,
            failures: Failures::default(),
            models: Interner::new(MAX_REQUEST_MODELS),
        }
    }
}

/// What a request body said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// `None` when absent or invalid.
    pub model: Option<BodyModel>,
    pub stream: Option<bool>,
}

/// A valid model name from a request body. A new one takes one of the
/// [`MAX_REQUEST_MODELS`] places only once the upstream's answer proves it (see
/// `naming.rs`): a misspelled model, which vLLM answers 404, must not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyModel {
    Known(&'static str),
    New(String),
}

#[derive(Deserialize)]
struct RequestBody<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
}

/// Reads `model` and `stream` of a whole request body.
pub fn parse_request(body: &[u8]) -> Result<(Option<Cow<'_, str>>, Option<bool>), Failure> {
    let r: RequestBody<'_> = serde_json::from_slice(body).map_err(|_| Failure::RequestNotJson)?;
    Ok((r.model, r.stream))
}

/// Keeps a bounded copy of a request body as it streams to the upstream.
#[derive(Debug)]
pub struct RequestTap {
    buf: Vec<u8>,
    too_large: bool,
    shared: Arc<Shared>,
    out: Arc<OnceLock<RequestInfo>>,
}

impl RequestTap {
    pub fn feed(&mut self, data: &[u8]) {
        if self.too_large {
            return;
        }
        if self.buf.len() + data.len() > MAX_REQUEST {
            self.too_large = true;
            self.buf = Vec::new();
            return;
        }
        push_bounded(&mut self.buf, data, MAX_REQUEST);
    }

    /// The body ended: reads it and hands the result to the exchange.
    pub fn finish(self) {
        let info = if self.too_large {
            self.shared.failures.count(Failure::RequestTooLarge);
            RequestInfo::default()
        } else {
            match parse_request(&self.buf) {
                Ok((model, stream)) => RequestInfo {
                    model: model.filter(|m| is_valid_model_name(m)).map(|m| {
                        match self.shared.models.known(&m) {
                            Some(known) => BodyModel::Known(known),
                            None => BodyModel::New(m.into_owned()),
                        }
                    }),
                    stream,
                },
                Err(f) => {
                    self.shared.failures.count(f);
                    RequestInfo::default()
                }
            }
        };
        let _ = self.out.set(info);
    }
}

/// Why generation stopped, as the `ml` key `finish_<reason>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
    Other,
}

impl Finish {
    fn parse(s: &str) -> Finish {
        match s {
            "stop" => Finish::Stop,
            "length" => Finish::Length,
            "tool_calls" => Finish::ToolCalls,
            "content_filter" => Finish::ContentFilter,
            _ => Finish::Other,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Finish::Stop => "finish_stop",
            Finish::Length => "finish_length",
            Finish::ToolCalls => "finish_tool_calls",
            Finish::ContentFilter => "finish_content_filter",
            Finish::Other => "finish_other",
        }
    }
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<IgnoredAny>,
    /// A reasoning model's thinking: vLLM's `--reasoning-parser`, DeepSeek, llama.cpp.
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    /// The same, as newer vLLM and Ollama name it.
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

/// One streamed chunk, or a whole answer: the same fields are read from both.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

/// What was read of an answer so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Microseconds from the request start to the first content chunk.
    pub first_content_us: Option<u64>,
    last_content_us: u64,
    pub content_chunks: u64,
    gap_sum_us: u64,
    pub gap_max_us: u64,
    gaps: u64,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub finish: Option<Finish>,
    pub stream_error: bool,
    pub done: bool,
}

impl Stats {
    fn chunk(&mut self, c: &Chunk<'_>, now_us: u64) {
        if c.error.is_some() {
            self.stream_error = true;
        }
        if let Some(u) = &c.usage {
            self.tokens_in = u.prompt_tokens.or(self.tokens_in);
            self.tokens_out = u.completion_tokens.or(self.tokens_out);
        }
        let Some(first) = c.choices.as_ref().and_then(|c| c.first()) else {
            return;
        };
        let said = |s: &Option<Cow<'_, str>>| s.as_ref().is_some_and(|s| !s.is_empty());
        // Thinking tokens are generated tokens: a reasoning model's first token is its
        // first thought, as serving benchmarks time it, not the first word of its answer.
        let delta_content = first.delta.as_ref().is_some_and(|d| {
            said(&d.content)
                || d.tool_calls.is_some()
                || said(&d.reasoning_content)
                || said(&d.reasoning)
        });
        let text = said(&first.text);
        if delta_content || text {
            self.content(now_us);
        }
        if let Some(r) = &first.finish_reason {
            self.finish = Some(Finish::parse(r));
        }
    }

    fn content(&mut self, now_us: u64) {
        if self.first_content_us.is_none() {
            self.first_content_us = Some(now_us);
        } else {
            let gap = now_us.saturating_sub(self.last_content_us);
            self.gap_sum_us += gap;
            self.gap_max_us = self.gap_max_us.max(gap);
            self.gaps += 1;
        }
        self.last_content_us = now_us;
        self.content_chunks += 1;
    }

    /// The `ml` entries of the event.
    pub fn ml(&self, streamed: bool) -> Vec<(Cow<'static, str>, f64)> {
        let mut ml: Vec<(Cow<'static, str>, f64)> = Vec::new();
        let mut put = |k: &'static str, v: f64| {
            if v.is_finite() {
                ml.push((Cow::Borrowed(k), v));
            }
        };
        if let Some(t) = self.tokens_in {
            put("tokens_in", t as f64);
        }
        let tokens_out = match self.tokens_out {
            Some(t) => Some(t),
            None if streamed && (self.content_chunks > 0 || self.finish.is_some()) => {
                put("tokens_estimated", 1.0);
                Some(self.content_chunks)
            }
            None => None,
        };
        if let Some(t) = tokens_out {
            put("tokens_out", t as f64);
        }
        if streamed && self.gaps > 0 {
            put("itl_mean_us", self.gap_sum_us as f64 / self.gaps as f64);
            put("itl_max_us", self.gap_max_us as f64);
        }
        // The rate after the first token, over the span of the token chunks (1/TPOT, as
        // serving benchmarks give it): one chunk has no span, and the time to the end
        // would make a single chunk or a buffered burst look like thousands of tokens/s.
        if streamed
            && self.gaps > 0
            && let (Some(t), Some(first)) = (tokens_out, self.first_content_us)
            && self.last_content_us > first
        {
            put(
                "tokens_per_s",
                t.saturating_sub(1) as f64 / ((self.last_content_us - first) as f64 / 1e6),
            );
        }
        if let Some(f) = self.finish {
            put(f.key(), 1.0);
        }
        ml
    }
}

/// Reads a Server-Sent-Events answer, `data: {...}` lines split anywhere across frames.
#[derive(Debug, Default)]
pub struct SseReader {
    partial: Vec<u8>,
    pub stats: Stats,
    pub failed: Option<Failure>,
}

impl SseReader {
    /// Reads the complete lines of `data`, keeping the last partial one; `now_us` is
    /// when the frame arrived. Returns the failure when this frame caused one.
    pub fn feed(&mut self, mut data: &[u8], now_us: u64) -> Option<Failure> {
        if self.failed.is_some() {
            return None;
        }
        while let Some(i) = data.iter().position(|&b| b == b'\n') {
            let (line, rest) = (&data[..i], &data[i + 1..]);
            data = rest;
            if self.partial.is_empty() {
                self.line(line, now_us);
            } else {
                if self.partial.len() + line.len() > MAX_LINE {
                    return Some(self.fail(Failure::LineTooLong));
                }
                let mut whole = std::mem::take(&mut self.partial);
                push_bounded(&mut whole, line, MAX_LINE);
                self.line(&whole, now_us);
                whole.clear();
                self.partial = whole;
            }
            if self.failed.is_some() {
                self.partial = Vec::new();
                return self.failed;
            }
        }
        if !data.is_empty() {
            if self.partial.len() + data.len() > MAX_LINE {
                return Some(self.fail(Failure::LineTooLong));
            }
            push_bounded(&mut self.partial, data, MAX_LINE);
        }
        None
    }

    /// The answer ended: a last line without its newline still counts.
    pub fn end(&mut self, now_us: u64) -> Option<Failure> {
        if self.failed.is_some() || self.partial.is_empty() {
            return None;
        }
        let last = std::mem::take(&mut self.partial);
        self.line(&last, now_us);
        self.failed
    }

    fn fail(&mut self, f: Failure) -> Failure {
        self.failed = Some(f);
        self.partial = Vec::new();
        f
    }

    fn line(&mut self, line: &[u8], now_us: u64) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(v) = line.strip_prefix(b"data:") {
            let v = v.strip_prefix(b" ").unwrap_or(v);
            if v == b"[DONE]" {
                self.stats.done = true;
            } else if !v.is_empty() {
                match serde_json::from_slice::<Chunk<'_>>(v) {
                    Ok(c) => self.stats.chunk(&c, now_us),
                    Err(_) => self.failed = Some(Failure::NotJson),
                }
            }
        } else if let Some(v) = line.strip_prefix(b"event:")
            && v.trim_ascii() == b"error"
        {
            self.stats.stream_error = true;
        }
    }
}

/// Keeps a non-streamed JSON answer (bounded) and reads it at its end.
#[derive(Debug, Default)]
pub struct JsonReader {
    buf: Vec<u8>,
    pub failed: Option<Failure>,
}

impl JsonReader {
    pub fn feed(&mut self, data: &[u8]) -> Option<Failure> {
        if self.failed.is_some() {
            return None;
        }
        if self.buf.len() + data.len() > MAX_JSON_ANSWER {
            self.failed = Some(Failure::BodyTooLarge);
            self.buf = Vec::new();
            return self.failed;
        }
        push_bounded(&mut self.buf, data, MAX_JSON_ANSWER);
        None
    }

    /// The answer's figures, or why there are none.
    pub fn end(&mut self) -> Result<Stats, Failure> {
        if let Some(f) = self.failed {
            return Err(f);
        }
        let buf = std::mem::take(&mut self.buf);
        let c: Chunk<'_> = serde_json::from_slice(&buf).map_err(|_| Failure::NotJson)?;
        let mut stats = Stats::default();
        if let Some(u) = &c.usage {
            stats.tokens_in = u.prompt_tokens;
            stats.tokens_out = u.completion_tokens;
        }
        stats.finish = c
            .choices
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|c| c.finish_reason.as_deref())
            .map(Finish::parse);
        Ok(stats)
    }
}

#[derive(Debug)]
enum Answer {
    /// Not read (not a success, or not begun).
    None,
    Sse(SseReader),
    Json(JsonReader),
}

/// What the exchange adds to its event.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The model named by the request body: interned; `None` when the body named none,
    /// or a new one its answer did not prove, or one past [`MAX_REQUEST_MODELS`].
    pub model: Option<&'static str>,
    /// Time to the first content chunk of a streamed answer.
    pub ttft_us: Option<u64>,
    pub stream_error: bool,
    pub ml: Vec<(Cow<'static, str>, f64)>,
}

/// One request and its answer read as OpenAI-compatible.
#[derive(Debug)]
pub struct Exchange {
    shared: Arc<Shared>,
    request: Arc<OnceLock<RequestInfo>>,
    answer: Answer,
    /// `None` while (or if) the upstream has not answered.
    upstream_status: Option<u16>,
}

impl Exchange {
    /// The exchange, and the tap for its request body.
    pub fn new(shared: Arc<Shared>) -> (Exchange, RequestTap) {
        let request = Arc::new(OnceLock::new());
        let tap = RequestTap {
            buf: Vec::new(),
            too_large: false,
            shared: Arc::clone(&shared),
            out: Arc::clone(&request),
        };
        (
            Exchange {
                shared,
                request,
                answer: Answer::None,
                upstream_status: None,
            },
            tap,
        )
    }

    /// The answer's headers arrived: a success is read, as SSE when it says
    /// `text/event-stream` (or has no type and the request asked for a stream), unless
    /// it is `encoded` (a `Content-Encoding` other than `identity`).
    pub fn answer_started(&mut self, status: u16, content_type: Option<&str>, encoded: bool) {
        self.upstream_status = Some(status);
        if !(200..300).contains(&status) || status == 204 {
            return;
        }
        if encoded {
            // Compressed bytes read as lines or JSON would be garbage or a misleading
            // not_json; they are passed on unread.
            self.shared.failures.count(Failure::Compressed);
            return;
        }
        let asked_stream = self.request.get().and_then(|r| r.stream) == Some(true);
        let sse = match content_type {
            Some(t) => t.trim_start().starts_with("text/event-stream"),
            None => asked_stream,
        };
        self.answer = if sse {
            Answer::Sse(SseReader::default())
        } else {
            Answer::Json(JsonReader::default())
        };
    }

    /// A frame of the answer, `now_us` after the request started.
    pub fn feed(&mut self, data: &[u8], now_us: u64) {
        let failed = match &mut self.answer {
            Answer::None => None,
            Answer::Sse(r) => r.feed(data, now_us),
            Answer::Json(r) => r.feed(data),
        };
        if let Some(f) = failed {
            self.shared.failures.count(f);
        }
    }

    /// The figures for the event; `ended` when the answer reached its end (not when the
    /// client left or the upstream broke off).
    pub fn finish(&mut self, ended: bool, duration_us: u64) -> Outcome {
        let models = &self.shared.models;
        let model = match self.request.get().and_then(|r| r.model.as_ref()) {
            Some(BodyModel::Known(m)) => Some(*m),
            // Unproven, it is kept if another request has proven it meanwhile.
            Some(BodyModel::New(m)) => models.admit(m, proves_names(self.upstream_status)),
            None => None,
        };
        let mut out = Outcome {
            model,
            ..Outcome::default()
        };
        match &mut self.answer {
            Answer::Sse(r) => {
                if ended && let Some(f) = r.end(duration_us) {
                    self.shared.failures.count(f);
                }
                if r.failed.is_none() {
                    out.ttft_us = r.stats.first_content_us;
                    out.stream_error = r.stats.stream_error;
                    out.ml = r.stats.ml(true);
                }
            }
            Answer::Json(r) if ended => match r.end() {
                Ok(stats) => out.ml = stats.ml(false),
                Err(f) => self.shared.failures.count(f),
            },
            Answer::None | Answer::Json(_) => {}
        }
        self.answer = Answer::None;
        out
    }
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the figures here are exact
mod tests {
    use super::*;

    fn ml_map(ml: &[(Cow<'static, str>, f64)]) -> std::collections::BTreeMap<String, f64> {
        ml.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn chat(content: &str) -> String {
        format!(
            "data: {{\"id\":\"x\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n"
        )
    }

    #[test]
    fn the_mode_picks_the_routes() {
        let post = Method::POST;
        assert!(Mode::Auto.applies(&post, "/v1/chat/completions"));
        assert!(Mode::Auto.applies(&post, "/v1/completions"));
        assert!(Mode::Auto.applies(&post, "/v1/embeddings"));
        assert!(!Mode::Auto.applies(&post, "/v1/models/iris/predict"));
        assert!(!Mode::Auto.applies(&Method::GET, "/v1/chat/completions"));
        assert!(Mode::On.applies(&post, "/predict"));
        assert!(!Mode::On.applies(&Method::GET, "/predict"));
        assert!(!Mode::Off.applies(&post, "/v1/chat/completions"));
    }

    #[test]
    fn requests_give_their_model_and_stream_flag() {
        let (m, s) =
            parse_request(br#"{"model":"llama-3","stream":true,"messages":[]}"#).expect("json");
        assert_eq!((m.as_deref(), s), (Some("llama-3"), Some(true)));
        let (m, s) = parse_request(br#"{"input":"x"}"#).expect("json");
        assert_eq!((m, s), (None, None));
        assert_eq!(
            parse_request(b"model=x").err(),
            Some(Failure::RequestNotJson)
        );
    }

    #[test]
    fn request_taps_are_bounded_and_models_capped() {
        let shared = Arc::new(Shared::new(Mode::Auto));
        let (ex, mut tap) = Exchange::new(Arc::clone(&shared));
        tap.feed(br#"{"model":"m1","#);
        tap.feed(br#""stream":false}"#);
        tap.finish();
        assert_eq!(
            ex.request.get(),
            Some(&RequestInfo {
                model: Some(BodyModel::New("m1".to_owned())),
                stream: Some(false)
            })
        );

        let (ex, mut tap) = Exchange::new(Arc::clone(&shared));
        let big = vec![b' '; MAX_REQUEST / 3];
        tap.feed(b"{\"model\":\"m2\"}");
        tap.feed(&big);
        tap.feed(&big);
        assert!(tap.buf.capacity() <= MAX_REQUEST, "{}", tap.buf.capacity());
        tap.feed(&big);
        assert!(tap.buf.is_empty(), "nothing kept past the bound");
        tap.finish();
        assert_eq!(ex.request.get(), Some(&RequestInfo::default()));
        assert_eq!(shared.failures.get(Failure::RequestTooLarge), 1);

        for i in 0..MAX_REQUEST_MODELS + 5 {
            let m = answered(&shared, &format!("n{i}"), Some(200));
            if i < MAX_REQUEST_MODELS {
                assert_eq!(m, Some(format!("n{i}").as_str()));
            } else {
                assert_eq!(m, None, "past the cap: the usual model");
            }
        }
        let (ex, mut tap) = Exchange::new(Arc::clone(&shared));
        tap.feed(b"{\"model\":\"bad\\u0001name\"}");
        tap.finish();
        assert_eq!(ex.request.get().and_then(|r| r.model.clone()), None);
    }

    /// The model an exchange for `model` records once its upstream answered `status`,
    /// or gave no answer (`None`).
    fn answered(shared: &Arc<Shared>, model: &str, status: Option<u16>) -> Option<&'static str> {
        let (mut ex, mut tap) = Exchange::new(Arc::clone(shared));
        tap.feed(format!("{{\"model\":\"{model}\"}}").as_bytes());
        tap.finish();
        if let Some(s) = status {
            ex.answer_started(s, Some("application/json"), false);
        }
        ex.finish(false, 1).model
    }

    #[test]
    fn a_body_model_answered_404_or_unanswered_takes_no_place() {
        let shared = Arc::new(Shared::new(Mode::Auto));
        for i in 0..MAX_REQUEST_MODELS {
            assert_eq!(answered(&shared, &format!("typo{i}"), Some(404)), None);
            assert_eq!(answered(&shared, &format!("down{i}"), None), None);
        }
        assert_eq!(answered(&shared, "llama", Some(200)), Some("llama"));
        // Known, it keeps its name whatever the answer.
        assert_eq!(answered(&shared, "llama", Some(404)), Some("llama"));
        assert_eq!(answered(&shared, "llama", None), Some("llama"));
        // An error of the model's own proves it is one.
        assert_eq!(answered(&shared, "qwen", Some(500)), Some("qwen"));
    }

    #[test]
    fn streamed_chat_gives_ttft_gaps_and_estimated_tokens() {
        let mut r = SseReader::default();
        // A role-only chunk first: not a token.
        r.feed(
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"finish_reason\":null}]}\n\n",
            100,
        );
        r.feed(chat("Hel").as_bytes(), 1_000);
        r.feed(chat("lo").as_bytes(), 1_500);
        r.feed(chat("!").as_bytes(), 3_000);
        r.feed(
            b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n",
            3_100,
        );
        assert_eq!(r.failed, None);
        let s = &r.stats;
        assert_eq!(s.first_content_us, Some(1_000));
        assert!(s.done);
        let ml = ml_map(&s.ml(true));
        assert_eq!(ml["tokens_out"], 3.0);
        assert_eq!(ml["tokens_estimated"], 1.0);
        assert_eq!(ml["itl_mean_us"], 1_000.0);
        assert_eq!(ml["itl_max_us"], 1_500.0);
        assert_eq!(ml["finish_length"], 1.0);
        // Two tokens after the first, over the 2 ms from the first to the last.
        assert!((ml["tokens_per_s"] - 1_000.0).abs() < 1e-6, "{ml:?}");
        assert!(!ml.contains_key("tokens_in"));
    }

    #[test]
    fn thinking_chunks_are_tokens() {
        let mut r = SseReader::default();
        let delta = |d: &str| format!("data: {{\"choices\":[{{\"delta\":{d}}}]}}\n\n");
        // vLLM and DeepSeek think in reasoning_content, newer vLLM and Ollama in
        // reasoning; the fields of the other kind come as null or empty.
        r.feed(
            delta(r#"{"reasoning_content":"Let","content":null}"#).as_bytes(),
            1_000,
        );
        r.feed(
            delta(r#"{"reasoning":" me","content":""}"#).as_bytes(),
            2_000,
        );
        r.feed(
            delta(r#"{"content":"","reasoning_content":"","reasoning":null}"#).as_bytes(),
            2_500,
        );
        r.feed(delta(r#"{"content":"42"}"#).as_bytes(), 10_000);
        let s = &r.stats;
        assert_eq!(s.first_content_us, Some(1_000), "the first thought");
        assert_eq!(s.content_chunks, 3, "empty or null reasoning is no token");
        let ml = ml_map(&s.ml(true));
        assert_eq!((ml["itl_max_us"], ml["itl_mean_us"]), (8_000.0, 4_500.0));
        assert!((ml["tokens_per_s"] - 2.0 / 0.009).abs() < 1e-6, "{ml:?}");
    }

    #[test]
    fn one_token_chunk_or_one_burst_gives_no_rate() {
        let usage = b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"completion_tokens\":250}}\n\ndata: [DONE]\n\n";
        // The whole answer in one chunk, its usage 1 ms later.
        let mut r = SseReader::default();
        r.feed(chat("the whole answer").as_bytes(), 1_000);
        r.feed(usage, 2_000);
        let ml = ml_map(&r.stats.ml(true));
        assert_eq!(ml["tokens_out"], 250.0);
        assert!(!ml.contains_key("tokens_per_s"), "{ml:?}");
        // A hop that buffered the stream hands over every chunk at once.
        let mut r = SseReader::default();
        r.feed([chat("a"), chat("b"), chat("c")].concat().as_bytes(), 1_000);
        r.feed(usage, 1_001);
        let ml = ml_map(&r.stats.ml(true));
        assert_eq!(ml["itl_max_us"], 0.0);
        assert!(!ml.contains_key("tokens_per_s"), "{ml:?}");
    }

    #[test]
    fn lines_split_anywhere_across_frames_read_the_same() {
        let mut all = String::new();
        for k in 0..5 {
            all.push_str(&chat(&format!("t{k}")));
        }
        all.push_str(
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5}}\r\n\r\n",
        );
        all.push_str("data: [DONE]\n\n");
        let bytes = all.as_bytes();
        for step in [1, 2, 3, 7, 64, bytes.len()] {
            let mut r = SseReader::default();
            for (i, piece) in bytes.chunks(step).enumerate() {
                assert_eq!(r.feed(piece, i as u64), None);
            }
            assert_eq!(r.end(0), None);
            assert_eq!(r.stats.content_chunks, 5, "step {step}");
            assert_eq!((r.stats.tokens_in, r.stats.tokens_out), (Some(7), Some(5)));
            let ml = ml_map(&r.stats.ml(true));
            assert!(!ml.contains_key("tokens_estimated"));
            assert!(r.partial.capacity() <= MAX_LINE);
        }
    }

    #[test]
    fn completions_text_and_tool_calls_are_content() {
        let mut r = SseReader::default();
        r.feed(
            b"data: {\"choices\":[{\"text\":\"a\",\"finish_reason\":null}]}\n",
            10,
        );
        r.feed(
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0}]},\"finish_reason\":\"tool_calls\"}]}\n",
            20,
        );
        assert_eq!(r.stats.content_chunks, 2);
        assert_eq!(r.stats.finish, Some(Finish::ToolCalls));
        r.feed(
            b"data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"eos\"}]}\n",
            30,
        );
        assert_eq!(r.stats.content_chunks, 2, "empty text is no token");
        assert_eq!(r.stats.finish, Some(Finish::Other));
        assert_eq!(ml_map(&r.stats.ml(true))["finish_other"], 1.0);
    }

    #[test]
    fn errors_mid_stream_are_seen() {
        let mut r = SseReader::default();
        r.feed(chat("a").as_bytes(), 1);
        r.feed(
            b"data: {\"error\":{\"message\":\"boom\",\"code\":500}}\n\n",
            2,
        );
        assert!(r.stats.stream_error);
        let mut r = SseReader::default();
        r.feed(b"event: error\ndata: {\"message\":\"x\"}\n\n", 2);
        assert!(r.stats.stream_error);
        assert_eq!(r.failed, None);
        let mut r = SseReader::default();
        r.feed(b"data: {\"error\":null,\"choices\":[]}\n\n", 2);
        assert!(!r.stats.stream_error);
    }

    #[test]
    fn bad_streams_fail_by_reason_and_keep_nothing() {
        let mut r = SseReader::default();
        assert_eq!(r.feed(b"data: not json\n\n", 1), Some(Failure::NotJson));
        assert_eq!(r.feed(chat("a").as_bytes(), 2), None, "told once");
        let mut r = SseReader::default();
        let long = vec![b'x'; MAX_LINE / 2 + 1];
        assert_eq!(r.feed(b"data: ", 1), None);
        assert_eq!(r.feed(&long, 1), None);
        assert_eq!(r.feed(&long, 1), Some(Failure::LineTooLong));
        assert_eq!(r.partial.capacity(), 0);
        // Comments, ids and other events are not tokens.
        let mut r = SseReader::default();
        r.feed(b": ping\nid: 3\nevent: message\nretry: 10\n\n", 1);
        assert_eq!((r.failed, r.stats.content_chunks), (None, 0));
        assert!(r.stats.ml(true).is_empty());
    }

    #[test]
    fn whole_answers_give_usage_and_finish() {
        let mut r = JsonReader::default();
        r.feed(
            br#"{"id":"c","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"#,
        );
        r.feed(br#""finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}}"#);
        let ml = ml_map(&r.end().expect("read").ml(false));
        assert_eq!(ml.len(), 3, "{ml:?}");
        assert_eq!(
            (ml["tokens_in"], ml["tokens_out"], ml["finish_stop"]),
            (12.0, 3.0, 1.0)
        );
        let mut r = JsonReader::default();
        r.feed(br#"{"object":"list","data":[{"embedding":[0.1]}],"usage":{"prompt_tokens":4,"total_tokens":4}}"#);
        let ml = ml_map(&r.end().expect("read").ml(false));
        assert_eq!(ml.len(), 1);
        assert_eq!(ml["tokens_in"], 4.0);
        let mut r = JsonReader::default();
        r.feed(b"<html>");
        assert_eq!(r.end().err(), Some(Failure::NotJson));
        let mut r = JsonReader::default();
        let chunk = vec![b' '; 1024 * 1024];
        for _ in 0..4 {
            assert_eq!(r.feed(&chunk), None);
            assert!(r.buf.capacity() <= MAX_JSON_ANSWER);
        }
        assert_eq!(r.feed(b" "), Some(Failure::BodyTooLarge));
        assert_eq!(r.buf.capacity(), 0);
        assert_eq!(r.end().err(), Some(Failure::BodyTooLarge));
    }

    #[test]
    fn exchanges_count_failures_and_fall_back() {
        let shared = Arc::new(Shared::new(Mode::On));
        let (mut ex, tap) = Exchange::new(Arc::clone(&shared));
        tap.finish(); // an empty body
        assert_eq!(shared.failures.get(Failure::RequestNotJson), 1);
        ex.answer_started(200, Some("application/json"), false);
        ex.feed(b"not json", 10);
        let out = ex.finish(true, 20);
        assert!(out.ml.is_empty() && out.model.is_none());
        assert_eq!(shared.failures.get(Failure::NotJson), 1);
        assert_eq!(
            shared.failures.summary().as_deref(),
            Some("not_json 1, request_not_json 1")
        );

        // A client that leaves mid-stream: what was seen so far.
        let (mut ex, mut tap) = Exchange::new(Arc::clone(&shared));
        tap.feed(br#"{"model":"llm-a","stream":true}"#);
        tap.finish();
        ex.answer_started(200, Some("text/event-stream; charset=utf-8"), false);
        ex.feed(chat("a").as_bytes(), 100);
        ex.feed(chat("b").as_bytes(), 150);
        let out = ex.finish(false, 200);
        assert_eq!((out.model, out.ttft_us), (Some("llm-a"), Some(100)));
        let ml = ml_map(&out.ml);
        assert_eq!((ml["tokens_out"], ml["itl_mean_us"]), (2.0, 50.0));

        // A client that leaves after the finish reason, before the usage chunk or [DONE]:
        // the answer was complete, and says how it ended.
        let (mut ex, mut tap) = Exchange::new(Arc::clone(&shared));
        tap.feed(br#"{"model":"llm-a","stream":true}"#);
        tap.finish();
        ex.answer_started(200, Some("text/event-stream"), false);
        ex.feed(chat("a").as_bytes(), 100);
        ex.feed(
            b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            150,
        );
        let ml = ml_map(&ex.finish(false, 200).ml);
        assert_eq!((ml["tokens_out"], ml["finish_stop"]), (1.0, 1.0));

        // Errors are not read.
        let (mut ex, _tap) = Exchange::new(Arc::clone(&shared));
        ex.answer_started(500, Some("application/json"), false);
        ex.feed(b"oops", 1);
        assert!(ex.finish(true, 2).ml.is_empty());
        assert_eq!(shared.failures.get(Failure::NotJson), 1);

        // Compressed bytes are not read as lines.
        let (mut ex, _tap) = Exchange::new(Arc::clone(&shared));
        ex.answer_started(200, Some("text/event-stream"), true);
        ex.feed(chat("a").as_bytes(), 1);
        assert!(ex.finish(true, 2).ml.is_empty());
        assert_eq!(shared.failures.get(Failure::Compressed), 1);
    }
}
