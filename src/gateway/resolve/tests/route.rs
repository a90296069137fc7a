//! HTTPRoute scenarios: attachment, hostnames, references, rule validity.

use super::*;
use crate::gateway::resolve::{FilterTarget, NamespacedName, RefError, ServicePort};

/// httproute-invalid-cross-namespace-parent-ref.yaml
#[test]
fn httproute_invalid_cross_namespace_parent_ref() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-cross-namespace-parent-ref
  namespace: gateway-conformance-web-backend
spec:
  parentRefs:
  - name: same-namespace
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: web-backend
      port: 8080
"#]);
    let route = "invalid-cross-namespace-parent-ref";
    let status = parent(&resolution, WEB, route, INFRA, "same-namespace");
    assert_condition(&status.conditions, "ResolvedRefs", true, "ResolvedRefs");
    assert_condition(
        &status.conditions,
        "Accepted",
        false,
        "NotAllowedByListeners",
    );
    assert_eq!(
        resolution
            .route(WEB, route)
            .expect("route")
            .status
            .parents
            .len(),
        1
    );
    assert_eq!(
        listener(&resolution, INFRA, "same-namespace", "http").attached_routes,
        0
    );
}

/// httproute-hostname-intersection.yaml
const HOSTNAME_INTERSECTION: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-hostname-intersection
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: listener-1
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: very.specific.com
  - name: listener-2
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.wildcard.io"
  - name: listener-3
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.anotherwildcard.io"
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-hostname-intersection-all
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: listener-1
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: specific-host-matches-listener-specific-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - non.matching.com
  - "*.nonmatchingwildcard.io"
  - very.specific.com  #  matches listener-1's specific host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s1
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: specific-host-matches-listener-wildcard-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - non.matching.com
  - wildcard.io
  - foo.wildcard.io  #  matches listener-2's wildcard host
  - bar.wildcard.io  #  matches listener-2's wildcard host
  - foo.bar.wildcard.io  #  matches listener-2's wildcard host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s2
    backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: wildcard-host-matches-listener-specific-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - non.matching.com
  - "*.specific.com"  # matches listener-1's specific host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s3
    backendRefs:
    - name: infra-backend-v3
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: wildcard-host-matches-listener-wildcard-host
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - "*.anotherwildcard.io"  # matches listener-3's wildcard host
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s4
    backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: no-intersecting-hosts
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection
    namespace: gateway-conformance-infra
  hostnames:
  - specific.but.wrong.com
  - wildcard.io
  rules:
  - matches:
    - path:
        type: PathPrefix
        value: /s5
    backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-hostname-intersection-all
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-hostname-intersection-all
    namespace: gateway-conformance-infra
  hostnames:
  - first.com
  - sub.first.com
  - second.com
  - sub.second.com
  rules:
  - backendRefs:
    - name: infra-backend-v2
      port: 8080
"#;

/// (listener, route, effective hostnames) of every attachment to Gateway `gw`.
fn attachments<'a>(resolution: &'a Resolution, gw: &str) -> Vec<(&'a str, &'a str, Vec<&'a str>)> {
    let gateway = resolution.gateway(INFRA, gw).expect("gateway");
    gateway
        .listeners
        .iter()
        .flat_map(|l| {
            l.routes.iter().map(move |a| {
                (
                    l.name.as_str(),
                    resolution.routes[a.route].id.name.as_str(),
                    a.hostnames.iter().map(String::as_str).collect(),
                )
            })
        })
        .collect()
}

#[test]
fn httproute_hostname_intersection() {
    let resolution = resolve_with_base(&[HOSTNAME_INTERSECTION]);
    let gw = "httproute-hostname-intersection";
    for route in [
        "specific-host-matches-listener-specific-host",
        "specific-host-matches-listener-wildcard-host",
        "wildcard-host-matches-listener-specific-host",
        "wildcard-host-matches-listener-wildcard-host",
    ] {
        assert_gateway_and_route_accepted(&resolution, gw, INFRA, route);
        let status = parent(&resolution, INFRA, route, INFRA, gw);
        assert_condition(&status.conditions, "ResolvedRefs", true, "ResolvedRefs");
    }
    assert_eq!(
        attachments(&resolution, gw),
        [
            (
                "listener-1",
                "specific-host-matches-listener-specific-host",
                vec!["very.specific.com"]
            ),
            (
                "listener-1",
                "wildcard-host-matches-listener-specific-host",
                vec!["very.specific.com"]
            ),
            (
                "listener-2",
                "specific-host-matches-listener-wildcard-host",
                vec!["foo.wildcard.io", "bar.wildcard.io", "foo.bar.wildcard.io"]
            ),
            (
                "listener-3",
                "wildcard-host-matches-listener-wildcard-host",
                vec!["*.anotherwildcard.io"]
            ),
        ]
    );
    let none = parent(&resolution, INFRA, "no-intersecting-hosts", INFRA, gw);
    assert_eq!(none.parent_ref.namespace.as_deref(), Some(INFRA));
    assert_eq!(none.parent_ref.group, "gateway.networking.k8s.io");
    assert_eq!(none.parent_ref.kind, "Gateway");
    assert_condition(
        &none.conditions,
        "Accepted",
        false,
        "NoMatchingListenerHostname",
    );

    assert_eq!(
        attachments(&resolution, "httproute-hostname-intersection-all"),
        [(
            "listener-1",
            "httproute-hostname-intersection-all",
            vec!["first.com", "sub.first.com", "second.com", "sub.second.com"]
        )]
    );
}

/// httproute-listener-hostname-matching.yaml
#[test]
fn httproute_listener_hostname_matching() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-listener-hostname-matching
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: listener-1
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: bar.com
  - name: listener-2
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: foo.bar.com
  - name: listener-3
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.bar.com"
  - name: listener-4
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: "*.foo.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-1
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-2
  rules:
  - backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v3
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-3
  - name: httproute-listener-hostname-matching
    namespace: gateway-conformance-infra
    sectionName: listener-4
  rules:
  - backendRefs:
    - name: infra-backend-v3
      port: 8080
"#]);
    let gw = "httproute-listener-hostname-matching";
    for route in ["backend-v1", "backend-v2", "backend-v3"] {
        assert_gateway_and_route_accepted(&resolution, gw, INFRA, route);
    }
    let v3 = resolution.route(INFRA, "backend-v3").expect("route");
    assert_eq!(v3.status.parents.len(), 2, "one entry per parentRef");
    assert_eq!(
        attachments(&resolution, gw),
        [
            ("listener-1", "backend-v1", vec!["bar.com"]),
            ("listener-2", "backend-v2", vec!["foo.bar.com"]),
            ("listener-3", "backend-v3", vec!["*.bar.com"]),
            ("listener-4", "backend-v3", vec!["*.foo.com"]),
        ]
    );
}

/// httproute-listener-port-matching.yaml, with sluice's HTTP entrypoint on
/// 8080: routes select listeners by the port in the Gateway's spec.
#[test]
fn httproute_listener_port_matching() {
    let manifests = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: httproute-listener-port-matching
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: listener-1
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: foo.com
  - name: listener-2
    port: 8080
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: foo.com
  - name: listener-3
    port: 8080
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: bar.com
  - name: listener-4
    port: 8090
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
    hostname: foo.com
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-port-matching
    namespace: gateway-conformance-infra
    port: 80
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-port-matching
    namespace: gateway-conformance-infra
    port: 8080
  rules:
  - backendRefs:
    - name: infra-backend-v2
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backend-v3
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: httproute-listener-port-matching
    namespace: gateway-conformance-infra
    port: 8090
    sectionName: listener-4
  rules:
  - backendRefs:
    - name: infra-backend-v3
      port: 8080
"#;
    let resolution = resolve(
        &snapshot(&[BASE, manifests]),
        &ResolveSettings {
            http_port: 8080,
            ..settings()
        },
    );
    let gw = "httproute-listener-port-matching";
    assert_eq!(
        attachments(&resolution, gw),
        [
            ("listener-1", "backend-v1", vec!["foo.com"]),
            ("listener-2", "backend-v2", vec!["foo.com"]),
            ("listener-3", "backend-v2", vec!["bar.com"]),
            ("listener-4", "backend-v3", vec!["foo.com"]),
        ]
    );
    // 80 and 8080 are one entrypoint: foo.com twice conflicts; 8090 is not served.
    for name in ["listener-1", "listener-2"] {
        let status = listener(&resolution, INFRA, gw, name);
        assert_condition(&status.conditions, "Conflicted", true, "HostnameConflict");
    }
    assert_condition(
        &listener(&resolution, INFRA, gw, "listener-3").conditions,
        "Programmed",
        true,
        "",
    );
    assert_condition(
        &listener(&resolution, INFRA, gw, "listener-4").conditions,
        "Accepted",
        false,
        "PortUnavailable",
    );
}

/// httproute-invalid-parentref-not-matching-listener-port.yaml,
/// httproute-invalid-parentref-not-matching-section-name.yaml and
/// httproute-invalid-parentref-section-name-not-matching-port.yaml
#[test]
fn httproute_invalid_parentref_not_matching() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-listener-not-matching-route-port
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
    namespace: gateway-conformance-infra
    # mismatched port here (81 is not an available gateway listener) triggers NoMatchingParent reason
    port: 81
  rules:
  - backendRefs:
    - name: infra-backend-v1
      kind: Service
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-listener-not-matching-section-name
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
    namespace: gateway-conformance-infra
    port: 80
    # mismatched sectionName here (http1 is not an available gateway listener) triggers NoMatchingParent reason
    sectionName: http1
  rules:
  - backendRefs:
    - name: infra-backend-v1
      kind: Service
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-one-not-matching-port-and-section-name-route
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: httproute-listener-section-name-not-matching-port
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: gateway-with-one-not-matching-port-and-section-name-route
    namespace: gateway-conformance-infra
    sectionName: http
    # mismatched port value here (81 does not match gateway http listener's port) triggers NoMatchingParent reason
    port: 81
  rules:
  - backendRefs:
    - name: infra-backend-v1
      kind: Service
      port: 8080
"#]);
    for (route, gw) in [
        (
            "httproute-listener-not-matching-route-port",
            "same-namespace",
        ),
        (
            "httproute-listener-not-matching-section-name",
            "same-namespace",
        ),
        (
            "httproute-listener-section-name-not-matching-port",
            "gateway-with-one-not-matching-port-and-section-name-route",
        ),
    ] {
        let status = parent(&resolution, INFRA, route, INFRA, gw);
        assert_condition(&status.conditions, "Accepted", false, "NoMatchingParent");
        assert_condition(&status.conditions, "ResolvedRefs", true, "ResolvedRefs");
        assert_eq!(listener(&resolution, INFRA, gw, "http").attached_routes, 0);
    }
}

/// httproute-invalid-backendref-unknown-kind.yaml
#[test]
fn httproute_invalid_backendref_unknown_kind() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-backend-ref-unknown-kind
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - group: unknownkind.example.com
      kind: NonExistent
      name: infra-backend-v1
      port: 8080
"#]);
    let route = "invalid-backend-ref-unknown-kind";
    assert_gateway_and_route_accepted(&resolution, "same-namespace", INFRA, route);
    let status = parent(&resolution, INFRA, route, INFRA, "same-namespace");
    assert_condition(&status.conditions, "ResolvedRefs", false, "InvalidKind");
    let resolved = resolution.route(INFRA, route).expect("route");
    assert_eq!(
        resolved.rules[0].backends[0].target,
        Err(RefError::InvalidKind {
            group: "unknownkind.example.com".into(),
            kind: "NonExistent".into()
        })
    );
    // No namespace in the parentRef: echoed as written.
    assert_eq!(status.parent_ref.namespace, None);
}

/// httproute-invalid-cross-namespace-backend-ref.yaml
#[test]
fn httproute_invalid_cross_namespace_backend_ref() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-cross-namespace-backend-ref
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: web-backend
      namespace: gateway-conformance-web-backend
      port: 8080
"#]);
    let route = "invalid-cross-namespace-backend-ref";
    assert_gateway_and_route_accepted(&resolution, "same-namespace", INFRA, route);
    let status = parent(&resolution, INFRA, route, INFRA, "same-namespace");
    assert_condition(&status.conditions, "ResolvedRefs", false, "RefNotPermitted");
    let backend = &resolution.route(INFRA, route).expect("route").rules[0].backends[0];
    assert!(matches!(
        backend.target,
        Err(RefError::RefNotPermitted { .. })
    ));
}

/// httproute-partially-invalid-via-invalid-reference-grant.yaml
#[test]
fn httproute_partially_invalid_via_invalid_reference_grant() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: invalid-reference-grant
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: app-backend-v1
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-reference-grant
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
  rules:
    - matches:
        - path:
            type: PathPrefix
            value: "/v2"
      backendRefs:
        - name: app-backend-v2
          namespace: gateway-conformance-app-backend
          port: 8080
    - backendRefs:
        - name: app-backend-v1
          namespace: gateway-conformance-app-backend
          port: 8080
"#]);
    let route = "invalid-reference-grant";
    assert_gateway_and_route_accepted(&resolution, "same-namespace", INFRA, route);
    let status = parent(&resolution, INFRA, route, INFRA, "same-namespace");
    assert_condition(&status.conditions, "ResolvedRefs", false, "RefNotPermitted");
    let rules = &resolution.route(INFRA, route).expect("route").rules;
    assert!(matches!(
        rules[0].backends[0].target,
        Err(RefError::RefNotPermitted { .. })
    ));
    assert_eq!(
        rules[1].backends[0].target,
        Ok(ServicePort {
            namespace: APP.into(),
            name: "app-backend-v1".into(),
            port: 8080
        })
    );
    // Both rules are served: the first answers 500.
    let attached = &resolution
        .gateway(INFRA, "same-namespace")
        .expect("gw")
        .listeners[0]
        .routes;
    assert_eq!(attached[0].rules, [0, 1]);
}

/// httproute-reference-grant.yaml, then the grant deleted.
#[test]
fn httproute_reference_grant() {
    let grant = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: web-backend
"#;
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reference-grant
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
  rules:
    - backendRefs:
        - name: web-backend
          namespace: gateway-conformance-web-backend
          port: 8080
"#;
    let resolution = resolve_with_base(&[grant, route]);
    assert_gateway_and_route_accepted(&resolution, "same-namespace", INFRA, "reference-grant");
    let status = parent(
        &resolution,
        INFRA,
        "reference-grant",
        INFRA,
        "same-namespace",
    );
    assert_condition(&status.conditions, "ResolvedRefs", true, "ResolvedRefs");
    let backend = &resolution
        .route(INFRA, "reference-grant")
        .expect("route")
        .rules[0]
        .backends[0];
    assert_eq!(
        backend.target.as_ref().map(|s| s.namespace.as_str()),
        Ok(WEB)
    );

    let resolution = resolve_with_base(&[route]);
    let status = parent(
        &resolution,
        INFRA,
        "reference-grant",
        INFRA,
        "same-namespace",
    );
    assert_condition(&status.conditions, "ResolvedRefs", false, "RefNotPermitted");
}

/// httproute-invalid-reference-grant.yaml: grants that each get one field wrong.
#[test]
fn httproute_invalid_reference_grant() {
    let grant = |namespace: &str, from: &str, to: &str| {
        format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\nmetadata: {{name: g, namespace: {namespace}}}\nspec:\n  from: [{from}]\n  to: [{to}]\n"
        )
    };
    let route = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: reference-grant
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
  rules:
    - backendRefs:
        - name: web-backend
          namespace: gateway-conformance-web-backend
          port: 8080
"#;
    let good_from =
        "{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: gateway-conformance-infra}";
    let good_to = "{group: '', kind: Service, name: web-backend}";
    let wrong = [
        grant(INFRA, good_from, good_to),
        grant(WEB, "{group: not-the-group-youre-looking-for, kind: HTTPRoute, namespace: gateway-conformance-infra}", good_to),
        grant(WEB, "{group: gateway.networking.k8s.io, kind: Gateway, namespace: gateway-conformance-infra}", good_to),
        grant(WEB, "{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: not-the-namespace-youre-looking-for}", good_to),
        grant(WEB, good_from, "{group: not-the-group-youre-looking-for, kind: Service, name: web-backend}"),
        grant(WEB, good_from, "{group: '', kind: Secret, name: web-backend}"),
        grant(WEB, good_from, "{group: '', kind: Service, name: not-the-service-youre-looking-for}"),
    ];
    for wrong in &wrong {
        let resolution = resolve_with_base(&[wrong, route]);
        let status = parent(
            &resolution,
            INFRA,
            "reference-grant",
            INFRA,
            "same-namespace",
        );
        assert_condition(&status.conditions, "Accepted", true, "Accepted");
        assert_condition(&status.conditions, "ResolvedRefs", false, "RefNotPermitted");
    }
    let resolution = resolve_with_base(&[&grant(WEB, good_from, good_to), route]);
    let status = parent(
        &resolution,
        INFRA,
        "reference-grant",
        INFRA,
        "same-namespace",
    );
    assert_condition(&status.conditions, "ResolvedRefs", true, "ResolvedRefs");
}

/// httproute-invalid-nonexistent-backendref.yaml
#[test]
fn httproute_invalid_nonexistent_backendref() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: invalid-nonexistent-backend-ref
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: same-namespace
  rules:
  - backendRefs:
    - name: nonexistent
      namespace: gateway-conformance-infra
      port: 8080
    - name: infra-backend-v1
      port: 9999
"#]);
    let route = "invalid-nonexistent-backend-ref";
    assert_gateway_and_route_accepted(&resolution, "same-namespace", INFRA, route);
    let status = parent(&resolution, INFRA, route, INFRA, "same-namespace");
    assert_condition(&status.conditions, "ResolvedRefs", false, "BackendNotFound");
    let backends = &resolution.route(INFRA, route).expect("route").rules[0].backends;
    assert!(matches!(backends[0].target, Err(RefError::NotFound { .. })));
    assert!(matches!(
        backends[1].target,
        Err(RefError::NoSuchPort { port: 9999, .. })
    ));
}

/// httproute-disallowed-kind.yaml
#[test]
fn httproute_disallowed_kind() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: tlsroutes-only
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: tls
    port: 443
    protocol: TLS
    tls:
      mode: Passthrough
    allowedRoutes:
      namespaces:
        from: Same
      kinds:
      - kind: TLSRoute
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: disallowed-kind
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - name: tlsroutes-only
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"#]);
    let status = parent(
        &resolution,
        INFRA,
        "disallowed-kind",
        INFRA,
        "tlsroutes-only",
    );
    assert_condition(&status.conditions, "ResolvedRefs", true, "ResolvedRefs");
    assert_condition(
        &status.conditions,
        "Accepted",
        false,
        "NotAllowedByListeners",
    );
    assert_eq!(
        listener(&resolution, INFRA, "tlsroutes-only", "tls").attached_routes,
        0
    );
}

/// httproute-observed-generation-bump.yaml
#[test]
fn httproute_observed_generation_bump() {
    for (generation, backend) in [(1, "infra-backend-v1"), (2, "infra-backend-v2")] {
        let route = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: observed-generation-bump\n  namespace: gateway-conformance-infra\n  generation: {generation}\nspec:\n  parentRefs:\n  - name: same-namespace\n  rules:\n  - backendRefs:\n    - name: {backend}\n      port: 8080\n"
        );
        let resolution = resolve_with_base(&[&route]);
        let status = parent(
            &resolution,
            INFRA,
            "observed-generation-bump",
            INFRA,
            "same-namespace",
        );
        assert_condition(&status.conditions, "Accepted", true, "");
        assert_condition(&status.conditions, "ResolvedRefs", true, "ResolvedRefs");
        assert!(status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(generation)));
    }
}

/// The base `backend-namespaces` Gateway (a matchLabels selector), and
/// matchExpressions.
#[test]
fn allowed_routes_namespace_selectors() {
    let routes = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: from-web, namespace: gateway-conformance-web-backend}
spec:
  parentRefs: [{name: backend-namespaces, namespace: gateway-conformance-infra}, {name: all-namespaces, namespace: gateway-conformance-infra}, {name: expressions, namespace: gateway-conformance-infra}]
  rules: [{backendRefs: [{name: web-backend, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: from-infra, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: backend-namespaces}, {name: expressions}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: from-unlisted, namespace: unlisted}
spec:
  parentRefs: [{name: expressions, namespace: gateway-conformance-infra}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: expressions, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: sluice
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Selector
        selector:
          matchExpressions:
          - {key: gateway-conformance, operator: NotIn, values: [infra]}
"#;
    let resolution = resolve_with_base(&[routes]);
    let accepted = |route_ns: &str, route: &str, gw: &str| {
        super::super::conditions::find(
            &parent(&resolution, route_ns, route, INFRA, gw).conditions,
            "Accepted",
        )
        .expect("Accepted")
        .clone()
    };
    assert!(accepted(WEB, "from-web", "backend-namespaces").is_true());
    assert!(accepted(WEB, "from-web", "all-namespaces").is_true());
    assert!(accepted(WEB, "from-web", "expressions").is_true());
    let refused = accepted(INFRA, "from-infra", "backend-namespaces");
    assert_eq!(refused.reason, "NotAllowedByListeners");
    assert!(!accepted(INFRA, "from-infra", "expressions").is_true());
    // A namespace the snapshot does not list has no labels: NotIn holds.
    assert!(accepted("unlisted", "from-unlisted", "expressions").is_true());
}

#[test]
fn unsupported_values_drop_rules_and_partially_invalid_routes_stay_accepted() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: partly, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - name: good
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - name: external-auth
    filters: [{type: ExternalAuth, externalAuth: {protocol: HTTP, backendRef: {name: auth}}}]
    backendRefs: [{name: infra-backend-v1, port: 8080}]
  - matches: [{path: {type: Exact, value: /x}}]
    filters:
    - {type: RequestRedirect, requestRedirect: {scheme: https}}
    - {type: URLRewrite, urlRewrite: {hostname: x}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wholly, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - matches: [{path: {type: ImplementationSpecific, value: /x}}]
"#]);
    let partly = parent(&resolution, INFRA, "partly", INFRA, "same-namespace");
    assert_condition(&partly.conditions, "Accepted", true, "Accepted");
    assert_condition(
        &partly.conditions,
        "PartiallyInvalid",
        true,
        "UnsupportedValue",
    );
    let message = &super::super::conditions::find(&partly.conditions, "PartiallyInvalid")
        .expect("PartiallyInvalid")
        .message;
    assert!(
        message.starts_with("Dropped Rule 1 (external-auth): "),
        "{message}"
    );
    assert!(
        message.contains("Dropped Rule 2: RequestRedirect and URLRewrite"),
        "{message}"
    );
    let rules = &resolution.route(INFRA, "partly").expect("route").rules;
    assert_eq!(
        rules[2].dropped.as_ref().map(|e| e.reason),
        Some("IncompatibleFilters")
    );
    let attached = &resolution
        .gateway(INFRA, "same-namespace")
        .expect("gw")
        .listeners[0]
        .routes;
    assert_eq!(attached.len(), 1);
    assert_eq!(attached[0].rules, [0]);

    let wholly = parent(&resolution, INFRA, "wholly", INFRA, "same-namespace");
    assert_condition(&wholly.conditions, "Accepted", false, "UnsupportedValue");
    assert!(super::super::conditions::find(&wholly.conditions, "PartiallyInvalid").is_none());
    assert_eq!(
        listener(&resolution, INFRA, "same-namespace", "http").attached_routes,
        1
    );
}

#[test]
fn invalid_route_hostnames_are_unsupported_values() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ip-host, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  hostnames: [10.0.0.1]
"#]);
    let status = parent(&resolution, INFRA, "ip-host", INFRA, "same-namespace");
    assert_condition(&status.conditions, "Accepted", false, "UnsupportedValue");
}

#[test]
fn filter_references_resolve() {
    let resolution = resolve_with_base(&[r#"
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata: {name: strip, namespace: gateway-conformance-infra}
spec: {stripPrefix: {prefixes: [/api]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: filters, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: same-namespace}]
  rules:
  - filters:
    - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: strip}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}}}
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x, value: y}]}}
    backendRefs:
    - name: infra-backend-v1
      port: 8080
      filters: [{type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: missing}}]
  - filters:
    - {type: ExtensionRef, extensionRef: {group: example.com, kind: Filter, name: x}}
    - {type: RequestMirror, requestMirror: {backendRef: {name: web-backend, namespace: gateway-conformance-web-backend, port: 8080}}}
"#]);
    let rules = &resolution.route(INFRA, "filters").expect("route").rules;
    assert_eq!(
        rules[0].filters,
        [
            FilterTarget::Middleware(Ok(NamespacedName::new(INFRA, "strip"))),
            FilterTarget::Mirror(Ok(ServicePort {
                namespace: INFRA.into(),
                name: "infra-backend-v2".into(),
                port: 8080
            })),
            FilterTarget::Inline,
        ]
    );
    assert!(matches!(
        rules[0].backends[0].filters[0],
        FilterTarget::Middleware(Err(RefError::NotFound {
            kind: "Middleware",
            ..
        }))
    ));
    assert!(matches!(
        rules[1].filters[0],
        FilterTarget::Middleware(Err(RefError::InvalidKind { .. }))
    ));
    assert!(matches!(
        rules[1].filters[1],
        FilterTarget::Mirror(Err(RefError::RefNotPermitted { .. }))
    ));
    let status = parent(&resolution, INFRA, "filters", INFRA, "same-namespace");
    // The first unresolved reference, in rule order, gives the reason.
    assert_condition(&status.conditions, "ResolvedRefs", false, "BackendNotFound");
    assert_condition(&status.conditions, "Accepted", true, "Accepted");
}

#[test]
fn route_status_serializes_as_the_api_schema() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: gateway-conformance-infra, generation: 4}
spec:
  parentRefs: [{name: same-namespace, sectionName: http}, {name: same-namespace, sectionName: http}]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
"#]);
    let route = resolution.route(INFRA, "r").expect("route");
    let json = serde_json::to_value(&route.status).expect("serializes");
    assert_eq!(
        json,
        serde_json::json!({"parents": [{
            "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "same-namespace", "sectionName": "http"},
            "controllerName": "sluice.dev/gateway-controller",
            "conditions": [
                {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "observedGeneration": 4},
                {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs", "message": "", "observedGeneration": 4},
            ],
        }]})
    );
    assert_eq!(
        listener(&resolution, INFRA, "same-namespace", "http").attached_routes,
        1
    );
}
