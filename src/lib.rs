//! Palisade: a secure, replicated message queue.
//!
//! Layout (dependencies point down only; `docs/architecture.md` has the layer table that
//! `tests/architecture.rs` enforces). `http` and `broker` are the server's insides, private to the
//! crate and reached only through `app`; the other modules are the components the binary and the
//! tests use.
//! - `app`: start-up and shutdown of one broker; wires the layers below together.
//! - `dev`: the local development cluster supervisor behind `palisade dev`.
//! - `http`: HTTPS + JSON API (actix-web); maps errors to statuses in one place.
//! - `cli`: the client commands of the `palisade` binary (login, topic, produce, consume, ...).
//! - `bench`: the `palisade bench` load generator and its report.
//! - `client`: the typed HTTP client library (`Client`, event streams, token store).
//! - `broker`: the operations behind each route: authenticate, authorize, audit, then act.
//! - `cluster`: the controller (Raft group 0: topics, users, ACLs, keys), placement, routing table.
//! - `audit`: audit events, the SHA-256 hash chain, and the audit log actor.
//! - `partition`: one actor per Raft group replica; drives a `raft::RawNode`; produce and fetch.
//! - `auth`: passwords (argon2id), JWTs, principals and the pure ACL decision.
//! - `storage`: the only user of redb; group-commit writer, log reads, recovery.
//! - `transport`: TLS configuration, certificate generation, and the mutual-TLS peer links.
//! - `raft`: sans-IO consensus; no I/O, clocks or global randomness.
//! - `config`: raw TOML/env → validated, typed configuration.
//! - `wire`: the JSON wire shapes of the HTTP API, shared by `http` and `client`.
//! - `names`: validation of topic, group and user names.
//! - `clock`: wall-clock time as an input, handed down from `app`.
//! - `admission`: per-source and total caps on inbound connections, for both listeners.
//! - `fuzzing` (feature `fuzzing` only): the private parsers the fuzz targets in `fuzz/` call.
pub mod address;
pub mod admission;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bench;
mod broker;
pub mod budget;
pub mod cli;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod dev;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod http;
pub mod names;
pub mod partition;
#[doc(hidden)]
pub mod perf;
pub mod raft;
pub mod storage;
pub mod transport;
pub mod wire;
