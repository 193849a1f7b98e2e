//! Topics, produce and fetch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::join_all;

use super::forward::{ForwardReply, ForwardRequest, GroupDescription, Led};
use super::peer_wire::Held;
use super::{Broker, BrokerError, Caller};
use crate::audit::actions;
use crate::auth::acl::{Operation, ResourceType};
use crate::cluster::{MetaCommand, MetaOutput, TopicMeta, TopicSpec, AUDIT_TOPIC};
use crate::names::{self, NameKind};
use crate::partition::batch::Record;
use crate::partition::dedup::ProducerStamp;
use crate::partition::read::{FetchLimits, FetchedRecord};
use crate::partition::EncodedRecords;
use crate::raft::GroupId;
use crate::wire::{PartitionDescription, TopicDescription};

/// A record as a producer sends it.
#[derive(Clone, Debug)]
pub struct ProduceRecord {
    pub record: Record,
    pub partition: Option<u32>,
}

#[derive(Clone, Debug)]
pub struct FetchRequest {
    pub offset: u64,
    pub max_messages: Option<u64>,
    pub max_bytes: Option<u64>,
    pub wait_ms: Option<u64>,
}

#[derive(Clone, Debug)]
pub struct Fetched {
    pub records: Vec<FetchedRecord>,
    pub next_offset: u64,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// The broker that led the partition and served the fetch.
    pub leader: u64,
    /// The fetch budget the records hold here; the HTTP layer keeps it until they are sent.
    pub held: Held,
}

/// Offsets of a produce, in request order, and which broker led each partition written.
#[derive(Clone, Debug)]
pub struct Produced {
    pub offsets: Vec<(u32, u64)>,
    pub leaders: Vec<(u32, u64)>,
}

/// Spreads unkeyed records evenly over partitions.
static ROUND_ROBIN: AtomicU64 = AtomicU64::new(0);

/// Stable partition of a key: FNV-1a 64 of its bytes, modulo the partition count.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (hash % u64::from(partitions)) as u32
}

/// A topic as a client asks for it; `None` takes this broker's default.
#[derive(Clone, Debug)]
pub struct NewTopic {
    pub name: String,
    pub partitions: Option<u32>,
    pub replication_factor: Option<u16>,
    pub retention_ms: Option<u64>,
    pub retention_bytes: Option<u64>,
}

impl Broker {
    /// A group as its leader describes it; `None` when no leader answers in time.
    pub async fn describe_group(&self, group: GroupId) -> Option<GroupDescription> {
        match self.on_leader(ForwardRequest::Describe { group }).await {
            Ok(Led {
                reply: ForwardReply::Described(description),
                ..
            }) => Some(description),
            _ => None,
        }
    }

    /// A topic created without a replication factor gets 3 replicas, or one per broker when the
    /// cluster has fewer (brokers being decommissioned do not count).
    pub(super) fn default_replication_factor(&self) -> u16 {
        let state = self.parts.controller.state();
        let brokers = state
            .brokers
            .values()
            .filter(|b| !b.decommissioning)
            .count();
        brokers.clamp(1, 3) as u16
    }

    pub(super) fn topic(&self, name: &str) -> Result<TopicMeta, BrokerError> {
        self.parts
            .controller
            .state()
            .topics
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::NotFound(format!("topic '{name}' does not exist")))
    }

    /// Creates a topic; what the request leaves out comes from this broker's defaults.
    pub async fn create_topic(
        &self,
        caller: &Caller,
        topic: NewTopic,
    ) -> Result<TopicDescription, BrokerError> {
        let limits = &self.parts.limits;
        let spec = TopicSpec {
            name: topic.name,
            partitions: topic.partitions.unwrap_or(limits.default_partitions),
            replication_factor: topic
                .replication_factor
                .unwrap_or_else(|| self.default_replication_factor()),
            retention_ms: topic.retention_ms.or(limits.default_retention_ms),
            retention_bytes: topic.retention_bytes.or(limits.default_retention_bytes),
            internal: false,
            owner: Some(caller.principal.name.clone()),
        };
        self.create_topic_spec(caller, spec).await
    }

    /// Creates a topic exactly as `spec` says (no defaults applied): validated, authorized,
    /// audited, and answered once every partition has a leader.
    pub(super) async fn create_topic_spec(
        &self,
        caller: &Caller,
        spec: TopicSpec,
    ) -> Result<TopicDescription, BrokerError> {
        names::validate(NameKind::Topic, &spec.name)
            .map_err(|e| BrokerError::BadRequest(e.to_string()))?;
        if spec.partitions == 0 || spec.partitions > self.parts.limits.partitions_max {
            return Err(BrokerError::BadRequest(format!(
                "partitions must be between 1 and {}, got {}",
                self.parts.limits.partitions_max, spec.partitions
            )));
        }
        self.authorize(caller, ResourceType::Topic, &spec.name, Operation::Create)
            .await?;
        self.record_change(caller, actions::TOPIC_CREATE, &spec.name)
            .await?;
        let MetaOutput::Topic(topic) = self.propose(MetaCommand::CreateTopic(spec)).await? else {
            return Err(BrokerError::Internal(
                "controller answered a topic creation with no topic".into(),
            ));
        };
        // The topic is usable once every partition has a leader.
        for partition in &topic.partitions {
            self.on_leader(ForwardRequest::Describe {
                group: partition.group,
            })
            .await?;
        }
        self.describe(&topic).await
    }

    pub async fn delete_topic(&self, caller: &Caller, name: &str) -> Result<(), BrokerError> {
        self.authorize(caller, ResourceType::Topic, name, Operation::Delete)
            .await?;
        let topic = self.topic(name)?;
        if topic.internal {
            let detail = format!("topic '{name}' is internal and cannot be deleted");
            return Err(self.deny(caller, &format!("topic:{name}"), detail).await);
        }
        self.record_change(caller, actions::TOPIC_DELETE, name)
            .await?;
        self.propose(MetaCommand::DeleteTopic {
            name: name.to_string(),
        })
        .await?;
        Ok(())
    }

    pub async fn list_topics(&self, caller: &Caller) -> Result<Vec<TopicDescription>, BrokerError> {
        let state = self.parts.controller.state();
        let mut views = Vec::new();
        for topic in state.topics.values() {
            let decision = crate::auth::acl::check(
                &caller.principal,
                state.acls.values(),
                ResourceType::Topic,
                &topic.name,
                Operation::Describe,
            );
            if decision == crate::auth::acl::Decision::Allow {
                views.push(self.describe(topic).await?);
            }
        }
        Ok(views)
    }

    pub async fn describe_topic(
        &self,
        caller: &Caller,
        name: &str,
    ) -> Result<TopicDescription, BrokerError> {
        self.authorize(caller, ResourceType::Topic, name, Operation::Describe)
            .await?;
        let topic = self.topic(name)?;
        self.describe(&topic).await
    }

    async fn describe(&self, topic: &TopicMeta) -> Result<TopicDescription, BrokerError> {
        let mut partitions = Vec::with_capacity(topic.partitions.len());
        for assignment in &topic.partitions {
            let mut view = PartitionDescription {
                partition: assignment.partition,
                leader: None,
                replicas: assignment.replicas.clone(),
                in_sync: Vec::new(),
                high_watermark: 0,
                log_start_offset: 0,
            };
            if let Some(description) = self.describe_group(assignment.group).await {
                view.leader = description.leader;
                view.high_watermark = description.high_watermark;
                view.log_start_offset = description.log_start_offset;
                view.in_sync = description.in_sync();
            }
            partitions.push(view);
        }
        Ok(TopicDescription {
            name: topic.name.clone(),
            replication_factor: topic.replication_factor,
            retention_ms: topic.retention_ms,
            retention_bytes: topic.retention_bytes,
            partitions,
        })
    }

    /// Appends records; returns `(partition, offset)` per record, in request order. Every record is
    /// validated before anything is written.
    pub async fn produce(
        &self,
        caller: &Caller,
        topic_name: &str,
        records: Vec<ProduceRecord>,
    ) -> Result<Produced, BrokerError> {
        self.authorize(caller, ResourceType::Topic, topic_name, Operation::Write)
            .await?;
        let topic = self.writable_topic(caller, topic_name).await?;
        let targets = self.route(&topic, &records, None)?;
        self.write_partitions(&topic, records, targets, &BTreeMap::new())
            .await
    }

    /// A topic clients may write; a write to an internal topic is refused and audited.
    pub(super) async fn writable_topic(
        &self,
        caller: &Caller,
        topic_name: &str,
    ) -> Result<TopicMeta, BrokerError> {
        let topic = self.topic(topic_name)?;
        if topic.internal {
            let detail = format!("topic '{topic_name}' is internal; only the broker writes it");
            return Err(self
                .deny(caller, &format!("topic:{topic_name}"), detail)
                .await);
        }
        Ok(topic)
    }

    /// Writes each partition's records on its leader, concurrently; a partition with a stamp is
    /// written idempotently.
    pub(super) async fn write_partitions(
        &self,
        topic: &TopicMeta,
        records: Vec<ProduceRecord>,
        targets: Vec<u32>,
        stamps: &BTreeMap<u32, ProducerStamp>,
    ) -> Result<Produced, BrokerError> {
        let count = topic.partitions.len();
        let mut per_partition: Vec<(Vec<usize>, Vec<Record>)> =
            vec![(Vec::new(), Vec::new()); count];
        for (position, (record, partition)) in records.into_iter().zip(targets).enumerate() {
            per_partition[partition as usize].0.push(position);
            per_partition[partition as usize].1.push(record.record);
        }
        let now = self.now_ms();
        let writes = per_partition
            .into_iter()
            .enumerate()
            .filter(|(_, (p, _))| !p.is_empty())
            .map(|(partition, (positions, records))| {
                let group = topic.partitions[partition].group;
                // The one encoding of these records: it travels to the leader and into the log.
                let records = EncodedRecords::encode(&records);
                let request = match stamps.get(&(partition as u32)) {
                    Some(stamp) => ForwardRequest::IdempotentProduce {
                        group,
                        records,
                        timestamp_ms: now,
                        stamp: *stamp,
                    },
                    None => ForwardRequest::Produce {
                        group,
                        records,
                        timestamp_ms: now,
                    },
                };
                async move {
                    let led = self.on_leader(request).await?;
                    let ForwardReply::Produced { base_offset } = led.reply else {
                        return Err(BrokerError::Internal(
                            "a produce was answered with something else".into(),
                        ));
                    };
                    Ok::<_, BrokerError>((partition as u32, positions, base_offset, led.leader))
                }
            });
        let mut results = Vec::new();
        for result in join_all(writes).await {
            results.push(result?);
        }
        let total: usize = results
            .iter()
            .map(|(_, positions, _, _)| positions.len())
            .sum();
        let mut produced = Produced {
            offsets: vec![(0u32, 0u64); total],
            leaders: Vec::new(),
        };
        for (partition, positions, base_offset, leader) in results {
            produced.leaders.push((partition, leader));
            for (slot, position) in positions.into_iter().enumerate() {
                produced.offsets[position] = (partition, base_offset + slot as u64);
            }
        }
        produced.leaders.sort_unstable();
        Ok(produced)
    }

    /// The partition of each record: explicit, else by key, else round robin; with `sticky` (an
    /// idempotent produce) unkeyed records all go to `sticky % partitions`, so a retry routes alike.
    pub(super) fn route(
        &self,
        topic: &TopicMeta,
        records: &[ProduceRecord],
        sticky: Option<u64>,
    ) -> Result<Vec<u32>, BrokerError> {
        if records.is_empty() {
            return Err(BrokerError::BadRequest("records must not be empty".into()));
        }
        if records.len() > self.parts.limits.records_per_batch_max {
            return Err(BrokerError::TooLarge(format!(
                "{} records in one request; at most {} are allowed",
                records.len(),
                self.parts.limits.records_per_batch_max
            )));
        }
        let count = topic.partitions.len() as u32;
        let mut spread = ROUND_ROBIN.fetch_add(records.len() as u64, Ordering::Relaxed);
        let mut targets = Vec::with_capacity(records.len());
        for (position, record) in records.iter().enumerate() {
            let size = record.record.size_bytes() as usize;
            if size > self.parts.limits.record_bytes_max {
                return Err(BrokerError::TooLarge(format!(
                    "record {position} is {size} bytes; at most {} are allowed",
                    self.parts.limits.record_bytes_max
                )));
            }
            let partition = match (record.partition, &record.record.key) {
                (Some(partition), _) if partition >= count => {
                    return Err(BrokerError::BadRequest(format!(
                        "record {position}: partition {partition} does not exist; topic '{}' has partitions 0..{}",
                        topic.name,
                        count - 1
                    )))
                }
                (Some(partition), _) => partition,
                (None, Some(key)) => partition_for_key(key, count),
                (None, None) => match sticky {
                    Some(sticky) => (sticky % u64::from(count)) as u32,
                    None => {
                        spread += 1;
                        (spread % u64::from(count)) as u32
                    }
                },
            };
            targets.push(partition);
        }
        Ok(targets)
    }

    pub async fn fetch(
        &self,
        caller: &Caller,
        topic_name: &str,
        partition: u32,
        request: FetchRequest,
    ) -> Result<Fetched, BrokerError> {
        self.authorize(caller, ResourceType::Topic, topic_name, Operation::Read)
            .await?;
        let topic = self.topic(topic_name)?;
        if topic.name == AUDIT_TOPIC {
            self.authorize(caller, ResourceType::Audit, AUDIT_TOPIC, Operation::Read)
                .await?;
        }
        self.fetch_partition(&topic, partition, request).await
    }

    pub(super) async fn fetch_partition(
        &self,
        topic: &TopicMeta,
        partition: u32,
        request: FetchRequest,
    ) -> Result<Fetched, BrokerError> {
        let Some(assignment) = topic.partitions.get(partition as usize) else {
            return Err(BrokerError::NotFound(format!(
                "partition {partition} does not exist; topic '{}' has {} partitions",
                topic.name,
                topic.partitions.len()
            )));
        };
        let limits = FetchLimits {
            records_max: request
                .max_messages
                .unwrap_or(self.parts.limits.fetch_records_max)
                .min(self.parts.limits.fetch_records_max),
            bytes_max: request
                .max_bytes
                .unwrap_or(self.parts.limits.fetch_bytes_max)
                .min(self.parts.limits.fetch_bytes_max),
        };
        let wait_ms = request
            .wait_ms
            .unwrap_or(0)
            .min(self.parts.limits.wait_ms_max);
        let led = self
            .on_leader(ForwardRequest::Fetch {
                group: assignment.group,
                offset: request.offset,
                wait_ms,
                records_max: limits.records_max,
                bytes_max: limits.bytes_max,
            })
            .await?;
        let ForwardReply::Fetched {
            records,
            offset,
            high_watermark,
            log_start_offset,
            held,
        } = led.reply
        else {
            return Err(BrokerError::Internal(
                "a fetch was answered with something else".into(),
            ));
        };
        let next_offset = records.last().map_or(offset, |r| r.offset + 1);
        Ok(Fetched {
            records,
            next_offset,
            high_watermark,
            log_start_offset,
            leader: led.leader,
            held,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::partition_for_key;

    #[test]
    fn key_partition_is_stable_and_in_range() {
        for partitions in 1..20 {
            let first = partition_for_key("customer-42", partitions);
            assert!(first < partitions);
            assert_eq!(first, partition_for_key("customer-42", partitions));
        }
        let mut used = std::collections::BTreeSet::new();
        for key in 0..600 {
            used.insert(partition_for_key(&format!("key-{key}"), 6));
        }
        assert_eq!(used.len(), 6, "keys must spread over every partition");
    }
}
