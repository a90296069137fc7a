//! The typed objects a provider holds, their identity, and where they came from.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::gateway::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use crate::middleware::MiddlewareObject;
use crate::router::{ObjectRef, Snapshot};

/// One Kubernetes object of a kind the compiler reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A `networking.k8s.io/v1` Ingress.
    Ingress(Arc<Ingress>),
    /// A `networking.k8s.io/v1` IngressClass (cluster scoped).
    IngressClass(Arc<IngressClass>),
    /// A `v1` Service.
    Service(Arc<Service>),
    /// A `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice(Arc<EndpointSlice>),
    /// A legacy `v1` Endpoints.
    Endpoints(Arc<Endpoints>),
    /// A `v1` Secret, with `stringData` already merged into `data`.
    Secret(Arc<Secret>),
    /// A Traefik `Middleware` custom resource.
    Middleware(Arc<MiddlewareObject>),
    /// A `v1` ConfigMap (ingress-nginx's controller settings and header lists).
    ConfigMap(Arc<ConfigMap>),
    /// A Gateway API `GatewayClass` (cluster scoped).
    GatewayClass(Arc<GatewayClass>),
    /// A Gateway API `Gateway`.
    Gateway(Arc<Gateway>),
    /// A Gateway API `HTTPRoute`.
    HttpRoute(Arc<HttpRoute>),
    /// A Gateway API `ReferenceGrant` (`v1` or `v1beta1`).
    ReferenceGrant(Arc<ReferenceGrant>),
    /// A Gateway API `BackendTLSPolicy`.
    BackendTlsPolicy(Arc<BackendTlsPolicy>),
    /// A `v1` Namespace (cluster scoped), name and labels only.
    Namespace(Arc<Namespace>),
}

impl Object {
    /// Adds this object to the matching list of `snapshot`.
    pub fn push_into(&self, snapshot: &mut Snapshot) {
        match self {
            Self::Ingress(o) => snapshot.ingresses.push(Arc::clone(o)),
            Self::IngressClass(o) => snapshot.ingress_classes.push(Arc::clone(o)),
            Self::Service(o) => snapshot.services.push(Arc::clone(o)),
            Self::EndpointSlice(o) => snapshot.endpoint_slices.push(Arc::clone(o)),
            Self::Endpoints(o) => snapshot.endpoints.push(Arc::clone(o)),
            Self::Secret(o) => snapshot.secrets.push(Arc::clone(o)),
            Self::Middleware(o) => snapshot.middlewares.push(Arc::clone(o)),
            Self::ConfigMap(o) => snapshot.config_maps.push(Arc::clone(o)),
            Self::GatewayClass(o) => snapshot.gateway_classes.push(Arc::clone(o)),
            Self::Gateway(o) => snapshot.gateways.push(Arc::clone(o)),
            Self::HttpRoute(o) => snapshot.http_routes.push(Arc::clone(o)),
            Self::ReferenceGrant(o) => snapshot.reference_grants.push(Arc::clone(o)),
            Self::BackendTlsPolicy(o) => snapshot.backend_tls_policies.push(Arc::clone(o)),
            Self::Namespace(o) => snapshot.namespaces.push(Arc::clone(o)),
        }
    }
}

macro_rules! from_arc {
    ($($variant:ident($type:ty)),* $(,)?) => {$(
        impl From<Arc<$type>> for Object {
            fn from(object: Arc<$type>) -> Self {
                Self::$variant(object)
            }
        }
    )*};
}

from_arc!(
    GatewayClass(GatewayClass),
    Gateway(Gateway),
    HttpRoute(HttpRoute),
    ReferenceGrant(ReferenceGrant),
    BackendTlsPolicy(BackendTlsPolicy),
);

/// The identity of an object: two objects with equal keys are the same object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The kind, such as `Ingress`.
    pub kind: &'static str,
    /// The namespace; `None` for cluster-scoped kinds.
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// Where an object was read from: a file and a document inside it.
///
/// Orders by path, then document index, then list item; the store keeps the
/// first of two duplicates in this order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source {
    /// The file, relative to the watched directory (or the file's own name).
    pub file: String,
    /// The document index inside the file, starting at 0.
    pub doc: usize,
    /// The item index when the document is a `kind: List`.
    pub item: Option<usize>,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.file, self.doc)?;
        if let Some(item) = self.item {
            write!(f, "#{item}")?;
        }
        Ok(())
    }
}

/// An object together with its identity and its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The object's identity.
    pub key: ObjectKey,
    /// Where it was read from.
    pub source: Source,
    /// The typed object.
    pub object: Object,
}

impl Loaded {
    /// A reference to this object for diagnostics, naming its source.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef {
            kind: self.key.kind.to_owned(),
            namespace: self.key.namespace.clone(),
            name: self.key.name.clone(),
            source: Some(self.source.to_string()),
        }
    }
}
