//! `Batch::to_json` is written by hand for speed; serde_json over the types' derived
//! `Serialize` is the reference it must match byte for byte, whatever the values. What it
//! writes for a batch the contract allows must also decode back to that very batch.

mod support;

use std::borrow::Cow;
use std::path::PathBuf;

use modelmon_contract::{
    Batch, Event, MAX_DURATION_US, MAX_METHOD_CHARS, MAX_ML_ENTRIES, MAX_ML_KEY_CHARS,
    MAX_MODEL_CHARS, MAX_TEXT_CHARS, Source, SourceKind, decode_batch,
};

use support::Rng;

const NOW: i64 = 1_780_000_000_000_000;

impl Rng {
    /// Any u64, of every length about as often: not mostly 19 and 20 digits.
    fn u64(&mut self) -> u64 {
        if self.chance(4) {
            return self.pick(&EDGE_U64);
        }
        let x = self.next();
        x >> (x % 64)
    }

    fn i64(&mut self) -> i64 {
        match self.below(4) {
            0 => self.pick(&[0, 1, -1, -9, -10, i64::MIN, i64::MIN + 1, i64::MAX]),
            1 => -((self.u64() >> 1) as i64),
            _ => (self.u64() >> 1) as i64,
        }
    }

    /// Any f64 but NaN and the infinities, weighted towards the cases formatters get wrong.
    fn finite_f64(&mut self) -> f64 {
        match self.below(6) {
            0 => self.pick(FLOATS),
            // What measures usually are: integers and short decimals.
            1 => self.u64() as f64,
            2 => (self.next() % 100_000_000) as f64 / 1000.0,
            3 => -((self.next() % 1_000_000) as f64) / 7.0,
            // Any bit pattern: subnormals, huge and tiny exponents, both signs.
            _ => loop {
                let f = f64::from_bits(self.next());
                if f.is_finite() {
                    break f;
                }
            },
        }
    }

    fn any_f64(&mut self) -> f64 {
        if self.chance(8) {
            self.pick(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN])
        } else {
            self.finite_f64()
        }
    }
}

const EDGE_U64: [u64; 16] = [
    0,
    1,
    9,
    10,
    99,
    100,
    9_999_999,
    10_000_000,
    99_999_999,
    100_000_000,
    9_999_999_999_999_999,
    10_000_000_000_000_000,
    1_000_000_000_000_000_000,
    10_000_000_000_000_000_000,
    u64::MAX - 1,
    u64::MAX,
];

const FLOATS: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    0.2,
    0.3,
    1.0 / 3.0,
    2.5,
    123.456,
    1e-7,
    1e-6,
    1e-5,
    0.000_123,
    1e15,
    1e16,
    1e17,
    9_007_199_254_740_993.0,
    1e20,
    1e21,
    1e22,
    1.5e300,
    f64::MAX,
    f64::MIN,
    f64::MIN_POSITIVE,
    f64::EPSILON,
    5e-324,
    -5e-324,
    2.225_073_858_507_201e-308,
    2900.0,
    3812.25,
    1_764_367_200_123_456.0,
];

/// Fragments of strings: what needs escaping in JSON, what must pass through as it is
/// (DEL, C1 controls, multi-byte characters, emoji), and ordinary wire text.
const ANY_PIECES: &[&str] = &[
    "a",
    "POST",
    "iris",
    "/v1/models/{name}/predict",
    "7f3c9a2b1d0e",
    "0123456789abcdef",
    " ",
    "/",
    "'",
    "<>&",
    "\"",
    "\\",
    "\\\"",
    "\n",
    "\t",
    "\r",
    "\u{8}",
    "\u{c}",
    "\u{0}",
    "\u{1}",
    "\u{b}",
    "\u{1f}",
    "\u{7f}",
    "\u{80}",
    "\u{9f}",
    "é",
    "日本語",
    "😀",
    "👩\u{200d}🔬",
    "\u{2028}",
    "\u{fffd}",
];

/// Strings with any characters at all, any length from empty.
fn any_text(rng: &mut Rng) -> String {
    let pieces = rng.below(8);
    (0..pieces).map(|_| rng.pick(ANY_PIECES)).collect()
}

/// Text the contract allows: 1..=`max` characters, no control characters (which leaves
/// quotes, backslashes, DEL-free non-ASCII and emoji in).
fn clean_text(rng: &mut Rng, max: usize) -> String {
    loop {
        let s: String = (0..=rng.below(8))
            .map(|_| rng.pick(ANY_PIECES))
            .filter(|p| !p.chars().any(char::is_control))
            .collect();
        let n = s.chars().count();
        if (1..=max).contains(&n) {
            return s;
        }
    }
}

fn ml_key(rng: &mut Rng) -> String {
    const KEY_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    if rng.chance(2) {
        return rng
            .pick(&["queue_us", "inference_us", "batch_size", "tokens_out"])
            .into();
    }
    let len = 1 + rng.below(MAX_ML_KEY_CHARS);
    (0..len).map(|_| char::from(rng.pick(KEY_CHARS))).collect()
}

fn opt<T>(rng: &mut Rng, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
    if rng.chance(2) { Some(f(rng)) } else { None }
}

fn any_kind(rng: &mut Rng) -> SourceKind {
    rng.pick(&[
        SourceKind::Asgi,
        SourceKind::Wsgi,
        SourceKind::Proxy,
        SourceKind::Demo,
        SourceKind::Other,
    ])
}

/// Any value the types can hold, whether the contract allows it or not.
fn any_event(rng: &mut Rng) -> Event<'static> {
    let ml_len = if rng.chance(2) { 0 } else { rng.below(20) };
    Event {
        ts: rng.i64(),
        model: any_text(rng).into(),
        version: opt(rng, |r| any_text(r).into()),
        instance: any_text(rng).into(),
        method: any_text(rng).into(),
        route: any_text(rng).into(),
        status: rng.next() as u16,
        duration_us: rng.u64(),
        ttfb_us: opt(rng, Rng::u64),
        req_bytes: opt(rng, Rng::u64),
        resp_bytes: opt(rng, Rng::u64),
        error: opt(rng, |r| any_text(r).into()),
        ml: (0..ml_len)
            .map(|_| {
                let key = if rng.chance(2) {
                    ml_key(rng)
                } else {
                    any_text(rng)
                };
                (key.into(), rng.any_f64())
            })
            .collect(),
    }
}

fn any_batch(rng: &mut Rng) -> Batch<'static> {
    Batch {
        v: rng.u64(),
        source: Source {
            kind: any_kind(rng),
            instance: any_text(rng).into(),
            pid: rng.next() as u32,
        },
        dropped: rng.u64(),
        events: (0..rng.below(6)).map(|_| any_event(rng)).collect(),
    }
}

/// An event the contract allows, with every optional field varied.
fn valid_event(rng: &mut Rng, model: &str) -> Event<'static> {
    let duration_us = if rng.chance(4) {
        rng.pick(&[0, 1, 99_999_999, 100_000_000, MAX_DURATION_US])
    } else {
        rng.u64() % (MAX_DURATION_US + 1)
    };
    let ml_len = if rng.chance(2) {
        0
    } else {
        1 + rng.below(MAX_ML_ENTRIES)
    };
    let ts_span = (24 * 3600 + 300) * 1_000_000;
    Event {
        ts: NOW - 24 * 3600 * 1_000_000 + (rng.next() % ts_span) as i64,
        model: model.to_owned().into(),
        version: opt(rng, |r| clean_text(r, MAX_TEXT_CHARS).into()),
        instance: clean_text(rng, MAX_TEXT_CHARS).into(),
        method: clean_text(rng, MAX_METHOD_CHARS).into(),
        route: clean_text(rng, MAX_TEXT_CHARS).into(),
        status: 100 + rng.below(500) as u16,
        duration_us,
        ttfb_us: opt(rng, |r| r.u64() % (duration_us + 1)),
        req_bytes: opt(rng, Rng::u64),
        resp_bytes: opt(rng, Rng::u64),
        error: opt(rng, |r| clean_text(r, MAX_TEXT_CHARS).into()),
        ml: (0..ml_len)
            .map(|_| (ml_key(rng).into(), rng.finite_f64()))
            .collect(),
    }
}

fn valid_batch(rng: &mut Rng) -> Batch<'static> {
    let model = clean_text(rng, MAX_MODEL_CHARS);
    Batch {
        v: 1,
        source: Source {
            kind: any_kind(rng),
            instance: clean_text(rng, MAX_TEXT_CHARS).into(),
            pid: rng.next() as u32,
        },
        dropped: rng.u64(),
        events: (0..=rng.below(6))
            .map(|_| valid_event(rng, &model))
            .collect(),
    }
}

/// The encoder's bytes are serde_json's; returns them.
fn assert_same_as_serde(batch: &Batch<'_>) -> Vec<u8> {
    let ours = batch.to_json();
    let reference = serde_json::to_vec(batch).expect("serde_json encodes any batch");
    if ours != reference {
        let at = ours
            .iter()
            .zip(&reference)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(reference.len()));
        panic!(
            "bodies differ from byte {at}:\n ours:  {}\n serde: {}",
            String::from_utf8_lossy(&ours[at.saturating_sub(40)..]),
            String::from_utf8_lossy(&reference[at.saturating_sub(40)..]),
        );
    }
    ours
}

/// Decodes `body` and checks it holds `batch`, `ml` values bit for bit (so `-0.0` stays
/// negative).
fn assert_round_trip(body: &[u8], batch: &Batch<'_>) {
    let d = decode_batch(body, None, NOW).unwrap_or_else(|e| panic!("{e}"));
    assert!(d.rejects.is_empty(), "{:?}", d.rejects);
    assert_eq!(d.source, batch.source);
    assert_eq!(d.dropped, batch.dropped);
    assert_eq!(d.events, batch.events);
    for (got, sent) in d.events.iter().zip(&batch.events) {
        let bits = |e: &Event<'_>| e.ml.iter().map(|(_, v)| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(got), bits(sent));
    }
}

#[test]
fn a_documented_body_is_written_exactly() {
    let batch = Batch {
        v: 1,
        source: Source {
            kind: SourceKind::Asgi,
            instance: "7f3c9a2b1d0e".into(),
            pid: 4242,
        },
        dropped: 0,
        events: vec![Event {
            ts: 1_764_367_200_123_456,
            model: "iris".into(),
            version: Some("1.4.0".into()),
            instance: "7f3c9a2b1d0e".into(),
            method: "POST".into(),
            route: "/v1/models/{name}/predict".into(),
            status: 200,
            duration_us: 3812,
            ttfb_us: Some(3790),
            req_bytes: Some(152),
            resp_bytes: Some(48),
            error: None,
            ml: vec![("inference_us".into(), 2900.0), ("batch_size".into(), 1.0)],
        }],
    };
    let expect = concat!(
        r#"{"v":1,"source":{"kind":"asgi","instance":"7f3c9a2b1d0e","pid":4242},"dropped":0,"#,
        r#""events":[{"ts":1764367200123456,"model":"iris","version":"1.4.0","#,
        r#""instance":"7f3c9a2b1d0e","method":"POST","route":"/v1/models/{name}/predict","#,
        r#""status":200,"duration_us":3812,"ttfb_us":3790,"req_bytes":152,"resp_bytes":48,"#,
        r#""ml":{"inference_us":2900.0,"batch_size":1.0}}]}"#
    );
    assert_eq!(String::from_utf8_lossy(&batch.to_json()), expect);
    assert_same_as_serde(&batch);
    let empty = Batch {
        events: Vec::new(),
        ..batch
    };
    assert_same_as_serde(&empty);
}

#[test]
fn any_batch_the_types_can_hold_is_written_as_serde_json_writes_it() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        assert_same_as_serde(&any_batch(&mut rng));
    }
}

#[test]
fn every_allowed_batch_is_written_as_serde_json_writes_it_and_decodes_back() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..20_000 {
        let batch = valid_batch(&mut rng);
        let body = assert_same_as_serde(&batch);
        assert_round_trip(&body, &batch);
    }
}

#[test]
fn every_ascii_character_and_some_wider_ones_at_every_position() {
    // Strings of every length the word-at-a-time check treats apart (empty, 1..3, 4..7,
    // whole words and a tail), with each character at each position.
    let mut chars: Vec<char> = (0..=0x7f).map(char::from).collect();
    chars.extend(['\u{80}', '\u{9f}', 'é', '\u{2028}', '😀']);
    let base = minimal_event();
    for len in 0..=25 {
        for at in 0..len.max(1) {
            let events = chars
                .iter()
                .map(|&c| {
                    let mut s: Vec<char> = std::iter::repeat_n('x', len).collect();
                    if len > 0 {
                        s[at] = c;
                    }
                    let s: String = s.into_iter().collect();
                    Event {
                        route: s.clone().into(),
                        error: Some(s.clone().into()),
                        ml: vec![(s.into(), 1.0)],
                        ..base.clone()
                    }
                })
                .collect();
            assert_same_as_serde(&small_batch(SourceKind::Proxy, events));
        }
    }
}

#[test]
fn events_that_share_strings_are_written_as_serde_json_writes_them() {
    // Publishers hand out the same interned strings event after event, and the encoder
    // copies what it wrote for the last event's model, version and instance when they
    // are the same strings: same address and length. Here they are slices of a few
    // buffers, so some share an address but not a length, and some are equal copies
    // elsewhere; long ones and ones to escape are among them.
    let long = "p".repeat(300);
    let pool: Vec<String> = vec![
        "model-a/\"x\"".into(),
        "7f3c9a2b1d0e".into(),
        "日本語😀".into(),
        "tab\there".into(),
        long,
    ];
    let mut rng = Rng(0x51_7CC1_B727_220A);
    let text = |rng: &mut Rng| -> Cow<'_, str> {
        let s = &pool[rng.below(pool.len())];
        let ends: Vec<usize> = (1..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
        let cut = &s[..ends[ends.len() - 1 - rng.below(2).min(ends.len() - 1)]];
        if rng.chance(5) {
            Cow::Owned(cut.to_owned())
        } else {
            Cow::Borrowed(cut)
        }
    };
    for _ in 0..3_000 {
        let mut events = Vec::new();
        for _ in 0..=rng.below(12) {
            let mut e = valid_event(&mut rng, "m");
            // Runs of the same three strings, broken now and then.
            if events.is_empty() || rng.chance(4) {
                e.model = text(&mut rng);
                e.version = if rng.chance(3) {
                    None
                } else {
                    Some(text(&mut rng))
                };
                e.instance = text(&mut rng);
            } else {
                let last: &Event<'_> = &events[events.len() - 1];
                e.model = last.model.clone();
                e.version = last.version.clone();
                e.instance = last.instance.clone();
            }
            events.push(e);
        }
        assert_same_as_serde(&small_batch(SourceKind::Asgi, events));
    }
}

#[test]
fn floats_and_integers_at_their_edges() {
    let mut events = Vec::new();
    for (i, &f) in FLOATS.iter().enumerate() {
        // The value, its negation and its neighbours in the bit order.
        let near = [f.to_bits().wrapping_sub(1), f.to_bits().wrapping_add(1)].map(f64::from_bits);
        for value in [f, -f, near[0], near[1]]
            .into_iter()
            .filter(|v| v.is_finite())
        {
            events.push(Event {
                duration_us: EDGE_U64[i % EDGE_U64.len()].min(MAX_DURATION_US),
                ttfb_us: Some(EDGE_U64[i % EDGE_U64.len()].min(MAX_DURATION_US) / 3),
                req_bytes: Some(u64::MAX),
                resp_bytes: Some(0),
                ml: vec![("v".into(), value)],
                ..minimal_event()
            });
        }
    }
    let mut batch = Batch {
        v: 1,
        source: Source {
            kind: SourceKind::Demo,
            instance: "h".into(),
            pid: u32::MAX,
        },
        dropped: u64::MAX,
        events,
    };
    let body = assert_same_as_serde(&batch);
    assert_round_trip(&body, &batch);
    // Beyond what the contract allows: only the bytes are compared.
    for (ts, status) in [(i64::MIN, 0), (i64::MAX, u16::MAX), (-1, 1), (0, 9)] {
        for (i, e) in batch.events.iter_mut().enumerate() {
            e.ts = ts;
            e.status = status;
            e.duration_us = EDGE_U64[i % EDGE_U64.len()];
            e.ttfb_us = Some(EDGE_U64[(i + 5) % EDGE_U64.len()]);
        }
        assert_same_as_serde(&batch);
    }
}

#[test]
fn non_finite_ml_values_are_written_as_null_as_serde_json_does() {
    // Publishers remove them before they encode; this pins what happens if one does not.
    let mut rng = Rng(7);
    let mut batch = valid_batch(&mut rng);
    batch.events[0].ml = vec![
        ("a".into(), f64::NAN),
        ("b".into(), f64::INFINITY),
        ("c".into(), f64::NEG_INFINITY),
        ("d".into(), 2.0),
    ];
    let body = assert_same_as_serde(&batch);
    let text = String::from_utf8(body.clone()).expect("UTF-8");
    assert!(
        text.contains(r#""ml":{"a":null,"b":null,"c":null,"d":2.0}"#),
        "{text}"
    );
    let d = decode_batch(&body, None, NOW).expect("a batch");
    assert_eq!(d.rejects.len(), 1);
    assert_eq!(d.rejects[0].reason.as_str(), "bad_ml");
}

#[test]
fn the_golden_vectors_are_written_as_serde_json_writes_them() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("tests/vectors exists") {
        let path = entry.expect("entry").path();
        // The events' vectors only: `resources/` holds the agents' (resource_vectors.rs).
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
        if v["body"].is_null() {
            continue;
        }
        let body = serde_json::to_vec(&v["body"]).expect("JSON");
        let now = v["now_us"].as_i64().expect("now_us");
        let Ok(d) = decode_batch(&body, None, now) else {
            continue;
        };
        let batch = Batch {
            v: 1,
            source: d.source,
            dropped: d.dropped,
            events: d.events,
        };
        assert_same_as_serde(&batch);
        checked += batch.events.len();
    }
    assert!(checked > 10, "only {checked} events in the vectors");
}

fn small_batch(kind: SourceKind, events: Vec<Event<'_>>) -> Batch<'_> {
    Batch {
        v: 1,
        source: Source {
            kind,
            instance: "h".into(),
            pid: 1,
        },
        dropped: 0,
        events,
    }
}

/// An event with every optional field empty, to vary one field at a time.
fn minimal_event() -> Event<'static> {
    Event {
        ts: NOW,
        model: "m".into(),
        version: None,
        instance: "i".into(),
        method: "GET".into(),
        route: "/".into(),
        status: 200,
        duration_us: 1,
        ttfb_us: None,
        req_bytes: None,
        resp_bytes: None,
        error: None,
        ml: Vec::new(),
    }
}
