//! ingress-nginx annotations through a real sluice: real whoami backends,
//! real HTTP clients, and the diagnostics read from the admin API.

mod support;

use support::nginx::*;

use support::*;

/// Starts sluice with one Service `web` and one Ingress (host `app.test`,
/// Prefix `/`) carrying the ingress-nginx annotations `nginx` (names without
/// the prefix).
async fn app_with(nginx: &[(&str, &str)]) -> Fixture {
    nginx_app(nginx, &[], &[("app.test", "/", "Prefix", "web")], "", "/").await
}

#[tokio::test]
async fn allow_lists_admit_listed_clients_only_and_bad_values_fail_closed() {
    let c = client();
    let f = app_with(&[("whitelist-source-range", "127.0.0.1/32")]).await;
    assert_eq!(
        get(&c, f.sluice.http_addr, "app.test", "/", &[])
            .await
            .status,
        200
    );

    let f = app_with(&[("allowlist-source-range", "10.0.0.0/8,192.168.0.0/16")]).await;
    assert_eq!(
        get(&c, f.sluice.http_addr, "app.test", "/", &[])
            .await
            .status,
        403
    );

    let f = app_with(&[("whitelist-source-range", "10.0.0.0/40")]).await;
    assert_eq!(
        get(&c, f.sluice.http_addr, "app.test", "/", &[])
            .await
            .status,
        500,
        "an allow-list that cannot be read does not open the route"
    );
    let d = diagnostics(&f).await;
    assert!(
        d.contains("invalid_annotation") && d.contains("whitelist-source-range"),
        "{d}"
    );
}

#[tokio::test]
async fn use_regex_turns_every_path_of_the_host_into_case_insensitive_prefix_regexes() {
    let f = fixture(&["web", "api"], &[], |_| {}).await;
    let regex = format!("{P}use-regex");
    f.manifests.write(
        "b.yaml",
        &[
            annotated_ingress(
                "regexed",
                "default",
                &[(regex.as_str(), "true")],
                &[
                    ("app.test", "/api/v[0-9]+", "ImplementationSpecific", "api"),
                    ("app.test", "/api/v[0-9]+/admin.*", "Prefix", "web"),
                    ("app.test", "/exact", "Exact", "web"),
                ],
            ),
            // No annotation: its paths on the same host become regexes too, as in nginx.
            annotated_ingress(
                "plain",
                "default",
                &[],
                &[("app.test", "/static", "Prefix", "web")],
            ),
            annotated_ingress(
                "elsewhere",
                "default",
                &[],
                &[("other.test", "/static", "Prefix", "web")],
            ),
        ]
        .concat(),
    );
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the regex routes", || {
        let c = c.clone();
        async move { get(&c, addr, "app.test", "/api/v2", &[]).await.status == 200 }
    })
    .await;
    let backend_of = |path: &'static str, host: &'static str| {
        let c = c.clone();
        async move {
            let answer = get(&c, addr, host, path, &[("accept", "application/json")]).await;
            if answer.status != 200 {
                return format!("{}", answer.status);
            }
            let v: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
            v["name"].as_str().unwrap_or("?").to_owned()
        }
    };
    assert_eq!(
        backend_of("/api/v2/users", "app.test").await,
        "api",
        "a prefix match"
    );
    assert_eq!(
        backend_of("/API/V12", "app.test").await,
        "api",
        "case-insensitive"
    );
    assert_eq!(
        backend_of("/api/v3/administer", "app.test").await,
        "web",
        "the longer regex wins"
    );
    assert_eq!(backend_of("/api/vx", "app.test").await, "404");
    assert_eq!(
        backend_of("/STATIC/app.js", "app.test").await,
        "web",
        "spread to the host's other Ingresses"
    );
    assert_eq!(
        backend_of("/STATIC/app.js", "other.test").await,
        "404",
        "other hosts keep Prefix semantics"
    );
    assert_eq!(backend_of("/exact", "app.test").await, "web");
    // ingress-nginx's buildLocation makes every path type a regex, Exact included.
    assert_eq!(
        backend_of("/EXACT/more", "app.test").await,
        "web",
        "Exact becomes a prefix regex too"
    );
}

#[tokio::test]
async fn cookie_affinity_pins_a_client_to_one_endpoint_with_nginxs_cookie() {
    let one = whoami("one").await;
    let two = whoami("two").await;
    let f = fixture(&[], &[], |_| {}).await;
    let affinity = format!("{P}affinity");
    let samesite = format!("{P}session-cookie-samesite");
    f.manifests.write(
        "b.yaml",
        &[
            service("pool", &[one.addr, two.addr]),
            annotated_ingress(
                "sticky",
                "default",
                &[(affinity.as_str(), "cookie"), (samesite.as_str(), "Lax")],
                &[("app.test", "/shop", "Prefix", "pool")],
            ),
        ]
        .concat(),
    );
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the sticky route", || {
        let c = c.clone();
        async move { get(&c, addr, "app.test", "/shop", &[]).await.status == 200 }
    })
    .await;
    let first = get(
        &c,
        addr,
        "app.test",
        "/shop/cart",
        &[("accept", "application/json")],
    )
    .await;
    let set = first
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie")
        .to_owned();
    assert!(set.starts_with("INGRESSCOOKIE="), "{set}");
    assert!(
        set.contains("Path=/shop") && set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("name=value").to_owned();
    let pinned: serde_json::Value = serde_json::from_str(&first.body).expect("json");
    for _ in 0..6 {
        let next = get(
            &c,
            addr,
            "app.test",
            "/shop/cart",
            &[("accept", "application/json"), ("cookie", &cookie)],
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&next.body).expect("json");
        assert_eq!(v["name"], pinned["name"], "the cookie pins the endpoint");
    }
}

#[tokio::test]
async fn server_alias_serves_the_ingress_on_more_hosts() {
    let f = app_with(&[("server-alias", "alias.test, www.alias.test, bad..alias")]).await;
    let c = client();
    for host in ["app.test", "alias.test", "www.alias.test"] {
        assert_eq!(
            get(&c, f.sluice.http_addr, host, "/x", &[]).await.status,
            200,
            "{host}"
        );
    }
    assert_eq!(
        get(&c, f.sluice.http_addr, "other.test", "/x", &[])
            .await
            .status,
        404
    );
    let d = diagnostics(&f).await;
    assert!(
        d.contains("server-alias") && d.contains("bad..alias"),
        "{d}"
    );
}

#[tokio::test]
async fn proxy_read_timeout_bounds_the_wait_for_the_backends_answer() {
    let f = app_with(&[("proxy-read-timeout", "1"), ("proxy-connect-timeout", "2")]).await;
    let c = client();
    let started = std::time::Instant::now();
    let slow = get(&c, f.sluice.http_addr, "app.test", "/?wait=3s", &[]).await;
    assert_eq!(slow.status, 504);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        get(&c, f.sluice.http_addr, "app.test", "/?wait=200ms", &[])
            .await
            .status,
        200
    );

    let f = app_with(&[("proxy-read-timeout", "soon")]).await;
    assert_eq!(
        get(&c, f.sluice.http_addr, "app.test", "/", &[])
            .await
            .status,
        200,
        "a bad value is ignored"
    );
    let d = diagnostics(&f).await;
    assert!(d.contains("proxy-read-timeout"), "{d}");
}

#[tokio::test]
async fn canary_ingresses_take_requests_by_header_cookie_and_weight_in_nginxs_order() {
    let f = fixture(&["stable", "fresh"], &[], |_| {}).await;
    let canary = |weight: &str, extra: &[(&str, &str)]| {
        let mut pairs: Vec<(String, String)> = vec![
            (format!("{P}canary"), "true".to_owned()),
            (format!("{P}canary-weight"), weight.to_owned()),
        ];
        pairs.extend(
            extra
                .iter()
                .map(|(k, v)| (format!("{P}{k}"), (*v).to_owned())),
        );
        pairs
    };
    let write = |pairs: Vec<(String, String)>| {
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        f.manifests.write(
            "b.yaml",
            &[
                annotated_ingress(
                    "main",
                    "default",
                    &[],
                    &[("shop.test", "/", "Prefix", "stable")],
                ),
                annotated_ingress(
                    "main-canary",
                    "default",
                    &refs,
                    &[("shop.test", "/", "Prefix", "fresh")],
                ),
            ]
            .concat(),
        );
    };
    let c = client();
    let addr = f.sluice.http_addr;
    let served_by = |headers: Vec<(&'static str, &'static str)>| {
        let c = c.clone();
        async move {
            let mut all = vec![("accept", "application/json")];
            all.extend(headers);
            let answer = get(&c, addr, "shop.test", "/", &all).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            let v: serde_json::Value = serde_json::from_str(&answer.body).expect("json");
            v["name"].as_str().unwrap_or("?").to_owned()
        }
    };
    write(canary(
        "0",
        &[
            ("canary-by-header", "X-Canary"),
            ("canary-by-cookie", "use_canary"),
        ],
    ));
    wait_for("the main route", || {
        let c = c.clone();
        async move { get(&c, addr, "shop.test", "/", &[]).await.status == 200 }
    })
    .await;
    // The canary Ingress does not conflict with the main one and makes no route of its own.
    let d = diagnostics(&f).await;
    assert!(!d.contains("conflict"), "{d}");
    assert_eq!(served_by(vec![]).await, "stable", "weight 0");
    assert_eq!(served_by(vec![("x-canary", "always")]).await, "fresh");
    assert_eq!(
        served_by(vec![("x-canary", "never"), ("cookie", "use_canary=always")]).await,
        "stable",
        "the header wins over the cookie"
    );
    assert_eq!(
        served_by(vec![("cookie", "a=b; use_canary=always")]).await,
        "fresh"
    );
    assert_eq!(
        served_by(vec![("x-canary", "other"), ("cookie", "use_canary=never")]).await,
        "stable"
    );

    write(canary(
        "100",
        &[
            ("canary-by-header", "X-Canary"),
            ("canary-by-header-value", "v2"),
        ],
    ));
    wait_for("weight 100", || async move {
        served_by(vec![]).await == "fresh"
    })
    .await;
    assert_eq!(served_by(vec![("x-canary", "v2")]).await, "fresh");
    for _ in 0..5 {
        assert_eq!(served_by(vec![]).await, "fresh", "weight 100 of 100");
    }

    // A weight out of a total: about a third of 300 requests.
    write(canary("1", &[("canary-weight-total", "3")]));
    wait_for("weight 1 of 3", || async move {
        let mut fresh = 0;
        for _ in 0..30 {
            fresh += usize::from(served_by(vec![]).await == "fresh");
        }
        fresh > 0 && fresh < 30
    })
    .await;
    let mut fresh = 0;
    for _ in 0..300 {
        fresh += usize::from(served_by(vec![]).await == "fresh");
    }
    assert!((60..=140).contains(&fresh), "{fresh} of 300 to the canary");
}

#[tokio::test]
async fn rewrite_target_with_capture_groups_routes_and_rewrites_as_ingress_nginxs_example() {
    // The example of ingress-nginx's rewrite documentation.
    let f = fixture(&["web"], &[], |_| {}).await;
    let target = format!("{P}rewrite-target");
    let regex = format!("{P}use-regex");
    f.manifests.write(
        "b.yaml",
        &annotated_ingress(
            "rewrite",
            "default",
            &[(target.as_str(), "/$2"), (regex.as_str(), "true")],
            &[(
                "rewrite.bar.com",
                "/something(/|$)(.*)",
                "ImplementationSpecific",
                "web",
            )],
        ),
    );
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the rewrite route", || {
        let c = c.clone();
        async move {
            get(&c, addr, "rewrite.bar.com", "/something", &[])
                .await
                .status
                == 200
        }
    })
    .await;
    for (sent, received) in [
        ("/something", "/"),
        ("/something/", "/"),
        ("/something/new", "/new"),
        ("/SOMETHING/new?x=1", "/new?x=1"),
    ] {
        let v = whoami_json(&c, addr, "rewrite.bar.com", sent).await;
        assert_eq!(v["uri"], received, "{sent}");
    }
    assert_eq!(
        get(&c, addr, "rewrite.bar.com", "/other", &[]).await.status,
        404
    );
}

#[tokio::test]
async fn proxy_next_upstream_retries_a_refused_endpoint_on_the_next() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let live = whoami("live").await;
    let f = fixture(&[], &[], |_| {}).await;
    let next = format!("{P}proxy-next-upstream");
    let tries = format!("{P}proxy-next-upstream-tries");
    let write = |annotations: &[(&str, &str)]| {
        f.manifests.write(
            "b.yaml",
            &[
                service("flaky", &[dead, live.addr]),
                annotated_ingress(
                    "retried",
                    "default",
                    annotations,
                    &[("retry.test", "/", "Prefix", "flaky")],
                ),
            ]
            .concat(),
        );
    };
    write(&[(next.as_str(), "error timeout"), (tries.as_str(), "3")]);
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the retried route", || {
        let c = c.clone();
        async move { get(&c, addr, "retry.test", "/", &[]).await.status == 200 }
    })
    .await;
    for _ in 0..6 {
        assert_eq!(
            get(&c, addr, "retry.test", "/", &[]).await.status,
            200,
            "the dead endpoint is skipped"
        );
    }
    // `off`: a request that lands on the dead endpoint fails.
    write(&[(next.as_str(), "off")]);
    wait_for("retries off", || {
        let c = c.clone();
        async move { get(&c, addr, "retry.test", "/", &[]).await.status == 502 }
    })
    .await;
}

#[tokio::test]
async fn from_to_www_redirect_answers_the_other_name_unless_an_ingress_serves_it() {
    let f = nginx_app(
        &[("from-to-www-redirect", "true")],
        &[],
        &[
            ("foo.test", "/", "Prefix", "web"),
            ("www.bar.test", "/", "Prefix", "web"),
        ],
        "",
        "/",
    )
    .await;
    let c = client();
    let addr = f.sluice.http_addr;
    wait_for("the www alias", || {
        let c = c.clone();
        async move { get(&c, addr, "www.foo.test", "/a/", &[]).await.status == 308 }
    })
    .await;
    let answer = get(&c, addr, "www.foo.test", "/a/?q=1", &[]).await;
    assert_eq!(answer.status, 308);
    let location = answer.headers["location"].to_str().expect("text");
    assert_eq!(location, "http://foo.test:80/a/?q=1");
    let bare = get(&c, addr, "bar.test", "/x", &[]).await;
    assert_eq!(bare.status, 308);
    assert!(
        bare.headers["location"]
            .to_str()
            .is_ok_and(|l| l.starts_with("http://www.bar.test:80/x")),
        "{:?}",
        bare.headers
    );
    assert_eq!(get(&c, addr, "foo.test", "/a", &[]).await.status, 200);

    // Another Ingress serving the other name keeps it.
    f.manifests.write(
        "c.yaml",
        &annotated_ingress(
            "www",
            "default",
            &[],
            &[("www.foo.test", "/", "Prefix", "web")],
        ),
    );
    wait_for("the www Ingress", || {
        let c = c.clone();
        async move { get(&c, addr, "www.foo.test", "/a", &[]).await.status == 200 }
    })
    .await;
}
