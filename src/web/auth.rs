//! The token check: `Authorization: Bearer`, or `?token=` once, which sets a cookie so
//! a browser keeps working after the token leaves its address bar.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;

const COOKIE: &str = "modelmon_token";

pub(crate) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = state.token.as_deref() else {
        return next.run(req).await;
    };
    if from_header(req.headers(), token) || from_cookie(req.headers(), token) {
        return next.run(req).await;
    }
    if from_query(req.uri().query(), token) {
        let mut resp = next.run(req).await;
        if let Ok(v) = HeaderValue::from_str(&cookie(token)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        return resp;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "a valid token is required: `Authorization: Bearer TOKEN` or ?token=TOKEN\n",
    )
        .into_response()
}

/// The cookie `?token=` sets. HttpOnly: the dashboard's scripts never need to read it.
/// SameSite=Lax, not Strict: an alert's link opened from chat or webmail is a cross-site
/// navigation, which Strict would answer with 401; Lax still keeps the cookie off
/// cross-site fetches, form POSTs and WebSocket handshakes.
/// No Path: the browser keeps it for the directory of the address it opened, `/` here,
/// `/modelmon` behind a proxy serving the dashboard under that prefix (which this server
/// never sees), so it reaches the dashboard's API and WebSocket, not the host's other paths.
fn cookie(token: &str) -> String {
    format!("{COOKIE}={token}; HttpOnly; SameSite=Lax")
}

fn from_header(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.strip_prefix("Bearer "))
        .any(|t| same(t.trim(), token))
}

fn from_cookie(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .any(|(k, v)| k == COOKIE && same(v, token))
}

fn from_query(query: Option<&str>, token: &str) -> bool {
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == "token" && same(&percent_decode(v), token))
}

/// Compares without stopping at the first difference, so response times do not tell
/// an attacker how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for (i, &x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// `%XX` only: a `+` stays a `+`, as in the base64 a token is often made of (a browser
/// sends what was typed in its address bar as it is, not form-encoded).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match b[i] {
            b'%' if i + 2 < b.len() => {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{cookie, from_query, percent_decode, same};

    #[test]
    fn tokens_compare_exactly() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }

    #[test]
    fn the_token_cookie_names_no_path_so_a_proxy_prefix_keeps_it() {
        let c = cookie("s3");
        assert!(c.starts_with("modelmon_token=s3; "), "{c}");
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
        assert!(!c.to_ascii_lowercase().contains("path="), "{c}");
    }

    #[test]
    fn the_query_token_is_percent_decoded() {
        assert_eq!(percent_decode("a%2Fb+c%"), "a/b+c%");
        assert!(from_query(Some("x=1&token=s%3Dx"), "s=x"));
        assert!(!from_query(Some("tokens=s"), "s"));
        assert!(!from_query(None, "s"));
    }

    #[test]
    fn a_plus_in_a_query_token_is_a_plus() {
        assert!(from_query(Some("token=a+b"), "a+b"));
        assert!(from_query(Some("token=a%2Bb"), "a+b"));
        assert!(!from_query(Some("token=a+b"), "a b"));
    }
}
