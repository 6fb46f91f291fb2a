//! The dashboard, built by vite from web/ and embedded: `cargo build` needs no Node.
//! Each file is embedded plain and gzipped (web/scripts/stamp.mjs precompresses).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The hash of web/'s sources the embedded build was made from; the ETag of every
/// asset, and what the staleness test compares against.
pub const SOURCE_HASH: &str = include_str!("../../web/dist/source-hash.txt");

struct Asset {
    content_type: &'static str,
    plain: &'static [u8],
    gzip: &'static [u8],
}

const INDEX: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    plain: include_bytes!("../../web/dist/index.html"),
    gzip: include_bytes!("../../web/dist/index.html.gz"),
};
const APP_JS: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    plain: include_bytes!("../../web/dist/assets/app.js"),
    gzip: include_bytes!("../../web/dist/assets/app.js.gz"),
};
const APP_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    plain: include_bytes!("../../web/dist/assets/app.css"),
    gzip: include_bytes!("../../web/dist/assets/app.css.gz"),
};

pub(crate) async fn index(headers: HeaderMap) -> Response {
    let mut resp = serve(&INDEX, &headers);
    // The page may have been opened with `?token=`: no request it makes (nor a link
    // followed from it) may carry that address in its Referer.
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

pub(crate) async fn app_js(headers: HeaderMap) -> Response {
    serve(&APP_JS, &headers)
}

pub(crate) async fn app_css(headers: HeaderMap) -> Response {
    serve(&APP_CSS, &headers)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| e.trim().split(';').next() == Some("gzip"))
}

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", SOURCE_HASH.trim());
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag)
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let gzip = accepts_gzip(headers);
    let body = if gzip { asset.gzip } else { asset.plain };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // Revalidate every time: fixed file names, so the ETag is what busts caches.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}
