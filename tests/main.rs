//! Integration tests: one binary, one module per area. An area too big for one file is a
//! folder (`alerts/`, `tui/`, `web/`) whose `mod.rs` says what each of its files holds.
//! Tests that need RabbitMQ use the real broker on 127.0.0.1:5672 (see README). A test that
//! needs a service starts with `require!(…)` (support/services): without the service it
//! is skipped with a line saying so, or fails under `MODELMON_TEST_SERVICES=1`.

// Test helpers take owned JSON for brevity, and tests compare exact values on purpose.
#![allow(clippy::needless_pass_by_value, clippy::float_cmp)]

#[macro_use]
mod support;

mod agent;
mod alerts;
mod amqp_ingest;
mod broker_outage;
mod cli;
mod cluster;
mod detection;
mod docker;
mod history;
mod many_hosts;
mod model_api;
mod persist;
mod prometheus;
mod store_windows;
mod tui;
mod web;
