//! Gateway API routes on the same table as Ingress routes.
//!
//! [`crate::gateway::resolve`] decides which Gateways, listeners and
//! HTTPRoutes are served and what their references resolve to; this module
//! turns that [`Resolution`] into routes: one [`Route`] per rule match and
//! entrypoint, its filters compiled into the route's middleware chain
//! (`gateway*` middleware kinds, Traefik `Middleware`s for `ExtensionRef`,
//! `retry`, timeouts), its backendRefs into the route's target or, for
//! several weighted backends or backends with filters of their own, a
//! [`WeightedSplit`] step. The routes go into one [`GatewayTable`] per
//! entrypoint, which the [`crate::router::RouteTable`] consults beside the
//! Ingress host tables (see `route_table.rs` for which wins).

mod backends;
mod chains;
pub mod matcher;
pub(crate) mod table;

use std::collections::HashSet;
use std::sync::Arc;

use crate::gateway::resolve::{resolve, Entrypoint, Resolution, ResolveSettings};
use crate::gateway::types::PathMatchType;
use crate::router::middlewares::Env;
use crate::router::{Diagnostic, DiagnosticKind, EntryPoints, ObjectRef, PathKind, Target};
use crate::tls::LoadedCert;

pub use matcher::{NoFacts, RequestFacts};
use table::{Candidate, GatewayTable};

/// A certificate an HTTPS listener serves.
#[derive(Debug, Clone)]
pub(crate) struct ListenerCert {
    /// The listener's hostname (`None`: any SNI).
    pub hostname: Option<String>,
    /// The certificate.
    pub cert: LoadedCert,
    /// The Secret it came from.
    pub secret: (String, String),
    /// The Gateway of the listener.
    pub gateway: ObjectRef,
}

/// What the Gateway API adds to one compile.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    /// The routes of HTTP listeners (`None`: no Gateway listener there).
    pub web: Option<Arc<GatewayTable>>,
    /// The routes of HTTPS listeners.
    pub websecure: Option<Arc<GatewayTable>>,
    /// The resolution, for the admin API (the status each object would get).
    pub resolution: Arc<Resolution>,
}

/// Resolves the snapshot's Gateway API objects (cheap when there are none).
pub(crate) fn resolution(
    snapshot: &crate::router::Snapshot,
    settings: &ResolveSettings,
) -> Arc<Resolution> {
    if snapshot.gateways.is_empty() && snapshot.gateway_classes.is_empty() {
        return Arc::default();
    }
    Arc::new(resolve(snapshot, settings))
}

/// The certificates of every served HTTPS listener, in Gateway then
/// listener order.
pub(crate) fn listener_certs(resolution: &Resolution) -> Vec<ListenerCert> {
    resolution
        .programmed_listeners()
        .filter(|(_, l)| l.entrypoint == Some(Entrypoint::Https))
        .flat_map(|(g, l)| {
            let gateway = ObjectRef::namespaced("Gateway", &g.id.namespace, &g.id.name);
            l.certificates.iter().map(move |c| ListenerCert {
                hostname: l.hostname.clone(),
                cert: c.cert.clone(),
                secret: (c.secret.namespace.clone(), c.secret.name.clone()),
                gateway: gateway.clone(),
            })
        })
        .collect()
}

/// One match inserted for one listener hostname: (entrypoint, listener
/// hostname, route index, rule, match, route hostname); two listeners with
/// one hostname (of two Gateways) insert it once.
type SeenMatch = (
    Entrypoint,
    Option<String>,
    usize,
    usize,
    usize,
    Option<String>,
);

/// Compiles the resolution's served routes into one table per entrypoint.
pub(crate) fn compile(
    resolution: Arc<Resolution>,
    env: &mut Env<'_, '_>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Compiled {
    if resolution.gateways.is_empty() {
        return Compiled {
            resolution,
            ..Compiled::default()
        };
    }
    let backends = backends::resolve_all(&resolution, env, diagnostics);
    let mut web: Option<GatewayTable> = None;
    let mut websecure: Option<GatewayTable> = None;
    let registries = env.registries;
    let mut session = registries.middlewares.session(env, false);
    let mut routes = chains::RouteCache::default();
    let mut seen: HashSet<SeenMatch> = HashSet::new();
    for (_, listener) in resolution.programmed_listeners() {
        let Some(entrypoint) = listener.entrypoint else {
            continue;
        };
        let table = match entrypoint {
            Entrypoint::Http => web.get_or_insert_with(GatewayTable::default),
            Entrypoint::Https => websecure.get_or_insert_with(GatewayTable::default),
        };
        table.listener(listener.hostname.as_deref());
        for attached in &listener.routes {
            let Some(resolved) = resolution.routes.get(attached.route) else {
                continue;
            };
            let http_route = &resolved.route;
            let created = http_route
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default();
            let id = format!("{}/{}", resolved.id.namespace, resolved.id.name);
            for &rule_index in &attached.rules {
                let (Some(rule), Some(rule_refs)) = (
                    http_route.spec.rules.get(rule_index),
                    resolved.rules.get(rule_index),
                ) else {
                    continue;
                };
                for (match_index, m) in rule.matches.iter().enumerate() {
                    let (path, conditions) = match matcher::compile(m) {
                        Ok(compiled) => compiled,
                        Err(e) => {
                            // The resolver drops rules with bad expressions; this is a guard.
                            diagnostics.push(Diagnostic::error(
                                ObjectRef::namespaced("HTTPRoute", &resolved.id.namespace, &resolved.id.name),
                                DiagnosticKind::InvalidObject,
                                format!("rule {rule_index} match {match_index}: {e}; the match is left out"),
                            ));
                            continue;
                        }
                    };
                    let site = chains::Site {
                        resolved,
                        rule,
                        rule_refs,
                        rule_index,
                        match_index,
                        matched: m,
                        entrypoint,
                        listener_port: listener.port,
                        first_host: attached.hostnames.first().cloned(),
                    };
                    let route =
                        routes.route(&site, &backends, &mut session, registries, diagnostics);
                    let hosts: Vec<Option<String>> = if attached.hostnames.is_empty() {
                        vec![None]
                    } else {
                        attached.hostnames.iter().cloned().map(Some).collect()
                    };
                    for host in hosts {
                        let key = (
                            entrypoint,
                            listener.hostname.clone(),
                            attached.route,
                            rule_index,
                            match_index,
                            host.clone(),
                        );
                        if !seen.insert(key) {
                            continue;
                        }
                        let path_len = match m.path.type_ {
                            PathMatchType::PathPrefix => {
                                let v = m.path.value.as_str();
                                v.strip_suffix('/').unwrap_or(v).len()
                            }
                            _ => m.path.value.len(),
                        };
                        table.insert(
                            listener.hostname.as_deref(),
                            Candidate {
                                route: route.clone(),
                                host: host.map(Into::into),
                                path: path.clone(),
                                path_len,
                                conditions: conditions.clone(),
                                order: (created.clone(), id.clone(), rule_index, match_index),
                            },
                        );
                    }
                }
            }
        }
    }
    let finish = |t: Option<GatewayTable>| {
        t.map(|mut t| {
            t.finish();
            Arc::new(t)
        })
    };
    Compiled {
        web: finish(web),
        websecure: finish(websecure),
        resolution,
    }
}

/// The route kind a Gateway path match shows as.
fn path_kind(type_: &PathMatchType) -> PathKind {
    match type_ {
        PathMatchType::Exact => PathKind::Exact,
        PathMatchType::RegularExpression => PathKind::Regex,
        _ => PathKind::Prefix,
    }
}

/// The entrypoints of a route served on `entrypoint` only.
fn entrypoints(entrypoint: Entrypoint) -> EntryPoints {
    EntryPoints {
        web: entrypoint == Entrypoint::Http,
        websecure: entrypoint == Entrypoint::Https,
    }
}

/// A route's target when it cannot forward: `status` with `reason`.
fn unavailable(status: u16, reason: String) -> Target {
    Target::Unavailable {
        status,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests;
