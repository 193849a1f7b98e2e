//! Pure replica placement: which brokers carry each new partition, and which one leads.
//!
//! `plan` gives each partition `replication_factor` distinct brokers, preferring brokers that carry
//! the fewest replicas, and rotates the first (preferred leader) slot so leaders spread evenly.
//! No I/O, no clocks, no randomness: the same inputs always give the same plan.

use std::collections::BTreeMap;

use super::records::PartitionAssignment;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum PlacementError {
    #[error(
        "replication factor {requested} needs {requested} brokers, the cluster has {available}"
    )]
    NotEnoughBrokers { requested: u16, available: usize },
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    #[error("a topic needs at least one partition")]
    ZeroPartitions,
    #[error("a topic has at most {partitions_max} partitions, {requested} were asked for")]
    TooManyPartitions { requested: u32, partitions_max: u32 },
}

/// The most partitions one topic may have: the ceiling `topics.partitions_max` accepts. `plan`
/// checks it too because it runs when every controller replica applies a command, and a command
/// a peer forwards has not passed any broker's configured limit; one plan per partition is
/// allocated up front.
pub const TOPIC_PARTITIONS_MAX: u32 = 100_000;

/// Replicas and preferred leaderships each broker already carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Load {
    pub replicas: u64,
    pub leaders: u64,
}

pub fn replica_counts<'a>(
    assignments: impl Iterator<Item = &'a PartitionAssignment>,
) -> BTreeMap<u64, Load> {
    let mut counts: BTreeMap<u64, Load> = BTreeMap::new();
    for assignment in assignments {
        for (position, broker) in assignment.replicas.iter().enumerate() {
            let load = counts.entry(*broker).or_default();
            load.replicas += 1;
            if position == 0 {
                load.leaders += 1;
            }
        }
    }
    counts
}

/// Places `partitions` new partitions with `replication_factor` replicas each over `brokers`.
/// When brokers name racks (`racks`; a broker without an entry has none), a partition's replicas
/// go to racks it does not use yet before any rack is used twice.
pub fn plan(
    brokers: &[u64],
    racks: &BTreeMap<u64, String>,
    existing: &BTreeMap<u64, Load>,
    partitions: u32,
    replication_factor: u16,
) -> Result<Vec<Vec<u64>>, PlacementError> {
    if replication_factor == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    if partitions == 0 {
        return Err(PlacementError::ZeroPartitions);
    }
    if partitions > TOPIC_PARTITIONS_MAX {
        return Err(PlacementError::TooManyPartitions {
            requested: partitions,
            partitions_max: TOPIC_PARTITIONS_MAX,
        });
    }
    if brokers.len() < replication_factor as usize {
        return Err(PlacementError::NotEnoughBrokers {
            requested: replication_factor,
            available: brokers.len(),
        });
    }
    let mut load: BTreeMap<u64, Load> = brokers
        .iter()
        .map(|b| (*b, existing.get(b).cloned().unwrap_or_default()))
        .collect();
    let mut result = Vec::with_capacity(partitions as usize);
    for _ in 0..partitions {
        // Leader: fewest leaderships, then fewest replicas, then lowest id.
        let leader = *load
            .iter()
            .min_by_key(|(id, l)| (l.leaders, l.replicas, **id))
            .map(|(id, _)| id)
            .expect("brokers is not empty");
        let mut replicas = vec![leader];
        while replicas.len() < replication_factor as usize {
            let rack_used = |id: &u64| {
                racks.get(id).is_some_and(|rack| {
                    replicas
                        .iter()
                        .any(|chosen| racks.get(chosen) == Some(rack))
                })
            };
            let next = *load
                .iter()
                .filter(|(id, _)| !replicas.contains(id))
                .min_by_key(|(id, l)| (rack_used(id), l.replicas, **id))
                .map(|(id, _)| id)
                .expect("enough brokers were checked above");
            replicas.push(next);
        }
        for (position, broker) in replicas.iter().enumerate() {
            let entry = load.get_mut(broker).expect("placed on a known broker");
            entry.replicas += 1;
            if position == 0 {
                entry.leaders += 1;
            }
        }
        result.push(replicas);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spread(plans: &[Vec<u64>]) -> (BTreeMap<u64, u64>, BTreeMap<u64, u64>) {
        let mut replicas = BTreeMap::new();
        let mut leaders = BTreeMap::new();
        for plan in plans {
            *leaders.entry(plan[0]).or_insert(0) += 1;
            for broker in plan {
                *replicas.entry(*broker).or_insert(0) += 1;
            }
        }
        (replicas, leaders)
    }

    #[test]
    fn six_partitions_rf3_on_three_brokers_are_even() {
        let plans = plan(&[1, 2, 3], &BTreeMap::new(), &BTreeMap::new(), 6, 3).expect("fits");
        let (replicas, leaders) = spread(&plans);
        assert_eq!(
            replicas.values().copied().collect::<Vec<_>>(),
            vec![6, 6, 6]
        );
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        for p in &plans {
            let mut distinct = p.clone();
            distinct.dedup();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), 3, "replicas must be distinct: {p:?}");
        }
    }

    /// Found by reading the `peer_frame` fuzz target's controller layer, confirmed with it: a
    /// forwarded `CreateTopic` of 4294967295 partitions made every controller replica ask for
    /// about 100 GB when applying it.
    #[test]
    fn partitions_are_bounded_before_anything_is_allocated() {
        let brokers = [1, 2, 3];
        let (racks, load) = (BTreeMap::new(), BTreeMap::new());
        let at_most =
            plan(&brokers, &racks, &load, TOPIC_PARTITIONS_MAX, 1).expect("the ceiling fits");
        assert_eq!(at_most.len(), TOPIC_PARTITIONS_MAX as usize);
        for requested in [TOPIC_PARTITIONS_MAX + 1, u32::MAX] {
            assert_eq!(
                plan(&brokers, &racks, &load, requested, 1),
                Err(PlacementError::TooManyPartitions {
                    requested,
                    partitions_max: TOPIC_PARTITIONS_MAX,
                })
            );
        }
    }

    #[test]
    fn single_broker_takes_everything() {
        let plans = plan(&[7], &BTreeMap::new(), &BTreeMap::new(), 3, 1).expect("fits");
        assert_eq!(plans, vec![vec![7], vec![7], vec![7]]);
    }

    #[test]
    fn existing_load_steers_new_replicas() {
        let mut existing = BTreeMap::new();
        existing.insert(
            1,
            Load {
                replicas: 4,
                leaders: 4,
            },
        );
        let plans = plan(&[1, 2, 3], &BTreeMap::new(), &existing, 2, 1).expect("fits");
        assert_eq!(plans, vec![vec![2], vec![3]]);
    }

    #[test]
    fn impossible_requests_are_errors() {
        assert_eq!(
            plan(&[1], &BTreeMap::new(), &BTreeMap::new(), 1, 3),
            Err(PlacementError::NotEnoughBrokers {
                requested: 3,
                available: 1
            })
        );
        assert_eq!(
            plan(&[1], &BTreeMap::new(), &BTreeMap::new(), 1, 0),
            Err(PlacementError::ZeroReplicationFactor)
        );
        assert_eq!(
            plan(&[1], &BTreeMap::new(), &BTreeMap::new(), 0, 1),
            Err(PlacementError::ZeroPartitions)
        );
    }

    fn racks(pairs: &[(u64, &str)]) -> BTreeMap<u64, String> {
        pairs
            .iter()
            .map(|(id, rack)| (*id, rack.to_string()))
            .collect()
    }

    #[test]
    fn replicas_spread_over_racks_before_reusing_one() {
        let layout = racks(&[(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")]);
        let brokers = [1, 2, 3, 4, 5, 6];
        let plans = plan(&brokers, &layout, &BTreeMap::new(), 12, 3).expect("fits");
        for p in &plans {
            let mut used: Vec<&String> = p.iter().map(|b| &layout[b]).collect();
            used.sort();
            used.dedup();
            assert_eq!(used.len(), 3, "one replica per rack: {p:?}");
        }
        let (replicas, leaders) = spread(&plans);
        assert_eq!(replicas.values().copied().collect::<Vec<_>>(), vec![6; 6]);
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2; 6]);
        // Without racks the same brokers would put some partitions twice in one rack: the
        // rack rule is what spreads them.
        let blind = plan(&brokers, &BTreeMap::new(), &BTreeMap::new(), 12, 3).expect("fits");
        let doubled = blind.iter().any(|p| {
            let mut used: Vec<&String> = p.iter().map(|b| &layout[b]).collect();
            used.sort();
            used.dedup();
            used.len() < 3
        });
        assert!(doubled, "the check must be able to fail");
    }

    #[test]
    fn a_rack_is_used_twice_only_when_no_other_broker_is_left() {
        let layout = racks(&[(1, "a"), (2, "a"), (3, "b")]);
        let plans = plan(&[1, 2, 3, 4], &layout, &BTreeMap::new(), 4, 3).expect("fits");
        for p in &plans {
            let mut distinct = p.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(distinct.len(), 3);
            // Brokers 3 (rack b) and 4 (no rack) are always free for a second and third replica,
            // so rack a never holds two.
            assert!(!(p.contains(&1) && p.contains(&2)), "{p:?}");
        }
    }
}
