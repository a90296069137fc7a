//! Test support: route builders and a naive linear matcher (the oracle) that the
//! compiled table must agree with on every generated table and request.

use std::cmp::Reverse;
use std::sync::Arc;

use proptest::prelude::*;

use super::host::HostPattern;
use super::path::match_path;
use super::rank::{Rank, RuleRoute};
use super::table::HostTable;
use super::{EntryPoints, ObjectRef, PathKind, Route, Target};
use crate::upstream::{PoolSettings, UpstreamClient};

/// A route named `<host or any> <path>`, for lookup tests.
pub(super) fn test_route(host: Option<&str>, path: &str, kind: PathKind) -> Arc<Route> {
    let name = format!("{} {path}", host.unwrap_or("any"));
    make(name, host, Some((path, kind)))
}

/// A route named `name` with no host or path (its host and path are not read).
pub(super) fn test_named(name: &str) -> Arc<Route> {
    make(name.to_owned(), None, None)
}

/// A default-backend route named `any default`.
pub(super) fn test_default() -> Arc<Route> {
    make("any default".to_owned(), None, None)
}

fn make(name: String, host: Option<&str>, path: Option<(&str, PathKind)>) -> Arc<Route> {
    Arc::new(Route {
        name: name.into(),
        host: host.map(str::to_owned),
        path: path.map(|(p, _)| p.to_owned()),
        kind: path.map(|(_, k)| k),
        ingress: ObjectRef::namespaced("Ingress", "default", "test"),
        service: None,
        target: Target::Unavailable {
            status: 503,
            reason: "test".into(),
        },
        client: Arc::new(UpstreamClient::new(&PoolSettings::default())),
        entrypoints: EntryPoints::ALL,
        redirect_https: false,
        redirect_keeps_trailing_slash: false,
        middlewares: crate::middleware::Chain::default(),
        sticky: None,
        balance: None,
        pass_host_header: true,
        stats: Arc::default(),
    })
}

/// The oracle: every rule checked in turn, the spec applied literally, then
/// Traefik's priorities when a matching rule has one or is a regex.
struct Oracle {
    rules: Vec<RuleRoute>,
    default: Option<Arc<Route>>,
}

/// A matching rule's place in the Kubernetes order: host level, plain rules
/// before regex rules, longest path first, Exact before Prefix, then (regex
/// rules) the order they were given in.
type Place = (usize, bool, Reverse<usize>, Reverse<bool>, usize);

impl Oracle {
    fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let host = naive_host(host);
        let levels = [Level::Exact, Level::Wildcard, Level::Any];
        let mut matching: Vec<(Place, &RuleRoute)> = Vec::new();
        for (number, level) in levels.iter().enumerate() {
            for (index, rule) in self.rules.iter().enumerate() {
                let route = &rule.route;
                if !level.matches(route.host.as_deref(), &host) {
                    continue;
                }
                if route.kind == Some(PathKind::Regex) {
                    let regex = rule.regex.as_ref().expect("regex rules carry their regex");
                    if regex.is_match(path) {
                        matching.push(((number, true, Reverse(0), Reverse(false), index), rule));
                    }
                    continue;
                }
                let Some(len) = path_len(route, path) else {
                    continue;
                };
                let exact = route.kind == Some(PathKind::Exact);
                matching.push(((number, false, Reverse(len), Reverse(exact), 0), rule));
            }
        }
        matching.sort_by_key(|a| a.0);
        let special = matching
            .iter()
            .any(|(_, r)| r.rank.explicit.is_some() || r.route.kind == Some(PathKind::Regex));
        let mut winner: Option<&RuleRoute> = None;
        for (_, rule) in &matching {
            let better = match winner {
                None => true,
                Some(w) => special && rule.rank.effective() > w.rank.effective(),
            };
            if better {
                winner = Some(rule);
            }
        }
        winner.map(|r| &r.route).or(self.default.as_ref())
    }
}

#[derive(Clone, Copy)]
enum Level {
    Exact,
    Wildcard,
    Any,
}

impl Level {
    fn matches(self, rule: Option<&str>, host: &str) -> bool {
        match (self, rule) {
            (Self::Any, None) => true,
            (Self::Exact, Some(rule)) => !rule.starts_with("*.") && rule == host,
            (Self::Wildcard, Some(rule)) => rule.strip_prefix("*.").is_some_and(|suffix| {
                host.strip_suffix(suffix)
                    .and_then(|label| label.strip_suffix('.'))
                    .is_some_and(|label| !label.is_empty() && !label.contains('.'))
            }),
            _ => false,
        }
    }
}

fn naive_host(host: &str) -> String {
    let host = host.to_lowercase();
    let host = match host.find(']') {
        Some(end) if host.starts_with('[') => host[..=end].to_owned(),
        _ => host.split(':').next().unwrap_or_default().to_owned(),
    };
    host.trim_end_matches('.').to_owned()
}

/// The rule's precedence length when it matches `path`, element by element on `/`.
fn path_len(route: &Route, path: &str) -> Option<usize> {
    let (rule, kind) = (route.path.as_deref()?, route.kind?);
    let len = match_path(rule, kind).len();
    match kind {
        PathKind::Exact => (rule == path).then_some(len),
        PathKind::Regex => None,
        PathKind::Prefix => {
            let mut want: Vec<&str> = rule.split('/').collect();
            if rule.ends_with('/') {
                want.pop();
            }
            let got: Vec<&str> = path.split('/').collect();
            (path.starts_with('/') && got.starts_with(&want)).then_some(len)
        }
    }
}

/// A generated rule: host, path, kind and explicit priority.
type GenRule = (Option<&'static str>, String, PathKind, Option<i64>);

fn rule_strategy() -> impl Strategy<Value = GenRule> {
    let host = prop::sample::select(vec![Some("a.com"), Some("b.a.com"), Some("*.a.com"), None]);
    let kind = prop::sample::select(vec![PathKind::Exact, PathKind::Prefix, PathKind::Regex]);
    let regex = prop::sample::select(vec!["^/a", "b$", "/a/", "^/$", "^/(a|b)/b", "ab", "^/a/b"]);
    let priority = prop::sample::select(vec![None, None, None, None, Some(1), Some(30), Some(-3)]);
    (host, path_strategy(3), kind, regex, priority).prop_map(|(host, path, kind, regex, p)| {
        let path = if kind == PathKind::Regex {
            regex.to_owned()
        } else {
            path
        };
        (host, path, kind, p)
    })
}

fn path_strategy(depth: usize) -> impl Strategy<Value = String> {
    let segment = prop::sample::select(vec!["a", "b", "ab", "{x}", ""]);
    (prop::collection::vec(segment, 0..=depth), any::<bool>()).prop_map(|(segs, slash)| {
        let mut path = format!("/{}", segs.join("/"));
        if slash && !path.ends_with('/') {
            path.push('/');
        }
        path
    })
}

fn request_strategy() -> impl Strategy<Value = (&'static str, String)> {
    let hosts = vec![
        "a.com",
        "A.Com:80",
        "a.com.",
        "b.a.com",
        "c.a.com",
        "x.b.a.com",
        "other.org",
        "[::1]:80",
    ];
    (prop::sample::select(hosts), path_strategy(4))
}

/// Builds the compiled table and the oracle from generated rules, first rule
/// winning per (host, match path, kind) as the compiler's conflict check does.
fn tables(rules: &[GenRule], default: bool) -> (HostTable, Oracle) {
    let mut seen = std::collections::HashSet::new();
    let mut routes = Vec::new();
    for (i, (host, path, kind, priority)) in rules.iter().enumerate() {
        let pattern = HostPattern::parse(*host).expect("generated hosts are valid");
        if seen.insert((pattern, match_path(path, *kind).to_owned(), *kind)) {
            let route = make(format!("r{i}"), *host, Some((path, *kind)));
            let mut rule = RuleRoute::plain(route).expect("generated regexes are valid");
            rule.rank = Rank {
                explicit: *priority,
                ..rule.rank
            };
            routes.push(rule);
        }
    }
    let default = default.then(test_default);
    let oracle = Oracle {
        rules: routes.clone(),
        default: default.clone(),
    };
    let (table, diags) = HostTable::build_reusing(&routes, default, None);
    assert!(diags.is_empty(), "{diags:?}");
    (table, oracle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_lookup_equals_oracle(
        rules in prop::collection::vec(rule_strategy(), 0..16),
        default in any::<bool>(),
        requests in prop::collection::vec(request_strategy(), 1..24),
    ) {
        let (table, oracle) = tables(&rules, default);
        for (host, path) in &requests {
            let got = table.lookup(host, path).map(|r| r.name.clone());
            let want = oracle.lookup(host, path).map(|r| r.name.clone());
            prop_assert_eq!(got, want, "host {} path {}", host, path);
        }
    }

    /// Rules without regexes, every one given the same explicit priority, pick
    /// the same winner as without priorities: ties go to the Kubernetes order.
    #[test]
    fn equal_priorities_keep_the_kubernetes_order(
        rules in prop::collection::vec(rule_strategy(), 0..16),
        requests in prop::collection::vec(request_strategy(), 1..24),
    ) {
        let plain: Vec<GenRule> = rules
            .iter()
            .filter(|r| r.2 != PathKind::Regex)
            .map(|(h, p, k, _)| (*h, p.clone(), *k, None))
            .collect();
        let same: Vec<GenRule> = plain.iter().map(|(h, p, k, _)| (*h, p.clone(), *k, Some(7))).collect();
        let (plain_table, _) = tables(&plain, false);
        let (same_table, _) = tables(&same, false);
        for (host, path) in &requests {
            let got = same_table.lookup(host, path).map(|r| r.name.clone());
            let want = plain_table.lookup(host, path).map(|r| r.name.clone());
            prop_assert_eq!(got, want, "host {} path {}", host, path);
        }
    }
}
