//! Admin JWTs: HS256, `sub` = admin id, `iat` and `exp` (12 h). The same secret signs file URLs.

use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};

pub const LIFETIME: Duration = Duration::hours(12);

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    /// Seconds since the epoch; compared with the admin's `password_changed_at`.
    pub iat: i64,
    pub exp: i64,
    /// The admin's `password_changed_at` in microseconds when the token was issued.
    pub pwv: i64,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    pub fn issue(
        &self,
        admin_id: Uuid,
        password_changed_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>)> {
        let expires_at = now + LIFETIME;
        let claims = Claims {
            sub: admin_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            pwv: password_changed_at.timestamp_micros(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(Error::internal)?;
        Ok((token, expires_at))
    }

    /// The claims of a token signed by us and not expired; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let keys = JwtKeys::new(b"a secret of reasonable length!!");
        let id = Uuid::now_v7();
        let (token, expires_at) = keys.issue(id, Utc::now(), Utc::now()).unwrap();
        assert!(expires_at > Utc::now() + Duration::hours(11));
        assert_eq!(keys.verify(&token).unwrap().sub, id);

        let other = JwtKeys::new(b"another secret entirely.........");
        assert!(other.verify(&token).is_none());

        let (expired, _) = keys
            .issue(id, Utc::now(), Utc::now() - Duration::hours(13))
            .unwrap();
        assert!(keys.verify(&expired).is_none());
        assert!(keys.verify("garbage").is_none());
    }
}
