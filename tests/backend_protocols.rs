//! Protocols towards backends through a real sluice: HTTPS to the pod (not
//! verified by default, opt-in verification against a CA Secret), HTTP/2
//! cleartext (h2c) and a gRPC-like round trip with trailers both ways.
//!
//! The `helper_*` tests check the TLS test support itself (certificates,
//! the TLS client, the test backends, the YAML builders) without sluice's
//! TLS features, so a failure there points at the harness, not at sluice.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::net::SocketAddr;

use http::{HeaderMap, HeaderValue};
use support::*;
use tls_support::*;

const SCHEME: &str = "traefik.ingress.kubernetes.io/service.serversscheme";
const BACKEND_PROTOCOL: &str = "nginx.ingress.kubernetes.io/backend-protocol";
const SSL_VERIFY: &str = "nginx.ingress.kubernetes.io/proxy-ssl-verify";
const SSL_SECRET: &str = "nginx.ingress.kubernetes.io/proxy-ssl-secret";
const SSL_NAME: &str = "nginx.ingress.kubernetes.io/proxy-ssl-name";

/// One Ingress `name` for `host` → Service `service`, with annotations.
fn route(name: &str, annotations: &[(&str, &str)], host: &str, service: &str) -> String {
    tls_ingress(name, annotations, &[], &[(host, "/", "Prefix", service)])
}

/// GET through sluice's HTTP listener; the JSON report of the backend.
async fn through(sluice: SocketAddr, host: &str, path: &str) -> serde_json::Value {
    let mut conn = HttpConn::http1(sluice).await;
    conn.whoami(host, path).await
}

async fn status_through(sluice: SocketAddr, host: &str) -> u16 {
    let mut conn = HttpConn::http1(sluice).await;
    conn.get(host, "/", &[]).await.status
}

// ---------------------------------------------------------------------------
// HTTPS backends
// ---------------------------------------------------------------------------

#[tokio::test]
async fn https_backend_by_service_serversscheme_is_not_verified() {
    // Self-signed, for a name nobody asks for: accepted, as Traefik does for pods.
    let backend = https_backend("secure", &cert("pod", &["not-the-service.invalid"])).await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(annotated_service("secure", &[(SCHEME, "https")], &[backend.addr])
            + &route("app", &[], "b.test", "secure")),
    );
    let sluice = start(settings(&m.path())).await;
    let v = through(sluice.http_addr, "b.test", "/x?y=1").await;
    assert_eq!(v["name"], "secure");
    assert_eq!(v["uri"], "/x?y=1");
    assert!(
        v["tls_version"] == "TLSv1.3" || v["tls_version"] == "TLSv1.2",
        "{v}"
    );
    // The client spoke plain HTTP to sluice; that is what is forwarded.
    assert_eq!(
        json_header(&v, "x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(json_header(&v, "host").as_deref(), Some("b.test"));
    sluice.stop();
    sluice.wait().await;
}

#[tokio::test]
async fn https_backend_by_nginx_backend_protocol() {
    let backend = https_backend("secure", &cert("pod", &["pod.invalid"])).await;
    let plain = whoami("plain").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            annotated_service("secure", &[], &[backend.addr]),
            annotated_service("plain", &[], &[plain.addr]),
            route("tls", &[(BACKEND_PROTOCOL, "HTTPS")], "s.test", "secure"),
            route("plain", &[(BACKEND_PROTOCOL, "HTTP")], "p.test", "plain"),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    assert_eq!(
        through(sluice.http_addr, "s.test", "/").await["name"],
        "secure"
    );
    assert_eq!(
        through(sluice.http_addr, "p.test", "/").await["name"],
        "plain"
    );
}

#[tokio::test]
async fn https_backend_without_the_annotation_is_not_spoken_to_in_tls() {
    // Control: a plain-HTTP request to a TLS port is no success.
    let backend = https_backend("secure", &cert("pod", &["pod.invalid"])).await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(annotated_service("secure", &[], &[backend.addr])
            + &route("app", &[], "b.test", "secure")),
    );
    let sluice = start(settings(&m.path())).await;
    let status = status_through(sluice.http_addr, "b.test").await;
    assert_ne!(status, 200);
}

#[tokio::test]
async fn verified_backend_accepts_the_right_ca_and_rejects_others() {
    let ca = TestCa::new("backend CA");
    let other_ca = TestCa::new("someone else's CA");
    // The default name verified is <service>.<namespace>.svc.
    let good = https_backend("good", &ca.issue("good", &["good.default.svc"])).await;
    let strange = https_backend(
        "strange",
        &other_ca.issue("strange", &["strange.default.svc"]),
    )
    .await;
    let misnamed = https_backend("misnamed", &ca.issue("misnamed", &["elsewhere.test"])).await;
    let named = https_backend("named", &ca.issue("named", &["backend.internal"])).await;
    let verify = |name: Option<&'static str>| {
        let mut a = vec![
            (BACKEND_PROTOCOL, "HTTPS"),
            (SSL_VERIFY, "on"),
            (SSL_SECRET, "default/backend-ca"),
        ];
        if let Some(n) = name {
            a.push((SSL_NAME, n));
        }
        a
    };
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            ca_secret("default", "backend-ca", &ca.cert_pem),
            annotated_service("good", &[], &[good.addr]),
            annotated_service("strange", &[], &[strange.addr]),
            annotated_service("misnamed", &[], &[misnamed.addr]),
            annotated_service("named", &[], &[named.addr]),
            route("good", &verify(None), "good.test", "good"),
            route("strange", &verify(None), "strange.test", "strange"),
            route("misnamed", &verify(None), "misnamed.test", "misnamed"),
            route(
                "named",
                &verify(Some("backend.internal")),
                "named.test",
                "named",
            ),
            // Without verification the unknown CA is fine.
            route("lax", &[(BACKEND_PROTOCOL, "HTTPS")], "lax.test", "strange"),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;
    assert_eq!(through(addr, "good.test", "/").await["name"], "good");
    assert_eq!(through(addr, "named.test", "/").await["name"], "named");
    assert_eq!(through(addr, "lax.test", "/").await["name"], "strange");
    assert_eq!(
        status_through(addr, "strange.test").await,
        502,
        "a certificate from another CA fails verification"
    );
    assert_eq!(
        status_through(addr, "misnamed.test").await,
        502,
        "a certificate for another name fails verification"
    );
    // The good route still works after the failures.
    assert_eq!(through(addr, "good.test", "/").await["name"], "good");
}

// ---------------------------------------------------------------------------
// h2c and gRPC
// ---------------------------------------------------------------------------

#[tokio::test]
async fn h2c_backend_by_serversscheme_or_backend_protocol() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            annotated_service("h2", &[(SCHEME, "h2c")], &[web.addr]),
            annotated_service("h1", &[(SCHEME, "http")], &[web.addr]),
            annotated_service("plain", &[], &[web.addr]),
            route("h2", &[], "h2.test", "h2"),
            route("h1", &[], "h1.test", "h1"),
            route("nginx-h2c", &[(BACKEND_PROTOCOL, "H2C")], "n.test", "plain"),
            route("plain", &[], "plain.test", "plain"),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.http_addr;
    let h2 = through(addr, "h2.test", "/a?b=c").await;
    assert_eq!(h2["proto"], "HTTP/2.0", "{h2}");
    assert_eq!(h2["uri"], "/a?b=c");
    assert_eq!(h2["host"], "h2.test");
    assert_eq!(through(addr, "n.test", "/").await["proto"], "HTTP/2.0");
    assert_eq!(through(addr, "h1.test", "/").await["proto"], "HTTP/1.1");
    assert_eq!(through(addr, "plain.test", "/").await["proto"], "HTTP/1.1");
    // An HTTP/2 client to sluice and an h2c backend: still routed by :authority.
    let mut conn = HttpConn::h2c(addr).await;
    let v = conn.whoami("h2.test", "/via-h2").await;
    assert_eq!(v["proto"], "HTTP/2.0");
    assert_eq!(v["uri"], "/via-h2");
}

fn client_trailers() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("x-client-trailer", HeaderValue::from_static("hello"));
    t
}

fn assert_grpc_echo(reply: &Reply, payload: &[u8], backend: &str) {
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("application/grpc"));
    assert_eq!(reply.header("x-backend"), Some(backend));
    assert_eq!(reply.header("x-backend-proto"), Some("HTTP/2.0"));
    assert_eq!(reply.body.as_bytes(), &grpc_frame(payload)[..]);
    let trailers = reply.trailers.as_ref().expect("response trailers");
    assert_eq!(
        trailers.get("grpc-status").and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert_eq!(
        trailers.get("grpc-message").and_then(|v| v.to_str().ok()),
        Some("ok")
    );
    // The client's trailers reached the backend.
    assert_eq!(
        trailers
            .get("x-echo-x-client-trailer")
            .and_then(|v| v.to_str().ok()),
        Some("hello"),
        "request trailers pass through: {trailers:?}"
    );
}

#[tokio::test]
async fn grpc_round_trip_over_h2c_with_trailers_both_ways() {
    let grpc = grpc_backend("grpc").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            annotated_service("grpc", &[], &[grpc.addr]),
            annotated_service("grpc-scheme", &[(SCHEME, "h2c")], &[grpc.addr]),
            route("nginx", &[(BACKEND_PROTOCOL, "GRPC")], "grpc.test", "grpc"),
            route("traefik", &[], "scheme.test", "grpc-scheme"),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let mut conn = HttpConn::h2c(sluice.http_addr).await;
    for (host, payload) in [
        ("grpc.test", &b"ping"[..]),
        ("scheme.test", &b"pong pong"[..]),
    ] {
        let req = grpc_request(
            &conn,
            host,
            "/echo.Echo/Say",
            payload,
            Some(client_trailers()),
        );
        let reply = conn.send(req).await;
        assert_grpc_echo(&reply, payload, "grpc");
    }
    // A larger message, several frames long, arrives whole.
    let big = vec![b'x'; 200_000];
    let req = grpc_request(
        &conn,
        "grpc.test",
        "/echo.Echo/Big",
        &big,
        Some(client_trailers()),
    );
    assert_grpc_echo(&conn.send(req).await, &big, "grpc");
}

#[tokio::test]
async fn grpcs_backend_by_backend_protocol() {
    let grpc = grpcs_backend("grpcs", &cert("pod", &["pod.invalid"])).await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &(annotated_service("grpcs", &[], &[grpc.addr])
            + &route("app", &[(BACKEND_PROTOCOL, "GRPCS")], "grpcs.test", "grpcs")),
    );
    let sluice = start(settings(&m.path())).await;
    let mut conn = HttpConn::h2c(sluice.http_addr).await;
    let req = grpc_request(
        &conn,
        "grpcs.test",
        "/e.E/S",
        b"hi",
        Some(client_trailers()),
    );
    let reply = conn.send(req).await;
    assert_grpc_echo(&reply, b"hi", "grpcs");
}

// ---------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------

#[test]
fn helper_base64_matches_rfc_4648_vectors() {
    for (input, output) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(input.as_bytes()), output);
    }
    assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
}

#[test]
fn helper_certificates_say_what_they_were_made_for() {
    let c = cert("a", &["a.test", "*.a.test"]);
    let p = peer_cert(&c.der);
    assert_eq!(p.cn.as_deref(), Some("a"));
    assert_eq!(p.sans, vec!["a.test", "*.a.test"]);
    assert_eq!(p.not_after, 4_070_908_800, "2099-01-01");
    assert!(c.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(c.key_pem.contains("PRIVATE KEY"));
    let ed = cert_with("ed", &["ed.test"], KeyKind::Ed25519, false);
    assert_eq!(peer_cert(&ed.der).sans, vec!["ed.test"]);
    let old = expired_cert("old", &["old.test"]);
    assert_eq!(old.not_after, 1_609_459_200, "2021-01-01");
    let ca = TestCa::new("ca");
    let leaf = ca.issue_with_chain("leaf", &["leaf.test"]);
    assert_eq!(leaf.chain.len(), 2);
    assert_eq!(pem_certs(&leaf.cert_pem).len(), 2);
    assert_eq!(pem_certs(&ca.issue("l", &["l.test"]).cert_pem).len(), 1);
}

#[test]
fn helper_manifests_are_the_yaml_they_claim() {
    let c = cert("a", &["a.test"]);
    let docs = |text: &str| -> Vec<serde_json::Value> {
        text.split("\n---\n")
            .map(|d| d.trim_start_matches("---\n"))
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_yaml_ng::from_str(d).expect("YAML"))
            .collect()
    };
    let s = &docs(&tls_secret("ns", "a-cert", &c))[0];
    assert_eq!(s["kind"], "Secret");
    assert_eq!(s["type"], "kubernetes.io/tls");
    assert_eq!(s["metadata"]["namespace"], "ns");
    assert_eq!(s["data"]["tls.crt"], base64(c.cert_pem.as_bytes()));
    assert_eq!(s["data"]["tls.key"], base64(c.key_pem.as_bytes()));
    let s = &docs(&tls_secret_string_data("default", "a-cert", &c))[0];
    assert_eq!(s["stringData"]["tls.crt"], c.cert_pem);
    assert_eq!(s["stringData"]["tls.key"], c.key_pem);
    let s = &docs(&not_pem_secret("default", "bad"))[0];
    assert_eq!(s["stringData"]["tls.crt"], "this is not a certificate\n");
    let s = &docs(&ca_secret("default", "ca", "PEM"))[0];
    assert_eq!(s["data"]["ca.crt"], base64(b"PEM"));
    let i = &docs(&tls_ingress(
        "app",
        &[("nginx.ingress.kubernetes.io/ssl-redirect", "false")],
        &[("a.test,*.b.test", "a-cert"), ("", "sans-cert")],
        &[("a.test", "/", "Prefix", "web")],
    ))[0];
    assert_eq!(
        i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-redirect"],
        "false"
    );
    assert_eq!(i["spec"]["tls"][0]["hosts"][1], "*.b.test");
    assert_eq!(i["spec"]["tls"][0]["secretName"], "a-cert");
    assert!(i["spec"]["tls"][1].get("hosts").is_none());
    assert_eq!(i["spec"]["tls"][1]["secretName"], "sans-cert");
    assert_eq!(i["spec"]["rules"][0]["host"], "a.test");
    let svc = docs(&annotated_service(
        "web",
        &[(SCHEME, "https")],
        &["127.0.0.1:1".parse().expect("addr")],
    ));
    assert_eq!(svc[0]["metadata"]["annotations"][SCHEME], "https");
    assert_eq!(svc[1]["kind"], "EndpointSlice");
}

#[tokio::test]
async fn helper_manifests_load_in_sluice_without_errors() {
    let web = whoami("web").await;
    let c = cert("a", &["a.test"]);
    let b = cert("b", &["b.test"]);
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            tls_secret("default", "a-data", &c),
            tls_secret_string_data("default", "b-string", &b),
            ca_secret("default", "ca", &c.cert_pem),
            annotated_service("web", &[(SCHEME, "http")], &[web.addr]),
            tls_ingress(
                "app",
                &[],
                &[("a.test", "a-data"), ("", "b-string")],
                &[("a.test", "/", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    assert_eq!(
        through(sluice.http_addr, "a.test", "/").await["name"],
        "web"
    );
    let errors = admin_errors(sluice.admin_addr).await;
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn helper_https_backend_answers_a_direct_tls_client() {
    let c = cert("backend", &["backend.test"]);
    let backend = https_backend("b", &c).await;
    // h2 by ALPN.
    let mut h2 = HttpConn::https(backend.addr, Some("backend.test"), &["h2", "http/1.1"]).await;
    let info = h2.tls.clone().expect("TLS info");
    assert_eq!(info.alpn.as_deref(), Some("h2"));
    assert_eq!(info.version, "TLSv1.3");
    assert_eq!(info.peer.cn.as_deref(), Some("backend"));
    assert_eq!(info.peer.sans, vec!["backend.test"]);
    assert_eq!(info.leaf, c.der.to_vec());
    assert_eq!(info.chain_len, 1);
    let v = h2.whoami("backend.test", "/p?q=1").await;
    assert_eq!(v["name"], "b");
    assert_eq!(v["proto"], "HTTP/2.0");
    assert_eq!(v["uri"], "/p?q=1");
    assert_eq!(v["host"], "backend.test");
    assert_eq!(v["sni"], "backend.test");
    assert_eq!(v["alpn"], "h2");
    // Several requests on the one connection.
    assert_eq!(h2.get("backend.test", "/again", &[]).await.status, 200);
    assert!(!h2.is_closed());
    // HTTP/1.1 by ALPN, and no SNI at all.
    let mut h1 = HttpConn::https(backend.addr, None, &["http/1.1"]).await;
    let v = h1.whoami("backend.test", "/").await;
    assert_eq!(v["proto"], "HTTP/1.1");
    assert_eq!(v["sni"], serde_json::Value::Null);
    assert_eq!(v["headers"]["host"][0], "backend.test");
    // No ALPN: HTTP/1.1.
    let mut none = HttpConn::https(backend.addr, Some("backend.test"), &[]).await;
    assert!(!none.is_h2());
    assert_eq!(none.tls.as_ref().and_then(|t| t.alpn.clone()), None);
    assert_eq!(none.whoami("backend.test", "/").await["proto"], "HTTP/1.1");
    // TLS 1.2.
    let old = try_handshake(tls12_only_config(&[]), backend.addr, Some("backend.test"))
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(old.version, "TLSv1.2");
    // Resumption is visible: a second connection with the same client config
    // (after the first one received its tickets) resumes.
    let config = any_cert_config(&["http/1.1"], Versions::Both);
    let mut first = HttpConn::try_https(config.clone(), backend.addr, Some("backend.test"))
        .await
        .expect("first connection");
    assert!(!first.tls.as_ref().expect("TLS").resumed);
    assert_eq!(first.get("backend.test", "/", &[]).await.status, 200);
    let second = try_handshake(config, backend.addr, Some("backend.test"))
        .await
        .expect("second connection");
    assert!(second.resumed, "{second:?}");
}

#[tokio::test]
async fn helper_tls_clients_refuse_and_verify_as_configured() {
    // A TLS 1.3-only server refuses the TLS 1.2-only client.
    let c = cert("modern", &["modern.test"]);
    let modern = https_backend_with("m", server_config(&c, Versions::Tls13Only)).await;
    let refused = try_handshake(tls12_only_config(&[]), modern.addr, Some("modern.test")).await;
    assert!(refused.is_err(), "{refused:?}");
    let ok = try_handshake(
        any_cert_config(&[], Versions::Both),
        modern.addr,
        Some("modern.test"),
    )
    .await
    .expect("TLS 1.3");
    assert_eq!(ok.version, "TLSv1.3");
    // Real verification: chain to the CA and name.
    let ca = TestCa::new("ca");
    let chained = ca.issue_with_chain("leaf", &["leaf.test"]);
    let backend = https_backend("v", &chained).await;
    let info = try_handshake(
        verifying_config(&ca.cert_pem, &[]),
        backend.addr,
        Some("leaf.test"),
    )
    .await
    .expect("verified against the CA");
    assert_eq!(info.chain_len, 2);
    let wrong_name = try_handshake(
        verifying_config(&ca.cert_pem, &[]),
        backend.addr,
        Some("other.test"),
    )
    .await;
    assert!(wrong_name.is_err());
    let wrong_ca = try_handshake(
        verifying_config(&TestCa::new("other").cert_pem, &[]),
        backend.addr,
        Some("leaf.test"),
    )
    .await;
    assert!(wrong_ca.is_err());
    // Ed25519 and expired certificates are served; only verification minds expiry.
    let ed = https_backend(
        "ed",
        &cert_with("ed", &["ed.test"], KeyKind::Ed25519, false),
    )
    .await;
    assert_eq!(
        handshake(ed.addr, Some("ed.test")).await.peer.cn.as_deref(),
        Some("ed")
    );
    let old = https_backend("old", &expired_cert("old", &["old.test"])).await;
    let info = handshake(old.addr, Some("old.test")).await;
    assert_eq!(info.peer.cn.as_deref(), Some("old"));
    assert!(info.peer.not_after < 1_700_000_000);
}

#[tokio::test]
async fn helper_grpc_backend_echoes_body_and_trailers() {
    let grpc = grpc_backend("g").await;
    let mut conn = HttpConn::h2c(grpc.addr).await;
    let req = grpc_request(&conn, "g.test", "/e.E/S", b"abc", Some(client_trailers()));
    let reply = conn.send(req).await;
    assert_grpc_echo(&reply, b"abc", "g");
    assert_eq!(reply.header("x-request-te"), Some("trailers"));
    assert_eq!(
        reply.header("x-request-content-type"),
        Some("application/grpc")
    );
    let trailers = reply.trailers.expect("trailers");
    assert_eq!(
        trailers
            .get("x-request-trailers")
            .map(HeaderValue::as_bytes),
        Some(&b"1"[..])
    );
    // Without request trailers.
    let req = grpc_request(&conn, "g.test", "/e.E/S", b"", None);
    let reply = conn.send(req).await;
    assert_eq!(reply.status, 200);
    let trailers = reply.trailers.expect("trailers");
    assert_eq!(
        trailers
            .get("x-request-trailers")
            .map(HeaderValue::as_bytes),
        Some(&b"0"[..])
    );
    // The TLS variant.
    let grpcs = grpcs_backend("gs", &cert("gs", &["gs.test"])).await;
    let mut conn = HttpConn::https(grpcs.addr, Some("gs.test"), &["h2"]).await;
    assert!(conn.is_h2());
    let req = grpc_request(&conn, "gs.test", "/e.E/S", b"xyz", Some(client_trailers()));
    let reply = conn.send(req).await;
    assert_grpc_echo(&reply, b"xyz", "gs");
    assert_eq!(reply.header("x-sni"), Some("gs.test"));
}
