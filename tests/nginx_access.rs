//! ingress-nginx's access-phase annotations through a real sluice: allow and
//! deny lists, `satisfy`, basic/digest auth from Secrets, external auth
//! against a real hyper auth server, and request limits. Real whoami
//! backends, real HTTP clients (curl for Digest), diagnostics read from the
//! admin API.

mod support;

use support::nginx::*;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use md5::{Digest as _, Md5};
use support::*;
use tokio::net::TcpListener;

/// Starts sluice with one Service `web` and one Ingress `nginxed` (host
/// `app.test`, Prefix `/`) carrying the ingress-nginx annotations `nginx`
/// (names without the prefix), written together with `extra` (Secrets).
async fn app_with(nginx: &[(&str, &str)], extra: &str) -> Fixture {
    nginx_app(
        nginx,
        &[],
        &[("app.test", "/", "Prefix", "web")],
        extra,
        "/",
    )
    .await
}

/// [`app_with`] asking the auth service at `url`, with
/// `auth-proxy-set-headers` naming the ConfigMap `headers`, written with
/// `extra`.
async fn with_auth_headers(url: &str, headers: &str, extra: &str) -> Fixture {
    app_with(
        &[("auth-url", url), ("auth-proxy-set-headers", headers)],
        extra,
    )
    .await
}

/// GET `path` on `app.test` with `headers`.
async fn status(f: &Fixture, path: &str, headers: &[(&str, &str)]) -> u16 {
    get(&client(), f.sluice.http_addr, "app.test", path, headers)
        .await
        .status
}

/// Asserts the Ingress answers 500 and `/api/errors` names `kind` and `needle`.
async fn fails_closed(f: &Fixture, kind: &str, needle: &str) {
    assert_fails_closed(f, "app.test", &[kind, needle]).await;
}

/// A Secret in `default` with `stringData` entries.
fn secret(name: &str, entries: &[(&str, &str)]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\nstringData:\n"
    );
    for (key, value) in entries {
        out.push_str(&format!("  {key}: {}\n", serde_json::Value::from(*value)));
    }
    out
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// An htpasswd Secret `creds` (key `auth`) with alice:secret (bcrypt).
fn htpasswd() -> String {
    let hash = bcrypt::hash("secret", 4).expect("hash");
    secret("creds", &[("auth", &format!("alice:{hash}\n"))])
}

#[tokio::test]
async fn deny_lists_refuse_listed_clients_and_beat_allow_lists() {
    let f = app_with(&[("denylist-source-range", "127.0.0.1/32")], "").await;
    assert_eq!(status(&f, "/", &[]).await, 403);

    let f = app_with(&[("denylist-source-range", "10.0.0.0/8, 192.168.0.1")], "").await;
    assert_eq!(status(&f, "/", &[]).await, 200);

    // nginx checks deny entries before allow entries.
    let f = app_with(
        &[
            ("allowlist-source-range", "127.0.0.0/8"),
            ("denylist-source-range", "127.0.0.1"),
        ],
        "",
    )
    .await;
    assert_eq!(status(&f, "/", &[]).await, 403);

    let f = app_with(&[("denylist-source-range", "127.0.0.1/33")], "").await;
    fails_closed(&f, "invalid_annotation", "denylist-source-range").await;
}

#[tokio::test]
async fn satisfy_any_needs_either_the_allow_list_or_credentials() {
    let ok = basic("alice", "secret");
    let creds = [("authorization", ok.as_str())];
    let outside = [
        ("whitelist-source-range", "10.0.0.0/8"),
        ("auth-type", "basic"),
        ("auth-secret", "creds"),
    ];
    // satisfy all (default): outside the allow list, credentials do not help.
    let f = app_with(&outside, &htpasswd()).await;
    assert_eq!(status(&f, "/", &creds).await, 403);
    // satisfy any: they do; without them the 401 wins over the 403.
    let mut any = outside.to_vec();
    any.push(("satisfy", "any"));
    let f = app_with(&any, &htpasswd()).await;
    assert_eq!(status(&f, "/", &creds).await, 200);
    assert_eq!(status(&f, "/", &[]).await, 401);

    // Inside the allow list: any needs nothing more, all still wants credentials.
    let inside = [
        ("whitelist-source-range", "127.0.0.1/32"),
        ("auth-type", "basic"),
        ("auth-secret", "creds"),
    ];
    let f = app_with(&inside, &htpasswd()).await;
    assert_eq!(status(&f, "/", &[]).await, 401);
    assert_eq!(status(&f, "/", &creds).await, 200);
    let mut any = inside.to_vec();
    any.push(("satisfy", "any"));
    let f = app_with(&any, &htpasswd()).await;
    assert_eq!(status(&f, "/", &[]).await, 200);

    // A denied client with credentials: refused under all, admitted under any (nginx).
    let denied = [
        ("denylist-source-range", "127.0.0.1/32"),
        ("auth-type", "basic"),
        ("auth-secret", "creds"),
    ];
    let f = app_with(&denied, &htpasswd()).await;
    assert_eq!(status(&f, "/", &creds).await, 403);
    let mut any = denied.to_vec();
    any.push(("satisfy", "any"));
    let f = app_with(&any, &htpasswd()).await;
    assert_eq!(status(&f, "/", &creds).await, 200);

    let f = app_with(
        &[
            ("satisfy", "either"),
            ("whitelist-source-range", "127.0.0.1"),
        ],
        "",
    )
    .await;
    fails_closed(&f, "invalid_annotation", "satisfy").await;
}

#[tokio::test]
async fn basic_auth_reads_auth_files_and_auth_maps() {
    let f = app_with(
        &[
            ("auth-type", "basic"),
            ("auth-secret", "creds"),
            ("auth-realm", "Staff only"),
        ],
        &htpasswd(),
    )
    .await;
    let c = client();
    let addr = f.sluice.http_addr;
    let no = get(&c, addr, "app.test", "/", &[]).await;
    assert_eq!(no.status, 401);
    assert_eq!(no.headers["www-authenticate"], "Basic realm=\"Staff only\"");
    let wrong = basic("alice", "wrong");
    assert_eq!(status(&f, "/", &[("authorization", &wrong)]).await, 401);
    let ok = basic("alice", "secret");
    let seen = get(
        &c,
        addr,
        "app.test",
        "/",
        &[("authorization", &ok), ("accept", "application/json")],
    )
    .await;
    assert_eq!(seen.status, 200);
    // ingress-nginx clears Authorization towards the backend.
    assert!(json(&seen.body)["headers"].get("authorization").is_none());

    // auth-map: one user per key, the hash as the value; `ns/name` of the
    // Ingress's own namespace.
    let hash = bcrypt::hash("pw", 4).expect("hash");
    let f = app_with(
        &[
            ("auth-type", "basic"),
            ("auth-secret", "default/users"),
            ("auth-secret-type", "auth-map"),
        ],
        &secret("users", &[("bob", &hash)]),
    )
    .await;
    let bob = basic("bob", "pw");
    assert_eq!(status(&f, "/", &[("authorization", &bob)]).await, 200);
    assert_eq!(status(&f, "/", &[]).await, 401);
}

#[tokio::test]
async fn bad_basic_auth_fails_closed() {
    let f = app_with(
        &[("auth-type", "bearer"), ("auth-secret", "creds")],
        &htpasswd(),
    )
    .await;
    fails_closed(&f, "invalid_annotation", "auth-type").await;

    let f = app_with(&[("auth-type", "basic")], "").await;
    fails_closed(&f, "invalid_annotation", "auth-secret").await;

    let f = app_with(
        &[
            ("auth-type", "basic"),
            ("auth-secret", "creds"),
            ("auth-secret-type", "auth-json"),
        ],
        &htpasswd(),
    )
    .await;
    fails_closed(&f, "invalid_annotation", "auth-secret-type").await;

    // Only known once the Secret is read: the built middleware refuses.
    let f = app_with(&[("auth-type", "basic"), ("auth-secret", "missing")], "").await;
    fails_closed(
        &f,
        "invalid_middleware",
        "auth-secret: secret default/missing not found",
    )
    .await;

    let f = app_with(
        &[("auth-type", "basic"), ("auth-secret", "creds")],
        &secret("creds", &[("users", "alice:{SHA}x")]),
    )
    .await;
    fails_closed(&f, "invalid_middleware", "has no key").await;

    let f = app_with(
        &[("auth-type", "basic"), ("auth-secret", "other/creds")],
        &htpasswd(),
    )
    .await;
    fails_closed(&f, "invalid_middleware", "Ingress's namespace").await;
}

fn md5_hex(parts: &[&str]) -> String {
    let digest = Md5::digest(parts.join(":").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn digest_auth_works_with_curl() {
    let ha1 = md5_hex(&["alice", "staff", "secret"]);
    let f = app_with(
        &[
            ("auth-type", "digest"),
            ("auth-secret", "digest"),
            ("auth-realm", "staff"),
        ],
        &secret("digest", &[("auth", &format!("alice:staff:{ha1}\n"))]),
    )
    .await;
    let addr = f.sluice.http_addr;
    let curl = |password: &'static str| async move {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "--digest", "-u", &format!("alice:{password}")])
            .args([
                "-H",
                "Host: app.test",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .arg(format!("http://{addr}/page?x=1"))
            .output()
            .await
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl("secret").await, "200");
    assert_eq!(curl("wrong").await, "401");
    let challenge = get(&client(), addr, "app.test", "/", &[]).await;
    assert_eq!(challenge.status, 401);
    let value = challenge.headers["www-authenticate"]
        .to_str()
        .expect("ascii");
    assert!(value.starts_with("Digest realm=\"staff\""), "{value}");
}

/// A small auth server. By the request's `authorization` header: `good`
/// allows (with `X-User` and a cookie), `forbidden` is 403, `broken` is 502,
/// anything else 401 with a challenge. Records what it got.
struct AuthServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<(http::Method, http::HeaderMap)>>>,
    calls: Arc<AtomicUsize>,
}

async fn auth_server() -> AuthServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let calls = Arc::new(AtomicUsize::new(0));
    let (s, n) = (seen.clone(), calls.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (s, n) = (s.clone(), n.clone());
            let svc = service_fn(move |req: http::Request<Incoming>| {
                let (s, n) = (s.clone(), n.clone());
                async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    s.lock()
                        .expect("lock")
                        .push((req.method().clone(), req.headers().clone()));
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let resp = match auth {
                        "good" => http::Response::builder()
                            .header("x-user", "alice")
                            .header("set-cookie", "session=abc"),
                        "forbidden" => http::Response::builder().status(403),
                        "broken" => http::Response::builder().status(502),
                        _ => http::Response::builder()
                            .status(401)
                            .header("www-authenticate", "Bearer realm=\"auth\""),
                    };
                    Ok::<_, Infallible>(resp.body(Full::new(Bytes::new())).expect("response"))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    AuthServer { addr, seen, calls }
}

#[tokio::test]
async fn external_auth_asks_the_auth_url_and_relays_its_verdict() {
    let auth = auth_server().await;
    let url = format!("http://{}/check", auth.addr);
    let f = app_with(
        &[
            ("auth-url", &url),
            ("auth-response-headers", "X-User"),
            ("auth-request-redirect", "/after-login"),
        ],
        "",
    )
    .await;
    let c = client();
    let addr = f.sluice.http_addr;
    let ok = get(
        &c,
        addr,
        "app.test",
        "/page?q=1",
        &[
            ("authorization", "good"),
            ("x-user", "mallory"),
            ("accept", "application/json"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let seen = json(&ok.body);
    assert_eq!(seen["headers"]["x-user"], serde_json::json!(["alice"]));
    assert_eq!(ok.headers["set-cookie"], "session=abc");
    {
        let seen = auth.seen.lock().expect("lock");
        let (method, headers) = seen.last().expect("asked");
        assert_eq!(method, http::Method::GET);
        assert_eq!(headers["x-original-url"], "http://app.test/page?q=1");
        assert_eq!(headers["x-original-method"], "GET");
        assert_eq!(headers["x-auth-request-redirect"], "/after-login");
        assert_eq!(headers["x-sent-from"], "nginx-ingress-controller");
        assert_eq!(headers["authorization"], "good");
    }

    let no = get(&c, addr, "app.test", "/", &[]).await;
    assert_eq!(no.status, 401);
    assert_eq!(no.headers["www-authenticate"], "Bearer realm=\"auth\"");
    assert_eq!(
        status(&f, "/", &[("authorization", "forbidden")]).await,
        403
    );
    assert_eq!(status(&f, "/", &[("authorization", "broken")]).await, 500);

    // auth-method, and the default X-Auth-Request-Redirect (the request URI).
    let f = app_with(&[("auth-url", &url), ("auth-method", "POST")], "").await;
    assert_eq!(
        status(&f, "/x?y=1", &[("authorization", "good")]).await,
        200
    );
    {
        let seen = auth.seen.lock().expect("lock");
        let (method, headers) = seen.last().expect("asked");
        assert_eq!(method, http::Method::POST);
        assert_eq!(headers["x-auth-request-redirect"], "/x?y=1");
        assert_eq!(headers["x-original-uri"], "/x?y=1");
    }
}

#[tokio::test]
async fn external_auth_signin_redirects_unauthenticated_clients() {
    let auth = auth_server().await;
    let url = format!("http://{}/check", auth.addr);
    let c = client();
    let f = app_with(
        &[
            ("auth-url", &url),
            ("auth-signin", "https://login.test/start"),
        ],
        "",
    )
    .await;
    let r = get(&c, f.sluice.http_addr, "app.test", "/page?q=1", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.headers["location"],
        "https://login.test/start?rd=http://app.test%2Fpage%3Fq%3D1"
    );
    // A 403 stays a 403.
    assert_eq!(
        status(&f, "/", &[("authorization", "forbidden")]).await,
        403
    );

    let f = app_with(
        &[
            ("auth-url", &url),
            ("auth-signin", "https://login.test/start?app=1"),
            ("auth-signin-redirect-param", "next"),
        ],
        "",
    )
    .await;
    let r = get(&c, f.sluice.http_addr, "app.test", "/a", &[]).await;
    assert_eq!(
        r.headers["location"],
        "https://login.test/start?app=1&next=http://app.test%2Fa"
    );

    // oauth2-proxy's usual form: variables expanded, rd left alone.
    let f = app_with(
        &[
            ("auth-url", &url),
            (
                "auth-signin",
                "https://$host/oauth2/start?rd=$escaped_request_uri",
            ),
        ],
        "",
    )
    .await;
    let r = get(&c, f.sluice.http_addr, "app.test", "/a%20b", &[]).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.headers["location"],
        "https://app.test/oauth2/start?rd=%2Fa%2520b"
    );
}

#[tokio::test]
async fn external_auth_caches_answers_per_key() {
    let auth = auth_server().await;
    let url = format!("http://{}/check", auth.addr);
    let f = app_with(
        &[
            ("auth-url", &url),
            ("auth-cache-key", "$http_authorization"),
            ("auth-cache-duration", "200 1m"),
        ],
        "",
    )
    .await;
    let before = auth.calls.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(status(&f, "/", &[("authorization", "good")]).await, 200);
    }
    assert_eq!(auth.calls.load(Ordering::SeqCst) - before, 1);
    // 401 is not in this duration list: asked every time.
    let before = auth.calls.load(Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(status(&f, "/", &[("authorization", "nope")]).await, 401);
    }
    assert_eq!(auth.calls.load(Ordering::SeqCst) - before, 2);

    // satisfy any on an allow-listed client skips the auth service, and the
    // client still cannot set the auth response headers itself.
    let f = app_with(
        &[
            ("auth-url", &url),
            ("auth-response-headers", "X-User"),
            ("whitelist-source-range", "127.0.0.1"),
            ("satisfy", "any"),
        ],
        "",
    )
    .await;
    let before = auth.calls.load(Ordering::SeqCst);
    let seen = get(
        &client(),
        f.sluice.http_addr,
        "app.test",
        "/",
        &[("x-user", "mallory"), ("accept", "application/json")],
    )
    .await;
    assert_eq!(seen.status, 200);
    assert!(
        json(&seen.body)["headers"].get("x-user").is_none(),
        "{}",
        seen.body
    );
    assert_eq!(auth.calls.load(Ordering::SeqCst), before);

    // Without a key nothing is cached.
    let f = app_with(&[("auth-url", &url)], "").await;
    let before = auth.calls.load(Ordering::SeqCst);
    for _ in 0..2 {
        assert_eq!(status(&f, "/", &[("authorization", "good")]).await, 200);
    }
    assert_eq!(auth.calls.load(Ordering::SeqCst) - before, 2);
}

#[tokio::test]
async fn bad_external_auth_fails_closed_and_configmaps_are_reported() {
    let f = app_with(&[("auth-url", "not a url")], "").await;
    fails_closed(&f, "invalid_annotation", "auth-url").await;
    let f = app_with(
        &[("auth-url", "http://a.test/"), ("auth-method", "FETCH")],
        "",
    )
    .await;
    fails_closed(&f, "invalid_annotation", "auth-method").await;
    let f = app_with(
        &[
            ("auth-url", "http://a.test/"),
            ("auth-response-headers", "X User"),
        ],
        "",
    )
    .await;
    fails_closed(&f, "invalid_annotation", "auth-response-headers").await;
    let f = app_with(
        &[
            ("auth-url", "http://a.test/"),
            ("auth-cache-key", "$remote_user"),
            ("auth-cache-duration", "5m 200"),
        ],
        "",
    )
    .await;
    fails_closed(&f, "invalid_annotation", "auth-cache-duration").await;

    // An unreachable auth service is a 500, never an open door.
    let f = app_with(&[("auth-url", "http://127.0.0.1:1/check")], "").await;
    assert_eq!(status(&f, "/", &[]).await, 500);

    // auth-proxy-set-headers naming a missing ConfigMap: ingress-nginx
    // denies the location (the auth service would miss those headers).
    let auth = auth_server().await;
    let url = format!("http://{}/check", auth.addr);
    let f = with_auth_headers(&url, "default/extra", "").await;
    fails_closed(&f, "invalid_annotation", "auth-proxy-set-headers").await;
    assert_eq!(status(&f, "/", &[("authorization", "good")]).await, 500);
    assert_reported(&f, &["no ConfigMap default/extra"]).await;
}

#[tokio::test]
async fn auth_proxy_set_headers_adds_the_configmaps_headers_to_the_auth_request() {
    let auth = auth_server().await;
    let url = format!("http://{}/check", auth.addr);
    let extra = config_map(
        "default",
        "extra",
        &[
            ("X-Tenant", "blue"),
            ("X-Wanted", "$scheme://$host$request_uri"),
        ],
    );
    let f = with_auth_headers(&url, "extra", &extra).await;
    assert_eq!(
        status(
            &f,
            "/page?x=1",
            &[("authorization", "good"), ("x-tenant", "red")]
        )
        .await,
        200
    );
    {
        let seen = auth.seen.lock().expect("lock");
        let (_, headers) = seen.last().expect("asked");
        assert_eq!(
            headers["x-tenant"], "blue",
            "the ConfigMap's value replaces the client's"
        );
        assert_eq!(headers["x-wanted"], "http://app.test/page?x=1");
    }
    // A header name ingress-nginx rejects denies the location.
    let bad = config_map("default", "extra", &[("X Bad", "v")]);
    let f = with_auth_headers(&url, "default/extra", &bad).await;
    fails_closed(&f, "invalid_annotation", "auth-proxy-set-headers").await;
}

#[tokio::test]
async fn rate_limits_allow_the_burst_then_answer_503() {
    // rps 1 × multiplier 2: 1 + 2 requests at once, then 503.
    let f = app_with(&[("limit-rps", "1"), ("limit-burst-multiplier", "2")], "").await;
    // app_with's readiness probe may have used part of the burst; let it drain.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(status(&f, "/", &[]).await);
    }
    assert_eq!(got, [200, 200, 200, 503, 503]);

    // rpm 2 × multiplier 1: 1 + 2 at once; app_with's readiness probe took
    // one (it drains one per 30 s).
    let f = app_with(&[("limit-rpm", "2"), ("limit-burst-multiplier", "1")], "").await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(status(&f, "/", &[]).await);
    }
    assert_eq!(got, [200, 200, 503, 503]);
    // The default multiplier is 5: rps 1 gives 1 + 5 at once.
    let f = app_with(&[("limit-rps", "1")], "").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut got = Vec::new();
    for _ in 0..7 {
        got.push(status(&f, "/", &[]).await);
    }
    assert_eq!(got, [200, 200, 200, 200, 200, 200, 503]);

    // A reload that leaves the annotations alone keeps the buckets.
    f.manifests.write(
        "c.yaml",
        &annotated_ingress(
            "other",
            "default",
            &[],
            &[("other.test", "/", "Prefix", "web")],
        ),
    );
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the reload", || {
        let c = c.clone();
        async move { get(&c, addr, "other.test", "/", &[]).await.status == 200 }
    })
    .await;
    assert_eq!(
        status(&f, "/", &[]).await,
        503,
        "the reload reset the limit"
    );

    // limit-whitelist exempts listed clients.
    let f = app_with(
        &[
            ("limit-rps", "1"),
            ("limit-burst-multiplier", "0"),
            ("limit-whitelist", "127.0.0.0/8"),
        ],
        "",
    )
    .await;
    for _ in 0..5 {
        assert_eq!(status(&f, "/", &[]).await, 200);
    }
}

#[tokio::test]
async fn connection_limits_cap_requests_in_progress() {
    let f = app_with(&[("limit-connections", "1")], "").await;
    let addr = f.sluice.http_addr;
    let slow = tokio::spawn(async move {
        get(&client(), addr, "app.test", "/?wait=1500ms", &[])
            .await
            .status
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(&f, "/", &[]).await, 503);
    assert_eq!(slow.await.expect("slow request"), 200);
    assert_eq!(status(&f, "/", &[]).await, 200);

    let f = app_with(
        &[("limit-connections", "1"), ("limit-allowlist", "127.0.0.1")],
        "",
    )
    .await;
    let addr = f.sluice.http_addr;
    let slow = tokio::spawn(async move {
        get(&client(), addr, "app.test", "/?wait=1s", &[])
            .await
            .status
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status(&f, "/", &[]).await,
        200,
        "allow-listed clients are not limited"
    );
    assert_eq!(slow.await.expect("slow request"), 200);
}

#[tokio::test]
async fn bad_limits_fail_closed() {
    for (name, value) in [
        ("limit-rps", "ten"),
        ("limit-rpm", "-5"),
        ("limit-connections", "1.5"),
        ("limit-burst-multiplier", "-1"),
        ("limit-whitelist", "10.0.0.0/33"),
    ] {
        let mut pairs = vec![(name, value)];
        if name != "limit-rps" {
            pairs.push(("limit-rps", "10"));
        }
        let f = app_with(&pairs, "").await;
        fails_closed(&f, "invalid_annotation", name).await;
    }
}
