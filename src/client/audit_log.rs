//! Reading the whole audit log and checking its hash chain, for `palisade audit verify`.
//!
//! Owns the paging through `GET /v1/audit` from offset 0 and the check that offsets run without
//! gaps; the hash check itself is the broker's own pure function (`audit::verify_chain`), so the
//! client and the broker cannot disagree on what a valid chain is. No I/O but the requests.
use crate::audit::{verify_chain, ChainError, GENESIS_HASH};
use crate::client::{Client, ClientError};
use crate::wire::{AuditEvent, AuditFilters};

/// A chain that verified end to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// Events in the log.
    pub events: usize,
    /// Hash of the newest event, or the genesis hash of an empty log.
    pub head: String,
}

/// Why the audit log did not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("audit log has a gap: event {expected} is missing (next stored is {found})")]
    Gap { expected: u64, found: u64 },
    #[error("audit chain is broken: {0:?}")]
    Broken(ChainError),
}

impl Client {
    /// Every event of the audit log in order, checking that offsets run from 0 without gaps.
    pub async fn audit_log(&self) -> Result<Vec<AuditEvent>, AuditLogError> {
        let mut events = Vec::new();
        let mut filters = AuditFilters {
            offset: Some(0),
            ..AuditFilters::default()
        };
        loop {
            let page = self.audit_page(&filters).await?;
            for entry in page.events {
                let expected = events.len() as u64;
                if let Some(found) = entry.offset.filter(|offset| *offset != expected) {
                    return Err(AuditLogError::Gap { expected, found });
                }
                events.push(entry.event);
            }
            // Stop at the end, or if the broker stops making progress.
            if page.next_offset >= page.high_watermark
                || page.next_offset <= filters.offset.unwrap_or(0)
            {
                return Ok(events);
            }
            filters.offset = Some(page.next_offset);
        }
    }

    /// Reads the whole audit log and checks its hash chain end to end: every event's hash
    /// covers its fields and the previous event's hash, and offsets run from 0 without gaps.
    pub async fn verify_audit_log(&self) -> Result<VerifiedChain, AuditLogError> {
        let events = self.audit_log().await?;
        let count = verify_chain(&events).map_err(AuditLogError::Broken)?;
        let head = events.last().map_or(GENESIS_HASH, |e| e.hash.as_str());
        Ok(VerifiedChain {
            events: count,
            head: head.to_string(),
        })
    }
}
