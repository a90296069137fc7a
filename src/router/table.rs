//! The immutable routing table and its lookup.

use std::sync::Arc;

use super::{Route, RouteInfo};

/// The compiled routing table: exact hosts, wildcard hosts, host-less rules, default backend.
#[derive(Debug, Default)]
pub struct RouteTable {}

impl RouteTable {
    /// The route for a request: `host` as sent (any case, maybe with a port), `path`
    /// already normalised (no dot-segments, no query). `None`: answer 404.
    pub fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let _ = (host, path);
        None
    }

    /// Every route and default backend, for the admin API.
    pub fn routes(&self) -> Vec<RouteInfo> {
        Vec::new()
    }
}

impl RouteTable {
    /// Every route and the default backend, each once (for metrics).
    pub fn all_routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        std::iter::empty()
    }
}
