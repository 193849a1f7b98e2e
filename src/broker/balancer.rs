//! The balancer: runs on every broker, acts only while this broker leads the controller.
//!
//! Each round it keeps the controller's membership in line with the registered brokers (new
//! brokers join group 0 as learners, removed ones leave it), tracks which brokers are down,
//! builds a `ClusterView` from the leaders' descriptions and executes what the pure planners in
//! `cluster::balance` decide. A move is: add the replica to the assignment (its broker starts an
//! empty replica), add it as a learner, wait until it caught up, promote it, hand leadership
//! away from the replica being removed, remove it, and drop it from the assignment. A move that
//! stopped half-way (this broker stopped leading the controller, a step failed) leaves one replica
//! too many in the assignment; the planner finishes it (`MoveReason::Unfinished`) and every step
//! here is idempotent. The decisions are never made here; only their execution and the waiting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::forward::{ForwardReply, ForwardRequest, GroupDescription};
use super::{Broker, BrokerError};
use crate::cluster::balance::{
    plan_leaders, plan_moves, plan_preferred_leaders, without_preferred_groups, BalanceSettings,
    BrokerState, BrokerView, ClusterView, GroupView, Move,
};
use crate::cluster::{MetaCommand, MetadataState, METADATA_GROUP};
use crate::raft::{ConfChange, ConfChangeRefusal, GroupId, NodeId};

/// How long a new replica may take to catch up before its move is abandoned.
const CATCH_UP_WAIT: Duration = Duration::from_secs(600);
/// Pause between checks while waiting for a learner or a leadership transfer.
const POLL_MS: u64 = 200;

/// What the balancer needs beyond the broker.
#[derive(Clone, Debug)]
pub struct BalancerSettings {
    pub interval_ms: u64,
    pub balance: BalanceSettings,
    /// A broker silent this long (no Raft message to this broker) counts as down.
    pub silence_ms: u64,
    /// How many brokers should vote in the controller.
    pub controller_voters: usize,
}

/// Shared between the balancer task and the API that triggers a round.
#[derive(Default)]
pub struct BalancerHandle {
    pub trigger: Notify,
    in_flight: Mutex<Vec<Move>>,
    down_since: Mutex<BTreeMap<u64, u64>>,
}

impl BalancerHandle {
    pub fn in_flight(&self) -> Vec<Move> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Runs balancer rounds until the broker stops.
pub async fn run(broker: Arc<Broker>, settings: BalancerSettings) {
    let interval = Duration::from_millis(settings.interval_ms);
    loop {
        let _ = tokio::time::timeout(interval, broker.parts.balancer.trigger.notified()).await;
        if !broker.parts.controller.replica().status.borrow().is_leader {
            continue;
        }
        if let Err(error) = round(&broker, &settings).await {
            tracing::debug!(%error, "balancer round stopped early");
        }
    }
}

async fn round(broker: &Arc<Broker>, settings: &BalancerSettings) -> Result<(), BrokerError> {
    let state = broker.parts.controller.state();
    controller_membership(broker, &state, settings.controller_voters).await?;
    let brokers = broker_views(broker, &state, settings);
    let mut groups = Vec::new();
    for topic in state.topics.values() {
        for assignment in &topic.partitions {
            let description = broker.describe_group(assignment.group).await;
            groups.push(GroupView {
                group: assignment.group,
                replicas: assignment.replicas.clone(),
                replication_factor: topic.replication_factor,
                leader: description.as_ref().and_then(|d| d.leader),
                in_sync: description.as_ref().map(GroupDescription::in_sync),
            });
        }
    }
    let view = ClusterView { brokers, groups };
    let in_flight = broker.parts.balancer.in_flight();
    let moves = plan_moves(&view, &settings.balance, broker.now_ms(), &in_flight);
    for planned in moves {
        broker
            .parts
            .balancer
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(planned.clone());
        let worker = broker.clone();
        actix_web::rt::spawn(async move {
            tracing::info!(?planned, "replica move starts");
            match execute_move(&worker, &planned).await {
                Ok(()) => tracing::info!(?planned, "replica move done"),
                Err(error) => tracing::warn!(?planned, %error, "replica move failed"),
            }
            worker
                .parts
                .balancer
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|m| m != &planned);
            worker.parts.balancer.trigger.notify_one();
        });
    }
    if broker.parts.balancer.in_flight().is_empty() {
        let mut transfers = plan_preferred_leaders(&view);
        if transfers.is_empty() {
            transfers = plan_leaders(&without_preferred_groups(&view));
        }
        for (group, to) in transfers {
            let request = ForwardRequest::Transfer { group, to };
            if let Err(error) = broker.on_leader(request).await {
                tracing::debug!(%error, group = group.0, "leadership transfer refused");
            }
        }
        remove_emptied(broker, &state).await?;
    }
    Ok(())
}

/// Registered brokers join the controller as learners; caught-up learners are promoted while
/// fewer than `target` voters remain that are not being decommissioned; forgotten brokers leave.
/// One change per round, since a group takes one membership change at a time.
async fn controller_membership(
    broker: &Broker,
    state: &MetadataState,
    target: usize,
) -> Result<(), BrokerError> {
    let status = broker.parts.controller.replica().status.borrow().clone();
    if status.voters.is_empty() {
        return Ok(());
    }
    let members: BTreeSet<u64> = status
        .voters
        .iter()
        .chain(&status.learners)
        .map(|node| node.0)
        .collect();
    let staying = |id: &u64| state.brokers.get(id).is_some_and(|b| !b.decommissioning);
    let voting = status.voters.iter().filter(|n| staying(&n.0)).count();
    let caught_up = |id: &u64| {
        status
            .progress
            .iter()
            .any(|(node, matched)| node.0 == *id && *matched >= status.commit)
    };
    let change = state
        .brokers
        .keys()
        .find(|id| !members.contains(id))
        .map(|id| ConfChange::AddLearner(NodeId(*id)))
        .or_else(|| {
            (voting < target)
                .then(|| {
                    status
                        .learners
                        .iter()
                        .find(|n| staying(&n.0) && caught_up(&n.0))
                        .map(|n| ConfChange::PromoteLearner(*n))
                })
                .flatten()
        })
        .or_else(|| {
            members
                .iter()
                .find(|id| !state.brokers.contains_key(id) && **id != broker.parts.broker_id)
                .map(|id| ConfChange::RemoveNode(NodeId(*id)))
        });
    if let Some(change) = change {
        tracing::info!(?change, "controller membership change");
        let request = ForwardRequest::Membership {
            group: METADATA_GROUP,
            change,
        };
        broker.on_leader(request).await?;
    }
    Ok(())
}

fn broker_views(
    broker: &Broker,
    state: &MetadataState,
    settings: &BalancerSettings,
) -> Vec<BrokerView> {
    let now = broker.now_ms();
    let mut down_since = broker
        .parts
        .balancer
        .down_since
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    down_since.retain(|id, _| state.brokers.contains_key(id));
    state
        .brokers
        .values()
        .map(|info| {
            let silent = info.id != broker.parts.broker_id
                && broker.parts.liveness.as_ref().is_some_and(|l| {
                    l(info.id).is_none_or(|s| s.as_millis() as u64 > settings.silence_ms)
                });
            let state = if info.decommissioning {
                BrokerState::Decommissioning
            } else if silent {
                let since = *down_since.entry(info.id).or_insert(now);
                BrokerState::Down { since_ms: since }
            } else if info.draining {
                down_since.remove(&info.id);
                BrokerState::Draining
            } else {
                down_since.remove(&info.id);
                BrokerState::Up
            };
            BrokerView {
                id: info.id,
                rack: info.rack.clone(),
                state,
            }
        })
        .collect()
}

/// A decommissioned broker that carries no replica any more is forgotten. The controller leader
/// does not forget itself: it hands the controller to another voter first.
async fn remove_emptied(broker: &Broker, state: &MetadataState) -> Result<(), BrokerError> {
    for info in state.brokers.values().filter(|b| b.decommissioning) {
        let used = state
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(|p| p.replicas.contains(&info.id));
        if used {
            continue;
        }
        if info.id == broker.parts.broker_id {
            let status = broker.parts.controller.replica().status.borrow().clone();
            if let Some(to) = status.voters.iter().find(|n| n.0 != broker.parts.broker_id) {
                let request = ForwardRequest::Transfer {
                    group: METADATA_GROUP,
                    to: to.0,
                };
                broker.on_leader(request).await?;
            }
            continue;
        }
        tracing::info!(
            broker = info.id,
            "decommissioned broker is empty; removing it"
        );
        broker
            .propose(MetaCommand::RemoveBroker { id: info.id })
            .await?;
    }
    Ok(())
}

async fn execute_move(broker: &Broker, planned: &Move) -> Result<(), BrokerError> {
    let group = planned.group;
    let current = assignment(broker, group)?;
    if !current.contains(&planned.add) {
        let mut grown = current.clone();
        grown.push(planned.add);
        set_replicas(broker, group, grown).await?;
    }
    membership(broker, group, ConfChange::AddLearner(NodeId(planned.add))).await?;
    wait_caught_up(broker, group, planned.add).await?;
    membership(
        broker,
        group,
        ConfChange::PromoteLearner(NodeId(planned.add)),
    )
    .await?;
    if let Some(remove) = planned.remove {
        move_leadership_off(broker, group, remove).await?;
        membership(broker, group, ConfChange::RemoveNode(NodeId(remove))).await?;
        let assigned = assignment(broker, group)?;
        // Finishing a half-done move by dropping the replica it added (the last one): the
        // others keep their order, so the preferred leader stays.
        let dropping_newest = assigned.last() == Some(&remove);
        let mut replaced: Vec<u64> = assigned
            .into_iter()
            .filter(|id| *id != planned.add || dropping_newest)
            .filter(|id| *id != remove || !dropping_newest)
            .map(|id| if id == remove { planned.add } else { id })
            .collect();
        if !replaced.contains(&planned.add) {
            replaced.push(planned.add);
        }
        set_replicas(broker, group, replaced).await?;
    }
    Ok(())
}

fn assignment(broker: &Broker, group: GroupId) -> Result<Vec<u64>, BrokerError> {
    broker
        .parts
        .controller
        .state()
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .find(|p| p.group == group)
        .map(|p| p.replicas.clone())
        .ok_or_else(|| BrokerError::NotFound(format!("group {} no longer exists", group.0)))
}

async fn set_replicas(
    broker: &Broker,
    group: GroupId,
    replicas: Vec<u64>,
) -> Result<(), BrokerError> {
    broker
        .propose(MetaCommand::SetReplicas { group, replicas })
        .await
        .map(|_| ())
}

/// Proposes a membership change; a change that already happened counts as done.
async fn membership(
    broker: &Broker,
    group: GroupId,
    change: ConfChange,
) -> Result<(), BrokerError> {
    let request = ForwardRequest::Membership { group, change };
    match broker.on_leader(request).await {
        Ok(_) => Ok(()),
        Err(BrokerError::MembershipRefused(refusal)) if already_done(change, refusal) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Whether the leader refused `change` because the configuration already holds its outcome: the
/// node is a member (add), no longer a learner (promote), gone (remove).
fn already_done(change: ConfChange, refusal: ConfChangeRefusal) -> bool {
    matches!(
        (change, refusal),
        (ConfChange::AddLearner(_), ConfChangeRefusal::AlreadyMember)
            | (ConfChange::PromoteLearner(_), ConfChangeRefusal::NotLearner)
            | (ConfChange::RemoveNode(_), ConfChangeRefusal::NotMember)
    )
}

async fn describe(broker: &Broker, group: GroupId) -> Result<GroupDescription, BrokerError> {
    match broker
        .on_leader(ForwardRequest::Describe { group })
        .await?
        .reply
    {
        ForwardReply::Described(description) => Ok(description),
        _ => Err(BrokerError::Internal(
            "describe answered with something else".into(),
        )),
    }
}

async fn wait_caught_up(broker: &Broker, group: GroupId, node: u64) -> Result<(), BrokerError> {
    let deadline = tokio::time::Instant::now() + CATCH_UP_WAIT;
    loop {
        let description = describe(broker, group).await?;
        let matched = description
            .progress
            .iter()
            .find(|(id, _)| *id == node)
            .map(|(_, index)| *index);
        if matched.is_some_and(|m| m >= description.commit) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BrokerError::Unavailable(format!(
                "broker {node} did not catch up with group {} within {CATCH_UP_WAIT:?}",
                group.0
            )));
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// A leader cannot remove itself safely mid-move: hand leadership to another voter first.
async fn move_leadership_off(
    broker: &Broker,
    group: GroupId,
    node: u64,
) -> Result<(), BrokerError> {
    let deadline = tokio::time::Instant::now() + broker.parts.forward_timeout;
    loop {
        let description = describe(broker, group).await?;
        if description.leader != Some(node) {
            return Ok(());
        }
        let in_sync = description.in_sync();
        let target = description
            .voters
            .iter()
            .find(|id| **id != node && in_sync.contains(id))
            .copied();
        if let Some(to) = target {
            let _ = broker
                .on_leader(ForwardRequest::Transfer { group, to })
                .await;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(BrokerError::Unavailable(format!(
                "leadership of group {} did not leave broker {node}",
                group.0
            )));
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_refusal_that_means_the_change_holds_counts_as_done() {
        let node = NodeId(4);
        let refusals = [
            ConfChangeRefusal::AlreadyMember,
            ConfChangeRefusal::NotLearner,
            ConfChangeRefusal::NotMember,
            ConfChangeRefusal::LastVoter,
        ];
        let changes = [
            (
                ConfChange::AddLearner(node),
                ConfChangeRefusal::AlreadyMember,
            ),
            (
                ConfChange::PromoteLearner(node),
                ConfChangeRefusal::NotLearner,
            ),
            (ConfChange::RemoveNode(node), ConfChangeRefusal::NotMember),
        ];
        for (change, done) in changes {
            for refusal in refusals {
                assert_eq!(
                    already_done(change, refusal),
                    refusal == done,
                    "{change:?} refused with {refusal:?}"
                );
            }
        }
    }
}
