//! argon2id password hashing. Both directions are CPU-heavy, so they run on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

use crate::error::{Error, Result};

pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| Error::internal(anyhow::anyhow!("argon2: {error}")))
    })
    .await
    .map_err(Error::internal)?
}

/// False for a wrong password or an unreadable stored hash.
pub async fn verify(password: String, stored_hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored_hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .map_err(Error::internal)
}

/// Passwords shorter than this are refused when an admin is created or changes password.
pub const MIN_LENGTH: usize = 12;
/// zxcvbn's score (0-4) a password must reach: 3 is "safely unguessable: moderate protection
/// from an offline slow-hash scenario" (10^8 guesses and more).
pub const MIN_SCORE: u8 = 3;

/// Refuses short, common and guessable passwords, saying why. `related` are words the password
/// must not lean on (the admin's email and name).
pub fn check_strength(password: &str, related: &[&str]) -> Result<()> {
    if password.chars().count() < MIN_LENGTH {
        return Err(Error::bad_input(format!(
            "a password needs at least {MIN_LENGTH} characters"
        )));
    }
    let estimate = zxcvbn::zxcvbn(password, related);
    if u8::from(estimate.score()) < MIN_SCORE {
        let why = estimate
            .feedback()
            .and_then(|feedback| feedback.warning())
            .map(|warning| format!(" ({warning})"))
            .unwrap_or_default();
        return Err(Error::bad_input(format!(
            "this password is too easy to guess{why}: add more words or characters that are not a common pattern"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hash = hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify("correct horse".into(), hash.clone()).await.unwrap());
        assert!(!verify("wrong".into(), hash).await.unwrap());
        assert!(!verify("x".into(), "not a hash".into()).await.unwrap());
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for weak in [
            "password",
            "12345678",
            "        ",
            "            ",
            "password1234",
            "qwertyuiopas",
            "aaaaaaaaaaaaaaaa",
            "abcdefghijklmnop",
        ] {
            let error = check_strength(weak, &[]).expect_err(weak);
            assert_eq!(error.code(), "BAD_USER_INPUT", "{weak:?}");
        }
        let error = check_strength("password1234", &[]).unwrap_err().message();
        assert!(error.contains("too easy to guess"), "{error}");
        // Leaning on the admin's own email is guessable too.
        assert!(check_strength("ada.lovelace@example.com", &["ada.lovelace@example.com"]).is_err());
    }

    #[test]
    fn strong_passwords_pass() {
        for strong in [
            "correct horse battery staple",
            "vX9#mq2!Lr7@pZ",
            "tangerine-orbit-77-velvet",
        ] {
            check_strength(strong, &[]).unwrap_or_else(|e| panic!("{strong}: {}", e.message()));
        }
    }
}
