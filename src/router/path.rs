//! Path matching for one host: the Ingress `Exact` and `Prefix` rules in a `matchit` router.
//!
//! The router holds only literal keys (braces escaped), never `{*rest}` catch-alls:
//! an `Exact` rule is stored under its path, a `Prefix` rule under its path without
//! the trailing `/` (Prefix `/` is kept aside as `root`). A lookup asks the router
//! for the whole request path (Exact first, then a Prefix equal to it), then walks
//! up the request's `/` boundaries, longest first, asking for a Prefix at each.
//! That is the Kubernetes rule exactly (longest match wins, Exact beats Prefix at
//! equal length, Prefix matches element by element), and unlike catch-alls it never
//! makes matchit record backtracking state, so a lookup never allocates.
//!
//! `PathRegexp` rules (Traefik's `router.pathmatcher`) sit beside the router in a
//! list; they and routes with an explicit `router.priority` make the table
//! *ranked*: the host table then visits every matching candidate
//! ([`PathTable::each_match`]) instead of taking the first (see `table.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;

use super::rank::{compile_regex, Rank, RuleRoute};
use super::{Diagnostic, DiagnosticKind, PathKind, Route};

/// A route as a candidate for a request: the route and its precomputed rank.
#[derive(Debug)]
pub(super) struct Candidate {
    /// The route.
    pub route: Arc<Route>,
    /// Its effective priority (explicit, else Traefik's rule length).
    pub effective: i64,
    /// Whether it has an explicit priority or is a regex route: when one of the
    /// routes matching a request is, priorities decide instead of the spec order.
    pub special: bool,
}

impl Candidate {
    fn new(route: &Arc<Route>, rank: Rank) -> Self {
        Self {
            route: route.clone(),
            effective: rank.effective(),
            special: rank.explicit.is_some() || route.kind == Some(PathKind::Regex),
        }
    }
}

/// The rules a router key stands for: at most one Exact and one Prefix rule.
#[derive(Debug, Default)]
struct Entry {
    exact: Option<Candidate>,
    prefix: Option<Candidate>,
}

/// The compiled path rules of one host (or of the host-less rules).
#[derive(Debug, Default)]
pub(super) struct PathTable {
    router: matchit::Router<usize>,
    entries: Vec<Entry>,
    /// Prefix `/`, which matches every path.
    root: Option<Candidate>,
    /// `PathRegexp` rules, in the order they were given.
    regexes: Vec<(Candidate, Regex)>,
    /// Whether any rule is a regex or has an explicit priority.
    ranked: bool,
    /// The longest key: shorter request prefixes are the only ones worth asking for.
    max_len: usize,
    /// The routes (and ranks) the table was built from, in order: a table built
    /// from the same `Arc`s and ranks again would be the same, so it can be reused.
    routes: Vec<(Arc<Route>, Rank)>,
    /// What building it reported.
    diagnostics: Vec<Diagnostic>,
}

/// The form a rule path is matched in: Prefix ignores one trailing `/` (`/` becomes ``).
pub(super) fn match_path(path: &str, kind: PathKind) -> &str {
    match kind {
        PathKind::Exact | PathKind::Regex => path,
        PathKind::Prefix => path.strip_suffix('/').unwrap_or(path),
    }
}

/// Escapes a literal path for matchit, which reads `{` and `}` as parameters.
fn escape(path: &str) -> String {
    path.replace('{', "{{").replace('}', "}}")
}

impl PathTable {
    /// Builds the table from routes that all carry a path and a kind, each
    /// (match path, kind) at most once; the compiler resolves conflicts before.
    pub(super) fn build<R: std::borrow::Borrow<RuleRoute>>(
        routes: &[R],
    ) -> (Self, Vec<Diagnostic>) {
        let mut table = Self::default();
        let mut keys: BTreeMap<&str, Entry> = BTreeMap::new();
        let mut diagnostics = Vec::new();
        for RuleRoute { route, rank, regex } in routes.iter().map(R::borrow) {
            let (Some(path), Some(kind)) = (route.path.as_deref(), route.kind) else {
                continue;
            };
            let candidate = Candidate::new(route, *rank);
            table.ranked |= candidate.special;
            if kind == PathKind::Regex {
                // The compiler hands the compiled regex over; compile only if it did not.
                match regex.clone().map_or_else(|| compile_regex(path), Ok) {
                    Ok(regex) => table.regexes.push((candidate, regex)),
                    Err(err) => diagnostics.push(Diagnostic::error(
                        route.ingress.clone(),
                        DiagnosticKind::InvalidAnnotation,
                        format!("path {path:?} is not a valid PathRegexp: {err}"),
                    )),
                }
                continue;
            }
            let key = match_path(path, kind);
            if key.is_empty() {
                table.root.get_or_insert(candidate);
                continue;
            }
            let entry = keys.entry(key).or_default();
            let slot = match kind {
                PathKind::Exact => &mut entry.exact,
                _ => &mut entry.prefix,
            };
            slot.get_or_insert(candidate);
        }
        diagnostics.extend(
            keys.into_iter()
                .filter_map(|(key, entry)| table.insert(key, entry)),
        );
        table.routes = routes
            .iter()
            .map(R::borrow)
            .map(|r| (r.route.clone(), r.rank))
            .collect();
        table.diagnostics.clone_from(&diagnostics);
        (table, diagnostics)
    }

    /// Whether this table was built from exactly `routes` (the same `Arc`s and
    /// ranks, in order).
    pub(super) fn built_from(&self, routes: &[&RuleRoute]) -> bool {
        self.routes.len() == routes.len()
            && self
                .routes
                .iter()
                .zip(routes)
                .all(|((a, rank), b)| Arc::ptr_eq(a, &b.route) && *rank == b.rank)
    }

    /// What building this table reported.
    pub(super) fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Whether a regex rule or an explicit priority makes lookups visit every candidate.
    pub(super) fn ranked(&self) -> bool {
        self.ranked
    }

    fn insert(&mut self, key: &str, entry: Entry) -> Option<Diagnostic> {
        match self.router.insert(escape(key), self.entries.len()) {
            Ok(()) => {
                self.entries.push(entry);
                self.max_len = self.max_len.max(key.len());
                None
            }
            // Literal keys cannot conflict; this only guards against a matchit surprise.
            Err(err) => {
                let route = entry.exact.or(entry.prefix)?.route;
                let message = format!("path {key:?} cannot be routed: {err}");
                Some(Diagnostic::error(
                    route.ingress.clone(),
                    DiagnosticKind::InvalidObject,
                    message,
                ))
            }
        }
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        let matched = self.router.at(key).ok()?;
        self.entries.get(*matched.value)
    }

    /// The best rule for a request path: longest match, Exact before Prefix.
    /// Regex rules and priorities are not consulted (see [`PathTable::each_match`]).
    pub(super) fn lookup(&self, path: &str) -> Option<&Arc<Route>> {
        let whole = (path.len() <= self.max_len).then(|| self.entry(path));
        if let Some(entry) = whole.flatten() {
            if let Some(c) = entry.exact.as_ref().or(entry.prefix.as_ref()) {
                return Some(&c.route);
            }
        }
        let boundaries = path.bytes().enumerate().rev().filter(|&(_, b)| b == b'/');
        for (end, _) in boundaries {
            if end == 0 {
                break;
            }
            if end > self.max_len {
                continue;
            }
            if let Some(c) = self.entry(&path[..end]).and_then(|e| e.prefix.as_ref()) {
                return Some(&c.route);
            }
        }
        // Prefix `/` matches `/` and everything below it.
        self.root
            .as_ref()
            .filter(|_| path.starts_with('/'))
            .map(|c| &c.route)
    }

    /// Calls `visit` with every rule that matches `path`, in the Kubernetes
    /// order (longest first, Exact before Prefix at equal length), then every
    /// matching regex rule in table order. Allocates nothing.
    pub(super) fn each_match<'a>(&'a self, path: &str, visit: &mut impl FnMut(&'a Candidate)) {
        if path.len() <= self.max_len {
            if let Some(entry) = self.entry(path) {
                entry
                    .exact
                    .iter()
                    .chain(&entry.prefix)
                    .for_each(&mut *visit);
            }
        }
        let boundaries = path.bytes().enumerate().rev().filter(|&(_, b)| b == b'/');
        for (end, _) in boundaries {
            if end == 0 {
                break;
            }
            if end > self.max_len {
                continue;
            }
            if let Some(c) = self.entry(&path[..end]).and_then(|e| e.prefix.as_ref()) {
                visit(c);
            }
        }
        if let Some(root) = self.root.as_ref().filter(|_| path.starts_with('/')) {
            visit(root);
        }
        for (candidate, regex) in &self.regexes {
            if regex.is_match(path) {
                visit(candidate);
            }
        }
    }

    /// Whether the table holds no rule at all.
    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.root.is_none() && self.regexes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::oracle::test_route;

    fn table(rules: &[(PathKind, &str)]) -> PathTable {
        let routes: Vec<_> = rules
            .iter()
            .filter_map(|(k, p)| RuleRoute::plain(test_route(None, p, *k)))
            .collect();
        let (table, diags) = PathTable::build(&routes);
        assert!(diags.is_empty(), "{diags:?}");
        table
    }

    /// `Some((kind, rule path))` of the winning rule.
    fn hit(rules: &[(PathKind, &str)], request: &str) -> Option<(PathKind, String)> {
        let t = table(rules);
        t.lookup(request)
            .map(|r| (r.kind.expect("kind"), r.path.clone().expect("path")))
    }

    use PathKind::{Exact, Prefix};

    /// Rules, request, winning rule.
    type Row<'a> = (
        &'a [(PathKind, &'a str)],
        &'a str,
        Option<(PathKind, &'a str)>,
    );

    /// Every row of the table under "Examples" in the Kubernetes Ingress docs.
    #[test]
    fn kubernetes_docs_examples() {
        let rows: &[Row<'_>] = &[
            (&[(Prefix, "/")], "/anything/at/all", Some((Prefix, "/"))),
            (&[(Exact, "/foo")], "/foo", Some((Exact, "/foo"))),
            (&[(Exact, "/foo")], "/bar", None),
            (&[(Exact, "/foo")], "/foo/", None),
            (&[(Exact, "/foo/")], "/foo", None),
            (&[(Prefix, "/foo")], "/foo", Some((Prefix, "/foo"))),
            (&[(Prefix, "/foo")], "/foo/", Some((Prefix, "/foo"))),
            (&[(Prefix, "/foo/")], "/foo", Some((Prefix, "/foo/"))),
            (&[(Prefix, "/foo/")], "/foo/", Some((Prefix, "/foo/"))),
            (&[(Prefix, "/aaa/bb")], "/aaa/bbb", None),
            (
                &[(Prefix, "/aaa/bbb")],
                "/aaa/bbb",
                Some((Prefix, "/aaa/bbb")),
            ),
            (
                &[(Prefix, "/aaa/bbb/")],
                "/aaa/bbb",
                Some((Prefix, "/aaa/bbb/")),
            ),
            (
                &[(Prefix, "/aaa/bbb")],
                "/aaa/bbb/",
                Some((Prefix, "/aaa/bbb")),
            ),
            (
                &[(Prefix, "/aaa/bbb")],
                "/aaa/bbb/ccc",
                Some((Prefix, "/aaa/bbb")),
            ),
            (&[(Prefix, "/aaa/bbb")], "/aaa/bbbxyz", None),
            (
                &[(Prefix, "/"), (Prefix, "/aaa")],
                "/aaa/ccc",
                Some((Prefix, "/aaa")),
            ),
            (
                &[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")],
                "/aaa/bbb",
                Some((Prefix, "/aaa/bbb")),
            ),
            (
                &[(Prefix, "/"), (Prefix, "/aaa"), (Prefix, "/aaa/bbb")],
                "/ccc",
                Some((Prefix, "/")),
            ),
            (&[(Prefix, "/aaa")], "/ccc", None),
            (
                &[(Exact, "/foo"), (Prefix, "/")],
                "/foo",
                Some((Exact, "/foo")),
            ),
            (
                &[(Prefix, "/foo"), (Exact, "/foo")],
                "/foo",
                Some((Exact, "/foo")),
            ),
        ];
        for (rules, request, want) in rows {
            let want = want.map(|(k, p)| (k, p.to_owned()));
            assert_eq!(
                hit(rules, request),
                want,
                "rules {rules:?}, request {request}"
            );
        }
    }

    /// The catch-all layout (`/foo`, `/foo/`, `/foo/{*rest}`) would also be
    /// correct here: matchit backtracks from `/foo/bar` to the catch-all. We still
    /// avoid it because that backtracking records its state in a `Vec` (an
    /// allocation per lookup whenever a node has both a static and a wildcard child).
    #[test]
    fn matchit_catch_all_backtracks() {
        let mut router = matchit::Router::new();
        for (key, value) in [
            ("/foo/bar", 1),
            ("/foo", 2),
            ("/foo/", 2),
            ("/foo/{*rest}", 2),
        ] {
            router.insert(key, value).expect("no conflict");
        }
        let at = |path| router.at(path).map(|m| *m.value).ok();
        assert_eq!(at("/foo/bar/x"), Some(2));
        assert_eq!(at("/foo/bar"), Some(1));
        assert_eq!(at("/foo/ba"), Some(2));
        assert_eq!(at("/foobar"), None);
    }

    #[test]
    fn longer_exact_beats_shorter_prefix_and_falls_back_below_it() {
        let rules = [(Exact, "/foo/bar"), (Prefix, "/foo")];
        assert_eq!(hit(&rules, "/foo/bar"), Some((Exact, "/foo/bar".into())));
        assert_eq!(hit(&rules, "/foo/bar/x"), Some((Prefix, "/foo".into())));
        assert_eq!(hit(&rules, "/foo/ba"), Some((Prefix, "/foo".into())));
    }

    #[test]
    fn longer_prefix_beats_exact_of_a_shorter_path() {
        let rules = [(Exact, "/foo"), (Prefix, "/foo/bar")];
        assert_eq!(hit(&rules, "/foo/bar/"), Some((Prefix, "/foo/bar".into())));
        assert_eq!(hit(&rules, "/foo/"), None);
    }

    #[test]
    fn exact_trailing_slash_beats_prefix_without() {
        let rules = [(Exact, "/foo/"), (Prefix, "/foo")];
        assert_eq!(hit(&rules, "/foo/"), Some((Exact, "/foo/".into())));
        assert_eq!(hit(&rules, "/foo"), Some((Prefix, "/foo".into())));
    }

    #[test]
    fn braces_and_stars_are_literal() {
        let rules = [(Prefix, "/a{b}"), (Exact, "/{*rest}")];
        assert_eq!(hit(&rules, "/a{b}/c"), Some((Prefix, "/a{b}".into())));
        assert_eq!(hit(&rules, "/{*rest}"), Some((Exact, "/{*rest}".into())));
        assert_eq!(hit(&rules, "/x"), None);
    }

    #[test]
    fn paths_not_starting_with_slash_match_nothing() {
        let rules = [(Prefix, "/")];
        assert_eq!(hit(&rules, "*"), None);
        assert_eq!(hit(&rules, ""), None);
        assert_eq!(hit(&rules, "/"), Some((Prefix, "/".into())));
    }

    #[test]
    fn paths_are_case_sensitive() {
        assert_eq!(hit(&[(Exact, "/Foo")], "/foo"), None);
        assert_eq!(hit(&[(Prefix, "/Foo")], "/foo/x"), None);
    }
}
