//! A route: what a matched request is sent to, and where that rule came from.

use std::sync::Arc;

use serde::Serialize;

use super::ObjectRef;
use crate::metrics::RouteStats;
use crate::middleware::Chain;
use crate::upstream::sticky::StickyCookie;
use crate::upstream::{Backend, BackendKey, BackendProtocol, Balance, UpstreamClient};

/// How a rule path matches: the Ingress path types, with `ImplementationSpecific`
/// already mapped by Traefik's `router.pathmatcher` (`PathPrefix` by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum PathKind {
    /// The whole path must be equal, case-sensitively.
    Exact,
    /// The path must start with the rule's path, element by element on `/`.
    Prefix,
    /// The rule's path is a regular expression found anywhere in the request
    /// path (not anchored unless it says so), as Traefik's `PathRegexp`.
    Regex,
}

/// The listeners ("entrypoints", as Traefik names them) requests arrive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EntryPoint {
    /// The plain-HTTP listener (`--http-addr`).
    #[default]
    Web,
    /// The HTTPS listener (`--https-addr`).
    WebSecure,
}

impl EntryPoint {
    /// The Traefik name of the entrypoint, as used in annotations and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::WebSecure => "websecure",
        }
    }
}

/// Which entrypoints a route is served on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct EntryPoints {
    /// Served on plain HTTP.
    pub web: bool,
    /// Served on HTTPS.
    pub websecure: bool,
}

impl EntryPoints {
    /// Both entrypoints: the default for an Ingress without annotations.
    pub const ALL: Self = Self {
        web: true,
        websecure: true,
    };

    /// Whether the route is served on `entrypoint`.
    pub fn has(self, entrypoint: EntryPoint) -> bool {
        match entrypoint {
            EntryPoint::Web => self.web,
            EntryPoint::WebSecure => self.websecure,
        }
    }
}

/// Where a route sends its requests.
#[derive(Debug, Clone)]
pub enum Target {
    /// Forward to one of the backend's ready endpoints (503 when it has none).
    Backend(Arc<Backend>),
    /// The backend cannot be resolved (missing Service or port): answer `status`.
    Unavailable {
        /// The HTTP status to answer, 503 for a missing Service or port.
        status: u16,
        /// Why, for the log and the admin API (not sent to clients).
        reason: Arc<str>,
    },
}

/// One compiled rule (host + path) or default backend, shared by the table's indexes.
#[derive(Debug)]
pub struct Route {
    /// A stable name for metrics and logs, unique per Ingress, host, path and type:
    /// `<namespace>-<ingress>-<host>-<path>`, plus `-exact` for Exact rules and
    /// `-regex` for regex rules.
    pub name: Arc<str>,
    /// The rule's host as written (`*.example.com` for wildcards); `None` matches any host.
    pub host: Option<String>,
    /// The rule's path; `None` for a default backend.
    pub path: Option<String>,
    /// The rule's path type; `None` for a default backend.
    pub kind: Option<PathKind>,
    /// The Ingress the rule came from.
    pub ingress: ObjectRef,
    /// The Service port the Ingress names, by the Service's port number when the
    /// Service lists it (by name or number as written otherwise); `None` for a
    /// resource backend.
    pub service: Option<BackendKey>,
    /// Where requests go.
    pub target: Target,
    /// The client (protocol, TLS settings, pool) that forwards to the backend.
    pub client: Arc<UpstreamClient>,
    /// The entrypoints the route is served on.
    pub entrypoints: EntryPoints,
    /// Plain-HTTP requests get a 308 to the `https` URL instead of being forwarded.
    pub redirect_https: bool,
    /// The HTTPS redirect keeps a trailing `/` of the request URI
    /// (`preserve-trailing-slash`); ingress-nginx drops it by default.
    pub redirect_keeps_trailing_slash: bool,
    /// The middlewares requests run through before the backend.
    pub middlewares: Chain,
    /// Sticky sessions by cookie (the Service's `service.sticky.cookie` annotations).
    pub sticky: Option<Arc<StickyCookie>>,
    /// How an endpoint is picked when no sticky cookie pins one
    /// (ingress-nginx's `upstream-hash-by`, `load-balance: ewma`); `None`:
    /// round-robin.
    pub balance: Option<Arc<Balance>>,
    /// Whether the client's Host goes to the backend (`service.passhostheader`,
    /// default true); when false the backend gets its own address as Host.
    pub pass_host_header: bool,
    /// Request counters, kept across reloads by route name.
    pub stats: Arc<RouteStats>,
}

/// A serialisable view of a route for `/api/routes`.
#[derive(Debug, Clone, Serialize)]
pub struct RouteInfo {
    /// The route's name (the metrics label).
    pub name: String,
    /// The host pattern (`None`: any host).
    pub host: Option<String>,
    /// The path (`None`: default backend).
    pub path: Option<String>,
    /// The path type.
    pub path_type: Option<PathKind>,
    /// The Ingress it came from.
    pub ingress: ObjectRef,
    /// The Service port it names (by number once resolved).
    pub service: Option<BackendKey>,
    /// The ready endpoints right now.
    pub endpoints: Vec<String>,
    /// `ok`, `no_endpoints`, or why the route answers an error.
    pub state: String,
    /// The entrypoints it is served on.
    pub entrypoints: EntryPoints,
    /// Whether plain-HTTP requests are redirected to HTTPS.
    pub redirect_https: bool,
    /// How the backend is spoken to.
    pub backend_protocol: BackendProtocol,
    /// The sticky cookie's name, when sessions are sticky.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky_cookie: Option<String>,
    /// The balancing policy, when not round-robin (`chash <key>`, `ewma`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balance: Option<String>,
    /// False when the backend gets its own address as Host.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub pass_host_header_off: bool,
    /// The middleware references, in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub middlewares: Vec<String>,
    /// Traefik's `router.priority`, when the Ingress sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Why the middlewares cannot run (the route answers 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middleware_error: Option<String>,
}

impl Route {
    /// Counts one answer from (or failure of) `endpoint` of this route's backend.
    pub fn record_endpoint(
        &self,
        endpoint: std::net::SocketAddr,
        method: &http::Method,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        if let Target::Backend(backend) = &self.target {
            backend.record_endpoint(endpoint, method, status, elapsed);
        }
    }

    /// The admin API's view of this route, with the endpoints as they are now.
    pub fn info(&self) -> RouteInfo {
        let (endpoints, state) = match &self.target {
            Target::Backend(backend) => {
                let set = backend.endpoints();
                let mut eps: Vec<String> = set.addrs.iter().map(ToString::to_string).collect();
                if let Some(ext) = &set.external {
                    eps = backend
                        .resolved()
                        .addrs
                        .iter()
                        .map(ToString::to_string)
                        .collect();
                    if eps.is_empty() {
                        eps.push(format!("{}:{} (unresolved)", ext.host, ext.port));
                    }
                }
                let state = if backend.pick_preview() {
                    "ok"
                } else {
                    "no_endpoints"
                };
                (eps, state.to_owned())
            }
            Target::Unavailable { reason, .. } => (Vec::new(), reason.to_string()),
        };
        RouteInfo {
            name: self.name.to_string(),
            host: self.host.clone(),
            path: self.path.clone(),
            path_type: self.kind,
            ingress: self.ingress.clone(),
            service: self.service.clone(),
            endpoints,
            state,
            entrypoints: self.entrypoints,
            redirect_https: self.redirect_https,
            backend_protocol: self.client.protocol().clone(),
            sticky_cookie: self.sticky.as_ref().map(|s| s.name.clone()),
            load_balance: self.balance.as_ref().map(|b| b.describe()),
            pass_host_header_off: !self.pass_host_header,
            middlewares: self.middlewares.names().to_vec(),
            middleware_error: self.middlewares.broken().map(str::to_owned),
            priority: None,
        }
    }
}
