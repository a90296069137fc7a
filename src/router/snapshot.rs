//! The compiler's input: an immutable view of every object a provider holds.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::gateway::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};
use crate::middleware::MiddlewareObject;

/// Every Kubernetes object the compiler may read, as one consistent view.
///
/// Providers guarantee that every namespaced object has `metadata.namespace` set
/// (a missing namespace in a manifest means `default`) and `metadata.name` set.
/// Order within each list carries no meaning.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// `networking.k8s.io/v1` Ingresses, of every class (the compiler filters).
    pub ingresses: Vec<Arc<Ingress>>,
    /// `networking.k8s.io/v1` IngressClasses (cluster scoped).
    pub ingress_classes: Vec<Arc<IngressClass>>,
    /// `v1` Services.
    pub services: Vec<Arc<Service>>,
    /// `discovery.k8s.io/v1` EndpointSlices, tied to Services by the
    /// `kubernetes.io/service-name` label.
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Legacy `v1` Endpoints, used for a Service that has no EndpointSlice.
    pub endpoints: Vec<Arc<Endpoints>>,
    /// `v1` Secrets (TLS certificates, auth users).
    pub secrets: Vec<Arc<Secret>>,
    /// Traefik `Middleware` objects (`traefik.io/v1alpha1`).
    pub middlewares: Vec<Arc<MiddlewareObject>>,
    /// `v1` ConfigMaps: the ingress-nginx controller ConfigMap
    /// (`--nginx-configmap`) and the header lists ingress-nginx annotations
    /// name (`custom-headers`, `auth-proxy-set-headers`).
    pub config_maps: Vec<Arc<ConfigMap>>,
    /// Gateway API `GatewayClass`es (cluster scoped), of every controller
    /// (the compiler picks sluice's, `crate::gateway::CONTROLLER_NAME`).
    pub gateway_classes: Vec<Arc<GatewayClass>>,
    /// Gateway API `Gateway`s, of every class.
    pub gateways: Vec<Arc<Gateway>>,
    /// Gateway API `HTTPRoute`s.
    pub http_routes: Vec<Arc<HttpRoute>>,
    /// Gateway API `ReferenceGrant`s (read as `v1` or `v1beta1`).
    pub reference_grants: Vec<Arc<ReferenceGrant>>,
    /// Gateway API `BackendTLSPolicy`s (`v1`).
    pub backend_tls_policies: Vec<Arc<BackendTlsPolicy>>,
    /// `v1` Namespaces, with only their name and labels (for a listener's
    /// `allowedRoutes.namespaces.selector`; cluster scoped).
    pub namespaces: Vec<Arc<Namespace>>,
}
