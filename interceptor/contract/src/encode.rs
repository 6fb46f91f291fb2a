//! Writing a batch body: the publisher's side of the wire.
//!
//! Why not serde_json: every publisher encodes every batch on its publishing thread, and
//! through the derived `Serialize` and serde_json's writer-generic formatter that cost
//! about 4 500 instructions an event (callgrind), in per-byte escaping, per-call plumbing
//! and buffer growth. A batch always has the same shape, so here the keys are constant
//! runs; strings are checked and copied eight bytes at a time; integers are converted
//! four or eight digits at a time; each event is written into a scratch buffer through a
//! cursor held in registers and appended whole; and the model, version and instance,
//! the same in every event of a batch, are escaped once.
//!
//! What it pays, end to end (callgrind, `examples/encode_cost.rs` and the proxy itself):
//! a proxy event takes 714 instructions here against 3 498 through serde_json, and the
//! whole proxy takes about 59 800 instructions a request (3 000 keep-alive POSTs through
//! `modelmon-proxy` to `echo_upstream` with no work, instrumentation switched on with
//! `callgrind_control -i on` after start-up): serde_json would add 4.7 % to the proxy's
//! CPU per request. For the Python middleware, whose request costs millions of
//! instructions, the 3 400 saved an event are under 0.2 %; the encoder is shared, so it
//! stays for the proxy's sake.
//!
//! The bytes are serde_json's, exactly: the same key order, the same skipped fields,
//! serde_json's escapes, and floats as zmij, the formatter it calls, writes them. The
//! derives stay on the types so that tests and benchmarks can hold this encoder to that
//! reference (`tests/encode.rs`).

// The `inline(always)` below are measured: as calls, the number and string writers spent
// a third of their instructions saving and restoring registers, and the cursor must be
// inlined to stay in registers; plain `inline` was not heeded.
#![allow(clippy::inline_always)]

use std::mem::take;

use crate::event::{Batch, Event, Source};
use crate::json::stop_marks;

// Every constant run of the output, each closing the value before it where that is a
// string. The writer and the size bound below both use them, so they cannot disagree.
const BATCH_HEAD: &[u8] = b"{\"v\":";
const SOURCE_KIND: &[u8] = b",\"source\":{\"kind\":\"";
const SOURCE_INSTANCE: &[u8] = b"\",\"instance\":\"";
const SOURCE_PID: &[u8] = b"\",\"pid\":";
const DROPPED: &[u8] = b"},\"dropped\":";
const EVENTS: &[u8] = b",\"events\":[";
const BATCH_TAIL: &[u8] = b"]}";

const TS: &[u8] = b"{\"ts\":";
const MODEL: &[u8] = b",\"model\":\"";
const VERSION: &[u8] = b"\",\"version\":\"";
const INSTANCE: &[u8] = b"\",\"instance\":\"";
const METHOD: &[u8] = b"\",\"method\":\"";
const ROUTE: &[u8] = b"\",\"route\":\"";
const STATUS: &[u8] = b"\",\"status\":";
const DURATION: &[u8] = b",\"duration_us\":";
const TTFB: &[u8] = b",\"ttfb_us\":";
const REQ_BYTES: &[u8] = b",\"req_bytes\":";
const RESP_BYTES: &[u8] = b",\"resp_bytes\":";
const ERROR: &[u8] = b",\"error\":\"";
const ML: &[u8] = b",\"ml\":{";

/// Room for an integer: `u64::MAX` and `i64::MIN` take 20 characters, and the digits are
/// stored a word at a time, so the last store may reach a few bytes past the number.
const INT_ROOM: usize = 21;
/// Room for a float: the longest shortest-round-trip f64 is `-2.2250738585072014e-308`.
const FLOAT_ROOM: usize = 24;

const BATCH_FIXED_MAX: usize = BATCH_HEAD.len()
    + SOURCE_KIND.len()
    + "proxy".len()
    + SOURCE_INSTANCE.len()
    + SOURCE_PID.len()
    + DROPPED.len()
    + EVENTS.len()
    + BATCH_TAIL.len()
    + 3 * INT_ROOM;

/// An event beside its strings and `ml` entries, every optional field present, every
/// number at its longest, and the comma before it. Also what the scratch buffer needs
/// beside the strings: an event with short strings always fits it.
const EVENT_FIXED_MAX: usize = ",".len()
    + TS.len()
    + MODEL.len()
    + VERSION.len()
    + INSTANCE.len()
    + METHOD.len()
    + ROUTE.len()
    + STATUS.len()
    + DURATION.len()
    + TTFB.len()
    + REQ_BYTES.len()
    + RESP_BYTES.len()
    + ERROR.len()
    + ML.len()
    + "\"}}".len()
    + 6 * INT_ROOM;

/// An `ml` entry beside its key: `"key":value,`.
const ML_ENTRY_FIXED_MAX: usize = "\"\":,".len() + FLOAT_ROOM;

/// The body of `batch`, byte for byte what `serde_json::to_vec` makes of it.
pub(crate) fn batch_json(batch: &Batch<'_>) -> Vec<u8> {
    // Each event is written into a scratch buffer on the stack and appended whole, not
    // pushed onto the vector piece by piece: every push reloads and checks the vector's
    // length and capacity (a byte store may alias them, as far as the compiler knows),
    // where a cursor over a local array keeps its place in a register.
    let mut out = Vec::with_capacity(size_bound(batch));
    let mut scratch = [0; SCRATCH_BYTES];
    append(&mut out, &mut scratch, |buf| {
        let mut c = Cursor::new(buf);
        c.head(batch)?;
        Some(c.written())
    });
    let mut served_by = ServedBy::default();
    for (i, e) in batch.events.iter().enumerate() {
        append(&mut out, &mut scratch, |buf| {
            event_at(buf, i > 0, e, &mut served_by)
        });
    }
    out.extend_from_slice(BATCH_TAIL);
    out
}

/// Writes `e` at the start of `buf`, after a comma if `comma`; returns the length.
///
/// The cursor is a local here, not a reference from the caller: as a local it lives in
/// registers, where behind a reference it is stored and reloaded around every byte
/// store (which may alias it, as far as the compiler knows).
fn event_at<'a>(
    buf: &mut [u8],
    comma: bool,
    e: &'a Event<'_>,
    served_by: &mut ServedBy<'a>,
) -> Option<usize> {
    let mut c = Cursor::new(buf);
    if comma {
        c.put(b",")?;
    }
    c.event(e, served_by)?;
    Some(c.written())
}

/// The `,"model":…,"version":…,"instance":"…` of the last events, kept to be copied into
/// the next events that have the very same three strings.
///
/// A batch holds the events of one model from one process, and publishers hand those
/// strings out as the same interned `&'static str` every time (modelmon-proxy from its
/// configuration, the Python core from its interner). Telling them apart by address and
/// length is a few comparisons, where checking and copying them again was a tenth of an
/// event's cost (callgrind). The bytes are kept when the strings come a second time in a
/// row, so events whose strings never repeat (equal strings at other addresses count as
/// others) pay only the comparisons, some 20 instructions.
#[derive(Default)]
struct ServedBy<'a> {
    /// The strings of the last event.
    last: Option<Strings<'a>>,
    /// Whether `bytes` holds them, written; `None` until they come again.
    kept: Option<bool>,
    bytes: Vec<u8>,
}

type Strings<'a> = (&'a str, Option<&'a str>, &'a str);

impl<'a> ServedBy<'a> {
    /// Room for ordinary names; longer ones are written each time.
    const MAX_BYTES: usize = 256;

    #[inline(always)]
    fn write(&mut self, c: &mut Cursor<'_>, strings: Strings<'a>) -> Option<()> {
        if self.last.is_some_and(|last| same(last, strings)) {
            let kept = match self.kept {
                Some(kept) => kept,
                None => self.keep(strings),
            };
            if kept {
                return c.put(&self.bytes);
            }
        } else {
            self.last = Some(strings);
            self.kept = None;
        }
        c.served_by(strings)
    }

    /// Writes the strings into `bytes`, if they are short enough to be kept.
    #[cold]
    fn keep(&mut self, strings: Strings<'a>) -> bool {
        self.bytes.resize(Self::MAX_BYTES, 0);
        let mut c = Cursor::new(&mut self.bytes);
        let kept = c.served_by(strings).is_some();
        let len = c.written();
        self.bytes.truncate(len);
        self.kept = Some(kept);
        kept
    }
}

/// The same strings: the same address and length.
#[inline(always)]
fn same(a: Strings<'_>, b: Strings<'_>) -> bool {
    let version = match (a.1, b.1) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        (None, None) => true,
        _ => false,
    };
    std::ptr::eq(a.0, b.0) && std::ptr::eq(a.2, b.2) && version
}

/// Room for any event of ordinary size (they are 200 to 400 bytes); a larger one is
/// written through a heap buffer instead.
const SCRATCH_BYTES: usize = 1024;
const _: () = assert!(EVENT_FIXED_MAX < SCRATCH_BYTES / 2);

/// Appends to `out` what `write` writes at the start of the buffer it is given, which
/// returns how much it wrote, or `None` when the buffer is too short.
#[inline(always)]
fn append(
    out: &mut Vec<u8>,
    scratch: &mut [u8; SCRATCH_BYTES],
    mut write: impl FnMut(&mut [u8]) -> Option<usize>,
) {
    match write(scratch) {
        Some(len) => out.extend_from_slice(&scratch[..len]),
        None => append_large(out, write),
    }
}

/// [`append`] for what does not fit the scratch buffer: through a heap buffer that
/// doubles until it fits (a retry writes the same bytes again).
#[cold]
#[inline(never)]
fn append_large(out: &mut Vec<u8>, mut write: impl FnMut(&mut [u8]) -> Option<usize>) {
    let mut buf = vec![0; 2 * SCRATCH_BYTES];
    loop {
        if let Some(len) = write(&mut buf) {
            out.extend_from_slice(&buf[..len]);
            return;
        }
        buf.resize(2 * buf.len(), 0);
    }
}

/// The most `batch` can take when no string needs escaping.
fn size_bound(batch: &Batch<'_>) -> usize {
    let strings: usize = batch
        .events
        .iter()
        .map(|e| {
            let optional =
                e.version.as_ref().map_or(0, |s| s.len()) + e.error.as_ref().map_or(0, |s| s.len());
            let ml: usize = e.ml.iter().map(|(k, _)| k.len()).sum();
            e.model.len()
                + e.instance.len()
                + e.method.len()
                + e.route.len()
                + optional
                + ml
                + e.ml.len() * ML_ENTRY_FIXED_MAX
        })
        .sum();
    BATCH_FIXED_MAX + batch.source.instance.len() + batch.events.len() * EVENT_FIXED_MAX + strings
}

/// A place in a buffer to write at. Every write returns `None`, having written part of
/// its bytes or none, when the buffer is too short.
///
/// It holds the unwritten rest of the buffer, not the buffer and a position: then each
/// write checks its length against the rest's in one comparison, with no overflow to
/// rule out.
struct Cursor<'a> {
    rest: &'a mut [u8],
    len: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn new(buf: &'a mut [u8]) -> Self {
        Cursor {
            len: buf.len(),
            rest: buf,
        }
    }

    /// How many bytes were written.
    #[inline(always)]
    fn written(&self) -> usize {
        self.len - self.rest.len()
    }

    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) -> Option<()> {
        let (dst, rest) = take(&mut self.rest).split_at_mut_checked(bytes.len())?;
        dst.copy_from_slice(bytes);
        self.rest = rest;
        Some(())
    }

    /// Stores the eight bytes of `word` and keeps the first `keep` (at most eight): one
    /// store, where a copy of a variable length is a call.
    #[inline(always)]
    fn put_word(&mut self, word: u64, keep: usize) -> Option<()> {
        let rest = take(&mut self.rest);
        *rest.first_chunk_mut::<8>()? = word.to_le_bytes();
        self.rest = rest.get_mut(keep..)?;
        Some(())
    }

    fn head(&mut self, batch: &Batch<'_>) -> Option<()> {
        let Batch {
            v,
            source,
            dropped,
            events: _,
        } = batch;
        let Source {
            kind,
            instance,
            pid,
        } = source;
        self.put(BATCH_HEAD)?;
        self.u64(*v)?;
        self.put(SOURCE_KIND)?;
        self.put(kind.as_str().as_bytes())?;
        self.put(SOURCE_INSTANCE)?;
        self.text(instance)?;
        self.put(SOURCE_PID)?;
        self.u64(u64::from(*pid))?;
        self.put(DROPPED)?;
        self.u64(*dropped)?;
        self.put(EVENTS)
    }

    /// `,"model":…,"version":…,"instance":"…`, all but the last quote.
    #[inline(always)]
    fn served_by(&mut self, (model, version, instance): Strings<'_>) -> Option<()> {
        self.put(MODEL)?;
        self.text(model)?;
        if let Some(version) = version {
            self.put(VERSION)?;
            self.text(version)?;
        }
        self.put(INSTANCE)?;
        self.text(instance)
    }

    #[inline(always)]
    fn event<'e>(&mut self, e: &'e Event<'_>, served_by: &mut ServedBy<'e>) -> Option<()> {
        // Destructured so that a new field cannot be forgotten here: it fails to compile.
        let Event {
            ts,
            model,
            version,
            instance,
            method,
            route,
            status,
            duration_us,
            ttfb_us,
            req_bytes,
            resp_bytes,
            error,
            ml,
        } = e;
        self.put(TS)?;
        self.i64(*ts)?;
        served_by.write(self, (model, version.as_deref(), instance))?;
        self.put(METHOD)?;
        self.text(method)?;
        self.put(ROUTE)?;
        self.text(route)?;
        self.put(STATUS)?;
        self.u64(u64::from(*status))?;
        self.put(DURATION)?;
        self.u64(*duration_us)?;
        self.opt_u64(TTFB, *ttfb_us)?;
        self.opt_u64(REQ_BYTES, *req_bytes)?;
        self.opt_u64(RESP_BYTES, *resp_bytes)?;
        if let Some(error) = error {
            self.put(ERROR)?;
            self.text(error)?;
            self.put(b"\"")?;
        }
        if let Some(((key, value), rest)) = ml.split_first() {
            self.put(ML)?;
            self.ml_entry(key, *value)?;
            for (key, value) in rest {
                self.put(b",")?;
                self.ml_entry(key, *value)?;
            }
            self.put(b"}")?;
        }
        self.put(b"}")
    }

    #[inline(always)]
    fn ml_entry(&mut self, key: &str, value: f64) -> Option<()> {
        self.put(b"\"")?;
        self.text(key)?;
        self.put(b"\":")?;
        self.f64(value)
    }

    /// Like serde_json: the shortest text that reads back as the same number, as zmij
    /// (the formatter serde_json calls) writes it, and `null` for NaN and the infinities,
    /// which JSON cannot carry. The monitor rejects such an event (`bad_ml`); publishers
    /// drop those values before they encode.
    // Exact comparison is the point: the decimal must read back as this very number.
    #[allow(clippy::float_cmp)]
    #[inline(always)]
    fn f64(&mut self, value: f64) -> Option<()> {
        // Measures are mostly whole numbers (batch sizes, token counts) or microseconds
        // with three decimals (taken from nanosecond clocks). Those are written here, at
        // a fraction of the cost of a call to zmij, when they are provably what zmij
        // writes: if `m / 1000` reads back as `value` below 2^33, it is the only decimal
        // with at most three decimals that does (an ulp there is under 2^-19, a thousandth
        // is not), and any other decimal that does differs from it by under 2^-19, so it
        // needs at least six decimals and more digits. Being the unique shortest, it is
        // zmij's choice, and zmij writes numbers from 1e-5 to 1e16 in plain notation:
        // integer part, `.`, decimals without trailing zeros, or `.0`.
        let milli = value * 1000.0;
        // Rounded half away from zero: the product can be an ulp off the true one.
        let m = (milli + 0.5f64.copysign(milli)) as i64;
        if value.abs() < MILLI_LIMIT && m as f64 / 1000.0 == value {
            let m = m.unsigned_abs();
            if value.is_sign_negative() {
                self.put(b"-")?;
            }
            self.u64(m / 1000)?;
            let decimals = (m % 1000) as u32;
            if decimals == 0 {
                return self.put(b".0");
            }
            // The three decimals are the last three of four digits; the ones to keep end
            // at the highest byte that is not a zero digit.
            let decimals = digits4(decimals) >> 8;
            let keep = (71 - decimals.leading_zeros() as usize) / 8;
            self.put_word(u64::from(b'.') | (decimals + ASCII_ZEROS) << 8, 1 + keep)
        } else if value.is_finite() {
            self.put(zmij::Buffer::new().format_finite(value).as_bytes())
        } else {
            self.put(b"null")
        }
    }

    /// The characters of a string, escaped, without its quotes (the constant runs around
    /// it hold them).
    #[inline(always)]
    fn text(&mut self, s: &str) -> Option<()> {
        let b = s.as_bytes();
        let rest = take(&mut self.rest);
        // Copied as it is checked: nearly always there is nothing to escape, and then the
        // copy is done. Otherwise the escaped text overwrites it.
        if copy_marked(rest.get_mut(..b.len())?, b) {
            self.rest = rest;
            self.escaped(b)
        } else {
            self.rest = rest.get_mut(b.len()..)?;
            Some(())
        }
    }

    /// The rare string with something to escape, escaped as serde_json does: the short
    /// escapes where JSON has one, `\u00XX` (lower-case hex) for other control characters.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, b: &[u8]) -> Option<()> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut plain_from = 0;
        for (i, &c) in b.iter().enumerate() {
            let short = match c {
                b'"' => b'"',
                b'\\' => b'\\',
                b'\n' => b'n',
                b'\t' => b't',
                b'\r' => b'r',
                0x08 => b'b',
                0x0c => b'f',
                0x00..=0x1f => 0,
                _ => continue,
            };
            self.put(&b[plain_from..i])?;
            plain_from = i + 1;
            if short == 0 {
                let (high, low) = (HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]);
                self.put(&[b'\\', b'u', b'0', b'0', high, low])?;
            } else {
                self.put(&[b'\\', short])?;
            }
        }
        self.put(&b[plain_from..])
    }

    #[inline(always)]
    fn i64(&mut self, n: i64) -> Option<()> {
        if n < 0 {
            self.put(b"-")?;
        }
        self.u64(n.unsigned_abs())
    }

    /// `key` and `n` when there is a value; nothing otherwise, as serde skips a `None`.
    #[inline(always)]
    fn opt_u64(&mut self, key: &[u8], n: Option<u64>) -> Option<()> {
        if let Some(n) = n {
            self.put(key)?;
            self.u64(n)?;
        }
        Some(())
    }

    /// Decimal, without leading zeros, four or eight digits at a time.
    #[inline(always)]
    fn u64(&mut self, n: u64) -> Option<()> {
        // Most numbers on the wire (statuses, byte counts, many durations) are short.
        if n < FOUR_DIGITS {
            self.leading4(n as u32)
        } else if n < EIGHT_DIGITS {
            self.leading(n as u32)
        } else if n < EIGHT_DIGITS * EIGHT_DIGITS {
            self.leading((n / EIGHT_DIGITS) as u32)?;
            self.eight((n % EIGHT_DIGITS) as u32)
        } else {
            let high = n / EIGHT_DIGITS;
            self.leading((high / EIGHT_DIGITS) as u32)?;
            self.eight((high % EIGHT_DIGITS) as u32)?;
            self.eight((n % EIGHT_DIGITS) as u32)
        }
    }

    /// `n` < 10^8 as exactly eight digits, leading zeros kept: the lower parts of a number.
    #[inline(always)]
    fn eight(&mut self, n: u32) -> Option<()> {
        self.put_word(digits8(n) + ASCII_ZEROS, 8)
    }

    /// `n` < 10^4 without its leading zeros (one `0` for zero).
    #[inline(always)]
    fn leading4(&mut self, n: u32) -> Option<()> {
        let digits = digits4(n);
        let zeros = (digits.trailing_zeros() / 8).min(3) as usize;
        self.put_word((digits + ASCII_ZEROS) >> (8 * zeros), 4 - zeros)
    }

    /// `n` < 10^8 without its leading zeros (one `0` for zero).
    #[inline(always)]
    fn leading(&mut self, n: u32) -> Option<()> {
        let digits = digits8(n);
        // Leading zeros are the zero bytes at the low end of the word.
        let zeros = (digits.trailing_zeros() / 8).min(7) as usize;
        self.put_word((digits + ASCII_ZEROS) >> (8 * zeros), 8 - zeros)
    }
}

/// Copies `src` to `dst` (as long as it) and returns whether it holds a quote, a
/// backslash or a control character below 0x20: the bytes serde_json escapes. Everything
/// else, DEL and multi-byte characters included, is written as it is.
///
/// Wire strings are a few to a few dozen bytes of plain ASCII, so they are read and
/// written a word at a time, with no call to `memcpy`: whole words, then the last eight
/// bytes again (overlapping is harmless), and two overlapping halves or three single
/// bytes for strings under eight bytes.
#[inline(always)]
fn copy_marked(dst: &mut [u8], src: &[u8]) -> bool {
    let n = src.len();
    let marks = if n >= 8 {
        let mut marks = 0;
        if let (Some(last), Some(dst_last)) = (src.last_chunk::<8>(), dst.last_chunk_mut::<8>()) {
            *dst_last = *last;
            marks = stop_marks(u64::from_le_bytes(*last));
        }
        let (mut src, mut dst) = (src, dst);
        while let (Some((word, src_rest)), Some((dst_word, dst_rest))) = (
            src.split_first_chunk::<8>(),
            dst.split_first_chunk_mut::<8>(),
        ) {
            *dst_word = *word;
            marks |= stop_marks(u64::from_le_bytes(*word));
            (src, dst) = (src_rest, dst_rest);
        }
        marks
    } else if let (Some(head), Some(tail)) = (src.first_chunk::<4>(), src.last_chunk::<4>()) {
        if let Some(d) = dst.last_chunk_mut::<4>() {
            *d = *tail;
        }
        if let Some(d) = dst.first_chunk_mut::<4>() {
            *d = *head;
        }
        stop_marks(
            u64::from(u32::from_le_bytes(*head)) | u64::from(u32::from_le_bytes(*tail)) << 32,
        )
    } else if n > 0 {
        // One to three bytes: the first, the middle and the last cover them all. Spaces
        // fill the other lanes: they never need escaping.
        let (first, middle, last) = (src[0], src[n / 2], src[n - 1]);
        dst[0] = first;
        dst[n / 2] = middle;
        dst[n - 1] = last;
        stop_marks(u64::from_le_bytes([
            first, middle, last, b' ', b' ', b' ', b' ', b' ',
        ]))
    } else {
        0
    };
    // A false mark can only sit above a true one in its word, so any mark means a byte
    // to escape.
    marks != 0
}

const FOUR_DIGITS: u64 = 10_000;
const EIGHT_DIGITS: u64 = 100_000_000;
/// Below it, see [`Cursor::f64`], a number with at most three decimals is written here.
const MILLI_LIMIT: f64 = (1u64 << 33) as f64;
const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// The eight decimal digits of `n` < 10^8 as byte values 0..=9, the most significant in
/// the lowest byte, so that `to_le_bytes` puts them in reading order.
///
/// All lanes are divided at once: into two halves of four digits (32-bit lanes), then
/// into pairs (16-bit lanes), then into digits (bytes). Division by 100 and by 10 is a
/// multiply and a shift, exact for the lane values it sees (below 10^4 and below 100);
/// the products stay inside their lanes.
#[inline(always)]
fn digits8(n: u32) -> u64 {
    spread_pairs(u64::from(n / 10_000) | u64::from(n % 10_000) << 32)
}

/// [`digits8`] for `n` < 10^4, in the low four bytes: one step less.
#[inline(always)]
fn digits4(n: u32) -> u64 {
    spread_pairs(u64::from(n))
}

/// Numbers below 10^4 in the 32-bit lanes of `v` to their digits, one a byte.
#[inline(always)]
fn spread_pairs(v: u64) -> u64 {
    let hundreds = ((v * 5243) >> 19) & 0x0000_007F_0000_007F;
    let v = hundreds | (v - hundreds * 100) << 16;
    let tens = ((v * 103) >> 10) & 0x000F_000F_000F_000F;
    tens | (v - tens * 10) << 8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `write` writes.
    fn written(write: impl Fn(&mut Cursor<'_>) -> Option<()>) -> String {
        let mut out = Vec::new();
        append(&mut out, &mut [0; SCRATCH_BYTES], |buf| {
            let mut c = Cursor::new(buf);
            write(&mut c)?;
            Some(c.written())
        });
        String::from_utf8(out).expect("UTF-8")
    }

    fn uint_text(n: u64) -> String {
        written(|c| c.u64(n))
    }

    #[test]
    fn integers_at_every_length_and_boundary() {
        let mut cases = vec![0, u64::MAX, u64::MAX - 1];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            cases.extend([p - 1, p, p + 1, 2 * p - 1, 9 * p, next - 1]);
            p = next;
        }
        cases.extend([p - 1, p, p + 1]);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every length, not mostly 19 and 20 digits.
            cases.push(x >> (x % 64));
        }
        for n in cases {
            assert_eq!(uint_text(n), n.to_string());
        }
        for n in [0, -1, -9, -10, 1, i64::MIN, i64::MAX, i64::MIN + 1] {
            assert_eq!(written(|c| c.i64(n)), n.to_string());
        }
    }

    #[test]
    fn every_value_of_a_lane_divides_exactly() {
        // Each value below 10^4 in both halves (the lanes do not interact), then a spread.
        let both_halves = (0..10_000u32).map(|k| k * 10_000 + (9_999 - k));
        for n in both_halves.chain((0..100_000_000).step_by(9_973)) {
            assert_eq!(written(|c| c.eight(n)), format!("{n:08}"));
        }
    }

    fn zmij_text(value: f64) -> String {
        if value.is_finite() {
            zmij::Buffer::new().format_finite(value).to_owned()
        } else {
            "null".to_owned()
        }
    }

    #[test]
    fn floats_are_written_as_zmij_writes_them() {
        let mut values = Vec::new();
        // Every number of thousandths near zero, and around the powers of ten.
        for m in -200_000..=200_000i64 {
            values.push(m as f64 / 1000.0);
        }
        for p in 3..=16 {
            let base = 10i64.pow(p);
            for m in base - 1000..base + 1000 {
                values.push(m as f64 / 1000.0);
            }
        }
        let limit = MILLI_LIMIT;
        values.extend([
            limit,
            limit - 0.001,
            limit - 0.5,
            limit.next_down(),
            limit.next_up(),
            -limit,
            0.0005,
            0.000_1,
            1e-5,
            0.123_4,
            1.000_5,
            f64::MIN_POSITIVE,
            5e-324,
            f64::MAX,
            (1u64 << 53) as f64,
            1e15,
            1e16,
            -0.0,
            0.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ]);
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for i in 0..400_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = match i % 4 {
                // Any thousandths below the limit, and a little above it.
                0 => (x % (1 << 44)) as f64 / 1000.0,
                // Microseconds from nanoseconds, as the Python middleware records them.
                1 => (x % 100_000_000_000) as f64 / 1000.0,
                // Four to six decimals: never written here.
                2 => (x % 1_000_000_000) as f64 / 10f64.powi(4 + (x % 3) as i32),
                _ => f64::from_bits(x),
            };
            values.push(if x & (1 << 40) == 0 { v } else { -v });
        }
        for v in values {
            assert_eq!(
                written(|c| c.f64(v)),
                zmij_text(v),
                "{v:e} ({:#x})",
                v.to_bits()
            );
        }
    }

    fn widest_event() -> Event<'static> {
        Event {
            ts: i64::MIN,
            model: "m".into(),
            version: Some("v".into()),
            instance: "i".into(),
            method: "GET".into(),
            route: "/".into(),
            status: u16::MAX,
            duration_us: u64::MAX,
            ttfb_us: Some(u64::MAX),
            req_bytes: Some(u64::MAX),
            resp_bytes: Some(u64::MAX),
            error: Some("e".into()),
            ml: vec![("k".into(), -2.225_073_858_507_201e-308); 16],
        }
    }

    #[test]
    fn the_size_bound_holds_for_the_widest_values() {
        let batch = Batch {
            v: u64::MAX,
            source: Source {
                kind: crate::SourceKind::Proxy,
                instance: "h".into(),
                pid: u32::MAX,
            },
            dropped: u64::MAX,
            events: vec![widest_event(); 3],
        };
        let body = batch_json(&batch);
        assert!(body.len() <= size_bound(&batch));
        assert_eq!(body, serde_json::to_vec(&batch).expect("encodes"));
    }

    #[test]
    fn strings_that_outgrow_the_bound_grow_the_buffer() {
        // Six bytes for each control character: over the bound, which counts one, over
        // the scratch buffer, and over the first heap buffer.
        let wide = "\u{1}".repeat(400);
        let batch = Batch {
            v: 1,
            source: Source {
                kind: crate::SourceKind::Proxy,
                instance: wide.clone().into(),
                pid: 1,
            },
            dropped: 0,
            events: vec![Event {
                route: wide.into(),
                ..widest_event()
            }],
        };
        assert_eq!(
            batch_json(&batch),
            serde_json::to_vec(&batch).expect("encodes")
        );
    }

    #[test]
    fn escape_check_matches_a_byte_loop_and_the_copy_is_exact() {
        let slow = |b: &[u8]| b.iter().any(|&c| c == b'"' || c == b'\\' || c < 0x20);
        for len in 0..=25 {
            for at in 0..len {
                for byte in 0..=255u8 {
                    for fill in [b'a', b' ', 0x7f, 0xc3] {
                        let mut b = vec![fill; len];
                        b[at] = byte;
                        let mut copy = vec![0; len];
                        assert_eq!(
                            copy_marked(&mut copy, &b),
                            slow(&b),
                            "byte {byte:#x} at {at} of {len} in {fill:#x}"
                        );
                        assert_eq!(copy, b);
                    }
                }
            }
        }
        assert!(!copy_marked(&mut [], b""));
    }
}
