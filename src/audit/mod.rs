//! Audit events and their SHA-256 hash chain (the pure part of auditing).
//!
//! Owns the event type ([`AuditEvent`]), the canonical bytes an event hash covers, sealing
//! events into a chain ([`AuditChain`]) and checking a chain end to end ([`verify_chain`]).
//! The actor that writes sealed events to the replicated `__audit` topic lives elsewhere
//! and must seal every event through one [`AuditChain`], in append order.
//!
//! Must not do I/O, read clocks or drop events: the caller supplies times and stores what
//! [`AuditChain::seal`] returns.

pub mod aggregate;
mod chain;
mod event;
pub mod log;

pub use chain::{
    verify_chain, verify_chain_from, AuditChain, ChainBreak, ChainError, GENESIS_HASH,
};
pub use event::{
    actions, bounded_field, AuditDecision, AuditEvent, UnsealedEvent, AUDIT_FIELD_BYTES_MAX,
};
