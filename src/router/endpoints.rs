//! The endpoint-only path: when only EndpointSlices or Endpoints changed, the
//! routes stay as they are and only the live backends' endpoint sets are
//! recomputed, so pod churn never waits for a full compile.

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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
        && same(&before.middlewares, &after.middlewares)
        && same(&before.config_maps, &after.config_maps)
        && same(&before.gateway_classes, &after.gateway_classes)
        && same(&before.gateways, &after.gateways)
        && same(&before.http_routes, &after.http_routes)
        && same(&before.reference_grants, &after.reference_grants)
        && same(&before.backend_tls_policies, &after.backend_tls_policies)
        && same(&before.namespaces, &after.namespaces)
}

fn same<T: PartialEq>(a: &[Arc<T>], b: &[Arc<T>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y) || x == y)
}

/// The new endpoint sets of the live backends whose Services' EndpointSlices or
/// Endpoints differ between `before` and `after`; the others are left alone, so
/// one pod's churn costs the same at 10 or 10,000 Services.
pub fn refresh_endpoints(
    before: &Snapshot,
    after: &Snapshot,
    upstreams: &Upstreams,
) -> Vec<(Arc<Backend>, Arc<EndpointSet>)> {
    let mut affected: FxHashSet<(&str, &str)> = FxHashSet::default();
    changed(
        &before.endpoint_slices,
        &after.endpoint_slices,
        slice_service,
        &mut affected,
    );
    changed(
        &before.endpoints,
        &after.endpoints,
        |e| key(&e.metadata),
        &mut affected,
    );
    if affected.is_empty() {
        return Vec::new();
    }
    let wanted = |meta: &ObjectMeta| key(meta).is_some_and(|k| affected.contains(&k));
    let subset = Snapshot {
        services: after
            .services
            .iter()
            .filter(|s| wanted(&s.metadata))
            .cloned()
            .collect(),
        endpoint_slices: after
            .endpoint_slices
            .iter()
            .filter(|s| slice_service(s).is_some_and(|k| affected.contains(&k)))
            .cloned()
            .collect(),
        endpoints: after
            .endpoints
            .iter()
            .filter(|e| wanted(&e.metadata))
            .cloned()
            .collect(),
        ..Snapshot::default()
    };
    let resolver = Resolver::new(&subset);
    let backends =
        upstreams.live_for(|namespace, service| affected.contains(&(namespace, service)));
    backends
        .into_iter()
        // A `service.nativelb` backend goes to the ClusterIP: endpoints do not matter.
        .filter(|backend| !resolver.native_lb(backend.key()))
        .filter_map(|backend| {
            let set = resolver.resolve(backend.key()).ok()?;
            Some((backend, Arc::new(set)))
        })
        .collect()
}

/// Adds the Service of every object that was added, removed or changed.
fn changed<'s, T: PartialEq + HasMeta>(
    before: &'s [Arc<T>],
    after: &'s [Arc<T>],
    service_of: impl Fn(&'s T) -> Option<(&'s str, &'s str)>,
    affected: &mut FxHashSet<(&'s str, &'s str)>,
) {
    // The providers keep unchanged objects' Arcs in a stable order, so the
    // usual case is one pass over both lists with a few positions differing.
    if before.len() == after.len() {
        let differing: Vec<usize> = (0..before.len())
            .filter(|&i| !Arc::ptr_eq(&before[i], &after[i]))
            .collect();
        let same_identities = differing
            .iter()
            .all(|&i| key(before[i].meta()) == key(after[i].meta()));
        if same_identities {
            for i in differing {
                if *before[i] != *after[i] {
                    affected.extend(service_of(&before[i]));
                    affected.extend(service_of(&after[i]));
                }
            }
            return;
        }
    }
    // Otherwise match objects up by pointer, then by identity.
    let kept: FxHashSet<*const T> = before.iter().map(Arc::as_ptr).collect();
    let fresh: Vec<&Arc<T>> = after
        .iter()
        .filter(|o| !kept.contains(&Arc::as_ptr(o)))
        .collect();
    let remaining: FxHashSet<*const T> = after.iter().map(Arc::as_ptr).collect();
    let by_id: FxHashMap<Option<(&str, &str)>, &Arc<T>> = before
        .iter()
        .filter(|o| !remaining.contains(&Arc::as_ptr(o)))
        .map(|o| (key(o.meta()), o))
        .collect();
    let mut matched: FxHashSet<*const T> = FxHashSet::default();
    for f in fresh {
        match by_id.get(&key(f.meta())) {
            Some(old) if ***old == **f => {
                matched.insert(Arc::as_ptr(old));
            }
            Some(old) => {
                matched.insert(Arc::as_ptr(old));
                affected.extend(service_of(old));
                affected.extend(service_of(f));
            }
            None => affected.extend(service_of(f)),
        }
    }
    for gone in by_id
        .values()
        .filter(|o| !matched.contains(&Arc::as_ptr(o)))
    {
        affected.extend(service_of(gone));
    }
}

/// Objects with metadata.
trait HasMeta {
    fn meta(&self) -> &ObjectMeta;
}

impl HasMeta for EndpointSlice {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

impl HasMeta for k8s_openapi::api::core::v1::Endpoints {
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
}

/// An object's (namespace, name), borrowed.
fn key(meta: &ObjectMeta) -> Option<(&str, &str)> {
    Some((
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref()?,
    ))
}

/// The (namespace, Service) an EndpointSlice belongs to, borrowed.
fn slice_service(slice: &EndpointSlice) -> Option<(&str, &str)> {
    let meta = &slice.metadata;
    let service = meta.labels.as_ref()?.get("kubernetes.io/service-name")?;
    Some((meta.namespace.as_deref().unwrap_or("default"), service))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    use super::*;
    use crate::upstream::{BackendKey, PortRef};

    fn service(name: &str) -> Arc<Service> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": [{"name": "http", "port": 80}]}}))
            .expect("service"),
        )
    }

    fn slice(service: &str, ip: &str) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": format!("{service}-1"), "namespace": "default",
                "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]}),
            )
            .expect("slice"),
        )
    }

    #[test]
    fn gateway_api_and_namespace_changes_are_not_endpoint_only() {
        use crate::gateway::{BackendTlsPolicy, Gateway, GatewayClass, HttpRoute, ReferenceGrant};
        use k8s_openapi::api::core::v1::Namespace;
        let before = Snapshot {
            endpoint_slices: vec![slice("a", "10.0.0.1")],
            ..Snapshot::default()
        };
        let mut slices_only = before.clone();
        slices_only.endpoint_slices = vec![slice("a", "10.0.0.2")];
        assert!(only_endpoints_changed(&before, &slices_only));
        let changes: [fn(&mut Snapshot); 6] = [
            |s| s.gateway_classes.push(Arc::new(GatewayClass::default())),
            |s| s.gateways.push(Arc::new(Gateway::default())),
            |s| s.http_routes.push(Arc::new(HttpRoute::default())),
            |s| s.reference_grants.push(Arc::new(ReferenceGrant::default())),
            |s| {
                s.backend_tls_policies
                    .push(Arc::new(BackendTlsPolicy::default()))
            },
            |s| s.namespaces.push(Arc::new(Namespace::default())),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut after = slices_only.clone();
            change(&mut after);
            assert!(!only_endpoints_changed(&before, &after), "list {i}");
            // An equal object that is not the same Arc still compares equal.
            let mut again = before.clone();
            change(&mut again);
            assert!(only_endpoints_changed(&after, &again), "list {i} by value");
        }
    }

    #[test]
    fn only_the_changed_services_backends_are_refreshed() {
        let upstreams = Upstreams::new();
        let key = |svc: &str| BackendKey {
            namespace: "default".into(),
            cluster_ip: false,
            service: svc.into(),
            port: PortRef::Number(80),
        };
        let (a, b) = (upstreams.backend(&key("a")), upstreams.backend(&key("b")));
        let before = Snapshot {
            services: vec![service("a"), service("b")],
            endpoint_slices: vec![slice("a", "10.0.0.1"), slice("b", "10.0.0.2")],
            ..Snapshot::default()
        };
        let mut after = before.clone();
        after.endpoint_slices[0] = slice("a", "10.0.0.9");
        assert!(only_endpoints_changed(&before, &after));
        let sets = refresh_endpoints(&before, &after, &upstreams);
        assert_eq!(sets.len(), 1, "only Service a changed");
        assert!(Arc::ptr_eq(&sets[0].0, &a));
        assert_eq!(
            sets[0].1.addrs,
            vec!["10.0.0.9:8080".parse().expect("addr")]
        );
        // A re-parsed but identical slice changes nothing.
        let mut same = after.clone();
        same.endpoint_slices[1] = slice("b", "10.0.0.2");
        assert!(refresh_endpoints(&after, &same, &upstreams).is_empty());
        // A removed slice refreshes its Service (now without endpoints).
        let mut removed = after.clone();
        removed.endpoint_slices.remove(1);
        let sets = refresh_endpoints(&after, &removed, &upstreams);
        assert_eq!(sets.len(), 1);
        assert!(Arc::ptr_eq(&sets[0].0, &b));
        assert!(sets[0].1.addrs.is_empty());
        // A Service change is not an endpoint-only change.
        let mut svc_changed = after.clone();
        svc_changed.services[0] = service("c");
        assert!(!only_endpoints_changed(&after, &svc_changed));
    }

    #[test]
    fn reordered_lists_are_matched_by_identity() {
        let upstreams = Upstreams::new();
        let key = |svc: &str| BackendKey {
            namespace: "default".into(),
            cluster_ip: false,
            service: svc.into(),
            port: PortRef::Number(80),
        };
        let (_a, b, _c) = (
            upstreams.backend(&key("a")),
            upstreams.backend(&key("b")),
            upstreams.backend(&key("c")),
        );
        let before = Snapshot {
            services: vec![service("a"), service("b"), service("c")],
            endpoint_slices: vec![
                slice("a", "10.0.0.1"),
                slice("b", "10.0.0.2"),
                slice("c", "10.0.0.3"),
            ],
            ..Snapshot::default()
        };
        // Same length, other order (a file moved), and b changed: only b is refreshed.
        let mut after = before.clone();
        after.endpoint_slices = vec![
            before.endpoint_slices[2].clone(),
            slice("b", "10.0.0.8"),
            before.endpoint_slices[0].clone(),
        ];
        let sets = refresh_endpoints(&before, &after, &upstreams);
        assert_eq!(sets.len(), 1, "only Service b changed");
        assert!(Arc::ptr_eq(&sets[0].0, &b));
        assert_eq!(
            sets[0].1.addrs,
            vec!["10.0.0.8:8080".parse().expect("addr")]
        );
    }

    #[test]
    fn native_lb_backends_keep_their_cluster_ip() {
        let upstreams = Upstreams::new();
        let key = BackendKey {
            namespace: "default".into(),
            cluster_ip: false,
            service: "native".into(),
            port: PortRef::Number(80),
        };
        let _backend = upstreams.backend(&key);
        let native: Arc<Service> = Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": "native", "namespace": "default",
                "annotations": {"traefik.ingress.kubernetes.io/service.nativelb": "true"}},
                "spec": {"clusterIP": "10.96.0.7", "ports": [{"name": "http", "port": 80}]}}),
            )
            .expect("service"),
        );
        let before = Snapshot {
            services: vec![native],
            endpoint_slices: vec![slice("native", "10.0.0.1")],
            ..Snapshot::default()
        };
        let mut after = before.clone();
        after.endpoint_slices[0] = slice("native", "10.0.0.2");
        assert!(only_endpoints_changed(&before, &after));
        assert!(
            refresh_endpoints(&before, &after, &upstreams).is_empty(),
            "pod IPs never replace the ClusterIP"
        );
    }
}
