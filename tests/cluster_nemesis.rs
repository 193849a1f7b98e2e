//! The nemesis: real broker processes under a random, seeded schedule of faults while producers,
//! an idempotent producer and a consumer group run. Faults: power cuts (SIGKILL of a broker whose
//! unsynced writes are lost, `storage::fault`) of one broker or of two at once, pauses (SIGSTOP
//! past the election timeout), a failing fsync that stops a broker, network faults between the
//! brokers (each runs in its own network namespace: an isolated broker, a one-way cut, a bridge,
//! a slow link), a broker joining, a decommission and balancer passes moving replicas, all
//! interleaved.
//!
//! After the schedule everything is healed and checked: every acknowledged record is at its
//! offset and stored once (the idempotent producer's retries included), offsets are dense, every
//! replica of every partition holds the same log, and committed group offsets never moved back.
//!
//! `PALISADE_NEMESIS_SECONDS` sets the schedule's length (about one fault per 2 s; default 40 s,
//! for CI) and
//! `PALISADE_NEMESIS_SEED` replays a schedule (the seed is printed at the start and in every
//! failure). Timing still differs between runs: a replay repeats the faults, not the interleaving.

mod common;
#[path = "netfault_support/network.rs"]
#[allow(dead_code)]
mod network;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{wait_for, TestCluster};
use common::durability::{
    check, read_all, replica_differences, replica_values, summary, wait_acked, Acked,
};
use network::Network;
use palisade::client::Client;
use palisade::storage::fault::{POWER_LOSS_ENV, SYNC_FAIL_FILE_ENV, UNSAFE_SKIP_FSYNC_ENV};
use palisade::wire::{
    AddBroker, ClusterView, IdempotentProduceRequest, JoinGroup, OffsetCommit, ProduceRecord,
    ProduceRequest,
};

const TOPIC: &str = "nemesis";
const GROUP: &str = "nemesis-readers";
const PARTITIONS: u32 = 3;
const FOUNDERS: u64 = 3;
const JOINER: u64 = 4;
/// A workload request that takes longer is abandoned (its outcome unknown).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const SECONDS_ENV: &str = "PALISADE_NEMESIS_SECONDS";
const SEED_ENV: &str = "PALISADE_NEMESIS_SEED";
/// How long a healed cluster may take to lead and sync every partition on its members.
const HEAL_WAIT: Duration = Duration::from_secs(120);

/// xorshift64*: the schedule's only source of randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.below(high - low + 1))
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Fault {
    /// SIGKILL with unsynced writes lost; restarted after the pause.
    PowerCut(Vec<u64>, Duration),
    /// SIGSTOP for the duration, then SIGCONT.
    Pause(u64, Duration),
    /// fsync fails until the broker stops; then it is restarted on a healthy disk.
    FailingDisk(u64),
    /// The broker cut from every other broker, both ways (clients still reach it).
    Isolate(u64, Duration),
    /// The first broker cannot send to the second.
    OneWay(u64, u64, Duration),
    /// Two brokers cut from each other, both still reaching the third: a bridge.
    Bridge(u64, u64, Duration),
    /// A slow, lossy link (token bucket) on the broker's network.
    Slow(u64, Duration),
    /// A balancer pass.
    Rebalance,
    /// Broker 4 joins (once).
    Join,
    /// A founder is decommissioned (once, after the join).
    Decommission(u64),
}

/// The schedule: `steps` faults, each followed by a quiet gap, from `seed` alone.
fn schedule(seed: u64, steps: usize) -> Vec<(Fault, Duration)> {
    let mut rng = Rng(seed | 1);
    let mut faults = Vec::new();
    let join_at = steps / 3;
    let decommission_at = 2 * steps / 3;
    let mut live: Vec<u64> = (1..=FOUNDERS).collect();
    for step in 0..steps {
        let fault = if step == join_at {
            live.push(JOINER);
            Fault::Join
        } else if step == decommission_at {
            let id = 1 + rng.below(FOUNDERS);
            live.retain(|l| *l != id);
            Fault::Decommission(id)
        } else {
            let one = |rng: &mut Rng| live[rng.below(live.len() as u64) as usize];
            let two = |rng: &mut Rng| {
                let first = one(rng);
                let mut second = one(rng);
                while second == first {
                    second = one(rng);
                }
                (first, second)
            };
            match rng.below(14) {
                0..=2 => Fault::PowerCut(vec![one(&mut rng)], rng.millis(100, 1500)),
                3 => {
                    let (first, second) = two(&mut rng);
                    Fault::PowerCut(vec![first, second], rng.millis(100, 1000))
                }
                4..=5 => Fault::Pause(one(&mut rng), rng.millis(300, 3000)),
                6..=7 => Fault::FailingDisk(one(&mut rng)),
                8 => Fault::Isolate(one(&mut rng), rng.millis(500, 4000)),
                9 => {
                    let (from, to) = two(&mut rng);
                    Fault::OneWay(from, to, rng.millis(500, 3000))
                }
                10 => {
                    let (a, b) = two(&mut rng);
                    Fault::Bridge(a, b, rng.millis(500, 4000))
                }
                11 => Fault::Slow(one(&mut rng), rng.millis(500, 3000)),
                _ => Fault::Rebalance,
            }
        };
        faults.push((fault, rng.millis(200, 1500)));
    }
    faults
}

/// What the workload saw, for the checks.
#[derive(Default)]
struct Observed {
    /// Committed offsets the group acknowledged, in order.
    commits: Vec<(u32, u64)>,
    /// Committed offsets read back by `describe_group`, per partition, in order of reading.
    reads: BTreeMap<u32, Vec<u64>>,
    /// Idempotent batches acknowledged, and how many attempts were sent again.
    idempotent_acked: u64,
    idempotent_resent: u64,
}

/// The brokers clients and faults may use: every registered broker not decommissioned.
#[derive(Clone, Default)]
struct Members(Arc<Mutex<Vec<u64>>>);

impl Members {
    fn list(&self) -> Vec<u64> {
        self.0.lock().expect("lock").clone()
    }
}

struct Clients {
    by_id: Mutex<BTreeMap<u64, Client>>,
    members: Members,
    turn: AtomicU64,
}

impl Clients {
    /// The next member's client, round robin.
    fn next(&self) -> Option<Client> {
        let members = self.members.list();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed) as usize;
        let id = *members.get(turn % members.len().max(1))?;
        self.by_id.lock().expect("lock").get(&id).cloned()
    }
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(REQUEST_TIMEOUT, future).await.ok()
}

/// Plain producer: new values for every request, never retried.
async fn produce(clients: Arc<Clients>, name: String, acked: Acked, stop: Arc<AtomicBool>) {
    let mut sequence = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(client) = clients.next() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let values: Vec<String> = (0..10)
            .map(|i| format!("{name}-s{sequence}-r{i}"))
            .collect();
        sequence += 1;
        let request = ProduceRequest {
            records: values
                .iter()
                .map(|value| ProduceRecord {
                    value: Some(value.clone()),
                    ..ProduceRecord::default()
                })
                .collect(),
        };
        match within(client.produce(TOPIC, &request)).await {
            Some(Ok(response)) => {
                let mut acked = acked.lock().expect("lock");
                for (at, value) in response.offsets.iter().zip(values) {
                    acked.push((at.partition, at.offset, value));
                }
            }
            _ => tokio::time::sleep(Duration::from_millis(30)).await,
        }
    }
}

/// Idempotent producer on partition 0: a batch is sent again, with the same sequence, until it is
/// acknowledged; the checker then finds each of its values exactly once.
async fn produce_idempotent(
    clients: Arc<Clients>,
    acked: Acked,
    observed: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
) {
    let producer_id = loop {
        if let Some(client) = clients.next() {
            if let Some(Ok(id)) = within(client.create_producer()).await {
                break id;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut sequence = 0u64;
    let mut attempts = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(client) = clients.next() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let values: Vec<String> = (0..5).map(|i| format!("idem-s{sequence}-r{i}")).collect();
        let request = IdempotentProduceRequest {
            records: values
                .iter()
                .map(|value| ProduceRecord {
                    value: Some(value.clone()),
                    partition: Some(0),
                    ..ProduceRecord::default()
                })
                .collect(),
            producer_id: producer_id.clone(),
            sequence: Some(sequence),
            sequences: None,
        };
        attempts += 1;
        match within(client.produce_idempotent(TOPIC, &request)).await {
            Some(Ok(response)) => {
                {
                    let mut acked = acked.lock().expect("lock");
                    for (at, value) in response.offsets.iter().zip(values) {
                        acked.push((at.partition, at.offset, value));
                    }
                }
                let mut observed = observed.lock().expect("lock");
                observed.idempotent_acked += 1;
                observed.idempotent_resent += attempts - 1;
                attempts = 0;
                sequence += 1;
            }
            _ => tokio::time::sleep(Duration::from_millis(30)).await,
        }
    }
}

/// One group member: joins (again after any error), polls and commits what it polled.
async fn consume(clients: Arc<Clients>, observed: Arc<Mutex<Observed>>, stop: Arc<AtomicBool>) {
    let join = JoinGroup {
        topics: vec![TOPIC.into()],
        session_timeout_ms: Some(10_000),
        auto_offset_reset: None,
    };
    while !stop.load(Ordering::Relaxed) {
        let Some(client) = clients.next() else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(Ok(member)) = within(client.join_group(GROUP, &join)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        while !stop.load(Ordering::Relaxed) {
            let poll = within(client.poll_group(GROUP, &member.member_id, Some(200), Some(300)));
            let Some(Ok(poll)) = poll.await else { break };
            if poll.next_offsets.is_empty() {
                continue;
            }
            let offsets: Vec<OffsetCommit> = poll.next_offsets.clone();
            let commit = client.commit_offsets(GROUP, &member.member_id, poll.generation, offsets);
            let Some(Ok(())) = within(commit).await else {
                break;
            };
            let mut observed = observed.lock().expect("lock");
            for offset in &poll.next_offsets {
                observed.commits.push((offset.partition, offset.offset));
            }
        }
    }
}

/// Reads the group's committed offsets now and then.
async fn watch_offsets(
    clients: Arc<Clients>,
    observed: Arc<Mutex<Observed>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let Some(client) = clients.next() else {
            continue;
        };
        let Some(Ok(description)) = within(client.describe_group(GROUP)).await else {
            continue;
        };
        let mut observed = observed.lock().expect("lock");
        for offset in description.offsets {
            if let Some(committed) = offset.committed_offset {
                observed
                    .reads
                    .entry(offset.partition)
                    .or_default()
                    .push(committed);
            }
        }
    }
}

/// Committed offsets that moved back between two reads, or below an acknowledged commit.
fn offset_violations(observed: &Observed, finally: &BTreeMap<u32, u64>) -> Vec<String> {
    let mut violations = Vec::new();
    for (partition, reads) in &observed.reads {
        for pair in reads.windows(2) {
            if pair[1] < pair[0] {
                violations.push(format!(
                    "partition {partition}: committed offset moved back from {} to {}",
                    pair[0], pair[1]
                ));
            }
        }
    }
    let mut highest: BTreeMap<u32, u64> = BTreeMap::new();
    for (partition, offset) in &observed.commits {
        let entry = highest.entry(*partition).or_default();
        *entry = (*entry).max(*offset);
    }
    for (partition, offset) in highest {
        let last = finally.get(&partition).copied();
        if last.is_none_or(|last| last < offset) {
            violations.push(format!(
                "partition {partition}: commit of {offset} acknowledged, committed offset now {last:?}"
            ));
        }
    }
    violations
}

struct Tally {
    faults: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn count(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }
}

fn kind(fault: &Fault) -> &'static str {
    match fault {
        Fault::PowerCut(ids, _) if ids.len() > 1 => "power cut of several brokers",
        Fault::PowerCut(..) => "power cut of one broker",
        Fault::Pause(..) => "pause",
        Fault::FailingDisk(_) => "failing fsync",
        Fault::Isolate(..) => "isolated broker",
        Fault::OneWay(..) => "one-way cut",
        Fault::Bridge(..) => "bridge",
        Fault::Slow(..) => "slow link",
        Fault::Rebalance => "balancer pass",
        Fault::Join => "join",
        Fault::Decommission(_) => "decommission",
    }
}

struct Nemesis {
    cluster: TestCluster,
    network: Network,
    members: Members,
    clients: Arc<Clients>,
    markers: tempfile::TempDir,
    /// Brokers stopped by a fault and not yet restarted.
    down: Vec<u64>,
}

impl Nemesis {
    fn marker(&self, id: u64) -> std::path::PathBuf {
        self.markers.path().join(format!("fail-{id}"))
    }

    async fn admin_client(&self) -> Client {
        wait_for("an admin login", 60, || async {
            for id in self.members.list() {
                if self.down.contains(&id) {
                    continue;
                }
                let client = self.cluster.client(id);
                if let Some(Ok(reply)) = within(client.login("admin", common::ADMIN_PASSWORD)).await
                {
                    return Some(client.with_token(reply.access_token));
                }
            }
            None
        })
        .await
    }

    async fn restart(&mut self, id: u64) {
        self.cluster.spawn_again(id);
        self.wait_restarted(id).await;
    }

    /// Waits until the restarted broker `id` is ready and renews its client.
    async fn wait_restarted(&mut self, id: u64) {
        self.cluster.wait_ready(id).await;
        let client = self.cluster.admin(id).await;
        self.clients.by_id.lock().expect("lock").insert(id, client);
        self.down.retain(|d| *d != id);
    }

    async fn apply(&mut self, fault: &Fault) -> bool {
        match fault {
            Fault::PowerCut(ids, off) => {
                for id in ids {
                    self.cluster.signal(*id, libc::SIGKILL);
                }
                for id in ids {
                    self.cluster.kill(*id);
                    self.down.push(*id);
                }
                tokio::time::sleep(*off).await;
                // All of them first: one broker alone may need the others to be ready.
                for id in ids {
                    self.cluster.spawn_again(*id);
                }
                for id in ids {
                    self.wait_restarted(*id).await;
                }
                true
            }
            Fault::Pause(id, pause) => {
                self.cluster.signal(*id, libc::SIGSTOP);
                tokio::time::sleep(*pause).await;
                self.cluster.signal(*id, libc::SIGCONT);
                true
            }
            Fault::FailingDisk(id) => {
                let marker = self.marker(*id);
                std::fs::write(&marker, "").expect("marker");
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut stopped = false;
                while Instant::now() < deadline {
                    if self.cluster.exited(*id).is_some() {
                        stopped = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                std::fs::remove_file(&marker).expect("remove marker");
                if stopped {
                    let log = self.cluster.node(*id).log();
                    assert!(
                        log.contains("durability unknown, aborting"),
                        "broker {id} stopped on the failing disk without saying why"
                    );
                    self.down.push(*id);
                    self.restart(*id).await;
                }
                stopped
            }
            Fault::Isolate(id, held) => {
                self.network.isolate(*id);
                tokio::time::sleep(*held).await;
                self.network.heal_all();
                true
            }
            Fault::OneWay(from, to, held) => {
                self.network.cut(*from, *to);
                tokio::time::sleep(*held).await;
                self.network.heal_all();
                true
            }
            Fault::Bridge(a, b, held) => {
                self.network.cut_both(*a, *b);
                tokio::time::sleep(*held).await;
                self.network.heal_all();
                true
            }
            Fault::Slow(id, held) => {
                self.network.slow_down(*id, "256kbit");
                tokio::time::sleep(*held).await;
                self.network.heal_all();
                true
            }
            Fault::Rebalance => {
                let admin = self.admin_client().await;
                within(admin.rebalance()).await.is_some_and(|r| r.is_ok())
            }
            Fault::Join => {
                // The joiner fails fsync while its marker exists, as the founders do.
                let marker = self.marker(JOINER).display().to_string();
                self.cluster.env.push((SYNC_FAIL_FILE_ENV.into(), marker));
                let placement = self.network.placement(JOINER, &[]);
                let address = placement.address;
                let joined = self.cluster.start_joining_placed(JOINER, placement);
                let peer = std::net::SocketAddr::new(address, joined.peer_port).to_string();
                let admin = self.admin_client().await;
                let register = AddBroker { id: JOINER, peer };
                wait_for("broker 4 registered", 60, || async {
                    within(admin.add_broker(&register)).await?.ok()
                })
                .await;
                self.cluster.wait_ready(JOINER).await;
                let client = self.cluster.admin(JOINER).await;
                self.clients
                    .by_id
                    .lock()
                    .expect("lock")
                    .insert(JOINER, client);
                self.members.0.lock().expect("lock").push(JOINER);
                true
            }
            Fault::Decommission(id) => {
                let admin = self.admin_client().await;
                wait_for(
                    &format!("broker {id} decommission accepted"),
                    60,
                    || async { within(admin.decommission_broker(*id)).await?.ok() },
                )
                .await;
                self.members.0.lock().expect("lock").retain(|m| m != id);
                true
            }
        }
    }
}

/// Heals everything and waits until every partition is led, fully in sync, and writable.
async fn heal(nemesis: &mut Nemesis) -> ClusterView {
    nemesis.network.heal_all();
    for id in nemesis.cluster.ids() {
        if nemesis.cluster.node(id).pid().is_some() {
            nemesis.cluster.signal(id, libc::SIGCONT);
        }
    }
    let down = nemesis.down.clone();
    for id in &down {
        nemesis.cluster.spawn_again(*id);
    }
    for id in down {
        nemesis.wait_restarted(id).await;
    }
    let admin = nemesis.admin_client().await;
    let members = nemesis.members.list();
    let deadline = Instant::now() + HEAL_WAIT;
    let mut last = None;
    let view = loop {
        if let Some(Ok(view)) = within(admin.cluster()).await {
            let settled = view
                .partitions
                .iter()
                .filter(|p| p.topic == TOPIC)
                .all(|p| {
                    p.leader.is_some()
                        && p.replicas.len() == 3
                        && p.replicas.iter().all(|r| members.contains(r))
                        && p.lag.len() == 3
                        && p.lag.values().all(|lag| *lag == 0)
                });
            if settled {
                break view;
            }
            last = Some(view);
        }
        assert!(
            Instant::now() < deadline,
            "not healed in {HEAL_WAIT:?} (members {members:?}); the last view: {last:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for partition in 0..PARTITIONS {
        let request = ProduceRequest {
            records: vec![ProduceRecord {
                value: Some(format!("heal-probe-{partition}")),
                partition: Some(partition),
                ..ProduceRecord::default()
            }],
        };
        wait_for(&format!("a write to partition {partition}"), 90, || async {
            within(admin.produce(TOPIC, &request)).await?.ok()
        })
        .await;
    }
    view
}

/// What a run found.
struct Report {
    violations: Vec<String>,
    faults: BTreeMap<&'static str, u64>,
}

/// Starts the cluster and the workload, runs `plan`, heals and checks. With `skip_fsync` every
/// broker stops fsyncing once the topic exists (the negative control).
async fn run(plan: &[(Fault, Duration)], skip_fsync: bool, replay: &str) -> Report {
    let markers = tempfile::tempdir().expect("temp dir");
    // Every broker in its own network namespace (the joiner's too), reached through a bridge.
    let network = Network::create(JOINER);
    let placements = (1..=FOUNDERS)
        .map(|id| network.placement(id, &[]))
        .collect();
    let filter = std::env::var("PALISADE_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let mut cluster = TestCluster::start_placed_env(
        placements,
        "balance_interval_ms = 2000\nforward_timeout_ms = 3000\n",
        "",
        &filter,
        &[(POWER_LOSS_ENV, "1")],
    )
    .await;
    // Every broker, the joiner too, fails fsync while its marker file exists.
    for id in 1..=FOUNDERS {
        let marker = markers.path().join(format!("fail-{id}"));
        cluster
            .node_mut(id)
            .env
            .push((SYNC_FAIL_FILE_ENV.into(), marker.display().to_string()));
        cluster.restart(id).await;
    }
    let admin = cluster.admin(1).await;
    common::create_topic(&admin, TOPIC, PARTITIONS, 3).await;
    if skip_fsync {
        wait_for("the topic led on every partition", 60, || async {
            let view = admin.cluster().await.ok()?;
            let led = view.partitions.iter().filter(|p| p.topic == TOPIC);
            (led.clone().count() == PARTITIONS as usize && led.clone().all(|p| p.leader.is_some()))
                .then_some(())
        })
        .await;
        for id in 1..=FOUNDERS {
            let unsafe_switch = (UNSAFE_SKIP_FSYNC_ENV.to_string(), "1".to_string());
            cluster.node_mut(id).env.push(unsafe_switch);
            cluster.restart(id).await;
        }
    }
    let members = Members(Arc::new(Mutex::new((1..=FOUNDERS).collect())));
    let mut by_id = BTreeMap::new();
    for id in 1..=FOUNDERS {
        by_id.insert(id, cluster.admin(id).await);
    }
    let clients = Arc::new(Clients {
        by_id: Mutex::new(by_id),
        members: members.clone(),
        turn: AtomicU64::new(0),
    });
    let mut nemesis = Nemesis {
        cluster,
        network,
        members,
        clients: clients.clone(),
        markers,
        down: Vec::new(),
    };

    let acked: Acked = Arc::default();
    let observed = Arc::new(Mutex::new(Observed::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..2 {
        let task = produce(
            clients.clone(),
            format!("plain{p}"),
            acked.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(task));
    }
    let task = produce_idempotent(
        clients.clone(),
        acked.clone(),
        observed.clone(),
        stop.clone(),
    );
    tasks.push(tokio::spawn(task));
    tasks.push(tokio::spawn(consume(
        clients.clone(),
        observed.clone(),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(watch_offsets(
        clients.clone(),
        observed.clone(),
        stop.clone(),
    )));
    wait_acked(&acked, 500, 60).await;

    let mut tally = Tally {
        faults: BTreeMap::new(),
    };
    let started = Instant::now();
    for (fault, gap) in plan {
        for id in nemesis.members.list() {
            if let Some(status) = nemesis.cluster.exited(id) {
                panic!("broker {id} exited on its own ({status}); {replay}");
            }
        }
        eprintln!(
            "nemesis +{:.1}s: {fault:?}",
            started.elapsed().as_secs_f64()
        );
        if nemesis.apply(fault).await {
            tally.count(kind(fault));
        }
        tokio::time::sleep(*gap).await;
    }
    eprintln!(
        "nemesis: healing after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let view = heal(&mut nemesis).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("workload task");
    }

    let admin = nemesis.admin_client().await;
    let stored = read_all(&admin, TOPIC, PARTITIONS).await;
    let acked = acked.lock().expect("lock").clone();
    let mut violations = check(&acked, &stored);
    let description = admin.describe_group(GROUP).await.expect("describe group");
    let finally: BTreeMap<u32, u64> = description
        .offsets
        .iter()
        .filter_map(|o| Some((o.partition, o.committed_offset?)))
        .collect();
    let observed = observed.lock().expect("lock");
    violations.extend(offset_violations(&observed, &finally));

    // Replicas: every current replica's log, read from its stopped broker's file.
    for id in nemesis.cluster.ids() {
        if nemesis.cluster.node(id).pid().is_some() {
            nemesis.cluster.terminate(id);
        }
    }
    let mut replicas_compared = 0;
    for partition in view.partitions.iter().filter(|p| p.topic == TOPIC) {
        let group = partition.group.expect("group id");
        let logs: Vec<(u64, BTreeMap<u64, String>)> = partition
            .replicas
            .iter()
            .map(|id| {
                let dir = nemesis.cluster.node(*id).dir.join("data");
                let log = replica_values(&dir, group).unwrap_or_default();
                (*id, log)
            })
            .collect();
        replicas_compared += logs.len();
        violations.extend(replica_differences(partition.partition, &logs));
    }

    eprintln!(
        "nemesis: faults {:?}; {} records acknowledged ({} idempotent batches, {} sent again), {} group commits, {} replicas compared, {} violations",
        tally.faults,
        acked.len(),
        observed.idempotent_acked,
        observed.idempotent_resent,
        observed.commits.len(),
        replicas_compared,
        violations.len()
    );
    Report {
        violations,
        faults: tally.faults,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nemesis_finds_no_lost_moved_or_duplicated_record_and_no_diverging_replica() {
    let seconds: u64 = std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var(SEED_ENV)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        });
    let replay = format!(
        "replay with {SEED_ENV}={seed} {SECONDS_ENV}={seconds} cargo test --test cluster_nemesis"
    );
    eprintln!("nemesis: seed {seed}, {seconds} s ({replay})");
    // About two seconds a step: the number of steps, not the clock, bounds the run, so a replay
    // injects the same faults.
    let plan = schedule(seed, (seconds / 2).max(6) as usize);
    let report = run(&plan, false, &replay).await;
    assert!(
        report.violations.is_empty(),
        "{}; {replay}",
        summary(&report.violations)
    );
    assert!(
        report.faults.values().sum::<u64>() >= 3,
        "the schedule injected too few faults to mean anything: {:?}; {replay}",
        report.faults
    );
}

/// The negative control: the same cluster, workload and checks with brokers that skip fsync,
/// and a power cut of every broker: the nemesis must report acknowledged records missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nemesis_catches_a_cluster_that_skips_fsync() {
    let everyone = Fault::PowerCut((1..=FOUNDERS).collect(), Duration::from_millis(200));
    let plan = [(everyone, Duration::from_millis(200))];
    let report = run(&plan, true, "a fixed schedule").await;
    let missing = report
        .violations
        .iter()
        .filter(|v| v.contains("is missing"))
        .count();
    assert!(
        missing > 0,
        "a power cut of every broker must lose records acknowledged without fsync: {:?}",
        report.violations
    );
    eprintln!("the nemesis caught it: {}", summary(&report.violations));
}

#[test]
fn a_seed_gives_the_same_schedule_and_seeds_differ() {
    assert_eq!(schedule(7, 50), schedule(7, 50));
    assert_ne!(schedule(7, 50), schedule(8, 50));
    let plan = schedule(7, 60);
    assert_eq!(plan.iter().filter(|(f, _)| *f == Fault::Join).count(), 1);
    assert_eq!(
        plan.iter()
            .filter(|(f, _)| matches!(f, Fault::Decommission(_)))
            .count(),
        1
    );
}

#[test]
fn the_offset_check_catches_a_committed_offset_moving_back_or_lost() {
    let mut observed = Observed::default();
    observed.reads.insert(0, vec![3, 5, 5, 9]);
    observed.commits = vec![(0, 5), (0, 9)];
    let finally = BTreeMap::from([(0, 9)]);
    assert!(offset_violations(&observed, &finally).is_empty());
    observed.reads.insert(1, vec![4, 2]);
    let moved_back = offset_violations(&observed, &finally);
    assert_eq!(moved_back.len(), 1, "{moved_back:?}");
    observed.reads.remove(&1);
    let lost = offset_violations(&observed, &BTreeMap::from([(0, 5)]));
    assert_eq!(lost.len(), 1, "{lost:?}");
}

#[test]
fn the_replica_check_catches_a_diverging_replica() {
    let log: BTreeMap<u64, String> = (0..4).map(|o| (o, format!("v{o}"))).collect();
    let same = vec![(1, log.clone()), (2, log.clone()), (3, log.clone())];
    assert!(replica_differences(0, &same).is_empty());
    let mut changed = log.clone();
    changed.insert(2, "other".into());
    let mut short = log.clone();
    short.remove(&3);
    let diverging = vec![(1, log), (2, changed), (3, short)];
    assert_eq!(replica_differences(0, &diverging).len(), 2);
}
