//! The resilience middlewares through a real sluice: `retry` over a Service with
//! one dead endpoint, `circuitBreaker` tripping and recovering on a failing
//! backend, and `errors` serving pages from a second Service. Real sockets, real
//! whoami backends, manifests on disk.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::*;

/// A port nothing listens on: connections are refused at once.
const DEAD: &str = "127.0.0.1:1";

/// Starts sluice over `docs` (Services, Middlewares, Ingresses).
async fn sluice(docs: &[String]) -> (Manifests, sluice::app::Running) {
    let m = Manifests::new();
    m.write("a.yaml", &docs.join("\n---\n"));
    let running = start(settings(&m.path())).await;
    (m, running)
}

/// An Ingress on `path` for `service` with the middlewares annotation `refs` (none if empty).
fn routed(name: &str, path: &str, service: &str, refs: &[&str]) -> String {
    let annotations: Vec<(&str, String)> = if refs.is_empty() {
        Vec::new()
    } else {
        vec![middlewares_annotation(refs)]
    };
    let annotations: Vec<(&str, &str)> =
        annotations.iter().map(|(k, v)| (*k, v.as_str())).collect();
    annotated_ingress(
        name,
        "default",
        &annotations,
        &[("", path, "Prefix", service)],
    )
}

/// Sends `method` with `body` (Content-Length set) and returns status and body.
async fn send(addr: SocketAddr, method: &str, path: &str, body: &'static str) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("host", "app.example")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("request");
    let resp = client().request(req).await.expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn retry_skips_a_dead_endpoint() {
    let live = whoami("live").await;
    let dead: SocketAddr = DEAD.parse().expect("addr");
    let docs = [
        service("flaky", &[dead, live.addr]),
        middleware("again", "default", "retry:\n  attempts: 2"),
        routed(
            "with-retry",
            "/retry",
            "flaky",
            &["default-again@kubernetescrd"],
        ),
        routed("without", "/plain", "flaky", &[]),
    ];
    let (_m, s) = sluice(&docs).await;
    let c = client();

    // Without retry, the round-robin sends every other request to the dead endpoint.
    let mut plain = Vec::new();
    for _ in 0..4 {
        plain.push(
            get(&c, s.http_addr, "app.example", "/plain", &[])
                .await
                .status,
        );
    }
    assert_eq!(plain.iter().filter(|s| **s == 502).count(), 2, "{plain:?}");

    // With retry every GET lands on the live endpoint.
    for i in 0..10 {
        let a = get(&c, s.http_addr, "app.example", "/retry/x", &[]).await;
        assert_eq!(a.status, 200, "GET {i}: {}", a.body);
        assert!(a.body.contains("Hostname: live"), "{}", a.body);
    }

    // A POST without a body is replayable, so it is retried (it never reached
    // the dead endpoint); one with a streamed body is sent once only.
    for _ in 0..4 {
        assert_eq!(send(s.http_addr, "POST", "/retry/p", "").await.0, 200);
    }
    let mut with_body = Vec::new();
    for _ in 0..2 {
        with_body.push(send(s.http_addr, "POST", "/retry/p", "payload").await.0);
    }
    with_body.sort_unstable();
    assert_eq!(with_body, vec![200, 502]);
}

#[tokio::test]
async fn circuit_breaker_trips_on_500s_and_recovers() {
    let web = whoami("web").await;
    let cb = "circuitBreaker:\n  expression: ResponseCodeRatio(500, 600, 0, 600) > 0.5\n  checkPeriod: 50ms\n  fallbackDuration: 1s\n  recoveryDuration: 500ms";
    let docs = [
        service("web", &[web.addr]),
        middleware("breaker", "default", cb),
        routed("app", "/", "web", &["default-breaker@kubernetescrd"]),
    ];
    let (_m, s) = sluice(&docs).await;
    let c = client();
    let addr = s.http_addr;

    // The first 500 is relayed and trips the breaker; then sluice answers itself.
    let first = get(&c, addr, "app.example", "/?status=500", &[]).await;
    assert_eq!(first.status, 500);
    assert!(first.body.contains("Hostname: web"), "{}", first.body);
    for _ in 0..3 {
        let tripped = get(&c, addr, "app.example", "/?status=200", &[]).await;
        assert_eq!(tripped.status, 503);
        assert_eq!(tripped.body, "Service Unavailable");
    }

    // After fallbackDuration the breaker ramps traffic back, then is in standby.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = tokio::time::Instant::now();
    let mut answers = Vec::new();
    while started.elapsed() < Duration::from_millis(800) {
        answers.push(get(&c, addr, "app.example", "/", &[]).await.status);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        answers.iter().all(|s| *s == 200 || *s == 503),
        "{answers:?}"
    );
    assert_eq!(
        answers.first(),
        Some(&503),
        "recovery starts at 0%: {answers:?}"
    );
    assert_eq!(answers.last(), Some(&200), "{answers:?}");
    for _ in 0..5 {
        assert_eq!(get(&c, addr, "app.example", "/", &[]).await.status, 200);
    }
}

#[tokio::test]
async fn circuit_breaker_state_survives_an_unrelated_reload() {
    let web = whoami("web").await;
    let other = whoami("other").await;
    let cb = "circuitBreaker:\n  expression: NetworkErrorRatio() > 0.5 || ResponseCodeRatio(500, 600, 0, 600) > 0.5\n  responseCode: 429";
    let mut docs = vec![
        service("web", &[web.addr]),
        middleware("breaker", "default", cb),
        routed("app", "/app", "web", &["default-breaker@kubernetescrd"]),
    ];
    let (m, s) = sluice(&docs).await;
    let c = client();
    let addr = s.http_addr;
    assert_eq!(get(&c, addr, "x", "/app?status=502", &[]).await.status, 502);
    let tripped = get(&c, addr, "x", "/app", &[]).await;
    assert_eq!(
        (tripped.status, tripped.body.as_str()),
        (429, "Too Many Requests")
    );

    // A reload that adds another route keeps the same built breaker, still tripped.
    docs.push(service("other", &[other.addr]));
    docs.push(routed("other", "/other", "other", &[]));
    m.write("a.yaml", &docs.join("\n---\n"));
    wait_for("the new route", || async {
        get(&client(), addr, "x", "/other", &[]).await.status == 200
    })
    .await;
    assert_eq!(get(&c, addr, "x", "/app", &[]).await.status, 429);
}

#[tokio::test]
async fn errors_serve_a_page_from_another_service() {
    let web = whoami("web").await;
    let pages = whoami("pages").await;
    let spec = "errors:\n  status: [\"500-599\", \"404\"]\n  query: /{status}.html?u={url}\n  service:\n    name: pages\n    port: http";
    let docs = [
        service("web", &[web.addr]),
        service("pages", &[pages.addr]),
        middleware("oops", "default", spec),
        routed("app", "/app", "web", &["default-oops@kubernetescrd"]),
    ];
    let (_m, s) = sluice(&docs).await;
    let c = client();
    let addr = s.http_addr;

    let ok = get(&c, addr, "app.example", "/app/fine", &[]).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("Hostname: web"), "{}", ok.body);

    for code in [500u16, 503, 404] {
        let path = format!("/app/broken?status={code}");
        let page = get(&c, addr, "app.example", &path, &[("x-trace", "t1")]).await;
        assert_eq!(page.status, code, "{}", page.body);
        assert!(page.body.contains("Hostname: pages"), "{}", page.body);
        let url = format!("http%3A%2F%2Fapp.example%2Fapp%2Fbroken%3Fstatus%3D{code}");
        assert!(
            page.body
                .contains(&format!("GET /{code}.html?u={url} HTTP/1.1")),
            "{}",
            page.body
        );
        // The original request's headers (Host included) go to the error Service.
        assert!(page.body.contains("Host: app.example"), "{}", page.body);
        assert!(page.body.contains("X-Trace: t1"), "{}", page.body);
    }

    // 4xx outside the list pass through untouched.
    let teapot = get(&c, addr, "app.example", "/app/t?status=418", &[]).await;
    assert_eq!(teapot.status, 418);
    assert!(teapot.body.contains("Hostname: web"), "{}", teapot.body);
}

#[tokio::test]
async fn errors_cover_a_dead_backend() {
    let pages = whoami("pages").await;
    let dead: SocketAddr = DEAD.parse().expect("addr");
    let spec =
        "errors:\n  status: [\"502\"]\n  query: /down\n  service:\n    name: pages\n    port: 80";
    let docs = [
        service("gone", &[dead]),
        service("pages", &[pages.addr]),
        middleware("oops", "default", spec),
        routed("app", "/app", "gone", &["default-oops@kubernetescrd"]),
    ];
    let (_m, s) = sluice(&docs).await;
    let page = get(&client(), s.http_addr, "app.example", "/app", &[]).await;
    assert_eq!(page.status, 502);
    assert!(page.body.contains("GET /down HTTP/1.1"), "{}", page.body);
}

#[tokio::test]
async fn invalid_configs_fail_closed_with_a_diagnostic() {
    let web = whoami("web").await;
    let docs = [
        service("web", &[web.addr]),
        middleware(
            "bad-cb",
            "default",
            "circuitBreaker:\n  expression: Latency() > 1",
        ),
        middleware("bad-retry", "default", "retry:\n  attempts: 0"),
        middleware(
            "bad-errors",
            "default",
            "errors:\n  status: [\"500\"]\n  service:\n    name: nowhere\n    port: 80",
        ),
        routed("a", "/a", "web", &["default-bad-cb@kubernetescrd"]),
        routed("b", "/b", "web", &["default-bad-retry@kubernetescrd"]),
        routed("c", "/c", "web", &["default-bad-errors@kubernetescrd"]),
    ];
    let (_m, s) = sluice(&docs).await;
    let c = client();
    for path in ["/a", "/b", "/c"] {
        assert_eq!(
            get(&c, s.http_addr, "x", path, &[]).await.status,
            500,
            "{path}"
        );
    }
    let errors = api_errors(s.admin_addr).await;
    let messages: Vec<String> = errors
        .iter()
        .filter(|e| e["kind"] == "invalid_middleware")
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect();
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    assert!(has("unknown function \"Latency\""), "{messages:?}");
    assert!(
        has("incorrect (or empty) value for attempt"),
        "{messages:?}"
    );
    assert!(has("nowhere"), "{messages:?}");
}
