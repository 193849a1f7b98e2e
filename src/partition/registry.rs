//! The replicas of partition groups running on this broker, by group: the table every layer
//! above uses to reach a partition's actor. Reconciliation (in `cluster`) decides what runs;
//! this table only holds what does.

use std::collections::{BTreeSet, HashMap};
use std::sync::RwLock;

use super::{PartitionHandle, Stop};
use crate::raft::GroupId;

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

    pub fn running(&self) -> BTreeSet<GroupId> {
        self.partitions
            .read()
            .expect("registry lock is never poisoned")
            .keys()
            .copied()
            .collect()
    }

    pub fn insert(&self, handle: PartitionHandle) {
        self.partitions
            .write()
            .expect("registry lock is never poisoned")
            .insert(handle.group, handle);
        self.changed.notify_waiters();
    }

    pub fn remove(&self, group: GroupId) -> Option<PartitionHandle> {
        self.partitions
            .write()
            .expect("registry lock is never poisoned")
            .remove(&group)
    }

    /// Sends `message` to every replica whose status passes `filter` (read under the lock, so
    /// a slow mailbox never holds it: `do_send` does not wait).
    pub fn notify<F>(&self, filter: F, message: impl Fn() -> super::PeerDown)
    where
        F: Fn(&super::ReplicaStatus) -> bool,
    {
        let partitions = self
            .partitions
            .read()
            .expect("registry lock is never poisoned");
        for handle in partitions.values() {
            if filter(&handle.status.borrow()) {
                handle.addr.do_send(message());
            }
        }
    }

    /// How many partition replicas run here, and how many of them are quiesced.
    pub fn quiesced_count(&self) -> (usize, usize) {
        let partitions = self
            .partitions
            .read()
            .expect("registry lock is never poisoned");
        let quiesced = partitions
            .values()
            .filter(|handle| handle.status.borrow().quiesced)
            .count();
        (partitions.len(), quiesced)
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
