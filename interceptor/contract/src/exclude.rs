//! Which request paths are proxied or served but never recorded (health checks, metrics
//! scrapes). The proxy and the Python middleware read excluded paths the same way, pinned
//! by `tests/exclusions/paths.json`, which both check:
//!
//! - `/health` excludes that path exactly, with or without a trailing slash and however
//!   many slashes separate its segments;
//! - `/internal/*` excludes `/internal` and everything below it.

/// Excluded unless an operator says otherwise: the probes of Kubernetes and load
/// balancers, and Prometheus scrapes.
pub const DEFAULT_EXCLUDES: [&str; 6] = [
    "/health", "/healthz", "/livez", "/metrics", "/ready", "/readyz",
];

/// A set of excluded paths and prefixes.
#[derive(Debug, Clone, Default)]
pub struct Exclusions {
    exact: std::collections::HashSet<String>,
    /// Normalised, without the `/*`: `/internal` for `/internal/*`.
    prefixes: Vec<String>,
}

impl Exclusions {
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let mut out = Exclusions::default();
        for e in entries {
            let e = e.as_ref().trim();
            if let Some(prefix) = e.strip_suffix("/*") {
                out.prefixes.push(normalise(prefix));
            } else if !e.is_empty() {
                out.exact.insert(normalise(e));
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Whether `path` (without its query) is excluded.
    pub fn matches(&self, path: &str) -> bool {
        if self.is_empty() {
            return false;
        }
        let path = normalise(path);
        self.exact.contains(&path)
            || self.prefixes.iter().any(|p| {
                p == "/"
                    || path
                        .strip_prefix(p.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
    }
}

/// `/a//b/` → `/a/b`; the root stays `/`.
fn normalise(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 1);
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_paths_prefixes_and_nothing_else() {
        let x = Exclusions::new(&["/health", "/internal/*", "/v1//status/"]);
        for excluded in [
            "/health",
            "/health/",
            "//health",
            "/internal",
            "/internal/a/b",
            "/v1/status",
        ] {
            assert!(x.matches(excluded), "{excluded}");
        }
        for kept in [
            "/healthy",
            "/health/x",
            "/internals",
            "/v1/status/x",
            "/",
            "/predict",
        ] {
            assert!(!x.matches(kept), "{kept}");
        }
        assert!(Exclusions::new(&["/*"]).matches("/anything"));
        assert!(!Exclusions::new::<&str>(&[]).matches("/health"));
    }
}
