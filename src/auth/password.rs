//! Password hashing with argon2id (argon2 crate defaults: 19 MiB, 2 passes, 1 lane).
//!
//! Owns the PHC string format stored for each user and the dummy verification that makes
//! a login for an unknown user cost the same as one for a known user, so response time
//! does not reveal which user names exist. Must not log or return passwords.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;

use super::AuthError;

/// Shortest password accepted when one is set.
pub const PASSWORD_BYTES_MIN: usize = 8;
/// Longest password accepted when one is set or checked; bounds the work per login.
pub const PASSWORD_BYTES_MAX: usize = 1024;

/// Hashes `password` with argon2id and a fresh random salt; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let bytes = password.len();
    if !(PASSWORD_BYTES_MIN..=PASSWORD_BYTES_MAX).contains(&bytes) {
        return Err(AuthError::PasswordLength {
            bytes,
            bytes_min: PASSWORD_BYTES_MIN,
            bytes_max: PASSWORD_BYTES_MAX,
        });
    }
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| AuthError::Hashing(error.to_string()))
}

/// Checks `candidate` against a stored PHC string. A stored string that does not parse,
/// or an oversized candidate, still costs one full verification and then yields `false`.
pub fn verify_password(phc: &str, candidate: &str) -> bool {
    if candidate.len() > PASSWORD_BYTES_MAX {
        dummy_verify(candidate);
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        dummy_verify(candidate);
        return false;
    };
    Argon2::default()
        .verify_password(candidate.as_bytes(), &parsed)
        .is_ok()
}

/// Performs one verification against a fixed hash with the default parameters and
/// discards the result. Call it for unknown users so their logins take as long as real ones.
pub fn dummy_verify(candidate: &str) {
    let bytes = candidate.as_bytes();
    let bounded = &bytes[..bytes.len().min(PASSWORD_BYTES_MAX)];
    let outcome = Argon2::default().verify_password(bounded, dummy_hash());
    std::hint::black_box(outcome.is_ok());
}

/// A hash of a fixed string with the same parameters as [`hash_password`], computed once.
fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password_with_salt(b"palisade-dummy-password", b"palisade-dummy-salt")
            .expect("fixed password and 19-byte salt are valid argon2 inputs")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify_password(&phc, "correct horse battery"));
        assert!(!verify_password(&phc, "correct horse batterx"));
        assert!(!verify_password(&phc, ""));
        assert!(!verify_password(
            "not a phc string",
            "correct horse battery"
        ));
    }

    #[test]
    fn salts_differ_between_hashes() {
        let first = hash_password("same password").unwrap();
        let second = hash_password("same password").unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn length_limits_are_enforced() {
        assert!(matches!(
            hash_password("short"),
            Err(AuthError::PasswordLength { bytes: 5, .. })
        ));
        let long = "x".repeat(PASSWORD_BYTES_MAX + 1);
        assert!(hash_password(&long).is_err());
        let phc = hash_password(&"x".repeat(PASSWORD_BYTES_MAX)).unwrap();
        assert!(!verify_password(&phc, &long));
    }

    /// The dummy verification runs argon2 with exactly the parameters real hashes use (the
    /// algorithm, version, memory, passes and lanes in the PHC string), so it costs what a real
    /// verification costs without a timing assertion in the test.
    #[test]
    fn dummy_hash_uses_the_same_parameters_as_real_hashes() {
        let real = hash_password("some password").unwrap();
        let real = PasswordHash::new(&real).unwrap();
        let dummy = dummy_hash();
        assert_eq!(dummy.algorithm, real.algorithm);
        assert_eq!(dummy.version, real.version);
        assert_eq!(dummy.params.to_string(), real.params.to_string());
        assert_eq!(real.algorithm.as_str(), "argon2id");
    }
}
