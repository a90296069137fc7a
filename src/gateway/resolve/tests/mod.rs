//! The conformance suite's scenarios (sigs.k8s.io/gateway-api v1.6,
//! `conformance/tests/*.yaml` and `*.go`), translated: the manifests are the
//! suite's, read through the file provider's decode path, and the assertions
//! are what the suite checks on status (conditions by type, status and
//! reason; supported kinds; attached routes).

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};

use super::conditions::Condition;
use super::status::{ListenerStatus, RouteParentStatus};
use super::{resolve, Resolution, ResolveSettings};
use crate::router::Snapshot;
use crate::watch::parse_manifests;

mod gateway;
mod policy;
mod route;

/// The suite's namespaces.
const INFRA: &str = "gateway-conformance-infra";
const WEB: &str = "gateway-conformance-web-backend";
const APP: &str = "gateway-conformance-app-backend";

/// `conformance/base/manifests.yaml` (the parts status depends on), with
/// `{GATEWAY_CLASS_NAME}` as `sluice`, plus sluice's GatewayClass and one of
/// another controller.
const BASE: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: sluice
  generation: 1
spec:
  controllerName: sluice.dev/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: other
spec:
  controllerName: example.com/other-controller
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-conformance-infra
  labels:
    gateway-conformance: infra
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-conformance-app-backend
  labels:
    gateway-conformance: backend
---
apiVersion: v1
kind: Namespace
metadata:
  name: gateway-conformance-web-backend
  labels:
    gateway-conformance: backend
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: same-namespace
  namespace: gateway-conformance-infra
  generation: 1
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: Same
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: all-namespaces
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
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: backend-namespaces
  namespace: gateway-conformance-infra
spec:
  gatewayClassName: "{GATEWAY_CLASS_NAME}"
  listeners:
    - name: http
      port: 80
      protocol: HTTP
      allowedRoutes:
        namespaces:
          from: Selector
          selector:
            matchLabels:
              gateway-conformance: backend
---
apiVersion: v1
kind: Service
metadata:
  name: infra-backend-v1
  namespace: gateway-conformance-infra
spec:
  ports:
    - name: first-port
      port: 8080
    - name: second-port
      appProtocol: kubernetes.io/h2c
      port: 8081
---
apiVersion: v1
kind: Service
metadata:
  name: infra-backend-v2
  namespace: gateway-conformance-infra
spec:
  ports:
    - port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: infra-backend-v3
  namespace: gateway-conformance-infra
spec:
  ports:
    - port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: app-backend-v1
  namespace: gateway-conformance-app-backend
spec:
  ports:
    - port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: app-backend-v2
  namespace: gateway-conformance-app-backend
spec:
  ports:
    - port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: web-backend
  namespace: gateway-conformance-web-backend
spec:
  ports:
    - port: 8080
"#;

/// The settings of most tests: ports 80 and 443, one address.
fn settings() -> ResolveSettings {
    ResolveSettings {
        addresses: vec!["192.0.2.10".to_owned()],
        ..ResolveSettings::default()
    }
}

/// A snapshot of `documents` (YAML streams), decoded as the file provider
/// decodes them.
fn snapshot(documents: &[&str]) -> Snapshot {
    let text = documents
        .join("\n---\n")
        .replace("{GATEWAY_CLASS_NAME}", "sluice");
    let parsed = parse_manifests("conformance.yaml", text.as_bytes());
    assert!(parsed.diagnostics.is_empty(), "{:#?}", parsed.diagnostics);
    let mut snapshot = Snapshot::default();
    for loaded in &parsed.objects {
        loaded.object.push_into(&mut snapshot);
    }
    snapshot
}

/// Resolves the base manifests plus `documents` with [`settings`].
fn resolve_with_base(documents: &[&str]) -> Resolution {
    let mut all = vec![BASE];
    all.extend_from_slice(documents);
    resolve(&snapshot(&all), &settings())
}

/// A `kubernetes.io/tls` Secret for `hosts`, self-signed.
fn tls_secret(namespace: &str, name: &str, hosts: &[&str]) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let names: Vec<String> = hosts.iter().map(|h| (*h).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .expect("names")
        .self_signed(&key)
        .expect("self-signed");
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{}  tls.key: |\n{}",
        indent(&cert.pem()),
        indent(&key.serialize_pem()),
    )
}

/// A ConfigMap holding a CA certificate under `ca.crt`.
fn ca_config_map(namespace: &str, name: &str) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("self-signed CA");
    let pem: String = cert.pem().lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  ca.crt: |\n{pem}"
    )
}

/// The Gateway `namespace/name`'s listener `listener` status.
fn listener<'a>(
    resolution: &'a Resolution,
    namespace: &str,
    gateway: &str,
    listener: &str,
) -> &'a ListenerStatus {
    let gateway = resolution
        .gateway(namespace, gateway)
        .unwrap_or_else(|| panic!("no Gateway {namespace}/{gateway}"));
    gateway
        .status
        .listeners
        .iter()
        .find(|l| l.name == listener)
        .unwrap_or_else(|| panic!("no listener {listener}: {:#?}", gateway.status))
}

/// The route `route_ns/route`'s status entry for Gateway `gw_ns/gw`.
fn parent<'a>(
    resolution: &'a Resolution,
    route_ns: &str,
    route: &str,
    gw_ns: &str,
    gw: &str,
) -> &'a RouteParentStatus {
    let route = resolution
        .route(route_ns, route)
        .unwrap_or_else(|| panic!("no route {route_ns}/{route}"));
    route
        .status
        .parents
        .iter()
        .find(|p| {
            p.parent_ref.name == gw
                && p.parent_ref.namespace.as_deref().unwrap_or(route_ns) == gw_ns
        })
        .unwrap_or_else(|| panic!("no parent {gw_ns}/{gw}: {:#?}", route.status))
}

/// Asserts that `conditions` has `type_` with `status` and (unless empty) `reason`.
#[track_caller]
fn assert_condition(conditions: &[Condition], type_: &str, status: bool, reason: &str) {
    let Some(found) = super::conditions::find(conditions, type_) else {
        panic!("no {type_} condition in {conditions:#?}");
    };
    assert_eq!(
        (found.is_true(), found.reason.as_str()),
        (
            status,
            if reason.is_empty() {
                found.reason.as_str()
            } else {
                reason
            }
        ),
        "{type_}: {found:#?}"
    );
}

/// Asserts the suite's `GatewayAndHTTPRoutesMustBeAccepted`: the route is
/// Accepted by the Gateway, and every listener of the Gateway is Accepted,
/// Programmed and ResolvedRefs.
#[track_caller]
fn assert_gateway_and_route_accepted(
    resolution: &Resolution,
    gw: &str,
    route_ns: &str,
    route: &str,
) {
    let parent = parent(resolution, route_ns, route, INFRA, gw);
    assert_condition(&parent.conditions, "Accepted", true, "Accepted");
    assert_eq!(parent.controller_name, crate::gateway::CONTROLLER_NAME);
    let gateway = resolution.gateway(INFRA, gw).expect("gateway");
    for l in &gateway.status.listeners {
        for type_ in ["Accepted", "Programmed", "ResolvedRefs"] {
            assert_condition(&l.conditions, type_, true, "");
        }
    }
}

#[test]
fn other_controllers_classes_and_gateways_are_ignored() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: gateway-conformance-infra}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-theirs, namespace: gateway-conformance-infra}
spec:
  parentRefs: [{name: theirs}]
"#]);
    let classes: Vec<&str> = resolution.classes.iter().map(|c| c.class.name()).collect();
    assert_eq!(classes, ["sluice"]);
    assert!(resolution.gateway(INFRA, "theirs").is_none());
    assert!(
        resolution.route(INFRA, "to-theirs").is_none(),
        "no status for other parents"
    );
    let names: Vec<String> = resolution
        .gateways
        .iter()
        .map(|g| g.id.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "gateway-conformance-infra/all-namespaces",
            "gateway-conformance-infra/backend-namespaces",
            "gateway-conformance-infra/same-namespace"
        ]
    );
}
