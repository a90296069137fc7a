//! Parsing manifest files: YAML or JSON documents into typed Kubernetes objects.
//!
//! A file holds any number of documents. Each document becomes zero or more
//! [`Loaded`] objects (a `kind: List` is unpacked) or one `ParseError`
//! [`Diagnostic`]; a bad document never stops the good ones next to it, except
//! for a syntax error that breaks the rest of the stream.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::object::{Loaded, Object, ObjectKey, Source};
use crate::gateway::{self, GatewayKind};
use crate::middleware;
use crate::router::{Diagnostic, DiagnosticKind, ObjectRef};

/// What one file yielded: its objects and the documents that failed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedFile {
    /// The objects of every good document, in document order.
    pub objects: Vec<Loaded>,
    /// One `ParseError` per document that could not be loaded.
    pub diagnostics: Vec<Diagnostic>,
}

impl ParsedFile {
    /// True when some document failed: the store then keeps older objects of this file.
    pub fn has_errors(&self) -> bool {
        !self.diagnostics.is_empty()
    }

    fn fail(&mut self, source: &Source, message: String) {
        tracing::warn!(source = %source, "skipping manifest document: {message}");
        let object = ObjectRef {
            kind: "Document".to_owned(),
            namespace: None,
            name: String::new(),
            source: Some(source.to_string()),
        };
        let diagnostic = Diagnostic::error(object, DiagnosticKind::ParseError, message);
        self.diagnostics.push(diagnostic);
    }
}

/// Parses the bytes of one manifest file; `file` names it in sources and diagnostics.
///
/// Files named `*.json` are read as a stream of JSON values, anything else as
/// multi-document YAML.
pub fn parse_manifests(file: &str, bytes: &[u8]) -> ParsedFile {
    let mut parsed = ParsedFile::default();
    if std::path::Path::new(file)
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("json"))
    {
        parse_json(file, bytes, &mut parsed);
    } else {
        parse_yaml(file, bytes, &mut parsed);
    }
    parsed
}

fn source(file: &str, doc: usize) -> Source {
    Source {
        file: file.to_owned(),
        doc,
        item: None,
    }
}

fn parse_yaml(file: &str, bytes: &[u8], parsed: &mut ParsedFile) {
    let mut last_error: Option<String> = None;
    for (doc, document) in serde_yaml_ng::Deserializer::from_slice(bytes).enumerate() {
        match Value::deserialize(document) {
            Ok(value) => add_document(value, source(file, doc), parsed),
            // After a syntax error the parser repeats that error forever:
            // the rest of the stream is lost, so stop.
            Err(err) if last_error.as_deref() == Some(&err.to_string()) => break,
            Err(err) => {
                parsed.fail(&source(file, doc), err.to_string());
                last_error = Some(err.to_string());
                continue;
            }
        }
        last_error = None;
    }
}

fn parse_json(file: &str, bytes: &[u8], parsed: &mut ParsedFile) {
    let stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Value>();
    for (doc, value) in stream.enumerate() {
        match value {
            Ok(value) => add_document(value, source(file, doc), parsed),
            Err(err) => {
                // serde_json cannot resume after an error.
                parsed.fail(&source(file, doc), err.to_string());
                break;
            }
        }
    }
}

fn add_document(value: Value, source: Source, parsed: &mut ParsedFile) {
    if value.is_null() {
        return;
    }
    let (api_version, kind) = match type_meta(&value) {
        Ok(meta) => meta,
        Err(message) => return parsed.fail(&source, message),
    };
    if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
        return add_list(value, &source, parsed);
    }
    match add_object(&api_version, &kind, value, source.clone()) {
        Ok(Some(loaded)) => parsed.objects.push(loaded),
        Ok(None) => tracing::debug!(%source, %api_version, %kind, "ignoring object of unused kind"),
        Err(message) => parsed.fail(&source, message),
    }
}

fn add_list(mut list: Value, source: &Source, parsed: &mut ParsedFile) {
    let items = match list.get_mut("items").map(Value::take) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(_) => return parsed.fail(source, "List: `items` is not a sequence".to_owned()),
    };
    for (index, item) in items.into_iter().enumerate() {
        let item_source = Source {
            item: Some(index),
            ..source.clone()
        };
        if item
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
        {
            parsed.fail(
                &item_source,
                "a List inside a List is not supported".to_owned(),
            );
            continue;
        }
        add_document(item, item_source, parsed);
    }
}

fn type_meta(value: &Value) -> Result<(String, String), String> {
    let Value::Object(map) = value else {
        return Err(format!(
            "expected a mapping with apiVersion and kind, found {}",
            json_type(value)
        ));
    };
    let field = |name: &str| match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(format!("`{name}` must be a non-empty string")),
        None => Err(format!("document has no `{name}`")),
    };
    Ok((field("apiVersion")?, field("kind")?))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Decodes one object of a known kind; `Ok(None)` for kinds the compiler does not read.
fn add_object(
    api_version: &str,
    kind: &str,
    value: Value,
    source: Source,
) -> Result<Option<Loaded>, String> {
    let Some((kind, namespaced)) = known_kind(api_version, kind) else {
        return Ok(None);
    };
    let (value, key) = prepare(value, kind, namespaced)?;
    let object = decode_object(kind, value).map_err(|err| format!("{key}: {err}"))?;
    Ok(Some(Loaded {
        key,
        source,
        object,
    }))
}

/// The kinds the compiler reads, and whether each is namespaced.
fn known_kind(api_version: &str, kind: &str) -> Option<(&'static str, bool)> {
    Some(match (api_version, kind) {
        ("networking.k8s.io/v1", "Ingress") => ("Ingress", true),
        ("networking.k8s.io/v1", "IngressClass") => ("IngressClass", false),
        ("v1", "Service") => ("Service", true),
        ("discovery.k8s.io/v1", "EndpointSlice") => ("EndpointSlice", true),
        ("v1", "Endpoints") => ("Endpoints", true),
        ("v1", "Secret") => ("Secret", true),
        ("v1", "ConfigMap") => ("ConfigMap", true),
        ("v1", "Namespace") => ("Namespace", false),
        (version, "GatewayClass") if gateway::GatewayClass::reads_api_version(version) => {
            (gateway::GatewayClass::KIND, false)
        }
        (version, "Gateway") if gateway::Gateway::reads_api_version(version) => {
            (gateway::Gateway::KIND, true)
        }
        (version, "HTTPRoute") if gateway::HttpRoute::reads_api_version(version) => {
            (gateway::HttpRoute::KIND, true)
        }
        (version, "ReferenceGrant") if gateway::ReferenceGrant::reads_api_version(version) => {
            (gateway::ReferenceGrant::KIND, true)
        }
        (version, "BackendTLSPolicy") if gateway::BackendTlsPolicy::reads_api_version(version) => {
            (gateway::BackendTlsPolicy::KIND, true)
        }
        (version, middleware::object::KIND)
            if middleware::object::API_VERSIONS.contains(&version) =>
        {
            ("Middleware", true)
        }
        _ => return None,
    })
}

/// The `metadata` fields the compiler reads; the others are dropped on load.
const KEPT_METADATA: [&str; 4] = ["name", "namespace", "annotations", "creationTimestamp"];

/// The annotation `kubectl apply` leaves: a copy of the whole object, never read.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The label that ties an EndpointSlice to its Service: the only label read.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The Gateway API kinds, whose `metadata.generation` is kept too (the
/// `observedGeneration` of the conditions the admin API shows).
const GATEWAY_KINDS: [&str; 5] = [
    gateway::GatewayClass::KIND,
    gateway::Gateway::KIND,
    gateway::HttpRoute::KIND,
    gateway::ReferenceGrant::KIND,
    gateway::BackendTlsPolicy::KIND,
];

/// Drops what no routing decision reads, so 10,000s of objects stay small:
/// every `status`, `metadata` fields other than [`KEPT_METADATA`] (labels too,
/// except an EndpointSlice's `kubernetes.io/service-name` and a Namespace's,
/// which `allowedRoutes` selectors match), kubectl's last-applied copy, a
/// Service's `selector` (endpoints come from slices) and a Namespace's `spec`.
/// Two versions of an object that differ only there are the same object.
fn strip_unread(value: &mut Value, kind: &str) {
    let Value::Object(object) = value else { return };
    object.remove("status");
    if kind == "Service" {
        if let Some(Value::Object(spec)) = object.get_mut("spec") {
            spec.remove("selector");
        }
    }
    if kind == "Namespace" {
        object.remove("spec");
    }
    let Some(Value::Object(metadata)) = object.get_mut("metadata") else {
        return;
    };
    let labels = match metadata.get("labels") {
        Some(Value::Object(labels)) if kind == "EndpointSlice" => labels
            .get(SERVICE_NAME_LABEL)
            .map(|v| serde_json::Map::from_iter([(SERVICE_NAME_LABEL.to_owned(), v.clone())])),
        Some(Value::Object(labels)) if kind == "Namespace" => Some(labels.clone()),
        _ => None,
    };
    let generation = GATEWAY_KINDS.contains(&kind);
    metadata.retain(|field, _| {
        KEPT_METADATA.contains(&field.as_str()) || (generation && field == "generation")
    });
    if let Some(labels) = labels {
        metadata.insert("labels".to_owned(), Value::Object(labels));
    }
    if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
        annotations.remove(LAST_APPLIED);
    }
}

/// Checks the name, defaults the namespace and drops what routing never reads.
fn prepare(
    mut value: Value,
    kind: &'static str,
    namespaced: bool,
) -> Result<(Value, ObjectKey), String> {
    strip_unread(&mut value, kind);
    let Some(Value::Object(metadata)) = value.get_mut("metadata") else {
        return Err(format!("{kind} has no `metadata`"));
    };
    let name = match metadata.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => return Err(format!("{kind} has no `metadata.name`")),
    };
    let namespace = if namespaced {
        let namespace = match metadata.get("namespace") {
            Some(Value::String(ns)) if !ns.is_empty() => ns.clone(),
            Some(Value::String(_) | Value::Null) | None => "default".to_owned(),
            Some(_) => {
                return Err(format!(
                    "{kind} {name}: `metadata.namespace` must be a string"
                ))
            }
        };
        metadata.insert("namespace".to_owned(), Value::String(namespace.clone()));
        Some(namespace)
    } else {
        // A cluster-scoped object has no namespace (the API server drops one).
        metadata.remove("namespace");
        None
    };
    Ok((
        value,
        ObjectKey {
            kind,
            namespace,
            name,
        },
    ))
}

fn decode_object(kind: &str, value: Value) -> Result<Object, serde_json::Error> {
    Ok(match kind {
        "Ingress" => Object::Ingress(decode(value)?),
        "IngressClass" => Object::IngressClass(decode(value)?),
        "Service" => Object::Service(decode(value)?),
        "EndpointSlice" => Object::EndpointSlice(decode(value)?),
        "Endpoints" => Object::Endpoints(decode(value)?),
        "Middleware" => Object::Middleware(decode(value)?),
        "ConfigMap" => Object::ConfigMap(decode(value)?),
        "Namespace" => Object::Namespace(decode(value)?),
        "GatewayClass" => Object::GatewayClass(decode_gateway(value)?),
        "Gateway" => Object::Gateway(decode_gateway(value)?),
        "HTTPRoute" => Object::HttpRoute(decode_gateway(value)?),
        "ReferenceGrant" => Object::ReferenceGrant(decode_gateway(value)?),
        "BackendTLSPolicy" => Object::BackendTlsPolicy(decode_gateway(value)?),
        _ => Object::Secret(Arc::new(merge_string_data(serde_json::from_value(value)?))),
    })
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<Arc<T>, serde_json::Error> {
    serde_json::from_value(value).map(Arc::new)
}

/// A Gateway API object, with the API server's defaults applied (files get
/// none from anyone else).
fn decode_gateway<K: GatewayKind>(value: Value) -> Result<Arc<K>, serde_json::Error> {
    gateway::decode(value)
        .map(Arc::new)
        .map_err(|err| err.source)
}

/// Moves `stringData` into `data` as the API server does; `stringData` wins on a clash.
fn merge_string_data(mut secret: Secret) -> Secret {
    if let Some(string_data) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in string_data {
            data.insert(key, ByteString(value.into_bytes()));
        }
    }
    secret
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
