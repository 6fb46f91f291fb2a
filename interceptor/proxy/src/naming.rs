//! The route and model of a request that only its answer can name.
//!
//! Both are capped (`--max-routes` collapsed routes, 256 models from paths, 64 from
//! OpenAI-compatible request bodies) and a name once admitted stays for the life of the
//! process. Only an answer of the upstream's other than 404 proves a name: a path
//! answered 404 is no route of the API and its `{model}` no model, and a request the
//! upstream never answered (the proxy's own 502, 504, 408 or 400, a client gone first)
//! proves nothing. Admitting those would let a vulnerability scanner, clients with a
//! misspelled model, or either of them while the upstream is down, use up the caps and
//! push the real routes and models into `(other)` and the fallback. So a name seen for
//! the first time waits for the upstream's status.

use std::borrow::Cow;
use std::sync::Arc;

use modelmon_contract::Event;

use crate::config::ProxyConfig;

/// Whether the upstream's status, `None` when it gave none, makes new names real.
pub fn proves_names(upstream_status: Option<u16>) -> bool {
    upstream_status.is_some_and(|s| s != 404)
}

/// The names of one request still waiting for its status.
pub struct Naming {
    config: Arc<ProxyConfig>,
    /// A collapsed route not admitted yet.
    route: Option<String>,
    /// A model name from the path not admitted yet.
    model: Option<String>,
}

impl Naming {
    /// `None` when there is nothing to wait for.
    pub fn new(
        config: &Arc<ProxyConfig>,
        route: Option<String>,
        model: Option<String>,
    ) -> Option<Naming> {
        (route.is_some() || model.is_some()).then(|| Naming {
            config: Arc::clone(config),
            route,
            model,
        })
    }

    /// Names `event` once the upstream answered with `upstream_status`, or gave no
    /// answer (`None`): unless that proves them, only names already known are kept.
    pub fn resolve(self, upstream_status: Option<u16>, event: &mut Event<'static>) {
        let c = &self.config;
        let proven = proves_names(upstream_status);
        if let Some(route) = &self.route {
            event.route = Cow::Borrowed(c.router.admit(route, proven));
        }
        if let Some(model) = &self.model {
            event.model = Cow::Borrowed(c.models.admit(model, proven).unwrap_or(c.model));
        }
    }
}
