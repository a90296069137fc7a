//! The endpoint-only path: when only EndpointSlices or Endpoints changed, the
//! routes stay as they are and only the live backends' endpoint sets are
//! recomputed, so pod churn never waits for a full compile.

use rustc_hash::{FxHashMap, FxHashSet};
use std::sync::Arc;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;

use super::backend::ServiceIndex;
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
    refresh_endpoints_indexed(before, after, upstreams, &mut None)
}

/// Where each Service's objects sit in a snapshot's lists, so an endpoint
/// update picks the few objects it needs instead of reading every Service
/// and every EndpointSlice's labels. Valid for the snapshot it was built on
/// and for every later one whose lists keep their positions (an
/// endpoint-only update of the same objects); [`refresh_endpoints_indexed`]
/// checks that and rebuilds it when not.
#[derive(Debug, Default)]
pub struct EndpointIndex {
    /// (hash of (namespace, Service name), position), sorted: one
    /// allocation per list, no key copied; a colliding position is told
    /// apart when read.
    services: Vec<(u64, u32)>,
    slices: Vec<(u64, u32)>,
    endpoints: Vec<(u64, u32)>,
    lengths: (usize, usize, usize),
}

/// The index key of a (namespace, Service name).
fn hashed(id: (&str, &str)) -> u64 {
    use std::hash::BuildHasher;
    rustc_hash::FxBuildHasher.hash_one(id)
}

/// Each object's position in `list` beside the hash of its Service's identity, sorted.
fn positions<'s, T>(
    list: &'s [Arc<T>],
    identity: impl Fn(&'s T) -> Option<(&'s str, &'s str)>,
) -> Vec<(u64, u32)> {
    let mut out: Vec<(u64, u32)> = list
        .iter()
        .enumerate()
        .filter_map(|(position, object)| {
            Some((hashed(identity(object)?), u32::try_from(position).ok()?))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Adds to `out` the objects of `list` indexed under `h` in `index` that
/// belong to `id`, in list order.
fn pick<'s, T>(
    list: &'s [Arc<T>],
    index: &[(u64, u32)],
    identity: impl Fn(&'s T) -> Option<(&'s str, &'s str)>,
    (h, id): (u64, (&str, &str)),
    out: &mut Vec<Arc<T>>,
) {
    let start = index.partition_point(|&(k, _)| k < h);
    for &(_, i) in index[start..].iter().take_while(|&&(k, _)| k == h) {
        let object = usize::try_from(i).ok().and_then(|i| list.get(i));
        if let Some(object) = object.filter(|o| identity(o) == Some(id)) {
            out.push(object.clone());
        }
    }
}

impl EndpointIndex {
    /// Indexes `snapshot` (done once after a full compile, off the update path).
    pub fn build(snapshot: &Snapshot) -> Self {
        Self {
            services: positions(&snapshot.services, |s| key(&s.metadata)),
            slices: positions(&snapshot.endpoint_slices, slice_service),
            endpoints: positions(&snapshot.endpoints, |e| key(&e.metadata)),
            lengths: lengths(snapshot),
        }
    }

    /// Whether this index, right for `before`, is right for `after` too.
    fn still_right(&self, before: &Snapshot, after: &Snapshot) -> bool {
        self.lengths == lengths(before)
            && same_positions(&before.services, &after.services, |s| key(&s.metadata))
            && same_positions(
                &before.endpoint_slices,
                &after.endpoint_slices,
                slice_service,
            )
            && same_positions(&before.endpoints, &after.endpoints, |e| key(&e.metadata))
    }

    /// The part of `snapshot` that resolving `affected` reads.
    fn subset(&self, snapshot: &Snapshot, affected: &FxHashSet<(&str, &str)>) -> Snapshot {
        let mut subset = Snapshot::default();
        for &id in affected {
            let wanted = (hashed(id), id);
            let (s, out) = (snapshot, &mut subset);
            pick(
                &s.services,
                &self.services,
                |o| key(&o.metadata),
                wanted,
                &mut out.services,
            );
            pick(
                &s.endpoint_slices,
                &self.slices,
                slice_service,
                wanted,
                &mut out.endpoint_slices,
            );
            pick(
                &s.endpoints,
                &self.endpoints,
                |o| key(&o.metadata),
                wanted,
                &mut out.endpoints,
            );
        }
        subset
    }
}

fn lengths(snapshot: &Snapshot) -> (usize, usize, usize) {
    (
        snapshot.services.len(),
        snapshot.endpoint_slices.len(),
        snapshot.endpoints.len(),
    )
}

/// Whether every position of `after` holds the object of the same identity
/// (and, for slices, the same Service) as in `before`: what an index built
/// on `before` needs to still be right for `after`.
fn same_positions<'s, T: Metadata<Ty = ObjectMeta>>(
    before: &'s [Arc<T>],
    after: &'s [Arc<T>],
    service_of: impl Fn(&'s T) -> Option<(&'s str, &'s str)>,
) -> bool {
    before.len() == after.len()
        && before.iter().zip(after).all(|(a, b)| {
            Arc::ptr_eq(a, b)
                || (key(a.metadata()) == key(b.metadata()) && service_of(a) == service_of(b))
        })
}

/// [`refresh_endpoints`], keeping `index` (built here when `None` or no
/// longer right) for the next update to reuse: with it, an update costs one
/// pointer comparison per object plus the affected Services' own objects.
pub fn refresh_endpoints_indexed(
    before: &Snapshot,
    after: &Snapshot,
    upstreams: &Upstreams,
    index: &mut Option<EndpointIndex>,
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
    let still_right = index
        .as_ref()
        .is_some_and(|index| index.still_right(before, after));
    if !still_right {
        *index = None;
    }
    if affected.is_empty() {
        return Vec::new();
    }
    let index = index.get_or_insert_with(|| EndpointIndex::build(after));
    let subset = index.subset(after, &affected);
    let services = ServiceIndex::build(&subset);
    let resolver = services.resolver();
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
fn changed<'s, T: PartialEq + Metadata<Ty = ObjectMeta>>(
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
            .all(|&i| key(before[i].metadata()) == key(after[i].metadata()));
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
        .map(|o| (key(o.metadata()), o))
        .collect();
    let mut matched: FxHashSet<*const T> = FxHashSet::default();
    for f in fresh {
        match by_id.get(&key(f.metadata())) {
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

    fn named_slice(name: &str, service: &str, ip: &str) -> Arc<EndpointSlice> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default",
                "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
                "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}]}))
            .expect("slice"),
        )
    }

    /// The sets as comparable values: backend key, then addresses.
    fn comparable(sets: Vec<(Arc<Backend>, Arc<EndpointSet>)>) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = sets
            .into_iter()
            .map(|(backend, set)| {
                let mut addrs: Vec<String> = set.addrs.iter().map(ToString::to_string).collect();
                addrs.sort();
                (format!("{:?}", backend.key()), addrs)
            })
            .collect();
        out.sort();
        out
    }

    /// Random endpoint-only updates (a slice's pods change, a slice moves to
    /// another Service, slices come, go or are reordered): the index kept
    /// from update to update always gives what a fresh look at the whole
    /// snapshot gives.
    #[test]
    fn a_kept_index_refreshes_exactly_what_a_fresh_one_does() {
        let upstreams = Upstreams::new();
        let names = ["a", "b", "c", "d", "e"];
        let _backends: Vec<_> = names
            .iter()
            .map(|svc| {
                upstreams.backend(&BackendKey {
                    namespace: "default".into(),
                    cluster_ip: false,
                    service: (*svc).into(),
                    port: PortRef::Number(80),
                })
            })
            .collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(seed >> 33).expect("31 bits") % n
        };
        let mut current = Snapshot {
            services: names.iter().map(|n| service(n)).collect(),
            endpoint_slices: names
                .iter()
                .enumerate()
                .map(|(i, n)| named_slice(&format!("{n}-0"), n, &format!("10.0.0.{i}")))
                .collect(),
            ..Snapshot::default()
        };
        let mut index = None;
        let mut reused = 0;
        for step in 0..400 {
            let mut after = current.clone();
            let len = after.endpoint_slices.len();
            let ip = format!("10.1.{}.{}", step / 200, step % 200);
            match next(10) {
                // Most updates: one slice's pods change.
                0..=5 if len > 0 => {
                    let i = next(len);
                    let old = &after.endpoint_slices[i];
                    let name = old.metadata.name.clone().unwrap_or_default();
                    let service = slice_service(old).map(|(_, s)| s.to_owned());
                    after.endpoint_slices[i] =
                        named_slice(&name, service.as_deref().unwrap_or("a"), &ip);
                }
                6 if len > 0 => {
                    let i = next(len);
                    let name = after.endpoint_slices[i].metadata.name.clone();
                    let to = names[next(names.len())];
                    after.endpoint_slices[i] = named_slice(name.as_deref().unwrap_or("x"), to, &ip);
                }
                7 if len > 1 => {
                    let i = next(len);
                    after.endpoint_slices.remove(i);
                }
                8 if len > 1 => after.endpoint_slices.swap(0, len - 1),
                _ => {
                    let to = names[next(names.len())];
                    after
                        .endpoint_slices
                        .push(named_slice(&format!("{to}-{step}"), to, &ip));
                }
            }
            assert!(only_endpoints_changed(&current, &after));
            if index
                .as_ref()
                .is_some_and(|i: &EndpointIndex| i.still_right(&current, &after))
            {
                reused += 1;
            }
            let indexed = refresh_endpoints_indexed(&current, &after, &upstreams, &mut index);
            let fresh = refresh_endpoints(&current, &after, &upstreams);
            assert_eq!(comparable(indexed), comparable(fresh), "step {step}");
            current = after;
        }
        assert!(reused > 100, "the index was kept only {reused} times");
    }
}
