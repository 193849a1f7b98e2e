//! Safety invariants of a Raft group, checked by observing every Ready and every replica after
//! every simulator step. Each check increments `checks`; a failed one records a violation.

use std::collections::{BTreeMap, HashMap, HashSet};

use palisade::raft::{EntryPayload, LogIndex, LogStore, MessageBody, NodeId, Role, Term};

use super::{Processed, Replica};

#[derive(Default)]
pub struct Checker {
    pub checks: u64,
    pub violations: Vec<String>,
    leaders: HashMap<Term, NodeId>,
    /// Every entry any replica reported committed, by index.
    committed: BTreeMap<LogIndex, (Term, EntryPayload)>,
    /// Log Matching: (index, term) -> (payload, term of the previous entry).
    registry: HashMap<(LogIndex, Term), (EntryPayload, Option<Term>)>,
    /// Highest term each replica sent a (non-pre-vote) message in.
    announced: HashMap<NodeId, Term>,
    /// Votes granted: (voter, term) -> candidate.
    votes: HashMap<(NodeId, Term), NodeId>,
    /// Last index each replica applied.
    applied: HashMap<NodeId, LogIndex>,
    /// Last commit index checked for durability on each leader.
    leader_commit: HashMap<NodeId, (Term, LogIndex)>,
    leaders_checked: HashSet<(NodeId, Term)>,
    /// Conf changes each leader appended: (leader, term) -> indexes.
    conf_proposals: HashMap<(NodeId, Term), Vec<LogIndex>>,
}

impl Checker {
    fn check(&mut self, ok: bool, violation: impl FnOnce() -> String) {
        self.checks += 1;
        if !ok {
            self.violations.push(violation());
        }
    }

    pub fn max_committed(&self) -> Option<(LogIndex, Term)> {
        self.committed
            .iter()
            .next_back()
            .map(|(index, (term, _))| (*index, *term))
    }

    pub fn on_conf_proposed(&mut self, leader: NodeId, term: Term, index: LogIndex) {
        self.conf_proposals
            .entry((leader, term))
            .or_default()
            .push(index);
    }

    pub fn on_restart(&mut self, id: NodeId, applied: LogIndex) {
        self.applied.insert(id, applied);
        self.leader_commit.remove(&id);
    }

    /// Observes what one Ready of `replica` did.
    pub fn on_ready(&mut self, replica: &Replica, processed: &Processed) {
        let id = replica.id;
        for message in &processed.messages {
            if matches!(
                message.body,
                MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { .. }
            ) {
                continue;
            }
            let announced = self.announced.entry(id).or_default();
            *announced = (*announced).max(message.term);
            if message.body == (MessageBody::VoteResponse { reject: false }) {
                let previous = *self.votes.entry((id, message.term)).or_insert(message.to);
                self.check(previous == message.to, || {
                    format!(
                        "{id:?} voted for {previous:?} and {:?} in {:?}",
                        message.to, message.term
                    )
                });
            }
        }
        if let Some(snapshot) = &processed.snapshot {
            let meta = &snapshot.meta;
            let known = self.committed.get(&meta.index).map(|(term, _)| *term);
            self.check(known.is_none_or(|term| term == meta.term), || {
                format!(
                    "{id:?} installed a snapshot at {:?}/{:?} over committed {known:?}",
                    meta.index, meta.term
                )
            });
            self.applied.insert(id, meta.index);
        }
        self.observe_entries(replica, processed);
        self.observe_committed(id, processed);
    }

    fn observe_entries(&mut self, replica: &Replica, processed: &Processed) {
        let store = replica.store();
        for entry in &processed.entries {
            let previous = store.term(entry.index.prev()).ok();
            let key = (entry.index, entry.term);
            let value = (entry.payload.clone(), previous);
            let known = self
                .registry
                .entry(key)
                .or_insert_with(|| value.clone())
                .clone();
            let same = known.0 == value.0
                && (known.1 == value.1 || known.1.is_none() || value.1.is_none());
            self.check(same, || {
                format!(
                    "log matching: {:?} holds {key:?} as {value:?}, elsewhere {known:?}",
                    replica.id
                )
            });
        }
    }

    fn observe_committed(&mut self, id: NodeId, processed: &Processed) {
        for entry in &processed.committed {
            let applied = self.applied.entry(id).or_default();
            let expected = applied.next();
            *applied = entry.index;
            self.check(entry.index == expected, || {
                format!(
                    "{id:?} applied {:?} after {:?}",
                    entry.index,
                    expected.prev()
                )
            });
            let value = (entry.term, entry.payload.clone());
            let known = self
                .committed
                .entry(entry.index)
                .or_insert_with(|| value.clone())
                .clone();
            self.check(known == value, || {
                format!(
                    "committed entry {:?} changed: {known:?} then {value:?} on {id:?}",
                    entry.index
                )
            });
        }
    }

    /// Checks one replica's state against the group's history. `replicas` holds every replica.
    pub fn check_replica(&mut self, replica: &Replica, replicas: &[Replica]) {
        let id = replica.id;
        self.check_durable_vote(replica);
        if !replica.is_up() {
            return;
        }
        let node = replica.node();
        let status = node.status();
        let first_index = node.store().first_index();
        // A leader that appended its own removal leads until it commits; nobody else campaigns
        // outside the voters.
        let campaigning = matches!(status.role, Role::Candidate | Role::PreCandidate);
        self.check(
            !campaigning || status.conf_state.voters.contains(&id),
            || {
                format!(
                    "{id:?} is {:?} without being a voter in {:?}",
                    status.role, status.conf_state
                )
            },
        );
        self.check(status.commit <= status.last_index, || {
            format!(
                "{id:?} commit {:?} beyond its last index {:?}: committed entries vanished",
                status.commit, status.last_index
            )
        });
        if let Some((term, _)) = self.committed.get(&status.commit) {
            let term = *term;
            let held = node.term_at(status.commit);
            self.check(status.commit < first_index || held == Some(term), || {
                format!(
                    "{id:?} holds {held:?} at its commit {:?}, committed term {term:?}",
                    status.commit
                )
            });
        }
        if status.role == Role::Leader {
            self.check_leader(replica, replicas);
        }
    }

    fn check_durable_vote(&mut self, replica: &Replica) {
        let id = replica.id;
        let durable = replica.durable_hard_state;
        let announced = self.announced.get(&id).copied().unwrap_or_default();
        self.check(durable.term >= announced, || {
            format!(
                "{id:?} sent messages in {announced:?} but its durable term is {:?}",
                durable.term
            )
        });
        if let Some(candidate) = self.votes.get(&(id, durable.term)).copied() {
            self.check(durable.vote == Some(candidate), || {
                format!(
                    "{id:?} granted its vote in {:?} to {candidate:?}, durable vote {:?}",
                    durable.term, durable.vote
                )
            });
        }
    }

    fn check_leader(&mut self, replica: &Replica, replicas: &[Replica]) {
        let id = replica.id;
        let node = replica.node();
        let status = node.status();
        let term = status.term;
        let leader = *self.leaders.entry(term).or_insert(id);
        self.check(leader == id, || {
            format!("two leaders in {term:?}: {leader:?} and {id:?}")
        });
        if self.leaders_checked.insert((id, term)) {
            if let Some((index, committed_term)) = self.max_committed() {
                let held = node.term_at(index);
                let compacted = index < node.store().first_index();
                self.check(compacted || held == Some(committed_term), || {
                    format!("leader completeness: {id:?} elected in {term:?} holds {held:?} at committed {index:?} ({committed_term:?})")
                });
            }
        }
        let commit = status.commit;
        // Only commit decisions taken by this leader: a new leader inherits its commit index.
        let previous = self.leader_commit.insert(id, (term, commit));
        let advanced =
            matches!(previous, Some((seen_term, seen)) if seen_term == term && seen < commit);
        if advanced {
            let commit_term = node.term_at(commit);
            let holders = status
                .conf_state
                .voters
                .iter()
                .filter(|voter| {
                    replicas.iter().find(|r| r.id == **voter).is_some_and(|r| {
                        let store = r.store();
                        commit < store.first_index() || store.term(commit).ok() == commit_term
                    })
                })
                .count();
            let quorum = status.conf_state.voters.len() / 2 + 1;
            self.check(holders >= quorum, || {
                format!("{id:?} committed {commit:?} in {term:?} with only {holders} of {:?} holding it durably", status.conf_state.voters)
            });
        }
        self.check_pending_conf(replica);
    }

    /// At most one uncommitted conf change in a leader's log.
    fn check_pending_conf(&mut self, replica: &Replica) {
        let node = replica.node();
        let status = node.status();
        let persisted = status.persisted_index.min(node.store().last_index());
        let mut pending: HashSet<LogIndex> = HashSet::new();
        if status.commit < persisted {
            let entries = node
                .store()
                .entries(status.commit.next(), persisted.next(), u64::MAX)
                .unwrap_or_default();
            for entry in entries {
                if matches!(entry.payload, EntryPayload::ConfChange(_)) {
                    pending.insert(entry.index);
                }
            }
        }
        if let Some(proposed) = self.conf_proposals.get(&(replica.id, status.term)) {
            pending.extend(proposed.iter().filter(|index| **index > status.commit));
        }
        let count = pending.len();
        self.check(count <= 1, || {
            format!(
                "{:?} has {count} uncommitted conf changes: {pending:?}",
                replica.id
            )
        });
    }

    /// Records a leader directly (checker self-test).
    pub fn observe_leader(&mut self, term: Term, id: NodeId) {
        let leader = *self.leaders.entry(term).or_insert(id);
        self.check(leader == id, || {
            format!("two leaders in {term:?}: {leader:?} and {id:?}")
        });
    }
}
