//! Keeps the partition replicas running on this broker equal to the assignments in the metadata state,
//! and holds the routing table (`Registry`) the HTTP layer uses to reach them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::metadata::MetadataState;
use crate::partition::retention::Retention;
use crate::partition::{Host, PartitionHandle, SetRetention, Stop};
use crate::raft::{GroupId, NodeId};

/// Running partition replicas of this broker, by group.
#[derive(Default)]
pub struct Registry {
    partitions: RwLock<HashMap<GroupId, PartitionHandle>>,
    changed: tokio::sync::Notify,
}

impl Registry {
    pub fn get(&self, group: GroupId) -> Option<PartitionHandle> {
        self.partitions
            .read()
            .expect("registry lock is never poisoned")
            .get(&group)
            .cloned()
    }

    /// Waits up to `timeout` for the replica of `group` to be running here.
    pub async fn wait_for(
        &self,
        group: GroupId,
        timeout: std::time::Duration,
    ) -> Option<PartitionHandle> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            if let Some(handle) = self.get(group) {
                return Some(handle);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.get(group);
            }
        }
    }

    fn running(&self) -> BTreeSet<GroupId> {
        self.partitions
            .read()
            .expect("registry lock is never poisoned")
            .keys()
            .copied()
            .collect()
    }

    fn insert(&self, handle: PartitionHandle) {
        self.partitions
            .write()
            .expect("registry lock is never poisoned")
            .insert(handle.group, handle);
        self.changed.notify_waiters();
    }

    fn remove(&self, group: GroupId) -> Option<PartitionHandle> {
        self.partitions
            .write()
            .expect("registry lock is never poisoned")
            .remove(&group)
    }

    /// Stops every replica (shutdown).
    pub fn stop_all(&self) {
        for (_, handle) in self
            .partitions
            .write()
            .expect("registry lock is never poisoned")
            .drain()
        {
            handle.addr.do_send(Stop);
        }
    }
}

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

/// Follows the metadata state until the sender is dropped.
pub async fn run(
    host: Arc<Host>,
    registry: Arc<Registry>,
    mut view: watch::Receiver<Arc<MetadataState>>,
) {
    loop {
        let state = view.borrow_and_update().clone();
        reconcile_once(&host, &registry, &state).await;
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

async fn reconcile_once(host: &Host, registry: &Registry, state: &MetadataState) {
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
            clock: crate::cluster::now_ms,
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
