//! Seeded random clusters: every plan keeps the invariants, and repeated planning converges.
//!
//! The checkers are first shown to reject deliberately broken planners on the same clusters.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::*;

const SEED: u64 = 0x5eed_ba1a;
const CASES: usize = 500;
const NOW_MS: u64 = 10_000;

struct Case {
    view: ClusterView,
    settings: BalanceSettings,
    in_flight: Vec<Move>,
}

fn random_case(rng: &mut StdRng, racks: bool) -> Case {
    let broker_count = rng.random_range(1..=8u64);
    let brokers: Vec<BrokerView> = (1..=broker_count)
        .map(|id| BrokerView {
            id,
            rack: racks.then(|| format!("rack-{}", rng.random_range(0..3))),
            state: match rng.random_range(0..10) {
                0 => BrokerState::Decommissioning,
                1 => BrokerState::Down { since_ms: 0 },
                2 => BrokerState::Down { since_ms: NOW_MS },
                _ => BrokerState::Up,
            },
        })
        .collect();
    let ids: Vec<u64> = (1..=broker_count).collect();
    let groups: Vec<GroupView> = (1..=rng.random_range(0..16u64))
        .map(|id| {
            let factor = rng.random_range(1..=3usize).min(ids.len());
            let mut replicas = ids.clone();
            replicas.shuffle(rng);
            // Now and then a group is one replica short.
            let held = if rng.random_bool(0.1) {
                factor - 1
            } else {
                factor
            };
            replicas.truncate(held.max(1));
            GroupView {
                replication_factor: factor as u16,
                ..group(id, &replicas)
            }
        })
        .collect();
    let mut in_flight = Vec::new();
    for candidate in &groups {
        let spare = ids.iter().find(|b| !candidate.replicas.contains(b));
        if let (Some(add), true) = (spare, rng.random_bool(0.15)) {
            in_flight.push(Move {
                group: candidate.group,
                add: *add,
                remove: candidate.replicas.last().copied(),
                reason: MoveReason::Balance,
            });
        }
    }
    Case {
        view: ClusterView { brokers, groups },
        settings: BalanceSettings {
            down_timeout_ms: 1_000,
            concurrent_moves_max: rng.random_range(0..=6),
        },
        in_flight,
    }
}

fn rack_count(view: &ClusterView, replicas: &[u64]) -> usize {
    let racks: BTreeSet<&str> = replicas
        .iter()
        .filter_map(|r| view.brokers.iter().find(|b| b.id == *r))
        .filter_map(|b| b.rack.as_deref())
        .collect();
    racks.len()
}

/// The invariants every `plan_moves` output must hold.
fn check_moves(case: &Case, moves: &[Move]) -> Result<(), String> {
    let Case {
        view,
        settings,
        in_flight,
    } = case;
    if !moves.is_empty() && moves.len() + in_flight.len() > settings.concurrent_moves_max {
        return Err(format!(
            "{} moves + {} in flight",
            moves.len(),
            in_flight.len()
        ));
    }
    let mut groups: BTreeSet<GroupId> = in_flight.iter().map(|m| m.group).collect();
    for planned in moves {
        if !groups.insert(planned.group) {
            return Err(format!("second move for {:?}", planned.group));
        }
        let group = view
            .groups
            .iter()
            .find(|g| g.group == planned.group)
            .ok_or(format!("unknown group in {planned:?}"))?;
        let target = view.brokers.iter().find(|b| b.id == planned.add);
        if target.map(|b| &b.state) != Some(&BrokerState::Up) {
            return Err(format!("target not Up: {planned:?}"));
        }
        if group.replicas.contains(&planned.add) {
            return Err(format!("two replicas on one broker: {planned:?} {group:?}"));
        }
        let rf = usize::from(group.replication_factor);
        match planned.remove {
            Some(removed) if !group.replicas.contains(&removed) => {
                return Err(format!("removes a non-replica: {planned:?}"));
            }
            Some(_) if group.replicas.len() < rf => {
                return Err(format!(
                    "would drop below the replication factor: {planned:?}"
                ));
            }
            None if group.replicas.len() >= rf => {
                return Err(format!("adds beyond the replication factor: {planned:?}"));
            }
            _ => {}
        }
        if planned.reason == MoveReason::Balance {
            let mut after = group.replicas.clone();
            after.retain(|r| Some(*r) != planned.remove);
            after.push(planned.add);
            if rack_count(view, &after) < rack_count(view, &group.replicas) {
                return Err(format!("balance move shrinks the rack spread: {planned:?}"));
            }
        }
    }
    Ok(())
}

/// The invariants every `plan_leaders` output must hold.
fn check_leaders(view: &ClusterView, transfers: &[(GroupId, u64)]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for (group_id, to) in transfers {
        if !seen.insert(*group_id) {
            return Err(format!("second transfer for {group_id:?}"));
        }
        let group = view.groups.iter().find(|g| g.group == *group_id);
        let group = group.ok_or(format!("unknown group {group_id:?}"))?;
        let in_sync = group.in_sync.as_deref().unwrap_or(&[]);
        let target_up = view
            .brokers
            .iter()
            .any(|b| b.id == *to && b.state == BrokerState::Up);
        if !in_sync.contains(to) || !target_up || group.leader == Some(*to) {
            return Err(format!("bad transfer of {group_id:?} to {to}: {group:?}"));
        }
    }
    Ok(())
}

fn cases(racks: bool) -> Vec<Case> {
    let mut rng = StdRng::seed_from_u64(SEED);
    (0..CASES).map(|_| random_case(&mut rng, racks)).collect()
}

#[test]
fn checkers_reject_broken_planners() {
    let all = cases(true);
    let ignores_in_flight = all
        .iter()
        .filter(|case| {
            check_moves(case, &plan_moves(&case.view, &case.settings, NOW_MS, &[])).is_err()
        })
        .count();
    assert!(
        ignores_in_flight > 0,
        "a planner ignoring in-flight moves went unnoticed"
    );
    let onto_a_replica = all
        .iter()
        .filter(|case| {
            let mut moves = plan_moves(&case.view, &case.settings, NOW_MS, &case.in_flight);
            let Some(first) = moves.first_mut() else {
                return false;
            };
            let group = case.view.groups.iter().find(|g| g.group == first.group);
            first.add = group.expect("planned for a known group").replicas[0];
            check_moves(case, &moves).is_err()
        })
        .count();
    assert!(
        onto_a_replica > 0,
        "a move onto an existing replica went unnoticed"
    );
    let to_unknown = all
        .iter()
        .filter(|case| {
            let mut transfers = plan_leaders(&case.view);
            let Some(first) = transfers.first_mut() else {
                return false;
            };
            first.1 = 99;
            check_leaders(&case.view, &transfers).is_err()
        })
        .count();
    assert!(
        to_unknown > 0,
        "a transfer to an unknown broker went unnoticed"
    );
}

#[test]
fn random_plans_keep_every_invariant() {
    let mut planned = 0;
    for (index, case) in cases(true).iter().enumerate() {
        let moves = plan_moves(&case.view, &case.settings, NOW_MS, &case.in_flight);
        let again = plan_moves(&case.view, &case.settings, NOW_MS, &case.in_flight);
        assert_eq!(
            moves, again,
            "case {index} (seed {SEED:#x}) is not deterministic"
        );
        if let Err(problem) = check_moves(case, &moves) {
            panic!("case {index} (seed {SEED:#x}): {problem}\n{moves:?}");
        }
        if let Err(problem) = check_leaders(&case.view, &plan_leaders(&case.view)) {
            panic!("case {index} (seed {SEED:#x}): {problem}");
        }
        planned += moves.len();
    }
    assert!(
        planned > CASES / 4,
        "the random clusters rarely need moves: {planned}"
    );
}

/// Without racks, planning and applying until nothing is left restores the replication factor,
/// empties leaving brokers and evens Up brokers' counts to within one.
#[test]
fn repeated_planning_converges() {
    let mut settled = 0;
    for (index, case) in cases(false).iter().enumerate() {
        let mut view = case.view.clone();
        let settings = BalanceSettings {
            concurrent_moves_max: case.settings.concurrent_moves_max.max(1),
            ..case.settings.clone()
        };
        for _ in 0..200 {
            let moves = plan_moves(&view, &settings, NOW_MS, &[]);
            if moves.is_empty() {
                break;
            }
            apply(&mut view, &moves);
        }
        assert_eq!(
            plan_moves(&view, &settings, NOW_MS, &[]),
            vec![],
            "case {index}"
        );
        let up = view.brokers.iter().filter(|b| b.state == BrokerState::Up);
        let up_count = up.count();
        let needed = view.groups.iter().map(|g| g.replication_factor).max();
        if up_count < usize::from(needed.unwrap_or(0)) || up_count == 0 {
            continue;
        }
        settled += 1;
        let leaving = |id: &u64| {
            let broker = view.brokers.iter().find(|b| b.id == *id);
            !matches!(
                broker.map(|b| &b.state),
                Some(BrokerState::Up | BrokerState::Down { since_ms: NOW_MS })
            )
        };
        for group in &view.groups {
            assert_eq!(
                group.replicas.len(),
                usize::from(group.replication_factor),
                "case {index}"
            );
            assert!(
                !group.replicas.iter().any(leaving),
                "case {index}: {group:?}"
            );
        }
        let counts = counts_after(&view, &[]);
        assert!(spread(&counts) <= 1, "case {index}: {counts:?}");
    }
    assert!(settled > CASES / 2, "too few cases settle: {settled}");
}
