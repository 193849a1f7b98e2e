//! Authentication and authorization as pure functions.
//!
//! Owns password hashing ([`password`], argon2id), access tokens ([`jwt`], HS256 with a
//! server-pinned algorithm), the login rate limiter ([`limiter`]), the authenticated
//! [`Principal`] and the ACL decision ([`acl::check`]).
//!
//! Must not touch HTTP types, actors, storage or sockets, and must not read the clock where
//! a decision depends on time: the caller passes `now` in, so tests control time. Users,
//! ACL rules, signing keys and revocations are stored by the controller; this module only
//! decides with what it is given.

pub mod acl;
pub mod jwt;
pub mod limiter;
pub mod password;

/// An authenticated identity, as established from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Principal {
    /// The user name (the token's `sub`), a valid [`crate::names::NameKind::User`] name.
    pub name: String,
    /// Superusers pass every ACL check; the bootstrap admin is one.
    pub superuser: bool,
}

/// Failures while creating credentials (hashing a password, generating a key, issuing a token).
/// Verification failures are [`jwt::TokenError`] or plain `false`, never this.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password is {bytes} bytes long; use {bytes_min} to {bytes_max} bytes")]
    PasswordLength {
        bytes: usize,
        bytes_min: usize,
        bytes_max: usize,
    },
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error(
        "signing key {kid:?} has a {bytes}-byte secret; at least {bytes_min} bytes are required"
    )]
    WeakKey {
        kid: String,
        bytes: usize,
        bytes_min: usize,
    },
    #[error("signing key id {kid:?} is invalid: use 1 to 64 characters from A-Z a-z 0-9 . _ -")]
    BadKeyId { kid: String },
    #[error("token subject is not a valid user name: {0}")]
    BadSubject(#[from] crate::names::NameError),
    #[error("token settings are invalid: {0}")]
    BadSettings(&'static str),
    #[error("token signing failed: {0}")]
    Signing(String),
    #[error("issued token is {bytes} bytes long, above token_bytes_max {bytes_max}")]
    TokenTooLarge { bytes: usize, bytes_max: usize },
}
