//! Wire shapes of the administrative routes: users, ACL rules and audit events.
//!
//! ACL rules are the broker's stored rule type (snake_case names, patterns as `{"literal":..}`,
//! `{"prefix":..}` or `"any"`); audit events are the hash-chained event of DESIGN.md section 8,
//! exactly as stored. The authorization decision (`auth::acl`) and the hash chain (`audit`)
//! add their logic to these types where they live; this file holds (de)serialization only.
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::REDACTED;

/// An item of `GET /v1/users`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub username: String,
    #[serde(default)]
    pub superuser: bool,
    /// When the user was created, Unix milliseconds.
    #[serde(default)]
    pub created_ms: u64,
}

/// `GET /v1/users` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
}

/// `POST /v1/users` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(min_length = 1, max_length = 249, pattern = "^[A-Za-z0-9._-]+$")]
    pub username: String,
    /// 8 to 1024 bytes.
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    pub password: String,
    #[serde(default)]
    pub superuser: bool,
}

/// `POST /v1/users` reply: the user created (fields in sorted order, as this answer always had).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UserCreated {
    pub superuser: bool,
    pub username: String,
}

/// `PUT /v1/users/{user}/password` body.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPassword {
    /// 8 to 1024 bytes.
    #[schema(format = Password, min_length = 8, max_length = 1024)]
    pub password: String,
}

/// An item of `GET /v1/auth/keys`: a signing key's id and lifetime, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyView {
    /// The `kid` of the tokens it signs.
    pub kid: String,
    /// When it was generated, Unix milliseconds.
    pub created_ms: u64,
    /// Set once a newer key replaced it: it verifies the tokens it signed until then (Unix
    /// milliseconds) and is then removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_until_ms: Option<u64>,
    /// Whether it signs new tokens.
    pub current: bool,
}

/// `GET /v1/auth/keys` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SigningKeyList {
    pub keys: Vec<SigningKeyView>,
}

/// `POST /v1/auth/keys` reply: the key that now signs new tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RotatedKey {
    pub kid: String,
}

/// One allow or deny rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// Assigned by the controller; unique; used to delete the rule and to explain a denial.
    pub id: u64,
    /// A user name, or `"*"` (every user).
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: Pattern,
    pub operation: Operation,
    pub effect: Effect,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceType {
    Topic,
    Group,
    Cluster,
    User,
    Audit,
}

/// Which resource names a rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// Exactly this name.
    Literal(String),
    /// Every name starting with this non-empty string.
    Prefix(String),
    /// Every name of the rule's resource type.
    Any,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Describe,
    Alter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// `POST /v1/acls` body: a rule without its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAcl {
    /// A user name, or `"*"` for every principal.
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: Pattern,
    pub operation: Operation,
    pub effect: Effect,
}

/// `GET /v1/acls` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AclList {
    pub acls: Vec<AclRule>,
}

/// Query of `GET /v1/acls/explain`: may `principal` do `operation` on `resource_type`/`resource`?
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// A user name (or the Durable Streams anonymous principal, when one is set).
    pub principal: String,
    pub resource_type: ResourceType,
    /// The resource's name (`*` for the cluster).
    pub resource: String,
    pub operation: Operation,
}

/// How an access decision was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExplainDecision {
    /// Superusers pass every check; no rule is consulted.
    Superuser,
    /// At least one allow rule matched and no deny rule did.
    Allow,
    /// A deny rule matched; deny wins over any allow.
    Deny,
    /// No rule matched: access is denied by default.
    DefaultDeny,
}

/// `GET /v1/acls/explain` reply: the decision the broker would make now, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Explanation {
    pub principal: String,
    pub resource_type: ResourceType,
    pub resource: String,
    pub operation: Operation,
    pub allowed: bool,
    pub decision: ExplainDecision,
    /// The decision in a sentence, naming the deciding rule.
    pub reason: String,
    /// Every rule that speaks about this principal (or `*`), operation and resource, by id.
    pub matched: Vec<AclRule>,
}

/// `POST /v1/stream-tickets` body: the partition an event stream will read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStreamTicket {
    pub topic: String,
    pub partition: u32,
}

/// `POST /v1/stream-tickets` reply: a single-use credential for one event stream of that
/// partition, for clients that cannot send an Authorization header (browsers' `EventSource`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StreamTicket {
    /// Pass as `?ticket=` on `GET /v1/topics/{topic}/partitions/{partition}/messages` with
    /// `Accept: text/event-stream`, without an Authorization header.
    pub ticket: String,
    /// The ticket is refused once this many milliseconds passed unused.
    pub expires_in_ms: u64,
}

/// What happened to the audited request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditDecision {
    /// Authorization granted.
    Allow,
    /// Authorization refused.
    Deny,
    /// The action (for example a login or a user change) completed.
    Success,
    /// The action failed (for example a wrong password).
    Failure,
}

/// An event as recorded, hash-chained to its predecessor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// When the broker handled the request, Unix milliseconds.
    pub time_ms: u64,
    /// The broker that handled the request.
    pub broker: u64,
    /// The request id, also returned to the client.
    pub request_id: String,
    /// The authenticated user, if any (absent for failed token checks).
    pub principal: Option<String>,
    /// The client's address.
    pub source: String,
    /// What was attempted, for example `auth.login`.
    pub action: String,
    /// What it was attempted on, for example `topic/orders` or `user/alice`.
    pub resource: String,
    pub decision: AuditDecision,
    /// The HTTP status returned.
    pub status: u16,
    /// Extra context (a deny reason, a rejected token's reason); never secrets.
    pub detail: Option<String>,
    /// Lowercase hex SHA-256 of the previous event, or 64 zeros for the first.
    pub prev_hash: String,
    /// Lowercase hex SHA-256 over `prev_hash` and the canonical bytes of the fields above.
    pub hash: String,
}

/// Query of `GET /v1/audit`; every filter is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditFilters {
    /// Position in the audit log to read from (a page's `next_offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Events examined at most; larger values read 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Only events of this principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Only events of this action, for example `auth.login`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Only events with this decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<AuditDecision>,
    /// Only events at or after this time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
    /// Only events before this time, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl AuditFilters {
    /// The query string's name-value pairs, set filters only.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = super::query_pairs([
            ("offset", self.offset),
            ("since_ms", self.since_ms),
            ("until_ms", self.until_ms),
        ]);
        let texts = [("principal", &self.principal), ("action", &self.action)];
        pairs.extend(
            texts
                .into_iter()
                .filter_map(|(name, text)| text.clone().map(|text| (name, text))),
        );
        pairs.extend(super::query_pairs([("limit", self.limit)]));
        if let Some(decision) = self.decision {
            pairs.push(("decision", decision.as_str().to_string()));
        }
        pairs
    }
}

impl AuditDecision {
    /// The wire name of the decision, as serde writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditDecision::Allow => "allow",
            AuditDecision::Deny => "deny",
            AuditDecision::Success => "success",
            AuditDecision::Failure => "failure",
        }
    }
}

/// `GET /v1/audit` reply: matching events from `offset` on, and where to continue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEntry>,
    /// Where the next page starts (past every event examined, matching or not).
    pub next_offset: u64,
    /// One past the last event in the audit log.
    pub high_watermark: u64,
    /// The oldest event kept; retention removed the ones before it.
    #[serde(default)]
    pub log_start_offset: u64,
}

/// `GET /v1/audit/head` reply: the newest event, to record as an anchor for
/// `palisade audit verify --anchor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditHead {
    /// The newest event's offset; absent while the log is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The newest event's hash, or 64 zeros for an empty log.
    pub hash: String,
    /// When the newest event was recorded, Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_ms: Option<u64>,
    pub high_watermark: u64,
    #[serde(default)]
    pub log_start_offset: u64,
}

/// One event of an audit page: the stored event plus its position in the audit log (the
/// broker always sends it; the client accepts its absence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(flatten)]
    pub event: AuditEvent,
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
        let event: AuditEntry = round_trip(
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
                "next_offset":4,"high_watermark":9,"log_start_offset":2}"#,
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
