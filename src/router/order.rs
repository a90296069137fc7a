//! Sorting what is mostly sorted already: a compile's lists (served
//! Ingresses, the table's routes) hold the same objects as the last
//! compile's, in the same order, plus a few new ones.

use std::cmp::Ordering;
use std::sync::Arc;

use rustc_hash::FxHashMap;

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
    address: impl Fn(&T) -> usize,
    cmp: impl Fn(&T, &T) -> Ordering,
) -> Vec<T> {
    let mut position: FxHashMap<usize, usize> =
        FxHashMap::with_capacity_and_hasher(items.len(), Default::default());
    for (i, item) in items.iter().enumerate() {
        position.entry(address(item)).or_insert(i);
    }
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut sorted: Vec<T> = previous
        .iter()
        .filter_map(|arc| position.get(&(Arc::as_ptr(arc) as *const () as usize)))
        .filter_map(|&i| slots[i].take())
        .collect();
    let mut fresh: Vec<T> = slots.into_iter().flatten().collect();
    if fresh.len() > sorted.len() / 8 {
        sorted.append(&mut fresh);
        sorted.sort_by(cmp);
        return sorted;
    }
    fresh.sort_by(&cmp);
    for item in fresh {
        let at = sorted.partition_point(|s| cmp(s, &item) != Ordering::Greater);
        sorted.insert(at, item);
    }
    sorted
}
