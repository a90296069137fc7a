use std::path::Path;

use super::*;

const BEGIN: &str = "<!-- nginx-annotations:begin -->";
const END: &str = "<!-- nginx-annotations:end -->";

/// README.md ("Moving from ingress-nginx") and docs/annotations.md carry the
/// table rendered from the catalog, verbatim, between their markers;
/// `SLUICE_BLESS=1` rewrites them.
#[test]
fn docs_table_is_rendered_from_the_catalog() {
    let block = format!("{BEGIN}\n\n{}\n{END}", catalog::markdown_table());
    for file in ["docs/annotations.md", "README.md"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let doc = std::fs::read_to_string(&path).expect("the document");
        if std::env::var("SLUICE_BLESS").as_deref() == Ok("1") {
            let start = doc
                .find(BEGIN)
                .expect("the begin marker is in the document");
            let stop = doc.find(END).expect("the end marker is in the document") + END.len();
            assert!(start < stop, "markers out of order in {file}");
            let blessed = format!("{}{block}{}", &doc[..start], &doc[stop..]);
            std::fs::write(&path, blessed).expect("rewrite the document");
            continue;
        }
        assert!(
            doc.contains(&block),
            "{file} does not carry the catalog's table between {BEGIN} and {END}; \
             run `SLUICE_BLESS=1 cargo test --lib check::` to rewrite it"
        );
    }
}

fn load(yaml: &str) -> Loaded {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("app.yaml"), yaml).expect("write");
    load_manifests(dir.path()).expect("load")
}

const SERVICE: &str = r"
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
    traefik.ingress.kubernetes.io/service.serverstransport: default-tls@kubernetescrd
    traefik.ingress.kubernetes.io/service.passhostheader: 'true'
spec:
  ports:
  - port: 80
";

#[test]
fn findings_diagnostics_and_exit_code() {
    let yaml = format!(
        r"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  annotations:
    nginx.ingress.kubernetes.io/ssl-redirect: 'true'
    nginx.ingress.kubernetes.io/foo-bar: x
    nginx.ingress.kubernetes.io/backend-protocol: FCGI
    traefik.ingress.kubernetes.io/service.sticky.cookie: 'true'
    cert-manager.io/cluster-issuer: letsencrypt
spec:
  rules:
  - host: a.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: other
spec:
  ingressClassName: nginx
---{SERVICE}"
    );
    let loaded = load(&yaml);
    let report = check(&loaded, &CompileOptions::default());
    assert_eq!(report.summary.ingresses_checked, 1);
    assert_eq!(report.summary.ingresses_other_class, 1);
    let app = &report.ingresses[0];
    assert_eq!(app.source.as_deref(), Some("app.yaml#0"));
    let status_of = |key: &str| {
        app.findings
            .iter()
            .find(|f| f.annotation == key)
            .map(|f| f.status)
    };
    assert_eq!(
        status_of("nginx.ingress.kubernetes.io/foo-bar"),
        Some("unknown")
    );
    assert_eq!(status_of("nginx.ingress.kubernetes.io/ssl-redirect"), None);
    assert_eq!(
        status_of("cert-manager.io/cluster-issuer"),
        None,
        "not ours"
    );
    assert_eq!(
        status_of("traefik.ingress.kubernetes.io/service.sticky.cookie"),
        Some("ignored"),
        "a Service annotation on the Ingress"
    );
    let transport = app
        .findings
        .iter()
        .find(|f| f.annotation.ends_with("service.serverstransport"))
        .expect("the Service's annotations are checked");
    assert_eq!(transport.object.as_deref(), Some("Service default/web"));
    assert!(
        app.diagnostics
            .iter()
            .any(|d| d.kind == "invalid_annotation" && d.message.contains("FCGI")),
        "{:?}",
        app.diagnostics
    );
    assert!(report.summary.annotations.supported >= 2);
    assert_eq!(report.exit_code(), 1);
    let text = report.to_text();
    assert!(text.contains("Ingress default/app (app.yaml#0)"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json["summary"]["ingresses_checked"], 1);
}

#[test]
fn an_ingress_with_supported_annotations_only_passes() {
    let yaml = format!(
        r"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  annotations:
    nginx.ingress.kubernetes.io/force-ssl-redirect: 'true'
spec:
  defaultBackend:
    service:
      name: web
      port:
        number: 80
---{SERVICE}"
    )
    .replace(
        "traefik.ingress.kubernetes.io/service.serverstransport: default-tls@kubernetescrd",
        "traefik.ingress.kubernetes.io/service.nativelb: 'false'",
    );
    let report = check(&load(&yaml), &CompileOptions::default());
    assert_eq!(report.summary.annotations.supported, 3, "{report:?}");
    assert!(report.ingresses[0].findings.is_empty());
    assert_eq!(report.exit_code(), 0, "{}", report.to_text());
    assert!(report
        .to_text()
        .contains("Ingress default/app (app.yaml#0): ok"));
}

#[test]
fn a_missing_path_is_a_loading_error() {
    let err = load_manifests(Path::new("/nonexistent/sluice-check")).expect_err("missing");
    assert!(err.to_string().contains("does not exist"), "{err}");
}
