//! The published routing table: one host table per entrypoint plus the
//! certificates the HTTPS listener serves, swapped in together.

use std::sync::Arc;

use super::delta::address;
use super::gateway::table::{GatewayTable, HostRank, PathRank};
use super::gateway::{self, RequestFacts};
use super::order;
use super::rank::RuleRoute;
use super::table::HostTable;
use super::PathKind;
use super::{Diagnostic, EntryPoint, EntryPoints, Route, RouteInfo};
use crate::gateway::resolve::Resolution;
use crate::tls::CertIndex;

/// The per-entrypoint host tables of a published table, kept by the compiler
/// so the next build can reuse unchanged hosts.
#[derive(Debug, Clone)]
pub(super) struct HostTables {
    web: Arc<HostTable>,
    websecure: Arc<HostTable>,
    /// The last table's `all`, whose first `ingress_routes` are the Ingress
    /// routes in listing order, for the next build to keep.
    all: Arc<[Arc<Route>]>,
    ingress_routes: usize,
}

/// Everything the data plane reads, compiled from one snapshot.
#[derive(Debug, Default)]
pub struct RouteTable {
    web: Arc<HostTable>,
    /// The same `Arc` as `web` when every route is on both entrypoints (the usual case).
    websecure: Arc<HostTable>,
    certs: CertIndex,
    /// Every route once (rule routes sorted, default backend last).
    all: Arc<[Arc<Route>]>,
    /// How many of `all` are Ingress rule routes (they come first).
    ingress_routes: usize,
    /// The explicit priority of each route in `all`, by position.
    priorities: Vec<Option<i64>>,
    /// HTTPRoutes on the HTTP entrypoint (`None`: no Gateway listener there).
    gateway_web: Option<Arc<GatewayTable>>,
    /// HTTPRoutes on the HTTPS entrypoint.
    gateway_websecure: Option<Arc<GatewayTable>>,
    /// What the Gateway API objects resolved to (statuses, for the admin API).
    resolution: Arc<Resolution>,
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
        gateway: gateway::Compiled,
    ) -> (Self, Vec<Diagnostic>) {
        let on = |ep: EntryPoint| {
            let rules = routes.iter().filter(|r| r.route.entrypoints.has(ep));
            let default = default.clone().filter(|r| r.entrypoints.has(ep));
            let previous = previous.map(|p| match ep {
                EntryPoint::Web => &*p.web,
                EntryPoint::WebSecure => &*p.websecure,
            });
            HostTable::build_reusing(rules, default, previous)
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
        diagnostics.extend(gateway_conflicts(&routes, &gateway));
        diagnostics.sort();
        diagnostics.dedup();
        let ranked: Vec<(Arc<Route>, Option<i64>)> = routes
            .into_iter()
            .map(|r| (r.route, r.rank.explicit))
            .collect();
        let no_routes: &[Arc<Route>] = &[];
        let mut ranked = order::keep_order(
            ranked,
            previous.map_or(no_routes, |p| &p.all[..p.ingress_routes.min(p.all.len())]),
            |(route, _)| address(route),
            |(a, _), (b, _)| {
                (&a.host, &a.path, a.kind, &a.name).cmp(&(&b.host, &b.path, b.kind, &b.name))
            },
        );
        let ingress_routes = ranked.len();
        ranked.extend(default.map(|d| (d, None)));
        for table in [&gateway.web, &gateway.websecure].into_iter().flatten() {
            let mut routes = table.routes();
            routes.sort_by(|a, b| a.name.cmp(&b.name));
            ranked.extend(routes.into_iter().map(|r| (r, None)));
        }
        let (all, priorities): (Vec<Arc<Route>>, Vec<Option<i64>>) = ranked.into_iter().unzip();
        let all: Arc<[Arc<Route>]> = all.into();
        let table = Self {
            web,
            websecure,
            certs,
            all,
            ingress_routes,
            priorities,
            gateway_web: gateway.web,
            gateway_websecure: gateway.websecure,
            resolution: gateway.resolution,
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

    /// The route for a request that arrived on `entrypoint`, by host, path
    /// and, for HTTPRoutes, the method, headers and query `req` has.
    ///
    /// When an Ingress and an HTTPRoute both match, the more specific match
    /// wins: the host first (exact, then the longer wildcard, then none),
    /// then the path (exact, then the longer prefix), then an HTTPRoute
    /// match with method, header or query conditions; at a tie the Ingress
    /// wins (the compiler reports the HTTPRoute's rule as a conflict).
    /// Without Gateway listeners on the entrypoint this is
    /// [`RouteTable::lookup`].
    ///
    /// Allocates nothing and takes no lock.
    pub fn lookup_request(
        &self,
        entrypoint: EntryPoint,
        host: &str,
        path: &str,
        req: &dyn RequestFacts,
    ) -> Option<&Arc<Route>> {
        let gateway = match entrypoint {
            EntryPoint::Web => self.gateway_web.as_deref(),
            EntryPoint::WebSecure => self.gateway_websecure.as_deref(),
        };
        let ingress = self.lookup(entrypoint, host, path);
        let Some(hit) = gateway.and_then(|g| g.lookup(host, path, req)) else {
            return ingress;
        };
        // An Ingress rule is a match on host and path only: at the same host
        // and path it ties with an HTTPRoute match without conditions (and
        // wins), and loses to one with conditions.
        let gateway_rank = (hit.host, hit.path, hit.conditioned);
        match ingress {
            Some(route)
                if ingress_rank(route).is_some_and(|(h, p)| (h, p, false) >= gateway_rank) =>
            {
                Some(route)
            }
            _ => Some(hit.route),
        }
    }

    /// What the Gateway API objects resolved to: the status sluice writes
    /// (or, from files, would write) on each.
    pub fn gateway_resolution(&self) -> &Arc<Resolution> {
        &self.resolution
    }

    /// The host tables, for the next build to reuse.
    pub(super) fn host_tables(&self) -> HostTables {
        HostTables {
            web: self.web.clone(),
            websecure: self.websecure.clone(),
            all: self.all.clone(),
            ingress_routes: self.ingress_routes,
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
        self.web.is_empty()
            && self.websecure.is_empty()
            && self.gateway_web.as_ref().is_none_or(|g| g.is_empty())
            && self.gateway_websecure.as_ref().is_none_or(|g| g.is_empty())
    }
}

/// An HTTPRoute match without conditions for the host, path and path type
/// of an Ingress rule on the same entrypoint ties with it; the Ingress wins,
/// and the HTTPRoute is told.
fn gateway_conflicts(routes: &[RuleRoute], gateway: &gateway::Compiled) -> Vec<Diagnostic> {
    let tables = [
        (EntryPoint::Web, &gateway.web),
        (EntryPoint::WebSecure, &gateway.websecure),
    ];
    if tables.iter().all(|(_, t)| t.is_none()) {
        return Vec::new();
    }
    let mut claims: rustc_hash::FxHashMap<(EntryPoint, Option<&str>, PathKind, &str), &Route> =
        rustc_hash::FxHashMap::default();
    for rule in routes {
        let route = &*rule.route;
        let (Some(path), Some(kind)) = (route.path.as_deref(), route.kind) else {
            continue;
        };
        for (ep, _) in &tables {
            if route.entrypoints.has(*ep) {
                let key = (
                    *ep,
                    route.host.as_deref(),
                    kind,
                    super::path::match_path(path, kind),
                );
                claims.entry(key).or_insert(route);
            }
        }
    }
    let mut out = Vec::new();
    for (ep, table) in tables {
        let Some(table) = table else { continue };
        for (candidate, kind, path) in table.unconditioned() {
            if let Some(ingress) = claims.get(&(ep, candidate.host.as_deref(), kind, path)) {
                out.push(Diagnostic::warning(
                    candidate.route.ingress.clone(),
                    super::DiagnosticKind::Conflict,
                    format!(
                        "host {} path {} ({kind:?}) on {} is also claimed by {}, which wins at equal host and path",
                        candidate.host.as_deref().unwrap_or("*"),
                        if path.is_empty() { "/" } else { path },
                        ep.as_str(),
                        ingress.ingress
                    ),
                ));
            }
        }
    }
    out
}

/// How specific an Ingress route's match is, on the HTTPRoute scale; `None`
/// for a default backend, which every HTTPRoute match beats.
fn ingress_rank(route: &Route) -> Option<(HostRank, PathRank)> {
    let host = match route.host.as_deref() {
        None => HostRank::Any,
        Some(host) => match host.strip_prefix('*') {
            Some(suffix) => HostRank::Wildcard(suffix.len()),
            None => HostRank::Exact,
        },
    };
    let path = match (route.kind, route.path.as_deref()) {
        (Some(PathKind::Exact), _) => PathRank::Exact,
        (Some(PathKind::Prefix), Some(path)) => {
            PathRank::Prefix(path.strip_suffix('/').unwrap_or(path).len())
        }
        (_, Some(path)) => PathRank::Prefix(path.len()),
        (_, None) => return None,
    };
    Some((host, path))
}
