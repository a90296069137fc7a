//! The immutable routing table and its lookup.
//!
//! Hosts go from most to least specific: the exact host's rules, then the
//! wildcard's, then the host-less rules, then the default backend. A request falls
//! through to the next level when no path of a level matches it.
//!
//! Traefik's `router.priority` and `PathRegexp` rules change that order: when
//! any route that matches a request (at any host level) has an explicit
//! priority or is a regex route, the matching route with the highest effective
//! priority wins (explicit, else the length of Traefik's rule), ties going to
//! the Kubernetes order. Only tables holding such routes pay for it: a table
//! without any keeps the first-match lookup as it was.

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use super::host::{self, MAX_HOST};
use super::path::{Candidate, PathTable};
use super::rank::RuleRoute;
use super::{Diagnostic, Route};

/// The compiled routing table: exact hosts, wildcard hosts, host-less rules, default backend.
#[derive(Debug, Default)]
pub(super) struct HostTable {
    /// Rules by lowercased host (keys shared with the table before, so a
    /// rebuild allocates only new hosts' names).
    exact: HashMap<Arc<str>, Arc<PathTable>>,
    /// Wildcard rules by the suffix after `*.`.
    wildcard: HashMap<Arc<str>, Arc<PathTable>>,
    /// Rules without a host.
    any: Arc<PathTable>,
    /// The winning `spec.defaultBackend`.
    default: Option<Arc<Route>>,
    /// Whether any host's path table is ranked (holds a regex or an explicit
    /// priority); when none is, lookups never look at ranks.
    ranked: bool,
}

impl HostTable {
    /// Builds a table from rule routes (each with a path and kind, `host` as
    /// [`HostPattern::display`] writes it, no two with the same host, match path
    /// and kind) and the default backend.
    #[cfg(test)]
    pub(super) fn build(
        routes: Vec<Arc<Route>>,
        default: Option<Arc<Route>>,
    ) -> (Self, Vec<Diagnostic>) {
        let routes: Vec<RuleRoute> = routes.into_iter().filter_map(RuleRoute::plain).collect();
        Self::build_reusing(&routes, default, None)
    }

    /// Like [`HostTable::build`], but a host whose routes are the same `Arc`s,
    /// in the same order, as in `previous` gets `previous`'s path table back
    /// instead of a new one: one changed Ingress rebuilds one host.
    pub(super) fn build_reusing<'r>(
        routes: impl IntoIterator<Item = &'r RuleRoute>,
        default: Option<Arc<Route>>,
        previous: Option<&HostTable>,
    ) -> (Self, Vec<Diagnostic>) {
        // Grouped by reference and chained by index (one allocation for all
        // groups, not one per host): a host whose table is reused copies nothing.
        let routes: Vec<&RuleRoute> = routes.into_iter().collect();
        let mut next = vec![usize::MAX; routes.len()];
        let mut groups: HashMap<Option<&str>, (usize, usize)> = HashMap::default();
        for (i, route) in routes.iter().enumerate() {
            match groups.entry(route.route.host.as_deref()) {
                std::collections::hash_map::Entry::Occupied(mut group) => {
                    let (_, last) = group.get_mut();
                    next[*last] = i;
                    *last = i;
                }
                std::collections::hash_map::Entry::Vacant(group) => {
                    group.insert((i, i));
                }
            }
        }
        let mut table = Self {
            default,
            exact: HashMap::with_capacity_and_hasher(groups.len(), Default::default()),
            ..Self::default()
        };
        let mut diagnostics = Vec::new();
        let mut group: Vec<&RuleRoute> = Vec::new();
        for (host, (first, _)) in groups {
            group.clear();
            let mut at = first;
            while at != usize::MAX {
                group.push(routes[at]);
                at = next[at];
            }
            let level = Level::of(host);
            let old = previous.and_then(|p| p.level(level));
            let (key, paths) = match old {
                Some((key, old)) if old.built_from(&group) => {
                    diagnostics.extend_from_slice(old.diagnostics());
                    (key.cloned(), old.clone())
                }
                _ => {
                    let (paths, diags) = PathTable::build(&group);
                    diagnostics.extend(diags);
                    (old.and_then(|(key, _)| key.cloned()), Arc::new(paths))
                }
            };
            table.ranked |= paths.ranked();
            match level {
                Level::Exact(name) => {
                    table
                        .exact
                        .insert(key.unwrap_or_else(|| name.into()), paths);
                }
                Level::Wildcard(suffix) => {
                    table
                        .wildcard
                        .insert(key.unwrap_or_else(|| suffix.into()), paths);
                }
                Level::Any => table.any = paths,
            }
        }
        (table, diagnostics)
    }

    /// A level's path table in this table, with its key (none for host-less rules).
    fn level(&self, level: Level<'_>) -> Option<(Option<&Arc<str>>, &Arc<PathTable>)> {
        match level {
            Level::Exact(name) => self.exact.get_key_value(name).map(|(k, v)| (Some(k), v)),
            Level::Wildcard(suffix) => self
                .wildcard
                .get_key_value(suffix)
                .map(|(k, v)| (Some(k), v)),
            Level::Any => Some((None, &self.any)),
        }
    }

    /// The route for a request: `host` as sent (any case, maybe with a port), `path`
    /// already normalised (no dot-segments, no query). `None`: answer 404.
    ///
    /// Allocates nothing and takes no lock.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        if self.ranked {
            return self.lookup_ranked(host, path);
        }
        let mut buf = [0; MAX_HOST];
        let named = host::normalize(host, &mut buf).and_then(|host| {
            let exact = self.exact.get(host).and_then(|t| t.lookup(path));
            exact.or_else(|| {
                let suffix = host::wildcard_suffix(host)?;
                self.wildcard.get(suffix)?.lookup(path)
            })
        });
        named
            .or_else(|| self.any.lookup(path))
            .or(self.default.as_ref())
    }

    /// [`HostTable::lookup`] when some host's table is ranked: the host levels
    /// the request can match (exact, wildcard, host-less) are found first; when
    /// none of them is ranked the first match wins as usual, else every matching
    /// candidate is visited and, if any is special (explicit priority or regex),
    /// the highest effective priority wins, ties to the first in Kubernetes order.
    ///
    /// Allocates nothing and takes no lock.
    fn lookup_ranked(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let mut buf = [0; MAX_HOST];
        let named = host::normalize(host, &mut buf);
        let exact = named.and_then(|host| self.exact.get(host));
        let wildcard = named
            .and_then(host::wildcard_suffix)
            .and_then(|suffix| self.wildcard.get(suffix));
        let levels = [exact, wildcard, Some(&self.any)];
        let levels = levels.into_iter().flatten();
        if !levels.clone().any(|t| t.ranked()) {
            return levels
                .into_iter()
                .find_map(|t| t.lookup(path))
                .or(self.default.as_ref());
        }
        let mut first: Option<&Candidate> = None;
        let mut best: Option<&Candidate> = None;
        let mut special = false;
        for table in levels {
            table.each_match(path, &mut |c| {
                first.get_or_insert(c);
                special |= c.special;
                if best.is_none_or(|b| c.effective > b.effective) {
                    best = Some(c);
                }
            });
        }
        let winner = if special { best } else { first };
        winner.map(|c| &c.route).or(self.default.as_ref())
    }

    /// Whether the table routes nothing at all (every request gets 404).
    pub fn is_empty(&self) -> bool {
        self.default.is_none()
            && self.any.is_empty()
            && self.exact.is_empty()
            && self.wildcard.is_empty()
    }
}

/// Where a route's host (as [`super::host::HostPattern::display`] writes it) goes in a table.
#[derive(Debug, Clone, Copy)]
enum Level<'h> {
    Exact(&'h str),
    /// The suffix after `*.`.
    Wildcard(&'h str),
    Any,
}

impl<'h> Level<'h> {
    fn of(host: Option<&'h str>) -> Self {
        match host {
            None => Self::Any,
            Some(host) => match host.strip_prefix("*.") {
                Some(suffix) => Self::Wildcard(suffix),
                None => Self::Exact(host),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::oracle::{test_default, test_route};
    use crate::router::PathKind::{self, Exact, Prefix};

    fn table() -> HostTable {
        let routes = vec![
            test_route(Some("example.com"), "/api", Prefix),
            test_route(Some("*.example.com"), "/", Prefix),
            test_route(Some("*.example.com"), "/wild", Exact),
            test_route(None, "/", Prefix),
            test_route(None, "/any", Prefix),
        ];
        let default = Some(test_default());
        let (table, diags) = HostTable::build(routes, default);
        assert!(diags.is_empty());
        table
    }

    fn name(t: &HostTable, host: &str, path: &str) -> Option<String> {
        t.lookup(host, path).map(|r| r.name.to_string())
    }

    #[test]
    fn exact_host_is_case_insensitive_and_ignores_port() {
        let t = table();
        assert_eq!(
            name(&t, "Example.COM:8080", "/api/x").as_deref(),
            Some("example.com /api")
        );
        assert_eq!(
            name(&t, "example.com.", "/api").as_deref(),
            Some("example.com /api")
        );
    }

    #[test]
    fn exact_host_falls_through_to_host_less_rules() {
        // example.com has no wildcard match (the wildcard needs one more label).
        assert_eq!(
            name(&table(), "example.com", "/other").as_deref(),
            Some("any /")
        );
        assert_eq!(
            name(&table(), "example.com", "/any/x").as_deref(),
            Some("any /any")
        );
    }

    #[test]
    fn wildcard_matches_exactly_one_label() {
        let t = table();
        assert_eq!(
            name(&t, "a.example.com", "/x").as_deref(),
            Some("*.example.com /")
        );
        assert_eq!(name(&t, "a.b.example.com", "/x").as_deref(), Some("any /"));
    }

    #[test]
    fn exact_host_beats_wildcard_then_falls_through_to_it() {
        let mut routes = vec![test_route(Some("a.example.com"), "/api", Prefix)];
        routes.push(test_route(Some("*.example.com"), "/", Prefix));
        let (t, _) = HostTable::build(routes, None);
        assert_eq!(
            name(&t, "a.example.com", "/api").as_deref(),
            Some("a.example.com /api")
        );
        assert_eq!(
            name(&t, "a.example.com", "/web").as_deref(),
            Some("*.example.com /")
        );
        assert_eq!(
            name(&t, "b.example.com", "/api").as_deref(),
            Some("*.example.com /")
        );
    }

    #[test]
    fn wildcard_falls_through_to_host_less_then_default() {
        let t = table();
        assert_eq!(
            name(&t, "a.example.com", "/any/1").as_deref(),
            Some("*.example.com /")
        );
        let mut routes = vec![test_route(Some("*.example.com"), "/wild", Exact)];
        routes.push(test_route(None, "/any", Prefix));
        let (t, _) = HostTable::build(routes, Some(test_default()));
        assert_eq!(
            name(&t, "a.example.com", "/any").as_deref(),
            Some("any /any")
        );
        assert_eq!(
            name(&t, "a.example.com", "/none").as_deref(),
            Some("any default")
        );
    }

    #[test]
    fn no_match_without_default_is_none() {
        let (t, _) = HostTable::build(vec![test_route(Some("a.com"), "/", Prefix)], None);
        assert!(t.lookup("b.com", "/").is_none());
        assert!(HostTable::default().lookup("a.com", "/").is_none());
        assert!(HostTable::default().is_empty());
    }

    /// A rule route with an explicit priority (`None`: Traefik's rule length).
    fn ranked(host: Option<&str>, path: &str, kind: PathKind, priority: Option<i64>) -> RuleRoute {
        let mut rule = RuleRoute::plain(test_route(host, path, kind)).expect("valid");
        rule.rank.explicit = priority;
        rule
    }

    fn ranked_table(routes: &[RuleRoute]) -> HostTable {
        let (t, diags) = HostTable::build_reusing(routes, Some(test_default()), None);
        assert!(diags.is_empty(), "{diags:?}");
        t
    }

    #[test]
    fn an_explicit_priority_beats_the_longer_path_and_back() {
        let api = |p| ranked(Some("a.com"), "/api", Prefix, p);
        let v1 = |p| ranked(Some("a.com"), "/api/v1", Prefix, p);
        let t = ranked_table(&[api(Some(100)), v1(None)]);
        assert_eq!(
            name(&t, "a.com", "/api/v1/x").as_deref(),
            Some("a.com /api")
        );
        let t = ranked_table(&[api(Some(100)), v1(Some(200))]);
        assert_eq!(
            name(&t, "a.com", "/api/v1/x").as_deref(),
            Some("a.com /api/v1")
        );
        assert_eq!(name(&t, "a.com", "/api/v2").as_deref(), Some("a.com /api"));
        // A low explicit priority loses to the rule length of the other route.
        let t = ranked_table(&[api(None), v1(Some(1))]);
        assert_eq!(
            name(&t, "a.com", "/api/v1/x").as_deref(),
            Some("a.com /api")
        );
        assert_eq!(name(&t, "a.com", "/other").as_deref(), Some("any default"));
    }

    #[test]
    fn regex_routes_compete_by_rule_length() {
        let regex = ranked(Some("a.com"), "^/api/v[0-9]+/", PathKind::Regex, None);
        let root = ranked(Some("a.com"), "/", Prefix, None);
        let t = ranked_table(&[root.clone(), regex.clone()]);
        assert_eq!(
            name(&t, "a.com", "/api/v2/users").as_deref(),
            Some("a.com ^/api/v[0-9]+/")
        );
        assert_eq!(
            name(&t, "a.com", "/api/vx/users").as_deref(),
            Some("a.com /")
        );
        // Not anchored unless the pattern says so.
        let loose = ranked(Some("a.com"), "/v[0-9]+/", PathKind::Regex, None);
        let t = ranked_table(&[root.clone(), loose]);
        assert_eq!(
            name(&t, "a.com", "/x/v2/y").as_deref(),
            Some("a.com /v[0-9]+/")
        );
        // An explicit priority beats the regex.
        let first = ranked(Some("a.com"), "/", Prefix, Some(1000));
        let t = ranked_table(&[first, regex]);
        assert_eq!(
            name(&t, "a.com", "/api/v2/users").as_deref(),
            Some("a.com /")
        );
    }

    #[test]
    fn priorities_compete_across_host_levels() {
        let exact = ranked(Some("a.example.com"), "/", Prefix, None);
        let any = ranked(None, "/admin", Prefix, Some(500));
        let t = ranked_table(&[exact.clone(), any.clone()]);
        assert_eq!(
            name(&t, "a.example.com", "/admin/x").as_deref(),
            Some("any /admin")
        );
        assert_eq!(
            name(&t, "a.example.com", "/x").as_deref(),
            Some("a.example.com /")
        );
        // An unranked host with a ranked host-less table still falls through as usual.
        let other = ranked(Some("b.example.com"), "/api", Prefix, None);
        let t = ranked_table(&[other, any]);
        assert_eq!(
            name(&t, "b.example.com", "/api").as_deref(),
            Some("b.example.com /api")
        );
        assert_eq!(
            name(&t, "b.example.com", "/").as_deref(),
            Some("any default")
        );
    }
}
