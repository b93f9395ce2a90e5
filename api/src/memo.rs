//! A bounded memo: when full it is emptied, and the next look-ups fill it again. No eviction
//! order to keep: the right shape for what is true for ever once known (which chat a visitor
//! token opens, what a query text parses to), where the bound only keeps a client from filling
//! memory. What can change (an admin's row) is stored with its time and removed on change.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

pub struct Memo<K, V> {
    entries: RwLock<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(key)
            .cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, value);
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(key);
    }

    /// Drops the entries `keep` says no to (a rare, whole-memo pass).
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|key, value| keep(key, value));
    }

    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_what_it_was_told() {
        let memo = Memo::with_capacity(10);
        assert_eq!(memo.get("a"), None);
        memo.insert("a".to_owned(), 1);
        assert_eq!(memo.get("a"), Some(1));
        assert_eq!(memo.get("b"), None);
    }

    #[test]
    fn never_grows_past_its_capacity() {
        let memo = Memo::with_capacity(3);
        for n in 0..10 {
            memo.insert(n, n * 2);
            assert!(memo.len() <= 3, "{} entries", memo.len());
        }
        // The newest is always there after a refill.
        assert_eq!(memo.get(&9), Some(18));
    }
}
