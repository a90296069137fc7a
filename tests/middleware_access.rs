//! The access middlewares through a real sluice: `ipAllowList` / `ipWhiteList`,
//! `rateLimit`, `inFlightReq` and `buffering`, each on a route whose
//! `router.middlewares` annotation names it. Real sockets, real whoami
//! backends, manifests on disk.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::*;

const MW: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// The manifest: Service `web`, an Ingress `guarded` on `/` (any host) using
/// Middleware `mw` with `spec`, and an unguarded Ingress on `/open`, plus `extra`.
fn manifest(backend: &Backend, spec: &str, extra: &str) -> String {
    [
        service("web", &[backend.addr]),
        annotated_ingress(
            "guarded",
            "default",
            &[(MW, "default-mw@kubernetescrd")],
            &[("", "/", "Prefix", "web")],
        ),
        annotated_ingress("open", "default", &[], &[("", "/open", "Prefix", "web")]),
        middleware("mw", "default", spec),
        extra.to_owned(),
    ]
    .join("\n")
}

/// A sluice in front of whoami with Middleware `mw` = `spec` on every path but `/open`.
async fn guarded(spec: &str) -> (Fixture, Backend) {
    let backend = whoami("web").await;
    let m = Manifests::new();
    m.write("a.yaml", &manifest(&backend, spec, ""));
    let sluice = start(settings(&m.path())).await;
    let fixture = Fixture {
        backends: Vec::new(),
        manifests: m,
        sluice,
    };
    (fixture, backend)
}

async fn status(f: &Fixture, host: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    get(&client(), f.sluice.http_addr, host, path, headers)
        .await
        .status
}

/// POSTs `body` (with a Content-Length) and returns status, headers and body.
async fn post(f: &Fixture, path: &str, body: &'static [u8]) -> Answer {
    let req = http::Request::post(format!("http://{}{path}", f.sluice.http_addr))
        .header("host", "x")
        .body(Full::new(Bytes::from_static(body)))
        .expect("request");
    let resp = client().request(req).await.expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

#[tokio::test]
async fn ip_allow_list_admits_listed_clients_only() {
    let (open, _b) = guarded("ipAllowList:\n  sourceRange: [\"127.0.0.0/8\", \"::1\"]").await;
    assert_eq!(status(&open, "x", "/", &[]).await, 200);

    let (closed, _b) = guarded("ipAllowList:\n  sourceRange: [10.0.0.0/8]").await;
    let answer = get(&client(), closed.sluice.http_addr, "x", "/", &[]).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.body, "Forbidden");
    assert!(answer.headers.get("content-type").is_none());
    // A client's own X-Forwarded-For is not believed without an ipStrategy.
    let spoof = [("x-forwarded-for", "10.1.2.3")];
    assert_eq!(status(&closed, "x", "/", &spoof).await, 403);
    assert_eq!(status(&closed, "x", "/open", &[]).await, 200);

    // The deprecated name, with a custom status.
    let (old, _b) =
        guarded("ipWhiteList:\n  sourceRange: [192.0.2.0/24]\n  rejectStatusCode: 404").await;
    let answer = get(&client(), old.sluice.http_addr, "x", "/", &[]).await;
    assert_eq!((answer.status, answer.body.as_str()), (404, "Not Found"));
}

#[tokio::test]
async fn ip_allow_list_depth_reads_what_the_proxy_in_front_reported() {
    // The client (127.0.0.1) plays a load balancer reporting the real client.
    let (f, _b) = guarded(
        "ipAllowList:\n  sourceRange: [\"10.0.0.0/8\", \"2001:db8::/32\"]\n  ipStrategy:\n    depth: 1",
    )
    .await;
    assert_eq!(
        status(&f, "x", "/", &[("x-forwarded-for", "10.1.2.3")]).await,
        200
    );
    assert_eq!(
        status(&f, "x", "/", &[("x-forwarded-for", "2001:db8::7")]).await,
        200
    );
    assert_eq!(
        status(
            &f,
            "x",
            "/",
            &[("x-forwarded-for", "10.1.2.3, 203.0.113.1")]
        )
        .await,
        403
    );
    // Nothing reported: depth 1 finds nothing, the request is refused.
    assert_eq!(status(&f, "x", "/", &[]).await, 403);

    let (ex, _b) = guarded(
        "ipAllowList:\n  sourceRange: [\"10.0.0.0/8\"]\n  ipStrategy:\n    excludedIPs: [\"203.0.113.0/24\"]",
    )
    .await;
    let xff = [("x-forwarded-for", "10.1.2.3, 203.0.113.1, 203.0.113.2")];
    assert_eq!(status(&ex, "x", "/", &xff).await, 200);
}

#[tokio::test]
async fn ip_allow_list_without_ranges_fails_closed() {
    for spec in [
        "ipAllowList:\n  sourceRange: []",
        "ipAllowList:\n  sourceRange: [\"10.0.0.0/99\"]",
    ] {
        let (f, _b) = guarded(spec).await;
        assert_eq!(status(&f, "x", "/", &[]).await, 500, "{spec}");
        assert_eq!(status(&f, "x", "/open", &[]).await, 200);
    }
}

#[tokio::test]
async fn rate_limit_refuses_past_the_burst_and_keeps_buckets_across_reloads() {
    let spec = "rateLimit:\n  average: 1\n  period: 1h\n  burst: 2";
    let (f, backend) = guarded(spec).await;
    assert_eq!(status(&f, "x", "/", &[]).await, 200);
    assert_eq!(status(&f, "x", "/", &[]).await, 200);
    let refused = get(&client(), f.sluice.http_addr, "x", "/", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body, "Too Many Requests");
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((3590..=3600).contains(&retry_after), "{retry_after}");
    assert!(refused.headers.contains_key("x-retry-in"));
    // Other routes are not limited.
    assert_eq!(status(&f, "x", "/open", &[]).await, 200);

    // A reload that leaves the Middleware alone keeps its buckets.
    let probe = annotated_ingress("probe", "default", &[], &[("", "/probe", "Prefix", "web")]);
    f.manifests
        .write("a.yaml", &manifest(&backend, spec, &probe));
    wait_for("the reload", || async {
        status(&f, "x", "/probe", &[]).await == 200
    })
    .await;
    assert_eq!(status(&f, "x", "/", &[]).await, 429);

    // A changed definition starts afresh.
    let changed = "rateLimit:\n  average: 2\n  period: 1h\n  burst: 2";
    f.manifests
        .write("a.yaml", &manifest(&backend, changed, &probe));
    wait_for("the new definition", || async {
        status(&f, "x", "/", &[]).await == 200
    })
    .await;
}

#[tokio::test]
async fn rate_limit_by_header() {
    let (f, _b) = guarded(
        "rateLimit:\n  average: 1\n  period: 1h\n  sourceCriterion:\n    requestHeaderName: X-Api-Key",
    )
    .await;
    assert_eq!(status(&f, "x", "/", &[("x-api-key", "a")]).await, 200);
    assert_eq!(status(&f, "x", "/", &[("x-api-key", "a")]).await, 429);
    assert_eq!(status(&f, "x", "/", &[("x-api-key", "b")]).await, 200);
}

#[tokio::test]
async fn in_flight_req_limits_concurrent_requests_per_host() {
    let (f, _b) = guarded("inFlightReq:\n  amount: 1").await;
    let addr = f.sluice.http_addr;
    let slow = tokio::spawn(async move {
        get(&client(), addr, "a.example", "/slow?wait=3s", &[])
            .await
            .status
    });
    // Let the slow request reach the backend, then same-Host requests are refused.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = get(&client(), addr, "a.example", "/", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body, "max connections reached: 1");
    assert!(refused.headers.get("retry-after").is_none());
    // Another Host has its own count.
    assert_eq!(status(&f, "b.example", "/", &[]).await, 200);
    assert_eq!(slow.await.expect("slow request"), 200);
    // Once the slow one is done, its Host is admitted again.
    assert_eq!(status(&f, "a.example", "/", &[]).await, 200);
}

#[tokio::test]
async fn buffering_limits_request_bodies() {
    let (f, _b) = guarded("buffering:\n  maxRequestBodyBytes: 10").await;
    let ok = post(&f, "/", b"0123456789").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.headers["x-body-length"], "10");
    let big = post(&f, "/", b"0123456789A").await;
    assert_eq!(big.status, 413);
    assert_eq!(big.body, "Request Entity Too Large");

    // Chunked (no Content-Length): refused once the 11th byte arrives.
    let chunked = raw(
        f.sluice.http_addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n6\r\n012345\r\n5\r\n6789A\r\n0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
    let fits = raw(
        f.sluice.http_addr,
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(fits.starts_with("HTTP/1.1 200"), "{fits}");
    // The backend got a Content-Length body, not chunks.
    assert!(
        fits.to_ascii_lowercase().contains("x-body-length: 10"),
        "{fits}"
    );
    assert!(fits.contains("Content-Length: 10"), "{fits}");
}

#[tokio::test]
async fn buffering_limits_response_bodies() {
    let (f, _b) = guarded("buffering:\n  maxResponseBodyBytes: 100000").await;
    let c = client();
    let ok = get(&c, f.sluice.http_addr, "x", "/?size=100000", &[]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body.len(), 100000);
    assert_eq!(ok.headers["content-length"], "100000");
    let big = get(&c, f.sluice.http_addr, "x", "/?size=100001", &[]).await;
    assert_eq!(
        (big.status, big.body.as_str()),
        (500, "Internal Server Error")
    );
}
