//! Serde types for the Gateway API objects sluice reads (standard channel of
//! v1.6, plus HTTPRoute's experimental `retry`).
//!
//! Only `metadata` and `spec` are modelled: `status` (and every field not
//! listed here) is ignored when an object is read, so a status write never
//! changes what the compiler sees.
//!
//! Every struct is read with `#[serde(default)]` and its [`Default`] is the
//! value the API server's CRD defaulting gives a missing field (weight 1,
//! `kind: Service`, path `PathPrefix /`, TLS mode `Terminate`...), so an
//! object from a file decodes exactly as the API server would have stored it.
//! The defaults that concern whole lists (a route without rules, a rule
//! without matches) are applied afterwards by [`super::defaults`].
//!
//! Closed sets of values are enums with an `Other(String)` variant: a value
//! sluice does not know (a newer API version, the experimental channel, a
//! typo in a file) decodes, and the compiler reports it (`UnsupportedValue`)
//! instead of the whole object failing to load. Numbers are `i32` as in the
//! API, never narrower, for the same reason: the compiler validates ranges.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::GROUP;

fn gateway_group() -> String {
    GROUP.to_owned()
}

// ---------------------------------------------------------------------------
// GatewayClass

/// A `GatewayClass` (cluster scoped): which controller handles the Gateways
/// that name it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct GatewayClass {
    /// Name, labels, annotations, generation.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: GatewayClassSpec,
}

/// `GatewayClass.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewayClassSpec {
    /// The controller that manages Gateways of this class; sluice's is
    /// [`super::CONTROLLER_NAME`].
    pub controller_name: String,
    /// Controller-specific configuration (sluice takes none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters_ref: Option<ParametersReference>,
    /// Free text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `GatewayClass.spec.parametersRef`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ParametersReference {
    /// The API group of the referent.
    pub group: String,
    /// The kind of the referent.
    pub kind: String,
    /// The referent's name.
    pub name: String,
    /// The referent's namespace, for a namespaced kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

// ---------------------------------------------------------------------------
// Gateway

/// A `Gateway`: listeners (port, protocol, hostname, TLS) that routes attach to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct Gateway {
    /// Name, namespace, annotations, generation, creation time.
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: GatewaySpec,
}

/// `Gateway.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewaySpec {
    /// The `GatewayClass` this Gateway belongs to.
    pub gateway_class_name: String,
    /// The listeners (1 to 64, unique names).
    pub listeners: Vec<Listener>,
    /// Requested addresses (sluice cannot honour any: `UnsupportedAddress`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<GatewaySpecAddress>,
}

/// `Gateway.spec.addresses[]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct GatewaySpecAddress {
    /// `IPAddress` (the default), `Hostname`, or a domain-prefixed type.
    #[serde(rename = "type")]
    pub type_: String,
    /// The address; empty asks the implementation to pick one.
    pub value: String,
}

impl Default for GatewaySpecAddress {
    fn default() -> Self {
        Self {
            type_: "IPAddress".to_owned(),
            value: String::new(),
        }
    }
}

/// `Gateway.spec.listeners[]`: one logical endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Listener {
    /// The listener's name, unique in the Gateway (a route's `sectionName`).
    pub name: String,
    /// Exact (`example.com`) or wildcard (`*.example.com`) host; `None`
    /// matches every host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The port (1-65535).
    pub port: i32,
    /// `HTTP`, `HTTPS`, `TLS`, `TCP`, `UDP` or a domain-prefixed protocol.
    pub protocol: ProtocolType,
    /// TLS settings; required for `HTTPS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTlsConfig>,
    /// Which routes may attach (defaults to routes of the Gateway's namespace).
    pub allowed_routes: AllowedRoutes,
}

/// A listener's protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum ProtocolType {
    /// Cleartext HTTP.
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    /// HTTP over TLS.
    #[serde(rename = "HTTPS")]
    Https,
    /// TLS (TLSRoute): not served by sluice.
    #[serde(rename = "TLS")]
    Tls,
    /// TCP (TCPRoute): not served by sluice.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP (UDPRoute): not served by sluice.
    #[serde(rename = "UDP")]
    Udp,
    /// Any other value (an implementation-specific protocol).
    #[serde(untagged)]
    Other(String),
}

/// `listeners[].tls`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListenerTlsConfig {
    /// `Terminate` (the default) or `Passthrough`.
    pub mode: TlsModeType,
    /// The certificates, `kubernetes.io/tls` Secrets by default; another
    /// namespace needs a ReferenceGrant.
    pub certificate_refs: Vec<SecretObjectReference>,
    /// Implementation-specific options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A listener's TLS mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum TlsModeType {
    /// TLS ends at the Gateway (the default).
    #[default]
    Terminate,
    /// TLS passes through to the backend (TLSRoute only).
    Passthrough,
    /// Any other value.
    #[serde(untagged)]
    Other(String),
}

/// A reference to a Secret-like object (`certificateRefs[]`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct SecretObjectReference {
    /// The API group; `""` (core, the default).
    pub group: String,
    /// The kind; `Secret` by default.
    pub kind: String,
    /// The referent's name.
    pub name: String,
    /// The referent's namespace; `None` is the referring object's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Default for SecretObjectReference {
    fn default() -> Self {
        Self {
            group: String::new(),
            kind: "Secret".to_owned(),
            name: String::new(),
            namespace: None,
        }
    }
}

/// `listeners[].allowedRoutes`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct AllowedRoutes {
    /// The namespaces routes may come from (`from: Same` by default).
    pub namespaces: RouteNamespaces,
    /// The route kinds; empty means every kind the listener's protocol supports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<RouteGroupKind>,
}

/// `allowedRoutes.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteNamespaces {
    /// `Same` (the default), `All` or `Selector`.
    pub from: FromNamespaces,
    /// With `from: Selector`: the labels of the Namespaces whose routes may attach.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Where attached routes may live.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum FromNamespaces {
    /// Every namespace.
    All,
    /// Namespaces whose labels match `selector`.
    Selector,
    /// The Gateway's own namespace (the default).
    #[default]
    Same,
    /// Any other value.
    #[serde(untagged)]
    Other(String),
}

/// A route kind a listener accepts (`allowedRoutes.kinds[]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(default)]
pub struct RouteGroupKind {
    /// The API group; `gateway.networking.k8s.io` by default.
    pub group: String,
    /// The kind, such as `HTTPRoute`.
    pub kind: String,
}

impl Default for RouteGroupKind {
    fn default() -> Self {
        Self {
            group: gateway_group(),
            kind: String::new(),
        }
    }
}

// ---------------------------------------------------------------------------
// HTTPRoute

/// An `HTTPRoute`: rules that match HTTP requests and send them to backends.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpRoute {
    /// Name, namespace, annotations, generation, creation time (precedence ties).
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: HttpRouteSpec,
}

/// `HTTPRoute.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (and listeners) the route attaches to.
    pub parent_refs: Vec<ParentReference>,
    /// Hosts the route serves, intersected with each listener's hostname;
    /// empty means the listener's.
    pub hostnames: Vec<String>,
    /// The rules; after [`super::defaults::http_route`], never empty.
    pub rules: Vec<HttpRouteRule>,
}

/// `parentRefs[]`: a Gateway (or one of its listeners) a route attaches to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ParentReference {
    /// The API group; `gateway.networking.k8s.io` by default.
    pub group: String,
    /// The kind; `Gateway` by default.
    pub kind: String,
    /// The parent's namespace; `None` is the route's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The parent's name.
    pub name: String,
    /// A listener name: attach to that listener only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// A port: attach to the listeners on that port only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl Default for ParentReference {
    fn default() -> Self {
        Self {
            group: gateway_group(),
            kind: "Gateway".to_owned(),
            namespace: None,
            name: String::new(),
            section_name: None,
            port: None,
        }
    }
}

/// `rules[]`: matches, filters and backends.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// The rule's name (a `sectionName` for policies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Any of these matches selects the rule; after
    /// [`super::defaults::http_route`], never empty.
    pub matches: Vec<HttpRouteMatch>,
    /// Filters applied to every request the rule matches, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
    /// Where matched requests go, by weight; none (without a redirect)
    /// answers 500.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
    /// Request and backend-request timeouts (Gateway API durations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<HttpRouteTimeouts>,
    /// Retries (experimental channel).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<HttpRouteRetry>,
}

/// `rules[].matches[]`: every condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteMatch {
    /// The path condition; `PathPrefix /` (everything) by default.
    pub path: HttpPathMatch,
    /// Header conditions (all must hold).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HttpHeaderMatch>,
    /// Query parameter conditions (all must hold).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HttpQueryParamMatch>,
    /// The request method (`GET`, `POST`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `matches[].path`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpPathMatch {
    /// `PathPrefix` (the default), `Exact` or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: PathMatchType,
    /// The path or pattern; `/` by default.
    pub value: String,
}

impl Default for HttpPathMatch {
    fn default() -> Self {
        Self {
            type_: PathMatchType::PathPrefix,
            value: "/".to_owned(),
        }
    }
}

/// How a path is matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum PathMatchType {
    /// The whole path, case-sensitively.
    Exact,
    /// Whole `/`-separated elements: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
    #[default]
    PathPrefix,
    /// A regular expression (implementation-specific dialect).
    RegularExpression,
    /// Any other value.
    #[serde(untagged)]
    Other(String),
}

/// `matches[].headers[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpHeaderMatch {
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: StringMatchType,
    /// The header name (case-insensitive).
    pub name: String,
    /// The value or pattern.
    pub value: String,
}

/// `matches[].queryParams[]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpQueryParamMatch {
    /// `Exact` (the default) or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: StringMatchType,
    /// The parameter name (case-sensitive).
    pub name: String,
    /// The value or pattern.
    pub value: String,
}

/// How a header or query parameter value is matched.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum StringMatchType {
    /// Equal (the default).
    #[default]
    Exact,
    /// A regular expression.
    RegularExpression,
    /// Any other value.
    #[serde(untagged)]
    Other(String),
}

/// `rules[].filters[]` and `backendRefs[].filters[]`: `type` names which of
/// the other fields holds the configuration ([`HttpRouteFilter::action`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteFilter {
    /// The filter type.
    #[serde(rename = "type")]
    pub type_: FilterType,
    /// With `RequestHeaderModifier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,
    /// With `ResponseHeaderModifier`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,
    /// With `RequestMirror`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
    /// With `RequestRedirect`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,
    /// With `URLRewrite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_rewrite: Option<UrlRewrite>,
    /// With `CORS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// With `ExtensionRef`: a Traefik `Middleware` in sluice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension_ref: Option<LocalObjectReference>,
}

/// A filter's type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum FilterType {
    /// Change request headers.
    RequestHeaderModifier,
    /// Change response headers.
    ResponseHeaderModifier,
    /// Copy requests to another backend.
    RequestMirror,
    /// Answer with a redirect.
    RequestRedirect,
    /// Rewrite the host or path.
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    /// An implementation-specific filter object.
    ExtensionRef,
    /// Answer CORS preflights and add CORS headers.
    #[serde(rename = "CORS")]
    Cors,
    /// Any other value (`ExternalAuth` of the experimental channel...).
    #[serde(untagged)]
    Other(String),
}

impl Default for FilterType {
    /// Only for a filter without `type` (invalid): an empty `Other`.
    fn default() -> Self {
        Self::Other(String::new())
    }
}

/// A filter's configuration, as named by its `type` ([`HttpRouteFilter::action`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FilterAction<'a> {
    /// `RequestHeaderModifier`.
    RequestHeaderModifier(&'a HeaderModifier),
    /// `ResponseHeaderModifier`.
    ResponseHeaderModifier(&'a HeaderModifier),
    /// `RequestMirror`.
    RequestMirror(&'a RequestMirror),
    /// `RequestRedirect`.
    RequestRedirect(&'a RequestRedirect),
    /// `URLRewrite`.
    UrlRewrite(&'a UrlRewrite),
    /// `CORS`.
    Cors(&'a Cors),
    /// `ExtensionRef`.
    ExtensionRef(&'a LocalObjectReference),
}

/// Why a filter has no usable configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The `type` is not one of the standard filters.
    #[error("unsupported filter type {0:?}")]
    Unsupported(String),
    /// The field `type` names is missing.
    #[error("filter type {kind} without its `{field}` field")]
    Missing {
        /// The filter type.
        kind: &'static str,
        /// The field that should hold its configuration.
        field: &'static str,
    },
}

impl HttpRouteFilter {
    /// The configuration `type` selects.
    ///
    /// # Errors
    ///
    /// An unknown `type`, or the field it names is absent.
    pub fn action(&self) -> Result<FilterAction<'_>, FilterError> {
        fn need<'a, T>(
            value: &'a Option<T>,
            kind: &'static str,
            field: &'static str,
        ) -> Result<&'a T, FilterError> {
            value.as_ref().ok_or(FilterError::Missing { kind, field })
        }
        Ok(match &self.type_ {
            FilterType::RequestHeaderModifier => FilterAction::RequestHeaderModifier(need(
                &self.request_header_modifier,
                "RequestHeaderModifier",
                "requestHeaderModifier",
            )?),
            FilterType::ResponseHeaderModifier => FilterAction::ResponseHeaderModifier(need(
                &self.response_header_modifier,
                "ResponseHeaderModifier",
                "responseHeaderModifier",
            )?),
            FilterType::RequestMirror => FilterAction::RequestMirror(need(
                &self.request_mirror,
                "RequestMirror",
                "requestMirror",
            )?),
            FilterType::RequestRedirect => FilterAction::RequestRedirect(need(
                &self.request_redirect,
                "RequestRedirect",
                "requestRedirect",
            )?),
            FilterType::UrlRewrite => {
                FilterAction::UrlRewrite(need(&self.url_rewrite, "URLRewrite", "urlRewrite")?)
            }
            FilterType::Cors => FilterAction::Cors(need(&self.cors, "CORS", "cors")?),
            FilterType::ExtensionRef => FilterAction::ExtensionRef(need(
                &self.extension_ref,
                "ExtensionRef",
                "extensionRef",
            )?),
            FilterType::Other(other) => return Err(FilterError::Unsupported(other.clone())),
        })
    }
}

/// `requestHeaderModifier` / `responseHeaderModifier`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HeaderModifier {
    /// Headers to set, replacing any value.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<HttpHeader>,
    /// Headers to add (appended to an existing value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<HttpHeader>,
    /// Header names to remove.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// One header name and value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpHeader {
    /// The name (case-insensitive).
    pub name: String,
    /// The value.
    pub value: String,
}

/// `requestMirror`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestMirror {
    /// Where copies go (its answer is ignored).
    pub backend_ref: BackendObjectReference,
    /// The share of requests mirrored, 0-100; all when neither this nor `fraction` is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
    /// The share of requests mirrored, as a fraction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<Fraction>,
}

/// `requestMirror.fraction`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Fraction {
    /// The numerator (0 or more).
    pub numerator: i32,
    /// The denominator; 100 by default.
    pub denominator: i32,
}

impl Default for Fraction {
    fn default() -> Self {
        Self {
            numerator: 0,
            denominator: 100,
        }
    }
}

/// `requestRedirect`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `http` or `https`; `None` keeps the request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The host; `None` keeps the request's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path change; `None` keeps the request's path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
    /// The port; `None` derives it from the scheme (as the specification says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// 301, 302 (the default), 303, 307 or 308.
    pub status_code: i32,
}

impl Default for RequestRedirect {
    fn default() -> Self {
        Self {
            scheme: None,
            hostname: None,
            path: None,
            port: None,
            status_code: 302,
        }
    }
}

/// `urlRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct UrlRewrite {
    /// The `Host` sent to the backend.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The path change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathModifier>,
}

/// A path change of a redirect or a rewrite.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpPathModifier {
    /// `ReplaceFullPath` or `ReplacePrefixMatch`.
    #[serde(rename = "type")]
    pub type_: PathModifierType,
    /// With `ReplaceFullPath`: the new path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_full_path: Option<String>,
    /// With `ReplacePrefixMatch`: what replaces the matched `PathPrefix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace_prefix_match: Option<String>,
}

/// How a path is changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum PathModifierType {
    /// Replace the whole path.
    ReplaceFullPath,
    /// Replace the part the rule's `PathPrefix` matched.
    ReplacePrefixMatch,
    /// Any other value.
    #[serde(untagged)]
    Other(String),
}

impl Default for PathModifierType {
    /// Only for a modifier without `type` (invalid): an empty `Other`.
    fn default() -> Self {
        Self::Other(String::new())
    }
}

/// `cors` (standard channel since v1.5).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Cors {
    /// Allowed origins (`https://example.com`, `*`, `https://*.example.com`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<String>,
    /// `Access-Control-Allow-Credentials: true` when set to true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Allowed methods (or `*`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers (or `*`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the page (or `*`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age` in seconds; 5 by default.
    pub max_age: i32,
}

impl Default for Cors {
    fn default() -> Self {
        Self {
            allow_origins: Vec::new(),
            allow_credentials: None,
            allow_methods: Vec::new(),
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age: 5,
        }
    }
}

/// A reference to an object in the same namespace (`extensionRef`, a
/// BackendTLSPolicy's `caCertificateRefs[]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(default)]
pub struct LocalObjectReference {
    /// The API group (`""` for core, `traefik.io` for a Middleware).
    pub group: String,
    /// The kind.
    pub kind: String,
    /// The name.
    pub name: String,
}

/// A backend (`requestMirror.backendRef`): a Service by default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(default)]
pub struct BackendObjectReference {
    /// The API group; `""` (core) by default.
    pub group: String,
    /// The kind; `Service` by default.
    pub kind: String,
    /// The name.
    pub name: String,
    /// The namespace; `None` is the route's (another one needs a ReferenceGrant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The port; required for a Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
}

impl Default for BackendObjectReference {
    fn default() -> Self {
        Self {
            group: String::new(),
            kind: "Service".to_owned(),
            name: String::new(),
            namespace: None,
            port: None,
        }
    }
}

/// `rules[].backendRefs[]`: a backend, its weight and its own filters.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpBackendRef {
    /// The API group; `""` (core) by default.
    pub group: String,
    /// The kind; `Service` by default.
    pub kind: String,
    /// The name.
    pub name: String,
    /// The namespace; `None` is the route's (another one needs a ReferenceGrant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The port; required for a Service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// The share of requests, relative to the rule's other backends; 1 by
    /// default, 0 sends nothing.
    pub weight: i32,
    /// Filters applied only when this backend is picked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<HttpRouteFilter>,
}

impl Default for HttpBackendRef {
    fn default() -> Self {
        Self {
            group: String::new(),
            kind: "Service".to_owned(),
            name: String::new(),
            namespace: None,
            port: None,
            weight: 1,
            filters: Vec::new(),
        }
    }
}

impl HttpBackendRef {
    /// The backend as an object reference (without weight and filters).
    pub fn object_ref(&self) -> BackendObjectReference {
        BackendObjectReference {
            group: self.group.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            namespace: self.namespace.clone(),
            port: self.port,
        }
    }
}

/// `rules[].timeouts`: Gateway API durations (`10s`, `1m30s`, `500ms`; `0s`
/// disables), read with [`super::parse_duration`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRouteTimeouts {
    /// The whole exchange, from the request head to the end of the response (504).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// One request to a backend (each retry separately).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_request: Option<String>,
}

/// `rules[].retry` (experimental channel).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct HttpRouteRetry {
    /// Response codes (400-599) that are retried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub codes: Vec<i32>,
    /// The most retries of one request; `None` is implementation-specific.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// The least wait between attempts (a Gateway API duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
}

// ---------------------------------------------------------------------------
// ReferenceGrant

/// A `ReferenceGrant` (`v1` and `v1beta1`, the same schema): lets objects of
/// other namespaces refer to objects of its own.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ReferenceGrant {
    /// Name and namespace (the namespace of the referents it opens up).
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: ReferenceGrantSpec,
}

/// `ReferenceGrant.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ReferenceGrantSpec {
    /// Who may refer (group, kind, namespace).
    pub from: Vec<ReferenceGrantFrom>,
    /// To what, in the grant's namespace (group, kind, optional name).
    pub to: Vec<ReferenceGrantTo>,
}

/// `ReferenceGrant.spec.from[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(default)]
pub struct ReferenceGrantFrom {
    /// The referring object's group (`gateway.networking.k8s.io`).
    pub group: String,
    /// The referring object's kind (`HTTPRoute`, `Gateway`).
    pub kind: String,
    /// The referring object's namespace.
    pub namespace: String,
}

/// `ReferenceGrant.spec.to[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(default)]
pub struct ReferenceGrantTo {
    /// The referent's group (`""` for Services and Secrets).
    pub group: String,
    /// The referent's kind.
    pub kind: String,
    /// One referent only; `None` is every object of the kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

// ---------------------------------------------------------------------------
// BackendTLSPolicy

/// A `BackendTLSPolicy` (v1): speak TLS to the targeted Services, verifying
/// their certificates.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct BackendTlsPolicy {
    /// Name, namespace, generation, creation time (oldest wins a conflict).
    pub metadata: ObjectMeta,
    /// `spec`.
    pub spec: BackendTlsPolicySpec,
}

/// `BackendTLSPolicy.spec`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendTlsPolicySpec {
    /// The Services (optionally one named port: `sectionName`) in the policy's namespace.
    pub target_refs: Vec<PolicyTargetReference>,
    /// How the backend's certificate is verified.
    pub validation: BackendTlsPolicyValidation,
    /// Implementation-specific options.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `targetRefs[]`: a local object, optionally one section (a Service port name).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicyTargetReference {
    /// The target's group (`""` for a Service).
    pub group: String,
    /// The target's kind (`Service`).
    pub kind: String,
    /// The target's name.
    pub name: String,
    /// A section of the target (a Service port's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `BackendTLSPolicy.spec.validation`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendTlsPolicyValidation {
    /// CA bundles: ConfigMaps (key `ca.crt`) or Secrets in the policy's namespace.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_certificate_refs: Vec<LocalObjectReference>,
    /// `System`: the platform's trust store instead of `caCertificateRefs`.
    #[serde(
        rename = "wellKnownCACertificates",
        skip_serializing_if = "Option::is_none"
    )]
    pub well_known_ca_certificates: Option<String>,
    /// The SNI sent, and the name verified unless `subjectAltNames` is set.
    pub hostname: String,
    /// Names the certificate must carry (any one of them), instead of `hostname`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<SubjectAltName>,
}

/// `validation.subjectAltNames[]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct SubjectAltName {
    /// `Hostname` or `URI`.
    #[serde(rename = "type")]
    pub type_: SubjectAltNameType,
    /// With `Hostname`: a DNS name (wildcards allowed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// With `URI`: an absolute URI (SPIFFE IDs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// The kind of a subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize)]
pub enum SubjectAltNameType {
    /// A DNS name.
    Hostname,
    /// A URI.
    #[serde(rename = "URI")]
    Uri,
    /// Any other value.
    #[serde(untagged)]
    Other(String),
}

impl Default for SubjectAltNameType {
    /// Only for an entry without `type` (invalid): an empty `Other`.
    fn default() -> Self {
        Self::Other(String::new())
    }
}
