//! Keeps the partition replicas running on this broker equal to the assignments in the metadata
//! state, starting and stopping them in the partition layer's `Registry`.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::watch;

use super::metadata::MetadataState;
use crate::clock::SharedClock;
use crate::partition::retention::Retention;
use crate::partition::{Host, Registry, SetRetention, Stop};
use crate::raft::{GroupId, NodeId};

/// A partition replica this broker should run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub group: GroupId,
    /// The membership to create the group with when it is not on disk yet.
    pub voters: Vec<NodeId>,
    pub retention: Retention,
}

/// Groups assigned to `node`, with their replica lists and retention.
pub fn desired_groups(state: &MetadataState, node: NodeId) -> Vec<Desired> {
    state
        .topics
        .values()
        .flat_map(|topic| {
            let retention = Retention {
                retention_ms: topic.retention_ms,
                retention_bytes: topic.retention_bytes,
            };
            topic.partitions.iter().map(move |p| (p, retention))
        })
        .filter(|(p, _)| p.replicas.contains(&node.0))
        .map(|(p, retention)| Desired {
            group: p.group,
            // A replica added later joins empty and receives the membership by snapshot.
            voters: if p.initial.contains(&node.0) {
                p.initial.iter().map(|id| NodeId(*id)).collect()
            } else {
                Vec::new()
            },
            retention,
        })
        .collect()
}

/// Whether `state` names broker `node` as a replica of `group`: in the partition's assignment,
/// or, for the controller group, as a registered broker (every broker holds a controller
/// replica). During a move the assignment already lists the new replica before it is added to
/// the group and still lists the old one until it has left, so it covers the configuration of
/// every replica of the group.
pub fn is_assigned(state: &MetadataState, group: GroupId, node: NodeId) -> bool {
    if group == super::METADATA_GROUP {
        return state.brokers.contains_key(&node.0);
    }
    state
        .topics
        .values()
        .flat_map(|topic| &topic.partitions)
        .find(|partition| partition.group == group)
        .is_some_and(|partition| partition.replicas.contains(&node.0))
}

/// Follows the metadata state until the sender is dropped.
pub async fn run(
    host: Arc<Host>,
    registry: Arc<Registry>,
    mut view: watch::Receiver<Arc<MetadataState>>,
    clock: SharedClock,
) {
    loop {
        let state = view.borrow_and_update().clone();
        reconcile_once(&host, &registry, &state, &clock).await;
        if view.changed().await.is_err() {
            return;
        }
    }
}

/// Removes stored groups that no assignment names any more (a topic deleted while a replica was
/// stopping, or before a restart), so their space is freed. Call it only with a state that covers
/// the controller's whole log, or a group created by an entry not yet applied would be lost.
pub async fn delete_orphans(host: &Host, state: &MetadataState) {
    if !state.bootstrapped {
        return;
    }
    let desired: BTreeSet<GroupId> = desired_groups(state, host.node())
        .iter()
        .map(|d| d.group)
        .collect();
    let stored = match host.store.groups() {
        Ok(groups) => groups,
        Err(error) => {
            tracing::error!(%error, "cannot list stored groups");
            return;
        }
    };
    for group in stored {
        if group != super::METADATA_GROUP && !desired.contains(&group) {
            tracing::info!(group = group.0, "deleting the data of an unassigned group");
            if let Err(error) = host.delete_group(group).await {
                tracing::error!(%error, group = group.0, "cannot delete partition data");
            }
        }
    }
}

async fn reconcile_once(
    host: &Host,
    registry: &Registry,
    state: &MetadataState,
    clock: &SharedClock,
) {
    let desired = desired_groups(state, host.node());
    let desired_ids: BTreeSet<GroupId> = desired.iter().map(|d| d.group).collect();
    for Desired {
        group,
        voters,
        retention,
    } in desired
    {
        let retention = SetRetention {
            retention,
            check_ms: host.settings.retention_check_ms,
            clock: clock.clone(),
        };
        if let Some(handle) = registry.get(group) {
            handle.addr.do_send(retention);
            continue;
        }
        let started = match host.ensure_group(group, voters).await {
            Ok(()) => host.start_partition(group),
            Err(error) => Err(error),
        };
        match started {
            Ok(handle) => {
                handle.addr.do_send(retention);
                registry.insert(handle);
            }
            Err(error) => {
                tracing::error!(%error, group = group.0, "cannot start partition replica")
            }
        }
    }
    for group in registry.running().difference(&desired_ids) {
        if let Some(handle) = registry.remove(*group) {
            // Wait until the replica has stopped, so none of its writes can follow the delete.
            if handle.addr.send(Stop).await.is_err() {
                tracing::debug!(group = group.0, "replica was already stopped");
            }
            if let Err(error) = host.delete_group(*group).await {
                tracing::error!(%error, group = group.0, "cannot delete partition data");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::records::{BrokerInfo, PartitionAssignment, TopicMeta};

    fn state() -> MetadataState {
        let mut state = MetadataState::default();
        for id in [1, 2, 3, 4] {
            let info = BrokerInfo {
                id,
                http: String::new(),
                peer: format!("127.0.0.1:{}", 9440 + id),
                rack: None,
                decommissioning: false,
                draining: false,
            };
            state.brokers.insert(id, info);
        }
        let partition = PartitionAssignment {
            partition: 0,
            group: GroupId(7),
            // A move in flight: 4 joins, 1 has not left yet.
            replicas: vec![1, 2, 3, 4],
            initial: vec![1, 2, 3],
        };
        let topic = TopicMeta {
            name: "orders".into(),
            partitions: vec![partition],
            replication_factor: 3,
            retention_ms: None,
            retention_bytes: None,
            created_ms: 0,
            internal: false,
            owner: None,
        };
        state.topics.insert(topic.name.clone(), topic);
        state
    }

    #[test]
    fn a_partition_names_its_replicas_and_the_controller_every_broker() {
        let state = state();
        assert!(is_assigned(&state, GroupId(7), NodeId(4)));
        assert!(is_assigned(&state, GroupId(7), NodeId(1)));
        assert!(!is_assigned(&state, GroupId(7), NodeId(5)));
        assert!(!is_assigned(&state, GroupId(8), NodeId(1)), "no such group");
        assert!(is_assigned(&state, super::super::METADATA_GROUP, NodeId(4)));
        assert!(!is_assigned(
            &state,
            super::super::METADATA_GROUP,
            NodeId(5)
        ));
    }
}
