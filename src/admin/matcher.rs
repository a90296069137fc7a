//! The route tester behind `/api/match`: which route a request would take and
//! why, found with the lookup the data plane runs.

use std::net::SocketAddr;

use serde::Serialize;

use super::views::{self, Health};
use super::AdminState;
use crate::proxy::request::{match_path, normalize_path};
use crate::router::{EntryPoint, ObjectRef, PathKind, Route, Target};

/// A request to test.
#[derive(Debug, Default)]
pub struct MatchQuery {
    /// The Host (a port is ignored, as for real requests).
    pub host: String,
    /// The path, as a client would send it (dot-segments are removed first).
    pub path: String,
    /// The method (routing does not depend on it; it is echoed).
    pub method: String,
    /// `web` (default) or `websecure`.
    pub entrypoint: EntryPoint,
    /// Header fields given with the request (routing does not depend on them).
    pub headers: Vec<(String, String)>,
}

/// What the tester answers.
#[derive(Debug, Serialize)]
pub struct MatchResult {
    /// Whether a route matched.
    pub matched: bool,
    /// The host tested.
    pub host: String,
    /// The path tested, and the path the lookup used.
    pub path: String,
    /// The path after dot-segment removal and canonicalisation.
    pub match_path: String,
    /// The method tested.
    pub method: String,
    /// The entrypoint tested.
    pub entrypoint: &'static str,
    /// The matched route's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The object the route came from (its Ingress).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ObjectRef>,
    /// The rule: its host pattern (`null`: any host), path and path type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// `exact`, `wildcard` or `any` (a rule without host, or the default backend).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_match: Option<&'static str>,
    /// The route's explicit priority, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Why this route (or why none), in words.
    pub reason: String,
    /// The middlewares the request would run through, in order.
    pub middlewares: Vec<String>,
    /// The Service port it would be sent to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The endpoints that could take it now.
    pub endpoints: Vec<SocketAddr>,
    /// Plain-HTTP requests to this route get a redirect to HTTPS instead.
    pub redirect_https: bool,
    /// The route's health, as every page shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Headers given with the test; Ingress routing does not look at them.
    pub headers_considered: bool,
}

/// The rule that matched.
#[derive(Debug, Serialize)]
pub struct Rule {
    /// Host pattern; `null` matches any host.
    pub host: Option<String>,
    /// Path; `null` for the default backend.
    pub path: Option<String>,
    /// Path type.
    pub path_type: Option<PathKind>,
}

/// Finds the route `query` would take.
pub fn find(state: &AdminState, query: &MatchQuery) -> MatchResult {
    let table = state.table.load();
    let normalized = normalize_path(&query.path);
    let path = match_path(&normalized).into_owned();
    let entrypoint = query.entrypoint.as_str();
    let mut result = MatchResult {
        matched: false,
        host: query.host.clone(),
        path: query.path.clone(),
        match_path: path.clone(),
        method: query.method.clone(),
        entrypoint,
        route: None,
        ingress: None,
        rule: None,
        host_match: None,
        priority: None,
        reason: String::new(),
        middlewares: Vec::new(),
        service: None,
        endpoints: Vec::new(),
        redirect_https: false,
        health: None,
        headers_considered: false,
    };
    let Some(route) = table.lookup(query.entrypoint, &query.host, &path).cloned() else {
        result.reason = format!(
            "no route on entrypoint {entrypoint} matches host {:?} and path {:?}: \
             the request would get 404",
            query.host, path
        );
        return result;
    };
    let host_match = match route.host.as_deref() {
        None => "any",
        Some(h) if h.starts_with("*.") => "wildcard",
        Some(_) => "exact",
    };
    let priority = table.priority_of(&route);
    result.reason = explain(&route, host_match, priority, &query.host, entrypoint);
    result.matched = true;
    result.route = Some(route.name.to_string());
    result.ingress = Some(route.ingress.clone());
    result.rule = Some(Rule {
        host: route.host.clone(),
        path: route.path.clone(),
        path_type: route.kind,
    });
    result.host_match = Some(host_match);
    result.priority = priority;
    result.middlewares = route.middlewares.names().to_vec();
    result.service = route.service.as_ref().map(ToString::to_string);
    result.redirect_https = route.redirect_https && query.entrypoint == EntryPoint::Web;
    if let Target::Backend(backend) = &route.target {
        let set = backend.endpoints();
        result.endpoints = if set.external.is_some() {
            backend.resolved().addrs.clone()
        } else {
            set.addrs.clone()
        };
    }
    let diagnostics = state.diagnostics.load();
    let index = views::DiagnosticIndex::new(&diagnostics);
    let figures = state.live.route(&route.name);
    let route_diagnostics = views::route_diagnostics(&route, &index);
    result.health = Some(views::route_health(&route, &figures, &route_diagnostics));
    result
}

fn explain(
    route: &Route,
    host_match: &str,
    priority: Option<i64>,
    host: &str,
    entrypoint: &str,
) -> String {
    let host_part = match host_match {
        "exact" => format!(
            "host {host:?} equals the rule's host {:?}",
            route.host.as_deref().unwrap_or("")
        ),
        "wildcard" => format!(
            "host {host:?} matches the wildcard {:?} (no exact host rule matched)",
            route.host.as_deref().unwrap_or("")
        ),
        _ => "the rule has no host, so it matches any host".to_owned(),
    };
    let path_part = match (route.kind, route.path.as_deref()) {
        (Some(PathKind::Exact), Some(p)) => format!("the path equals the Exact path {p:?}"),
        (Some(PathKind::Prefix), Some(p)) => format!(
            "{p:?} is the longest Prefix path ({} characters) that matches element by element",
            p.len()
        ),
        (Some(PathKind::Regex), Some(p)) => {
            format!("the path matches the regular expression {p:?}")
        }
        _ => "no rule matched, so the default backend takes it".to_owned(),
    };
    let priority_part = priority
        .map(|p| format!("; explicit priority {p} ranks it"))
        .unwrap_or_default();
    format!(
        "{host_part}; {path_part}{priority_part}; served on entrypoint {entrypoint} \
         (Exact beats Prefix, longer paths beat shorter ones)"
    )
}
