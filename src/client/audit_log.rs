//! Reading the whole audit log and checking its hash chain, for `palisade audit verify`.
//!
//! Owns the paging through `GET /v1/audit` from the oldest event kept and the check that offsets
//! run without gaps; the hash check itself is the broker's own pure function
//! (`audit::verify_chain_from`), so the client and the broker cannot disagree on what a valid
//! chain is. When retention removed the oldest events, the chain is checked from the oldest one
//! kept. An anchor (a head published earlier by `GET /v1/audit/head` or the broker log) must be
//! found in the chain: a log whose newest events were removed no longer holds it. No I/O but
//! the requests.
use crate::audit::{verify_chain, verify_chain_from, ChainError, GENESIS_HASH};
use crate::client::{Client, ClientError};
use crate::wire::{AuditEvent, AuditFilters};

/// A chain that verified end to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedChain {
    /// Events checked.
    pub events: usize,
    /// The offset of the oldest event kept (0 unless retention removed older ones).
    pub first_offset: u64,
    /// Hash of the newest event, or the genesis hash of an empty log.
    pub head: String,
    /// The offset of the anchor, when one was given and found.
    pub anchor_offset: Option<u64>,
}

/// The events of the audit log kept, from the oldest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditLogEvents {
    /// The offset of the first event (the log's start; 0 unless retention removed events).
    pub first_offset: u64,
    pub events: Vec<AuditEvent>,
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
    #[error(
        "the anchor {anchor} is not in the audit log (events {first}..{end}): events after it \
         were removed, or it is from another log{retention}"
    )]
    AnchorMissing {
        anchor: String,
        first: u64,
        end: u64,
        retention: &'static str,
    },
}

impl Client {
    /// Every event of the audit log kept, in order, checking that offsets run from the log's
    /// start without gaps.
    pub async fn audit_log(&self) -> Result<Vec<AuditEvent>, AuditLogError> {
        Ok(self.audit_log_kept().await?.events)
    }

    /// Like [`Client::audit_log`], with the offset the log starts at.
    pub async fn audit_log_kept(&self) -> Result<AuditLogEvents, AuditLogError> {
        let mut events = Vec::new();
        let mut filters = AuditFilters {
            offset: Some(0),
            ..AuditFilters::default()
        };
        let mut first_offset = None;
        loop {
            let page = self.audit_page(&filters).await?;
            let start = *first_offset.get_or_insert(page.log_start_offset);
            for entry in page.events {
                let expected = start + events.len() as u64;
                if let Some(found) = entry.offset.filter(|offset| *offset != expected) {
                    return Err(AuditLogError::Gap { expected, found });
                }
                events.push(entry.event);
            }
            // Stop at the end, or if the broker stops making progress.
            if page.next_offset >= page.high_watermark
                || page.next_offset <= filters.offset.unwrap_or(0)
            {
                return Ok(AuditLogEvents {
                    first_offset: start,
                    events,
                });
            }
            filters.offset = Some(page.next_offset);
        }
    }

    /// Reads the audit log and checks its hash chain: every event's hash covers its fields and
    /// the previous event's hash, and offsets run without gaps. A log that starts at offset 0
    /// must start from the genesis hash; a log cut by retention is checked from its oldest
    /// event. With `anchor`, the chain must contain an event with that hash.
    pub async fn verify_audit_log(
        &self,
        anchor: Option<&str>,
    ) -> Result<VerifiedChain, AuditLogError> {
        let kept = self.audit_log_kept().await?;
        let events = &kept.events;
        let count = match (kept.first_offset, events.first()) {
            (0, _) | (_, None) => verify_chain(events),
            (_, Some(first)) => verify_chain_from(&first.prev_hash, events),
        }
        .map_err(AuditLogError::Broken)?;
        let head = events.last().map_or(GENESIS_HASH, |e| e.hash.as_str());
        let anchor_offset = match anchor {
            None => None,
            Some(anchor) => {
                let anchor = anchor.trim().to_ascii_lowercase();
                let found = (anchor == GENESIS_HASH && kept.first_offset == 0)
                    .then_some(None)
                    .or_else(|| {
                        events
                            .iter()
                            .position(|event| event.hash == anchor)
                            .map(|position| Some(kept.first_offset + position as u64))
                    });
                match found {
                    Some(offset) => offset,
                    None => {
                        return Err(AuditLogError::AnchorMissing {
                            anchor,
                            first: kept.first_offset,
                            end: kept.first_offset + events.len() as u64,
                            retention: if kept.first_offset > 0 {
                                ", or retention removed it (the log starts after offset 0)"
                            } else {
                                ""
                            },
                        })
                    }
                }
            }
        };
        Ok(VerifiedChain {
            events: count,
            first_offset: kept.first_offset,
            head: head.to_string(),
            anchor_offset,
        })
    }
}
