//! Gateway API HTTPS listeners through real TLS handshakes: each listener's
//! certificate is picked by SNI, HTTPRoutes attached to the HTTPS listener
//! serve only there, a redirect filter sends HTTP to HTTPS, and an HTTP/2
//! request whose `:authority` belongs to another listener's certificate than
//! the connection's gets 421 (the conformance suite's
//! `HTTPRouteHTTPSListener` and `GatewayHTTPListenerIsolation` scenarios,
//! translated to real sockets and real whoami backends).

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use support::*;
use tls_support::*;

/// A GatewayClass, a Gateway with an HTTP listener and HTTPS listeners for
/// `a.test` and `b.test` (certificates `a-cert`, `b-cert`) and one for
/// `*.shared.test` (one wildcard certificate), routes to `web` on each, and
/// an HTTP route that redirects `a.test` to HTTPS.
fn manifests(a: &TestCert, b: &TestCert, shared: &TestCert) -> String {
    format!(
        r#"apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: sluice}}
spec: {{controllerName: sluice.dev/gateway-controller}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: gw, namespace: default}}
spec:
  gatewayClassName: sluice
  listeners:
  - {{name: http, protocol: HTTP, port: 80}}
  - name: a
    protocol: HTTPS
    port: 443
    hostname: a.test
    tls: {{certificateRefs: [{{name: a-cert}}]}}
  - name: b
    protocol: HTTPS
    port: 443
    hostname: b.test
    tls: {{certificateRefs: [{{name: b-cert}}]}}
  - name: shared
    protocol: HTTPS
    port: 443
    hostname: "*.shared.test"
    tls: {{certificateRefs: [{{name: shared-cert}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: secure, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: a}}, {{name: gw, sectionName: b}}, {{name: gw, sectionName: shared}}]
  rules:
  - backendRefs: [{{name: web, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: to-https, namespace: default}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  hostnames: [a.test]
  rules:
  - filters:
    - type: RequestRedirect
      requestRedirect: {{scheme: https, statusCode: 301}}
---
{}
---
{}
---
{}
"#,
        tls_secret("default", "a-cert", a),
        tls_secret("default", "b-cert", b),
        tls_secret("default", "shared-cert", shared),
    )
}

#[tokio::test]
async fn https_listeners_serve_their_certificates_routes_and_421_across_them() {
    let web = whoami("web").await;
    let (a, b) = (cert("a", &["a.test"]), cert("b", &["b.test"]));
    let shared = cert("shared", &["*.shared.test"]);
    let dir = Manifests::new();
    dir.write("gateway.yaml", &manifests(&a, &b, &shared));
    dir.write("web.yaml", &service("web", &[web.addr]));
    let sluice = start(settings(&dir.path())).await;

    // Each SNI gets its listener's certificate, and the route answers there.
    let mut conn_a = HttpConn::https(sluice.https_addr, Some("a.test"), &["h2"]).await;
    assert!(conn_a.is_h2(), "ALPN h2");
    assert_eq!(
        conn_a.tls.as_ref().map(|t| t.peer.cn.clone()),
        Some(Some("a".to_owned()))
    );
    let v = conn_a.whoami("a.test", "/x").await;
    assert_eq!(v["host"], "a.test");
    let mut conn_b = HttpConn::https(sluice.https_addr, Some("b.test"), &["h2"]).await;
    assert_eq!(
        conn_b.tls.as_ref().map(|t| t.peer.cn.clone()),
        Some(Some("b".to_owned()))
    );
    conn_b.whoami("b.test", "/").await;

    // b.test over the connection a.test's certificate opened: 421.
    let misdirected = conn_a.get("b.test", "/", &[]).await;
    assert_eq!(misdirected.status, 421, "{}", misdirected.body);
    // The connection still serves its own host afterwards.
    conn_a.whoami("a.test", "/again").await;

    // Two hosts under one certificate may share a connection.
    let mut conn_s = HttpConn::https(sluice.https_addr, Some("x.shared.test"), &["h2"]).await;
    conn_s.whoami("x.shared.test", "/").await;
    conn_s.whoami("y.shared.test", "/").await;

    // A reload loads every certificate afresh; connections opened before it
    // still share hosts their certificate covers, and still get 421 for the rest.
    dir.write(
        "extra.yaml",
        &ingress("extra", &[("extra.test", "/", "Prefix", "web")]),
    );
    let http = client();
    wait_for("the reload", || async {
        get(&http, sluice.http_addr, "extra.test", "/", &[])
            .await
            .status
            == 200
    })
    .await;
    conn_s.whoami("z.shared.test", "/after-reload").await;
    let misdirected = conn_a.get("b.test", "/", &[]).await;
    assert_eq!(misdirected.status, 421, "{}", misdirected.body);

    // HTTPRoutes of HTTPS listeners are not served on plain HTTP; the HTTP
    // listener's redirect is.
    let plain = get(&http, sluice.http_addr, "b.test", "/", &[]).await;
    assert_eq!(plain.status, 404, "{}", plain.body);
    let redirect = get(&http, sluice.http_addr, "a.test", "/path?q=1", &[]).await;
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("https://a.test/path?q=1")
    );
    sluice.stop();
    sluice.wait().await;
}
