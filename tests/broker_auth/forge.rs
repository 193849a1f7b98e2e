//! Forged and malformed access tokens, crafted the way an attacker without the broker's signing
//! secret could: from scratch, or by editing a real token. Each comes with a fragment of the 401
//! detail that names why the broker must refuse it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

/// A secret the broker does not have.
const ATTACKER_SECRET: &[u8] = b"thirty-two-bytes-of-attacker-key";

/// One forged token: what it is, the token text, and a fragment of the expected 401 detail.
pub struct Forged {
    pub kind: &'static str,
    pub token: String,
    pub reason: &'static str,
}

fn case(kind: &'static str, token: String, reason: &'static str) -> Forged {
    Forged {
        kind,
        token,
        reason,
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn part(value: &Value) -> String {
    b64(&serde_json::to_vec(value).expect("JSON"))
}

fn decode_part(text: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("JSON")
}

fn sign(message: &str, secret: &[u8], algorithm: Algorithm) -> String {
    let key = EncodingKey::from_secret(secret).expect("HMAC key");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, algorithm).expect("sign");
    format!("{message}.{signature}")
}

pub fn now_s() -> u64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    elapsed.expect("clock after 1970").as_secs()
}

/// Claims the broker would issue for `sub`, valid now.
pub fn claims(sub: &str) -> Value {
    let now = now_s();
    json!({"sub": sub, "iss": "palisade", "aud": "palisade", "exp": now + 600, "nbf": now - 5,
           "iat": now - 5, "jti": "00112233445566778899aabbccddeeff"})
}

/// `claims(sub)` with one claim replaced.
pub fn claims_with(sub: &str, name: &str, value: Value) -> Value {
    let mut claims = claims(sub);
    claims[name] = value;
    claims
}

/// Signs `header.claims` with the attacker's secret.
fn sign_parts(header: &Value, claims: &Value, algorithm: Algorithm) -> String {
    sign(
        &format!("{}.{}", part(header), part(claims)),
        ATTACKER_SECRET,
        algorithm,
    )
}

/// A well-formed HS256 token naming `kid`, signed with a secret the broker does not have.
pub fn forge(kid: &str, claims: &Value) -> String {
    sign_parts(
        &json!({"typ": "JWT", "alg": "HS256", "kid": kid}),
        claims,
        Algorithm::HS256,
    )
}

/// An unsigned `alg: none` token naming `kid`.
pub fn alg_none(kid: &str, claims: &Value) -> String {
    format!(
        "{}.{}.",
        part(&json!({"alg": "none", "kid": kid})),
        part(claims)
    )
}

/// The `kid` of a real token (the header is public).
pub fn kid_of(token: &str) -> String {
    let header = decode_part(token.split('.').next().expect("header part"));
    header["kid"].as_str().expect("kid").to_string()
}

/// Replaces the claims part of a real token, keeping its header and signature.
fn with_claims(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], part(claims), parts[2])
}

/// Every kind below; `real` is a valid token of an ordinary user.
pub fn forged_tokens(real: &str) -> Vec<Forged> {
    let mut all = shape_forgeries(real);
    all.extend(header_forgeries(real));
    all.extend(signature_forgeries(real));
    all
}

/// Tokens that are not three base64url JSON parts, or are too long.
fn shape_forgeries(real: &str) -> Vec<Forged> {
    let parts: Vec<&str> = real.split('.').collect();
    let (header, claims) = (parts[0], parts[1]);
    vec![
        case("empty", String::new(), "Bearer <token>"),
        case("garbage", "not-a-token".into(), "three parts"),
        case("two parts", format!("{header}.{claims}"), "three parts"),
        case("four parts", format!("{real}.extra"), "three parts"),
        case(
            "header not base64url",
            format!("@@@.{claims}.{}", parts[2]),
            "header is not base64url",
        ),
        case(
            "header not JSON",
            format!("{}.{claims}.{}", b64(b"{no"), parts[2]),
            "header is not a JSON",
        ),
        case(
            "oversized",
            format!("{header}.{}.{}", "A".repeat(9000), parts[2]),
            "at most 8192",
        ),
    ]
}

/// Headers that ask for another algorithm, name no or an unknown key, or need unknown extensions.
fn header_forgeries(real: &str) -> Vec<Forged> {
    let kid = kid_of(real);
    let admin = claims("admin");
    let signed = |header: Value| sign_parts(&header, &admin, Algorithm::HS256);
    let rs256 = format!(
        "{}.{}.c2ln",
        part(&json!({"alg": "RS256", "kid": kid})),
        part(&admin)
    );
    let odd_none = format!(
        "{}.{}.",
        part(&json!({"alg": "None", "kid": kid})),
        part(&admin)
    );
    vec![
        case(
            "alg none, no signature",
            alg_none(&kid, &admin),
            "algorithm",
        ),
        case("alg None spelled oddly", odd_none, "algorithm"),
        case(
            "alg HS512",
            sign_parts(
                &json!({"alg": "HS512", "kid": kid}),
                &admin,
                Algorithm::HS512,
            ),
            "algorithm",
        ),
        case("alg RS256", rs256, "algorithm"),
        case(
            "no kid",
            signed(json!({"alg": "HS256", "typ": "JWT"})),
            "no kid",
        ),
        case(
            "unknown kid",
            forge("no-such-key", &admin),
            "unknown signing key",
        ),
        case(
            "crit extension",
            signed(json!({"alg": "HS256", "kid": kid, "crit": ["exp"]})),
            "crit",
        ),
        case(
            "typ not JWT",
            signed(json!({"alg": "HS256", "kid": kid, "typ": "JWE"})),
            "typ",
        ),
    ]
}

/// Tokens naming the real key whose signature is missing, altered or made with another secret.
fn signature_forgeries(real: &str) -> Vec<Forged> {
    let kid = kid_of(real);
    let parts: Vec<&str> = real.split('.').collect();
    let (header, body) = (parts[0], parts[1]);
    let real_claims = decode_part(body);
    let mut escalated = real_claims.clone();
    escalated["sub"] = json!("admin");
    let mut extended = real_claims.clone();
    extended["exp"] = json!(real_claims["exp"].as_u64().expect("exp") + 86_400);
    // The first signature character carries whole bits, so changing it keeps valid base64url.
    let mut altered = parts[2].to_string();
    altered.replace_range(..1, if altered.starts_with('A') { "B" } else { "A" });
    let expired = claims_with("admin", "exp", json!(now_s() - 3600));
    let mut no_jti = claims("admin");
    no_jti.as_object_mut().expect("object").remove("jti");
    vec![
        case(
            "known kid, attacker secret",
            forge(&kid, &claims("admin")),
            "signature",
        ),
        case(
            "claims raised to admin",
            with_claims(real, &escalated),
            "signature",
        ),
        case(
            "expiry extended by a day",
            with_claims(real, &extended),
            "signature",
        ),
        case(
            "signature removed",
            format!("{header}.{body}."),
            "signature",
        ),
        case(
            "signature altered",
            format!("{header}.{body}.{altered}"),
            "signature",
        ),
        case(
            "signature not base64url",
            format!("{header}.{body}.***"),
            "base64url",
        ),
        case(
            "expired, attacker secret",
            forge(&kid, &expired),
            "signature",
        ),
        case(
            "wrong aud, attacker secret",
            forge(&kid, &claims_with("admin", "aud", json!("x"))),
            "signature",
        ),
        case(
            "wrong iss, attacker secret",
            forge(&kid, &claims_with("admin", "iss", json!("x"))),
            "signature",
        ),
        case("no jti, attacker secret", forge(&kid, &no_jti), "signature"),
    ]
}
