//! Which chat a visitor token opens, remembered after the database first confirmed it.
//!
//! Every visitor request starts by turning its token into a chat id; without this memo that is
//! one more database round trip on every send, poll and history read. A token is bound to its
//! chat for life (the service never re-keys a chat), so a remembered answer goes stale only
//! when the chat is erased: then every instance forgets it on the `ChatDeleted` notice (see
//! `service::erasure`), and the instance that erased it at once. Only confirmed tokens are
//! remembered, so made-up tokens cannot fill it.

use uuid::Uuid;

use crate::memo::Memo;

/// About 64 bytes an entry: 100,000 visitors fit in ~6 MiB.
pub const CAPACITY: usize = 100_000;

/// The chat of each confirmed token, by the token's SHA-256.
pub struct VisitorChats(Memo<[u8; 32], Uuid>);

impl Default for VisitorChats {
    fn default() -> Self {
        Self(Memo::with_capacity(CAPACITY))
    }
}

impl VisitorChats {
    pub fn get(&self, token_hash: &[u8; 32]) -> Option<Uuid> {
        self.0.get(token_hash)
    }

    /// Forgets every token of an erased chat.
    pub fn forget_chat(&self, chat_id: Uuid) {
        self.0.retain(|_, remembered| *remembered != chat_id);
    }

    /// Forgets everything (erasure notices may have been missed).
    pub fn forget_all(&self) {
        self.0.retain(|_, _| false);
    }

    /// Remembers a token the database confirmed.
    pub fn remember(&self, token_hash: [u8; 32], chat_id: Uuid) {
        self.0.insert(token_hash, chat_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_erased_chat_is_forgotten_and_only_it() {
        let chats = VisitorChats::default();
        let (erased, kept) = (Uuid::now_v7(), Uuid::now_v7());
        chats.remember([1; 32], erased);
        chats.remember([2; 32], erased);
        chats.remember([3; 32], kept);
        chats.forget_chat(erased);
        assert_eq!(chats.get(&[1; 32]), None);
        assert_eq!(chats.get(&[2; 32]), None);
        assert_eq!(chats.get(&[3; 32]), Some(kept));
        chats.forget_all();
        assert_eq!(chats.get(&[3; 32]), None);
    }
}
