//! basicAuth, digestAuth and forwardAuth through a real sluice: Middleware and
//! Secret objects on disk, the `router.middlewares` annotation, real sockets,
//! whoami backends that echo what they got, curl as an independent Digest
//! client, and a real hyper auth server for forwardAuth.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

const MW: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// sluice with Service `web` and one Ingress per `(name, path, middleware refs)`,
/// plus `extra` (Middleware and Secret objects).
async fn guarded(routes: &[(&str, &str, &str)], extra: &str) -> (Fixture, Backend) {
    let backend = whoami("web").await;
    let m = Manifests::new();
    let mut docs = vec![service("web", &[backend.addr])];
    for (name, path, refs) in routes {
        docs.push(annotated_ingress(
            name,
            "default",
            &[(MW, refs)],
            &[("", path, "Prefix", "web")],
        ));
    }
    docs.push(extra.to_owned());
    m.write("a.yaml", &docs.join("\n"));
    let sluice = start(settings(&m.path())).await;
    let fixture = Fixture {
        backends: Vec::new(),
        manifests: m,
        sluice,
    };
    (fixture, backend)
}

/// A Secret in `default` with `stringData` entries and an optional type.
fn secret(name: &str, type_: Option<&str>, entries: &[(&str, &str)]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\n"
    );
    if let Some(t) = type_ {
        out.push_str(&format!("type: {t}\n"));
    }
    out.push_str("stringData:\n");
    for (key, value) in entries {
        // JSON strings are YAML: exact bytes, no trailing newline added.
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

#[tokio::test]
async fn basic_auth_guards_routes_with_htpasswd_and_basic_auth_secrets() {
    let bcrypt = bcrypt::hash("secret", 4).expect("hash");
    let htpasswd = format!(
        "alice:$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/\nbob:{bcrypt}\ncarol:{{SHA}}5en6G6MezRroT3XKqkdPOmY/BfQ=\n"
    );
    let extra = [
        secret("htpasswd", None, &[("users", &htpasswd)]),
        secret(
            "creds",
            Some("kubernetes.io/basic-auth"),
            &[("username", "dave"), ("password", "pw")],
        ),
        middleware(
            "basic",
            "default",
            "basicAuth:\n  secret: htpasswd\n  realm: staff\n  headerField: X-WebAuth-User\n  removeHeader: true",
        ),
        middleware("typed", "default", "basicAuth:\n  secret: creds"),
    ]
    .join("");
    let (f, _b) = guarded(
        &[
            ("staff", "/staff", "default-basic@kubernetescrd"),
            ("typed", "/typed", "default-typed@kubernetescrd"),
        ],
        &extra,
    )
    .await;
    let (c, addr) = (client(), f.sluice.http_addr);
    let accept = ("accept", "application/json");

    let refused = get(&c, addr, "x", "/staff/a", &[]).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.headers["www-authenticate"], "Basic realm=\"staff\"");
    assert_eq!(refused.body, "401 Unauthorized\n");
    for user in ["alice", "bob", "carol"] {
        let wrong = basic(user, "nope");
        let answer = get(&c, addr, "x", "/staff/a", &[("authorization", &wrong)]).await;
        assert_eq!(answer.status, 401, "{user}");
        let right = basic(user, "secret");
        let answer = get(
            &c,
            addr,
            "x",
            "/staff/a",
            &[("authorization", &right), accept],
        )
        .await;
        assert_eq!(answer.status, 200, "{user}: {}", answer.body);
        let seen = json(&answer.body);
        assert_eq!(seen["headers"]["x-webauth-user"][0], user);
        assert!(
            seen["headers"].get("authorization").is_none(),
            "removeHeader"
        );
    }
    let mallory = basic("mallory", "secret");
    let spoof = [
        ("authorization", mallory.as_str()),
        ("x-webauth-user", "alice"),
    ];
    assert_eq!(get(&c, addr, "x", "/staff/a", &spoof).await.status, 401);

    let typed = basic("dave", "pw");
    let answer = get(
        &c,
        addr,
        "x",
        "/typed",
        &[("authorization", &typed), accept],
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        json(&answer.body)["headers"].get("authorization").is_some(),
        "kept by default"
    );
    let refused = get(&c, addr, "x", "/typed", &[]).await;
    assert_eq!(
        refused.headers["www-authenticate"],
        "Basic realm=\"traefik\""
    );
}

#[tokio::test]
async fn bad_auth_definitions_fail_closed() {
    let extra = [
        middleware(
            "plain",
            "default",
            "basicAuth:\n  users: [\"alice:secret\"]",
        ),
        middleware("nosecret", "default", "digestAuth:\n  secret: missing"),
        middleware(
            "noaddr",
            "default",
            "forwardAuth:\n  trustForwardHeader: true",
        ),
    ]
    .join("");
    let (f, _b) = guarded(
        &[
            ("a", "/a", "default-plain@kubernetescrd"),
            ("b", "/b", "default-nosecret@kubernetescrd"),
            ("c", "/c", "default-noaddr@kubernetescrd"),
        ],
        &extra,
    )
    .await;
    for path in ["/a", "/b", "/c"] {
        let answer = get(&client(), f.sluice.http_addr, "x", path, &[]).await;
        assert_eq!(answer.status, 500, "{path}: {}", answer.body);
    }
    let errors = api_errors(f.sluice.admin_addr).await;
    let text = serde_json::to_string(&errors).expect("json");
    for want in [
        "plain text is not accepted",
        "\\\"missing\\\" not found",
        "requires an address",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

fn md5_hex(parts: &[&str]) -> String {
    let digest = Md5::digest(parts.join(":").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of `key="..."` in a challenge.
fn param<'a>(challenge: &'a str, key: &str) -> &'a str {
    let start = challenge
        .find(&format!("{key}=\""))
        .unwrap_or_else(|| panic!("{key} in {challenge}"))
        + key.len()
        + 2;
    let len = challenge[start..].find('"').expect("closing quote");
    &challenge[start..start + len]
}

#[tokio::test]
async fn digest_auth_works_with_curl_and_refuses_replays() {
    let ha1 = md5_hex(&["alice", "traefik", "secret"]);
    let extra = [
        secret(
            "digest",
            None,
            &[("users", &format!("alice:traefik:{ha1}\n"))],
        ),
        middleware(
            "digest",
            "default",
            "digestAuth:\n  secret: digest\n  headerField: X-WebAuth-User\n  removeHeader: true",
        ),
    ]
    .join("");
    let (f, _b) = guarded(&[("d", "/d", "default-digest@kubernetescrd")], &extra).await;
    let addr = f.sluice.http_addr;

    // curl as an independent RFC 2617 client.
    let curl = |password: &'static str| async move {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "--digest", "-u", &format!("alice:{password}")])
            .args(["-H", "Accept: application/json", "-w", "\n%{http_code}"])
            .arg(format!("http://{addr}/d/page?x=1"))
            .output()
            .await
            .expect("curl runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ok = curl("secret").await;
    assert!(ok.ends_with("\n200"), "{ok}");
    let seen = json(ok.rsplit_once('\n').expect("status line").0);
    assert_eq!(seen["headers"]["x-webauth-user"][0], "alice");
    assert!(seen["headers"].get("authorization").is_none());
    let bad = curl("wrong").await;
    assert!(bad.ends_with("\n401"), "{bad}");

    // By hand: a replayed nonce count gets stale="true".
    let c = client();
    let challenge = get(&c, addr, "x", "/d/a", &[]).await;
    assert_eq!(challenge.status, 401);
    let value = challenge.headers["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        value.starts_with("Digest realm=\"traefik\", nonce=\""),
        "{value}"
    );
    assert!(
        value.ends_with("algorithm=\"MD5\", qop=\"auth\""),
        "{value}"
    );
    let (nonce, opaque) = (param(&value, "nonce"), param(&value, "opaque"));
    let response = md5_hex(&[
        &ha1,
        nonce,
        "00000001",
        "abc",
        "auth",
        &md5_hex(&["GET", "/d/a"]),
    ]);
    let auth = format!(
        "Digest username=\"alice\", realm=\"traefik\", nonce=\"{nonce}\", uri=\"/d/a\", qop=auth, nc=00000001, cnonce=\"abc\", response=\"{response}\", opaque=\"{opaque}\""
    );
    assert_eq!(
        get(&c, addr, "x", "/d/a", &[("authorization", &auth)])
            .await
            .status,
        200
    );
    let replay = get(&c, addr, "x", "/d/a", &[("authorization", &auth)]).await;
    assert_eq!(replay.status, 401);
    let stale = replay.headers["www-authenticate"].to_str().expect("ascii");
    assert!(
        stale.contains(", stale=\"true\", algorithm=\"MD5\""),
        "{stale}"
    );
}

/// A small auth server: `/ok` allows (and names the user), `/deny` refuses.
struct AuthServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<http::HeaderMap>>>,
    connections: Arc<AtomicUsize>,
}

async fn auth_server() -> AuthServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (s, n) = (seen.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            n.fetch_add(1, Ordering::SeqCst);
            let s = s.clone();
            let svc = service_fn(move |req: http::Request<Incoming>| {
                let s = s.clone();
                async move {
                    s.lock().expect("lock").push(req.headers().clone());
                    let resp = match req.uri().path() {
                        "/ok" => http::Response::builder()
                            .header("x-auth-user", "alice")
                            .body(Full::new(Bytes::new())),
                        _ => http::Response::builder()
                            .status(403)
                            .header("x-why", "nope")
                            .body(Full::new(Bytes::from_static(b"go away"))),
                    };
                    Ok::<_, Infallible>(resp.expect("response"))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    AuthServer {
        addr,
        seen,
        connections,
    }
}

#[tokio::test]
async fn forward_auth_asks_the_auth_server_and_relays_refusals() {
    let auth = auth_server().await;
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let dead = closed.local_addr().expect("addr");
    drop(closed);
    let extra = [
        middleware(
            "allow",
            "default",
            &format!(
                "forwardAuth:\n  address: http://{}/ok\n  authResponseHeaders: [X-Auth-User]",
                auth.addr
            ),
        ),
        middleware(
            "deny",
            "default",
            &format!("forwardAuth:\n  address: http://{}/deny", auth.addr),
        ),
        middleware(
            "dead",
            "default",
            &format!("forwardAuth:\n  address: http://{dead}/ok"),
        ),
    ]
    .join("");
    let (f, _b) = guarded(
        &[
            ("allow", "/allow", "default-allow@kubernetescrd"),
            ("deny", "/deny", "default-deny@kubernetescrd"),
            ("dead", "/dead", "default-dead@kubernetescrd"),
        ],
        &extra,
    )
    .await;
    let (c, addr) = (client(), f.sluice.http_addr);
    let headers = [
        ("accept", "application/json"),
        ("x-auth-user", "spoofed"),
        ("cookie", "s=1"),
    ];
    let answer = get(&c, addr, "app.test", "/allow/x?y=1", &headers).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(json(&answer.body)["headers"]["x-auth-user"][0], "alice");
    let asked = auth
        .seen
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("asked");
    assert_eq!(asked["x-forwarded-uri"], "/allow/x?y=1");
    assert_eq!(asked["x-forwarded-host"], "app.test");
    assert_eq!(asked["x-forwarded-method"], "GET");
    assert_eq!(asked["x-forwarded-proto"], "http");
    assert_eq!(asked["x-forwarded-for"], "127.0.0.1");
    assert_eq!(asked["cookie"], "s=1");

    let denied = get(&c, addr, "app.test", "/deny", &[]).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.body, "go away");
    assert_eq!(denied.headers["x-why"], "nope");
    assert!(
        !denied.body.contains("Hostname"),
        "the backend was not called"
    );

    let failed = get(&c, addr, "app.test", "/dead", &[]).await;
    assert_eq!(failed.status, 500);
    assert_eq!(failed.body, "");

    // Keep-alive to the auth server, and the pool survives an unrelated reload.
    for _ in 0..5 {
        assert_eq!(get(&c, addr, "app.test", "/allow", &[]).await.status, 200);
    }
    let before = auth.connections.load(Ordering::SeqCst);
    let reloads = |n: u32| {
        let c = c.clone();
        let admin = f.sluice.admin_addr;
        async move {
            let metrics = get(&c, admin, "admin", "/metrics", &[]).await.body;
            metrics.contains(&format!("sluice_config_reloads_total {n}\n"))
        }
    };
    assert!(reloads(1).await, "one publish so far");
    f.manifests.write(
        "b.yaml",
        &ingress("other", &[("other.test", "/", "Prefix", "web")]),
    );
    wait_for("the table is recompiled", || reloads(2)).await;
    for _ in 0..5 {
        assert_eq!(get(&c, addr, "app.test", "/allow", &[]).await.status, 200);
    }
    assert_eq!(auth.connections.load(Ordering::SeqCst), before);
    assert!(before <= 2, "{before} connections for 7 requests");
}
