//! Lookups into the snapshot by (namespace, name), built once per resolution.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::refs::ReferenceGrants;
use super::selector;
use crate::router::Snapshot;

/// The label the API server puts on every Namespace (Kubernetes 1.22+),
/// which selectors may use; sluice adds it to Namespaces it does not see.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

type Key<'a> = (&'a str, &'a str);

fn key(metadata: &ObjectMeta) -> Option<Key<'_>> {
    Some((
        metadata.namespace.as_deref().unwrap_or("default"),
        metadata.name.as_deref()?,
    ))
}

/// The snapshot's objects that Gateway API references name.
pub(super) struct Index<'a> {
    services: HashMap<Key<'a>, &'a Service>,
    secrets: HashMap<Key<'a>, &'a Secret>,
    config_maps: HashMap<Key<'a>, &'a ConfigMap>,
    middlewares: HashSet<Key<'a>>,
    namespace_labels: HashMap<&'a str, &'a BTreeMap<String, String>>,
    /// The ReferenceGrants.
    pub grants: ReferenceGrants<'a>,
}

impl<'a> Index<'a> {
    /// Indexes `snapshot`.
    pub fn new(snapshot: &'a Snapshot) -> Self {
        Self {
            services: snapshot
                .services
                .iter()
                .filter_map(|s| Some((key(&s.metadata)?, &**s)))
                .collect(),
            secrets: snapshot
                .secrets
                .iter()
                .filter_map(|s| Some((key(&s.metadata)?, &**s)))
                .collect(),
            config_maps: snapshot
                .config_maps
                .iter()
                .filter_map(|c| Some((key(&c.metadata)?, &**c)))
                .collect(),
            middlewares: snapshot
                .middlewares
                .iter()
                .filter_map(|m| key(&m.metadata))
                .collect(),
            namespace_labels: snapshot
                .namespaces
                .iter()
                .filter_map(|n| {
                    let name = n.metadata.name.as_deref()?;
                    Some((name, n.metadata.labels.as_ref()?))
                })
                .collect(),
            grants: ReferenceGrants::new(&snapshot.reference_grants),
        }
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&'a Service> {
        self.services.get(&(namespace, name)).copied()
    }

    /// The Secret `namespace/name`.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.secrets.get(&(namespace, name)).copied()
    }

    /// The ConfigMap `namespace/name`.
    pub fn config_map(&self, namespace: &str, name: &str) -> Option<&'a ConfigMap> {
        self.config_maps.get(&(namespace, name)).copied()
    }

    /// Whether the Middleware `namespace/name` exists.
    pub fn has_middleware(&self, namespace: &str, name: &str) -> bool {
        self.middlewares.contains(&(namespace, name))
    }

    /// Whether the Namespace `namespace` matches `selector`: its labels, plus
    /// `kubernetes.io/metadata.name` (which the API server always sets), so
    /// that a Namespace the provider does not list is still selectable by name.
    pub fn namespace_matches(&self, namespace: &str, selector: &LabelSelector) -> bool {
        let mut labels = self
            .namespace_labels
            .get(namespace)
            .map(|l| (*l).clone())
            .unwrap_or_default();
        labels
            .entry(NAMESPACE_NAME_LABEL.to_owned())
            .or_insert_with(|| namespace.to_owned());
        selector::matches(selector, &labels)
    }
}
