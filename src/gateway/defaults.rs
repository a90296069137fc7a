//! The defaults the API server fills in Gateway API objects (from the v1.6
//! CRDs' `default:` markers), applied by sluice too so that objects from
//! files, which get no defaulting, mean the same as objects from a cluster.
//!
//! Two mechanisms, one result ([`super::decode`] runs both):
//!
//! - Field defaults are the `Default` impls of the [`super::types`], which
//!   serde uses for every missing field:
//!
//!   | field | default |
//!   |---|---|
//!   | `HTTPRoute` `parentRefs[].group` / `.kind` | `gateway.networking.k8s.io` / `Gateway` |
//!   | `rules[].matches[].path` | `{type: PathPrefix, value: /}` (each of the two too) |
//!   | `matches[].headers[].type`, `queryParams[].type` | `Exact` |
//!   | `backendRefs[].group` / `.kind` / `.weight` | `""` / `Service` / `1` |
//!   | `requestMirror.backendRef.group` / `.kind` | `""` / `Service` |
//!   | `requestMirror.fraction.denominator` | `100` |
//!   | `requestRedirect.statusCode` | `302` |
//!   | `cors.maxAge` | `5` |
//!   | `Gateway` `listeners[].allowedRoutes` | `{namespaces: {from: Same}}` (and `from: Same` inside a given `namespaces`) |
//!   | `allowedRoutes.kinds[].group` | `gateway.networking.k8s.io` |
//!   | `listeners[].tls.mode` | `Terminate` |
//!   | `listeners[].tls.certificateRefs[].group` / `.kind` | `""` / `Secret` |
//!   | `spec.addresses[].type` | `IPAddress` |
//!
//! - List defaults, which no field default can express, are the functions
//!   below, one per kind: an HTTPRoute without rules gets one rule, a rule
//!   without matches gets `PathPrefix /`. The other kinds have none (the
//!   GatewayClass, ReferenceGrant and BackendTLSPolicy CRDs declare no
//!   defaults at all); their functions exist so that every kind is decoded
//!   the same way and a default added later has its place.

use super::types::{HttpRouteMatch, HttpRouteRule};
use super::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};

/// GatewayClass: no defaults in the CRD.
pub fn gateway_class(_class: &mut GatewayClass) {}

/// Gateway: every default is a field default (`allowedRoutes`, TLS mode,
/// certificate reference kind, address type); nothing list-wide.
pub fn gateway(_gateway: &mut Gateway) {}

/// HTTPRoute: a route without rules has one rule matching `PathPrefix /`
/// (the CRD's `rules` default), and a rule without matches matches
/// `PathPrefix /` (the `matches` default; the specification gives an empty
/// list the same meaning, so an explicit `matches: []` is treated alike).
pub fn http_route(route: &mut HttpRoute) {
    if route.spec.rules.is_empty() {
        route.spec.rules.push(HttpRouteRule::default());
    }
    for rule in &mut route.spec.rules {
        if rule.matches.is_empty() {
            rule.matches.push(HttpRouteMatch::default());
        }
    }
}

/// ReferenceGrant: no defaults in the CRD.
pub fn reference_grant(_grant: &mut ReferenceGrant) {}

/// BackendTLSPolicy: no defaults in the CRD.
pub fn backend_tls_policy(_policy: &mut BackendTlsPolicy) {}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::super::types::*;
    use super::super::{decode, GatewayKind, GROUP};

    fn yaml<K: GatewayKind>(text: &str) -> K {
        let value: Value = serde_yaml_ng::from_str(text).expect("YAML");
        decode(value).expect("decodes")
    }

    #[test]
    fn http_route_defaults() {
        let route: HttpRoute = yaml(
            "
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw}, {name: gw2, sectionName: https, port: 443, namespace: infra}]
  hostnames: [example.com]
  rules:
  - backendRefs: [{name: web, port: 80}]
  - matches:
    - headers: [{name: x-env, value: canary}]
      queryParams: [{name: q, value: '1', type: RegularExpression}]
      method: GET
    - path: {value: /api}
    - path: {type: Exact}
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https}
    - type: RequestMirror
      requestMirror: {backendRef: {name: shadow, port: 8080}, fraction: {numerator: 5}}
    - type: CORS
      cors: {allowOrigins: ['*']}
    backendRefs:
    - {name: a, port: 80, weight: 0, filters: [{type: URLRewrite, urlRewrite: {hostname: x}}]}
    - {name: b, namespace: other, port: 80, group: '', kind: Service}
",
        );
        let spec = &route.spec;
        let parent = &spec.parent_refs[0];
        assert_eq!(
            (
                parent.group.as_str(),
                parent.kind.as_str(),
                parent.name.as_str()
            ),
            (GROUP, "Gateway", "gw")
        );
        assert_eq!(parent.namespace, None, "no namespace default");
        let second = &spec.parent_refs[1];
        assert_eq!(
            (
                second.section_name.as_deref(),
                second.port,
                second.namespace.as_deref()
            ),
            (Some("https"), Some(443), Some("infra"))
        );

        // A rule without matches: one PathPrefix / match.
        let first = &spec.rules[0];
        assert_eq!(first.matches, [HttpRouteMatch::default()]);
        assert_eq!(first.matches[0].path.type_, PathMatchType::PathPrefix);
        assert_eq!(first.matches[0].path.value, "/");
        let backend = &first.backend_refs[0];
        assert_eq!(
            (
                backend.group.as_str(),
                backend.kind.as_str(),
                backend.weight
            ),
            ("", "Service", 1)
        );
        assert_eq!(backend.port, Some(80));

        let rule = &spec.rules[1];
        let m = &rule.matches;
        // A match without path gets PathPrefix /; header and query types default to Exact.
        assert_eq!(m[0].path, HttpPathMatch::default());
        assert_eq!(m[0].headers[0].type_, StringMatchType::Exact);
        assert_eq!(
            m[0].query_params[0].type_,
            StringMatchType::RegularExpression
        );
        assert_eq!(m[0].method.as_deref(), Some("GET"));
        // A path without type is PathPrefix; without value, `/`.
        assert_eq!(
            (&m[1].path.type_, m[1].path.value.as_str()),
            (&PathMatchType::PathPrefix, "/api")
        );
        assert_eq!(
            (&m[2].path.type_, m[2].path.value.as_str()),
            (&PathMatchType::Exact, "/")
        );

        let Ok(FilterAction::RequestRedirect(redirect)) = rule.filters[0].action() else {
            panic!("a redirect: {:?}", rule.filters[0]);
        };
        assert_eq!(redirect.status_code, 302);
        assert_eq!(redirect.scheme.as_deref(), Some("https"));
        let Ok(FilterAction::RequestMirror(mirror)) = rule.filters[1].action() else {
            panic!("a mirror");
        };
        assert_eq!(
            (
                mirror.backend_ref.group.as_str(),
                mirror.backend_ref.kind.as_str()
            ),
            ("", "Service")
        );
        assert_eq!(
            mirror.fraction,
            Some(Fraction {
                numerator: 5,
                denominator: 100
            })
        );
        let Ok(FilterAction::Cors(cors)) = rule.filters[2].action() else {
            panic!("CORS");
        };
        assert_eq!(cors.max_age, 5);

        // An explicit weight 0 stays 0; backend filters decode.
        assert_eq!(rule.backend_refs[0].weight, 0);
        assert!(matches!(
            rule.backend_refs[0].filters[0].action(),
            Ok(FilterAction::UrlRewrite(UrlRewrite { hostname: Some(h), .. })) if h == "x"
        ));
        assert_eq!(rule.backend_refs[1].namespace.as_deref(), Some("other"));
    }

    #[test]
    fn http_route_without_rules_gets_one_catch_all_rule() {
        let route: HttpRoute = yaml("metadata: {name: r}\nspec:\n  parentRefs: [{name: gw}]\n");
        assert_eq!(route.spec.rules.len(), 1);
        assert_eq!(route.spec.rules[0].matches, [HttpRouteMatch::default()]);
        assert!(route.spec.rules[0].backend_refs.is_empty());
        // An explicit empty list means the same as none.
        let route: HttpRoute = yaml("metadata: {name: r}\nspec:\n  rules: [{matches: []}]\n");
        assert_eq!(route.spec.rules[0].matches, [HttpRouteMatch::default()]);
        // Without spec at all.
        let route: HttpRoute = yaml("metadata: {name: r}\n");
        assert_eq!(route.spec.rules.len(), 1);
    }

    #[test]
    fn http_route_experimental_and_unknown_values_decode() {
        let route: HttpRoute = yaml(
            "
metadata: {name: r}
spec:
  rules:
  - name: api
    matches: [{path: {type: ImplementationSpecific, value: /x}}]
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {codes: [500, 503], attempts: 3, backoff: 100ms}
    sessionPersistence: {sessionName: s}
    filters:
    - type: ExternalAuth
      externalAuth: {protocol: HTTP, backendRef: {name: auth}}
    - type: RequestHeaderModifier
",
        );
        let rule = &route.spec.rules[0];
        assert_eq!(rule.name.as_deref(), Some("api"));
        assert_eq!(
            rule.matches[0].path.type_,
            PathMatchType::Other("ImplementationSpecific".into())
        );
        assert_eq!(
            rule.timeouts,
            Some(HttpRouteTimeouts {
                request: Some("10s".into()),
                backend_request: Some("2s".into())
            })
        );
        assert_eq!(
            rule.retry,
            Some(HttpRouteRetry {
                codes: vec![500, 503],
                attempts: Some(3),
                backoff: Some("100ms".into())
            })
        );
        assert_eq!(
            rule.filters[0].action(),
            Err(FilterError::Unsupported("ExternalAuth".into()))
        );
        assert_eq!(
            rule.filters[1].action(),
            Err(FilterError::Missing {
                kind: "RequestHeaderModifier",
                field: "requestHeaderModifier"
            })
        );
    }

    #[test]
    fn gateway_defaults() {
        let gateway: Gateway = yaml(
            "
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: sluice
  addresses: [{value: 192.0.2.1}]
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - name: https
    port: 443
    protocol: HTTPS
    hostname: '*.example.com'
    tls: {certificateRefs: [{name: wildcard}, {name: other, namespace: certs, kind: Secret, group: ''}]}
    allowedRoutes: {kinds: [{kind: HTTPRoute}]}
  - name: shared
    port: 8080
    protocol: example.com/custom
    allowedRoutes:
      namespaces: {from: Selector, selector: {matchLabels: {shared: 'true'}}}
  - {name: same, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {}}}
",
        );
        let spec = &gateway.spec;
        assert_eq!(spec.gateway_class_name, "sluice");
        assert_eq!(spec.addresses[0].type_, "IPAddress");
        let [http, https, shared, same] = &spec.listeners[..] else {
            panic!("four listeners");
        };
        assert_eq!(http.protocol, ProtocolType::Http);
        assert_eq!(http.allowed_routes, AllowedRoutes::default());
        assert_eq!(http.allowed_routes.namespaces.from, FromNamespaces::Same);
        assert!(http.tls.is_none() && http.hostname.is_none());

        assert_eq!(https.protocol, ProtocolType::Https);
        assert_eq!(https.hostname.as_deref(), Some("*.example.com"));
        let tls = https.tls.as_ref().expect("tls");
        assert_eq!(tls.mode, TlsModeType::Terminate);
        let cert = &tls.certificate_refs[0];
        assert_eq!(
            (cert.group.as_str(), cert.kind.as_str(), cert.name.as_str()),
            ("", "Secret", "wildcard")
        );
        assert_eq!(tls.certificate_refs[1].namespace.as_deref(), Some("certs"));
        assert_eq!(
            https.allowed_routes.kinds,
            [RouteGroupKind {
                group: GROUP.into(),
                kind: "HTTPRoute".into()
            }]
        );
        // `kinds` given, `namespaces` not: still `from: Same`.
        assert_eq!(https.allowed_routes.namespaces.from, FromNamespaces::Same);

        assert_eq!(
            shared.protocol,
            ProtocolType::Other("example.com/custom".into())
        );
        let namespaces = &shared.allowed_routes.namespaces;
        assert_eq!(namespaces.from, FromNamespaces::Selector);
        let labels = namespaces
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .expect("matchLabels");
        assert_eq!(labels["shared"], "true");
        assert_eq!(same.allowed_routes.namespaces.from, FromNamespaces::Same);
    }

    #[test]
    fn gateway_class_has_no_defaults() {
        let class: GatewayClass = yaml(
            "metadata: {name: sluice}\nspec: {controllerName: sluice.dev/gateway-controller}\n",
        );
        assert_eq!(class.spec.controller_name, super::super::CONTROLLER_NAME);
        assert_eq!(class.spec.parameters_ref, None);
        assert_eq!(class.name(), "sluice");
    }

    #[test]
    fn reference_grant_has_no_defaults() {
        let grant: ReferenceGrant = yaml(
            "
metadata: {name: g, namespace: backends}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]
  to: [{group: '', kind: Service}, {group: '', kind: Secret, name: tls}]
",
        );
        assert_eq!(grant.spec.from[0].namespace, "apps");
        assert_eq!(grant.spec.to[0].name, None);
        assert_eq!(grant.spec.to[1].name.as_deref(), Some("tls"));
    }

    #[test]
    fn backend_tls_policy_has_no_defaults() {
        let policy: BackendTlsPolicy = yaml(
            "
metadata: {name: p, namespace: apps}
spec:
  targetRefs: [{group: '', kind: Service, name: web, sectionName: https}]
  validation:
    caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}]
    hostname: web.apps.svc
    subjectAltNames: [{type: Hostname, hostname: web.example}, {type: URI, uri: 'spiffe://td/web'}]
  options: {example.com/opt: x}
",
        );
        let spec = &policy.spec;
        assert_eq!(spec.target_refs[0].section_name.as_deref(), Some("https"));
        let validation = &spec.validation;
        assert_eq!(validation.ca_certificate_refs[0].kind, "ConfigMap");
        assert_eq!(validation.well_known_ca_certificates, None);
        assert_eq!(validation.hostname, "web.apps.svc");
        assert_eq!(
            validation.subject_alt_names[1].type_,
            SubjectAltNameType::Uri
        );
        assert_eq!(spec.options["example.com/opt"], "x");
        let system: BackendTlsPolicy = yaml(
            "metadata: {name: p}\nspec: {validation: {wellKnownCACertificates: System, hostname: h}}\n",
        );
        assert_eq!(
            system.spec.validation.well_known_ca_certificates.as_deref(),
            Some("System")
        );
    }

    #[test]
    fn serialized_defaults_are_what_the_api_server_stores() {
        let route: HttpRoute = decode(json!({
            "metadata": {"name": "r"},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
        }))
        .expect("decodes");
        let spec = serde_json::to_value(&route.spec).expect("serializes");
        assert_eq!(
            spec,
            json!({
                "parentRefs": [{"group": GROUP, "kind": "Gateway", "name": "gw"}],
                "hostnames": [],
                "rules": [{
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}],
                }],
            })
        );
    }
}
