//! ingress-nginx's HTTP annotations (redirects, CORS, rewrites, body size,
//! snippets, headers) through a real sluice: real whoami backends, real
//! HTTP clients and raw sockets, and the diagnostics read from the admin API.

mod support;

use support::nginx::*;

use std::time::Duration;

use support::*;

/// [`nginx_app`] with no extra documents.
async fn app_with_rules(
    nginx: &[(&str, &str)],
    extra: &[(&str, &str)],
    rules: &[(&str, &str, &str, &str)],
    probe: &str,
) -> Fixture {
    nginx_app(nginx, extra, rules, "", probe).await
}

/// [`app_with_rules`] with host `app.test`, Prefix `/`.
async fn app_with(nginx: &[(&str, &str)]) -> Fixture {
    app_with_rules(nginx, &[], &[("app.test", "/", "Prefix", "web")], "/").await
}

/// The header asking whoami for its JSON report.
const JSON: (&str, &str) = ("accept", "application/json");

/// A CORS preflight (OPTIONS `/` from `origin`) to `app.test`.
async fn preflight(f: &Fixture, origin: &str) -> Answer {
    send(f, "app.test", "OPTIONS", "/", &[("origin", origin)], b"").await
}

/// `method /` from `origin` to `app.test`, asking for whoami's JSON report.
async fn from_origin(f: &Fixture, method: &str, origin: &str) -> Answer {
    let headers = [("origin", origin), JSON];
    send(f, "app.test", method, "/", &headers, b"").await
}

fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The whoami JSON report in `a`'s body.
fn report(a: &Answer) -> serde_json::Value {
    assert_eq!(a.status, 200, "{}", a.body);
    serde_json::from_str(&a.body).expect("whoami JSON")
}

// ---- redirects ----

#[tokio::test]
async fn permanent_redirect_answers_with_its_code_and_location() {
    let f = app_with(&[("permanent-redirect", "https://new.example/landing?x=1")]).await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/any/path", &[]).await;
    assert_eq!(a.status, 301);
    assert_eq!(
        header(&a, "location"),
        Some("https://new.example/landing?x=1")
    );

    let f = app_with(&[
        ("permanent-redirect", "https://new.example/"),
        ("permanent-redirect-code", "308"),
    ])
    .await;
    let a = send(&f, "app.test", "POST", "/", &[], b"x").await;
    assert_eq!(a.status, 308);
    assert_eq!(header(&a, "location"), Some("https://new.example/"));
}

#[tokio::test]
async fn bad_redirect_codes_fall_back_to_the_default_and_are_reported() {
    let f = app_with(&[
        ("permanent-redirect", "https://new.example/"),
        ("permanent-redirect-code", "abc"),
    ])
    .await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 301);
    let d = diagnostics(&f).await;
    assert!(d.contains("permanent-redirect-code"), "{d}");

    let f = app_with(&[
        ("temporal-redirect", "https://t.example/"),
        ("temporal-redirect-code", "399"),
    ])
    .await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 302);
    assert!(diagnostics(&f).await.contains("temporal-redirect-code"));
}

#[tokio::test]
async fn temporal_redirect_wins_over_permanent() {
    let f = app_with(&[
        ("permanent-redirect", "https://p.example/"),
        ("temporal-redirect", "https://t.example/"),
        ("temporal-redirect-code", "307"),
    ])
    .await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 307);
    assert_eq!(header(&a, "location"), Some("https://t.example/"));
}

#[tokio::test]
async fn a_bad_redirect_url_is_reported_and_the_route_still_serves() {
    let f = app_with(&[("permanent-redirect", "ftp://files.example/")]).await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 200);
    let d = diagnostics(&f).await;
    assert!(
        d.contains("invalid_annotation") && d.contains("permanent-redirect"),
        "{d}"
    );
}

#[tokio::test]
async fn app_root_redirects_only_the_root() {
    let f = app_with(&[("app-root", "/app1")]).await;
    let c = client();
    let a = get(&c, f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 302);
    assert_eq!(header(&a, "location"), Some("http://app.test/app1"));
    let r = whoami_json(&c, f.sluice.http_addr, "app.test", "/app1").await;
    assert_eq!(r["uri"], "/app1");

    let f = app_with(&[("app-root", "app1")]).await;
    let a = get(&c, f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 200, "a relative app-root is ignored");
    assert!(diagnostics(&f).await.contains("app-root"));
}

#[tokio::test]
async fn from_to_www_redirect_leaves_the_rule_host_alone() {
    // Requests for the rule's own host are served; the redirect of the
    // other name needs the router to send `www.app.test` to this Ingress
    // (the middleware is unit-tested for that part).
    let f = app_with(&[("from-to-www-redirect", "true")]).await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 200);
    let f = app_with(&[("from-to-www-redirect", "sure")]).await;
    assert!(diagnostics(&f).await.contains("from-to-www-redirect"));
}

// ---- CORS ----

#[tokio::test]
async fn cors_preflights_are_answered_without_the_backend() {
    let f = app_with(&[("enable-cors", "true")]).await;
    let a = preflight(&f, "https://x.example").await;
    assert_eq!(a.status, 204);
    assert_eq!(header(&a, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&a, "access-control-allow-methods"),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    assert_eq!(
        header(&a, "access-control-allow-headers"),
        Some("DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization")
    );
    assert_eq!(header(&a, "access-control-allow-credentials"), Some("true"));
    assert_eq!(header(&a, "access-control-max-age"), Some("1728000"));
    assert!(a.body.is_empty());

    // A raw preflight: no backend report in the answer.
    let raw_answer = raw(
        f.sluice.http_addr,
        b"OPTIONS /x HTTP/1.1\r\nHost: app.test\r\nOrigin: https://x.example\r\nAccess-Control-Request-Method: PUT\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(raw_answer.starts_with("HTTP/1.1 204"), "{raw_answer}");
    assert!(!raw_answer.contains("\"name\""), "{raw_answer}");

    // A simple request reaches the backend and gets the headers too.
    let a = from_origin(&f, "GET", "https://x.example").await;
    assert_eq!(report(&a)["method"], "GET");
    assert_eq!(header(&a, "access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn cors_origins_are_matched_echoed_and_wildcarded() {
    let f = app_with(&[
        ("enable-cors", "true"),
        (
            "cors-allow-origin",
            "https://app.example, https://*.api.example:8443",
        ),
        ("cors-allow-methods", "GET, POST"),
        ("cors-allow-headers", "X-Custom,Content-Type"),
        ("cors-expose-headers", "X-Total"),
        ("cors-allow-credentials", "false"),
        ("cors-max-age", "600"),
    ])
    .await;
    let a = preflight(&f, "https://v1.api.example:8443").await;
    assert_eq!(a.status, 204);
    assert_eq!(
        header(&a, "access-control-allow-origin"),
        Some("https://v1.api.example:8443")
    );
    assert_eq!(
        header(&a, "access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        header(&a, "access-control-allow-headers"),
        Some("X-Custom,Content-Type")
    );
    assert_eq!(header(&a, "access-control-expose-headers"), Some("X-Total"));
    assert_eq!(header(&a, "access-control-max-age"), Some("600"));
    assert!(header(&a, "access-control-allow-credentials").is_none());

    // Not an allowed origin: no CORS, and the OPTIONS goes to the backend.
    for origin in ["https://evil.example", "https://a.b.api.example:8443"] {
        let a = from_origin(&f, "OPTIONS", origin).await;
        assert_eq!(report(&a)["method"], "OPTIONS", "{origin}");
        assert!(header(&a, "access-control-allow-origin").is_none());
    }
    let a = from_origin(&f, "GET", "https://app.example").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        header(&a, "access-control-allow-origin"),
        Some("https://app.example")
    );
}

#[tokio::test]
async fn bad_cors_values_use_defaults_and_are_reported() {
    let f = app_with(&[
        ("enable-cors", "true"),
        ("cors-allow-methods", "GET;DROP"),
        ("cors-max-age", "forever"),
    ])
    .await;
    let a = preflight(&f, "https://x.example").await;
    assert_eq!(a.status, 204);
    assert_eq!(
        header(&a, "access-control-allow-methods"),
        Some("GET, PUT, POST, DELETE, PATCH, OPTIONS")
    );
    assert_eq!(header(&a, "access-control-max-age"), Some("1728000"));
    let d = diagnostics(&f).await;
    assert!(
        d.contains("cors-allow-methods") && d.contains("cors-max-age"),
        "{d}"
    );

    // No usable origin: CORS stays off rather than open to every origin.
    let f = app_with(&[
        ("enable-cors", "true"),
        ("cors-allow-origin", "not an origin"),
    ])
    .await;
    let a = from_origin(&f, "OPTIONS", "https://x.example").await;
    assert_eq!(report(&a)["method"], "OPTIONS");
    assert!(diagnostics(&f).await.contains("cors-allow-origin"));
}

// ---- rewrites ----

#[tokio::test]
async fn rewrite_target_uses_the_rule_path_captures_and_sets_the_prefix() {
    let f = app_with_rules(
        &[
            ("use-regex", "true"),
            ("rewrite-target", "/$2"),
            ("x-forwarded-prefix", "/something"),
        ],
        &[(
            "traefik.ingress.kubernetes.io/router.pathmatcher",
            "PathRegexp",
        )],
        &[(
            "app.test",
            "/something(/|$)(.*)",
            "ImplementationSpecific",
            "web",
        )],
        "/something/",
    )
    .await;
    let c = client();
    let r = whoami_json(
        &c,
        f.sluice.http_addr,
        "app.test",
        "/something/new/page?q=1",
    )
    .await;
    assert_eq!(r["uri"], "/new/page?q=1");
    assert_eq!(
        r["headers"]["x-forwarded-prefix"],
        serde_json::json!(["/something"])
    );
    let r = whoami_json(&c, f.sluice.http_addr, "app.test", "/something").await;
    assert_eq!(r["uri"], "/");
}

#[tokio::test]
async fn bad_rewrite_targets_are_reported_and_ignored() {
    let f = app_with(&[("rewrite-target", "/$host/x"), ("x-forwarded-prefix", "/p")]).await;
    let r = whoami_json(&client(), f.sluice.http_addr, "app.test", "/a/b").await;
    assert_eq!(r["uri"], "/a/b");
    assert!(r["headers"].get("x-forwarded-prefix").is_none());
    let d = diagnostics(&f).await;
    assert!(
        d.contains("rewrite-target") && d.contains("x-forwarded-prefix"),
        "{d}"
    );
}

// ---- bodies ----

#[tokio::test]
async fn proxy_body_size_refuses_large_declared_bodies() {
    let f = app_with(&[("proxy-body-size", "1k")]).await;
    static BIG: [u8; 2000] = [b'x'; 2000];
    static SMALL: [u8; 1000] = [b'x'; 1000];
    let a = send(&f, "app.test", "POST", "/", &[], &BIG).await;
    assert_eq!(a.status, 413);
    let a = send(&f, "app.test", "POST", "/", &[JSON], &SMALL).await;
    assert_eq!(report(&a)["body_length"], 1000);
}

#[tokio::test]
async fn proxy_body_size_cuts_chunked_bodies() {
    let f = app_with(&[("proxy-body-size", "1k")]).await;
    let chunk = "x".repeat(600);
    let big = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = raw(f.sluice.http_addr, big.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let small = format!(
        "POST / HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n{chunk}\r\n0\r\n\r\n"
    );
    let answer = raw(f.sluice.http_addr, small.as_bytes(), Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"body_length\":600"), "{answer}");
}

#[tokio::test]
async fn bad_body_sizes_fail_closed_and_buffering_is_reported() {
    let f = app_with(&[("proxy-body-size", "8 megs")]).await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 500);
    let d = diagnostics(&f).await;
    assert!(
        d.contains("invalid_annotation") && d.contains("proxy-body-size"),
        "{d}"
    );

    let f = app_with(&[
        ("proxy-body-size", "0"),
        ("proxy-buffering", "on"),
        ("proxy-request-buffering", "on"),
        ("client-body-buffer-size", "1m"),
    ])
    .await;
    static BIG: [u8; 5000] = [b'x'; 5000];
    let a = send(&f, "app.test", "POST", "/", &[JSON], &BIG).await;
    assert_eq!(report(&a)["body_length"], 5000, "0 is no limit");
    let d = diagnostics(&f).await;
    for name in [
        "proxy-buffering",
        "proxy-request-buffering",
        "client-body-buffer-size",
    ] {
        assert!(d.contains(name), "{name}: {d}");
    }
}

// ---- snippets ----

#[tokio::test]
async fn snippet_header_directives_apply() {
    let f = app_with(&[(
        "configuration-snippet",
        "more_set_headers \"X-Snippet: on\";\nadd_header X-Added yes;\nproxy_set_header X-To-Backend \"a b\";\nmore_set_input_headers 'X-Input: 1';",
    )])
    .await;
    let a = send(&f, "app.test", "GET", "/", &[JSON], b"").await;
    let r = report(&a);
    assert_eq!(r["headers"]["x-to-backend"], serde_json::json!(["a b"]));
    assert_eq!(r["headers"]["x-input"], serde_json::json!(["1"]));
    assert_eq!(header(&a, "x-snippet"), Some("on"));
    assert_eq!(header(&a, "x-added"), Some("yes"));
}

#[tokio::test]
async fn snippet_returns_and_rewrites_answer() {
    let f = app_with(&[(
        "server-snippet",
        "rewrite ^/old/(.*)$ /new/$1 permanent;\nrewrite ^/tmp$ https://t.example/ redirect;",
    )])
    .await;
    let c = client();
    let a = get(&c, f.sluice.http_addr, "app.test", "/old/x?y=1", &[]).await;
    assert_eq!(a.status, 301);
    assert_eq!(header(&a, "location"), Some("http://app.test/new/x?y=1"));
    let a = get(&c, f.sluice.http_addr, "app.test", "/tmp", &[]).await;
    assert_eq!(a.status, 302);
    assert_eq!(header(&a, "location"), Some("https://t.example/"));
    let r = whoami_json(&c, f.sluice.http_addr, "app.test", "/other").await;
    assert_eq!(r["uri"], "/other");

    let f = app_with(&[(
        "configuration-snippet",
        "add_header X-Teapot 1 always;\nreturn 418 \"short and stout\";",
    )])
    .await;
    let a = get(&c, f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 418);
    assert_eq!(a.body, "short and stout");
    assert_eq!(header(&a, "x-teapot"), Some("1"));
}

#[tokio::test]
async fn unknown_snippet_directives_fail_closed() {
    for (annotation, text, named) in [
        (
            "configuration-snippet",
            "access_by_lua_block { ngx.exit(403) }",
            "access_by_lua_block",
        ),
        ("configuration-snippet", "deny 10.0.0.0/8;", "deny"),
        ("configuration-snippet", "more_set_headers \"X: 1;", "quote"),
        (
            "server-snippet",
            "location /admin { return 403; }",
            "location",
        ),
        ("auth-snippet", "proxy_set_header X-A 1;", "auth-snippet"),
    ] {
        let f = app_with(&[(annotation, text)]).await;
        let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
        assert_eq!(a.status, 500, "{text}");
        let d = diagnostics(&f).await;
        assert!(
            d.contains("invalid_annotation") && d.contains(annotation) && d.contains(named),
            "{text}: {d}"
        );
    }
    let f = app_with(&[("stream-snippet", "server { listen 9000; }")]).await;
    let a = get(&client(), f.sluice.http_addr, "app.test", "/", &[]).await;
    assert_eq!(a.status, 200, "stream snippets do not concern HTTP routes");
    assert!(diagnostics(&f).await.contains("stream-snippet"));
}

// ---- headers ----

#[tokio::test]
async fn upstream_vhost_sets_the_backend_host() {
    let f = app_with(&[("upstream-vhost", "internal.example")]).await;
    let r = whoami_json(&client(), f.sluice.http_addr, "app.test", "/").await;
    assert_eq!(r["host"], "internal.example");

    let f = app_with(&[("upstream-vhost", "$host.internal")]).await;
    let r = whoami_json(&client(), f.sluice.http_addr, "app.test", "/").await;
    assert_eq!(r["host"], "app.test");
    assert!(diagnostics(&f).await.contains("upstream-vhost"));
}
