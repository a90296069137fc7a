//! Turning watched API objects into the provider's [`Object`]s: defaults,
//! and the bulk routing never reads dropped before anything is stored.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use ::kube::api::{ApiResource, DynamicObject};
use ::kube::core::DynamicResourceScope;
use ::kube::Resource;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::gateway::{self, BackendTlsPolicy, GatewayKind};
use crate::middleware::MiddlewareObject;
use crate::watch::{Object, ObjectKey};

/// Annotations that can be large and that routing never reads.
const BULK_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    // Set by the EndpointSlice controller on every change.
    "endpoints.kubernetes.io/last-change-trigger-time",
];

/// A kind the provider watches: how to name it and how to store it.
pub(super) trait Watched:
    Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// The kind name used in [`ObjectKey`]s and logs.
    const KIND: &'static str;
    /// Whether objects of the kind live in a namespace.
    const NAMESPACED: bool = true;

    /// The stored form, or `None` for an object without a name.
    fn into_object(self) -> Option<(ObjectKey, Object)>;

    /// The identity of the object (deleted objects only need this).
    fn key(&self) -> Option<ObjectKey> {
        key_of(Self::KIND, Self::NAMESPACED, self.meta())
    }
}

fn key_of(kind: &'static str, namespaced: bool, meta: &ObjectMeta) -> Option<ObjectKey> {
    let name = meta.name.clone().filter(|n| !n.is_empty())?;
    let namespace = namespaced.then(|| {
        meta.namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| "default".to_owned())
    });
    Some(ObjectKey {
        kind,
        namespace,
        name,
    })
}

/// Drops `managedFields`, `resourceVersion` and bulky annotations, and
/// defaults the namespace of a namespaced object.
///
/// `resourceVersion` changes on every write (status updates included); the
/// watcher has already read it, and without it an event that changes nothing
/// routing reads leaves an equal object, which the store ignores.
pub(super) fn strip_meta(meta: &mut ObjectMeta, namespaced: bool) {
    meta.managed_fields = None;
    meta.resource_version = None;
    if let Some(annotations) = &mut meta.annotations {
        for bulk in BULK_ANNOTATIONS {
            annotations.remove(bulk);
        }
        if annotations.is_empty() {
            meta.annotations = None;
        }
    }
    if namespaced && meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some("default".to_owned());
    }
}

fn finish<T: Watched>(mut object: T, wrap: fn(Arc<T>) -> Object) -> Option<(ObjectKey, Object)> {
    let key = object.key()?;
    strip_meta(object.meta_mut(), T::NAMESPACED);
    Some((key, wrap(Arc::new(object))))
}

impl Watched for Ingress {
    const KIND: &'static str = "Ingress";

    fn into_object(mut self) -> Option<(ObjectKey, Object)> {
        // Written by the status updater; the compiler never reads it.
        self.status = None;
        finish(self, Object::Ingress)
    }
}

impl Watched for IngressClass {
    const KIND: &'static str = "IngressClass";
    const NAMESPACED: bool = false;

    fn into_object(self) -> Option<(ObjectKey, Object)> {
        finish(self, Object::IngressClass)
    }
}

impl Watched for Service {
    const KIND: &'static str = "Service";

    fn into_object(self) -> Option<(ObjectKey, Object)> {
        finish(self, Object::Service)
    }
}

impl Watched for EndpointSlice {
    const KIND: &'static str = "EndpointSlice";

    fn into_object(self) -> Option<(ObjectKey, Object)> {
        finish(self, Object::EndpointSlice)
    }
}

impl Watched for Secret {
    const KIND: &'static str = "Secret";

    fn into_object(mut self) -> Option<(ObjectKey, Object)> {
        // The API server never returns stringData; merge it as the file provider does anyway.
        if let Some(string_data) = self.string_data.take() {
            let data = self.data.get_or_insert_with(Default::default);
            for (key, value) in string_data {
                data.insert(key, k8s_openapi::ByteString(value.into_bytes()));
            }
        }
        finish(self, Object::Secret)
    }
}

impl Watched for ConfigMap {
    const KIND: &'static str = "ConfigMap";

    fn into_object(self) -> Option<(ObjectKey, Object)> {
        finish(self, Object::ConfigMap)
    }
}

impl Watched for DynamicObject {
    const KIND: &'static str = "Middleware";

    fn into_object(self) -> Option<(ObjectKey, Object)> {
        let key = self.key()?;
        let mut metadata = self.metadata;
        strip_meta(&mut metadata, true);
        let spec = match self.data {
            Value::Object(mut data) => match data.remove("spec") {
                Some(Value::Object(spec)) => spec,
                _ => serde_json::Map::new(),
            },
            _ => serde_json::Map::new(),
        };
        let middleware = MiddlewareObject { metadata, spec };
        Some((key, Object::Middleware(Arc::new(middleware))))
    }
}

impl Watched for Namespace {
    const KIND: &'static str = "Namespace";
    const NAMESPACED: bool = false;

    /// Keeps the name and the labels (what `allowedRoutes` selectors match),
    /// nothing else: the status and annotations change without meaning
    /// anything to routing.
    fn into_object(self) -> Option<(ObjectKey, Object)> {
        let key = self.key()?;
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: self.metadata.name,
                labels: self.metadata.labels,
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Some((key, Object::Namespace(Arc::new(namespace))))
    }
}

/// A Gateway API object as the watcher reads it: its metadata always, the
/// typed object through [`gateway::decode`] (the same decoding as a file's,
/// defaults included). An object that does not decode is logged and left
/// out, instead of failing the whole list (kube's watcher would retry that
/// list forever, and nothing would ever be published).
#[derive(Debug, Clone)]
pub(super) struct GatewayResource<K> {
    metadata: ObjectMeta,
    decoded: Result<K, String>,
}

impl<'de, K: GatewayKind> Deserialize<'de> for GatewayResource<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let metadata = value
            .get("metadata")
            .and_then(|m| ObjectMeta::deserialize(m).ok())
            .unwrap_or_default();
        let decoded = gateway::decode::<K>(value).map_err(|err| err.source.to_string());
        Ok(Self { metadata, decoded })
    }
}

impl<K: GatewayKind> Resource for GatewayResource<K> {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<K> Watched for GatewayResource<K>
where
    K: GatewayKind,
    Object: From<Arc<K>>,
{
    const KIND: &'static str = K::KIND;
    const NAMESPACED: bool = K::NAMESPACED;

    fn into_object(self) -> Option<(ObjectKey, Object)> {
        let key = self.key()?;
        match self.decoded {
            Ok(mut object) => {
                strip_meta(object.metadata_mut(), K::NAMESPACED);
                Some((key, Object::from(Arc::new(object))))
            }
            Err(err) => {
                tracing::warn!(object = %key, "left out: it does not decode: {err}");
                None
            }
        }
    }
}

/// The CA bundles a BackendTLSPolicy names, as `(namespace, name)`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CaBundles {
    /// ConfigMaps (the core kind; key `ca.crt`).
    pub config_maps: Vec<(String, String)>,
    /// Secrets (sluice reads them too).
    pub secrets: Vec<(String, String)>,
}

/// The CA bundles a BackendTLSPolicy names (`validation.caCertificateRefs`,
/// in the policy's namespace): ConfigMaps and Secrets of the core group.
/// Other kinds are not read.
pub fn ca_certificate_refs(policy: &BackendTlsPolicy) -> CaBundles {
    let namespace = policy.namespace();
    let mut bundles = CaBundles::default();
    for reference in &policy.spec.validation.ca_certificate_refs {
        if !reference.group.is_empty() || reference.name.is_empty() {
            continue;
        }
        let named = (namespace.to_owned(), reference.name.clone());
        match reference.kind.as_str() {
            "ConfigMap" => bundles.config_maps.push(named),
            "Secret" => bundles.secrets.push(named),
            _ => {}
        }
    }
    bundles
}

/// The Secrets a Middleware names, as `(namespace, name)`: every string under
/// a key `secret` or ending in `Secret` (`caSecret`, `certSecret`) anywhere in
/// its spec, in the Middleware's namespace.
pub fn referenced_secrets(middleware: &MiddlewareObject) -> BTreeSet<(String, String)> {
    let mut names = BTreeSet::new();
    for (key, value) in &middleware.spec {
        collect(key, value, &mut names);
    }
    let namespace = middleware.namespace();
    names
        .into_iter()
        .map(|name| (namespace.to_owned(), name))
        .collect()
}

fn collect(key: &str, value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::String(name) if (key == "secret" || key.ends_with("Secret")) && !name.is_empty() => {
            names.insert(name.clone());
        }
        Value::Object(map) => {
            for (key, value) in map {
                collect(key, value, names);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect(key, item, names);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn strips_bulk_and_defaults_namespace() {
        let mut meta = ObjectMeta {
            name: Some("a".into()),
            resource_version: Some("7".into()),
            managed_fields: Some(vec![Default::default()]),
            annotations: Some(BTreeMap::from([(
                BULK_ANNOTATIONS[0].to_owned(),
                "{...}".to_owned(),
            )])),
            ..ObjectMeta::default()
        };
        strip_meta(&mut meta, true);
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        assert!(meta.managed_fields.is_none());
        assert!(meta.resource_version.is_none());
        assert!(meta.annotations.is_none());
    }

    #[test]
    fn ingress_status_is_dropped_so_status_writes_compare_equal() {
        let mut one = Ingress::default();
        one.metadata.name = Some("web".into());
        one.metadata.namespace = Some("apps".into());
        let mut two = one.clone();
        two.metadata.resource_version = Some("9".into());
        two.status = Some(Default::default());
        let (key, a) = one.into_object().expect("named");
        let (_, b) = two.into_object().expect("named");
        assert_eq!(key.to_string(), "Ingress apps/web");
        assert_eq!(a, b);
    }

    #[test]
    fn middleware_secret_references() {
        let spec = serde_json::json!({
            "basicAuth": {"secret": "users"},
            "forwardAuth": {"tls": {"caSecret": "ca", "certSecret": "client"}},
            "chain": {"middlewares": [{"name": "x"}]},
        });
        let middleware = MiddlewareObject {
            metadata: ObjectMeta {
                name: Some("auth".into()),
                namespace: Some("apps".into()),
                ..ObjectMeta::default()
            },
            spec: spec.as_object().cloned().expect("object"),
        };
        let names: Vec<String> = referenced_secrets(&middleware)
            .into_iter()
            .map(|(ns, name)| format!("{ns}/{name}"))
            .collect();
        assert_eq!(names, ["apps/ca", "apps/client", "apps/users"]);
    }

    #[test]
    fn dynamic_object_becomes_middleware() {
        let value = serde_json::json!({
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "strip", "namespace": "apps", "resourceVersion": "3",
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"stripPrefix": {"prefixes": ["/api"]}},
        });
        let object: DynamicObject = serde_json::from_value(value).expect("dynamic");
        let (key, object) = object.into_object().expect("named");
        assert_eq!(key.to_string(), "Middleware apps/strip");
        let Object::Middleware(middleware) = object else {
            panic!("not a middleware: {object:?}");
        };
        assert!(middleware.spec.contains_key("stripPrefix"));
        assert!(middleware.metadata.managed_fields.is_none());
        assert!(middleware.metadata.resource_version.is_none());
    }
}

#[cfg(test)]
mod gateway_tests {
    use super::*;
    use crate::gateway::{GatewayClass, HttpRoute};

    fn http_route(value: Value) -> Option<(ObjectKey, Object)> {
        let object: GatewayResource<HttpRoute> =
            serde_json::from_value(value).expect("never fails");
        object.into_object()
    }

    #[test]
    fn gateway_objects_are_decoded_defaulted_and_stripped() {
        let route = |status: Value| {
            serde_json::json!({
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": "web", "namespace": "apps", "generation": 2,
                             "resourceVersion": "17", "managedFields": [{"manager": "kubectl"}]},
                "spec": {"parentRefs": [{"name": "gw"}],
                         "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]},
                "status": status,
            })
        };
        let (key, one) = http_route(route(serde_json::json!({}))).expect("decodes");
        assert_eq!(key.to_string(), "HTTPRoute apps/web");
        let Object::HttpRoute(decoded) = &one else {
            panic!("not an HTTPRoute: {one:?}");
        };
        assert_eq!(decoded.spec.rules[0].backend_refs[0].weight, 1);
        assert_eq!(decoded.spec.rules[0].matches.len(), 1, "defaulted");
        assert_eq!(decoded.metadata.generation, Some(2));
        assert!(decoded.metadata.resource_version.is_none());
        assert!(decoded.metadata.managed_fields.is_none());
        // A status write leaves an equal object: the store publishes nothing.
        let parents = serde_json::json!({"parents": [{"controllerName": "sluice.dev/gateway-controller",
            "parentRef": {"name": "gw"}, "conditions": []}]});
        let (_, two) = http_route(route(parents)).expect("decodes");
        assert_eq!(one, two);
    }

    #[test]
    fn an_object_that_does_not_decode_is_left_out_not_fatal() {
        let bad = serde_json::json!({
            "metadata": {"name": "bad", "namespace": "apps"},
            "spec": {"rules": "not a list"},
        });
        let object: GatewayResource<HttpRoute> = serde_json::from_value(bad).expect("never fails");
        assert_eq!(
            object.key().map(|k| k.to_string()).as_deref(),
            Some("HTTPRoute apps/bad"),
            "a delete event still has its key"
        );
        assert!(object.into_object().is_none());
    }

    #[test]
    fn gateway_classes_are_cluster_scoped() {
        let class: GatewayClass = crate::gateway::decode(serde_json::json!({
            "metadata": {"name": "sluice"},
            "spec": {"controllerName": "sluice.dev/gateway-controller"},
        }))
        .expect("decodes");
        let object = GatewayResource {
            metadata: class.metadata.clone(),
            decoded: Ok(class),
        };
        let (key, _) = object.into_object().expect("named");
        assert_eq!(key.to_string(), "GatewayClass sluice");
    }

    #[test]
    fn namespaces_keep_name_and_labels_only() {
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "apps", "labels": {"shared": "true"}, "uid": "u",
                         "annotations": {"a": "b"}, "resourceVersion": "3"},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        }))
        .expect("namespace");
        let (key, object) = namespace.into_object().expect("named");
        assert_eq!(key.to_string(), "Namespace apps");
        let Object::Namespace(stored) = object else {
            panic!("not a Namespace");
        };
        let want: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "apps", "labels": {"shared": "true"}},
        }))
        .expect("namespace");
        assert_eq!(*stored, want);
    }

    #[test]
    fn backend_tls_policy_ca_references() {
        let policy: BackendTlsPolicy = crate::gateway::decode(serde_json::json!({
            "metadata": {"name": "p", "namespace": "apps"},
            "spec": {"targetRefs": [{"group": "", "kind": "Service", "name": "web"}],
                     "validation": {"hostname": "web", "caCertificateRefs": [
                         {"group": "", "kind": "ConfigMap", "name": "ca"},
                         {"group": "", "kind": "Secret", "name": "ca-secret"},
                         {"group": "example.com", "kind": "ConfigMap", "name": "other"},
                         {"group": "", "kind": "Pod", "name": "nonsense"}]}},
        }))
        .expect("decodes");
        let bundles = ca_certificate_refs(&policy);
        assert_eq!(bundles.config_maps, [("apps".to_owned(), "ca".to_owned())]);
        assert_eq!(
            bundles.secrets,
            [("apps".to_owned(), "ca-secret".to_owned())]
        );
    }
}
