//! modelmon: a terminal-first monitor for machine-learning model APIs.
//!
//! Data flows one way: `ingest` (RabbitMQ, the demo simulator) feeds the one `store`,
//! which publishes an immutable [`store::View`]; the fronts (`batch`, the terminal table)
//! only read views. `runtime` wires them together; `main.rs` only parses and reports.

pub mod agent;
pub mod alert;
pub mod batch;
pub mod cli;
pub mod clock;
pub mod config;
pub(crate) mod duration;
pub(crate) mod ingest;
pub mod live;
pub(crate) mod proc_self;
pub mod report;
pub mod runtime;
pub(crate) mod snapshots;
pub mod store;
pub mod table;
pub mod tui;
pub mod warnings;
pub mod web;
