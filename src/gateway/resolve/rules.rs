//! An HTTPRoute's rules: which are valid (the others are dropped), and what
//! each reference in them resolves to — `backendRefs` to Services (with
//! ReferenceGrants across namespaces), `RequestMirror` backends and
//! `ExtensionRef` Middlewares.
//!
//! A rule is dropped (never served) for a value sluice does not know or
//! cannot honour: an unknown filter or match type, a filter without its
//! configuration, `RequestRedirect` with `URLRewrite`, an invalid regular
//! expression or duration. A reference that does not resolve does not drop
//! its rule: the compiler answers 500 for the share of traffic it would have
//! had (and for requests through an unresolved `ExtensionRef`).

use k8s_openapi::api::core::v1::Service;

use super::conditions::reasons;
use super::index::Index;
use super::refs::{NamespacedName, RefFrom, RefTo};
use crate::gateway::types::{
    BackendObjectReference, FilterAction, FilterError, FilterType, HttpPathModifier,
    HttpRouteFilter, HttpRouteMatch, HttpRouteRule, LocalObjectReference, PathMatchType,
    PathModifierType, StringMatchType,
};
use crate::gateway::{parse_duration, GatewayKind, HttpRoute, GROUP};
use crate::middleware::object as middleware;

/// The size limit of a compiled regular expression (as the Ingress compiler's).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The methods a match may name.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// A Service port a reference resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServicePort {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service port (`spec.ports[].port`, not the target port).
    pub port: i32,
}

/// Why a reference in a route does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// A group or kind sluice does not serve (`InvalidKind`).
    #[error("{kind:?} in group {group:?} is not a supported kind")]
    InvalidKind {
        /// The group.
        group: String,
        /// The kind.
        kind: String,
    },
    /// Another namespace without a ReferenceGrant (`RefNotPermitted`).
    #[error("no ReferenceGrant in namespace {namespace:?} allows HTTPRoutes of {from:?} to refer to {kind} {name:?}")]
    RefNotPermitted {
        /// The route's namespace.
        from: String,
        /// The referent's namespace.
        namespace: String,
        /// The referent's kind.
        kind: &'static str,
        /// The referent's name.
        name: String,
    },
    /// The object does not exist (`BackendNotFound`).
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// The referent's kind.
        kind: &'static str,
        /// The referent's namespace.
        namespace: String,
        /// The referent's name.
        name: String,
    },
    /// A Service reference without `port` (`BackendNotFound`).
    #[error("the reference to Service {namespace}/{name} has no port")]
    PortRequired {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
    },
    /// The Service has no such port (`BackendNotFound`).
    #[error("Service {namespace}/{name} has no port {port}")]
    NoSuchPort {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        name: String,
        /// The port asked for.
        port: i32,
    },
}

impl RefError {
    /// The route `ResolvedRefs` reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidKind { .. } => reasons::INVALID_KIND,
            Self::RefNotPermitted { .. } => reasons::REF_NOT_PERMITTED,
            Self::NotFound { .. } | Self::PortRequired { .. } | Self::NoSuchPort { .. } => {
                reasons::BACKEND_NOT_FOUND
            }
        }
    }
}

/// What a filter refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterTarget {
    /// Nothing (header modifiers, redirects, rewrites, CORS).
    Inline,
    /// A `RequestMirror` backend (an unresolved one mirrors nothing).
    Mirror(Result<ServicePort, RefError>),
    /// An `ExtensionRef` Middleware (an unresolved one answers 500).
    Middleware(Result<NamespacedName, RefError>),
}

/// One `backendRefs[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedBackend {
    /// The weight (0 sends nothing).
    pub weight: i32,
    /// The Service port, or why the entry's share of traffic gets 500.
    pub target: Result<ServicePort, RefError>,
    /// What each of the entry's `filters` refers to, in order.
    pub filters: Vec<FilterTarget>,
}

/// Why a rule is dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// `UnsupportedValue` or `IncompatibleFilters`.
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

/// One `rules[]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    /// `Some` when the rule is not served, and why.
    pub dropped: Option<RuleError>,
    /// What each of the rule's `filters` refers to, in order.
    pub filters: Vec<FilterTarget>,
    /// Each `backendRefs` entry, in order.
    pub backends: Vec<ResolvedBackend>,
}

impl ResolvedRule {
    /// Every reference error in the rule (backends, then filters), in order.
    pub fn ref_errors(&self) -> impl Iterator<Item = &RefError> {
        fn filter_error(f: &FilterTarget) -> Option<&RefError> {
            match f {
                FilterTarget::Inline => None,
                FilterTarget::Mirror(r) => r.as_ref().err(),
                FilterTarget::Middleware(r) => r.as_ref().err(),
            }
        }
        let backends = self.backends.iter().flat_map(move |b| {
            b.target
                .as_ref()
                .err()
                .into_iter()
                .chain(b.filters.iter().filter_map(filter_error))
        });
        backends.chain(self.filters.iter().filter_map(filter_error))
    }
}

/// Resolves every rule of `route`.
pub(super) fn resolve(route: &HttpRoute, index: &Index<'_>) -> Vec<ResolvedRule> {
    route
        .spec
        .rules
        .iter()
        .map(|rule| ResolvedRule {
            dropped: validate(rule).err(),
            filters: rule
                .filters
                .iter()
                .map(|f| filter_target(route, f, index))
                .collect(),
            backends: rule
                .backend_refs
                .iter()
                .map(|b| ResolvedBackend {
                    weight: b.weight,
                    target: service_port(route, &b.object_ref(), index),
                    filters: b
                        .filters
                        .iter()
                        .map(|f| filter_target(route, f, index))
                        .collect(),
                })
                .collect(),
        })
        .collect()
}

/// Resolves a backend reference (a `backendRefs` entry or a mirror's) of `route`.
fn service_port(
    route: &HttpRoute,
    reference: &BackendObjectReference,
    index: &Index<'_>,
) -> Result<ServicePort, RefError> {
    if !reference.group.is_empty() || reference.kind != "Service" {
        return Err(RefError::InvalidKind {
            group: reference.group.clone(),
            kind: reference.kind.clone(),
        });
    }
    let namespace = reference.namespace.as_deref().unwrap_or(route.namespace());
    let permitted = index.grants.permits(
        RefFrom {
            group: GROUP,
            kind: HttpRoute::KIND,
            namespace: route.namespace(),
        },
        RefTo {
            group: "",
            kind: "Service",
            namespace,
            name: &reference.name,
        },
    );
    if !permitted {
        return Err(RefError::RefNotPermitted {
            from: route.namespace().to_owned(),
            namespace: namespace.to_owned(),
            kind: "Service",
            name: reference.name.clone(),
        });
    }
    let Some(service) = index.service(namespace, &reference.name) else {
        return Err(RefError::NotFound {
            kind: "Service",
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
        });
    };
    let Some(port) = reference.port else {
        return Err(RefError::PortRequired {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
        });
    };
    if !has_port(service, port) {
        return Err(RefError::NoSuchPort {
            namespace: namespace.to_owned(),
            name: reference.name.clone(),
            port,
        });
    }
    Ok(ServicePort {
        namespace: namespace.to_owned(),
        name: reference.name.clone(),
        port,
    })
}

/// Whether `service` has `port`; a Service that lists no ports (an
/// ExternalName one) takes any.
fn has_port(service: &Service, port: i32) -> bool {
    let ports = service.spec.as_ref().and_then(|s| s.ports.as_deref());
    match ports {
        None | Some([]) => true,
        Some(ports) => ports.iter().any(|p| p.port == port),
    }
}

fn filter_target(route: &HttpRoute, filter: &HttpRouteFilter, index: &Index<'_>) -> FilterTarget {
    match filter.action() {
        Ok(FilterAction::RequestMirror(mirror)) => {
            FilterTarget::Mirror(service_port(route, &mirror.backend_ref, index))
        }
        Ok(FilterAction::ExtensionRef(extension)) => {
            FilterTarget::Middleware(middleware_ref(route, extension, index))
        }
        _ => FilterTarget::Inline,
    }
}

/// An `ExtensionRef` names a Traefik Middleware in the route's namespace.
fn middleware_ref(
    route: &HttpRoute,
    extension: &LocalObjectReference,
    index: &Index<'_>,
) -> Result<NamespacedName, RefError> {
    let group_ok = middleware::API_VERSIONS
        .iter()
        .any(|v| v.split('/').next() == Some(extension.group.as_str()));
    if !group_ok || extension.kind != middleware::KIND {
        return Err(RefError::InvalidKind {
            group: extension.group.clone(),
            kind: extension.kind.clone(),
        });
    }
    if !index.has_middleware(route.namespace(), &extension.name) {
        return Err(RefError::NotFound {
            kind: "Middleware",
            namespace: route.namespace().to_owned(),
            name: extension.name.clone(),
        });
    }
    Ok(NamespacedName::new(route.namespace(), &extension.name))
}

fn unsupported(message: String) -> RuleError {
    RuleError {
        reason: reasons::UNSUPPORTED_VALUE,
        message,
    }
}

/// Checks that sluice can serve `rule` as written.
fn validate(rule: &HttpRouteRule) -> Result<(), RuleError> {
    for m in &rule.matches {
        validate_match(m)?;
    }
    let prefix_only = rule
        .matches
        .iter()
        .all(|m| m.path.type_ == PathMatchType::PathPrefix);
    validate_filters(&rule.filters, prefix_only)?;
    for backend in &rule.backend_refs {
        if backend.weight < 0 {
            return Err(unsupported(format!(
                "backendRef {:?} has a negative weight",
                backend.name
            )));
        }
        validate_filters(&backend.filters, prefix_only)?;
    }
    if let Some(timeouts) = &rule.timeouts {
        let parse = |field: &str, value: &Option<String>| {
            value
                .as_deref()
                .map(parse_duration)
                .transpose()
                .map_err(|e| unsupported(format!("timeouts.{field}: {e}")))
        };
        let request = parse("request", &timeouts.request)?;
        let backend = parse("backendRequest", &timeouts.backend_request)?;
        if let (Some(request), Some(backend)) = (request, backend) {
            if !request.is_zero() && backend > request {
                return Err(unsupported(
                    "timeouts.backendRequest cannot be longer than timeouts.request".to_owned(),
                ));
            }
        }
    }
    if let Some(retry) = &rule.retry {
        if let Some(backoff) = &retry.backoff {
            parse_duration(backoff).map_err(|e| unsupported(format!("retry.backoff: {e}")))?;
        }
        if let Some(code) = retry.codes.iter().find(|c| !(400..=599).contains(*c)) {
            return Err(unsupported(format!(
                "retry.codes: {code} is not in 400-599"
            )));
        }
        if retry.attempts.is_some_and(|a| a < 0) {
            return Err(unsupported("retry.attempts is negative".to_owned()));
        }
    }
    Ok(())
}

fn validate_match(m: &HttpRouteMatch) -> Result<(), RuleError> {
    let path = &m.path.value;
    match &m.path.type_ {
        PathMatchType::Exact | PathMatchType::PathPrefix => {
            if !path.starts_with('/') || path.contains("//") {
                return Err(unsupported(format!(
                    "path {path:?} must start with '/' and hold no '//'"
                )));
            }
        }
        PathMatchType::RegularExpression => check_regex("path", path)?,
        PathMatchType::Other(other) => {
            return Err(unsupported(format!(
                "path match type {other:?} is not supported"
            )))
        }
    }
    let strings = m
        .headers
        .iter()
        .map(|h| ("header", &h.type_, &h.value))
        .chain(
            m.query_params
                .iter()
                .map(|q| ("query parameter", &q.type_, &q.value)),
        );
    for (what, type_, value) in strings {
        match type_ {
            StringMatchType::Exact => {}
            StringMatchType::RegularExpression => check_regex(what, value)?,
            StringMatchType::Other(other) => {
                return Err(unsupported(format!(
                    "{what} match type {other:?} is not supported"
                )))
            }
        }
    }
    if let Some(method) = &m.method {
        if !METHODS.contains(&method.as_str()) {
            return Err(unsupported(format!("method {method:?} is not supported")));
        }
    }
    Ok(())
}

fn check_regex(what: &str, pattern: &str) -> Result<(), RuleError> {
    regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map(drop)
        .map_err(|e| {
            let text = e.to_string();
            let last = text.lines().rev().map(str::trim).find(|l| !l.is_empty());
            unsupported(format!(
                "{what} regular expression {pattern:?}: {}",
                last.unwrap_or("invalid")
            ))
        })
}

/// Checks one filter list (a rule's, or a backendRef's): every filter known
/// and complete, the single-use ones used once, no redirect with a rewrite.
fn validate_filters(filters: &[HttpRouteFilter], prefix_only: bool) -> Result<(), RuleError> {
    let mut seen: Vec<&FilterType> = Vec::new();
    for filter in filters {
        let action = filter.action().map_err(|e| match e {
            FilterError::Unsupported(t) => {
                unsupported(format!("filter type {t:?} is not supported"))
            }
            missing @ FilterError::Missing { .. } => unsupported(missing.to_string()),
        })?;
        let repeatable = matches!(
            filter.type_,
            FilterType::RequestMirror | FilterType::ExtensionRef
        );
        if !repeatable && seen.contains(&&filter.type_) {
            return Err(unsupported(format!(
                "filter {:?} is repeated",
                filter_name(&filter.type_)
            )));
        }
        seen.push(&filter.type_);
        match action {
            FilterAction::RequestRedirect(redirect) => {
                if ![301, 302, 303, 307, 308].contains(&redirect.status_code) {
                    return Err(unsupported(format!(
                        "redirect status code {} is not supported",
                        redirect.status_code
                    )));
                }
                if let Some(scheme) = redirect.scheme.as_deref() {
                    if scheme != "http" && scheme != "https" {
                        return Err(unsupported(format!(
                            "redirect scheme {scheme:?} is not supported"
                        )));
                    }
                }
                validate_path_modifier(redirect.path.as_ref(), prefix_only)?;
            }
            FilterAction::UrlRewrite(rewrite) => {
                validate_path_modifier(rewrite.path.as_ref(), prefix_only)?;
            }
            FilterAction::RequestMirror(mirror) => {
                let percent_ok = mirror.percent.is_none_or(|p| (0..=100).contains(&p));
                let fraction_ok = mirror.fraction.as_ref().is_none_or(|f| {
                    f.denominator > 0 && f.numerator >= 0 && f.numerator <= f.denominator
                });
                if !percent_ok
                    || !fraction_ok
                    || (mirror.percent.is_some() && mirror.fraction.is_some())
                {
                    return Err(unsupported(
                        "requestMirror: percent (0-100) or fraction (numerator <= denominator), not both"
                            .to_owned(),
                    ));
                }
            }
            _ => {}
        }
    }
    if seen.contains(&&FilterType::RequestRedirect) && seen.contains(&&FilterType::UrlRewrite) {
        return Err(RuleError {
            reason: reasons::INCOMPATIBLE_FILTERS,
            message: "RequestRedirect and URLRewrite cannot be combined".to_owned(),
        });
    }
    Ok(())
}

fn validate_path_modifier(
    modifier: Option<&HttpPathModifier>,
    prefix_only: bool,
) -> Result<(), RuleError> {
    let Some(modifier) = modifier else {
        return Ok(());
    };
    match &modifier.type_ {
        PathModifierType::ReplaceFullPath if modifier.replace_full_path.is_some() => Ok(()),
        PathModifierType::ReplacePrefixMatch if modifier.replace_prefix_match.is_some() => {
            if prefix_only {
                Ok(())
            } else {
                Err(unsupported(
                    "ReplacePrefixMatch needs every match of the rule to be a PathPrefix"
                        .to_owned(),
                ))
            }
        }
        PathModifierType::Other(other) => Err(unsupported(format!(
            "path modifier type {other:?} is not supported"
        ))),
        _ => Err(unsupported(
            "a path modifier without the field its type names".to_owned(),
        )),
    }
}

fn filter_name(type_: &FilterType) -> &str {
    match type_ {
        FilterType::RequestHeaderModifier => "RequestHeaderModifier",
        FilterType::ResponseHeaderModifier => "ResponseHeaderModifier",
        FilterType::RequestMirror => "RequestMirror",
        FilterType::RequestRedirect => "RequestRedirect",
        FilterType::UrlRewrite => "URLRewrite",
        FilterType::ExtensionRef => "ExtensionRef",
        FilterType::Cors => "CORS",
        FilterType::Other(other) => other,
    }
}
