//! Gateway API test support: manifest builders for GatewayClass, Gateway,
//! HTTPRoute, ReferenceGrant and Namespace objects, namespaced Services with
//! real whoami backends, and a fixture that starts sluice in front of them.
//!
//! Builders emit one manifest document each, as a `String` starting with
//! `---\n` (the objects are written as JSON, which is YAML), so documents can
//! simply be concatenated into one manifest file:
//!
//! ```ignore
//! let yaml = [
//!     gateway_class(),
//!     gateway("gw", "default", &[Listener::http("http")]),
//!     HttpRoute::new("r", "default")
//!         .parent("gw")
//!         .rule(Rule::new().matching(Match::prefix("/v1")).backend(backend("a", 80)))
//!         .doc(),
//! ]
//! .concat();
//! let f = start_gateway_fixture(&["a"], &yaml).await;
//! assert_eq!(served_by(&f, "example.com", "/v1").await, "a");
//! ```
//!
//! Listener ports: sluice serves HTTP listeners on port 80 (or the
//! `--http-addr` port) on its HTTP entrypoint and HTTPS listeners on 443 (or
//! the `--https-addr` port) on its HTTPS entrypoint; in tests both entrypoints
//! listen on ephemeral ports, see [`GatewayFixture::http_addr`].

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use serde_json::{json, Value};
use sluice::app::{Running, Settings};

use super::raw_backend::{RawBackend, Recorded, Reply};
use super::{settings, start, whoami, Answer, Backend, Manifests};

/// The GatewayClass name [`gateway`] uses.
pub const CLASS: &str = "sluice";
/// The controller name sluice serves.
pub const CONTROLLER: &str = "sluice.dev/gateway-controller";
/// The Gateway API group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// One manifest document (`---` then `value` as JSON).
pub fn doc(value: &Value) -> String {
    format!("---\n{value}\n")
}

/// GatewayClass `sluice` for sluice's controller.
pub fn gateway_class() -> String {
    gateway_class_named(CLASS, CONTROLLER)
}

/// GatewayClass `name` for `controller` (another controller's class is not served).
pub fn gateway_class_named(name: &str, controller: &str) -> String {
    doc(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": name},
        "spec": {"controllerName": controller},
    }))
}

/// A Namespace object `name` with `labels` (for `allowedRoutes` selectors).
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> String {
    doc(&json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": pairs(labels)},
    }))
}

/// Which namespaces a listener accepts routes from.
#[derive(Debug, Clone)]
pub enum Namespaces {
    /// The Gateway's namespace (the default).
    Same,
    /// Every namespace.
    All,
    /// Namespaces whose labels include these (`matchLabels`).
    Selector(Vec<(String, String)>),
}

/// One Gateway listener; build with [`Listener::http`] or [`Listener::https`].
#[derive(Debug, Clone)]
pub struct Listener(pub Value);

impl Listener {
    /// An HTTP listener `name` on port 80, routes from the same namespace.
    pub fn http(name: &str) -> Self {
        Self(json!({"name": name, "protocol": "HTTP", "port": 80}))
    }

    /// An HTTPS listener `name` on port 443 terminating TLS with the
    /// `kubernetes.io/tls` Secret `secret` (in the Gateway's namespace).
    pub fn https(name: &str, secret: &str) -> Self {
        Self(json!({
            "name": name,
            "protocol": "HTTPS",
            "port": 443,
            "tls": {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "group": "", "name": secret}]},
        }))
    }

    /// Sets the port.
    pub fn port(mut self, port: u16) -> Self {
        self.0["port"] = json!(port);
        self
    }

    /// Sets the hostname (`*.example.com` for a wildcard).
    pub fn hostname(mut self, hostname: &str) -> Self {
        self.0["hostname"] = json!(hostname);
        self
    }

    /// Sets `allowedRoutes.namespaces`.
    pub fn allow(mut self, from: Namespaces) -> Self {
        let namespaces = match from {
            Namespaces::Same => json!({"from": "Same"}),
            Namespaces::All => json!({"from": "All"}),
            Namespaces::Selector(labels) => {
                let labels: serde_json::Map<String, Value> =
                    labels.into_iter().map(|(k, v)| (k, json!(v))).collect();
                json!({"from": "Selector", "selector": {"matchLabels": labels}})
            }
        };
        self.0["allowedRoutes"]["namespaces"] = namespaces;
        self
    }

    /// Sets `allowedRoutes.kinds` to `(group, kind)` pairs.
    pub fn allow_kinds(mut self, kinds: &[(&str, &str)]) -> Self {
        let kinds: Vec<Value> = kinds
            .iter()
            .map(|(group, kind)| json!({"group": group, "kind": kind}))
            .collect();
        self.0["allowedRoutes"]["kinds"] = json!(kinds);
        self
    }
}

/// Gateway `name` in `namespace` of class [`CLASS`].
pub fn gateway(name: &str, namespace: &str, listeners: &[Listener]) -> String {
    gateway_of_class(name, namespace, CLASS, listeners)
}

/// Gateway `name` in `namespace` of GatewayClass `class`.
pub fn gateway_of_class(
    name: &str,
    namespace: &str,
    class: &str,
    listeners: &[Listener],
) -> String {
    let listeners: Vec<&Value> = listeners.iter().map(|l| &l.0).collect();
    doc(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"gatewayClassName": class, "listeners": listeners},
    }))
}

/// One `matches[]` entry of an HTTPRoute rule.
#[derive(Debug, Clone)]
pub struct Match(pub Value);

impl Match {
    /// No path (the API's default: `PathPrefix /`); add conditions with the methods.
    pub fn any() -> Self {
        Self(json!({}))
    }

    /// `PathPrefix` `path`.
    pub fn prefix(path: &str) -> Self {
        Self(json!({"path": {"type": "PathPrefix", "value": path}}))
    }

    /// `Exact` `path`.
    pub fn exact(path: &str) -> Self {
        Self(json!({"path": {"type": "Exact", "value": path}}))
    }

    /// `RegularExpression` `pattern`.
    pub fn regex(pattern: &str) -> Self {
        Self(json!({"path": {"type": "RegularExpression", "value": pattern}}))
    }

    /// Adds an `Exact` header match.
    pub fn header(self, name: &str, value: &str) -> Self {
        self.push("headers", json!({"name": name, "value": value}))
    }

    /// Adds a `RegularExpression` header match.
    pub fn header_regex(self, name: &str, pattern: &str) -> Self {
        self.push(
            "headers",
            json!({"name": name, "type": "RegularExpression", "value": pattern}),
        )
    }

    /// Adds an `Exact` query parameter match.
    pub fn query(self, name: &str, value: &str) -> Self {
        self.push("queryParams", json!({"name": name, "value": value}))
    }

    /// Sets the method.
    pub fn method(mut self, method: &str) -> Self {
        self.0["method"] = json!(method);
        self
    }

    fn push(mut self, list: &str, item: Value) -> Self {
        match self.0[list].as_array_mut() {
            Some(items) => items.push(item),
            None => self.0[list] = json!([item]),
        }
        self
    }
}

/// One HTTPRoute rule.
#[derive(Debug, Clone)]
pub struct Rule(pub Value);

impl Default for Rule {
    fn default() -> Self {
        Self::new()
    }
}

impl Rule {
    /// A rule with no matches, filters or backends.
    pub fn new() -> Self {
        Self(json!({}))
    }

    /// A rule without matches sending everything to Service `service` port `port`.
    pub fn to(service: &str, port: u16) -> Self {
        Self::new().backend(backend(service, port))
    }

    /// Adds a match.
    pub fn matching(self, m: Match) -> Self {
        self.push("matches", m.0)
    }

    /// Adds a filter (see [`request_header_modifier`], [`request_redirect`], ...).
    pub fn filter(self, filter: Value) -> Self {
        self.push("filters", filter)
    }

    /// Adds a backendRef (see [`backend`], [`backend_in`], [`weighted`]).
    pub fn backend(self, backend_ref: Value) -> Self {
        self.push("backendRefs", backend_ref)
    }

    /// Sets the rule's `name`.
    pub fn named(mut self, name: &str) -> Self {
        self.0["name"] = json!(name);
        self
    }

    fn push(mut self, list: &str, item: Value) -> Self {
        match self.0[list].as_array_mut() {
            Some(items) => items.push(item),
            None => self.0[list] = json!([item]),
        }
        self
    }
}

/// A backendRef to Service `name` port `port` in the route's namespace.
pub fn backend(name: &str, port: u16) -> Value {
    json!({"name": name, "port": port})
}

/// A backendRef to Service `name` port `port` in `namespace`.
pub fn backend_in(namespace: &str, name: &str, port: u16) -> Value {
    json!({"name": name, "namespace": namespace, "port": port})
}

/// A backendRef to Service `name` port `port` with `weight`.
pub fn weighted(name: &str, port: u16, weight: u32) -> Value {
    json!({"name": name, "port": port, "weight": weight})
}

/// A backendRef of an arbitrary `group`/`kind`.
pub fn backend_of_kind(group: &str, kind: &str, name: &str, port: u16) -> Value {
    json!({"group": group, "kind": kind, "name": name, "port": port})
}

/// A `RequestHeaderModifier` filter.
pub fn request_header_modifier(
    set: &[(&str, &str)],
    add: &[(&str, &str)],
    remove: &[&str],
) -> Value {
    json!({"type": "RequestHeaderModifier", "requestHeaderModifier": header_modifier(set, add, remove)})
}

/// A `ResponseHeaderModifier` filter.
pub fn response_header_modifier(
    set: &[(&str, &str)],
    add: &[(&str, &str)],
    remove: &[&str],
) -> Value {
    json!({"type": "ResponseHeaderModifier", "responseHeaderModifier": header_modifier(set, add, remove)})
}

fn header_modifier(set: &[(&str, &str)], add: &[(&str, &str)], remove: &[&str]) -> Value {
    let list = |items: &[(&str, &str)]| -> Vec<Value> {
        items
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let mut out = json!({});
    if !set.is_empty() {
        out["set"] = json!(list(set));
    }
    if !add.is_empty() {
        out["add"] = json!(list(add));
    }
    if !remove.is_empty() {
        out["remove"] = json!(remove);
    }
    out
}

/// A `RequestRedirect` filter; `spec` is the `requestRedirect` object, e.g.
/// `json!({"hostname": "example.org", "statusCode": 301})`.
pub fn request_redirect(spec: Value) -> Value {
    json!({"type": "RequestRedirect", "requestRedirect": spec})
}

/// A `URLRewrite` filter; `spec` is the `urlRewrite` object, e.g.
/// `json!({"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/two"}})`.
pub fn url_rewrite(spec: Value) -> Value {
    json!({"type": "URLRewrite", "urlRewrite": spec})
}

/// An HTTPRoute; build with the methods, then [`HttpRoute::doc`].
#[derive(Debug, Clone)]
pub struct HttpRoute(pub Value);

impl HttpRoute {
    /// An HTTPRoute `name` in `namespace` with no parents, hostnames or rules.
    pub fn new(name: &str, namespace: &str) -> Self {
        Self(json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {},
        }))
    }

    /// Attaches to Gateway `gateway` in the route's namespace (every listener).
    pub fn parent(self, gateway: &str) -> Self {
        self.parent_ref(json!({"name": gateway}))
    }

    /// Attaches to Gateway `namespace/gateway`, listener `section` if given.
    pub fn parent_in(self, namespace: &str, gateway: &str, section: Option<&str>) -> Self {
        let mut r = json!({"name": gateway, "namespace": namespace});
        if let Some(section) = section {
            r["sectionName"] = json!(section);
        }
        self.parent_ref(r)
    }

    /// Adds a raw `parentRefs[]` entry.
    pub fn parent_ref(mut self, parent: Value) -> Self {
        match self.0["spec"]["parentRefs"].as_array_mut() {
            Some(items) => items.push(parent),
            None => self.0["spec"]["parentRefs"] = json!([parent]),
        }
        self
    }

    /// Sets `hostnames`.
    pub fn hostnames(mut self, hostnames: &[&str]) -> Self {
        self.0["spec"]["hostnames"] = json!(hostnames);
        self
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        match self.0["spec"]["rules"].as_array_mut() {
            Some(items) => items.push(rule.0),
            None => self.0["spec"]["rules"] = json!([rule.0]),
        }
        self
    }

    /// The manifest document.
    pub fn doc(&self) -> String {
        doc(&self.0)
    }
}

/// A ReferenceGrant `name` in `namespace` (the namespace of the referents)
/// letting `from` = `(group, kind, namespace)` refer to `to` = `(group, kind,
/// name)` (name `None`: every object of that kind).
pub fn reference_grant(
    name: &str,
    namespace: &str,
    from: &[(&str, &str, &str)],
    to: &[(&str, &str, Option<&str>)],
) -> String {
    let from: Vec<Value> = from
        .iter()
        .map(|(g, k, ns)| json!({"group": g, "kind": k, "namespace": ns}))
        .collect();
    let to: Vec<Value> = to
        .iter()
        .map(|(g, k, n)| {
            let mut v = json!({"group": g, "kind": k});
            if let Some(n) = n {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    doc(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1beta1",
        "kind": "ReferenceGrant",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"from": from, "to": to},
    }))
}

/// A ReferenceGrant in `namespace` letting HTTPRoutes of `from_namespace`
/// refer to Services of `namespace` (`service`: only that one).
pub fn grant_services_to_routes(
    name: &str,
    namespace: &str,
    from_namespace: &str,
    service: Option<&str>,
) -> String {
    reference_grant(
        name,
        namespace,
        &[(GROUP, "HTTPRoute", from_namespace)],
        &[("", "Service", service)],
    )
}

/// A Service `name` in `namespace` with one port `http` (80 -> 8080), plus
/// one ready EndpointSlice per backend address.
pub fn namespaced_service(namespace: &str, name: &str, backends: &[SocketAddr]) -> String {
    let mut out = doc(&json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }));
    for (i, addr) in backends.iter().enumerate() {
        out.push_str(&namespaced_endpoint_slice(
            namespace,
            name,
            &format!("{name}-{i}"),
            *addr,
            true,
        ));
    }
    out
}

/// One EndpointSlice `slice` in `namespace` for Service `service` with one
/// endpoint at `addr`, ready or not.
pub fn namespaced_endpoint_slice(
    namespace: &str,
    service: &str,
    slice: &str,
    addr: SocketAddr,
    ready: bool,
) -> String {
    doc(&json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice,
            "namespace": namespace,
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": addr.port()}],
        "endpoints": [{"addresses": [addr.ip().to_string()], "conditions": {"ready": ready}}],
    }))
}

fn pairs(labels: &[(&str, &str)]) -> Value {
    let map: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(v)))
        .collect();
    Value::Object(map)
}

/// Splits `"ns/name"` (or `"name"`, namespace `default`).
pub fn split_service(spec: &str) -> (&str, &str) {
    spec.split_once('/').unwrap_or(("default", spec))
}

/// sluice with Gateway API manifests in front of whoami backends.
pub struct GatewayFixture {
    /// The backends, one per Service, named as the Service was given
    /// (`"ns/name"` or `"name"`); whoami reports that string as its `name`.
    pub backends: Vec<(String, Backend)>,
    /// The manifest directory: `services.yaml` (Services and EndpointSlices)
    /// and `gateway.yaml` (the caller's manifests).
    pub manifests: Manifests,
    /// The running sluice.
    pub sluice: Running,
}

impl GatewayFixture {
    /// The address of sluice's HTTP entrypoint (HTTP listeners, port 80).
    pub fn http_addr(&self) -> SocketAddr {
        self.sluice.http_addr
    }

    /// The address of sluice's HTTPS entrypoint (HTTPS listeners, port 443).
    pub fn https_addr(&self) -> SocketAddr {
        self.sluice.https_addr
    }

    /// The backend of Service `spec` (as given to the fixture).
    pub fn backend(&self, spec: &str) -> &Backend {
        self.backends
            .iter()
            .find(|(n, _)| n == spec)
            .map(|(_, b)| b)
            .unwrap_or_else(|| panic!("no backend {spec}"))
    }

    /// Replaces the caller's manifests (`gateway.yaml`): hot reload.
    pub fn rewrite(&self, manifests_yaml: &str) {
        self.manifests.write("gateway.yaml", manifests_yaml);
    }

    /// Stops sluice and waits for it.
    pub async fn stop(self) {
        self.sluice.stop();
        self.sluice.wait().await;
    }
}

/// Starts one whoami per Service in `services` (`"name"` in `default` or
/// `"ns/name"`; each a Service with port 80 and one ready endpoint), writes
/// `manifests_yaml` beside them and starts sluice on them.
pub async fn start_gateway_fixture(services: &[&str], manifests_yaml: &str) -> GatewayFixture {
    start_gateway_fixture_with(services, manifests_yaml, |_| {}).await
}

/// [`start_gateway_fixture`] with `tweak` applied to sluice's settings.
pub async fn start_gateway_fixture_with(
    services: &[&str],
    manifests_yaml: &str,
    tweak: impl FnOnce(&mut Settings),
) -> GatewayFixture {
    let mut backends = Vec::new();
    let mut docs = String::new();
    for spec in services {
        let (namespace, name) = split_service(spec);
        let backend = whoami(spec).await;
        docs.push_str(&namespaced_service(namespace, name, &[backend.addr]));
        backends.push(((*spec).to_owned(), backend));
    }
    let manifests = Manifests::new();
    manifests.write("services.yaml", &docs);
    manifests.write("gateway.yaml", manifests_yaml);
    let mut s = settings(&manifests.path());
    tweak(&mut s);
    let sluice = start(s).await;
    GatewayFixture {
        backends,
        manifests,
        sluice,
    }
}

/// Sends `method` `path` to `addr` with Host `host` and `headers`, and reads
/// the whole answer.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The whoami JSON report of `method` `path` on `addr` (Host `host`, extra
/// `headers`); panics unless the answer is a 200 from a whoami.
pub async fn report(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Value {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    let answer = send(client, addr, method, host, path, &all).await;
    assert_eq!(
        answer.status, 200,
        "{method} {host}{path} {headers:?}: {}",
        answer.body
    );
    serde_json::from_str(&answer.body).unwrap_or_else(|e| {
        panic!(
            "{method} {host}{path}: not whoami JSON ({e}): {}",
            answer.body
        )
    })
}

/// Which whoami answered GET `path` on `addr` with Host `host` and `headers`:
/// `Ok(name)` for a whoami 200, else `Err(status)`.
pub async fn backend_for(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<String, u16> {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    let answer = send(client, addr, "GET", host, path, &all).await;
    if answer.status != 200 {
        return Err(answer.status);
    }
    let v: Value = serde_json::from_str(&answer.body).map_err(|_| answer.status)?;
    v["name"].as_str().map(str::to_owned).ok_or(answer.status)
}

/// The values whoami saw for request header `name` (lowercase) in `report`.
pub fn seen_header(report: &Value, name: &str) -> Vec<String> {
    report["headers"][name]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The request header naming response headers for [`header_echo_backend`]
/// to set: one `Name: value` per field line (repeat the header for more).
pub const ECHO_SET_HEADER: &str = "x-echo-set-header";

/// A backend like the conformance suite's echo server: a real HTTP/1.1
/// server answering every request `200` with JSON
/// `{"name": name, "method": ..., "target": ...}` and, for each
/// [`ECHO_SET_HEADER`] field of the request (`Name: value`), the response
/// header `Name: value` exactly as written (so a test can make the backend
/// send headers a `ResponseHeaderModifier` then edits). It records every
/// request ([`RawBackend::requests`]).
pub async fn header_echo_backend(name: &str) -> RawBackend {
    let name = name.to_owned();
    RawBackend::start(std::sync::Arc::new(move |req: &Recorded| {
        let body = json!({"name": name, "method": req.method, "target": req.target}).to_string();
        let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n");
        for line in req.header_all(ECHO_SET_HEADER) {
            if let Some((n, v)) = line.split_once(':') {
                head.push_str(&format!("{}: {}\r\n", n.trim(), v.trim()));
            }
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        Reply::raw(bytes)
    }))
    .await
}

/// A `Location` header split into (scheme, host, port, path-and-query); a
/// `Location` that is not absolute (`scheme://authority/...`) gives `None`.
pub fn split_location(location: &str) -> Option<(String, String, Option<u16>, String)> {
    let (scheme, rest) = location.split_once("://")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host.to_owned(), Some(port.parse().ok()?))
        }
        _ => (authority.to_owned(), None),
    };
    Some((scheme.to_owned(), host, port, path.to_owned()))
}
