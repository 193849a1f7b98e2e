//! JSON shapes of the administrative routes: users, ACL rules and audit events.
//!
//! ACL rules mirror the broker's rule type (snake_case names, patterns as `{"literal":..}`,
//! `{"prefix":..}` or `"any"`); audit events mirror the hash-chained event of DESIGN.md
//! section 8. Serialization only; no logic.
use serde::{Deserialize, Serialize};

use super::REDACTED;

/// An item of `GET /v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub superuser: bool,
}

/// `POST /v1/users` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub superuser: bool,
}

/// `PUT /v1/users/{user}/password` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPassword {
    pub password: String,
}

/// ACL rules and their parts are the broker's own types (`auth::acl`), so client and broker cannot
/// drift apart: `{"literal":"orders"}`, `{"prefix":"orders."}` or `"any"` patterns, snake_case names.
pub use crate::auth::acl::{AclRule, Effect, Operation, Pattern, ResourceType};

/// `POST /v1/acls` body: a rule without its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAcl {
    /// A user name, or `"*"` for every principal.
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: Pattern,
    pub operation: Operation,
    pub effect: Effect,
}

/// Query of `GET /v1/audit`; every filter is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditFilters {
    /// Position in the audit log to read from (a page's `next_offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<AuditDecision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `GET /v1/audit` reply: matching events from `offset` on, and where to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Where the next page starts (past every event examined, matching or not).
    pub next_offset: u64,
    /// One past the last event in the audit log.
    pub high_watermark: u64,
}

/// The outcome an audit event records: the broker's own type.
pub use crate::audit::AuditDecision;

/// One hash-chained audit event (DESIGN.md section 8): the broker's own event type, plus its
/// position in the audit log when the reply carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(flatten)]
    pub event: crate::audit::AuditEvent,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CreateUser")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("superuser", &self.superuser)
            .finish()
    }
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SetPassword")
            .field("password", &REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire_check::round_trip;
    use super::*;

    #[test]
    fn acl_rule_uses_snake_case_names_and_tagged_patterns() {
        let rule: AclRule = round_trip(
            r#"{"id":7,"principal":"alice","resource":"topic","pattern":{"prefix":"orders."},
                "operation":"write","effect":"deny"}"#,
        );
        assert_eq!(rule.pattern, Pattern::Prefix("orders.".to_string()));
        let any: CreateAcl = round_trip(
            r#"{"principal":"*","resource":"audit","pattern":"any","operation":"read","effect":"allow"}"#,
        );
        assert_eq!(any.pattern, Pattern::Any);
        let literal: Pattern = round_trip(r#"{"literal":"orders"}"#);
        assert_eq!(literal, Pattern::Literal("orders".to_string()));
    }

    #[test]
    fn audit_event_round_trips() {
        let event: AuditEvent = round_trip(
            r#"{"time_ms":1764422400000,"broker":1,"request_id":"r-1","principal":"admin",
                "source":"127.0.0.1:5000","action":"topic.create","resource":"topic:orders",
                "decision":"success","status":201,"detail":null,
                "prev_hash":"00","hash":"ab"}"#,
        );
        assert_eq!(event.event.decision, AuditDecision::Success);
    }

    #[test]
    fn audit_page_carries_offsets_beside_the_event_fields() {
        let page: AuditPage = round_trip(
            r#"{"events":[{"offset":3,"time_ms":1,"broker":1,"request_id":"r","principal":null,
                "source":"s","action":"login","resource":"user/admin","decision":"failure",
                "status":401,"detail":"bad password","prev_hash":"00","hash":"ab"}],
                "next_offset":4,"high_watermark":9}"#,
        );
        assert_eq!(page.events[0].offset, Some(3));
        assert_eq!(page.events[0].event.principal, None);
        assert_eq!(page.next_offset, 4);
    }

    #[test]
    fn debug_output_redacts_passwords() {
        let user = CreateUser {
            username: "bob".to_string(),
            password: "hunter2".to_string(),
            superuser: false,
        };
        let change = SetPassword {
            password: "hunter2".to_string(),
        };
        let printed = format!("{user:?} {change:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("bob"), "{printed}");
    }
}
