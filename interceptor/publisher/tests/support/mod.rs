//! What the publisher tests share: the broker consumer, a private RabbitMQ node, a
//! valid event to publish, and the gate for tests that need a service.
#![allow(dead_code)]

mod broker;
pub mod private_node;
#[macro_use]
pub mod services;

use std::borrow::Cow;

pub use broker::*;
use modelmon_contract::Event;

pub fn event(model: &str, status: u16) -> Event<'static> {
    Event {
        ts: now_us(),
        model: Cow::Owned(model.to_owned()),
        version: Some(Cow::Borrowed("1.2.3")),
        instance: Cow::Borrowed("test-host"),
        method: Cow::Borrowed("POST"),
        route: Cow::Borrowed("/v1/models/{name}/predict"),
        status,
        duration_us: 1234,
        ttfb_us: Some(1000),
        req_bytes: Some(10),
        resp_bytes: Some(20),
        error: None,
        ml: vec![(Cow::Borrowed("tokens_out"), 7.0)],
    }
}
