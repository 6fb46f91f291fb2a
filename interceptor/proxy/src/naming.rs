//! The route and model of a request that only its answer can name.
//!
//! Both are capped (`--max-routes` collapsed routes, 256 models from paths) and a name
//! once admitted stays for the life of the process. A path answered 404 is no route of
//! the API and its `{model}` no model: admitting them would let a vulnerability scanner,
//! or clients with a misspelled model, use up the caps and push the real routes and
//! models into `(other)` and the fallback. So a name seen for the first time waits
//! for the upstream's status.

use std::borrow::Cow;
use std::sync::Arc;

use modelmon_contract::Event;

use crate::config::ProxyConfig;

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

    /// Names `event` for an answer with `status`: a 404 keeps only names already known.
    pub fn resolve(self, status: u16, event: &mut Event<'static>) {
        let c = &self.config;
        if let Some(route) = &self.route {
            event.route = Cow::Borrowed(c.router.admit(route, status));
        }
        if let Some(model) = &self.model {
            let admitted = if status == 404 {
                c.models.known(model)
            } else {
                c.models.get(model)
            };
            event.model = Cow::Borrowed(admitted.unwrap_or(c.model));
        }
    }
}
