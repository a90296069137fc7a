//! The endpoint-only path: when only EndpointSlices or Endpoints changed, the
//! routes stay as they are and only the live backends' endpoint sets are
//! recomputed ([`super::refresh_endpoints`], which patches the last
//! compile's service index), so pod churn never waits for a full compile.

use std::sync::Arc;

use super::Snapshot;

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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Service;
    use serde_json::json;

    use super::*;
    use crate::router::{compile, refresh_endpoints, CompileOptions, Registries};
    use crate::upstream::{Backend, BackendKey, EndpointSet, PortRef};
    use k8s_openapi::api::discovery::v1::EndpointSlice;

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
        let registries = Registries::default();
        let upstreams = &registries.upstreams;
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
        let sets = refresh_endpoints(&before, &after, &registries);
        assert_eq!(sets.len(), 1, "only Service a changed");
        assert!(Arc::ptr_eq(&sets[0].0, &a));
        assert_eq!(
            sets[0].1.addrs,
            vec!["10.0.0.9:8080".parse().expect("addr")]
        );
        // A re-parsed but identical slice changes nothing.
        let mut same = after.clone();
        same.endpoint_slices[1] = slice("b", "10.0.0.2");
        assert!(refresh_endpoints(&after, &same, &registries).is_empty());
        // A removed slice refreshes its Service (now without endpoints).
        let mut removed = after.clone();
        removed.endpoint_slices.remove(1);
        let sets = refresh_endpoints(&after, &removed, &registries);
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
        let registries = Registries::default();
        let upstreams = &registries.upstreams;
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
        let sets = refresh_endpoints(&before, &after, &registries);
        assert_eq!(sets.len(), 1, "only Service b changed");
        assert!(Arc::ptr_eq(&sets[0].0, &b));
        assert_eq!(
            sets[0].1.addrs,
            vec!["10.0.0.8:8080".parse().expect("addr")]
        );
    }

    #[test]
    fn native_lb_backends_keep_their_cluster_ip() {
        let registries = Registries::default();
        let upstreams = &registries.upstreams;
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
            refresh_endpoints(&before, &after, &registries).is_empty(),
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
    /// another Service, slices come, go or are reordered): the service index
    /// of a compile, kept and patched from update to update, always gives
    /// what a fresh look at the whole snapshot gives.
    #[test]
    fn a_kept_index_refreshes_exactly_what_a_fresh_one_does() {
        let names = ["a", "b", "c", "d", "e"];
        let key = |svc: &str| BackendKey {
            namespace: "default".into(),
            cluster_ip: false,
            service: svc.into(),
            port: PortRef::Number(80),
        };
        let kept = Registries::default();
        let _backends: Vec<_> = names
            .iter()
            .map(|n| kept.upstreams.backend(&key(n)))
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
        // A compile leaves the index the refreshes then patch.
        let _ = compile(&current, &CompileOptions::default(), &kept);
        let mut refreshed = 0;
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
                    let service = old
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        .cloned();
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
            let fresh = Registries::default();
            let _held: Vec<_> = names
                .iter()
                .map(|n| fresh.upstreams.backend(&key(n)))
                .collect();
            let indexed = refresh_endpoints(&current, &after, &kept);
            refreshed += indexed.len();
            let expected = refresh_endpoints(&current, &after, &fresh);
            assert_eq!(comparable(indexed), comparable(expected), "step {step}");
            current = after;
        }
        assert!(refreshed > 100, "only {refreshed} sets were refreshed");
    }
}
