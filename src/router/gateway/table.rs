//! The HTTPRoute side of one entrypoint's table: listeners by hostname,
//! then route hostnames, then paths, then the match conditions.
//!
//! Lookup follows the specification in this order, falling through on a miss:
//!
//! 1. **Listener isolation.** The request host picks one listener hostname
//!    among every served Gateway's listeners on the entrypoint: an exact
//!    hostname, else the longest matching `*.` wildcard (which, in Gateway
//!    API, covers any number of labels), else a listener without hostname.
//!    Only the routes attached to listeners with that hostname are tried.
//! 2. **Route hostname.** Among those, an exact route hostname first, then
//!    wildcards longest first, then routes for any host.
//! 3. **Path.** `Exact` first, then `PathPrefix` longest first (element by
//!    element, one trailing `/` ignored); a `RegularExpression` match ranks
//!    among prefixes by the length of its pattern.
//! 4. **Conditions.** At one path, the match with a method first, then more
//!    header matches, then more query matches, then the oldest route, then
//!    namespace/name, then rule and match order. The first whose conditions
//!    hold wins; if none does, the lookup falls through to the next path,
//!    then the next hostname.
//!
//! A lookup allocates nothing (a query parameter condition decodes its value)
//! and takes no lock.

use std::cmp::Ordering;
use std::sync::Arc;

use regex::Regex;
use rustc_hash::FxHashMap as HashMap;

use super::matcher::{Conditions, PathMatch, RequestFacts};
use crate::router::host::{self, MAX_HOST};
use crate::router::Route;

/// How specific a matched host was: what a lookup reports so the caller can
/// weigh an HTTPRoute's match against an Ingress's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HostRank {
    /// Any host.
    Any,
    /// A wildcard with a suffix of this length.
    Wildcard(usize),
    /// An exact host.
    Exact,
}

/// How specific a matched path was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PathRank {
    /// A prefix (or expression) of this many characters.
    Prefix(usize),
    /// The exact path.
    Exact,
}

/// One compiled match of one rule, ready to be tried.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The route to serve.
    pub route: Arc<Route>,
    /// The route's hostname for this listener (lowercase); `None`: any host.
    pub host: Option<Box<str>>,
    /// The path condition.
    pub(super) path: PathMatch,
    /// The pattern length of a regex path (its rank among prefixes).
    pub(super) path_len: usize,
    /// Method, header and query conditions.
    pub(super) conditions: Conditions,
    /// The route's creation time (RFC 3339, sorts as text), then
    /// `namespace/name`, rule index, match index: the spec's tie-breaks.
    pub(super) order: (String, String, usize, usize),
}

impl Candidate {
    /// The spec's order among candidates at one path: method, headers,
    /// query, then age, name, rule, match.
    fn precedence(&self, other: &Self) -> Ordering {
        let (m, h, q) = self.conditions.weight();
        let (om, oh, oq) = other.conditions.weight();
        om.cmp(&m)
            .then(oh.cmp(&h))
            .then(oq.cmp(&q))
            .then_with(|| self.order.cmp(&other.order))
    }
}

/// The candidates of one route hostname, by path.
#[derive(Debug, Default)]
struct Paths {
    /// Exact paths.
    exact: HashMap<Box<str>, Vec<Candidate>>,
    /// Prefixes without their trailing `/` (`/` is ``), each list in the
    /// spec's order ([`Candidate::precedence`]).
    prefix: HashMap<Box<str>, Vec<Candidate>>,
    /// The longest prefix key.
    max_prefix: usize,
    /// Expressions, longest pattern first.
    regex: Vec<(Candidate, Regex)>,
}

impl Paths {
    fn insert(&mut self, candidate: Candidate) {
        match candidate.path.clone() {
            PathMatch::Exact(path) => self.exact.entry(path).or_default().push(candidate),
            PathMatch::Prefix(key) => {
                self.max_prefix = self.max_prefix.max(key.len());
                self.prefix.entry(key).or_default().push(candidate);
            }
            PathMatch::Regex(re) => self.regex.push((candidate, re)),
        }
    }

    fn sort(&mut self) {
        for list in self.exact.values_mut() {
            list.sort_by(Candidate::precedence);
        }
        for list in self.prefix.values_mut() {
            list.sort_by(Candidate::precedence);
        }
        self.regex
            .sort_by(|(a, _), (b, _)| b.path_len.cmp(&a.path_len).then_with(|| a.precedence(b)));
    }

    fn lookup<'a>(
        &'a self,
        path: &str,
        req: &dyn RequestFacts,
    ) -> Option<(&'a Candidate, PathRank)> {
        let first = |list: &'a [Candidate]| list.iter().find(|c| c.conditions.matches(req));
        if let Some(hit) = self.exact.get(path).and_then(|l| first(l)) {
            return Some((hit, PathRank::Exact));
        }
        let mut regex = self
            .regex
            .iter()
            .find(|(c, re)| re.is_match(path) && c.conditions.matches(req))
            .map(|(c, _)| c);
        let mut try_key = |key: &str| -> Option<(&'a Candidate, PathRank)> {
            let list = self.prefix.get(key)?;
            let hit = first(list)?;
            if let Some(r) = regex.filter(|r| r.path_len > hit.path_len) {
                regex = None;
                return Some((r, PathRank::Prefix(r.path_len)));
            }
            Some((hit, PathRank::Prefix(hit.path_len)))
        };
        if path.len() <= self.max_prefix {
            if let Some(hit) = try_key(path) {
                return Some(hit);
            }
        }
        let boundaries = path.bytes().enumerate().rev().filter(|&(_, b)| b == b'/');
        for (end, _) in boundaries {
            if end > self.max_prefix {
                continue;
            }
            // `/` itself is the key ``.
            if let Some(hit) = try_key(path.get(..end).unwrap_or("")) {
                return Some(hit);
            }
        }
        regex.map(|r| (r, PathRank::Prefix(r.path_len)))
    }
}

/// Hostnames to values: exact, wildcard suffixes longest first, any.
#[derive(Debug)]
struct Hosts<T> {
    exact: HashMap<Box<str>, T>,
    /// (`.example.com`, value), longest suffix first.
    wildcard: Vec<(Box<str>, T)>,
    any: Option<T>,
}

impl<T> Default for Hosts<T> {
    fn default() -> Self {
        Self {
            exact: HashMap::default(),
            wildcard: Vec::new(),
            any: None,
        }
    }
}

impl<T: Default> Hosts<T> {
    /// The value for a hostname as written (`*.example.com`, `a.example.com`, `None`).
    fn entry(&mut self, host: Option<&str>) -> &mut T {
        match host {
            None => self.any.get_or_insert_with(T::default),
            Some(host) => match host.strip_prefix('*') {
                Some(suffix) => {
                    let at = match self.wildcard.iter().position(|(s, _)| **s == *suffix) {
                        Some(at) => at,
                        None => {
                            self.wildcard.push((suffix.into(), T::default()));
                            self.wildcard.len() - 1
                        }
                    };
                    &mut self.wildcard[at].1
                }
                None => self.exact.entry(host.into()).or_default(),
            },
        }
    }
}

impl<T> Hosts<T> {
    fn sort(&mut self) {
        self.wildcard
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    }

    /// Calls `f` with every level `host` (lowercase, no port) matches, most
    /// specific first, until it returns something.
    fn find_map<'a, R>(
        &'a self,
        host: Option<&str>,
        mut f: impl FnMut(&'a T, HostRank) -> Option<R>,
    ) -> Option<R> {
        if let Some(t) = host.and_then(|h| self.exact.get(h)) {
            if let Some(r) = f(t, HostRank::Exact) {
                return Some(r);
            }
        }
        if let Some(h) = host {
            for (suffix, t) in &self.wildcard {
                if h.len() > suffix.len() && h.ends_with(&**suffix) {
                    if let Some(r) = f(t, HostRank::Wildcard(suffix.len())) {
                        return Some(r);
                    }
                }
            }
        }
        self.any.as_ref().and_then(|t| f(t, HostRank::Any))
    }

    fn values(&self) -> impl Iterator<Item = &T> {
        self.exact
            .values()
            .chain(self.wildcard.iter().map(|(_, t)| t))
            .chain(self.any.iter())
    }
}

/// The routes of every listener with one hostname.
type Listener = Hosts<Paths>;

/// The HTTPRoute routes of one entrypoint.
#[derive(Debug, Default)]
pub(crate) struct GatewayTable {
    listeners: Hosts<Listener>,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit<'a> {
    /// The route.
    pub route: &'a Arc<Route>,
    /// How specific the route's hostname was.
    pub host: HostRank,
    /// How specific its path was.
    pub path: PathRank,
    /// Whether the match also asked for a method, header or query value
    /// (more specific than an Ingress rule of the same host and path).
    pub conditioned: bool,
}

impl GatewayTable {
    /// Adds a listener hostname (so requests for it are isolated to it even
    /// when no route attaches).
    pub(crate) fn listener(&mut self, hostname: Option<&str>) {
        self.listeners.entry(hostname);
    }

    /// Adds one match of one rule, served on listeners with `hostname`.
    pub(crate) fn insert(&mut self, listener: Option<&str>, candidate: Candidate) {
        let host = candidate.host.clone();
        self.listeners
            .entry(listener)
            .entry(host.as_deref())
            .insert(candidate);
    }

    /// Orders everything; call once after the last insert.
    pub(crate) fn finish(&mut self) {
        self.listeners.sort();
        let mut lists: Vec<&mut Listener> = self.listeners.exact.values_mut().collect();
        lists.extend(self.listeners.wildcard.iter_mut().map(|(_, l)| l));
        lists.extend(self.listeners.any.as_mut());
        for listener in lists {
            listener.sort();
            for paths in listener.exact.values_mut() {
                paths.sort();
            }
            for (_, paths) in &mut listener.wildcard {
                paths.sort();
            }
            if let Some(paths) = &mut listener.any {
                paths.sort();
            }
        }
    }

    /// Whether no listener is served here.
    pub(crate) fn is_empty(&self) -> bool {
        self.listeners.values().next().is_none()
    }

    /// The route for a request: `host` as sent (any case, maybe with a
    /// port), `path` normalised. `None`: no HTTPRoute serves it.
    pub(crate) fn lookup<'a>(
        &'a self,
        host: &str,
        path: &str,
        req: &dyn RequestFacts,
    ) -> Option<Hit<'a>> {
        let mut buf = [0; MAX_HOST];
        let host = host::normalize(host, &mut buf);
        let listener = self.listeners.find_map(host, |l, _| Some(l))?;
        listener.find_map(host, |paths, rank| {
            paths.lookup(path, req).map(|(c, path)| Hit {
                route: &c.route,
                host: rank,
                path,
                conditioned: !c.conditions.is_empty(),
            })
        })
    }

    /// Every match without method, header or query conditions, as (route
    /// hostname, path kind, path as matched): what an Ingress rule for the
    /// same host and path would tie with.
    pub(crate) fn unconditioned(&self) -> Vec<(&Candidate, crate::router::PathKind, &str)> {
        let mut out = Vec::new();
        for listener in self.listeners.values() {
            for paths in listener.values() {
                for (key, list) in &paths.exact {
                    for c in list.iter().filter(|c| c.conditions.is_empty()) {
                        out.push((c, crate::router::PathKind::Exact, &**key));
                    }
                }
                for (key, list) in &paths.prefix {
                    for c in list.iter().filter(|c| c.conditions.is_empty()) {
                        out.push((c, crate::router::PathKind::Prefix, &**key));
                    }
                }
            }
        }
        out
    }

    /// Every route once, in table order (for the admin API and metrics).
    pub(crate) fn routes(&self) -> Vec<Arc<Route>> {
        let mut out: Vec<Arc<Route>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for listener in self.listeners.values() {
            for paths in listener.values() {
                let lists = paths
                    .exact
                    .values()
                    .chain(paths.prefix.values())
                    .flatten()
                    .chain(paths.regex.iter().map(|(c, _)| c));
                for c in lists {
                    if seen.insert(Arc::as_ptr(&c.route)) {
                        out.push(c.route.clone());
                    }
                }
            }
        }
        out
    }
}
