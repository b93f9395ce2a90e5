//! Parsed query documents, kept by their text.
//!
//! Clients send the same few queries over and over (the widget's, the admin page's, an
//! integration's), and parsing one with async-graphql's grammar was 9% of the server's time on
//! a `sendMessage`. A request whose text was seen before gets the parsed document handed in;
//! the selection limits (`selection.rs`), async-graphql's directive limit and its validation
//! against the schema still run every time, so nothing is skipped but the parse. Only short
//! texts are kept, and the map is bounded: when full it is emptied and refilled by the next
//! requests, so a client sending ever new queries costs a parse each, as without the cache,
//! and no memory.

use std::panic::AssertUnwindSafe;

use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{BatchRequest, Request};

use crate::memo::Memo;

/// Longer texts are parsed every time (no client of ours sends one).
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Distinct query texts kept.
pub const CAPACITY: usize = 256;

pub struct ParsedQueries(Memo<String, ExecutableDocument>);

impl Default for ParsedQueries {
    fn default() -> Self {
        Self(Memo::with_capacity(CAPACITY))
    }
}

impl ParsedQueries {
    /// Hands every request of the batch its parsed document, from the cache or parsed now.
    /// A text that does not parse is left to async-graphql, which reports the error as usual.
    pub fn attach(&self, batch: &mut BatchRequest) {
        match batch {
            BatchRequest::Single(request) => self.attach_request(request),
            BatchRequest::Batch(requests) => {
                requests.iter_mut().for_each(|r| self.attach_request(r))
            }
        }
    }

    /// Hands the request its parsed document, from the cache or parsed now.
    pub fn attach_request(&self, request: &mut Request) {
        if request.query.len() > MAX_QUERY_BYTES {
            return;
        }
        if let Some(document) = self.0.get(request.query.as_str()) {
            request.set_parsed_query(document);
            return;
        }
        // Parsing has guards against deep nesting; a panic on some unforeseen input must still
        // not take the request down here, outside the executor's own catch.
        let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| {
            async_graphql::parser::parse_query(&request.query)
        }));
        if let Ok(Ok(document)) = parsed {
            self.0.insert(request.query.clone(), document.clone());
            request.set_parsed_query(document);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Apollo's automatic persisted queries: a client sends the SHA-256 of a query text first and
/// the text only when the server answers `PersistedQueryNotFound`. The store is bounded like
/// the parse memo (emptied when full; a client whose hash is gone just sends the text again),
/// and only short texts are kept, so it holds at most [`PERSISTED_CAPACITY`] ×
/// [`MAX_PERSISTED_BYTES`].
pub struct PersistedQueries(Memo<String, String>);

pub const PERSISTED_CAPACITY: usize = 512;
pub const MAX_PERSISTED_BYTES: usize = 16 * 1024;

impl Default for PersistedQueries {
    fn default() -> Self {
        Self(Memo::with_capacity(PERSISTED_CAPACITY))
    }
}

impl PersistedQueries {
    /// The lowercase hex SHA-256 of a query text, as APQ clients compute it.
    pub fn hash(query: &str) -> String {
        use sha2::Digest;
        crate::auth::visitor_token::hex(&sha2::Sha256::digest(query.as_bytes()))
    }

    pub fn get(&self, hash: &str) -> Option<String> {
        self.0.get(hash)
    }

    /// Keeps a text under its hash (the caller checked that they match).
    pub fn insert(&self, hash: String, query: &str) {
        if query.len() <= MAX_PERSISTED_BYTES {
            self.0.insert(hash, query.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(query: &str) -> BatchRequest {
        BatchRequest::Single(Request::new(query))
    }

    #[test]
    fn keeps_what_parses_and_leaves_the_rest_to_async_graphql() {
        let queries = ParsedQueries::default();
        let mut batch = single("{ uploadPolicy { maxFiles } }");
        queries.attach(&mut batch);
        assert_eq!(queries.len(), 1);
        let BatchRequest::Single(mut request) = batch else {
            unreachable!()
        };
        assert!(request.parsed_query().is_ok());

        // The same text again is served from the map, not stored twice.
        queries.attach(&mut single("{ uploadPolicy { maxFiles } }"));
        assert_eq!(queries.len(), 1);

        // A syntax error is not kept; async-graphql will parse and report it.
        queries.attach(&mut single("{ uploadPolicy { "));
        assert_eq!(queries.len(), 1);
        // Nor is a text over the size kept.
        let long = format!(
            "{{ uploadPolicy {{ maxFiles }} }} #{}",
            "x".repeat(MAX_QUERY_BYTES)
        );
        queries.attach(&mut single(&long));
        assert_eq!(queries.len(), 1);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let queries = ParsedQueries::default();
        for n in 0..CAPACITY * 2 + 1 {
            queries.attach(&mut single(&format!(
                "query Q{n} {{ uploadPolicy {{ maxFiles }} }}"
            )));
            assert!(queries.len() <= CAPACITY);
        }
        assert!(!queries.is_empty());
    }
}
