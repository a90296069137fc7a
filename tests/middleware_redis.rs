//! `rateLimit.redis` through real sluice instances and a real `redis-server`
//! (Debian's `redis-server` package; `.ci/run` installs it). Each test starts
//! its own server on a free loopback port, without persistence, and kills it
//! when done. Without the binary the tests fail, they do not skip.

mod support;

use support::redis_server::*;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use support::*;

const MW: &str = "traefik.ingress.kubernetes.io/router.middlewares";

/// Manifests: Service `web`, Ingress `limited` on `/` using Middleware `rl`
/// (`rl_spec` under `spec:`), plus `extra`.
fn manifests(backend: SocketAddr, rl_spec: &str, extra: &str) -> Manifests {
    let m = Manifests::new();
    let docs = [
        service("web", &[backend]),
        annotated_ingress(
            "limited",
            "default",
            &[(MW, "default-rl@kubernetescrd")],
            &[("", "/", "Prefix", "web")],
        ),
        middleware("rl", "default", rl_spec),
        extra.to_owned(),
    ];
    m.write("a.yaml", &docs.join("\n"));
    m
}

/// 5 per minute, burst 5, per `X-Key` header, in the Redis at `port`.
fn shared_limit(port: u16, more: &str) -> String {
    format!(
        "rateLimit:\n  average: 5\n  period: 1m\n  burst: 5\n  sourceCriterion:\n    requestHeaderName: X-Key\n  redis:\n    endpoints: [\"127.0.0.1:{port}\"]\n    readTimeout: 500ms\n    dialTimeout: 1s\n{more}"
    )
}

/// GET / with `X-Key: key`; the status, within 3 s (a hang fails the test).
async fn hit(addr: SocketAddr, key: &str) -> u16 {
    let c = client();
    tokio::time::timeout(
        Duration::from_secs(3),
        get(&c, addr, "x", "/", &[("x-key", key)]),
    )
    .await
    .expect("answered within 3 s")
    .status
}

/// Sends `n` requests with `key`, alternating over `instances`; counts the 200s
/// (every other answer must be a 429).
async fn allowed(instances: &[SocketAddr], key: &str, n: usize) -> usize {
    let mut ok = 0;
    for i in 0..n {
        let status = hit(instances[i % instances.len()], key).await;
        assert!(status == 200 || status == 429, "request {i}: {status}");
        ok += usize::from(status == 200);
    }
    ok
}

async fn fallbacks(admin: SocketAddr) -> u64 {
    let metrics = get(&client(), admin, "admin", "/metrics", &[]).await.body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("sluice_rate_limit_redis_fallbacks_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no fallback counter in /metrics:\n{metrics}"))
}

#[tokio::test]
async fn instances_share_one_limit_and_survive_a_redis_outage() {
    let mut redis = RedisServer::start(None, None).await;
    let backend = whoami("web").await;
    let m = manifests(backend.addr, &shared_limit(redis.port, ""), "");
    let a = start(settings(&m.path())).await;
    let b = start(settings(&m.path())).await;
    let both = [a.http_addr, b.http_addr];

    // (a) One limit between the two instances: 5 of 10, not 5 each.
    assert_eq!(allowed(&both, "a", 10).await, 5);
    assert!(redis.exists("sluice:rate:default/rl:=a", None).await);
    // Other sources have their own buckets.
    assert_eq!(allowed(&both, "a2", 4).await, 4);

    // (b) Redis gone: answered at once under each instance's own limit.
    redis.kill();
    let before = fallbacks(a.admin_addr).await;
    let started = std::time::Instant::now();
    assert_eq!(allowed(&[a.http_addr], "b", 7).await, 5);
    assert_eq!(allowed(&[b.http_addr], "b", 7).await, 5);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let after = fallbacks(a.admin_addr).await;
    assert!(after >= before + 14, "fallbacks {before} -> {after}");

    // (c) Redis back on the same port: both instances return to it (within
    // the reconnect backoff) and share one limit again.
    let redis = RedisServer::start(Some(redis.port), None).await;
    let mut probe = 0;
    wait_for("both instances to use Redis again", || {
        probe += 1;
        let key = format!("probe{probe}");
        let redis = &redis;
        async move {
            hit(a.http_addr, &format!("{key}a")).await;
            hit(b.http_addr, &format!("{key}b")).await;
            redis
                .exists(&format!("sluice:rate:default/rl:={key}a"), None)
                .await
                && redis
                    .exists(&format!("sluice:rate:default/rl:={key}b"), None)
                    .await
        }
    })
    .await;
    assert_eq!(allowed(&both, "c", 10).await, 5);
    drop(backend);
}

fn secret(name: &str, data: &[(&str, &str)]) -> String {
    let mut out = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n"
    );
    for (k, v) in data {
        let v = base64::engine::general_purpose::STANDARD.encode(v);
        out.push_str(&format!("  {k}: {v}\n"));
    }
    out
}

#[tokio::test]
async fn the_secret_authenticates() {
    let redis = RedisServer::start(None, Some("s3cret")).await;
    let backend = whoami("web").await;
    let with = |secret_spec: String| {
        manifests(
            backend.addr,
            &shared_limit(redis.port, "    secret: redis-auth\n"),
            &secret_spec,
        )
    };

    // Password alone, then the `default` ACL user with it: Redis is used.
    for data in [
        vec![("password", "s3cret")],
        vec![("username", "default"), ("password", "s3cret")],
    ] {
        let m = with(secret("redis-auth", &data));
        let sluice = start(settings(&m.path())).await;
        let key = format!("auth{}", data.len());
        assert_eq!(allowed(&[sluice.http_addr], &key, 7).await, 5);
        assert!(
            redis
                .exists(&format!("sluice:rate:default/rl:={key}"), Some("s3cret"))
                .await,
            "{data:?}: the bucket is not in Redis"
        );
    }

    // A wrong password: refused by Redis, so limited locally (and counted).
    let m = with(secret("redis-auth", &[("password", "wrong")]));
    let sluice = start(settings(&m.path())).await;
    let before = fallbacks(sluice.admin_addr).await;
    assert_eq!(allowed(&[sluice.http_addr], "wrong", 7).await, 5);
    assert!(
        !redis
            .exists("sluice:rate:default/rl:=wrong", Some("s3cret"))
            .await
    );
    assert!(fallbacks(sluice.admin_addr).await > before);
}

#[tokio::test]
async fn invalid_redis_options_fail_closed_with_a_diagnostic() {
    let backend = whoami("web").await;
    for (redis_spec, reason) in [
        ("    endpoints: [\"no-port\"]\n", "no-port"),
        ("    endpoints: [\"127.0.0.1:99999\"]\n", "port"),
        ("    readTimeout: soon\n", "soon"),
        ("    dialTimeout: -1s\n", "-1s"),
        ("    poolSize: -2\n", "poolSize"),
        ("    secret: absent\n", "absent"),
        ("    colour: blue\n", "colour"),
    ] {
        let spec = format!("rateLimit:\n  average: 5\n  burst: 5\n  redis:\n{redis_spec}");
        let m = manifests(backend.addr, &spec, "");
        let sluice = start(settings(&m.path())).await;
        let answer = get(&client(), sluice.http_addr, "x", "/", &[]).await;
        assert_eq!(answer.status, 500, "{redis_spec}: {}", answer.body);
        let errors = api_errors(sluice.admin_addr).await;
        let mw: Vec<_> = errors
            .iter()
            .filter(|e| e["kind"] == "invalid_middleware")
            .collect();
        assert_eq!(mw.len(), 1, "{redis_spec}: {errors:?}");
        let message = mw[0]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(reason) && message.contains("rateLimit"),
            "{redis_spec}: {message}"
        );
    }
}

#[tokio::test]
async fn tls_with_a_ca_secret_or_without_verification() {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let dir = tempfile::tempdir().expect("dir");
    let (cert_file, key_file) = (dir.path().join("redis.crt"), dir.path().join("redis.key"));
    std::fs::write(&cert_file, cert.pem()).expect("write cert");
    std::fs::write(&key_file, key.serialize_pem()).expect("write key");
    let redis = RedisServer::start_tls(&cert_file, &key_file).await;
    let backend = whoami("web").await;
    let ca_secret = secret("redis-ca", &[("ca.crt", &cert.pem())]);

    for (n, (tls, shared)) in [
        // Verified against the CA from a Secret, or from a file: one shared limit.
        ("    tls:\n      caSecret: redis-ca\n".to_owned(), true),
        (
            format!("    tls:\n      ca: {}\n", cert_file.display()),
            true,
        ),
        // Not verified at all: shared too.
        (
            "    tls:\n      insecureSkipVerify: true\n".to_owned(),
            true,
        ),
        // Verified against the system roots: the handshake fails, each
        // instance limits on its own.
        ("    tls: {}\n".to_owned(), false),
    ]
    .into_iter()
    .enumerate()
    {
        let m = manifests(backend.addr, &shared_limit(redis.port, &tls), &ca_secret);
        let a = start(settings(&m.path())).await;
        let b = start(settings(&m.path())).await;
        let got = allowed(&[a.http_addr, b.http_addr], &format!("tls{n}"), 10).await;
        assert_eq!(got, if shared { 5 } else { 10 }, "{tls}");
    }
}

#[tokio::test]
async fn the_store_api_takes_tokens_atomically_in_redis() {
    use sluice::middleware::redis_store::{RedisOptions, RedisStore};
    let redis = RedisServer::start(None, None).await;
    let store = RedisStore::new(RedisOptions {
        endpoints: vec![redis.addr().to_string()],
        ..RedisOptions::default()
    })
    .expect("store");
    // 1 per second, burst 2, no waiting (nginx's nodelay).
    for _ in 0..2 {
        let d = store.allow(b"api:k", 1.0, 2.0).await.expect("answered");
        assert!(d.allowed && d.wait.is_zero(), "{d:?}");
    }
    let refused = store.allow(b"api:k", 1.0, 2.0).await.expect("answered");
    assert!(!refused.allowed, "{refused:?}");
    assert!(
        refused.wait > Duration::from_millis(900) && refused.wait <= Duration::from_secs(1),
        "{refused:?}"
    );
    // The server forgot the script: EVAL brings it back transparently.
    let mut conn = redis.connection(None).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("flush");
    let d = store.allow(b"api:other", 1.0, 1.0).await.expect("answered");
    assert!(d.allowed);
    // A token within max_delay is reserved: allowed, with the wait to honour.
    let d = store
        .allow_with_delay(b"api:slow", 10.0, 1.0, Duration::from_millis(200))
        .await
        .expect("answered");
    assert!(d.allowed && d.wait.is_zero());
    let d = store
        .allow_with_delay(b"api:slow", 10.0, 1.0, Duration::from_millis(200))
        .await
        .expect("answered");
    assert!(d.allowed && d.wait > Duration::from_millis(50), "{d:?}");
    // The key expires once the bucket would be full again.
    let ttl: i64 = redis::cmd("TTL")
        .arg("api:k")
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!((1..=3).contains(&ttl), "{ttl}");
}
