//! Rules at their edges that the golden vectors do not pin: numbers that are almost
//! integers, rounding, control characters past ASCII, text the reader refuses wherever
//! it sits, nesting at the reader's limit. The Python package's tests once held a Python
//! twin of the decoder to these; the package now calls this decoder, so they live here.

use modelmon_contract::decode_batch;

const NOW: i64 = 1_780_000_000_000_000;

/// One event as JSON text: the required fields of a valid event, each replaced by the
/// override of the same name, then the other overrides. Values are raw JSON text, so a
/// test can write numbers and escapes no Rust type holds (`2^64`, `"\ud800"`).
fn event(overrides: &[(&str, &str)]) -> String {
    let ts = (NOW - 1_000).to_string();
    let base = [
        ("ts", ts.as_str()),
        ("model", r#""iris""#),
        ("instance", r#""h""#),
        ("method", r#""GET""#),
        ("route", r#""/r""#),
        ("status", "200"),
        ("duration_us", "10"),
    ];
    let value_of = |key: &str, default: &str| {
        overrides
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(default.to_owned(), |(_, v)| (*v).to_owned())
    };
    let mut fields: Vec<String> = base
        .iter()
        .map(|(k, v)| format!(r#""{k}":{}"#, value_of(k, v)))
        .collect();
    fields.extend(
        overrides
            .iter()
            .filter(|(k, _)| !base.iter().any(|(b, _)| b == k))
            .map(|(k, v)| format!(r#""{k}":{v}"#)),
    );
    format!("{{{}}}", fields.join(","))
}

/// Fields overridden in an event, and the reason it is rejected for (`None`: accepted).
type EventCase<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);

fn batch(event: &str) -> Vec<u8> {
    format!(r#"{{"v":1,"source":{{"kind":"asgi","instance":"h","pid":1}},"dropped":0,"events":[{event}]}}"#)
        .into_bytes()
}

/// The one reason the single event of `body` was rejected for, or `None` when accepted.
fn reason_of(body: &[u8]) -> Option<&'static str> {
    let d = decode_batch(body, Some("iris"), NOW).expect("a batch");
    assert_eq!(d.events.len() + d.rejects.len(), 1);
    d.rejects.first().map(|r| r.reason.as_str())
}

fn batch_error(body: &[u8]) -> Option<&'static str> {
    decode_batch(body, Some("iris"), NOW)
        .err()
        .map(|e| e.reason.as_str())
}

#[test]
fn event_rules_at_their_edges() {
    let cases: &[EventCase] = &[
        (&[("ml", r#"{"a":1,"a ":2}"#)], Some("bad_ml")),
        (&[("status", "true")], Some("wrong_type")),
        // 2^64 is read as a float, too large to be an exact integer.
        (&[("ts", "18446744073709551616")], Some("wrong_type")),
        // 1.4 rounds to 1, below the first byte.
        (
            &[("duration_us", "1.4"), ("ttfb_us", "2")],
            Some("bad_duration"),
        ),
        // 2.5 rounds half away from zero, to 3.
        (&[("duration_us", "2.5"), ("ttfb_us", "3")], None),
        (&[("method", r#""XXXXXXXXXXXXXXXXX""#)], Some("bad_text")),
        // U+0085 is a control character (C1) outside ASCII.
        (&[("route", r#""/caf\u0085""#)], Some("bad_text")),
        (&[("req_bytes", "1.5")], Some("wrong_type")),
    ];
    for (overrides, want) in cases {
        let body = batch(&event(overrides));
        assert_eq!(
            reason_of(&body),
            *want,
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn every_ml_pair_counts_even_a_repeated_key() {
    // 17 pairs over 8 distinct keys: one past the limit of 16 entries.
    let pairs: Vec<String> = (0..17).map(|i| format!(r#""k{}":{i}"#, i % 8)).collect();
    let ml = format!("{{{}}}", pairs.join(","));
    assert_eq!(reason_of(&batch(&event(&[("ml", &ml)]))), Some("bad_ml"));
}

#[test]
fn batch_rules_at_their_edges() {
    let cases: &[(&[u8], &str)] = &[
        (
            br#"{"v":1,"source":{"kind":"asgi","instance":"h"},"events":[{"route":"\ud800"}]}"#,
            "not_json",
        ),
        (
            br#"{"v":1.0,"source":{"kind":"a","instance":"h"},"events":[]}"#,
            "bad_version",
        ),
        (
            br#"{"v":1,"source":{"kind":"a","instance":"h"},"dropped":-1,"events":[]}"#,
            "not_a_batch",
        ),
        (
            br#"{"v":1,"source":{"kind":"a","instance":"h","pid":1.5},"events":[]}"#,
            "not_a_batch",
        ),
        (
            br#"{"v":1,"source":{"kind":"a","instance":"h"},"events":[],"dropped":1e999}"#,
            "not_a_batch",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(
            batch_error(body),
            Some(*want),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn what_the_reader_refuses_anywhere_in_the_body() {
    let deep = format!(r#","x":{}{}"#, "[".repeat(130), "]".repeat(130));
    let extras: [&[u8]; 4] = [
        br#","x":"\ud800""#, // a lone surrogate, even in a field nobody reads
        br#","x\udc00":1"#,
        b",\"x\":\"\xff\"", // not UTF-8
        deep.as_bytes(),    // nested deeper than the reader skips
    ];
    for extra in extras {
        let mut body = br#"{"v":1,"source":{"kind":"asgi","instance":"h"},"events":[]"#.to_vec();
        body.extend_from_slice(extra);
        body.push(b'}');
        assert_eq!(
            batch_error(&body),
            Some("not_json"),
            "{}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn nesting_up_to_the_readers_limit_is_fine() {
    let body = format!(
        r#"{{"v":1,"source":{{"kind":"asgi","instance":"h"}},"events":[],"x":{}{}}}"#,
        "[".repeat(129),
        "]".repeat(129)
    );
    assert_eq!(batch_error(body.as_bytes()), None);
}

#[test]
fn minus_zero_is_an_integer_zero() {
    let body = br#"{"v":1,"source":{"kind":"asgi","instance":"h"},"events":[],"dropped":-0}"#;
    let d = decode_batch(body, None, NOW).expect("a batch");
    assert_eq!(d.dropped, 0);
}

#[test]
fn the_first_bad_ml_entry_is_the_one_named_its_key_before_its_value() {
    let detail = |ml: &str| {
        let body = batch(&event(&[("ml", ml)]));
        let d = decode_batch(&body, Some("iris"), NOW).expect("a batch");
        let r = d.rejects.first().unwrap_or_else(|| panic!("{ml} accepted"));
        assert_eq!(r.reason.as_str(), "bad_ml");
        r.detail.clone()
    };
    for (ml, named) in [
        (r#"{"a":"x","B":1}"#, r#"value of "a" is the string "x""#),
        (r#"{"a":1,"B":"x"}"#, r#"key "B""#),
        (r#"{"B":"x"}"#, r#"key "B""#),
        (r#"{"ok":1,"a":null,"C":2}"#, r#"value of "a" is null"#),
        (r#"{"ok":1,"\u0041":2}"#, r#"key "A""#),
    ] {
        let d = detail(ml);
        assert!(d.contains(named), "{ml}: {d}");
    }
    // A valid key written with an escape is read in full, and kept.
    let body = batch(&event(&[("ml", r#"{"a\u0062":2,"c":3.5}"#)]));
    let d = decode_batch(&body, Some("iris"), NOW).expect("a batch");
    assert_eq!(d.events[0].ml, vec![("ab".into(), 2.0), ("c".into(), 3.5)]);
}

#[test]
fn a_ts_at_the_end_of_the_integers_is_rejected_with_a_readable_age() {
    let cases = [
        ("-9223372036854775808", "ts_too_old"),
        ("9223372036854775807", "ts_in_future"),
    ];
    for (ts, want) in cases {
        let body = batch(&event(&[("ts", ts)]));
        let d = decode_batch(&body, Some("iris"), NOW).expect("a batch");
        let r = d
            .rejects
            .first()
            .unwrap_or_else(|| panic!("ts {ts} accepted"));
        assert_eq!(r.reason.as_str(), want);
        assert!(!r.detail.contains('-'), "ts {ts}: {}", r.detail);
    }
}

#[test]
fn a_model_name_is_bounded_in_bytes_so_its_routing_key_fits_amqp() {
    // `events.<model>` is an AMQP short string (255 bytes): 248 bytes of name at most,
    // whatever its character count.
    for (model, ok) in [
        ("é".repeat(124), true),
        ("é".repeat(125), false),
        ("模".repeat(82), true),
        ("模".repeat(83), false),
        ("m".repeat(128), true),
    ] {
        assert_eq!(
            modelmon_contract::is_valid_model_name(&model),
            ok,
            "{model}"
        );
        assert!(!ok || modelmon_contract::routing_key(&model).len() <= 255);
        let body = batch(&event(&[("model", &format!("{model:?}"))]));
        let d = decode_batch(&body, None, NOW).expect("a batch");
        let reason = d.rejects.first().map(|r| r.reason.as_str());
        assert_eq!(reason, (!ok).then_some("bad_model"), "{model}");
    }
}
