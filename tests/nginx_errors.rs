//! ingress-nginx's `default-backend`, `custom-http-errors` and
//! `disable-proxy-intercept-errors` through a real sluice: real whoami
//! backends (the default backend is a whoami too, so what it received comes
//! back in its JSON report), real HTTP clients, and the diagnostics read
//! from the admin API.

mod support;

use support::nginx::*;

use std::net::SocketAddr;

use support::*;

/// GET `path` on `host` asking for whoami's JSON report, with `headers`.
async fn get_json(f: &Fixture, host: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    send(f, host, "GET", path, &all, b"").await
}

/// The whoami JSON report in `a`'s body.
fn report(a: &Answer) -> serde_json::Value {
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{e}: {}", a.body))
}

/// The whoami report for [`get_json`], asserting the answer's status is
/// `status`.
async fn report_for(
    f: &Fixture,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
) -> serde_json::Value {
    let a = get_json(f, host, path, headers).await;
    assert_eq!(a.status, status, "{host}{path}: {}", a.body);
    report(&a)
}

/// The one value of header `name` in a whoami report (`None` when absent).
fn seen<'r>(report: &'r serde_json::Value, name: &str) -> Option<&'r str> {
    let values = report["headers"][name].as_array()?;
    assert_eq!(values.len(), 1, "{name}: {values:?}");
    values[0].as_str()
}

/// The documents of Services backed by `backends` (name, address), plus
/// `more` documents.
fn docs(backends: &[(&str, SocketAddr)], more: &[String]) -> String {
    let mut out: Vec<String> = backends
        .iter()
        .map(|(name, addr)| service(name, &[*addr]))
        .collect();
    out.extend(more.iter().cloned());
    out.join("\n---\n")
}

/// An address nothing listens on, held while the socket beside it lives:
/// bound but never listening, so connections are refused and no listener of
/// a test running alongside can take the port meanwhile.
fn closed_port() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    (socket, addr)
}

/// [`nginx_app`] with the annotations `nginx` on rules `(host, service)`
/// (Prefix `/`), written with the documents of Services `backends` (name,
/// address) and `more` documents; probes `/`.
async fn app(
    nginx: &[(&str, &str)],
    rules: &[(&str, &str)],
    backends: &[(&str, SocketAddr)],
    more: &[String],
) -> Fixture {
    let rules: Vec<(&str, &str, &str, &str)> = rules
        .iter()
        .map(|(host, service)| (*host, "/", "Prefix", *service))
        .collect();
    nginx_app(nginx, &[], &rules, &docs(backends, more), "/").await
}

/// Asserts the headers ingress-nginx sends its default backend for status
/// `code` of Service `service` (Ingress `default/nginxed`, JSON asked for),
/// X-Request-ID included; X-Original-URI is left to the caller.
#[track_caller]
fn assert_nginx_fields(r: &serde_json::Value, code: &str, service: &str) {
    for (name, value) in [
        ("x-code", code),
        ("x-format", "application/json"),
        ("x-namespace", "default"),
        ("x-ingress-name", "nginxed"),
        ("x-service-name", service),
        ("x-service-port", "80"),
    ] {
        assert_eq!(seen(r, name), Some(value), "{name}");
    }
    assert_request_id(r);
}

/// Asserts `report` carries a generated request id (32 hex digits).
#[track_caller]
fn assert_request_id(report: &serde_json::Value) {
    let id = seen(report, "x-request-id").expect("X-Request-ID");
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
}

// ---- default-backend: a Service without endpoints, or no Service ----

#[tokio::test]
async fn a_service_without_endpoints_is_served_by_the_default_backend() {
    let fallback = whoami("fallback").await;
    let f = app(
        &[("default-backend", "fallback")],
        &[("app.test", "empty")],
        &[("fallback", fallback.addr)],
        &[service("empty", &[])],
    )
    .await;

    let r = report_for(&f, "app.test", "/some/path?x=1", &[], 200).await;
    assert_eq!(r["name"], "fallback");
    assert_eq!(r["uri"], "/some/path?x=1", "the request is forwarded as is");
    assert_eq!(r["host"], "app.test");
    assert_nginx_fields(&r, "503", "empty");
    assert_eq!(
        seen(&r, "x-original-uri"),
        None,
        "nginx sets it on error pages only"
    );

    // The whole request goes there, body included; the client's request id stays.
    let a = send(
        &f,
        "app.test",
        "POST",
        "/upload",
        &[("accept", "application/json"), ("x-request-id", "abc-1")],
        b"twelve bytes",
    )
    .await;
    let r = report(&a);
    assert_eq!(
        (r["name"].as_str(), r["method"].as_str()),
        (Some("fallback"), Some("POST"))
    );
    assert_eq!(r["body_length"], 12);
    assert_eq!(seen(&r, "x-request-id"), Some("abc-1"));
    assert_eq!(seen(&r, "x-format"), Some("application/json"));

    // Once the Service has a ready endpoint, it serves its own requests.
    let web = f.backends[0].addr;
    let extra = docs(&[("fallback", fallback.addr), ("empty", web)], &[]);
    let ing = annotated_ingress(
        "nginxed",
        "default",
        &[(&format!("{P}default-backend"), "fallback")],
        &[("app.test", "/", "Prefix", "empty")],
    );
    f.manifests.write("b.yaml", &format!("{extra}\n---\n{ing}"));
    let fx = &f;
    wait_for("the Service's own endpoint", || async move {
        let a = get_json(fx, "app.test", "/", &[]).await;
        a.status == 200 && report(&a)["name"] == "web"
    })
    .await;
    let r = report(&get_json(&f, "app.test", "/", &[]).await);
    assert_eq!(seen(&r, "x-code"), None, "no default-backend fields");
}

#[tokio::test]
async fn a_missing_service_is_served_by_the_default_backend() {
    let fallback = whoami("fallback").await;
    let plain = nginx_ingress("plain", &[], &[("plain.test", "/", "Prefix", "ghost")]);
    let f = app(
        &[("default-backend", "fallback")],
        &[("app.test", "ghost")],
        &[("fallback", fallback.addr)],
        &[plain],
    )
    .await;
    let r = report_for(&f, "app.test", "/", &[], 200).await;
    assert_eq!(r["name"], "fallback");
    assert_eq!(seen(&r, "x-code"), Some("503"));
    assert_eq!(seen(&r, "x-service-name"), Some("ghost"));
    // Without the annotation, the same rule answers 503.
    let a = get(&client(), f.sluice.http_addr, "plain.test", "/", &[]).await;
    assert_eq!(a.status, 503, "{}", a.body);
}

#[tokio::test]
async fn the_default_backend_is_the_services_first_port() {
    let first = whoami("first").await;
    let second = whoami("second").await;
    // The first listed port is neither the lowest number nor the first name.
    let multi = format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: multi\nspec:\n  ports:\n  - name: zz\n    port: 9002\n  - name: aa\n    port: 9001\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: multi-1\n  labels:\n    kubernetes.io/service-name: multi\naddressType: IPv4\nports:\n- name: zz\n  port: {}\n- name: aa\n  port: {}\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions:\n    ready: true\n",
        first.addr.port(),
        second.addr.port()
    );
    let f = app(
        &[("default-backend", "multi")],
        &[("app.test", "empty")],
        &[],
        &[multi, service("empty", &[])],
    )
    .await;
    for _ in 0..4 {
        let r = report_for(&f, "app.test", "/", &[], 200).await;
        assert_eq!(r["name"], "first");
    }
}

#[tokio::test]
async fn a_default_backend_that_cannot_be_used_is_reported_and_ignored() {
    for (value, reason) in [
        ("nope", "Service default/nope not found"),
        ("Bad_Name", "not a Service name"),
        ("portless", "has no port"),
    ] {
        let portless = "apiVersion: v1\nkind: Service\nmetadata:\n  name: portless\nspec:\n  clusterIP: None\n".to_owned();
        let f = app(
            &[("default-backend", value), ("custom-http-errors", "503")],
            &[("app.test", "web"), ("empty.test", "empty")],
            &[],
            &[service("empty", &[]), portless],
        )
        .await;
        let c = client();
        let addr = f.sluice.http_addr;
        assert_eq!(get(&c, addr, "app.test", "/", &[]).await.status, 200);
        // Not served by a default backend: the route's own 503...
        let a = get(&c, addr, "empty.test", "/", &[]).await;
        // ...which custom-http-errors sends to the built-in default backend.
        assert_eq!(
            (a.status, a.body.as_str()),
            (404, "404 page not found\n"),
            "{value}"
        );
        let d = diagnostics(&f).await;
        assert!(
            d.contains("invalid_annotation")
                && d.contains("nginx.ingress.kubernetes.io/default-backend")
                && d.contains(reason),
            "{value}: {d}"
        );
    }
}

// ---- custom-http-errors ----

#[tokio::test]
async fn listed_statuses_get_the_default_backends_answer() {
    let errors = whoami("errors").await;
    let f = app(
        &[
            ("default-backend", "errors"),
            ("custom-http-errors", "404, 503"),
        ],
        &[("app.test", "web")],
        &[("errors", errors.addr)],
        &[],
    )
    .await;

    // The backend answers 503; the default backend gets `/` with the query
    // (so this whoami answers 503 too) and nginx's fields.
    let r = report_for(&f, "app.test", "/?status=503", &[], 503).await;
    assert_eq!(r["name"], "errors");
    assert_eq!(r["method"], "GET");
    assert_eq!(r["uri"], "/?status=503");
    assert_eq!(r["host"], "app.test");
    assert_eq!(seen(&r, "x-original-uri"), Some("/?status=503"));
    assert_nginx_fields(&r, "503", "web");
    assert_eq!(seen(&r, "x-forwarded-for"), Some("127.0.0.1"));

    // The path is replaced by `/`, the client's headers pass, X-Forwarded-For
    // is the client's address only, and the client's request id is kept.
    let headers = [
        ("x-request-id", "req-1"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-custom", "kept"),
        ("x-code", "forged"),
    ];
    let r = report_for(&f, "app.test", "/deep/path?status=404", &headers, 404).await;
    assert_eq!(r["name"], "errors");
    assert_eq!(r["uri"], "/?status=404");
    assert_eq!(seen(&r, "x-original-uri"), Some("/deep/path?status=404"));
    assert_eq!(seen(&r, "x-code"), Some("404"));
    assert_eq!(seen(&r, "x-request-id"), Some("req-1"));
    assert_eq!(seen(&r, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen(&r, "x-custom"), Some("kept"));

    // The method is kept; the body is not sent again.
    let a = send(
        &f,
        "app.test",
        "POST",
        "/form?status=503",
        &[("accept", "application/json")],
        b"payload",
    )
    .await;
    assert_eq!(a.status, 503);
    let r = report(&a);
    assert_eq!(
        (r["name"].as_str(), r["method"].as_str()),
        (Some("errors"), Some("POST"))
    );
    assert_eq!(r["body_length"], 0);

    // Statuses not listed pass unchanged.
    for path in ["/?status=500", "/?status=403", "/"] {
        let a = get_json(&f, "app.test", path, &[]).await;
        assert_eq!(report(&a)["name"], "web", "{path}: {}", a.body);
        assert_eq!(seen(&report(&a), "x-code"), None);
    }
    let a = get_json(&f, "app.test", "/?status=500", &[]).await;
    assert_eq!(a.status, 500);
}

#[tokio::test]
async fn the_client_gets_the_default_backends_status_unchanged() {
    // "NGINX does not change the response from the custom default backend":
    // a whoami answers 200 whatever X-Code says.
    let errors = whoami("errors").await;
    let (_held, dead) = closed_port();
    let f = app(
        &[("default-backend", "errors"), ("custom-http-errors", "502")],
        &[("app.test", "dead")],
        &[("errors", errors.addr), ("dead", dead)],
        &[],
    )
    .await;
    let r = report_for(&f, "app.test", "/", &[], 200).await;
    assert_eq!(r["name"], "errors");
    assert_eq!(
        seen(&r, "x-code"),
        Some("502"),
        "the proxy's own 502 is intercepted"
    );
}

#[tokio::test]
async fn disable_proxy_intercept_errors_lets_backend_answers_through() {
    let errors = whoami("errors").await;
    let (_held, dead) = closed_port();
    let f = app(
        &[
            ("default-backend", "errors"),
            ("custom-http-errors", "502,503"),
            ("disable-proxy-intercept-errors", "true"),
        ],
        &[("app.test", "web"), ("dead.test", "dead")],
        &[("errors", errors.addr), ("dead", dead)],
        &[],
    )
    .await;
    let a = get_json(&f, "app.test", "/?status=503", &[]).await;
    assert_eq!(a.status, 503);
    assert_eq!(report(&a)["name"], "web", "the backend's 503 passes");
    // The proxy's own failure still goes to the error page.
    let r = report_for(&f, "dead.test", "/", &[], 200).await;
    assert_eq!(seen(&r, "x-code"), Some("502"));
}

#[tokio::test]
async fn without_a_default_backend_listed_statuses_get_the_builtin_404() {
    let f = app(
        &[("custom-http-errors", "503")],
        &[("app.test", "web")],
        &[],
        &[],
    )
    .await;
    let a = get_json(&f, "app.test", "/?status=503", &[]).await;
    assert_eq!((a.status, a.body.as_str()), (404, "404 page not found\n"));
    let a = get_json(&f, "app.test", "/?status=500", &[]).await;
    assert_eq!(a.status, 500);
    assert_eq!(report(&a)["name"], "web");
}

#[tokio::test]
async fn bad_custom_http_errors_values_are_reported_and_ignored() {
    let errors = whoami("errors").await;
    let backends = [("errors", errors.addr)];
    for value in ["404,abc", "200", "4040", "404,,503"] {
        let nginx = [("default-backend", "errors"), ("custom-http-errors", value)];
        let f = app(&nginx, &[("app.test", "web")], &backends, &[]).await;
        let a = get_json(&f, "app.test", "/?status=404", &[]).await;
        assert_eq!(a.status, 404);
        assert_eq!(report(&a)["name"], "web", "{value}: not intercepted");
        let d = diagnostics(&f).await;
        assert!(
            d.contains("invalid_annotation") && d.contains("custom-http-errors"),
            "{value}: {d}"
        );
    }

    // A bad disable-proxy-intercept-errors is reported; interception stays on.
    let nginx = [
        ("default-backend", "errors"),
        ("custom-http-errors", "404"),
        ("disable-proxy-intercept-errors", "sometimes"),
    ];
    let f = app(&nginx, &[("app.test", "web")], &backends, &[]).await;
    let a = get_json(&f, "app.test", "/?status=404", &[]).await;
    assert_eq!(report(&a)["name"], "errors");
    assert_reported(&f, &["disable-proxy-intercept-errors"]).await;
}
