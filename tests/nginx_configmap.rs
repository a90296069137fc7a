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

/// Starts sluice following the controller ConfigMap
/// `ingress-nginx/controller`, writes `docs`, and waits (as `what`) until GET
/// `/` on `host` answers a status that `ready` accepts.
async fn controller_app(
    docs: &str,
    what: &str,
    host: &str,
    ready: impl Fn(u16) -> bool,
) -> Fixture {
    let f = fixture(&["web"], &[], |s| {
        s.compile.nginx_configmap = Some(("ingress-nginx".into(), "controller".into()));
    })
    .await;
    f.manifests.write("b.yaml", docs);
    wait_for_status(&f, what, host, "/", ready).await;
    f
}

/// The status of a POST of `len` bytes to `/` on `host` over plain HTTP.
async fn post(f: &Fixture, host: &str, len: usize) -> u16 {
    send(f, host, "POST", "/", &[], &vec![b'a'; len])
        .await
        .status
}

/// Starts sluice with Ingress `nginxed` (`app.test`) whose `custom-headers`
/// names the ConfigMap `source`, written with `docs`.
async fn with_custom_headers(source: &str, docs: &str) -> Fixture {
    nginx_app(
        &[("custom-headers", source)],
        &[],
        &[("app.test", "/", "Prefix", "web")],
        docs,
        "/",
    )
    .await
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
    // `plain` has no annotation at all; `limited` asks for a rate limit.
    let docs = [
        tls_secret("default", "app-cert", &cert),
        tls_ingress(
            "plain",
            &[],
            &[("app.test", "app-cert")],
            &[("app.test", "/", "Prefix", "web")],
        ),
        nginx_ingress(
            "limited",
            &[("limit-rps", "1"), ("limit-burst-multiplier", "1")],
            &[("limited.test", "/", "Prefix", "web")],
        ),
        controller("1k"),
    ]
    .join("\n---\n");
    let f = controller_app(&docs, "the Ingresses", "limited.test", |s| s != 404).await;
    let c = client();
    let addr = f.sluice.http_addr;

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
        statuses.push(send(&f, "limited.test", "GET", "/", &[], b"").await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(!statuses.contains(&503), "{statuses:?}");
    let limited = get(&c, addr, "limited.test", "/", &[]).await;
    assert!(!limited.headers.contains_key("strict-transport-security"));

    // A key sluice cannot honour is reported on the ConfigMap.
    assert_reported(&f, &["use-forwarded-headers"]).await;

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
    let own = nginx_ingress(
        "own",
        &[("proxy-body-size", "8k")],
        &[("own.test", "/", "Prefix", "web")],
    );
    let other = nginx_ingress("other", &[], &[("other.test", "/", "Prefix", "web")]);
    let docs = format!("{own}\n---\n{other}");
    let f = controller_app(&docs, "the Ingresses", "other.test", |s| s != 404).await;
    // No ConfigMap yet: ingress-nginx's default 1m applies to `other`, and
    // the missing ConfigMap is reported.
    assert_eq!(post(&f, "other.test", 900 * 1024).await, 200);
    assert_eq!(post(&f, "other.test", 1100 * 1024).await, 413);
    assert_reported(&f, &["ingress-nginx/controller", "no such ConfigMap"]).await;

    // With the ConfigMap: its 1k applies where the Ingress says nothing.
    f.manifests.write("c.yaml", &controller("1k"));
    let fr = &f;
    wait_for("the ConfigMap", || async move {
        post(fr, "other.test", 2048).await == 413
    })
    .await;
    assert_eq!(post(&f, "own.test", 4096).await, 200);
    assert_eq!(post(&f, "own.test", 9000).await, 413);
}

#[tokio::test]
async fn custom_headers_set_the_configmaps_response_headers() {
    let hdrs = config_map(
        "default",
        "hdrs",
        &[("X-Frame-Options", "DENY"), ("Cache-Control", "no-store")],
    );
    let f = with_custom_headers("default/hdrs", &hdrs).await;
    let c = client();
    let ok = get(&c, f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers["x-frame-options"], "DENY");
    assert_eq!(ok.headers["cache-control"], "no-store");

    // A missing ConfigMap denies the location, as in ingress-nginx.
    let f = with_custom_headers("missing", "").await;
    let needles = [
        "invalid_annotation",
        "custom-headers",
        "no ConfigMap default/missing",
    ];
    assert_fails_closed(&f, "app.test", &needles).await;
}

#[tokio::test]
async fn custom_headers_may_set_only_the_globally_allowed_headers() {
    let docs = |allowed: &str| {
        [
            config_map(
                "ingress-nginx",
                "controller",
                &[
                    ("global-allowed-response-headers", allowed),
                    ("hsts", "false"),
                ],
            ),
            config_map("default", "hdrs", &[("X-Frame-Options", "DENY")]),
            nginx_ingress(
                "with-headers",
                &[("custom-headers", "default/hdrs")],
                &[("app.test", "/", "Prefix", "web")],
            ),
        ]
        .join("\n---\n")
    };
    let f = controller_app(&docs("X-Other"), "the Ingress", "app.test", |s| s == 500).await;
    let c = client();
    let addr = f.sluice.http_addr;
    assert_reported(&f, &["global-allowed-response-headers"]).await;

    f.manifests
        .write("b.yaml", &docs("X-Other, x-frame-options"));
    wait_for("the allowed header", || {
        let c = c.clone();
        async move {
            let r = get(&c, addr, "app.test", "/", &[]).await;
            r.status == 200
                && r.headers
                    .get("x-frame-options")
                    .is_some_and(|v| v == "DENY")
        }
    })
    .await;
    // The delay lets a stray reload show up before the last look.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = get(&c, addr, "app.test", "/", &[]).await;
    assert_eq!(r.status, 200);
}
