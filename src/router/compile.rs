//! The compiler: Snapshot in, RouteTable plus Diagnostics out. Pure; never fails as a whole.

use std::sync::Arc;

use super::{Diagnostic, RouteTable, Snapshot};
use crate::identity::WeakRegistry;
use crate::metrics::RouteStats;
use crate::upstream::{Backend, EndpointSet, Upstreams};

/// The `spec.controller` value of IngressClasses that sluice serves.
pub const CONTROLLER_NAME: &str = "sluice.dev/ingress-controller";

/// Settings that change what the compiler serves.
#[derive(Debug, Clone)]
pub struct CompileOptions {
    /// `--ingress-class`: the class name this instance serves.
    pub ingress_class: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self {
            ingress_class: "sluice".to_owned(),
        }
    }
}

/// State with identity that the compiled table references but does not own.
#[derive(Debug, Default)]
pub struct Registries {
    /// Backends (endpoint sets, balancer counters) by Service port.
    pub upstreams: Upstreams,
    /// Request counters by route name.
    pub route_stats: WeakRegistry<Arc<str>, RouteStats>,
}

/// The compiler's output.
#[derive(Debug)]
pub struct Compiled {
    /// The table to publish.
    pub table: RouteTable,
    /// Everything that was skipped, conflicting or unresolved, sorted.
    pub diagnostics: Vec<Diagnostic>,
    /// The endpoint set each backend should have; the publisher installs these
    /// just before it swaps the table in.
    pub endpoints: Vec<(Arc<Backend>, Arc<EndpointSet>)>,
}

/// Compiles a snapshot into a routing table.
pub fn compile(snapshot: &Snapshot, options: &CompileOptions, registries: &Registries) -> Compiled {
    let _ = (snapshot, options, registries);
    todo!("router helper")
}
