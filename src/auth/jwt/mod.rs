//! Access tokens: JWTs signed with HS256 by one of the cluster's signing keys.
//!
//! Owns the token format, [`issue`] and [`verify`]. The algorithm is pinned here, never
//! taken from a token header; the header's `kid` selects the key among those the caller
//! passes in (the controller keeps and rotates them). Time is an argument (`now_s`, Unix
//! seconds) and revocation is a callback, so this module holds no state and reads no clock
//! during verification.
//!
//! Token layout (all parts base64url without padding, joined by `.`):
//! - header: `{"typ":"JWT","alg":"HS256","kid":"<key id>"}`
//! - claims: `{"sub","iss","aud","exp","nbf","iat","jti","gen"}`; `aud` is one string; times
//!   are Unix seconds; `jti` is 32 hex characters of randomness; `gen` is the user's token
//!   generation when the token was issued (the caller compares it with the user's current one,
//!   so a password change, a revoke-all or a re-created user ends every earlier token).
//!
//! A token lives at most `ttl_s` (`exp - iat`), whoever signed it: a token with a longer
//! lifetime is refused even with a valid signature.

mod verify;

use std::fmt;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::names::{self, NameKind};

pub use verify::{verify, TokenError};

/// The one signing algorithm accepted and produced.
pub const ALGORITHM: Algorithm = Algorithm::HS256;
/// Shortest secret a signing key may have (the HS256 output size).
pub const SECRET_BYTES_MIN: usize = 32;
/// Longest key id.
pub const KID_CHARACTERS_MAX: usize = 64;
/// Random bytes in a token id (`jti`).
const JTI_BYTES: usize = 16;

/// A cluster signing key. Serialized with the secret as hex; `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// Names the key in token headers; unique among live keys.
    pub kid: String,
    /// At least [`SECRET_BYTES_MIN`] random bytes; keys with shorter secrets are never used.
    #[serde(with = "hex_bytes")]
    pub secret: Vec<u8>,
    /// When the key was generated (Unix milliseconds); the newest key signs new tokens.
    pub created_ms: u64,
    /// Set when a newer key replaced this one: the key verifies tokens until then (Unix
    /// milliseconds, the longest token lifetime after the rotation) and is then removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_until_ms: Option<u64>,
}

impl SigningKey {
    /// A new key with a 32-byte secret from the operating system's random source, made at
    /// `created_ms` (Unix milliseconds).
    pub fn generate(kid: &str, created_ms: u64) -> Result<SigningKey, AuthError> {
        validate_kid(kid)?;
        let mut secret = vec![0u8; SECRET_BYTES_MIN];
        rand::rng().fill_bytes(&mut secret);
        Ok(SigningKey {
            kid: kid.to_string(),
            secret,
            created_ms,
            verify_until_ms: None,
        })
    }

    /// Whether this key may sign or verify: a valid id and a long enough secret.
    pub fn check(&self) -> Result<(), AuthError> {
        validate_kid(&self.kid)?;
        if self.secret.len() < SECRET_BYTES_MIN {
            return Err(AuthError::WeakKey {
                kid: self.kid.clone(),
                bytes: self.secret.len(),
                bytes_min: SECRET_BYTES_MIN,
            });
        }
        Ok(())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("created_ms", &self.created_ms)
            .field("verify_until_ms", &self.verify_until_ms)
            .finish()
    }
}

fn validate_kid(kid: &str) -> Result<(), AuthError> {
    let valid = !kid.is_empty()
        && kid.len() <= KID_CHARACTERS_MAX
        && names::validate(NameKind::User, kid).is_ok();
    if valid {
        Ok(())
    } else {
        Err(AuthError::BadKeyId {
            kid: kid.chars().take(KID_CHARACTERS_MAX + 1).collect(),
        })
    }
}

/// What tokens are issued for and accepted from; built from the `[auth]` config section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    /// Expected and issued `iss`.
    pub issuer: String,
    /// Expected and issued `aud`.
    pub audience: String,
    /// Lifetime of an issued token, and the longest lifetime (`exp - iat`) accepted.
    pub ttl_s: u64,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway_s: u64,
    /// Longer tokens are rejected before any parsing.
    pub token_bytes_max: usize,
}

/// The claims of a valid token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Not valid before, Unix seconds.
    pub nbf: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Token id; revocation lists hold these until `exp` plus the leeway.
    pub jti: String,
    /// The user's token generation at issue; a token of an earlier generation is refused.
    pub gen: u64,
}

/// A freshly issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// The compact JWT to hand to the client.
    pub token: String,
    pub jti: String,
    /// Same as the token's `exp`.
    pub expires_at_s: u64,
}

/// The subject of a token to issue: a user name and that user's current token generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub name: &'a str,
    pub generation: u64,
}

/// Issues a token for `subject`, valid from `now_s` for `settings.ttl_s`.
pub fn issue(
    settings: &TokenSettings,
    key: &SigningKey,
    subject: Subject<'_>,
    now_s: u64,
) -> Result<IssuedToken, AuthError> {
    let Subject {
        name: subject,
        generation,
    } = subject;
    key.check()?;
    names::validate(NameKind::User, subject)?;
    if settings.ttl_s == 0 {
        return Err(AuthError::BadSettings("ttl_s must be at least 1"));
    }
    let mut jti_bytes = [0u8; JTI_BYTES];
    rand::rng().fill_bytes(&mut jti_bytes);
    let expires_at_s = now_s.saturating_add(settings.ttl_s);
    let claims = Claims {
        sub: subject.to_string(),
        iss: settings.issuer.clone(),
        aud: settings.audience.clone(),
        exp: expires_at_s,
        nbf: now_s,
        iat: now_s,
        jti: hex::encode(jti_bytes),
        gen: generation,
    };
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(key.kid.clone());
    let encoding_key = EncodingKey::from_secret(&key.secret)
        .map_err(|error| AuthError::Signing(error.to_string()))?;
    let token = jsonwebtoken::encode(&header, &claims, &encoding_key)
        .map_err(|error| AuthError::Signing(error.to_string()))?;
    if token.len() > settings.token_bytes_max {
        return Err(AuthError::TokenTooLarge {
            bytes: token.len(),
            bytes_max: settings.token_bytes_max,
        });
    }
    Ok(IssuedToken {
        token,
        jti: claims.jti,
        expires_at_s,
    })
}

/// The key that signs new tokens: the newest valid one not yet replaced (ties broken by the
/// larger `kid`).
pub fn current_key(keys: &[SigningKey]) -> Option<&SigningKey> {
    keys.iter()
        .filter(|key| key.check().is_ok() && key.verify_until_ms.is_none())
        .max_by(|left, right| (left.created_ms, &left.kid).cmp(&(right.created_ms, &right.kid)))
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_valid_distinct_and_round_trip_as_json() {
        let first = SigningKey::generate("k1", 0).unwrap();
        let second = SigningKey::generate("k2", 0).unwrap();
        assert_eq!(first.secret.len(), SECRET_BYTES_MIN);
        assert_ne!(first.secret, second.secret);
        let json = serde_json::to_string(&first).unwrap();
        assert!(json.contains(&hex::encode(&first.secret)));
        let back: SigningKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back, first);
        let debug = format!("{first:?}");
        assert!(!debug.contains(&hex::encode(&first.secret)), "{debug}");
    }

    #[test]
    fn bad_key_ids_and_short_secrets_are_refused() {
        assert!(SigningKey::generate("", 0).is_err());
        assert!(SigningKey::generate("a/b", 0).is_err());
        assert!(SigningKey::generate(&"k".repeat(65), 0).is_err());
        let mut key = SigningKey::generate("k", 0).unwrap();
        key.secret.truncate(31);
        assert!(matches!(
            key.check(),
            Err(AuthError::WeakKey { bytes: 31, .. })
        ));
    }

    #[test]
    fn current_key_is_the_newest_valid_one() {
        let old = SigningKey::generate("old", 1).unwrap();
        let new = SigningKey::generate("new", 2).unwrap();
        let mut newest_but_weak = SigningKey::generate("weak", 3).unwrap();
        newest_but_weak.secret.truncate(8);
        let keys = [old, new, newest_but_weak];
        assert_eq!(current_key(&keys).map(|key| key.kid.as_str()), Some("new"));
        assert!(current_key(&[]).is_none());
    }
}
