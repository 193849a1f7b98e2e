//! Consumer groups in the controller state: members, generations and the sticky assignment of
//! topic partitions to members.
//!
//! Owns the replicated part of a group (who is a member, which topics each reads, which partitions
//! each holds, the generation). Liveness (heartbeats, session expiry) is not replicated: the
//! controller leader keeps it in memory and proposes `LeaveGroup` for an expired member.
//! Committed offsets live in each partition's own state, not here. Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::records::TopicMeta;

/// One partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

/// Where a group with no committed offset in a partition starts reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OffsetReset {
    /// The first stored record.
    #[default]
    Earliest,
    /// Records produced from now on (the start is committed at once, so it holds).
    Latest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMember {
    pub member_id: String,
    /// The principal that joined; only it may act as this member.
    pub principal: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u64,
    pub joined_ms: u64,
    pub assignments: Vec<TopicPartition>,
    /// Where this member starts in a partition the group never committed.
    #[serde(default)]
    pub reset: OffsetReset,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerGroup {
    /// Bumped whenever any member's assignment changes; commits must name the current one.
    pub generation: u64,
    pub members: BTreeMap<String, GroupMember>,
    /// Every topic a member ever read and that still exists (so an empty group still shows its
    /// committed offsets).
    pub topics: BTreeSet<String>,
}

impl ConsumerGroup {
    /// Adds or replaces a member and rebalances.
    pub fn join(&mut self, member: GroupMember, topics: &BTreeMap<String, TopicMeta>) {
        self.topics.extend(member.topics.iter().cloned());
        let mut member = member;
        if let Some(previous) = self.members.get(&member.member_id) {
            member.assignments = previous.assignments.clone();
        }
        self.members.insert(member.member_id.clone(), member);
        self.rebalance(topics);
    }

    /// Removes a member and rebalances; false when it was not a member.
    pub fn leave(&mut self, member_id: &str, topics: &BTreeMap<String, TopicMeta>) -> bool {
        if self.members.remove(member_id).is_none() {
            return false;
        }
        self.rebalance(topics);
        true
    }

    /// Recomputes assignments after a membership or topic change; bumps the generation when any
    /// assignment changed.
    pub fn rebalance(&mut self, topics: &BTreeMap<String, TopicMeta>) {
        self.topics.retain(|topic| topics.contains_key(topic));
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .values()
            .map(|m| {
                let subscribed = m
                    .topics
                    .iter()
                    .filter(|t| topics.contains_key(*t))
                    .cloned()
                    .collect();
                (m.member_id.clone(), subscribed)
            })
            .collect();
        let partition_counts: BTreeMap<String, u32> = topics
            .iter()
            .map(|(name, meta)| (name.clone(), meta.partitions.len() as u32))
            .collect();
        let current: BTreeMap<String, Vec<TopicPartition>> = self
            .members
            .values()
            .map(|m| (m.member_id.clone(), m.assignments.clone()))
            .collect();
        let next = assign(&subscriptions, &partition_counts, &current);
        let mut changed = false;
        for member in self.members.values_mut() {
            let assigned = next.get(&member.member_id).cloned().unwrap_or_default();
            if assigned != member.assignments {
                member.assignments = assigned;
                changed = true;
            }
        }
        if changed || self.generation == 0 {
            self.generation += 1;
        }
    }
}

/// The sticky assignment: every partition of a subscribed topic goes to exactly one member that
/// reads the topic; a member keeps what it held as long as that stays balanced; then partitions
/// move one at a time from the fullest member to the emptiest eligible one until no member holds
/// two more than another that could take one.
pub fn assign(
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    partition_counts: &BTreeMap<String, u32>,
    current: &BTreeMap<String, Vec<TopicPartition>>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut owned: BTreeMap<String, BTreeSet<TopicPartition>> = subscriptions
        .keys()
        .map(|member| (member.clone(), BTreeSet::new()))
        .collect();
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    for (member, held) in current {
        let Some(subscribed) = subscriptions.get(member) else {
            continue;
        };
        for tp in held {
            let valid = subscribed.contains(&tp.topic)
                && partition_counts
                    .get(&tp.topic)
                    .is_some_and(|count| tp.partition < *count);
            if valid && taken.insert(tp.clone()) {
                owned
                    .get_mut(member)
                    .expect("member listed")
                    .insert(tp.clone());
            }
        }
    }
    let wanted: BTreeSet<&String> = subscriptions.values().flatten().collect();
    for topic in wanted {
        let count = partition_counts.get(topic).copied().unwrap_or(0);
        for partition in 0..count {
            let tp = TopicPartition {
                topic: topic.clone(),
                partition,
            };
            if taken.contains(&tp) {
                continue;
            }
            if let Some(member) = emptiest_eligible(&owned, subscriptions, &tp.topic, None) {
                owned
                    .get_mut(&member)
                    .expect("member listed")
                    .insert(tp.clone());
                taken.insert(tp);
            }
        }
    }
    balance(&mut owned, subscriptions);
    owned
        .into_iter()
        .map(|(member, set)| (member, set.into_iter().collect()))
        .collect()
}

/// The member reading `topic` with the fewest partitions (lowest id on ties), other than `except`.
fn emptiest_eligible(
    owned: &BTreeMap<String, BTreeSet<TopicPartition>>,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
    topic: &str,
    except: Option<&str>,
) -> Option<String> {
    owned
        .iter()
        .filter(|(member, _)| Some(member.as_str()) != except)
        .filter(|(member, _)| {
            subscriptions
                .get(*member)
                .is_some_and(|s| s.contains(topic))
        })
        .min_by_key(|(member, set)| (set.len(), (*member).clone()))
        .map(|(member, _)| member.clone())
}

/// Moves single partitions from fuller to emptier eligible members until balanced.
fn balance(
    owned: &mut BTreeMap<String, BTreeSet<TopicPartition>>,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
) {
    // Each move lowers the sum of squared loads, so this ends; the bound is a guard.
    let moves_max = owned.values().map(BTreeSet::len).sum::<usize>() * owned.len() + 1;
    for _ in 0..moves_max {
        let Some(step) = best_move(owned, subscriptions) else {
            return;
        };
        let (from, to, tp) = step;
        owned.get_mut(&from).expect("member listed").remove(&tp);
        owned.get_mut(&to).expect("member listed").insert(tp);
    }
}

/// One partition the fullest possible donor can hand to a member holding at least two fewer.
fn best_move(
    owned: &BTreeMap<String, BTreeSet<TopicPartition>>,
    subscriptions: &BTreeMap<String, BTreeSet<String>>,
) -> Option<(String, String, TopicPartition)> {
    let mut donors: Vec<(&String, &BTreeSet<TopicPartition>)> = owned.iter().collect();
    donors.sort_by_key(|(member, set)| (std::cmp::Reverse(set.len()), (*member).clone()));
    for (donor, held) in donors {
        // The last partitions move first, so the lowest ones stay where they are.
        for tp in held.iter().rev() {
            if let Some(to) = emptiest_eligible(owned, subscriptions, &tp.topic, Some(donor)) {
                if owned[&to].len() + 2 <= held.len() {
                    return Some((donor.clone(), to, tp.clone()));
                }
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(entries: &[(&str, &[&str])]) -> BTreeMap<String, BTreeSet<String>> {
        entries
            .iter()
            .map(|(m, topics)| {
                (
                    m.to_string(),
                    topics.iter().map(|t| t.to_string()).collect(),
                )
            })
            .collect()
    }

    fn counts(entries: &[(&str, u32)]) -> BTreeMap<String, u32> {
        entries.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn tp(topic: &str, partition: u32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// Every partition of a subscribed topic is held exactly once, by a subscriber.
    fn check_complete(
        result: &BTreeMap<String, Vec<TopicPartition>>,
        subscriptions: &BTreeMap<String, BTreeSet<String>>,
        partition_counts: &BTreeMap<String, u32>,
    ) -> Result<(), String> {
        let mut seen = BTreeSet::new();
        for (member, held) in result {
            for tp in held {
                if !subscriptions[member].contains(&tp.topic) {
                    return Err(format!("{member} holds {tp:?} without reading the topic"));
                }
                if !seen.insert(tp.clone()) {
                    return Err(format!("{tp:?} is held twice"));
                }
            }
        }
        let wanted: BTreeSet<&String> = subscriptions.values().flatten().collect();
        for topic in wanted {
            for partition in 0..partition_counts[topic] {
                if !seen.contains(&tp(topic, partition)) {
                    return Err(format!("{topic}/{partition} is not held"));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn the_completeness_check_catches_a_broken_assignment() {
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let c = counts(&[("t", 2)]);
        let missing = BTreeMap::from([("a".to_string(), vec![tp("t", 0)])]);
        assert!(check_complete(&missing, &s, &c).is_err());
        let twice = BTreeMap::from([
            ("a".to_string(), vec![tp("t", 0), tp("t", 1)]),
            ("b".to_string(), vec![tp("t", 1)]),
        ]);
        assert!(check_complete(&twice, &s, &c).is_err());
    }

    #[test]
    fn two_members_split_six_partitions_evenly() {
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let c = counts(&[("t", 6)]);
        let result = assign(&s, &c, &BTreeMap::new());
        check_complete(&result, &s, &c).unwrap();
        assert_eq!(result["a"].len(), 3);
        assert_eq!(result["b"].len(), 3);
    }

    #[test]
    fn a_joining_member_takes_partitions_and_the_others_keep_the_rest() {
        let c = counts(&[("t", 6)]);
        let first = assign(&subs(&[("a", &["t"])]), &c, &BTreeMap::new());
        assert_eq!(first["a"].len(), 6);
        let s = subs(&[("a", &["t"]), ("b", &["t"])]);
        let second = assign(&s, &c, &first);
        check_complete(&second, &s, &c).unwrap();
        assert_eq!(second["a"].len(), 3);
        assert!(second["a"].iter().all(|held| first["a"].contains(held)));
        let s3 = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let third = assign(&s3, &c, &second);
        check_complete(&third, &s3, &c).unwrap();
        for member in ["a", "b"] {
            assert_eq!(third[member].len(), 2);
            assert!(third[member]
                .iter()
                .all(|held| second[member].contains(held)));
        }
    }

    #[test]
    fn a_leaving_member_hands_over_only_its_own_partitions() {
        let c = counts(&[("t", 6)]);
        let s3 = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let three = assign(&s3, &c, &BTreeMap::new());
        let mut current = three.clone();
        current.remove("c");
        let s2 = subs(&[("a", &["t"]), ("b", &["t"])]);
        let two = assign(&s2, &c, &current);
        check_complete(&two, &s2, &c).unwrap();
        for member in ["a", "b"] {
            assert_eq!(two[member].len(), 3);
            assert!(three[member].iter().all(|held| two[member].contains(held)));
        }
    }

    #[test]
    fn members_only_get_topics_they_read() {
        let s = subs(&[("a", &["x"]), ("b", &["x", "y"])]);
        let c = counts(&[("x", 2), ("y", 4)]);
        let result = assign(&s, &c, &BTreeMap::new());
        check_complete(&result, &s, &c).unwrap();
        assert!(result["a"].iter().all(|held| held.topic == "x"));
        // b must hold all of y; balancing gives a both partitions of x.
        assert_eq!(result["b"].iter().filter(|h| h.topic == "y").count(), 4);
        assert_eq!(result["a"].len(), 2);
    }

    #[test]
    fn deleted_partitions_and_unknown_topics_are_dropped() {
        let s = subs(&[("a", &["t", "gone"])]);
        let c = counts(&[("t", 2)]);
        let current =
            BTreeMap::from([("a".to_string(), vec![tp("t", 0), tp("t", 5), tp("gone", 0)])]);
        let result = assign(&s, &c, &current);
        assert_eq!(result["a"], vec![tp("t", 0), tp("t", 1)]);
    }
}
