//! Guards `deploy/crds/middlewares.traefik.io.yaml`, the Middleware CRD that
//! lets a cluster without Traefik store sluice's middlewares.
//!
//! The test checks that:
//! - the file is a valid `apiextensions.k8s.io/v1` CustomResourceDefinition
//!   for `traefik.io/v1alpha1` `Middleware` (names, scope, served/storage);
//! - the sections under `spec` are exactly the ones `src/middleware/kinds.rs`
//!   builds, so adding or removing a middleware there without updating the
//!   CRD fails here (the API server would otherwise prune the new section, or
//!   accept one sluice rejects);
//! - every section, and `spec` itself, carries a description.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};

const CRD_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/crds/middlewares.traefik.io.yaml"
);
const KINDS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/middleware/kinds.rs");
const KUSTOMIZATION_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/crds/kustomization.yaml"
);

fn crd() -> CustomResourceDefinition {
    let text = std::fs::read_to_string(CRD_PATH).expect("read the CRD file");
    serde_yaml_ng::from_str(&text).expect("parse the CRD as a CustomResourceDefinition")
}

/// The properties of `spec` in the single version's schema.
fn spec_schema(crd: &CustomResourceDefinition) -> JSONSchemaProps {
    let version = &crd.spec.versions[0];
    let root = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("version has an openAPIV3Schema");
    root.properties
        .as_ref()
        .and_then(|p| p.get("spec"))
        .cloned()
        .expect("schema has a spec property")
}

fn sections(spec: &JSONSchemaProps) -> &BTreeMap<String, JSONSchemaProps> {
    spec.properties.as_ref().expect("spec has properties")
}

/// Section names accepted by `kinds::build`: the string literals of the
/// match arms (`"addPrefix" =>`, `"ipAllowList" | "ipWhiteList" =>`).
fn accepted_kinds() -> BTreeSet<String> {
    let source = std::fs::read_to_string(KINDS_PATH).expect("read kinds.rs");
    let arm = regex::Regex::new(r#"(?m)^\s*("[A-Za-z]+"(?:\s*\|\s*"[A-Za-z]+")*)\s*=>"#)
        .expect("valid arm regex");
    let literal = regex::Regex::new(r#""([A-Za-z]+)""#).expect("valid literal regex");
    let kinds: BTreeSet<String> = arm
        .captures_iter(&source)
        .flat_map(|arm| {
            literal
                .captures_iter(arm.get(1).map_or("", |m| m.as_str()))
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    // Guards the scanner itself: if kinds.rs changes shape, fail loudly
    // rather than comparing against an empty list.
    assert!(
        kinds.len() >= 20 && kinds.contains("addPrefix") && kinds.contains("ipWhiteList"),
        "could not find the match arms in {KINDS_PATH}: {kinds:?}"
    );
    kinds
}

#[test]
fn crd_identity() {
    let crd = crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("middlewares.traefik.io"));
    assert_eq!(crd.spec.group, "traefik.io");
    assert_eq!(crd.spec.scope, "Namespaced");

    let names = &crd.spec.names;
    assert_eq!(names.kind, "Middleware");
    assert_eq!(names.list_kind.as_deref(), Some("MiddlewareList"));
    assert_eq!(names.plural, "middlewares");
    assert_eq!(names.singular.as_deref(), Some("middleware"));

    assert_eq!(crd.spec.versions.len(), 1);
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served);
    assert!(version.storage);
}

#[test]
fn crd_sections_match_kinds_rs() {
    let spec = spec_schema(&crd());
    let in_crd: BTreeSet<String> = sections(&spec).keys().cloned().collect();
    let in_code = accepted_kinds();

    let missing: Vec<_> = in_code.difference(&in_crd).collect();
    let extra: Vec<_> = in_crd.difference(&in_code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "CRD spec sections and src/middleware/kinds.rs disagree:\n  \
         accepted by sluice but missing from the CRD: {missing:?}\n  \
         in the CRD but not accepted by sluice: {extra:?}"
    );
}

#[test]
fn crd_sections_are_described_objects() {
    let spec = spec_schema(&crd());
    let spec_description = spec.description.as_deref().unwrap_or_default();
    assert!(
        spec_description.contains("Exactly one section"),
        "spec description should say exactly one section is expected: {spec_description:?}"
    );

    for (name, section) in sections(&spec) {
        assert!(
            section
                .description
                .as_deref()
                .is_some_and(|d| !d.trim().is_empty()),
            "spec.{name} has no description"
        );
        assert_eq!(
            section.type_.as_deref(),
            Some("object"),
            "spec.{name} should be an object"
        );
    }
}

#[test]
fn kustomization_lists_the_crd() {
    let text = std::fs::read_to_string(KUSTOMIZATION_PATH).expect("read kustomization.yaml");
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).expect("parse kustomization.yaml");
    let resources: Vec<&str> = doc["resources"]
        .as_sequence()
        .expect("resources is a list")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(
        resources.contains(&"middlewares.traefik.io.yaml"),
        "{resources:?}"
    );
}
