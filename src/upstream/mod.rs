//! Upstream backends: the endpoint sets behind each Service port, and the state
//! that must outlive a routing-table swap (round-robin counters, resolved names).
//!
//! [`Upstreams`] is the registry, keyed by [`BackendKey`]. The compiler asks it for
//! an `Arc<Backend>` per Service port it routes to; the routing table holds those
//! `Arc`s. Because the registry hands out the same `Backend` for the same key as
//! long as any table still uses it, a reload does not reset the spread of requests.

mod balance;
mod body;
mod clients;
mod endpoints;
pub mod ewma;
mod h1;
pub mod hash_key;
pub mod hash_ring;
pub mod policy;
mod pool;
pub mod sticky;
mod tcp_pool;

pub use balance::{Backend, Resolved};
pub use body::UpstreamBody;
pub use clients::{ClientKey, Clients, Timeouts, Verify};
pub use endpoints::{EndpointCondition, EndpointSet, ExternalName};
pub use h1::PooledBody;
pub use policy::{Balance, Grouping};
pub use pool::{
    BackendProtocol, BackendTls, PoolSettings, PoolStats, UpstreamClient, UpstreamError,
};
pub use tcp_pool::TcpPool;

use std::fmt;
use std::sync::Arc;

use crate::identity::WeakRegistry;

use serde::Serialize;

/// Which port of a Service a backend names: by number or by name, as in the Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(untagged)]
pub enum PortRef {
    /// `service.port.number`.
    Number(i32),
    /// `service.port.name`.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// The identity of a backend: one port of one Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BackendKey {
    /// The Service's namespace (always the Ingress's own).
    pub namespace: String,
    /// The Service's name.
    pub service: String,
    /// The Service port, as the Ingress names it.
    pub port: PortRef,
    /// Send to the Service's ClusterIP and port instead of its endpoints
    /// (ingress-nginx's `service-upstream` on the Ingress).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_ip: bool,
}

impl fmt::Display for BackendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.service, self.port)?;
        if self.cluster_ip {
            f.write_str(" (ClusterIP)")?;
        }
        Ok(())
    }
}

/// The registry of backends, keyed by identity, living beside the routing table.
///
/// Only the compiler and the admin API touch the registry (off the request path);
/// the data plane only sees the `Arc<Backend>`s in the table.
#[derive(Debug, Default)]
pub struct Upstreams {
    backends: WeakRegistry<BackendKey, Backend>,
}

impl Upstreams {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The backend for `key`: the live one if any table still uses it, else a new one.
    pub fn backend(&self, key: &BackendKey) -> Arc<Backend> {
        self.backends
            .get_or_insert_with(key, || Backend::new(key.clone()))
    }

    /// Every backend some table still uses (for the admin API and the name resolver).
    pub fn live(&self) -> Vec<Arc<Backend>> {
        self.backends.live_where(|_| true)
    }

    /// The live backends of the Services `wanted` accepts (by namespace and name).
    pub fn live_for(&self, wanted: impl Fn(&str, &str) -> bool) -> Vec<Arc<Backend>> {
        self.backends
            .live_where(|key| wanted(&key.namespace, &key.service))
    }
}
