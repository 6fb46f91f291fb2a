//! Header rewriting between client, proxy and upstream (RFC 9110 section 7.6.1).

use std::net::IpAddr;

use hyper::HeaderMap;
use hyper::header::{
    CONNECTION, CONTENT_ENCODING, HeaderName, HeaderValue, TE, TRANSFER_ENCODING, UPGRADE,
};

/// Headers that describe one hop, never the message: each side sets its own.
const HOP_BY_HOP: [&str; 4] = [
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Removes hop-by-hop headers, including the ones the `Connection` header names.
/// `Trailer` is not one (RFC 9110 section 6.6.2): it names the trailer fields to come,
/// and the server writes only the ones it names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Collected first: the names borrow from the map we are about to edit.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [CONNECTION, TE, TRANSFER_ENCODING, UPGRADE] {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Whether the client accepts trailer fields (`TE: trailers`). `TE` is hop-by-hop, but
/// this part of it is the client's to say: an upstream sends trailers only when asked.
pub fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
}

/// Asks the upstream for trailer fields, with the `TE` connection option that must go
/// with `TE` (RFC 9110 section 10.1.4).
pub fn ask_for_trailers(headers: &mut HeaderMap) {
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.append(CONNECTION, HeaderValue::from_static("te"));
}

/// Appends the client's address to `X-Forwarded-For`, keeping what earlier proxies wrote.
pub fn append_forwarded_for(headers: &mut HeaderMap, client: IpAddr) {
    let client = client.to_string();
    let value = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {client}"),
        _ => client,
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        // Several header lines would be ambiguous; one combined line is not.
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
}

/// Whether the body is encoded (gzip, br, …): any `Content-Encoding` but `identity`.
pub fn is_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(CONTENT_ENCODING).iter().any(|v| {
        // A value that is not text cannot be known to be identity.
        v.to_str().map_or(true, |v| {
            v.split(',')
                .map(str::trim)
                .any(|t| !t.is_empty() && !t.eq_ignore_ascii_case("identity"))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            CONNECTION,
            HeaderValue::from_static("keep-alive, X-Secret-Hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        h.insert(TE, HeaderValue::from_static("trailers"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("trailer", HeaderValue::from_static("grpc-status"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
        assert!(h.contains_key("content-type"));
        assert!(h.contains_key("trailer"), "end to end");
    }

    #[test]
    fn trailers_are_accepted_only_when_te_says_so() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(TE, HeaderValue::from_static(v));
            accepts_trailers(&h)
        };
        assert!(with("trailers"));
        assert!(with("gzip;q=0.5, Trailers"));
        assert!(!with("gzip"));
        assert!(!accepts_trailers(&HeaderMap::new()));
    }

    #[test]
    fn only_a_coding_other_than_identity_is_encoded() {
        let with = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(CONTENT_ENCODING, HeaderValue::from_static(v));
            }
            is_encoded(&h)
        };
        assert!(!with(&[]));
        assert!(!with(&["identity"]));
        assert!(!with(&["Identity", ""]));
        assert!(with(&["gzip"]));
        assert!(with(&["identity, br"]));
        assert!(with(&["identity", "zstd"]));
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, "10.0.0.1".parse().expect("ip"));
        append_forwarded_for(&mut h, "127.0.0.1".parse().expect("ip"));
        assert_eq!(
            h.get("x-forwarded-for").map(HeaderValue::as_bytes),
            Some(&b"10.0.0.1, 127.0.0.1"[..])
        );
    }
}
