//! `auth::jwt::verify` on what a client puts in `Authorization: Bearer ...`.
//!
//! An input whose first byte is even is the token text as it is: it must never verify (the
//! fuzzer does not know the key). An odd one is a header and a claims JSON (split at the first
//! newline) that the target signs with the test key, so the checks after the signature run:
//! a token that verifies must name the key, use HS256 and carry claims the settings accept.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use palisade::auth::jwt::{self, SigningKey, TokenSettings};
use palisade_fuzz::Measured;

#[global_allocator]
static ALLOCATOR: Measured = Measured;

#[derive(serde::Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
}

/// The verifier's clock, Unix seconds.
const NOW_S: u64 = 1_764_422_400;

fn settings() -> TokenSettings {
    TokenSettings {
        issuer: "palisade".into(),
        audience: "palisade-api".into(),
        ttl_s: 3600,
        leeway_s: 30,
        token_bytes_max: 8192,
    }
}

fn key() -> SigningKey {
    SigningKey {
        kid: "k1".into(),
        secret: vec![0x5a; 32],
        created_ms: 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let settings = settings();
    let keys = [key()];
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        let verified = jwt::verify(&settings, &keys, &token, NOW_S, &|_| false);
        assert!(verified.is_err(), "an unsigned guess verified: {token}");
        return;
    }
    let (header, claims) = match rest.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let encoding_key = EncodingKey::from_secret(&keys[0].secret).expect("a 32-byte secret");
    let signature = jsonwebtoken::crypto::sign(signed.as_bytes(), &encoding_key, Algorithm::HS256)
        .expect("HS256 signs");
    let token = format!("{signed}.{signature}");
    let revoked = |jti: &str| jti == "revoked";
    let Ok(verified) = jwt::verify(&settings, &keys, &token, NOW_S, &revoked) else {
        return;
    };
    // The verifier reads only these (serde_json skips ignored fields without checking their
    // UTF-8, so a `Value` may refuse a header the verifier rightly accepted).
    let header: Header = serde_json::from_slice(header).expect("a verified header");
    assert_eq!(header.alg.as_deref(), Some("HS256"));
    assert_eq!(header.kid.as_deref(), Some("k1"));
    assert!(NOW_S < verified.exp.saturating_add(settings.leeway_s));
    assert!(verified.nbf <= NOW_S + settings.leeway_s);
    assert!(verified.iat <= NOW_S + settings.leeway_s);
    assert_eq!(verified.iss, settings.issuer);
    assert_eq!(verified.aud, settings.audience);
    assert_ne!(verified.jti, "revoked");
    assert!(token.len() <= settings.token_bytes_max);
});
