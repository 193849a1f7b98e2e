//! Token verification, in an order that never trusts unauthenticated input further than
//! needed: size, shape, header (algorithm pinned, `kid` required and known), signature,
//! then claims (`exp`, `nbf`, `iat` with leeway; lifetime; `iss`, `aud`, `sub`, `jti`, `gen`)
//! and revocation.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

use super::{Claims, SigningKey, TokenSettings, ALGORITHM};
use crate::names::{self, NameKind};

/// Why a token was refused. Every variant means "401"; the reason is for logs and audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is {bytes} bytes long; at most {bytes_max} are accepted")]
    TooLarge { bytes: usize, bytes_max: usize },
    #[error("token is malformed: {0}")]
    Malformed(&'static str),
    #[error("token algorithm {alg:?} is not allowed; only HS256 is accepted")]
    AlgorithmNotAllowed { alg: String },
    #[error("token header has no kid")]
    MissingKeyId,
    #[error("token names unknown signing key {kid:?}")]
    UnknownKey { kid: String },
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has no {0} claim")]
    MissingClaim(&'static str),
    #[error("token expired at {exp}")]
    Expired { exp: u64 },
    #[error("token is not valid before {nbf}")]
    NotYetValid { nbf: u64 },
    #[error("token was issued in the future, at {iat}")]
    IssuedInFuture { iat: u64 },
    #[error("token lifetime of {lifetime_s} s is longer than the {lifetime_max_s} s allowed")]
    LifetimeTooLong {
        lifetime_s: u64,
        lifetime_max_s: u64,
    },
    #[error("token's signing key {kid:?} was retired and no longer verifies")]
    RetiredKey { kid: String },
    #[error("token issuer is wrong")]
    WrongIssuer,
    #[error("token audience is wrong")]
    WrongAudience,
    #[error("token subject is not a valid user name")]
    BadSubject,
    #[error("token has been revoked")]
    Revoked,
}

/// The header fields read before the signature is checked. Unknown fields are ignored,
/// except `crit`, which names extensions this verifier would have to understand.
#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde_json::Value>,
}

/// The claims as sent, each optional so a missing one is reported by name.
#[derive(Deserialize)]
struct RawClaims {
    sub: Option<String>,
    iss: Option<String>,
    aud: Option<String>,
    exp: Option<u64>,
    nbf: Option<u64>,
    iat: Option<u64>,
    jti: Option<String>,
    gen: Option<u64>,
}

/// Verifies `token` at time `now_s` against `keys`; `is_revoked` is asked about the `jti`
/// only after the signature and all other claims passed.
pub fn verify(
    settings: &TokenSettings,
    keys: &[SigningKey],
    token: &str,
    now_s: u64,
    is_revoked: &dyn Fn(&str) -> bool,
) -> Result<Claims, TokenError> {
    if token.len() > settings.token_bytes_max {
        return Err(TokenError::TooLarge {
            bytes: token.len(),
            bytes_max: settings.token_bytes_max,
        });
    }
    let mut parts = token.split('.');
    let (Some(header_part), Some(claims_part), Some(signature_part), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three parts separated by '.'",
        ));
    };
    let key = select_key(keys, header_part)?;
    if key
        .verify_until_ms
        .is_some_and(|until_ms| now_s.saturating_mul(1000) >= until_ms)
    {
        return Err(TokenError::RetiredKey {
            kid: key.kid.clone(),
        });
    }
    let signed_bytes = &token.as_bytes()[..header_part.len() + 1 + claims_part.len()];
    check_signature(key, signed_bytes, signature_part)?;
    let raw: RawClaims = decode_json(claims_part, Part::Claims)?;
    let claims = require_claims(raw)?;
    check_claims(settings, &claims, now_s)?;
    if is_revoked(&claims.jti) {
        return Err(TokenError::Revoked);
    }
    Ok(claims)
}

/// Reads the header and returns the key its `kid` names; the algorithm must be HS256.
fn select_key<'k>(keys: &'k [SigningKey], header_part: &str) -> Result<&'k SigningKey, TokenError> {
    let header: RawHeader = decode_json(header_part, Part::Header)?;
    match header.alg.as_deref() {
        Some("HS256") => {}
        Some(other) => {
            return Err(TokenError::AlgorithmNotAllowed {
                alg: other.chars().take(32).collect(),
            })
        }
        None => return Err(TokenError::Malformed("header has no alg")),
    }
    if header.typ.as_deref().is_some_and(|typ| typ != "JWT") {
        return Err(TokenError::Malformed("header typ is not JWT"));
    }
    if header.crit.is_some() {
        return Err(TokenError::Malformed(
            "header crit extensions are not supported",
        ));
    }
    let kid = header.kid.ok_or(TokenError::MissingKeyId)?;
    keys.iter()
        .find(|key| key.kid == kid && key.check().is_ok())
        .ok_or_else(|| TokenError::UnknownKey {
            kid: kid.chars().take(64).collect(),
        })
}

fn check_signature(
    key: &SigningKey,
    signed_bytes: &[u8],
    signature_part: &str,
) -> Result<(), TokenError> {
    if URL_SAFE_NO_PAD.decode(signature_part).is_err() {
        return Err(TokenError::Malformed("signature is not base64url"));
    }
    let decoding_key =
        DecodingKey::from_secret(&key.secret).map_err(|_| TokenError::UnknownKey {
            kid: key.kid.clone(),
        })?;
    match jsonwebtoken::crypto::verify(signature_part, signed_bytes, &decoding_key, ALGORITHM) {
        Ok(true) => Ok(()),
        Ok(false) => Err(TokenError::BadSignature),
        Err(_) => Err(TokenError::Malformed("signature is not base64url")),
    }
}

/// Which part of the token is being decoded, for the error message.
#[derive(Clone, Copy)]
enum Part {
    Header,
    Claims,
}

fn decode_json<T: for<'de> Deserialize<'de>>(text: &str, part: Part) -> Result<T, TokenError> {
    let (not_base64, not_json) = match part {
        Part::Header => (
            "header is not base64url",
            "header is not a JSON object of the expected shape",
        ),
        Part::Claims => (
            "claims are not base64url",
            "claims are not a JSON object of the expected shape",
        ),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| TokenError::Malformed(not_base64))?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed(not_json))
}

fn require_claims(raw: RawClaims) -> Result<Claims, TokenError> {
    Ok(Claims {
        sub: raw.sub.ok_or(TokenError::MissingClaim("sub"))?,
        iss: raw.iss.ok_or(TokenError::MissingClaim("iss"))?,
        aud: raw.aud.ok_or(TokenError::MissingClaim("aud"))?,
        exp: raw.exp.ok_or(TokenError::MissingClaim("exp"))?,
        nbf: raw.nbf.ok_or(TokenError::MissingClaim("nbf"))?,
        iat: raw.iat.ok_or(TokenError::MissingClaim("iat"))?,
        jti: raw.jti.ok_or(TokenError::MissingClaim("jti"))?,
        gen: raw.gen.ok_or(TokenError::MissingClaim("gen"))?,
    })
}

fn check_claims(settings: &TokenSettings, claims: &Claims, now_s: u64) -> Result<(), TokenError> {
    let leeway_s = settings.leeway_s;
    // RFC 7519: the token is valid while now < exp (here: now < exp + leeway).
    if now_s >= claims.exp.saturating_add(leeway_s) {
        return Err(TokenError::Expired { exp: claims.exp });
    }
    if claims.nbf > now_s.saturating_add(leeway_s) {
        return Err(TokenError::NotYetValid { nbf: claims.nbf });
    }
    if claims.iat > now_s.saturating_add(leeway_s) {
        return Err(TokenError::IssuedInFuture { iat: claims.iat });
    }
    // Whoever holds a key cannot mint a token that outlives the configured lifetime.
    let lifetime_s = claims.exp.saturating_sub(claims.iat);
    if lifetime_s > settings.ttl_s {
        return Err(TokenError::LifetimeTooLong {
            lifetime_s,
            lifetime_max_s: settings.ttl_s,
        });
    }
    if claims.iss != settings.issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != settings.audience {
        return Err(TokenError::WrongAudience);
    }
    if names::validate(NameKind::User, &claims.sub).is_err() {
        return Err(TokenError::BadSubject);
    }
    if claims.jti.is_empty() || claims.jti.len() > 128 {
        return Err(TokenError::Malformed("jti must be 1 to 128 characters"));
    }
    Ok(())
}
