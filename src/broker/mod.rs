//! The broker's operations, as the HTTP layer calls them: authenticate, authorize, audit, and the
//! topic, record, user, ACL and audit operations behind each route.
//!
//! Decisions stay in the pure functions of `auth`, `cluster` and `partition`; this layer sequences
//! them (authorize → audit → propose → answer) and owns no HTTP types.

mod admin;
pub mod balancer;
mod cluster;
mod data;
mod drain;
pub mod durable;
mod errors;
pub mod forward;
pub mod groups;
mod idempotent;
mod peer_wire;
mod stream;
mod tickets;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Addr;

use crate::audit::aggregate::{Admission, FailureTally};
use crate::audit::log::AuditLog;
use crate::audit::{bounded_field, AuditDecision, UnsealedEvent};
use crate::auth::acl::{self, Decision, DenyReason, Operation, ResourceType};
use crate::auth::jwt::{self, Claims, TokenSettings};
use crate::auth::limiter::LoginLimiter;
use crate::auth::Principal;
use crate::budget::Budget;
/// Types of the layers below that the operations take or answer, for the layers above.
pub use crate::cluster::groups::{OffsetReset, TopicPartition};
use crate::cluster::{Controller, MetaCommand, MetaOutput, MetadataState, AUDIT_TOPIC};
pub use crate::partition::batch::Record;
pub use crate::partition::read::FetchedRecord;
use crate::partition::Registry;
use crate::raft::{GroupId, LogIndex};
use crate::storage::Store;
pub use admin::{run_audit_upkeep, AuditQuery, NewAcl};
pub use data::{FetchRequest, Fetched, NewTopic, ProduceRecord};
pub use errors::{BrokerError, STATUS_OK};
use forward::{ForwardReply, ForwardRequest, PeerCall};
/// The private parsers that `crate::fuzzing` names for the fuzz targets.
#[cfg(feature = "fuzzing")]
pub use idempotent::{parse_producer_id, parse_sequences};
pub use idempotent::{Idempotence, IDEMPOTENCY_KEY_CHARS_MAX};
pub use peer_wire::Held;
#[cfg(feature = "fuzzing")]
pub use peer_wire::PeerAnswer;
pub use stream::StreamStart;

/// Limits and settings the operations enforce.
#[derive(Clone, Debug)]
pub struct Limits {
    pub records_per_batch_max: usize,
    pub record_bytes_max: usize,
    pub fetch_bytes_max: u64,
    pub fetch_records_max: u64,
    pub wait_ms_max: u64,
    pub partitions_max: u32,
    pub default_partitions: u32,
    pub default_retention_ms: Option<u64>,
    pub default_retention_bytes: Option<u64>,
    /// Most event streams open at once on this broker.
    pub streams_max: usize,
    /// Most event streams one principal holds at once on this broker.
    pub streams_per_principal_max: usize,
    /// Stream tickets issued and not yet used or expired on this broker.
    pub stream_tickets_max: usize,
    /// Longest silence on an open event stream before a keep-alive comment.
    pub stream_keepalive_ms: u64,
}

/// Who is asking and from where, for audit events.
#[derive(Clone, Debug)]
pub struct RequestInfo {
    pub request_id: String,
    pub source: IpAddr,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub claims: Claims,
    pub request: RequestInfo,
}

/// What a broker is built from (`app` assembles it at start-up).
pub struct BrokerParts {
    pub broker_id: u64,
    pub controller: Controller,
    pub registry: Arc<Registry>,
    pub store: Store,
    pub audit: Addr<AuditLog>,
    pub tokens: TokenSettings,
    pub limits: Limits,
    pub limiter: Mutex<LoginLimiter>,
    /// Unauthenticated failures counted for aggregate audit events.
    pub failures: Mutex<FailureTally>,
    /// Argon2 work (password checks and hashes) running at once, at most
    /// `auth.password_checks_max`.
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Requests to peer brokers; `None` for a broker without peers.
    pub peers: Option<PeerCall>,
    /// How long forwarding looks for a group's leader (elections included).
    pub forward_timeout: Duration,
    /// The last broker that answered as leader, per group.
    pub leaders: Mutex<HashMap<GroupId, u64>>,
    /// How long ago each peer broker was last heard from; `None` without peers.
    pub liveness: Option<Liveness>,
    pub balancer: Arc<balancer::BalancerHandle>,
    /// Consumer-group member liveness (kept on the controller leader).
    pub group_sessions: groups::GroupSessions,
    /// The memory budgets requests hold bytes of.
    pub budgets: Budgets,
    /// The free-space floor of the data directory, checked before each client write.
    pub disk: crate::storage::DiskGuard,
    /// The Durable Streams protocol's settings.
    pub durable: durable::DurableSettings,
}

/// The broker-wide memory budgets (`limits.*_bytes_in_flight_max`) and how long a request
/// waits for bytes before it is answered 503.
#[derive(Clone, Debug)]
pub struct Budgets {
    /// Request bodies being read and handled (the HTTP layer reserves them).
    pub body: Budget,
    /// Fetch answers read on this broker as leader, until sent.
    pub fetch: Budget,
    pub wait: Duration,
}

impl Budgets {
    pub fn new(body_bytes: u64, fetch_bytes: u64, wait: Duration) -> Budgets {
        Budgets {
            body: Budget::new("request body", body_bytes),
            fetch: Budget::new("fetch", fetch_bytes),
            wait,
        }
    }
}

/// The operations of one broker. Its parts are private: layers above call its methods.
pub struct Broker {
    parts: BrokerParts,
    /// The Durable Streams this broker served, with their folded state.
    streams: durable::Streams,
    /// Event-stream tickets issued by this broker and not yet used.
    tickets: tickets::StreamTickets,
    /// Set when the broker starts to stop (`drain`).
    draining: std::sync::atomic::AtomicBool,
}

/// The gauge of long-poll fetches parked on this broker's partitions, for `/metrics`.
pub fn parked_fetches_gauge() -> prometheus_client::metrics::gauge::Gauge {
    crate::partition::machine::PARKED_FETCHES.clone()
}

/// Unauthenticated failures counted and not yet written as an aggregate audit event.
static FAILURES_PENDING: std::sync::LazyLock<prometheus_client::metrics::gauge::Gauge> =
    std::sync::LazyLock::new(Default::default);

/// The gauge of unauthenticated failures awaiting their aggregate audit event, for `/metrics`.
pub fn failures_pending_gauge() -> prometheus_client::metrics::gauge::Gauge {
    FAILURES_PENDING.clone()
}

/// Raft messages from peers dropped for want of authority in their group (exported as a metric).
pub fn refused_raft_messages() -> prometheus_client::metrics::family::Family<
    crate::partition::admission::RefusedLabels,
    prometheus_client::metrics::counter::Counter,
> {
    crate::partition::admission::REFUSED_MESSAGES.clone()
}

/// How long ago a peer broker was last heard from (`None`: never).
pub type Liveness = Arc<dyn Fn(u64) -> Option<Duration> + Send + Sync>;

impl Broker {
    pub fn new(parts: BrokerParts) -> Broker {
        Broker {
            streams: durable::Streams::new(parts.durable.clone()),
            tickets: tickets::StreamTickets::new(parts.limits.stream_tickets_max),
            parts,
            draining: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// How many partition replicas run on this broker, and how many of them are quiesced.
    pub fn replica_counts(&self) -> (usize, usize) {
        self.parts.registry.quiesced_count()
    }

    pub fn budgets(&self) -> &Budgets {
        &self.parts.budgets
    }

    pub fn limits(&self) -> &Limits {
        &self.parts.limits
    }

    /// The controller state this broker applied last (cheap: an `Arc` clone).
    pub fn metadata(&self) -> Arc<MetadataState> {
        self.parts.controller.state()
    }

    /// Whether this broker can serve requests: the cluster is bootstrapped, the controller has a
    /// leader, and the audit partition has one as far as this broker can tell without asking.
    pub fn is_ready(&self) -> bool {
        let state = self.parts.controller.state();
        let controller_led = self
            .parts
            .controller
            .replica()
            .status
            .borrow()
            .leader
            .is_some();
        let audit_ready = state
            .topics
            .get(AUDIT_TOPIC)
            .and_then(|topic| topic.partitions.first())
            .is_some_and(|partition| match self.parts.registry.get(partition.group) {
                Some(handle) => handle.status.borrow().leader.is_some(),
                None => true,
            });
        state.bootstrapped && controller_led && audit_ready && !self.is_draining()
    }

    /// Unix time in milliseconds from the clock this broker was built with.
    pub fn now_ms(&self) -> u64 {
        self.parts.controller.clock().now_ms()
    }

    /// Verifies a bearer token. A rejected token is audited and answered with 401.
    pub async fn authenticate(
        &self,
        token: Option<&str>,
        request: RequestInfo,
    ) -> Result<Caller, BrokerError> {
        let Some(token) = token else {
            return Err(self
                .reject_token(&request, "missing bearer token".into())
                .await);
        };
        let state = self.parts.controller.state();
        let now_s = self.now_ms() / 1000;
        let verified = jwt::verify(
            &self.parts.tokens,
            &state.signing_keys,
            token,
            now_s,
            &|jti| state.is_revoked(jti),
        );
        let claims = match verified {
            Ok(claims) => claims,
            Err(error) => return Err(self.reject_token(&request, error.to_string()).await),
        };
        let Some(user) = state.users.get(&claims.sub) else {
            let detail = format!("user '{}' no longer exists", claims.sub);
            return Err(self.reject_token(&request, detail).await);
        };
        if user.token_generation != claims.gen {
            let detail = format!(
                "the tokens of user '{}' issued before a password change, a revoke-all or the \
                 user's re-creation are no longer valid; log in again",
                claims.sub
            );
            return Err(self.reject_token(&request, detail).await);
        }
        let principal = Principal {
            name: user.name.clone(),
            superuser: user.superuser,
        };
        Ok(Caller {
            principal,
            claims,
            request,
        })
    }

    /// Audits a request refused for want of a valid bearer token (aggregated per source, see
    /// [`Broker::record_unauthenticated`]) and answers the 401 the caller gets, or why the
    /// refusal could not be audited.
    pub async fn reject_token(&self, request: &RequestInfo, detail: String) -> BrokerError {
        let rejected = BrokerError::Unauthenticated(detail.clone());
        let event = self.event(
            request,
            None,
            crate::audit::actions::TOKEN_REJECTED,
            "token",
            AuditDecision::Deny,
            rejected.status(),
            Some(detail),
        );
        let recorded = self.record_unauthenticated(event).await;
        match recorded {
            Ok(()) => rejected,
            Err(error) => error,
        }
    }

    /// Checks an ACL decision; a denial is audited (fail-closed) and answered with 403.
    pub async fn authorize(
        &self,
        caller: &Caller,
        resource: ResourceType,
        name: &str,
        operation: Operation,
    ) -> Result<(), BrokerError> {
        let state = self.parts.controller.state();
        match acl::check(
            &caller.principal,
            state.acls.values(),
            resource,
            name,
            operation,
        ) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => {
                let why = match reason {
                    DenyReason::DeniedByRule { rule_id } => format!("denied by ACL {rule_id}"),
                    DenyReason::NoMatchingRule => "no ACL allows it".to_string(),
                };
                let detail = format!(
                    "{} may not {operation:?} {resource:?} '{name}': {why}",
                    caller.principal.name
                );
                let resource_name = format!("{resource:?}:{name}").to_lowercase();
                Err(self.deny(caller, &resource_name, detail).await)
            }
        }
    }

    /// Audits an authorization denial of `resource` and answers the 403 the caller gets (or why
    /// the denial could not be audited).
    pub(crate) async fn deny(
        &self,
        caller: &Caller,
        resource: &str,
        detail: String,
    ) -> BrokerError {
        let denied = BrokerError::Forbidden(detail.clone());
        let recorded = self
            .record(
                &caller.request,
                Some(&caller.principal.name),
                crate::audit::actions::AUTHORIZE,
                resource,
                AuditDecision::Deny,
                denied.status(),
                Some(detail),
            )
            .await;
        match recorded {
            Ok(()) => denied,
            Err(error) => error,
        }
    }

    /// Writes one audit event and waits until it is durable. Failing to audit fails the request.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        request: &RequestInfo,
        principal: Option<&str>,
        action: &str,
        resource: &str,
        decision: AuditDecision,
        status: u16,
        detail: Option<String>,
    ) -> Result<(), BrokerError> {
        let event = self.event(
            request, principal, action, resource, decision, status, detail,
        );
        self.write_events(vec![event]).await
    }

    /// Audits a failure no one authenticated for (a refused token, a failed login) under the
    /// aggregation rule of `audit::aggregate`: the first of its source, action and status in an
    /// interval is written now; later ones are counted into one aggregate event, written by
    /// [`Broker::flush_failures`] when the interval is over.
    pub async fn record_unauthenticated(&self, event: UnsealedEvent) -> Result<(), BrokerError> {
        let admission = {
            let mut failures = self
                .parts
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let admission = failures.note(&event, event.time_ms);
            FAILURES_PENDING.set(failures.pending() as i64);
            admission
        };
        match admission {
            Admission::Write => self.write_events(vec![event]).await,
            Admission::Counted => Ok(()),
        }
    }

    /// Writes the aggregates of unauthenticated failures whose interval is over; on failure
    /// they are kept and counted into the next attempt. Returns the failures accounted for.
    pub async fn flush_failures(&self) -> Result<u64, BrokerError> {
        self.flush_failures_of(false).await
    }

    /// Writes every pending aggregate, due or not: called once by a broker that is stopping, so
    /// a shutdown does not lose the failures it counted.
    pub async fn flush_all_failures(&self) -> Result<u64, BrokerError> {
        self.flush_failures_of(true).await
    }

    async fn flush_failures_of(&self, all: bool) -> Result<u64, BrokerError> {
        let now_ms = self.now_ms();
        let failures = || {
            self.parts
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let due = if all {
            failures().take_all(now_ms)
        } else {
            failures().take_due(now_ms)
        };
        if due.is_empty() {
            return Ok(0);
        }
        let events = due.iter().map(|item| item.event(now_ms)).collect();
        let count: u64 = due.iter().map(|item| item.count()).sum();
        // Still pending until written, so a reader of the gauge never sees 0 too early.
        FAILURES_PENDING.set((failures().pending() + count) as i64);
        let written = self.write_events(events).await;
        let mut tally = failures();
        if written.is_err() {
            tally.restore(due);
        }
        FAILURES_PENDING.set(tally.pending() as i64);
        written.map(|()| count)
    }

    /// An event as this broker records it now, with caller-controlled fields bounded.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        &self,
        request: &RequestInfo,
        principal: Option<&str>,
        action: &str,
        resource: &str,
        decision: AuditDecision,
        status: u16,
        detail: Option<String>,
    ) -> UnsealedEvent {
        UnsealedEvent {
            time_ms: self.now_ms(),
            broker: self.parts.broker_id,
            request_id: bounded_field(&request.request_id),
            principal: principal.map(bounded_field),
            source: request.source.to_string(),
            action: action.to_string(),
            resource: bounded_field(resource),
            decision,
            status,
            detail: detail.as_deref().map(bounded_field),
        }
    }

    /// Appends events to the audit log (through its leader) and waits until they are durable.
    async fn write_events(&self, events: Vec<UnsealedEvent>) -> Result<(), BrokerError> {
        let Some(group) = self.audit_group() else {
            return Err(BrokerError::AuditUnavailable(
                "the audit topic does not exist yet".into(),
            ));
        };
        let request = ForwardRequest::Audit { group, events };
        match tokio::time::timeout(AUDIT_WAIT, self.on_leader(request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(BrokerError::AuditUnavailable(error.to_string())),
            Err(_) => Err(BrokerError::AuditUnavailable(
                "audit write timed out".into(),
            )),
        }
    }

    /// The Raft group of the audit partition.
    pub fn audit_group(&self) -> Option<GroupId> {
        let state = self.parts.controller.state();
        state.partition(AUDIT_TOPIC, 0).map(|p| p.group)
    }

    /// Proposes a metadata command on the controller leader, wherever it is, and waits until
    /// this broker applied it too, so the caller's next request here sees the change.
    pub async fn propose(&self, command: MetaCommand) -> Result<MetaOutput, BrokerError> {
        let envelope = self.parts.controller.encode(command);
        let led = self.on_leader(ForwardRequest::Meta { envelope }).await?;
        let ForwardReply::Meta { index, output } = led.reply else {
            return Err(BrokerError::Internal(
                "the controller answered a proposal with something else".into(),
            ));
        };
        if !self
            .parts
            .controller
            .wait_applied(LogIndex(index), self.parts.forward_timeout)
            .await
        {
            return Err(BrokerError::Unavailable(format!(
                "the change is committed, but this broker did not apply it within {:?}; retry the read",
                self.parts.forward_timeout
            )));
        }
        Ok(output?)
    }

    /// Audits an authorized change by `caller` before it is made (so an unauditable change never happens).
    pub async fn record_change(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
    ) -> Result<(), BrokerError> {
        self.record(
            &caller.request,
            Some(&caller.principal.name),
            action,
            resource,
            AuditDecision::Allow,
            STATUS_OK,
            None,
        )
        .await
    }

    /// Audits an authorized change, then proposes it (so an unauditable change never happens).
    pub(crate) async fn audited_change(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        command: MetaCommand,
    ) -> Result<MetaOutput, BrokerError> {
        self.record_change(caller, action, resource).await?;
        self.propose(command).await
    }

    /// Effective permissions: the ACL rules that apply to the caller.
    pub fn permissions(&self, caller: &Caller) -> Vec<acl::AclRule> {
        let state = self.parts.controller.state();
        state
            .acls
            .values()
            .filter(|rule| {
                rule.principal == caller.principal.name || rule.principal == acl::ANY_PRINCIPAL
            })
            .cloned()
            .collect()
    }
}

/// How long a request waits for its audit event to be durable.
const AUDIT_WAIT: Duration = Duration::from_secs(10);
