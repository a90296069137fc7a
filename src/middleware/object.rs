//! The `Middleware` custom resource (`traefik.io/v1alpha1`) as sluice stores it.
//!
//! The spec stays JSON: each middleware kind decodes its own section when it is
//! built ([`super::build`]), so an unknown or broken section fails only the
//! Middleware that has it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// API versions whose `kind: Middleware` objects sluice reads.
pub const API_VERSIONS: [&str; 2] = ["traefik.io/v1alpha1", "traefik.containo.us/v1alpha1"];

/// The kind name of the custom resource.
pub const KIND: &str = "Middleware";

/// One Traefik `Middleware` object.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MiddlewareObject {
    /// Name, namespace, labels, annotations.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`: exactly one middleware section (`stripPrefix: {...}`, `basicAuth: {...}`...).
    #[serde(default)]
    pub spec: serde_json::Map<String, serde_json::Value>,
}

impl MiddlewareObject {
    /// The object's namespace (`default` when unset).
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
}
