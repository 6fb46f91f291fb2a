//! Integration tests: one binary, one module per area.
//! Tests that need RabbitMQ use the real broker on 127.0.0.1:5672 (see README).

mod support;

mod amqp_ingest;
mod cli;
mod store_windows;
