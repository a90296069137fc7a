//! Compiler fixtures: `tests/fixtures/compile/<case>.yaml` compiled and summarised,
//! compared with `<case>.expected`. `BLESS=1 cargo test --test compile_fixtures`
//! rewrites the expectations (review every change by eye).
//!
//! A fixture is multi-document YAML of Kubernetes objects (namespace `default`
//! when unset) plus two optional documents of the test's own:
//! `kind: Options` (`ingressClass`) and `kind: Probes`, whose `probes` list lines
//! `<host> <path> [<header>:<value>...] -> <route name or 404>` that lookup
//! must answer exactly (a GET with those headers and no query, so HTTPRoute
//! rules take part). Gateway API
//! objects are decoded with the API server's defaults, as the providers do.
//! The summary lists routes, then one line per backend (so two references that
//! share a backend show as one), then diagnostics.
//!
//! The same loader also compiles the demo manifests in `examples/`, which must
//! compile without a diagnostic.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Deserialize;
use serde_json::Value;
use sluice::router::{compile, CompileOptions, Compiled, Registries, Snapshot};

#[derive(Default)]
struct Fixture {
    snapshot: Snapshot,
    options: CompileOptions,
    probes: Vec<String>,
}

fn load(path: &Path) -> Fixture {
    let mut fixture = Fixture::default();
    load_into(&mut fixture, path);
    fixture
}

/// Adds every document of one YAML file to `fixture`.
fn load_into(fixture: &mut Fixture, path: &Path) {
    let text = std::fs::read_to_string(path).expect("read fixture");
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value = Value::deserialize(document).expect("fixture YAML parses");
        if !value.is_null() {
            add(fixture, value);
        }
    }
}

fn add(fixture: &mut Fixture, mut value: Value) {
    let kind = value["kind"].as_str().unwrap_or_default().to_owned();
    let cluster_scoped = matches!(kind.as_str(), "IngressClass" | "GatewayClass" | "Namespace");
    if !cluster_scoped && value["metadata"]["namespace"].is_null() {
        value["metadata"]["namespace"] = Value::from("default");
    }
    let snapshot = &mut fixture.snapshot;
    match kind.as_str() {
        "Ingress" => snapshot.ingresses.push(Arc::new(parse::<Ingress>(value))),
        "IngressClass" => snapshot
            .ingress_classes
            .push(Arc::new(parse::<IngressClass>(value))),
        "Service" => snapshot.services.push(Arc::new(parse::<Service>(value))),
        "EndpointSlice" => snapshot
            .endpoint_slices
            .push(Arc::new(parse::<EndpointSlice>(value))),
        "Endpoints" => snapshot.endpoints.push(Arc::new(parse::<Endpoints>(value))),
        "Middleware" => snapshot.middlewares.push(Arc::new(parse::<
            sluice::middleware::MiddlewareObject,
        >(value))),
        "Secret" => snapshot.secrets.push(Arc::new(parse(value))),
        "Namespace" => snapshot.namespaces.push(Arc::new(parse(value))),
        "GatewayClass" => snapshot.gateway_classes.push(Arc::new(gateway(value))),
        "Gateway" => snapshot.gateways.push(Arc::new(gateway(value))),
        "HTTPRoute" => snapshot.http_routes.push(Arc::new(gateway(value))),
        "ReferenceGrant" => snapshot.reference_grants.push(Arc::new(gateway(value))),
        "BackendTLSPolicy" => snapshot.backend_tls_policies.push(Arc::new(gateway(value))),
        "Options" => {
            let class = value["ingressClass"].as_str().expect("ingressClass");
            fixture.options.ingress_class = class.to_owned();
        }
        "Probes" => {
            let probes = value["probes"].as_array().expect("probes list");
            fixture.probes = probes
                .iter()
                .map(|p| p.as_str().expect("probe").to_owned())
                .collect();
        }
        other => panic!("fixture has an unknown kind {other:?}"),
    }
}

/// A Gateway API object, with the API server's defaults applied.
fn gateway<K: sluice::gateway::GatewayKind>(value: Value) -> K {
    sluice::gateway::decode(value).expect("fixture object is a valid Gateway API object")
}

fn parse<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("fixture object matches its k8s-openapi type")
}

/// Installs the endpoint sets, as the publisher does, then summarises the
/// table: its routes, the backends the compile resolved and the diagnostics.
fn summary(compiled: &Compiled) -> String {
    let mut keys: Vec<_> = compiled.endpoints.iter().map(|(b, _)| b.key()).collect();
    keys.sort();
    let backends = keys.iter().map(|key| format!("  {key}\n")).collect();
    described(compiled, backends)
}

/// What a compile serves once the publisher installed its endpoint sets,
/// to compare a compile that reused an earlier one's work (and handed over
/// only the sets that changed) with a fresh one: the routes, each backend
/// of the fresh compile with the endpoint set it holds in `registries` now,
/// and the diagnostics.
fn served(compiled: &Compiled, registries: &Registries, fresh: &Compiled) -> String {
    let mut keys: Vec<_> = fresh
        .endpoints
        .iter()
        .map(|(b, _)| b.key().clone())
        .collect();
    keys.sort();
    install(compiled);
    let backends = keys
        .iter()
        .map(|key| {
            let set = registries.upstreams.backend(key).endpoints();
            let mut addrs: Vec<String> = set.addrs.iter().map(ToString::to_string).collect();
            addrs.sort();
            format!("  {key} {}\n", addrs.join(" "))
        })
        .collect();
    described(compiled, backends)
}

fn install(compiled: &Compiled) {
    for (backend, set) in &compiled.endpoints {
        backend.set_endpoints(set.clone());
    }
}

/// The table's routes, then `backends`, then the diagnostics.
fn described(compiled: &Compiled, backends: String) -> String {
    install(compiled);
    let mut out = String::from("routes:\n");
    for route in compiled.table.routes() {
        let kind = route.path_type.map_or("-".to_owned(), |k| format!("{k:?}"));
        let service = route.service.map_or("-".to_owned(), |s| s.to_string());
        let _ = writeln!(out, "  {}", route.name);
        let host = route.host.as_deref().unwrap_or("*");
        let path = route.path.as_deref().unwrap_or("(default backend)");
        let priority = route
            .priority
            .map_or(String::new(), |p| format!(" priority {p}"));
        let _ = writeln!(
            out,
            "    {host} {path} {kind}{priority} from {}",
            route.ingress
        );
        let _ = writeln!(
            out,
            "    -> {service} [{}] {}",
            route.state,
            route.endpoints.join(" ")
        );
    }
    // One line per backend (balancer + pool): shows when two references share one.
    out.push_str("backends:\n");
    out.push_str(&backends);
    out.push_str("diagnostics:\n");
    for d in &compiled.diagnostics {
        let _ = writeln!(out, "  {:?} {}", d.severity, d);
    }
    out
}

/// A GET with the probe's headers (no query), as HTTPRoute matches read it.
struct Facts(Vec<(String, String)>);

impl sluice::router::RequestFacts for Facts {
    fn method(&self) -> &str {
        "GET"
    }
    fn query(&self) -> Option<&str> {
        None
    }
    fn any_header(&self, name: &str, visit: &mut dyn FnMut(&[u8]) -> bool) -> bool {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .any(|(_, v)| visit(v.as_bytes()))
    }
}

/// Checks every probe; returns the failures.
fn check_probes(compiled: &Compiled, probes: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    for probe in probes {
        let (request, want) = probe
            .split_once(" -> ")
            .expect("probe is `host path -> name`");
        let mut words = request.split(' ');
        let (Some(host), Some(path)) = (words.next(), words.next()) else {
            panic!("probe request is `host path [name:value...]`: {probe}");
        };
        let headers: Vec<(String, String)> = words
            .filter_map(|w| w.split_once(':'))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
            .collect();
        let facts = Facts(headers);
        let got = compiled
            .table
            .lookup_request(sluice::router::EntryPoint::Web, host, path, &facts)
            .map_or("404".to_owned(), |r| r.name.to_string());
        if got != want.trim() {
            failures.push(format!("lookup {host} {path}: got {got}, want {want}"));
        }
    }
    failures
}

/// The `.yaml` files of a directory of the repository, sorted.
fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    cases
}

#[test]
fn compile_fixtures() {
    let bless = std::env::var_os("BLESS").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    let cases = yaml_files("tests/fixtures/compile");
    assert!(!cases.is_empty(), "no fixtures found");
    for case in cases {
        let fixture = load(&case);
        let compiled = compile(&fixture.snapshot, &fixture.options, &Registries::default());
        let name = case
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        failures.extend(
            check_probes(&compiled, &fixture.probes)
                .into_iter()
                .map(|f| format!("{name}: {f}")),
        );
        let actual = summary(&compiled);
        let expected_path = case.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &actual).expect("write expectation");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if expected != actual {
            failures.push(format!(
                "{name}: summary differs\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The demo manifests in `examples/` (every file, one snapshot, default options)
/// compile cleanly and serve what the demo promises, so they cannot silently rot.
#[test]
fn examples_compile_cleanly() {
    let files = yaml_files("examples");
    assert!(!files.is_empty(), "no examples found");
    let mut fixture = Fixture::default();
    for file in &files {
        load_into(&mut fixture, file);
    }
    let compiled = compile(
        &fixture.snapshot,
        &CompileOptions::default(),
        &Registries::default(),
    );
    let summary = summary(&compiled);
    assert!(
        compiled.diagnostics.is_empty(),
        "examples have diagnostics:\n{summary}"
    );
    let routes = compiled.table.routes();
    let hosts: Vec<Option<&str>> = routes.iter().map(|r| r.host.as_deref()).collect();
    for host in ["demo.localhost", "*.apps.localhost"] {
        assert!(
            hosts.contains(&Some(host)),
            "no route for {host}:\n{summary}"
        );
    }
    assert!(
        routes.iter().any(|r| r.host.is_none() && r.path.is_none()),
        "no default backend:\n{summary}"
    );
    assert!(
        routes.iter().all(|r| r.state == "ok"),
        "every demo route has endpoints:\n{summary}"
    );
    for (host, path) in [
        ("demo.localhost", "/"),
        ("demo.localhost", "/api/x"),
        ("a.apps.localhost", "/"),
        ("elsewhere.localhost", "/"),
    ] {
        assert!(
            compiled
                .table
                .lookup(sluice::router::EntryPoint::Web, host, path)
                .is_some(),
            "{host} {path} is not routed:\n{summary}"
        );
    }
}

/// The snapshot without the `index`th object of one list (`which` picks the list).
fn without(snapshot: &Snapshot, which: usize, index: usize) -> Option<Snapshot> {
    let mut out = snapshot.clone();
    let removed = match which {
        0 => (index < out.ingresses.len())
            .then(|| out.ingresses.remove(index))
            .is_some(),
        1 => (index < out.services.len())
            .then(|| out.services.remove(index))
            .is_some(),
        2 => (index < out.endpoint_slices.len())
            .then(|| out.endpoint_slices.remove(index))
            .is_some(),
        _ => (index < out.endpoints.len())
            .then(|| out.endpoints.remove(index))
            .is_some(),
    };
    removed.then_some(out)
}

/// A compile reuses what the previous one built (same objects by `Arc`) but
/// must answer exactly what a compile from scratch answers: for every fixture
/// and every variant that drops one object (sharing the other objects' `Arc`s),
/// compiling base -> variant -> base with one set of registries gives the
/// fresh summaries and probe answers.
#[test]
fn a_compile_after_another_equals_a_fresh_one() {
    let registries = Registries::default();
    let mut failures = Vec::new();
    for case in yaml_files("tests/fixtures/compile") {
        let fixture = load(&case);
        let name = case
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let mut variants = vec![fixture.snapshot.clone()];
        for which in 0..4 {
            variants.extend((0..).map_while(|i| without(&fixture.snapshot, which, i)));
        }
        for (number, variant) in variants.iter().enumerate() {
            for (step, snapshot) in [&fixture.snapshot, variant, &fixture.snapshot]
                .into_iter()
                .enumerate()
            {
                let warm = compile(snapshot, &fixture.options, &registries);
                let fresh = Registries::default();
                let cold = compile(snapshot, &fixture.options, &fresh);
                let warm_summary = served(&warm, &registries, &cold);
                let cold_summary = served(&cold, &fresh, &cold);
                if warm_summary != cold_summary {
                    failures.push(format!(
                        "{name} variant {number} step {step}\n--- fresh\n{cold_summary}--- after another\n{warm_summary}"
                    ));
                }
                let probes = check_probes(&warm, &fixture.probes);
                if step != 1 && !probes.is_empty() {
                    failures.push(format!("{name} variant {number} step {step}: {probes:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A small deterministic generator (xorshift), so every run tries the same sequences.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        usize::try_from(self.0 % (n.max(1) as u64)).unwrap_or(0)
    }
}

/// An Ingress like `ingress` with one thing changed, as a new object: its
/// first rule's first path gets a suffix, or an annotation is added.
fn edited(ingress: &Ingress, how: usize) -> Ingress {
    let mut copy = ingress.clone();
    if how.is_multiple_of(2) {
        let path = copy
            .spec
            .as_mut()
            .and_then(|s| s.rules.as_mut())
            .and_then(|r| r.first_mut())
            .and_then(|r| r.http.as_mut())
            .and_then(|h| h.paths.first_mut());
        if let Some(path) = path {
            let old = path.path.clone().unwrap_or_else(|| "/".to_owned());
            path.path = Some(format!("{}/edited{how}", old.trim_end_matches('/')));
            return copy;
        }
    }
    copy.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert("example.com/edit".to_owned(), how.to_string());
    copy
}

fn first_rule(ingress: &Ingress) -> Option<&k8s_openapi::api::networking::v1::IngressRule> {
    ingress.spec.as_ref()?.rules.as_ref()?.first()
}

/// `ingress` as a new object that also claims `other`'s first rule (its host
/// and first path, to its own backend when it has one): the two now conflict,
/// and which one wins depends on their ages.
fn claiming_rule_of(ingress: &Ingress, other: &Ingress) -> Ingress {
    let mut copy = ingress.clone();
    let taken = first_rule(other).cloned();
    let Some(mut rule) = taken else {
        return copy;
    };
    let own_backend = first_rule(ingress)
        .and_then(|r| r.http.as_ref())
        .and_then(|h| h.paths.first())
        .map(|p| p.backend.clone());
    if let (Some(http), Some(backend)) = (rule.http.as_mut(), own_backend) {
        http.paths.truncate(1);
        for path in &mut http.paths {
            path.backend = backend.clone();
        }
    }
    copy.spec
        .get_or_insert_with(Default::default)
        .rules
        .get_or_insert_with(Vec::new)
        .insert(0, rule);
    copy
}

/// The incremental compile equals a compile from scratch after every step of
/// random sequences of deletes, re-adds and edits of Ingresses (including
/// edits that take another Ingress's host and path), Services and
/// EndpointSlices, on every fixture: one set of registries follows the whole
/// sequence (so each compile reuses what the previous one built), a fresh one
/// compiles each step alone.
#[test]
fn incremental_compiles_equal_fresh_ones_over_random_changes() {
    let mut failures = Vec::new();
    for case in yaml_files("tests/fixtures/compile") {
        let fixture = load(&case);
        let name = case
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        for seed in 1..=8u64 {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            let registries = Registries::default();
            let mut snapshot = fixture.snapshot.clone();
            let mut removed_ingresses = Vec::new();
            let mut removed_services = Vec::new();
            let mut removed_slices = Vec::new();
            for step in 0..24 {
                match rng.below(8) {
                    0 if !snapshot.ingresses.is_empty() => {
                        let i = rng.below(snapshot.ingresses.len());
                        removed_ingresses.push(snapshot.ingresses.remove(i));
                    }
                    1 if !removed_ingresses.is_empty() => {
                        let i = rng.below(removed_ingresses.len());
                        snapshot.ingresses.push(removed_ingresses.remove(i));
                    }
                    2 | 3 if !snapshot.ingresses.is_empty() => {
                        let i = rng.below(snapshot.ingresses.len());
                        let how = rng.below(1000);
                        snapshot.ingresses[i] = Arc::new(edited(&snapshot.ingresses[i], how));
                    }
                    4 if !snapshot.services.is_empty() => {
                        let i = rng.below(snapshot.services.len());
                        removed_services.push(snapshot.services.remove(i));
                    }
                    5 if !removed_services.is_empty() => {
                        let i = rng.below(removed_services.len());
                        snapshot.services.push(removed_services.remove(i));
                    }
                    6 if snapshot.ingresses.len() > 1 => {
                        let i = rng.below(snapshot.ingresses.len());
                        let j = rng.below(snapshot.ingresses.len());
                        let taken =
                            claiming_rule_of(&snapshot.ingresses[i], &snapshot.ingresses[j]);
                        snapshot.ingresses[i] = Arc::new(taken);
                    }
                    _ if !snapshot.endpoint_slices.is_empty() && rng.below(2) == 0 => {
                        let i = rng.below(snapshot.endpoint_slices.len());
                        removed_slices.push(snapshot.endpoint_slices.remove(i));
                    }
                    _ if !removed_slices.is_empty() => {
                        let i = rng.below(removed_slices.len());
                        snapshot.endpoint_slices.push(removed_slices.remove(i));
                    }
                    _ => {}
                }
                let warm = compile(&snapshot, &fixture.options, &registries);
                let fresh = Registries::default();
                let cold = compile(&snapshot, &fixture.options, &fresh);
                let warm_summary = served(&warm, &registries, &cold);
                let cold_summary = served(&cold, &fresh, &cold);
                if warm_summary != cold_summary {
                    failures.push(format!(
                        "{name} seed {seed} step {step}\n--- fresh\n{cold_summary}--- incremental\n{warm_summary}"
                    ));
                    break;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
