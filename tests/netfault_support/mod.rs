//! Network faults between real broker processes: three `palisade` brokers, each in its own
//! network namespace (`network`), a replicated topic, producers writing through every broker
//! from the root namespace, and after the fault is healed the checker (`checker`) over what the
//! producers were acknowledged, what the API serves and what each broker's redb file holds.
#![allow(dead_code)]

pub mod checker;
/// The checker's positive controls (tests of this module, run with the binary that uses it).
mod checker_controls;
pub mod network;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use palisade::client::Client;
use palisade::partition::batch::{self, PartitionCommand};
use palisade::raft::{EntryPayload, GroupId, LogIndex};
use palisade::storage::Store;
use palisade::wire::PartitionView;

use crate::common::cluster::{wait_for, TestCluster};
use crate::common::load::Load;
use checker::{Ack, Records, Replica, Violation};
use network::Network;

pub const TOPIC: &str = "netfault";
pub const PARTITIONS: u32 = 3;
pub const BROKERS: u64 = 3;
/// Deadline of every wait for the cluster (an election, a catch-up, writes resuming).
pub const WAIT_SECONDS: u64 = 60;
/// `cluster.forward_timeout_ms` of the brokers: how long a request may wait for a leader,
/// elections included (shorter than the default 10 s, so that a fault held for a few seconds
/// shows whether the brokers keep to it).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest a producer may wait for its last answer once told to stop.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// How long each fault is held: `PALISADE_NETFAULT_SECONDS`, else `default_seconds`.
pub fn fault_duration(default_seconds: u64) -> Duration {
    let seconds = std::env::var("PALISADE_NETFAULT_SECONDS")
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .unwrap_or(default_seconds);
    Duration::from_secs(seconds)
}

/// The tests of one binary run one at a time: three brokers each already load two cores, and
/// the measured times (how long an isolated leader goes on acknowledging) mean more alone.
/// (A tokio mutex: it is held across awaits, and a failed test does not poison it.)
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

pub struct FaultedCluster {
    // Fields drop in order: the brokers are killed before their namespaces are removed.
    pub cluster: TestCluster,
    pub network: Network,
    /// An admin client per broker, through that broker.
    admins: BTreeMap<u64, Client>,
    /// The Raft group of each partition.
    groups: BTreeMap<u32, u64>,
    /// One load per broker: a producer per partition writing through that broker only.
    loads: Vec<(u64, Load)>,
}

/// What a finished run produced, for the checker and the report.
pub struct Finished {
    pub acks: Vec<Ack>,
    pub api: Records,
    pub replicas: Vec<Replica>,
    /// Produces that failed (refused or unanswered within the broker's deadline).
    pub failures: usize,
}

impl Finished {
    pub fn violations(&self) -> Vec<Violation> {
        checker::check(&self.acks, &self.api, &self.replicas)
    }

    /// Fails the test with every violation when there is one.
    pub fn assert_safe(&self, scenario: &str) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "{scenario}: {} violations, first ones: {:#?}",
            violations.len(),
            &violations[..violations.len().min(10)]
        );
        let stored: usize = self.api.values().map(BTreeMap::len).sum();
        eprintln!(
            "{scenario}: {} records acknowledged, {stored} stored on each of {} replicas, {} \
             produces failed",
            self.acks.len(),
            self.replicas.len(),
            self.failures
        );
    }
}

impl FaultedCluster {
    /// Three brokers in their namespaces, with `env` set for each, and the topic created, its
    /// partitions led and fully in sync.
    pub async fn start(env: &[(&str, &str)]) -> FaultedCluster {
        FaultedCluster::start_forwarding(env, FORWARD_TIMEOUT).await
    }

    /// Like `start`, with `cluster.forward_timeout_ms` set to `forward_timeout`.
    pub async fn start_forwarding(
        env: &[(&str, &str)],
        forward_timeout: Duration,
    ) -> FaultedCluster {
        let network = Network::create(BROKERS);
        let placements = (1..=BROKERS).map(|id| network.placement(id, env)).collect();
        let filter = std::env::var("PALISADE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        let config = format!("forward_timeout_ms = {}", forward_timeout.as_millis());
        let cluster = TestCluster::start_placed(placements, &config, "", &filter).await;
        let mut admins = BTreeMap::new();
        for id in 1..=BROKERS {
            admins.insert(id, cluster.admin(id).await);
        }
        crate::common::create_topic(&admins[&1], TOPIC, PARTITIONS, BROKERS as u16).await;
        let mut faulted = FaultedCluster {
            cluster,
            network,
            admins,
            groups: BTreeMap::new(),
            loads: Vec::new(),
        };
        let views = faulted.wait_in_sync(1).await;
        faulted.groups = views
            .iter()
            .map(|view| (view.partition, view.group.expect("a partition has a group")))
            .collect();
        faulted
    }

    pub fn admin(&self, id: u64) -> &Client {
        &self.admins[&id]
    }

    /// The topic's partitions as broker `asking` sees them, when it answers.
    pub async fn partitions(&self, asking: u64) -> Option<Vec<PartitionView>> {
        let view = self.admins[&asking].cluster().await.ok()?;
        let partitions: Vec<PartitionView> = view
            .partitions
            .into_iter()
            .filter(|p| p.topic == TOPIC)
            .collect();
        (partitions.len() == PARTITIONS as usize).then_some(partitions)
    }

    /// The leader of `partition` as broker `asking` sees it.
    pub async fn leader(&self, partition: u32, asking: u64) -> Option<u64> {
        let partitions = self.partitions(asking).await?;
        partitions
            .iter()
            .find(|p| p.partition == partition)
            .and_then(|p| p.leader)
    }

    /// Waits until every partition has a leader and no replica lags, as `asking` sees it.
    pub async fn wait_in_sync(&self, asking: u64) -> Vec<PartitionView> {
        wait_for("every partition led and in sync", WAIT_SECONDS, || async {
            let partitions = self.partitions(asking).await?;
            partitions
                .iter()
                .all(|p| {
                    p.leader.is_some()
                        && p.lag.len() == BROKERS as usize
                        && p.lag.values().all(|lag| *lag == 0)
                })
                .then_some(partitions)
        })
        .await
    }

    /// Starts producers through every broker.
    pub fn start_load(&mut self) {
        assert!(self.loads.is_empty(), "the load runs already");
        for (id, admin) in &self.admins {
            let label = format!("b{id}-");
            let load = Load::start_labelled(&label, TOPIC, PARTITIONS, vec![(*id, admin.clone())]);
            self.loads.push((*id, load));
        }
    }

    /// Records acknowledged so far, through any broker.
    pub fn acked(&self) -> usize {
        self.loads.iter().map(|(_, load)| load.acked()).sum()
    }

    /// Waits until `count` more records were acknowledged through any broker.
    pub async fn wait_acked(&self, count: usize, what: &str) {
        let target = self.acked() + count;
        wait_for(what, WAIT_SECONDS, || async {
            (self.acked() >= target).then_some(())
        })
        .await;
    }

    /// Waits until some produce through `via` for `partition` is acknowledged after `since`.
    pub async fn wait_acked_via(&self, via: u64, partition: u32, since: Instant, what: &str) {
        wait_for(what, WAIT_SECONDS, || async {
            self.ack_times(via, partition)
                .iter()
                .any(|t| *t > since)
                .then_some(())
        })
        .await;
    }

    /// What the load through `via` saw so far.
    fn outcome(&self, via: u64) -> std::sync::MutexGuard<'_, crate::common::load::Outcome> {
        let (_, load) = self
            .loads
            .iter()
            .find(|(id, _)| *id == via)
            .expect("a load through every broker");
        load.outcome.lock().expect("lock")
    }

    /// When the produces through `via` for `partition` were acknowledged.
    pub fn ack_times(&self, via: u64, partition: u32) -> Vec<Instant> {
        self.outcome(via)
            .acked_at
            .get(&partition)
            .cloned()
            .unwrap_or_default()
    }

    /// When the produces through `via` for `partition` were answered, acknowledged or not.
    pub fn answer_times(&self, via: u64, partition: u32) -> Vec<Instant> {
        self.outcome(via)
            .answered_at
            .get(&partition)
            .cloned()
            .unwrap_or_default()
    }

    /// The produces through `via` that failed: when, and the error.
    pub fn failures(&self, via: u64) -> Vec<(Instant, String)> {
        let (_, load) = self
            .loads
            .iter()
            .find(|(id, _)| *id == via)
            .expect("a load through every broker");
        let outcome = load.outcome.lock().expect("lock");
        outcome
            .failures
            .iter()
            .map(|(_, at, error)| (*at, error.clone()))
            .collect()
    }

    /// Heals every fault, waits for writes through every broker to be acknowledged again,
    /// stops the producers, waits until the replicas are in sync, reads the log through the
    /// API, kills the brokers and reads their redb files.
    pub async fn finish(mut self) -> Finished {
        self.network.heal_all();
        let healed = Instant::now();
        for id in 1..=BROKERS {
            for partition in 0..PARTITIONS {
                let what =
                    format!("a write through broker {id} to partition {partition} after healing");
                self.wait_acked_via(id, partition, healed, &what).await;
            }
        }
        let mut acks = Vec::new();
        let mut failures = 0;
        for (via, load) in std::mem::take(&mut self.loads) {
            let outcome = tokio::time::timeout(STOP_WAIT, load.stop())
                .await
                .unwrap_or_else(|_| panic!("a produce through broker {via} never answered"));
            failures += outcome.failures.len();
            acks.extend(
                outcome
                    .acked
                    .into_iter()
                    .map(|((partition, value), offset)| Ack {
                        via,
                        partition,
                        offset,
                        value,
                    }),
            );
        }
        self.wait_in_sync(1).await;
        let api = self.read_through_api(1).await;
        for id in 1..=BROKERS {
            self.cluster.kill(id);
        }
        let replicas = (1..=BROKERS).map(|id| self.read_replica(id)).collect();
        Finished {
            acks,
            api,
            replicas,
            failures,
        }
    }

    /// Every committed record of the topic, read through broker `via`.
    async fn read_through_api(&self, via: u64) -> Records {
        let client = &self.admins[&via];
        let mut records = Records::new();
        for partition in 0..PARTITIONS {
            let log = records.entry(partition).or_default();
            let mut offset = 0;
            loop {
                let page = client
                    .fetch(TOPIC, partition, offset, Some(1000), None, None)
                    .await
                    .unwrap_or_else(|error| panic!("fetch {partition}@{offset}: {error}"));
                for record in &page.records {
                    let value = record.value.clone().expect("the producers write text");
                    assert!(
                        log.insert(record.offset, value).is_none(),
                        "offset served twice"
                    );
                }
                if page.records.is_empty() || page.next_offset >= page.high_watermark {
                    break;
                }
                offset = page.next_offset;
            }
        }
        records
    }

    /// The topic's groups in a stopped broker's redb file: entries, commit index and records.
    fn read_replica(&self, id: u64) -> Replica {
        let path = self.cluster.node(id).dir.join("data").join("palisade.redb");
        let store = Store::open(&path).expect("open a stopped broker's store");
        let mut replica = Replica {
            broker: id,
            ..Replica::default()
        };
        for (partition, group) in &self.groups {
            let group = GroupId(*group);
            let recovery = store
                .load_group(group)
                .expect("load group")
                .expect("every broker holds every partition");
            let mut entries = Vec::new();
            let mut index = recovery.snapshot.meta.index.next();
            while index <= recovery.last_index {
                let page = store
                    .entries(group, index, recovery.last_index.next(), 4 << 20)
                    .expect("entries");
                index = LogIndex(page.last().expect("an entry in range").index.0 + 1);
                entries.extend(page);
            }
            let log = replica.records.entry(*partition).or_default();
            for entry in &entries {
                append_records(log, entry, id);
            }
            replica
                .entries
                .insert(*partition, (recovery.hard_state.commit.0, entries));
        }
        replica
    }
}

fn append_records(log: &mut BTreeMap<u64, String>, entry: &palisade::raft::Entry, broker: u64) {
    let EntryPayload::Normal(data) = &entry.payload else {
        return;
    };
    let command = batch::decode(data)
        .unwrap_or_else(|error| panic!("broker {broker}: entry {:?}: {error}", entry.index));
    let PartitionCommand::Append(batch) = command else {
        return;
    };
    for (slot, record) in batch.records.into_iter().enumerate() {
        let offset = batch.base_offset + slot as u64;
        let value = String::from_utf8(record.value).expect("the producers write text");
        assert!(
            log.insert(offset, value).is_none(),
            "broker {broker}: offset {offset} in two entries (entry {:?})",
            entry.index
        );
    }
}
