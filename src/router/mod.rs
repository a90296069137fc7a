//! Routing: the pure compiler from a [`Snapshot`] to an immutable [`RouteTable`].
//!
//! Nothing here does I/O or touches tokio: the compiler is a function of its
//! input, tested from YAML fixtures. The table is published by the caller
//! (see [`crate::app`]) with `arc-swap`.

mod annotations;
mod backend;
mod certs;
mod compile;
mod delta;
mod diagnostic;
mod endpoints;
mod gateway;
mod host;
pub(crate) use host::strip_port;
mod ingress;
mod middlewares;
pub mod nginx;
#[cfg(test)]
mod oracle;
mod order;
mod path;
mod rank;
mod route;
mod route_table;
mod snapshot;
mod table;

pub use compile::{
    compile, refresh_endpoints, CompileOptions, Compiled, Registries, CONTROLLER_NAME,
};
pub use diagnostic::{Diagnostic, DiagnosticKind, ObjectRef, Severity};
pub use endpoints::only_endpoints_changed;
pub use gateway::{NoFacts, RequestFacts};
pub use route::{EntryPoint, EntryPoints, PathKind, Route, RouteInfo, Target};
pub use route_table::RouteTable;
pub use snapshot::Snapshot;

/// The Ingresses this instance serves (its class), selected exactly as the
/// compiler selects them; what status publishing writes to.
pub fn served_ingresses<'a>(
    snapshot: &'a Snapshot,
    options: &CompileOptions,
) -> Vec<&'a k8s_openapi::api::networking::v1::Ingress> {
    ingress::served(snapshot, options)
}
