//! The typed client library of the HTTP API: `Client`, `ClientError`, the event-stream reader,
//! idempotent produce and the stored login token.
//!
//! Owns how a request is built, sent and decoded; the bodies are the shared `wire` shapes. It
//! must not depend on broker internals (storage, partitions, Raft) nor hold command-line
//! concerns (argument parsing, printing): it speaks only the wire API of DESIGN.md section 9,
//! so it works against any broker version that keeps those shapes.
mod api;
pub mod audit_log;
mod error;
mod groups;
mod list;
pub mod producers;
pub mod sse;
pub mod token_store;

pub use api::Client;
pub use error::{api_error, ClientError};
