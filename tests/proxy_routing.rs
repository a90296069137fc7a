//! Routing through a real sluice on loopback to real whoami backends: hosts,
//! paths, 404/503, forwarded headers, round-robin, HTTP/2 prior knowledge.

mod support;

use std::collections::HashSet;

use support::*;

#[tokio::test]
async fn routes_by_host_and_path_with_spec_precedence() {
    let web = whoami("web").await;
    let api = whoami("api").await;
    let wild = whoami("wild").await;
    let any = whoami("any").await;
    let m = Manifests::new();
    m.write(
        "services.yaml",
        &[
            service("web", &[web.addr]),
            service("api", &[api.addr]),
            service("wild", &[wild.addr]),
            service("any", &[any.addr]),
        ]
        .join("---\n"),
    );
    m.write(
        "ingress.yaml",
        &ingress(
            "app",
            &[
                ("shop.example.com", "/", "Prefix", "web"),
                ("shop.example.com", "/api", "Prefix", "api"),
                ("shop.example.com", "/exact", "Exact", "api"),
                ("*.example.com", "/", "Prefix", "wild"),
                ("", "/other", "Prefix", "any"),
            ],
        ),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    let addr = sluice.http_addr;
    let cases = [
        ("shop.example.com", "/", "web"),
        ("SHOP.Example.com:8080", "/api/v1", "api"),
        ("shop.example.com", "/api", "api"),
        // Prefix matches element-wise: /apix is not under /api.
        ("shop.example.com", "/apix", "web"),
        ("shop.example.com", "/exact", "api"),
        ("shop.example.com", "/exact/more", "web"),
        // Wildcard: exactly one label.
        ("a.example.com", "/", "wild"),
        // Host-less rule catches any host.
        ("anything.test", "/other/x", "any"),
    ];
    for (host, path, backend) in cases {
        let v = whoami_json(&c, addr, host, path).await;
        assert_eq!(v["name"], backend, "{host}{path}");
    }
    assert_eq!(get(&c, addr, "a.b.example.com", "/", &[]).await.status, 404);
    assert_eq!(get(&c, addr, "example.com", "/", &[]).await.status, 404);
    let miss = get(&c, addr, "nothing.test", "/", &[]).await;
    assert_eq!(miss.status, 404);
    assert!(miss.body.contains("not found"), "404 body: {}", miss.body);
    sluice.stop();
    sluice.wait().await;
}

#[tokio::test]
async fn services_without_endpoints_or_missing_answer_503() {
    let m = Manifests::new();
    let nobody: std::net::SocketAddr = "127.0.0.1:9".parse().expect("addr");
    m.write(
        "all.yaml",
        &format!(
            "{}{}{}",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: empty\nspec:\n  ports:\n  - name: http\n    port: 80\n",
            endpoint_slice("empty", "empty-1", nobody, false),
            ingress(
                "app",
                &[("a.test", "/empty", "Prefix", "empty"), ("a.test", "/missing", "Prefix", "ghost")]
            )
        ),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    let empty = get(&c, sluice.http_addr, "a.test", "/empty", &[]).await;
    assert_eq!(empty.status, 503, "not-ready endpoint must not get traffic");
    let missing = get(&c, sluice.http_addr, "a.test", "/missing", &[]).await;
    assert_eq!(missing.status, 503);
    // The missing Service is reported in the admin API, naming the Ingress.
    let errors = get(&c, sluice.admin_addr, "admin", "/api/errors", &[]).await;
    assert!(errors.body.contains("missing_service"), "{}", errors.body);
    assert!(errors.body.contains("ghost"), "{}", errors.body);
}

#[tokio::test]
async fn forwarded_headers_reach_the_backend() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("a.test", "/", "Prefix", "web")])),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    let answer = get(
        &c,
        sluice.http_addr,
        "a.test:8080",
        "/p%2Fq/../r?x=%20y",
        &[
            ("accept", "application/json"),
            ("x-forwarded-for", "203.0.113.1"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "secret"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    let v: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
    let h = &v["headers"];
    let first = |name: &str| h[name][0].as_str().map(str::to_owned);
    assert_eq!(
        first("X-Forwarded-For")
            .or(first("x-forwarded-for"))
            .as_deref(),
        Some("203.0.113.1, 127.0.0.1")
    );
    assert_eq!(
        first("x-forwarded-proto")
            .or(first("X-Forwarded-Proto"))
            .as_deref(),
        Some("http")
    );
    assert_eq!(
        first("x-forwarded-host")
            .or(first("X-Forwarded-Host"))
            .as_deref(),
        Some("a.test:8080")
    );
    assert_eq!(
        first("x-forwarded-port")
            .or(first("X-Forwarded-Port"))
            .as_deref(),
        Some("8080")
    );
    assert_eq!(
        first("x-real-ip").or(first("X-Real-Ip")).as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        first("host").or(first("Host")).as_deref(),
        Some("a.test:8080"),
        "Host is kept"
    );
    assert!(
        first("x-hop").is_none() && first("X-Hop").is_none(),
        "headers named by Connection are dropped"
    );
    // The dot-segment is resolved, %2F and the query are kept as sent.
    assert_eq!(v["uri"].as_str(), Some("/r?x=%20y"));
}

#[tokio::test]
async fn round_robin_spreads_over_ready_endpoints() {
    let a = whoami("a").await;
    let b = whoami("b").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[a.addr, b.addr]) + &ingress("app", &[("", "/", "Prefix", "web")])),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    let mut seen = Vec::new();
    for _ in 0..6 {
        let v = whoami_json(&c, sluice.http_addr, "x", "/").await;
        seen.push(v["name"].as_str().unwrap_or_default().to_owned());
    }
    let distinct: HashSet<_> = seen.iter().collect();
    assert_eq!(distinct.len(), 2, "both endpoints get requests: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "strict alternation: {seen:?}"
    );
}

#[tokio::test]
async fn http2_prior_knowledge_is_routed_by_authority() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("h2.test", "/", "Prefix", "web")])),
    );
    let sluice = start(settings(&m.path())).await;
    // The client dials sluice whatever the URI names, so :authority is h2.test.
    let h2_fixed =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(FixedConnector(sluice.http_addr));
    let req = http::Request::get(format!("http://h2.test:{}/hello", sluice.http_addr.port()))
        .header("accept", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .expect("request");
    let (parts, body) = req.into_parts();
    let resp = h2_fixed
        .request(http::Request::from_parts(parts, body))
        .await
        .expect("h2 response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("body")
        .to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["name"], "web");
    let host = v["headers"]["Host"][0]
        .as_str()
        .or(v["headers"]["host"][0].as_str());
    assert_eq!(
        host,
        Some(format!("h2.test:{}", sluice.http_addr.port()).as_str())
    );
}

/// A connector that always dials one address, whatever the URI names.
#[derive(Clone)]
struct FixedConnector(std::net::SocketAddr);

impl tower_service::Service<http::Uri> for FixedConnector {
    type Response = hyper_util::rt::TokioIo<tokio::net::TcpStream>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let addr = self.0;
        Box::pin(async move {
            Ok(hyper_util::rt::TokioIo::new(
                tokio::net::TcpStream::connect(addr).await?,
            ))
        })
    }
}

#[tokio::test]
async fn admin_endpoints_report_routes_and_metrics() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("m.test", "/", "Prefix", "web")])),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    assert_eq!(
        get(&c, sluice.admin_addr, "admin", "/healthz", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        get(&c, sluice.admin_addr, "admin", "/readyz", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        get(&c, sluice.http_addr, "m.test", "/", &[]).await.status,
        200
    );
    let routes = get(&c, sluice.admin_addr, "admin", "/api/routes", &[]).await;
    let v: serde_json::Value = serde_json::from_str(&routes.body).expect("routes json");
    let route = v.as_array().and_then(|a| a.first()).expect("one route");
    assert_eq!(route["host"], "m.test");
    assert_eq!(route["path"], "/");
    assert_eq!(route["ingress"]["name"], "app");
    assert_eq!(route["endpoints"][0], web.addr.to_string());
    let metrics = get(&c, sluice.admin_addr, "admin", "/metrics", &[])
        .await
        .body;
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("sluice_requests_total{")
                && l.contains("code=\"200\"")
                && l.contains("method=\"GET\"")
        })
        .unwrap_or_else(|| panic!("no request counter in:\n{metrics}"));
    assert!(line.ends_with(" 1"), "{line}");
    assert!(metrics.contains("sluice_request_duration_seconds_bucket"));
    assert!(metrics.contains("sluice_config_reloads_total 1"));
    assert!(metrics.contains("sluice_open_connections{entrypoint=\"web\"}"));
    sluice.stop();
    assert_eq!(
        get(&client(), sluice.admin_addr, "admin", "/readyz", &[])
            .await
            .status,
        503
    );
}

#[tokio::test]
async fn external_name_services_resolve_off_the_request_path() {
    let web = whoami("external").await;
    let m = Manifests::new();
    let port = web.addr.port();
    m.write(
        "a.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: ext\nspec:\n  type: ExternalName\n  externalName: 127.0.0.1\n  ports:\n  - name: http\n    port: {port}\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\nspec:\n  rules:\n  - host: ext.test\n    http:\n      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n            name: ext\n            port:\n              number: {port}\n"
        ),
    );
    let sluice = start(settings(&m.path())).await;
    let c = client();
    wait_for("the ExternalName resolves", || async {
        get(&c, sluice.http_addr, "ext.test", "/", &[]).await.status == 200
    })
    .await;
    let v = whoami_json(&c, sluice.http_addr, "ext.test", "/").await;
    assert_eq!(v["name"], "external");
}

#[tokio::test]
async fn http2_header_limit_answers_431_and_idle_connections_close() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("", "/", "Prefix", "web")])),
    );
    let mut s = settings(&m.path());
    s.connections.idle_timeout = std::time::Duration::from_millis(400);
    let sluice = start(s).await;
    let stream = tokio::net::TcpStream::connect(sluice.http_addr)
        .await
        .expect("connect");
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let mut req = http::Request::get("http://h.test/")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("req");
    for i in 0..101 {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).expect("name"),
            http::HeaderValue::from_static("v"),
        );
    }
    let resp = send.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 431);
    // With no request in flight, the connection is closed after the idle limit.
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), conn).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_core_data_plane_serves_and_drains() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(service("web", &[web.addr]) + &ingress("app", &[("", "/", "Prefix", "web")])),
    );
    let mut s = settings(&m.path());
    s.data_plane = sluice::app::DataPlane::PerCore(2);
    let sluice = start(s).await;
    // Fresh connections spread over both SO_REUSEPORT listeners; every one is served.
    for _ in 0..20 {
        let answer = raw(
            sluice.http_addr,
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            std::time::Duration::from_secs(3),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let c = client();
    let metrics = get(&c, sluice.admin_addr, "admin", "/metrics", &[])
        .await
        .body;
    assert!(metrics.contains("code=\"200\""), "{metrics}");
    sluice.stop();
    tokio::time::timeout(std::time::Duration::from_secs(5), sluice.wait())
        .await
        .expect("drains");
}
