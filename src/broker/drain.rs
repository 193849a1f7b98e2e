//! A graceful stop: before a broker stops it hands every leadership it holds (the controller's
//! included) to an in-sync replica on a broker that is up, so that writes move to the new
//! leaders instead of failing with the stopping broker.
//!
//! Owns the drain's order and its deadline; the transfers are Raft's (`TransferLeadership`), the
//! choice of target is `drain_target` (pure). The broker first marks itself draining in the
//! controller's metadata, so the balancer moves no leadership back to it; its report at the next
//! start-up clears the mark.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Broker;
use crate::cluster::{MetaCommand, METADATA_GROUP};
use crate::partition::{ReplicaStatus, TransferLeadership};
use crate::raft::{GroupId, NodeId};

/// How often the drain looks at which groups this broker still leads.
const CHECK_EVERY: Duration = Duration::from_millis(20);
/// How long the drain waits for its draining mark to commit (a controller without a majority
/// does not hold the stop).
const MARK_WAIT: Duration = Duration::from_secs(2);

/// What a drain did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Groups this broker led when the drain started.
    pub led_at_start: usize,
    /// Groups it still led at the deadline (or had no in-sync replica to hand to).
    pub still_led: Vec<GroupId>,
    pub elapsed: Duration,
}

/// The replica to hand a group's leadership to: the first of `preferred` (the assignment's
/// order; empty for the controller) that is in sync and eligible, else any in-sync eligible
/// member. `None` when no other member is in sync.
pub fn drain_target(
    status: &ReplicaStatus,
    own: u64,
    preferred: &[u64],
    eligible: impl Fn(u64) -> bool,
) -> Option<u64> {
    let in_sync: Vec<u64> = status
        .in_sync()
        .into_iter()
        .map(|node| node.0)
        .filter(|id| *id != own && status.voters.contains(&NodeId(*id)))
        .collect();
    preferred
        .iter()
        .copied()
        .find(|id| in_sync.contains(id) && eligible(*id))
        .or_else(|| in_sync.iter().copied().find(|id| eligible(*id)))
}

impl Broker {
    /// Whether this broker is stopping (`/readyz` answers 503 from then on).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Hands away every leadership this broker holds, until none is left or `deadline` passed.
    /// A transfer that did not finish is asked again after `retry_after` (Raft abandons a
    /// transfer after an election timeout). A broker without peers has nothing to hand to.
    pub async fn drain(&self, deadline: Duration, retry_after: Duration) -> DrainReport {
        let started = Instant::now();
        let until = started + deadline;
        self.draining.store(true, Ordering::Relaxed);
        if self.parts.peers.is_none() {
            return DrainReport::default();
        }
        let mark = MetaCommand::SetBrokerDraining {
            id: self.parts.broker_id,
            draining: true,
        };
        let mark_until = until.min(started + MARK_WAIT);
        match tokio::time::timeout_at(mark_until, self.propose(mark)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot mark this broker draining"),
            Err(_) => tracing::warn!("marking this broker draining did not finish in time"),
        }
        let mut asked: HashMap<GroupId, Instant> = HashMap::new();
        let mut led_at_start = None;
        let report =
            |led: Vec<(GroupId, ReplicaStatus)>, led_at_start: Option<usize>| DrainReport {
                led_at_start: led_at_start.unwrap_or(0),
                still_led: led.into_iter().map(|(group, _)| group).collect(),
                elapsed: started.elapsed(),
            };
        let mut no_target_since: Option<Instant> = None;
        loop {
            let led = self.led_here();
            led_at_start.get_or_insert(led.len());
            let now = Instant::now();
            if led.is_empty() || now >= until {
                return report(led, led_at_start);
            }
            let mut any_target = false;
            for (group, status) in &led {
                let preferred = self.preferred_replicas(*group);
                let eligible = |id: u64| self.can_lead_for_drain(id);
                let Some(to) = drain_target(status, self.parts.broker_id, &preferred, eligible)
                else {
                    continue;
                };
                any_target = true;
                if asked.get(group).is_some_and(|at| now < *at + retry_after) {
                    continue;
                }
                asked.insert(*group, now);
                self.ask_transfer(*group, to);
            }
            // Every other broker is stopping too, or none is in sync, for an election timeout:
            // waiting longer would only delay the stop.
            let since = if any_target {
                None
            } else {
                Some(*no_target_since.get_or_insert(now))
            };
            no_target_since = since;
            if since.is_some_and(|since| now >= since + retry_after) {
                return report(led, led_at_start);
            }
            tokio::time::sleep(CHECK_EVERY.min(until.saturating_duration_since(now))).await;
        }
    }

    /// The groups whose replica here leads, with their status.
    fn led_here(&self) -> Vec<(GroupId, ReplicaStatus)> {
        let mut led = Vec::new();
        let controller = self.parts.controller.replica().status.borrow().clone();
        if controller.is_leader {
            led.push((METADATA_GROUP, controller));
        }
        for group in self.parts.registry.running() {
            if let Some(handle) = self.parts.registry.get(group) {
                let status = handle.status.borrow().clone();
                if status.is_leader {
                    led.push((group, status));
                }
            }
        }
        led
    }

    fn preferred_replicas(&self, group: GroupId) -> Vec<u64> {
        let state = self.parts.controller.state();
        state
            .topics
            .values()
            .flat_map(|topic| topic.partitions.iter())
            .find(|assignment| assignment.group == group)
            .map(|assignment| assignment.replicas.clone())
            .unwrap_or_default()
    }

    /// A broker that is registered, not stopping itself and heard from recently.
    fn can_lead_for_drain(&self, id: u64) -> bool {
        let state = self.parts.controller.state();
        let registered = state
            .brokers
            .get(&id)
            .is_some_and(|info| !info.draining && !info.decommissioning);
        let heard = self.parts.liveness.as_ref().is_none_or(|liveness| {
            liveness(id).is_some_and(|silence| silence < self.parts.forward_timeout)
        });
        registered && heard
    }

    /// Sends the transfer to this broker's replica of `group` without waiting for it.
    fn ask_transfer(&self, group: GroupId, to: u64) {
        let message = TransferLeadership(NodeId(to));
        if group == METADATA_GROUP {
            self.parts.controller.replica().addr.do_send(message);
        } else if let Some(handle) = self.parts.registry.get(group) {
            handle.addr.do_send(message);
        }
        tracing::debug!(group = group.0, to, "drain: leadership transfer asked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{LogIndex, Term};

    fn leader_status(progress: &[(u64, u64)], commit: u64) -> ReplicaStatus {
        ReplicaStatus {
            leader: Some(NodeId(1)),
            term: Term(3),
            is_leader: true,
            commit: LogIndex(commit),
            applied: LogIndex(commit),
            last_index: LogIndex(commit),
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            learners: Vec::new(),
            progress: progress
                .iter()
                .map(|(id, matched)| (NodeId(*id), LogIndex(*matched)))
                .collect(),
            progress_commit: LogIndex(commit),
            quiesced: false,
        }
    }

    #[test]
    fn the_first_preferred_in_sync_replica_is_chosen() {
        let status = leader_status(&[(1, 10), (2, 10), (3, 10)], 10);
        assert_eq!(drain_target(&status, 1, &[1, 3, 2], |_| true), Some(3));
        assert_eq!(drain_target(&status, 1, &[], |_| true), Some(2));
    }

    #[test]
    fn lagging_ineligible_and_self_are_never_chosen() {
        let status = leader_status(&[(1, 10), (2, 7), (3, 10)], 10);
        assert_eq!(drain_target(&status, 1, &[2, 3], |_| true), Some(3));
        assert_eq!(drain_target(&status, 1, &[2, 3], |id| id != 3), None);
        let alone = leader_status(&[(1, 10), (2, 4), (3, 2)], 10);
        assert_eq!(drain_target(&alone, 1, &[1, 2, 3], |_| true), None);
    }

    #[test]
    fn a_learner_in_sync_is_not_a_target() {
        let mut status = leader_status(&[(1, 10), (4, 10)], 10);
        status.voters = vec![NodeId(1), NodeId(2), NodeId(3)];
        status.learners = vec![NodeId(4)];
        assert_eq!(drain_target(&status, 1, &[4], |_| true), None);
    }
}
