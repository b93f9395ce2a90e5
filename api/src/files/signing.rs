//! Signed, expiring download links: `Attachment.url` hands them to viewers who may see the chat,
//! so an `<img src>` or a download link works without an `Authorization` header.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::digest::{Key, KeyInit};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// How long a link handed out now stays valid, at least.
pub const URL_LIFETIME_SECONDS: i64 = 15 * 60;
/// Expiry times are rounded up to this step, so the same file gets the same URL for a few
/// minutes and browsers reuse their cached copy when clients poll (every 5-10 s) instead of
/// downloading every thumbnail again. A link thus lives 15 to 20 minutes.
const EXPIRY_STEP_SECONDS: i64 = 5 * 60;

/// Which stored object of an attachment a link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Original,
    Thumbnail,
}

impl Variant {
    fn as_str(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Thumbnail => "thumbnail",
        }
    }
}

#[derive(Clone)]
pub struct FileSigner {
    /// Keyed once; cloned per signature.
    keyed: HmacSha256,
}

impl std::fmt::Debug for FileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileSigner([redacted])")
    }
}

impl FileSigner {
    /// `secret` is the server's HMAC secret (`CHATDESK_JWT_SECRET`). The key for file links is
    /// derived from it under its own label, so a file signature can never be replayed as, or
    /// confused with, a JWT signature made with the same secret.
    pub fn new(secret: &[u8]) -> Self {
        let derived = Sha256::new()
            .chain_update(b"chatdesk file url v1\0")
            .chain_update(secret)
            .finalize();
        // HMAC pads a key shorter than the block with zeros, so this is the 32-byte key; built
        // from a fixed-size array it needs no fallible constructor.
        let mut key = Key::<HmacSha256>::default();
        key[..derived.len()].copy_from_slice(&derived);
        Self {
            keyed: <HmacSha256 as KeyInit>::new(&key),
        }
    }

    fn mac(&self, file_id: Uuid, variant: Variant, expires_at_unix: i64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(format!("{file_id}:{}:{expires_at_unix}", variant.as_str()).as_bytes());
        mac
    }

    /// Base64url (no padding) HMAC-SHA256 over `file_id:variant:exp`.
    pub fn sign(&self, file_id: Uuid, variant: Variant, expires_at_unix: i64) -> String {
        URL_SAFE_NO_PAD.encode(
            self.mac(file_id, variant, expires_at_unix)
                .finalize()
                .into_bytes(),
        )
    }

    /// Whether `signature` was made by [`Self::sign`] for exactly these values and `now` is
    /// before `expires_at_unix`. The comparison is constant-time.
    pub fn verify(
        &self,
        file_id: Uuid,
        variant: Variant,
        expires_at_unix: i64,
        signature: &str,
        now_unix: i64,
    ) -> bool {
        if now_unix >= expires_at_unix {
            return false;
        }
        let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        self.mac(file_id, variant, expires_at_unix)
            .verify_slice(&signature)
            .is_ok()
    }

    /// `{public_url}/api/chat/files/{id}[/thumbnail]?exp=…&sig=…`, valid for 15 to 20 minutes
    /// from `now_unix`.
    pub fn url(&self, public_url: &str, file_id: Uuid, variant: Variant, now_unix: i64) -> String {
        let earliest = now_unix + URL_LIFETIME_SECONDS;
        let expires = earliest
            + (EXPIRY_STEP_SECONDS - earliest.rem_euclid(EXPIRY_STEP_SECONDS))
                % EXPIRY_STEP_SECONDS;
        let suffix = match variant {
            Variant::Original => "",
            Variant::Thumbnail => "/thumbnail",
        };
        format!(
            "{}/api/chat/files/{file_id}{suffix}?exp={expires}&sig={}",
            public_url.trim_end_matches('/'),
            self.sign(file_id, variant, expires)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_123;

    fn signer() -> FileSigner {
        FileSigner::new(b"a test secret of reasonable length!!")
    }

    /// Splits a URL from [`FileSigner::url`] into (path, exp, sig).
    fn parse(url: &str) -> (String, i64, String) {
        let (path, query) = url.split_once('?').unwrap();
        let mut exp = None;
        let mut sig = None;
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("exp", value) => exp = Some(value.parse().unwrap()),
                ("sig", value) => sig = Some(value.to_owned()),
                _ => panic!("unexpected parameter in {url}"),
            }
        }
        (path.to_owned(), exp.unwrap(), sig.unwrap())
    }

    #[test]
    fn urls_round_trip_for_both_variants() {
        let id = Uuid::now_v7();
        let url = signer().url("https://chat.example.com/", id, Variant::Original, NOW);
        let (path, exp, sig) = parse(&url);
        assert_eq!(
            path,
            format!("https://chat.example.com/api/chat/files/{id}")
        );
        assert!(
            (NOW + 15 * 60..=NOW + 20 * 60).contains(&exp) && exp % 300 == 0,
            "{exp}"
        );
        assert_eq!(sig.len(), 43);
        assert!(signer().verify(id, Variant::Original, exp, &sig, NOW));
        assert!(signer().verify(id, Variant::Original, exp, &sig, exp - 1));

        let thumb = signer().url("http://127.0.0.1:8080", id, Variant::Thumbnail, NOW);
        let (path, exp, sig) = parse(&thumb);
        assert_eq!(
            path,
            format!("http://127.0.0.1:8080/api/chat/files/{id}/thumbnail")
        );
        assert!(signer().verify(id, Variant::Thumbnail, exp, &sig, NOW));
        // A thumbnail link does not open the original, nor the other way round.
        assert!(!signer().verify(id, Variant::Original, exp, &sig, NOW));
    }

    #[test]
    fn urls_are_stable_for_a_few_minutes() {
        let id = Uuid::now_v7();
        let s = signer();
        let base = NOW - NOW.rem_euclid(300); // at a step boundary
        assert_eq!(
            s.url("http://x", id, Variant::Original, base + 1),
            s.url("http://x", id, Variant::Original, base + 299)
        );
        assert_ne!(
            s.url("http://x", id, Variant::Original, base),
            s.url("http://x", id, Variant::Original, base + 1)
        );
    }

    #[test]
    fn tampering_and_expiry_are_refused() {
        let s = signer();
        let id = Uuid::now_v7();
        let exp = NOW + 900;
        let sig = s.sign(id, Variant::Original, exp);
        assert!(s.verify(id, Variant::Original, exp, &sig, NOW));

        assert!(
            !s.verify(Uuid::now_v7(), Variant::Original, exp, &sig, NOW),
            "another file"
        );
        assert!(
            !s.verify(id, Variant::Original, exp + 1, &sig, NOW),
            "a later expiry"
        );
        assert!(
            !s.verify(id, Variant::Original, exp, &sig, exp),
            "expired at exp"
        );
        assert!(
            !s.verify(id, Variant::Original, exp, &sig, exp + 3600),
            "long expired"
        );

        let mut flipped = sig.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(
            !s.verify(id, Variant::Original, exp, &flipped, NOW),
            "a changed signature"
        );
        assert!(
            !s.verify(id, Variant::Original, exp, &sig[..42], NOW),
            "a truncated signature"
        );
        assert!(
            !s.verify(id, Variant::Original, exp, "", NOW),
            "no signature"
        );
        assert!(!s.verify(id, Variant::Original, exp, "not base64 !!", NOW));

        let other_secret = FileSigner::new(b"another secret entirely..........");
        assert!(
            !other_secret.verify(id, Variant::Original, exp, &sig, NOW),
            "another server"
        );
    }

    #[test]
    fn the_secret_does_not_print() {
        assert_eq!(format!("{:?}", signer()), "FileSigner([redacted])");
    }
}
