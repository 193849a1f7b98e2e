//! JSON shapes of the cluster routes: `GET /v1/cluster` and the broker registration body.
//!
//! The cluster view is read leniently: every field has a default, so a broker that leaves one
//! out (or an older broker that reports only its brokers) still decodes. A `controller` given
//! as a bare broker id is read as the controller leader. No logic beyond (de)serialization.
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

/// `GET /v1/cluster` reply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ClusterView {
    /// The broker that answered.
    pub broker: u64,
    #[serde(deserialize_with = "controller_or_leader_id")]
    pub controller: ControllerView,
    pub brokers: Vec<BrokerView>,
    pub partitions: Vec<PartitionView>,
    /// Replica moves the balancer has started and not yet finished.
    pub moves_in_flight: u64,
}

/// The controller group: its leader, term, voters and learners.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct ControllerView {
    pub leader: Option<u64>,
    pub term: Option<u64>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// One broker as the cluster sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct BrokerView {
    pub id: u64,
    /// Base URL of its HTTPS API.
    pub http: String,
    /// `host:port` of its peer link.
    pub peer: String,
    pub rack: Option<String>,
    /// For example `up`, `down`, `joining`, `decommissioning`, `draining`.
    pub state: String,
    /// Its role in the controller group: `voter`, `learner`, or empty for none.
    pub controller: String,
    /// Milliseconds since the controller leader last heard from it.
    pub silence_ms: Option<u64>,
}

/// One partition's replica group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct PartitionView {
    pub topic: String,
    pub partition: u32,
    /// The Raft group id of the partition.
    pub group: Option<u64>,
    pub replicas: Vec<u64>,
    pub leader: Option<u64>,
    /// The leader's Raft term.
    pub term: Option<u64>,
    /// Highest committed log index.
    pub commit: Option<u64>,
    /// Entries each follower (by broker id) is behind the leader.
    pub lag: BTreeMap<String, u64>,
    /// The partition group's voters and learners.
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// `POST /v1/cluster/brokers` body: registers a joining broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AddBroker {
    pub id: u64,
    /// `host:port` of the new broker's peer link.
    pub peer: String,
}

/// `POST /v1/cluster/brokers/{id}/decommission` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DecommissionStarted {
    pub id: u64,
    /// Always `decommissioning`.
    pub state: String,
}

/// `POST /v1/cluster/rebalance` reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RebalanceStarted {
    /// Always `started`.
    pub rebalance: String,
}

/// Reads `controller` as an object, or as a bare broker id naming the leader; anything else
/// (such as `null`) is the empty default.
fn controller_or_leader_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<ControllerView, D::Error> {
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(match value {
        serde_json::Value::Number(number) => ControllerView {
            leader: number.as_u64(),
            ..ControllerView::default()
        },
        serde_json::Value::Object(_) => serde_json::from_value(value).unwrap_or_default(),
        _ => ControllerView::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_documented_shape() {
        let body = r#"{"controller":{"leader":1,"term":3,"voters":[1,2,3],"learners":[4]},
            "brokers":[{"id":1,"http":"https://127.0.0.1:8441","peer":"127.0.0.1:9441",
                        "rack":null,"state":"up","controller":"voter"}],
            "partitions":[{"topic":"orders","partition":0,"group":5,"replicas":[1,2,3],
                           "leader":1,"commit":120,"lag":{"2":0,"3":4}}]}"#;
        let view: ClusterView = serde_json::from_str(body).expect("decodes");
        assert_eq!(view.controller.leader, Some(1));
        assert_eq!(view.controller.learners, vec![4]);
        assert_eq!(view.brokers[0].controller, "voter");
        assert_eq!(view.partitions[0].replicas, vec![1, 2, 3]);
        assert_eq!(view.partitions[0].lag.get("3"), Some(&4));
    }

    #[test]
    fn missing_fields_and_a_bare_controller_id_decode() {
        let body = r#"{"brokers":[{"id":2,"extra":true}],"controller":2,"topics":1}"#;
        let view: ClusterView = serde_json::from_str(body).expect("decodes");
        assert_eq!(view.controller.leader, Some(2));
        assert_eq!(view.brokers[0].id, 2);
        assert_eq!(view.brokers[0].state, "");
        assert!(view.partitions.is_empty());
        let empty: ClusterView = serde_json::from_str("{}").expect("decodes");
        assert_eq!(empty, ClusterView::default());
    }
}
