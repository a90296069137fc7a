//! A consistent-hash ring with virtual nodes (ketama, as nginx's
//! `hash ... consistent` and lua-resty-balancer's `resty.chash`): every node
//! owns [`POINTS_PER_NODE`] points placed by a hash of its name alone, and a
//! key goes to the owner of the first point at or after the key's hash.
//!
//! Because a node's points depend only on its name, removing one node of N
//! moves only the keys it owned (about 1/N of them) and adding one takes
//! about 1/(N+1) of the keys, from every other node alike. The ring is built
//! off the request path; a lookup is a binary search, with no lock and no
//! allocation, and [`KeyHasher`] hashes a key as it is written, so a key made
//! of several request parts is never assembled into a string.

use std::fmt;
use std::net::SocketAddr;

/// Virtual nodes per node: nginx's `hash ... consistent` places 160 points
/// per unit of weight, as ketama does.
pub const POINTS_PER_NODE: u64 = 160;

/// The ring: sorted points and, for each, the index of the node owning it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HashRing {
    points: Box<[u64]>,
    owners: Box<[u32]>,
}

impl HashRing {
    /// A ring over nodes identified by `names` (hashes of their names, see
    /// [`name_hash`]); lookups answer indexes into `names`.
    pub fn new(names: &[u64]) -> Self {
        let mut placed: Vec<(u64, u32)> =
            Vec::with_capacity(names.len() * POINTS_PER_NODE as usize);
        for (index, name) in names.iter().enumerate() {
            let Ok(owner) = u32::try_from(index) else {
                break;
            };
            for i in 0..POINTS_PER_NODE {
                placed.push((point(*name, i), owner));
            }
        }
        // Ties (two nodes on one point) are broken by node name, so the ring
        // does not depend on the order the nodes were listed in.
        placed.sort_unstable_by_key(|(p, owner)| (*p, names[*owner as usize]));
        Self {
            points: placed.iter().map(|(p, _)| *p).collect(),
            owners: placed.iter().map(|(_, o)| *o).collect(),
        }
    }

    /// Whether the ring has no node.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The node a key hashed to `key` belongs to; `None` on an empty ring.
    pub fn find(&self, key: u64) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let i = self.points.partition_point(|p| *p < key);
        let i = if i == self.points.len() { 0 } else { i };
        Some(self.owners[i] as usize)
    }
}

/// The `i`-th point of the node named `name`: the splitmix64 sequence seeded
/// with the name, so the points are spread evenly and independent of the
/// other nodes.
fn point(name: u64, i: u64) -> u64 {
    mix(name.wrapping_add((i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// The splitmix64 / murmur3 finaliser: every input bit flips about half the
/// output bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The name hash of an endpoint: its `ip:port` text, as ingress-nginx names
/// the nodes of its ring.
pub fn endpoint_name(endpoint: SocketAddr) -> u64 {
    use fmt::Write;
    let mut h = KeyHasher::new();
    let _ = write!(h, "{endpoint}");
    h.finish()
}

/// The name hash of an arbitrary node name (e.g. a subset's `set1`).
pub fn name_hash(name: &str) -> u64 {
    let mut h = KeyHasher::new();
    h.write_bytes(name.as_bytes());
    h.finish()
}

/// Hashes a key as its pieces are written (FNV-1a 64, then [`mix`]):
/// writing `"ab"` then `"c"` gives the hash of `"abc"`.
#[derive(Debug, Clone, Copy)]
pub struct KeyHasher(u64);

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyHasher {
    /// The hash of the empty key, ready for bytes.
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Adds `bytes` to the key.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_byte(*b);
        }
    }

    /// Adds one byte to the key.
    pub fn write_byte(&mut self, b: u8) {
        self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }

    /// The key's place on the ring.
    pub fn finish(self) -> u64 {
        mix(self.0)
    }
}

impl fmt::Write for KeyHasher {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.write_bytes(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(n: u16) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 8080)))
            .collect()
    }

    fn ring(addrs: &[SocketAddr]) -> HashRing {
        let names: Vec<u64> = addrs.iter().map(|a| endpoint_name(*a)).collect();
        HashRing::new(&names)
    }

    fn key(i: usize) -> u64 {
        name_hash(&format!("/users/{i}?page=2"))
    }

    #[test]
    fn an_empty_ring_finds_nothing_and_one_node_gets_everything() {
        assert_eq!(HashRing::new(&[]).find(7), None);
        assert!(HashRing::new(&[]).is_empty());
        let one = ring(&endpoints(1));
        assert!((0..1000).all(|i| one.find(key(i)) == Some(0)));
        // The last point wraps around to the first.
        assert_eq!(one.find(u64::MAX), Some(0));
    }

    #[test]
    fn keys_spread_evenly_over_the_nodes() {
        let addrs = endpoints(10);
        let r = ring(&addrs);
        let mut counts = [0usize; 10];
        let keys = 100_000;
        for i in 0..keys {
            counts[r.find(key(i)).expect("a node")] += 1;
        }
        let mean = keys / 10;
        for (node, count) in counts.iter().enumerate() {
            assert!(
                count * 4 > mean * 3 && count * 4 < mean * 5,
                "node {node} got {count} of {keys} keys (mean {mean}): {counts:?}"
            );
        }
    }

    #[test]
    fn removing_one_node_moves_only_its_keys() {
        let addrs = endpoints(10);
        let before = ring(&addrs);
        let gone = addrs[3];
        let remaining: Vec<SocketAddr> = addrs.iter().copied().filter(|a| *a != gone).collect();
        let after = ring(&remaining);
        let keys = 50_000;
        let mut moved = 0;
        for i in 0..keys {
            let was = addrs[before.find(key(i)).expect("a node")];
            let is = remaining[after.find(key(i)).expect("a node")];
            if was != is {
                assert_eq!(was, gone, "key {i} moved from {was} to {is}");
                moved += 1;
            }
        }
        // About 1/10 of the keys were on the node that left.
        assert!(
            moved * 100 > keys * 7 && moved * 100 < keys * 13,
            "{moved} of {keys} keys moved"
        );
    }

    #[test]
    fn adding_a_node_takes_keys_only_for_itself() {
        let addrs = endpoints(4);
        let before = ring(&addrs);
        let mut grown = addrs.clone();
        let newcomer = SocketAddr::from(([10, 9, 9, 9], 8080));
        // Listed first: the order of the nodes does not matter, only their names.
        grown.insert(0, newcomer);
        let after = ring(&grown);
        let keys = 20_000;
        let mut taken = 0;
        for i in 0..keys {
            let was = addrs[before.find(key(i)).expect("a node")];
            let is = grown[after.find(key(i)).expect("a node")];
            if was != is {
                assert_eq!(is, newcomer, "key {i} moved from {was} to {is}");
                taken += 1;
            }
        }
        assert!(
            taken * 100 > keys * 14 && taken * 100 < keys * 26,
            "{taken} of {keys}"
        );
    }

    #[test]
    fn the_hasher_is_streaming_fnv1a() {
        let mut pieces = KeyHasher::new();
        pieces.write_bytes(b"ab");
        pieces.write_byte(b'c');
        assert_eq!(pieces.finish(), name_hash("abc"));
        let expected = b"abc".iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        assert_eq!(name_hash("abc"), mix(expected));
        assert_ne!(name_hash("abc"), name_hash("abd"));
        assert_eq!(
            endpoint_name("10.0.0.1:80".parse().expect("addr")),
            name_hash("10.0.0.1:80")
        );
    }
}
