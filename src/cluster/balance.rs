//! Pure balancer decisions: which replicas to move and which leaderships to transfer.
//!
//! The balancer actor on the controller leader (`broker::balancer`) builds a `ClusterView` from the
//! metadata state and replica health, calls `plan_moves`, `plan_preferred_leaders` and
//! `plan_leaders`, and executes the results.
//! This module owns only the decisions; it must not do I/O, read clocks (time is `now_ms`, an
//! input) or use randomness: the same inputs always give the same plan.
//!
//! A `Move` is executed as: add `add` as a learner, wait until it caught up, promote it, then
//! remove `remove`. The add always precedes the remove, so a group never has fewer voters than
//! before the move.

use std::collections::{BTreeMap, BTreeSet};

use crate::raft::GroupId;

/// Health of a broker as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerState {
    Up,
    /// Unreachable since `since_ms`; its replicas are re-created once the down timeout passes.
    Down {
        since_ms: u64,
    },
    /// Being emptied by an admin; receives no new replicas.
    Decommissioning,
    /// Stopping: keeps its replicas (it is coming back) but receives no new replica and no
    /// leadership.
    Draining,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerView {
    pub id: u64,
    pub rack: Option<String>,
    pub state: BrokerState,
}

/// One partition group as assigned and, where known, as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub group: GroupId,
    /// Assigned replicas, distinct, preferred leader first.
    pub replicas: Vec<u64>,
    pub replication_factor: u16,
    /// The current leader, if one is known.
    pub leader: Option<u64>,
    /// Replicas known to be caught up with the leader; `None` when not reported.
    pub in_sync: Option<Vec<u64>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    pub brokers: Vec<BrokerView>,
    pub groups: Vec<GroupView>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BalanceSettings {
    /// How long a broker may stay down before its replicas are re-created elsewhere.
    pub down_timeout_ms: u64,
    /// Moves in flight at once, cluster wide, counting those already running.
    pub concurrent_moves_max: usize,
}

/// Why a move was planned, in the order the planner serves them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoveReason {
    /// The group has fewer replicas than its replication factor.
    UnderReplicated,
    /// `broker` has been down longer than the down timeout.
    BrokerDown { broker: u64 },
    /// `broker` is being decommissioned.
    Decommissioning { broker: u64 },
    /// Replica counts of Up brokers differ by more than one.
    Balance,
    /// The group has one replica more than its factor: a move that stopped half-way (the
    /// controller leader changed or a step failed) is finished.
    Unfinished,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub group: GroupId,
    /// Joins as a learner, is promoted once caught up.
    pub add: u64,
    /// Removed only after `add` is a voter; `None` when the group is short of replicas.
    pub remove: Option<u64>,
    pub reason: MoveReason,
}

/// Plans replica moves, most urgent first, within the concurrency bound.
///
/// Groups with a move in `in_flight` are left alone, and `in_flight` counts against
/// `concurrent_moves_max`. Targets are Up brokers only, never one already holding the group;
/// brokers in racks the group does not use yet are preferred, then the least loaded.
pub fn plan_moves(
    view: &ClusterView,
    settings: &BalanceSettings,
    now_ms: u64,
    in_flight: &[Move],
) -> Vec<Move> {
    let mut planner = Planner::new(view, settings, in_flight);
    for group in &view.groups {
        planner.repair(group, now_ms);
    }
    planner.balance();
    planner.moves
}

/// Working state of one `plan_moves` call.
struct Planner<'a> {
    view: &'a ClusterView,
    brokers: BTreeMap<u64, &'a BrokerView>,
    down_timeout_ms: u64,
    budget: usize,
    busy: BTreeSet<GroupId>,
    /// Projected replica count of each Up broker once planned and in-flight moves complete.
    loads: BTreeMap<u64, u64>,
    moves: Vec<Move>,
}

impl<'a> Planner<'a> {
    fn new(view: &'a ClusterView, settings: &BalanceSettings, in_flight: &[Move]) -> Planner<'a> {
        let brokers: BTreeMap<u64, &BrokerView> = view.brokers.iter().map(|b| (b.id, b)).collect();
        let mut loads: BTreeMap<u64, u64> = view
            .brokers
            .iter()
            .filter(|b| b.state == BrokerState::Up)
            .map(|b| (b.id, 0))
            .collect();
        for group in &view.groups {
            for replica in &group.replicas {
                if let Some(load) = loads.get_mut(replica) {
                    *load += 1;
                }
            }
        }
        let mut busy = BTreeSet::new();
        for running in in_flight {
            busy.insert(running.group);
            let replicas = view
                .groups
                .iter()
                .find(|g| g.group == running.group)
                .map(|g| g.replicas.as_slice())
                .unwrap_or(&[]);
            // The view may or may not reflect a running move yet; project its end state.
            if !replicas.contains(&running.add) {
                if let Some(load) = loads.get_mut(&running.add) {
                    *load += 1;
                }
            }
            if let Some(removed) = running.remove.filter(|r| replicas.contains(r)) {
                if let Some(load) = loads.get_mut(&removed) {
                    *load = load.saturating_sub(1);
                }
            }
        }
        Planner {
            view,
            brokers,
            down_timeout_ms: settings.down_timeout_ms,
            budget: settings
                .concurrent_moves_max
                .saturating_sub(in_flight.len()),
            busy,
            loads,
            moves: Vec::new(),
        }
    }

    fn rack(&self, broker: u64) -> Option<&'a str> {
        self.brokers.get(&broker).and_then(|b| b.rack.as_deref())
    }

    /// The replica of `group` that must leave, and why: down past the timeout first.
    fn leaving(&self, group: &GroupView, now_ms: u64) -> Option<(u64, MoveReason)> {
        let mut decommissioning = None;
        for replica in &group.replicas {
            match self.brokers.get(replica).map(|b| &b.state) {
                Some(BrokerState::Down { since_ms })
                    if now_ms.saturating_sub(*since_ms) > self.down_timeout_ms =>
                {
                    return Some((*replica, MoveReason::BrokerDown { broker: *replica }));
                }
                // A broker missing from the view is gone for good: treat it as down.
                None => return Some((*replica, MoveReason::BrokerDown { broker: *replica })),
                Some(BrokerState::Decommissioning) if decommissioning.is_none() => {
                    decommissioning =
                        Some((*replica, MoveReason::Decommissioning { broker: *replica }));
                }
                _ => {}
            }
        }
        decommissioning
    }

    /// Restores the replication factor or moves a replica off a leaving broker.
    fn repair(&mut self, group: &GroupView, now_ms: u64) {
        if self.budget == 0 || self.busy.contains(&group.group) {
            return;
        }
        if group.replicas.len() > usize::from(group.replication_factor) {
            self.finish(group, now_ms);
            return;
        }
        let (remove, reason) = if group.replicas.len() < usize::from(group.replication_factor) {
            (None, MoveReason::UnderReplicated)
        } else if let Some((broker, reason)) = self.leaving(group, now_ms) {
            (Some(broker), reason)
        } else {
            return;
        };
        let staying: Vec<u64> = group
            .replicas
            .iter()
            .copied()
            .filter(|r| Some(*r) != remove)
            .collect();
        if let Some(add) = self.pick_target(group, &staying) {
            self.push(Move {
                group: group.group,
                add,
                remove,
                reason,
            });
        }
    }

    /// Finishes a move that stopped half-way, seen as one replica more than the factor. The
    /// move appended its new replica last (`broker::balancer::execute_move`). If that broker is
    /// Up, the move goes on with it: the replica removed is one that is no longer in sync (it
    /// may already have left the group's membership), else one on a leaving broker, else the
    /// one on the most loaded broker. If the new replica's broker is not Up, the new replica
    /// is the one removed: the "add" is then an in-sync voter the group already has, so the
    /// add steps are no-ops and only the removal runs.
    fn finish(&mut self, group: &GroupView, now_ms: u64) {
        let Some((&newest, others)) = group.replicas.split_last() else {
            return;
        };
        let up = |id: &u64| {
            self.brokers
                .get(id)
                .is_some_and(|b| b.state == BrokerState::Up)
        };
        let in_sync = |id: &u64| group.in_sync.as_ref().is_some_and(|s| s.contains(id));
        let (add, remove) = if up(&newest) {
            let earlier = GroupView {
                replicas: others.to_vec(),
                ..group.clone()
            };
            let lagging = others.iter().copied().find(|id| !in_sync(id));
            let leaving = self.leaving(&earlier, now_ms).map(|(id, _)| id);
            let loaded = others
                .iter()
                .copied()
                .max_by_key(|id| (self.loads.get(id).copied().unwrap_or(0), *id));
            let Some(remove) = lagging.or(leaving).or(loaded) else {
                return;
            };
            (newest, remove)
        } else {
            let Some(voter) = others.iter().copied().find(|id| up(id) && in_sync(id)) else {
                return;
            };
            (voter, newest)
        };
        assert!(self.busy.insert(group.group), "second move for {group:?}");
        if let Some(load) = self.loads.get_mut(&remove) {
            *load = load.saturating_sub(1);
        }
        self.budget -= 1;
        self.moves.push(Move {
            group: group.group,
            add,
            remove: Some(remove),
            reason: MoveReason::Unfinished,
        });
    }

    /// Best Up broker outside `group`: a rack not among `staying`, then least loaded, then lowest id.
    fn pick_target(&self, group: &GroupView, staying: &[u64]) -> Option<u64> {
        let used_racks: BTreeSet<&str> = staying.iter().filter_map(|r| self.rack(*r)).collect();
        self.loads
            .iter()
            .filter(|(id, _)| !group.replicas.contains(id))
            .min_by_key(|(id, load)| {
                let rack_used = self
                    .rack(**id)
                    .is_some_and(|rack| used_racks.contains(rack));
                (rack_used, **load, **id)
            })
            .map(|(id, _)| *id)
    }

    fn push(&mut self, planned: Move) {
        assert!(self.budget > 0, "planned beyond the budget: {planned:?}");
        assert!(
            self.busy.insert(planned.group),
            "second move for {planned:?}"
        );
        *self
            .loads
            .get_mut(&planned.add)
            .expect("targets are Up brokers") += 1;
        if let Some(load) = planned.remove.and_then(|r| self.loads.get_mut(&r)) {
            *load -= 1;
        }
        self.budget -= 1;
        self.moves.push(planned);
    }

    /// Moves replicas from the fullest Up brokers to the emptiest until counts are within one.
    fn balance(&mut self) {
        while self.budget > 0 {
            match self.next_balance_move() {
                Some(planned) => self.push(planned),
                None => return,
            }
        }
    }

    fn next_balance_move(&self) -> Option<Move> {
        let mut by_load: Vec<(u64, u64)> = self.loads.iter().map(|(id, l)| (*l, *id)).collect();
        by_load.sort();
        for &(source_load, source) in by_load.iter().rev() {
            for &(target_load, target) in &by_load {
                if target_load + 1 >= source_load {
                    break;
                }
                let candidate = self.view.groups.iter().find(|group| {
                    !self.busy.contains(&group.group)
                        && group.replicas.contains(&source)
                        && !group.replicas.contains(&target)
                        && self.keeps_rack_spread(group, source, target)
                });
                if let Some(group) = candidate {
                    return Some(Move {
                        group: group.group,
                        add: target,
                        remove: Some(source),
                        reason: MoveReason::Balance,
                    });
                }
            }
        }
        None
    }

    /// A balance move must not leave the group in fewer distinct racks than before.
    fn keeps_rack_spread(&self, group: &GroupView, source: u64, target: u64) -> bool {
        let racks = |replicas: &mut dyn Iterator<Item = u64>| {
            replicas
                .filter_map(|r| self.rack(r))
                .collect::<BTreeSet<_>>()
                .len()
        };
        let before = racks(&mut group.replicas.iter().copied());
        let after = racks(
            &mut group
                .replicas
                .iter()
                .copied()
                .filter(|r| *r != source)
                .chain([target]),
        );
        after >= before
    }
}

/// Plans leadership transfers so Up brokers lead within one group of each other.
///
/// A group is only transferred to an Up broker listed in its `in_sync` replicas; groups without a
/// known leader on an Up broker, or without in-sync information, are left alone. Among equally
/// loaded candidates the earlier one in `replicas` (the preferred leader) wins.
pub fn plan_leaders(view: &ClusterView) -> Vec<(GroupId, u64)> {
    let up: BTreeSet<u64> = view
        .brokers
        .iter()
        .filter(|b| b.state == BrokerState::Up)
        .map(|b| b.id)
        .collect();
    let mut leaders: BTreeMap<u64, u64> = up.iter().map(|id| (*id, 0)).collect();
    let mut led: Vec<(GroupId, u64)> = Vec::new();
    for group in &view.groups {
        if let Some(leader) = group.leader.filter(|l| up.contains(l)) {
            *leaders.get_mut(&leader).expect("leader is Up") += 1;
            led.push((group.group, leader));
        }
    }
    let mut transfers = Vec::new();
    let mut moved: BTreeSet<GroupId> = BTreeSet::new();
    // Each transfer lowers the sum of squared leader counts, so this ends.
    while let Some((group, from, to)) = next_transfer(view, &up, &leaders, &led, &moved) {
        *leaders.get_mut(&from).expect("from is Up") -= 1;
        *leaders.get_mut(&to).expect("to is Up") += 1;
        moved.insert(group);
        transfers.push((group, to));
    }
    transfers
}

/// Preferred-leader election: hands each group back to its first replica (the leader placement
/// chose) when that broker is Up and in sync and does not lead it already.
pub fn plan_preferred_leaders(view: &ClusterView) -> Vec<(GroupId, u64)> {
    let up: BTreeSet<u64> = view
        .brokers
        .iter()
        .filter(|b| b.state == BrokerState::Up)
        .map(|b| b.id)
        .collect();
    view.groups
        .iter()
        .filter_map(|group| {
            let preferred = *group.replicas.first()?;
            let leader = group.leader?;
            let in_sync = group.in_sync.as_ref()?;
            (leader != preferred && up.contains(&preferred) && in_sync.contains(&preferred))
                .then_some((group.group, preferred))
        })
        .collect()
}

/// The view `plan_leaders` may act on once preferred leaders are served: a group led by its
/// preferred replica is never moved away from it (its in-sync set is hidden), so the two plans
/// cannot undo each other.
pub fn without_preferred_groups(view: &ClusterView) -> ClusterView {
    let mut view = view.clone();
    for group in &mut view.groups {
        if group.leader.is_some() && group.leader == group.replicas.first().copied() {
            group.in_sync = None;
        }
    }
    view
}

fn next_transfer(
    view: &ClusterView,
    up: &BTreeSet<u64>,
    leaders: &BTreeMap<u64, u64>,
    led: &[(GroupId, u64)],
    moved: &BTreeSet<GroupId>,
) -> Option<(GroupId, u64, u64)> {
    let mut sources: Vec<(u64, u64)> = leaders.iter().map(|(id, n)| (*n, *id)).collect();
    sources.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (source_count, source) in sources {
        for (group_id, _) in led
            .iter()
            .filter(|(g, l)| *l == source && !moved.contains(g))
        {
            let group = view
                .groups
                .iter()
                .find(|g| g.group == *group_id)
                .expect("led groups come from the view");
            let Some(in_sync) = &group.in_sync else {
                continue;
            };
            let best = group
                .replicas
                .iter()
                .enumerate()
                .filter(|(_, r)| **r != source && up.contains(r) && in_sync.contains(r))
                .filter(|(_, r)| leaders[*r] + 1 < source_count)
                .min_by_key(|(position, r)| (leaders[*r], *position));
            if let Some((_, target)) = best {
                return Some((*group_id, source, *target));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests;
