//! Hosts: rule host patterns, and the request `Host` normalised without allocating.

/// The longest host a request can name and still match an exact or wildcard
/// rule when it needs lowercasing (DNS names are at most 253 octets).
pub(super) const MAX_HOST: usize = 256;

/// A rule's host, as the table indexes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum HostPattern {
    /// `example.com`: this name only, lowercased.
    Exact(String),
    /// `*.example.com`: exactly one more label in front of the suffix (`example.com`).
    Wildcard(String),
    /// No host: any request host.
    Any,
}

impl HostPattern {
    /// Parses `spec.rules[].host`; an empty or absent host matches any host.
    pub(super) fn parse(host: Option<&str>) -> Result<Self, String> {
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return Ok(Self::Any);
        };
        let lower = host.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        let (wild, name) = match lower.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, lower),
        };
        if let Some(problem) = name_problem(name) {
            return Err(format!("host {host:?} {problem}"));
        }
        Ok(if wild {
            Self::Wildcard(name.to_owned())
        } else {
            Self::Exact(name.to_owned())
        })
    }

    /// The host as routes show it (`*.example.com`), `None` for any host.
    pub(super) fn display(&self) -> Option<String> {
        match self {
            Self::Exact(name) => Some(name.clone()),
            Self::Wildcard(suffix) => Some(format!("*.{suffix}")),
            Self::Any => None,
        }
    }
}

/// Why a (lowercased, wildcard-stripped) host name cannot be routed, if it cannot.
fn name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Some("has an empty label");
    }
    if name.contains('*') {
        return Some("may only use `*` as its whole first label");
    }
    if name
        .bytes()
        .any(|b| b == b':' || b == b'/' || b.is_ascii_whitespace())
    {
        return Some("must be a plain DNS name (no port, no path, no spaces)");
    }
    None
}

/// The request host lowercased, without its port and trailing dot.
///
/// Borrows `host` when it is already lowercase (the common case), else lowercases
/// into `buf`. `None` only for a host longer than [`MAX_HOST`] that needs
/// lowercasing: no exact or wildcard rule can match it.
pub(super) fn normalize<'a>(host: &'a str, buf: &'a mut [u8; MAX_HOST]) -> Option<&'a str> {
    let host = strip_port(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let out = buf.get_mut(..host.len())?;
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

/// `example.com:8080` → `example.com`; `[::1]:8080` → `[::1]`.
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        // A bare IPv6 literal (`::1`) has colons of its own and no port.
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// The suffix a wildcard rule must have to match `host`: `a.example.com` → `example.com`.
pub(super) fn wildcard_suffix(host: &str) -> Option<&str> {
    let (label, suffix) = host.split_once('.')?;
    (!label.is_empty() && !suffix.is_empty()).then_some(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(host: &str) -> Option<String> {
        let mut buf = [0; MAX_HOST];
        normalize(host, &mut buf).map(str::to_owned)
    }

    #[test]
    fn request_hosts_lose_case_port_and_trailing_dot() {
        assert_eq!(norm("Example.COM:8080").as_deref(), Some("example.com"));
        assert_eq!(norm("example.com").as_deref(), Some("example.com"));
        assert_eq!(norm("example.com.").as_deref(), Some("example.com"));
        assert_eq!(norm("[::1]:8080").as_deref(), Some("[::1]"));
        assert_eq!(norm("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(norm("10.0.0.1:80").as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn lowercase_hosts_are_borrowed_not_copied() {
        let mut buf = [0; MAX_HOST];
        let host = "example.com:80";
        let out = normalize(host, &mut buf).expect("host");
        assert_eq!(out.as_ptr(), host.as_ptr());
    }

    #[test]
    fn overlong_mixed_case_hosts_match_no_named_rule() {
        assert_eq!(norm(&"A".repeat(MAX_HOST + 1)), None);
        assert!(norm(&"a".repeat(MAX_HOST + 1)).is_some());
    }

    #[test]
    fn wildcard_takes_exactly_one_label() {
        assert_eq!(wildcard_suffix("a.example.com"), Some("example.com"));
        assert_eq!(wildcard_suffix("a.b.example.com"), Some("b.example.com"));
        assert_eq!(wildcard_suffix(".example.com"), None);
        assert_eq!(wildcard_suffix("localhost"), None);
    }

    #[test]
    fn rule_hosts_parse_into_patterns() {
        let parse = |h| HostPattern::parse(Some(h));
        assert_eq!(
            parse("Foo.Example.com"),
            Ok(HostPattern::Exact("foo.example.com".into()))
        );
        assert_eq!(
            parse("*.example.com"),
            Ok(HostPattern::Wildcard("example.com".into()))
        );
        assert_eq!(HostPattern::parse(None), Ok(HostPattern::Any));
        assert_eq!(parse(""), Ok(HostPattern::Any));
        for bad in [
            "*",
            "a.*.com",
            "*.",
            "foo..com",
            "example.com:80",
            "**.a.com",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
