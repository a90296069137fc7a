//! The route tester behind `/api/match`: which route a request would take and
//! why, found with the lookup the data plane runs
//! ([`crate::router::RouteTable::lookup_request`]: Ingress rules by host and
//! path, HTTPRoute matches by host, path, method, headers and query).

use std::net::SocketAddr;

use serde::Serialize;

use super::views::{self, Health};
use super::AdminState;
use crate::gateway::resolve::{Resolution, ResolvedRoute, RouteParentStatus};
use crate::gateway::types::{HttpRouteMatch, PathMatchType, StringMatchType};
use crate::proxy::request::{match_path, normalize_path};
use crate::router::{EntryPoint, ObjectRef, PathKind, RequestFacts, Route, Target};

/// A request to test.
#[derive(Debug, Default)]
pub struct MatchQuery {
    /// The Host (a port is ignored, as for real requests).
    pub host: String,
    /// The path, as a client would send it (dot-segments are removed first;
    /// a `?query` on it is the query when [`MatchQuery::query`] is `None`).
    pub path: String,
    /// The method (HTTPRoute matches may ask for one).
    pub method: String,
    /// `web` (default) or `websecure`.
    pub entrypoint: EntryPoint,
    /// Header fields given with the request (HTTPRoute matches may ask for
    /// them; Ingress rules do not look at them).
    pub headers: Vec<(String, String)>,
    /// The raw query string, without `?` (HTTPRoute matches may ask for
    /// parameters).
    pub query: Option<String>,
}

/// The request facts HTTPRoute matches read, from a [`MatchQuery`].
struct Facts<'a> {
    method: &'a str,
    query: Option<&'a str>,
    headers: &'a [(String, String)],
}

impl RequestFacts for Facts<'_> {
    fn method(&self) -> &str {
        self.method
    }

    fn query(&self) -> Option<&str> {
        self.query
    }

    fn any_header(&self, name: &str, visit: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .any(|(_, v)| visit(v.as_bytes()))
    }
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
    /// The query string tested, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The entrypoint tested.
    pub entrypoint: &'static str,
    /// The matched route's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The object the route came from (its Ingress, or its HTTPRoute: see
    /// `kind`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<ObjectRef>,
    /// The kind of that object: `Ingress` or `HTTPRoute`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The rule: its host pattern (`null`: any host), path and path type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<Rule>,
    /// For an HTTPRoute: its rule and match, and the route's parents' status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteMatchView>,
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
    /// Whether the method, headers and query took part: HTTPRoutes are
    /// served on the entrypoint (Ingress rules never look at them).
    pub headers_considered: bool,
}

/// The HTTPRoute rule and match a request took.
#[derive(Debug, Serialize)]
pub struct HttpRouteMatchView {
    /// The route's namespace.
    pub namespace: String,
    /// The route's name.
    pub name: String,
    /// The rule's index in `spec.rules`.
    pub rule_index: usize,
    /// The rule's `name`, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_name: Option<String>,
    /// The match's index in the rule's `matches`.
    pub match_index: usize,
    /// The match, as written (defaults applied): path, method, headers, query.
    #[serde(rename = "match")]
    pub matched: HttpRouteMatch,
    /// The route's parents as sluice reports them (Accepted, ResolvedRefs).
    pub parents: Vec<RouteParentStatus>,
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
    let (raw_path, query_string) = match (query.path.split_once('?'), &query.query) {
        (Some((path, _)), Some(q)) => (path, Some(q.as_str())),
        (Some((path, q)), None) => (path, Some(q)),
        (None, q) => (query.path.as_str(), q.as_deref()),
    };
    let normalized = normalize_path(raw_path);
    let path = match_path(&normalized).into_owned();
    let entrypoint = query.entrypoint.as_str();
    let resolution = table.gateway_resolution();
    let gateway_served = resolution
        .programmed_listeners()
        .any(|(_, l)| l.entrypoint.map(super::gateway::entrypoint_name) == Some(entrypoint));
    let mut result = MatchResult {
        matched: false,
        host: query.host.clone(),
        path: query.path.clone(),
        match_path: path.clone(),
        method: query.method.clone(),
        query: query_string.map(str::to_owned),
        entrypoint,
        route: None,
        ingress: None,
        kind: None,
        rule: None,
        http_route: None,
        host_match: None,
        priority: None,
        reason: String::new(),
        middlewares: Vec::new(),
        service: None,
        endpoints: Vec::new(),
        redirect_https: false,
        health: None,
        headers_considered: gateway_served,
    };
    let facts = Facts {
        method: &query.method,
        query: query_string,
        headers: &query.headers,
    };
    let Some(route) = table
        .lookup_request(query.entrypoint, &query.host, &path, &facts)
        .cloned()
    else {
        let what = if gateway_served {
            "no Ingress rule (host and path) and no HTTPRoute match (host, path, \
             method, headers and query)"
        } else {
            "no route"
        };
        result.reason = format!(
            "{what} on entrypoint {entrypoint} matches host {:?} and path {:?}: \
             the request would get 404",
            query.host, path
        );
        return result;
    };
    let priority = table.priority_of(&route);
    let (host_match, rule_host) = match super::gateway::origin(resolution, &route) {
        Some((resolved, rule_index, match_index)) => {
            let (host_match, rule_host) =
                http_route_host(resolution, resolved, query.entrypoint, &query.host);
            let spec_rule = &resolved.route.spec.rules[rule_index];
            let matched = spec_rule.matches[match_index].clone();
            result.reason = explain_http_route(
                resolved,
                rule_index,
                match_index,
                &matched,
                host_match,
                rule_host.as_deref(),
                &query.host,
                entrypoint,
            );
            result.http_route = Some(HttpRouteMatchView {
                namespace: resolved.id.namespace.clone(),
                name: resolved.id.name.clone(),
                rule_index,
                rule_name: spec_rule.name.clone(),
                match_index,
                matched,
                parents: resolved.status.parents.clone(),
            });
            (host_match, rule_host)
        }
        None => {
            let host_match = match route.host.as_deref() {
                None => "any",
                Some(h) if h.starts_with("*.") => "wildcard",
                Some(_) => "exact",
            };
            result.reason = explain(&route, host_match, priority, &query.host, entrypoint);
            (host_match, route.host.clone())
        }
    };
    result.matched = true;
    result.route = Some(route.name.to_string());
    result.ingress = Some(route.ingress.clone());
    result.kind = Some(route.ingress.kind.clone());
    result.rule = Some(Rule {
        host: rule_host,
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

/// How the request host matched an HTTPRoute's hostnames on the entrypoint's
/// listeners: `exact`, `wildcard` (any number of labels, as in Gateway API)
/// or `any`, with the hostname that matched.
fn http_route_host(
    resolution: &Resolution,
    resolved: &ResolvedRoute,
    entrypoint: EntryPoint,
    host: &str,
) -> (&'static str, Option<String>) {
    let host = request_host(host);
    let mut hostnames: Vec<&str> = Vec::new();
    for (_, listener) in resolution.programmed_listeners() {
        if listener.entrypoint.map(super::gateway::entrypoint_name) != Some(entrypoint.as_str()) {
            continue;
        }
        for attached in &listener.routes {
            let ours = resolution
                .routes
                .get(attached.route)
                .is_some_and(|r| std::ptr::eq(r, resolved));
            if ours {
                hostnames.extend(attached.hostnames.iter().map(String::as_str));
            }
        }
    }
    if let Some(exact) = hostnames.iter().find(|h| **h == host) {
        return ("exact", Some((*exact).to_owned()));
    }
    let wildcard = hostnames
        .iter()
        .filter(|h| {
            h.strip_prefix("*.").is_some_and(|suffix| {
                host.len() > suffix.len() + 1
                    && host.ends_with(suffix)
                    && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
            })
        })
        .max_by_key(|h| h.len());
    match wildcard {
        Some(w) => ("wildcard", Some((*w).to_owned())),
        None => ("any", None),
    }
}

/// A Host value as routing sees it: lowercase, without port or trailing dot
/// (an IPv6 literal keeps its brackets; no route hostname is an address).
fn request_host(host: &str) -> String {
    let host = match host.strip_prefix('[') {
        Some(rest) => return format!("[{}]", rest.split(']').next().unwrap_or(rest)),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[allow(clippy::too_many_arguments)]
fn explain_http_route(
    resolved: &ResolvedRoute,
    rule_index: usize,
    match_index: usize,
    matched: &HttpRouteMatch,
    host_match: &str,
    rule_host: Option<&str>,
    host: &str,
    entrypoint: &str,
) -> String {
    let rule_name = resolved.route.spec.rules[rule_index]
        .name
        .as_deref()
        .map(|n| format!(" ({n:?})"))
        .unwrap_or_default();
    let object = format!(
        "HTTPRoute {}/{}, rule {rule_index}{rule_name}, match {match_index}",
        resolved.id.namespace, resolved.id.name
    );
    let host_part = match (host_match, rule_host) {
        ("exact", Some(h)) => format!("host {host:?} equals the route's hostname {h:?}"),
        ("wildcard", Some(h)) => {
            format!("host {host:?} matches the wildcard hostname {h:?} (no exact hostname matched)")
        }
        _ => "neither the route nor its listener has a hostname, so it matches any host".to_owned(),
    };
    let p = &matched.path.value;
    let path_part = match &matched.path.type_ {
        PathMatchType::Exact => format!("the path equals the Exact path {p:?}"),
        PathMatchType::RegularExpression => {
            format!("the path matches the RegularExpression {p:?}")
        }
        _ => format!("{p:?} is the longest PathPrefix that matches element by element"),
    };
    let mut conditions: Vec<String> = Vec::new();
    if let Some(method) = &matched.method {
        conditions.push(format!("the method is {method}"));
    }
    let verb = |t: &StringMatchType| match t {
        StringMatchType::RegularExpression => "matches",
        _ => "equals",
    };
    for h in &matched.headers {
        conditions.push(format!(
            "header {} {} {:?}",
            h.name,
            verb(&h.type_),
            h.value
        ));
    }
    for q in &matched.query_params {
        conditions.push(format!(
            "query parameter {} {} {:?}",
            q.name,
            verb(&q.type_),
            q.value
        ));
    }
    let conditions_part = if conditions.is_empty() {
        "the match has no method, header or query condition".to_owned()
    } else {
        conditions.join(", ")
    };
    format!(
        "{object}: {host_part}; {path_part}; {conditions_part}; served on entrypoint \
         {entrypoint} (HTTPRoute precedence: the listener's hostname, the route's \
         hostname, Exact before the longest PathPrefix, then a method, more headers, \
         more query parameters, the oldest route)"
    )
}
