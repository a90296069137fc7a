//! Gateway API hostnames: validation, and the intersection of a listener's
//! hostname with a route's (`HTTPRoute.spec.hostnames`).
//!
//! A hostname is precise (`foo.example.com`) or a wildcard (`*.example.com`),
//! which matches any name with at least one more label in front
//! (`a.example.com`, `a.b.example.com`, not `example.com`). The intersection of
//! two hostnames is the more specific one when one covers the other, and
//! nothing otherwise.

use std::net::Ipv4Addr;

/// Why a hostname is not a valid Gateway API hostname.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hostname {hostname:?}: {why}")]
pub struct HostnameError {
    /// The hostname as written.
    pub hostname: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Validates `hostname` (RFC 1123, optionally `*.`-prefixed, not an IP
/// address) and returns it lowercased (the API server only admits lowercase;
/// files are forgiven their case).
///
/// # Errors
///
/// Empty labels, characters outside `[a-z0-9-]`, a `*` that is not a whole
/// first label, a label longer than 63 or a name longer than 253 characters,
/// an IPv4 address.
pub fn normalize(hostname: &str) -> Result<String, HostnameError> {
    let fail = |why| HostnameError {
        hostname: hostname.to_owned(),
        why,
    };
    let lower = hostname.to_ascii_lowercase();
    if lower.is_empty() || lower.len() > 253 {
        return Err(fail("must be 1 to 253 characters"));
    }
    if lower.parse::<Ipv4Addr>().is_ok() {
        return Err(fail("IP addresses are not allowed"));
    }
    let precise = lower.strip_prefix("*.").unwrap_or(&lower);
    for label in precise.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(fail("every label must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(fail(
                "only letters, digits, '-' and a leading '*.' are allowed",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(fail("a label cannot start or end with '-'"));
        }
    }
    Ok(lower)
}

/// The part after `*.` of a wildcard hostname, `None` for a precise one.
fn wildcard_suffix(hostname: &str) -> Option<&str> {
    hostname.strip_prefix("*.")
}

/// Whether `name` (precise, or a wildcard's suffix) lies strictly under
/// `suffix`: `a.example.com` under `example.com`, not `example.com` itself.
fn strictly_under(name: &str, suffix: &str) -> bool {
    name.len() > suffix.len() + 1
        && name.ends_with(suffix)
        && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
}

/// The intersection of two valid, lowercase hostnames: the more specific of
/// the two when one covers the other, `None` when no name matches both.
pub fn intersect<'a>(a: &'a str, b: &'a str) -> Option<&'a str> {
    match (wildcard_suffix(a), wildcard_suffix(b)) {
        (None, None) => (a == b).then_some(a),
        (Some(sa), None) => strictly_under(b, sa).then_some(b),
        (None, Some(sb)) => strictly_under(a, sb).then_some(a),
        (Some(sa), Some(sb)) => {
            if sa == sb || strictly_under(sa, sb) {
                Some(a)
            } else if strictly_under(sb, sa) {
                Some(b)
            } else {
                None
            }
        }
    }
}

/// The hostnames a route serves on a listener: `None` when the route cannot
/// attach (both have hostnames and none intersect); otherwise the
/// intersections in the route's order, without repeats, where an empty list
/// means every host (neither has a hostname).
///
/// `route` must hold valid, lowercase hostnames ([`normalize`]).
pub fn effective(listener: Option<&str>, route: &[String]) -> Option<Vec<String>> {
    let Some(listener) = listener else {
        let mut out: Vec<String> = Vec::with_capacity(route.len());
        for host in route {
            if !out.contains(host) {
                out.push(host.clone());
            }
        }
        return Some(out);
    };
    if route.is_empty() {
        return Some(vec![listener.to_owned()]);
    }
    let mut out: Vec<String> = Vec::new();
    for host in route {
        if let Some(common) = intersect(listener, host) {
            if !out.iter().any(|h| h == common) {
                out.push(common.to_owned());
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Whether two listener hostnames can both match one request host (a
/// listener without hostname matches every host).
pub fn overlap(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => intersect(a, b).is_some(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_accepts_rfc1123_and_one_leading_wildcard() {
        assert_eq!(
            normalize("Foo.Example.COM").as_deref(),
            Ok("foo.example.com")
        );
        assert_eq!(normalize("*.example.com").as_deref(), Ok("*.example.com"));
        assert_eq!(normalize("a-1.b2").as_deref(), Ok("a-1.b2"));
        for bad in [
            "", "*", "*.", "a..b", "a.*.b", "**.a", "-a.b", "a-.b", "a_b.c", "1.2.3.4", "a.b.",
            "foo:80",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize(&"a".repeat(64)).is_err());
        assert!(normalize(&["a"; 130].join(".")).is_err());
    }

    #[test]
    fn intersections_follow_the_httproute_hostnames_rules() {
        let cases = [
            // Listener `test.example.com` matches routes with it or `*.example.com`.
            (
                "test.example.com",
                "test.example.com",
                Some("test.example.com"),
            ),
            (
                "test.example.com",
                "*.example.com",
                Some("test.example.com"),
            ),
            ("test.example.com", "*.test.example.com", None),
            ("test.example.com", "example.com", None),
            // Listener `*.example.com` matches names under it.
            ("*.example.com", "*.example.com", Some("*.example.com")),
            (
                "*.example.com",
                "test.example.com",
                Some("test.example.com"),
            ),
            (
                "*.example.com",
                "foo.test.example.com",
                Some("foo.test.example.com"),
            ),
            (
                "*.example.com",
                "*.foo.example.com",
                Some("*.foo.example.com"),
            ),
            ("*.example.com", "*.com", Some("*.example.com")),
            ("*.example.com", "example.com", None),
            ("*.example.com", "test.example.net", None),
            ("*.example.com", "*.example.net", None),
            ("*.example.com", "xexample.com", None),
            ("*.example.com", "a.xexample.com", None),
        ];
        for (listener, route, want) in cases {
            assert_eq!(intersect(listener, route), want, "{listener} ∩ {route}");
            assert_eq!(intersect(route, listener), want, "{route} ∩ {listener}");
        }
    }

    #[test]
    fn effective_hostnames() {
        let hosts = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        // Neither has a hostname: every host.
        assert_eq!(effective(None, &[]), Some(vec![]));
        // Only the route: its own.
        assert_eq!(
            effective(None, &hosts(&["a.com", "b.com", "a.com"])),
            Some(hosts(&["a.com", "b.com"]))
        );
        // Only the listener: the listener's.
        assert_eq!(effective(Some("*.a.com"), &[]), Some(hosts(&["*.a.com"])));
        // Non-matching route hostnames are ignored.
        assert_eq!(
            effective(
                Some("*.example.com"),
                &hosts(&["test.example.com", "test.example.net"])
            ),
            Some(hosts(&["test.example.com"]))
        );
        assert_eq!(effective(Some("a.com"), &hosts(&["b.com"])), None);
    }

    #[test]
    fn overlaps() {
        assert!(overlap(None, Some("a.com")));
        assert!(overlap(Some("*.example.com"), Some("foo.example.com")));
        assert!(!overlap(Some("foo.example.com"), Some("foo.example.org")));
    }
}
