//! The parsers of the crate's private modules that the fuzz targets in `fuzz/` call, named in one
//! place. Compiled only with the `fuzzing` feature, which only `fuzz/Cargo.toml` turns on.
//!
//! Owns nothing and decides nothing: it only re-exports. A parser that a public module already
//! offers (`transport::frame`, `partition::batch`, `partition::encoded`, `cluster`, `wire`,
//! `auth::jwt`) is called from there, not named again here.

/// What a peer sends in the body of a request envelope and of a response envelope.
pub use crate::broker::forward::{ForwardReply, ForwardRequest};
pub use crate::broker::PeerAnswer;
/// The idempotence fields of a produce body.
pub use crate::broker::{parse_producer_id, parse_sequences};
/// A produced wire record into the broker's record.
pub use crate::http::dto::record_from_wire;
/// The `?offset=` query and `Last-Event-ID` header of a record stream.
pub use crate::http::sse::{stream_start, StreamQuery};
