//! The plain records of the controller's state: brokers, topics with their partition
//! assignments, users. Leaf of `cluster`: the decisions (`groups`, `placement`) and the state
//! machine (`metadata`) all read these; this file imports nothing else of the crate but `raft`
//! ids.

use serde::{Deserialize, Serialize};

use crate::raft::GroupId;

/// The group that carries this state.
pub const METADATA_GROUP: GroupId = GroupId(0);
/// The internal topic holding the audit log.
pub const AUDIT_TOPIC: &str = "__audit";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: u64,
    /// Client API URL; empty until the broker reports it.
    pub http: String,
    /// Peer-link address other brokers dial.
    pub peer: String,
    pub rack: Option<String>,
    /// An admin asked to empty this broker; it receives no new replicas.
    #[serde(default)]
    pub decommissioning: bool,
    /// The broker is stopping and handing its leaderships away: no leadership is moved to it
    /// until it reports itself again at start-up.
    #[serde(default)]
    pub draining: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub partition: u32,
    pub group: GroupId,
    /// Replica brokers; the first is the preferred leader.
    pub replicas: Vec<u64>,
    /// The voters the group was created with; a replica on one of them creates the group with
    /// this membership, any other replica joins empty and waits for the leader's snapshot.
    /// Cleared once the balancer changes the replicas.
    #[serde(default)]
    pub initial: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: Vec<PartitionAssignment>,
    pub replication_factor: u16,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
    pub created_ms: u64,
    pub internal: bool,
    /// The user that created it (`TopicSpec::owner`); cleared when that user is deleted.
    pub owner: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    /// argon2id PHC string; never leaves the broker.
    pub password_hash: String,
    pub superuser: bool,
    pub created_ms: u64,
    /// Tokens carry the generation they were issued at and are refused once it changed. The
    /// controller assigns it from a cluster-wide counter at creation, and again at every
    /// password change and revoke-all, so a re-created user never matches an old token.
    #[serde(default)]
    pub token_generation: u64,
}
