//! Routing through the real data plane with objects from the Kubernetes API.
//!
//! No real cluster runs here: sluice is started with `--kubeconfig` pointing
//! at the fake API server of `support/kube_api.rs`, an HTTP server that
//! speaks the real list/watch protocol with real API JSON. Requests go to
//! real whoami backends ("pods") on loopback addresses 127.0.0.2, .3, ...,
//! all on one port as a Service's pods would be.
//!
//! PENDING: this file needs `app::Source` and `Running::kube_stats` from
//! `tests/pending/app_wiring.diff`. Cargo does not build `tests/pending/`;
//! after `git apply tests/pending/app_wiring.diff`, move this file to
//! `tests/kube_routing.rs`. It passed that way on top of the `kube` branch.

mod support;

#[path = "support/kube_api.rs"]
mod kube_api;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube_api::FakeApi;
use serde_json::{json, Value};
use sluice::app::{Running, Source};
use sluice::watch::KubeSettings;
use support::{client, get};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long any one expected change may take before the test fails (a liveness bound).
const PATIENCE: Duration = Duration::from_secs(30);

/// A whoami backend on its own loopback address.
struct Pod {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl Pod {
    async fn start(ip: &str, port: u16, name: &str) -> Pod {
        let listener = TcpListener::bind((ip, port)).await.expect("bind pod");
        let addr = listener.local_addr().expect("pod addr");
        let (stop, mut stopped) = watch::channel(false);
        let shutdown = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        tokio::spawn(sluice::whoami::serve(listener, name.to_owned(), shutdown));
        Pod { addr, stop }
    }

    fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pods `names[i]` on 127.0.0.(i+2), all on one port.
async fn pods(names: &[&str]) -> Vec<Pod> {
    let first = Pod::start("127.0.0.2", 0, names[0]).await;
    let port = first.addr.port();
    let mut pods = vec![first];
    for (i, name) in names.iter().enumerate().skip(1) {
        pods.push(Pod::start(&format!("127.0.0.{}", i + 2), port, name).await);
    }
    pods
}

async fn start_sluice(api: &FakeApi, dir: &tempfile::TempDir) -> Running {
    let mut settings = support::settings(dir.path());
    settings.source = Source::Kube(KubeSettings {
        kubeconfig: Some(api.write_kubeconfig(dir.path())),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..KubeSettings::default()
    });
    let running = sluice::app::start(settings).await.expect("sluice starts");
    eventually("sluice ready", || running.is_ready()).await;
    running
}

async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("{what} did not happen within {PATIENCE:?}"));
}

fn ingress(name: &str, host: &str) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "apps"},
        "spec": {"rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}},
        }]}}]},
    })
}

fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    })
}

/// An EndpointSlice of Service `web`; each endpoint is (pod, ready, terminating).
fn slice(name: &str, port: u16, endpoints: &[(&Pod, bool, bool)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(pod, ready, terminating)| {
            json!({
                "addresses": [pod.addr.ip().to_string()],
                "conditions": {"ready": ready, "serving": true, "terminating": terminating},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "apps",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    })
}

fn hostname(body: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix("Hostname: "))
        .map(str::to_owned)
}

/// A client sending requests one after another until stopped, counting
/// answers per backend and failures.
struct Traffic {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    hits: Arc<Mutex<HashMap<String, u64>>>,
    total: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(addr: SocketAddr, host: &'static str) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let total = Arc::new(AtomicU64::new(0));
        let (s, f, h, t) = (stop.clone(), failures.clone(), hits.clone(), total.clone());
        let task = tokio::spawn(async move {
            let client = client();
            // Bounded: at most this many requests, whatever happens.
            for _ in 0..200_000 {
                if s.load(Ordering::Acquire) {
                    break;
                }
                let answer = get(&client, addr, host, "/", &[]).await;
                match (answer.status, hostname(&answer.body)) {
                    (200, Some(name)) => *h.lock().expect("hits").entry(name).or_default() += 1,
                    (status, _) => f
                        .lock()
                        .expect("failures")
                        .push(format!("{status}: {}", answer.body)),
                }
                t.fetch_add(1, Ordering::AcqRel);
            }
        });
        Traffic {
            stop,
            failures,
            hits,
            total,
            task,
        }
    }

    fn hits(&self, name: &str) -> u64 {
        self.hits
            .lock()
            .expect("hits")
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    async fn seen(&self, name: &str) {
        eventually(&format!("a request answered by {name}"), || {
            self.hits(name) > 0
        })
        .await;
    }

    /// Waits for `n` more requests.
    async fn more(&self, n: u64) {
        let target = self.total.load(Ordering::Acquire) + n;
        eventually(&format!("{n} more requests"), || {
            self.total.load(Ordering::Acquire) >= target
        })
        .await;
    }

    async fn finish(self) -> Vec<String> {
        self.stop.store(true, Ordering::Release);
        self.task.await.expect("traffic task");
        let failures = self.failures.lock().expect("failures").clone();
        failures
    }
}

#[tokio::test]
async fn objects_from_the_api_route_requests() {
    let api = FakeApi::start_new().await;
    let pods = pods(&["pod-a"]).await;
    let port = pods[0].addr.port();
    api.apply(ingress("web", "web.example"));
    api.apply(service());
    api.apply(slice("web-1", port, &[(&pods[0], true, false)]));
    let dir = tempfile::tempdir().expect("temp dir");
    let sluice = start_sluice(&api, &dir).await;
    let http = client();
    let answer = get(&http, sluice.http_addr, "web.example", "/", &[]).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(hostname(&answer.body).as_deref(), Some("pod-a"));

    // An edit moves the route.
    api.apply(ingress("web", "www.example"));
    let mut moved = false;
    for _ in 0..1500 {
        let new = get(&http, sluice.http_addr, "www.example", "/", &[]).await;
        let old = get(&http, sluice.http_addr, "web.example", "/", &[]).await;
        if new.status == 200 && old.status == 404 {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "the edited Ingress never took effect");
    // A deletion removes it.
    api.delete("Ingress", "apps", "web");
    let mut gone = false;
    for _ in 0..1500 {
        if get(&http, sluice.http_addr, "www.example", "/", &[])
            .await
            .status
            == 404
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the deleted Ingress kept routing");
    sluice.stop();
    sluice.wait().await;
}

/// A GatewayClass, Gateway and HTTPRoute from the API route requests through
/// the same data plane; a header match picks its rule, and an edit of the
/// route's hostnames follows.
#[tokio::test]
async fn gateway_api_objects_from_the_api_route_requests() {
    let api = FakeApi::start_new().await;
    let pods = pods(&["pod-a"]).await;
    let port = pods[0].addr.port();
    let v1 = "gateway.networking.k8s.io/v1";
    api.apply(json!({
        "apiVersion": v1, "kind": "GatewayClass", "metadata": {"name": "sluice"},
        "spec": {"controllerName": "sluice.dev/gateway-controller"},
    }));
    api.apply(json!({
        "apiVersion": v1, "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "apps", "generation": 1},
        "spec": {"gatewayClassName": "sluice",
                 "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
    }));
    let route = |host: &str| {
        json!({
            "apiVersion": v1, "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "apps", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                     "rules": [
                        {"matches": [{"headers": [{"name": "x-team", "value": "blue"}]}],
                         "backendRefs": [{"name": "web", "port": 80}]},
                        {"matches": [{"path": {"type": "Exact", "value": "/missing"}}],
                         "backendRefs": [{"name": "nowhere", "port": 80}]},
                     ]},
        })
    };
    api.apply(route("gw.example"));
    api.apply(service());
    api.apply(slice("web-1", port, &[(&pods[0], true, false)]));
    let dir = tempfile::tempdir().expect("temp dir");
    let sluice = start_sluice(&api, &dir).await;
    let http = client();
    let blue = [("x-team", "blue")];
    let answer = get(&http, sluice.http_addr, "gw.example", "/", &blue).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(hostname(&answer.body).as_deref(), Some("pod-a"));
    // No rule matches without the header.
    let answer = get(&http, sluice.http_addr, "gw.example", "/", &[]).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    // A backendRef to a Service that does not exist answers 500.
    let answer = get(&http, sluice.http_addr, "gw.example", "/missing", &[]).await;
    assert_eq!(answer.status, 500, "{}", answer.body);

    api.apply(route("www.gw.example"));
    let mut moved = false;
    for _ in 0..1500 {
        let new = get(&http, sluice.http_addr, "www.gw.example", "/", &blue).await;
        let old = get(&http, sluice.http_addr, "gw.example", "/", &blue).await;
        if new.status == 200 && old.status == 404 {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(moved, "the edited HTTPRoute never took effect");
    sluice.stop();
    sluice.wait().await;
}

#[tokio::test]
async fn endpoint_churn_loses_no_request_and_terminating_endpoints_get_none() {
    let api = FakeApi::start_new().await;
    let pods = pods(&["a1", "a2", "b1", "b2", "b3"]).await;
    let [a1, a2, b1, b2, b3] = [&pods[0], &pods[1], &pods[2], &pods[3], &pods[4]];
    let port = a1.addr.port();
    api.apply(ingress("web", "web.example"));
    api.apply(service());
    api.apply(slice(
        "web-1",
        port,
        &[(a1, true, false), (a2, true, false)],
    ));
    let dir = tempfile::tempdir().expect("temp dir");
    let sluice = start_sluice(&api, &dir).await;
    let traffic = Traffic::start(sluice.http_addr, "web.example");
    traffic.seen("a1").await;
    traffic.seen("a2").await;

    // A new pod comes up in a second slice.
    api.apply(slice("web-2", port, &[(b1, true, false)]));
    traffic.seen("b1").await;

    // a1 starts terminating (still serving, as during its grace period) and
    // b2 comes up, in one slice update: once b2 answers, a1 is out.
    api.apply(slice(
        "web-1",
        port,
        &[(a1, false, true), (a2, true, false), (b2, true, false)],
    ));
    traffic.seen("b2").await;
    let a1_hits = traffic.hits("a1");
    traffic.more(200).await;
    assert_eq!(
        traffic.hits("a1"),
        a1_hits,
        "a terminating endpoint got new requests"
    );
    a1.stop();

    // a2 is replaced by b3.
    api.apply(slice(
        "web-1",
        port,
        &[(b2, true, false), (b3, true, false)],
    ));
    traffic.seen("b3").await;
    a2.stop();
    traffic.more(200).await;

    let failures = traffic.finish().await;
    assert!(
        failures.is_empty(),
        "{} requests failed during churn: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    sluice.stop();
    sluice.wait().await;
}

#[tokio::test]
async fn api_server_outage_keeps_traffic_flowing_and_changes_arrive_after() {
    let api = FakeApi::start_new().await;
    let pods = pods(&["a1", "b1"]).await;
    let port = pods[0].addr.port();
    api.apply(ingress("web", "web.example"));
    api.apply(service());
    api.apply(slice("web-1", port, &[(&pods[0], true, false)]));
    let dir = tempfile::tempdir().expect("temp dir");
    let sluice = start_sluice(&api, &dir).await;
    let traffic = Traffic::start(sluice.http_addr, "web.example");
    traffic.seen("a1").await;

    api.stop();
    // Made while sluice cannot see the API server.
    api.apply(slice(
        "web-1",
        port,
        &[(&pods[0], true, false), (&pods[1], true, false)],
    ));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(sluice.is_ready(), "readiness stays during an outage");
    assert_eq!(traffic.hits("b1"), 0, "the change cannot have arrived yet");
    traffic.more(10).await;
    api.start().await;
    traffic.seen("b1").await;
    let failures = traffic.finish().await;
    assert!(failures.is_empty(), "requests failed: {failures:?}");
    let stats = sluice.kube_stats.as_ref().expect("kube provider stats");
    assert!(stats.reconnects.load(Ordering::Relaxed) >= 1);
    // The same counters on /metrics, for operators.
    let metrics = support::get(
        &support::client(),
        sluice.admin_addr,
        "admin",
        "/metrics",
        &[],
    )
    .await;
    let reconnects = metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("sluice_kube_reconnects_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(reconnects.is_some_and(|n| n >= 1), "{}", metrics.body);
    assert!(metrics.body.contains("sluice_kube_watch_errors_total"));
    sluice.stop();
    sluice.wait().await;
}
