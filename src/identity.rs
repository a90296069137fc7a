//! A registry of shared state keyed by identity, alive while something uses it.
//!
//! Routing tables are rebuilt on every change, but some state must outlive a
//! rebuild (balancer counters, request counters). A table holds `Arc`s from a
//! registry; the registry holds `Weak`s, so state lives exactly as long as some
//! table still references it, and the next table gets the same `Arc` back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Shared state by key; only the compiler and the admin API use it, never the request path.
#[derive(Debug)]
pub struct WeakRegistry<K, V> {
    entries: Mutex<HashMap<K, Weak<V>>>,
}

impl<K, V> Default for WeakRegistry<K, V> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Clone, V> WeakRegistry<K, V> {
    /// The live value for `key`, or a new one made by `make` if no table holds it.
    pub fn get_or_insert_with(&self, key: &K, make: impl FnOnce() -> V) -> Arc<V> {
        let mut map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(live) = map.get(key).and_then(Weak::upgrade) {
            return live;
        }
        // Forget values no table uses any more, so the map does not grow forever.
        if map.len() > 64 && map.len().is_power_of_two() {
            map.retain(|_, weak| weak.strong_count() > 0);
        }
        let value = Arc::new(make());
        map.insert(key.clone(), Arc::downgrade(&value));
        value
    }

    /// Every value some table still uses, with its key.
    pub fn live(&self) -> Vec<(K, Arc<V>)> {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter_map(|(k, w)| w.upgrade().map(|v| (k.clone(), v)))
            .collect()
    }

    /// The live values whose key passes `keep` (no key is cloned).
    pub fn live_where(&self, keep: impl Fn(&K) -> bool) -> Vec<Arc<V>> {
        let map = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter(|(k, _)| keep(k))
            .filter_map(|(_, w)| w.upgrade())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_gives_same_value_while_held() {
        let reg: WeakRegistry<&str, u32> = WeakRegistry::default();
        let a = reg.get_or_insert_with(&"a", || 1);
        let again = reg.get_or_insert_with(&"a", || 2);
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(*again, 1);
    }

    #[test]
    fn dropped_value_is_made_anew() {
        let reg: WeakRegistry<&str, u32> = WeakRegistry::default();
        drop(reg.get_or_insert_with(&"a", || 1));
        let fresh = reg.get_or_insert_with(&"a", || 2);
        assert_eq!(*fresh, 2);
        assert_eq!(reg.live().len(), 1);
        drop(fresh);
        assert!(reg.live().is_empty());
    }
}
