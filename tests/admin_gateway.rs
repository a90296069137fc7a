//! The admin API's Gateway API view through a real sluice reading a manifest
//! directory: `/api/gateway` shows every Gateway, listener and HTTPRoute of
//! sluice's classes with the status sluice would write (from files nothing
//! is written), and `/api/match` explains HTTPRoute matches on method,
//! headers and query exactly as the data plane takes them. Real whoami
//! backends, real HTTP requests to the admin listener and the proxy.

mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::net::SocketAddr;

use serde_json::Value;
use support::*;
use tls_support::{cert, tls_secret};

const CONTROLLER: &str = "sluice.dev/gateway-controller";

/// GET on the admin listener: status and JSON body.
async fn admin(addr: SocketAddr, path: &str) -> (u16, Value) {
    let answer = get(&client(), addr, "localhost", path, &[]).await;
    let body = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {}", answer.body));
    (answer.status, body)
}

/// The entry of `list` whose `namespace`/`name` are given.
fn named<'a>(list: &'a Value, namespace: &str, name: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|x| x["namespace"] == namespace && x["name"] == name)
}

/// The condition of `type_` among `conditions`.
fn condition<'a>(conditions: &'a Value, type_: &str) -> &'a Value {
    conditions
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:#}"))
}

/// sluice's class and another controller's, a Gateway of each, an
/// HTTPRoute `app` with a header rule, a query rule, a method rule and a
/// catch-all, an HTTPRoute `broken` whose backend does not exist, and an
/// HTTPRoute `stray` on the other controller's Gateway.
fn manifests(v1: SocketAddr, v2: SocketAddr) -> String {
    let objects = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: sluice
spec:
  controllerName: sluice.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: other
spec:
  controllerName: example.com/another-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
  namespace: default
spec:
  gatewayClassName: sluice
  listeners:
  - name: http
    port: 80
    protocol: HTTP
  - name: https
    port: 443
    protocol: HTTPS
    hostname: secure.test
    tls:
      certificateRefs:
      - name: secure-tls
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: foreign
  namespace: default
spec:
  gatewayClassName: other
  listeners:
  - name: http
    port: 80
    protocol: HTTP
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: app
  namespace: default
spec:
  parentRefs:
  - name: gw
    sectionName: http
  hostnames: [app.test]
  rules:
  - matches:
    - path: {type: PathPrefix, value: /}
      headers:
      - name: Version
        value: "2"
    backendRefs:
    - name: v2
      port: 80
  - name: by-query
    matches:
    - path: {type: PathPrefix, value: /}
      queryParams:
      - name: animal
        value: whale
    backendRefs:
    - name: v2
      port: 80
  - name: posts
    matches:
    - path: {type: PathPrefix, value: /}
      method: POST
    backendRefs:
    - name: v2
      port: 80
  - matches:
    - path: {type: PathPrefix, value: /}
    - path: {type: Exact, value: /exact}
    backendRefs:
    - name: v1
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: broken
  namespace: default
spec:
  parentRefs:
  - name: gw
  hostnames: [broken.test]
  rules:
  - backendRefs:
    - name: missing
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: secure
  namespace: default
spec:
  parentRefs:
  - name: gw
    sectionName: https
  rules:
  - backendRefs:
    - name: v1
      port: 80
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: stray
  namespace: default
spec:
  parentRefs:
  - name: foreign
  rules:
  - backendRefs:
    - name: v1
      port: 80
"#;
    [
        service("v1", &[v1]),
        "---\n".to_owned(),
        service("v2", &[v2]),
        tls_secret(
            "default",
            "secure-tls",
            &cert("secure.test", &["secure.test"]),
        ),
        objects.to_owned(),
    ]
    .concat()
}

#[tokio::test]
async fn gateways_listeners_and_routes_show_the_status_sluice_would_write() {
    let v1 = whoami("v1").await;
    let v2 = whoami("v2").await;
    let m = Manifests::new();
    m.write("a.yaml", &manifests(v1.addr, v2.addr));
    let sluice = start(settings(&m.path())).await;
    let api = sluice.admin_addr;

    let (status, view) = admin(api, "/api/gateway").await;
    assert_eq!(status, 200, "{view:#}");
    assert_eq!(view["controllerName"], CONTROLLER);

    // Only sluice's class, accepted.
    let classes = view["classes"].as_array().expect("classes");
    assert_eq!(classes.len(), 1, "{classes:#?}");
    assert_eq!(classes[0]["name"], "sluice");
    assert_eq!(classes[0]["controllerName"], CONTROLLER);
    assert_eq!(classes[0]["accepted"], true);
    assert_eq!(
        condition(&classes[0]["status"]["conditions"], "Accepted")["status"],
        "True"
    );

    // The Gateway: Accepted and Programmed; the other class's is absent.
    let gateways = &view["gateways"];
    assert!(
        named(gateways, "default", "foreign").is_none(),
        "another controller's Gateway is not listed: {gateways:#}"
    );
    assert_eq!(gateways.as_array().map(Vec::len), Some(1), "{gateways:#}");
    let gw = named(gateways, "default", "gw").expect("Gateway gw");
    assert_eq!(gw["class"], "sluice");
    assert_eq!(gw["accepted"], true);
    assert_eq!(gw["programmed"], true);
    for type_ in ["Accepted", "Programmed"] {
        let c = condition(&gw["status"]["conditions"], type_);
        assert_eq!(c["status"], "True", "{type_}: {c:#}");
    }

    // The HTTP listener: served on web, two routes attached (app by its
    // sectionName, broken by the Gateway), as the status says.
    let listeners = gw["listeners"].as_array().expect("listeners");
    let http = listeners
        .iter()
        .find(|l| l["name"] == "http")
        .expect("listener http");
    assert_eq!(http["entrypoint"], "web");
    assert_eq!(http["port"], 80);
    assert_eq!(http["protocol"], "HTTP");
    assert_eq!(http["programmed"], true);
    assert_eq!(http["attachedRoutes"], 2, "{http:#}");
    let attached: Vec<(&str, &Value)> = http["routes"]
        .as_array()
        .expect("attached routes")
        .iter()
        .map(|r| (r["name"].as_str().unwrap_or_default(), &r["hostnames"]))
        .collect();
    assert_eq!(
        attached,
        vec![
            ("app", &serde_json::json!(["app.test"])),
            ("broken", &serde_json::json!(["broken.test"])),
        ]
    );
    for type_ in ["Accepted", "Programmed", "ResolvedRefs"] {
        assert_eq!(condition(&http["conditions"], type_)["status"], "True");
    }
    assert_eq!(
        condition(&http["conditions"], "Conflicted")["status"],
        "False"
    );
    let http_status = gw["status"]["listeners"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["name"] == "http"))
        .expect("status of listener http");
    assert_eq!(http_status["attachedRoutes"], 2);
    assert!(
        http_status["supportedKinds"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k["kind"] == "HTTPRoute")),
        "{http_status:#}"
    );

    // The HTTPS listener names its certificate's Secret, never its contents.
    let https = listeners
        .iter()
        .find(|l| l["name"] == "https")
        .expect("listener https");
    assert_eq!(https["entrypoint"], "websecure");
    assert_eq!(https["hostname"], "secure.test");
    assert_eq!(
        https["certificates"],
        serde_json::json!(["default/secure-tls"])
    );
    assert_eq!(https["attachedRoutes"], 1);
    let text = view.to_string();
    assert!(
        !text.contains("PRIVATE KEY") && !text.contains("BEGIN CERTIFICATE"),
        "no Secret data in /api/gateway"
    );

    // Routes: parents Accepted by sluice's controller; rules → table routes.
    let routes = &view["routes"];
    assert!(
        named(routes, "default", "stray").is_none(),
        "a route of another controller's Gateway is not listed: {routes:#}"
    );
    let app = named(routes, "default", "app").expect("HTTPRoute app");
    assert_eq!(app["hostnames"], serde_json::json!(["app.test"]));
    let parents = app["status"]["parents"].as_array().expect("parents");
    assert_eq!(parents.len(), 1, "{parents:#?}");
    assert_eq!(parents[0]["controllerName"], CONTROLLER);
    assert_eq!(parents[0]["parentRef"]["name"], "gw");
    assert_eq!(parents[0]["parentRef"]["sectionName"], "http");
    assert_eq!(
        condition(&parents[0]["conditions"], "Accepted")["status"],
        "True"
    );
    assert_eq!(
        condition(&parents[0]["conditions"], "ResolvedRefs")["status"],
        "True"
    );
    let table_routes: Vec<&Value> = app["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .map(|r| &r["tableRoutes"])
        .collect();
    assert_eq!(
        table_routes,
        [
            &serde_json::json!(["httproute-default-app-rule0-match0"]),
            &serde_json::json!(["httproute-default-app-by-query-match0"]),
            &serde_json::json!(["httproute-default-app-posts-match0"]),
            &serde_json::json!([
                "httproute-default-app-rule3-match0",
                "httproute-default-app-rule3-match1"
            ]),
        ]
    );
    assert_eq!(app["rules"][0]["backends"][0]["service"], "default/v2:80");
    assert_eq!(app["rules"][1]["name"], "by-query");

    // A backend that does not exist: still Accepted, ResolvedRefs False.
    let broken = named(routes, "default", "broken").expect("HTTPRoute broken");
    let conditions = &broken["status"]["parents"][0]["conditions"];
    assert_eq!(condition(conditions, "Accepted")["status"], "True");
    let refs = condition(conditions, "ResolvedRefs");
    assert_eq!(refs["status"], "False", "{refs:#}");
    assert_eq!(refs["reason"], "BackendNotFound");
    assert!(
        refs["message"]
            .as_str()
            .is_some_and(|m| m.contains("missing")),
        "{refs:#}"
    );
    let backend = &broken["rules"][0]["backends"][0];
    assert_eq!(backend["service"], Value::Null);
    assert_eq!(backend["error"]["reason"], "BackendNotFound");

    assert_eq!(view["policies"], serde_json::json!([]));

    // Every table route named is one /api/routes lists.
    let (_, all) = admin(api, "/api/routes").await;
    let listed: Vec<&str> = all
        .as_array()
        .expect("routes")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        listed.contains(&"httproute-default-app-rule0-match0"),
        "{listed:?}"
    );

    sluice.stop();
    sluice.wait().await;
}

#[tokio::test]
async fn the_route_tester_explains_httproute_matches_as_the_data_plane_takes_them() {
    let v1 = whoami("v1").await;
    let v2 = whoami("v2").await;
    let m = Manifests::new();
    m.write("a.yaml", &manifests(v1.addr, v2.addr));
    let sluice = start(settings(&m.path())).await;
    let (api, proxy) = (sluice.admin_addr, sluice.http_addr);
    let c = client();

    // A header picks the header rule (the header name in any case).
    let (status, found) = admin(api, "/api/match?host=app.test&path=/x&header=version:%202").await;
    assert_eq!(status, 200, "{found:#}");
    assert_eq!(found["matched"], true);
    assert_eq!(found["route"], "httproute-default-app-rule0-match0");
    assert_eq!(found["kind"], "HTTPRoute");
    assert_eq!(found["ingress"]["kind"], "HTTPRoute");
    assert_eq!(found["ingress"]["name"], "app");
    assert_eq!(found["headers_considered"], true);
    assert_eq!(found["host_match"], "exact");
    assert_eq!(found["service"], "default/v2:80");
    let rule = &found["http_route"];
    assert_eq!(rule["rule_index"], 0);
    assert_eq!(rule["match_index"], 0);
    assert_eq!(rule["match"]["headers"][0]["name"], "Version");
    assert_eq!(
        condition(&rule["parents"][0]["conditions"], "Accepted")["status"],
        "True"
    );
    let reason = found["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("HTTPRoute default/app") && reason.contains("rule 0"),
        "{reason}"
    );
    assert!(reason.contains("header Version equals \"2\""), "{reason}");
    // The data plane agrees.
    let answer = get(&c, proxy, "app.test", "/x", &[("version", "2")]).await;
    assert!(answer.body.contains("v2"), "{}", answer.body);

    // Without the header: the catch-all rule.
    let (_, plain) = admin(api, "/api/match?host=app.test&path=/x").await;
    assert_eq!(plain["route"], "httproute-default-app-rule3-match0");
    assert_eq!(plain["http_route"]["rule_index"], 3);
    assert_eq!(plain["service"], "default/v1:80");
    let answer = get(&c, proxy, "app.test", "/x", &[]).await;
    assert!(answer.body.contains("v1"), "{}", answer.body);

    // The second match of the same rule.
    let (_, exact) = admin(api, "/api/match?host=app.test&path=/exact").await;
    assert_eq!(exact["route"], "httproute-default-app-rule3-match1");
    assert_eq!(exact["rule"]["path_type"], "Exact");

    // A query (as a parameter, or on the path) picks the named query rule.
    for url in [
        "/api/match?host=app.test&path=/x&query=animal%3Dwhale",
        "/api/match?host=app.test&path=/x%3Fanimal%3Dwhale",
    ] {
        let (_, q) = admin(api, url).await;
        assert_eq!(q["route"], "httproute-default-app-by-query-match0", "{url}");
        assert_eq!(q["http_route"]["rule_name"], "by-query");
        assert_eq!(q["query"], "animal=whale");
    }

    // The method picks the method rule.
    let (_, post) = admin(api, "/api/match?host=app.test&path=/x&method=post").await;
    assert_eq!(post["route"], "httproute-default-app-posts-match0");
    assert!(
        post["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the method is POST")),
        "{post:#}"
    );

    // A route whose backend is missing: matched, and failing with why.
    let (_, broken) = admin(api, "/api/match?host=broken.test&path=/").await;
    assert_eq!(broken["route"], "httproute-default-broken-rule0-match0");
    assert_eq!(broken["health"]["state"], "failing", "{broken:#}");

    // Another controller's Gateway serves nothing.
    let (status, none) = admin(api, "/api/match?host=stray.test&path=/").await;
    assert_eq!(status, 404, "{none:#}");
    assert_eq!(none["matched"], false);
    assert!(
        none["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no HTTPRoute match")),
        "{none:#}"
    );

    sluice.stop();
    sluice.wait().await;
}

#[tokio::test]
async fn without_gateway_api_objects_the_lists_are_empty() {
    let web = whoami("web").await;
    let m = Manifests::new();
    m.write(
        "a.yaml",
        &[
            service("web", &[web.addr]),
            ingress("app", &[("app.test", "/", "Prefix", "web")]),
        ]
        .concat(),
    );
    let sluice = start(settings(&m.path())).await;
    let (status, view) = admin(sluice.admin_addr, "/api/gateway").await;
    assert_eq!(status, 200);
    for list in ["classes", "gateways", "routes", "policies"] {
        assert_eq!(view[list], serde_json::json!([]), "{list}: {view:#}");
    }
    // Ingress routes still say they are Ingress routes, and headers are not considered.
    let (_, found) = admin(
        sluice.admin_addr,
        "/api/match?host=app.test&path=/&header=x:1",
    )
    .await;
    assert_eq!(found["kind"], "Ingress");
    assert_eq!(found["headers_considered"], false);
    assert!(found.get("http_route").is_none(), "{found:#}");
    sluice.stop();
    sluice.wait().await;
}
