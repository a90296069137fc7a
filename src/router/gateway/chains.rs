//! One route per rule match and entrypoint: its filters as a middleware
//! chain, its backendRefs as its target or a weighted split.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::backends::{Backends, ServiceBackend};
use crate::gateway::parse_duration;
use crate::gateway::resolve::{
    Entrypoint, FilterTarget, ResolvedBackend, ResolvedRoute, ResolvedRule,
};
use crate::gateway::types::{
    FilterAction, HttpRouteFilter, HttpRouteMatch, HttpRouteRule, PathMatchType,
};
use crate::metrics::RouteStats;
use crate::middleware::build::Session;
use crate::middleware::split::WeightedSplit;
use crate::middleware::{Chain, Environment, InlineStep, Middleware};
use crate::router::{Diagnostic, DiagnosticKind, ObjectRef, Registries, Route, Target};
use crate::upstream::{ClientKey, UpstreamClient};

/// Where a route comes from: one match of one rule of one route, on one entrypoint.
pub(super) struct Site<'r> {
    pub resolved: &'r ResolvedRoute,
    pub rule: &'r HttpRouteRule,
    pub rule_refs: &'r ResolvedRule,
    pub rule_index: usize,
    pub match_index: usize,
    pub matched: &'r HttpRouteMatch,
    pub entrypoint: Entrypoint,
    pub listener_port: i32,
    pub first_host: Option<String>,
}

impl Site<'_> {
    fn object(&self) -> ObjectRef {
        ObjectRef::namespaced(
            "HTTPRoute",
            &self.resolved.id.namespace,
            &self.resolved.id.name,
        )
    }

    fn namespace(&self) -> &str {
        &self.resolved.id.namespace
    }

    /// The rule's label: its `name`, else its index.
    fn rule_label(&self) -> String {
        match &self.rule.name {
            Some(name) => name.clone(),
            None => format!("rule{}", self.rule_index),
        }
    }

    /// The owner name built middlewares keep their state under.
    fn owner(&self) -> String {
        format!(
            "httproute/{}/{}/match{}",
            self.resolved.id.name,
            self.rule_label(),
            self.match_index
        )
    }

    /// The prefix a `ReplacePrefixMatch` replaces (PathPrefix matches only).
    fn matched_prefix(&self) -> Value {
        match self.matched.path.type_ {
            PathMatchType::PathPrefix => Value::String(self.matched.path.value.clone()),
            _ => Value::Null,
        }
    }
}

/// The routes built in this compile, by route, rule, match and entrypoint.
#[derive(Default)]
pub(super) struct RouteCache {
    routes: HashMap<(String, String, usize, usize, Entrypoint), Arc<Route>>,
}

/// A chain being assembled.
#[derive(Default)]
struct Steps {
    steps: Vec<Arc<dyn Middleware>>,
    names: Vec<String>,
    broken: Option<String>,
}

impl Steps {
    fn push(&mut self, name: String, built: Result<Arc<dyn Middleware>, String>) {
        self.names.push(name);
        match built {
            Ok(step) => self.steps.push(step),
            Err(e) => {
                self.broken.get_or_insert(e);
            }
        }
    }

    fn chain(self) -> Chain {
        let names: Arc<[String]> = self.names.into();
        match self.broken {
            Some(reason) => Chain::Broken {
                reason: reason.into(),
                names,
            },
            None if self.steps.is_empty() => Chain::Empty,
            None => Chain::Ready {
                steps: self.steps.into(),
                names,
            },
        }
    }
}

impl RouteCache {
    /// The route of `site`, built once per compile.
    pub(super) fn route<E: Environment>(
        &mut self,
        site: &Site<'_>,
        backends: &Backends,
        session: &mut Session<'_, E>,
        registries: &Registries,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Arc<Route> {
        let key = (
            site.resolved.id.namespace.clone(),
            site.resolved.id.name.clone(),
            site.rule_index,
            site.match_index,
            site.entrypoint,
        );
        if let Some(route) = self.routes.get(&key) {
            return route.clone();
        }
        let route = build_route(site, backends, session, registries, diagnostics);
        self.routes.insert(key, route.clone());
        route
    }
}

fn build_route<E: Environment>(
    site: &Site<'_>,
    backends: &Backends,
    session: &mut Session<'_, E>,
    registries: &Registries,
    diagnostics: &mut Vec<Diagnostic>,
) -> Arc<Route> {
    let name: Arc<str> = format!(
        "httproute-{}-{}-{}-match{}",
        site.resolved.id.namespace,
        site.resolved.id.name,
        site.rule_label(),
        site.match_index
    )
    .into();
    let mut steps = Steps::default();
    let timeouts = site.rule.timeouts.as_ref();
    if let Some(request) = timeouts.and_then(|t| t.request.as_deref()) {
        timeout_step(site, session, &mut steps, "request-timeout", request);
    }
    let redirects = site
        .rule
        .filters
        .iter()
        .any(|f| matches!(f.action(), Ok(FilterAction::RequestRedirect(_))));
    filter_steps(
        site,
        "",
        &site.rule.filters,
        &site.rule_refs.filters,
        session,
        &mut steps,
    );
    if let Some(retry) = &site.rule.retry {
        // Gateway `attempts` counts retries; Traefik's counts tries.
        let attempts = retry.attempts.unwrap_or(1).max(0) + 1;
        let codes: Vec<String> = retry.codes.iter().map(ToString::to_string).collect();
        let mut config = json!({
            "attempts": attempts,
            "status": codes,
            "retryNonIdempotentMethod": true,
        });
        if let Some(backoff) = &retry.backoff {
            config["initialInterval"] = Value::String(backoff.clone());
        }
        inline(site, session, &mut steps, "retry", "retry", config);
    }
    if let Some(backend) = timeouts.and_then(|t| t.backend_request.as_deref()) {
        timeout_step(site, session, &mut steps, "backend-timeout", backend);
    }
    // The backends: one plain backend is the route's own target; several, or
    // one with filters, go through a split step.
    // Each resolved backendRef with the filters written on it.
    let weighted: Vec<(&ResolvedBackend, &[HttpRouteFilter])> = site
        .rule_refs
        .backends
        .iter()
        .zip(&site.rule.backend_refs)
        .filter(|(b, _)| b.weight > 0)
        .map(|(b, written)| (b, written.filters.as_slice()))
        .collect();
    let plain = registries
        .clients
        .get(&ClientKey::http())
        .unwrap_or_else(|_| Arc::new(UpstreamClient::new(&Default::default())));
    let stats = registries
        .route_stats
        .get_or_insert_with(&name, RouteStats::default);
    let (target, client, service) = match weighted.as_slice() {
        _ if redirects => (
            super::unavailable(500, "the rule redirects".to_owned()),
            plain.clone(),
            None,
        ),
        [] => {
            let reason = if site.rule_refs.backends.is_empty() {
                "the rule has no backendRefs"
            } else {
                "every backendRef of the rule has weight 0"
            };
            (
                super::unavailable(500, reason.to_owned()),
                plain.clone(),
                None,
            )
        }
        [(one, _)] if one.filters.is_empty() => backend_target(one, backends, &plain),
        many => {
            let mut entries = Vec::with_capacity(many.len());
            for (i, (backend, filters)) in many.iter().enumerate() {
                let (target, client, key) = backend_target(backend, backends, &plain);
                let mut own = Steps::default();
                let prefix = format!("backend{i}-");
                filter_steps(site, &prefix, filters, &backend.filters, session, &mut own);
                let entry = Arc::new(site_route(
                    site,
                    name.clone(),
                    (target, client, key),
                    own.chain(),
                    stats.clone(),
                ));
                let weight = u32::try_from(backend.weight).unwrap_or(0);
                entries.push((weight, entry));
            }
            let first = entries.first().map(|(_, r)| r.clone());
            match WeightedSplit::new(entries) {
                Some(split) => {
                    steps.names.push("backendRefs".to_owned());
                    steps.steps.push(Arc::new(split));
                }
                None => {
                    steps
                        .broken
                        .get_or_insert_with(|| "no backendRef has a weight".to_owned());
                }
            }
            match first {
                Some(first) => (
                    first.target.clone(),
                    first.client.clone(),
                    first.service.clone(),
                ),
                None => (
                    super::unavailable(500, "no backend".to_owned()),
                    plain.clone(),
                    None,
                ),
            }
        }
    };
    if let Some(reason) = &steps.broken {
        diagnostics.push(Diagnostic::error(
            site.object(),
            DiagnosticKind::InvalidMiddleware,
            format!(
                "rule {}: {reason}; its requests get 500 until it is fixed",
                site.rule_label()
            ),
        ));
    }
    Arc::new(site_route(
        site,
        name,
        (target, client, service),
        steps.chain(),
        stats,
    ))
}

/// A route of `site` that sends to `to` (target, client, backend key)
/// through `chain`.
fn site_route(
    site: &Site<'_>,
    name: Arc<str>,
    to: (
        Target,
        Arc<UpstreamClient>,
        Option<crate::upstream::BackendKey>,
    ),
    chain: Chain,
    stats: Arc<RouteStats>,
) -> Route {
    let (target, client, service) = to;
    Route {
        name,
        host: site.first_host.clone(),
        path: Some(site.matched.path.value.clone()),
        kind: Some(super::path_kind(&site.matched.path.type_)),
        ingress: site.object(),
        service,
        target,
        client,
        entrypoints: super::entrypoints(site.entrypoint),
        redirect_https: false,
        redirect_keeps_trailing_slash: false,
        middlewares: chain,
        sticky: None,
        balance: None,
        pass_host_header: true,
        stats,
    }
}

/// Where one backendRef sends: its Service's backend, or 500 for a
/// reference that does not resolve.
fn backend_target(
    backend: &ResolvedBackend,
    backends: &Backends,
    plain: &Arc<UpstreamClient>,
) -> (
    Target,
    Arc<UpstreamClient>,
    Option<crate::upstream::BackendKey>,
) {
    match &backend.target {
        Ok(port) => match backends.get(port) {
            Some(ServiceBackend {
                key,
                target,
                client,
            }) => (target.clone(), client.clone(), Some(key.clone())),
            None => (
                super::unavailable(
                    500,
                    format!("Service {}/{} is not resolved", port.namespace, port.name),
                ),
                plain.clone(),
                None,
            ),
        },
        Err(e) => (super::unavailable(500, e.to_string()), plain.clone(), None),
    }
}

fn timeout_step<E: Environment>(
    site: &Site<'_>,
    session: &mut Session<'_, E>,
    steps: &mut Steps,
    name: &str,
    value: &str,
) {
    // `0s` (or a value the resolver would have refused) adds nothing.
    if parse_duration(value).map_or(true, |d| d.is_zero()) {
        return;
    }
    inline(
        site,
        session,
        steps,
        name,
        "gatewayTimeout",
        json!({ "timeout": value }),
    );
}

fn inline<E: Environment>(
    site: &Site<'_>,
    session: &mut Session<'_, E>,
    steps: &mut Steps,
    name: &str,
    kind: &str,
    config: Value,
) {
    let step = InlineStep {
        name: name.to_owned(),
        kind: kind.to_owned(),
        config,
    };
    let built = session
        .step(site.namespace(), &site.owner(), &step)
        .map_err(|e| e.to_string());
    steps.push(format!("{}/{}", site.owner(), name), built);
}

/// Appends the steps of `filters` (a rule's or a backendRef's) in order;
/// every `RequestMirror` of the list becomes one step at the first one's place.
fn filter_steps<E: Environment>(
    site: &Site<'_>,
    prefix: &str,
    filters: &[HttpRouteFilter],
    targets: &[FilterTarget],
    session: &mut Session<'_, E>,
    steps: &mut Steps,
) {
    let mirrors: Vec<Value> = filters
        .iter()
        .zip(targets)
        .filter_map(|(f, t)| match (f.action(), t) {
            (Ok(FilterAction::RequestMirror(m)), FilterTarget::Mirror(Ok(port))) => {
                let mut entry = json!({
                    "namespace": port.namespace,
                    "service": port.name,
                    "port": port.port,
                });
                if let Some(percent) = m.percent {
                    entry["percent"] = json!(percent);
                }
                if let Some(fraction) = &m.fraction {
                    entry["fraction"] =
                        json!({ "numerator": fraction.numerator, "denominator": fraction.denominator });
                }
                Some(entry)
            }
            _ => None,
        })
        .collect();
    let mut mirrored = false;
    let scheme = match site.entrypoint {
        Entrypoint::Http => "http",
        Entrypoint::Https => "https",
    };
    for (i, filter) in filters.iter().enumerate() {
        let name = format!("{prefix}filter{i}");
        let Ok(action) = filter.action() else {
            // The resolver drops rules with unusable filters; this is a guard.
            steps.push(name, Err("unusable filter".to_owned()));
            continue;
        };
        let with = |value: Value, extra: &[(&str, Value)]| {
            let mut value = value;
            if let Value::Object(map) = &mut value {
                for (k, v) in extra {
                    map.insert((*k).to_owned(), v.clone());
                }
            }
            value
        };
        match action {
            FilterAction::RequestHeaderModifier(m) => {
                let config = serde_json::to_value(m).unwrap_or(Value::Null);
                inline(site, session, steps, &name, "gatewayRequestHeaders", config);
            }
            FilterAction::ResponseHeaderModifier(m) => {
                let config = serde_json::to_value(m).unwrap_or(Value::Null);
                inline(
                    site,
                    session,
                    steps,
                    &name,
                    "gatewayResponseHeaders",
                    config,
                );
            }
            FilterAction::RequestRedirect(r) => {
                let config = with(
                    serde_json::to_value(r).unwrap_or(Value::Null),
                    &[
                        ("matchedPrefix", site.matched_prefix()),
                        ("listenerPort", json!(site.listener_port)),
                        ("listenerScheme", json!(scheme)),
                    ],
                );
                inline(site, session, steps, &name, "gatewayRedirect", config);
            }
            FilterAction::UrlRewrite(u) => {
                let config = with(
                    serde_json::to_value(u).unwrap_or(Value::Null),
                    &[("matchedPrefix", site.matched_prefix())],
                );
                inline(site, session, steps, &name, "gatewayRewrite", config);
            }
            FilterAction::Cors(c) => {
                let config = serde_json::to_value(c).unwrap_or(Value::Null);
                inline(site, session, steps, &name, "gatewayCors", config);
            }
            FilterAction::RequestMirror(_) => {
                if !mirrored && !mirrors.is_empty() {
                    mirrored = true;
                    let config = json!({ "mirrors": mirrors });
                    inline(
                        site,
                        session,
                        steps,
                        &format!("{prefix}mirror"),
                        "gatewayMirror",
                        config,
                    );
                }
            }
            FilterAction::ExtensionRef(r) => {
                let reference = format!("{}@kubernetescrd", r.name);
                let built = match targets.get(i) {
                    Some(FilterTarget::Middleware(Err(e))) => Err(e.to_string()),
                    _ => session
                        .resolve(site.namespace(), &reference)
                        .map_err(|e| e.to_string()),
                };
                steps.push(format!("{}/{}", site.namespace(), r.name), built);
            }
        }
    }
}
