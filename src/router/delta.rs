//! What changed between two snapshots' lists of one kind, by object identity:
//! the store gives an unchanged object the same `Arc`, so a compile that
//! starts from the last one needs only the objects that came and went.

use std::sync::Arc;

use rustc_hash::FxHashSet;

/// The objects of `new` that `old` did not hold (`added`) and those of `old`
/// that `new` no longer holds (`removed`), compared by address.
#[derive(Debug)]
pub(super) struct Delta<'n, T> {
    /// In `new`, not in `old`.
    pub added: Vec<&'n Arc<T>>,
    /// In `old`, not in `new`.
    pub removed: Vec<Arc<T>>,
}

/// An object's address: what tells objects apart from one compile to the next.
pub(super) fn address<T>(arc: &Arc<T>) -> usize {
    Arc::as_ptr(arc) as *const () as usize
}

/// Above this many (added x removed) pairs, equal objects under new `Arc`s
/// are not looked for: they count as changed (never wrong, only slower).
const EQUAL_PAIRS_CHECKED: usize = 4_096;

/// The delta from `old` to `new`. Lists keep their order from snapshot to
/// snapshot (the store lists objects by file), so the common prefix and
/// suffix are skipped by comparing addresses and only the part between is
/// hashed: a change costs its own size, plus one pass of pointer compares.
/// An object replaced by an equal one (re-read, not changed) is neither
/// added nor removed, when the delta is small.
pub(super) fn delta<'n, T: PartialEq>(old: &[Arc<T>], new: &'n [Arc<T>]) -> Delta<'n, T> {
    let mut delta = by_address(old, new);
    if delta.added.len() * delta.removed.len() <= EQUAL_PAIRS_CHECKED {
        delta.removed.retain(
            |gone| match delta.added.iter().position(|came| ***came == **gone) {
                Some(at) => {
                    delta.added.swap_remove(at);
                    false
                }
                None => true,
            },
        );
    }
    delta
}

/// [`delta`] by address alone: an object replaced by an equal one is both
/// removed and added (for lists whose objects are looked up by address later).
pub(super) fn by_address<'n, T>(old: &[Arc<T>], new: &'n [Arc<T>]) -> Delta<'n, T> {
    let prefix = old
        .iter()
        .zip(new)
        .take_while(|(a, b)| Arc::ptr_eq(a, b))
        .count();
    let (old, new) = (&old[prefix..], &new[prefix..]);
    let suffix = old
        .iter()
        .rev()
        .zip(new.iter().rev())
        .take_while(|(a, b)| Arc::ptr_eq(a, b))
        .count();
    let (old, new) = (&old[..old.len() - suffix], &new[..new.len() - suffix]);
    if old.is_empty() || new.is_empty() {
        return Delta {
            added: new.iter().collect(),
            removed: old.to_vec(),
        };
    }
    let before: FxHashSet<usize> = old.iter().map(address).collect();
    let after: FxHashSet<usize> = new.iter().map(address).collect();
    Delta {
        added: new
            .iter()
            .filter(|arc| !before.contains(&address(arc)))
            .collect(),
        removed: old
            .iter()
            .filter(|arc| !after.contains(&address(arc)))
            .cloned()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses<T>(list: &[&Arc<T>]) -> Vec<usize> {
        list.iter().map(|a| address(a)).collect()
    }

    #[test]
    fn finds_what_came_and_went_anywhere_in_the_lists() {
        let objects: Vec<Arc<u32>> = (0..8).map(Arc::new).collect();
        let old = objects[..6].to_vec();
        // 2 removed, 6 and 7 added (one in the middle, one at the end), 4
        // replaced by another object.
        let four_again = Arc::new(40);
        let new = vec![
            objects[0].clone(),
            objects[1].clone(),
            objects[6].clone(),
            objects[3].clone(),
            four_again.clone(),
            objects[5].clone(),
            objects[7].clone(),
        ];
        let d = delta(&old, &new);
        assert_eq!(
            addresses(&d.added),
            addresses(&[&objects[6], &four_again, &objects[7]])
        );
        let removed: Vec<&Arc<u32>> = d.removed.iter().collect();
        assert_eq!(addresses(&removed), addresses(&[&objects[2], &objects[4]]));
    }

    fn is_empty<T>(d: &Delta<'_, T>) -> bool {
        d.added.is_empty() && d.removed.is_empty()
    }

    #[test]
    fn equal_lists_have_an_empty_delta_and_one_sided_ones_all_of_it() {
        let objects: Vec<Arc<u32>> = (0..4).map(Arc::new).collect();
        assert!(is_empty(&delta(&objects, &objects)));
        let d = delta(&[], &objects);
        assert_eq!(d.added.len(), 4);
        assert!(d.removed.is_empty());
        let d = delta(&objects, &[]);
        assert_eq!(d.removed.len(), 4);
        assert!(d.added.is_empty());
        // A moved object (same address) is neither added nor removed, and
        // nor is one replaced by an equal object.
        let again: Vec<Arc<u32>> = (0..4).map(Arc::new).collect();
        assert!(is_empty(&delta(&objects, &again)));
        let moved = vec![
            objects[3].clone(),
            objects[0].clone(),
            objects[1].clone(),
            objects[2].clone(),
        ];
        assert!(is_empty(&delta(&objects, &moved)));
    }
}
