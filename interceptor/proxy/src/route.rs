//! Turning a raw request path into a route template with bounded cardinality.
//!
//! A monitor keeps one series per (model, route): raw paths with ids in them would
//! create one series per id. Configured patterns name routes exactly; anything else is
//! collapsed (id-like segments become `{id}`, depth is capped) and the number of
//! distinct collapsed routes is capped, the overflow going to [`OTHER_ROUTE`]. A
//! collapsed route takes a place under the cap only once the upstream has answered it
//! with something other than 404: the paths a scanner probes never crowd out the API's,
//! whether the upstream answers them 404 or not at all.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use crate::ConfigError;

/// Where routes go once the cap on distinct collapsed routes is reached.
pub const OTHER_ROUTE: &str = "(other)";
/// The route of a path no pattern and no earlier answer made a route, when the upstream
/// answered it 404 (as the Python middleware names a request no route matched) or not at
/// all: its name is unproven either way.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";
/// Segments kept from an unmatched path; deeper paths end in `/{rest}`.
const MAX_SEGMENTS: usize = 4;
/// A segment longer than this is a token, not a name.
const MAX_SEGMENT_CHARS: usize = 48;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// A path pattern such as `/v1/models/{name}/predict`.
#[derive(Debug, Clone)]
pub struct RoutePattern {
    template: &'static str,
    segments: Vec<Segment>,
}

impl RoutePattern {
    pub fn parse(pattern: &str) -> Result<RoutePattern, ConfigError> {
        let bad = |why: &str| ConfigError::BadRoute {
            pattern: pattern.to_owned(),
            why: why.to_owned(),
        };
        if !pattern.starts_with('/') {
            return Err(bad("it must start with '/'"));
        }
        if pattern.len() > modelmon_contract::MAX_TEXT_CHARS
            || pattern.chars().any(char::is_control)
        {
            return Err(bad(
                "it must be at most 256 characters, none of them control characters",
            ));
        }
        let mut segments = Vec::new();
        let mut params = HashSet::new();
        for seg in split(pattern) {
            if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(bad("a parameter is `{name}` with letters, digits or '_'"));
                }
                if !params.insert(name) {
                    return Err(bad("a parameter name is used twice"));
                }
                segments.push(Segment::Param(name.to_owned()));
            } else if seg.contains(['{', '}']) {
                return Err(bad("a parameter must be a whole segment, like /{id}/"));
            } else {
                segments.push(Segment::Literal(seg.to_owned()));
            }
        }
        // Templates live as long as the process and are shared by every event.
        let template: &'static str = Box::leak(normalise(pattern).into_boxed_str());
        Ok(RoutePattern { template, segments })
    }

    pub fn template(&self) -> &'static str {
        self.template
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Param(p) if p == name))
    }

    pub fn matches(&self, path: &str) -> bool {
        self.capture(path, "").is_some()
    }

    /// Whether `path` matches, and then the value of parameter `name` (empty if absent).
    pub fn capture<'p>(&self, path: &'p str, name: &str) -> Option<&'p str> {
        let mut found = "";
        let mut parts = split(path);
        for seg in &self.segments {
            let part = parts.next()?;
            match seg {
                Segment::Literal(l) if l != part => return None,
                Segment::Literal(_) => {}
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(p) => {
                    if p == name {
                        found = part;
                    }
                }
            }
        }
        parts.next().is_none().then_some(found)
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    let trimmed = path.trim_start_matches('/').trim_end_matches('/');
    trimmed.split('/').filter(move |_| !trimmed.is_empty())
}

fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for seg in split(path) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// Digits, UUIDs, hex strings and long mixed tokens are ids, not route names.
pub fn is_id_like(seg: &str) -> bool {
    let has_digit = seg.bytes().any(|b| b.is_ascii_digit());
    let all_hex = seg.bytes().all(|b| b.is_ascii_hexdigit());
    let is_uuid = seg.len() == 36
        && seg.bytes().enumerate().all(|(i, b)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                b == b'-'
            } else {
                b.is_ascii_hexdigit()
            }
        });
    let has_alpha = seg.bytes().any(|b| b.is_ascii_alphabetic());
    (!seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()))
        || is_uuid
        || (seg.len() >= 8 && all_hex && has_digit)
        || (seg.len() >= 16 && has_digit && has_alpha)
        || seg.len() > MAX_SEGMENT_CHARS
        || seg.contains('%')
}

/// A path with id-like segments replaced and depth capped.
pub fn collapse(path: &str) -> String {
    let mut out = String::new();
    for (i, seg) in split(path).enumerate() {
        if i == MAX_SEGMENTS {
            out.push_str("/{rest}");
            break;
        }
        out.push('/');
        out.push_str(if is_id_like(seg) { "{id}" } else { seg });
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// A set of strings capped in size, handing out `'static` copies so that events can
/// borrow them without allocating. At most `cap` strings are ever leaked.
#[derive(Debug)]
pub struct Interner {
    cap: usize,
    seen: RwLock<HashMap<String, &'static str>>,
}

impl Interner {
    pub fn new(cap: usize) -> Self {
        Interner {
            cap,
            seen: RwLock::new(HashMap::new()),
        }
    }

    /// The interned copy of `s` if it is there already; never adds it.
    pub fn known(&self, s: &str) -> Option<&'static str> {
        self.seen
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(s)
            .copied()
    }

    /// A name its request's answer `proven` (see [`crate::naming::proves_names`]) is
    /// interned up to the cap, like [`Interner::get`]; an unproven one only if known.
    pub fn admit(&self, s: &str, proven: bool) -> Option<&'static str> {
        if proven { self.get(s) } else { self.known(s) }
    }

    /// The interned copy of `s`, or `None` when `s` is new and the cap is reached.
    pub fn get(&self, s: &str) -> Option<&'static str> {
        {
            let seen = self
                .seen
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(v) = seen.get(s) {
                return Some(v);
            }
            if seen.len() >= self.cap {
                return None;
            }
        }
        let mut seen = self
            .seen
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = seen.get(s) {
            return Some(v);
        }
        if seen.len() >= self.cap {
            return None;
        }
        let v: &'static str = Box::leak(s.to_owned().into_boxed_str());
        seen.insert(s.to_owned(), v);
        Some(v)
    }
}

/// What the proxy records for a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// Proxied but not recorded (health checks, metrics scrapes).
    Excluded,
    Template(&'static str),
    /// A collapsed route seen for the first time: it is named once the upstream has
    /// answered, by [`Router::admit`].
    New(String),
}

/// Patterns, exclusions and the cap on collapsed routes.
#[derive(Debug)]
pub struct Router {
    patterns: Vec<RoutePattern>,
    excluded: modelmon_contract::Exclusions,
    collapsed: Interner,
}

impl Router {
    pub fn new(patterns: Vec<RoutePattern>, excluded: &[String], max_routes: usize) -> Self {
        Router {
            patterns,
            excluded: modelmon_contract::Exclusions::new(excluded),
            collapsed: Interner::new(max_routes),
        }
    }

    pub fn route(&self, path: &str) -> Routed {
        if self.excluded.matches(path) {
            return Routed::Excluded;
        }
        if let Some(p) = self.patterns.iter().find(|p| p.matches(path)) {
            return Routed::Template(p.template());
        }
        let collapsed = collapse(path);
        match self.collapsed.known(&collapsed) {
            Some(t) => Routed::Template(t),
            None => Routed::New(collapsed),
        }
    }

    /// The route of a [`Routed::New`]: kept (up to the cap) when its answer `proven` it
    /// (see [`crate::naming::proves_names`]), else `<unmatched>` taking no place under the
    /// cap, unless another request has proven it meanwhile.
    pub fn admit(&self, collapsed: &str, proven: bool) -> &'static str {
        match self.collapsed.admit(collapsed, proven) {
            Some(route) => route,
            None if proven => OTHER_ROUTE,
            None => UNMATCHED_ROUTE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments_and_capture_params() {
        let p = RoutePattern::parse("/v2/models/{model}/infer").expect("valid");
        assert_eq!(
            p.capture("/v2/models/resnet/infer", "model"),
            Some("resnet")
        );
        assert_eq!(
            p.capture("/v2/models/resnet/infer/", "model"),
            Some("resnet")
        );
        assert_eq!(p.capture("/v2/models/resnet", "model"), None);
        assert_eq!(p.capture("/v2/models/resnet/infer/x", "model"), None);
        assert_eq!(p.capture("/v2/models//infer", "model"), None);
        assert!(p.has_param("model"));
        assert!(RoutePattern::parse("v1/x").is_err());
        assert!(RoutePattern::parse("/v1/x{id}").is_err());
        assert!(RoutePattern::parse("/v1/{a}/{a}").is_err());
        assert_eq!(RoutePattern::parse("/").expect("root").template(), "/");
        assert!(RoutePattern::parse("/").expect("root").matches("/"));
    }

    #[test]
    fn unmatched_paths_lose_their_ids() {
        assert_eq!(collapse("/users/12345/orders"), "/users/{id}/orders");
        assert_eq!(
            collapse("/jobs/3f2b8c1e-0c55-4a8e-9b1f-1c2d3e4f5a6b"),
            "/jobs/{id}"
        );
        assert_eq!(collapse("/blobs/deadbeef42"), "/blobs/{id}");
        assert_eq!(collapse("/t/aZ3kLm9Qx2Rt7Yp1"), "/t/{id}");
        assert_eq!(collapse("/predict"), "/predict");
        assert_eq!(collapse("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(collapse("/a/b/c/d/e/f"), "/a/b/c/d/{rest}");
        assert_eq!(collapse("/"), "/");
        assert_eq!(collapse("/files/na%20me"), "/files/{id}");
    }

    #[test]
    fn distinct_collapsed_routes_are_capped() {
        let r = Router::new(
            vec![RoutePattern::parse("/v1/models/{name}/predict").expect("valid")],
            &["/health".to_owned()],
            2,
        );
        // What a request to `path` is recorded under when answered with `status`.
        let answered = |path: &str, status: u16| match r.route(path) {
            Routed::Excluded => None,
            Routed::Template(t) => Some(t),
            Routed::New(c) => Some(r.admit(&c, crate::naming::proves_names(Some(status)))),
        };
        assert_eq!(r.route("/health"), Routed::Excluded);
        assert_eq!(
            r.route("/v1/models/x/predict"),
            Routed::Template("/v1/models/{name}/predict")
        );
        assert_eq!(r.route("/a/1"), Routed::New("/a/{id}".to_owned()));
        assert_eq!(answered("/a/1", 200), Some("/a/{id}"));
        assert_eq!(answered("/b", 500), Some("/b"));
        assert_eq!(answered("/c", 200), Some(OTHER_ROUTE));
        assert_eq!(answered("/a/2", 200), Some("/a/{id}"), "known routes stay");
        assert_eq!(answered("/a/3", 404), Some("/a/{id}"), "known routes stay");
    }

    #[test]
    fn paths_answered_404_or_unanswered_take_no_place_under_the_cap() {
        let r = Router::new(Vec::new(), &[], 1);
        for probe in ["/wp-admin", "/.env", "/phpmyadmin/index.php"] {
            let Routed::New(c) = r.route(probe) else {
                panic!("{probe} is new");
            };
            assert_eq!(r.admit(&c, false), UNMATCHED_ROUTE);
        }
        let Routed::New(c) = r.route("/predict") else {
            panic!("/predict is new");
        };
        assert_eq!(r.admit(&c, true), "/predict");
        assert_eq!(r.route("/predict"), Routed::Template("/predict"));
    }
}
