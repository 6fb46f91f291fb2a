//! A private RabbitMQ node for tests that are not written in Rust (the Python
//! interceptor's): the very helper the Rust tests use (`tests/support/private_node.rs`),
//! driven over stdin, so that both languages make outages the same way.
//!
//! Prints `url <amqp url>` once the node is up, then answers each line it reads:
//! `stop_app` and `start_app` with `ok` when done. When stdin closes (the test ended, or
//! died) the node is stopped and its files removed; a failing command panics, which does
//! the same, and the test sees the output end.

#[path = "../tests/support/private_node.rs"]
mod private_node;

use std::io::{BufRead, Write};

fn main() {
    let mut node = private_node::PrivateNode::start();
    let mut out = std::io::stdout().lock();
    let say = |out: &mut std::io::StdoutLock<'_>, line: &str| {
        // A test that went away cannot read the answer; the node still stops below.
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    };
    say(&mut out, &format!("url {}", node.url));
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "stop_app" => node.stop_app(),
            "start_app" => node.start_app(),
            "" => continue,
            other => {
                say(&mut out, &format!("error unknown command {other:?}"));
                continue;
            }
        }
        say(&mut out, "ok");
    }
}
