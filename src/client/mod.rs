//! Client side of the HTTP API: the typed `Client`, its DTOs, the CLI client commands and the
//! `bench` command.
//!
//! Owns everything a user or script runs against a broker over HTTPS. It must not depend on
//! broker internals (storage, partitions, Raft): it speaks only the wire API of DESIGN.md
//! section 9, so it works against any broker version that keeps those shapes.
mod admin;
mod api;
pub mod bench;
mod bench_group;
pub mod bench_report;
pub mod cli;
pub mod cluster;
pub mod dto;
mod error;
mod group_consume;
mod groups;
mod list;
pub mod producers;
pub mod sse;
mod streams;
mod token_store;

pub use api::Client;
pub use error::{api_error, ClientError};
