//! `sluice check`, run as the real binary against temporary manifest directories.
//!
//! Where an annotation's status may change as sluice implements more of
//! ingress-nginx, the expectations are read from the catalog
//! (`sluice::check::catalog`), so flipping an entry keeps these tests true.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sluice::check::catalog::{self, Status};

const NGINX: &str = "nginx.ingress.kubernetes.io/";

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("SLUICE_MANIFESTS")
        .env_remove("SLUICE_INGRESS_CLASS")
        .env_remove("SLUICE_KUBECONFIG")
        .output()
        .expect("run sluice")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A manifest directory with one Service `web` and one Ingress `app` carrying `annotations`.
fn manifests(annotations: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut yaml = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: app\n  namespace: shop\n",
    );
    if !annotations.is_empty() {
        yaml.push_str("  annotations:\n");
        for (key, value) in annotations {
            yaml.push_str(&format!("    {key}: {}\n", serde_json::json!(value)));
        }
    }
    yaml.push_str(
        "spec:
  rules:
  - host: shop.example
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
",
    );
    std::fs::write(dir.path().join("ingress.yaml"), yaml).expect("write ingress");
    std::fs::write(
        dir.path().join("service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  ports:\n  - port: 80\n",
    )
    .expect("write service");
    dir
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("utf-8 temp path")
}

fn status(key: &str) -> Status {
    catalog::lookup(key).expect("in the catalog").status
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&stdout(out)).expect("one JSON document on stdout")
}

#[test]
fn supported_annotations_only_exit_0() {
    let ssl_redirect = format!("{NGINX}ssl-redirect");
    // Concrete: ssl-redirect is implemented with ingress-nginx's semantics.
    assert_eq!(status(&ssl_redirect), Status::Supported);
    let mut annotations = vec![
        (ssl_redirect.as_str(), "false"),
        ("traefik.ingress.kubernetes.io/router.priority", "10"),
        ("cert-manager.io/cluster-issuer", "letsencrypt"),
    ];
    let force = format!("{NGINX}force-ssl-redirect");
    if status(&force) == Status::Supported {
        annotations.push((force.as_str(), "true"));
    }
    let dir = manifests(&annotations);
    let out = sluice(&["check", "--manifests", path(&dir)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert!(
        text.contains("Ingress shop/app (ingress.yaml#0): ok"),
        "{text}"
    );
    assert!(text.contains("1 Ingress checked"), "{text}");
}

#[test]
fn ignored_and_unknown_annotations_exit_1_and_are_named() {
    let snippet = format!("{NGINX}configuration-snippet");
    let auth_type = format!("{NGINX}auth-type");
    let modsecurity = format!("{NGINX}enable-modsecurity");
    let unknown = format!("{NGINX}foo-bar");
    // Concrete: sluice has no WAF, and foo-bar is no annotation at all.
    assert!(matches!(status(&modsecurity), Status::Ignored(_)));
    assert!(catalog::lookup(&unknown).is_none());
    let dir = manifests(&[
        (&snippet, "more_set_headers \"X-Frame-Options: DENY\";"),
        (&auth_type, "basic"),
        (&modsecurity, "true"),
        (&unknown, "1"),
    ]);
    let out = sluice(&["check", "--manifests", path(&dir)]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    for key in [&snippet, &auth_type, &modsecurity] {
        let entry_status = status(key);
        if entry_status == Status::Supported {
            assert!(
                !text.contains(key.as_str()),
                "{key} is supported now: {text}"
            );
        } else {
            assert!(text.contains(key.as_str()), "{key} missing: {text}");
            assert!(
                text.contains(entry_status.reason()),
                "{key}'s reason: {text}"
            );
        }
    }
    assert!(text.contains(&format!("ignored  {modsecurity}")), "{text}");
    assert!(text.contains("WITHOUT ModSecurity"), "{text}");
    assert!(text.contains(&format!("unknown  {unknown}")), "{text}");
    assert!(text.contains("unknown annotation"), "{text}");
}

#[test]
fn json_output_has_findings_and_summary() {
    let snippet = format!("{NGINX}configuration-snippet");
    let auth_type = format!("{NGINX}auth-type");
    let modsecurity = format!("{NGINX}enable-modsecurity");
    let ssl_redirect = format!("{NGINX}ssl-redirect");
    let unknown = format!("{NGINX}foo-bar");
    let annotations = [
        (snippet.as_str(), "add_header X-Test 1;"),
        (auth_type.as_str(), "basic"),
        (modsecurity.as_str(), "true"),
        (ssl_redirect.as_str(), "true"),
        (unknown.as_str(), "1"),
    ];
    let dir = manifests(&annotations);
    let out = sluice(&["check", "--manifests", path(&dir), "--output", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc = json(&out);
    let ingresses = doc["ingresses"].as_array().expect("ingresses");
    assert_eq!(ingresses.len(), 1);
    let app = &ingresses[0];
    assert_eq!(app["namespace"], "shop");
    assert_eq!(app["name"], "app");
    assert_eq!(app["source"], "ingress.yaml#0");
    let findings = app["findings"].as_array().expect("findings");
    let finding = |key: &str| findings.iter().find(|f| f["annotation"] == key);
    // What the catalog says, annotation by annotation.
    let mut expected = serde_json::Map::new();
    for name in ["supported", "differs", "refused", "ignored", "unknown"] {
        expected.insert(name.to_owned(), Value::from(0));
    }
    let mut bump = |name: &str| {
        let n = expected[name].as_u64().expect("count") + 1;
        expected.insert(name.to_owned(), Value::from(n));
    };
    for (key, value) in annotations {
        match catalog::lookup(key) {
            None => {
                bump("unknown");
                let f = finding(key).expect("unknown key reported");
                assert_eq!(f["status"], "unknown");
                assert_eq!(f["value"], value);
            }
            Some(entry) => {
                let status = entry.status_for(value);
                bump(status.name());
                match status {
                    Status::Supported => assert!(finding(key).is_none(), "{key}"),
                    other => {
                        let f = finding(key).expect("reported");
                        assert_eq!(f["status"], other.name(), "{key}");
                        assert_eq!(f["reason"], other.reason(), "{key}");
                        assert_eq!(f["value"], value, "{key}");
                    }
                }
            }
        }
    }
    // Concrete: ssl-redirect is not reported, enable-modsecurity is ignored.
    assert!(finding(&ssl_redirect).is_none());
    assert_eq!(
        finding(&modsecurity).expect("reported")["status"],
        "ignored"
    );
    let summary = &doc["summary"];
    assert_eq!(summary["ingresses_checked"], 1);
    assert_eq!(summary["ingresses_other_class"], 0);
    assert_eq!(summary["annotations"], Value::Object(expected));
    assert_eq!(summary["exit_code"], 1);
}

#[test]
fn invalid_values_reported_by_the_compiler_show_up() {
    let protocol = format!("{NGINX}backend-protocol");
    let dir = manifests(&[(&protocol, "FCGI")]);
    let out = sluice(&["check", "--manifests", path(&dir)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("invalid_annotation"), "{text}");
    assert!(text.contains("\"FCGI\""), "{text}");

    let out = sluice(&["check", "--manifests", path(&dir), "--output", "json"]);
    let doc = json(&out);
    let diagnostics = doc["ingresses"][0]["diagnostics"]
        .as_array()
        .expect("diagnostics");
    assert!(
        diagnostics.iter().any(|d| d["kind"] == "invalid_annotation"
            && d["severity"] == "error"
            && d["message"].as_str().is_some_and(|m| m.contains("FCGI"))),
        "{diagnostics:?}"
    );
    assert!(doc["summary"]["errors"].as_u64() >= Some(1));
}

#[test]
fn a_missing_service_is_an_error() {
    let dir = manifests(&[]);
    std::fs::remove_file(dir.path().join("service.yaml")).expect("remove");
    let out = sluice(&["check", "--manifests", path(&dir)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("missing_service"), "{}", stdout(&out));
}

#[test]
fn loading_errors_exit_2() {
    let out = sluice(&[
        "check",
        "--manifests",
        "/nonexistent/sluice-check-manifests",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/sluice-check-manifests") && err.contains("does not exist"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());

    let out = sluice(&["check", "--kubeconfig", "/nonexistent/sluice-kubeconfig"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("kubeconfig"), "{}", stderr(&out));

    // A cluster that never answers: the check gives up after --timeout.
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n\
         users:\n- name: u\n  user:\n    token: t\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n\
         current-context: x\n",
    )
    .expect("write kubeconfig");
    let kubeconfig = kubeconfig.to_str().expect("utf-8");
    let out = sluice(&["check", "--kubeconfig", kubeconfig, "--timeout", "1s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not list every object within 1s"),
        "{}",
        stderr(&out)
    );

    let out = sluice(&["check", "--output", "yaml", "--manifests", "/tmp"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2 (clap)");
}

#[test]
fn opens_no_listener() {
    // Every address flag names a port this test holds: the server could not
    // start, the check does not care.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr").to_string();
    let dir = manifests(&[]);
    let out = sluice(&[
        "check",
        "--manifests",
        path(&dir),
        "--admin-addr",
        &addr,
        "--http-addr",
        &addr,
        "--https-addr",
        &addr,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(held.local_addr().expect("still held").to_string(), addr);
}

#[test]
fn the_nginx_class_is_served_by_name() {
    let dir = manifests(&[]);
    let ingress = dir.path().join("ingress.yaml");
    let yaml = std::fs::read_to_string(&ingress).expect("read");
    let yaml = yaml.replace(
        "spec:\n  rules:",
        "spec:\n  ingressClassName: nginx\n  rules:",
    );
    std::fs::write(&ingress, yaml).expect("write");
    std::fs::write(
        dir.path().join("class.yaml"),
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n",
    )
    .expect("write class");
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--output", "json", "--manifests", path(&dir)];
        args.extend_from_slice(extra);
        json(&sluice(&args))["summary"].clone()
    };
    let default_class = check(&[]);
    assert_eq!(default_class["ingresses_checked"], 0);
    assert_eq!(default_class["ingresses_other_class"], 1);
    let nginx_class = check(&["--ingress-class", "nginx"]);
    assert_eq!(nginx_class["ingresses_checked"], 1);
    assert_eq!(nginx_class["exit_code"], 0);
    assert!(Path::new(&dir.path().join("class.yaml")).exists());
}
