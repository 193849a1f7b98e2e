//! Access control lists and the pure authorization decision.
//!
//! Owns the rule format and [`check`]. Rules are stored and replicated by the controller;
//! the HTTP layer calls [`check`] for every request. The decision is default deny:
//! superusers pass; otherwise a matching deny rule wins over any allow; no matching rule
//! denies. A rule matches only its own resource type, so a prefix on topics never grants
//! anything on groups. Operations do not imply one another.
//!
//! JSON form of a rule (snake_case names):
//! `{"id":7,"principal":"alice","resource":"topic","pattern":{"prefix":"orders."},
//!   "operation":"write","effect":"allow"}`; `pattern` is `{"literal":"orders"}`,
//! `{"prefix":"orders."}` or `"any"`; `principal` is a user name or `"*"` (every user).

use super::Principal;
use crate::names::{self, NameKind};

/// The principal value that matches every user.
pub const ANY_PRINCIPAL: &str = "*";

/// The rule format is a wire shape (it is also the body of `GET /v1/acls`), so its one
/// definition lives with the other wire shapes; the decision logic stays here.
pub use crate::wire::{AclRule, Effect, Operation, Pattern, ResourceType};

/// The outcome of [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(DenyReason),
}

/// Why access was denied, for the audit log and the 403 body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// A deny rule matched; the lowest matching rule id is named.
    DeniedByRule { rule_id: u64 },
    /// No rule allows this principal this operation on this resource.
    NoMatchingRule,
}

/// Why a rule cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("principal must be a user name or \"*\": {0}")]
    BadPrincipal(names::NameError),
    #[error("prefix pattern must not be empty; use \"any\" to match every name")]
    EmptyPrefix,
    #[error("literal pattern must be a valid name: {0}")]
    BadLiteral(names::NameError),
}

impl Pattern {
    /// Whether `name` is covered by this pattern.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Literal(literal) => name == literal,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Pattern::Any => true,
        }
    }
}

impl AclRule {
    /// Whether this rule speaks about `principal` doing `operation` on `resource`/`name`.
    pub fn matches(
        &self,
        principal: &str,
        resource: ResourceType,
        name: &str,
        operation: Operation,
    ) -> bool {
        self.resource == resource
            && self.operation == operation
            && (self.principal == ANY_PRINCIPAL || self.principal == principal)
            && self.pattern.matches(name)
    }

    /// Checks the rule's principal and pattern before it is stored.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.principal != ANY_PRINCIPAL {
            names::validate(NameKind::User, &self.principal).map_err(AclError::BadPrincipal)?;
        }
        match &self.pattern {
            Pattern::Prefix(prefix) if prefix.is_empty() => Err(AclError::EmptyPrefix),
            Pattern::Literal(literal) => {
                names::validate_internal(NameKind::Topic, literal).map_err(AclError::BadLiteral)
            }
            _ => Ok(()),
        }
    }
}

/// The rules that can apply to `principal` (its own and those for `"*"`), for showing a
/// user its effective permissions. Superusers pass every check regardless.
pub fn rules_for<'a>(
    principal: &'a Principal,
    rules: &'a [AclRule],
) -> impl Iterator<Item = &'a AclRule> + 'a {
    rules
        .iter()
        .filter(|rule| rule.principal == ANY_PRINCIPAL || rule.principal == principal.name)
}

/// Decides whether `principal` may perform `operation` on the resource `resource`/`name`.
pub fn check<'a>(
    principal: &Principal,
    rules: impl IntoIterator<Item = &'a AclRule>,
    resource: ResourceType,
    name: &str,
    operation: Operation,
) -> Decision {
    if principal.superuser {
        return Decision::Allow;
    }
    let mut allowed = false;
    let mut denied_by: Option<u64> = None;
    for rule in rules {
        if !rule.matches(&principal.name, resource, name, operation) {
            continue;
        }
        match rule.effect {
            Effect::Allow => allowed = true,
            Effect::Deny => {
                denied_by = Some(denied_by.map_or(rule.id, |lowest| lowest.min(rule.id)));
            }
        }
    }
    match (denied_by, allowed) {
        (Some(rule_id), _) => Decision::Deny(DenyReason::DeniedByRule { rule_id }),
        (None, true) => Decision::Allow,
        (None, false) => Decision::Deny(DenyReason::NoMatchingRule),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: u64, principal: &str, pattern: Pattern, effect: Effect) -> AclRule {
        AclRule {
            id,
            principal: principal.to_string(),
            resource: ResourceType::Topic,
            pattern,
            operation: Operation::Write,
            effect,
        }
    }

    fn alice() -> Principal {
        Principal {
            name: "alice".to_string(),
            superuser: false,
        }
    }

    #[test]
    fn json_form_is_snake_case() {
        let json = r#"{"id":7,"principal":"alice","resource":"topic",
            "pattern":{"prefix":"orders."},"operation":"write","effect":"allow"}"#;
        let parsed: AclRule = serde_json::from_str(json).unwrap();
        assert_eq!(
            parsed,
            rule(7, "alice", Pattern::Prefix("orders.".into()), Effect::Allow)
        );
        let any = rule(8, "*", Pattern::Any, Effect::Deny);
        let text = serde_json::to_string(&any).unwrap();
        assert!(text.contains(r#""pattern":"any""#), "{text}");
        assert!(text.contains(r#""effect":"deny""#), "{text}");
        assert!(serde_json::from_str::<AclRule>(&text.replace("\"id\"", "\"ids\"")).is_err());
    }

    #[test]
    fn default_deny_deny_wins_superuser_passes() {
        let topic = ResourceType::Topic;
        let write = Operation::Write;
        assert_eq!(
            check(&alice(), &[], topic, "orders", write),
            Decision::Deny(DenyReason::NoMatchingRule)
        );
        let rules = [
            rule(1, "alice", Pattern::Prefix("orders".into()), Effect::Allow),
            rule(
                5,
                "*",
                Pattern::Literal("orders.secret".into()),
                Effect::Deny,
            ),
            rule(3, "alice", Pattern::Any, Effect::Deny),
        ];
        assert_eq!(
            check(&alice(), &rules[..2], topic, "orders.eu", write),
            Decision::Allow
        );
        assert_eq!(
            check(&alice(), &rules[..2], topic, "orders.secret", write),
            Decision::Deny(DenyReason::DeniedByRule { rule_id: 5 })
        );
        assert_eq!(
            check(&alice(), &rules, topic, "orders.secret", write),
            Decision::Deny(DenyReason::DeniedByRule { rule_id: 3 })
        );
        let root = Principal {
            name: "root".into(),
            superuser: true,
        };
        assert_eq!(
            check(&root, &rules, topic, "orders.secret", write),
            Decision::Allow
        );
        assert_eq!(
            check(
                &alice(),
                &rules[..1],
                ResourceType::Group,
                "orders.eu",
                write
            ),
            Decision::Deny(DenyReason::NoMatchingRule)
        );
        assert_eq!(
            check(&alice(), &rules[..1], topic, "orders.eu", Operation::Read),
            Decision::Deny(DenyReason::NoMatchingRule)
        );
    }

    #[test]
    fn rules_for_lists_own_and_wildcard_rules() {
        let rules = [
            rule(1, "alice", Pattern::Any, Effect::Allow),
            rule(2, "bob", Pattern::Any, Effect::Allow),
            rule(3, "*", Pattern::Any, Effect::Deny),
        ];
        let ids: Vec<u64> = rules_for(&alice(), &rules).map(|rule| rule.id).collect();
        assert_eq!(ids, vec![1, 3]);
    }

    #[test]
    fn validate_refuses_bad_rules() {
        assert_eq!(
            rule(1, "", Pattern::Any, Effect::Allow).validate(),
            Err(AclError::BadPrincipal(names::NameError::Empty {
                kind: NameKind::User
            }))
        );
        assert_eq!(
            rule(1, "a", Pattern::Prefix(String::new()), Effect::Allow).validate(),
            Err(AclError::EmptyPrefix)
        );
        assert!(rule(1, "a", Pattern::Literal("..".into()), Effect::Allow)
            .validate()
            .is_err());
        assert_eq!(rule(1, "*", Pattern::Any, Effect::Allow).validate(), Ok(()));
    }
}
