//! The set of addresses a backend forwards to.

use std::net::SocketAddr;

use serde::Serialize;

/// An ExternalName Service's target: a DNS name resolved off the request path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ExternalName {
    /// The DNS name from `spec.externalName`.
    pub host: String,
    /// The port to connect to (the Service port's number).
    pub port: u16,
}

/// The ready endpoints of one backend, as compiled from EndpointSlices or Endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EndpointSet {
    /// Ready, non-terminating endpoint addresses (pod IP + target port), sorted.
    pub addrs: Vec<SocketAddr>,
    /// Set for an ExternalName Service: `addrs` is empty and the resolver fills
    /// the backend's resolved addresses instead.
    pub external: Option<ExternalName>,
    /// Every endpoint the Service lists, ready or not, with its conditions (for
    /// the dashboard; requests only ever go to `addrs`), sorted by address.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<EndpointCondition>,
}

/// One endpoint as its EndpointSlice (or Endpoints) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct EndpointCondition {
    /// Pod IP and target port.
    pub addr: SocketAddr,
    /// `conditions.ready` (unset counts as true).
    pub ready: bool,
    /// `conditions.serving` (unset: same as ready).
    pub serving: bool,
    /// `conditions.terminating` (unset counts as false).
    pub terminating: bool,
}
