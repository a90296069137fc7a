//! Test support: real sluice instances on loopback port 0, real whoami backends,
//! manifest builders, and real HTTP clients. Nothing here is mocked.

#![allow(dead_code)]

pub mod gateway;
pub mod nginx;
pub mod redis_server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sluice::app::{Running, Settings};
use sluice::proxy::{ConnectionSettings, Http1Engine};
use sluice::router::CompileOptions;
use sluice::upstream::PoolSettings;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A whoami backend on an ephemeral loopback port; stops when dropped.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

/// Starts a whoami backend named `name`.
pub async fn whoami(name: &str) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind whoami");
    let addr = listener.local_addr().expect("whoami addr");
    let (stop, mut stopped) = watch::channel(false);
    let shutdown = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    tokio::spawn(sluice::whoami::serve(listener, name.to_owned(), shutdown));
    Backend { addr, stop }
}

/// Settings for a test instance: loopback port 0 everywhere, short debounce.
pub fn settings(manifests: &Path) -> Settings {
    Settings {
        source: sluice::app::Source::Manifests(manifests.to_path_buf()),
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        admin_addr: "127.0.0.1:0".parse().expect("addr"),
        compile: CompileOptions::default(),
        shutdown_grace: Duration::from_secs(10),
        connections: ConnectionSettings {
            http1_engine: engine_under_test(),
            ..ConnectionSettings::default()
        },
        pool: PoolSettings::default(),
        debounce: Duration::from_millis(50),
        https_addr: "127.0.0.1:0".parse().expect("addr"),
        tls: sluice::app::TlsSettings::default(),
        https_redirect_port: 443,
        data_plane: sluice::app::DataPlane::Shared,
        status: sluice::app::StatusConfig::default(),
        access_log: sluice::accesslog::AccessLogSettings::default(),
        tracing: sluice::telemetry::TracingSettings::default(),
        rate_limit_redis: Vec::new(),
    }
}

/// The HTTP/1.1 engine the suite runs on: the default (native) unless
/// `SLUICE_TEST_HTTP1_ENGINE=hyper` asks for the hyper fallback, so every test
/// can be run against both engines.
pub fn engine_under_test() -> Http1Engine {
    match std::env::var("SLUICE_TEST_HTTP1_ENGINE").as_deref() {
        Ok("hyper") => Http1Engine::Hyper,
        _ => Http1Engine::Native,
    }
}

/// Starts sluice with `settings` and waits until its first table is published.
pub async fn start(settings: Settings) -> Running {
    let running = sluice::app::start(settings).await.expect("sluice starts");
    wait_for("sluice ready", || async { running.is_ready() }).await;
    running
}

/// Polls `check` every 20 ms until it is true; panics after 5 s.
pub async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A temporary manifest directory.
pub struct Manifests {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Manifests {
    /// An empty directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The directory's path.
    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Writes (or replaces) `name` atomically, as editors and kubectl-style tools do.
    pub fn write(&self, name: &str, contents: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write manifest");
        std::fs::rename(&tmp, self.dir.path().join(name)).expect("rename manifest");
    }

    /// Deletes `name`.
    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove manifest");
    }
}

/// A Service named `name` in `default` with one port `http` (80), plus one
/// EndpointSlice per backend address (each slice carries its own port).
pub fn service(name: &str, backends: &[SocketAddr]) -> String {
    let mut out = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  ports:\n  - name: http\n    port: 80\n    targetPort: 8080\n"
    );
    for (i, addr) in backends.iter().enumerate() {
        out.push_str(&endpoint_slice(name, &format!("{name}-{i}"), *addr, true));
    }
    out
}

/// One EndpointSlice for Service `service` with one endpoint.
pub fn endpoint_slice(service: &str, slice: &str, addr: SocketAddr, ready: bool) -> String {
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {slice}\n  labels:\n    kubernetes.io/service-name: {service}\naddressType: IPv4\nports:\n- name: http\n  port: {}\nendpoints:\n- addresses: [\"{}\"]\n  conditions:\n    ready: {ready}\n",
        addr.port(),
        addr.ip()
    )
}

/// An Ingress `name` with one rule per `(host, path, pathType, service)`; host `""` is host-less.
pub fn ingress(name: &str, rules: &[(&str, &str, &str, &str)]) -> String {
    let mut out = format!(
        "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\nspec:\n  rules:\n"
    );
    for (host, path, kind, service) in rules {
        if host.is_empty() {
            out.push_str("  - http:\n");
        } else {
            out.push_str(&format!("  - host: \"{host}\"\n    http:\n"));
        }
        out.push_str(&format!(
            "      paths:\n      - path: {path}\n        pathType: {kind}\n        backend:\n          service:\n            name: {service}\n            port:\n              number: 80\n"
        ));
    }
    out
}

/// An HTTP/1.1 client with keep-alive.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, read whole.
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body as text (lossy).
    pub body: String,
}

/// GET `path` on `addr` with Host `host` (and optional extra headers).
pub async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut req = http::Request::get(format!("http://{addr}{path}")).header("host", host);
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

/// The JSON whoami report of a request sent through sluice.
pub async fn whoami_json(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> serde_json::Value {
    let answer = get(client, addr, host, path, &[("accept", "application/json")]).await;
    assert_eq!(answer.status, 200, "GET {host}{path}: {}", answer.body);
    serde_json::from_str(&answer.body).expect("whoami JSON")
}

/// Sends raw bytes on a fresh connection and returns everything read until the
/// server closes or `wait` passes.
pub async fn raw(addr: SocketAddr, request: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A running sluice in front of whoami backends, one per Service (named after it).
pub struct Fixture {
    /// The backends, in the order their Services were named.
    pub backends: Vec<Backend>,
    /// The manifest directory sluice watches.
    pub manifests: Manifests,
    /// The running sluice.
    pub sluice: Running,
}

/// Starts one whoami per Service in `services`, an Ingress `app` with `rules`
/// (`(host, path, pathType, service)`), and sluice with `tweak` applied to its settings.
pub async fn fixture(
    services: &[&str],
    rules: &[(&str, &str, &str, &str)],
    tweak: impl FnOnce(&mut Settings),
) -> Fixture {
    let mut backends = Vec::new();
    let mut docs = Vec::new();
    for name in services {
        let backend = whoami(name).await;
        docs.push(service(name, &[backend.addr]));
        backends.push(backend);
    }
    docs.push(ingress("app", rules));
    let manifests = Manifests::new();
    manifests.write("a.yaml", &docs.join("---\n"));
    let mut s = settings(&manifests.path());
    tweak(&mut s);
    let sluice = start(s).await;
    Fixture {
        backends,
        manifests,
        sluice,
    }
}

/// Service `web` (a whoami), a plain Ingress `open` on `/open` and an Ingress
/// `guarded` on `path` whose `router.middlewares` annotation is `refs`, plus
/// `extra` (Middleware objects); `allow_cross` is `--allow-cross-namespace`.
pub async fn guarded_app(
    path: &str,
    refs: &str,
    extra: &str,
    allow_cross: bool,
) -> (Fixture, Backend) {
    let backend = whoami("web").await;
    let m = Manifests::new();
    let docs = [
        service("web", &[backend.addr]),
        annotated_ingress("open", "default", &[], &[("", "/open", "Prefix", "web")]),
        annotated_ingress(
            "guarded",
            "default",
            &[("traefik.ingress.kubernetes.io/router.middlewares", refs)],
            &[("", path, "Prefix", "web")],
        ),
        extra.to_owned(),
    ];
    m.write("a.yaml", &docs.join("\n"));
    let mut s = settings(&m.path());
    s.compile.allow_cross_namespace = allow_cross;
    let sluice = start(s).await;
    let fixture = Fixture {
        backends: Vec::new(),
        manifests: m,
        sluice,
    };
    (fixture, backend)
}

/// An Ingress like [`ingress`] carrying `annotations` (e.g.
/// `traefik.ingress.kubernetes.io/router.middlewares`), in `namespace`.
pub fn annotated_ingress(
    name: &str,
    namespace: &str,
    annotations: &[(&str, &str)],
    rules: &[(&str, &str, &str, &str)],
) -> String {
    let mut meta = format!("  name: {name}\n  namespace: {namespace}\n");
    if !annotations.is_empty() {
        meta.push_str("  annotations:\n");
        for (k, v) in annotations {
            meta.push_str(&format!("    {k}: {}\n", serde_json::Value::from(*v)));
        }
    }
    ingress(name, rules).replacen(&format!("  name: {name}\n"), &meta, 1)
}

/// The `router.middlewares` annotation naming `refs`, comma-separated.
pub fn middlewares_annotation(refs: &[&str]) -> (&'static str, String) {
    (
        "traefik.ingress.kubernetes.io/router.middlewares",
        refs.join(","),
    )
}

/// A Traefik `Middleware` object `name` in `namespace`; `spec` is the YAML under
/// `spec:` (e.g. `"stripPrefix:\n  prefixes: [/api]"`).
pub fn middleware(name: &str, namespace: &str, spec: &str) -> String {
    let mut out = format!(
        "---\napiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n"
    );
    for line in spec.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The entries of the admin API's `/api/errors`.
pub async fn api_errors(admin: SocketAddr) -> Vec<serde_json::Value> {
    let answer = get(&client(), admin, "admin", "/api/errors", &[]).await;
    let v: serde_json::Value = serde_json::from_str(&answer.body).expect("errors JSON");
    v["errors"].as_array().cloned().unwrap_or_default()
}

/// A raw HTTP/1.1 backend and client for byte-level tests (see the module docs).
pub mod raw_backend;
