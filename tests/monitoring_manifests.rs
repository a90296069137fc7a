//! Guards the monitoring component in `deploy/monitoring/` (ServiceMonitor,
//! PrometheusRule, Grafana dashboard) against the sluice it monitors.
//!
//! What it checks:
//! - the kustomize files: `deploy/monitoring/kustomization.yaml` is a
//!   `Component` (read strictly: an unknown field fails) that names only files
//!   that exist and every file of the directory but its README (nothing
//!   orphaned); its dashboard ConfigMap carries the Grafana sidecar label
//!   `grafana_dashboard: "1"`; `deploy/overlays/monitoring` adds the component
//!   to `deploy/base`;
//! - the objects: kinds and apiVersions (`Service`, `ServiceMonitor`,
//!   `PrometheusRule`, all in sluice's namespace); the ServiceMonitor's
//!   selector picks at least one Service (of `deploy/base` or the component),
//!   every Service it picks has the port it scrapes, that port leads to the
//!   Deployment's container port serving `--admin-addr`, and the Service
//!   selects the Deployment's pods;
//! - the alerts: each has `for:`, a `severity` label, a summary and a
//!   description, and together they cover the conditions the component
//!   promises (5xx ratio, certificate expiry, reload failures, backends without
//!   ready endpoints, watch errors, rejected objects, access-log drops);
//! - the dashboard: Grafana's shape (schemaVersion, a `datasource` variable of
//!   type `datasource` for Prometheus, panels with `gridPos` inside the 24
//!   columns and not overlapping, unique panel ids, targets with `expr` and a
//!   datasource of `${datasource}`, only defined `$variables`), and that it
//!   shows what it promises;
//! - the metrics, against a REAL sluice: every `sluice_*` name queried by an
//!   alert, a dashboard panel or a dashboard variable (found with a simple
//!   tokenizer) must be a sample name on `/metrics` of a running sluice
//!   (histogram `_bucket`/`_sum`/`_count` names are also matched to their
//!   `# TYPE ... histogram` family); the labels the queries match on, group by
//!   and print (`{{route}}`, `$labels.service`) must be labels of those
//!   metrics (or target labels Prometheus adds: job, instance, pod...). sluice
//!   is started on real sockets with a manifest directory, real whoami
//!   backends and a TLS Secret, and serves real traffic (200s over HTTP and
//!   HTTPS, 503s from a Service without endpoints and from a missing Service,
//!   a 404) before `/metrics` is scraped over HTTP at the ServiceMonitor's
//!   path. The `sluice_kube_*` metrics exist only with the Kubernetes
//!   provider: they are checked against a second sluice started with
//!   `--kubeconfig` pointing at the in-test fake API server
//!   (`support/kube_api.rs`), scraped the same way. Because sluice's own
//!   `service` and `namespace` labels collide with the target labels the
//!   Prometheus Operator adds, the ServiceMonitor must set `honorLabels`.
//!
//! A renamed metric or label therefore fails here with the query that uses
//! it (`query_checker_catches_renamed_metrics_and_labels` shows the checks
//! can fail). It also checks `sluice_service_ready_endpoints`: 0 for a
//! Service without endpoints or missing, N for one with N ready endpoints,
//! and a change of endpoints shows on the next scrape.

#[path = "support/kube_api.rs"]
mod kube_api;
mod support;
#[path = "support/tls.rs"]
mod tls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};
use sluice::app::Source;
use sluice::watch::KubeSettings;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// sluice's namespace in `deploy/`.
const NAMESPACE: &str = "sluice";

/// Labels Prometheus adds to every series of a ServiceMonitor target (besides
/// `namespace` and `service`, which sluice's metrics carry themselves and the
/// queries mean as sluice's: see the ServiceMonitor's `honorLabels`). A query
/// may use these without sluice exposing them.
const TARGET_LABELS: &[&str] = &["job", "instance", "pod", "container", "endpoint"];

/// Every label the Prometheus Operator sets on a ServiceMonitor target: a
/// metric label with one of these names is renamed `exported_<name>` unless
/// `honorLabels` is set.
const OPERATOR_TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "namespace",
    "service",
    "pod",
    "container",
    "endpoint",
];

/// Grafana's built-in variables a query may use.
const GRAFANA_BUILTINS: &[&str] = &[
    "__rate_interval",
    "__interval",
    "__interval_ms",
    "__range",
    "__range_s",
    "__range_ms",
];

/// Metrics the alerts must watch (the conditions the component promises).
const ALERTED: &[&str] = &[
    "sluice_requests_total",
    "sluice_tls_cert_not_after_seconds",
    "sluice_config_reload_failures_total",
    "sluice_service_ready_endpoints",
    "sluice_kube_watch_errors_total",
    "sluice_config_rejected_objects",
    "sluice_access_log_dropped_total",
];

/// Metrics the dashboard must show.
const CHARTED: &[&str] = &[
    "sluice_requests_total",
    "sluice_request_duration_seconds_bucket",
    "sluice_open_connections",
    "sluice_config_reloads_total",
    "sluice_config_reload_failures_total",
    "sluice_config_rejected_objects",
    "sluice_tls_cert_not_after_seconds",
    "sluice_kube_events_total",
    "sluice_kube_relists_total",
    "sluice_kube_reconnects_total",
    "sluice_kube_watch_errors_total",
    "sluice_upstream_connections_opened_total",
    "sluice_upstream_requests_total",
    "sluice_service_ready_endpoints",
];

// ---------------------------------------------------------------------------
// Files

fn monitoring_dir() -> PathBuf {
    Path::new(ROOT).join("deploy/monitoring")
}

fn rel(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", rel(path)))
}

/// The non-empty YAML documents of a file.
fn documents(path: &Path) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(&read(path))
        .enumerate()
        .map(|(i, doc)| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} (document {i}): not YAML: {e}", rel(path)))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Every document of every `*.yaml` in `dir` but its kustomization.
fn objects_in(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", rel(dir)))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml" || e == "yml")
                && !p.ends_with("kustomization.yaml")
        })
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| documents(f).into_iter().map(move |d| (rel(f), d)))
        .collect()
}

fn kind_of(object: &Value) -> (&str, &str) {
    (
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
    )
}

/// The objects of one kind in `deploy/monitoring`.
fn monitoring_objects(kind: &str) -> Vec<Value> {
    objects_in(&monitoring_dir())
        .into_iter()
        .map(|(_, o)| o)
        .filter(|o| o["kind"] == kind)
        .collect()
}

fn string_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn dashboard_path() -> PathBuf {
    monitoring_dir().join("sluice-dashboard.json")
}

fn dashboard() -> Value {
    serde_json::from_str(&read(&dashboard_path())).expect("the dashboard is JSON")
}

// ---------------------------------------------------------------------------
// Kustomize

/// `deploy/monitoring/kustomization.yaml`, read strictly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Component {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    config_map_generator: Vec<Generator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Generator {
    name: String,
    namespace: Option<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    options: GeneratorOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GeneratorOptions {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    disable_name_suffix_hash: bool,
}

impl Generator {
    /// The generator's files, as paths (`key=path` entries give their path).
    fn paths(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .map(|f| f.split_once('=').map_or(f.as_str(), |(_, path)| path))
    }
}

/// A plain kustomization (the example overlay), with the fields it uses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    components: Vec<String>,
    #[serde(default)]
    patches: Vec<Value>,
}

fn component() -> Component {
    let path = monitoring_dir().join("kustomization.yaml");
    serde_yaml_ng::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{}: not a kustomize Component: {e}", rel(&path)))
}

fn canonical(dir: &Path, entry: &str) -> PathBuf {
    let path = dir.join(entry.trim_end_matches('/'));
    path.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {entry} does not exist: {e}", rel(dir)))
}

#[test]
fn component_kustomization_names_every_file() {
    let k = component();
    assert_eq!(
        (k.api_version.as_str(), k.kind.as_str()),
        ("kustomize.config.k8s.io/v1alpha1", "Component"),
        "deploy/monitoring must be a kustomize Component"
    );
    let dir = monitoring_dir();
    let mut named = BTreeSet::new();
    for entry in &k.resources {
        let path = canonical(&dir, entry);
        assert!(path.is_file(), "resource {entry} is not a file");
        assert!(named.insert(path), "{entry} is named twice");
    }
    for generator in &k.config_map_generator {
        for entry in generator.paths() {
            let path = canonical(&dir, entry);
            assert!(named.insert(path), "{entry} is named twice");
        }
    }
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read deploy/monitoring") {
        let path = entry.expect("directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "kustomization.yaml" || name == "README.md" {
            continue;
        }
        if !named.contains(&path.canonicalize().expect("canonical path")) {
            orphans.push(rel(&path));
        }
    }
    assert!(
        orphans.is_empty(),
        "not named by deploy/monitoring/kustomization.yaml: {orphans:?}"
    );
    assert!(
        dir.join("README.md").is_file(),
        "deploy/monitoring/README.md explains how to use the component"
    );
}

#[test]
fn dashboard_config_map_is_found_by_the_grafana_sidecar() {
    let k = component();
    let dashboards: Vec<&Generator> = k
        .config_map_generator
        .iter()
        .filter(|g| g.paths().any(|p| p.ends_with("sluice-dashboard.json")))
        .collect();
    assert_eq!(dashboards.len(), 1, "one ConfigMap holds the dashboard");
    let g = dashboards[0];
    assert_eq!(g.name, "sluice-dashboard");
    assert_eq!(g.namespace.as_deref(), Some(NAMESPACE));
    assert_eq!(
        g.options
            .labels
            .get("grafana_dashboard")
            .map(String::as_str),
        Some("1"),
        "the Grafana sidecar loads ConfigMaps labelled grafana_dashboard: \"1\""
    );
    assert!(
        g.options.disable_name_suffix_hash,
        "a hashed name leaves every previous dashboard ConfigMap behind"
    );
    // `kubectl apply` keeps the whole object in an annotation limited to 256 KiB.
    let size = read(&dashboard_path()).len();
    assert!(size < 200 * 1024, "the dashboard is {size} bytes");
    for value in g.options.annotations.values() {
        assert!(!value.is_empty());
    }
}

#[test]
fn overlay_adds_the_component_to_the_base() {
    let dir = Path::new(ROOT).join("deploy/overlays/monitoring");
    let path = dir.join("kustomization.yaml");
    let k: Kustomization = serde_yaml_ng::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("{}: not a kustomization: {e}", rel(&path)));
    assert_eq!(
        (k.api_version.as_str(), k.kind.as_str()),
        ("kustomize.config.k8s.io/v1beta1", "Kustomization")
    );
    let resources: Vec<PathBuf> = k.resources.iter().map(|r| canonical(&dir, r)).collect();
    let base = canonical(Path::new(ROOT), "deploy/base");
    assert!(
        resources.contains(&base),
        "{}: builds on deploy/base",
        rel(&path)
    );
    let components: Vec<PathBuf> = k.components.iter().map(|c| canonical(&dir, c)).collect();
    assert_eq!(
        components,
        vec![monitoring_dir().canonicalize().expect("deploy/monitoring")],
        "{}: adds deploy/monitoring as a component",
        rel(&path)
    );
    assert!(
        k.patches.is_empty(),
        "the example overlay changes nothing else"
    );
    for entry in std::fs::read_dir(&dir).expect("read the overlay") {
        let p = entry.expect("entry").path();
        assert!(p.ends_with("kustomization.yaml"), "{} is orphaned", rel(&p));
    }
}

#[test]
fn objects_have_the_expected_kinds() {
    let known = [
        ("v1", "Service"),
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    ];
    let mut seen = BTreeMap::new();
    for (file, object) in objects_in(&monitoring_dir()) {
        let kind = kind_of(&object);
        assert!(
            known.contains(&kind),
            "{file}: unexpected apiVersion/kind {kind:?}"
        );
        assert_eq!(
            object["metadata"]["namespace"], NAMESPACE,
            "{file}: {kind:?} lives in sluice's namespace"
        );
        assert!(object["metadata"]["name"].is_string(), "{file}: named");
        *seen.entry(kind.1.to_owned()).or_insert(0) += 1;
    }
    for (_, kind) in known {
        assert!(seen.contains_key(kind), "no {kind} in deploy/monitoring");
    }
}

// ---------------------------------------------------------------------------
// The ServiceMonitor and what it selects

fn deployment() -> Value {
    documents(&Path::new(ROOT).join("deploy/base/deployment.yaml"))
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("deploy/base has the Deployment")
}

fn services() -> Vec<(String, Value)> {
    let mut all = objects_in(&Path::new(ROOT).join("deploy/base"));
    all.extend(objects_in(&monitoring_dir()));
    all.into_iter()
        .filter(|(_, o)| kind_of(o) == ("v1", "Service"))
        .collect()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The port of `--admin-addr=HOST:PORT` in the Deployment's arguments.
fn admin_port(container: &Value) -> i64 {
    container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("--admin-addr="))
        .and_then(|addr| addr.rsplit_once(':'))
        .and_then(|(_, port)| port.parse().ok())
        .expect("the Deployment passes --admin-addr=HOST:PORT")
}

#[test]
fn service_monitor_scrapes_the_admin_port_of_the_sluice_pods() {
    let monitors = monitoring_objects("ServiceMonitor");
    assert_eq!(monitors.len(), 1);
    let monitor = &monitors[0];
    let spec = &monitor["spec"];
    assert!(
        spec["selector"].get("matchExpressions").is_none(),
        "this test reads matchLabels only"
    );
    assert!(
        spec.get("namespaceSelector").is_none(),
        "the ServiceMonitor selects Services of its own namespace"
    );
    let selector = string_map(&spec["selector"]["matchLabels"]);
    let endpoints = spec["endpoints"].as_array().expect("endpoints");
    assert!(!endpoints.is_empty());

    let deployment = deployment();
    let pod_labels = string_map(&deployment["spec"]["template"]["metadata"]["labels"]);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let admin = admin_port(container);

    let namespace = monitor["metadata"]["namespace"].as_str();
    let picked: Vec<(String, Value)> = services()
        .into_iter()
        .filter(|(_, s)| {
            s["metadata"]["namespace"].as_str() == namespace
                && selects(&selector, &string_map(&s["metadata"]["labels"]))
        })
        .collect();
    assert!(
        !picked.is_empty(),
        "the ServiceMonitor's selector {selector:?} matches no Service of deploy/base or deploy/monitoring"
    );
    for endpoint in endpoints {
        let port = endpoint["port"].as_str().expect("endpoint port by name");
        assert_eq!(endpoint["path"], "/metrics", "sluice serves /metrics");
        for (file, service) in &picked {
            let name = service["metadata"]["name"].as_str().unwrap_or("?");
            let service_port = service["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == port)
                .unwrap_or_else(|| {
                    panic!("{file}: Service {name} is selected but has no port named {port:?}")
                });
            assert!(
                selects(&string_map(&service["spec"]["selector"]), &pod_labels),
                "{file}: Service {name} does not select the sluice pods {pod_labels:?}"
            );
            let target = &service_port["targetPort"];
            let container_port = container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| match target {
                    Value::String(name) => p["name"] == *name,
                    Value::Number(_) => p["containerPort"] == *target,
                    _ => false,
                })
                .unwrap_or_else(|| {
                    panic!("{file}: targetPort {target} is not a port of the sluice container")
                });
            assert_eq!(
                container_port["containerPort"].as_i64(),
                Some(admin),
                "{file}: port {port:?} must reach --admin-addr's port"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Queries: extraction and checks

/// One PromQL expression of the manifests and what it prints.
#[derive(Debug, Clone)]
struct Query {
    /// Where it comes from, for messages.
    at: String,
    expr: String,
    /// Labels printed from its result (`{{route}}`, `$labels.service`).
    printed: BTreeSet<String>,
}

static METRIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^|[^A-Za-z0-9_:])(sluice_[a-z0-9_]+)(\s*\{[^}]*\})?").expect("regex")
});
static MATCHER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)\s*""#).expect("regex")
});
static GROUPING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)").expect("regex")
});
static LEGEND_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").expect("regex"));
static TEMPLATE_LABEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)").expect("regex"));
static GRAFANA_VAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)").expect("regex"));

/// The `sluice_*` metrics an expression reads, each with the label names of
/// its `{...}` matchers.
fn metric_refs(expr: &str) -> Vec<(String, Vec<String>)> {
    METRIC
        .captures_iter(expr)
        .map(|c| {
            let labels = c.get(2).map_or_else(Vec::new, |m| {
                MATCHER
                    .captures_iter(m.as_str())
                    .map(|l| l[1].to_owned())
                    .collect()
            });
            (c[1].to_owned(), labels)
        })
        .collect()
}

/// The labels of `by (...)` clauses (aggregations keep only those).
fn by_labels(expr: &str) -> BTreeSet<String> {
    grouping(expr, |kind| kind == "by")
}

/// The labels of every grouping or matching clause.
fn grouping(expr: &str, keep: impl Fn(&str) -> bool) -> BTreeSet<String> {
    GROUPING
        .captures_iter(expr)
        .filter(|c| keep(&c[1]))
        .flat_map(|c| {
            c[2].split(',')
                .map(|l| l.trim().to_owned())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `(`, `[` and `{` are balanced outside string literals.
fn balanced(expr: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut chars = expr.chars();
    let mut quote = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            if c == '\\' {
                chars.next();
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = stack.pop();
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open != Some(want) {
                    return Err(format!("unbalanced {c:?}"));
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("unterminated string".to_owned());
    }
    match stack.last() {
        Some(c) => Err(format!("unclosed {c:?}")),
        None => Ok(()),
    }
}

/// The alerting rules of the PrometheusRule, as queries.
fn alert_queries() -> Vec<Query> {
    let mut out = Vec::new();
    for rule in monitoring_objects("PrometheusRule") {
        for group in rule["spec"]["groups"].as_array().expect("groups") {
            for r in group["rules"].as_array().expect("rules") {
                let name = r["alert"]
                    .as_str()
                    .or_else(|| r["record"].as_str())
                    .unwrap_or("?");
                let printed = r["annotations"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(_, v)| v.as_str())
                    .flat_map(|text| TEMPLATE_LABEL.captures_iter(text).map(|c| c[1].to_owned()))
                    .collect();
                out.push(Query {
                    at: format!("PrometheusRule alert {name}"),
                    expr: r["expr"].as_str().expect("expr is a string").to_owned(),
                    printed,
                });
            }
        }
    }
    out
}

/// Every panel of the dashboard, rows' nested panels included.
fn all_panels(dashboard: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels").iter() {
        out.push(panel.clone());
        if let Some(nested) = panel["panels"].as_array() {
            out.extend(nested.iter().cloned());
        }
    }
    out
}

/// The dashboard's panel targets and query variables, as queries.
fn dashboard_queries(dashboard: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for panel in all_panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        for target in panel["targets"].as_array().into_iter().flatten() {
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            out.push(Query {
                at: format!("dashboard panel {title:?} target {}", target["refId"]),
                expr: target["expr"].as_str().unwrap_or_default().to_owned(),
                printed: LEGEND_LABEL
                    .captures_iter(legend)
                    .map(|c| c[1].to_owned())
                    .collect(),
            });
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("templating")
    {
        if variable["type"] == "query" {
            let query = &variable["query"];
            let expr = query["query"]
                .as_str()
                .or_else(|| query.as_str())
                .unwrap_or_default();
            out.push(Query {
                at: format!("dashboard variable {}", variable["name"]),
                expr: expr.to_owned(),
                printed: BTreeSet::new(),
            });
        }
    }
    out
}

fn all_queries() -> Vec<Query> {
    let mut queries = alert_queries();
    queries.extend(dashboard_queries(&dashboard()));
    queries
}

/// A `/metrics` text exposition: the `# TYPE` of each family and the label
/// names of each sample name.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, BTreeSet<String>>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    scrape.types.insert(name.to_owned(), kind.to_owned());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let (name, rest) = line.split_at(end);
            let labels = scrape.samples.entry(name.to_owned()).or_default();
            if let Some(rest) = rest.strip_prefix('{') {
                labels.extend(label_names(rest));
            }
        }
        scrape
    }

    /// The family `sample` belongs to and its type: itself, or the histogram
    /// (or summary) it is the `_bucket`, `_sum` or `_count` series of.
    fn family(&self, sample: &str) -> Option<(String, &str)> {
        if let Some(kind) = self.types.get(sample) {
            return Some((sample.to_owned(), kind));
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = sample.strip_suffix(suffix)?;
            let kind = self.types.get(base)?;
            let ok = kind == "histogram" || (kind == "summary" && *suffix != "_bucket");
            ok.then(|| (base.to_owned(), kind.as_str()))
        })
    }
}

/// The label names of `a="x",b="y"}` (quoted values may hold anything).
fn label_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let name: String = chars
            .by_ref()
            .take_while(|c| *c != '=' && *c != '}')
            .collect();
        let name = name.trim().trim_start_matches(',').trim().to_owned();
        if name.is_empty() {
            break;
        }
        names.push(name);
        if chars.next() != Some('"') {
            break;
        }
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => break,
                _ => {}
            }
        }
        if chars.peek() == Some(&'}') {
            break;
        }
    }
    names
}

/// Which scrape a metric is checked against: the Kubernetes provider's
/// metrics exist only in a sluice that watches the API.
fn scrape_for<'a>(name: &str, files: &'a Scrape, kube: &'a Scrape) -> (&'a Scrape, &'static str) {
    if name.starts_with("sluice_kube_") {
        (kube, "sluice with the Kubernetes provider")
    } else {
        (files, "sluice")
    }
}

/// Every problem of `queries` against the metrics sluice exposes.
fn check_queries(queries: &[Query], files: &Scrape, kube: &Scrape) -> Vec<String> {
    let mut problems = Vec::new();
    for q in queries {
        let at = &q.at;
        if q.expr.trim().is_empty() {
            problems.push(format!("{at}: empty expression"));
            continue;
        }
        if let Err(e) = balanced(&q.expr) {
            problems.push(format!("{at}: {e} in {:?}", q.expr));
        }
        let refs = metric_refs(&q.expr);
        if refs.is_empty() {
            problems.push(format!("{at}: queries no sluice_* metric: {:?}", q.expr));
        }
        let mut available: BTreeSet<String> =
            TARGET_LABELS.iter().map(|l| (*l).to_owned()).collect();
        for (name, matched) in &refs {
            let (scrape, who) = scrape_for(name, files, kube);
            let Some(labels) = scrape.samples.get(name) else {
                // Names sharing the first two words (`sluice_kube_`...), as hints.
                let prefix: String = name.split_inclusive('_').take(2).collect();
                let mut near: Vec<&String> = scrape
                    .samples
                    .keys()
                    .filter(|s| s.starts_with(&prefix))
                    .collect();
                near.truncate(12);
                problems.push(format!(
                    "{at}: {name} is not exposed on /metrics by a running {who} (some names it has: {near:?})"
                ));
                continue;
            };
            match scrape.family(name) {
                None => problems.push(format!("{at}: {name} has no # TYPE family on /metrics")),
                Some((family, kind)) => {
                    if name.ends_with("_bucket") && kind != "histogram" {
                        problems.push(format!(
                            "{at}: {name} is not a histogram's ({family}: {kind})"
                        ));
                    }
                }
            }
            for label in matched {
                if !labels.contains(label) && !TARGET_LABELS.contains(&label.as_str()) {
                    problems.push(format!(
                        "{at}: {name} has no label {label:?} (it has {labels:?})"
                    ));
                }
            }
            available.extend(labels.iter().cloned());
        }
        for label in grouping(&q.expr, |_| true) {
            if !available.contains(&label) {
                problems.push(format!(
                    "{at}: groups or matches by {label:?}, which none of its metrics has ({available:?})"
                ));
            }
        }
        let by = by_labels(&q.expr);
        for label in &q.printed {
            let kept = if by.is_empty() {
                available.contains(label)
            } else {
                by.contains(label)
            };
            if !kept {
                problems.push(format!(
                    "{at}: prints label {label:?}, which its result does not have"
                ));
            }
        }
        if q.expr.contains("histogram_quantile") {
            if !refs.iter().any(|(n, _)| n.ends_with("_bucket")) {
                problems.push(format!("{at}: histogram_quantile needs a _bucket series"));
            }
            if !by.contains("le") {
                problems.push(format!("{at}: histogram_quantile needs `by (le, ...)`"));
            }
        }
    }
    problems
}

#[test]
fn query_checker_catches_renamed_metrics_and_labels() {
    let exposition = "\
# TYPE sluice_requests_total counter
sluice_requests_total{entrypoint=\"web\",route=\"a-b-c\",service=\"default/web:80\",code=\"200\",method=\"GET\"} 3
# TYPE sluice_request_duration_seconds histogram
sluice_request_duration_seconds_bucket{route=\"r\",le=\"0.5\"} 1
sluice_request_duration_seconds_sum{route=\"r\"} 1
sluice_request_duration_seconds_count{route=\"r\"} 1
# TYPE sluice_kube_events_total counter
sluice_kube_events_total 4
";
    let scrape = Scrape::parse(exposition);
    assert_eq!(
        scrape.samples["sluice_requests_total"],
        ["code", "entrypoint", "method", "route", "service"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let query = |expr: &str, printed: &[&str]| Query {
        at: "test".to_owned(),
        expr: expr.to_owned(),
        printed: printed.iter().map(|l| (*l).to_owned()).collect(),
    };
    let good = [
        query(
            r#"sum by (route, service) (rate(sluice_requests_total{code=~"5..", job=~"$job"}[5m]))"#,
            &["route"],
        ),
        query(
            "histogram_quantile(0.99, sum by (le, route) (rate(sluice_request_duration_seconds_bucket[5m])))",
            &["route"],
        ),
        query("rate(sluice_kube_events_total[5m])", &["pod"]),
    ];
    let problems = check_queries(&good, &scrape, &scrape);
    assert!(problems.is_empty(), "{problems:?}");

    for (bad, why) in [
        (query("rate(sluice_request_total[5m])", &[]), "renamed metric"),
        (
            query("sum by (backend) (rate(sluice_requests_total[5m]))", &[]),
            "renamed grouping label",
        ),
        (
            query(r#"rate(sluice_requests_total{status="503"}[5m])"#, &[]),
            "renamed matched label",
        ),
        (
            query("sum by (route) (rate(sluice_requests_total[5m]))", &["service"]),
            "printed label dropped by the aggregation",
        ),
        (
            query("histogram_quantile(0.5, sum by (route) (rate(sluice_request_duration_seconds_bucket[5m])))", &[]),
            "quantile without le",
        ),
        (query("rate(sluice_requests_total[5m]", &[]), "unbalanced"),
        (query("sum(rate(sluice_kube_event_total[5m]))", &[]), "renamed kube metric"),
    ] {
        let problems = check_queries(std::slice::from_ref(&bad), &scrape, &scrape);
        assert!(!problems.is_empty(), "{why}: {:?} passed", bad.expr);
    }
    // A kube metric is looked up in the Kubernetes provider's scrape only.
    let files_only =
        Scrape::parse("# TYPE sluice_requests_total counter\nsluice_requests_total 1\n");
    let problems = check_queries(
        &[query("sluice_kube_events_total", &[])],
        &scrape,
        &files_only,
    );
    assert!(!problems.is_empty());
}

// ---------------------------------------------------------------------------
// Alerts

#[test]
fn alerts_have_for_severity_and_annotations_and_cover_the_promised_conditions() {
    let rules = monitoring_objects("PrometheusRule");
    assert_eq!(rules.len(), 1);
    let duration = Regex::new(r"^([0-9]+(ms|s|m|h|d|w|y))+$").expect("regex");
    let mut names = BTreeSet::new();
    let mut groups = BTreeSet::new();
    let mut watched = BTreeSet::new();
    for group in rules[0]["spec"]["groups"].as_array().expect("groups") {
        let group_name = group["name"].as_str().expect("group name");
        assert!(groups.insert(group_name), "group {group_name} twice");
        for rule in group["rules"].as_array().expect("rules") {
            let name = rule["alert"].as_str().expect("only alerting rules");
            assert!(names.insert(name), "alert {name} twice");
            let for_ = rule["for"].as_str().unwrap_or_default();
            assert!(
                duration.is_match(for_),
                "{name}: `for: {for_}` is not a duration"
            );
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{name}: severity {severity:?}"
            );
            for annotation in ["summary", "description"] {
                let text = rule["annotations"][annotation].as_str().unwrap_or_default();
                assert!(!text.trim().is_empty(), "{name}: no {annotation}");
            }
            let expr = rule["expr"].as_str().expect("expr");
            watched.extend(metric_refs(expr).into_iter().map(|(n, _)| n));
        }
    }
    for metric in ALERTED {
        assert!(
            watched.contains(*metric),
            "no alert watches {metric} (alerts watch {watched:?})"
        );
    }
}

// ---------------------------------------------------------------------------
// The dashboard

#[test]
fn dashboard_is_grafana_json_with_a_datasource_variable() {
    let d = dashboard();
    let schema = d["schemaVersion"].as_u64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let uid = d["uid"].as_str().unwrap_or_default();
    assert!(!uid.is_empty() && uid.len() <= 40, "uid {uid:?}");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["id"].is_null(), "a provisioned dashboard has no id");

    let variables = d["templating"]["list"].as_array().expect("templating.list");
    let names: BTreeSet<&str> = variables
        .iter()
        .map(|v| v["name"].as_str().expect("variable name"))
        .collect();
    assert_eq!(names.len(), variables.len(), "variable names are unique");
    let ds = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .expect("a `datasource` variable");
    assert_eq!(ds["type"], "datasource");
    assert_eq!(ds["query"], "prometheus");
    let datasource = json!({"type": "prometheus", "uid": "${datasource}"});
    for v in variables.iter().filter(|v| v["type"] == "query") {
        assert_eq!(v["datasource"], datasource, "variable {}", v["name"]);
    }

    let panels = all_panels(&d);
    assert!(panels.len() >= 10, "{} panels", panels.len());
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(String, [u64; 4])> = Vec::new();
    for panel in &panels {
        let title = panel["title"].as_str().unwrap_or_default();
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title:?}: id"));
        assert!(ids.insert(id), "panel id {id} twice ({title:?})");
        assert!(!title.is_empty(), "panel {id} has no title");
        let kind = panel["type"].as_str().unwrap_or_default();
        assert!(
            ["row", "timeseries", "stat", "bargauge", "gauge", "table"].contains(&kind),
            "{title:?}: panel type {kind:?}"
        );
        let g = &panel["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| {
            g[k].as_u64()
                .unwrap_or_else(|| panic!("{title:?}: gridPos.{k}"))
        });
        assert!(w >= 1 && h >= 1 && x + w <= 24, "{title:?}: gridPos {g}");
        for (other, [ox, oy, ow, oh]) in &boxes {
            let overlap = x < ox + ow && *ox < x + w && y < oy + oh && *oy < y + h;
            assert!(!overlap, "{title:?} overlaps {other:?}");
        }
        boxes.push((title.to_owned(), [x, y, w, h]));
        if kind == "row" {
            assert!(
                panel.get("targets").is_none(),
                "{title:?}: a row has no targets"
            );
            continue;
        }
        assert_eq!(panel["datasource"], datasource, "{title:?}: datasource");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title:?}: no targets");
        let mut refs = BTreeSet::new();
        for t in targets {
            let ref_id = t["refId"].as_str().unwrap_or_default();
            assert!(
                !ref_id.is_empty() && refs.insert(ref_id),
                "{title:?}: refId {ref_id:?}"
            );
            assert_eq!(
                t["datasource"], datasource,
                "{title:?} {ref_id}: datasource"
            );
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(!expr.trim().is_empty(), "{title:?} {ref_id}: no expr");
        }
    }

    let queries = dashboard_queries(&d);
    let mut charted = BTreeSet::new();
    for q in &queries {
        for var in GRAFANA_VAR.captures_iter(&q.expr) {
            let var = &var[1];
            assert!(
                names.contains(var) || GRAFANA_BUILTINS.contains(&var),
                "{}: unknown variable ${var}",
                q.at
            );
        }
        charted.extend(metric_refs(&q.expr).into_iter().map(|(n, _)| n));
    }
    for metric in CHARTED {
        assert!(charted.contains(*metric), "no panel shows {metric}");
    }
}

// ---------------------------------------------------------------------------
// Against a running sluice

/// GETs `/metrics` (the ServiceMonitor's path) from the admin listener.
async fn scrape(admin: std::net::SocketAddr) -> String {
    let monitors = monitoring_objects("ServiceMonitor");
    let path = monitors[0]["spec"]["endpoints"][0]["path"]
        .as_str()
        .expect("path")
        .to_owned();
    let answer = support::get(&support::client(), admin, "admin", &path, &[]).await;
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    answer.body
}

/// The value of the one sample of `name` whose labels include `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let found = tls_support::metric_samples(metrics, name, labels);
    assert!(found.len() <= 1, "several samples: {found:?}");
    found.first().map(|(_, v)| *v)
}

/// sluice with the file provider, after real traffic: 200s over HTTP and
/// HTTPS, 503s (no endpoints, missing Service), a 404.
async fn files_scrape() -> String {
    use tls_support::{annotated_service, cert, tls_ingress, tls_secret, HttpConn};
    let one = support::whoami("one").await;
    let two = support::whoami("two").await;
    let served = cert("web", &["web.test"]);
    let m = support::Manifests::new();
    m.write(
        "app.yaml",
        &[
            annotated_service("web", &[], &[one.addr, two.addr]),
            annotated_service("empty", &[], &[]),
            tls_secret("default", "web-cert", &served),
            tls_ingress(
                "app",
                &[],
                &[("web.test", "web-cert")],
                &[
                    ("web.test", "/", "Prefix", "web"),
                    ("empty.test", "/", "Prefix", "empty"),
                    ("ghost.test", "/", "Prefix", "ghost"),
                ],
            ),
        ]
        .concat(),
    );
    let sluice = support::start(support::settings(&m.path())).await;
    let client = support::client();
    for _ in 0..4 {
        let a = support::get(&client, sluice.http_addr, "web.test", "/", &[]).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    for host in ["empty.test", "ghost.test"] {
        let a = support::get(&client, sluice.http_addr, host, "/", &[]).await;
        assert_eq!(a.status, 503, "{host}: {}", a.body);
    }
    let a = support::get(&client, sluice.http_addr, "nowhere.test", "/", &[]).await;
    assert_eq!(a.status, 404);
    let mut tls = HttpConn::https(sluice.https_addr, Some("web.test"), &["http/1.1"]).await;
    let reply = tls.get("web.test", "/", &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let counted = |metrics: &str| {
        let web = sample(
            metrics,
            "sluice_requests_total",
            &[
                r#"entrypoint="web""#,
                r#"service="default/web:80""#,
                r#"code="200""#,
            ],
        );
        let secure = sample(
            metrics,
            "sluice_requests_total",
            &[
                r#"entrypoint="websecure""#,
                r#"service="default/web:80""#,
                r#"code="200""#,
            ],
        );
        let empty = sample(
            metrics,
            "sluice_requests_total",
            &[r#"service="default/empty:80""#, r#"code="503""#],
        );
        let handshakes = sample(
            metrics,
            "sluice_tls_handshakes_total",
            &[r#"version="TLSv1.3""#, r#"outcome="ok""#],
        );
        web == Some(4.0) && secure == Some(1.0) && empty == Some(1.0) && handshakes >= Some(1.0)
    };
    let admin = sluice.admin_addr;
    support::wait_for("the traffic is counted", || async {
        counted(&scrape(admin).await)
    })
    .await;
    let metrics = scrape(admin).await;
    let expiry = sample(
        &metrics,
        "sluice_tls_cert_not_after_seconds",
        &[r#"namespace="default""#, r#"secret="web-cert""#],
    );
    assert!(expiry.is_some_and(|t| t > 0.0), "{metrics}");
    sluice.stop();
    sluice.wait().await;
    metrics
}

/// sluice with the Kubernetes provider, against the in-test fake API server.
async fn kube_scrape() -> String {
    let api = kube_api::FakeApi::start_new().await;
    api.apply(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = support::settings(dir.path());
    settings.source = Source::Kube(KubeSettings {
        kubeconfig: Some(api.write_kubeconfig(dir.path())),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        ..KubeSettings::default()
    });
    let sluice = sluice::app::start(settings).await.expect("sluice starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !sluice.is_ready() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sluice never got ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let metrics = scrape(sluice.admin_addr).await;
    assert!(
        sample(&metrics, "sluice_kube_events_total", &[]).is_some_and(|n| n >= 1.0),
        "the provider counted the Service it listed: {metrics}"
    );
    sluice.stop();
    sluice.wait().await;
    metrics
}

#[tokio::test]
async fn every_queried_metric_is_exposed_by_a_running_sluice() {
    let files_text = files_scrape().await;
    let kube_text = kube_scrape().await;
    let files = Scrape::parse(&files_text);
    let kube = Scrape::parse(&kube_text);

    let queries = all_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let problems = check_queries(&queries, &files, &kube);
    assert!(
        problems.is_empty(),
        "the monitoring manifests query what sluice does not expose:\n{}\n\n/metrics:\n{files_text}\n\n/metrics (Kubernetes provider):\n{kube_text}",
        problems.join("\n")
    );

    // sluice's labels that Prometheus would rename to exported_* without
    // honorLabels (its own `service`, `namespace`).
    let colliding: BTreeSet<&str> = files
        .samples
        .values()
        .chain(kube.samples.values())
        .flatten()
        .map(String::as_str)
        .filter(|l| OPERATOR_TARGET_LABELS.contains(l))
        .collect();
    let monitors = monitoring_objects("ServiceMonitor");
    for endpoint in monitors[0]["spec"]["endpoints"]
        .as_array()
        .expect("endpoints")
    {
        if !colliding.is_empty() {
            assert_eq!(
                endpoint["honorLabels"], true,
                "sluice exposes labels {colliding:?} that Prometheus renames exported_* \
                 without honorLabels: the queries would not find them"
            );
        }
    }
}

#[tokio::test]
async fn service_ready_endpoints_reports_the_ready_endpoints_of_each_backend() {
    let one = support::whoami("one").await;
    let two = support::whoami("two").await;
    let spare = support::whoami("spare").await;
    let service = |name: &str, slices: &[(std::net::SocketAddr, bool)]| {
        let mut out = tls_support::annotated_service(name, &[], &[]);
        for (i, (addr, ready)) in slices.iter().enumerate() {
            out.push_str(&support::endpoint_slice(
                name,
                &format!("{name}-{i}"),
                *addr,
                *ready,
            ));
        }
        out
    };
    let ingress = support::ingress(
        "app",
        &[
            ("two.test", "/", "Prefix", "two"),
            ("two-again.test", "/", "Prefix", "two"),
            ("none.test", "/", "Prefix", "none"),
            ("ghost.test", "/", "Prefix", "ghost"),
        ],
    );
    let m = support::Manifests::new();
    m.write(
        "app.yaml",
        &[
            // Two ready endpoints and one that is not ready.
            service(
                "two",
                &[(one.addr, true), (two.addr, true), (spare.addr, false)],
            ),
            service("none", &[]),
            ingress.clone(),
        ]
        .concat(),
    );
    let sluice = support::start(support::settings(&m.path())).await;
    let metrics = scrape(sluice.admin_addr).await;
    let ready = |metrics: &str, service: &str| {
        sample(
            metrics,
            "sluice_service_ready_endpoints",
            &[&format!(r#"service="default/{service}:80""#)],
        )
    };
    assert_eq!(ready(&metrics, "two"), Some(2.0), "{metrics}");
    assert_eq!(ready(&metrics, "none"), Some(0.0), "{metrics}");
    assert_eq!(
        ready(&metrics, "ghost"),
        Some(0.0),
        "a missing Service: {metrics}"
    );
    assert_eq!(
        tls_support::metric_samples(&metrics, "sluice_service_ready_endpoints", &[]).len(),
        3,
        "one series per backend, however many routes use it: {metrics}"
    );
    // The routes agree: 503 where the gauge says 0.
    let client = support::client();
    for (host, status) in [("two.test", 200), ("none.test", 503), ("ghost.test", 503)] {
        let a = support::get(&client, sluice.http_addr, host, "/", &[]).await;
        assert_eq!(a.status, status, "{host}");
    }

    // Endpoints change: the spare becomes ready, `none` gets one.
    m.write(
        "app.yaml",
        &[
            service(
                "two",
                &[(one.addr, true), (two.addr, true), (spare.addr, true)],
            ),
            service("none", &[(spare.addr, true)]),
            ingress,
        ]
        .concat(),
    );
    let admin = sluice.admin_addr;
    support::wait_for("the new endpoints are counted", || async {
        let metrics = scrape(admin).await;
        ready(&metrics, "two") == Some(3.0) && ready(&metrics, "none") == Some(1.0)
    })
    .await;
    let a = support::get(&client, sluice.http_addr, "none.test", "/", &[]).await;
    assert_eq!(a.status, 200);
    sluice.stop();
    sluice.wait().await;
}
