//! BackendTLSPolicy scenarios.

use super::*;
use crate::gateway::resolve::{CaTrust, ServicePort};

/// backendtlspolicy-conflict-resolution.yaml (the route, Services and
/// policies; creation times added so age decides as on a cluster).
const CONFLICT_RESOLUTION: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backendtlspolicy-conflict-resolution
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
  hostnames:
    - abc.example.com
  rules:
    - backendRefs:
        - group: ""
          kind: Service
          name: backendtlspolicy-conflicted-without-section-name-test
          port: 443
      matches:
        - path:
            type: Exact
            value: /backendtlspolicy-conflicted-without-section-name
    - backendRefs:
        - group: ""
          kind: Service
          name: backendtlspolicy-conflicted-with-section-name-test
          port: 443
      matches:
        - path:
            type: Exact
            value: /backendtlspolicy-conflicted-with-section-name
    - backendRefs:
        - group: ""
          kind: Service
          name: backendtlspolicy-not-conflicted-test
          port: 443
      matches:
        - path:
            type: Exact
            value: /backendtlspolicy-not-conflicted-with-section-name
    - backendRefs:
        - group: ""
          kind: Service
          name: backendtlspolicy-not-conflicted-test
          port: 8443
      matches:
        - path:
            type: Exact
            value: /backendtlspolicy-not-conflicted-without-section-name
---
apiVersion: v1
kind: Service
metadata:
  name: backendtlspolicy-conflicted-without-section-name-test
  namespace: gateway-conformance-infra
spec:
  ports:
    - name: "https"
      protocol: TCP
      port: 443
      targetPort: 8443
---
apiVersion: v1
kind: Service
metadata:
  name: backendtlspolicy-conflicted-with-section-name-test
  namespace: gateway-conformance-infra
spec:
  ports:
    - name: "https-1"
      protocol: TCP
      port: 443
      targetPort: 8443
    - name: "https-2"
      protocol: TCP
      port: 8443
      targetPort: 8443
---
apiVersion: v1
kind: Service
metadata:
  name: backendtlspolicy-not-conflicted-test
  namespace: gateway-conformance-infra
spec:
  ports:
    - name: "https-1"
      protocol: TCP
      port: 443
      targetPort: 8443
    - name: "https-2"
      protocol: TCP
      port: 8443
      targetPort: 8443
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: conflicted-without-section-name-1
  namespace: gateway-conformance-infra
  creationTimestamp: "2025-01-01T00:00:00Z"
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-conflicted-without-section-name-test"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "tls-checks-ca-certificate"
    hostname: "other.example.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: conflicted-without-section-name-2
  namespace: gateway-conformance-infra
  creationTimestamp: "2025-01-01T00:00:01Z"
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-conflicted-without-section-name-test"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "tls-checks-ca-certificate"
    hostname: "abc.example.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: conflicted-with-section-name-2
  namespace: gateway-conformance-infra
  creationTimestamp: "2025-01-01T00:00:00Z"
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-conflicted-with-section-name-test"
      sectionName: "https-1"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "tls-checks-ca-certificate"
    hostname: "abc.example.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: conflicted-with-section-name-1
  namespace: gateway-conformance-infra
  creationTimestamp: "2025-01-01T00:00:00Z"
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-conflicted-with-section-name-test"
      sectionName: "https-1"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "tls-checks-ca-certificate"
    hostname: "other.example.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: not-conflicted-with-section-name
  namespace: gateway-conformance-infra
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-not-conflicted-test"
      sectionName: "https-1"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "tls-checks-ca-certificate"
    hostname: "other.example.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: not-conflicted-without-section-name
  namespace: gateway-conformance-infra
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-not-conflicted-test"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "tls-checks-ca-certificate"
    hostname: "abc.example.com"
"#;

/// The policy `name`'s status on the `same-namespace` Gateway.
fn on_same_namespace<'a>(resolution: &'a Resolution, name: &str) -> &'a [Condition] {
    let policy = resolution
        .policies
        .iter()
        .find(|p| p.id.name == name)
        .unwrap_or_else(|| panic!("no policy {name}"));
    let ancestor = policy
        .status
        .ancestors
        .iter()
        .find(|a| a.ancestor_ref.name == "same-namespace")
        .unwrap_or_else(|| panic!("{name}: no ancestor same-namespace: {:#?}", policy.status));
    assert_eq!(ancestor.ancestor_ref.namespace.as_deref(), Some(INFRA));
    assert_eq!(ancestor.controller_name, crate::gateway::CONTROLLER_NAME);
    &ancestor.conditions
}

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        namespace: INFRA.into(),
        name: name.into(),
        port,
    }
}

fn sni(resolution: &Resolution, service: &ServicePort) -> String {
    let tls = resolution.backend_tls(service).expect("a policy applies");
    tls.verification.as_ref().expect("usable").hostname.clone()
}

#[test]
fn backendtlspolicy_conflict_resolution() {
    let ca = ca_config_map(INFRA, "tls-checks-ca-certificate");
    let resolution = resolve_with_base(&[CONFLICT_RESOLUTION, &ca]);
    let route = "backendtlspolicy-conflict-resolution";
    assert_gateway_and_route_accepted(&resolution, "same-namespace", INFRA, route);

    for accepted in [
        "conflicted-without-section-name-1",
        "conflicted-with-section-name-1",
        "not-conflicted-with-section-name",
        "not-conflicted-without-section-name",
    ] {
        let conditions = on_same_namespace(&resolution, accepted);
        assert_condition(conditions, "Accepted", true, "Accepted");
        assert_condition(conditions, "ResolvedRefs", true, "ResolvedRefs");
    }
    for conflicted in [
        "conflicted-without-section-name-2",
        "conflicted-with-section-name-2",
    ] {
        let conditions = on_same_namespace(&resolution, conflicted);
        assert_condition(conditions, "Accepted", false, "Conflicted");
    }
    // The winners' hostnames are the SNI of each port.
    let without = port("backendtlspolicy-conflicted-without-section-name-test", 443);
    assert_eq!(sni(&resolution, &without), "other.example.com");
    let with = port("backendtlspolicy-conflicted-with-section-name-test", 443);
    assert_eq!(sni(&resolution, &with), "other.example.com");
    let section = port("backendtlspolicy-not-conflicted-test", 443);
    assert_eq!(sni(&resolution, &section), "other.example.com");
    let whole = port("backendtlspolicy-not-conflicted-test", 8443);
    assert_eq!(sni(&resolution, &whole), "abc.example.com");
    let tls = resolution.backend_tls(&whole).expect("policy");
    assert_eq!(tls.policy.name, "not-conflicted-without-section-name");
    let trust = &tls.verification.as_ref().expect("usable").trust;
    assert!(matches!(trust, CaTrust::Pem(pem) if pem.starts_with(b"-----BEGIN CERTIFICATE-----")));
    assert!(resolution
        .backend_tls(&port("infra-backend-v1", 8080))
        .is_none());
}

/// backendtlspolicy-invalid-ca-certificate-ref.yaml
#[test]
fn backendtlspolicy_invalid_ca_certificate_ref() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backendtlspolicy-invalid-ca-certificate-ref
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
      namespace: gateway-conformance-infra
  hostnames:
    - abc.example.com
  rules:
    - backendRefs:
        - name: backendtlspolicy-nonexistent-ca-certificate-ref-test
          port: 443
      matches:
        - path:
            type: Exact
            value: /backendtlspolicy-nonexistent-ca-certificate-ref
    - backendRefs:
        - name: backendtlspolicy-malformed-ca-certificate-ref-test
          port: 443
      matches:
        - path:
            type: Exact
            value: /backendtlspolicy-malformed-ca-certificate-ref
---
apiVersion: v1
kind: Service
metadata:
  name: backendtlspolicy-nonexistent-ca-certificate-ref-test
  namespace: gateway-conformance-infra
spec:
  ports:
    - name: "https"
      protocol: TCP
      appProtocol: HTTPS
      port: 443
      targetPort: 8443
---
apiVersion: v1
kind: Service
metadata:
  name: backendtlspolicy-malformed-ca-certificate-ref-test
  namespace: gateway-conformance-infra
spec:
  ports:
    - name: "https"
      protocol: TCP
      appProtocol: HTTPS
      port: 443
      targetPort: 8443
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: nonexistent-ca-certificate-ref
  namespace: gateway-conformance-infra
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-nonexistent-ca-certificate-ref-test"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "nonexistent-ca-certificate"
    hostname: "abc.example.com"
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: malformed-ca-certificate-ref
  namespace: gateway-conformance-infra
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-malformed-ca-certificate-ref-test"
  validation:
    caCertificateRefs:
      - group: ""
        kind: ConfigMap
        name: "malformed-ca-certificate"
    hostname: "abc.example.com"
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: malformed-ca-certificate
  namespace: gateway-conformance-infra
data: {}
"#]);
    for (policy, service) in [
        (
            "nonexistent-ca-certificate-ref",
            "backendtlspolicy-nonexistent-ca-certificate-ref-test",
        ),
        (
            "malformed-ca-certificate-ref",
            "backendtlspolicy-malformed-ca-certificate-ref-test",
        ),
    ] {
        let conditions = on_same_namespace(&resolution, policy);
        assert_condition(conditions, "Accepted", false, "NoValidCACertificate");
        assert_condition(conditions, "ResolvedRefs", false, "InvalidCACertificateRef");
        // The policy still applies: connections fail rather than go plain.
        let tls = resolution.backend_tls(&port(service, 443)).expect("policy");
        assert!(tls.verification.is_err(), "{policy}");
    }
}

/// backendtlspolicy-invalid-kind.yaml
#[test]
fn backendtlspolicy_invalid_kind() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: backendtlspolicy-invalid-kind-test
  namespace: gateway-conformance-infra
spec:
  parentRefs:
    - name: same-namespace
      namespace: gateway-conformance-infra
  hostnames:
    - abc.example.com
  rules:
    - backendRefs:
        - name: backendtlspolicy-invalid-kind-test
          port: 443
      matches:
        - path:
            type: Exact
            value: /backendtlspolicy-invalid-kind
---
apiVersion: v1
kind: Service
metadata:
  name: backendtlspolicy-invalid-kind-test
  namespace: gateway-conformance-infra
spec:
  ports:
    - name: "https"
      protocol: TCP
      appProtocol: HTTPS
      port: 443
      targetPort: 8443
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata:
  name: invalid-kind
  namespace: gateway-conformance-infra
spec:
  targetRefs:
    - group: ""
      kind: Service
      name: "backendtlspolicy-invalid-kind-test"
  validation:
    caCertificateRefs:
      - group: invalid.io
        kind: InvalidKind
        name: "invalid-kind"
    hostname: "abc.example.com"
"#]);
    let conditions = on_same_namespace(&resolution, "invalid-kind");
    assert_condition(conditions, "Accepted", false, "NoValidCACertificate");
    assert_condition(conditions, "ResolvedRefs", false, "InvalidKind");
}

#[test]
fn backendtlspolicy_well_known_cas_and_ancestors() {
    let resolution = resolve_with_base(&[r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: to-v1, namespace: gateway-conformance-infra, generation: 3}
spec:
  parentRefs: [{name: same-namespace}, {name: all-namespaces}]
  rules: [{backendRefs: [{name: infra-backend-v1, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: system, namespace: gateway-conformance-infra, generation: 2}
spec:
  targetRefs: [{group: '', kind: Service, name: infra-backend-v1, sectionName: first-port}]
  validation: {wellKnownCACertificates: System, hostname: Backend.Example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: unused, namespace: gateway-conformance-infra}
spec:
  targetRefs: [{group: '', kind: Service, name: infra-backend-v2}]
  validation: {wellKnownCACertificates: System, hostname: v2.example.com}
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: custom-store, namespace: gateway-conformance-infra}
spec:
  targetRefs: [{group: '', kind: Service, name: infra-backend-v3}]
  validation: {wellKnownCACertificates: example.com/store, hostname: v3.example.com}
"#]);
    let policy = resolution
        .policies
        .iter()
        .find(|p| p.id.name == "system")
        .expect("policy");
    let ancestors: Vec<&str> = policy
        .status
        .ancestors
        .iter()
        .map(|a| a.ancestor_ref.name.as_str())
        .collect();
    assert_eq!(ancestors, ["all-namespaces", "same-namespace"]);
    for ancestor in &policy.status.ancestors {
        assert_condition(&ancestor.conditions, "Accepted", true, "Accepted");
        assert!(ancestor
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2)));
    }
    let tls = resolution
        .backend_tls(&port("infra-backend-v1", 8080))
        .expect("policy");
    let verification = tls.verification.as_ref().expect("usable");
    assert_eq!(verification.trust, CaTrust::System);
    assert_eq!(verification.hostname, "backend.example.com");
    // Only port first-port (8080) is targeted.
    assert!(resolution
        .backend_tls(&port("infra-backend-v1", 8081))
        .is_none());

    // No accepted route uses infra-backend-v2: no ancestor to report on.
    let unused = resolution
        .policies
        .iter()
        .find(|p| p.id.name == "unused")
        .expect("policy");
    assert!(unused.status.ancestors.is_empty());
    let custom = resolution
        .policies
        .iter()
        .find(|p| p.id.name == "custom-store")
        .expect("policy");
    assert!(custom.status.ancestors.is_empty());
    let tls = resolution
        .backend_tls(&port("infra-backend-v3", 8080))
        .expect("policy");
    assert!(tls
        .verification
        .as_ref()
        .is_err_and(|e| e.contains("example.com/store")));
}
