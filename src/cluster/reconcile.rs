//! Keeps the partition replicas running on this broker equal to the assignments in the metadata state,
//! and holds the routing table (`Registry`) the HTTP layer uses to reach them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::metadata::MetadataState;
use crate::partition::{Host, PartitionHandle, Stop};
use crate::raft::{GroupId, NodeId};

/// Running partition replicas of this broker, by group.
#[derive(Default)]
pub struct Registry {
    partitions: RwLock<HashMap<GroupId, PartitionHandle>>,
    changed: tokio::sync::Notify,
}

impl Registry {
    pub fn get(&self, group: GroupId) -> Option<PartitionHandle> {
        self.partitions.read().expect("registry lock is never poisoned").get(&group).cloned()
    }

    /// Waits up to `timeout` for the replica of `group` to be running here.
    pub async fn wait_for(&self, group: GroupId, timeout: std::time::Duration) -> Option<PartitionHandle> {
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
        self.partitions.read().expect("registry lock is never poisoned").keys().copied().collect()
    }

    fn insert(&self, handle: PartitionHandle) {
        self.partitions.write().expect("registry lock is never poisoned").insert(handle.group, handle);
        self.changed.notify_waiters();
    }

    fn remove(&self, group: GroupId) -> Option<PartitionHandle> {
        self.partitions.write().expect("registry lock is never poisoned").remove(&group)
    }

    /// Stops every replica (shutdown).
    pub fn stop_all(&self) {
        for (_, handle) in self.partitions.write().expect("registry lock is never poisoned").drain() {
            handle.addr.do_send(Stop);
        }
    }
}

/// Groups assigned to `node` with their replica lists.
pub fn desired_groups(state: &MetadataState, node: NodeId) -> Vec<(GroupId, Vec<NodeId>)> {
    state
        .topics
        .values()
        .flat_map(|topic| &topic.partitions)
        .filter(|p| p.replicas.contains(&node.0))
        .map(|p| (p.group, p.replicas.iter().map(|id| NodeId(*id)).collect()))
        .collect()
}

/// Follows the metadata state until the sender is dropped.
pub async fn run(host: Arc<Host>, registry: Arc<Registry>, mut view: watch::Receiver<Arc<MetadataState>>) {
    loop {
        let state = view.borrow_and_update().clone();
        reconcile_once(&host, &registry, &state).await;
        if view.changed().await.is_err() {
            return;
        }
    }
}

async fn reconcile_once(host: &Host, registry: &Registry, state: &MetadataState) {
    let desired = desired_groups(state, host.node());
    let desired_ids: BTreeSet<GroupId> = desired.iter().map(|(group, _)| *group).collect();
    for (group, voters) in desired {
        if registry.get(group).is_some() {
            continue;
        }
        let started = match host.ensure_group(group, voters).await {
            Ok(()) => host.start_partition(group),
            Err(error) => Err(error),
        };
        match started {
            Ok(handle) => registry.insert(handle),
            Err(error) => tracing::error!(%error, group = group.0, "cannot start partition replica"),
        }
    }
    for group in registry.running().difference(&desired_ids) {
        if let Some(handle) = registry.remove(*group) {
            handle.addr.do_send(Stop);
            if let Err(error) = host.delete_group(*group).await {
                tracing::error!(%error, group = group.0, "cannot delete partition data");
            }
        }
    }
}
