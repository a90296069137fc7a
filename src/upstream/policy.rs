//! Per-route balancing policies other than round-robin: consistent hashing
//! of a request key (`upstream-hash-by`, optionally onto subsets of
//! endpoints) and EWMA with two random choices (`load-balance: ewma`).
//!
//! A route holds a [`Balance`]; the state it reads (the ring, the scores)
//! belongs to the route's [`Backend`](super::Backend), which hands out the
//! same instance to every route and every compile while one is in use
//! ([`InUse`] keeps them weakly) and rebuilds it, off the request path,
//! whenever the backend's endpoints change. Routes without a policy never
//! touch any of this.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use http::Request;
use rand::Rng;

use super::ewma::Ewma;
use super::hash_key::{HashKey, Peer};
use super::hash_ring::{endpoint_name, name_hash, HashRing};

/// How a ring groups endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grouping {
    /// One ring node per endpoint (ingress-nginx's `chash`).
    Single,
    /// Nodes are subsets of this many endpoints and a request goes to a random
    /// member of its key's subset (`upstream-hash-by-subset`, `chashsubset`).
    Subsets(usize),
}

/// What a ring lookup reads: the ring over groups, each group a slice of
/// `members`.
#[derive(Debug, Default)]
struct RingTable {
    ring: HashRing,
    /// (start, length) in `members`, by ring node.
    groups: Box<[(u32, u32)]>,
    members: Box<[SocketAddr]>,
}

impl RingTable {
    fn build(grouping: Grouping, addrs: &[SocketAddr]) -> Self {
        let mut addrs = addrs.to_vec();
        addrs.sort_unstable();
        addrs.dedup();
        match grouping {
            Grouping::Single => {
                let names: Vec<u64> = addrs.iter().map(|a| endpoint_name(*a)).collect();
                Self {
                    ring: HashRing::new(&names),
                    groups: (0..addrs.len())
                        .filter_map(|i| u32::try_from(i).ok())
                        .map(|i| (i, 1))
                        .collect(),
                    members: addrs.into(),
                }
            }
            Grouping::Subsets(size) => {
                if addrs.is_empty() {
                    return Self::default();
                }
                // A subset larger than the endpoints is all of them (nginx
                // repeats endpoints up to the size; this never allocates more
                // than the endpoints, whatever the annotation says).
                let size = size.clamp(1, addrs.len());
                // ingress-nginx's build_subset_map: ceil(n / size) subsets
                // `set1`..., the last one filled up with the first endpoints.
                let sets = addrs.len().div_ceil(size);
                let members: Vec<SocketAddr> =
                    (0..sets * size).map(|i| addrs[i % addrs.len()]).collect();
                let names: Vec<u64> = (1..=sets).map(|i| name_hash(&format!("set{i}"))).collect();
                let Ok(len) = u32::try_from(size) else {
                    return Self::default();
                };
                Self {
                    ring: HashRing::new(&names),
                    groups: (0..sets)
                        .filter_map(|i| u32::try_from(i * size).ok())
                        .map(|start| (start, len))
                        .collect(),
                    members: members.into(),
                }
            }
        }
    }

    fn pick(&self, hash: u64) -> Option<SocketAddr> {
        let (start, len) = *self.groups.get(self.ring.find(hash)?)?;
        let offset = if len > 1 {
            rand::rng().random_range(0..len)
        } else {
            0
        };
        self.members.get((start + offset) as usize).copied()
    }
}

/// The consistent-hash ring of one backend, for one grouping.
#[derive(Debug)]
pub struct Ring {
    grouping: Grouping,
    table: ArcSwap<RingTable>,
}

impl Ring {
    fn new(grouping: Grouping, addrs: &[SocketAddr]) -> Self {
        Self {
            grouping,
            table: ArcSwap::from_pointee(RingTable::build(grouping, addrs)),
        }
    }

    /// Rebuilds the ring for a new endpoint list (off the request path).
    fn sync(&self, addrs: &[SocketAddr]) {
        self.table
            .store(Arc::new(RingTable::build(self.grouping, addrs)));
    }

    /// The endpoint for a key hashed to `hash`; `None` without endpoints.
    pub fn pick(&self, hash: u64) -> Option<SocketAddr> {
        self.table.load().pick(hash)
    }
}

/// How a route picks an endpoint when no sticky cookie pins one.
#[derive(Debug)]
pub enum Balance {
    /// Consistent hashing of a request key (`upstream-hash-by`).
    Hash {
        /// The key expression.
        key: HashKey,
        /// The backend's ring for this route's grouping.
        ring: Arc<Ring>,
    },
    /// EWMA of response times with two random choices (`load-balance: ewma`).
    Ewma(Arc<Ewma>),
}

impl PartialEq for Balance {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Hash { key: a, ring: r }, Self::Hash { key: b, ring: s }) => {
                a == b && Arc::ptr_eq(r, s)
            }
            (Self::Ewma(a), Self::Ewma(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Balance {
    /// The endpoint for `req` from a client at `peer`; `None` without endpoints.
    pub fn pick<B>(&self, req: &Request<B>, peer: Peer) -> Option<SocketAddr> {
        match self {
            Self::Hash { key, ring } => ring.pick(key.hash(req, peer)),
            Self::Ewma(ewma) => ewma.pick(),
        }
    }

    /// Learns from one forwarded request: how long `endpoint` took to answer
    /// (or to fail).
    pub fn observe(&self, endpoint: SocketAddr, took: Duration) {
        if let Self::Ewma(ewma) = self {
            ewma.record(endpoint, took);
        }
    }

    /// A short description for the admin API.
    pub fn describe(&self) -> String {
        match self {
            Self::Hash { key, ring } => match ring.grouping {
                Grouping::Single => format!("chash {}", key.as_str()),
                Grouping::Subsets(size) => format!("chashsubset {} (size {size})", key.as_str()),
            },
            Self::Ewma(_) => "ewma".to_owned(),
        }
    }
}

/// The policy states some route of a backend uses, held weakly: they live
/// while a route holds them, and the backend keeps them in step with its
/// endpoints until then.
#[derive(Debug, Default)]
pub(super) struct InUse {
    rings: Vec<Weak<Ring>>,
    ewma: Weak<Ewma>,
}

impl InUse {
    /// The live ring for `grouping`, or a new one over `addrs`.
    pub(super) fn ring(&mut self, grouping: Grouping, addrs: &[SocketAddr]) -> Arc<Ring> {
        self.rings.retain(|r| r.strong_count() > 0);
        if let Some(ring) = self
            .rings
            .iter()
            .filter_map(Weak::upgrade)
            .find(|r| r.grouping == grouping)
        {
            return ring;
        }
        let ring = Arc::new(Ring::new(grouping, addrs));
        self.rings.push(Arc::downgrade(&ring));
        ring
    }

    /// The live EWMA scores, or new ones over `addrs`.
    pub(super) fn ewma(&mut self, addrs: &[SocketAddr]) -> Arc<Ewma> {
        if let Some(ewma) = self.ewma.upgrade() {
            return ewma;
        }
        let ewma = Arc::new(Ewma::new(addrs));
        self.ewma = Arc::downgrade(&ewma);
        ewma
    }

    /// Follows the backend's new endpoints.
    pub(super) fn sync(&mut self, addrs: &[SocketAddr]) {
        self.rings.retain(|r| match r.upgrade() {
            Some(ring) => {
                ring.sync(addrs);
                true
            }
            None => false,
        });
        if let Some(ewma) = self.ewma.upgrade() {
            ewma.sync(addrs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u8) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([10, 0, 0, i], 80)))
            .collect()
    }

    #[test]
    fn subsets_follow_ingress_nginx() {
        // 7 endpoints in subsets of 3: set1, set2, set3 (the last one
        // filled up with the first two endpoints).
        let t = RingTable::build(Grouping::Subsets(3), &addrs(7));
        assert_eq!(t.groups.len(), 3);
        let all = addrs(7);
        assert_eq!(&t.members[6..9], &[all[6], all[0], all[1]]);
        // A key always lands in the same subset.
        let key = name_hash("/some/uri");
        let group = t.ring.find(key).expect("a subset");
        let (start, len) = t.groups[group];
        let subset = &t.members[start as usize..(start + len) as usize];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let picked = t.pick(key).expect("an endpoint");
            assert!(subset.contains(&picked), "{picked} not in {subset:?}");
            seen.insert(picked);
        }
        assert_eq!(seen.len(), 3, "spread over the subset: {seen:?}");
        // Fewer endpoints than a subset: one subset of all of them.
        let t = RingTable::build(Grouping::Subsets(3), &addrs(2));
        assert_eq!(t.groups.len(), 1);
        assert_eq!(&t.members[..], &addrs(2)[..]);
        let huge = RingTable::build(Grouping::Subsets(usize::MAX), &addrs(2));
        assert_eq!(huge.members.len(), 2);
        assert!(RingTable::build(Grouping::Subsets(3), &[])
            .pick(1)
            .is_none());
    }

    #[test]
    fn single_rings_pick_one_endpoint_per_key() {
        let t = RingTable::build(Grouping::Single, &addrs(5));
        let key = name_hash("k");
        let first = t.pick(key).expect("an endpoint");
        assert!((0..50).all(|_| t.pick(key) == Some(first)));
        assert!(RingTable::build(Grouping::Single, &[]).pick(key).is_none());
    }

    #[test]
    fn states_are_shared_while_used_and_follow_the_endpoints() {
        let mut in_use = InUse::default();
        let a = in_use.ring(Grouping::Single, &addrs(3));
        let b = in_use.ring(Grouping::Single, &[]);
        assert!(Arc::ptr_eq(&a, &b), "one ring per grouping while in use");
        let s = in_use.ring(Grouping::Subsets(2), &addrs(3));
        assert!(!Arc::ptr_eq(&a, &s));
        let e = in_use.ewma(&addrs(3));
        assert!(Arc::ptr_eq(&e, &in_use.ewma(&[])));
        in_use.sync(&addrs(1));
        let only = addrs(1)[0];
        assert_eq!(a.pick(12345), Some(only));
        assert_eq!(e.pick(), Some(only));
        drop((a, b, s));
        in_use.sync(&addrs(2));
        assert!(in_use.rings.is_empty(), "unused rings are dropped");
        let fresh = in_use.ring(Grouping::Single, &addrs(2));
        assert!(fresh.pick(1).is_some());
    }
}
