//! The JSON views behind the dashboard: the published table joined with the
//! live figures, the diagnostics and the objects they came from.
//!
//! Health is decided here once, so every page shows the same verdict: a
//! route fails when it cannot serve (no ready endpoint, missing Service,
//! broken middleware), when more than 5% of its answers in the last minute
//! were 5xx, or when an object it is built from has a diagnostic.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use super::live::{self, LiveFigures};
use super::AdminState;
use crate::middleware::object::MiddlewareObject;
use crate::middleware::reference::Reference;
use crate::router::{Diagnostic, ObjectRef, Route, RouteInfo, RouteTable, Target};
use crate::upstream::BackendKey;

/// A verdict and why.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Health {
    /// `ok`, `warning` (certificates expiring within 14 days) or `failing`.
    pub state: &'static str,
    /// Each reason, in words, shown inline.
    pub reasons: Vec<String>,
}

impl Health {
    fn of(reasons: Vec<String>) -> Self {
        Self {
            state: if reasons.is_empty() { "ok" } else { "failing" },
            reasons,
        }
    }

    /// Serving, but something needs attention soon (a certificate close to expiry).
    fn warning(reasons: Vec<String>) -> Self {
        Self {
            state: if reasons.is_empty() { "ok" } else { "warning" },
            reasons,
        }
    }

    /// Whether it is failing.
    pub fn failing(&self) -> bool {
        self.state == "failing"
    }
}

/// A route with its live figures and health.
#[derive(Debug, Serialize)]
pub struct RouteView {
    /// What `/api/routes` has always shown of a route.
    #[serde(flatten)]
    pub info: RouteInfo,
    /// Requests per second, 5xx ratio and percentiles.
    pub live: LiveFigures,
    /// The verdict.
    pub health: Health,
    /// The diagnostics of the objects the route is built from.
    pub diagnostics: Vec<Diagnostic>,
}

/// Diagnostics by the object they are about (kind, namespace, name).
pub(super) struct DiagnosticIndex<'a> {
    by_object: HashMap<ObjectKey, Vec<&'a Diagnostic>>,
}

/// (kind, namespace or "", name).
type ObjectKey = (String, String, String);

impl<'a> DiagnosticIndex<'a> {
    pub(super) fn new(all: &'a [Diagnostic]) -> Self {
        let mut by_object: HashMap<_, Vec<_>> = HashMap::new();
        for d in all {
            let o = &d.object;
            by_object
                .entry((
                    o.kind.clone(),
                    o.namespace.clone().unwrap_or_default(),
                    o.name.clone(),
                ))
                .or_default()
                .push(d);
        }
        Self { by_object }
    }

    fn about(&self, object: &ObjectKey) -> &[&'a Diagnostic] {
        self.by_object.get(object).map_or(&[], Vec::as_slice)
    }
}

/// The objects a route is built from, as (kind, namespace, name).
fn sources(route: &Route) -> Vec<ObjectKey> {
    let ns = route.ingress.namespace.clone().unwrap_or_default();
    let mut out = vec![(
        route.ingress.kind.clone(),
        ns.clone(),
        route.ingress.name.clone(),
    )];
    if let Some(service) = &route.service {
        out.push((
            "Service".to_owned(),
            service.namespace.clone(),
            service.service.clone(),
        ));
    }
    for reference in route.middlewares.names() {
        if let Ok(parsed) = Reference::parse(reference) {
            for (mns, name) in parsed.candidates(&ns) {
                out.push(("Middleware".to_owned(), mns.to_owned(), name.to_owned()));
            }
        }
    }
    out
}

/// The diagnostics about the objects `route` is built from.
pub(super) fn route_diagnostics(route: &Route, index: &DiagnosticIndex<'_>) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for object in sources(route) {
        for d in index.about(&object) {
            if !out.contains(d) {
                out.push((*d).clone());
            }
        }
    }
    out
}

/// The health of `route` given its figures and diagnostics.
pub(super) fn route_health(
    route: &Route,
    figures: &LiveFigures,
    diagnostics: &[Diagnostic],
) -> Health {
    let mut reasons = Vec::new();
    match &route.target {
        Target::Unavailable { reason, status } => {
            reasons.push(format!("answers {status}: {reason}"));
        }
        Target::Backend(backend) => {
            if !backend.pick_preview() {
                let key = backend.key();
                reasons.push(format!(
                    "service {}/{} has no ready endpoint (requests get 503)",
                    key.namespace, key.service
                ));
            }
        }
    }
    if let Some(broken) = route.middlewares.broken() {
        reasons.push(format!(
            "middleware unavailable (requests get 500): {broken}"
        ));
    }
    if live::too_many_errors(figures) {
        reasons.push(format!(
            "{:.1}% of its answers in the last minute were 5xx",
            figures.last_1m.error_ratio * 100.0
        ));
    }
    for d in diagnostics {
        reasons.push(format!("{}: {}", d.kind.as_str(), d.message));
    }
    Health::of(reasons)
}

/// Every route of `table` with priorities, figures, health and diagnostics.
pub(super) fn route_views(state: &AdminState, table: &RouteTable) -> Vec<RouteView> {
    let diagnostics = state.diagnostics.load();
    let index = DiagnosticIndex::new(&diagnostics);
    let infos = table.routes();
    let figures = state.live.routes(table.all_routes().map(|r| &*r.name));
    table
        .all_routes()
        .zip(infos)
        .zip(figures)
        .map(|((route, info), live)| view_of(route, info, live, &index))
        .collect()
}

fn view_of(
    route: &Route,
    info: RouteInfo,
    live: LiveFigures,
    index: &DiagnosticIndex<'_>,
) -> RouteView {
    let diagnostics = route_diagnostics(route, index);
    let health = route_health(route, &live, &diagnostics);
    RouteView {
        info,
        live,
        health,
        diagnostics,
    }
}

/// One page of routes, as the routes page asks for it.
#[derive(Debug, Serialize)]
pub struct RoutePage {
    /// Routes matching the query, all pages together.
    pub total: usize,
    /// How many of those fail.
    pub failing: usize,
    /// The first route of this page, 0-based.
    pub offset: usize,
    /// The page size asked for.
    pub limit: usize,
    /// The routes of this page.
    pub items: Vec<RouteView>,
}

/// What the routes page filters on.
#[derive(Debug, Default)]
pub struct RouteQuery {
    /// Only the route with exactly this name (the route detail page).
    pub name: Option<String>,
    /// Words that must each appear (case-insensitively) in the route's name,
    /// host, path, Ingress, Service or middlewares.
    pub search: String,
    /// Only failing (`Some(true)`) or only healthy (`Some(false)`) routes.
    pub failing: Option<bool>,
    /// Skip this many.
    pub offset: usize,
    /// At most this many (capped at 500).
    pub limit: usize,
}

fn haystack(route: &Route) -> String {
    let mut text = String::with_capacity(128);
    for part in [
        &*route.name,
        route.host.as_deref().unwrap_or("*"),
        route.path.as_deref().unwrap_or(""),
        route.ingress.namespace.as_deref().unwrap_or(""),
        &route.ingress.name,
    ] {
        text.push_str(part);
        text.push(' ');
    }
    if let Some(s) = &route.service {
        text.push_str(&s.to_string());
        text.push(' ');
    }
    for m in route.middlewares.names() {
        text.push_str(m);
        text.push(' ');
    }
    text.to_ascii_lowercase()
}

/// The routes matching `query`, one page of them in full.
pub(super) fn route_page(state: &AdminState, query: &RouteQuery) -> RoutePage {
    let table = state.table.load();
    let diagnostics = state.diagnostics.load();
    let index = DiagnosticIndex::new(&diagnostics);
    let words: Vec<String> = query
        .search
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    let figures = state.live.routes(table.all_routes().map(|r| &*r.name));
    let limit = query.limit.clamp(1, 500);
    let mut total = 0;
    let mut failing = 0;
    let mut items = Vec::new();
    for ((route, priority), live) in table.routes_with_priority().zip(figures) {
        if query.name.as_deref().is_some_and(|n| n != &*route.name) {
            continue;
        }
        if !words.is_empty() {
            let text = haystack(route);
            if !words.iter().all(|w| text.contains(w.as_str())) {
                continue;
            }
        }
        // Health for every match (the failing count and filter need it), the
        // full view only for the routes of this page.
        let diagnostics = route_diagnostics(route, &index);
        let health = route_health(route, &live, &diagnostics);
        let is_failing = health.failing();
        if query.failing.is_some_and(|want| want != is_failing) {
            continue;
        }
        failing += usize::from(is_failing);
        if total >= query.offset && items.len() < limit {
            items.push(RouteView {
                info: RouteInfo {
                    priority,
                    ..route.info()
                },
                live,
                health,
                diagnostics,
            });
        }
        total += 1;
    }
    RoutePage {
        total,
        failing,
        offset: query.offset,
        limit,
        items,
    }
}

/// One endpoint of a Service, with its conditions and live figures.
#[derive(Debug, Serialize)]
pub struct EndpointView {
    /// Pod IP and port.
    pub address: SocketAddr,
    /// `conditions.ready`.
    pub ready: bool,
    /// `conditions.serving`.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// Whether sluice sends requests to it now.
    pub in_rotation: bool,
    /// Its requests, errors and latency.
    pub live: LiveFigures,
}

/// A Service port the routes send to.
#[derive(Debug, Serialize)]
pub struct ServiceView {
    /// `namespace/name:port`, the key the routes show.
    pub id: String,
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port as resolved (number, or name when unresolved).
    pub port: String,
    /// The routes that send to it (the first 100; `route_count` says how many).
    pub routes: Vec<String>,
    /// How many routes send to it.
    pub route_count: usize,
    /// Its endpoints.
    pub endpoints: Vec<EndpointView>,
    /// Ready endpoints.
    pub ready_endpoints: usize,
    /// For an ExternalName Service: the DNS name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// The verdict.
    pub health: Health,
    /// All its endpoints together.
    pub live: LiveFigures,
}

/// How many route names a Service lists.
const ROUTES_LISTED: usize = 100;

/// Every Service port routes send to (or fail to find), with endpoints;
/// only the one named `only` (`namespace/name:port`) when given.
pub(super) fn services(state: &AdminState, only: Option<&str>) -> Vec<ServiceView> {
    let table = state.table.load();
    let mut by_key: BTreeMap<String, (BackendKey, Vec<&Arc<Route>>)> = BTreeMap::new();
    for route in table.all_routes() {
        if let Some(key) = &route.service {
            if only.is_some_and(|id| id != key.to_string()) {
                continue;
            }
            by_key
                .entry(key.to_string())
                .or_insert_with(|| (key.clone(), Vec::new()))
                .1
                .push(route);
        }
    }
    by_key
        .into_iter()
        .map(|(id, (key, routes))| service_view(state, id, key, &routes))
        .collect()
}

fn service_view(
    state: &AdminState,
    id: String,
    key: BackendKey,
    routes: &[&Arc<Route>],
) -> ServiceView {
    let mut reasons = Vec::new();
    let mut endpoints = Vec::new();
    let mut external_name = None;
    let backend = routes.iter().find_map(|r| match &r.target {
        Target::Backend(b) => Some(b.clone()),
        Target::Unavailable { .. } => None,
    });
    match &backend {
        Some(backend) => {
            let set = backend.endpoints();
            let rotation: Vec<SocketAddr> = match &set.external {
                Some(ext) => {
                    external_name = Some(format!("{}:{}", ext.host, ext.port));
                    backend.resolved().addrs.clone()
                }
                None => set.addrs.clone(),
            };
            let mut listed: HashSet<SocketAddr> = HashSet::new();
            for c in &set.conditions {
                listed.insert(c.addr);
                endpoints.push(EndpointView {
                    address: c.addr,
                    ready: c.ready,
                    serving: c.serving,
                    terminating: c.terminating,
                    in_rotation: rotation.contains(&c.addr),
                    live: state.live.endpoint(backend.key(), c.addr),
                });
            }
            for addr in rotation.iter().filter(|a| !listed.contains(a)) {
                endpoints.push(EndpointView {
                    address: *addr,
                    ready: true,
                    serving: true,
                    terminating: false,
                    in_rotation: true,
                    live: state.live.endpoint(backend.key(), *addr),
                });
            }
            if !backend.pick_preview() {
                reasons.push("no ready endpoint: its routes answer 503".to_owned());
            }
        }
        None => {
            for r in routes {
                if let Target::Unavailable { reason, .. } = &r.target {
                    if !reasons.contains(&reason.to_string()) {
                        reasons.push(reason.to_string());
                    }
                }
            }
        }
    }
    let diagnostics = state.diagnostics.load();
    for d in diagnostics.iter() {
        if d.object.kind == "Service"
            && d.object.namespace.as_deref() == Some(key.namespace.as_str())
            && d.object.name == key.service
        {
            reasons.push(format!("{}: {}", d.kind.as_str(), d.message));
        }
    }
    let live = backend
        .as_ref()
        .map(|b| state.live.service(b.key()))
        .unwrap_or_default();
    ServiceView {
        id,
        namespace: key.namespace.clone(),
        name: key.service.clone(),
        port: key.port.to_string(),
        routes: routes
            .iter()
            .take(ROUTES_LISTED)
            .map(|r| r.name.to_string())
            .collect(),
        route_count: routes.len(),
        ready_endpoints: endpoints.iter().filter(|e| e.in_rotation).count(),
        endpoints,
        external_name,
        health: Health::of(reasons),
        live,
    }
}

/// A Middleware object (never its spec: it may hold credentials).
#[derive(Debug, Serialize)]
pub struct MiddlewareView {
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// Its type: the spec section it has (`basicAuth`, `stripPrefix`...), or
    /// `null` when a route references a Middleware that does not exist.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// How an Ingress references it.
    pub reference: String,
    /// The routes that run it.
    pub routes: Vec<String>,
    /// Why it cannot be built or used, from diagnostics and routes.
    pub errors: Vec<String>,
    /// The verdict.
    pub health: Health,
}

/// Every Middleware object, plus references to missing ones.
pub(super) fn middlewares(state: &AdminState) -> Vec<MiddlewareView> {
    let objects: Vec<Arc<MiddlewareObject>> = state
        .objects
        .load()
        .as_ref()
        .map(|u| u.snapshot.middlewares.clone())
        .unwrap_or_default();
    let table = state.table.load();
    let mut views: BTreeMap<(String, String), MiddlewareView> = BTreeMap::new();
    for object in &objects {
        let (ns, name) = (object.namespace().to_owned(), object.name().to_owned());
        views.insert(
            (ns.clone(), name.clone()),
            MiddlewareView {
                reference: format!("{ns}-{name}@kubernetescrd"),
                kind: object.spec.keys().next().cloned(),
                namespace: ns,
                name,
                routes: Vec::new(),
                errors: Vec::new(),
                health: Health::default(),
            },
        );
    }
    for route in table.all_routes() {
        let ns = route.ingress.namespace.as_deref().unwrap_or("default");
        for reference in route.middlewares.names() {
            let Ok(parsed) = Reference::parse(reference) else {
                continue;
            };
            let candidates: Vec<(&str, &str)> = parsed.candidates(ns).collect();
            let found = candidates
                .iter()
                .find(|(n, m)| views.contains_key(&((*n).to_owned(), (*m).to_owned())))
                .or(candidates.first());
            let Some((mns, mname)) = found else { continue };
            let view = views
                .entry(((*mns).to_owned(), (*mname).to_owned()))
                .or_insert_with(|| MiddlewareView {
                    namespace: (*mns).to_owned(),
                    name: (*mname).to_owned(),
                    kind: None,
                    reference: reference.clone(),
                    routes: Vec::new(),
                    errors: vec![format!("Middleware {mns}/{mname} does not exist")],
                    health: Health::default(),
                });
            view.routes.push(route.name.to_string());
            if let Some(broken) = route.middlewares.broken() {
                if broken.contains(mname) && !view.errors.iter().any(|e| e == broken) {
                    view.errors.push(broken.to_owned());
                }
            }
        }
    }
    let diagnostics = state.diagnostics.load();
    for d in diagnostics.iter() {
        if d.object.kind != "Middleware" {
            continue;
        }
        let key = (
            d.object.namespace.clone().unwrap_or_default(),
            d.object.name.clone(),
        );
        if let Some(view) = views.get_mut(&key) {
            view.errors
                .push(format!("{}: {}", d.kind.as_str(), d.message));
        }
    }
    views
        .into_values()
        .map(|mut v| {
            v.health = Health::of(v.errors.clone());
            v
        })
        .collect()
}

/// A served certificate.
#[derive(Debug, Serialize)]
pub struct CertificateView {
    /// `namespace/name` of its Secret; `null` for the generated default.
    pub secret: Option<String>,
    /// The hosts it is served for.
    pub hosts: Vec<String>,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The subject's distinguished name.
    pub subject: String,
    /// notAfter, Unix seconds.
    pub not_after: i64,
    /// Days until notAfter (negative once expired).
    pub expires_in_days: f64,
    /// Whether it is served for unknown or missing SNI.
    pub default: bool,
    /// The Ingresses whose TLS sections install it.
    pub used_by: Vec<ObjectRef>,
    /// The verdict: `failing` once expired, `warning` within 14 days of expiry.
    pub health: Health,
}

/// Every certificate the HTTPS listener serves, merged by Secret.
pub(super) fn certificates(state: &AdminState, now_unix: i64) -> Vec<CertificateView> {
    let table = state.table.load();
    let mut merged: BTreeMap<(bool, Option<(String, String)>), CertificateView> = BTreeMap::new();
    for info in table.certs().infos() {
        let key = (!info.is_default, info.secret.clone());
        let view = merged.entry(key).or_insert_with(|| {
            let days = (info.not_after - now_unix) as f64 / 86_400.0;
            let health = if days < 0.0 {
                Health::of(vec![
                    "expired (still served; clients will refuse it)".to_owned()
                ])
            } else if days < 14.0 {
                Health::warning(vec![format!("expires in {days:.1} days")])
            } else {
                Health::of(Vec::new())
            };
            CertificateView {
                secret: info.secret.as_ref().map(|(ns, n)| format!("{ns}/{n}")),
                hosts: Vec::new(),
                issuer: info.issuer.clone(),
                subject: info.subject.clone(),
                not_after: info.not_after,
                expires_in_days: (days * 10.0).round() / 10.0,
                default: info.is_default,
                used_by: Vec::new(),
                health,
            }
        });
        for host in &info.hosts {
            if !view.hosts.contains(host) {
                view.hosts.push(host.clone());
            }
        }
        if let Some(ingress) = &info.used_by {
            if !view.used_by.contains(ingress) {
                view.used_by.push(ingress.clone());
            }
        }
    }
    merged.into_values().collect()
}

/// A diagnostic with the routes it affects.
#[derive(Debug, Serialize)]
pub struct DiagnosticView {
    /// The diagnostic itself.
    #[serde(flatten)]
    pub diagnostic: Diagnostic,
    /// The routes built from the object at fault.
    pub routes: Vec<String>,
}

/// `/api/errors`: every diagnostic, linked to the routes it affects.
#[derive(Debug, Serialize)]
pub struct ErrorsView {
    /// How many diagnostics there are.
    pub count: usize,
    /// The diagnostics.
    pub errors: Vec<DiagnosticView>,
}

/// Every diagnostic of the last load and compile.
pub(super) fn errors(state: &AdminState) -> ErrorsView {
    let diagnostics = state.diagnostics.load();
    let table = state.table.load();
    let mut routes_of: HashMap<ObjectKey, Vec<String>> = HashMap::new();
    for route in table.all_routes() {
        for source in sources(route) {
            routes_of
                .entry(source)
                .or_default()
                .push(route.name.to_string());
        }
    }
    let errors: Vec<DiagnosticView> = diagnostics
        .iter()
        .map(|d| {
            let key = (
                d.object.kind.clone(),
                d.object.namespace.clone().unwrap_or_default(),
                d.object.name.clone(),
            );
            let mut routes = routes_of.get(&key).cloned().unwrap_or_default();
            routes.dedup();
            DiagnosticView {
                diagnostic: d.clone(),
                routes,
            }
        })
        .collect();
    ErrorsView {
        count: errors.len(),
        errors,
    }
}

/// A live entrypoint.
#[derive(Debug, Serialize)]
pub struct EntryPointView {
    /// `web` or `websecure`.
    pub name: &'static str,
    /// The address it listens on.
    pub address: Option<SocketAddr>,
    /// Client connections open now.
    pub open_connections: i64,
    /// Its requests, errors and latency.
    pub live: LiveFigures,
}

/// The last publish.
#[derive(Debug, Serialize, Default, Clone)]
pub struct ReloadView {
    /// When, Unix seconds (0: not yet).
    pub at_unix: f64,
    /// How long the compile and publish took, milliseconds.
    pub duration_ms: f64,
    /// `routes` for a full compile, `endpoints` for an endpoint-only update,
    /// `diagnostics` when only the diagnostics changed.
    pub kind: &'static str,
}

/// The overview page.
#[derive(Debug, Serialize)]
pub struct Overview {
    /// sluice's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: u64,
    /// Whether the first table is published.
    pub ready: bool,
    /// The entrypoints.
    pub entrypoints: Vec<EntryPointView>,
    /// The configuration's health.
    pub config: ConfigView,
    /// The first failing routes, services, middlewares and certificates, with why.
    pub failing: Vec<FailingItem>,
}

/// The configuration's health on the overview.
#[derive(Debug, Serialize)]
pub struct ConfigView {
    /// The last publish.
    pub last_reload: ReloadView,
    /// Routing tables published.
    pub reloads: u64,
    /// Compiles that failed as a whole.
    pub reload_failures: u64,
    /// Endpoint-only updates.
    pub endpoint_updates: u64,
    /// Distinct objects with an error diagnostic.
    pub rejected_objects: usize,
    /// Diagnostics of any severity.
    pub diagnostics: usize,
    /// Routes in the table.
    pub routes: usize,
    /// Of which failing.
    pub failing_routes: usize,
    /// Service ports routed to.
    pub services: usize,
    /// Of which failing.
    pub failing_services: usize,
    /// Middleware objects and missing references.
    pub middlewares: usize,
    /// Certificates served.
    pub certificates: usize,
}

/// Something failing, for the overview's list.
#[derive(Debug, Serialize)]
pub struct FailingItem {
    /// `route`, `service`, `middleware` or `certificate` (a certificate
    /// close to expiry is listed too, as a warning).
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// Why.
    pub reasons: Vec<String>,
}

/// How many failing items the overview lists.
const FAILING_LISTED: usize = 25;

/// The overview.
pub(super) fn overview(state: &AdminState) -> Overview {
    let table = state.table.load();
    let routes = route_views(state, &table);
    let services = services(state, None);
    let middlewares = middlewares(state);
    let certificates = certificates(state, crate::admin::unix_now() as i64);
    let diagnostics = state.diagnostics.load();
    let rejected: HashSet<&ObjectRef> = diagnostics
        .iter()
        .filter(|d| d.severity == crate::router::Severity::Error)
        .map(|d| &d.object)
        .collect();
    let mut failing = Vec::new();
    for r in routes.iter().filter(|r| r.health.failing()) {
        failing.push(FailingItem {
            kind: "route",
            name: r.info.name.clone(),
            reasons: r.health.reasons.clone(),
        });
    }
    for s in services.iter().filter(|s| s.health.failing()) {
        failing.push(FailingItem {
            kind: "service",
            name: s.id.clone(),
            reasons: s.health.reasons.clone(),
        });
    }
    for m in middlewares.iter().filter(|m| m.health.failing()) {
        failing.push(FailingItem {
            kind: "middleware",
            name: format!("{}/{}", m.namespace, m.name),
            reasons: m.health.reasons.clone(),
        });
    }
    for c in certificates.iter().filter(|c| c.health.state != "ok") {
        failing.push(FailingItem {
            kind: "certificate",
            name: c.secret.clone().unwrap_or_else(|| "default".to_owned()),
            reasons: c.health.reasons.clone(),
        });
    }
    let failing_routes = routes.iter().filter(|r| r.health.failing()).count();
    let failing_services = services.iter().filter(|s| s.health.failing()).count();
    failing.truncate(FAILING_LISTED);
    let [web, websecure] = state.live.entrypoints();
    let control = &state.metrics.control;
    Overview {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.live.uptime().as_secs(),
        ready: state.ready.load(std::sync::atomic::Ordering::Acquire),
        entrypoints: vec![
            EntryPointView {
                name: "web",
                address: state.entrypoints.web,
                open_connections: state.entrypoints.web_open.get(),
                live: web,
            },
            EntryPointView {
                name: "websecure",
                address: state.entrypoints.websecure,
                open_connections: state.entrypoints.websecure_open.get(),
                live: websecure,
            },
        ],
        config: ConfigView {
            last_reload: state.last_reload.load().as_ref().clone(),
            reloads: control.reloads.get(),
            reload_failures: control.reload_failures.get(),
            endpoint_updates: control.endpoint_updates.get(),
            rejected_objects: rejected.len(),
            diagnostics: diagnostics.len(),
            routes: routes.len(),
            failing_routes,
            services: services.len(),
            failing_services,
            middlewares: middlewares.len(),
            certificates: certificates.len(),
        },
        failing,
    }
}
