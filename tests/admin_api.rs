//! The dashboard's JSON API through a real sluice: real whoami backends, real
//! HTTP requests moving the live figures, real TLS Secrets, and the admin
//! listener read over HTTP as the dashboard reads it.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use support::*;
use tls_support::*;

/// GET on the admin listener: status and JSON body.
async fn admin(addr: SocketAddr, path: &str) -> (u16, Value) {
    let answer = get(&client(), addr, "localhost", path, &[]).await;
    let body = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", answer.body));
    (answer.status, body)
}

/// Polls `path` until `check` holds on its JSON (the sampler runs once a second).
async fn admin_until(addr: SocketAddr, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..60 {
        let (_, body) = admin(addr, path).await;
        if check(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("GET {path} never satisfied the check; last: {last:#}");
}

fn route<'a>(routes: &'a Value, name: &str) -> &'a Value {
    routes
        .as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("route {name} in {routes:#}"))
}

const MIDDLEWARES: &str = "\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: auth
  namespace: default
spec:
  basicAuth:
    secret: users
---
apiVersion: v1
kind: Secret
metadata:
  name: users
  namespace: default
stringData:
  users: \"admin:$2y$05$abcdefghijklmnopqrstuuFcRvM1bWyBXbxCmD7sRZgk3CyJ2ZzOe\"
";

#[tokio::test]
async fn live_figures_health_and_links_follow_traffic_and_changes() {
    let web = whoami("web").await;
    let m = Manifests::new();
    let cert = cert("app.test", &["app.test"]);
    let (key, refs) = middlewares_annotation(&["default-auth@kubernetescrd"]);
    m.write(
        "a.yaml",
        &[
            service("web", &[web.addr]),
            tls_secret("default", "app-tls", &cert),
            tls_ingress(
                "app",
                &[],
                &[("app.test", "app-tls")],
                &[
                    ("app.test", "/", "Prefix", "web"),
                    ("app.test", "/exact", "Exact", "web"),
                    ("*.wild.test", "/", "Prefix", "web"),
                ],
            ),
            annotated_ingress(
                "guarded",
                "default",
                &[(key, refs.as_str())],
                &[("guarded.test", "/", "Prefix", "web")],
            ),
            "---\n".to_owned(),
            MIDDLEWARES.to_owned(),
            service("empty", &[]),
            ingress("idle", &[("idle.test", "/", "Prefix", "empty")]),
            ingress("lost", &[("lost.test", "/", "Prefix", "missing")]),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let (http, api) = (sluice.http_addr, sluice.admin_addr);
    let c = client();

    // 200 requests move the route's live figures (sampled once a second).
    for _ in 0..200 {
        assert_eq!(get(&c, http, "app.test", "/x", &[]).await.status, 200);
    }
    let name = "default-app-app.test-/";
    let routes = admin_until(api, "/api/routes", |r| {
        route(r, name)["live"]["total"].as_u64() >= Some(200)
    })
    .await;
    let app = route(&routes, name);
    assert!(app["live"]["last_10s"]["rate"].as_f64() > Some(0.0));
    assert!(app["live"]["last_1m"]["p99_ms"].as_f64() > Some(0.0));
    assert_eq!(app["live"]["last_1m"]["errors"], 0);
    assert_eq!(app["health"]["state"], "ok");
    assert_eq!(app["ingress"]["name"], "app");

    // Failing routes say why, inline.
    let idle = route(&routes, "default-idle-idle.test-/");
    assert_eq!(idle["health"]["state"], "failing");
    assert!(idle["health"]["reasons"][0]
        .as_str()
        .is_some_and(|r| r.contains("no ready endpoint")));
    let lost = route(&routes, "default-lost-lost.test-/");
    assert_eq!(lost["health"]["state"], "failing");
    let lost_reasons = lost["health"]["reasons"].to_string();
    assert!(lost_reasons.contains("missing_service"), "{lost_reasons}");

    // 5xx above 5% in the last minute fails a route: the empty Service answers 503.
    for _ in 0..5 {
        assert_eq!(get(&c, http, "idle.test", "/", &[]).await.status, 503);
    }
    admin_until(api, "/api/routes", |r| {
        route(r, "default-idle-idle.test-/")["health"]["reasons"]
            .to_string()
            .contains("5xx")
    })
    .await;

    // The overview: entrypoints live, config health, what fails.
    let overview = admin_until(api, "/api/overview", |o| {
        o["entrypoints"][0]["live"]["total"].as_u64() >= Some(205)
    })
    .await;
    assert_eq!(overview["entrypoints"][0]["name"], "web");
    assert_eq!(overview["ready"], true);
    assert!(overview["config"]["reloads"].as_u64() >= Some(1));
    assert!(overview["config"]["last_reload"]["duration_ms"].as_f64() > Some(0.0));
    assert!(overview["config"]["failing_routes"].as_u64() >= Some(2));
    assert!(overview["config"]["rejected_objects"].as_u64() >= Some(1));
    let failing = overview["failing"].to_string();
    assert!(failing.contains("default-idle-idle.test-/"), "{failing}");

    // Services: endpoints with conditions and their own figures.
    let (_, services) = admin(api, "/api/services").await;
    let services = services.as_array().expect("array").clone();
    let web_service = services
        .iter()
        .find(|s| s["id"] == "default/web:80")
        .expect("web service");
    assert_eq!(web_service["health"]["state"], "ok");
    let endpoint = &web_service["endpoints"][0];
    assert_eq!(endpoint["address"], web.addr.to_string());
    assert_eq!(endpoint["ready"], true);
    assert_eq!(endpoint["in_rotation"], true);
    assert!(
        endpoint["live"]["total"].as_u64() >= Some(200),
        "{endpoint}"
    );
    let empty = services
        .iter()
        .find(|s| s["id"] == "default/empty:80")
        .expect("empty service");
    assert_eq!(empty["health"]["state"], "failing");
    assert_eq!(empty["ready_endpoints"], 0);

    // Middlewares: type and users, never the credentials.
    let answer = get(&c, api, "localhost", "/api/middlewares", &[]).await;
    assert!(!answer.body.contains("$2y$"), "no htpasswd hash on the API");
    let middlewares: Value = serde_json::from_str(&answer.body).expect("json");
    let auth = &middlewares[0];
    assert_eq!(auth["name"], "auth");
    assert_eq!(auth["type"], "basicAuth");
    assert_eq!(auth["routes"][0], "default-guarded-guarded.test-/");
    for path in [
        "/api/routes",
        "/api/services",
        "/api/overview",
        "/api/errors",
    ] {
        let body = get(&c, api, "localhost", path, &[]).await.body;
        assert!(
            !body.contains("$2y$") && !body.contains("PRIVATE KEY"),
            "{path}"
        );
    }

    // Certificates: issuer, expiry, the Ingress using it.
    let (_, tls) = admin(api, "/api/tls").await;
    let served = tls
        .as_array()
        .and_then(|c| c.iter().find(|c| c["secret"] == "default/app-tls"))
        .expect("app-tls served");
    assert_eq!(served["hosts"][0], "app.test");
    assert!(served["issuer"].as_str().is_some_and(|i| i.contains("CN=")));
    assert!(served["expires_in_days"].as_f64() > Some(14.0));
    assert_eq!(served["used_by"][0]["name"], "app");
    assert!(tls
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["default"] == true)));

    // Diagnostics name the routes they affect.
    let (_, errors) = admin(api, "/api/errors").await;
    let missing = errors["errors"]
        .as_array()
        .and_then(|e| e.iter().find(|d| d["kind"] == "missing_service"))
        .expect("missing service diagnostic");
    assert_eq!(missing["routes"][0], "default-lost-lost.test-/");
}

#[tokio::test]
async fn the_route_tester_uses_the_data_planes_lookup_and_explains_it() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            service("web", &[web.addr]),
            ingress(
                "app",
                &[
                    ("app.test", "/", "Prefix", "web"),
                    ("app.test", "/api", "Prefix", "web"),
                    ("app.test", "/api/exact", "Exact", "web"),
                    ("*.wild.test", "/", "Prefix", "web"),
                ],
            ),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let api = sluice.admin_addr;
    let (status, found) = admin(
        api,
        "/api/match?host=APP.test:8080&path=/api/users&method=post",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(found["matched"], true);
    assert_eq!(found["route"], "default-app-app.test-/api");
    assert_eq!(found["ingress"]["namespace"], "default");
    assert_eq!(found["ingress"]["name"], "app");
    assert_eq!(found["host_match"], "exact");
    assert_eq!(found["rule"]["path_type"], "Prefix");
    assert_eq!(found["method"], "POST");
    assert_eq!(found["endpoints"][0], web.addr.to_string());
    assert_eq!(found["service"], "default/web:80");
    assert!(found["reason"]
        .as_str()
        .is_some_and(|r| r.contains("longest Prefix")));

    let (_, exact) = admin(api, "/api/match?host=app.test&path=/api/exact").await;
    assert_eq!(exact["route"], "default-app-app.test-/api/exact-exact");
    assert_eq!(exact["rule"]["path_type"], "Exact");

    // Dot-segments are removed as for real requests.
    let (_, dotted) = admin(api, "/api/match?host=app.test&path=/x/../api/exact").await;
    assert_eq!(dotted["route"], "default-app-app.test-/api/exact-exact");

    let (_, wild) = admin(api, "/api/match?host=shop.wild.test&path=/").await;
    assert_eq!(wild["host_match"], "wildcard");

    // The same answers the data plane gives.
    let c = client();
    assert_eq!(
        get(&c, sluice.http_addr, "nope.invalid", "/", &[])
            .await
            .status,
        404
    );
    let (status, none) = admin(api, "/api/match?host=nope.invalid&path=/").await;
    assert_eq!(status, 404);
    assert_eq!(none["matched"], false);
    assert!(none.get("route").is_none());
    // A wildcard matches one label only.
    let (status, _) = admin(api, "/api/match?host=a.b.wild.test&path=/").await;
    assert_eq!(status, 404);

    let (status, bad) = admin(api, "/api/match?path=/").await;
    assert_eq!(status, 400);
    assert!(bad["error"].is_string());
}

#[tokio::test]
async fn the_dashboard_is_served_from_the_binary_and_the_routes_page_pages_and_searches() {
    let web = whoami("web").await;
    let m = Manifests::new();
    let rules: Vec<(String, String)> = (0..250)
        .map(|i| (format!("h{i}.test"), format!("/org{}/app{i}", i % 7)))
        .collect();
    let rules: Vec<(&str, &str, &str, &str)> = rules
        .iter()
        .map(|(h, p)| (h.as_str(), p.as_str(), "Prefix", "web"))
        .collect();
    m.write(
        "a.yaml",
        &[service("web", &[web.addr]), ingress("many", &rules)].concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let api = sluice.admin_addr;
    let c = client();

    let root = get(&c, api, "localhost", "/", &[]).await;
    assert_eq!(root.status, 302);
    assert_eq!(root.headers["location"], "/dashboard/");
    let page = get(&c, api, "localhost", "/dashboard/", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("text/html")));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "nothing fetched from elsewhere"
    );
    let script = get(&c, api, "localhost", "/dashboard/app.js", &[]).await;
    assert_eq!(script.status, 200);
    assert!(script.body.contains("/api/"));
    assert_eq!(
        get(&c, api, "localhost", "/dashboard/nope.js", &[])
            .await
            .status,
        404
    );

    let (_, first) = admin(api, "/api/routes/page?limit=100").await;
    assert_eq!(first["total"], 250);
    assert_eq!(first["items"].as_array().map(Vec::len), Some(100));
    let (_, last) = admin(api, "/api/routes/page?offset=200&limit=100").await;
    assert_eq!(last["items"].as_array().map(Vec::len), Some(50));
    // Every word must match: host and path.
    let (_, found) = admin(api, "/api/routes/page?q=h13.test%20org6").await;
    assert_eq!(found["total"], 1, "{found:#}");
    assert_eq!(found["items"][0]["host"], "h13.test");
    let (_, ok) = admin(api, "/api/routes/page?state=failing").await;
    assert_eq!(ok["total"], 0);
    // One route by its exact name (the detail page), not every route containing it.
    let (_, one) = admin(api, "/api/routes/page?name=default-many-h1.test-/org1/app1").await;
    assert_eq!(one["total"], 1, "{one:#}");
    // A Service lists its first 100 routes and says how many there are.
    let (_, services) = admin(api, "/api/services?id=default/web:80").await;
    assert_eq!(services.as_array().map(Vec::len), Some(1));
    assert_eq!(services[0]["route_count"], 250);
    assert_eq!(services[0]["routes"].as_array().map(Vec::len), Some(100));
    let (_, none) = admin(api, "/api/services?id=default/other:80").await;
    assert_eq!(none.as_array().map(Vec::len), Some(0));
}
