//! The simulated world: replicas, a lossy network, a nemesis choosing faults, and the invariant
//! checker observing every step. Deterministic for a seed.

use std::collections::{BTreeMap, HashSet};

use palisade::raft::{
    Assigned, Canary, ConfChange, ConfState, Config, GroupId, LogIndex, LogStore, Message, NodeId,
    ProposeError, Role, Term, Wake,
};

use super::checker::Checker;
use super::Replica;

/// Messages in flight beyond this are dropped oldest first (counted as `drop_overflow`).
const NETWORK_MESSAGES_MAX: usize = 400;

/// Replica ids are 1..=n, stored in order.
fn index_of(id: NodeId) -> usize {
    (id.0 - 1) as usize
}

pub struct SimRng(u64);

impl SimRng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }
    fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize])
    }
}

#[derive(Default)]
pub struct Stats {
    pub seeds: u64,
    pub steps: u64,
    pub faults: BTreeMap<&'static str, u64>,
    pub proposals_committed: u64,
    pub checks: u64,
}

struct InFlight {
    deliver_at: u64,
    message: Message,
}

pub struct Sim {
    rng: SimRng,
    pub replicas: Vec<Replica>,
    network: Vec<InFlight>,
    cut: HashSet<(NodeId, NodeId)>,
    pub checker: Checker,
    pub step: u64,
    pub faults: BTreeMap<&'static str, u64>,
    /// Leader-churn nemesis: every this many steps, heal and cut the current leader off.
    churn_period_steps: Option<u64>,
    /// Whether quiesced replicas are woken when a member they depend on becomes unreachable
    /// (what the broker's peer network does). Off only to show the checker needs it.
    wake_on_link_loss: bool,
}

/// Whether replicas quiesce idle groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quiescence {
    /// Chosen by the seed, with wakes on link loss.
    Seeded,
    /// Always, and never woken on link loss: a broken broker the liveness checks must catch.
    WithoutWakes,
}

impl Sim {
    pub fn new(seed: u64, canary: Option<Canary>) -> Sim {
        Sim::with_quiescence(seed, canary, Quiescence::Seeded)
    }

    pub fn with_quiescence(seed: u64, canary: Option<Canary>, quiescence: Quiescence) -> Sim {
        let mut rng = SimRng(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5151);
        let voter_count = if rng.chance(50) { 3 } else { 5 };
        let voters: Vec<NodeId> = (1..=voter_count).map(NodeId).collect();
        let learners: Vec<NodeId> = if rng.chance(50) {
            vec![NodeId(voter_count + 1)]
        } else {
            vec![]
        };
        let election_timeout_ticks = 4 + rng.below(7) as u32;
        let heartbeat_interval_ticks = 1 + rng.below(2) as u32;
        let append_bytes_max = [48, 48, 128, 1024 * 1024][rng.below(4) as usize];
        let inflight_appends_max = 1 + rng.below(8) as usize;
        let pre_vote = rng.chance(85);
        let check_quorum = rng.chance(85);
        let quiesce = rng.chance(50) || quiescence == Quiescence::WithoutWakes;
        let replicas = (1..=voter_count + 2)
            .map(|id| {
                let mut config = Config::new(NodeId(id), GroupId(7));
                config.election_timeout_ticks = election_timeout_ticks;
                config.heartbeat_interval_ticks = heartbeat_interval_ticks;
                config.append_bytes_max = append_bytes_max;
                config.inflight_appends_max = inflight_appends_max;
                config.pre_vote = pre_vote;
                config.check_quorum = check_quorum;
                config.quiesce = quiesce;
                config.seed = seed;
                config.canary = canary;
                let member = voters.contains(&NodeId(id)) || learners.contains(&NodeId(id));
                let conf = if member {
                    ConfState {
                        voters: voters.clone(),
                        learners: learners.clone(),
                    }
                } else {
                    ConfState::default()
                };
                Replica::new(config, conf)
            })
            .collect();
        let churn_period_steps = rng.chance(50).then(|| 20 + rng.below(100));
        Sim {
            churn_period_steps,
            rng,
            replicas,
            network: Vec::new(),
            cut: HashSet::new(),
            checker: Checker::default(),
            step: 0,
            faults: BTreeMap::new(),
            wake_on_link_loss: quiescence == Quiescence::Seeded,
        }
    }

    /// Whether `a` and `b` have a working link: both up and no cut in either direction (a
    /// connection silent one way is closed by the side that hears nothing).
    fn linked(&self, a: NodeId, b: NodeId) -> bool {
        a == b
            || (self.replicas[index_of(b)].is_up()
                && !self.cut.contains(&(a, b))
                && !self.cut.contains(&(b, a)))
    }

    /// What the broker does for a quiesced replica: wakes it while a member it depends on (a
    /// follower: its leader; the leader: every member) has no working link to it.
    fn wake_unreachable(&mut self) {
        if !self.wake_on_link_loss {
            return;
        }
        for position in 0..self.replicas.len() {
            if !self.replicas[position].is_up() {
                continue;
            }
            let node = self.replicas[position].node();
            let id = self.replicas[position].id;
            if !node.is_quiesced() {
                // An awake follower whose link to its leader is gone is told so, as the broker
                // tells it when the connection closes, and campaigns early.
                if let Some(leader) = node.leader() {
                    let told = node.is_leader_unreachable();
                    if node.role() != Role::Leader && !told && !self.linked(id, leader) {
                        let node = self.replicas[position].node_mut();
                        node.leader_lost(leader);
                        if node.is_leader_unreachable() {
                            self.fault("leader_lost");
                        }
                    }
                }
                continue;
            }
            let depends: Vec<NodeId> = if node.role() == Role::Leader {
                node.conf_state().members().collect()
            } else {
                node.leader().into_iter().collect()
            };
            let safe = !depends.is_empty() && depends.iter().all(|peer| self.linked(id, *peer));
            if !safe {
                self.replicas[position].node_mut().wake(Wake::MemberDown);
                self.fault("wake_member_down");
            }
        }
    }

    pub fn quiesced_count(&self) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.is_up() && r.node().is_quiesced())
            .count()
    }

    fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_default() += 1;
    }

    fn up_ids(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .filter(|r| r.is_up())
            .map(|r| r.id)
            .collect()
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.replicas
            .iter()
            .filter(|r| r.is_up() && r.node().status().role == Role::Leader)
            .map(|r| r.id)
            .collect()
    }

    /// The leader of the highest term: a stale leader (removed, or cut off without CheckQuorum)
    /// may still call itself leader of an older one.
    fn newest_leader(&self) -> Option<NodeId> {
        self.leaders()
            .into_iter()
            .max_by_key(|id| self.replicas[index_of(*id)].node().term())
    }

    /// Executes every pending Ready, observing each, and queues the messages.
    pub fn process_all(&mut self) {
        self.wake_unreachable();
        for position in 0..self.replicas.len() {
            while let Some(processed) = self.replicas[position].process_ready() {
                if trace_enabled() {
                    let status = self.replicas[position].node().status();
                    println!(
                        "{} ready {:?} {:?} t{} commit={} last={} entries={:?} committed={} snapshot={:?} conf={:?}/{:?} progress={:?}",
                        self.step, status.id, status.role, status.term.0, status.commit.0, status.last_index.0,
                        processed.entries.iter().map(|e| (e.index.0, e.term.0)).collect::<Vec<_>>(),
                        processed.committed.len(), processed.snapshot.as_ref().map(|s| s.meta.index.0),
                        status.conf_state.voters, status.conf_state.learners, status.progress
                    );
                }
                self.checker.on_ready(&self.replicas[position], &processed);
                for message in processed.messages {
                    let mut deliver_at = self.step;
                    if self.rng.chance(5) {
                        deliver_at += 1 + self.rng.below(40);
                        self.fault("delay");
                    }
                    self.network.push(InFlight {
                        deliver_at,
                        message,
                    });
                }
            }
        }
        if self.network.len() > NETWORK_MESSAGES_MAX {
            let excess = self.network.len() - NETWORK_MESSAGES_MAX;
            self.network.drain(..excess);
            *self.faults.entry("drop_overflow").or_default() += excess as u64;
        }
    }

    pub fn check_all(&mut self) {
        for position in 0..self.replicas.len() {
            self.checker
                .check_replica(&self.replicas[position], &self.replicas);
        }
    }

    fn deliver(&mut self, reorder: bool) {
        let eligible: Vec<usize> = (0..self.network.len())
            .filter(|position| self.network[*position].deliver_at <= self.step)
            .collect();
        let position = if reorder {
            self.rng.pick(&eligible)
        } else {
            eligible.first().copied()
        };
        let Some(position) = position else {
            return;
        };
        if reorder {
            self.fault("reorder");
        }
        let message = self.network.remove(position).message;
        if trace_enabled() {
            println!(
                "{} deliver {:?}->{:?} t{} {:?}",
                self.step, message.from, message.to, message.term.0, message.body
            );
        }
        if self.cut.contains(&(message.from, message.to)) {
            self.fault("drop_partitioned");
            return;
        }
        let target = index_of(message.to);
        // The broker's membership check runs before every step; the controller's assignment is
        // played by the membership any replica holds now (it names a replica being added before
        // that replica knows the group, and one being removed until every replica dropped it).
        let from = message.from;
        let assigned = self
            .replicas
            .iter()
            .filter(|replica| replica.is_up())
            .any(|replica| replica.node().status().conf_state.contains(from));
        let admitted = self.replicas[target].try_node_mut().map(|node| {
            node.admit(&message, || {
                if assigned {
                    Assigned::Yes
                } else {
                    Assigned::No
                }
            })
        });
        match admitted {
            Some(Ok(())) => self.replicas[target]
                .node_mut()
                .step(message)
                .expect("simulator routes by group and recipient"),
            Some(Err(_)) => self.fault("drop_not_admitted"),
            None => self.fault("drop_node_down"),
        }
    }
}

impl Sim {
    fn propose(&mut self) {
        let Some(leader) = self.rng.pick(&self.leaders()) else {
            return;
        };
        let payload = format!("s{}", self.step).into_bytes();
        let position = index_of(leader);
        let _ = self.replicas[position].node_mut().propose(payload);
    }

    fn conf_change(&mut self) {
        let Some(leader) = self.rng.pick(&self.leaders()) else {
            return;
        };
        let position = index_of(leader);
        let status = self.replicas[position].node().status();
        let conf = status.conf_state;
        let all: Vec<NodeId> = self.replicas.iter().map(|r| r.id).collect();
        let strangers: Vec<NodeId> = all
            .iter()
            .copied()
            .filter(|id| !conf.contains(*id))
            .collect();
        let mut removable: Vec<NodeId> = conf.learners.clone();
        if conf.voters.len() > 3 {
            removable.extend(conf.voters.iter().copied());
        }
        let change = match self.rng.below(3) {
            0 => self.rng.pick(&strangers).map(ConfChange::AddLearner),
            1 => self
                .rng
                .pick(&conf.learners)
                .map(ConfChange::PromoteLearner),
            _ => self.rng.pick(&removable).map(ConfChange::RemoveNode),
        };
        let Some(change) = change else {
            return;
        };
        match self.replicas[position]
            .node_mut()
            .propose_conf_change(change)
        {
            Ok(index) => {
                self.checker.on_conf_proposed(leader, status.term, index);
                self.fault("conf_change");
            }
            Err(ProposeError::ConfChangePending | ProposeError::NoCommitInTerm) => {}
            Err(ProposeError::TransferInProgress) => {}
            Err(error) => panic!("unexpected refusal of {change:?}: {error}"),
        }
    }

    fn transfer(&mut self) {
        let Some(leader) = self.rng.pick(&self.leaders()) else {
            return;
        };
        let position = index_of(leader);
        let voters = self.replicas[position].node().status().conf_state.voters;
        let others: Vec<NodeId> = voters.into_iter().filter(|id| *id != leader).collect();
        if let Some(target) = self.rng.pick(&others) {
            if self.replicas[position]
                .node_mut()
                .transfer_leader(target)
                .is_ok()
            {
                self.fault("transfer_leader");
            }
        }
    }

    fn compact(&mut self) {
        let Some(id) = self.rng.pick(&self.up_ids()) else {
            return;
        };
        let node = self.replicas[index_of(id)].node_mut();
        let applied = node.status().applied;
        if applied >= node.store().first_index() {
            let data = applied.0.to_le_bytes().to_vec();
            if node.store_mut().compact(applied, data).is_ok() {
                self.fault("compaction");
            }
        }
    }

    fn partition(&mut self, symmetric: bool) {
        let ids: Vec<NodeId> = self.replicas.iter().map(|r| r.id).collect();
        if symmetric {
            let isolated: Vec<NodeId> = ids
                .iter()
                .copied()
                .filter(|_| self.rng.chance(35))
                .collect();
            for inside in &isolated {
                for outside in ids.iter().filter(|id| !isolated.contains(id)) {
                    self.cut.insert((*inside, *outside));
                    self.cut.insert((*outside, *inside));
                }
            }
            self.fault("partition_symmetric");
        } else if let (Some(from), Some(to)) = (self.rng.pick(&ids), self.rng.pick(&ids)) {
            self.cut.insert((from, to));
            self.fault("partition_asymmetric");
        }
    }

    /// The most common real fault: the leader alone loses the network, or crashes.
    fn isolate_leader(&mut self) {
        let Some(leader) = self.rng.pick(&self.leaders()) else {
            return;
        };
        if self.rng.chance(50) {
            self.replicas[index_of(leader)].crash();
            self.fault("crash");
            return;
        }
        for replica in &self.replicas {
            if replica.id != leader {
                self.cut.insert((leader, replica.id));
                self.cut.insert((replica.id, leader));
            }
        }
        self.fault("partition_symmetric");
    }

    fn crash_or_restart(&mut self, crash: bool) {
        let down: Vec<NodeId> = self
            .replicas
            .iter()
            .filter(|r| !r.is_up())
            .map(|r| r.id)
            .collect();
        if crash {
            if let Some(id) = self.rng.pick(&self.up_ids()) {
                self.replicas[index_of(id)].crash();
                self.fault("crash");
            }
        } else if let Some(id) = self.rng.pick(&down) {
            let position = index_of(id);
            let applied = self.replicas[position].restart();
            self.checker.on_restart(id, applied);
            self.fault("restart");
        }
    }

    pub fn act(&mut self) {
        if let Some(period) = self.churn_period_steps {
            if self.step % period == 0 {
                self.cut.clear();
                self.fault("heal");
                self.isolate_leader();
                return;
            }
            if self.rng.chance(2) {
                self.isolate_leader();
                return;
            }
        }
        let roll = self.rng.below(1000);
        match roll {
            0..=449 => self.deliver(false),
            450..=699 => {
                if let Some(id) = self.rng.pick(&self.up_ids()) {
                    self.replicas[index_of(id)].node_mut().tick();
                }
            }
            700..=819 => self.propose(),
            820..=849 => self.deliver(true),
            850..=869 => {
                if !self.network.is_empty() {
                    let position = self.rng.below(self.network.len() as u64) as usize;
                    self.network.remove(position);
                    self.fault("drop");
                }
            }
            870..=889 => {
                if let Some(position) = self.rng.pick(&(0..self.network.len()).collect::<Vec<_>>())
                {
                    let copy = InFlight {
                        deliver_at: self.step,
                        message: self.network[position].message.clone(),
                    };
                    self.network.push(copy);
                    self.fault("duplicate");
                }
            }
            890..=897 => self.partition(true),
            898..=905 => self.partition(false),
            906..=925 => {
                if !self.cut.is_empty() {
                    self.cut.clear();
                    self.fault("heal");
                }
            }
            926..=930 => self.crash_or_restart(true),
            931..=935 => self.isolate_leader(),
            936..=955 => self.crash_or_restart(false),
            956..=975 => self.conf_change(),
            976..=985 => self.transfer(),
            _ => self.compact(),
        }
    }

    /// Heals everything and requires a leader that commits a new proposal within a bound.
    pub fn check_liveness(&mut self, rounds_max: u64) -> Result<u64, String> {
        self.cut.clear();
        for position in 0..self.replicas.len() {
            if !self.replicas[position].is_up() {
                let id = self.replicas[position].id;
                let applied = self.replicas[position].restart();
                self.checker.on_restart(id, applied);
            }
        }
        self.commit_one(rounds_max, b"liveness", "while healing", "after healing")
    }
}

impl Sim {
    /// One round of the healing phases: every replica ticks, then messages are delivered in order
    /// until none is left.
    fn quiet_round(&mut self) {
        self.step += 1;
        for replica in &mut self.replicas {
            if let Some(node) = replica.try_node_mut() {
                node.tick();
            }
        }
        // Checked after every delivery: a leader must be observed before later commits are.
        self.process_all();
        self.check_all();
        if self.quiesced_count() > 0 {
            self.fault("round_with_quiesced_replicas");
        }
        let mut delivered = 0;
        while !self.network.is_empty() && delivered < 100_000 {
            self.step += 40;
            self.deliver(false);
            delivered += 1;
            self.process_all();
            self.check_all();
        }
    }

    /// After `check_liveness`: lets the group go idle (and quiesce, where it does), then crashes
    /// its leader and requires another leader to commit a proposal within `rounds_max` rounds.
    /// A quiesced group whose followers are never told that their leader is gone fails here.
    pub fn check_failover(&mut self, rounds_max: u64) -> Result<u64, String> {
        let idle_rounds = 4 * u64::from(self.replicas[0].config.election_timeout_ticks);
        for _ in 0..idle_rounds {
            self.quiet_round();
        }
        let Some(old) = self.newest_leader() else {
            return Err("no leader after the idle rounds".to_string());
        };
        self.fault("idle_leader_crash");
        self.replicas[index_of(old)].crash();
        let after = format!("after the idle leader {old:?} crashed");
        self.commit_one(rounds_max, b"failover", "during failover", &after)
    }
}

impl Sim {
    /// Runs quiet rounds, proposing `payload` to the leader of the highest term (again whenever
    /// that leader changes), until it commits: returns the round it committed in. Fails on a
    /// safety violation (`phase` says when) or after `rounds_max` rounds (`after` says what came
    /// before them).
    fn commit_one(
        &mut self,
        rounds_max: u64,
        payload: &[u8],
        phase: &str,
        after: &str,
    ) -> Result<u64, String> {
        let mut proposal: Option<(NodeId, Term, LogIndex)> = None;
        for round in 0..rounds_max {
            self.quiet_round();
            if !self.checker.violations.is_empty() {
                return Err(format!("safety violation {phase}"));
            }
            if let Some((leader, term, index)) = proposal {
                let status = self.replicas[index_of(leader)].node().status();
                if status.term == term && status.commit >= index {
                    return Ok(round);
                }
                if status.term != term
                    || status.role != Role::Leader
                    || self.newest_leader() != Some(leader)
                {
                    proposal = None;
                }
            }
            if proposal.is_none() {
                if let Some(leader) = self.newest_leader() {
                    let node = self.replicas[index_of(leader)].node_mut();
                    if let Ok(index) = node.propose(payload.to_vec()) {
                        proposal = Some((leader, node.status().term, index));
                    }
                }
            }
        }
        Err(format!(
            "no proposal committed within {rounds_max} rounds {after}"
        ))
    }
}

/// `PALISADE_SIM_TRACE=1` prints every delivery and Ready (use with `PALISADE_SIM_SEED`).
pub fn trace_enabled() -> bool {
    std::env::var("PALISADE_SIM_TRACE").is_ok()
}
