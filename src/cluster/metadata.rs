//! The controller's replicated state (Raft group 0) and its pure `apply`.
//!
//! Holds brokers, topics and their partition assignments, users (argon2id hashes), ACLs, JWT signing
//! keys and revoked token ids. Every command carries the time it was proposed at, so `apply` is a
//! deterministic function of the log. Must not do I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::groups::{ConsumerGroup, GroupMember};
use super::placement;
use super::producers::{self, ProducerRecord};
use crate::auth::acl::AclRule;
use crate::auth::jwt::SigningKey;
use crate::raft::GroupId;

pub use super::records::{
    BrokerInfo, PartitionAssignment, TopicMeta, UserRecord, AUDIT_TOPIC, METADATA_GROUP,
};

/// Consumer group members one principal holds at once, over all groups; one more join is 429.
pub const MEMBERS_PER_PRINCIPAL_MAX: usize = 1_000;
/// Consumer groups in the cluster at most (a group exists while it has members or committed
/// topics); a join that would create one more is 429.
pub const GROUPS_MAX: usize = 100_000;
/// Topics one principal that is not a superuser may own at once; one more create is 429.
pub const TOPICS_PER_PRINCIPAL_MAX: usize = 1_000;
/// Partitions over all topics one principal that is not a superuser may own; past it, 429.
pub const PARTITIONS_PER_PRINCIPAL_MAX: u64 = 10_000;

/// Everything the controller knows. `Default` is the state before bootstrap.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataState {
    pub bootstrapped: bool,
    pub brokers: BTreeMap<u64, BrokerInfo>,
    pub topics: BTreeMap<String, TopicMeta>,
    pub users: BTreeMap<String, UserRecord>,
    pub acls: BTreeMap<u64, AclRule>,
    pub next_acl_id: u64,
    /// Next Raft group id for a new partition (0 is the controller).
    pub next_group_id: u64,
    pub signing_keys: Vec<SigningKey>,
    /// Revoked token ids and until when they are kept (Unix seconds: the token's `exp` plus
    /// the verification leeway); pruned after that, when the token cannot verify anyway.
    pub revoked_tokens: BTreeMap<String, u64>,
    /// The next user token generation to hand out (see [`UserRecord::token_generation`]).
    #[serde(default)]
    pub next_token_generation: u64,
    /// Consumer groups: members, generations and assignments.
    #[serde(default)]
    pub groups: BTreeMap<String, ConsumerGroup>,
    /// Producer id (32 hex characters) → its owner, for idempotent produce.
    #[serde(default)]
    pub producers: BTreeMap<String, ProducerRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub internal: bool,
    /// The user that creates the topic, whose share of the per-principal caps it uses; `None`
    /// for topics the cluster makes itself.
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaCommand {
    Bootstrap {
        /// The founding brokers.
        brokers: Vec<BrokerInfo>,
        admin: UserRecord,
        key: SigningKey,
        audit_topic: TopicSpec,
    },
    CreateTopic(TopicSpec),
    DeleteTopic {
        name: String,
    },
    CreateUser(UserRecord),
    DeleteUser {
        name: String,
    },
    SetPassword {
        name: String,
        password_hash: String,
    },
    CreateAcl(AclRule),
    DeleteAcl {
        id: u64,
    },
    /// Revokes one token id; `expires_at_s` is how long the revocation is kept (the token's
    /// `exp` plus the verification leeway).
    RevokeToken {
        jti: String,
        expires_at_s: u64,
    },
    /// Ends every token of a user issued so far (a new token generation).
    RevokeUserTokens {
        name: String,
    },
    AddSigningKey(SigningKey),
    /// `key` signs new tokens from now on; every earlier key still verifies for
    /// `retire_after_ms` (the longest token lifetime plus leeway) and is then removed.
    RotateSigningKey {
        key: SigningKey,
        retire_after_ms: u64,
    },
    /// Adds a broker (an admin registering a joining broker) or updates its addresses and rack
    /// (a broker reporting its own at start-up). The decommissioning mark is kept.
    UpsertBroker(BrokerInfo),
    /// Marks a broker to be emptied by the balancer.
    DecommissionBroker {
        id: u64,
    },
    /// Forgets an emptied, decommissioned broker.
    RemoveBroker {
        id: u64,
    },
    /// The balancer changed a group's replicas.
    SetReplicas {
        group: GroupId,
        replicas: Vec<u64>,
    },
    /// A new member joins a consumer group (created on first join); the group rebalances.
    JoinGroup {
        group: String,
        member: GroupMember,
    },
    /// A member leaves (or its session expired); the group rebalances.
    LeaveGroup {
        group: String,
        member_id: String,
    },
    /// A new producer id for idempotent produce, owned by `principal`.
    RegisterProducer {
        id: String,
        principal: String,
        created_ms: u64,
    },
    /// A stopping broker marks itself draining (`true`) so no leadership moves to it; its
    /// report at start-up clears the mark.
    SetBrokerDraining {
        id: u64,
        draining: bool,
    },
}

/// A command plus the proposer's clock, so that applying it is deterministic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaEnvelope {
    pub now_ms: u64,
    pub command: MetaCommand,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaOutput {
    Done,
    Topic(TopicMeta),
    AclCreated(AclRule),
    Group(ConsumerGroup),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetaError {
    #[error("the cluster is already bootstrapped")]
    AlreadyBootstrapped,
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    NoSuchTopic(String),
    #[error("user '{0}' already exists")]
    UserExists(String),
    #[error("user '{0}' does not exist")]
    NoSuchUser(String),
    #[error("ACL {0} does not exist")]
    NoSuchAcl(u64),
    #[error("the last superuser cannot be deleted")]
    LastSuperuser,
    #[error("{0}")]
    Placement(#[from] placement::PlacementError),
    #[error("command does not decode: {0}")]
    Malformed(String),
    #[error("broker {0} is not registered")]
    NoSuchBroker(u64),
    #[error("broker {0} still carries replicas")]
    BrokerInUse(u64),
    #[error("partition group {0} does not exist")]
    NoSuchGroup(u64),
    #[error("member '{member_id}' is not in consumer group '{group}'")]
    NoSuchMember { group: String, member_id: String },
    #[error("'{principal}' already holds {members_max} consumer group members; leave some first")]
    TooManyMembers {
        principal: String,
        members_max: usize,
    },
    #[error("the cluster already has {groups_max} consumer groups")]
    TooManyGroups { groups_max: usize },
    #[error(
        "'{principal}' already owns {topics} topics with {partitions} partitions; the bounds are \
         {topics_max} topics and {partitions_max} partitions per user; delete some first"
    )]
    TooManyTopics {
        principal: String,
        topics: usize,
        partitions: u64,
        topics_max: usize,
        partitions_max: u64,
    },
}

/// Applies one command. Errors leave the state unchanged.
pub fn apply(state: &mut MetadataState, envelope: MetaEnvelope) -> Result<MetaOutput, MetaError> {
    let now_ms = envelope.now_ms;
    state
        .revoked_tokens
        .retain(|_, expires_at_s| expires_at_s.saturating_mul(1000) > now_ms);
    state
        .signing_keys
        .retain(|key| key.verify_until_ms.is_none_or(|until_ms| until_ms > now_ms));
    match envelope.command {
        MetaCommand::Bootstrap {
            brokers,
            admin,
            key,
            audit_topic,
        } => bootstrap(state, brokers, admin, key, audit_topic, now_ms),
        MetaCommand::CreateTopic(spec) => {
            let topic = create_topic(state, spec, now_ms)?;
            rebalance_groups(state);
            Ok(MetaOutput::Topic(topic))
        }
        MetaCommand::DeleteTopic { name } => delete_topic(state, name),
        MetaCommand::JoinGroup { group, member } => join_group(state, group, member),
        MetaCommand::LeaveGroup { group, member_id } => leave_group(state, group, member_id),
        MetaCommand::CreateUser(user) => create_user(state, user),
        MetaCommand::DeleteUser { name } => delete_user(state, name),
        MetaCommand::SetPassword {
            name,
            password_hash,
        } => set_password(state, name, password_hash),
        MetaCommand::CreateAcl(rule) => Ok(MetaOutput::AclCreated(create_acl(state, rule))),
        MetaCommand::DeleteAcl { id } => match state.acls.remove(&id) {
            Some(_) => Ok(MetaOutput::Done),
            None => Err(MetaError::NoSuchAcl(id)),
        },
        MetaCommand::RevokeToken { jti, expires_at_s } => {
            state.revoked_tokens.insert(jti, expires_at_s);
            Ok(MetaOutput::Done)
        }
        MetaCommand::RevokeUserTokens { name } => match state.users.get_mut(&name) {
            Some(user) => {
                user.token_generation = next_generation(&mut state.next_token_generation);
                Ok(MetaOutput::Done)
            }
            None => Err(MetaError::NoSuchUser(name)),
        },
        MetaCommand::AddSigningKey(key) => {
            state.signing_keys.push(key);
            Ok(MetaOutput::Done)
        }
        MetaCommand::RotateSigningKey {
            key,
            retire_after_ms,
        } => rotate_signing_key(state, key, retire_after_ms, now_ms),
        MetaCommand::UpsertBroker(broker) => {
            upsert_broker(state, broker);
            Ok(MetaOutput::Done)
        }
        MetaCommand::DecommissionBroker { id } => match state.brokers.get_mut(&id) {
            Some(broker) => {
                broker.decommissioning = true;
                Ok(MetaOutput::Done)
            }
            None => Err(MetaError::NoSuchBroker(id)),
        },
        MetaCommand::SetBrokerDraining { id, draining } => match state.brokers.get_mut(&id) {
            Some(broker) => {
                broker.draining = draining;
                Ok(MetaOutput::Done)
            }
            None => Err(MetaError::NoSuchBroker(id)),
        },
        MetaCommand::RemoveBroker { id } => remove_broker(state, id),
        MetaCommand::SetReplicas { group, replicas } => set_replicas(state, group, replicas),
        MetaCommand::RegisterProducer {
            id,
            principal,
            created_ms,
        } => producers::register(&mut state.producers, id, principal, created_ms)
            .map(|()| MetaOutput::Done)
            .map_err(|taken| MetaError::Malformed(taken.to_string())),
    }
}

fn bootstrap(
    state: &mut MetadataState,
    brokers: Vec<BrokerInfo>,
    admin: UserRecord,
    key: SigningKey,
    audit_topic: TopicSpec,
    now_ms: u64,
) -> Result<MetaOutput, MetaError> {
    if state.bootstrapped {
        return Err(MetaError::AlreadyBootstrapped);
    }
    state.bootstrapped = true;
    state.next_group_id = state.next_group_id.max(1);
    for broker in brokers {
        state.brokers.insert(broker.id, broker);
    }
    let mut admin = admin;
    admin.token_generation = next_generation(&mut state.next_token_generation);
    state.users.insert(admin.name.clone(), admin);
    state.signing_keys.push(key);
    create_topic(state, audit_topic, now_ms).map(MetaOutput::Topic)
}

fn delete_topic(state: &mut MetadataState, name: String) -> Result<MetaOutput, MetaError> {
    match state.topics.remove(&name) {
        Some(_) => {
            rebalance_groups(state);
            Ok(MetaOutput::Done)
        }
        None => Err(MetaError::NoSuchTopic(name)),
    }
}

fn join_group(
    state: &mut MetadataState,
    group: String,
    member: GroupMember,
) -> Result<MetaOutput, MetaError> {
    if let Some(missing) = member
        .topics
        .iter()
        .find(|t| !state.topics.contains_key(*t))
    {
        return Err(MetaError::NoSuchTopic(missing.clone()));
    }
    // A re-join of a member it already has does not count against the principal's bound.
    let rejoin = state
        .groups
        .get(&group)
        .is_some_and(|g| g.members.contains_key(&member.member_id));
    if !rejoin {
        let held = state
            .groups
            .values()
            .flat_map(|g| g.members.values())
            .filter(|m| m.principal == member.principal)
            .count();
        if held >= MEMBERS_PER_PRINCIPAL_MAX {
            return Err(MetaError::TooManyMembers {
                principal: member.principal,
                members_max: MEMBERS_PER_PRINCIPAL_MAX,
            });
        }
        if !state.groups.contains_key(&group) && state.groups.len() >= GROUPS_MAX {
            return Err(MetaError::TooManyGroups {
                groups_max: GROUPS_MAX,
            });
        }
    }
    let entry = state.groups.entry(group).or_default();
    entry.join(member, &state.topics);
    Ok(MetaOutput::Group(entry.clone()))
}

fn leave_group(
    state: &mut MetadataState,
    group: String,
    member_id: String,
) -> Result<MetaOutput, MetaError> {
    let left = state
        .groups
        .get_mut(&group)
        .is_some_and(|entry| entry.leave(&member_id, &state.topics));
    if !left {
        return Err(MetaError::NoSuchMember { group, member_id });
    }
    Ok(MetaOutput::Done)
}

/// Hands out the next token generation; generations are never reused.
fn next_generation(counter: &mut u64) -> u64 {
    *counter = counter.saturating_add(1);
    *counter
}

fn create_user(state: &mut MetadataState, mut user: UserRecord) -> Result<MetaOutput, MetaError> {
    if state.users.contains_key(&user.name) {
        return Err(MetaError::UserExists(user.name));
    }
    user.token_generation = next_generation(&mut state.next_token_generation);
    state.users.insert(user.name.clone(), user);
    Ok(MetaOutput::Done)
}

/// Replaces the signing key: earlier keys verify until `now + retire_after_ms`, then go.
fn rotate_signing_key(
    state: &mut MetadataState,
    key: SigningKey,
    retire_after_ms: u64,
    now_ms: u64,
) -> Result<MetaOutput, MetaError> {
    if state.signing_keys.iter().any(|known| known.kid == key.kid) {
        return Err(MetaError::Malformed(format!(
            "signing key id {:?} is already in use",
            key.kid
        )));
    }
    let until_ms = now_ms.saturating_add(retire_after_ms);
    for earlier in &mut state.signing_keys {
        let retire_at = earlier
            .verify_until_ms
            .map_or(until_ms, |t| t.min(until_ms));
        earlier.verify_until_ms = Some(retire_at);
    }
    let mut key = key;
    key.verify_until_ms = None;
    key.created_ms = key.created_ms.max(now_ms);
    state.signing_keys.push(key);
    Ok(MetaOutput::Done)
}

fn set_password(
    state: &mut MetadataState,
    name: String,
    password_hash: String,
) -> Result<MetaOutput, MetaError> {
    match state.users.get_mut(&name) {
        Some(user) => {
            user.password_hash = password_hash;
            user.token_generation = next_generation(&mut state.next_token_generation);
            Ok(MetaOutput::Done)
        }
        None => Err(MetaError::NoSuchUser(name)),
    }
}

/// Stores `rule` under the next ACL id and answers it with that id.
fn create_acl(state: &mut MetadataState, mut rule: AclRule) -> AclRule {
    state.next_acl_id = state.next_acl_id.max(1);
    rule.id = state.next_acl_id;
    state.next_acl_id += 1;
    state.acls.insert(rule.id, rule.clone());
    rule
}

/// A broker reporting itself keeps its decommissioning mark, and its client URL when it reports
/// none.
fn upsert_broker(state: &mut MetadataState, mut broker: BrokerInfo) {
    if let Some(current) = state.brokers.get(&broker.id) {
        broker.decommissioning = current.decommissioning;
        if broker.http.is_empty() {
            broker.http = current.http.clone();
        }
    }
    state.brokers.insert(broker.id, broker);
}

fn set_replicas(
    state: &mut MetadataState,
    group: GroupId,
    replicas: Vec<u64>,
) -> Result<MetaOutput, MetaError> {
    let assignment = state
        .topics
        .values_mut()
        .flat_map(|topic| topic.partitions.iter_mut())
        .find(|assignment| assignment.group == group)
        .ok_or(MetaError::NoSuchGroup(group.0))?;
    assignment.replicas = replicas;
    assignment.initial.clear();
    Ok(MetaOutput::Done)
}

/// Topics appeared or vanished: every group re-checks its assignment.
fn rebalance_groups(state: &mut MetadataState) {
    for group in state.groups.values_mut() {
        group.rebalance(&state.topics);
    }
}

fn remove_broker(state: &mut MetadataState, id: u64) -> Result<MetaOutput, MetaError> {
    if !state.brokers.contains_key(&id) {
        return Err(MetaError::NoSuchBroker(id));
    }
    let in_use = state
        .topics
        .values()
        .flat_map(|topic| &topic.partitions)
        .any(|assignment| assignment.replicas.contains(&id));
    if in_use {
        return Err(MetaError::BrokerInUse(id));
    }
    state.brokers.remove(&id);
    Ok(MetaOutput::Done)
}

fn create_topic(
    state: &mut MetadataState,
    spec: TopicSpec,
    now_ms: u64,
) -> Result<TopicMeta, MetaError> {
    if state.topics.contains_key(&spec.name) {
        return Err(MetaError::TopicExists(spec.name));
    }
    check_topic_share(state, &spec)?;
    let brokers: Vec<u64> = state
        .brokers
        .values()
        .filter(|broker| !broker.decommissioning)
        .map(|broker| broker.id)
        .collect();
    let racks: BTreeMap<u64, String> = state
        .brokers
        .values()
        .filter_map(|broker| Some((broker.id, broker.rack.clone()?)))
        .collect();
    let existing = placement::replica_counts(state.topics.values().flat_map(|t| &t.partitions));
    let plans = placement::plan(
        &brokers,
        &racks,
        &existing,
        spec.partitions,
        spec.replication_factor,
    )?;
    let partitions = plans
        .into_iter()
        .enumerate()
        .map(|(position, replicas)| {
            let group = GroupId(state.next_group_id.max(1) + position as u64);
            PartitionAssignment {
                partition: position as u32,
                group,
                initial: replicas.clone(),
                replicas,
            }
        })
        .collect::<Vec<_>>();
    state.next_group_id = state.next_group_id.max(1) + partitions.len() as u64;
    let topic = TopicMeta {
        name: spec.name.clone(),
        partitions,
        replication_factor: spec.replication_factor,
        retention_ms: spec.retention_ms,
        retention_bytes: spec.retention_bytes,
        created_ms: now_ms,
        internal: spec.internal,
        owner: spec.owner.clone(),
    };
    state.topics.insert(spec.name, topic.clone());
    Ok(topic)
}

/// A principal that is not a superuser owns at most `TOPICS_PER_PRINCIPAL_MAX` topics and
/// `PARTITIONS_PER_PRINCIPAL_MAX` partitions.
fn check_topic_share(state: &MetadataState, spec: &TopicSpec) -> Result<(), MetaError> {
    let Some(owner) = &spec.owner else {
        return Ok(());
    };
    if state.users.get(owner).is_some_and(|user| user.superuser) {
        return Ok(());
    }
    let owned = state
        .topics
        .values()
        .filter(|topic| topic.owner.as_ref() == Some(owner));
    let (topics, partitions) = owned.fold((0usize, 0u64), |(topics, partitions), topic| {
        (topics + 1, partitions + topic.partitions.len() as u64)
    });
    if topics >= TOPICS_PER_PRINCIPAL_MAX
        || partitions + u64::from(spec.partitions) > PARTITIONS_PER_PRINCIPAL_MAX
    {
        return Err(MetaError::TooManyTopics {
            principal: owner.clone(),
            topics,
            partitions,
            topics_max: TOPICS_PER_PRINCIPAL_MAX,
            partitions_max: PARTITIONS_PER_PRINCIPAL_MAX,
        });
    }
    Ok(())
}

fn delete_user(state: &mut MetadataState, name: String) -> Result<MetaOutput, MetaError> {
    let Some(user) = state.users.get(&name) else {
        return Err(MetaError::NoSuchUser(name));
    };
    if user.superuser && state.users.values().filter(|u| u.superuser).count() == 1 {
        return Err(MetaError::LastSuperuser);
    }
    state.users.remove(&name);
    // What the user was granted ends with it: a user later created with the same name starts
    // with no rules and no producer ids.
    state.acls.retain(|_, rule| rule.principal != name);
    for topic in state.topics.values_mut() {
        if topic.owner.as_ref() == Some(&name) {
            topic.owner = None;
        }
    }
    state
        .producers
        .retain(|_, producer| producer.principal != name);
    for group in state.groups.values_mut() {
        let before = group.members.len();
        group.members.retain(|_, member| member.principal != name);
        if group.members.len() != before {
            group.rebalance(&state.topics);
        }
    }
    Ok(MetaOutput::Done)
}

impl MetadataState {
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked_tokens.contains_key(jti)
    }

    /// The assignment of `(topic, partition)`, if both exist.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionAssignment> {
        self.topics.get(topic)?.partitions.get(partition as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::acl::{Effect, Operation, Pattern, ResourceType};

    fn run(state: &mut MetadataState, now_ms: u64, command: MetaCommand) -> MetaOutput {
        apply(state, MetaEnvelope { now_ms, command }).expect("command applies")
    }

    fn user(name: &str, superuser: bool) -> UserRecord {
        UserRecord {
            name: name.into(),
            password_hash: "h".into(),
            superuser,
            created_ms: 0,
            token_generation: 0,
        }
    }

    fn generation(state: &MetadataState, name: &str) -> u64 {
        state.users[name].token_generation
    }

    #[test]
    fn token_generations_change_on_password_revoke_all_and_re_creation() {
        let mut state = MetadataState::default();
        run(&mut state, 0, MetaCommand::CreateUser(user("admin", true)));
        run(&mut state, 0, MetaCommand::CreateUser(user("alice", false)));
        let first = generation(&state, "alice");
        assert_ne!(first, generation(&state, "admin"));
        let password = MetaCommand::SetPassword {
            name: "alice".into(),
            password_hash: "h2".into(),
        };
        run(&mut state, 0, password);
        let second = generation(&state, "alice");
        assert!(second > first);
        run(
            &mut state,
            0,
            MetaCommand::RevokeUserTokens {
                name: "alice".into(),
            },
        );
        let third = generation(&state, "alice");
        assert!(third > second);
        run(
            &mut state,
            0,
            MetaCommand::DeleteUser {
                name: "alice".into(),
            },
        );
        run(&mut state, 0, MetaCommand::CreateUser(user("alice", false)));
        assert!(
            generation(&state, "alice") > third,
            "a re-created user never matches"
        );
    }

    #[test]
    fn deleting_a_user_removes_its_rules_and_producer_ids() {
        let mut state = MetadataState::default();
        run(&mut state, 0, MetaCommand::CreateUser(user("admin", true)));
        run(&mut state, 0, MetaCommand::CreateUser(user("alice", false)));
        for principal in ["alice", "admin"] {
            let rule = AclRule {
                id: 0,
                principal: principal.into(),
                resource: ResourceType::Topic,
                pattern: Pattern::Any,
                operation: Operation::Read,
                effect: Effect::Allow,
            };
            run(&mut state, 0, MetaCommand::CreateAcl(rule));
            let producer = MetaCommand::RegisterProducer {
                id: format!("{principal:0>32}"),
                principal: principal.into(),
                created_ms: 0,
            };
            run(&mut state, 0, producer);
        }
        run(
            &mut state,
            0,
            MetaCommand::DeleteUser {
                name: "alice".into(),
            },
        );
        assert!(state.acls.values().all(|rule| rule.principal == "admin"));
        assert_eq!(state.acls.len(), 1);
        assert!(state.producers.values().all(|p| p.principal == "admin"));
        assert_eq!(state.producers.len(), 1);
    }

    #[test]
    fn rotation_retires_earlier_keys_and_prunes_them_after_their_date() {
        let mut state = MetadataState::default();
        let first = SigningKey::generate("k1", 1_000).unwrap();
        run(&mut state, 1_000, MetaCommand::AddSigningKey(first));
        let second = SigningKey::generate("k2", 2_000).unwrap();
        let rotate = MetaCommand::RotateSigningKey {
            key: second,
            retire_after_ms: 10_000,
        };
        run(&mut state, 2_000, rotate);
        let k1 = &state.signing_keys[0];
        assert_eq!(k1.verify_until_ms, Some(12_000));
        assert_eq!(
            crate::auth::jwt::current_key(&state.signing_keys).map(|k| k.kid.as_str()),
            Some("k2")
        );
        let reused = MetaCommand::RotateSigningKey {
            key: SigningKey::generate("k2", 3_000).unwrap(),
            retire_after_ms: 10_000,
        };
        assert!(apply(
            &mut state,
            MetaEnvelope {
                now_ms: 3_000,
                command: reused
            }
        )
        .is_err());
        // Any later command prunes the retired key once its date passed.
        run(&mut state, 11_999, tick());
        assert_eq!(state.signing_keys.len(), 2);
        run(&mut state, 12_000, tick());
        assert_eq!(state.signing_keys.len(), 1);
        assert_eq!(state.signing_keys[0].kid, "k2");
    }

    #[test]
    fn revocations_are_kept_until_the_time_they_carry() {
        let mut state = MetadataState::default();
        let revoke = MetaCommand::RevokeToken {
            jti: "j".into(),
            expires_at_s: 100,
        };
        run(&mut state, 0, revoke);
        run(&mut state, 99_999, tick());
        assert!(state.is_revoked("j"));
        run(&mut state, 100_000, tick());
        assert!(!state.is_revoked("j"));
    }

    fn member(id: usize, principal: &str) -> GroupMember {
        GroupMember {
            member_id: format!("m{id}"),
            principal: principal.into(),
            topics: Vec::new(),
            session_timeout_ms: 10_000,
            joined_ms: 0,
            assignments: Vec::new(),
            reset: Default::default(),
        }
    }

    #[test]
    fn one_principal_holds_a_bounded_number_of_group_members() {
        let mut state = MetadataState::default();
        for id in 0..MEMBERS_PER_PRINCIPAL_MAX {
            let join = MetaCommand::JoinGroup {
                group: format!("g{}", id % 10),
                member: member(id, "mallory"),
            };
            run(&mut state, 0, join);
        }
        let one_more = MetaCommand::JoinGroup {
            group: "g0".into(),
            member: member(MEMBERS_PER_PRINCIPAL_MAX, "mallory"),
        };
        let refused = apply(
            &mut state,
            MetaEnvelope {
                now_ms: 0,
                command: one_more,
            },
        );
        assert!(
            matches!(refused, Err(MetaError::TooManyMembers { .. })),
            "{refused:?}"
        );
        // A re-join of a member it has, and another principal, still go through.
        let rejoin = MetaCommand::JoinGroup {
            group: "g0".into(),
            member: member(0, "mallory"),
        };
        run(&mut state, 0, rejoin);
        let other = MetaCommand::JoinGroup {
            group: "g0".into(),
            member: member(MEMBERS_PER_PRINCIPAL_MAX + 1, "alice"),
        };
        run(&mut state, 0, other);
    }

    fn topic(name: &str, partitions: u32, owner: &str) -> MetaCommand {
        MetaCommand::CreateTopic(TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: 1,
            retention_ms: None,
            retention_bytes: None,
            internal: false,
            owner: Some(owner.into()),
        })
    }

    fn create(state: &mut MetadataState, command: MetaCommand) -> Result<MetaOutput, MetaError> {
        apply(state, MetaEnvelope { now_ms: 0, command })
    }

    #[test]
    fn one_principal_owns_a_bounded_number_of_topics_and_partitions() {
        let mut state = MetadataState::default();
        state.brokers.insert(
            1,
            BrokerInfo {
                id: 1,
                http: String::new(),
                peer: "127.0.0.1:1".into(),
                rack: None,
                decommissioning: false,
                draining: false,
            },
        );
        for principal in ["admin", "alice", "bob"] {
            let superuser = principal == "admin";
            run(
                &mut state,
                0,
                MetaCommand::CreateUser(user(principal, superuser)),
            );
        }
        for n in 0..TOPICS_PER_PRINCIPAL_MAX {
            run(&mut state, 0, topic(&format!("a{n}"), 1, "alice"));
        }
        let refused = create(&mut state, topic("one-more", 1, "alice"));
        assert!(
            matches!(refused, Err(MetaError::TooManyTopics { topics, .. }) if topics == TOPICS_PER_PRINCIPAL_MAX),
            "{refused:?}"
        );
        // Partitions count too: bob's one wide topic leaves room for exactly what is left.
        let most = PARTITIONS_PER_PRINCIPAL_MAX as u32 - 10;
        run(&mut state, 0, topic("wide", most, "bob"));
        let refused = create(&mut state, topic("wider", 11, "bob"));
        assert!(
            matches!(refused, Err(MetaError::TooManyTopics { .. })),
            "{refused:?}"
        );
        run(&mut state, 0, topic("last", 10, "bob"));
        // A superuser is not bounded, and deleting a user frees nothing for a re-created one
        // to inherit: its topics have no owner any more.
        run(&mut state, 0, topic("admins", 1, "admin"));
        run(
            &mut state,
            0,
            MetaCommand::DeleteUser {
                name: "alice".into(),
            },
        );
        run(&mut state, 0, MetaCommand::CreateUser(user("alice", false)));
        run(&mut state, 0, topic("one-more", 1, "alice"));
        assert!(state.topics["a0"].owner.is_none());
    }

    /// A command that always applies, for its pruning of expired revocations and keys.
    fn tick() -> MetaCommand {
        MetaCommand::UpsertBroker(BrokerInfo {
            id: 99,
            http: String::new(),
            peer: "127.0.0.1:1".into(),
            rack: None,
            decommissioning: false,
            draining: false,
        })
    }
}
