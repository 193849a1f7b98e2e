//! Helpers of the consumer-group tests: numbered records, a polling member, and the
//! at-least-once checker.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use palisade::client::{Client, ClientError};
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};
use palisade::wire::{GroupPoll, JoinGroup, Member, OffsetCommit};

pub fn topic(name: &str, partitions: u32, replication_factor: u16) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions: Some(partitions),
        replication_factor: Some(replication_factor),
        retention_ms: None,
        retention_bytes: None,
    }
}

/// Writes `per_partition` records to each partition, valued `p{partition}-{n}`.
pub async fn produce_numbered(client: &Client, topic: &str, partitions: u32, per_partition: u32) {
    for partition in 0..partitions {
        let records = (0..per_partition)
            .map(|n| ProduceRecord {
                value: Some(format!("p{partition}-{n}")),
                partition: Some(partition),
                ..ProduceRecord::default()
            })
            .collect();
        client
            .produce(topic, &ProduceRequest { records })
            .await
            .expect("produce");
    }
}

/// A group member as a test drives it.
pub struct TestMember {
    pub client: Client,
    pub group: String,
    pub member: Member,
}

impl TestMember {
    pub async fn join(
        client: &Client,
        group: &str,
        topics: &[&str],
        session_timeout_ms: u64,
    ) -> TestMember {
        let join = JoinGroup {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: Some(session_timeout_ms),
            auto_offset_reset: None,
        };
        let member = client.join_group(group, &join).await.expect("join");
        TestMember {
            client: client.clone(),
            group: group.to_string(),
            member,
        }
    }

    pub fn id(&self) -> &str {
        &self.member.member_id
    }

    pub async fn heartbeat(&mut self) -> Result<(), ClientError> {
        self.member = self.client.heartbeat(&self.group, self.id()).await?;
        Ok(())
    }

    pub async fn poll(
        &mut self,
        max_messages: u64,
        wait_ms: u64,
    ) -> Result<GroupPoll, ClientError> {
        let poll = self
            .client
            .poll_group(&self.group, self.id(), Some(max_messages), Some(wait_ms))
            .await?;
        self.member.generation = poll.generation;
        self.member.assignments = poll.assignments.clone();
        Ok(poll)
    }

    pub async fn commit(&self, offsets: Vec<OffsetCommit>) -> Result<(), ClientError> {
        self.client
            .commit_offsets(&self.group, self.id(), self.member.generation, offsets)
            .await
    }

    /// Heartbeats until `done(self)` holds, failing after `timeout`.
    pub async fn heartbeat_until(&mut self, timeout: Duration, done: impl Fn(&Member) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            self.heartbeat().await.expect("heartbeat");
            if done(&self.member) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "condition not reached; member {:?}",
                self.member
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// (topic, partition, offset) of every consumed record.
pub type Consumed = Vec<(String, u32, u64)>;

pub fn record_positions(poll: &GroupPoll) -> Consumed {
    poll.records
        .iter()
        .map(|r| (r.topic.clone(), r.partition, r.record.offset))
        .collect()
}

/// At least once: every offset below each partition's end was consumed, by someone.
pub fn check_at_least_once(
    ends: &BTreeMap<(String, u32), u64>,
    consumed: &Consumed,
) -> Result<(), String> {
    let seen: BTreeSet<(String, u32, u64)> = consumed.iter().cloned().collect();
    for ((topic, partition), end) in ends {
        for offset in 0..*end {
            if !seen.contains(&(topic.clone(), *partition, offset)) {
                return Err(format!(
                    "{topic}/{partition} offset {offset} was never consumed"
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn the_checker_catches_a_skipped_record() {
    let ends = BTreeMap::from([(("t".to_string(), 0), 3)]);
    let complete = vec![("t".into(), 0, 0), ("t".into(), 0, 1), ("t".into(), 0, 2)];
    assert!(check_at_least_once(&ends, &complete).is_ok());
    let skipped = vec![("t".into(), 0, 0), ("t".into(), 0, 2)];
    assert!(check_at_least_once(&ends, &skipped).is_err());
}
