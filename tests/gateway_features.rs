//! Translations of the Gateway API conformance scenarios for the extended
//! HTTPRoute features (sigs.k8s.io/gateway-api `conformance/tests/*.go` +
//! `.yaml`) into tests with real sockets: a real sluice reading the
//! scenario's manifests from files, real backends behind real Services and
//! EndpointSlices (whoami, raw recording backends, small hyper servers, an
//! HTTPS echo server), and real clients (hyper, rustls, tungstenite).
//! Nothing is mocked. Each test names the scenario it translates; the
//! manifests are the scenario's (Service ports as the suite writes them),
//! and the expectations are the scenario's request/response table, plus
//! what the suite can only see through logs (a mirror backend really
//! received the copy, a retried backend really saw N requests).
//!
//! Scenarios: httproute-request-mirror, -request-multiple-mirrors,
//! -request-percentage-mirror, -cors, -timeout-request,
//! -timeout-backend-request, -retry, -retry-with-timeouts,
//! -backend-protocol-h2c, -backend-protocol-websocket, -named-rule,
//! HTTPRouteBackendRequestHeaderModifier (per-backendRef filters) and
//! -request-header-modifier-backend-weights, backendtlspolicy and
//! backendtlspolicy-san; beyond the suite: `ExtensionRef` to a Traefik
//! Middleware, a rule whose backendRefs are all invalid (500) and Services
//! without a ready endpoint (503).
//!
//! The suite's echo server takes `?delay=1s`; whoami's option is `?wait=1s`.
//! The suite's retry simulation (`?responseCode=&succeedAfter=&uuid=`) is
//! [`RetryBackend`] here.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use sluice::app::Running;
use support::gateway::*;
use support::raw_backend::{RawBackend, Recorded};
use support::*;
use tls_support::{https_backend, https_backend_with, tls_secret, HttpConn, TestCa};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_tungstenite::tungstenite::Message;

/// The conformance infrastructure namespace.
const INFRA: &str = "gateway-conformance-infra";

/// The Host the suite sends when a case names none.
const ANY: &str = "gateway.conformance.test";

const V1: &str = "infra-backend-v1";
const V2: &str = "infra-backend-v2";
const V3: &str = "infra-backend-v3";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

// ---------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------

/// `conformance/base/manifests.yaml`, the part these scenarios use: the
/// GatewayClass, the infra namespace and Gateway `same-namespace` (HTTP, 80).
fn base() -> String {
    [
        gateway_class(),
        namespace(INFRA, &[("gateway-conformance", "infra")]),
        gateway(
            "same-namespace",
            INFRA,
            &[Listener::http("http").allow(Namespaces::Same)],
        ),
    ]
    .concat()
}

/// An HTTPRoute in the infra namespace on `same-namespace`.
fn route(name: &str) -> HttpRoute {
    HttpRoute::new(name, INFRA).parent("same-namespace")
}

/// One Service port and the backend address its endpoint listens on.
#[derive(Debug, Clone, Copy)]
struct Port<'a> {
    name: &'a str,
    port: u16,
    app_protocol: Option<&'a str>,
    to: SocketAddr,
}

/// A Service `name` in the infra namespace with `ports`, and ready
/// EndpointSlices carrying each port's backend port (one slice per IP).
fn service_with_ports(name: &str, ports: &[Port<'_>]) -> String {
    let spec_ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut v =
                json!({"name": p.name, "protocol": "TCP", "port": p.port, "targetPort": 3000});
            if let Some(app) = p.app_protocol {
                v["appProtocol"] = json!(app);
            }
            v
        })
        .collect();
    let mut out = doc(&json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {"ports": spec_ports},
    }));
    let mut by_ip: BTreeMap<IpAddr, Vec<Value>> = BTreeMap::new();
    for p in ports {
        by_ip
            .entry(p.to.ip())
            .or_default()
            .push(json!({"name": p.name, "port": p.to.port()}));
    }
    for (i, (ip, slice_ports)) in by_ip.into_iter().enumerate() {
        out.push_str(&doc(&json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-{i}"),
                "namespace": INFRA,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": slice_ports,
            "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}],
        })));
    }
    out
}

/// A Service `name` with one port `http` 8080 (as the suite's backends).
fn svc(name: &str, to: SocketAddr) -> String {
    service_with_ports(
        name,
        &[Port {
            name: "http",
            port: 8080,
            app_protocol: None,
            to,
        }],
    )
}

/// A `RequestMirror` filter to Service `name` port 8080 in the infra
/// namespace; `share` adds `percent` or `fraction`.
fn mirror(name: &str, share: Option<(&str, Value)>) -> Value {
    let mut spec = json!({"backendRef": {"name": name, "namespace": INFRA, "port": 8080}});
    if let Some((key, value)) = share {
        spec[key] = value;
    }
    json!({"type": "RequestMirror", "requestMirror": spec})
}

/// The suite's header modifier of the `*-and-modify-headers` rules.
fn modify_headers() -> Value {
    request_header_modifier(
        &[("X-Header-Set", "set-overwrites-values")],
        &[
            ("X-Header-Add", "header-val-1"),
            ("X-Header-Add-Append", "header-val-2"),
        ],
        &["X-Header-Remove"],
    )
}

/// The request headers the `*-and-modify-headers` cases send.
const MODIFY_REQUEST: [(&str, &str); 2] = [
    ("X-Header-Remove", "remove-val"),
    ("X-Header-Add-Append", "append-val-1"),
];

/// The headers those cases expect at the backend, and the absent one.
const MODIFIED: [(&str, &str); 3] = [
    ("x-header-add", "header-val-1"),
    ("x-header-add-append", "append-val-1,header-val-2"),
    ("x-header-set", "set-overwrites-values"),
];

// ---------------------------------------------------------------------------
// A running sluice, requests and checks
// ---------------------------------------------------------------------------

/// sluice serving the base manifests plus a scenario's.
struct Stack {
    _dir: Manifests,
    sluice: Running,
}

impl Stack {
    fn http(&self) -> SocketAddr {
        self.sluice.http_addr
    }

    async fn stop(self) {
        self.sluice.stop();
        self.sluice.wait().await;
    }
}

/// Starts sluice on [`base`] plus `yaml` (Services included).
async fn serve(yaml: &str) -> Stack {
    let dir = Manifests::new();
    dir.write("gateway.yaml", &format!("{}{yaml}", base()));
    let sluice = start(settings(&dir.path())).await;
    Stack { _dir: dir, sluice }
}

/// `method` `path` to `addr` with Host `host`, `headers` and `body`; the
/// whole answer.
async fn exchange(
    c: &HttpClient,
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let resp = c.request(req).await.expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// GET `path` (Host [`ANY`], JSON asked for) with `headers`.
async fn get_json(
    c: &HttpClient,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    exchange(c, addr, "GET", ANY, path, &all, "").await
}

/// The backend name in a JSON answer (whoami, the HTTPS echo, the test
/// servers here), if the answer is one.
fn answered_by(answer: &Answer) -> Option<String> {
    serde_json::from_str::<Value>(&answer.body)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_owned))
}

/// The JSON body of an answer (`Null` if it is not JSON).
fn body_json(answer: &Answer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or(Value::Null)
}

/// Header `name`'s values as the suite compares them: every field line's
/// comma-separated items, trimmed, joined with `,`.
fn joined<'a>(values: impl Iterator<Item = &'a str>) -> Option<String> {
    let parts: Vec<&str> = values.flat_map(|v| v.split(',')).map(str::trim).collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// What a whoami report says the backend received for request header `name`.
fn request_header(report: &Value, name: &str) -> Option<String> {
    let values = seen_header(report, &name.to_ascii_lowercase());
    joined(values.iter().map(String::as_str))
}

/// A recorded raw request's header `name`, as the suite compares it.
fn recorded_header(req: &Recorded, name: &str) -> Option<String> {
    let values = req.header_all(name);
    joined(values.iter().map(String::as_str))
}

/// A response header, as the suite compares it.
fn response_header(answer: &Answer, name: &str) -> Option<String> {
    joined(
        answer
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// Collects every mismatch, so one run reports all failing cases.
#[derive(Default)]
struct Failures {
    list: Vec<String>,
    checked: usize,
}

impl Failures {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.checked += 1;
        if !ok {
            self.list.push(what());
        }
    }

    fn done(self) {
        assert!(
            self.list.is_empty(),
            "{} of {} checks failed:\n{}",
            self.list.len(),
            self.checked,
            self.list.join("\n")
        );
    }
}

/// The requests `backend` received for `path` (the target without its query).
fn received(backend: &RawBackend, path: &str) -> Vec<Recorded> {
    backend
        .requests()
        .into_iter()
        .filter(|r| r.target.split('?').next() == Some(path))
        .collect()
}

/// Waits until `count` stops changing (mirrored copies travel on tasks of
/// their own), then returns it.
async fn settled(count: impl Fn() -> usize) -> usize {
    let mut last = count();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let now = count();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

// ---------------------------------------------------------------------------
// Small real servers
// ---------------------------------------------------------------------------

/// A hyper server on an ephemeral loopback port; stops when dropped.
struct HyperBackend {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for HyperBackend {
    fn drop(&mut self) {
        // Dropping the accept task's JoinSet aborts every connection.
        self.task.abort();
    }
}

/// Serves `handler` over HTTP/1.1 and h2c (`h2c_only`: HTTP/2 with prior
/// knowledge and nothing else).
async fn hyper_backend<H, Fut>(h2c_only: bool, handler: H) -> HyperBackend
where
    H: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let handler = handler.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            conns.spawn(async move {
                let io = TokioIo::new(tcp);
                if h2c_only {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service)
                        .await;
                }
            });
            while conns.try_join_next().is_some() {}
        }
    });
    HyperBackend { addr, task }
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

/// An HTTP/2-cleartext-only backend (prior knowledge; an HTTP/1.1 request
/// is a protocol error to it) answering JSON `name`, `proto`, `uri`.
async fn h2c_only_backend(name: &'static str) -> HyperBackend {
    hyper_backend(true, move |req: Request<Incoming>| async move {
        json_response(
            200,
            &json!({
                "name": name,
                "proto": format!("{:?}", req.version()),
                "uri": req.uri().path_and_query().map(|p| p.as_str().to_owned()),
            }),
        )
    })
    .await
}

/// The suite's retry simulation: a request with `uuid=U`,
/// `responseCode=C`, `succeedAfter=N` (and `delayRetry=D`) gets `C` (after
/// waiting `D`) for the first `N` requests with that `uuid`, then 200. The
/// answer is JSON `name`, `attempt`. Every request is counted per `uuid`.
struct RetryBackend {
    server: HyperBackend,
    tries: Arc<Mutex<HashMap<String, usize>>>,
}

impl RetryBackend {
    async fn start(name: &'static str) -> Self {
        let tries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let counted = tries.clone();
        let server = hyper_backend(false, move |req: Request<Incoming>| {
            let tries = counted.clone();
            async move {
                let params: HashMap<String, String> =
                    form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
                        .into_owned()
                        .collect();
                let uuid = params.get("uuid").cloned().unwrap_or_default();
                let attempt = {
                    let mut tries = tries.lock().unwrap_or_else(|p| p.into_inner());
                    let n = tries.entry(uuid).or_insert(0);
                    *n += 1;
                    *n
                };
                let succeed_after: usize = params
                    .get("succeedAfter")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let code: u16 = params
                    .get("responseCode")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(500);
                let status = if attempt <= succeed_after {
                    if let Some(delay) = params
                        .get("delayRetry")
                        .and_then(|d| humantime::parse_duration(d).ok())
                    {
                        tokio::time::sleep(delay).await;
                    }
                    code
                } else {
                    200
                };
                json_response(status, &json!({"name": name, "attempt": attempt}))
            }
        })
        .await;
        Self { server, tries }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// How many requests with `uuid` arrived.
    fn tries(&self, uuid: &str) -> usize {
        let tries = self.tries.lock().unwrap_or_else(|p| p.into_inner());
        tries.get(uuid).copied().unwrap_or(0)
    }
}

/// A TCP relay in front of a backend that records the first bytes the
/// client (sluice) sent on each connection: how a test sees whether sluice
/// spoke TLS or plain text to the backend.
struct Tap {
    addr: SocketAddr,
    first_bytes: Arc<Mutex<Vec<Vec<u8>>>>,
    task: JoinHandle<()>,
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tap {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
        let addr = listener.local_addr().expect("tap addr");
        let first_bytes: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let log = first_bytes.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let log = log.clone();
                conns.spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let n =
                        match tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                            .await
                        {
                            Ok(Ok(n)) if n > 0 => n,
                            _ => return,
                        };
                    log.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(buf[..n].to_vec());
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    if up.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            first_bytes,
            task,
        }
    }

    /// The first bytes of every connection so far.
    fn connections(&self) -> Vec<Vec<u8>> {
        self.first_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// At least one connection, and every one opened with a TLS ClientHello
    /// (record type 22, version 3.x, handshake type 1): never plain text.
    fn only_tls(&self) -> Result<usize, String> {
        let conns = self.connections();
        if conns.is_empty() {
            return Err("no connection reached the backend".to_owned());
        }
        for c in &conns {
            let hello = c.len() > 5 && c[0] == 0x16 && c[1] == 0x03 && c[5] == 0x01;
            if !hello {
                return Err(format!(
                    "a connection did not start with a TLS ClientHello: {:?}",
                    String::from_utf8_lossy(&c[..c.len().min(80)])
                ));
            }
        }
        Ok(conns.len())
    }
}

// ---------------------------------------------------------------------------
// httproute-request-mirror, -multiple-mirrors, -percentage-mirror
// ---------------------------------------------------------------------------

/// httproute-request-mirror: the client gets infra-backend-v1's answer and
/// infra-backend-v2 receives a copy of the request (after the rule's
/// header modifier, which comes first in the filter list).
#[tokio::test]
async fn httproute_request_mirror() {
    let v1 = whoami(V1).await;
    let v2 = RawBackend::echo().await;
    // Beyond the suite: a mirror whose endpoint refuses connections.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    // A mirror Service with two endpoints: each copy goes to one of them.
    let (pod_a, pod_b) = (RawBackend::echo().await, RawBackend::echo().await);
    let yaml = [
        svc(V1, v1.addr),
        svc(V2, v2.addr),
        svc("dead-mirror", dead),
        doc(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "two-pods", "namespace": INFRA},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 3000}]},
        })),
        namespaced_endpoint_slice(INFRA, "two-pods", "two-pods-a", pod_a.addr, true),
        namespaced_endpoint_slice(INFRA, "two-pods", "two-pods-b", pod_b.addr, true),
        route("request-mirror")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/mirror"))
                    .filter(mirror(V2, None)),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/mirror-and-modify-headers"))
                    .filter(modify_headers())
                    .filter(mirror(V2, None)),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/mirror-to-dead"))
                    .filter(mirror("dead-mirror", None)),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/mirror-to-two-pods"))
                    .filter(mirror("two-pods", None)),
            )
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();

    // Case 1: /mirror.
    let a = get_json(&c, s.http(), "/mirror?request-id=one", &[]).await;
    f.check(
        a.status == 200 && answered_by(&a).as_deref() == Some(V1),
        || format!("/mirror: want 200 from {V1}, got {} {:?}", a.status, a.body),
    );
    wait_for("the mirrored /mirror", || async {
        !received(&v2, "/mirror").is_empty()
    })
    .await;
    let copies = settled(|| received(&v2, "/mirror").len()).await;
    let copy = &received(&v2, "/mirror")[0];
    f.check(copies == 1, || format!("/mirror: {copies} copies at {V2}"));
    f.check(
        copy.method == "GET" && copy.target == "/mirror?request-id=one",
        || format!("/mirror: copy is {:?}", copy.line()),
    );
    f.check(copy.header("host").as_deref() == Some(ANY), || {
        format!("/mirror: copy Host {:?}", copy.header("host"))
    });

    // Case 2: /mirror-and-modify-headers.
    let a = get_json(
        &c,
        s.http(),
        "/mirror-and-modify-headers?request-id=two",
        &MODIFY_REQUEST,
    )
    .await;
    f.check(
        a.status == 200 && answered_by(&a).as_deref() == Some(V1),
        || format!("/mirror-and-modify-headers: got {} {:?}", a.status, a.body),
    );
    let report = body_json(&a);
    for (name, want) in MODIFIED {
        let got = request_header(&report, name);
        f.check(got.as_deref() == Some(want), || {
            format!("/mirror-and-modify-headers at {V1}: {name} = {got:?}, want {want:?}")
        });
    }
    f.check(request_header(&report, "x-header-remove").is_none(), || {
        "/mirror-and-modify-headers: X-Header-Remove reached v1".to_owned()
    });
    wait_for("the mirrored /mirror-and-modify-headers", || async {
        !received(&v2, "/mirror-and-modify-headers").is_empty()
    })
    .await;
    let copies = settled(|| received(&v2, "/mirror-and-modify-headers").len()).await;
    f.check(copies == 1, || {
        format!("/mirror-and-modify-headers: {copies} copies")
    });
    let copy = &received(&v2, "/mirror-and-modify-headers")[0];
    for (name, want) in MODIFIED {
        let got = recorded_header(copy, name);
        f.check(got.as_deref() == Some(want), || {
            format!(
                "/mirror-and-modify-headers copy (filters apply in order): {name} = {got:?}, want {want:?}"
            )
        });
    }
    f.check(copy.header("x-header-remove").is_none(), || {
        "/mirror-and-modify-headers: X-Header-Remove reached the mirror".to_owned()
    });

    // A request body reaches both the backend and the mirror.
    let a = exchange(
        &c,
        s.http(),
        "POST",
        ANY,
        "/mirror?request-id=body",
        &[("accept", "application/json")],
        "hello mirror",
    )
    .await;
    f.check(
        a.status == 200 && body_json(&a)["body_length"] == json!(12),
        || format!("POST /mirror: got {} {:?}", a.status, a.body),
    );
    wait_for("the mirrored POST", || async {
        received(&v2, "/mirror").iter().any(|r| r.method == "POST")
    })
    .await;
    let post = received(&v2, "/mirror")
        .into_iter()
        .find(|r| r.method == "POST")
        .expect("POST copy");
    f.check(post.body == b"hello mirror" && post.complete, || {
        format!("POST copy body {:?}", String::from_utf8_lossy(&post.body))
    });

    // HTTPRequestMirrorFilter.backendRef: "Mirrored requests must be sent
    // only to a single destination endpoint within this BackendRef".
    let n = 20;
    for i in 0..n {
        let a = get_json(&c, s.http(), &format!("/mirror-to-two-pods?i={i}"), &[]).await;
        f.check(
            a.status == 200 && answered_by(&a).as_deref() == Some(V1),
            || format!("/mirror-to-two-pods: got {} {:?}", a.status, a.body),
        );
    }
    let total = || {
        received(&pod_a, "/mirror-to-two-pods").len()
            + received(&pod_b, "/mirror-to-two-pods").len()
    };
    wait_for("the copies to two-pods", || async { total() >= n }).await;
    let copies = settled(total).await;
    f.check(copies == n, || {
        format!("/mirror-to-two-pods: {copies} copies for {n} requests")
    });
    let mut targets: Vec<String> = received(&pod_a, "/mirror-to-two-pods")
        .into_iter()
        .chain(received(&pod_b, "/mirror-to-two-pods"))
        .map(|r| r.target)
        .collect();
    targets.sort();
    targets.dedup();
    f.check(targets.len() == n, || {
        format!("/mirror-to-two-pods: distinct copies {targets:?}")
    });

    // Beyond the suite: a mirror that cannot be reached changes nothing.
    for i in 0..3 {
        let a = get_json(&c, s.http(), &format!("/mirror-to-dead?i={i}"), &[]).await;
        f.check(
            a.status == 200 && answered_by(&a).as_deref() == Some(V1),
            || format!("/mirror-to-dead: got {} {:?}", a.status, a.body),
        );
    }
    f.done();
    s.stop().await;
}

/// httproute-request-multiple-mirrors: two RequestMirror filters, each
/// mirror receives one copy; the client gets infra-backend-v1's answer.
#[tokio::test]
async fn httproute_request_multiple_mirrors() {
    let v1 = whoami(V1).await;
    let v2 = RawBackend::echo().await;
    let v3 = RawBackend::echo().await;
    let yaml = [
        svc(V1, v1.addr),
        svc(V2, v2.addr),
        svc(V3, v3.addr),
        route("request-multiple-mirrors")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/multi-mirror"))
                    .filter(mirror(V2, None))
                    .filter(mirror(V3, None)),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/multi-mirror-and-modify-request-headers"))
                    .filter(modify_headers())
                    .filter(mirror(V2, None))
                    .filter(mirror(V3, None)),
            )
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();
    for (path, headers, modified) in [
        ("/multi-mirror", &[][..], false),
        (
            "/multi-mirror-and-modify-request-headers",
            &MODIFY_REQUEST[..],
            true,
        ),
    ] {
        let a = get_json(&c, s.http(), &format!("{path}?request-id=x"), headers).await;
        f.check(
            a.status == 200 && answered_by(&a).as_deref() == Some(V1),
            || format!("{path}: want 200 from {V1}, got {} {:?}", a.status, a.body),
        );
        if modified {
            let report = body_json(&a);
            for (name, want) in MODIFIED {
                let got = request_header(&report, name);
                f.check(got.as_deref() == Some(want), || {
                    format!("{path} at {V1}: {name} = {got:?}, want {want:?}")
                });
            }
        }
        for (mirror_name, m) in [(V2, &v2), (V3, &v3)] {
            wait_for(&format!("{path} mirrored to {mirror_name}"), || async {
                !received(m, path).is_empty()
            })
            .await;
            let copies = settled(|| received(m, path).len()).await;
            f.check(copies == 1, || {
                format!("{path}: {copies} copies at {mirror_name}")
            });
            let copy = &received(m, path)[0];
            f.check(copy.target == format!("{path}?request-id=x"), || {
                format!("{path}: {mirror_name} got {:?}", copy.line())
            });
            if modified {
                for (name, want) in MODIFIED {
                    let got = recorded_header(copy, name);
                    f.check(got.as_deref() == Some(want), || {
                        format!("{path} copy at {mirror_name}: {name} = {got:?}, want {want:?}")
                    });
                }
                f.check(copy.header("x-header-remove").is_none(), || {
                    format!("{path}: X-Header-Remove reached {mirror_name}")
                });
            }
        }
    }
    f.done();
    s.stop().await;
}

/// httproute-request-percentage-mirror: `percent: 20`, `fraction: 25/50`
/// and `percent: 35`; every request is answered by infra-backend-v1 and the
/// share mirrored is within four binomial standard deviations (the suite
/// allows three, with retries).
#[tokio::test]
async fn httproute_request_percentage_mirror() {
    let v1 = whoami(V1).await;
    let v2 = RawBackend::echo().await;
    let yaml = [
        svc(V1, v1.addr),
        svc(V2, v2.addr),
        route("request-percentage-mirror")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/percent-mirror"))
                    .filter(mirror(V2, Some(("percent", json!(20))))),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/percent-mirror-fraction"))
                    .filter(mirror(
                        V2,
                        Some(("fraction", json!({"numerator": 25, "denominator": 50}))),
                    )),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/percent-mirror-and-modify-headers"))
                    .filter(modify_headers())
                    .filter(mirror(V2, Some(("percent", json!(35))))),
            )
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();
    let n = 400usize;
    for (path, percent, headers) in [
        ("/percent-mirror", 20.0, &[][..]),
        ("/percent-mirror-fraction", 50.0, &[][..]),
        (
            "/percent-mirror-and-modify-headers",
            35.0,
            &MODIFY_REQUEST[..],
        ),
    ] {
        let mut not_v1 = 0;
        for i in 0..n {
            let a = get_json(&c, s.http(), &format!("{path}?i={i}"), headers).await;
            if a.status != 200 || answered_by(&a).as_deref() != Some(V1) {
                not_v1 += 1;
            }
        }
        f.check(not_v1 == 0, || {
            format!("{path}: {not_v1} of {n} answers not from {V1}")
        });
        let mirrored = settled(|| received(&v2, path).len()).await;
        let p: f64 = percent / 100.0;
        let expected = n as f64 * p;
        let margin = 4.0 * (n as f64 * p * (1.0 - p)).sqrt();
        f.check((mirrored as f64 - expected).abs() <= margin, || {
            format!("{path}: {mirrored} of {n} mirrored, want {expected}±{margin:.0} ({percent}%)")
        });
        if headers.is_empty() {
            continue;
        }
        for copy in received(&v2, path).iter().take(5) {
            for (name, want) in MODIFIED {
                let got = recorded_header(copy, name);
                f.check(got.as_deref() == Some(want), || {
                    format!("{path} copy: {name} = {got:?}, want {want:?}")
                });
            }
        }
    }
    f.done();
    s.stop().await;
}

// ---------------------------------------------------------------------------
// httproute-cors
// ---------------------------------------------------------------------------

/// One case of the suite's CORS table.
struct CorsCase {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    statuses: &'static [u16],
    /// Header -> acceptable values (comma lists compared as sets, ignoring
    /// whitespace).
    valid: &'static [(&'static str, &'static [&'static str])],
    absent: &'static [&'static str],
}

/// A comma list as a sorted set of trimmed items.
fn list_set(value: &str) -> Vec<String> {
    let mut items: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).collect();
    items.sort();
    items
}

const PREFLIGHT_OK: &[u16] = &[200, 204];

const CORS_CASES: &[CorsCase] = &[
    CorsCase {
        name: "preflight from an exact matching origin is allowed",
        method: "OPTIONS",
        path: "/cors-1",
        headers: &[
            ("Origin", "https://www.foo.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            ("access-control-allow-origin", &["https://www.foo.com"]),
            ("access-control-allow-methods", &["GET, OPTIONS"]),
            ("access-control-allow-headers", &["x-header-1, x-header-2"]),
            ("access-control-expose-headers", &["x-header-3, x-header-4"]),
            ("access-control-max-age", &["3600"]),
            ("access-control-allow-credentials", &["true"]),
        ],
        absent: &[],
    },
    CorsCase {
        name: "preflight from a wildcard matching origin is allowed",
        method: "OPTIONS",
        path: "/cors-1",
        headers: &[
            ("Origin", "https://www.bar.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            ("access-control-allow-origin", &["https://www.bar.com"]),
            ("access-control-allow-methods", &["GET, OPTIONS"]),
            ("access-control-allow-headers", &["x-header-1, x-header-2"]),
            ("access-control-expose-headers", &["x-header-3, x-header-4"]),
            ("access-control-max-age", &["3600"]),
            ("access-control-allow-credentials", &["true"]),
        ],
        absent: &[],
    },
    CorsCase {
        name: "preflight from a wildcard matching any number of labels is allowed",
        method: "OPTIONS",
        path: "/cors-1",
        headers: &[
            ("Origin", "https://xpto.www.bar.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            ("access-control-allow-origin", &["https://xpto.www.bar.com"]),
            ("access-control-allow-methods", &["GET, OPTIONS"]),
            ("access-control-allow-headers", &["x-header-1, x-header-2"]),
            ("access-control-expose-headers", &["x-header-3, x-header-4"]),
            ("access-control-max-age", &["3600"]),
            ("access-control-allow-credentials", &["true"]),
        ],
        absent: &[],
    },
    CorsCase {
        name: "preflight from a non-matching origin is not allowed",
        method: "OPTIONS",
        path: "/cors-1",
        headers: &[
            ("Origin", "https://foobar.com"),
            ("access-control-request-method", "GET"),
        ],
        statuses: &[200, 204, 403],
        valid: &[],
        absent: &["access-control-allow-origin"],
    },
    CorsCase {
        name: "simple request from an exact matching origin is allowed",
        method: "GET",
        path: "/cors-1",
        headers: &[
            ("Origin", "https://www.foo.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
        statuses: &[200],
        valid: &[("access-control-allow-origin", &["https://www.foo.com"])],
        absent: &[],
    },
    CorsCase {
        name: "simple request from a wildcard matching origin is allowed",
        method: "GET",
        path: "/cors-1",
        headers: &[
            ("Origin", "https://www.bar.com"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
        statuses: &[200],
        valid: &[("access-control-allow-origin", &["https://www.bar.com"])],
        absent: &[],
    },
    CorsCase {
        name: "simple request from a non-matching origin is not allowed",
        method: "GET",
        path: "/cors-1",
        headers: &[
            ("Origin", "https://foobar.com"),
            ("access-control-request-method", "GET"),
        ],
        statuses: &[200],
        valid: &[],
        absent: &["access-control-allow-origin"],
    },
    CorsCase {
        name: "preflight with POST is allowed by allowMethods *",
        method: "OPTIONS",
        path: "/cors-2",
        headers: &[
            ("Origin", "https://www.foo.com"),
            ("access-control-request-method", "POST"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            ("access-control-allow-methods", &["POST", "*"]),
            ("access-control-allow-origin", &["https://www.foo.com"]),
        ],
        absent: &["access-control-allow-credentials"],
    },
    CorsCase {
        name: "preflight from a wildcard origin gets * or the Origin",
        method: "OPTIONS",
        path: "/cors-wildcard-origin",
        headers: &[
            ("Origin", "https://foobar.com"),
            ("access-control-request-method", "PUT"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            ("access-control-allow-origin", &["https://foobar.com", "*"]),
            ("access-control-allow-methods", &["PUT"]),
        ],
        absent: &["access-control-allow-credentials"],
    },
    CorsCase {
        name: "preflight from a wildcard origin with a port gets * or the Origin",
        method: "OPTIONS",
        path: "/cors-wildcard-origin",
        headers: &[
            ("Origin", "https://foobar.com:12345"),
            ("access-control-request-method", "PUT"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            (
                "access-control-allow-origin",
                &["https://foobar.com:12345", "*"],
            ),
            ("access-control-allow-methods", &["PUT"]),
        ],
        absent: &["access-control-allow-credentials"],
    },
    CorsCase {
        name: "request from a wildcard origin with a port gets * or the Origin",
        method: "PUT",
        path: "/cors-wildcard-origin",
        headers: &[("Origin", "https://foobar.com:12345")],
        statuses: &[200],
        valid: &[(
            "access-control-allow-origin",
            &["https://foobar.com:12345", "*"],
        )],
        absent: &[],
    },
    CorsCase {
        name: "simple request from a wildcard origin gets * or the Origin",
        method: "PUT",
        path: "/cors-wildcard-origin",
        headers: &[("Origin", "https://foobar.com")],
        statuses: &[200],
        valid: &[("access-control-allow-origin", &["https://foobar.com", "*"])],
        absent: &["access-control-allow-credentials"],
    },
    CorsCase {
        name: "preflight with wildcards and credentials echoes origin, method and headers",
        method: "OPTIONS",
        path: "/cors-wildcard-methods-headers",
        headers: &[
            ("Origin", "https://other.foo.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            ("access-control-allow-origin", &["https://other.foo.com"]),
            ("access-control-allow-methods", &["PUT"]),
            ("access-control-allow-headers", &["x-header-1, x-header-2"]),
            ("access-control-allow-credentials", &["true"]),
        ],
        absent: &[],
    },
    CorsCase {
        name: "preflight with wildcards without credentials has no allow-credentials",
        method: "OPTIONS",
        path: "/cors-wildcard-methods-headers-unauth",
        headers: &[
            ("Origin", "https://other.foo.com"),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "x-header-1, x-header-2"),
        ],
        statuses: PREFLIGHT_OK,
        valid: &[
            (
                "access-control-allow-origin",
                &["https://other.foo.com", "*"],
            ),
            ("access-control-allow-methods", &["PUT", "*"]),
            (
                "access-control-allow-headers",
                &["x-header-1, x-header-2", "*"],
            ),
        ],
        absent: &["access-control-allow-credentials"],
    },
    CorsCase {
        name: "request with credentials allowed gets allow-credentials true",
        method: "GET",
        path: "/cors-wildcard-methods-headers",
        headers: &[("Origin", "https://other.foo.com")],
        statuses: &[200],
        valid: &[
            ("access-control-allow-origin", &["https://other.foo.com"]),
            ("access-control-allow-credentials", &["true"]),
        ],
        absent: &[],
    },
    CorsCase {
        name: "request without credentials allowed has no allow-credentials",
        method: "GET",
        path: "/cors-wildcard-methods-headers-unauth",
        headers: &[("Origin", "https://other.foo.com")],
        statuses: &[200],
        valid: &[(
            "access-control-allow-origin",
            &["https://other.foo.com", "*"],
        )],
        absent: &["access-control-allow-credentials"],
    },
];

fn cors(spec: Value) -> Value {
    json!({"type": "CORS", "cors": spec})
}

/// httproute-cors: every case of the suite's table. Preflights are answered
/// by the gateway (the backend never sees them); other requests are the
/// backend's answers with the CORS headers.
#[tokio::test]
async fn httproute_cors() {
    let v1 = whoami(V1).await;
    let yaml = [
        svc(V1, v1.addr),
        route("cors-multiple-origins-methods-headers")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/cors-1"))
                    .filter(cors(json!({
                        "allowOrigins": ["https://www.foo.com", "https://*.bar.com"],
                        "allowMethods": ["GET", "OPTIONS"],
                        "allowHeaders": ["x-header-1", "x-header-2"],
                        "exposeHeaders": ["x-header-3", "x-header-4"],
                        "allowCredentials": true,
                        "maxAge": 3600,
                    }))),
            )
            .doc(),
        route("cors-wildcard-methods")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/cors-2"))
                    .filter(cors(json!({
                        "allowOrigins": ["https://www.foo.com"],
                        "allowMethods": ["*"],
                    }))),
            )
            .doc(),
        route("cors-wildcard-origin")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/cors-wildcard-origin"))
                    .filter(cors(json!({
                        "allowOrigins": ["*"],
                        "allowMethods": ["PUT"],
                        "allowCredentials": false,
                    }))),
            )
            .doc(),
        route("cors-wildcard-methods-headers")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/cors-wildcard-methods-headers"))
                    .filter(cors(json!({
                        "allowOrigins": ["*"],
                        "allowMethods": ["*"],
                        "allowHeaders": ["*"],
                        "allowCredentials": true,
                    }))),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/cors-wildcard-methods-headers-unauth"))
                    .filter(cors(json!({
                        "allowOrigins": ["*"],
                        "allowMethods": ["*"],
                        "allowHeaders": ["*"],
                        "allowCredentials": false,
                    }))),
            )
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();
    for case in CORS_CASES {
        let mut headers = vec![("accept", "application/json")];
        headers.extend_from_slice(case.headers);
        let a = exchange(&c, s.http(), case.method, ANY, case.path, &headers, "").await;
        let name = case.name;
        f.check(case.statuses.contains(&a.status), || {
            format!(
                "{name}: status {}, want one of {:?}",
                a.status, case.statuses
            )
        });
        for (header, alternatives) in case.valid {
            let got = response_header(&a, header);
            let ok = got.as_deref().is_some_and(|got| {
                alternatives
                    .iter()
                    .any(|alt| list_set(alt) == list_set(got))
            });
            f.check(ok, || {
                format!("{name}: {header} = {got:?}, want one of {alternatives:?}")
            });
        }
        for header in case.absent {
            let got = response_header(&a, header);
            f.check(got.is_none(), || {
                format!("{name}: {header} present: {got:?}")
            });
        }
        let by = answered_by(&a);
        if case.method == "OPTIONS" {
            f.check(by.is_none(), || {
                format!("{name}: the preflight reached the backend ({by:?})")
            });
        } else {
            f.check(by.as_deref() == Some(V1), || {
                format!("{name}: want the answer of {V1}, got {by:?}: {:?}", a.body)
            });
        }
    }
    f.done();
    s.stop().await;
}

// ---------------------------------------------------------------------------
// httproute-timeout-request, httproute-timeout-backend-request
// ---------------------------------------------------------------------------

/// Runs the suite's three timeout cases on `prefix` (500ms) and
/// `disabled` (`0s`): fast -> 200, `wait=1s` -> 504 after about 500ms,
/// `wait=1s` without a timeout -> 200.
async fn check_timeouts(s: &Stack, prefix: &str, disabled: &str) {
    let c = client();
    let mut f = Failures::default();
    let a = get_json(&c, s.http(), prefix, &[]).await;
    f.check(
        a.status == 200 && answered_by(&a).as_deref() == Some(V1),
        || format!("{prefix}: want 200, got {} {:?}", a.status, a.body),
    );
    let started = Instant::now();
    let a = get_json(&c, s.http(), &format!("{prefix}?wait=1s"), &[]).await;
    let took = started.elapsed();
    f.check(a.status == 504, || {
        format!("{prefix}?wait=1s: want 504, got {} {:?}", a.status, a.body)
    });
    f.check(
        took >= Duration::from_millis(450) && took < Duration::from_millis(950),
        || format!("{prefix}?wait=1s: answered after {took:?}, want about 500ms"),
    );
    let started = Instant::now();
    let a = get_json(&c, s.http(), &format!("{disabled}?wait=1s"), &[]).await;
    let took = started.elapsed();
    f.check(
        a.status == 200 && answered_by(&a).as_deref() == Some(V1),
        || {
            format!(
                "{disabled}?wait=1s: want 200, got {} {:?}",
                a.status, a.body
            )
        },
    );
    f.check(took >= Duration::from_secs(1), || {
        format!("{disabled}?wait=1s: answered after {took:?}, before the backend")
    });
    // The connection and the route still work after a timeout.
    let a = get_json(&c, s.http(), prefix, &[]).await;
    f.check(a.status == 200, || {
        format!("{prefix} after a timeout: {}", a.status)
    });
    f.done();
}

fn with_timeouts(rule: Rule, timeouts: Value) -> Rule {
    let mut rule = rule;
    rule.0["timeouts"] = timeouts;
    rule
}

/// httproute-timeout-request: `timeouts.request: 500ms`, and `0s` disables it.
#[tokio::test]
async fn httproute_timeout_request() {
    let v1 = whoami(V1).await;
    let yaml = [
        svc(V1, v1.addr),
        route("request-timeout")
            .rule(with_timeouts(
                Rule::to(V1, 8080).matching(Match::prefix("/request-timeout")),
                json!({"request": "500ms"}),
            ))
            .rule(with_timeouts(
                Rule::to(V1, 8080).matching(Match::prefix("/disable-request-timeout")),
                json!({"request": "0s"}),
            ))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    check_timeouts(&s, "/request-timeout", "/disable-request-timeout").await;
    s.stop().await;
}

/// httproute-timeout-backend-request: `timeouts.backendRequest: 500ms`, and
/// `0s` disables it.
#[tokio::test]
async fn httproute_timeout_backend_request() {
    let v1 = whoami(V1).await;
    let yaml = [
        svc(V1, v1.addr),
        route("backend-request-timeout")
            .rule(with_timeouts(
                Rule::to(V1, 8080).matching(Match::prefix("/backend-timeout")),
                json!({"backendRequest": "500ms"}),
            ))
            .rule(with_timeouts(
                Rule::to(V1, 8080).matching(Match::prefix("/disable-backend-timeout")),
                json!({"backendRequest": "0s"}),
            ))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    check_timeouts(&s, "/backend-timeout", "/disable-backend-timeout").await;
    s.stop().await;
}

// ---------------------------------------------------------------------------
// httproute-retry, httproute-retry-with-timeouts
// ---------------------------------------------------------------------------

fn with_retry(rule: Rule, retry: Value) -> Rule {
    let mut rule = rule;
    rule.0["retry"] = retry;
    rule
}

/// One retry case: GET `path` with the simulation's parameters must get
/// `want`, and the backend must have seen `tries` requests.
struct RetryCase {
    path: &'static str,
    code: u16,
    succeed_after: usize,
    delay: Option<&'static str>,
    want: u16,
    tries: usize,
}

async fn check_retries(s: &Stack, backend: &RetryBackend, cases: &[RetryCase]) {
    let c = client();
    let mut f = Failures::default();
    for (i, case) in cases.iter().enumerate() {
        let uuid = format!("case-{i}");
        let mut path = format!(
            "{}?responseCode={}&succeedAfter={}&uuid={uuid}",
            case.path, case.code, case.succeed_after
        );
        if let Some(delay) = case.delay {
            path.push_str(&format!("&delayRetry={delay}"));
        }
        let a = get_json(&c, s.http(), &path, &[]).await;
        f.check(a.status == case.want, || {
            format!("{path}: want {}, got {} {:?}", case.want, a.status, a.body)
        });
        if case.want != 504 {
            // The answer is the backend's own (the last try's).
            f.check(answered_by(&a).as_deref() == Some(V3), || {
                format!("{path}: answer not from {V3}: {:?}", a.body)
            });
        }
        // Abandoned tries may still be on their way to the backend.
        let tries = settled(|| backend.tries(&uuid)).await;
        f.check(tries == case.tries, || {
            format!(
                "{path}: the backend saw {tries} requests, want {}",
                case.tries
            )
        });
    }
    f.done();
}

/// httproute-retry (experimental): `attempts` counts retries, `codes` are
/// the statuses retried; the backend answers the configured code for its
/// first N requests. Beyond the suite, the brief's minimal pair: `{attempts:
/// 2, codes: [500]}` turns 500-then-200 into 200 after two requests, and the
/// same rule without `retry` answers 500 after one.
#[tokio::test]
async fn httproute_retry() {
    let v3 = RetryBackend::start(V3).await;
    let yaml = [
        svc(V3, v3.addr()),
        route("retries")
            .rule(with_retry(
                Rule::to(V3, 8080).matching(Match::prefix("/retry/code-500-attempts-3")),
                json!({"codes": [500], "attempts": 3}),
            ))
            .rule(with_retry(
                Rule::to(V3, 8080).matching(Match::prefix("/retry/code-all-attempts-2")),
                json!({"codes": [500, 502, 503, 504], "attempts": 2}),
            ))
            .rule(with_retry(
                Rule::to(V3, 8080).matching(Match::prefix("/retry/code-500-attempts-2")),
                json!({"codes": [500], "attempts": 2}),
            ))
            .rule(Rule::to(V3, 8080).matching(Match::prefix("/no-retry")))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let case = |path, code, succeed_after, want, tries| RetryCase {
        path,
        code,
        succeed_after,
        delay: None,
        want,
        tries,
    };
    let a3 = "/retry/code-500-attempts-3";
    let all2 = "/retry/code-all-attempts-2";
    let cases = [
        // The suite's table.
        case(a3, 500, 2, 200, 3),
        case(a3, 500, 4, 500, 4),
        case(a3, 503, 2, 503, 1),
        case(all2, 500, 1, 200, 2),
        case(all2, 500, 3, 500, 3),
        case(all2, 502, 1, 200, 2),
        case(all2, 502, 3, 502, 3),
        case(all2, 503, 1, 200, 2),
        case(all2, 503, 3, 503, 3),
        case(all2, 504, 1, 200, 2),
        case(all2, 504, 3, 504, 3),
        // The brief's pair.
        case("/retry/code-500-attempts-2", 500, 1, 200, 2),
        case("/no-retry", 500, 1, 500, 1),
    ];
    check_retries(&s, &v3, &cases).await;
    s.stop().await;
}

/// httproute-retry-with-timeouts (experimental): a try cut by
/// `backendRequest` is retried; `request` bounds every try together.
#[tokio::test]
async fn httproute_retry_with_timeouts() {
    let v3 = RetryBackend::start(V3).await;
    let yaml = [
        svc(V3, v3.addr()),
        route("retries-with-timeouts")
            .rule(with_timeouts(
                with_retry(
                    Rule::to(V3, 8080)
                        .matching(Match::prefix("/retry/backend-request-timeout-200ms")),
                    json!({"attempts": 2}),
                ),
                json!({"backendRequest": "200ms"}),
            ))
            .rule(with_timeouts(
                with_retry(
                    Rule::to(V3, 8080).matching(Match::prefix("/retry/request-timeout-200ms")),
                    json!({"codes": [500], "attempts": 5}),
                ),
                json!({"backendRequest": "200ms", "request": "400ms"}),
            ))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let backend = "/retry/backend-request-timeout-200ms";
    let request = "/retry/request-timeout-200ms";
    let cases = [
        RetryCase {
            path: backend,
            code: 500,
            succeed_after: 2,
            delay: Some("300ms"),
            want: 200,
            tries: 3,
        },
        RetryCase {
            path: backend,
            code: 500,
            succeed_after: 3,
            delay: Some("300ms"),
            want: 504,
            tries: 3,
        },
        RetryCase {
            path: request,
            code: 500,
            succeed_after: 1,
            delay: None,
            want: 200,
            tries: 2,
        },
        RetryCase {
            path: request,
            code: 500,
            succeed_after: 4,
            delay: Some("100ms"),
            want: 504,
            // 100ms per failing try: the 400ms request timeout ends the
            // fourth try (or the third, on a slow machine).
            tries: 4,
        },
    ];
    check_retries(&s, &v3, &cases[..3]).await;
    // The last case: the answer is 504 within the request timeout, whatever
    // the exact number of tries (3 or 4) the timer allowed.
    let c = client();
    let started = Instant::now();
    let path = format!(
        "{}?responseCode=500&succeedAfter=4&delayRetry=100ms&uuid=last",
        cases[3].path
    );
    let a = get_json(&c, s.http(), &path, &[]).await;
    let took = started.elapsed();
    assert_eq!(a.status, cases[3].want, "{path}: {:?}", a.body);
    assert!(
        took >= Duration::from_millis(380) && took < Duration::from_millis(800),
        "{path}: answered after {took:?}, want about 400ms"
    );
    let tries = settled(|| v3.tries("last")).await;
    assert!(
        (3..=cases[3].tries).contains(&tries),
        "{path}: {tries} tries"
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------
// httproute-backend-protocol-h2c, httproute-backend-protocol-websocket
// ---------------------------------------------------------------------------

/// The suite's infra-backend-v1 Service: `first-port` 8080 (plain),
/// `second-port` 8081 (`appProtocol: kubernetes.io/h2c`, here an
/// h2c-only server) and `third-port` 8082 (`appProtocol: kubernetes.io/ws`,
/// whoami, which echoes WebSocket messages).
fn infra_v1_with_protocol_ports(whoami_addr: SocketAddr, h2c_addr: SocketAddr) -> String {
    service_with_ports(
        V1,
        &[
            Port {
                name: "first-port",
                port: 8080,
                app_protocol: None,
                to: whoami_addr,
            },
            Port {
                name: "second-port",
                port: 8081,
                app_protocol: Some("kubernetes.io/h2c"),
                to: h2c_addr,
            },
            Port {
                name: "third-port",
                port: 8082,
                app_protocol: Some("kubernetes.io/ws"),
                to: whoami_addr,
            },
        ],
    )
}

/// httproute-backend-protocol-h2c: a backendRef to a port with
/// `appProtocol: kubernetes.io/h2c` reaches an h2c-only backend over
/// HTTP/2, from an h2c prior-knowledge client (the suite's) and from an
/// HTTP/1.1 client.
#[tokio::test]
async fn httproute_backend_protocol_h2c() {
    let web = whoami(V1).await;
    let h2c = h2c_only_backend("infra-backend-v1-h2c").await;
    // The backend really is h2c-only: HTTP/1.1 gets no HTTP/1.1 answer.
    let direct = raw(
        h2c.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_millis(500),
    )
    .await;
    assert!(!direct.starts_with("HTTP/1.1"), "{direct:?}");
    let yaml = [
        infra_v1_with_protocol_ports(web.addr, h2c.addr),
        route("backend-protocol-h2c").rule(Rule::to(V1, 8081)).doc(),
    ]
    .concat();
    let s = serve(&yaml).await;

    let mut conn = HttpConn::h2c(s.http()).await;
    let reply = conn.get(ANY, "/h2c-prior-knowledge?x=1", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.version, http::Version::HTTP_2);
    let v = reply.json();
    assert_eq!(v["name"], "infra-backend-v1-h2c");
    assert_eq!(v["proto"], "HTTP/2.0");
    assert_eq!(v["uri"], "/h2c-prior-knowledge?x=1");

    let c = client();
    let a = get_json(&c, s.http(), "/from-http1", &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v = body_json(&a);
    assert_eq!(v["name"], "infra-backend-v1-h2c");
    assert_eq!(v["proto"], "HTTP/2.0");
    s.stop().await;
}

/// httproute-backend-protocol-websocket: a backendRef to a port with
/// `appProtocol: kubernetes.io/ws`; a WebSocket through the route echoes a
/// text and a binary frame.
#[tokio::test]
async fn httproute_backend_protocol_websocket() {
    let web = whoami(V1).await;
    let h2c = h2c_only_backend("unused").await;
    let yaml = [
        infra_v1_with_protocol_ports(web.addr, h2c.addr),
        route("backend-protocol-ws").rule(Rule::to(V1, 8082)).doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let url = format!("ws://{}/ws", s.http());
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        url.as_str(),
    )
    .expect("ws request");
    req.headers_mut()
        .insert("host", http::HeaderValue::from_static(ANY));
    req.headers_mut().insert(
        "origin",
        http::HeaderValue::from_static("ws://gateway/httproute-backend-protocol-websocket"),
    );
    let (mut ws, resp) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("handshake in time")
    .expect("WebSocket handshake through sluice");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("Websocket Support!"))
        .await
        .expect("send text");
    let reply = ws.next().await.expect("a message").expect("ok");
    assert_eq!(reply, Message::text("Websocket Support!"));
    let bytes = vec![1u8, 2, 3, 4, 5, 6, 7];
    ws.send(Message::binary(bytes.clone()))
        .await
        .expect("send binary");
    let reply = ws.next().await.expect("a message").expect("ok");
    assert_eq!(reply, Message::binary(bytes));
    ws.close(None).await.expect("close");
    // A plain request on the same route still reaches whoami.
    let c = client();
    let a = get_json(&c, s.http(), "/plain", &[]).await;
    assert_eq!(answered_by(&a).as_deref(), Some(V1), "{}", a.body);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// httproute-named-rule
// ---------------------------------------------------------------------------

/// httproute-named-rule: a named rule and an unnamed one both serve.
#[tokio::test]
async fn httproute_named_rule() {
    let v1 = whoami(V1).await;
    let v2 = whoami(V2).await;
    let yaml = [
        svc(V1, v1.addr),
        svc(V2, v2.addr),
        route("http-named-rules")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/named"))
                    .named("named-rule"),
            )
            .rule(Rule::to(V2, 8080).matching(Match::prefix("/unnamed")))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let a = get_json(&c, s.http(), "/named", &[]).await;
    assert_eq!(
        (a.status, answered_by(&a).as_deref()),
        (200, Some(V1)),
        "{}",
        a.body
    );
    let a = get_json(&c, s.http(), "/unnamed", &[]).await;
    assert_eq!(
        (a.status, answered_by(&a).as_deref()),
        (200, Some(V2)),
        "{}",
        a.body
    );
    // The rule's name is what the route is known by.
    let routes = get(&c, s.sluice.admin_addr, "admin", "/api/routes", &[]).await;
    assert_eq!(routes.status, 200);
    assert!(routes.body.contains("named-rule"), "{}", routes.body);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// HTTPRouteBackendRequestHeaderModifier, -backend-weights
// ---------------------------------------------------------------------------

/// A rule on `prefix` to infra-backend-v1 whose backendRef carries `filter`.
fn backend_filtered(prefix: &str, filter: Value) -> Rule {
    let mut b = backend(V1, 8080);
    b["filters"] = json!([filter]);
    Rule::new().matching(Match::prefix(prefix)).backend(b)
}

/// HTTPRouteBackendRequestHeaderModifier
/// (`httproute-request-header-modifier-backend.yaml` with the
/// request-header-modifier table): the filters sit on the backendRef.
#[tokio::test]
async fn httproute_backend_request_header_modifier() {
    let v1 = whoami(V1).await;
    let yaml = [
        svc(V1, v1.addr),
        route("request-header-modifier")
            .rule(backend_filtered(
                "/set",
                request_header_modifier(&[("X-Header-Set", "set-overwrites-values")], &[], &[]),
            ))
            .rule(backend_filtered(
                "/add",
                request_header_modifier(&[], &[("X-Header-Add", "add-appends-values")], &[]),
            ))
            .rule(backend_filtered(
                "/remove",
                request_header_modifier(&[], &[], &["X-Header-Remove"]),
            ))
            .rule(backend_filtered(
                "/multiple",
                request_header_modifier(
                    &[
                        ("X-Header-Set-1", "header-set-1"),
                        ("X-Header-Set-2", "header-set-2"),
                    ],
                    &[
                        ("X-Header-Add-1", "header-add-1"),
                        ("X-Header-Add-2", "header-add-2"),
                        ("X-Header-Add-3", "header-add-3"),
                    ],
                    &["X-Header-Remove-1", "X-Header-Remove-2"],
                ),
            ))
            .rule(backend_filtered(
                "/case-insensitivity",
                request_header_modifier(
                    &[("X-Header-Set", "header-set")],
                    &[("X-Header-Add", "header-add")],
                    &["X-Header-Remove"],
                ),
            ))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let cases: &[Case] = &[
        (
            "/set",
            &[("Some-Other-Header", "val")],
            &[
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ],
            &[],
        ),
        (
            "/set",
            &[
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "some-other-value"),
            ],
            &[
                ("Some-Other-Header", "val"),
                ("X-Header-Set", "set-overwrites-values"),
            ],
            &[],
        ),
        (
            "/add",
            &[("Some-Other-Header", "val")],
            &[
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "add-appends-values"),
            ],
            &[],
        ),
        (
            "/add",
            &[
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value"),
            ],
            &[
                ("Some-Other-Header", "val"),
                ("X-Header-Add", "some-other-value,add-appends-values"),
            ],
            &[],
        ),
        (
            "/remove",
            &[("X-Header-Remove", "val")],
            &[],
            &["X-Header-Remove"],
        ),
        (
            "/multiple",
            &[
                ("X-Header-Set-2", "set-val-2"),
                ("X-Header-Add-2", "add-val-2"),
                ("X-Header-Remove-2", "remove-val-2"),
                ("Another-Header", "another-header-val"),
            ],
            &[
                ("X-Header-Set-1", "header-set-1"),
                ("X-Header-Set-2", "header-set-2"),
                ("X-Header-Add-1", "header-add-1"),
                ("X-Header-Add-2", "add-val-2,header-add-2"),
                ("X-Header-Add-3", "header-add-3"),
                ("Another-Header", "another-header-val"),
            ],
            &["X-Header-Remove-1", "X-Header-Remove-2"],
        ),
        (
            "/case-insensitivity",
            &[
                ("x-header-set", "original-val-set"),
                ("x-header-add", "original-val-add"),
                ("x-header-remove", "original-val-remove"),
                ("Another-Header", "another-header-val"),
            ],
            &[
                ("X-Header-Set", "header-set"),
                ("X-Header-Add", "original-val-add,header-add"),
                ("Another-Header", "another-header-val"),
            ],
            &["x-header-remove", "X-Header-Remove"],
        ),
    ];
    for (path, sent, want, absent) in cases {
        let a = get_json(&c, s.http(), path, sent).await;
        if a.status != 200 || answered_by(&a).as_deref() != Some(V1) {
            f.check(false, || {
                format!("{path} {sent:?}: got {} {:?}", a.status, a.body)
            });
            continue;
        }
        let report = body_json(&a);
        for (name, value) in *want {
            let got = request_header(&report, name);
            f.check(got.as_deref() == Some(*value), || {
                format!("{path} {sent:?}: {name} = {got:?}, want {value:?}")
            });
        }
        for name in *absent {
            let got = request_header(&report, name);
            f.check(got.is_none(), || {
                format!("{path} {sent:?}: {name} still sent: {got:?}")
            });
        }
    }
    f.done();
    s.stop().await;
}

/// httproute-request-header-modifier-backend-weights: two weighted
/// backendRefs, each with its own filter setting `Backend`; 100 requests,
/// each backend receives only its own header value, and both get traffic.
#[tokio::test]
async fn httproute_request_header_modifier_backend_weights() {
    let v1 = whoami(V1).await;
    let v2 = whoami(V2).await;
    let weighted_with_header = |name: &str| {
        let mut b = weighted(name, 8080, 10);
        b["filters"] = json!([request_header_modifier(&[("Backend", name)], &[], &[])]);
        b
    };
    let yaml = [
        svc(V1, v1.addr),
        svc(V2, v2.addr),
        route("request-header-modifier-backend-weights")
            .rule(
                Rule::new()
                    .backend(weighted_with_header(V1))
                    .backend(weighted_with_header(V2)),
            )
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut counts: HashMap<String, usize> = HashMap::new();
    for i in 0..100 {
        let a = get_json(&c, s.http(), "/", &[]).await;
        assert_eq!(a.status, 200, "request {i}: {}", a.body);
        let report = body_json(&a);
        let pod = report["name"].as_str().unwrap_or("").to_owned();
        let header = seen_header(&report, "backend");
        assert_eq!(header, vec![pod.clone()], "request {i}: {report}");
        *counts.entry(pod).or_insert(0) += 1;
    }
    assert!(
        counts.get(V1).copied().unwrap_or(0) > 0 && counts.get(V2).copied().unwrap_or(0) > 0,
        "both backends get traffic: {counts:?}"
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------
// backendtlspolicy, backendtlspolicy-san
// ---------------------------------------------------------------------------

/// A ConfigMap `name` with `ca.crt` = `pem`.
fn ca_config_map(name: &str, pem: &str) -> String {
    doc(&json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": INFRA},
        "data": {"ca.crt": pem},
    }))
}

/// A Service `name` with the suite's TLS port (`btls`, 443) to `to`.
fn tls_service(name: &str, to: SocketAddr, app_protocol: Option<&str>) -> String {
    service_with_ports(
        name,
        &[Port {
            name: "btls",
            port: 443,
            app_protocol,
            to,
        }],
    )
}

/// A BackendTLSPolicy `name` for Service `service` port `btls`, verifying
/// against ConfigMap `ca`, with `hostname` and `subjectAltNames`.
fn backend_tls_policy(
    name: &str,
    service: &str,
    ca: &str,
    hostname: &str,
    sans: &[Value],
) -> String {
    let mut validation = json!({
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": ca}],
        "hostname": hostname,
    });
    if !sans.is_empty() {
        validation["subjectAltNames"] = json!(sans);
    }
    doc(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "BackendTLSPolicy",
        "metadata": {"name": name, "namespace": INFRA},
        "spec": {
            "targetRefs": [{"group": "", "kind": "Service", "name": service, "sectionName": "btls"}],
            "validation": validation,
        },
    }))
}

fn san_hostname(name: &str) -> Value {
    json!({"type": "Hostname", "hostname": name})
}

fn san_uri(uri: &str) -> Value {
    json!({"type": "URI", "uri": uri})
}

/// A rule for Exact `path` to Service `service` port 443.
fn tls_rule(path: &str, service: &str) -> Rule {
    Rule::new()
        .matching(Match::exact(path))
        .backend(json!({"group": "", "kind": "Service", "name": service, "port": 443}))
}

/// backendtlspolicy (with the brief's names): an HTTPS echo backend whose
/// certificate for `web.test` is signed by a test CA. With a
/// BackendTLSPolicy naming that CA (ConfigMap `ca.crt`) and `hostname:
/// web.test` the request succeeds over TLS with SNI `web.test`; with a CA
/// that did not sign it, or a hostname the certificate lacks, it fails with
/// 5xx and sluice never speaks plain text to the backend; with
/// `subjectAltNames` naming what the certificate has, `hostname` may
/// differ (it is then only the SNI). The suite's re-encrypt case (an HTTPS
/// listener in front) is here too.
#[tokio::test]
async fn backend_tls_policy_verifies_against_the_configmap_ca() {
    let ca = TestCa::new("tls-checks CA");
    let other = TestCa::new("mismatch CA");
    let backend = https_backend("tls-backend", &ca.issue("web", &["web.test"])).await;
    let good = Tap::start(backend.addr).await;
    let wrong_ca = Tap::start(backend.addr).await;
    let wrong_host = Tap::start(backend.addr).await;
    let by_san = Tap::start(backend.addr).await;
    let no_policy = Tap::start(backend.addr).await;
    let missing_ca = Tap::start(backend.addr).await;
    let no_ca_key = Tap::start(backend.addr).await;
    let front = tls_support::cert("front", &["https-listener.org"]);
    let yaml = [
        ca_config_map("tls-checks-ca-certificate", &ca.cert_pem),
        ca_config_map("mismatch-ca-certificate", &other.cert_pem),
        tls_service("backendtlspolicy-test", good.addr, None),
        tls_service(
            "backendtlspolicy-cert-mismatch-test",
            wrong_ca.addr,
            Some("HTTPS"),
        ),
        tls_service(
            "backendtlspolicy-host-mismatch-test",
            wrong_host.addr,
            Some("HTTPS"),
        ),
        tls_service("backendtlspolicy-san-test", by_san.addr, None),
        // The control: no policy, so plain HTTP to the TLS port.
        tls_service("no-policy-test", no_policy.addr, None),
        // Invalid caCertificateRefs: a missing ConfigMap, one without `ca.crt`.
        tls_service("missing-ca-test", missing_ca.addr, None),
        tls_service("no-ca-key-test", no_ca_key.addr, None),
        doc(&json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "no-ca-key", "namespace": INFRA},
            "data": {"other.crt": ca.cert_pem.clone()},
        })),
        backend_tls_policy(
            "missing-ca",
            "missing-ca-test",
            "does-not-exist",
            "web.test",
            &[],
        ),
        backend_tls_policy("no-ca-key", "no-ca-key-test", "no-ca-key", "web.test", &[]),
        backend_tls_policy(
            "normative-test",
            "backendtlspolicy-test",
            "tls-checks-ca-certificate",
            "web.test",
            &[],
        ),
        backend_tls_policy(
            "cert-mismatch",
            "backendtlspolicy-cert-mismatch-test",
            "mismatch-ca-certificate",
            "web.test",
            &[],
        ),
        backend_tls_policy(
            "host-mismatch",
            "backendtlspolicy-host-mismatch-test",
            "tls-checks-ca-certificate",
            "mismatch.example.com",
            &[],
        ),
        backend_tls_policy(
            "san-differs-from-hostname",
            "backendtlspolicy-san-test",
            "tls-checks-ca-certificate",
            "other.test",
            &[san_hostname("web.test")],
        ),
        route("backendtlspolicy")
            .rule(tls_rule("/backendtlspolicy", "backendtlspolicy-test"))
            .rule(tls_rule(
                "/backendtlspolicy-cert-mismatch",
                "backendtlspolicy-cert-mismatch-test",
            ))
            .rule(tls_rule(
                "/backendtlspolicy-host-mismatch",
                "backendtlspolicy-host-mismatch-test",
            ))
            .rule(tls_rule(
                "/backendtlspolicy-san",
                "backendtlspolicy-san-test",
            ))
            .rule(tls_rule("/no-policy", "no-policy-test"))
            .rule(tls_rule("/missing-ca", "missing-ca-test"))
            .rule(tls_rule("/no-ca-key", "no-ca-key-test"))
            .doc(),
        // The re-encrypt case: HTTPS in front, TLS to the backend.
        tls_secret(INFRA, "tls-validity-checks-certificate", &front),
        gateway(
            "same-namespace-with-https-listener",
            INFRA,
            &[Listener::https("https", "tls-validity-checks-certificate")],
        ),
        HttpRoute::new("backendtlspolicy-reencrypt", INFRA)
            .parent("same-namespace-with-https-listener")
            .hostnames(&["https-listener.org"])
            .rule(tls_rule("/backendtlspolicy", "backendtlspolicy-test"))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();

    // The valid policy: 200 from the TLS backend, SNI = hostname.
    let a = get_json(&c, s.http(), "/backendtlspolicy", &[]).await;
    let v = body_json(&a);
    f.check(a.status == 200 && v["name"] == "tls-backend", || {
        format!(
            "/backendtlspolicy: want 200 from the TLS backend, got {} {:?}",
            a.status, a.body
        )
    });
    f.check(
        v["tls_version"] == "TLSv1.3" || v["tls_version"] == "TLSv1.2",
        || format!("/backendtlspolicy: backend saw no TLS: {v}"),
    );
    f.check(v["sni"] == "web.test", || {
        format!("/backendtlspolicy: SNI {}, want web.test", v["sni"])
    });
    f.check(good.only_tls().is_ok(), || {
        format!("/backendtlspolicy: {:?}", good.only_tls())
    });

    // A CA that did not sign the certificate, and a hostname it does not
    // carry: 5xx, and only TLS handshakes ever reach the backend.
    for (path, tap, statuses) in [
        (
            "/backendtlspolicy-cert-mismatch",
            &wrong_ca,
            &[502u16, 503][..],
        ),
        (
            "/backendtlspolicy-host-mismatch",
            &wrong_host,
            &[502, 503][..],
        ),
    ] {
        for _ in 0..2 {
            let a = get_json(&c, s.http(), path, &[]).await;
            f.check(statuses.contains(&a.status), || {
                format!(
                    "{path}: want one of {statuses:?}, got {} {:?}",
                    a.status, a.body
                )
            });
            f.check(answered_by(&a).is_none(), || {
                format!("{path}: the backend's answer came through: {:?}", a.body)
            });
        }
        f.check(tap.only_tls().is_ok(), || {
            format!("{path}: {:?}", tap.only_tls())
        });
    }

    // subjectAltNames naming the certificate's name; hostname differs.
    let a = get_json(&c, s.http(), "/backendtlspolicy-san", &[]).await;
    let v = body_json(&a);
    f.check(a.status == 200 && v["name"] == "tls-backend", || {
        format!(
            "/backendtlspolicy-san: want 200, got {} {:?}",
            a.status, a.body
        )
    });
    f.check(v["sni"] == "other.test", || {
        format!(
            "/backendtlspolicy-san: SNI {}, want the hostname other.test",
            v["sni"]
        )
    });
    f.check(by_san.only_tls().is_ok(), || {
        format!("/backendtlspolicy-san: {:?}", by_san.only_tls())
    });

    // BackendTLSPolicyValidation.caCertificateRefs: "Connections using an
    // invalid CACertificateRef MUST fail, and the client MUST receive an
    // HTTP 5xx error response" -- and never fall back to plain text.
    for (path, tap) in [("/missing-ca", &missing_ca), ("/no-ca-key", &no_ca_key)] {
        let a = get_json(&c, s.http(), path, &[]).await;
        f.check(
            (500..600).contains(&a.status) && answered_by(&a).is_none(),
            || {
                format!(
                    "{path}: want a 5xx from sluice, got {} {:?}",
                    a.status, a.body
                )
            },
        );
        let seen = tap.connections();
        f.check(tap.only_tls().is_ok() || seen.is_empty(), || {
            format!(
                "{path}: plain text reached the backend: {:?}",
                tap.only_tls()
            )
        });
    }

    // The control shows the tap tells plain text from TLS: without a
    // policy sluice speaks HTTP to the TLS port, which fails.
    let a = get_json(&c, s.http(), "/no-policy", &[]).await;
    f.check(a.status != 200 && answered_by(&a).is_none(), || {
        format!("/no-policy: {} {:?}", a.status, a.body)
    });
    let seen = no_policy.connections();
    f.check(
        no_policy.only_tls().is_err() && seen.iter().any(|c| c.starts_with(b"GET /no-policy ")),
        || format!("/no-policy: the tap saw {seen:?}"),
    );

    // Re-encrypt: TLS from the client to sluice, TLS from sluice to the backend.
    let mut conn = HttpConn::https(
        s.sluice.https_addr,
        Some("https-listener.org"),
        &["http/1.1"],
    )
    .await;
    let reply = conn
        .get(
            "https-listener.org",
            "/backendtlspolicy",
            &[("accept", "application/json")],
        )
        .await;
    f.check(reply.status == 200, || {
        format!(
            "re-encrypt: want 200, got {} {:?}",
            reply.status, reply.body
        )
    });
    if reply.status == 200 {
        let v = reply.json();
        f.check(v["name"] == "tls-backend" && v["sni"] == "web.test", || {
            format!("re-encrypt: {v}")
        });
    }
    f.done();
    s.stop().await;
}

/// A CA and a server config for a leaf with DNS names `dns` and URI SANs
/// `uris`, signed by it (built here: the shared test certificates carry
/// DNS names only).
fn ca_and_server(dns: &[&str], uris: &[&str]) -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::string::Ia5String;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };
    let mut ca_params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "tls-checks SAN CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "tls-backend");
    leaf.distinguished_name = dn;
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for name in dns {
        leaf.subject_alt_names.push(SanType::DnsName(
            Ia5String::try_from(*name).expect("DNS name"),
        ));
    }
    for uri in uris {
        leaf.subject_alt_names
            .push(SanType::URI(Ia5String::try_from(*uri).expect("URI")));
    }
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &issuer).expect("leaf certificate");
    let key_der = rustls_pki_types::PrivateKeyDer::Pkcs8(
        rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key_der)
    .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (ca_pem, Arc::new(config))
}

/// backendtlspolicy-san: the backend's certificate carries DNS
/// `abc.example.com` and URI `spiffe://abc.example.com/test-identity`; a
/// policy whose `subjectAltNames` lists one of them succeeds, one listing
/// neither fails with 5xx (over TLS: nothing in plain text).
#[tokio::test]
async fn backend_tls_policy_subject_alt_names() {
    let (ca_pem, config) = ca_and_server(
        &["abc.example.com"],
        &["spiffe://abc.example.com/test-identity"],
    );
    let backend = https_backend_with("tls-backend", config).await;
    let tap = Tap::start(backend.addr).await;
    type Case = (&'static str, Vec<Value>, bool);
    let cases: Vec<Case> = vec![
        ("san-dns", vec![san_hostname("abc.example.com")], true),
        (
            "san-dns-mismatch",
            vec![san_hostname("dce.example.com")],
            false,
        ),
        (
            "san-uri",
            vec![san_uri("spiffe://abc.example.com/test-identity")],
            true,
        ),
        (
            "san-uri-mismatch",
            vec![san_uri("spiffe://def.example.com/test-identity")],
            false,
        ),
        (
            "multiple-sans",
            vec![
                san_uri("spiffe://abc.example.com/test-identity"),
                san_hostname("abc.example.com"),
            ],
            true,
        ),
        (
            "multiple-mismatch-sans",
            vec![
                san_uri("spiffe://def.example.com/test-identity"),
                san_hostname("def.example.com"),
            ],
            false,
        ),
    ];
    let mut yaml = vec![ca_config_map("tls-checks-ca-certificate", &ca_pem)];
    let mut r = route("backendtlspolicy-san-test").hostnames(&["abc.example.com"]);
    for (name, sans, _) in &cases {
        let service = format!("backendtlspolicy-{name}-test");
        let app = (*name != "san-dns").then_some("HTTPS");
        yaml.push(tls_service(&service, tap.addr, app));
        yaml.push(backend_tls_policy(
            name,
            &service,
            "tls-checks-ca-certificate",
            "abc.example.com",
            sans,
        ));
        r = r.rule(tls_rule(&format!("/backendtlspolicy-{name}"), &service));
    }
    yaml.push(r.doc());
    let s = serve(&yaml.concat()).await;
    let c = client();
    let mut f = Failures::default();
    for (name, _, ok) in &cases {
        let path = format!("/backendtlspolicy-{name}");
        let a = exchange(
            &c,
            s.http(),
            "GET",
            "abc.example.com",
            &path,
            &[("accept", "application/json")],
            "",
        )
        .await;
        if *ok {
            let v = body_json(&a);
            f.check(a.status == 200 && v["name"] == "tls-backend", || {
                format!("{path}: want 200, got {} {:?}", a.status, a.body)
            });
            f.check(v["sni"] == "abc.example.com", || {
                format!("{path}: SNI {}", v["sni"])
            });
        } else {
            f.check(
                (500..600).contains(&a.status) && answered_by(&a).is_none(),
                || {
                    format!(
                        "{path}: want a 5xx from sluice, got {} {:?}",
                        a.status, a.body
                    )
                },
            );
        }
    }
    f.check(tap.only_tls().is_ok(), || format!("{:?}", tap.only_tls()));
    f.done();
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Beyond the suite: ExtensionRef, invalid backendRefs, no ready endpoints
// ---------------------------------------------------------------------------

fn extension_ref(group: &str, kind: &str, name: &str) -> Value {
    json!({"type": "ExtensionRef", "extensionRef": {"group": group, "kind": kind, "name": name}})
}

/// `ExtensionRef` to a Traefik `Middleware` (basicAuth with an htpasswd
/// Secret): 401 without or with wrong credentials, 200 with right ones. An
/// `ExtensionRef` that does not resolve (a missing Middleware, an unknown
/// kind) must not be skipped: 500 (HTTPRouteFilter `extensionRef` docs).
#[tokio::test]
async fn httproute_extension_ref_to_traefik_middleware() {
    let v1 = whoami(V1).await;
    // alice:secret ({SHA} htpasswd).
    let htpasswd = "alice:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n";
    let yaml = [
        svc(V1, v1.addr),
        doc(&json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "auth-users", "namespace": INFRA},
            "stringData": {"users": htpasswd},
        })),
        middleware(
            "auth",
            INFRA,
            "basicAuth:\n  secret: auth-users\n  realm: gw",
        ),
        route("extension-ref")
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/auth"))
                    .filter(extension_ref("traefik.io", "Middleware", "auth")),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/missing"))
                    .filter(extension_ref("traefik.io", "Middleware", "nope")),
            )
            .rule(
                Rule::to(V1, 8080)
                    .matching(Match::prefix("/unknown-kind"))
                    .filter(extension_ref("example.com", "Filter", "auth")),
            )
            .rule(Rule::to(V1, 8080).matching(Match::prefix("/open")))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();
    let right = format!("Basic {}", STANDARD.encode("alice:secret"));
    let wrong = format!("Basic {}", STANDARD.encode("alice:nope"));

    let a = get_json(&c, s.http(), "/auth", &[]).await;
    f.check(a.status == 401 && answered_by(&a).is_none(), || {
        format!("/auth without credentials: {} {:?}", a.status, a.body)
    });
    let challenge = response_header(&a, "www-authenticate");
    f.check(challenge.as_deref() == Some("Basic realm=\"gw\""), || {
        format!("/auth challenge {challenge:?}")
    });
    let a = get_json(&c, s.http(), "/auth", &[("authorization", &wrong)]).await;
    f.check(a.status == 401, || {
        format!("/auth wrong password: {} {:?}", a.status, a.body)
    });
    let a = get_json(&c, s.http(), "/auth/x", &[("authorization", &right)]).await;
    f.check(
        a.status == 200 && answered_by(&a).as_deref() == Some(V1),
        || format!("/auth with credentials: {} {:?}", a.status, a.body),
    );
    for path in ["/missing", "/unknown-kind"] {
        let a = get_json(&c, s.http(), path, &[("authorization", &right)]).await;
        f.check(a.status == 500 && answered_by(&a).is_none(), || {
            format!("{path}: want 500, got {} {:?}", a.status, a.body)
        });
    }
    let a = get_json(&c, s.http(), "/open", &[]).await;
    f.check(a.status == 200, || format!("/open: {}", a.status));
    f.done();
    s.stop().await;
}

/// A rule whose backendRefs are all invalid (a missing Service, an unknown
/// kind) answers 500; a valid Service without a ready endpoint (not ready,
/// or no EndpointSlice at all) answers 503.
#[tokio::test]
async fn httproute_invalid_backends_500_and_no_ready_endpoint_503() {
    let v1 = whoami(V1).await;
    let never = whoami("must-not-be-reached").await;
    let yaml = [
        svc(V1, v1.addr),
        doc(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "not-ready", "namespace": INFRA},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 3000}]},
        })),
        namespaced_endpoint_slice(INFRA, "not-ready", "not-ready-0", never.addr, false),
        doc(&json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "no-endpoints", "namespace": INFRA},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 3000}]},
        })),
        route("backends")
            .rule(
                Rule::new()
                    .matching(Match::prefix("/all-invalid"))
                    .backend(backend("nonexistent", 8080))
                    .backend(backend_of_kind(
                        "unknownkind.example.com",
                        "NonExistent",
                        V1,
                        8080,
                    )),
            )
            .rule(Rule::to("not-ready", 8080).matching(Match::prefix("/not-ready")))
            .rule(Rule::to("no-endpoints", 8080).matching(Match::prefix("/no-endpoints")))
            .rule(Rule::to(V1, 8080).matching(Match::prefix("/ok")))
            .doc(),
    ]
    .concat();
    let s = serve(&yaml).await;
    let c = client();
    let mut f = Failures::default();
    for (path, want) in [
        ("/all-invalid", 500u16),
        ("/all-invalid", 500),
        ("/not-ready", 503),
        ("/no-endpoints", 503),
    ] {
        let a = get_json(&c, s.http(), path, &[]).await;
        f.check(a.status == want && answered_by(&a).is_none(), || {
            format!("{path}: want {want}, got {} {:?}", a.status, a.body)
        });
    }
    let a = get_json(&c, s.http(), "/ok", &[]).await;
    f.check(answered_by(&a).as_deref() == Some(V1), || {
        format!("/ok: {} {:?}", a.status, a.body)
    });
    f.done();
    s.stop().await;
}
