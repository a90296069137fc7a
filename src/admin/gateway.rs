//! `/api/gateway`: the Gateway API objects sluice serves, with the status it
//! writes on each (from manifest files, where nothing is written, the status
//! it would write), and where each HTTPRoute rule went in the routing table.
//!
//! Read from the published table's [`Resolution`], so it always agrees with
//! what the data plane serves. Keys are camelCase, like the `status` objects
//! they carry (which are exactly what the status writer sends). Certificates
//! show as the Secrets they come from, never their contents.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::AdminState;
use crate::gateway::resolve::{
    Condition, Entrypoint, GatewayClassStatus, GatewayStatus, PolicyStatus, RefError, Resolution,
    ResolvedGateway, ResolvedListener, ResolvedRoute, RouteStatus,
};
use crate::gateway::types::{HttpRouteRule, PolicyTargetReference, ProtocolType};
use crate::gateway::CONTROLLER_NAME;
use crate::router::{Route, RouteTable};

/// Everything `/api/gateway` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayApiView {
    /// The `controllerName` sluice serves.
    pub controller_name: &'static str,
    /// sluice's GatewayClasses (other controllers' are left out), by name.
    pub classes: Vec<ClassView>,
    /// The Gateways of those classes, by namespace/name.
    pub gateways: Vec<GatewayView>,
    /// The HTTPRoutes naming those Gateways, by namespace/name.
    pub routes: Vec<HttpRouteView>,
    /// Every BackendTLSPolicy, with the Gateways using it.
    pub policies: Vec<PolicyView>,
}

/// A GatewayClass of sluice's.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassView {
    /// The class's name.
    pub name: String,
    /// Its `spec.controllerName` (sluice's).
    pub controller_name: String,
    /// Whether it is accepted (its Gateways are served).
    pub accepted: bool,
    /// Its status, as written.
    pub status: GatewayClassStatus,
}

/// A Gateway of one of sluice's classes.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayView {
    /// The Gateway's namespace.
    pub namespace: String,
    /// The Gateway's name.
    pub name: String,
    /// Its `gatewayClassName`.
    pub class: String,
    /// `Accepted=True`.
    pub accepted: bool,
    /// `Programmed=True`: only then are its listeners served.
    pub programmed: bool,
    /// Its listeners as sluice serves them, in spec order.
    pub listeners: Vec<ListenerView>,
    /// Its status, as written (addresses, conditions, one entry per listener
    /// with its conditions, `attachedRoutes` and `supportedKinds`).
    pub status: GatewayStatus,
}

/// One listener of a Gateway.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerView {
    /// The listener's name (a route's `sectionName`).
    pub name: String,
    /// The port in the Gateway's spec.
    pub port: i32,
    /// The protocol in the Gateway's spec.
    pub protocol: ProtocolType,
    /// The sluice entrypoint it is served on (`web` or `websecure`); `null`
    /// when its port or protocol is not served.
    pub entrypoint: Option<&'static str>,
    /// Its hostname; `null` matches every host.
    pub hostname: Option<String>,
    /// Whether it is served.
    pub programmed: bool,
    /// Its `attachedRoutes` (from its status).
    pub attached_routes: i32,
    /// Its conditions (from its status).
    pub conditions: Vec<Condition>,
    /// The Secrets (`namespace/name`) of the certificates it serves.
    pub certificates: Vec<String>,
    /// The HTTPRoutes attached and accepted, with the hosts they serve here.
    pub routes: Vec<AttachedRouteView>,
}

/// An HTTPRoute on a listener.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachedRouteView {
    /// The route's namespace.
    pub namespace: String,
    /// The route's name.
    pub name: String,
    /// The hosts it serves on this listener (its hostnames intersected with
    /// the listener's); empty: every host the listener takes.
    pub hostnames: Vec<String>,
    /// The rules served (indexes into `spec.rules`; dropped ones are left out).
    pub rules: Vec<usize>,
}

/// An HTTPRoute naming one of sluice's Gateways.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteView {
    /// The route's namespace.
    pub namespace: String,
    /// The route's name.
    pub name: String,
    /// Its `spec.hostnames` (empty: the listeners').
    pub hostnames: Vec<String>,
    /// Its status, as written: one parent per parentRef naming a Gateway of
    /// sluice's, with `controllerName` and conditions.
    pub status: RouteStatus,
    /// Its rules, in spec order.
    pub rules: Vec<RuleView>,
}

/// One rule of an HTTPRoute.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleView {
    /// Its index in `spec.rules`.
    pub index: usize,
    /// Its `name`, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How many `matches` it has.
    pub matches: usize,
    /// Why the rule is not served, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<Problem>,
    /// Its `backendRefs`, resolved.
    pub backends: Vec<BackendView>,
    /// The routes it became in the routing table (one per match; the names
    /// `/api/routes` and `/metrics` use).
    pub table_routes: Vec<String>,
}

/// A reason and a message.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// The condition reason (`BackendNotFound`, `UnsupportedValue`...).
    pub reason: String,
    /// What is wrong.
    pub message: String,
}

impl From<&RefError> for Problem {
    fn from(error: &RefError) -> Self {
        Self {
            reason: error.reason().to_owned(),
            message: error.to_string(),
        }
    }
}

/// One `backendRefs[]` entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendView {
    /// The Service port it resolved to (`namespace/name:port`), or `null`.
    pub service: Option<String>,
    /// Its weight.
    pub weight: i32,
    /// Why it does not resolve (its share of requests gets 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Problem>,
}

/// A BackendTLSPolicy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// The policy's namespace.
    pub namespace: String,
    /// The policy's name.
    pub name: String,
    /// Its `targetRefs`.
    pub target_refs: Vec<PolicyTargetReference>,
    /// Its status, as written: one ancestor per Gateway using a target.
    pub status: PolicyStatus,
}

/// `/api/gateway`.
pub(super) fn view(state: &AdminState) -> GatewayApiView {
    let table = state.table.load();
    build(&table)
}

/// The view of `table`'s resolution.
pub(super) fn build(table: &RouteTable) -> GatewayApiView {
    let resolution: &Resolution = table.gateway_resolution();
    let names = table_route_names(table);
    GatewayApiView {
        controller_name: CONTROLLER_NAME,
        classes: resolution
            .classes
            .iter()
            .map(|c| ClassView {
                name: c.class.name().to_owned(),
                controller_name: c.class.spec.controller_name.clone(),
                accepted: c.accepted,
                status: c.status.clone(),
            })
            .collect(),
        gateways: resolution
            .gateways
            .iter()
            .map(|g| gateway_view(resolution, g))
            .collect(),
        routes: resolution
            .routes
            .iter()
            .map(|r| route_view(r, &names))
            .collect(),
        policies: resolution
            .policies
            .iter()
            .map(|p| PolicyView {
                namespace: p.id.namespace.clone(),
                name: p.id.name.clone(),
                target_refs: p.policy.spec.target_refs.clone(),
                status: p.status.clone(),
            })
            .collect(),
    }
}

fn gateway_view(resolution: &Resolution, g: &ResolvedGateway) -> GatewayView {
    GatewayView {
        namespace: g.id.namespace.clone(),
        name: g.id.name.clone(),
        class: g.gateway.spec.gateway_class_name.clone(),
        accepted: g.accepted,
        programmed: g.programmed,
        listeners: g
            .listeners
            .iter()
            .map(|l| listener_view(resolution, g, l))
            .collect(),
        status: g.status.clone(),
    }
}

fn listener_view(
    resolution: &Resolution,
    g: &ResolvedGateway,
    l: &ResolvedListener,
) -> ListenerView {
    let status = g.status.listeners.iter().find(|s| s.name == l.name);
    ListenerView {
        name: l.name.clone(),
        port: l.port,
        protocol: l.protocol.clone(),
        entrypoint: l.entrypoint.map(entrypoint_name),
        hostname: l.hostname.clone(),
        programmed: l.programmed,
        attached_routes: status.map_or(0, |s| s.attached_routes),
        conditions: status.map(|s| s.conditions.clone()).unwrap_or_default(),
        certificates: l
            .certificates
            .iter()
            .map(|c| format!("{}/{}", c.secret.namespace, c.secret.name))
            .collect(),
        routes: l
            .routes
            .iter()
            .filter_map(|a| {
                let route = resolution.routes.get(a.route)?;
                Some(AttachedRouteView {
                    namespace: route.id.namespace.clone(),
                    name: route.id.name.clone(),
                    hostnames: a.hostnames.clone(),
                    rules: a.rules.clone(),
                })
            })
            .collect(),
    }
}

fn route_view(
    r: &ResolvedRoute,
    names: &HashMap<(String, String), BTreeSet<String>>,
) -> HttpRouteView {
    let (ns, name) = (&r.id.namespace, &r.id.name);
    let served = names.get(&(ns.clone(), name.clone()));
    let rules = r
        .route
        .spec
        .rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let resolved = r.rules.get(i);
            let table_routes = (0..rule.matches.len())
                .map(|m| table_route_name(ns, name, rule, i, m))
                .filter(|n| served.is_some_and(|s| s.contains(n)))
                .collect();
            RuleView {
                index: i,
                name: rule.name.clone(),
                matches: rule.matches.len(),
                dropped: resolved.and_then(|x| x.dropped.as_ref()).map(|e| Problem {
                    reason: e.reason.to_owned(),
                    message: e.message.clone(),
                }),
                backends: resolved
                    .map(|x| {
                        x.backends
                            .iter()
                            .map(|b| BackendView {
                                service: b
                                    .target
                                    .as_ref()
                                    .ok()
                                    .map(|s| format!("{}/{}:{}", s.namespace, s.name, s.port)),
                                weight: b.weight,
                                error: b.target.as_ref().err().map(Problem::from),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                table_routes,
            }
        })
        .collect();
    HttpRouteView {
        namespace: ns.clone(),
        name: name.clone(),
        hostnames: r.route.spec.hostnames.clone(),
        status: r.status.clone(),
        rules,
    }
}

/// The admin API's name of an entrypoint.
pub(super) fn entrypoint_name(entrypoint: Entrypoint) -> &'static str {
    match entrypoint {
        Entrypoint::Http => "web",
        Entrypoint::Https => "websecure",
    }
}

/// The names of the table's HTTPRoute routes, by route (namespace, name).
fn table_route_names(table: &RouteTable) -> HashMap<(String, String), BTreeSet<String>> {
    let mut out: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
    for route in table.all_routes().filter(|r| r.ingress.kind == "HTTPRoute") {
        out.entry((
            route.ingress.namespace.clone().unwrap_or_default(),
            route.ingress.name.clone(),
        ))
        .or_default()
        .insert(route.name.to_string());
    }
    out
}

/// The table name of match `match_index` of rule `rule_index` of the route
/// `namespace/name`, as the compiler names it
/// (`httproute-<ns>-<name>-<rule name or rule<i>>-match<j>`).
fn table_route_name(
    namespace: &str,
    name: &str,
    rule: &HttpRouteRule,
    rule_index: usize,
    match_index: usize,
) -> String {
    let label = match &rule.name {
        Some(n) => n.clone(),
        None => format!("rule{rule_index}"),
    };
    format!("httproute-{namespace}-{name}-{label}-match{match_index}")
}

/// Where a table route of an HTTPRoute came from: the resolved route, and
/// its rule and match indexes. `None` for other routes (or a route the
/// resolution no longer lists).
pub(super) fn origin<'a>(
    resolution: &'a Resolution,
    route: &Route,
) -> Option<(&'a ResolvedRoute, usize, usize)> {
    if route.ingress.kind != "HTTPRoute" {
        return None;
    }
    let resolved = resolution.route(
        route.ingress.namespace.as_deref().unwrap_or_default(),
        &route.ingress.name,
    )?;
    let (ns, name) = (&resolved.id.namespace, &resolved.id.name);
    resolved
        .route
        .spec
        .rules
        .iter()
        .enumerate()
        .find_map(|(i, rule)| {
            (0..rule.matches.len())
                .find(|&m| *route.name == *table_route_name(ns, name, rule, i, m))
                .map(|m| (resolved, i, m))
        })
}
