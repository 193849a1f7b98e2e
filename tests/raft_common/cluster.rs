//! A deterministic cluster for scenario tests: messages are delivered in FIFO order, every
//! delivered message and every state snapshot is printed to a trace that tests compare.

use std::collections::{HashSet, VecDeque};

use palisade::raft::{
    ConfChange, ConfState, Config, Entry, EntryPayload, GroupId, Message, MessageBody, NodeId,
};

use super::Replica;

pub struct Cluster {
    pub replicas: Vec<Replica>,
    queue: VecDeque<Message>,
    cut: HashSet<(NodeId, NodeId)>,
    pub trace: Vec<String>,
}

fn entry_text(entry: &Entry) -> String {
    let payload = match &entry.payload {
        EntryPayload::Noop => "noop".to_string(),
        EntryPayload::Normal(data) => String::from_utf8_lossy(data).into_owned(),
        EntryPayload::ConfChange(ConfChange::AddLearner(id)) => format!("+learner{}", id.0),
        EntryPayload::ConfChange(ConfChange::PromoteLearner(id)) => format!("promote{}", id.0),
        EntryPayload::ConfChange(ConfChange::RemoveNode(id)) => format!("-node{}", id.0),
    };
    format!("{}/{}:{payload}", entry.index.0, entry.term.0)
}

fn ids(list: &[NodeId]) -> String {
    let parts: Vec<String> = list.iter().map(|id| id.0.to_string()).collect();
    format!("[{}]", parts.join(","))
}

/// One line per message, e.g. `1->2 t2 Append prev=1/1 [2/2:noop] commit=1`.
pub fn message_text(message: &Message) -> String {
    let body = match &message.body {
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        } => {
            format!("PreVote last={}/{}", last_log_index.0, last_log_term.0)
        }
        MessageBody::Vote {
            last_log_index,
            last_log_term,
            transfer,
        } => format!(
            "Vote last={}/{}{}",
            last_log_index.0,
            last_log_term.0,
            if *transfer { " transfer" } else { "" }
        ),
        MessageBody::PreVoteResponse { reject } | MessageBody::VoteResponse { reject } => format!(
            "{} {}",
            message.body.kind(),
            if *reject { "rejected" } else { "granted" }
        ),
        MessageBody::Append {
            prev_log_index,
            prev_log_term,
            entries,
            commit,
        } => {
            let entries: Vec<String> = entries.iter().map(entry_text).collect();
            format!(
                "Append prev={}/{} [{}] commit={}",
                prev_log_index.0,
                prev_log_term.0,
                entries.join(" "),
                commit.0
            )
        }
        MessageBody::AppendResponse {
            reject: false,
            index,
            ..
        } => {
            format!("AppendResponse ok index={}", index.0)
        }
        MessageBody::AppendResponse {
            reject: true,
            index,
            hint_index,
            hint_term,
        } => format!(
            "AppendResponse reject index={} hint={}/{}",
            index.0, hint_index.0, hint_term.0
        ),
        MessageBody::Heartbeat { commit } => format!("Heartbeat commit={}", commit.0),
        MessageBody::Snapshot { snapshot } => format!(
            "Snapshot {}/{} voters={} learners={}",
            snapshot.meta.index.0,
            snapshot.meta.term.0,
            ids(&snapshot.meta.conf_state.voters),
            ids(&snapshot.meta.conf_state.learners)
        ),
        other => other.kind().to_string(),
    };
    format!(
        "{}->{} t{} {body}",
        message.from.0, message.to.0, message.term.0
    )
}

impl Cluster {
    /// Replicas `1..=voters + learners + spare`; spare replicas start without membership.
    pub fn new(voters: u64, learners: u64, spare: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let conf = ConfState {
            voters: (1..=voters).map(NodeId).collect(),
            learners: (voters + 1..=voters + learners).map(NodeId).collect(),
        };
        let replicas = (1..=voters + learners + spare)
            .map(|id| {
                let mut config = Config::new(NodeId(id), GroupId(1));
                tweak(&mut config);
                let member = id <= voters + learners;
                Replica::new(
                    config,
                    if member {
                        conf.clone()
                    } else {
                        ConfState::default()
                    },
                )
            })
            .collect();
        Cluster {
            replicas,
            queue: VecDeque::new(),
            cut: HashSet::new(),
            trace: Vec::new(),
        }
    }

    pub fn node(&mut self, id: u64) -> &mut palisade::raft::RawNode<palisade::raft::MemStore> {
        self.replicas[(id - 1) as usize].node_mut()
    }

    pub fn note(&mut self, text: &str) {
        self.trace.push(format!("# {text}"));
    }

    /// Executes every Ready; messages are queued, applied entries traced.
    pub fn process(&mut self) {
        for replica in &mut self.replicas {
            while let Some(processed) = replica.process_ready() {
                if !processed.committed.is_empty() {
                    let applied: Vec<String> = processed.committed.iter().map(entry_text).collect();
                    self.trace
                        .push(format!("{} apply [{}]", replica.id.0, applied.join(" ")));
                }
                if let Some(snapshot) = &processed.snapshot {
                    self.trace.push(format!(
                        "{} install snapshot {}/{}",
                        replica.id.0, snapshot.meta.index.0, snapshot.meta.term.0
                    ));
                }
                self.queue.extend(processed.messages);
            }
        }
    }

    /// Delivers messages in order until none is left; cut links drop silently (counted).
    pub fn run(&mut self) {
        self.run_until("");
    }

    /// Like `run`, but stops right after delivering the message traced as `last_line`.
    pub fn run_until(&mut self, last_line: &str) {
        self.process();
        let mut dropped = 0;
        while let Some(message) = self.queue.pop_front() {
            if self.cut.contains(&(message.from, message.to)) {
                dropped += 1;
                continue;
            }
            let line = message_text(&message);
            let stop = line == last_line;
            self.trace.push(line);
            self.node(message.to.0)
                .step(message)
                .expect("routed correctly");
            self.process();
            if stop {
                break;
            }
        }
        if dropped > 0 {
            self.trace.push(format!("({dropped} dropped)"));
        }
    }

    /// Crash and restart from persisted state.
    pub fn restart(&mut self, id: u64) {
        let replica = &mut self.replicas[(id - 1) as usize];
        replica.crash();
        replica.restart();
        self.trace.push(format!("# restart {id}"));
    }

    pub fn tick(&mut self, id: u64, ticks: u32) {
        for _ in 0..ticks {
            self.node(id).tick();
        }
    }

    pub fn isolate(&mut self, id: u64) {
        for other in 1..=self.replicas.len() as u64 {
            if other != id {
                self.cut.insert((NodeId(id), NodeId(other)));
                self.cut.insert((NodeId(other), NodeId(id)));
            }
        }
        self.trace.push(format!("# isolate {id}"));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        self.trace.push("# heal".to_string());
    }

    /// Appends one line per replica: role, term, commit, last index and membership.
    pub fn state(&mut self) {
        for replica in &self.replicas {
            let status = replica.node().status();
            self.trace.push(format!(
                "{} {:?} t{} commit={} last={} voters={} learners={}",
                status.id.0,
                status.role,
                status.term.0,
                status.commit.0,
                status.last_index.0,
                ids(&status.conf_state.voters),
                ids(&status.conf_state.learners)
            ));
        }
    }

    /// The trace so far, one line per event, then cleared.
    pub fn take_trace(&mut self) -> String {
        let text = self.trace.join("\n");
        self.trace.clear();
        text
    }
}

pub fn assert_trace(cluster: &mut Cluster, expected: &str) {
    let actual = cluster.take_trace();
    assert_text(&actual, expected);
}

pub fn assert_text(actual: &str, expected: &str) {
    let expected: Vec<&str> = expected.trim().lines().map(str::trim).collect();
    let actual_lines: Vec<&str> = actual.lines().collect();
    if actual_lines != expected {
        panic!("trace differs; actual trace:\n{actual}\n");
    }
}

/// Elections by `campaign()` only: no PreVote or CheckQuorum unless a scenario turns them on.
pub fn plain(config: &mut Config) {
    config.pre_vote = false;
    config.check_quorum = false;
}

pub fn elect(cluster: &mut Cluster, id: u64) {
    cluster.node(id).campaign();
    cluster.run();
}
