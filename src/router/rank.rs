//! What the table needs about a rule route beyond the route itself: its Traefik
//! priority (`router.priority`, else the length of the rule Traefik would
//! generate) and, for a `PathRegexp` rule, the compiled regular expression.
//!
//! Kept beside [`Route`] rather than in it so a route's identity (and reuse
//! across compiles) is unchanged; the host tables compare ranks when they
//! decide whether a previous table can be reused.

use std::sync::Arc;

use regex::Regex;

use super::{PathKind, Route};

/// The largest compiled program a `PathRegexp` may become (the `regex` crate
/// matches in linear time; this bounds memory).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A route's standing among the routes that match one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rank {
    /// `router.priority`, when set to a non-zero integer (Traefik reads 0 as unset).
    pub explicit: Option<i64>,
    /// Traefik's default priority: the length of the rule it generates for the route.
    pub rule_len: i64,
}

impl Rank {
    /// The priority Traefik orders routers by: explicit, else the rule length.
    pub(super) fn effective(self) -> i64 {
        self.explicit.unwrap_or(self.rule_len)
    }
}

/// A rule route as the host tables index it.
#[derive(Debug, Clone)]
pub(super) struct RuleRoute {
    /// The route.
    pub route: Arc<Route>,
    /// Its priority.
    pub rank: Rank,
    /// The compiled path, for a [`PathKind::Regex`] route.
    pub regex: Option<Regex>,
}

impl RuleRoute {
    /// A route without an explicit priority; a regex route's path is compiled
    /// here (`None` when it does not compile).
    #[cfg(test)]
    pub(super) fn plain(route: Arc<Route>) -> Option<Self> {
        let kind = route.kind;
        let path = route.path.as_deref();
        let regex = match (kind, path) {
            (Some(PathKind::Regex), Some(path)) => Some(compile_regex(path).ok()?),
            _ => None,
        };
        let rank = Rank {
            explicit: None,
            rule_len: rule_len(route.host.as_deref(), path, kind),
        };
        Some(Self { route, rank, regex })
    }
}

/// Compiles a `PathRegexp` path the way Traefik's `regexp.Compile` reads it:
/// not anchored (it matches anywhere in the request path unless the pattern
/// says `^`/`$`), RE2 syntax.
pub(super) fn compile_regex(path: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(path)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            // Syntax errors span lines (pattern, caret, message): keep the message.
            let text = e.to_string();
            let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
            last.unwrap_or("invalid").to_owned()
        })
}

/// The rule Traefik's Kubernetes Ingress provider generates for a rule path:
/// ``Host(`h`)`` (or ``HostRegexp(`^[a-zA-Z0-9-]+\.suffix$`)`` for `*.suffix`),
/// ``Path``, ``PathPrefix`` or ``PathRegexp`` of the path as written, joined by
/// ` && `; no host or no written path leaves that part out. (Only tests build
/// the string: the compiler needs its length, [`rule_len`].)
#[cfg(test)]
fn traefik_rule(host: Option<&str>, path: Option<&str>, kind: Option<PathKind>) -> String {
    let mut parts = Vec::with_capacity(2);
    if let Some(host) = host {
        parts.push(match host.strip_prefix("*.") {
            Some(suffix) => format!(
                "HostRegexp(`^[a-zA-Z0-9-]+\\.{}$`)",
                suffix.replace('.', "\\.")
            ),
            None => format!("Host(`{host}`)"),
        });
    }
    if let (Some(path), Some(kind)) = (path, kind) {
        let matcher = match kind {
            PathKind::Exact => "Path",
            PathKind::Prefix => "PathPrefix",
            PathKind::Regex => "PathRegexp",
        };
        parts.push(format!("{matcher}(`{path}`)"));
    }
    parts.join(" && ")
}

/// The length of the rule Traefik writes for a route, its default router priority; counted
/// without building the string (it is computed for every route of every compile).
pub(super) fn rule_len(host: Option<&str>, path: Option<&str>, kind: Option<PathKind>) -> i64 {
    const HOST: usize = "Host(``)".len();
    const HOST_REGEXP: usize = "HostRegexp(`^[a-zA-Z0-9-]+\\.$`)".len();
    const AND: usize = " && ".len();
    let host_len = host.map(|host| match host.strip_prefix("*.") {
        // Each `.` of the suffix is escaped as `\.`.
        Some(suffix) => HOST_REGEXP + suffix.len() + suffix.matches('.').count(),
        None => HOST + host.len(),
    });
    let path_len = match (path, kind) {
        (Some(path), Some(kind)) => {
            let matcher = match kind {
                PathKind::Exact => "Path",
                PathKind::Prefix => "PathPrefix",
                PathKind::Regex => "PathRegexp",
            };
            Some(matcher.len() + "(``)".len() + path.len())
        }
        _ => None,
    };
    let len = match (host_len, path_len) {
        (Some(h), Some(p)) => h + AND + p,
        (Some(n), None) | (None, Some(n)) => n,
        (None, None) => 0,
    };
    i64::try_from(len).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_len_counts_the_rule_traefik_writes() {
        let cases = [
            (Some("a.example.com"), Some("/api"), Some(PathKind::Prefix)),
            (
                Some("*.apps.example.com"),
                Some("/x"),
                Some(PathKind::Exact),
            ),
            (None, Some("^/v[0-9]+/"), Some(PathKind::Regex)),
            (Some("h"), None, None),
            (Some("*.a.b.c"), None, Some(PathKind::Prefix)),
            (None, None, None),
        ];
        for (host, path, kind) in cases {
            let written = traefik_rule(host, path, kind);
            assert_eq!(
                rule_len(host, path, kind),
                written.len() as i64,
                "{written}"
            );
        }
    }

    #[test]
    fn rules_are_written_as_traefik_writes_them() {
        let rule = traefik_rule(Some("a.example.com"), Some("/api"), Some(PathKind::Prefix));
        assert_eq!(rule, "Host(`a.example.com`) && PathPrefix(`/api`)");
        assert_eq!(
            rule_len(Some("a.example.com"), Some("/api"), Some(PathKind::Prefix)),
            43
        );
        assert_eq!(
            traefik_rule(Some("*.example.com"), Some("/x"), Some(PathKind::Exact)),
            "HostRegexp(`^[a-zA-Z0-9-]+\\.example\\.com$`) && Path(`/x`)"
        );
        assert_eq!(
            traefik_rule(None, Some("^/v[0-9]+/"), Some(PathKind::Regex)),
            "PathRegexp(`^/v[0-9]+/`)"
        );
        assert_eq!(traefik_rule(Some("a.com"), None, None), "Host(`a.com`)");
    }

    #[test]
    fn regexes_are_not_anchored_and_bad_ones_are_refused() {
        let re = compile_regex("/v[0-9]+/").expect("valid");
        assert!(re.is_match("/api/v2/x"));
        assert!(!compile_regex("^/v[0-9]+/")
            .expect("valid")
            .is_match("/api/v2/x"));
        assert!(compile_regex("/api/(").is_err());
        assert!(compile_regex("(?P<x").is_err());
    }

    #[test]
    fn effective_priority_is_explicit_else_rule_length() {
        let rank = Rank {
            explicit: None,
            rule_len: 30,
        };
        assert_eq!(rank.effective(), 30);
        let rank = Rank {
            explicit: Some(-5),
            rule_len: 30,
        };
        assert_eq!(rank.effective(), -5);
    }
}
