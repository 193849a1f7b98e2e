//! The audit event and the canonical bytes its hash covers.

use sha2::{Digest, Sha256};

/// The event and its decision are wire shapes (`GET /v1/audit` returns them as stored), so their
/// one definition lives with the other wire shapes; hashing and sealing stay here.
pub use crate::wire::{AuditDecision, AuditEvent};

/// Common action names, so every producer of events spells them the same way.
pub mod actions {
    pub const LOGIN: &str = "auth.login";
    pub const TOKEN_REJECTED: &str = "auth.token_rejected";
    pub const TOKEN_REVOKE: &str = "auth.revoke";
    pub const TOKEN_REVOKE_ALL: &str = "auth.revoke_all";
    pub const KEY_ROTATE: &str = "auth.key_rotate";
    pub const AUTHORIZE: &str = "authorize";
    pub const USER_CREATE: &str = "user.create";
    pub const USER_DELETE: &str = "user.delete";
    pub const USER_PASSWORD: &str = "user.password";
    pub const ACL_CREATE: &str = "acl.create";
    pub const ACL_DELETE: &str = "acl.delete";
    pub const TOPIC_CREATE: &str = "topic.create";
    pub const TOPIC_DELETE: &str = "topic.delete";
    pub const CLUSTER_CHANGE: &str = "cluster.change";
    pub const BROKER_ADD: &str = "cluster.broker_add";
    pub const BROKER_DECOMMISSION: &str = "cluster.broker_decommission";
    pub const REBALANCE: &str = "cluster.rebalance";
    pub const GROUP_JOIN: &str = "group.join";
    pub const GROUP_LEAVE: &str = "group.leave";
    pub const GROUP_EXPIRE: &str = "group.expire";
    pub const PRODUCER_CREATE: &str = "producer.create";
    /// A Durable Streams stream past its TTL or expiry time, deleted when a request found it so.
    pub const STREAM_EXPIRE: &str = "stream.expire";
    /// A single-use ticket for one event stream issued (`POST /v1/stream-tickets`).
    pub const STREAM_TICKET: &str = "stream.ticket";
}

/// Bytes an event keeps of one field that a caller controls (principal, resource, request id,
/// detail). A longer value is cut at a character boundary and marked, so one request cannot make
/// an event, an audit batch or the Raft entry carrying it large.
pub const AUDIT_FIELD_BYTES_MAX: usize = 512;

/// `text` as an event stores it: whole when it fits [`AUDIT_FIELD_BYTES_MAX`], else its first
/// characters and a marker that says how many bytes were cut.
pub fn bounded_field(text: &str) -> String {
    if text.len() <= AUDIT_FIELD_BYTES_MAX {
        return text.to_string();
    }
    let mut end = AUDIT_FIELD_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes cut]", &text[..end], text.len() - end)
}

impl AuditDecision {
    fn code(self) -> u8 {
        match self {
            AuditDecision::Allow => 1,
            AuditDecision::Deny => 2,
            AuditDecision::Success => 3,
            AuditDecision::Failure => 4,
        }
    }
}

/// An event before it is sealed into the chain.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UnsealedEvent {
    pub time_ms: u64,
    pub broker: u64,
    pub request_id: String,
    pub principal: Option<String>,
    pub source: String,
    pub action: String,
    pub resource: String,
    pub decision: AuditDecision,
    pub status: u16,
    pub detail: Option<String>,
}

impl UnsealedEvent {
    /// Seals this event after `prev_hash`.
    pub(crate) fn seal_after(self, prev_hash: &str) -> AuditEvent {
        let hash = event_hash(prev_hash, &self);
        AuditEvent {
            time_ms: self.time_ms,
            broker: self.broker,
            request_id: self.request_id,
            principal: self.principal,
            source: self.source,
            action: self.action,
            resource: self.resource,
            decision: self.decision,
            status: self.status,
            detail: self.detail,
            prev_hash: prev_hash.to_string(),
            hash,
        }
    }
}

impl AuditEvent {
    /// The event without its chain fields.
    pub fn unsealed(&self) -> UnsealedEvent {
        UnsealedEvent {
            time_ms: self.time_ms,
            broker: self.broker,
            request_id: self.request_id.clone(),
            principal: self.principal.clone(),
            source: self.source.clone(),
            action: self.action.clone(),
            resource: self.resource.clone(),
            decision: self.decision,
            status: self.status,
            detail: self.detail.clone(),
        }
    }

    /// The hash this event should carry given its `prev_hash` and fields.
    pub fn expected_hash(&self) -> String {
        event_hash(&self.prev_hash, &self.unsealed())
    }
}

/// SHA-256 over a version tag, `prev_hash` and the fields in declaration order. Integers
/// are big-endian; each string is prefixed by its byte length as u64 big-endian; an optional
/// string is a 0 byte when absent or a 1 byte and the string; the decision is one byte.
/// Length prefixes keep field boundaries unambiguous, so no two events share bytes.
fn event_hash(prev_hash: &str, event: &UnsealedEvent) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"palisade-audit-v1");
    put_string(&mut hasher, prev_hash);
    hasher.update(event.time_ms.to_be_bytes());
    hasher.update(event.broker.to_be_bytes());
    put_string(&mut hasher, &event.request_id);
    put_optional(&mut hasher, event.principal.as_deref());
    put_string(&mut hasher, &event.source);
    put_string(&mut hasher, &event.action);
    put_string(&mut hasher, &event.resource);
    hasher.update([event.decision.code()]);
    hasher.update(event.status.to_be_bytes());
    put_optional(&mut hasher, event.detail.as_deref());
    hex::encode(hasher.finalize())
}

fn put_string(hasher: &mut Sha256, text: &str) {
    hasher.update((text.len() as u64).to_be_bytes());
    hasher.update(text.as_bytes());
}

fn put_optional(hasher: &mut Sha256, text: Option<&str>) {
    match text {
        None => hasher.update([0u8]),
        Some(text) => {
            hasher.update([1u8]);
            put_string(hasher, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_over_the_bound_is_cut_at_a_character_boundary_and_marked() {
        assert_eq!(bounded_field("admin"), "admin");
        let exact = "x".repeat(AUDIT_FIELD_BYTES_MAX);
        assert_eq!(bounded_field(&exact), exact);
        // Two-byte characters: the cut must not split one.
        let long = "é".repeat(AUDIT_FIELD_BYTES_MAX);
        let cut = bounded_field(&long);
        assert!(cut.starts_with(&"é".repeat(AUDIT_FIELD_BYTES_MAX / 2)));
        assert!(cut.ends_with(&format!(
            "…[{} bytes cut]",
            long.len() - AUDIT_FIELD_BYTES_MAX
        )));
        assert!(cut.len() < AUDIT_FIELD_BYTES_MAX + 32);
    }
}
