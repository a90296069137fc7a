//! OpenTelemetry tracing through a real sluice: real HTTP/1.1 and HTTP/2
//! clients, real whoami backends (which echo the `traceparent` they
//! received), and an in-test OTLP/HTTP receiver, a real hyper server on
//! loopback that decodes each `POST /v1/traces` body as the protobuf
//! `ExportTraceServiceRequest` a collector would receive.

mod support;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use sluice::telemetry::TracingSettings;
use support::*;

/// One exported span with what the tests look at.
#[derive(Debug, Clone)]
struct Got {
    name: String,
    kind: i32,
    trace_id: String,
    span_id: String,
    parent: String,
    attributes: HashMap<String, String>,
    error: bool,
}

impl Got {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("<missing>", String::as_str)
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::StringValue(s) => s.clone(),
        Value::IntValue(i) => i.to_string(),
        Value::BoolValue(b) => b.to_string(),
        Value::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn got(span: &Span) -> Got {
    Got {
        name: span.name.clone(),
        kind: span.kind,
        trace_id: hex(&span.trace_id),
        span_id: hex(&span.span_id),
        parent: hex(&span.parent_span_id),
        attributes: span
            .attributes
            .iter()
            .filter_map(|kv| {
                let v = kv.value.as_ref()?.value.as_ref()?;
                Some((kv.key.clone(), value_text(v)))
            })
            .collect(),
        error: span.status.as_ref().is_some_and(|s| s.code == 2),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The OTLP receiver: everything it decoded, and the resources' service names.
#[derive(Default)]
struct Received {
    spans: Vec<Got>,
    services: Vec<String>,
    paths: Vec<String>,
}

async fn receiver() -> (SocketAddr, Arc<Mutex<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(Mutex::new(Received::default()));
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let content_type = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        assert_eq!(content_type, "application/x-protobuf");
                        let export =
                            ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                        let mut r = store.lock().expect("lock");
                        r.paths.push(path);
                        for resource_spans in &export.resource_spans {
                            if let Some(resource) = &resource_spans.resource {
                                for kv in &resource.attributes {
                                    if kv.key == "service.name" {
                                        if let Some(v) =
                                            kv.value.as_ref().and_then(|v| v.value.as_ref())
                                        {
                                            r.services.push(value_text(v));
                                        }
                                    }
                                }
                            }
                            for scope in &resource_spans.scope_spans {
                                for span in &scope.spans {
                                    r.spans.push(got(span));
                                }
                            }
                        }
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, received)
}

/// Waits until `trace_id` has `n` spans at the receiver.
async fn spans_of(received: &Arc<Mutex<Received>>, trace_id: &str, n: usize) -> Vec<Got> {
    for _ in 0..100 {
        let found: Vec<Got> = received
            .lock()
            .expect("lock")
            .spans
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} spans of trace {trace_id}");
}

fn one(spans: &[Got], kind: SpanKind) -> Got {
    let of_kind: Vec<&Got> = spans.iter().filter(|s| s.kind == kind as i32).collect();
    assert_eq!(of_kind.len(), 1, "one {kind:?} span expected: {spans:#?}");
    of_kind[0].clone()
}

/// The `traceparent` the backend received, from its whoami JSON report.
fn backend_traceparent(report: &serde_json::Value) -> String {
    report["headers"]["traceparent"][0]
        .as_str()
        .unwrap_or_else(|| panic!("backend got no traceparent: {report}"))
        .to_owned()
}

fn parts(traceparent: &str) -> (String, String, String) {
    let p: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(p.len(), 4, "{traceparent}");
    assert_eq!(p[0], "00");
    (p[1].to_owned(), p[2].to_owned(), p[3].to_owned())
}

async fn traced(ratio: f64, middlewares: bool) -> (Fixture, Arc<Mutex<Received>>) {
    let (collector, received) = receiver().await;
    let rules = [
        ("app.test", "/", "Prefix", "web"),
        ("", "/h2", "Prefix", "web"),
    ];
    let f = fixture(&["web"], &rules, |s| {
        s.tracing = TracingSettings {
            // A trailing slash is fine: /v1/traces is appended once.
            endpoint: Some(format!("http://{collector}/")),
            sample_ratio: ratio,
            service_name: "edge-test".to_owned(),
        };
    })
    .await;
    if middlewares {
        // A route with a middleware goes through the bridge and `to_backend`.
        let web = f.backends[0].addr;
        f.manifests.write(
            "b.yaml",
            &format!(
                "{}---\n{}---\n{}",
                service("mw", &[web]),
                annotated_ingress(
                    "mw",
                    "default",
                    &[(
                        "traefik.ingress.kubernetes.io/router.middlewares",
                        "default-strip@kubernetescrd"
                    )],
                    &[("mw.test", "/strip", "Prefix", "mw")],
                ),
                "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: strip\n  namespace: default\nspec:\n  stripPrefix:\n    prefixes: [/strip]\n"
            ),
        );
        let c = client();
        let addr = f.sluice.http_addr;
        wait_for("middleware route", || {
            let c = c.clone();
            async move { get(&c, addr, "mw.test", "/strip/x", &[]).await.status == 200 }
        })
        .await;
    }
    (f, received)
}

#[tokio::test]
async fn a_request_exports_a_server_span_and_a_client_span_and_the_backend_gets_sluices_span() {
    let (f, received) = traced(1.0, false).await;
    let c = client();
    let report = whoami_json(&c, f.sluice.http_addr, "app.test", "/a/b?x=1").await;
    let (trace_id, parent_of_backend, flags) = parts(&backend_traceparent(&report));
    assert_eq!(flags, "01", "sampled");
    let spans = spans_of(&received, &trace_id, 2).await;
    let server = one(&spans, SpanKind::Server);
    let client_span = one(&spans, SpanKind::Client);
    assert_eq!(
        server.parent, "",
        "a new trace: the server span is its root"
    );
    assert_eq!(client_span.parent, server.span_id);
    assert_eq!(
        parent_of_backend, client_span.span_id,
        "the backend's parent is sluice's client span"
    );
    assert_eq!(server.name, "GET /");
    assert_eq!(server.attr("http.request.method"), "GET");
    assert_eq!(server.attr("url.path"), "/a/b");
    assert_eq!(server.attr("url.query"), "x=1");
    assert_eq!(server.attr("url.scheme"), "http");
    assert_eq!(server.attr("http.route"), "/");
    assert_eq!(server.attr("http.response.status_code"), "200");
    assert_eq!(server.attr("server.address"), "app.test");
    assert_eq!(server.attr("client.address"), "127.0.0.1");
    assert_eq!(server.attr("sluice.ingress"), "default/app");
    assert_eq!(server.attr("sluice.service"), "default/web:80");
    assert!(server.attr("sluice.route").contains("app.test"));
    assert!(!server.error);
    let backend = f.backends[0].addr;
    assert_eq!(client_span.attr("server.address"), backend.ip().to_string());
    assert_eq!(client_span.attr("server.port"), backend.port().to_string());
    assert_eq!(client_span.attr("sluice.retry_attempt"), "0");
    assert_eq!(client_span.attr("http.response.status_code"), "200");
    let r = received.lock().expect("lock");
    assert!(r.paths.iter().all(|p| p == "/v1/traces"), "{:?}", r.paths);
    assert!(
        r.services.iter().all(|s| s == "edge-test"),
        "{:?}",
        r.services
    );
}

#[tokio::test]
async fn a_sampled_client_parent_is_continued_and_an_unsampled_one_is_not_exported() {
    let (f, received) = traced(1.0, false).await;
    let c = client();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let client_parent = "00f067aa0ba902b7";
    let answer = get(
        &c,
        f.sluice.http_addr,
        "app.test",
        "/continued",
        &[
            ("accept", "application/json"),
            ("traceparent", &format!("00-{trace_id}-{client_parent}-01")),
            ("tracestate", "vendor=abc"),
        ],
    )
    .await;
    let report: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    let (backend_trace, backend_parent, flags) = parts(&backend_traceparent(&report));
    assert_eq!(backend_trace, trace_id, "the client's trace is continued");
    assert_ne!(
        backend_parent, client_parent,
        "the backend's parent is sluice's span"
    );
    assert_eq!(flags, "01");
    assert_eq!(report["headers"]["tracestate"][0], "vendor=abc");
    assert_eq!(
        report["headers"]["traceparent"].as_array().map(Vec::len),
        Some(1),
        "the client's traceparent is replaced, not repeated"
    );
    let spans = spans_of(&received, trace_id, 2).await;
    let server = one(&spans, SpanKind::Server);
    assert_eq!(server.parent, client_parent);
    assert_eq!(one(&spans, SpanKind::Client).span_id, backend_parent);

    // Not sampled upstream: nothing exported, the decision is passed on.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let answer = get(
        &c,
        f.sluice.http_addr,
        "app.test",
        "/unsampled",
        &[
            ("accept", "application/json"),
            (
                "traceparent",
                &format!("00-{unsampled}-b7ad6b7169203331-00"),
            ),
        ],
    )
    .await;
    let report: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    let (backend_trace, _, flags) = parts(&backend_traceparent(&report));
    assert_eq!(backend_trace, unsampled);
    assert_eq!(flags, "00");
    // A later sampled request's spans arrive; the unsampled trace's never do.
    let later = whoami_json(&c, f.sluice.http_addr, "app.test", "/later").await;
    let (later_trace, _, _) = parts(&backend_traceparent(&later));
    spans_of(&received, &later_trace, 2).await;
    let r = received.lock().expect("lock");
    assert!(r.spans.iter().all(|s| s.trace_id != unsampled));
}

#[tokio::test]
async fn http2_middleware_routes_and_unmatched_requests_are_traced_too() {
    let (f, received) = traced(1.0, true).await;
    // HTTP/2 (prior knowledge): hyper's server path.
    let h2: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let req = http::Request::get(format!("http://{}/h2", f.sluice.http_addr))
        .header("accept", "application/json")
        .body(Empty::new())
        .expect("req");
    let resp = h2.request(req).await.expect("h2 response");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let report: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let (trace_id, backend_parent, _) = parts(&backend_traceparent(&report));
    let spans = spans_of(&received, &trace_id, 2).await;
    let server = one(&spans, SpanKind::Server);
    assert_eq!(server.attr("network.protocol.version"), "2");
    assert_eq!(one(&spans, SpanKind::Client).span_id, backend_parent);

    // A middleware route (stripPrefix): the bridge on the native engine.
    let c = client();
    let answer = get(
        &c,
        f.sluice.http_addr,
        "mw.test",
        "/strip/x",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let report: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    assert_eq!(report["uri"], "/x", "the middleware ran");
    let (trace_id, backend_parent, _) = parts(&backend_traceparent(&report));
    let spans = spans_of(&received, &trace_id, 2).await;
    let server = one(&spans, SpanKind::Server);
    let client_span = one(&spans, SpanKind::Client);
    assert_eq!(client_span.parent, server.span_id);
    assert_eq!(client_span.span_id, backend_parent);
    assert_eq!(server.attr("http.route"), "/strip");
    assert_eq!(server.attr("sluice.ingress"), "default/mw");

    // No route: a server span with its 404, no client span.
    let trace_id = "11111111111111111111111111111111";
    let answer = get(
        &c,
        f.sluice.http_addr,
        "nowhere.test",
        "/x",
        &[("traceparent", &format!("00-{trace_id}-2222222222222222-01"))],
    )
    .await;
    assert_eq!(answer.status, 404);
    let spans = spans_of(&received, trace_id, 1).await;
    let server = one(&spans, SpanKind::Server);
    assert_eq!(server.attr("http.response.status_code"), "404");
    assert!(spans.iter().all(|s| s.kind != SpanKind::Client as i32));
}

#[tokio::test]
async fn a_zero_ratio_samples_no_new_trace_but_still_propagates() {
    let (f, received) = traced(0.0, false).await;
    let c = client();
    let report = whoami_json(&c, f.sluice.http_addr, "app.test", "/").await;
    let (trace_id, _, flags) = parts(&backend_traceparent(&report));
    assert_eq!(flags, "00", "not sampled");
    // A client's sampled parent is still continued at ratio 0.
    let sampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    let answer = get(
        &c,
        f.sluice.http_addr,
        "app.test",
        "/",
        &[("traceparent", &format!("00-{sampled}-00f067aa0ba902b7-01"))],
    )
    .await;
    assert_eq!(answer.status, 200);
    spans_of(&received, sampled, 2).await;
    let r = received.lock().expect("lock");
    assert!(r.spans.iter().all(|s| s.trace_id != trace_id));
}

#[tokio::test]
async fn bad_tracing_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (endpoint, ratio) in [("ftp://collector:4318", 1.0), ("http://c:4318", 1.5)] {
        let mut s = settings(dir.path());
        s.tracing = TracingSettings {
            endpoint: Some(endpoint.to_owned()),
            sample_ratio: ratio,
            service_name: "sluice".to_owned(),
        };
        let err = sluice::app::start(s).await.expect_err("refused");
        assert!(err.to_string().contains("--tracing"), "{err}");
    }
}

#[tokio::test]
async fn the_access_log_names_the_trace() {
    let (collector, received) = receiver().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    let target = sluice::accesslog::Target::Path(log.clone());
    let rules = [("app.test", "/", "Prefix", "web")];
    let f = fixture(&["web"], &rules, |s| {
        s.tracing.endpoint = Some(format!("http://{collector}"));
        s.access_log.target = target;
        s.access_log.format = sluice::accesslog::Format::Json;
    })
    .await;
    let report = whoami_json(&client(), f.sluice.http_addr, "app.test", "/logged").await;
    let (trace_id, _, _) = parts(&backend_traceparent(&report));
    spans_of(&received, &trace_id, 2).await;
    let mut line = String::new();
    for _ in 0..100 {
        line = std::fs::read_to_string(&log).unwrap_or_default();
        if !line.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let entry: serde_json::Value =
        serde_json::from_str(line.lines().next().expect("a line")).expect("JSON");
    assert_eq!(entry["TraceId"], trace_id.as_str());
}

#[tokio::test]
async fn every_retry_attempt_gets_its_own_client_span() {
    let (collector, received) = receiver().await;
    // One endpoint that refuses connections, one that answers: the retry
    // middleware tries the next after a connection error.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let live = whoami("live").await;
    let (key, refs) = middlewares_annotation(&["default-retry@kubernetescrd"]);
    let manifests = Manifests::new();
    manifests.write(
        "a.yaml",
        &format!(
            "{}---\n{}---\n{}",
            service("flaky", &[dead, live.addr]),
            annotated_ingress(
                "retried",
                "default",
                &[(key, refs.as_str())],
                &[("retry.test", "/", "Prefix", "flaky")],
            ),
            "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata:\n  name: retry\n  namespace: default\nspec:\n  retry:\n    attempts: 3\n"
        ),
    );
    let mut s = settings(&manifests.path());
    s.tracing.endpoint = Some(format!("http://{collector}"));
    let sluice = start(s).await;
    let c = client();
    let mut retried = None;
    // Round-robin: within two requests one starts on the dead endpoint.
    for _ in 0..2 {
        let answer = get(
            &c,
            sluice.http_addr,
            "retry.test",
            "/",
            &[("accept", "application/json")],
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let report: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
        let (trace_id, backend_parent, _) = parts(&backend_traceparent(&report));
        let spans = spans_of(&received, &trace_id, 2).await;
        let clients: Vec<&Got> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Client as i32)
            .collect();
        if clients.len() == 2 {
            retried = Some((spans.clone(), backend_parent));
        }
    }
    let (spans, backend_parent) = retried.expect("one request was retried");
    let server = one(&spans, SpanKind::Server);
    let mut clients: Vec<&Got> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    clients.sort_by_key(|s| s.attr("sluice.retry_attempt").to_owned());
    assert_eq!(clients[0].attr("sluice.retry_attempt"), "0");
    assert!(clients[0].error, "the refused attempt failed");
    assert_eq!(clients[0].attr("server.port"), dead.port().to_string());
    assert_eq!(clients[1].attr("sluice.retry_attempt"), "1");
    assert_eq!(clients[1].attr("http.request.resend_count"), "1");
    assert_eq!(
        clients[1].span_id, backend_parent,
        "the answering attempt's span is the backend's parent"
    );
    assert!(clients.iter().all(|c| c.parent == server.span_id));
}
