//! Sealing events into a SHA-256 chain and verifying a chain.
//!
//! Each event carries the hash of its predecessor, so editing an event breaks its own hash,
//! and deleting, inserting or reordering events breaks a `prev_hash` link. Recomputing every
//! later hash hides an edit only from someone who does not know the latest hash: keep the
//! head hash ([`AuditChain::last_hash`]) somewhere the editor cannot reach to detect that,
//! and to detect truncation of the newest events.

use super::event::{AuditEvent, UnsealedEvent};

/// `prev_hash` of the first event in a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The sealing end of a chain: remembers the hash of the last sealed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditChain {
    last_hash: String,
}

impl Default for AuditChain {
    fn default() -> Self {
        AuditChain::new()
    }
}

impl AuditChain {
    /// A chain with no events yet.
    pub fn new() -> AuditChain {
        AuditChain {
            last_hash: GENESIS_HASH.to_string(),
        }
    }

    /// Continues a chain whose last stored event has hash `last_hash` (after a restart or
    /// a leader change).
    pub fn resume(last_hash: &str) -> AuditChain {
        AuditChain {
            last_hash: last_hash.to_string(),
        }
    }

    /// Hash of the last sealed event, or [`GENESIS_HASH`].
    pub fn last_hash(&self) -> &str {
        &self.last_hash
    }

    /// Links `unsealed` to the previous event and computes its hash. Store the result
    /// before sealing the next one.
    pub fn seal(&mut self, unsealed: UnsealedEvent) -> AuditEvent {
        let event = unsealed.seal_after(&self.last_hash);
        self.last_hash.clone_from(&event.hash);
        event
    }
}

/// What is wrong at the reported position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// The event's fields do not hash to its `hash`: it was edited.
    #[error(
        "hash does not match the event's contents (edited); stored {stored}, computed {computed}"
    )]
    HashMismatch { stored: String, computed: String },
    /// The event does not follow the one before it: an event was deleted, inserted or moved.
    #[error("prev_hash {found} does not link to the previous event's hash {expected} (event deleted, inserted or reordered)")]
    BrokenLink { expected: String, found: String },
}

/// The first place where a chain does not verify; `position` is the 0-based index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at event {position}: {reason}")]
pub struct ChainError {
    pub position: usize,
    pub reason: ChainBreak,
}

/// Verifies a whole chain starting at the genesis hash; returns the number of events.
pub fn verify_chain(events: &[AuditEvent]) -> Result<usize, ChainError> {
    verify_chain_from(GENESIS_HASH, events)
}

/// Verifies a chain segment whose first event follows an event with hash `prev_hash`.
pub fn verify_chain_from(prev_hash: &str, events: &[AuditEvent]) -> Result<usize, ChainError> {
    let mut expected_prev = prev_hash;
    for (position, event) in events.iter().enumerate() {
        if event.prev_hash != expected_prev {
            return Err(ChainError {
                position,
                reason: ChainBreak::BrokenLink {
                    expected: expected_prev.to_string(),
                    found: event.prev_hash.clone(),
                },
            });
        }
        let computed = event.expected_hash();
        if event.hash != computed {
            return Err(ChainError {
                position,
                reason: ChainBreak::HashMismatch {
                    stored: event.hash.clone(),
                    computed,
                },
            });
        }
        expected_prev = &event.hash;
    }
    Ok(events.len())
}
