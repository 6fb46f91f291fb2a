//! The golden vectors in `tests/vectors/` pin the contract for every implementation.
//! The Python package's tests decode the same files through this crate, linked into its
//! native core, so the package is held to the very decoder the monitor runs.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;

use modelmon_contract::decode_batch;
use serde_json::Value;
use support::{body, vectors};

#[test]
fn every_golden_vector_decodes_as_expected() {
    let vectors = vectors("");
    assert!(
        vectors.len() >= 25,
        "expected the golden vectors, found {}",
        vectors.len()
    );
    for (name, v) in vectors {
        let body = body(&v);
        let now = v["now_us"].as_i64().expect("now_us");
        let routing = v["routing_model"].as_str();
        let expect = &v["expect"];
        let got = decode_batch(&body, routing, now);
        if let Some(reason) = expect["batch_error"].as_str() {
            let err = got.expect_err(&name);
            assert_eq!(err.reason.as_str(), reason, "{name}: {}", err.detail);
            continue;
        }
        let d = got.unwrap_or_else(|e| panic!("{name}: unexpected batch error {e}"));
        assert_eq!(
            d.events.len() as u64,
            expect["accepted"].as_u64().expect("accepted"),
            "{name}: {:?}",
            d.rejects
        );
        assert_eq!(
            d.dropped,
            expect["dropped"].as_u64().expect("dropped"),
            "{name}"
        );
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        for r in &d.rejects {
            *by_reason.entry(r.reason.as_str().to_owned()).or_default() += 1;
            assert!(!r.detail.is_empty(), "{name}: a reject must say why");
        }
        let want: BTreeMap<String, u64> = expect["rejected"]
            .as_object()
            .expect("rejected map")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
            .collect();
        assert_eq!(by_reason, want, "{name}: {:?}", d.rejects);
    }
}

#[test]
fn accepted_events_round_trip_through_the_publisher_encoding() {
    for (name, v) in vectors("") {
        if !v["expect"]["batch_error"].is_null() || v["body"].is_null() {
            continue;
        }
        let body = serde_json::to_vec(&v["body"]).expect("serialisable");
        let now = v["now_us"].as_i64().expect("now_us");
        let first = decode_batch(&body, None, now).expect(&name);
        let again = modelmon_contract::Batch {
            v: 1,
            source: first.source.clone(),
            dropped: first.dropped,
            events: first.events.clone(),
        }
        .to_json();
        let second = decode_batch(&again, None, now).expect(&name);
        assert_eq!(first.events, second.events, "{name}");
    }
}

#[test]
fn reject_details_name_the_field() {
    let body = br#"{"v":1,"source":{"kind":"proxy","instance":"h:1","pid":1},"events":[
        {"ts":1000000,"model":"m","instance":"h","method":"GET","route":"/","status":"200","duration_us":5}]}"#;
    let d = decode_batch(body, None, 2_000_000).expect("a batch");
    assert_eq!(d.rejects.len(), 1);
    assert!(
        d.rejects[0].detail.contains("`status`"),
        "{}",
        d.rejects[0].detail
    );
    assert_eq!(d.rejects[0].model.as_deref(), Some("m"));
}

#[test]
fn a_body_over_one_mebibyte_is_refused_whole() {
    let mut body =
        br#"{"v":1,"source":{"kind":"proxy","instance":"h","pid":1},"events":[],"pad":""#.to_vec();
    body.resize(modelmon_contract::MAX_BODY_BYTES + 1, b'x');
    body.extend_from_slice(b"\"}");
    let err = decode_batch(&body, None, 0).expect_err("too large");
    assert_eq!(err.reason.as_str(), "body_too_large");
    assert!(err.detail.contains("1048576"), "{}", err.detail);
}

/// Excluded paths mean the same in every interceptor: the Python tests read this file too.
#[test]
fn excluded_paths_match_the_shared_vectors() {
    use modelmon_contract::{DEFAULT_EXCLUDES, Exclusions};

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/exclusions/paths.json");
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON");
    let defaults: Vec<&str> = v["defaults"]
        .as_array()
        .expect("defaults")
        .iter()
        .map(|d| d.as_str().expect("a path"))
        .collect();
    assert_eq!(
        defaults, DEFAULT_EXCLUDES,
        "the defaults are the shared ones"
    );
    let cases = v["cases"].as_array().expect("cases");
    assert!(cases.len() >= 15);
    for case in cases {
        let excludes: Vec<&str> = match &case["excludes"] {
            Value::String(s) if s == "defaults" => defaults.clone(),
            list => list
                .as_array()
                .expect("a list")
                .iter()
                .map(|d| d.as_str().expect("a path"))
                .collect(),
        };
        let path = case["path"].as_str().expect("path");
        assert_eq!(
            Exclusions::new(&excludes).matches(path),
            case["excluded"].as_bool().expect("excluded"),
            "{case}"
        );
    }
}
