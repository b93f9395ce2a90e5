//! Visitor tokens: `vt_` + 43 base64url characters (256 random bits). Only the SHA-256 of a
//! token is stored, so a database leak does not hand out chats.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngExt;
use sha2::{Digest, Sha256};

const PREFIX: &str = "vt_";

/// A fresh token and the hash to store for it.
pub fn generate() -> (String, String) {
    let bytes: [u8; 32] = rand::rng().random();
    let token = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hash(&token);
    (token, hash)
}

/// Whether a bearer credential has the shape of a visitor token (rather than a JWT).
pub fn looks_like_visitor_token(credential: &str) -> bool {
    credential.len() == PREFIX.len() + 43
        && credential.starts_with(PREFIX)
        && credential[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Lower-case hex SHA-256, the form stored in `chats.chat_token_hash`.
pub fn hash(token: &str) -> String {
    hex(&digest(token))
}

/// The SHA-256 of a token, as bytes.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_documented_shape_and_are_unique() {
        let (a, hash_a) = generate();
        let (b, _) = generate();
        assert_ne!(a, b);
        assert!(looks_like_visitor_token(&a), "{a}");
        assert_eq!(a.len(), 46);
        assert_eq!(hash_a.len(), 64);
        assert_eq!(hash(&a), hash_a);
    }

    #[test]
    fn other_strings_are_not_visitor_tokens() {
        assert!(!looks_like_visitor_token("eyJhbGciOiJIUzI1NiJ9.e30.sig"));
        assert!(!looks_like_visitor_token("vt_short"));
        assert!(!looks_like_visitor_token(&format!("vt_{}", "!".repeat(43))));
    }
}
