//! GatewayClass and Gateway scenarios.

use super::*;
use crate::gateway::resolve::Entrypoint;

/// gateway-invalid-route-kind.yaml
const INVALID_ROUTE_KIND: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-only-invalid-route-kind
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: All
        kinds:
          - kind: InvalidRoute
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-supported-and-invalid-route-kind
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: All
        kinds:
          - kind: InvalidRoute
          - kind: HTTPRoute
"#;

#[test]
fn gateway_invalid_route_kind() {
    let resolution = resolve_with_base(&[INVALID_ROUTE_KIND]);
    let only = listener(
        &resolution,
        INFRA,
        "gateway-only-invalid-route-kind",
        "http",
    );
    assert!(only.supported_kinds.is_empty());
    assert_eq!(only.attached_routes, 0);
    assert_condition(&only.conditions, "ResolvedRefs", false, "InvalidRouteKinds");

    let both = listener(
        &resolution,
        INFRA,
        "gateway-supported-and-invalid-route-kind",
        "http",
    );
    assert_eq!(both.supported_kinds.len(), 1);
    assert_eq!(
        (
            both.supported_kinds[0].group.as_str(),
            both.supported_kinds[0].kind.as_str()
        ),
        ("gateway.networking.k8s.io", "HTTPRoute")
    );
    assert_condition(&both.conditions, "ResolvedRefs", false, "InvalidRouteKinds");
    // HTTPRoutes are still served there.
    let gateway = resolution
        .gateway(INFRA, "gateway-supported-and-invalid-route-kind")
        .expect("gateway");
    assert!(gateway.listeners[0].programmed);
}

/// gateway-secret-invalid-reference-grant.yaml
const SECRET_INVALID_REFERENCE_GRANT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-secret-invalid-reference-grant
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: Secret
            name: certificate
            namespace: gateway-conformance-web-backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-namespace
  namespace: gateway-conformance-app-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-group
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: not-the-group-youre-looking-for
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-kind
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-from-namespace
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: not-the-namespace-youre-looking-for
  to:
    - group: ""
      kind: Secret
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-group
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: not-the-group-youre-looking-for
      kind: Secret
      name: not-the-certificate-youre-looking-for
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-kind
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Service
      name: certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata:
  name: reference-grant-wrong-to-name
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - group: ""
      kind: Secret
      name: not-the-certificate-youre-looking-for
"#;

#[test]
fn gateway_secret_invalid_reference_grant() {
    let secret = tls_secret(WEB, "certificate", &["example.com"]);
    let resolution = resolve_with_base(&[SECRET_INVALID_REFERENCE_GRANT, &secret]);
    let https = listener(
        &resolution,
        INFRA,
        "gateway-secret-invalid-reference-grant",
        "https",
    );
    assert_eq!(https.supported_kinds[0].kind, "HTTPRoute");
    assert_eq!(https.attached_routes, 0);
    assert_condition(&https.conditions, "ResolvedRefs", false, "RefNotPermitted");
    assert_condition(&https.conditions, "Programmed", false, "Invalid");
}

/// gateway-secret-missing-reference-grant.yaml
const SECRET_MISSING_REFERENCE_GRANT: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-secret-missing-reference-grant
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: Secret
            name: certificate
            namespace: gateway-conformance-web-backend
"#;

#[test]
fn gateway_secret_missing_reference_grant() {
    let secret = tls_secret(WEB, "certificate", &["example.com"]);
    let resolution = resolve_with_base(&[SECRET_MISSING_REFERENCE_GRANT, &secret]);
    let https = listener(
        &resolution,
        INFRA,
        "gateway-secret-missing-reference-grant",
        "https",
    );
    assert_eq!(https.supported_kinds[0].kind, "HTTPRoute");
    assert_condition(&https.conditions, "ResolvedRefs", false, "RefNotPermitted");
}

/// gateway-secret-reference-grant-all-in-namespace.yaml and
/// gateway-secret-reference-grant-specific.yaml (one grant each way).
#[test]
fn gateway_secret_reference_grant_all_in_namespace_and_specific() {
    let secret = tls_secret(WEB, "certificate", &["example.com"]);
    for to in [
        "{group: '', kind: Secret}",
        "{group: '', kind: Secret, name: certificate}",
    ] {
        let grant = format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: reference-grant
  namespace: gateway-conformance-web-backend
spec:
  from:
    - group: gateway.networking.k8s.io
      kind: Gateway
      namespace: gateway-conformance-infra
  to:
    - {to}
"#
        );
        let resolution = resolve_with_base(&[SECRET_MISSING_REFERENCE_GRANT, &secret, &grant]);
        let https = listener(
            &resolution,
            INFRA,
            "gateway-secret-missing-reference-grant",
            "https",
        );
        for type_ in ["Accepted", "Programmed", "ResolvedRefs"] {
            assert_condition(&https.conditions, type_, true, "");
        }
        let gateway = resolution
            .gateway(INFRA, "gateway-secret-missing-reference-grant")
            .expect("gateway");
        let served = &gateway.listeners[0];
        assert_eq!(served.entrypoint, Some(Entrypoint::Https));
        assert_eq!(served.certificates.len(), 1);
        assert_eq!(
            served.certificates[0].secret.to_string(),
            format!("{WEB}/certificate")
        );
        assert_eq!(served.certificates[0].cert.dns_names, ["example.com"]);
    }
}

/// gateway-invalid-tls-configuration.yaml
const INVALID_TLS_CONFIGURATION: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-nonexistent-secret
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: Secret
            name: nonexistent-certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-unsupported-group
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: wrong.group.company.io
            kind: Secret
            name: tls-validity-checks-certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-unsupported-kind
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: WrongKind
            name: tls-validity-checks-certificate
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-certificate-malformed-secret
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      allowedRoutes:
        namespaces:
          from: All
      tls:
        certificateRefs:
          - group: ""
            kind: Secret
            name: malformed-certificate
---
apiVersion: v1
kind: Secret
metadata:
  name: malformed-certificate
  namespace: gateway-conformance-infra
data:
  tls.crt: SGVsbG8gd29ybGQK
  tls.key: SGVsbG8gd29ybGQK
type: kubernetes.io/tls
"#;

#[test]
fn gateway_invalid_tls_configuration() {
    let valid = tls_secret(INFRA, "tls-validity-checks-certificate", &["example.com"]);
    let resolution = resolve_with_base(&[INVALID_TLS_CONFIGURATION, &valid]);
    for gateway in [
        "gateway-certificate-nonexistent-secret",
        "gateway-certificate-unsupported-group",
        "gateway-certificate-unsupported-kind",
        "gateway-certificate-malformed-secret",
    ] {
        let https = listener(&resolution, INFRA, gateway, "https");
        assert_eq!(https.supported_kinds[0].kind, "HTTPRoute", "{gateway}");
        assert_eq!(https.attached_routes, 0);
        assert_condition(
            &https.conditions,
            "ResolvedRefs",
            false,
            "InvalidCertificateRef",
        );
        let resolved = resolution.gateway(INFRA, gateway).expect("gateway");
        assert!(!resolved.listeners[0].programmed, "{gateway}");
        assert!(resolved.listeners[0].certificates.is_empty());
    }
}

/// gateway-invalid-listeners-unsupported-protocol.yaml
const UNSUPPORTED_PROTOCOL: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-only-unsupported-protocols
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: invalid
      port: 1111
      protocol: INVALID
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-supported-and-unsupported-protocols
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
    - name: invalid
      port: 1111
      protocol: INVALID
"#;

#[test]
fn gateway_invalid_listeners_unsupported_protocol() {
    let resolution = resolve_with_base(&[UNSUPPORTED_PROTOCOL]);
    let only = resolution
        .gateway(INFRA, "gateway-only-unsupported-protocols")
        .expect("gateway");
    assert_condition(
        &only.status.conditions,
        "Accepted",
        false,
        "ListenersNotValid",
    );
    assert!(!only.accepted && !only.programmed);
    let invalid = listener(
        &resolution,
        INFRA,
        "gateway-only-unsupported-protocols",
        "invalid",
    );
    assert!(invalid.supported_kinds.is_empty());
    assert_condition(
        &invalid.conditions,
        "Accepted",
        false,
        "UnsupportedProtocol",
    );

    let both = resolution
        .gateway(INFRA, "gateway-supported-and-unsupported-protocols")
        .expect("gateway");
    assert_condition(
        &both.status.conditions,
        "Accepted",
        true,
        "ListenersNotValid",
    );
    assert_condition(&both.status.conditions, "Programmed", true, "Programmed");
    let http = listener(
        &resolution,
        INFRA,
        "gateway-supported-and-unsupported-protocols",
        "http",
    );
    assert_eq!(http.supported_kinds[0].kind, "HTTPRoute");
    assert_condition(&http.conditions, "Accepted", true, "Accepted");
    let invalid = listener(
        &resolution,
        INFRA,
        "gateway-supported-and-unsupported-protocols",
        "invalid",
    );
    assert!(invalid.supported_kinds.is_empty());
    assert_condition(
        &invalid.conditions,
        "Accepted",
        false,
        "UnsupportedProtocol",
    );
    let served: Vec<&str> = resolution
        .programmed_listeners()
        .filter(|(g, _)| g.id.name == "gateway-supported-and-unsupported-protocols")
        .map(|(_, l)| l.name.as_str())
        .collect();
    assert_eq!(served, ["http"]);
}

/// gateway-with-attached-routes.yaml
const WITH_ATTACHED_ROUTES: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-one-attached-route
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
        from: Selector
        selector:
          matchLabels:
            # This label is added automatically as of K8s 1.22
            # to all namespaces
            kubernetes.io/metadata.name: gateway-conformance-infra
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-one-attached-route
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-two-attached-routes
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http
    port: 80
    protocol: HTTP
    hostname: "foo.example.com"
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: Selector
        selector:
          matchLabels:
            kubernetes.io/metadata.name: gateway-conformance-infra
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-attached-routes
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-3
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-attached-routes
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-not-accepted
  namespace: gateway-conformance-infra
spec:
  hostnames:
  # mismatched hostname here (listener hostname is foo.example.com) triggers NoMatchingListenerHostname reason
  - "not-accepted.test.com"
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-attached-routes
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: unresolved-gateway-with-one-attached-unresolved-route
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: tls
    port: 443
    protocol: HTTPS
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: Selector
        selector:
          matchLabels:
            kubernetes.io/metadata.name: gateway-conformance-infra
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: does-not-exist
      mode: Terminate
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-4
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: unresolved-gateway-with-one-attached-unresolved-route
    namespace: gateway-conformance-infra
    sectionName: tls
  rules:
  - backendRefs:
    - name: does-not-exist
      port: 8080
"#;

#[test]
fn gateway_with_attached_routes() {
    let resolution = resolve_with_base(&[WITH_ATTACHED_ROUTES]);

    // One valid route attached.
    let one = listener(
        &resolution,
        INFRA,
        "gateway-with-one-attached-route",
        "http",
    );
    assert_eq!(one.supported_kinds[0].kind, "HTTPRoute");
    assert_condition(&one.conditions, "Accepted", true, "");
    assert_condition(&one.conditions, "ResolvedRefs", true, "");
    assert_eq!(one.attached_routes, 1);

    // Two valid routes attached; the third does not match the hostname.
    let two = listener(
        &resolution,
        INFRA,
        "gateway-with-two-attached-routes",
        "http",
    );
    assert_condition(&two.conditions, "Accepted", true, "");
    assert_condition(&two.conditions, "ResolvedRefs", true, "");
    assert_eq!(two.attached_routes, 2);
    let not_accepted = parent(
        &resolution,
        INFRA,
        "http-route-not-accepted",
        INFRA,
        "gateway-with-two-attached-routes",
    );
    assert_condition(
        &not_accepted.conditions,
        "Accepted",
        false,
        "NoMatchingListenerHostname",
    );
    let gateway = resolution
        .gateway(INFRA, "gateway-with-two-attached-routes")
        .expect("gateway");
    let attached: Vec<(&str, &[String])> = gateway.listeners[0]
        .routes
        .iter()
        .map(|a| {
            (
                resolution.routes[a.route].id.name.as_str(),
                a.hostnames.as_slice(),
            )
        })
        .collect();
    let foo = ["foo.example.com".to_owned()];
    assert_eq!(
        attached,
        [("http-route-2", &foo[..]), ("http-route-3", &foo[..])]
    );

    // AttachedRoutes counts even when the Gateway has unresolved refs.
    let tls = listener(
        &resolution,
        INFRA,
        "unresolved-gateway-with-one-attached-unresolved-route",
        "tls",
    );
    assert_eq!(tls.supported_kinds[0].kind, "HTTPRoute");
    assert_condition(&tls.conditions, "Programmed", false, "");
    assert_condition(&tls.conditions, "ResolvedRefs", false, "");
    assert_eq!(tls.attached_routes, 1);
    let route = parent(
        &resolution,
        INFRA,
        "http-route-4",
        INFRA,
        "unresolved-gateway-with-one-attached-unresolved-route",
    );
    assert_condition(&route.conditions, "ResolvedRefs", false, "BackendNotFound");
}

/// gateway-with-attached-routes-with-port-8080.yaml
const WITH_PORT_8080: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-with-two-listeners-and-one-attached-route
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: http-unattached
    port: 8080
    protocol: HTTP
    allowedRoutes:
      kinds:
      - kind: HTTPRoute
      namespaces:
        from: All
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
  name: http-route-4-port-8080
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-with-two-listeners-and-one-attached-route
    namespace: gateway-conformance-infra
    sectionName: http
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"#;

#[test]
fn gateway_with_attached_routes_with_port_8080() {
    let gw = "gateway-with-two-listeners-and-one-attached-route";
    // sluice's HTTP entrypoint on 8080 (--http-addr :8080): both listeners served,
    // on one entrypoint, without hostnames: they conflict.
    let snap = snapshot(&[BASE, WITH_PORT_8080]);
    let on_8080 = ResolveSettings {
        http_port: 8080,
        ..settings()
    };
    let resolution = resolve(&snap, &on_8080);
    let unattached = listener(&resolution, INFRA, gw, "http-unattached");
    assert_condition(
        &unattached.conditions,
        "Conflicted",
        true,
        "HostnameConflict",
    );

    // With the entrypoint elsewhere, 8080 is not available; the route still attaches to `http`.
    let resolution = resolve(&snap, &settings());
    let unattached = listener(&resolution, INFRA, gw, "http-unattached");
    assert_condition(&unattached.conditions, "Accepted", false, "PortUnavailable");
    assert_eq!(unattached.attached_routes, 0);
    let http = listener(&resolution, INFRA, gw, "http");
    for type_ in ["Accepted", "ResolvedRefs", "Programmed"] {
        assert_condition(&http.conditions, type_, true, "");
    }
    assert_eq!(http.attached_routes, 1);
}

#[test]
fn listener_ports_map_to_entrypoints() {
    let gateway = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ports, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: web, port: 80, protocol: HTTP, hostname: a.example.com}
  - {name: web-alt, port: 8000, protocol: HTTP, hostname: b.example.com}
  - {name: websecure, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: cert}]}}
  - {name: websecure-alt, port: 8443, protocol: HTTPS, hostname: b.example.com, tls: {certificateRefs: [{name: cert}]}}
  - {name: http-on-443, port: 8443, protocol: HTTP, hostname: c.example.com}
  - {name: elsewhere, port: 9000, protocol: HTTP}
  - {name: tcp, port: 5432, protocol: TCP}
"#;
    let secret = tls_secret(INFRA, "cert", &["a.example.com", "b.example.com"]);
    let snap = snapshot(&[BASE, gateway, &secret]);
    let resolution = resolve(
        &snap,
        &ResolveSettings {
            http_port: 8000,
            https_port: 8443,
            ..settings()
        },
    );
    let resolved = resolution.gateway(INFRA, "ports").expect("gateway");
    let entrypoints: Vec<(&str, Option<Entrypoint>, bool)> = resolved
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.entrypoint, l.programmed))
        .collect();
    assert_eq!(
        entrypoints,
        [
            ("web", Some(Entrypoint::Http), true),
            ("web-alt", Some(Entrypoint::Http), true),
            ("websecure", Some(Entrypoint::Https), true),
            ("websecure-alt", Some(Entrypoint::Https), false),
            ("http-on-443", None, false),
            ("elsewhere", None, false),
            ("tcp", None, false),
        ]
    );
    // 8443 carries HTTP and HTTPS listeners: both conflict (and HTTP is not
    // served there anyway).
    for (name, reason) in [
        ("websecure-alt", "ProtocolConflict"),
        ("http-on-443", "PortUnavailable"),
    ] {
        let status = listener(&resolution, INFRA, "ports", name);
        assert_condition(&status.conditions, "Conflicted", true, "ProtocolConflict");
        assert_condition(&status.conditions, "Accepted", false, reason);
    }
    let elsewhere = listener(&resolution, INFRA, "ports", "elsewhere");
    assert_condition(&elsewhere.conditions, "Accepted", false, "PortUnavailable");
    assert_condition(&elsewhere.conditions, "Conflicted", false, "NoConflicts");
    let tcp = listener(&resolution, INFRA, "ports", "tcp");
    assert_condition(&tcp.conditions, "Accepted", false, "UnsupportedProtocol");
    assert_condition(
        &resolved.status.conditions,
        "Accepted",
        true,
        "ListenersNotValid",
    );
}

#[test]
fn listeners_with_one_hostname_on_one_port_conflict_and_https_overlaps_are_reported() {
    let gateway = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: conflicts, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: a, port: 80, protocol: HTTP, hostname: same.example.com}
  - {name: b, port: 80, protocol: HTTP, hostname: SAME.example.com}
  - {name: c, port: 80, protocol: HTTP, hostname: other.example.com}
  - {name: wild, port: 443, protocol: HTTPS, hostname: '*.example.com', tls: {certificateRefs: [{name: cert}]}}
  - {name: exact, port: 443, protocol: HTTPS, hostname: foo.example.com, tls: {certificateRefs: [{name: cert}]}}
  - {name: apart, port: 443, protocol: HTTPS, hostname: foo.example.org, tls: {certificateRefs: [{name: cert}]}}
"#;
    let secret = tls_secret(INFRA, "cert", &["*.example.com", "foo.example.org"]);
    let resolution = resolve_with_base(&[gateway, &secret]);
    for name in ["a", "b"] {
        let status = listener(&resolution, INFRA, "conflicts", name);
        assert_condition(&status.conditions, "Conflicted", true, "HostnameConflict");
        assert_condition(&status.conditions, "Accepted", false, "HostnameConflict");
        assert_condition(&status.conditions, "Programmed", false, "Invalid");
    }
    let c = listener(&resolution, INFRA, "conflicts", "c");
    assert_condition(&c.conditions, "Conflicted", false, "NoConflicts");
    assert_condition(&c.conditions, "Programmed", true, "Programmed");
    for name in ["wild", "exact"] {
        let status = listener(&resolution, INFRA, "conflicts", name);
        assert_condition(
            &status.conditions,
            "OverlappingTLSConfig",
            true,
            "OverlappingHostnames",
        );
        assert_condition(&status.conditions, "Accepted", true, "Accepted");
    }
    let apart = listener(&resolution, INFRA, "conflicts", "apart");
    assert!(super::super::conditions::find(&apart.conditions, "OverlappingTLSConfig").is_none());
    let gateway = resolution.gateway(INFRA, "conflicts").expect("gateway");
    let message = &super::super::conditions::find(&gateway.status.conditions, "Accepted")
        .expect("Accepted")
        .message;
    assert!(
        message.contains("a (HostnameConflict") && message.contains("accepted listeners: c"),
        "{message}"
    );
}

/// gateway-modify-listeners.yaml, before and after the suite's patches.
const MODIFY_LISTENERS: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-add-listener
  namespace: gateway-conformance-infra
  generation: 1
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "secure.test.com"
    allowedRoutes:
      namespaces:
        from: All
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: tls-validity-checks-certificate
        namespace: gateway-conformance-infra
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-1
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-add-listener
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-remove-listener
  namespace: gateway-conformance-infra
  generation: 1
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
  - name: https
    port: 443
    protocol: HTTPS
    hostname: "secure.test.com"
    allowedRoutes:
      namespaces:
        from: All
    tls:
      certificateRefs:
      - group: ""
        kind: Secret
        name: tls-validity-checks-certificate
        namespace: gateway-conformance-infra
  - name: http
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: All
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: http-route-2
  namespace: gateway-conformance-infra
spec:
  parentRefs:
  - kind: Gateway
    name: gateway-remove-listener
    namespace: gateway-conformance-infra
  rules:
  - backendRefs:
    - name: infra-backend-v1
      port: 8080
"#;

#[test]
fn gateway_modify_listeners() {
    let secret = tls_secret(INFRA, "tls-validity-checks-certificate", &["*.test.com"]);
    let before = resolve_with_base(&[MODIFY_LISTENERS, &secret]);
    let https = listener(&before, INFRA, "gateway-add-listener", "https");
    assert_eq!(https.attached_routes, 1);
    assert_eq!(
        before
            .gateway(INFRA, "gateway-add-listener")
            .expect("gw")
            .status
            .listeners
            .len(),
        1
    );

    // Add a listener (the suite's merge patch bumps the generation).
    let added = MODIFY_LISTENERS
        .replacen("  generation: 1\n", "  generation: 2\n", 1)
        .replacen(
            "        namespace: gateway-conformance-infra\n---",
            "        namespace: gateway-conformance-infra\n  - name: http\n    port: 80\n    protocol: HTTP\n    hostname: data.test.com\n    allowedRoutes:\n      namespaces:\n        from: All\n---",
            1,
        );
    let after = resolve_with_base(&[&added, &secret]);
    let gateway = after.gateway(INFRA, "gateway-add-listener").expect("gw");
    for l in &gateway.status.listeners {
        assert_eq!(l.supported_kinds[0].kind, "HTTPRoute");
        assert_condition(&l.conditions, "Accepted", true, "");
        assert_condition(&l.conditions, "ResolvedRefs", true, "");
        assert_eq!(l.attached_routes, 1, "{}", l.name);
        assert!(l
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2)));
    }
    assert!(gateway
        .status
        .conditions
        .iter()
        .all(|c| c.observed_generation == Some(2)));
    let hosts: Vec<(&str, &[String])> = gateway
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.routes[0].hostnames.as_slice()))
        .collect();
    assert_eq!(
        hosts,
        [
            ("https", &["secure.test.com".to_owned()][..]),
            ("http", &["data.test.com".to_owned()][..])
        ]
    );

    // Remove the https listener.
    let removed = MODIFY_LISTENERS.replace(
        "  generation: 1\nspec:\n  gatewayClassName: \"{GATEWAY_CLASS_NAME}\"\n  listeners:\n  - name: https\n    port: 443\n    protocol: HTTPS\n    hostname: \"secure.test.com\"\n    allowedRoutes:\n      namespaces:\n        from: All\n    tls:\n      certificateRefs:\n      - group: \"\"\n        kind: Secret\n        name: tls-validity-checks-certificate\n        namespace: gateway-conformance-infra\n  - name: http",
        "  generation: 2\nspec:\n  gatewayClassName: \"{GATEWAY_CLASS_NAME}\"\n  listeners:\n  - name: http",
    );
    assert_ne!(removed, MODIFY_LISTENERS);
    let after = resolve_with_base(&[&removed, &secret]);
    let gateway = after.gateway(INFRA, "gateway-remove-listener").expect("gw");
    assert_eq!(gateway.status.listeners.len(), 1);
    let http = &gateway.status.listeners[0];
    assert_eq!(http.name, "http");
    assert_condition(&http.conditions, "Accepted", true, "");
    assert_condition(&http.conditions, "ResolvedRefs", true, "");
    assert_eq!(http.attached_routes, 1);
}

/// gateway-observed-generation-bump.yaml
#[test]
fn gateway_observed_generation_bump() {
    let gateway = |generation: i64, extra: &str| {
        format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-observed-generation-bump
  namespace: gateway-conformance-infra
  generation: {generation}
spec:
  gatewayClassName: "{{GATEWAY_CLASS_NAME}}"
  listeners:
    - name: http
      hostname: "bar.com"
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: All
{extra}"#
        )
    };
    for (generation, extra) in [
        (1, ""),
        (
            2,
            "    - {name: alternate, hostname: foo.com, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}\n",
        ),
    ] {
        let resolution = resolve_with_base(&[&gateway(generation, extra)]);
        let resolved = resolution
            .gateway(INFRA, "gateway-observed-generation-bump")
            .expect("gateway");
        let all = resolved
            .status
            .conditions
            .iter()
            .chain(resolved.status.listeners.iter().flat_map(|l| &l.conditions));
        for condition in all {
            assert_eq!(condition.observed_generation, Some(generation), "{condition:?}");
        }
        assert_condition(&resolved.status.conditions, "Accepted", true, "Accepted");
        assert_eq!(resolved.status.listeners.len(), generation as usize);
    }
}

/// gatewayclass-observed-generation-bump.yaml
#[test]
fn gatewayclass_observed_generation_bump() {
    for (generation, description) in [(1, "old"), (2, "new")] {
        let class = format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: gatewayclass-observed-generation-bump\n  generation: {generation}\nspec:\n  controllerName: \"sluice.dev/gateway-controller\"\n  description: \"{description}\"\n"
        );
        let resolution = resolve(&snapshot(&[&class]), &settings());
        let [resolved] = &resolution.classes[..] else {
            panic!("one class: {:?}", resolution.classes);
        };
        assert!(resolved.accepted);
        assert_condition(&resolved.status.conditions, "Accepted", true, "Accepted");
        assert_condition(
            &resolved.status.conditions,
            "SupportedVersion",
            true,
            "SupportedVersion",
        );
        assert!(resolved
            .status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(generation)));
    }
}

#[test]
fn gateway_class_with_parameters_is_not_accepted_and_its_gateways_not_served() {
    let class = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice}
spec:
  controllerName: sluice.dev/gateway-controller
  parametersRef: {group: example.com, kind: Config, name: x}
"#;
    let base_without_class = BASE.replacen(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n  name: sluice\n  generation: 1\nspec:\n  controllerName: sluice.dev/gateway-controller\n---",
        "",
        1,
    );
    let resolution = resolve(&snapshot(&[&base_without_class, class]), &settings());
    assert!(!resolution.classes[0].accepted);
    assert_condition(
        &resolution.classes[0].status.conditions,
        "Accepted",
        false,
        "InvalidParameters",
    );
    let gateway = resolution
        .gateway(INFRA, "same-namespace")
        .expect("gateway");
    assert_condition(&gateway.status.conditions, "Accepted", false, "Invalid");
    assert_condition(&gateway.status.conditions, "Programmed", false, "Invalid");
    assert_eq!(resolution.programmed_listeners().count(), 0);
}

#[test]
fn gateway_class_lists_supported_features_sorted() {
    let with_features = ResolveSettings {
        supported_features: vec!["HTTPRoute".into(), "Gateway".into(), "HTTPRoute".into()],
        ..settings()
    };
    let resolution = resolve(&snapshot(&[BASE]), &with_features);
    let json = serde_json::to_value(&resolution.classes[0].status).expect("serializes");
    assert_eq!(
        json["supportedFeatures"],
        serde_json::json!([{"name": "Gateway"}, {"name": "HTTPRoute"}])
    );
    assert_eq!(json["conditions"][0]["type"], "Accepted");
    assert_eq!(json["conditions"][0]["observedGeneration"], 1);
}

/// gateway-static-addresses.yaml (the suite's three steps) and
/// gateway-optional-address-value.yaml.
#[test]
fn gateway_static_and_optional_addresses() {
    let gateway = |addresses: &str| {
        format!(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-static-addresses
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{{GATEWAY_CLASS_NAME}}"
  addresses:
{addresses}
  listeners:
  - name: http
    port: 80
    protocol: HTTP
"#
        )
    };
    let status_of = |addresses: &str| {
        let resolution = resolve_with_base(&[&gateway(addresses)]);
        resolution
            .gateway(INFRA, "gateway-static-addresses")
            .expect("gateway")
            .status
            .clone()
    };
    let invalid = "  - {type: test/fake-invalid-type, value: 'fake address teehee!'}\n";
    let unusable = "  - {value: 203.0.113.99}\n";
    let usable = "  - {value: 192.0.2.10}\n";

    let status = status_of(&format!("{invalid}{unusable}{usable}"));
    assert_condition(&status.conditions, "Accepted", false, "UnsupportedAddress");
    let status = status_of(&format!("{unusable}{usable}"));
    assert_condition(&status.conditions, "Accepted", true, "Accepted");
    assert_condition(&status.conditions, "Programmed", false, "AddressNotUsable");
    let status = status_of(usable);
    assert_condition(&status.conditions, "Accepted", true, "Accepted");
    assert_condition(&status.conditions, "Programmed", true, "Programmed");
    let values: Vec<&str> = status.addresses.iter().map(|a| a.value.as_str()).collect();
    assert_eq!(values, ["192.0.2.10"]);

    // No value: sluice's address of that type.
    let status = status_of("  - type: IPAddress\n");
    assert_condition(&status.conditions, "Programmed", true, "Programmed");
    assert_eq!(status.addresses[0].type_, "IPAddress");
    let status = status_of("  - type: Hostname\n");
    assert_condition(
        &status.conditions,
        "Programmed",
        false,
        "AddressNotAssigned",
    );

    // Where the addresses are not known (the compiler), what the Gateway asks
    // for is taken as usable, so it is served whatever the status writer says.
    let unknown = ResolveSettings {
        addresses_unknown: true,
        ..settings()
    };
    let snap = snapshot(&[BASE, &gateway(unusable)]);
    let resolution = resolve(&snap, &unknown);
    let gw = resolution
        .gateway(INFRA, "gateway-static-addresses")
        .expect("gateway");
    assert!(gw.programmed);
    assert_eq!(gw.status.addresses[0].value, "203.0.113.99");
}

#[test]
fn gateway_status_serializes_as_the_api_schema() {
    let resolution = resolve_with_base(&[]);
    let gateway = resolution
        .gateway(INFRA, "same-namespace")
        .expect("gateway");
    let json = serde_json::to_value(&gateway.status).expect("serializes");
    assert_eq!(
        json["addresses"],
        serde_json::json!([{"type": "IPAddress", "value": "192.0.2.10"}])
    );
    assert_eq!(
        json["listeners"][0]["supportedKinds"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
    );
    assert_eq!(json["listeners"][0]["attachedRoutes"], 0);
    let types: Vec<&str> = json["listeners"][0]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .map(|c| c["type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        ["Accepted", "Programmed", "Conflicted", "ResolvedRefs"]
    );
    assert!(json["conditions"][0].get("lastTransitionTime").is_none());
}
