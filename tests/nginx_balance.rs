//! ingress-nginx's `upstream-hash-by` and `load-balance` through a real
//! sluice: several real whoami backends behind one Service, real HTTP
//! clients, a real slow backend for EWMA, and the diagnostics from the admin
//! API.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use support::nginx::{diagnostics, prefixed, str_pairs, wait_for_status, P};
use support::*;
use tokio::net::TcpListener;

const HOST: &str = "lb.test";

/// Several endpoints of one Service `web` behind one annotated Ingress.
struct Pool {
    /// The endpoints' addresses, by name (`b0`, `b1`...).
    endpoints: Vec<(String, SocketAddr)>,
    /// The whoami backends, the manifests and sluice.
    f: Fixture,
    annotations: Vec<(String, String)>,
}

/// The manifests: Service `web` with one EndpointSlice per endpoint in
/// `endpoints`, and Ingress `balanced` (host `lb.test`, Prefix `/`) carrying
/// the ingress-nginx `annotations`.
fn manifests(endpoints: &[SocketAddr], annotations: &[(String, String)]) -> String {
    format!(
        "{}\n{}",
        service("web", endpoints),
        annotated_ingress(
            "balanced",
            "default",
            &str_pairs(annotations),
            &[(HOST, "/", "Prefix", "web")]
        )
    )
}

impl Pool {
    /// Starts `n` whoami endpoints (plus `extra`, already running) and sluice
    /// with the ingress-nginx `nginx` annotations (names without the prefix).
    async fn start(n: usize, extra: &[(&str, SocketAddr)], nginx: &[(&str, &str)]) -> Self {
        let mut backends = Vec::new();
        let mut endpoints = Vec::new();
        for i in 0..n {
            let name = format!("b{i}");
            let backend = whoami(&name).await;
            endpoints.push((name, backend.addr));
            backends.push(backend);
        }
        for (name, addr) in extra {
            endpoints.push(((*name).to_owned(), *addr));
        }
        let annotations = prefixed(nginx);
        let m = Manifests::new();
        let addrs: Vec<SocketAddr> = endpoints.iter().map(|(_, a)| *a).collect();
        m.write("a.yaml", &manifests(&addrs, &annotations));
        let sluice = start(settings(&m.path())).await;
        let pool = Self {
            endpoints,
            f: Fixture {
                backends,
                manifests: m,
                sluice,
            },
            annotations,
        };
        wait_for_status(&pool.f, "the annotated Ingress", HOST, "/", |s| s == 200).await;
        pool
    }

    /// Keeps only the endpoints named in `names` in the Service.
    fn keep(&self, names: &[&str]) {
        let addrs: Vec<SocketAddr> = self
            .endpoints
            .iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, a)| *a)
            .collect();
        self.f
            .manifests
            .write("a.yaml", &manifests(&addrs, &self.annotations));
    }

    /// Which endpoint served GET `path` with `headers`.
    async fn served_by(&self, path: &str, headers: &[(&str, &str)]) -> String {
        let answer = get(&client(), self.f.sluice.http_addr, HOST, path, headers).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        hostname(&answer.body)
    }

    /// Waits (as `what`) until GET `path` is served by an endpoint whose name
    /// `wanted` accepts.
    async fn wait_for_endpoint(&self, what: &str, path: &str, wanted: impl Fn(&str) -> bool) {
        let wanted = &wanted;
        wait_for(
            what,
            || async move { wanted(&self.served_by(path, &[]).await) },
        )
        .await;
    }

    /// The names of all endpoints.
    fn names(&self) -> BTreeSet<String> {
        self.endpoints.iter().map(|(n, _)| n.clone()).collect()
    }
}

/// The `Hostname:` line of a whoami text report.
fn hostname(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("Hostname: "))
        .unwrap_or_else(|| panic!("no Hostname in {body:?}"))
        .to_owned()
}

/// A backend that answers every request after `delay`, reporting `name`
/// like whoami does.
async fn slow_backend(name: &'static str, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = service_fn(move |_req| async move {
                    tokio::time::sleep(delay).await;
                    Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(format!(
                        "Hostname: {name}\n"
                    )))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// Each of `keys` (a path and headers) sent `times` times: the endpoint
/// that served it, asserting it was always the same one.
async fn mapping(
    pool: &Pool,
    keys: &[(String, Vec<(String, String)>)],
    times: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, headers) in keys {
        let headers = str_pairs(headers);
        let first = pool.served_by(path, &headers).await;
        for _ in 1..times {
            assert_eq!(
                pool.served_by(path, &headers).await,
                first,
                "{path} {headers:?} moved"
            );
        }
        out.push(first);
    }
    out
}

fn paths(n: usize) -> Vec<(String, Vec<(String, String)>)> {
    (0..n)
        .map(|i| (format!("/item/{i}?page={}", i % 3), Vec::new()))
        .collect()
}

#[tokio::test]
async fn request_uri_hashing_keeps_each_uri_on_one_endpoint_and_spreads_uris() {
    let pool = Pool::start(4, &[], &[("upstream-hash-by", "$request_uri")]).await;
    let served = mapping(&pool, &paths(40), 3).await;
    let used: BTreeSet<String> = served.iter().cloned().collect();
    assert_eq!(used, pool.names(), "40 URIs spread over every endpoint");
    // The query is part of $request_uri: the same path with other queries
    // goes to other endpoints too.
    let mut by_query = BTreeSet::new();
    for q in 0..30 {
        by_query.insert(pool.served_by(&format!("/same?q={q}"), &[]).await);
    }
    assert!(by_query.len() > 1, "{by_query:?}");
}

#[tokio::test]
async fn header_cookie_and_argument_keys_with_literal_text() {
    for (expr, header) in [
        ("$http_x_user", "x-user"),
        ("prefix-$http_x_user", "x-user"),
        ("$cookie_session", "cookie"),
        ("${arg_user}-text", ""),
    ] {
        let pool = Pool::start(3, &[], &[("upstream-hash-by", expr)]).await;
        let keys: Vec<(String, Vec<(String, String)>)> = (0..30)
            .map(|i| {
                let user = format!("user-{i}");
                match header {
                    "" => (format!("/?user={user}"), vec![]),
                    "cookie" => (
                        // The path changes, the key does not.
                        format!("/{}", i % 5),
                        vec![("cookie".into(), format!("a=1; session={user}"))],
                    ),
                    name => (format!("/{}", i % 5), vec![(name.into(), user)]),
                }
            })
            .collect();
        let served = mapping(&pool, &keys, 3).await;
        let used: BTreeSet<String> = served.iter().cloned().collect();
        assert_eq!(
            used,
            pool.names(),
            "{expr}: keys spread over every endpoint"
        );
        // Only the key matters: other paths with the same key stay put.
        let (path, headers) = &keys[7];
        let headers = str_pairs(headers);
        let other_path = if header.is_empty() {
            format!("/elsewhere{path}")
        } else {
            "/elsewhere".to_owned()
        };
        assert_eq!(
            pool.served_by(&other_path, &headers).await,
            served[7],
            "{expr}"
        );
    }
}

#[tokio::test]
async fn remote_addr_hashing_sends_one_client_to_one_endpoint() {
    let pool = Pool::start(3, &[], &[("upstream-hash-by", "$remote_addr")]).await;
    let served: BTreeSet<String> = mapping(&pool, &paths(15), 2).await.into_iter().collect();
    assert_eq!(
        served.len(),
        1,
        "every request comes from 127.0.0.1: {served:?}"
    );
}

#[tokio::test]
async fn removing_an_endpoint_moves_only_its_keys_and_adding_it_back_restores_them() {
    let pool = Pool::start(4, &[], &[("upstream-hash-by", "$request_uri")]).await;
    let keys = paths(60);
    let before = mapping(&pool, &keys, 1).await;
    let gone = "b2";
    assert!(before.iter().any(|b| b == gone), "{before:?}");
    pool.keep(&["b0", "b1", "b3"]);
    // Wait until the endpoint change is in.
    let first_on_gone = keys[before.iter().position(|b| b == gone).expect("a key on b2")]
        .0
        .clone();
    pool.wait_for_endpoint("b2 to leave", &first_on_gone, |b| b != "b2")
        .await;
    let after = mapping(&pool, &keys, 2).await;
    for ((key, was), is) in keys.iter().zip(&before).zip(&after) {
        if was == gone {
            assert_ne!(is, gone, "{}", key.0);
        } else {
            assert_eq!(
                is, was,
                "{} moved from {was} to {is} though {was} stayed",
                key.0
            );
        }
    }
    let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    let on_gone = before.iter().filter(|b| *b == gone).count();
    assert_eq!(moved, on_gone);
    // The keys of b2 went to several endpoints, not all to one neighbour.
    let heirs: BTreeSet<&String> = before
        .iter()
        .zip(&after)
        .filter(|(a, _)| *a == gone)
        .map(|(_, b)| b)
        .collect();
    assert!(
        on_gone < 4 || heirs.len() > 1,
        "{on_gone} keys all went to {heirs:?}"
    );

    pool.keep(&["b0", "b1", "b2", "b3"]);
    pool.wait_for_endpoint("b2 to come back", &first_on_gone, |b| b == "b2")
        .await;
    assert_eq!(
        mapping(&pool, &keys, 1).await,
        before,
        "the ring is the same again"
    );
}

#[tokio::test]
async fn subsets_keep_a_key_within_its_subset() {
    let pool = Pool::start(
        4,
        &[],
        &[
            ("upstream-hash-by", "$request_uri"),
            ("upstream-hash-by-subset", "true"),
            ("upstream-hash-by-subset-size", "2"),
        ],
    )
    .await;
    let mut per_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, _) in paths(12) {
        for _ in 0..24 {
            let served = pool.served_by(&path, &[]).await;
            per_key.entry(path.clone()).or_default().insert(served);
        }
    }
    let mut all = BTreeSet::new();
    for (path, endpoints) in &per_key {
        assert_eq!(
            endpoints.len(),
            2,
            "{path} spreads over its subset of 2: {endpoints:?}"
        );
        all.extend(endpoints.iter().cloned());
    }
    assert_eq!(all, pool.names());
}

#[tokio::test]
async fn a_sticky_cookie_wins_over_hashing() {
    let pool = Pool::start(
        3,
        &[],
        &[("upstream-hash-by", "$request_uri"), ("affinity", "cookie")],
    )
    .await;
    let c = client();
    let first = get(&c, pool.f.sluice.http_addr, HOST, "/a", &[]).await;
    let pinned_to = hostname(&first.body);
    let cookie = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("an affinity cookie")
        .to_owned();
    assert!(cookie.starts_with("INGRESSCOOKIE="), "{cookie}");
    // A URI that hashes elsewhere.
    let mut elsewhere = None;
    for i in 0..60 {
        let path = format!("/other/{i}");
        if pool.served_by(&path, &[]).await != pinned_to {
            elsewhere = Some(path);
            break;
        }
    }
    let elsewhere = elsewhere.expect("some URI hashes to another endpoint");
    for _ in 0..5 {
        assert_eq!(
            pool.served_by(&elsewhere, &[("cookie", cookie.as_str())])
                .await,
            pinned_to,
            "the cookie's endpoint wins over the hash"
        );
    }
}

/// The balancing policy `/api/routes` shows for the Ingress's route.
async fn load_balance(pool: &Pool) -> String {
    let routes = get(
        &client(),
        pool.f.sluice.admin_addr,
        "admin",
        "/api/routes",
        &[],
    )
    .await;
    let routes: serde_json::Value = serde_json::from_str(&routes.body).expect("routes JSON");
    routes[0]["load_balance"]
        .as_str()
        .unwrap_or_else(|| panic!("no load_balance in {routes}"))
        .to_owned()
}

/// How many of `n` sequential requests (to distinct URIs) `slow` served.
async fn share_of(pool: &Pool, slow: &str, n: usize) -> usize {
    let mut count = 0;
    for i in 0..n {
        if pool.served_by(&format!("/r/{i}"), &[]).await == slow {
            count += 1;
        }
    }
    count
}

#[tokio::test]
async fn ewma_sends_traffic_away_from_a_slow_endpoint() {
    let slow = slow_backend("slow", Duration::from_millis(150)).await;
    let pool = Pool::start(3, &[("slow", slow)], &[("load-balance", "ewma")]).await;
    let n = 60;
    let to_slow = share_of(&pool, "slow", n).await;
    // Round-robin would send it a quarter (15); EWMA sends it a request now
    // and then to measure it (first, while unmeasured, then when its score
    // has decayed).
    assert!(to_slow <= 6, "the slow endpoint got {to_slow} of {n}");
    assert_eq!(load_balance(&pool).await, "ewma");

    // The same pool round-robin: the slow endpoint gets its quarter.
    let slow = slow_backend("slow", Duration::from_millis(150)).await;
    let pool = Pool::start(3, &[("slow", slow)], &[("load-balance", "round_robin")]).await;
    let to_slow = share_of(&pool, "slow", 20).await;
    assert_eq!(to_slow, 5, "round-robin over 4 endpoints");
}

#[tokio::test]
async fn hashing_wins_over_ewma() {
    let pool = Pool::start(
        3,
        &[],
        &[
            ("upstream-hash-by", "$request_uri"),
            ("load-balance", "ewma"),
        ],
    )
    .await;
    let served: BTreeSet<String> = mapping(&pool, &paths(30), 3).await.into_iter().collect();
    assert_eq!(served, pool.names());
    assert_eq!(load_balance(&pool).await, "chash $request_uri");
}

#[tokio::test]
async fn bad_values_are_reported_and_the_route_balances_round_robin() {
    for (annotation, value, reason) in [
        ("upstream-hash-by", "$upstream_addr", "$upstream_addr"),
        ("upstream-hash-by", "$request_uri/x", "'/'"),
        ("upstream-hash-by", "${request_uri", "not closed"),
        ("load-balance", "least_conn", "least_conn"),
        ("load-balance", "EWMA", "EWMA"),
    ] {
        let pool = Pool::start(2, &[], &[(annotation, value)]).await;
        let d = diagnostics(&pool.f).await;
        assert!(
            d.contains("invalid_annotation")
                && d.contains(&format!("{P}{annotation}"))
                && d.contains(reason),
            "{annotation}: {value}: {d}"
        );
        // Served, round-robin: one URI reaches both endpoints.
        let mut seen = BTreeSet::new();
        for _ in 0..4 {
            seen.insert(pool.served_by("/same", &[]).await);
        }
        assert_eq!(seen, pool.names(), "{annotation}: {value}");
    }
}
