//! Table tests for each balancer rule and a seeded property test over random clusters.

use super::*;

fn up(id: u64) -> BrokerView {
    BrokerView {
        id,
        rack: None,
        state: BrokerState::Up,
    }
}

fn in_rack(id: u64, rack: &str) -> BrokerView {
    BrokerView {
        rack: Some(rack.to_string()),
        ..up(id)
    }
}

fn with_state(id: u64, state: BrokerState) -> BrokerView {
    BrokerView { state, ..up(id) }
}

/// A group whose replication factor is its replica count, led by its first replica, all in sync.
fn group(id: u64, replicas: &[u64]) -> GroupView {
    GroupView {
        group: GroupId(id),
        replicas: replicas.to_vec(),
        replication_factor: replicas.len() as u16,
        leader: replicas.first().copied(),
        in_sync: Some(replicas.to_vec()),
    }
}

fn settings(concurrent_moves_max: usize) -> BalanceSettings {
    BalanceSettings {
        down_timeout_ms: 1_000,
        concurrent_moves_max,
    }
}

/// Three brokers, six groups of replication factor 3, leaders rotated: balanced.
fn balanced_three() -> ClusterView {
    let orders = [[1, 2, 3], [2, 3, 1], [3, 1, 2]];
    ClusterView {
        brokers: vec![up(1), up(2), up(3)],
        groups: (0..6)
            .map(|i| group(i + 1, &orders[i as usize % 3]))
            .collect(),
    }
}

/// Replica counts of Up brokers after applying `moves` to `view`.
fn counts_after(view: &ClusterView, moves: &[Move]) -> BTreeMap<u64, u64> {
    let mut applied = view.clone();
    apply(&mut applied, moves);
    let mut counts: BTreeMap<u64, u64> = view
        .brokers
        .iter()
        .filter(|b| b.state == BrokerState::Up)
        .map(|b| (b.id, 0))
        .collect();
    for group in &applied.groups {
        for replica in &group.replicas {
            if let Some(count) = counts.get_mut(replica) {
                *count += 1;
            }
        }
    }
    counts
}

fn apply(view: &mut ClusterView, moves: &[Move]) {
    for planned in moves {
        let group = view
            .groups
            .iter_mut()
            .find(|g| g.group == planned.group)
            .expect("moves name known groups");
        group.replicas.retain(|r| Some(*r) != planned.remove);
        if !group.replicas.contains(&planned.add) {
            group.replicas.push(planned.add);
        }
    }
}

fn spread(counts: &BTreeMap<u64, u64>) -> u64 {
    let max = counts.values().max().copied().unwrap_or(0);
    let min = counts.values().min().copied().unwrap_or(0);
    max - min
}

#[test]
fn balanced_cluster_has_nothing_to_do() {
    let view = balanced_three();
    assert_eq!(plan_moves(&view, &settings(10), 5_000, &[]), vec![]);
    assert_eq!(plan_leaders(&view), vec![]);
}

#[test]
fn down_broker_is_replaced_only_after_the_timeout() {
    let mut view = balanced_three();
    view.brokers
        .push(with_state(4, BrokerState::Down { since_ms: 100 }));
    view.groups.push(group(7, &[4, 1, 2]));
    // Down for exactly the timeout: still waiting.
    assert_eq!(plan_moves(&view, &settings(10), 1_100, &[]), vec![]);
    let moves = plan_moves(&view, &settings(10), 1_101, &[]);
    assert_eq!(
        moves,
        vec![Move {
            group: GroupId(7),
            add: 3,
            remove: Some(4),
            reason: MoveReason::BrokerDown { broker: 4 },
        }]
    );
}

#[test]
fn decommissioning_broker_is_emptied_onto_the_others() {
    let mut view = balanced_three();
    view.brokers
        .push(with_state(4, BrokerState::Decommissioning));
    view.brokers.push(up(5));
    view.groups = vec![
        group(1, &[4, 1, 2]),
        group(2, &[3, 4, 1]),
        group(3, &[2, 3, 5]),
    ];
    let moves = plan_moves(&view, &settings(10), 0, &[]);
    assert_eq!(moves.len(), 2, "{moves:?}");
    for planned in &moves {
        assert_eq!(planned.remove, Some(4));
        assert_eq!(planned.reason, MoveReason::Decommissioning { broker: 4 });
        assert_ne!(planned.add, 4);
    }
    // The least loaded Up broker outside each group receives it: 5 (one replica), then 2 or 3.
    assert_eq!(moves[0].add, 5);
    assert!(counts_after(&view, &moves)
        .values()
        .all(|c| *c == 2 || *c == 3));
}

#[test]
fn new_broker_receives_replicas_until_counts_are_within_one() {
    let mut view = balanced_three();
    view.brokers.push(up(4));
    let moves = plan_moves(&view, &settings(10), 0, &[]);
    assert_eq!(
        moves.len(),
        4,
        "18 replicas over 4 brokers: 5,5,4,4 {moves:?}"
    );
    assert!(moves
        .iter()
        .all(|m| m.add == 4 && m.reason == MoveReason::Balance));
    let counts = counts_after(&view, &moves);
    assert!(spread(&counts) <= 1, "{counts:?}");
    // Applied, the cluster is balanced: nothing more to do.
    apply(&mut view, &moves);
    assert_eq!(plan_moves(&view, &settings(10), 0, &[]), vec![]);
}

/// A group with one replica more than its factor: a move stopped after adding its replica.
fn interrupted(id: u64, replicas: &[u64], in_sync: &[u64]) -> GroupView {
    GroupView {
        replication_factor: (replicas.len() - 1) as u16,
        in_sync: Some(in_sync.to_vec()),
        ..group(id, replicas)
    }
}

#[test]
fn an_interrupted_decommission_is_finished_with_the_replica_it_added() {
    let view = ClusterView {
        brokers: vec![
            with_state(1, BrokerState::Decommissioning),
            up(2),
            up(3),
            up(4),
        ],
        groups: vec![interrupted(1, &[2, 1, 3, 4], &[1, 2, 3, 4])],
    };
    let moves = plan_moves(&view, &settings(10), 0, &[]);
    let finish = Move {
        group: GroupId(1),
        add: 4,
        remove: Some(1),
        reason: MoveReason::Unfinished,
    };
    assert_eq!(moves, vec![finish]);
    let mut after = view.clone();
    apply(&mut after, &moves);
    assert_eq!(after.groups[0].replicas, vec![2, 3, 4]);
}

#[test]
fn an_interrupted_move_removes_the_replica_that_already_left_first() {
    // Broker 3 left the membership (not in sync, not leaving): it is the one removed, not the
    // most loaded one.
    let mut view = balanced_three();
    view.brokers.push(up(4));
    view.groups = vec![
        interrupted(1, &[1, 2, 3, 4], &[1, 2, 4]),
        group(2, &[1, 2, 4]),
        group(3, &[1, 2, 4]),
    ];
    let moves = plan_moves(&view, &settings(1), 0, &[]);
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!((moves[0].add, moves[0].remove), (4, Some(3)));
    // All in sync: the replica on the most loaded broker goes (1 and 2 hold 3 each; 2 wins the tie).
    view.groups[0] = interrupted(1, &[1, 2, 3, 4], &[1, 2, 3, 4]);
    let moves = plan_moves(&view, &settings(1), 0, &[]);
    assert_eq!((moves[0].add, moves[0].remove), (4, Some(2)), "{moves:?}");
}

#[test]
fn an_interrupted_move_whose_new_broker_is_down_removes_the_new_replica() {
    let view = ClusterView {
        brokers: vec![
            up(1),
            up(2),
            up(3),
            with_state(4, BrokerState::Down { since_ms: 0 }),
        ],
        groups: vec![interrupted(1, &[1, 2, 3, 4], &[1, 2, 3])],
    };
    let moves = plan_moves(&view, &settings(10), 0, &[]);
    assert_eq!(moves.len(), 1, "{moves:?}");
    assert_eq!((moves[0].add, moves[0].remove), (1, Some(4)));
    let mut after = view.clone();
    apply(&mut after, &moves);
    assert_eq!(after.groups[0].replicas, vec![1, 2, 3]);
    // A group in flight is left alone.
    assert!(plan_moves(&view, &settings(10), 0, &moves).is_empty());
}

#[test]
fn no_move_without_an_eligible_broker() {
    let mut view = balanced_three();
    view.brokers[2].state = BrokerState::Down { since_ms: 0 };
    assert_eq!(plan_moves(&view, &settings(10), 60_000, &[]), vec![]);
    view.brokers[2].state = BrokerState::Decommissioning;
    assert_eq!(plan_moves(&view, &settings(10), 60_000, &[]), vec![]);
    // A down spare is no target either.
    view.brokers
        .push(with_state(4, BrokerState::Down { since_ms: 0 }));
    assert_eq!(plan_moves(&view, &settings(10), 60_000, &[]), vec![]);
}

#[test]
fn under_replicated_group_gets_an_add_without_a_remove() {
    let mut view = balanced_three();
    view.groups = vec![GroupView {
        replication_factor: 3,
        ..group(1, &[1, 2])
    }];
    let moves = plan_moves(&view, &settings(10), 0, &[]);
    assert_eq!(
        moves,
        vec![Move {
            group: GroupId(1),
            add: 3,
            remove: None,
            reason: MoveReason::UnderReplicated,
        }]
    );
}

#[test]
fn concurrency_bound_counts_moves_in_flight() {
    let mut view = balanced_three();
    view.brokers
        .push(with_state(4, BrokerState::Decommissioning));
    view.brokers.push(up(5));
    view.groups = (1..=5).map(|i| group(i, &[4, 1, 2])).collect();
    let all = plan_moves(&view, &settings(10), 0, &[]);
    assert_eq!(all.len(), 5);
    assert_eq!(plan_moves(&view, &settings(2), 0, &[]).len(), 2);
    let running = vec![all[0].clone()];
    let next = plan_moves(&view, &settings(2), 0, &running);
    assert_eq!(next.len(), 1);
    assert_ne!(
        next[0].group, all[0].group,
        "a group in flight is left alone"
    );
    let running = vec![all[0].clone(), all[1].clone()];
    assert_eq!(plan_moves(&view, &settings(2), 0, &running), vec![]);
    assert_eq!(plan_moves(&view, &settings(0), 0, &[]), vec![]);
}

#[test]
fn at_most_one_move_per_group() {
    let view = ClusterView {
        brokers: vec![
            up(1),
            with_state(2, BrokerState::Decommissioning),
            with_state(3, BrokerState::Down { since_ms: 0 }),
            up(4),
            up(5),
        ],
        groups: vec![group(1, &[1, 2, 3])],
    };
    let moves = plan_moves(&view, &settings(10), 10_000, &[]);
    assert_eq!(moves.len(), 1, "{moves:?}");
    // The down broker is the more urgent of the two.
    assert_eq!(moves[0].remove, Some(3));
}

#[test]
fn replacement_prefers_an_unused_rack_over_a_lighter_broker() {
    let view = ClusterView {
        brokers: vec![
            in_rack(1, "a"),
            in_rack(2, "a"),
            in_rack(3, "b"),
            BrokerView {
                state: BrokerState::Down { since_ms: 0 },
                ..in_rack(4, "c")
            },
            in_rack(5, "c"),
        ],
        groups: vec![group(1, &[1, 3, 4]), group(2, &[5]), group(3, &[5])],
    };
    let moves = plan_moves(&view, &settings(1), 10_000, &[]);
    assert_eq!(moves.len(), 1);
    assert_eq!((moves[0].add, moves[0].remove), (5, Some(4)));
}

#[test]
fn balance_moves_never_shrink_a_groups_rack_spread() {
    let view = ClusterView {
        brokers: vec![in_rack(1, "a"), in_rack(2, "a"), in_rack(3, "b")],
        groups: (1..=4).map(|i| group(i, &[1, 3])).collect(),
    };
    let moves = plan_moves(&view, &settings(10), 0, &[]);
    assert_eq!(moves.len(), 2, "{moves:?}");
    for planned in &moves {
        assert_eq!((planned.add, planned.remove), (2, Some(1)));
    }
}

#[test]
fn moves_in_flight_count_toward_the_loads() {
    let mut view = balanced_three();
    view.brokers.push(up(4));
    let running = vec![Move {
        group: GroupId(1),
        add: 4,
        remove: Some(3),
        reason: MoveReason::Balance,
    }];
    let moves = plan_moves(&view, &settings(10), 0, &running);
    assert_eq!(
        moves.len(),
        3,
        "the running move is one of the four: {moves:?}"
    );
    assert!(moves.iter().all(|m| m.add == 4 && m.group != GroupId(1)));
    let mut all = running.clone();
    all.extend(moves);
    assert!(spread(&counts_after(&view, &all)) <= 1);
}

#[test]
fn replica_on_a_broker_missing_from_the_view_is_replaced() {
    let mut view = balanced_three();
    view.brokers.push(up(4));
    view.groups = vec![group(1, &[1, 2, 9])];
    let moves = plan_moves(&view, &settings(1), 0, &[]);
    assert_eq!(
        moves,
        vec![Move {
            group: GroupId(1),
            add: 3,
            remove: Some(9),
            reason: MoveReason::BrokerDown { broker: 9 },
        }]
    );
}

#[test]
fn leaders_spread_to_in_sync_up_brokers() {
    let mut view = balanced_three();
    for group in &mut view.groups {
        group.leader = Some(1);
    }
    let transfers = plan_leaders(&view);
    assert_eq!(transfers.len(), 4, "{transfers:?}");
    let mut led = BTreeMap::from([(1, 2), (2, 0), (3, 0)]);
    for (_, to) in &transfers {
        *led.get_mut(to).expect("known broker") += 1;
    }
    assert_eq!(led, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    // Equal candidates: the preferred (earlier) replica wins. Group 1 is [1, 2, 3].
    assert!(transfers.contains(&(GroupId(1), 2)), "{transfers:?}");
}

#[test]
fn leaders_move_only_to_in_sync_up_brokers() {
    let mut view = balanced_three();
    for group in &mut view.groups {
        group.leader = Some(1);
        group.in_sync = Some(vec![1, 3]);
    }
    view.brokers[2].state = BrokerState::Down { since_ms: 0 };
    assert_eq!(plan_leaders(&view), vec![], "2 is not in sync, 3 is down");
    for group in &mut view.groups {
        group.in_sync = None;
    }
    view.brokers[2].state = BrokerState::Up;
    assert_eq!(
        plan_leaders(&view),
        vec![],
        "unknown in-sync set: no transfer"
    );
}

mod property;

#[test]
fn preferred_leaders_return_when_up_and_in_sync() {
    use super::{plan_preferred_leaders, without_preferred_groups};
    let brokers = vec![
        BrokerView {
            id: 1,
            rack: None,
            state: BrokerState::Up,
        },
        BrokerView {
            id: 2,
            rack: None,
            state: BrokerState::Up,
        },
        BrokerView {
            id: 3,
            rack: None,
            state: BrokerState::Down { since_ms: 0 },
        },
    ];
    let group = |id: u64, replicas: Vec<u64>, leader: u64, in_sync: Vec<u64>| GroupView {
        group: GroupId(id),
        replicas,
        replication_factor: 3,
        leader: Some(leader),
        in_sync: Some(in_sync),
    };
    let view = ClusterView {
        brokers,
        groups: vec![
            // Preferred 1 is Up and in sync: leadership goes back to it.
            group(1, vec![1, 2, 3], 2, vec![1, 2]),
            // Preferred 2 is not in sync: left alone.
            group(2, vec![2, 1, 3], 1, vec![1]),
            // Preferred 3 is down: left alone.
            group(3, vec![3, 1, 2], 1, vec![1, 2]),
            // Already led by its preferred replica.
            group(4, vec![2, 1, 3], 2, vec![1, 2]),
        ],
    };
    assert_eq!(plan_preferred_leaders(&view), vec![(GroupId(1), 1)]);
    let rest = without_preferred_groups(&view);
    assert_eq!(
        rest.groups[3].in_sync, None,
        "a preferred-led group is pinned"
    );
    assert_eq!(rest.groups[0].in_sync, Some(vec![1, 2]));
}
