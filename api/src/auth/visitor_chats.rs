//! Which chat a visitor token opens, remembered after the database first confirmed it.
//!
//! Every visitor request starts by turning its token into a chat id; without this memo that is
//! one more database round trip on every send, poll and history read. A token is bound to its
//! chat for life (the service never re-keys or deletes a chat), so a remembered answer cannot
//! go stale, on this instance or on another one. Only confirmed tokens are remembered, so
//! made-up tokens cannot fill the map, and the map is bounded: when full, it is emptied and the
//! next look-ups refill it.

use std::collections::HashMap;
use std::sync::RwLock;

use uuid::Uuid;

/// About 64 bytes an entry: 100,000 visitors fit in ~6 MiB.
pub const DEFAULT_CAPACITY: usize = 100_000;

pub struct VisitorChats {
    by_token_hash: RwLock<HashMap<[u8; 32], Uuid>>,
    capacity: usize,
}

impl Default for VisitorChats {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl VisitorChats {
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            by_token_hash: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, token_hash: &[u8; 32]) -> Option<Uuid> {
        let map = self
            .by_token_hash
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(token_hash).copied()
    }

    /// Remembers a token the database confirmed.
    pub fn remember(&self, token_hash: [u8; 32], chat_id: Uuid) {
        let mut map = self
            .by_token_hash
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(token_hash, chat_id);
    }

    pub fn len(&self) -> usize {
        self.by_token_hash
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
    fn remembers_confirmed_tokens() {
        let chats = VisitorChats::default();
        let chat = Uuid::now_v7();
        assert_eq!(chats.get(&[1; 32]), None);
        chats.remember([1; 32], chat);
        assert_eq!(chats.get(&[1; 32]), Some(chat));
        assert_eq!(chats.get(&[2; 32]), None);
    }

    #[test]
    fn never_grows_past_its_capacity() {
        let chats = VisitorChats::with_capacity(3);
        for n in 0..10u8 {
            chats.remember([n; 32], Uuid::now_v7());
            assert!(chats.len() <= 3, "{} entries", chats.len());
        }
        // The newest is always there after a refill.
        assert!(chats.get(&[9; 32]).is_some());
    }
}
