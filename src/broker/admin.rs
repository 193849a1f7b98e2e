//! Login, token revocation, users, ACLs and reading the audit log.

use super::{Broker, BrokerError, Caller, FetchRequest, RequestInfo, STATUS_OK};
use crate::audit::{actions, AuditDecision, AuditEvent};
use crate::auth::acl::{
    self, AclRule, Decision, DenyReason, Effect, Operation, Pattern, ResourceType,
};
use crate::auth::jwt::{self, IssuedToken};
use crate::auth::limiter::Attempt;
use crate::auth::password;
use crate::cluster::{MetaCommand, MetaOutput, UserRecord, AUDIT_TOPIC};
use crate::names::{self, NameKind};
use crate::wire::{ExplainDecision, ExplainQuery, Explanation};
use tokio::sync::OwnedSemaphorePermit;

/// How long a login or password change waits for a free password check slot.
const PASSWORD_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

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

/// A signing key as the API shows it: never the secret.
#[derive(Clone, Debug)]
pub struct SigningKeyInfo {
    pub kid: String,
    pub created_ms: u64,
    /// Set once a newer key replaced it: it verifies until then.
    pub verify_until_ms: Option<u64>,
    /// Whether it signs new tokens.
    pub current: bool,
}

/// Audit events from one read, with the offset to continue from.
#[derive(Clone, Debug)]
pub struct AuditPage {
    pub events: Vec<(u64, AuditEvent)>,
    pub next_offset: u64,
    pub high_watermark: u64,
    /// The oldest event kept (retention removes older ones).
    pub log_start_offset: u64,
}

/// The newest event of the audit log: what an operator records to anchor a later check.
#[derive(Clone, Debug)]
pub struct AuditHead {
    /// `None` while the log is empty.
    pub offset: Option<u64>,
    /// The newest event's hash, or the genesis hash of an empty log.
    pub hash: String,
    pub time_ms: Option<u64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
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
        let attempt = self.admit_login(username, &request, now).await?;
        let state = self.parts.controller.state();
        let hash = state.users.get(username).map(|u| u.password_hash.clone());
        let slot = self.password_slot().await?;
        let verified = verify_off_thread(slot, hash, password_text.to_string()).await?;
        if !verified {
            // Already counted as a failure when admitted.
            let refused = BrokerError::Unauthenticated("unknown user or wrong password".into());
            self.record_login(&request, username, AuditDecision::Failure, &refused, None)
                .await?;
            return Err(refused);
        }
        self.parts
            .limiter
            .lock()
            .expect("limiter lock is never poisoned")
            .record_success(username, attempt);
        let key = jwt::current_key(&state.signing_keys).ok_or_else(|| {
            BrokerError::Internal("no signing key in the controller state".into())
        })?;
        let generation = state
            .users
            .get(username)
            .map_or(0, |user| user.token_generation);
        let subject = jwt::Subject {
            name: username,
            generation,
        };
        let issued = jwt::issue(&self.parts.tokens, key, subject, now / 1000)
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

    /// A change to `name`'s own account (password, tokens): users may make it to their own;
    /// for another user it needs `alter` on that user, and for a superuser a superuser.
    async fn authorize_account_change(
        &self,
        caller: &Caller,
        name: &str,
        what: &str,
    ) -> Result<(), BrokerError> {
        if caller.principal.name == name {
            return Ok(());
        }
        self.authorize(caller, ResourceType::User, name, Operation::Alter)
            .await?;
        if self.is_superuser(name) {
            self.require_superuser(caller, what, name).await?;
        }
        Ok(())
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

    /// Admits a login attempt, counted as a failure until it succeeds; refuses (and audits) it
    /// while the user or the source address is rate limited.
    async fn admit_login(
        &self,
        username: &str,
        request: &RequestInfo,
        now_ms: u64,
    ) -> Result<Attempt, BrokerError> {
        let admitted = self
            .parts
            .limiter
            .lock()
            .expect("limiter lock is never poisoned")
            .admit(username, request.source, now_ms);
        let retry = match admitted {
            Ok(attempt) => return Ok(attempt),
            Err(retry) => retry,
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

    /// One of the `auth.password_checks_max` slots for argon2 work (a password check or hash),
    /// when one is free within [`PASSWORD_SLOT_WAIT`]; else 503 with Retry-After, so a burst of
    /// logins cannot take every CPU and argon2's memory many times over. The slot moves into
    /// the blocking task and is freed when the work ends, even if the client went away.
    async fn password_slot(&self) -> Result<OwnedSemaphorePermit, BrokerError> {
        let slot = tokio::time::timeout(
            PASSWORD_SLOT_WAIT,
            self.parts.password_checks.clone().acquire_owned(),
        )
        .await;
        match slot {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(BrokerError::Retry(
                "every password check slot is busy (auth.password_checks_max); retry".into(),
            )),
        }
    }

    /// Audits a refused login with the status the caller is answered with (aggregated per
    /// source: no one is authenticated yet).
    async fn record_login(
        &self,
        request: &RequestInfo,
        username: &str,
        decision: AuditDecision,
        error: &BrokerError,
        detail: Option<String>,
    ) -> Result<(), BrokerError> {
        let event = self.event(
            request,
            Some(username),
            actions::LOGIN,
            username,
            decision,
            error.status(),
            detail,
        );
        self.record_unauthenticated(event).await
    }

    /// Revokes the caller's own token for as long as it could verify (`exp` plus the leeway).
    pub async fn revoke(&self, caller: &Caller) -> Result<(), BrokerError> {
        self.record_change(caller, actions::TOKEN_REVOKE, &caller.claims.jti)
            .await?;
        let command = MetaCommand::RevokeToken {
            jti: caller.claims.jti.clone(),
            expires_at_s: caller.claims.exp.saturating_add(self.parts.tokens.leeway_s),
        };
        self.propose(command).await?;
        Ok(())
    }

    /// Ends every token of `name` issued so far. Users may end their own; ending another's needs
    /// `alter` on that user, and only a superuser may end a superuser's.
    pub async fn revoke_user_tokens(&self, caller: &Caller, name: &str) -> Result<(), BrokerError> {
        names::validate(NameKind::User, name)
            .map_err(|e| BrokerError::BadRequest(format!("username: {e}")))?;
        self.authorize_account_change(caller, name, "revoke the tokens of the superuser")
            .await?;
        if !self.parts.controller.state().users.contains_key(name) {
            return Err(BrokerError::NotFound(format!(
                "user '{name}' does not exist"
            )));
        }
        let command = MetaCommand::RevokeUserTokens {
            name: name.to_string(),
        };
        self.audited_change(caller, actions::TOKEN_REVOKE_ALL, name, command)
            .await
            .map(drop)
    }

    /// The signing keys (ids and lifetimes, never secrets); needs `describe` on the cluster.
    pub async fn list_signing_keys(
        &self,
        caller: &Caller,
    ) -> Result<Vec<SigningKeyInfo>, BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Describe)
            .await?;
        let state = self.parts.controller.state();
        let current = jwt::current_key(&state.signing_keys).map(|key| key.kid.clone());
        Ok(state
            .signing_keys
            .iter()
            .map(|key| SigningKeyInfo {
                kid: key.kid.clone(),
                created_ms: key.created_ms,
                verify_until_ms: key.verify_until_ms,
                current: current.as_deref() == Some(key.kid.as_str()),
            })
            .collect())
    }

    /// Generates a new signing key that signs every token from now on; earlier keys verify the
    /// tokens they signed until those expire (the token lifetime plus leeway) and are then
    /// dropped. Needs `alter` on the cluster; audited with the new key id.
    pub async fn rotate_signing_key(&self, caller: &Caller) -> Result<String, BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Alter)
            .await?;
        let now_ms = self.now_ms();
        let kid = format!("k{now_ms}-{}", &hex::encode(rand::random::<[u8; 4]>()));
        let key = jwt::SigningKey::generate(&kid, now_ms)
            .map_err(|error| BrokerError::Internal(error.to_string()))?;
        self.record_change(caller, actions::KEY_ROTATE, &kid)
            .await?;
        let tokens = &self.parts.tokens;
        let retire_after_ms = tokens
            .ttl_s
            .saturating_add(tokens.leeway_s)
            .saturating_mul(1000);
        self.propose(MetaCommand::RotateSigningKey {
            key,
            retire_after_ms,
        })
        .await?;
        Ok(kid)
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
        let password_hash = hash(self.password_slot().await?, password_text).await?;
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
            token_generation: 0,
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
        let command = MetaCommand::DeleteUser {
            name: name.to_string(),
        };
        self.audited_change(caller, actions::USER_DELETE, name, command)
            .await
            .map(drop)
    }

    /// Users may change their own password; changing another's needs `alter` on that user.
    pub async fn set_password(
        &self,
        caller: &Caller,
        name: &str,
        password_text: &str,
    ) -> Result<(), BrokerError> {
        self.authorize_account_change(caller, name, "change the password of the superuser")
            .await?;
        let password_hash = hash(self.password_slot().await?, password_text).await?;
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

    /// The decision `check` would make for `query` now, the rules it weighed and why; for the
    /// console's "explain" view. Needs `describe` on the cluster, like listing the rules.
    pub async fn explain_access(
        &self,
        caller: &Caller,
        query: ExplainQuery,
    ) -> Result<Explanation, BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Describe)
            .await?;
        names::validate(NameKind::User, &query.principal)
            .map_err(|e| BrokerError::BadRequest(format!("principal: {e}")))?;
        let state = self.parts.controller.state();
        let anonymous = self.durable_settings().anonymous_principal.as_deref();
        let superuser = match state.users.get(&query.principal) {
            Some(user) => user.superuser,
            None if anonymous == Some(query.principal.as_str()) => false,
            None => {
                return Err(BrokerError::NotFound(format!(
                    "user '{}' does not exist",
                    query.principal
                )))
            }
        };
        let principal = crate::auth::Principal {
            name: query.principal.clone(),
            superuser,
        };
        let matched: Vec<AclRule> = state
            .acls
            .values()
            .filter(|rule| {
                rule.matches(
                    &principal.name,
                    query.resource_type,
                    &query.resource,
                    query.operation,
                )
            })
            .cloned()
            .collect();
        let decision = acl::check(
            &principal,
            &matched,
            query.resource_type,
            &query.resource,
            query.operation,
        );
        // Only the operation and resource type are lowercased: names keep their case.
        let what = format!(
            "{} may{} {} {} '{}'",
            principal.name,
            if decision == Decision::Allow {
                ""
            } else {
                " not"
            },
            format!("{:?}", query.operation).to_lowercase(),
            format!("{:?}", query.resource_type).to_lowercase(),
            query.resource
        );
        let (decision, reason) = match decision {
            Decision::Allow if superuser => (
                ExplainDecision::Superuser,
                format!("{what}: a superuser passes every check"),
            ),
            Decision::Allow => {
                let allows: Vec<String> = matched.iter().map(|r| r.id.to_string()).collect();
                (
                    ExplainDecision::Allow,
                    format!(
                        "{what}: allowed by ACL {} and denied by none",
                        allows.join(", ")
                    ),
                )
            }
            Decision::Deny(DenyReason::DeniedByRule { rule_id }) => (
                ExplainDecision::Deny,
                format!("{what}: denied by ACL {rule_id}; a deny wins over any allow"),
            ),
            Decision::Deny(DenyReason::NoMatchingRule) => (
                ExplainDecision::DefaultDeny,
                format!("{what}: no ACL allows it, and what is not allowed is denied"),
            ),
        };
        Ok(Explanation {
            principal: query.principal,
            resource_type: query.resource_type,
            resource: query.resource,
            operation: query.operation,
            allowed: matches!(
                decision,
                ExplainDecision::Superuser | ExplainDecision::Allow
            ),
            decision,
            reason,
            matched,
        })
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
        let fetched = match self.fetch_partition(&topic, 0, request.clone()).await {
            // Retention removed the oldest events: read from the oldest one kept.
            Err(BrokerError::OffsetOutOfRange {
                offset,
                log_start_offset,
                ..
            }) if offset < log_start_offset => {
                let request = FetchRequest {
                    offset: log_start_offset,
                    ..request
                };
                self.fetch_partition(&topic, 0, request).await?
            }
            other => other?,
        };
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
            log_start_offset: fetched.log_start_offset,
        })
    }

    /// The newest audit event's offset and hash (needs `read` on the audit resource), for
    /// anchoring `palisade audit verify --anchor`.
    pub async fn audit_head(&self, caller: &Caller) -> Result<AuditHead, BrokerError> {
        self.authorize(caller, ResourceType::Audit, AUDIT_TOPIC, Operation::Read)
            .await?;
        self.read_audit_head().await
    }

    /// The newest audit event, read on the audit partition's leader.
    pub(super) async fn read_audit_head(&self) -> Result<AuditHead, BrokerError> {
        let topic = self
            .parts
            .controller
            .state()
            .topics
            .get(AUDIT_TOPIC)
            .cloned()
            .ok_or_else(|| BrokerError::Unavailable("the audit topic does not exist yet".into()))?;
        let probe = FetchRequest {
            offset: 0,
            max_messages: Some(1),
            max_bytes: None,
            wait_ms: Some(0),
        };
        let (high_watermark, log_start_offset) =
            match self.fetch_partition(&topic, 0, probe.clone()).await {
                Ok(fetched) => (fetched.high_watermark, fetched.log_start_offset),
                Err(BrokerError::OffsetOutOfRange {
                    high_watermark,
                    log_start_offset,
                    ..
                }) => (high_watermark, log_start_offset),
                Err(error) => return Err(error),
            };
        if high_watermark == 0 || high_watermark <= log_start_offset {
            return Ok(AuditHead {
                offset: None,
                hash: crate::audit::GENESIS_HASH.to_string(),
                time_ms: None,
                high_watermark,
                log_start_offset,
            });
        }
        let last = FetchRequest {
            offset: high_watermark - 1,
            ..probe
        };
        let fetched = self.fetch_partition(&topic, 0, last).await?;
        let record = fetched.records.first().ok_or_else(|| {
            BrokerError::Unavailable("the newest audit event could not be read; retry".into())
        })?;
        let event: AuditEvent = serde_json::from_slice(&record.record.value).map_err(|error| {
            BrokerError::Internal(format!(
                "audit record {} does not decode: {error}",
                record.offset
            ))
        })?;
        Ok(AuditHead {
            offset: Some(record.offset),
            hash: event.hash,
            time_ms: Some(event.time_ms),
            high_watermark: fetched.high_watermark,
            log_start_offset: fetched.log_start_offset,
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

async fn hash(slot: OwnedSemaphorePermit, password_text: &str) -> Result<String, BrokerError> {
    let candidate = password_text.to_string();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        password::hash_password(&candidate)
    })
    .await
    .map_err(|error| BrokerError::Internal(error.to_string()))?
    .map_err(|error| BrokerError::BadRequest(error.to_string()))
}

/// Checks `candidate` against `hash` on a blocking thread (argon2 is CPU-heavy); an unknown user
/// (`None`) costs the same as a known one, so timing does not tell them apart.
async fn verify_off_thread(
    slot: OwnedSemaphorePermit,
    hash: Option<String>,
    candidate: String,
) -> Result<bool, BrokerError> {
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        match hash {
            Some(hash) => password::verify_password(&hash, &candidate),
            None => {
                password::dummy_verify(&candidate);
                false
            }
        }
    })
    .await
    .map_err(|error| BrokerError::Internal(error.to_string()))
}

/// How often a broker writes the audit chain head to its log (when it changed).
const HEAD_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs for the broker's life: writes the aggregates of unauthenticated failures as their
/// intervals end (checking every half `interval`), and publishes the audit chain head in the
/// broker log every minute it changed, so an operator's log holds anchors for
/// `palisade audit verify --anchor`.
pub async fn run_audit_upkeep(broker: std::sync::Arc<Broker>, interval: std::time::Duration) {
    let tick = (interval / 2).max(std::time::Duration::from_millis(50));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_head_log = tokio::time::Instant::now();
    let mut logged_hash = String::new();
    loop {
        ticks.tick().await;
        match broker.flush_failures().await {
            Ok(0) => {}
            Ok(count) => tracing::debug!(count, "wrote aggregate audit events"),
            Err(error) => tracing::warn!(%error, "aggregate audit events not written yet"),
        }
        if last_head_log.elapsed() < HEAD_LOG_INTERVAL {
            continue;
        }
        last_head_log = tokio::time::Instant::now();
        match broker.read_audit_head().await {
            Ok(head) if head.hash != logged_hash => {
                tracing::info!(
                    offset = ?head.offset,
                    hash = %head.hash,
                    "audit chain head"
                );
                logged_hash = head.hash;
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "audit chain head not read"),
        }
    }
}
