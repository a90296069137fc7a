//! Sorting what is mostly sorted already: a compile's lists (the served
//! Ingresses, the table's route listing) hold the same objects as the last
//! compile's, in the same order, plus a few new ones.

use std::cmp::Ordering;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::delta::address;

/// `items` sorted by `cmp` (a total order on distinct items), reusing
/// `previous`, the last sort's objects in order: the items that are objects
/// of `previous` (by address) keep its order, and only the others are sorted
/// and placed by binary search. One changed object then costs a few
/// comparisons rather than a sort of them all. `previous` holds the objects,
/// so no address in it can be reused by a new one. Equal to
/// `items.sort_by(cmp)` whenever `previous` was sorted by the same `cmp`.
pub(super) fn keep_order<T, P>(
    items: Vec<T>,
    previous: &[Arc<P>],
    address_of: impl Fn(&T) -> usize,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> Vec<T> {
    let mut position: FxHashMap<usize, usize> =
        FxHashMap::with_capacity_and_hasher(items.len(), Default::default());
    for (i, item) in items.iter().enumerate() {
        position.entry(address_of(item)).or_insert(i);
    }
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut sorted: Vec<T> = previous
        .iter()
        .filter_map(|arc| position.get(&address(arc)))
        .filter_map(|&i| slots[i].take())
        .collect();
    let fresh: Vec<T> = slots.into_iter().flatten().collect();
    insert_sorted(&mut sorted, fresh, cmp);
    sorted
}

/// Inserts `fresh` into `sorted` (sorted by `cmp`) where `cmp` places them:
/// each by binary search while they are few, else by one sort of all.
pub(super) fn insert_sorted<T>(
    sorted: &mut Vec<T>,
    mut fresh: Vec<T>,
    cmp: impl Fn(&T, &T) -> Ordering,
) {
    if fresh.len() > sorted.len() / 8 {
        sorted.append(&mut fresh);
        sorted.sort_by(cmp);
        return;
    }
    fresh.sort_by(&cmp);
    for item in fresh {
        let at = sorted.partition_point(|s| cmp(s, &item) != Ordering::Greater);
        sorted.insert(at, item);
    }
}

/// A small deterministic generator (xorshift) for the router's randomised
/// tests: `next(n)` is below `n`, and every run draws the same sequence.
#[cfg(test)]
pub(super) fn rng(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random lists built from the last one (some kept, some dropped, some
    /// new, in a scrambled order): the kept order equals a fresh sort, on
    /// both the binary-search path and the sort-all path.
    #[test]
    fn a_kept_order_equals_a_fresh_sort() {
        let mut next = rng(0x2545_f491_4f6c_dd1d);
        let mut previous: Vec<Arc<u64>> = Vec::new();
        let (mut placed, mut sorted_all) = (0, 0);
        for _ in 0..400 {
            let mut items: Vec<Arc<u64>> =
                previous.iter().filter(|_| next(10) > 0).cloned().collect();
            let new = if next(4) == 0 { 1 + next(40) } else { next(3) };
            items.extend((0..new).map(|_| Arc::new(next(1_000))));
            // Scrambled: the order in which items come must not matter.
            for i in (1..items.len()).rev() {
                let j = usize::try_from(next(i as u64 + 1)).expect("small");
                items.swap(i, j);
            }
            if usize::try_from(new).expect("small") > previous.len() / 8 {
                sorted_all += 1;
            } else {
                placed += 1;
            }
            // Equal values are told apart by address, as names tell routes apart.
            let cmp = |a: &Arc<u64>, b: &Arc<u64>| a.cmp(b).then(address(a).cmp(&address(b)));
            let mut fresh = items.clone();
            fresh.sort_by(cmp);
            let kept = keep_order(items, &previous, address, cmp);
            let addresses = |v: &[Arc<u64>]| v.iter().map(address).collect::<Vec<_>>();
            assert_eq!(addresses(&kept), addresses(&fresh));
            previous = kept;
        }
        assert!(
            placed > 100 && sorted_all > 20,
            "{placed} placed, {sorted_all} sorted"
        );
    }
}
