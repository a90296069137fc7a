//! The endpoint-only path: when only EndpointSlices or Endpoints changed, the
//! routes stay as they are and only the live backends' endpoint sets are
//! recomputed, so pod churn never waits for a full compile.

use std::sync::Arc;

use super::backend::Resolver;
use super::Snapshot;
use crate::upstream::{Backend, EndpointSet, Upstreams};

/// Whether two snapshots differ only in EndpointSlices and Endpoints (so the
/// routes compiled from `before` are still right for `after`).
pub fn only_endpoints_changed(before: &Snapshot, after: &Snapshot) -> bool {
    same(&before.ingresses, &after.ingresses)
        && same(&before.ingress_classes, &after.ingress_classes)
        && same(&before.services, &after.services)
        && same(&before.secrets, &after.secrets)
}

fn same<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || x == y)
}

/// The endpoint set every live backend should have now. Backends whose Service
/// cannot be resolved keep what they have (their routes already answer 503).
pub fn refresh_endpoints(
    snapshot: &Snapshot,
    upstreams: &Upstreams,
) -> Vec<(Arc<Backend>, Arc<EndpointSet>)> {
    let resolver = Resolver::new(snapshot);
    upstreams
        .live()
        .into_iter()
        .filter_map(|backend| {
            let set = resolver.resolve(backend.key()).ok()?;
            Some((backend, Arc::new(set)))
        })
        .collect()
}
