//! ConfigMaps in ingress-nginx's role, through a real sluice with real
//! whoami backends, real HTTP and HTTPS clients and the admin API:
//! `--nginx-configmap` (the controller ConfigMap's global settings applied
//! to every Ingress, followed as it changes) and the `custom-headers`
//! annotation with `global-allowed-response-headers`.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::nginx::*;
use support::*;
use tls_support::*;

/// A ConfigMap `namespace/name` with `data`.
fn config_map(namespace: &str, name: &str, data: &[(&str, &str)]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n"
    );
    for (k, v) in data {
        out.push_str(&format!("  {k}: {}\n", serde_json::Value::from(*v)));
    }
    out
}

/// Sends `method path` to `host` over plain HTTP with `body`.
async fn send(f: &Fixture, host: &str, method: &str, path: &str, body: Vec<u8>) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", f.sluice.http_addr))
        .header("host", host)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = client().request(req).await.expect("answer");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// GET (or POST with `body`) over HTTPS to `host`.
async fn https(f: &Fixture, host: &str, body: Option<Vec<u8>>) -> Reply {
    let mut conn = HttpConn::https(f.sluice.https_addr, Some(host), &["http/1.1"]).await;
    let method = if body.is_some() { "POST" } else { "GET" };
    let req = http::Request::builder()
        .method(method)
        .uri(format!("https://{host}/"))
        .header("host", host)
        .body(match body {
            Some(b) => Full::new(Bytes::from(b)).map_err(|e| match e {}).boxed(),
            None => empty(),
        })
        .expect("request");
    conn.send(req).await
}

/// The controller ConfigMap and the header lists it names.
fn controller(body_size: &str) -> String {
    [
        config_map(
            "ingress-nginx",
            "controller",
            &[
                ("proxy-body-size", body_size),
                ("limit-req-status-code", "429"),
                ("hsts-max-age", "600"),
                ("add-headers", "ingress-nginx/response-headers"),
                ("proxy-set-headers", "ingress-nginx/request-headers"),
                ("use-forwarded-headers", "true"),
            ],
        ),
        config_map(
            "ingress-nginx",
            "response-headers",
            &[("X-Served-By", "edge")],
        ),
        config_map("ingress-nginx", "request-headers", &[("X-Env", "prod")]),
    ]
    .join("")
}

#[tokio::test]
async fn the_controller_configmap_applies_to_every_ingress_and_is_followed() {
    let cert = cert("app.test", &["app.test"]);
    let f = fixture(&["web"], &[], |s| {
        s.compile.nginx_configmap = Some(("ingress-nginx".into(), "controller".into()));
    })
    .await;
    // `plain` has no annotation at all; `limited` asks for a rate limit.
    let docs = [
        tls_secret("default", "app-cert", &cert),
        tls_ingress(
            "plain",
            &[],
            &[("app.test", "app-cert")],
            &[("app.test", "/", "Prefix", "web")],
        ),
        annotated_ingress(
            "limited",
            "default",
            &[(&format!("{P}limit-rps"), "1"), (&format!("{P}limit-burst-multiplier"), "1")],
            &[("limited.test", "/", "Prefix", "web")],
        ),
        controller("1k"),
    ]
    .join("\n---\n");
    f.manifests.write("b.yaml", &docs);
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the Ingresses", || {
        let c = c.clone();
        async move { get(&c, addr, "limited.test", "/", &[]).await.status != 404 }
    })
    .await;

    // ssl-redirect (on by default): plain HTTP to a TLS host is redirected.
    let plain = get(&c, addr, "app.test", "/x", &[]).await;
    assert_eq!(plain.status, 308, "{}", plain.body);
    assert_eq!(plain.headers["location"], "https://app.test/x");

    // HTTPS: HSTS, add-headers on the response, proxy-set-headers at the backend.
    let ok = https(&f, "app.test", None).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.header("strict-transport-security"),
        Some("max-age=600; includeSubDomains")
    );
    assert_eq!(ok.header("x-served-by"), Some("edge"));
    assert!(ok.body.contains("\nX-Env: prod\n"), "{}", ok.body);

    // proxy-body-size 1k for an Ingress that never set it.
    let big = https(&f, "app.test", Some(vec![b'a'; 2048])).await;
    assert_eq!(big.status, 413);
    let small = https(&f, "app.test", Some(vec![b'a'; 512])).await;
    assert_eq!(small.status, 200);

    // HSTS only over HTTPS; limits answer limit-req-status-code.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send(&f, "limited.test", "GET", "/", Vec::new()).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(!statuses.contains(&503), "{statuses:?}");
    let limited = get(&c, addr, "limited.test", "/", &[]).await;
    assert!(!limited.headers.contains_key("strict-transport-security"));

    // A key sluice cannot honour is reported on the ConfigMap.
    let d = diagnostics(&f).await;
    assert!(d.contains("use-forwarded-headers"), "{d}");

    // The ConfigMap is followed: a larger limit takes effect without a restart.
    f.manifests.write(
        "b.yaml",
        &docs.replace("proxy-body-size: \"1k\"", "proxy-body-size: \"4k\""),
    );
    let f = &f;
    wait_for("the new body limit", || async move {
        https(f, "app.test", Some(vec![b'a'; 2048])).await.status == 200
    })
    .await;
}

#[tokio::test]
async fn an_ingress_annotation_wins_over_the_configmap_and_a_missing_configmap_keeps_defaults() {
    let f = fixture(&["web"], &[], |s| {
        s.compile.nginx_configmap = Some(("ingress-nginx".into(), "controller".into()));
    })
    .await;
    let own = annotated_ingress(
        "own",
        "default",
        &[(&format!("{P}proxy-body-size"), "8k")],
        &[("own.test", "/", "Prefix", "web")],
    );
    let other = annotated_ingress("other", "default", &[], &[("other.test", "/", "Prefix", "web")]);
    f.manifests.write("b.yaml", &format!("{own}\n---\n{other}"));
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the Ingresses", || {
        let c = c.clone();
        async move { get(&c, addr, "other.test", "/", &[]).await.status != 404 }
    })
    .await;
    // No ConfigMap yet: ingress-nginx's default 1m applies to `other`, and
    // the missing ConfigMap is reported.
    assert_eq!(send(&f, "other.test", "POST", "/", vec![b'a'; 900 * 1024]).await.0, 200);
    assert_eq!(send(&f, "other.test", "POST", "/", vec![b'a'; 1100 * 1024]).await.0, 413);
    let d = diagnostics(&f).await;
    assert!(d.contains("ingress-nginx/controller") && d.contains("no such ConfigMap"), "{d}");

    // With the ConfigMap: its 1k applies where the Ingress says nothing.
    f.manifests.write("c.yaml", &controller("1k"));
    let fr = &f;
    wait_for("the ConfigMap", || async move {
        send(fr, "other.test", "POST", "/", vec![b'a'; 2048]).await.0 == 413
    })
    .await;
    assert_eq!(send(&f, "own.test", "POST", "/", vec![b'a'; 4096]).await.0, 200);
    assert_eq!(send(&f, "own.test", "POST", "/", vec![b'a'; 9000]).await.0, 413);
}

#[tokio::test]
async fn custom_headers_set_the_configmaps_response_headers() {
    let hdrs = config_map(
        "default",
        "hdrs",
        &[("X-Frame-Options", "DENY"), ("Cache-Control", "no-store")],
    );
    let f = nginx_app(
        &[("custom-headers", "default/hdrs")],
        &[],
        &[("app.test", "/", "Prefix", "web")],
        &hdrs,
        "/",
    )
    .await;
    let c = client();
    let ok = get(&c, f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers["x-frame-options"], "DENY");
    assert_eq!(ok.headers["cache-control"], "no-store");

    // A missing ConfigMap denies the location, as in ingress-nginx.
    let f = nginx_app(
        &[("custom-headers", "missing")],
        &[],
        &[("app.test", "/", "Prefix", "web")],
        "",
        "/",
    )
    .await;
    let denied = get(&c, f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(denied.status, 500);
    let d = diagnostics(&f).await;
    assert!(
        d.contains("invalid_annotation") && d.contains("custom-headers") && d.contains("no ConfigMap default/missing"),
        "{d}"
    );
}

#[tokio::test]
async fn custom_headers_may_set_only_the_globally_allowed_headers() {
    let f = fixture(&["web"], &[], |s| {
        s.compile.nginx_configmap = Some(("ingress-nginx".into(), "controller".into()));
    })
    .await;
    let docs = |allowed: &str| {
        [
            config_map(
                "ingress-nginx",
                "controller",
                &[("global-allowed-response-headers", allowed), ("hsts", "false")],
            ),
            config_map("default", "hdrs", &[("X-Frame-Options", "DENY")]),
            annotated_ingress(
                "with-headers",
                "default",
                &[(&format!("{P}custom-headers"), "default/hdrs")],
                &[("app.test", "/", "Prefix", "web")],
            ),
        ]
        .join("\n---\n")
    };
    f.manifests.write("b.yaml", &docs("X-Other"));
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the Ingress", || {
        let c = c.clone();
        async move { get(&c, addr, "app.test", "/", &[]).await.status == 500 }
    })
    .await;
    let d = diagnostics(&f).await;
    assert!(d.contains("global-allowed-response-headers"), "{d}");

    f.manifests.write("b.yaml", &docs("X-Other, x-frame-options"));
    wait_for("the allowed header", || {
        let c = c.clone();
        async move {
            let r = get(&c, addr, "app.test", "/", &[]).await;
            r.status == 200 && r.headers.get("x-frame-options").is_some_and(|v| v == "DENY")
        }
    })
    .await;
    // The delay lets a stray reload show up before the last look.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = get(&c, addr, "app.test", "/", &[]).await;
    assert_eq!(r.status, 200);
}
