//! Cluster operations: the cluster report, registering a joining broker, decommissioning one and
//! triggering a balancer round.

use std::collections::BTreeMap;

use super::forward::{ForwardReply, ForwardRequest};
use super::{Broker, BrokerError, Caller};
use crate::address::PeerAddress;
use crate::audit::actions;
use crate::auth::acl::{Operation, ResourceType};
use crate::cluster::metadata::{BrokerInfo, PartitionAssignment, TopicMeta};
use crate::cluster::MetaCommand;
use crate::partition::ReplicaStatus;
use crate::wire::{BrokerView, ClusterView, ControllerView, PartitionView};

/// A broker silent longer than this is reported down.
const DOWN_AFTER_MS: u64 = 3000;

/// Brokers' silence as the controller leader hears it; `None` when no leader answered.
type Health = Option<Vec<(u64, Option<u64>)>>;

impl Broker {
    /// `GET /v1/cluster`: the controller, every broker and every partition, as this broker and
    /// the controller leader see them.
    pub async fn cluster_report(&self, caller: &Caller) -> Result<ClusterView, BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Describe)
            .await?;
        let state = self.parts.controller.state();
        let status = self.parts.controller.replica().status.borrow().clone();
        let health = match self.on_leader(ForwardRequest::Health).await {
            Ok(led) => match led.reply {
                ForwardReply::Health(health) => Some(health),
                _ => None,
            },
            Err(_) => None,
        };
        let brokers = state
            .brokers
            .values()
            .map(|info| broker_report(info, &health, &status))
            .collect();
        let mut partitions = Vec::new();
        for topic in state.topics.values() {
            for assignment in &topic.partitions {
                partitions.push(self.partition_report(topic, assignment).await);
            }
        }
        Ok(ClusterView {
            broker: self.parts.broker_id,
            controller: ControllerView {
                leader: status.leader.map(|n| n.0),
                term: Some(status.term.0),
                voters: status.voters.iter().map(|n| n.0).collect(),
                learners: status.learners.iter().map(|n| n.0).collect(),
            },
            brokers,
            partitions,
            moves_in_flight: self.parts.balancer.in_flight().len() as u64,
        })
    }

    /// One partition as its leader describes it (leader, commit, lag per replica); only the
    /// assignment when no leader answered.
    async fn partition_report(
        &self,
        topic: &TopicMeta,
        assignment: &PartitionAssignment,
    ) -> PartitionView {
        let mut report = PartitionView {
            topic: topic.name.clone(),
            partition: assignment.partition,
            group: Some(assignment.group.0),
            replicas: assignment.replicas.clone(),
            leader: None,
            term: None,
            commit: None,
            lag: BTreeMap::new(),
            voters: Vec::new(),
            learners: Vec::new(),
        };
        if let Some(description) = self.describe_group(assignment.group).await {
            report.leader = description.leader;
            report.term = Some(description.term);
            report.commit = Some(description.commit);
            report.voters = description.voters.clone();
            report.learners = description.learners.clone();
            for (node, matched) in &description.progress {
                let lag = description.commit.saturating_sub(*matched);
                report.lag.insert(node.to_string(), lag);
            }
        }
        report
    }

    /// Registers a broker that joins the cluster; it must then be started with `cluster.join`.
    pub async fn add_broker(
        &self,
        caller: &Caller,
        id: u64,
        peer: &str,
    ) -> Result<(), BrokerError> {
        if id == 0 || id > u64::from(u32::MAX) {
            return Err(BrokerError::BadRequest(format!(
                "broker id must be between 1 and {}, got {id}",
                u32::MAX
            )));
        }
        if peer.parse::<PeerAddress>().is_err() {
            return Err(BrokerError::BadRequest(format!(
                "peer must be host:port, the host an IP address or a DNS name, such as \
                 127.0.0.1:9444 or palisade-3.palisade.default.svc.cluster.local:9441, \
                 got {peer:?}"
            )));
        }
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Alter)
            .await?;
        if self.parts.controller.state().brokers.contains_key(&id) {
            return Err(BrokerError::Conflict(format!(
                "broker {id} is already registered"
            )));
        }
        self.record_change(caller, actions::BROKER_ADD, &format!("broker/{id}"))
            .await?;
        let info = BrokerInfo {
            id,
            http: String::new(),
            peer: peer.to_string(),
            rack: None,
            decommissioning: false,
            draining: false,
        };
        self.propose(MetaCommand::UpsertBroker(info)).await?;
        self.balancer_now().await;
        Ok(())
    }

    /// Marks a broker to be emptied; the balancer moves its replicas away, then forgets it.
    pub async fn decommission(&self, caller: &Caller, id: u64) -> Result<(), BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Alter)
            .await?;
        if !self.parts.controller.state().brokers.contains_key(&id) {
            return Err(BrokerError::NotFound(format!(
                "broker {id} is not registered"
            )));
        }
        self.record_change(
            caller,
            actions::BROKER_DECOMMISSION,
            &format!("broker/{id}"),
        )
        .await?;
        self.propose(MetaCommand::DecommissionBroker { id }).await?;
        self.balancer_now().await;
        Ok(())
    }

    /// Starts a balancer round on the controller leader now.
    pub async fn rebalance(&self, caller: &Caller) -> Result<(), BrokerError> {
        self.authorize(caller, ResourceType::Cluster, "*", Operation::Alter)
            .await?;
        self.record_change(caller, actions::REBALANCE, "cluster")
            .await?;
        self.on_leader(ForwardRequest::Rebalance).await?;
        Ok(())
    }

    async fn balancer_now(&self) {
        if let Err(error) = self.on_leader(ForwardRequest::Rebalance).await {
            tracing::debug!(%error, "could not start a balancer round");
        }
    }
}

/// One broker's line of the report: its state from the controller leader's view of its silence,
/// and its part in the controller group.
fn broker_report(info: &BrokerInfo, health: &Health, status: &ReplicaStatus) -> BrokerView {
    let silence_ms = health
        .as_ref()
        .and_then(|h| h.iter().find(|(id, _)| *id == info.id))
        .and_then(|(_, silence)| *silence);
    let state = if info.decommissioning {
        "decommissioning"
    } else {
        match (health, silence_ms) {
            (None, _) => "unknown",
            (Some(_), Some(ms)) if ms <= DOWN_AFTER_MS && info.draining => "draining",
            (Some(_), Some(ms)) if ms <= DOWN_AFTER_MS => "up",
            _ => "down",
        }
    };
    let role = if status.voters.iter().any(|n| n.0 == info.id) {
        "voter"
    } else if status.learners.iter().any(|n| n.0 == info.id) {
        "learner"
    } else {
        "none"
    };
    BrokerView {
        id: info.id,
        http: info.http.clone(),
        peer: info.peer.clone(),
        rack: info.rack.clone(),
        state: state.to_string(),
        controller: role.to_string(),
        silence_ms,
    }
}
