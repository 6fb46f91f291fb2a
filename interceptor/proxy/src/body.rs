//! Bodies that measure what passes through them without holding it back.
//!
//! The event of a request is complete only when its response body ends, so the
//! response body carries the [`Recorder`]: the event is recorded on the last frame,
//! or, if the body is dropped before its end, as a 499 (the client went away).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use modelmon_contract::Event;
use modelmon_publisher::Publisher;

use crate::naming::Naming;
use crate::openai::{Exchange, RequestTap};

/// Status recorded when the client goes away before the response ends (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// What became of a request body on its way to the upstream.
#[derive(Debug, Default)]
pub struct Upload {
    bytes: AtomicU64,
    broken: AtomicBool,
}

impl Upload {
    /// Whether the client's body failed (it went away before sending all it declared):
    /// the upstream request failing then is the client's doing, not the upstream's.
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }
}

/// Counts the bytes of a request body as the upstream reads them, and hands them to an
/// OpenAI-compatible request tap when there is one.
#[derive(Debug)]
pub struct CountingBody<B> {
    inner: B,
    upload: Arc<Upload>,
    tap: Option<RequestTap>,
}

impl<B> CountingBody<B> {
    pub fn new(inner: B, upload: Arc<Upload>, tap: Option<RequestTap>) -> Self {
        CountingBody { inner, upload, tap }
    }
}

impl<B: Body + Unpin> Body for CountingBody<B>
where
    B::Data: AsRef<[u8]>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.upload
                        .bytes
                        .fetch_add(data.remaining() as u64, Ordering::Relaxed);
                    if let Some(tap) = this.tap.as_mut() {
                        tap.feed(data.as_ref());
                    }
                }
                if this.inner.is_end_stream()
                    && let Some(tap) = this.tap.take()
                {
                    tap.finish();
                }
            }
            Poll::Ready(None) => {
                if let Some(tap) = this.tap.take() {
                    tap.finish();
                }
            }
            Poll::Ready(Some(Err(_))) => this.upload.broken.store(true, Ordering::Relaxed),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The event of one request while it is in flight.
pub struct Recorder {
    publisher: Publisher,
    /// `None` once recorded, or for paths that are not recorded.
    event: Option<Event<'static>>,
    start: Instant,
    /// Whether the response is a stream: only then is its first byte worth recording.
    streamed: bool,
    ttfb_us: Option<u64>,
    resp_bytes: u64,
    upload: Arc<Upload>,
    /// The request and answer read as OpenAI-compatible, on those routes.
    openai: Option<Exchange>,
    /// The route or model that waits for the status.
    naming: Option<Naming>,
}

impl Recorder {
    pub fn new(
        publisher: Publisher,
        event: Option<Event<'static>>,
        start: Instant,
        upload: Arc<Upload>,
    ) -> Self {
        Recorder {
            publisher,
            event,
            start,
            streamed: false,
            ttfb_us: None,
            resp_bytes: 0,
            upload,
            openai: None,
            naming: None,
        }
    }

    pub fn set_naming(&mut self, naming: Naming) {
        self.naming = Some(naming);
    }

    pub fn set_openai(&mut self, exchange: Exchange) {
        if self.event.is_some() {
            self.openai = Some(exchange);
        }
    }

    /// The answer's headers arrived (OpenAI-compatible routes only read successes, and
    /// not `encoded` ones).
    pub fn openai_answer(&mut self, status: u16, content_type: Option<&str>, encoded: bool) {
        if let Some(x) = self.openai.as_mut() {
            x.answer_started(status, content_type, encoded);
        }
    }

    /// The upstream's status. The first status set names the request.
    pub fn upstream_status(&mut self, status: u16) {
        self.set_status(status, Some(status));
    }

    /// The proxy's own status when the upstream gave none (a 502, 504, 408, 400, or a
    /// 499 for a client gone first): it names the request with known names only.
    pub fn own_status(&mut self, status: u16) {
        self.set_status(status, None);
    }

    fn set_status(&mut self, status: u16, upstream: Option<u16>) {
        if let Some(e) = self.event.as_mut() {
            e.status = status;
            if let Some(n) = self.naming.take() {
                n.resolve(upstream, e);
            }
        }
    }

    pub fn set_error(&mut self, error: &'static str) {
        if let Some(e) = self.event.as_mut() {
            e.error = Some(error.into());
        }
    }

    fn saw_data(&mut self, data: &[u8]) {
        let len = data.len();
        if len > 0 && self.streamed && self.ttfb_us.is_none() {
            self.ttfb_us = Some(self.elapsed_us());
        }
        if len > 0
            && let Some(x) = self.openai.as_mut()
        {
            let now = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
            x.feed(data, now);
        }
        self.resp_bytes += len as u64;
    }

    fn elapsed_us(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Records the event once; later calls do nothing. `ended`: the answer reached its
    /// end (not a client gone or an upstream broken off).
    pub fn finish(&mut self, ended: bool) {
        let Some(mut e) = self.event.take() else {
            return;
        };
        // Recorded without any status set: no answer proved its names.
        if let Some(n) = self.naming.take() {
            n.resolve(None, &mut e);
        }
        e.duration_us = self.elapsed_us();
        if let Some(mut x) = self.openai.take() {
            let out = x.finish(ended, e.duration_us);
            if let Some(m) = out.model {
                e.model = m.into();
            }
            // The first token, not the first byte (a role-only chunk, a comment):
            // when the answer had tokens.
            if out.ttft_us.is_some() {
                self.ttfb_us = out.ttft_us;
            }
            if out.stream_error && e.error.is_none() {
                e.error = Some("stream_error".into());
            }
            e.ml = out.ml;
        }
        e.ttfb_us = self.ttfb_us.map(|t| t.min(e.duration_us));
        e.resp_bytes = Some(self.resp_bytes);
        e.req_bytes = Some(self.upload.bytes.load(Ordering::Relaxed));
        self.publisher.record(e);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.event.is_some() {
            self.own_status(CLIENT_CLOSED);
            self.finish(false);
        }
    }
}

/// A response body passed through frame by frame; records the event at its end.
pub struct RecordedBody<B: Body> {
    inner: B,
    recorder: Recorder,
}

impl<B: Body> RecordedBody<B> {
    pub fn new(inner: B, mut recorder: Recorder) -> Self {
        // A body of unknown length (chunked, SSE, read to the close) is a stream: the
        // upstream began answering before it knew the whole answer, and its first byte is
        // the first token. A body whose length was declared up front was ready, or nearly,
        // when its headers left: its first byte says nothing its last does not, and the
        // monitor keeps TTFB for the models that stream.
        recorder.streamed = inner.size_hint().exact().is_none();
        RecordedBody { inner, recorder }
    }
}

impl<B: Body + Unpin> Body for RecordedBody<B>
where
    B::Data: AsRef<[u8]>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.recorder.saw_data(data.as_ref());
                }
                // The server may stop polling once the body says it has ended.
                if this.inner.is_end_stream() {
                    this.recorder.finish(true);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.recorder.set_error("upstream_aborted");
                this.recorder.finish(false);
            }
            Poll::Ready(None) => this.recorder.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for RecordedBody<B> {
    fn drop(&mut self) {
        // Empty bodies (HEAD, 204, 304) are never polled: they ended fine.
        if self.inner.is_end_stream() {
            self.recorder.finish(true);
        }
    }
}
