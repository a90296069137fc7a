//! Guards the install manifests in `deploy/` (without `deploy/crds/`, which
//! `tests/deploy_crds.rs` covers, the `deploy/monitoring/` component, which
//! `tests/monitoring_manifests.rs` covers, and `deploy/examples/`, which
//! `tests/deploy_examples.rs` covers).
//!
//! The test checks that:
//! - every YAML document parses into its k8s-openapi type *strictly*: the
//!   typed object, serialized back, keeps every key of the file, so a
//!   misspelt field (which k8s-openapi would silently drop, like the API
//!   server's pruning) fails here with its path;
//! - every kustomization names files and directories that exist, and every
//!   manifest is named by one;
//! - the Deployment passes only flags the sluice binary has (read from
//!   `src/cli.rs`), its container ports are the ports of those flags, the
//!   Service maps 80 → web and 443 → websecure, probes, shutdown timing and
//!   the pod's security settings are as documented;
//! - the ClusterRole grants exactly [`SLUICE_API_CALLS`] (cluster-wide part),
//!   and the Lease is reachable only through a Role in sluice's namespace;
//! - the NodePort overlay turns the Service into a NodePort Service.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::Resource;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const DEPLOY_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
const CLI_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/cli.rs");

/// The controller name sluice matches in `IngressClass.spec.controller`.
const CONTROLLER: &str = "sluice.dev/ingress-controller";

/// Where an API call reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    /// Every namespace (or a cluster-scoped resource): the ClusterRole.
    Cluster,
    /// Only sluice's own namespace: the leader-election Role.
    OwnNamespace,
}

/// The Kubernetes API calls sluice makes: `(scope, API group, resource, verbs)`.
///
/// This list is the single source of truth for sluice's RBAC: the ClusterRole
/// in `deploy/base/clusterrole.yaml` must grant exactly the `Cluster` entries
/// and the Role in `deploy/base/leader-election-rbac.yaml` exactly the
/// `OwnNamespace` ones. The Kubernetes provider's tests must keep it in sync
/// with the calls the provider really makes (every watcher, get, patch and
/// Lease call): when the provider gains or drops a call, change this list,
/// and the manifests follow.
///
/// API discovery (`/apis/traefik.io/v1alpha1`) is not listed: it needs no
/// RBAC rule, every authenticated user may read it (`system:discovery`).
const SLUICE_API_CALLS: &[(Scope, &str, &str, &[&str])] = &[
    (
        Scope::Cluster,
        "networking.k8s.io",
        "ingresses",
        &["list", "watch"],
    ),
    (
        Scope::Cluster,
        "networking.k8s.io",
        "ingressclasses",
        &["list", "watch"],
    ),
    (
        Scope::Cluster,
        "networking.k8s.io",
        "ingresses/status",
        &["patch", "update"],
    ),
    // `get`: the --publish-service Service.
    (Scope::Cluster, "", "services", &["get", "list", "watch"]),
    (
        Scope::Cluster,
        "discovery.k8s.io",
        "endpointslices",
        &["list", "watch"],
    ),
    (Scope::Cluster, "", "secrets", &["list", "watch"]),
    // The ConfigMaps ingress-nginx annotations and --nginx-configmap name.
    (Scope::Cluster, "", "configmaps", &["list", "watch"]),
    (
        Scope::Cluster,
        "traefik.io",
        "middlewares",
        &["list", "watch"],
    ),
    // Namespace labels, for Gateway listeners' allowedRoutes selectors.
    (Scope::Cluster, "", "namespaces", &["list", "watch"]),
    // The Gateway API kinds (ReferenceGrant through v1 or v1beta1: one
    // resource for RBAC), and the status subresources the leader writes.
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "gatewayclasses",
        &["list", "watch"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "gateways",
        &["list", "watch"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "httproutes",
        &["list", "watch"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "referencegrants",
        &["list", "watch"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "backendtlspolicies",
        &["list", "watch"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "gatewayclasses/status",
        &["patch", "update"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "gateways/status",
        &["patch", "update"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "httproutes/status",
        &["patch", "update"],
    ),
    (
        Scope::Cluster,
        "gateway.networking.k8s.io",
        "backendtlspolicies/status",
        &["patch", "update"],
    ),
    (
        Scope::OwnNamespace,
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
    ),
];

// ---------------------------------------------------------------------------
// Loading

/// One YAML document of a manifest file.
struct Document {
    file: PathBuf,
    index: usize,
    value: Value,
}

impl Document {
    fn at(&self) -> String {
        format!("{} (document {})", rel(&self.file), self.index)
    }
}

/// A path relative to `deploy/`, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(DEPLOY_DIR).map_or_else(
        |_| path.display().to_string(),
        |p| format!("deploy/{}", p.display()),
    )
}

/// The YAML files under `dir`, recursively, without `deploy/crds`,
/// `deploy/monitoring` and `deploy/examples` (their own tests read them).
fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            let own_test =
                ["crds", "monitoring", "examples"].map(|d| Path::new(DEPLOY_DIR).join(d));
            if !own_test.contains(&path) {
                yaml_files(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            out.push(path);
        }
    }
}

/// The documents of one YAML file (empty documents left out).
fn documents_of(file: &Path) -> Vec<Document> {
    let text =
        std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .enumerate()
        .map(|(index, doc)| {
            let value = Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} (document {index}): not YAML: {e}", rel(file)));
            Document {
                file: file.to_owned(),
                index,
                value,
            }
        })
        .filter(|doc| !doc.value.is_null())
        .collect()
}

/// The first key of `original` that `round_trip` lacks, as a path like
/// `$.spec.template.spec.containers[0].readinesProbe`.
fn first_lost_key(original: &Value, round_trip: &Value, path: &str) -> Option<String> {
    match (original, round_trip) {
        (Value::Object(original), Value::Object(round_trip)) => {
            original.iter().find_map(|(key, value)| {
                let path = format!("{path}.{key}");
                match round_trip.get(key) {
                    None => Some(path),
                    Some(kept) => first_lost_key(value, kept, &path),
                }
            })
        }
        (Value::Array(original), Value::Array(round_trip)) => {
            if original.len() != round_trip.len() {
                return Some(format!(
                    "{path} ({} items, {} after parsing)",
                    original.len(),
                    round_trip.len()
                ));
            }
            original
                .iter()
                .zip(round_trip)
                .enumerate()
                .find_map(|(i, (value, kept))| first_lost_key(value, kept, &format!("{path}[{i}]")))
        }
        (Value::Object(_) | Value::Array(_), _) => Some(format!("{path} (changed shape)")),
        _ => None,
    }
}

/// Parses `value` into `T`, failing if the typed object drops any key
/// (k8s-openapi ignores unknown fields, so a typo would otherwise pass).
fn strict<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let round_trip = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    match first_lost_key(value, &round_trip, "$") {
        None => Ok(typed),
        Some(path) => Err(format!(
            "unknown field {path} (misspelt, misplaced or not in the Kubernetes API)"
        )),
    }
}

/// A parsed manifest.
enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    Role(Role),
    RoleBinding(RoleBinding),
    IngressClass(IngressClass),
    Deployment(Box<Deployment>),
    Service(Service),
    PodDisruptionBudget(PodDisruptionBudget),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
}

/// `true` when `value` is a `T` by apiVersion and kind.
fn is<T: Resource>(api_version: &str, kind: &str) -> bool {
    api_version == T::API_VERSION && kind == T::KIND
}

fn parse(value: &Value) -> Result<Object, String> {
    let api_version = value["apiVersion"].as_str().unwrap_or_default();
    let kind = value["kind"].as_str().unwrap_or_default();
    Ok(if is::<Namespace>(api_version, kind) {
        Object::Namespace(strict(value)?)
    } else if is::<ServiceAccount>(api_version, kind) {
        Object::ServiceAccount(strict(value)?)
    } else if is::<ClusterRole>(api_version, kind) {
        Object::ClusterRole(strict(value)?)
    } else if is::<ClusterRoleBinding>(api_version, kind) {
        Object::ClusterRoleBinding(strict(value)?)
    } else if is::<Role>(api_version, kind) {
        Object::Role(strict(value)?)
    } else if is::<RoleBinding>(api_version, kind) {
        Object::RoleBinding(strict(value)?)
    } else if is::<IngressClass>(api_version, kind) {
        Object::IngressClass(strict(value)?)
    } else if is::<Deployment>(api_version, kind) {
        Object::Deployment(Box::new(strict(value)?))
    } else if is::<Service>(api_version, kind) {
        Object::Service(strict(value)?)
    } else if is::<PodDisruptionBudget>(api_version, kind) {
        Object::PodDisruptionBudget(strict(value)?)
    } else if is::<HorizontalPodAutoscaler>(api_version, kind) {
        Object::HorizontalPodAutoscaler(strict(value)?)
    } else {
        return Err(format!(
            "apiVersion {api_version:?} kind {kind:?} is not one this test knows \
             (add its k8s-openapi type to `parse`)"
        ));
    })
}

/// A kustomization file, read strictly (only the fields used here).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    patches: Vec<Patch>,
    #[serde(default)]
    images: Vec<Image>,
    /// Kustomize Components (`deploy/monitoring`).
    #[serde(default)]
    components: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    path: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Image {
    name: String,
    #[allow(dead_code)] // read for its strictness only
    new_name: Option<String>,
    new_tag: Option<String>,
}

/// Everything under `deploy/` (without `deploy/crds/`).
struct Manifests {
    /// Kustomization files by path.
    kustomizations: BTreeMap<PathBuf, Kustomization>,
    /// Objects of files listed as `resources` (what gets applied).
    resources: Vec<(String, Object)>,
    /// Objects of files listed as `patches`.
    patches: Vec<(String, Object)>,
}

fn load() -> Manifests {
    let mut files = Vec::new();
    yaml_files(Path::new(DEPLOY_DIR), &mut files);

    let mut kustomizations = BTreeMap::new();
    for file in files.iter().filter(|f| f.ends_with("kustomization.yaml")) {
        let text = std::fs::read_to_string(file).expect("read kustomization");
        let k: Kustomization = serde_yaml_ng::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not a kustomization: {e}", rel(file)));
        assert_eq!(
            (k.api_version.as_str(), k.kind.as_str()),
            ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
            "{}",
            rel(file)
        );
        kustomizations.insert(file.clone(), k);
    }

    let patch_files: BTreeSet<PathBuf> = kustomizations
        .iter()
        .flat_map(|(file, k)| {
            let dir = file.parent().expect("has a directory").to_owned();
            k.patches.iter().map(move |p| dir.join(&p.path))
        })
        .collect();

    let mut resources = Vec::new();
    let mut patches = Vec::new();
    let mut errors = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("kustomization.yaml")) {
        for doc in documents_of(file) {
            match parse(&doc.value) {
                Ok(object) if patch_files.contains(file) => patches.push((doc.at(), object)),
                Ok(object) => resources.push((doc.at(), object)),
                Err(e) => errors.push(format!("{}: {e}", doc.at())),
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    Manifests {
        kustomizations,
        resources,
        patches,
    }
}

/// The single object of one kind among the applied resources.
macro_rules! one {
    ($manifests:expr, $variant:ident) => {{
        let found: Vec<_> = $manifests
            .resources
            .iter()
            .filter_map(|(_, o)| match o {
                Object::$variant(x) => Some(x),
                _ => None,
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            concat!("expected exactly one ", stringify!($variant))
        );
        found[0]
    }};
}

fn deployment(m: &Manifests) -> &Deployment {
    one!(m, Deployment)
}

fn pod_spec(d: &Deployment) -> &PodSpec {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("Deployment has a pod spec")
}

fn container(d: &Deployment) -> &Container {
    let containers = &pod_spec(d).containers;
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// The container's `--flag=value` arguments.
fn args(d: &Deployment) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for arg in container(d).args.as_deref().unwrap_or_default() {
        let (flag, value) = arg
            .strip_prefix("--")
            .and_then(|a| a.split_once('='))
            .unwrap_or_else(|| panic!("argument {arg:?} is not --flag=value"));
        assert!(
            out.insert(flag.to_owned(), value.to_owned()).is_none(),
            "--{flag} is given twice"
        );
    }
    out
}

fn arg<'a>(args: &'a BTreeMap<String, String>, flag: &str) -> &'a str {
    args.get(flag)
        .unwrap_or_else(|| panic!("the Deployment does not pass --{flag}"))
}

fn container_port(d: &Deployment, name: &str) -> i32 {
    container(d)
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no container port named {name}"))
        .container_port
}

fn labels_match(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .expect("pod template has labels")
}

fn namespace_of(d: &Deployment) -> &str {
    d.metadata
        .namespace
        .as_deref()
        .expect("Deployment has a namespace")
}

// ---------------------------------------------------------------------------
// The binary's flags

fn kebab(field: &str) -> String {
    field.replace('_', "-")
}

/// Long flags of the run command, read from `src/cli.rs`: the fields of
/// `struct RunArgs` with `#[arg(long ...)]` (`long = "name"` when given,
/// else the field name in kebab-case).
///
/// `sluice::cli` lives in the binary crate (`mod cli` in `src/main.rs`),
/// which integration tests cannot import; with `pub mod cli` in the library
/// this would be `sluice::cli::Cli::command()` and its arguments' `get_long()`.
fn cli_long_flags() -> BTreeSet<String> {
    let source = std::fs::read_to_string(CLI_PATH).expect("read src/cli.rs");
    let start = source
        .find("pub struct RunArgs {")
        .expect("src/cli.rs has `pub struct RunArgs {`");
    let body = &source[start..];
    let body = &body[..body.find("\n}").expect("end of RunArgs")];

    let explicit = regex::Regex::new(r#"\blong\s*=\s*"([^"]+)""#).expect("regex");
    let bare = regex::Regex::new(r"\blong\b").expect("regex");
    let field =
        regex::Regex::new(r"^\s*(?:pub(?:\([a-z]+\))?\s+)?([a-z_][a-z0-9_]*)\s*:").expect("regex");

    let mut flags = BTreeSet::new();
    let mut attribute = String::new();
    let mut in_attribute = false;
    let mut depth = 0i32;
    for line in body.lines().skip(1) {
        let trimmed = line.trim();
        if !in_attribute && trimmed.starts_with("#[arg(") {
            in_attribute = true;
            depth = 0;
        }
        if in_attribute {
            attribute.push_str(trimmed);
            attribute.push(' ');
            depth += trimmed.matches('(').count() as i32 - trimmed.matches(')').count() as i32;
            if depth <= 0 && trimmed.ends_with(']') {
                in_attribute = false;
            }
            continue;
        }
        if trimmed.starts_with("//") || trimmed.starts_with("#[") {
            continue;
        }
        if let Some(name) = field.captures(line) {
            if let Some(long) = explicit.captures(&attribute) {
                flags.insert(long[1].to_owned());
            } else if bare.is_match(&attribute) {
                flags.insert(kebab(&name[1]));
            }
            attribute.clear();
        }
    }
    // Guards the scanner: if cli.rs changes shape, fail loudly instead of
    // rejecting every flag.
    for known in [
        "http-addr",
        "https-addr",
        "admin-addr",
        "ingress-class",
        "shutdown-grace",
    ] {
        assert!(
            flags.contains(known),
            "could not read the flags of RunArgs in src/cli.rs (no --{known}): {flags:?}"
        );
    }
    flags
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn strict_parsing_catches_a_misspelt_field() {
    let mut value: Value = serde_yaml_ng::from_str(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n\
         spec:\n  selector: {matchLabels: {a: b}}\n  template:\n    spec:\n      \
         containers:\n        - name: x\n          readinesProbe: {}\n",
    )
    .expect("yaml");
    let Err(message) = parse(&value).map(|_| ()) else {
        panic!("a misspelt field was accepted");
    };
    assert!(
        message.contains("$.spec.template.spec.containers[0].readinesProbe"),
        "{message}"
    );

    value["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container")
        .remove("readinesProbe");
    assert!(parse(&value).is_ok());
}

#[test]
fn every_manifest_parses_strictly() {
    let m = load();
    assert!(m.resources.len() >= 11, "{} objects", m.resources.len());
}

#[test]
fn kustomizations_name_existing_files_and_every_manifest() {
    let m = load();
    let deploy = Path::new(DEPLOY_DIR);
    assert!(
        m.kustomizations
            .contains_key(&deploy.join("kustomization.yaml")),
        "deploy/kustomization.yaml is missing"
    );

    let mut named = BTreeSet::new();
    for (file, k) in &m.kustomizations {
        let dir = file.parent().expect("has a directory");
        for entry in &k.components {
            let path = dir.join(entry.trim_end_matches('/'));
            assert!(
                path.join("kustomization.yaml").is_file(),
                "{}: component {entry} is not a directory with a kustomization.yaml",
                rel(file)
            );
        }
        for entry in k.resources.iter().chain(k.patches.iter().map(|p| &p.path)) {
            let path = dir.join(entry.trim_end_matches('/'));
            if path.is_dir() {
                assert!(
                    path.join("kustomization.yaml").is_file(),
                    "{}: {entry} is a directory without kustomization.yaml",
                    rel(file)
                );
            } else {
                assert!(path.is_file(), "{}: {entry} does not exist", rel(file));
                named.insert(path);
            }
        }
    }

    let top = &m.kustomizations[&deploy.join("kustomization.yaml")];
    let top_entries: Vec<_> = top
        .resources
        .iter()
        .map(|r| r.trim_end_matches('/'))
        .collect();
    assert!(
        top_entries.contains(&"crds"),
        "deploy/kustomization.yaml must include crds/"
    );

    let mut files = Vec::new();
    yaml_files(deploy, &mut files);
    for file in files.iter().filter(|f| !f.ends_with("kustomization.yaml")) {
        assert!(
            named.contains(file),
            "{} is not named by any kustomization.yaml",
            rel(file)
        );
    }
}

#[test]
fn deployment_args_are_flags_of_the_binary() {
    let m = load();
    let flags = cli_long_flags();
    let args = args(deployment(&m));
    let unknown: Vec<_> = args.keys().filter(|f| !flags.contains(*f)).collect();
    assert!(
        unknown.is_empty(),
        "the Deployment passes flags sluice does not have: {unknown:?} (flags: {flags:?})"
    );
    for flag in [
        "http-addr",
        "https-addr",
        "admin-addr",
        "ingress-class",
        "publish-service",
        "election-id",
        "shutdown-grace",
        "log-format",
    ] {
        arg(&args, flag);
    }
    assert_eq!(arg(&args, "log-format"), "json");
}

#[test]
fn ports_match_the_args_and_the_service() {
    let m = load();
    let d = deployment(&m);
    let args = args(d);
    for (flag, port) in [
        ("http-addr", "web"),
        ("https-addr", "websecure"),
        ("admin-addr", "admin"),
    ] {
        let addr: SocketAddr = arg(&args, flag)
            .parse()
            .unwrap_or_else(|e| panic!("--{flag}: {e}"));
        assert!(
            addr.ip().is_unspecified(),
            "--{flag} must bind every address of the pod (the kubelet and the Service reach the pod IP)"
        );
        assert_eq!(
            i32::from(addr.port()),
            container_port(d, port),
            "--{flag} and containerPort {port}"
        );
    }
    let names: Vec<_> = container(d)
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| p.name.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(names, ["web", "websecure", "admin"]);

    let service = one!(m, Service);
    let spec = service.spec.as_ref().expect("Service spec");
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    let mapping: Vec<_> = spec
        .ports
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|p| (p.port, p.target_port.clone()))
        .collect();
    assert_eq!(
        mapping,
        [
            (80, Some(IntOrString::String("web".into()))),
            (443, Some(IntOrString::String("websecure".into()))),
        ],
        "the Service maps 80 → web and 443 → websecure, and exposes nothing else (not admin)"
    );
    assert!(labels_match(
        spec.selector.as_ref().expect("Service selector"),
        &pod_labels(d)
    ));

    // --publish-service names this Service.
    assert_eq!(
        arg(&args, "publish-service"),
        format!(
            "{}/{}",
            service.metadata.namespace.as_deref().unwrap_or_default(),
            service.metadata.name.as_deref().unwrap_or_default()
        )
    );
}

#[test]
fn probes_env_and_shutdown_timing() {
    let m = load();
    let d = deployment(&m);
    let c = container(d);
    for (probe, path) in [
        (&c.readiness_probe, "/readyz"),
        (&c.liveness_probe, "/healthz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("no httpGet probe for {path}"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::String("admin".into()));
    }

    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = c
            .env
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no env {name}"));
        let from = var
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .unwrap_or_else(|| panic!("{name} is not from the downward API"));
        assert_eq!(from.field_path, field);
    }

    let pause = c
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())
        .and_then(|h| h.sleep.as_ref())
        .expect("a preStop sleep")
        .seconds;
    assert!(pause > 0);
    let args = args(d);
    let grace: Duration = humantime::parse_duration(arg(&args, "shutdown-grace"))
        .expect("--shutdown-grace is a duration");
    let termination = pod_spec(d)
        .termination_grace_period_seconds
        .expect("terminationGracePeriodSeconds");
    let needed = u64::try_from(pause).expect("pause") + grace.as_secs();
    assert!(
        u64::try_from(termination).expect("termination") > needed,
        "terminationGracePeriodSeconds ({termination}) must exceed the preStop pause ({pause}s) \
         plus --shutdown-grace ({}s)",
        grace.as_secs()
    );
}

#[test]
fn pod_runs_restricted() {
    let m = load();
    let d = deployment(&m);
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(2));
    let pod = pod_spec(d);
    let pod_security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|uid| uid != 0));
    assert_eq!(
        pod_security
            .seccomp_profile
            .as_ref()
            .map(|p| p.type_.as_str()),
        Some("RuntimeDefault")
    );

    let c = container(d);
    let security = c
        .security_context
        .as_ref()
        .expect("container securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_ne!(security.privileged, Some(true));
    let caps = security.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_owned()][..]));
    assert!(caps.add.as_deref().unwrap_or_default().is_empty());

    let resources = c.resources.as_ref().expect("resources");
    for (what, list) in [
        ("requests", &resources.requests),
        ("limits", &resources.limits),
    ] {
        let list = list.as_ref().unwrap_or_else(|| panic!("no {what}"));
        assert!(
            list.contains_key("cpu") && list.contains_key("memory"),
            "{what} must set cpu and memory"
        );
    }

    // The image is a plain name that deploy/base/kustomization.yaml pins
    // (`images:`), so one line there moves every overlay to another registry.
    let image = c.image.as_deref().expect("image");
    let pinned = m
        .kustomizations
        .values()
        .flat_map(|k| &k.images)
        .find(|i| i.name == image)
        .unwrap_or_else(|| panic!("no kustomization sets the image {image:?}"));
    assert!(pinned.new_tag.is_some(), "pin a tag for {image:?}");

    assert_eq!(
        pod.service_account_name.as_deref(),
        one!(m, ServiceAccount).metadata.name.as_deref()
    );
}

/// `(group, resource, verb)` triples of rules; rejects wildcards and
/// non-resource URLs.
fn grants(rules: &[PolicyRule], at: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in rules {
        assert!(rule.non_resource_urls.is_none(), "{at}: nonResourceURLs");
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        for group in groups {
            for resource in resources {
                for verb in &rule.verbs {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "{at}: wildcard in {group:?} {resource:?} {verb:?}"
                    );
                    out.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    out
}

fn api_calls(scope: Scope) -> BTreeSet<(String, String, String)> {
    SLUICE_API_CALLS
        .iter()
        .filter(|(s, ..)| *s == scope)
        .flat_map(|(_, group, resource, verbs)| {
            verbs.iter().map(|verb| {
                (
                    (*group).to_owned(),
                    (*resource).to_owned(),
                    (*verb).to_owned(),
                )
            })
        })
        .collect()
}

fn assert_same_grants(
    granted: &BTreeSet<(String, String, String)>,
    needed: &BTreeSet<(String, String, String)>,
    what: &str,
) {
    let missing: Vec<_> = needed.difference(granted).collect();
    let extra: Vec<_> = granted.difference(needed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what} and SLUICE_API_CALLS disagree:\n  calls sluice makes that are not granted: \
         {missing:?}\n  granted but never called (not least privilege): {extra:?}"
    );
}

fn service_account_subject(m: &Manifests) -> (String, String) {
    let sa = one!(m, ServiceAccount);
    (
        sa.metadata
            .namespace
            .clone()
            .expect("ServiceAccount namespace"),
        sa.metadata.name.clone().expect("ServiceAccount name"),
    )
}

#[test]
fn cluster_role_grants_exactly_the_api_calls() {
    let m = load();
    let role = one!(m, ClusterRole);
    let rules = role.rules.as_deref().unwrap_or_default();
    for rule in rules {
        assert!(
            rule.resource_names.is_none(),
            "the ClusterRole names no resources"
        );
    }
    assert!(role.aggregation_rule.is_none());
    assert_same_grants(
        &grants(rules, "ClusterRole"),
        &api_calls(Scope::Cluster),
        "the ClusterRole",
    );

    let binding = one!(m, ClusterRoleBinding);
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let subjects: Vec<_> = binding
        .subjects
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s.kind.clone(),
                s.namespace.clone().unwrap_or_default(),
                s.name.clone(),
            )
        })
        .collect();
    let (namespace, name) = service_account_subject(&m);
    assert_eq!(subjects, [("ServiceAccount".to_owned(), namespace, name)]);
}

#[test]
fn lease_role_is_namespaced() {
    let m = load();
    let d = deployment(&m);
    let namespace = namespace_of(d);
    let role = one!(m, Role);
    assert_eq!(role.metadata.namespace.as_deref(), Some(namespace));
    let rules = role.rules.as_deref().unwrap_or_default();
    assert_same_grants(
        &grants(rules, "Role"),
        &api_calls(Scope::OwnNamespace),
        "the leader-election Role",
    );

    // Names, where given, are the Lease of --election-id; `create` cannot be
    // limited by name (the API server authorizes it before the name exists).
    let args = args(d);
    let election_id = arg(&args, "election-id");
    for rule in rules {
        if let Some(names) = &rule.resource_names {
            assert_eq!(names, &[election_id.to_owned()], "resourceNames");
            assert!(
                !rule.verbs.iter().any(|v| v == "create"),
                "a create rule with resourceNames never matches"
            );
        }
    }

    let binding = one!(m, RoleBinding);
    assert_eq!(binding.metadata.namespace.as_deref(), Some(namespace));
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(&binding.role_ref.name), role.metadata.name.as_ref());
    let (sa_namespace, sa_name) = service_account_subject(&m);
    assert_eq!(sa_namespace, namespace);
    let subjects = binding.subjects.as_deref().unwrap_or_default();
    assert!(
        subjects.len() == 1
            && subjects[0].kind == "ServiceAccount"
            && subjects[0].name == sa_name
            && subjects[0].namespace.as_deref() == Some(namespace),
        "the RoleBinding binds sluice's ServiceAccount"
    );
}

#[test]
fn namespaced_objects_live_in_sluices_namespace() {
    let m = load();
    let namespace = one!(m, Namespace).metadata.name.clone().expect("name");
    assert_eq!(namespace_of(deployment(&m)), namespace);
    for (at, object) in &m.resources {
        let meta = match object {
            Object::Namespace(_)
            | Object::ClusterRole(_)
            | Object::ClusterRoleBinding(_)
            | Object::IngressClass(_) => continue,
            Object::ServiceAccount(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::HorizontalPodAutoscaler(o) => &o.metadata,
        };
        assert_eq!(meta.namespace.as_ref(), Some(&namespace), "{at}");
    }
}

#[test]
fn ingress_class_is_sluices() {
    let m = load();
    let class = one!(m, IngressClass);
    let args = args(deployment(&m));
    assert_eq!(
        class.metadata.name.as_deref(),
        Some(arg(&args, "ingress-class"))
    );
    assert_eq!(
        class.spec.as_ref().and_then(|s| s.controller.as_deref()),
        Some(CONTROLLER)
    );
}

#[test]
fn disruption_budget_and_autoscaler_target_the_deployment() {
    let m = load();
    let d = deployment(&m);
    let labels = pod_labels(d);
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .expect("Deployment matchLabels");
    assert!(labels_match(&selector, &labels));

    let pdb = one!(m, PodDisruptionBudget);
    let pdb_spec = pdb.spec.as_ref().expect("PDB spec");
    assert!(labels_match(
        pdb_spec
            .selector
            .as_ref()
            .and_then(|s| s.match_labels.as_ref())
            .expect("PDB matchLabels"),
        &labels
    ));
    assert!(pdb_spec.min_available.is_some() || pdb_spec.max_unavailable.is_some());

    let hpa = one!(m, HorizontalPodAutoscaler);
    let spec = hpa.spec.as_ref().expect("HPA spec");
    assert_eq!(spec.scale_target_ref.kind, "Deployment");
    assert_eq!(Some(&spec.scale_target_ref.name), d.metadata.name.as_ref());
    assert!(
        spec.min_replicas.unwrap_or(1) >= 2 && spec.max_replicas >= spec.min_replicas.unwrap_or(1)
    );
    assert!(
        spec.metrics
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|metric| metric.resource.as_ref().is_some_and(|r| r.name == "cpu")),
        "the HPA scales on CPU"
    );
}

#[test]
fn nodeport_overlay_patches_the_service_type() {
    let m = load();
    let overlay = Path::new(DEPLOY_DIR).join("overlays/nodeport/kustomization.yaml");
    let k = m
        .kustomizations
        .get(&overlay)
        .expect("deploy/overlays/nodeport/kustomization.yaml");
    assert!(
        k.resources
            .iter()
            .any(|r| r.trim_end_matches('/') == "../../base"),
        "the overlay builds on deploy/base: {:?}",
        k.resources
    );
    assert_eq!(k.patches.len(), 1);

    let base = one!(m, Service);
    let patched: Vec<_> = m
        .patches
        .iter()
        .filter_map(|(_, o)| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(patched.len(), 1, "one Service patch");
    let patch = patched[0];
    assert_eq!(patch.metadata.name, base.metadata.name);
    assert_eq!(patch.metadata.namespace, base.metadata.namespace);
    assert_eq!(
        patch.spec.as_ref().and_then(|s| s.type_.as_deref()),
        Some("NodePort")
    );
}
