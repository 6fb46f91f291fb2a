//! Keeps credentials out of responses: error messages may quote a URL with a password.

/// `scheme://user:password@host` → `scheme://user:***@host`, everywhere in `s`.
pub(crate) fn redact_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                out.push_str(user);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact_urls;

    #[test]
    fn hides_the_password_of_every_url() {
        let s = "cannot connect to amqp://u:SECRET@10.0.0.1:5672/%2f, then amqps://a:b@h";
        let r = redact_urls(s);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(r.contains("amqp://u:***@10.0.0.1:5672/%2f"), "{r}");
        assert!(r.contains("amqps://a:***@h"), "{r}");
        assert_eq!(redact_urls("no url here"), "no url here");
    }
}
