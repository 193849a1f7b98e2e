//! Access tokens through the public API: issue and verify, then a catalogue of forged and
//! invalid tokens, each of which must be refused for the stated reason.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use palisade::auth::jwt::{self, Claims, SigningKey, TokenError, TokenSettings};
use serde_json::{json, Value};

const NOW_S: u64 = 1_764_400_000;

fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "palisade".into(),
        audience: "palisade".into(),
        ttl_s: 3600,
        leeway_s: 30,
        token_bytes_max: 8192,
    }
}

fn key(kid: &str) -> SigningKey {
    SigningKey::generate(kid, NOW_S * 1000).expect("valid kid")
}

fn subject(name: &str) -> jwt::Subject<'_> {
    jwt::Subject {
        name,
        generation: 7,
    }
}

fn never_revoked(_: &str) -> bool {
    false
}

fn encode_part(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// Signs `header.claims` with `secret` using `algorithm`, as an attacker holding the
/// secret (or guessing it) would.
fn craft(header: &Value, claims: &Value, secret: &[u8], algorithm: Algorithm) -> String {
    let message = format!("{}.{}", encode_part(header), encode_part(claims));
    let key = EncodingKey::from_secret(secret).unwrap();
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, algorithm).unwrap();
    format!("{message}.{signature}")
}

/// Signs an arbitrary message, so claims checks can be reached with malformed claims.
fn sign_raw(message: &str, secret: &[u8]) -> String {
    let key = EncodingKey::from_secret(secret).unwrap();
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::HS256).unwrap();
    format!("{message}.{signature}")
}

fn good_header(kid: &str) -> Value {
    json!({"typ": "JWT", "alg": "HS256", "kid": kid})
}

fn good_claims() -> Value {
    json!({
        "sub": "alice", "iss": "palisade", "aud": "palisade",
        "exp": NOW_S + 3600, "nbf": NOW_S, "iat": NOW_S, "jti": "0123456789abcdef", "gen": 1
    })
}

fn with_claim(name: &str, value: Value) -> Value {
    let mut claims = good_claims();
    claims[name] = value;
    claims
}

fn without_claim(name: &str) -> Value {
    let mut claims = good_claims();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

fn check(keys: &[SigningKey], token: &str) -> Result<Claims, TokenError> {
    jwt::verify(&settings(), keys, token, NOW_S, &never_revoked)
}

#[test]
fn issued_token_verifies_with_its_claims() {
    let signing = key("k1");
    let issued = jwt::issue(&settings(), &signing, subject("alice"), NOW_S).unwrap();
    assert_eq!(issued.expires_at_s, NOW_S + 3600);
    assert_eq!(issued.jti.len(), 32);
    let claims = check(&[key("other"), signing.clone()], &issued.token).unwrap();
    assert_eq!(
        claims,
        Claims {
            sub: "alice".into(),
            iss: "palisade".into(),
            aud: "palisade".into(),
            exp: NOW_S + 3600,
            nbf: NOW_S,
            iat: NOW_S,
            jti: issued.jti.clone(),
            gen: 7,
        }
    );
    // A crafted token with the right key and claims is the positive control for `craft`.
    let crafted = craft(
        &good_header("k1"),
        &good_claims(),
        &signing.secret,
        Algorithm::HS256,
    );
    assert!(check(std::slice::from_ref(&signing), &crafted).is_ok());
    let second = jwt::issue(&settings(), &signing, subject("alice"), NOW_S).unwrap();
    assert_ne!(second.jti, issued.jti);
}

#[test]
fn issue_refuses_bad_subjects_and_weak_keys() {
    let signing = key("k1");
    assert!(jwt::issue(&settings(), &signing, subject(""), NOW_S).is_err());
    assert!(jwt::issue(&settings(), &signing, subject("a/b"), NOW_S).is_err());
    let mut weak = signing.clone();
    weak.secret.truncate(16);
    assert!(jwt::issue(&settings(), &weak, subject("alice"), NOW_S).is_err());
}

#[test]
fn time_claims_respect_the_leeway() {
    let signing = key("k1");
    let issued = jwt::issue(&settings(), &signing, subject("alice"), NOW_S).unwrap();
    let keys = [signing];
    let at = |now_s| jwt::verify(&settings(), &keys, &issued.token, now_s, &never_revoked);
    assert!(at(NOW_S + 3600 + 29).is_ok());
    assert_eq!(
        at(NOW_S + 3600 + 30),
        Err(TokenError::Expired { exp: NOW_S + 3600 })
    );
    assert!(at(NOW_S - 30).is_ok());
    assert_eq!(at(NOW_S - 31), Err(TokenError::NotYetValid { nbf: NOW_S }));
}

#[test]
fn a_retired_key_verifies_until_its_date_and_never_signs() {
    let mut old = key("old");
    let issued = jwt::issue(&settings(), &old, subject("alice"), NOW_S).unwrap();
    old.verify_until_ms = Some((NOW_S + 600) * 1000);
    let new = SigningKey::generate("new", NOW_S * 1000 - 1).unwrap();
    let keys = [old.clone(), new];
    // The retired key is older-or-newer irrelevant: only a key without an end date signs.
    assert_eq!(jwt::current_key(&keys).map(|k| k.kid.as_str()), Some("new"));
    let at = |now_s| jwt::verify(&settings(), &keys, &issued.token, now_s, &never_revoked);
    assert!(at(NOW_S + 599).is_ok());
    assert_eq!(
        at(NOW_S + 600),
        Err(TokenError::RetiredKey { kid: "old".into() })
    );
}

#[test]
fn key_rotation_old_tokens_verify_until_their_key_is_removed() {
    let old = key("old");
    let new = key("new");
    let issued = jwt::issue(&settings(), &old, subject("alice"), NOW_S).unwrap();
    assert!(check(&[old.clone(), new.clone()], &issued.token).is_ok());
    assert_eq!(
        check(&[new], &issued.token),
        Err(TokenError::UnknownKey { kid: "old".into() })
    );
}

type Case = (&'static str, String, TokenError);

/// A valid token signed with the real key, and helpers to derive forgeries from it.
struct Forge {
    secret: Vec<u8>,
    valid: String,
    parts: Vec<String>,
}

impl Forge {
    fn new(signing: &SigningKey) -> Forge {
        let valid = craft(
            &good_header("k1"),
            &good_claims(),
            &signing.secret,
            Algorithm::HS256,
        );
        let parts = valid.split('.').map(str::to_string).collect();
        Forge {
            secret: signing.secret.clone(),
            valid,
            parts,
        }
    }

    fn signed(&self, header: Value, claims: Value) -> String {
        craft(&header, &claims, &self.secret, Algorithm::HS256)
    }

    /// The valid token with its header replaced, keeping claims and signature.
    fn with_header(&self, header: Value) -> String {
        format!(
            "{}.{}.{}",
            encode_part(&header),
            self.parts[1],
            self.parts[2]
        )
    }
}

fn header_forgeries(forge: &Forge) -> Vec<Case> {
    let not_allowed = |alg: &str| TokenError::AlgorithmNotAllowed { alg: alg.into() };
    let hs512 = json!({"alg": "HS512", "kid": "k1"});
    vec![
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                encode_part(&json!({"alg": "none", "kid": "k1"})),
                forge.parts[1]
            ),
            not_allowed("none"),
        ),
        (
            "alg HS512 header, signed with HS512 and the real secret",
            craft(&hs512, &good_claims(), &forge.secret, Algorithm::HS512),
            not_allowed("HS512"),
        ),
        (
            "alg RS256 header over an HS256 signature",
            forge.with_header(json!({"alg": "RS256", "kid": "k1"})),
            not_allowed("RS256"),
        ),
        (
            "alg missing",
            forge.signed(json!({"kid": "k1"}), good_claims()),
            TokenError::Malformed("header has no alg"),
        ),
        (
            "unknown kid",
            forge.signed(good_header("k9"), good_claims()),
            TokenError::UnknownKey { kid: "k9".into() },
        ),
        (
            "missing kid",
            forge.signed(json!({"alg": "HS256"}), good_claims()),
            TokenError::MissingKeyId,
        ),
        (
            "critical header extension",
            forge.signed(
                json!({"alg": "HS256", "kid": "k1", "crit": ["exp"]}),
                good_claims(),
            ),
            TokenError::Malformed("header crit extensions are not supported"),
        ),
        (
            "header JSON is not an object",
            forge.with_header(json!("HS256")),
            TokenError::Malformed("header is not a JSON object of the expected shape"),
        ),
    ]
}

fn signature_forgeries(forge: &Forge) -> Vec<Case> {
    let parts = &forge.parts;
    let tampered_claims = encode_part(&with_claim("sub", json!("admin")));
    let wrong_secret = vec![7u8; 32];
    vec![
        (
            "stripped signature",
            format!("{}.{}.", parts[0], parts[1]),
            TokenError::BadSignature,
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], tampered_claims, parts[2]),
            TokenError::BadSignature,
        ),
        (
            "signed with another secret",
            craft(
                &good_header("k1"),
                &good_claims(),
                &wrong_secret,
                Algorithm::HS256,
            ),
            TokenError::BadSignature,
        ),
        (
            "claims not base64url, unsigned",
            format!("{}.@@@.{}", parts[0], parts[2]),
            TokenError::BadSignature,
        ),
        (
            "signature not base64url",
            format!("{}.{}.***", parts[0], parts[1]),
            TokenError::Malformed("signature is not base64url"),
        ),
        // A padded signature encodes the same bytes; only the canonical form is accepted.
        (
            "padded signature",
            format!("{}=", forge.valid),
            TokenError::Malformed("signature is not base64url"),
        ),
    ]
}

fn claims_forgeries(forge: &Forge) -> Vec<Case> {
    let bad_shape = TokenError::Malformed("claims are not a JSON object of the expected shape");
    let signed_claims = |claims: Value| forge.signed(good_header("k1"), claims);
    vec![
        (
            "expired",
            signed_claims(with_claim("exp", json!(NOW_S - 31))),
            TokenError::Expired { exp: NOW_S - 31 },
        ),
        (
            "nbf in the future",
            signed_claims(with_claim("nbf", json!(NOW_S + 31))),
            TokenError::NotYetValid { nbf: NOW_S + 31 },
        ),
        (
            "iat in the future",
            signed_claims(with_claim("iat", json!(NOW_S + 31))),
            TokenError::IssuedInFuture { iat: NOW_S + 31 },
        ),
        (
            "wrong issuer",
            signed_claims(with_claim("iss", json!("evil"))),
            TokenError::WrongIssuer,
        ),
        (
            "wrong audience",
            signed_claims(with_claim("aud", json!("other"))),
            TokenError::WrongAudience,
        ),
        (
            "missing exp",
            signed_claims(without_claim("exp")),
            TokenError::MissingClaim("exp"),
        ),
        (
            "missing jti",
            signed_claims(without_claim("jti")),
            TokenError::MissingClaim("jti"),
        ),
        (
            "missing token generation",
            signed_claims(without_claim("gen")),
            TokenError::MissingClaim("gen"),
        ),
        (
            "lifetime longer than the configured one, signed with the real key",
            signed_claims(with_claim("exp", json!(NOW_S + 3601))),
            TokenError::LifetimeTooLong {
                lifetime_s: 3601,
                lifetime_max_s: 3600,
            },
        ),
        (
            "a hundred-year token backdated to look fresh",
            signed_claims(json!({
                "sub": "alice", "iss": "palisade", "aud": "palisade",
                "exp": NOW_S + 100 * 365 * 86_400, "nbf": NOW_S - 60, "iat": NOW_S - 60,
                "jti": "0123456789abcdef", "gen": 1
            })),
            TokenError::LifetimeTooLong {
                lifetime_s: 100 * 365 * 86_400 + 60,
                lifetime_max_s: 3600,
            },
        ),
        (
            "exp as a string",
            signed_claims(with_claim("exp", json!("9999999999"))),
            bad_shape.clone(),
        ),
        (
            "subject not a user name",
            signed_claims(with_claim("sub", json!("../admin"))),
            TokenError::BadSubject,
        ),
        (
            "claims JSON is not an object",
            signed_claims(json!([1, 2, 3])),
            bad_shape,
        ),
        (
            "claims not base64url, correctly signed",
            sign_raw(&format!("{}.@@@", forge.parts[0]), &forge.secret),
            TokenError::Malformed("claims are not base64url"),
        ),
    ]
}

fn shape_forgeries(forge: &Forge) -> Vec<Case> {
    let parts = &forge.parts;
    let three_parts = TokenError::Malformed("expected three parts separated by '.'");
    vec![
        (
            "oversized",
            format!("{}.{}", forge.valid, "A".repeat(8192)),
            TokenError::TooLarge {
                bytes: forge.valid.len() + 8193,
                bytes_max: 8192,
            },
        ),
        ("garbage", "not a token at all".into(), three_parts.clone()),
        ("empty string", String::new(), three_parts.clone()),
        (
            "two parts",
            format!("{}.{}", parts[0], parts[1]),
            three_parts.clone(),
        ),
        (
            "four parts",
            format!("{}.{}", forge.valid, parts[2]),
            three_parts,
        ),
        (
            "header not base64url",
            format!("!!!.{}.{}", parts[1], parts[2]),
            TokenError::Malformed("header is not base64url"),
        ),
    ]
}

/// Each forged or invalid token, with the reason it must be refused for.
fn forgeries(signing: &SigningKey) -> Vec<Case> {
    let forge = Forge::new(signing);
    let mut cases = header_forgeries(&forge);
    cases.extend(signature_forgeries(&forge));
    cases.extend(claims_forgeries(&forge));
    cases.extend(shape_forgeries(&forge));
    cases
}

#[test]
fn forged_and_invalid_tokens_are_each_refused_for_their_reason() {
    let signing = key("k1");
    let keys = [signing.clone()];
    let cases = forgeries(&signing);
    assert!(cases.len() >= 15, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for (name, token, expected) in &cases {
        let outcome = check(&keys, token);
        if outcome.as_ref() != Err(expected) {
            failures.push(format!("{name}: expected {expected:?}, got {outcome:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn revoked_token_is_refused_after_every_other_check() {
    let signing = key("k1");
    let issued = jwt::issue(&settings(), &signing, subject("alice"), NOW_S).unwrap();
    let revoked_jti = issued.jti.clone();
    let is_revoked = move |jti: &str| jti == revoked_jti;
    let keys = [signing.clone()];
    assert_eq!(
        jwt::verify(&settings(), &keys, &issued.token, NOW_S, &is_revoked),
        Err(TokenError::Revoked)
    );
    let other = jwt::issue(&settings(), &signing, subject("alice"), NOW_S).unwrap();
    assert!(jwt::verify(&settings(), &keys, &other.token, NOW_S, &is_revoked).is_ok());
}

#[test]
fn oversized_tokens_are_refused_before_parsing() {
    // Invalid everywhere, but only the size is looked at.
    let token = "x".repeat(8193);
    assert_eq!(
        check(&[key("k1")], &token),
        Err(TokenError::TooLarge {
            bytes: 8193,
            bytes_max: 8192
        })
    );
}
