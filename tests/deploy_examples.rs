//! Guards `deploy/examples/`: manifests users apply by hand, kept out of the
//! install (`deploy/kustomization.yaml` does not name them).
//!
//! The test checks that:
//! - `deploy/examples/kustomization.yaml` names every example file, and the
//!   install does not include the examples;
//! - every document loads through sluice's own manifest loader (the file
//!   provider's) without a diagnostic, and *strictly*: decoded into sluice's
//!   Gateway API types and written back, it keeps every key of the file, so a
//!   misspelt field (which decoding would silently ignore, like the API
//!   server's pruning) fails here with its path;
//! - `gateway.yaml` is what the documentation says: a GatewayClass `sluice`
//!   for sluice's controller name, a Gateway of that class with an HTTP
//!   listener on 80 and an HTTPS listener on 443 (TLS terminated with a
//!   certificate Secret), and an HTTPRoute attached to it.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice::gateway::types::{ProtocolType, TlsModeType};
use sluice::gateway::{self, Gateway, GatewayClass, GatewayKind, HttpRoute};
use sluice::router::Snapshot;
use sluice::watch::parse_manifests;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");
const INSTALL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kustomization.yaml");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Kustomization {
    resources: Vec<String>,
}

fn kustomization(path: &Path) -> Kustomization {
    let text = std::fs::read_to_string(path).expect("read kustomization");
    serde_yaml_ng::from_str(&text).expect("a kustomization")
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(Path::new(EXAMPLES).join(file)).expect("read example");
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).expect("YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

/// The first key of `original` that `round_trip` lacks, as a path.
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
        (Value::Array(original), Value::Array(round_trip)) => original
            .iter()
            .zip(round_trip)
            .enumerate()
            .find_map(|(i, (value, kept))| first_lost_key(value, kept, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// Decodes a Gateway API object as sluice does and fails if a key of the
/// file is lost (`apiVersion` and `kind` aside, which the types leave out).
fn strict<K: GatewayKind + Serialize + DeserializeOwned>(value: &Value) -> Result<K, String> {
    let object: K = gateway::decode(value.clone()).map_err(|e| e.to_string())?;
    let mut round_trip = serde_json::to_value(&object).map_err(|e| e.to_string())?;
    round_trip["apiVersion"] = value["apiVersion"].clone();
    round_trip["kind"] = value["kind"].clone();
    match first_lost_key(value, &round_trip, "$") {
        None => Ok(object),
        Some(path) => Err(format!(
            "unknown field {path} (misspelt, misplaced or not read by sluice)"
        )),
    }
}

#[test]
fn examples_are_named_and_not_installed() {
    let named = kustomization(&Path::new(EXAMPLES).join("kustomization.yaml")).resources;
    let mut files: Vec<String> = std::fs::read_dir(EXAMPLES)
        .expect("read deploy/examples")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|f| f.ends_with(".yaml") && f != "kustomization.yaml")
        .collect();
    files.sort();
    let mut sorted = named.clone();
    sorted.sort();
    assert_eq!(
        sorted, files,
        "deploy/examples/kustomization.yaml names every example"
    );
    let install = kustomization(Path::new(INSTALL)).resources;
    assert!(
        !install.iter().any(|r| r.contains("examples")),
        "deploy/ must not install the examples: {install:?}"
    );
}

#[test]
fn gateway_example_loads_strictly() {
    let documents = documents("gateway.yaml");
    let mut errors = Vec::new();
    for (i, doc) in documents.iter().enumerate() {
        let checked = match doc["kind"].as_str() {
            Some("GatewayClass") => strict::<GatewayClass>(doc).map(drop),
            Some("Gateway") => strict::<Gateway>(doc).map(drop),
            Some("HTTPRoute") => strict::<HttpRoute>(doc).map(drop),
            other => Err(format!("unexpected kind {other:?}")),
        };
        if let Err(e) = checked {
            errors.push(format!("gateway.yaml (document {i}): {e}"));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));

    let bytes = std::fs::read(Path::new(EXAMPLES).join("gateway.yaml")).expect("read");
    let parsed = parse_manifests("gateway.yaml", &bytes);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    assert_eq!(
        parsed.objects.len(),
        documents.len(),
        "every document loads"
    );
}

#[test]
fn gateway_example_is_a_sluice_gateway_on_80_and_443() {
    let bytes = std::fs::read(Path::new(EXAMPLES).join("gateway.yaml")).expect("read");
    let mut snapshot = Snapshot::default();
    for loaded in parse_manifests("gateway.yaml", &bytes).objects {
        loaded.object.push_into(&mut snapshot);
    }
    let [class] = &snapshot.gateway_classes[..] else {
        panic!("one GatewayClass");
    };
    assert_eq!(class.name(), "sluice");
    assert_eq!(class.spec.controller_name, gateway::CONTROLLER_NAME);

    let [gw] = &snapshot.gateways[..] else {
        panic!("one Gateway");
    };
    assert_eq!(gw.spec.gateway_class_name, class.name());
    let listeners: Vec<(&ProtocolType, i32)> = gw
        .spec
        .listeners
        .iter()
        .map(|l| (&l.protocol, l.port))
        .collect();
    assert_eq!(
        listeners,
        [(&ProtocolType::Http, 80), (&ProtocolType::Https, 443)]
    );
    let tls = gw.spec.listeners[1].tls.as_ref().expect("HTTPS has tls");
    assert_eq!(tls.mode, TlsModeType::Terminate);
    assert_eq!(tls.certificate_refs.len(), 1);
    assert_eq!(tls.certificate_refs[0].kind, "Secret");

    let [route] = &snapshot.http_routes[..] else {
        panic!("one HTTPRoute");
    };
    let parent = &route.spec.parent_refs[0];
    assert_eq!(
        (parent.kind.as_str(), parent.name.as_str()),
        ("Gateway", gw.name())
    );
    assert_eq!(
        parent.namespace.as_deref().unwrap_or(route.namespace()),
        gw.namespace()
    );
    assert!(!route.spec.rules[0].backend_refs.is_empty());
}
