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

/// Bytes that end the plain run of a string: the quote, the backslash, control characters.
static STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

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
    S(Cow<'a, str>),
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

    fn err<T>(&self, what: &'static str) -> Result<T> {
        Err(SyntaxError {
            pos: self.pos,
            what,
        })
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.pos) {
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
        match self.peek() {
            Some(b'}') => {
                self.pos += 1;
                return Ok(None);
            }
            Some(b',') if !*first => self.pos += 1,
            _ if !*first => return self.err("expected `,` or `}`"),
            _ => {}
        }
        *first = false;
        if self.peek() != Some(b'"') {
            return self.err("expected a string key");
        }
        let key = self.string()?;
        self.eat(b':', "expected `:`")?;
        Ok(Some(key))
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
        match self.peek() {
            Some(b'"') => self.string().map(J::S),
            Some(b'{' | b'[') => {
                let obj = self.b[self.pos] == b'{';
                self.skip(0)?;
                Ok(if obj { J::Obj } else { J::Arr })
            }
            Some(b't') => self.literal("true", J::Bool(true)),
            Some(b'f') => self.literal("false", J::Bool(false)),
            Some(b'n') => self.literal("null", J::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.err("expected a JSON value"),
            None => self.err("unexpected end of input"),
        }
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
    #[inline]
    fn string(&mut self) -> Result<Cow<'a, str>> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let rest = &self.b[start..];
        // Strings on the wire are short (5 to 40 bytes): a table-driven byte loop beats
        // a SIMD search, whose set-up costs more than the scan.
        let found = rest.iter().position(|&c| STOP[usize::from(c)]);
        match found {
            Some(n) if rest[n] == b'"' => {
                self.pos = start + n + 1;
                // Bytes up to an ASCII quote in valid UTF-8 end on a char boundary.
                Ok(Cow::Borrowed(&self.text[start..start + n]))
            }
            Some(n) if rest[n] == b'\\' => {
                self.pos = start + n;
                let mut owned = String::with_capacity(n + 16);
                owned.push_str(&self.text[start..start + n]);
                self.escaped(owned).map(Cow::Owned)
            }
            Some(n) => {
                self.pos = start + n;
                self.err("control character in a string")
            }
            None => {
                self.pos = self.b.len();
                self.err("unterminated string")
            }
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
                    let rest = &self.b[self.pos..];
                    let n = rest
                        .iter()
                        .position(|&c| STOP[usize::from(c)])
                        .unwrap_or(rest.len());
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

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
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
        if self.b.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return self.err("invalid number");
            }
            float = true;
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
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(J::F(f)),
            _ => {
                self.pos = start;
                self.err("number out of range")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Ok(J::S("a\"b\u{e9}\u{1F600}".into()))
        );
        assert_eq!(read(r#"{"a":[1,{"b":null}]}"#), Ok(J::Obj));
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
            "1e999",
        ] {
            assert!(read(bad).is_err(), "{bad:?} must be rejected");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(read(&deep).is_err(), "nesting is bounded");
    }
}
