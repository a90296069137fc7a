use super::*;
use crate::router::Severity;

const INGRESS: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  rules:
  - host: example.com
";

fn names(parsed: &ParsedFile) -> Vec<String> {
    parsed.objects.iter().map(|o| o.key.to_string()).collect()
}

fn sources(parsed: &ParsedFile) -> Vec<String> {
    parsed
        .objects
        .iter()
        .map(|o| o.source.to_string())
        .collect()
}

fn error_sources(parsed: &ParsedFile) -> Vec<String> {
    let refs = parsed.diagnostics.iter().map(|d| d.object.source.clone());
    refs.map(Option::unwrap_or_default).collect()
}

#[test]
fn multi_document_file_loads_every_document() {
    let text = format!(
        "{INGRESS}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n"
    );
    let parsed = parse_manifests("app.yaml", text.as_bytes());
    assert_eq!(names(&parsed), ["Ingress default/web", "Service shop/web"]);
    assert_eq!(sources(&parsed), ["app.yaml#0", "app.yaml#1"]);
    assert!(!parsed.has_errors());
}

#[test]
fn missing_namespace_means_default_and_ingress_class_is_cluster_scoped() {
    let text = format!(
        "{INGRESS}---\napiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: sluice\n"
    );
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    assert_eq!(
        names(&parsed),
        ["Ingress default/web", "IngressClass sluice"]
    );
    let Object::Ingress(ingress) = &parsed.objects[0].object else {
        panic!("expected an Ingress");
    };
    assert_eq!(ingress.metadata.namespace.as_deref(), Some("default"));
}

#[test]
fn list_documents_are_unpacked_with_item_indexes() {
    let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: b}\n";
    let parsed = parse_manifests("list.yaml", format!("---\n{INGRESS}---\n{text}").as_bytes());
    assert_eq!(
        names(&parsed),
        [
            "Ingress default/web",
            "Service default/a",
            "Secret default/b"
        ]
    );
    assert_eq!(sources(&parsed)[1..], ["list.yaml#1#0", "list.yaml#1#1"]);
}

#[test]
fn empty_documents_are_skipped_silently() {
    let text = format!("# just a comment\n---\n---\nnull\n---\n{INGRESS}---\n");
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    assert_eq!(names(&parsed), ["Ingress default/web"]);
    // A comment before the first `---` is not a document of its own.
    assert_eq!(sources(&parsed), ["a.yaml#2"]);
    assert!(!parsed.has_errors());
    assert_eq!(parse_manifests("empty.yaml", b""), ParsedFile::default());
}

#[test]
fn other_kinds_are_ignored() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: c}\n---\napiVersion: traefik.io/v1alpha1\nkind: IngressRoute\nmetadata: {name: r}\n---\napiVersion: example.com/v1\nkind: Middleware\nmetadata: {name: m}\n---\napiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: old}\n";
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    assert_eq!(parsed, ParsedFile::default());
}

#[test]
fn config_maps_load_for_the_ingress_nginx_annotations() {
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ingress-nginx}\ndata:\n  proxy-body-size: 8m\n";
    let parsed = parse_manifests("cm.yaml", text.as_bytes());
    assert!(!parsed.has_errors(), "{parsed:?}");
    assert_eq!(names(&parsed), ["ConfigMap ingress-nginx/c"]);
}

#[test]
fn traefik_middlewares_load_from_both_api_groups() {
    let text = "apiVersion: traefik.io/v1alpha1\nkind: Middleware\nmetadata: {name: strip, namespace: apps}\nspec:\n  stripPrefix:\n    prefixes: [/api]\n---\napiVersion: traefik.containo.us/v1alpha1\nkind: Middleware\nmetadata: {name: old}\nspec:\n  addPrefix: {prefix: /v1}\n";
    let parsed = parse_manifests("mw.yaml", text.as_bytes());
    assert!(!parsed.has_errors(), "{parsed:?}");
    assert_eq!(
        names(&parsed),
        ["Middleware apps/strip", "Middleware default/old"]
    );
    let Object::Middleware(strip) = &parsed.objects[0].object else {
        panic!("not a Middleware: {:?}", parsed.objects[0]);
    };
    assert_eq!(strip.spec["stripPrefix"]["prefixes"][0], "/api");
}

#[test]
fn json_file_with_one_object_loads() {
    let text = r#"{"apiVersion": "v1", "kind": "Service",
	"metadata": {"name": "api", "namespace": "prod"},
	"spec": {"ports": [{"port": 80}]}}"#;
    let parsed = parse_manifests("svc.json", text.as_bytes());
    assert_eq!(names(&parsed), ["Service prod/api"]);
    assert_eq!(sources(&parsed), ["svc.json#0"]);
}

#[test]
fn broken_document_is_reported_with_its_index_and_others_load() {
    let bad = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bad}\nspec:\n  rules: not-a-list\n";
    let text =
        format!("{INGRESS}---\n{bad}---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n");
    let parsed = parse_manifests("app.yaml", text.as_bytes());
    assert_eq!(names(&parsed), ["Ingress default/web", "Service default/s"]);
    assert_eq!(error_sources(&parsed), ["app.yaml#1"]);
    let diagnostic = &parsed.diagnostics[0];
    assert_eq!(
        (diagnostic.kind, diagnostic.severity),
        (DiagnosticKind::ParseError, Severity::Error)
    );
    assert_eq!(
        (
            diagnostic.object.kind.as_str(),
            diagnostic.object.name.as_str()
        ),
        ("Document", "")
    );
    assert!(
        diagnostic.message.contains("default/bad"),
        "{}",
        diagnostic.message
    );
    assert!(
        diagnostic.message.contains("invalid type"),
        "{}",
        diagnostic.message
    );
}

#[test]
fn documents_without_type_are_errors() {
    let text = "metadata: {name: x}\n---\nkind: Service\n---\n- a list\n";
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    assert_eq!(error_sources(&parsed), ["a.yaml#0", "a.yaml#1", "a.yaml#2"]);
    assert!(parsed.diagnostics[0].message.contains("apiVersion"));
}

#[test]
fn syntax_error_reports_line_and_stops_the_stream() {
    let text = format!("{INGRESS}---\nkind: Service\n  metadata: [\n---\n{INGRESS}");
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    assert_eq!(names(&parsed), ["Ingress default/web"]);
    assert_eq!(error_sources(&parsed), ["a.yaml#1"]);
    assert!(
        parsed.diagnostics[0].message.contains("line"),
        "{}",
        parsed.diagnostics[0].message
    );
}

#[test]
fn broken_json_is_reported() {
    let parsed = parse_manifests("a.json", br#"{"apiVersion": "v1", "kind": "#);
    assert_eq!(error_sources(&parsed), ["a.json#0"]);
    assert!(parsed.diagnostics[0].message.contains("line 1"));
}

#[test]
fn missing_name_is_an_error() {
    let text = "apiVersion: v1\nkind: Service\nmetadata: {namespace: x}\n---\napiVersion: v1\nkind: Secret\n";
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    assert!(parsed.objects.is_empty());
    assert_eq!(error_sources(&parsed), ["a.yaml#0", "a.yaml#1"]);
    assert!(parsed.diagnostics[0].message.contains("metadata.name"));
}

#[test]
fn string_data_is_merged_into_data() {
    let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  a: YQ==\n  b: Yg==\nstringData:\n  b: bee\n  c: see\n";
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    let Object::Secret(secret) = &parsed.objects[0].object else {
        panic!("expected a Secret");
    };
    assert_eq!(secret.string_data, None);
    let data = secret.data.clone().unwrap_or_default();
    let data: Vec<(&str, &[u8])> = data.iter().map(|(k, v)| (k.as_str(), &v.0[..])).collect();
    assert_eq!(data, [("a", &b"a"[..]), ("b", b"bee"), ("c", b"see")]);
}

#[test]
fn managed_fields_are_stripped() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  managedFields:\n  - manager: kubectl\n    operation: Apply\n";
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    let Object::Service(service) = &parsed.objects[0].object else {
        panic!("expected a Service");
    };
    assert_eq!(service.metadata.managed_fields, None);
}

#[test]
fn fields_routing_never_reads_are_dropped() {
    let text = "\
apiVersion: v1
kind: Service
metadata:
  name: s
  labels: {app: s}
  uid: abc
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{}'
    traefik.ingress.kubernetes.io/service.serversscheme: h2c
spec:
  selector: {app: s}
  ports: [{port: 80}]
status: {loadBalancer: {}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: s-1
  labels: {kubernetes.io/service-name: s, other: x}
addressType: IPv4
endpoints: []
";
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    let Object::Service(service) = &parsed.objects[0].object else {
        panic!("expected a Service");
    };
    assert_eq!(service.metadata.labels, None);
    assert_eq!(service.metadata.uid, None);
    assert!(service.status.is_none());
    let spec = service.spec.as_ref().expect("spec");
    assert_eq!(spec.selector, None);
    assert_eq!(spec.ports.as_ref().map(Vec::len), Some(1));
    let annotations = service.metadata.annotations.as_ref().expect("annotations");
    assert_eq!(
        annotations.keys().collect::<Vec<_>>(),
        ["traefik.ingress.kubernetes.io/service.serversscheme"]
    );
    let Object::EndpointSlice(slice) = &parsed.objects[1].object else {
        panic!("expected an EndpointSlice");
    };
    let labels = slice.metadata.labels.as_ref().expect("labels");
    assert_eq!(
        labels.keys().collect::<Vec<_>>(),
        ["kubernetes.io/service-name"]
    );
}

const GATEWAY_API: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: sluice, namespace: ignored}
spec: {controllerName: sluice.dev/gateway-controller}
status:
  conditions: [{type: Accepted, status: 'False', reason: Pending}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 3, uid: abc}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, creationTimestamp: '2025-01-01T00:00:00Z'}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules:
  - backendRefs: [{name: web, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: new, namespace: backends}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: default}]
  to: [{group: '', kind: Service}]
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: old, namespace: backends}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: '', kind: Secret}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: BackendTLSPolicy
metadata: {name: tls, namespace: default}
spec:
  targetRefs: [{group: '', kind: Service, name: web}]
  validation: {caCertificateRefs: [{group: '', kind: ConfigMap, name: ca}], hostname: web.example}
---
apiVersion: v1
kind: Namespace
metadata:
  name: apps
  labels: {kubernetes.io/metadata.name: apps, shared: 'true'}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}
spec: {finalizers: [kubernetes]}
status: {phase: Active}
";

#[test]
fn gateway_api_kinds_and_namespaces_load() {
    let parsed = parse_manifests("gateway.yaml", GATEWAY_API.as_bytes());
    assert!(!parsed.has_errors(), "{:?}", parsed.diagnostics);
    assert_eq!(
        names(&parsed),
        [
            "GatewayClass sluice",
            "Gateway infra/gw",
            "HTTPRoute default/web",
            "ReferenceGrant backends/new",
            "ReferenceGrant backends/old",
            "BackendTLSPolicy default/tls",
            "Namespace apps",
        ]
    );
    let mut snapshot = crate::router::Snapshot::default();
    for loaded in &parsed.objects {
        loaded.object.push_into(&mut snapshot);
    }
    let class = &snapshot.gateway_classes[0];
    assert_eq!(class.spec.controller_name, crate::gateway::CONTROLLER_NAME);
    assert_eq!(class.metadata.namespace, None, "cluster scoped");
    let gateway = &snapshot.gateways[0];
    assert_eq!(gateway.metadata.generation, Some(3), "generation is kept");
    assert_eq!(gateway.metadata.uid, None);
    assert_eq!(
        gateway.spec.listeners[0].allowed_routes.namespaces.from,
        crate::gateway::types::FromNamespaces::Same
    );
    let route = &snapshot.http_routes[0];
    assert_eq!(route.namespace(), "default");
    assert!(route.metadata.creation_timestamp.is_some());
    assert_eq!(route.spec.parent_refs[0].kind, "Gateway");
    assert_eq!(route.spec.rules[0].backend_refs[0].weight, 1);
    assert_eq!(
        route.spec.rules[0].matches,
        [crate::gateway::types::HttpRouteMatch::default()],
        "defaulting is applied on load"
    );
    assert_eq!(snapshot.reference_grants.len(), 2);
    assert_eq!(snapshot.reference_grants[1].spec.to[0].kind, "Secret");
    assert_eq!(
        snapshot.backend_tls_policies[0].spec.validation.hostname,
        "web.example"
    );
    let namespace = &snapshot.namespaces[0];
    let labels = namespace.metadata.labels.as_ref().expect("labels kept");
    assert_eq!(labels["shared"], "true");
    assert_eq!(namespace.metadata.namespace, None);
    assert!(namespace.spec.is_none() && namespace.status.is_none());
    assert_eq!(namespace.metadata.annotations, Some(Default::default()));
}

#[test]
fn gateway_api_status_writes_do_not_change_the_object() {
    let without = GATEWAY_API.replace(
        "status:\n  conditions: [{type: Accepted, status: 'False', reason: Pending}]\n",
        "",
    );
    assert_ne!(without, GATEWAY_API);
    assert_eq!(
        parse_manifests("a.yaml", GATEWAY_API.as_bytes()).objects[0].object,
        parse_manifests("a.yaml", without.as_bytes()).objects[0].object
    );
}

#[test]
fn gateway_api_versions_and_bad_objects() {
    let text = "\
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: HTTPRoute
metadata: {name: old}
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: BackendTLSPolicy
metadata: {name: old}
---
apiVersion: gateway.networking.k8s.io/v1
kind: TCPRoute
metadata: {name: tcp}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: apps}
spec: {rules: [{backendRefs: [{name: web, weight: heavy}]}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {namespace: apps}
";
    let parsed = parse_manifests("a.yaml", text.as_bytes());
    assert!(parsed.objects.is_empty(), "{:?}", names(&parsed));
    assert_eq!(error_sources(&parsed), ["a.yaml#3", "a.yaml#4"]);
    let message = &parsed.diagnostics[0].message;
    assert!(message.starts_with("HTTPRoute apps/bad: "), "{message}");
    assert!(message.contains("invalid type"), "{message}");
    assert!(parsed.diagnostics[1].message.contains("metadata.name"));
}
