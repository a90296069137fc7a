//! The published routing table: one host table per entrypoint plus the
//! certificates the HTTPS listener serves, swapped in together.

use std::sync::Arc;

use super::rank::RuleRoute;
use super::table::HostTable;
use super::{Diagnostic, EntryPoint, EntryPoints, Route, RouteInfo};
use crate::tls::CertIndex;

/// The per-entrypoint host tables of a published table, kept by the compiler
/// so the next build can reuse unchanged hosts.
#[derive(Debug, Clone)]
pub(super) struct HostTables {
    web: Arc<HostTable>,
    websecure: Arc<HostTable>,
}

/// Everything the data plane reads, compiled from one snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    web: Arc<HostTable>,
    /// The same `Arc` as `web` when every route is on both entrypoints (the usual case).
    websecure: Arc<HostTable>,
    certs: CertIndex,
    /// Every route once (rule routes sorted, default backend last).
    all: Vec<Arc<Route>>,
    /// The explicit priority of each route in `all`, by position.
    priorities: Vec<Option<i64>>,
}

impl RouteTable {
    /// Builds the per-entrypoint tables from the compiled routes.
    ///
    /// Hosts whose routes are the same `Arc`s as in `previous` keep their path tables.
    pub(super) fn build(
        routes: Vec<RuleRoute>,
        default: Option<Arc<Route>>,
        certs: CertIndex,
        previous: Option<&HostTables>,
    ) -> (Self, Vec<Diagnostic>) {
        let on = |ep: EntryPoint| {
            let rules: Vec<RuleRoute> = routes
                .iter()
                .filter(|r| r.route.entrypoints.has(ep))
                .cloned()
                .collect();
            let default = default.clone().filter(|r| r.entrypoints.has(ep));
            let previous = previous.map(|p| match ep {
                EntryPoint::Web => &*p.web,
                EntryPoint::WebSecure => &*p.websecure,
            });
            HostTable::build_reusing(&rules, default, previous)
        };
        let everywhere = routes
            .iter()
            .map(|r| &r.route)
            .chain(default.iter())
            .all(|r| r.entrypoints == EntryPoints::ALL);
        let (web, mut diagnostics) = on(EntryPoint::Web);
        let web = Arc::new(web);
        let websecure = if everywhere {
            web.clone()
        } else {
            let (websecure, more) = on(EntryPoint::WebSecure);
            diagnostics.extend(more);
            Arc::new(websecure)
        };
        diagnostics.sort();
        diagnostics.dedup();
        let mut ranked: Vec<(Arc<Route>, Option<i64>)> = routes
            .into_iter()
            .map(|r| (r.route, r.rank.explicit))
            .collect();
        ranked.sort_by(|(a, _), (b, _)| {
            (&a.host, &a.path, a.kind, &a.name).cmp(&(&b.host, &b.path, b.kind, &b.name))
        });
        ranked.extend(default.map(|d| (d, None)));
        let (all, priorities) = ranked.into_iter().unzip();
        let table = Self {
            web,
            websecure,
            certs,
            all,
            priorities,
        };
        (table, diagnostics)
    }

    /// The route for a request that arrived on `entrypoint`: `host` as sent (any
    /// case, maybe with a port), `path` already normalised. `None`: answer 404.
    ///
    /// Allocates nothing and takes no lock.
    pub fn lookup(&self, entrypoint: EntryPoint, host: &str, path: &str) -> Option<&Arc<Route>> {
        match entrypoint {
            EntryPoint::Web => self.web.lookup(host, path),
            EntryPoint::WebSecure => self.websecure.lookup(host, path),
        }
    }

    /// The host tables, for the next build to reuse.
    pub(super) fn host_tables(&self) -> HostTables {
        HostTables {
            web: self.web.clone(),
            websecure: self.websecure.clone(),
        }
    }

    /// The certificates, by SNI.
    pub fn certs(&self) -> &CertIndex {
        &self.certs
    }

    /// Every route with its explicit priority, in the order of [`RouteTable::routes`].
    pub fn routes_with_priority(&self) -> impl Iterator<Item = (&Arc<Route>, Option<i64>)> {
        self.all.iter().zip(self.priorities.iter().copied())
    }

    /// Every route and default backend, for the admin API.
    pub fn routes(&self) -> Vec<RouteInfo> {
        self.all
            .iter()
            .zip(&self.priorities)
            .map(|(route, priority)| RouteInfo {
                priority: *priority,
                ..route.info()
            })
            .collect()
    }

    /// The explicit priority (`router.priority`) of `route`, if it has one.
    pub fn priority_of(&self, route: &Arc<Route>) -> Option<i64> {
        let i = self.all.iter().position(|r| Arc::ptr_eq(r, route))?;
        self.priorities.get(i).copied().flatten()
    }

    /// Every rule route and the default backend, each once (for metrics).
    pub fn all_routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.all.iter()
    }

    /// Whether the table routes nothing at all (every request gets 404).
    pub fn is_empty(&self) -> bool {
        self.web.is_empty() && self.websecure.is_empty()
    }
}
