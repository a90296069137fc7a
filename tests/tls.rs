//! HTTPS through a real sluice with real TLS handshakes: certificates from
//! Secrets chosen by SNI (exact, wildcard, SAN-decided, default), HTTP/2 by
//! ALPN, forwarded headers, rotation under open connections, broken and
//! expired Secrets, minimum TLS version, HTTP→HTTPS redirects and
//! entrypoints, gRPC over TLS, and the TLS metrics.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use sluice::app::{Running, Settings};
use support::*;
use tls_support::*;

const ENTRYPOINTS: &str = "traefik.ingress.kubernetes.io/router.entrypoints";
const ROUTER_TLS: &str = "traefik.ingress.kubernetes.io/router.tls";
const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
/// Any ingress-nginx annotation makes an Ingress "ingress-nginx style".
const SOME_NGINX_ANNOTATION: (&str, &str) = ("nginx.ingress.kubernetes.io/proxy-body-size", "8m");

/// Starts sluice on `m` with settings adjusted by `tweak`.
async fn start_with(m: &Manifests, tweak: impl FnOnce(&mut Settings)) -> Running {
    let mut s = settings(&m.path());
    tweak(&mut s);
    start(s).await
}

/// The CN sluice presents for `sni` (`None`: no SNI).
async fn served_cn(sluice: &Running, sni: Option<&str>) -> String {
    handshake(sluice.https_addr, sni)
        .await
        .peer
        .cn
        .unwrap_or_default()
}

/// A plain-HTTP GET on sluice's HTTP listener.
async fn http_get(sluice: &Running, host: &str, path: &str) -> Reply {
    HttpConn::http1(sluice.http_addr)
        .await
        .get(host, path, &[])
        .await
}

/// An HTTPS GET (SNI = the host without port, HTTP/1.1).
async fn https_get(sluice: &Running, host: &str, path: &str) -> Reply {
    let sni = host.split(':').next().unwrap_or(host);
    HttpConn::https(sluice.https_addr, Some(sni), &["http/1.1"])
        .await
        .get(host, path, &[])
        .await
}

/// The whoami report of an HTTPS request with SNI `sni` and Host `host`.
async fn https_whoami(sluice: &Running, sni: Option<&str>, host: &str) -> serde_json::Value {
    HttpConn::https(sluice.https_addr, sni, &["http/1.1"])
        .await
        .whoami(host, "/")
        .await
}

// ---------------------------------------------------------------------------
// Certificate selection
// ---------------------------------------------------------------------------

#[tokio::test]
async fn sni_picks_the_certificate_of_the_host() {
    let a = whoami("a").await;
    let b = whoami("b").await;
    let c = whoami("c").await;
    let ca = TestCa::new("test CA");
    let cert_a = cert("a", &["a.test"]);
    let cert_b = cert_with("b", &["b.test"], KeyKind::Ed25519, false);
    let cert_c = ca.issue_with_chain("c", &["c.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("a", &[], &[a.addr]),
            annotated_service("b", &[], &[b.addr]),
            annotated_service("c", &[], &[c.addr]),
            // base64 `data`, `stringData`, and a chain with the CA after the leaf.
            tls_secret("default", "a-cert", &cert_a),
            tls_secret_string_data("default", "b-cert", &cert_b),
            tls_secret("default", "c-cert", &cert_c),
            tls_ingress(
                "a",
                &[],
                &[("a.test", "a-cert")],
                &[("a.test", "/", "Prefix", "a")],
            ),
            tls_ingress(
                "bc",
                &[],
                &[("b.test", "b-cert"), ("c.test", "c-cert")],
                &[
                    ("b.test", "/", "Prefix", "b"),
                    ("c.test", "/", "Prefix", "c"),
                ],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    for (host, served) in [
        ("a.test", &cert_a),
        ("b.test", &cert_b),
        ("c.test", &cert_c),
    ] {
        let mut conn = HttpConn::https(sluice.https_addr, Some(host), &["http/1.1"]).await;
        let info = conn.tls.clone().expect("TLS");
        assert_eq!(info.peer.cn.as_deref(), Some(served.cn.as_str()), "{host}");
        assert_eq!(info.peer.sans, vec![host.to_owned()], "{host}");
        assert_eq!(info.leaf, served.der.to_vec(), "{host}");
        let v = conn.whoami(host, "/").await;
        assert_eq!(v["name"], served.cn, "{host} is routed to its backend");
    }
    // The intermediate is sent after the leaf, so a verifying client succeeds.
    let info = try_handshake(
        verifying_config(&ca.cert_pem, &["http/1.1"]),
        sluice.https_addr,
        Some("c.test"),
    )
    .await
    .expect("c.test verifies against the CA");
    assert_eq!(info.chain_len, 2);
    // Both TLS versions serve the same certificates.
    let old = try_handshake(tls12_only_config(&[]), sluice.https_addr, Some("b.test"))
        .await
        .expect("TLS 1.2 handshake");
    assert_eq!(old.version, "TLSv1.2");
    assert_eq!(old.peer.cn.as_deref(), Some("b"));
    sluice.stop();
    sluice.wait().await;
}

#[tokio::test]
async fn wildcard_hosts_and_wildcard_certificates() {
    let web = whoami("web").await;
    let shop = whoami("shop").await;
    let wild = cert("wild", &["*.wild.test"]);
    let w = cert("w", &["*.w.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            annotated_service("shop", &[], &[shop.addr]),
            tls_secret("default", "wild-cert", &wild),
            tls_secret("default", "w-cert", &w),
            // A wildcard Ingress host with a wildcard certificate.
            tls_ingress(
                "wild",
                &[],
                &[("*.wild.test", "wild-cert")],
                &[("*.wild.test", "/", "Prefix", "web")],
            ),
            // An exact host served by a wildcard certificate.
            tls_ingress(
                "shop",
                &[],
                &[("shop.w.test", "w-cert")],
                &[("shop.w.test", "/", "Prefix", "shop")],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    for host in ["x.wild.test", "y.wild.test"] {
        assert_eq!(served_cn(&sluice, Some(host)).await, "wild", "{host}");
        let v = https_whoami(&sluice, Some(host), host).await;
        assert_eq!(v["name"], "web");
    }
    // A wildcard covers exactly one label.
    assert_eq!(served_cn(&sluice, Some("a.b.wild.test")).await, DEFAULT_CN);
    assert_eq!(served_cn(&sluice, Some("wild.test")).await, DEFAULT_CN);
    assert_eq!(served_cn(&sluice, Some("shop.w.test")).await, "w");
    assert_eq!(
        https_whoami(&sluice, Some("shop.w.test"), "shop.w.test").await["name"],
        "shop"
    );
}

#[tokio::test]
async fn tls_entry_without_hosts_uses_the_certificate_sans() {
    let web = whoami("web").await;
    let sans = cert("sans", &["one.test", "two.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            tls_secret("default", "sans-cert", &sans),
            tls_ingress(
                "app",
                &[],
                &[("", "sans-cert")],
                &[
                    ("one.test", "/", "Prefix", "web"),
                    ("two.test", "/", "Prefix", "web"),
                ],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    assert_eq!(served_cn(&sluice, Some("one.test")).await, "sans");
    assert_eq!(served_cn(&sluice, Some("two.test")).await, "sans");
    assert_eq!(served_cn(&sluice, Some("three.test")).await, DEFAULT_CN);
    assert_eq!(
        https_whoami(&sluice, Some("two.test"), "two.test").await["name"],
        "web"
    );
}

#[tokio::test]
async fn exact_name_beats_wildcard() {
    let web = whoami("web").await;
    let api = whoami("api").await;
    let wildcard = cert("wildcard", &["*.ex.test"]);
    let exact = cert("exact", &["api.ex.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            annotated_service("api", &[], &[api.addr]),
            tls_secret("default", "wildcard-cert", &wildcard),
            tls_secret("default", "exact-cert", &exact),
            // The wildcard comes first, in its own (older) Ingress too.
            tls_ingress(
                "a-wild",
                &[],
                &[("*.ex.test", "wildcard-cert")],
                &[("*.ex.test", "/", "Prefix", "web")],
            ),
            tls_ingress(
                "b-exact",
                &[],
                &[("api.ex.test", "exact-cert")],
                &[("api.ex.test", "/", "Prefix", "api")],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    assert_eq!(served_cn(&sluice, Some("api.ex.test")).await, "exact");
    assert_eq!(served_cn(&sluice, Some("www.ex.test")).await, "wildcard");
    assert_eq!(
        https_whoami(&sluice, Some("api.ex.test"), "api.ex.test").await["name"],
        "api"
    );
    assert_eq!(
        https_whoami(&sluice, Some("www.ex.test"), "www.ex.test").await["name"],
        "web"
    );
}

fn single_host_app(web: &Backend, host: &str, secret: &str, served: &TestCert) -> String {
    [
        annotated_service("web", &[], &[web.addr]),
        tls_secret("default", secret, served),
        tls_ingress(
            "app",
            &[],
            &[(host, secret)],
            &[(host, "/", "Prefix", "web")],
        ),
    ]
    .concat()
}

#[tokio::test]
async fn unknown_or_missing_sni_gets_the_generated_default_and_is_routed_by_host() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "a.test", "a-cert", &cert("a", &["a.test"])),
    );
    let sluice = start(settings(&m.path())).await;
    assert_eq!(served_cn(&sluice, Some("a.test")).await, "a");
    for sni in [Some("unknown.test"), None] {
        let mut conn = HttpConn::https(sluice.https_addr, sni, &["http/1.1"]).await;
        let info = conn.tls.clone().expect("TLS");
        assert_eq!(info.peer.cn.as_deref(), Some(DEFAULT_CN), "SNI {sni:?}");
        // The request is still routed by Host.
        let v = conn.whoami("a.test", "/").await;
        assert_eq!(v["name"], "web", "SNI {sni:?}");
        assert_eq!(conn.get("nothing.test", "/", &[]).await.status, 404);
    }
    // The generated certificate is the same for every handshake.
    let first = handshake(sluice.https_addr, Some("x.test")).await;
    let second = handshake(sluice.https_addr, None).await;
    assert_eq!(first.leaf, second.leaf);
}

#[tokio::test]
async fn default_certificate_from_a_secret() {
    let web = whoami("web").await;
    let fallback = cert("fallback", &["fallback.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "a.test", "a-cert", &cert("a", &["a.test"])),
    );
    m.write("fallback.yaml", &tls_secret("other", "fallback", &fallback));
    let sluice = start_with(&m, |s| {
        s.tls.default_cert_secret = Some("other/fallback".to_owned());
    })
    .await;
    assert_eq!(served_cn(&sluice, Some("a.test")).await, "a");
    assert_eq!(served_cn(&sluice, Some("unknown.test")).await, "fallback");
    assert_eq!(served_cn(&sluice, None).await, "fallback");
    assert_eq!(
        https_whoami(&sluice, None, "a.test").await["name"],
        "web",
        "still routed by Host"
    );
}

// ---------------------------------------------------------------------------
// Protocols and headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn http2_by_alpn_is_routed_by_authority() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "h2.test", "h2-cert", &cert("h2", &["h2.test"])),
    );
    let sluice = start(settings(&m.path())).await;
    let mut h2 = HttpConn::https(sluice.https_addr, Some("h2.test"), &["h2", "http/1.1"]).await;
    assert_eq!(h2.tls.as_ref().and_then(|t| t.alpn.as_deref()), Some("h2"));
    let reply = h2
        .get("h2.test", "/hello?x=1", &[("accept", "application/json")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.version, http::Version::HTTP_2);
    let v = reply.json();
    assert_eq!(v["name"], "web");
    assert_eq!(v["uri"], "/hello?x=1");
    assert_eq!(v["host"], "h2.test", "the :authority becomes the Host");
    assert_eq!(
        json_header(&v, "x-forwarded-proto").as_deref(),
        Some("https")
    );
    // Many streams on the one connection.
    for i in 0..5 {
        let r = h2.get("h2.test", &format!("/n{i}"), &[]).await;
        assert_eq!(r.status, 200);
    }
    // http/1.1 by ALPN, and no ALPN at all.
    for alpn in [&["http/1.1"][..], &[][..]] {
        let mut h1 = HttpConn::https(sluice.https_addr, Some("h2.test"), alpn).await;
        assert!(!h1.is_h2());
        let reply = h1
            .get("h2.test", "/", &[("accept", "application/json")])
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.version, http::Version::HTTP_11);
        assert_eq!(reply.json()["name"], "web");
    }
}

#[tokio::test]
async fn forwarded_headers_say_https() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "a.test", "a-cert", &cert("a", &["a.test"])),
    );
    let sluice = start(settings(&m.path())).await;
    let mut conn = HttpConn::https(sluice.https_addr, Some("a.test"), &["http/1.1"]).await;
    let v = conn.whoami("a.test", "/").await;
    assert_eq!(
        json_header(&v, "x-forwarded-proto").as_deref(),
        Some("https")
    );
    assert_eq!(json_header(&v, "x-forwarded-port").as_deref(), Some("443"));
    assert_eq!(
        json_header(&v, "x-forwarded-host").as_deref(),
        Some("a.test")
    );
    assert_eq!(
        json_header(&v, "x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    // A port in the Host wins, as on HTTP.
    let v = conn.whoami("a.test:8443", "/").await;
    assert_eq!(
        json_header(&v, "x-forwarded-proto").as_deref(),
        Some("https")
    );
    assert_eq!(json_header(&v, "x-forwarded-port").as_deref(), Some("8443"));
    // A client cannot claim the scheme.
    let reply = conn
        .get(
            "a.test",
            "/",
            &[
                ("accept", "application/json"),
                ("x-forwarded-proto", "http"),
            ],
        )
        .await;
    let v = reply.json();
    assert_eq!(
        json_header(&v, "x-forwarded-proto").as_deref(),
        Some("https")
    );
    // Plain HTTP still says http.
    let v: serde_json::Value = {
        let mut plain = HttpConn::http1(sluice.http_addr).await;
        plain.whoami("a.test", "/").await
    };
    assert_eq!(
        json_header(&v, "x-forwarded-proto").as_deref(),
        Some("http")
    );
}

#[tokio::test]
async fn session_resumption_is_on() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "a.test", "a-cert", &cert("a", &["a.test"])),
    );
    let sluice = start(settings(&m.path())).await;
    let config = any_cert_config(&["http/1.1"], Versions::Both);
    let mut first = HttpConn::try_https(config.clone(), sluice.https_addr, Some("a.test"))
        .await
        .expect("first connection");
    // One exchange, so the client has read the session tickets.
    assert_eq!(first.get("a.test", "/", &[]).await.status, 200);
    let second = try_handshake(config, sluice.https_addr, Some("a.test"))
        .await
        .expect("second connection");
    assert!(second.resumed, "{second:?}");
}

// ---------------------------------------------------------------------------
// Secret changes and broken Secrets
// ---------------------------------------------------------------------------

#[tokio::test]
async fn rotation_reaches_new_handshakes_fast_and_keeps_open_connections() {
    let web = whoami("web").await;
    let v1 = cert("v1", &["rot.test"]);
    let v2 = cert("v2", &["rot.test"]);
    let v3 = cert("v3", &["rot.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            tls_ingress(
                "app",
                &[],
                &[("rot.test", "rot-cert")],
                &[("rot.test", "/", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    m.write("secret.yaml", &tls_secret("default", "rot-cert", &v1));
    let sluice = start(settings(&m.path())).await;
    let addr = sluice.https_addr;
    let mut old_h1 = HttpConn::https(addr, Some("rot.test"), &["http/1.1"]).await;
    let mut old_h2 = HttpConn::https(addr, Some("rot.test"), &["h2"]).await;
    assert!(old_h2.is_h2());
    for conn in [&mut old_h1, &mut old_h2] {
        assert_eq!(
            conn.tls.as_ref().and_then(|t| t.peer.cn.as_deref()),
            Some("v1")
        );
        assert_eq!(conn.whoami("rot.test", "/").await["name"], "web");
    }

    for (next, write) in [
        (&v2, tls_secret("default", "rot-cert", &v2)),
        (&v3, tls_secret_string_data("default", "rot-cert", &v3)),
    ] {
        m.write("secret.yaml", &write);
        let changed = tokio::time::Instant::now();
        loop {
            let cn = served_cn(&sluice, Some("rot.test")).await;
            if cn == next.cn {
                break;
            }
            assert!(
                changed.elapsed() < Duration::from_secs(3),
                "still serving {cn} 3 s after the Secret changed to {}",
                next.cn
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The contract is 1 s; the slack is for a loaded CI machine.
        let took = changed.elapsed();
        assert!(
            took < Duration::from_millis(1500),
            "new handshakes got {} only after {took:?}",
            next.cn
        );
        // The connections opened before the rotation still answer.
        for conn in [&mut old_h1, &mut old_h2] {
            assert!(
                !conn.is_closed(),
                "an open connection was closed by the rotation"
            );
            assert_eq!(conn.whoami("rot.test", "/again").await["name"], "web");
        }
    }
}

#[tokio::test]
async fn broken_secrets_are_reported_and_other_hosts_keep_serving() {
    let web = whoami("web").await;
    let good = cert("good", &["good.test"]);
    let mismatched = cert("mismatched", &["mismatch.test"]);
    let stranger = cert("stranger", &["stranger.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            tls_secret("default", "good-cert", &good),
            mismatched_secret("default", "mismatch-cert", &mismatched, &stranger),
            // `missing-cert` does not exist at all.
            // The broken Secret shares an Ingress with the good one.
            tls_ingress(
                "mixed",
                &[],
                &[("good.test", "good-cert"), ("notpem.test", "notpem-cert")],
                &[
                    ("good.test", "/", "Prefix", "web"),
                    ("notpem.test", "/", "Prefix", "web"),
                ],
            ),
            tls_ingress(
                "broken",
                &[],
                &[
                    ("mismatch.test", "mismatch-cert"),
                    ("missing.test", "missing-cert"),
                ],
                &[
                    ("mismatch.test", "/", "Prefix", "web"),
                    ("missing.test", "/", "Prefix", "web"),
                ],
            ),
        ]
        .concat(),
    );
    m.write("notpem.yaml", &not_pem_secret("default", "notpem-cert"));
    let sluice = start(settings(&m.path())).await;
    // The good host serves its certificate and routes.
    assert_eq!(served_cn(&sluice, Some("good.test")).await, "good");
    assert_eq!(
        https_whoami(&sluice, Some("good.test"), "good.test").await["name"],
        "web"
    );
    for (host, secret) in [
        ("notpem.test", "notpem-cert"),
        ("mismatch.test", "mismatch-cert"),
        ("missing.test", "missing-cert"),
    ] {
        let errors = errors_about(sluice.admin_addr, secret).await;
        assert!(!errors.is_empty(), "{secret} is not reported");
        for e in &errors {
            let kind = e["kind"].as_str().unwrap_or_default();
            assert!(
                !kind.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "kind is snake_case: {e}"
            );
            assert!(!e["message"].as_str().unwrap_or_default().is_empty(), "{e}");
            assert!(e["object"]["kind"].is_string(), "{e}");
            assert!(e["object"]["name"].is_string(), "{e}");
        }
        // A broken certificate is never served: the host gets the default one
        // (or, at worst, no handshake at all).
        if let Ok(info) = try_handshake(
            any_cert_config(&[], Versions::Both),
            sluice.https_addr,
            Some(host),
        )
        .await
        {
            assert_eq!(info.peer.cn.as_deref(), Some(DEFAULT_CN), "{host}");
        }
    }
    // The mismatched certificate is in particular not served with the wrong key.
    assert_ne!(
        served_cn(&sluice, Some("mismatch.test")).await,
        "mismatched"
    );

    // Fixing a Secret brings its host in and clears its report.
    let fixed = cert("fixed", &["notpem.test"]);
    m.write("notpem.yaml", &tls_secret("default", "notpem-cert", &fixed));
    wait_for("the fixed Secret is served", || async {
        served_cn(&sluice, Some("notpem.test")).await == "fixed"
    })
    .await;
    wait_for("the fixed Secret is no longer reported", || async {
        errors_about(sluice.admin_addr, "notpem-cert")
            .await
            .is_empty()
    })
    .await;
    assert_eq!(served_cn(&sluice, Some("good.test")).await, "good");
}

#[tokio::test]
async fn an_expired_certificate_is_served_with_a_warning() {
    let web = whoami("web").await;
    let old = expired_cert("old", &["old.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "old.test", "old-cert", &old),
    );
    let sluice = start(settings(&m.path())).await;
    let mut conn = HttpConn::https(sluice.https_addr, Some("old.test"), &["http/1.1"]).await;
    let info = conn.tls.clone().expect("TLS");
    assert_eq!(info.peer.cn.as_deref(), Some("old"));
    assert_eq!(info.peer.not_after, old.not_after);
    assert_eq!(conn.whoami("old.test", "/").await["name"], "web");
    let reports = errors_about(sluice.admin_addr, "old-cert").await;
    assert!(!reports.is_empty(), "the expired certificate is reported");
    for r in &reports {
        assert_eq!(r["severity"], "warning", "{r}");
    }
    let metrics = admin_text(sluice.admin_addr, "/metrics").await;
    let samples = metric_samples(
        &metrics,
        "sluice_tls_cert_not_after_seconds",
        &["namespace=\"default\"", "secret=\"old-cert\""],
    );
    assert_eq!(samples.len(), 1, "{metrics}");
    assert_eq!(samples[0].1, old.not_after as f64, "{}", samples[0].0);
}

// ---------------------------------------------------------------------------
// TLS versions and metrics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn min_version_1_3_refuses_a_tls_1_2_client() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "a.test", "a-cert", &cert("a", &["a.test"])),
    );
    let sluice = start_with(&m, |s| {
        s.tls.min_version = sluice::tls::TlsVersion::V1_3;
    })
    .await;
    let refused = try_handshake(tls12_only_config(&[]), sluice.https_addr, Some("a.test")).await;
    assert!(refused.is_err(), "TLS 1.2 was accepted: {refused:?}");
    let ok = handshake(sluice.https_addr, Some("a.test")).await;
    assert_eq!(ok.version, "TLSv1.3");
    wait_for("the refused handshake is counted", || async {
        let metrics = admin_text(sluice.admin_addr, "/metrics").await;
        metric_samples(
            &metrics,
            "sluice_tls_handshakes_total",
            &["outcome=\"failed\""],
        )
        .iter()
        .map(|(_, v)| v)
        .sum::<f64>()
            >= 1.0
    })
    .await;
}

#[tokio::test]
async fn tls_metrics_count_handshakes_and_expose_expiry() {
    let web = whoami("web").await;
    let served = cert("m", &["m.test"]);
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &single_host_app(&web, "m.test", "m-cert", &served),
    );
    let sluice = start(settings(&m.path())).await;
    // Default settings accept both versions.
    let v13 = try_handshake(
        any_cert_config(&[], Versions::Tls13Only),
        sluice.https_addr,
        Some("m.test"),
    )
    .await
    .expect("TLS 1.3");
    assert_eq!(v13.version, "TLSv1.3");
    let v12 = try_handshake(tls12_only_config(&[]), sluice.https_addr, Some("m.test"))
        .await
        .expect("TLS 1.2 by default");
    assert_eq!(v12.version, "TLSv1.2");
    // Plain HTTP on the HTTPS port is a failed handshake.
    let _ = raw(
        sluice.https_addr,
        b"GET / HTTP/1.1\r\nHost: m.test\r\n\r\n",
        Duration::from_secs(1),
    )
    .await;
    let count = |metrics: &str, labels: &[&str]| -> f64 {
        metric_samples(metrics, "sluice_tls_handshakes_total", labels)
            .iter()
            .map(|(_, v)| v)
            .sum()
    };
    wait_for("handshakes are counted", || async {
        let metrics = admin_text(sluice.admin_addr, "/metrics").await;
        count(&metrics, &["version=\"TLSv1.3\"", "outcome=\"ok\""]) >= 1.0
            && count(&metrics, &["version=\"TLSv1.2\"", "outcome=\"ok\""]) >= 1.0
            && count(&metrics, &["outcome=\"failed\""]) >= 1.0
    })
    .await;
    let metrics = admin_text(sluice.admin_addr, "/metrics").await;
    for (line, _) in metric_samples(&metrics, "sluice_tls_handshakes_total", &[]) {
        assert!(
            [
                "version=\"TLSv1.2\"",
                "version=\"TLSv1.3\"",
                "version=\"none\""
            ]
            .iter()
            .any(|v| line.contains(v)),
            "unexpected version label: {line}"
        );
        assert!(
            line.contains("outcome=\"ok\"") || line.contains("outcome=\"failed\""),
            "unexpected outcome label: {line}"
        );
    }
    let expiry = metric_samples(
        &metrics,
        "sluice_tls_cert_not_after_seconds",
        &["namespace=\"default\"", "secret=\"m-cert\""],
    );
    assert_eq!(expiry.len(), 1, "{metrics}");
    assert_eq!(expiry[0].1, served.not_after as f64, "{}", expiry[0].0);
}

// ---------------------------------------------------------------------------
// Redirects and entrypoints
// ---------------------------------------------------------------------------

#[tokio::test]
async fn force_ssl_redirect_answers_308_with_the_https_url() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            // No TLS section needed: forcing is unconditional.
            tls_ingress(
                "force",
                &[(FORCE_SSL_REDIRECT, "true")],
                &[],
                &[("force.test", "/", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let r = http_get(&sluice, "force.test:8080", "/a/b?x=1&y=%20z").await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some("https://force.test/a/b?x=1&y=%20z"),
        "port dropped, path and query kept"
    );
    let r = http_get(&sluice, "force.test", "/plain").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://force.test/plain"));
    // As ingress-nginx, one trailing slash of the request URI is dropped
    // (preserve-trailing-slash keeps it, below); a query protects it.
    let r = http_get(&sluice, "force.test", "/dir/").await;
    assert_eq!(r.header("location"), Some("https://force.test/dir"));
    let r = http_get(&sluice, "force.test", "/").await;
    assert_eq!(r.header("location"), Some("https://force.test"));
    let r = http_get(&sluice, "force.test", "/dir/?q=1").await;
    assert_eq!(r.header("location"), Some("https://force.test/dir/?q=1"));
    // 308 keeps the method: a POST is redirected the same way.
    let mut conn = HttpConn::http1(sluice.http_addr).await;
    let post = conn
        .request("POST", "force.test", "/form")
        .body(body_with_trailers(bytes::Bytes::from_static(b"a=1"), None))
        .expect("request");
    let r = conn.send(post).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://force.test/form"));
    // HTTPS is never redirected.
    let r = https_get(&sluice, "force.test", "/a/b?x=1").await;
    assert_eq!(r.status, 200, "{}", r.body);
    sluice.stop();
    sluice.wait().await;

    // A non-standard HTTPS port is written into the Location.
    let sluice = start_with(&m, |s| s.https_redirect_port = 8443).await;
    let r = http_get(&sluice, "force.test", "/a?b=c").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://force.test:8443/a?b=c"));

    // preserve-trailing-slash: "true" keeps it; a bad value is reported.
    m.write(
        "b.yaml",
        &tls_ingress(
            "kept",
            &[
                (FORCE_SSL_REDIRECT, "true"),
                (
                    "nginx.ingress.kubernetes.io/preserve-trailing-slash",
                    "true",
                ),
            ],
            &[],
            &[("kept.test", "/", "Prefix", "web")],
        ),
    );
    let s = &sluice;
    wait_for("the preserve-trailing-slash Ingress", || async move {
        http_get(s, "kept.test", "/dir/").await.status == 308
    })
    .await;
    let r = http_get(&sluice, "kept.test", "/dir/").await;
    assert_eq!(r.header("location"), Some("https://kept.test:8443/dir/"));
    m.write(
        "b.yaml",
        &tls_ingress(
            "kept",
            &[
                (FORCE_SSL_REDIRECT, "true"),
                ("nginx.ingress.kubernetes.io/preserve-trailing-slash", "yes"),
            ],
            &[],
            &[("kept.test", "/", "Prefix", "web")],
        ),
    );
    wait_for("the bad value reported", || async move {
        api_errors(s.admin_addr).await.iter().any(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("preserve-trailing-slash"))
        })
    })
    .await;
    let r = http_get(&sluice, "kept.test", "/dir/").await;
    assert_eq!(r.header("location"), Some("https://kept.test:8443/dir"));
}

#[tokio::test]
async fn ingress_nginx_style_redirects_hosts_its_tls_section_covers() {
    let web = whoami("web").await;
    let multi = cert(
        "multi",
        &[
            "ng.test",
            "optout.test",
            "explicit.test",
            "traefik.test",
            "notls.test",
        ],
    );
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            tls_secret("default", "multi-cert", &multi),
            // ingress-nginx style by any nginx annotation: redirects covered hosts by default.
            tls_ingress(
                "ng",
                &[SOME_NGINX_ANNOTATION],
                &[("ng.test", "multi-cert")],
                &[
                    ("ng.test", "/", "Prefix", "web"),
                    ("uncovered.test", "/", "Prefix", "web"),
                ],
            ),
            tls_ingress(
                "optout",
                &[(SSL_REDIRECT, "false")],
                &[("optout.test", "multi-cert")],
                &[("optout.test", "/", "Prefix", "web")],
            ),
            tls_ingress(
                "explicit",
                &[(SSL_REDIRECT, "true")],
                &[("explicit.test", "multi-cert")],
                &[("explicit.test", "/", "Prefix", "web")],
            ),
            // ssl-redirect without a TLS section covering the host: nothing to redirect to.
            tls_ingress(
                "notls",
                &[(SSL_REDIRECT, "true")],
                &[],
                &[("notls.test", "/", "Prefix", "web")],
            ),
            // Traefik style (no nginx annotation): never redirects by default.
            tls_ingress(
                "traefik",
                &[],
                &[("traefik.test", "multi-cert")],
                &[("traefik.test", "/", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    for (host, redirected) in [
        ("ng.test", true),
        ("uncovered.test", false),
        ("optout.test", false),
        ("explicit.test", true),
        ("notls.test", false),
        ("traefik.test", false),
    ] {
        let r = http_get(&sluice, host, "/x?y=1").await;
        if redirected {
            assert_eq!(r.status, 308, "{host}: {}", r.body);
            assert_eq!(
                r.header("location"),
                Some(format!("https://{host}/x?y=1").as_str()),
                "{host}"
            );
        } else {
            assert_eq!(r.status, 200, "{host} is not redirected: {:?}", r.headers);
        }
        // Over HTTPS every one of them is served.
        let r = https_get(&sluice, host, "/x?y=1").await;
        assert_eq!(r.status, 200, "{host} over HTTPS: {}", r.body);
    }
}

#[tokio::test]
async fn entrypoint_annotations_choose_the_listeners() {
    let web = whoami("web").await;
    let m = Manifests::new();
    let one = |name: &str, annotations: &[(&str, &str)]| {
        tls_ingress(
            name,
            annotations,
            &[],
            &[(&format!("{name}.test"), "/", "Prefix", "web")],
        )
    };
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[web.addr]),
            one("secure", &[(ENTRYPOINTS, "websecure")]),
            one("plain", &[(ENTRYPOINTS, "web")]),
            one("both", &[(ENTRYPOINTS, "web,websecure")]),
            one("routertls", &[(ROUTER_TLS, "true")]),
            one("default", &[]),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    for (name, on_http, on_https) in [
        ("secure", 404, 200),
        ("plain", 200, 404),
        ("both", 200, 200),
        ("routertls", 404, 200),
        ("default", 200, 200),
    ] {
        let host = format!("{name}.test");
        assert_eq!(
            http_get(&sluice, &host, "/").await.status,
            on_http,
            "{host} on HTTP"
        );
        assert_eq!(
            https_get(&sluice, &host, "/").await.status,
            on_https,
            "{host} on HTTPS"
        );
    }
}

// ---------------------------------------------------------------------------
// gRPC over TLS
// ---------------------------------------------------------------------------

#[tokio::test]
async fn grpc_over_tls_to_an_h2c_backend_keeps_trailers() {
    let grpc = grpc_backend("grpc").await;
    let m = Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("grpc", &[], &[grpc.addr]),
            tls_secret("default", "grpc-cert", &cert("grpc", &["grpc.test"])),
            tls_ingress(
                "grpc",
                &[("nginx.ingress.kubernetes.io/backend-protocol", "GRPC")],
                &[("grpc.test", "grpc-cert")],
                &[("grpc.test", "/", "Prefix", "grpc")],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let mut conn = HttpConn::https(sluice.https_addr, Some("grpc.test"), &["h2"]).await;
    assert!(conn.is_h2(), "ALPN h2");
    let mut trailers = HeaderMap::new();
    trailers.insert("x-client-trailer", HeaderValue::from_static("hello"));
    let req = grpc_request(
        &conn,
        "grpc.test",
        "/echo.Echo/Say",
        b"ping",
        Some(trailers),
    );
    let reply = conn.send(req).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.version, http::Version::HTTP_2);
    assert_eq!(reply.header("content-type"), Some("application/grpc"));
    assert_eq!(reply.header("x-backend-proto"), Some("HTTP/2.0"));
    assert_eq!(reply.body.as_bytes(), &grpc_frame(b"ping")[..]);
    let t = reply.trailers.as_ref().expect("trailers");
    assert_eq!(
        t.get("grpc-status").and_then(|v| v.to_str().ok()),
        Some("0")
    );
    assert_eq!(
        t.get("grpc-message").and_then(|v| v.to_str().ok()),
        Some("ok")
    );
    assert_eq!(
        t.get("x-echo-x-client-trailer")
            .and_then(|v| v.to_str().ok()),
        Some("hello")
    );
}
