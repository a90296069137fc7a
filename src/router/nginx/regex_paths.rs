//! `use-regex` (and `rewrite-target`, which implies it): the Ingress's paths
//! become case-insensitive regular expressions matched as prefixes
//! (ingress-nginx's `location ~* "^<path>"`), and, as in nginx, this spreads
//! to every Ingress that shares the host: nginx has one server block per host,
//! so one Ingress turning its locations into regexes turns them all.
//!
//! Every path type becomes a regex, `Exact` included: ingress-nginx's
//! `buildLocation` writes `~* "^<path>"` before it looks at the path type.
//! Among regex paths the longer rule wins, as ingress-nginx orders its
//! locations longest first.

use std::collections::HashSet;

use super::super::host::HostPattern;
use super::super::ingress::{Rule, Served};
use super::super::PathKind;
use super::{Annotations, PREFIX};

/// The hosts (of any served Ingress) whose paths are regexes.
pub(in crate::router) fn regex_hosts(served: &[Served<'_>]) -> HashSet<HostPattern> {
    let mut hosts = HashSet::new();
    for ing in served {
        let Some(all) = ing.ingress.metadata.annotations.as_ref() else {
            continue;
        };
        if !all.keys().any(|k| k.starts_with(PREFIX)) {
            continue;
        }
        let a = Annotations::new(all);
        let wants = a.flag("use-regex") == Some(Ok(true)) || a.get("rewrite-target").is_some();
        if !wants {
            continue;
        }
        let rules = ing
            .ingress
            .spec
            .as_ref()
            .and_then(|s| s.rules.as_deref())
            .unwrap_or_default();
        for rule in rules {
            if let Ok(host) = HostPattern::parse(rule.host.as_deref()) {
                hosts.insert(host);
            }
        }
    }
    hosts
}

/// `rules` with the paths of regex hosts turned into nginx's regex locations.
pub(in crate::router) fn regex_rules<'a>(
    rules: Vec<Rule<'a>>,
    hosts: &HashSet<HostPattern>,
) -> Vec<Rule<'a>> {
    if hosts.is_empty() {
        return rules;
    }
    rules
        .into_iter()
        .map(|mut rule| {
            if hosts.contains(&rule.host) && rule.kind != PathKind::Regex {
                rule.kind = PathKind::Regex;
                rule.path = format!("(?i)^{}", rule.path);
                rule.written = true;
            }
            rule
        })
        .collect()
}

/// The pattern a regex location was compiled from, without the `(?i)^` this
/// module adds (what `rewrite-target` substitutes captures against).
pub fn location_pattern(path: &str) -> &str {
    path.strip_prefix("(?i)^").unwrap_or(path)
}
