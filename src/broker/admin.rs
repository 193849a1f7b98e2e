//! Login, token revocation, users, ACLs and reading the audit log.

use super::{Broker, BrokerError, Caller, FetchRequest, RequestInfo, STATUS_OK};
use crate::audit::{actions, AuditDecision, AuditEvent};
use crate::auth::acl::{AclRule, Effect, Operation, Pattern, ResourceType};
use crate::auth::jwt::{self, IssuedToken};
use crate::auth::password;
use crate::cluster::{MetaCommand, MetaOutput, UserRecord, AUDIT_TOPIC};
use crate::names::{self, NameKind};

/// An ACL as a client submits it (the id is assigned by the controller).
#[derive(Clone, Debug)]
pub struct NewAcl {
    pub principal: String,
    pub resource: ResourceType,
    pub pattern: Pattern,
    pub operation: Operation,
    pub effect: Effect,
}

/// Filters for reading the audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub from_offset: u64,
    pub limit: u64,
    pub principal: Option<String>,
    pub action: Option<String>,
    pub decision: Option<AuditDecision>,
    pub since_ms: Option<u64>,
    pub until_ms: Option<u64>,
}

/// Audit events from one read, with the offset to continue from.
#[derive(Clone, Debug)]
pub struct AuditPage {
    pub events: Vec<(u64, AuditEvent)>,
    pub next_offset: u64,
    pub high_watermark: u64,
}

impl Broker {
    /// Checks a username and password; issues a token. Every attempt is audited.
    pub async fn login(
        &self,
        username: &str,
        password_text: &str,
        request: RequestInfo,
    ) -> Result<IssuedToken, BrokerError> {
        let now = self.now_ms();
        // A name no user can have is refused before it reaches the limiter's table: the limiter
        // would otherwise keep (and the audit event carry) whatever the caller sent.
        if let Err(error) = names::validate(NameKind::User, username) {
            let refused = BrokerError::BadRequest(format!("username: {error}"));
            self.record_login(&request, username, AuditDecision::Failure, &refused, None)
                .await?;
            return Err(refused);
        }
        self.check_login_rate(username, &request, now).await?;
        let state = self.parts.controller.state();
        let hash = state.users.get(username).map(|u| u.password_hash.clone());
        if !verify_off_thread(hash, password_text.to_string()).await? {
            self.parts
                .limiter
                .lock()
                .expect("limiter lock is never poisoned")
                .record_failure(username, request.source, now);
            let refused = BrokerError::Unauthenticated("unknown user or wrong password".into());
            self.record_login(&request, username, AuditDecision::Failure, &refused, None)
                .await?;
            return Err(refused);
        }
        self.parts
            .limiter
            .lock()
            .expect("limiter lock is never poisoned")
            .record_success(username);
        let key = jwt::current_key(&state.signing_keys).ok_or_else(|| {
            BrokerError::Internal("no signing key in the controller state".into())
        })?;
        let issued = jwt::issue(&self.parts.tokens, key, username, now / 1000)
            .map_err(|e| BrokerError::Internal(e.to_string()))?;
        self.record(
            &request,
            Some(username),
            actions::LOGIN,
            username,
            AuditDecision::Success,
            STATUS_OK,
            None,
        )
        .await?;
        Ok(issued)
    }

    fn is_superuser(&self, name: &str) -> bool {
        self.parts
            .controller
            .state()
            .users
            .get(name)
            .is_some_and(|user| user.superuser)
    }

    /// Only a superuser may make, remove or take over a superuser: an ACL on users never grants
    /// more than its holder has. The refusal is audited like any denial.
    async fn require_superuser(
        &self,
        caller: &Caller,
        what: &str,
        user: &str,
    ) -> Result<(), BrokerError> {
        if caller.principal.superuser {
            return Ok(());
        }
        let detail = format!(
            "{} may not {what} '{user}': only a superuser may",
            caller.principal.name
        );
        Err(self.deny(caller, &format!("user:{user}"), detail).await)
    }

    /// Refuses (and audits) a login while the user or the source address is rate limited.
    async fn check_login_rate(
        &self,
        username: &str,
        request: &RequestInfo,
        now_ms: u64,
    ) -> Result<(), BrokerError> {
        let allowed = self
            .parts
            .limiter
            .lock()
            .expect("limiter lock is never poisoned")
            .check(username, request.source, now_ms);
        let Err(retry) = allowed else {
            return Ok(());
        };
        let detail = format!("rate limited for {} s", retry.seconds_rounded_up());
        let limited = BrokerError::RateLimited {
            retry_after_s: retry.seconds_rounded_up(),
        };
        self.record_login(
            request,
            username,
            AuditDecision::Failure,
            &limited,
            Some(detail),
        )
        .await?;
        Err(limited)
    }

    /// Audits a refused login with the status the caller is answered with.
    async fn record_login(
        &self,
        request: &RequestInfo,
        username: &str,
        decision: AuditDecision,
        error: &BrokerError,
        detail: Option<String>,
    ) -> Result<(), BrokerError> {
        self.record(
            request,
            Some(username),
            actions::LOGIN,
            username,
            decision,
            error.status(),
            detail,
        )
        .await
    }

    /// Revokes the caller's own token until it expires.
    pub async fn revoke(&self, caller: &Caller) -> Result<(), BrokerError> {
        self.record_change(caller, actions::TOKEN_REVOKE, &caller.claims.jti)
            .await?;
        let command = MetaCommand::RevokeToken {
            jti: caller.claims.jti.clone(),
            expires_at_s: caller.claims.exp,
        };
        self.propose(command).await?;
        Ok(())
    }

    pub async fn list_users(&self, caller: &Caller) -> Result<Vec<UserRecord>, BrokerError> {
        self.authorize(caller, ResourceType::User, "*", Operation::Describe)
            .await?;
        Ok(self
            .parts
            .controller
            .state()
            .users
            .values()
            .cloned()
            .collect())
    }

    pub async fn create_user(
        &self,
        caller: &Caller,
        name: &str,
        password_text: &str,
        superuser: bool,
    ) -> Result<(), BrokerError> {
        names::validate(NameKind::User, name)
            .map_err(|e| BrokerError::BadRequest(e.to_string()))?;
        self.authorize(caller, ResourceType::User, name, Operation::Create)
            .await?;
        if superuser {
            self.require_superuser(caller, "create the superuser", name)
                .await?;
        }
        let password_hash = hash(password_text).await?;
        self.record(
            &caller.request,
            Some(&caller.principal.name),
            actions::USER_CREATE,
            name,
            AuditDecision::Allow,
            STATUS_OK,
            Some(format!("superuser: {superuser}")),
        )
        .await?;
        let user = UserRecord {
            name: name.to_string(),
            password_hash,
            superuser,
            created_ms: self.now_ms(),
        };
        self.propose(MetaCommand::CreateUser(user)).await?;
        Ok(())
    }

    pub async fn delete_user(&self, caller: &Caller, name: &str) -> Result<(), BrokerError> {
        self.authorize(caller, ResourceType::User, name, Operation::Delete)
            .await?;
        if self.is_superuser(name) {
            self.require_superuser(caller, "delete the superuser", name)
                .await?;
        }
        self.record_change(caller, actions::USER_DELETE, name)
            .await?;
        self.propose(MetaCommand::DeleteUser {
            name: name.to_string(),
        })
        .await?;
        Ok(())
    }

    /// Users may change their own password; changing another's needs `alter` on that user.
    pub async fn set_password(
        &self,
        caller: &Caller,
        name: &str,
        password_text: &str,
    ) -> Result<(), BrokerError> {
        if caller.principal.name != name {
            self.authorize(caller, ResourceType::User, name, Operation::Alter)
                .await?;
            if self.is_superuser(name) {
                self.require_superuser(caller, "change the password of the superuser", name)
                    .await?;
            }
        }
        let password_hash = hash(password_text).await?;
        self.record_change(caller, actions::USER_PASSWORD, name)
            .await?;
        self.propose(MetaCommand::SetPassword {
            name: name.to_string(),
            password_hash,
        })
        .await?;
        Ok(())
    }

    pub async fn list_acls(&self, caller: &Caller) -> Result<Vec<AclRule>, BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Describe)
            .await?;
        Ok(self
            .parts
            .controller
            .state()
            .acls
            .values()
            .cloned()
            .collect())
    }

    pub async fn create_acl(&self, caller: &Caller, acl: NewAcl) -> Result<AclRule, BrokerError> {
        let rule = AclRule {
            id: 0,
            principal: acl.principal,
            resource: acl.resource,
            pattern: acl.pattern,
            operation: acl.operation,
            effect: acl.effect,
        };
        rule.validate()
            .map_err(|e| BrokerError::BadRequest(e.to_string()))?;
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Alter)
            .await?;
        let resource = format!(
            "{:?} {:?} {:?} {:?} for {}",
            rule.effect, rule.operation, rule.resource, rule.pattern, rule.principal
        );
        self.record_change(caller, actions::ACL_CREATE, &resource)
            .await?;
        match self.propose(MetaCommand::CreateAcl(rule)).await? {
            MetaOutput::AclCreated(rule) => Ok(rule),
            _ => Err(BrokerError::Internal(
                "controller answered an ACL creation with no ACL".into(),
            )),
        }
    }

    pub async fn delete_acl(&self, caller: &Caller, id: u64) -> Result<(), BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Alter)
            .await?;
        self.record_change(caller, actions::ACL_DELETE, &id.to_string())
            .await?;
        self.propose(MetaCommand::DeleteAcl { id }).await?;
        Ok(())
    }

    /// Reads audit events (needs `read` on the `audit` resource), filtered.
    pub async fn read_audit(
        &self,
        caller: &Caller,
        query: AuditQuery,
    ) -> Result<AuditPage, BrokerError> {
        self.authorize(caller, ResourceType::Audit, AUDIT_TOPIC, Operation::Read)
            .await?;
        let topic = self
            .parts
            .controller
            .state()
            .topics
            .get(AUDIT_TOPIC)
            .cloned()
            .ok_or_else(|| BrokerError::Unavailable("the audit topic does not exist yet".into()))?;
        let request = FetchRequest {
            offset: query.from_offset,
            max_messages: Some(query.limit),
            max_bytes: None,
            wait_ms: Some(0),
        };
        let fetched = self.fetch_partition(&topic, 0, request).await?;
        let mut events = Vec::new();
        for record in fetched.records {
            let event: AuditEvent =
                serde_json::from_slice(&record.record.value).map_err(|error| {
                    BrokerError::Internal(format!(
                        "audit record {} does not decode: {error}",
                        record.offset
                    ))
                })?;
            if matches_query(&event, &query) {
                events.push((record.offset, event));
            }
        }
        Ok(AuditPage {
            events,
            next_offset: fetched.next_offset,
            high_watermark: fetched.high_watermark,
        })
    }
}

fn matches_query(event: &AuditEvent, query: &AuditQuery) -> bool {
    query
        .principal
        .as_ref()
        .is_none_or(|p| event.principal.as_deref() == Some(p.as_str()))
        && query.action.as_ref().is_none_or(|a| &event.action == a)
        && query.decision.is_none_or(|d| event.decision == d)
        && query.since_ms.is_none_or(|t| event.time_ms >= t)
        && query.until_ms.is_none_or(|t| event.time_ms < t)
}

async fn hash(password_text: &str) -> Result<String, BrokerError> {
    let candidate = password_text.to_string();
    tokio::task::spawn_blocking(move || password::hash_password(&candidate))
        .await
        .map_err(|error| BrokerError::Internal(error.to_string()))?
        .map_err(|error| BrokerError::BadRequest(error.to_string()))
}

/// Checks `candidate` against `hash` on a blocking thread (argon2 is CPU-heavy); an unknown user
/// (`None`) costs the same as a known one, so timing does not tell them apart.
async fn verify_off_thread(hash: Option<String>, candidate: String) -> Result<bool, BrokerError> {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => password::verify_password(&hash, &candidate),
        None => {
            password::dummy_verify(&candidate);
            false
        }
    })
    .await
    .map_err(|error| BrokerError::Internal(error.to_string()))
}
