//! A small strict JSON reader, shaped for batch bodies.
//!
//! Why not serde_json: the monitor must decode millions of events a second on one core,
//! and must keep the good events of a batch whose other events hold wrong types. A
//! reader that hands out one value at a time lets the decoder validate each event as
//! it is read, with strings borrowed from the body, no intermediate tree and no
//! second pass. It accepts exactly RFC 8259 JSON (the tests compare it with serde_json
//! on generated and mutated inputs); containers it is not asked to read are skipped
//! with their syntax still checked.

use std::borrow::Cow;

use crate::is_clean_text;

/// A byte repeated in every lane of a word.
const fn lanes(byte: u8) -> u64 {
    0x0101_0101_0101_0101 * byte as u64
}

const HIGH_BITS: u64 = lanes(0x80);

/// Marks, in its high bit, every lane of `x` that ends the plain run of a string: the
/// quote, the backslash and control characters.
///
/// `v - n & !v` sets a lane's high bit when the lane was below `n` (`n` <= 0x80); a
/// borrow can only mark lanes above a true mark, so the lowest mark, the only one the
/// scan uses, is exact. Flipping bit 1 moves the quote (0x22) to 0x20 and keeps control
/// characters below 0x20 while every other byte stays at 0x21 or above, so one test finds
/// both; the backslash is the lane equal to it, below 1 once xored.
///
/// The encoder uses it too, to find the strings that need escaping: the same three kinds
/// of byte end a plain run in both directions.
#[inline]
pub(crate) fn stop_marks(x: u64) -> u64 {
    let quote_or_control = x ^ lanes(0x02);
    let backslash = x ^ lanes(b'\\');
    let marks = (quote_or_control.wrapping_sub(lanes(0x21)) & !quote_or_control)
        | (backslash.wrapping_sub(lanes(1)) & !backslash);
    marks & HIGH_BITS
}

/// Marks the lanes of `x` at or above 0x7F: DEL and every byte of a multi-byte char. A carry
/// can only mark a lane above a 0xFF lane, itself marked.
#[inline]
fn wide_marks(x: u64) -> u64 {
    (x | x.wrapping_add(lanes(1))) & HIGH_BITS
}

/// The length of the plain run at the start of `rest` (all of it when no byte ends the
/// run), and whether the run is printable ASCII only.
///
/// Eight bytes at a time: wire strings are 5 to 40 bytes, so one to five words, where a
/// byte loop with a table lookup costs four to five instructions a byte.
#[inline]
fn plain_run(rest: &[u8]) -> (usize, bool) {
    let mut wide = 0;
    let mut at = 0;
    while let Some(word) = rest[at..].first_chunk::<8>() {
        let x = u64::from_le_bytes(*word);
        let stops = stop_marks(x);
        if stops != 0 {
            let lane = (stops.trailing_zeros() / 8) as usize;
            wide |= wide_marks(x) & ((1 << (8 * lane)) - 1);
            return (at + lane, wide == 0);
        }
        wide |= wide_marks(x);
        at += 8;
    }
    let (n, printable) = short_plain_run(&rest[at..]);
    (at + n, printable && wide == 0)
}

/// [`plain_run`] over the last few bytes of the body.
#[cold]
fn short_plain_run(rest: &[u8]) -> (usize, bool) {
    let n = rest
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(rest.len());
    (n, rest[..n].iter().all(|&c| c < 0x7f))
}

/// Whether `key` is 1 to `max` bytes of `[a-z0-9_]`: an `ml` key. Eight bytes at a time,
/// as [`plain_run`] does: every event's keys are checked, and a byte loop with three
/// ranges costs six instructions a byte.
#[inline]
pub(crate) fn is_ml_key(key: &str, max: usize) -> bool {
    let k = key.as_bytes();
    if k.is_empty() || k.len() > max {
        return false;
    }
    if k.len() < 8 {
        return k
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    }
    let word = |at: usize| k[at..].first_chunk::<8>().map(|w| u64::from_le_bytes(*w));
    let mut at = 0;
    while at + 8 < k.len() {
        if word(at).is_none_or(|w| not_ml_key_lanes(w) != 0) {
            return false;
        }
        at += 8;
    }
    // The last eight bytes, overlapping the words already checked.
    word(k.len() - 8).is_some_and(|w| not_ml_key_lanes(w) == 0)
}

/// The high bit of every lane of `x` that is not `[a-z0-9_]`. Below 0x80, adding
/// `0x80 - c` to a lane sets its high bit exactly when the lane is at least `c`, and never
/// carries into the next lane; lanes at or above 0x80 are marked as they are.
#[inline]
fn not_ml_key_lanes(x: u64) -> u64 {
    let ascii = x & !HIGH_BITS;
    let at_least = |c: u8| ascii.wrapping_add(lanes(0x80 - c));
    let lower = at_least(b'a') & !at_least(b'z' + 1);
    let digit = at_least(b'0') & !at_least(b'9' + 1);
    // A lane equal to `_` is zero once xored, and stays below 0x80 plus 0x7f.
    let underscore = !(ascii ^ lanes(b'_')).wrapping_add(lanes(0x7f));
    (!(lower | digit | underscore) | x) & HIGH_BITS
}

/// The powers of ten that are exact as `f64`: the divisors of the short paths.
const POWERS_OF_TEN_F64: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

const POWERS_OF_TEN: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];

/// The value of the decimal digits that start `bytes`, and how many of the first eight
/// are digits (none when fewer than eight bytes are given).
#[inline]
fn leading_digits(bytes: &[u8]) -> (u64, usize) {
    let Some(word) = bytes.first_chunk::<8>() else {
        return (0, 0);
    };
    let x = u64::from_le_bytes(*word);
    // A lane is not a digit when it is below `0` (the subtraction borrows), above `9`
    // (adding 0x46 reaches 0x80) or not ASCII. Borrows and carries only mark lanes above
    // a marked one, so the lowest mark is exact.
    let d = x.wrapping_sub(lanes(b'0'));
    let not_digit = (x | d | x.wrapping_add(lanes(0x80 - b'9' - 1))) & HIGH_BITS;
    let n = (not_digit.trailing_zeros() / 8) as usize;
    // Move the digits to the top lanes (none left when there are none); the zeros shifted
    // in are leading zeros. Then add up neighbours: lane pairs into 0..99, pairs of those
    // into 0..9999, and the two halves.
    let mut v = d.checked_shl(8 * (8 - n as u32)).unwrap_or(0);
    v = (v.wrapping_mul(10) + (v >> 8)) & 0x00FF_00FF_00FF_00FF;
    v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_FFFF_0000_FFFF;
    v = (v.wrapping_mul(10_000) + (v >> 32)) & 0x0000_0000_FFFF_FFFF;
    (v, n)
}

/// A string value. `printable` is set when it was borrowed as written and holds printable
/// ASCII only: then it is clean text of `text.len()` characters without another pass.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Str<'a> {
    pub text: Cow<'a, str>,
    pub printable: bool,
}

impl Str<'_> {
    /// 1..=`max` characters and no control characters; see [`is_clean_text`].
    #[inline]
    pub fn is_clean(&self, max: usize) -> bool {
        if self.printable {
            (1..=max).contains(&self.text.len())
        } else {
            is_clean_text(&self.text, max)
        }
    }
}

/// How deep skipped containers may nest before the body is refused.
const MAX_DEPTH: usize = 128;

/// A syntax error, with the byte offset where it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub pos: usize,
    pub what: &'static str,
}

type Result<T> = std::result::Result<T, SyntaxError>;

/// Any JSON value, with containers reduced to their kind.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) enum J<'a> {
    #[default]
    Absent,
    Null,
    Bool(bool),
    /// A negative integer.
    I(i64),
    /// A non-negative integer.
    U(u64),
    F(f64),
    S(Str<'a>),
    Arr,
    Obj,
}

pub(crate) struct Reader<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            b: text.as_bytes(),
            pos: 0,
        }
    }

    #[cold]
    fn err<T>(&self, what: &'static str) -> Result<T> {
        Err(SyntaxError {
            pos: self.pos,
            what,
        })
    }

    #[inline]
    fn ws(&mut self) {
        // Compact bodies have no white space: one comparison settles the common case.
        while let Some(&c) = self.b.get(self.pos)
            && c <= b' '
            && matches!(c, b' ' | b'\n' | b'\r' | b'\t')
        {
            self.pos += 1;
        }
    }

    /// The next significant byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.pos).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8, what: &'static str) -> Result<()> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    /// Only white space may follow the top-level value.
    pub fn finish(&mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.err("trailing characters after the JSON value"),
        }
    }

    /// Consumes `{` if it is next.
    pub fn open_object(&mut self) -> bool {
        if self.peek() == Some(b'{') {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes `[` if it is next.
    pub fn open_array(&mut self) -> bool {
        if self.peek() == Some(b'[') {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// The next key of an open object, its `:` consumed; `None` once `}` is consumed.
    /// `first` tracks whether a comma is due.
    #[inline]
    pub fn next_key(&mut self, first: &mut bool) -> Result<Option<Cow<'a, str>>> {
        if self.next_member(first)? {
            self.key().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether another member of an open object follows, its comma consumed; `false` once
    /// `}` is consumed. `first` tracks whether a comma is due. The key is left to
    /// [`Self::key`], or to a caller that recognises it in [`Self::ahead`].
    #[inline]
    pub fn next_member(&mut self, first: &mut bool) -> Result<bool> {
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if !*first => return self.err("expected `,` or `}`"),
            _ => {}
        }
        *first = false;
        Ok(true)
    }

    /// The key of a member, and the `:` after it.
    #[inline]
    pub fn key(&mut self) -> Result<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return self.err("expected a string key");
        }
        let key = self.string()?;
        self.eat(b':', "expected `:`")?;
        Ok(key.text)
    }

    /// An `ml` key as encoders write it: `"key":`, the key 1 to `max` bytes of
    /// `[a-z0-9_]`, which is checked here as it is found, eight bytes at a time. `None`,
    /// position unchanged, leaves any other key, valid or not, to [`Self::key`] and
    /// [`is_ml_key`].
    #[inline]
    pub fn ml_key(&mut self, max: usize) -> Option<&'a str> {
        let rest = self.b.get(self.pos..)?;
        if rest.first() != Some(&b'"') {
            return None;
        }
        // The key ends at its first byte outside `[a-z0-9_]`, which must be the quote.
        let mut n = 0;
        loop {
            let word = rest.get(1 + n..)?.first_chunk::<8>()?;
            let marks = not_ml_key_lanes(u64::from_le_bytes(*word));
            if marks != 0 {
                n += (marks.trailing_zeros() / 8) as usize;
                break;
            }
            n += 8;
            if n > max {
                return None;
            }
        }
        if n == 0 || n > max || rest.get(n + 1) != Some(&b'"') || rest.get(n + 2) != Some(&b':') {
            return None;
        }
        let start = self.pos + 1;
        self.pos += n + 3;
        // ASCII bytes up to an ASCII quote end on a char boundary.
        Some(&self.text[start..start + n])
    }

    /// A non-negative number of at most seven integer digits and at most seven decimals,
    /// without an exponent: how `ml` values are written (`12`, `12.0`, `0.25`). Its digits
    /// read eight at a time, then one exact division (see [`Self::short_decimal`]).
    /// `None`, position unchanged, leaves any other number, and anything else, to
    /// [`Self::value`].
    #[inline]
    pub fn short_number(&mut self) -> Option<f64> {
        // Seventeen bytes reach past the longest such number and the byte after it.
        let b = self.b.get(self.pos..)?.first_chunk::<17>()?;
        let (int, n) = leading_digits(b);
        if n == 0 || n == 8 || (n > 1 && b[0] == b'0') {
            return None;
        }
        match b[n] {
            b'.' => {
                let (frac, k) = leading_digits(&b[n + 1..]);
                if k == 0 || k == 8 || matches!(b[n + 1 + k], b'e' | b'E') {
                    return None;
                }
                self.pos += n + 1 + k;
                // Below 10^14: as an `i64` it converts in one instruction, where a `u64`
                // takes a branch and several (x86-64 converts only signed integers).
                let scaled = (int * POWERS_OF_TEN[k] + frac) as i64;
                Some(scaled as f64 / POWERS_OF_TEN_F64[k])
            }
            b'e' | b'E' => None,
            _ => {
                self.pos += n;
                Some(int as i64 as f64)
            }
        }
    }

    /// The unread bytes, so a caller can recognise what comes next without reading it.
    #[inline]
    pub fn ahead(&self) -> &'a [u8] {
        &self.b[self.pos..]
    }

    /// Consumes `len` bytes that [`Self::ahead`] showed to be complete tokens.
    #[inline]
    pub fn skip_known(&mut self, len: usize) {
        self.pos += len;
    }

    /// Whether another element of an open array follows (its comma consumed); `false`
    /// once `]` is consumed.
    #[inline]
    pub fn next_element(&mut self, first: &mut bool) -> Result<bool> {
        match self.peek() {
            Some(b']') => {
                self.pos += 1;
                return Ok(false);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if !*first => return self.err("expected `,` or `]`"),
            None => return self.err("unterminated array"),
            _ => {}
        }
        *first = false;
        Ok(true)
    }

    /// Reads any value; containers are skipped and reported by kind.
    pub fn value(&mut self) -> Result<J<'a>> {
        let mut v = J::Absent;
        self.value_into(&mut v)?;
        Ok(v)
    }

    /// Reads any value into `slot`, like [`Self::value`].
    ///
    /// Strings and plain integers, nearly every value on the wire, are read here; the
    /// rest is left to an out-of-line call so that this stays small enough to inline.
    /// Writing in place spares the caller a copy of the value.
    #[inline]
    pub fn value_into(&mut self, slot: &mut J<'a>) -> Result<()> {
        *slot = match self.peek() {
            Some(b'"') => J::S(self.string()?),
            Some(b'0'..=b'9') => match self.plain_integer() {
                Some(v) => J::U(v),
                None => self.number()?,
            },
            _ => self.other_value()?,
        };
        Ok(())
    }

    /// Any value but a string or a plain integer.
    #[inline(never)]
    fn other_value(&mut self) -> Result<J<'a>> {
        match self.peek() {
            Some(b'"') => self.string().map(J::S),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'{' | b'[') => {
                let obj = self.b[self.pos] == b'{';
                self.skip(0)?;
                Ok(if obj { J::Obj } else { J::Arr })
            }
            Some(b't') => self.literal("true", J::Bool(true)),
            Some(b'f') => self.literal("false", J::Bool(false)),
            Some(b'n') => self.literal("null", J::Null),
            Some(_) => self.err("expected a JSON value"),
            None => self.err("unexpected end of input"),
        }
    }

    /// A non-negative integer of at most 16 digits that is not the start of a fraction or
    /// exponent: what nearly every number on the wire is. Parsed eight digits at a time
    /// as it is scanned, which [`Self::number`] cannot do; `None` (position unchanged)
    /// leaves any other number, and any error, to it.
    #[inline]
    fn plain_integer(&mut self) -> Option<u64> {
        // A plain integer is followed by at least `,` and `}` in a batch: near the end of
        // the body, where fewer than 17 bytes are left, there is no such number to read.
        let digits = self.b[self.pos..].first_chunk::<17>()?;
        let (head, rest) = digits.split_at(8);
        let (mut v, mut n) = leading_digits(head);
        if n == 8 {
            let (w, k) = leading_digits(rest);
            v = v * POWERS_OF_TEN[k] + w;
            n += k;
        }
        let leading_zero = n > 1 && digits[0] == b'0';
        let not_plain = matches!(digits[n], b'0'..=b'9' | b'.' | b'e' | b'E');
        if leading_zero || not_plain {
            return None;
        }
        self.pos += n;
        Some(v)
    }

    fn literal(&mut self, word: &'static str, v: J<'a>) -> Result<J<'a>> {
        if self.b[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(v)
        } else {
            self.err("invalid literal")
        }
    }

    /// Skips one value, checking its syntax.
    pub fn skip(&mut self, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        if self.open_object() {
            let mut first = true;
            while self.next_key(&mut first)?.is_some() {
                self.skip(depth + 1)?;
            }
            Ok(())
        } else if self.open_array() {
            let mut first = true;
            while self.next_element(&mut first)? {
                self.skip(depth + 1)?;
            }
            Ok(())
        } else {
            self.value().map(drop)
        }
    }

    /// A string at `"`. Borrowed from the body unless it holds escapes.
    ///
    /// Inlined into the field loop, where a call cost a third of the work of a short
    /// string (saving and restoring registers, returning through memory); plain `inline`
    /// was not heeded.
    #[allow(clippy::inline_always)]
    #[inline(always)]
    fn string(&mut self) -> Result<Str<'a>> {
        let start = self.pos + 1; // after the opening quote
        let (n, printable) = plain_run(&self.b[start..]);
        let end = start + n;
        if self.b.get(end) == Some(&b'"') {
            self.pos = end + 1;
            // Bytes up to an ASCII quote in valid UTF-8 end on a char boundary.
            Ok(Str {
                text: Cow::Borrowed(&self.text[start..end]),
                printable,
            })
        } else {
            self.pos = end;
            self.string_from_stop(start)
        }
    }

    /// The rest of a string whose plain run from `start` ended, at the current position,
    /// on something other than the closing quote.
    #[cold]
    #[inline(never)]
    fn string_from_stop(&mut self, start: usize) -> Result<Str<'a>> {
        match self.b.get(self.pos) {
            Some(b'\\') => {
                let plain = &self.text[start..self.pos];
                let mut owned = String::with_capacity(plain.len() + 16);
                owned.push_str(plain);
                let text = Cow::Owned(self.escaped(owned)?);
                Ok(Str {
                    text,
                    printable: false,
                })
            }
            Some(_) => self.err("control character in a string"),
            None => self.err("unterminated string"),
        }
    }

    /// The rest of a string with escapes, from a backslash or plain text.
    fn escaped(&mut self, mut out: String) -> Result<String> {
        loop {
            let Some(&c) = self.b.get(self.pos) else {
                return self.err("unterminated string");
            };
            match c {
                b'"' => {
                    self.pos += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let Some(&e) = self.b.get(self.pos + 1) else {
                        return self.err("unterminated escape");
                    };
                    self.pos += 2;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => {
                            self.pos -= 1;
                            return self.err("invalid escape");
                        }
                    }
                }
                c if c < 0x20 => return self.err("control character in a string"),
                _ => {
                    let n = plain_run(&self.b[self.pos..]).0;
                    out.push_str(&self.text[self.pos..self.pos + n]);
                    self.pos += n;
                }
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair of two escapes.
    fn unicode_escape(&mut self) -> Result<char> {
        let hi = self.hex4()?;
        if !(0xD800..0xE000).contains(&hi) {
            return char::from_u32(hi).map_or_else(|| self.err("invalid \\u escape"), Ok);
        }
        if hi >= 0xDC00 || !self.b[self.pos..].starts_with(b"\\u") {
            return self.err("lone surrogate in \\u escape");
        }
        self.pos += 2;
        let lo = self.hex4()?;
        if !(0xDC00..0xE000).contains(&lo) {
            return self.err("lone surrogate in \\u escape");
        }
        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        char::from_u32(c).map_or_else(|| self.err("invalid \\u escape"), Ok)
    }

    fn hex4(&mut self) -> Result<u32> {
        let Some(digits) = self.b.get(self.pos..self.pos + 4) else {
            return self.err("short \\u escape");
        };
        let mut v = 0u32;
        for &d in digits {
            let x = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return self.err("invalid hex digit in \\u escape"),
            };
            v = v * 16 + u32::from(x);
        }
        self.pos += 4;
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let n = self.b[self.pos..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        self.pos += n;
        n
    }

    /// `int.frac` of at most 15 digits in all, ending at `self.pos`, without an exponent
    /// (`12.0`, `0.25`: how encoders write most `ml` values). Its digits as an integer are
    /// below 2^53 and 10^frac is exact, so one division, which IEEE rounds correctly, is
    /// the same f64 the full parser gives, at a fraction of its cost (Clinger's fast path).
    #[inline]
    fn short_decimal(&self, int_start: usize, frac_len: usize, neg: bool) -> f64 {
        let mantissa = self.b[int_start..self.pos]
            .iter()
            .filter(|&&d| d != b'.')
            .fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        let v = mantissa as f64 / POWERS_OF_TEN_F64[frac_len];
        if neg { -v } else { v }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    ///
    /// Marked cold so that the field loop is laid out for [`Self::plain_integer`]: only
    /// negative numbers, fractions, exponents and numbers at the very end of the body
    /// come here.
    #[cold]
    #[inline(never)]
    fn number(&mut self) -> Result<J<'a>> {
        let start = self.pos;
        let neg = self.b[self.pos] == b'-';
        if neg {
            self.pos += 1;
        }
        let int_start = self.pos;
        let int_len = self.digits();
        if int_len == 0 {
            return self.err("invalid number");
        }
        if int_len > 1 && self.b[int_start] == b'0' {
            self.pos = int_start;
            return self.err("leading zero in a number");
        }
        let mut float = false;
        let mut frac_len = 0;
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            frac_len = self.digits();
            if frac_len == 0 {
                return self.err("invalid number");
            }
            float = true;
        }
        if float && int_len + frac_len <= 15 && !matches!(self.b.get(self.pos), Some(b'e' | b'E')) {
            return Ok(J::F(self.short_decimal(int_start, frac_len, neg)));
        }
        if let Some(b'e' | b'E') = self.b.get(self.pos) {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.b.get(self.pos) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return self.err("invalid number");
            }
            float = true;
        }
        let text = &self.text[start..self.pos];
        if !float {
            // Up to 19 digits always fit a u64; longer ones may not.
            let digits = &self.b[int_start..self.pos];
            let parsed = digits.iter().try_fold(0u64, |v, &d| {
                v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            });
            if let Some(v) = parsed {
                if !neg {
                    return Ok(J::U(v));
                }
                if v == 0 {
                    return Ok(J::U(0));
                }
                if let Some(i) = 0i64.checked_sub_unsigned(v) {
                    return Ok(J::I(i));
                }
            }
        }
        // A number too large for an f64 (`1e400`) is still valid JSON: it reads as
        // infinite, and the field holding it rejects its event alone (every reader of
        // `J::F` checks finiteness), so the good events of the batch are kept.
        if let Ok(f) = text.parse::<f64>() {
            Ok(J::F(f))
        } else {
            self.pos = start;
            self.err("not a number")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reproducible pseudo-random numbers of 53 bits (a linear congruential generator).
    fn numbers(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            x >> 11
        }
    }

    fn read(s: &str) -> Result<J<'_>> {
        let mut r = Reader::new(s);
        let v = r.value()?;
        r.finish()?;
        Ok(v)
    }

    #[test]
    fn scalars() {
        assert_eq!(read(" 12 "), Ok(J::U(12)));
        assert_eq!(read("-12"), Ok(J::I(-12)));
        assert_eq!(read("-0"), Ok(J::U(0)));
        assert_eq!(read("1.5e3"), Ok(J::F(1500.0)));
        assert_eq!(
            read("18446744073709551616"),
            Ok(J::F(18_446_744_073_709_551_616.0))
        );
        assert_eq!(read("true"), Ok(J::Bool(true)));
        assert_eq!(read("null"), Ok(J::Null));
        assert_eq!(
            read(r#""a\"b\u00e9\ud83d\ude00""#),
            Ok(J::S(Str {
                text: "a\"b\u{e9}\u{1F600}".into(),
                printable: false
            }))
        );
        assert_eq!(read(r#"{"a":[1,{"b":null}]}"#), Ok(J::Obj));
    }

    /// What an `ml` key is, byte by byte: the reference of the word-at-a-time checks.
    fn ml_key_by_bytes(k: &str) -> bool {
        (1..=64).contains(&k.len())
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    }

    #[test]
    fn ml_keys_are_checked_as_a_byte_loop_checks_them() {
        let slow = ml_key_by_bytes;
        let mut next = numbers(3);
        // Every byte at every position of keys around the word sizes, in a valid key.
        for len in [1, 7, 8, 9, 15, 16, 17, 24, 64, 65] {
            let base: String = (0..len).map(|i| ['a', 'z', '0', '9', '_'][i % 5]).collect();
            assert_eq!(is_ml_key(&base, 64), slow(&base), "{base:?}");
            for _ in 0..300 {
                let mut bytes = base.clone().into_bytes();
                bytes[next() as usize % len] = (next() % 0x80) as u8;
                let k = String::from_utf8(bytes).expect("ascii");
                assert_eq!(is_ml_key(&k, 64), slow(&k), "{k:?}");
            }
        }
        assert!(
            !is_ml_key("", 64)
                && !is_ml_key("tokens_\u{e9}", 64)
                && !is_ml_key("tokens_\u{1e70}_out", 64)
                && !is_ml_key("Tokens_out", 64)
        );
    }

    #[test]
    fn ml_keys_found_while_scanning_are_the_keys_the_full_reader_reads_and_valid() {
        let slow = ml_key_by_bytes;
        // `tail` long enough for every word the scan reads, or too short for the last.
        let check = |k: &str, tail: &str| {
            let text = format!("\"{k}\":{tail}");
            let mut fast = Reader::new(&text);
            let mut full = Reader::new(&text);
            if let Some(got) = fast.ml_key(64) {
                assert_eq!(Ok(Cow::Borrowed(got)), full.key(), "{text:?}");
                assert!(slow(got), "{text:?}: accepted a bad key");
                assert_eq!(fast.pos, full.pos, "{text:?}");
            } else {
                assert_eq!(fast.pos, 0, "{text:?}: moved without a key");
                let long_tail = tail.len() >= 8;
                assert!(!(slow(k) && long_tail), "{text:?}: left a good key");
            }
        };
        let mut next = numbers(5);
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 24, 63, 64, 65, 70] {
            let base: String = (0..len).map(|i| ['a', 'z', '0', '9', '_'][i % 5]).collect();
            for tail in ["1.5,\"x\":0}", "1}"] {
                check(&base, tail);
                for _ in 0..200 {
                    let mut k: Vec<char> = base.chars().collect();
                    if let Some(c) = k.get_mut(next() as usize % len.max(1)) {
                        // A byte's worth, or any char: some have every byte's low
                        // seven bits in `[a-z0-9_]` (U+1E70 is E1 B9 B0: `a`, `9`, `0`).
                        let range = if next() % 2 == 0 { 0x100 } else { 0x2_0000 };
                        *c = char::from_u32((next() % range) as u32).unwrap_or('?');
                    }
                    check(&k.into_iter().collect::<String>(), tail);
                }
            }
        }
        check("tokens_\u{1e70}_out", "1.5,\"x\":0}");
        // Escaped or spaced keys are left to the full reader, even when they are valid.
        for text in [
            r#""a\u0062":1.5,"x":0}"#,
            r#""ab" :1.5,"x":0}"#,
            r#"ab:1.5,"x":0}"#,
        ] {
            assert_eq!(Reader::new(text).ml_key(64), None, "{text:?}");
        }
    }

    #[test]
    fn short_numbers_read_as_the_full_parser_reads_them_or_leave_it_to_it() {
        let mut next = numbers(11);
        let mut cases: Vec<String> = [
            "0",
            "7",
            "0.0",
            "12.0",
            "0.25",
            "1234567.1234567",
            "12345678",
            "1.12345678",
            "01",
            "00.5",
            "1e5",
            "1.5E3",
            "-1",
            "1.",
            ".5",
            "x",
        ]
        .map(String::from)
        .to_vec();
        for _ in 0..20_000 {
            let int = 1 + next() % 9;
            let frac = next() % 9;
            let pick = |n: u64, r: u64| (r % 10u64.pow(n as u32)).to_string();
            let i = pick(int, next());
            cases.push(if frac == 0 {
                i
            } else {
                format!("{i}.{:0>w$}", pick(frac, next()), w = frac as usize)
            });
        }
        let mut fast = 0;
        for c in &cases {
            // What follows a value in a batch, so the reader has its seventeen bytes.
            let text = format!("{c},\"following\":12345}}");
            let mut r = Reader::new(&text);
            if let Some(got) = r.short_number() {
                fast += 1;
                let want: f64 = c.parse().expect("a number");
                assert!(got.to_bits() == want.to_bits(), "{c}: {got:e} vs {want:e}");
                assert_eq!(r.pos, c.len(), "{c}: stops after the number");
            } else {
                assert_eq!(r.pos, 0, "{c}: left where it was");
                // Left to the full reader: only what the fast path is not for.
                let plain = c.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                let leading_zero = c.len() > 1 && c.starts_with('0') && !c.starts_with("0.");
                let parts_fit = c.split('.').all(|p| !p.is_empty() && p.len() < 8);
                assert!(
                    !(plain && !leading_zero && parts_fit && c.parse::<f64>().is_ok()),
                    "{c}: a short number the fast path should have read"
                );
            }
        }
        assert!(
            fast > 12_000,
            "the fast path read {fast} of {}",
            cases.len()
        );
    }

    #[test]
    fn short_decimals_read_as_the_full_parser_reads_them() {
        let mut next = numbers(7);
        let mut cases: Vec<String> = ["0.0", "-0.0", "12.0", "0.1", "0.25", "999999999999999.0"]
            .map(String::from)
            .to_vec();
        for _ in 0..100_000 {
            let digits = 1 + next() % 15;
            let frac = 1 + next() % digits.min(15);
            let int = digits.saturating_sub(frac).max(1);
            let pick = |n: u64, r: u64| (r % 10u64.pow(n as u32)).to_string();
            let (i, f) = (pick(int, next()), pick(frac, next()));
            let sign = if next() % 2 == 0 { "" } else { "-" };
            cases.push(format!("{sign}{i}.{f:0>width$}", width = frac as usize));
        }
        for c in &cases {
            let want: f64 = c.parse().expect("a number");
            match read(c) {
                Ok(J::F(got)) => {
                    assert!(got.to_bits() == want.to_bits(), "{c}: {got:e} vs {want:e}");
                }
                other => panic!("{c}: {other:?}"),
            }
        }
    }

    /// The plain run and printable flag, one byte at a time.
    fn plain_run_slowly(rest: &[u8]) -> (usize, bool) {
        let n = rest
            .iter()
            .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
            .unwrap_or(rest.len());
        (n, rest[..n].iter().all(|c| (0x20..0x7f).contains(c)))
    }

    #[test]
    fn word_at_a_time_scan_matches_the_byte_loop() {
        // Every byte value at every lane of two words and of a short tail, behind plain
        // text, printable or not.
        for len in [3, 13, 24] {
            for at in 0..len {
                for byte in 0..=255u8 {
                    for fill in [b'a', 0x7f, 0xc3] {
                        let mut b = vec![fill; len];
                        b[at] = byte;
                        assert_eq!(
                            plain_run(&b),
                            plain_run_slowly(&b),
                            "byte {byte:#x} at {at} of {len} after {fill:#x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn word_at_a_time_digits() {
        for text in [
            "0",
            "7,",
            "12345678",
            "1234567",
            "99999999}",
            "1x",
            "x1",
            ":",
        ] {
            let mut b = text.as_bytes().to_vec();
            b.resize(8, b'}');
            let n = text.bytes().take_while(u8::is_ascii_digit).count().min(8);
            let v = text[..n].parse().unwrap_or(0);
            assert_eq!(leading_digits(&b), (v, n), "{text:?}");
        }
        for byte in 0..=255u8 {
            let mut b = *b"12345678";
            b[3] = byte;
            let n = if byte.is_ascii_digit() { 8 } else { 3 };
            let expect = String::from_utf8_lossy(&b[..n]).parse().unwrap_or(0);
            assert_eq!(leading_digits(&b), (expect, n), "byte {byte:#x}");
        }
        assert_eq!(leading_digits(b"1234567"), (0, 0), "too short");
    }

    #[test]
    fn plain_integers_and_what_they_leave_to_number() {
        let pad = ",\"padding\":0}";
        for (text, value) in [
            ("0", J::U(0)),
            ("200", J::U(200)),
            ("1800000000000000", J::U(1_800_000_000_000_000)),
            ("12345678", J::U(12_345_678)),
            ("123456789012345678", J::U(123_456_789_012_345_678)),
            ("18446744073709551615", J::U(u64::MAX)),
            ("18446744073709551616", J::F(18_446_744_073_709_551_616.0)),
            ("2.5", J::F(2.5)),
            ("25e1", J::F(250.0)),
            ("-3", J::I(-3)),
        ] {
            let body = format!("{text}{pad}");
            let mut r = Reader::new(&body);
            assert_eq!(r.value(), Ok(value), "{text}");
            assert_eq!(r.pos, text.len(), "{text}");
        }
        for bad in ["01", "00", "0123456789", "1.", "1e"] {
            let body = format!("{bad}{pad}");
            assert!(Reader::new(&body).value().is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_what_json_forbids() {
        for bad in [
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "NaN",
            "Infinity",
            "[1,]",
            "{\"a\":1,}",
            "{,}",
            "[,1]",
            "\"a\u{1}\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "tru",
            "nul",
            "1 2",
            "{\"a\" 1}",
            "{1:2}",
            "\"abc",
            "[1",
            "{\"a\":1",
        ] {
            assert!(read(bad).is_err(), "{bad:?} must be rejected");
        }
        // Valid JSON past f64's range: read as infinite, left for the field to reject.
        assert_eq!(read("1e999"), Ok(J::F(f64::INFINITY)));
        assert_eq!(read("-1e999"), Ok(J::F(f64::NEG_INFINITY)));
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(read(&deep).is_err(), "nesting is bounded");
    }
}
