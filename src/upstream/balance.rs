//! A backend and how it spreads requests over its endpoints (round-robin).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;

use super::ewma::Ewma;
use super::policy::{Grouping, InUse, Ring};
use super::{BackendKey, EndpointSet, ExternalName};
use crate::metrics::LazyEntryStats;

/// Request counters per endpoint address, sorted by address for a binary search.
type EndpointStatsTable = Vec<(SocketAddr, Arc<LazyEntryStats>)>;

/// What an ExternalName resolved to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The name and port the addresses are for.
    pub target: Option<ExternalName>,
    /// The addresses, sorted.
    pub addrs: Vec<SocketAddr>,
}

/// One Service port's live endpoints plus its balancer state.
///
/// The endpoint set is swapped atomically when EndpointSlices change; the
/// round-robin counter survives both endpoint changes and table swaps.
#[derive(Debug)]
pub struct Backend {
    key: BackendKey,
    endpoints: ArcSwap<EndpointSet>,
    /// Addresses an ExternalName resolved to, with the name they are for.
    resolved: ArcSwap<Resolved>,
    next: AtomicUsize,
    /// Counters of each current endpoint; an endpoint that stays across an
    /// endpoint change keeps its counters.
    endpoint_stats: ArcSwap<EndpointStatsTable>,
    /// The hash rings and EWMA scores routes of this backend use (held
    /// weakly, rebuilt on endpoint changes; never touched on the request path).
    policies: Mutex<InUse>,
}

impl Backend {
    pub(super) fn new(key: BackendKey) -> Self {
        Self {
            key,
            endpoints: ArcSwap::from_pointee(EndpointSet::default()),
            resolved: ArcSwap::from_pointee(Resolved::default()),
            next: AtomicUsize::new(0),
            endpoint_stats: ArcSwap::from_pointee(Vec::new()),
            policies: Mutex::default(),
        }
    }

    /// The consistent-hash ring for `grouping` over this backend's endpoints
    /// (the one routes already use, if any), kept in step with the endpoints.
    pub fn ring(&self, grouping: Grouping) -> Arc<Ring> {
        let mut policies = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        policies.ring(grouping, &self.current_addrs())
    }

    /// The EWMA scores of this backend's endpoints (the ones routes already
    /// use, if any), kept in step with the endpoints.
    pub fn ewma(&self) -> Arc<Ewma> {
        let mut policies = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        policies.ewma(&self.current_addrs())
    }

    /// Rebuilds the rings and EWMA tables in use for the current endpoints.
    fn sync_policies(&self) {
        let mut policies = self.policies.lock().unwrap_or_else(PoisonError::into_inner);
        policies.sync(&self.current_addrs());
    }

    /// The addresses requests may go to now (an ExternalName's resolved
    /// addresses, only for the current name).
    fn current_addrs(&self) -> Vec<SocketAddr> {
        let set = self.endpoints.load();
        if set.external.is_some() {
            let resolved = self.resolved.load();
            if resolved.target != set.external {
                return Vec::new();
            }
            return resolved.addrs.clone();
        }
        set.addrs.clone()
    }

    /// The backend's identity.
    pub fn key(&self) -> &BackendKey {
        &self.key
    }

    /// The current endpoint set.
    pub fn endpoints(&self) -> Arc<EndpointSet> {
        self.endpoints.load_full()
    }

    /// Installs a new endpoint set (new pods, removed pods, readiness changes).
    pub fn set_endpoints(&self, set: Arc<EndpointSet>) {
        let current = self.endpoints.load();
        // A compile hands over every backend's set; most are the very set
        // installed already (the same `Arc`), which needs no comparison.
        if !Arc::ptr_eq(&current, &set) && **current != *set {
            drop(current);
            self.track_endpoints(&set.addrs);
            self.endpoints.store(set);
            self.sync_policies();
        }
    }

    /// Counts one answer (or failure, as its status) from `endpoint`; an
    /// address that is no longer an endpoint is not counted. No lock, no allocation.
    pub fn record_endpoint(
        &self,
        endpoint: SocketAddr,
        method: &http::Method,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        let table = self.endpoint_stats.load();
        if let Ok(i) = table.binary_search_by_key(&endpoint, |(addr, _)| *addr) {
            table[i].1.record(method, status, elapsed);
        }
    }

    /// The counters of each current endpoint, by address.
    pub fn endpoint_stats(&self) -> Arc<EndpointStatsTable> {
        self.endpoint_stats.load_full()
    }

    /// Makes the counter table cover exactly `addrs` (the previous counters of
    /// addresses that stay are kept). Called off the request path.
    fn track_endpoints(&self, addrs: &[SocketAddr]) {
        let old = self.endpoint_stats.load();
        let mut table: EndpointStatsTable = addrs
            .iter()
            .map(|addr| {
                let stats = old
                    .binary_search_by_key(addr, |(a, _)| *a)
                    .map_or_else(|_| Arc::default(), |i| old[i].1.clone());
                (*addr, stats)
            })
            .collect();
        table.sort_by_key(|(addr, _)| *addr);
        table.dedup_by_key(|(addr, _)| *addr);
        self.endpoint_stats.store(Arc::new(table));
    }

    /// The addresses an ExternalName last resolved to, and for which name.
    pub fn resolved(&self) -> Arc<Resolved> {
        self.resolved.load_full()
    }

    /// Whether the current ExternalName target still needs a lookup.
    pub fn needs_resolving(&self) -> Option<ExternalName> {
        let set = self.endpoints.load();
        let external = set.external.as_ref()?;
        (self.resolved.load().target.as_ref() != Some(external)).then(|| external.clone())
    }

    /// Installs freshly resolved addresses for the ExternalName `target`.
    pub fn set_resolved(&self, target: ExternalName, addrs: Vec<SocketAddr>) {
        self.track_endpoints(&addrs);
        self.resolved.store(Arc::new(Resolved {
            target: Some(target),
            addrs,
        }));
        self.sync_policies();
    }

    /// The next endpoint to forward to, round-robin; `None` when no endpoint is ready.
    pub fn pick(&self) -> Option<SocketAddr> {
        let set = self.endpoints.load();
        if set.external.is_some() {
            let resolved = self.resolved.load();
            // Addresses of a previous name are never used for a new one.
            if resolved.target != set.external {
                return None;
            }
            return self.pick_from(&resolved.addrs);
        }
        self.pick_from(&set.addrs)
    }

    /// The ready endpoint whose sticky-cookie id is `wanted`, if it is still there.
    pub fn pick_sticky(&self, wanted: u64) -> Option<SocketAddr> {
        let set = self.endpoints.load();
        let find = |addrs: &[SocketAddr]| {
            addrs
                .iter()
                .copied()
                .find(|a| super::sticky::endpoint_id(*a) == wanted)
        };
        if set.external.is_some() {
            let resolved = self.resolved.load();
            if resolved.target != set.external {
                return None;
            }
            return find(&resolved.addrs);
        }
        find(&set.addrs)
    }

    /// Whether [`Backend::pick`] would find an endpoint now (without advancing the counter).
    pub fn pick_preview(&self) -> bool {
        let set = self.endpoints.load();
        if set.external.is_some() {
            let resolved = self.resolved.load();
            return resolved.target == set.external && !resolved.addrs.is_empty();
        }
        !set.addrs.is_empty()
    }

    fn pick_from(&self, addrs: &[SocketAddr]) -> Option<SocketAddr> {
        if addrs.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Some(addrs[n % addrs.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::PortRef;
    use std::time::Duration;

    fn backend() -> Backend {
        Backend::new(BackendKey {
            namespace: "default".into(),
            cluster_ip: false,
            service: "web".into(),
            port: PortRef::Number(80),
        })
    }

    #[test]
    fn round_robin_visits_every_endpoint_in_turn() {
        let b = backend();
        let addrs: Vec<SocketAddr> = vec![
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.2:80".parse().unwrap(),
        ];
        b.set_endpoints(Arc::new(EndpointSet {
            addrs: addrs.clone(),
            ..EndpointSet::default()
        }));
        let picks: Vec<_> = (0..4).map(|_| b.pick().unwrap()).collect();
        assert_eq!(picks, vec![addrs[0], addrs[1], addrs[0], addrs[1]]);
    }

    #[test]
    fn endpoint_counters_follow_the_endpoints_and_survive_changes() {
        let b = backend();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let c: SocketAddr = "10.0.0.2:80".parse().unwrap();
        let set = |addrs: Vec<SocketAddr>| {
            Arc::new(EndpointSet {
                addrs,
                ..EndpointSet::default()
            })
        };
        b.set_endpoints(set(vec![a]));
        let get = Duration::from_millis(1);
        b.record_endpoint(a, &http::Method::GET, 200, get);
        // Not an endpoint: not counted, no panic.
        b.record_endpoint(c, &http::Method::GET, 200, get);
        b.set_endpoints(set(vec![a, c]));
        b.record_endpoint(c, &http::Method::GET, 503, get);
        let table = b.endpoint_stats();
        let count = |addr| {
            let i = table.binary_search_by_key(&addr, |(x, _)| *x).unwrap();
            table[i].1.durations().1
        };
        assert_eq!(count(a), 1, "a kept its counters across the change");
        assert_eq!(count(c), 1);
        b.set_endpoints(set(vec![c]));
        assert_eq!(b.endpoint_stats().len(), 1);
    }

    #[test]
    fn rings_and_scores_follow_the_endpoints_and_external_names() {
        let b = backend();
        let ring = b.ring(Grouping::Single);
        let ewma = b.ewma();
        assert_eq!(ring.pick(1), None);
        assert_eq!(ewma.pick(), None);
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        b.set_endpoints(Arc::new(EndpointSet {
            addrs: vec![a],
            ..EndpointSet::default()
        }));
        assert_eq!(ring.pick(1), Some(a));
        assert_eq!(ewma.pick(), Some(a));
        assert!(
            Arc::ptr_eq(&ring, &b.ring(Grouping::Single)),
            "shared while in use"
        );
        assert!(Arc::ptr_eq(&ewma, &b.ewma()));
        let name = ExternalName {
            host: "example.com".into(),
            port: 80,
        };
        b.set_endpoints(Arc::new(EndpointSet {
            external: Some(name.clone()),
            ..EndpointSet::default()
        }));
        assert_eq!(ring.pick(1), None, "not resolved yet");
        let resolved: SocketAddr = "192.0.2.1:80".parse().unwrap();
        b.set_resolved(name, vec![resolved]);
        assert_eq!(ring.pick(1), Some(resolved));
        assert_eq!(ewma.pick(), Some(resolved));
    }

    #[test]
    fn no_endpoints_means_no_pick() {
        assert_eq!(backend().pick(), None);
    }

    #[test]
    fn external_name_uses_resolved_addresses_of_the_current_name_only() {
        let b = backend();
        let name = |host: &str| ExternalName {
            host: host.into(),
            port: 80,
        };
        let external = |host: &str| {
            Arc::new(EndpointSet {
                addrs: vec![],
                external: Some(name(host)),
                ..EndpointSet::default()
            })
        };
        b.set_endpoints(external("example.com"));
        assert_eq!(b.pick(), None);
        assert_eq!(b.needs_resolving(), Some(name("example.com")));
        b.set_resolved(name("example.com"), vec!["192.0.2.1:80".parse().unwrap()]);
        assert_eq!(b.pick(), Some("192.0.2.1:80".parse().unwrap()));
        assert_eq!(b.needs_resolving(), None);
        // A new name never gets the old name's addresses.
        b.set_endpoints(external("other.example"));
        assert_eq!(b.pick(), None);
        assert_eq!(b.needs_resolving(), Some(name("other.example")));
    }
}
