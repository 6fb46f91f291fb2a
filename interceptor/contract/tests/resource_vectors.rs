//! The golden vectors of resource samples, `tests/vectors/resources/`, pin the contract of
//! agents' messages as `tests/vectors/*.json` pin the event batches' (`vectors.rs`).

mod support;

use modelmon_contract::{DecodedResources, ResourcesError, decode_resources};
use serde_json::Value;
use support::{body, vectors};

fn decode(v: &Value) -> Result<DecodedResources, ResourcesError> {
    let body = body(v);
    let now = v["now_us"].as_i64().expect("now_us");
    decode_resources(&body, v["routing_host"].as_str(), now)
}

#[test]
fn every_resources_vector_decodes_as_expected() {
    let vectors = vectors("resources");
    assert!(
        vectors.len() >= 10,
        "expected the resources vectors, found {}",
        vectors.len()
    );
    for (name, v) in vectors {
        let expect = &v["expect"];
        let got = decode(&v);
        if let Some(reason) = expect["error"].as_str() {
            let err = got.expect_err(&name);
            assert_eq!(err.reason.as_str(), reason, "{name}: {}", err.detail);
            assert!(!err.detail.is_empty(), "{name}: an error must say why");
            continue;
        }
        let d = got.unwrap_or_else(|e| panic!("{name}: unexpected error {e}"));
        let count = |key: &str| expect[key].as_u64().expect(key) as usize;
        assert_eq!(
            d.resources.containers.len(),
            count("containers"),
            "{name}: {:?}",
            d.rejects
        );
        assert_eq!(
            d.resources.events.len(),
            count("events"),
            "{name}: {:?}",
            d.rejects
        );
        let got: Vec<(&str, u64, &str)> = d
            .rejects
            .iter()
            .map(|r| (r.kind.as_str(), r.index as u64, r.reason.as_str()))
            .collect();
        let want: Vec<(&str, u64, &str)> = expect["rejects"]
            .as_array()
            .expect("rejects")
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().expect("kind"),
                    r["index"].as_u64().expect("index"),
                    r["reason"].as_str().expect("reason"),
                )
            })
            .collect();
        assert_eq!(got, want, "{name}: {:?}", d.rejects);
        for r in &d.rejects {
            assert!(r.detail.contains('`'), "{name}: {r:?} must name a field");
        }
    }
}

/// What the monitor keeps of a vector is what an agent would publish: encoding it and
/// decoding again gives the same message, and nothing to reject.
#[test]
fn accepted_messages_round_trip_through_the_agent_encoding() {
    let mut checked = 0;
    for (name, v) in vectors("resources") {
        let Ok(first) = decode(&v) else { continue };
        let now = v["now_us"].as_i64().expect("now_us");
        let again = decode_resources(&first.resources.to_json(), None, now).expect(&name);
        assert!(again.rejects.is_empty(), "{name}: {:?}", again.rejects);
        assert_eq!(again.resources, first.resources, "{name}");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} accepted vectors");
}
