//! A broker setting names one RabbitMQ node, or the nodes of one cluster as a
//! comma-separated list of AMQP URLs. Every side (the monitor, the proxy, the
//! middleware) reads it the same way: connect to the first node that answers, and on
//! losing it, go on to the next. The cluster replicates what needs to survive a node
//! (quorum queues, streams); the clients only need to find a node that is up.

use std::fmt;

/// The node URLs a broker setting names, in the order they are tried. A setting
/// without any (empty, or only commas) is returned whole, so connecting to it fails
/// with a message about that setting rather than silently doing nothing.
pub fn broker_nodes(setting: &str) -> Vec<&str> {
    let nodes: Vec<&str> = setting
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if nodes.is_empty() {
        vec![setting.trim()]
    } else {
        nodes
    }
}

/// A broker setting (one URL or several) with every password replaced, fit to show.
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, url) in self.0.split(',').enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write_redacted(f, url)?;
        }
        Ok(())
    }
}

fn write_redacted(f: &mut fmt::Formatter<'_>, url: &str) -> fmt::Result {
    let Some(scheme_end) = url.find("://") else {
        return f.write_str(url);
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    // Only a password is hidden: a user name alone says which login was refused.
    match rest[..authority_end].rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or("");
            write!(
                f,
                "{}{user}:***@{}",
                &url[..scheme_end + 3],
                &rest[at + 1..]
            )
        }
        _ => f.write_str(url),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_names_each_node_in_order_and_one_url_is_one_node() {
        assert_eq!(
            broker_nodes("amqp://a:5672/%2f, amqp://b:5673/%2f,,amqp://c/%2f "),
            ["amqp://a:5672/%2f", "amqp://b:5673/%2f", "amqp://c/%2f"]
        );
        assert_eq!(broker_nodes("amqp://mq/%2f"), ["amqp://mq/%2f"]);
        assert_eq!(broker_nodes(" , "), [","]);
    }

    #[test]
    fn every_password_of_a_list_is_hidden() {
        let shown =
            Redacted("amqp://u:secret@a:5672/%2f,amqp://v:p@ss@b/%2f,amqp://c/%2f").to_string();
        assert_eq!(
            shown,
            "amqp://u:***@a:5672/%2f,amqp://v:***@b/%2f,amqp://c/%2f"
        );
        assert!(!shown.contains("secret"));
    }
}
