//! Idempotent produce: producer ids, `Idempotency-Key`, and the checks before a deduplicated write.
//!
//! Owns `POST /v1/producers` (a random 128-bit id registered in the controller with its owner),
//! the validation of a produce's `producer_id` / `sequence` / `sequences` / `Idempotency-Key`,
//! and the stamp each written partition gets. The duplicate decision itself is made by the
//! partition leader (`partition::leader`); this layer never decides what is a duplicate.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::data::{ProduceRecord, Produced};
use super::{Broker, BrokerError, Caller};
use crate::audit::actions;
use crate::auth::acl::{Operation, ResourceType};
use crate::cluster::producers::ProducerRecord;
use crate::cluster::MetaCommand;
use crate::partition::dedup::{owner_of, DedupKind, ProducerStamp};

/// How long a produce waits for an unknown producer id to reach this broker's controller copy
/// (it may have been registered through another broker a moment ago).
const PRODUCER_LOOKUP_WAIT: Duration = Duration::from_secs(1);
/// Longest `Idempotency-Key` accepted, in characters.
pub const IDEMPOTENCY_KEY_CHARS_MAX: usize = 128;

/// The idempotence fields of a produce request, as the client sent them.
#[derive(Clone, Debug, Default)]
pub struct Idempotence {
    pub producer_id: Option<String>,
    pub sequence: Option<u64>,
    /// Partition number (as text, from JSON) → sequence.
    pub sequences: Option<BTreeMap<String, u64>>,
    pub idempotency_key: Option<String>,
}

impl Idempotence {
    pub fn is_empty(&self) -> bool {
        self.producer_id.is_none()
            && self.sequence.is_none()
            && self.sequences.is_none()
            && self.idempotency_key.is_none()
    }
}

/// A checked request: which producer, and where its sequences come from.
enum Checked {
    Producer {
        producer: u128,
        sequences: Sequences,
    },
    Key {
        producer: u128,
    },
}

enum Sequences {
    One(u64),
    PerPartition(BTreeMap<u32, u64>),
}

impl Broker {
    /// Creates a producer id owned by the caller. Any authenticated user may; it is audited.
    pub async fn create_producer(&self, caller: &Caller) -> Result<String, BrokerError> {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        self.record_change(caller, actions::PRODUCER_CREATE, &format!("producer:{id}"))
            .await?;
        self.propose(MetaCommand::RegisterProducer {
            id: id.clone(),
            principal: caller.principal.name.clone(),
            created_ms: self.now_ms(),
        })
        .await?;
        Ok(id)
    }

    /// A produce with idempotence fields (a request without any is a plain `produce`, which
    /// never passes through here).
    pub async fn produce_idempotent(
        &self,
        caller: &Caller,
        topic_name: &str,
        records: Vec<ProduceRecord>,
        idempotence: Idempotence,
    ) -> Result<Produced, BrokerError> {
        self.authorize(caller, ResourceType::Topic, topic_name, Operation::Write)
            .await?;
        let topic = self.writable_topic(caller, topic_name).await?;
        let checked = self.check_idempotence(caller, idempotence).await?;
        let sticky = match &checked {
            Checked::Producer { producer, .. } | Checked::Key { producer } => *producer as u64,
        };
        let targets = self.route(&topic, &records, Some(sticky))?;
        let mut written: Vec<u32> = targets.clone();
        written.sort_unstable();
        written.dedup();
        let stamps = stamps_for(owner_of(&caller.principal.name), &checked, &written)?;
        self.write_partitions(&topic, records, targets, &stamps)
            .await
    }

    /// Shape checks (400), then the producer's existence (404) and ownership (403, audited).
    async fn check_idempotence(
        &self,
        caller: &Caller,
        idempotence: Idempotence,
    ) -> Result<Checked, BrokerError> {
        let Idempotence {
            producer_id,
            sequence,
            sequences,
            idempotency_key,
        } = idempotence;
        let bad = |detail: &str| Err(BrokerError::BadRequest(detail.to_string()));
        if let Some(key) = idempotency_key {
            if producer_id.is_some() || sequence.is_some() || sequences.is_some() {
                return bad(
                    "an Idempotency-Key cannot be combined with producer_id, sequence or sequences",
                );
            }
            check_key(&key)?;
            return Ok(Checked::Key {
                producer: key_producer(&caller.principal.name, &key),
            });
        }
        let Some(producer_id) = producer_id else {
            return bad(
                "sequence and sequences need a producer_id (create one with POST /v1/producers)",
            );
        };
        let sequences = match (sequence, sequences) {
            (Some(sequence), None) => Sequences::One(sequence),
            (None, Some(map)) => Sequences::PerPartition(parse_sequences(map)?),
            (None, None) => {
                return bad("producer_id needs sequence (records for one partition) or sequences (one per partition written)")
            }
            (Some(_), Some(_)) => return bad("give either sequence or sequences, not both"),
        };
        let producer = parse_producer_id(&producer_id)?;
        self.check_owner(caller, &producer_id).await?;
        Ok(Checked::Producer {
            producer,
            sequences,
        })
    }

    async fn check_owner(&self, caller: &Caller, producer_id: &str) -> Result<(), BrokerError> {
        let Some(owner) = self.producer_record(producer_id).await else {
            return Err(BrokerError::NotFound(format!(
                "producer id {producer_id} is not registered; create one with POST /v1/producers"
            )));
        };
        if owner.principal == caller.principal.name {
            return Ok(());
        }
        let detail = format!(
            "{} may not use producer id {producer_id}: it belongs to another user",
            caller.principal.name
        );
        Err(self
            .deny(caller, &format!("producer:{producer_id}"), detail)
            .await)
    }

    /// The registration of `producer_id`, waiting briefly for this broker's controller copy.
    async fn producer_record(&self, producer_id: &str) -> Option<ProducerRecord> {
        let deadline = tokio::time::Instant::now() + PRODUCER_LOOKUP_WAIT;
        let mut view = self.parts.controller.subscribe();
        loop {
            if let Some(record) = view.borrow_and_update().producers.get(producer_id) {
                return Some(record.clone());
            }
            match tokio::time::timeout_at(deadline, view.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

/// One stamp per partition written, or a 400 naming what does not match.
fn stamps_for(
    owner: u64,
    checked: &Checked,
    written: &[u32],
) -> Result<BTreeMap<u32, ProducerStamp>, BrokerError> {
    let stamp = |kind, producer, sequence| ProducerStamp {
        kind,
        producer,
        owner,
        sequence,
    };
    match checked {
        Checked::Key { producer } => Ok(written
            .iter()
            .map(|p| (*p, stamp(DedupKind::Key, *producer, 0)))
            .collect()),
        Checked::Producer {
            producer,
            sequences: Sequences::One(sequence),
        } => {
            if written.len() > 1 {
                return Err(BrokerError::BadRequest(format!(
                    "the records go to partitions {written:?}; sequence covers one partition, \
                     give one entry per partition in sequences instead"
                )));
            }
            Ok(written
                .iter()
                .map(|p| (*p, stamp(DedupKind::Producer, *producer, *sequence)))
                .collect())
        }
        Checked::Producer {
            producer,
            sequences: Sequences::PerPartition(map),
        } => {
            if let Some(missing) = written.iter().find(|p| !map.contains_key(p)) {
                return Err(BrokerError::BadRequest(format!(
                    "sequences has no entry for partition {missing}, which records are written to"
                )));
            }
            if let Some(surplus) = map.keys().find(|p| !written.contains(p)) {
                return Err(BrokerError::BadRequest(format!(
                    "sequences names partition {surplus}, but no record of this request goes there"
                )));
            }
            Ok(map
                .iter()
                .map(|(p, sequence)| (*p, stamp(DedupKind::Producer, *producer, *sequence)))
                .collect())
        }
    }
}

/// Partition numbers (as JSON object keys, canonical decimal) → sequences; at least one.
pub fn parse_sequences(map: BTreeMap<String, u64>) -> Result<BTreeMap<u32, u64>, BrokerError> {
    if map.is_empty() {
        return Err(BrokerError::BadRequest(
            "sequences must name at least one partition".into(),
        ));
    }
    map.into_iter()
        .map(|(partition, sequence)| match partition.parse::<u32>() {
            Ok(number) if number.to_string() == partition => Ok((number, sequence)),
            _ => Err(BrokerError::BadRequest(format!(
                "sequences: key {partition:?} is not a partition number"
            ))),
        })
        .collect()
}

/// A producer id is 32 hexadecimal characters (128 bits).
pub fn parse_producer_id(text: &str) -> Result<u128, BrokerError> {
    let valid = text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
    match u128::from_str_radix(text, 16) {
        Ok(id) if valid => Ok(id),
        _ => Err(BrokerError::BadRequest(format!(
            "producer_id must be 32 hexadecimal characters as returned by POST /v1/producers, got {text:?}"
        ))),
    }
}

/// 1 to 128 visible ASCII characters.
fn check_key(key: &str) -> Result<(), BrokerError> {
    let visible = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_CHARS_MAX || !visible {
        return Err(BrokerError::BadRequest(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters"
        )));
    }
    Ok(())
}

/// The producer behind an `Idempotency-Key`: the same key from another user is another producer.
fn key_producer(principal: &str, key: &str) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update((principal.len() as u64).to_be_bytes());
    hasher.update(principal.as_bytes());
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_ids_and_keys_are_checked() {
        let id = "0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            parse_producer_id(id).expect("valid"),
            0x0123456789abcdef0123456789abcdef
        );
        for bad in [
            "",
            "123",
            "+123456789abcdef0123456789abcdef",
            &"g".repeat(32),
        ] {
            assert!(parse_producer_id(bad).is_err(), "{bad:?}");
        }
        assert!(check_key("order-42").is_ok());
        assert!(check_key(&"k".repeat(128)).is_ok());
        for bad in ["", "has space", "tab\t", "é", &"k".repeat(129)] {
            assert!(check_key(bad).is_err(), "{bad:?}");
        }
        assert_ne!(key_producer("alice", "k"), key_producer("bob", "k"));
        assert_ne!(key_producer("ab", "c"), key_producer("a", "bc"));
        assert_eq!(key_producer("alice", "k"), key_producer("alice", "k"));
    }

    #[test]
    fn sequences_must_match_the_partitions_written() {
        let checked = |map: &[(u32, u64)]| Checked::Producer {
            producer: 5,
            sequences: Sequences::PerPartition(map.iter().copied().collect()),
        };
        let stamps = stamps_for(7, &checked(&[(0, 3), (2, 7)]), &[0, 2]).expect("matches");
        assert_eq!(stamps[&2].sequence, 7);
        assert!(stamps_for(7, &checked(&[(0, 3)]), &[0, 2]).is_err());
        assert!(stamps_for(7, &checked(&[(0, 3), (1, 1), (2, 7)]), &[0, 2]).is_err());
        let one = Checked::Producer {
            producer: 5,
            sequences: Sequences::One(4),
        };
        assert!(stamps_for(7, &one, &[0, 1]).is_err());
        assert_eq!(
            stamps_for(7, &one, &[1]).expect("one partition")[&1].sequence,
            4
        );
        let parsed = parse_sequences([("1".to_string(), 2)].into()).expect("number");
        assert_eq!(parsed[&1], 2);
        assert!(parse_sequences([("01".to_string(), 2)].into()).is_err());
        assert!(parse_sequences([("x".to_string(), 2)].into()).is_err());
        assert!(parse_sequences(BTreeMap::new()).is_err());
    }
}
