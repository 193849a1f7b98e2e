//! Palisade: a secure, replicated message queue.
//!
//! Layout (dependencies point down only):
//! - `app`: start-up and shutdown; wires the layers below together.
//! - `http`: HTTPS + JSON API (actix-web); maps errors to statuses in one place.
//! - `client`: HTTP client used by the CLI and the bench command.
//! - `cluster`: metadata state machine (topics, users, ACLs, keys) run by Raft group 0.
//! - `partition`: one actor per partition replica; drives a `raft::RawNode`.
//! - `audit`: audit events, the SHA-256 hash chain, and the audit log actor.
//! - `auth`: passwords (argon2id), JWTs, principals and the pure ACL decision.
//! - `storage`: the only user of redb; group-commit writer, log reads, recovery.
//! - `transport`: TLS configuration and certificate generation.
//! - `raft`: sans-IO consensus; no I/O, clocks or global randomness.
//! - `config`: raw TOML/env → validated, typed configuration.
//! - `names`: validation of topic, group and user names.
pub mod audit;
pub mod auth;
pub mod config;
pub mod names;
pub mod raft;
