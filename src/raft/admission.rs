//! Which broker may send this replica which Raft message: the membership check a replica applies
//! to every message from a peer before `step`.
//!
//! Owns the rule and nothing else; it reads the replica's current configuration, leader and term
//! and changes no state. The caller has already authenticated the sender (`message.from` is the
//! broker id of the peer certificate); this decides whether that broker has authority in this
//! group. Dropping a message is always safe for Raft (it is a lost message); the rule is written
//! so that the messages an honest group needs still arrive.
//!
//! The rule, by message kind:
//! - `TimeoutNow`: only from the leader this replica follows in its current term. A replica learns
//!   its leader only from an admitted `Append`, `Heartbeat`, `Quiesce` or `Snapshot`, so only a broker that
//!   was a member when it led can start an election here.
//! - `PreVote`, `Vote` and their responses: only from a voter of the current configuration. Only
//!   voters campaign and only voters are asked, so nothing an honest group sends is lost, and a
//!   learner or a stranger cannot raise this replica's term.
//! - `AppendResponse`, `HeartbeatResponse`: only from a voter or learner of the current
//!   configuration (a leader's followers are all in its configuration).
//! - `Append`, `Heartbeat`, `Quiesce`, `Snapshot`: from a voter or learner of the current configuration, or,
//!   when the configuration does not know the sender, from a broker the controller assigns to the
//!   group ([`Assigned`]). That second source covers a replica that joins empty (its
//!   configuration arrives with the leader's snapshot) and one so far behind that it has not yet
//!   appended the change that added today's leader.

use super::message::{Message, MessageBody};
use super::node::{RawNode, Role};
use super::storage::LogStore;

/// Why a message was not admitted. A closed set: it labels a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// The sender is neither a voter nor a learner here, nor assigned to the group.
    NotMember,
    /// A vote message from a broker that is not a voter here.
    NotVoter,
    /// `TimeoutNow` from a broker other than the leader this replica follows in its term.
    NotLeader,
}

impl Refusal {
    /// The metric label of this refusal.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NotMember => "not_member",
            Refusal::NotVoter => "not_voter",
            Refusal::NotLeader => "not_leader",
        }
    }
}

/// Whether the controller names the sender as a replica of the group, asked only when this
/// replica's configuration does not know the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assigned {
    Yes,
    No,
}

impl<S: LogStore> RawNode<S> {
    /// Decides whether `message` may be stepped into this replica (see the module doc).
    /// `assigned` is called at most once, and only for a leader's message from a sender this
    /// replica's configuration does not list.
    pub fn admit(
        &self,
        message: &Message,
        assigned: impl FnOnce() -> Assigned,
    ) -> Result<(), Refusal> {
        let from = message.from;
        let conf = self.conf();
        match message.body {
            MessageBody::TimeoutNow => {
                let follows_sender = self.role != Role::Leader
                    && self.leader == Some(from)
                    && message.term == self.term;
                if follows_sender {
                    Ok(())
                } else {
                    Err(Refusal::NotLeader)
                }
            }
            MessageBody::PreVote { .. }
            | MessageBody::PreVoteResponse { .. }
            | MessageBody::Vote { .. }
            | MessageBody::VoteResponse { .. } => {
                if conf.is_voter(from) {
                    Ok(())
                } else {
                    Err(Refusal::NotVoter)
                }
            }
            MessageBody::AppendResponse { .. } | MessageBody::HeartbeatResponse => {
                if conf.contains(from) {
                    Ok(())
                } else {
                    Err(Refusal::NotMember)
                }
            }
            MessageBody::Append { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::Quiesce { .. }
            | MessageBody::Snapshot { .. } => {
                if conf.contains(from) || assigned() == Assigned::Yes {
                    Ok(())
                } else {
                    Err(Refusal::NotMember)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{ConfState, Config, GroupId, LogIndex, MemStore, NodeId, Snapshot, Term};

    /// Node 1 of a group with voters 1, 2, 3 and learner 4, following leader 2 in term 5.
    fn follower() -> RawNode<MemStore> {
        let conf = ConfState {
            voters: vec![NodeId(1), NodeId(2), NodeId(3)],
            learners: vec![NodeId(4)],
        };
        let mut node =
            RawNode::new(&Config::new(NodeId(1), GroupId(1)), MemStore::new(conf)).expect("fresh");
        node.step(message(2, 5, heartbeat())).expect("step");
        assert_eq!((node.leader(), node.term()), (Some(NodeId(2)), Term(5)));
        node
    }

    fn message(from: u64, term: u64, body: MessageBody) -> Message {
        Message {
            group: GroupId(1),
            from: NodeId(from),
            to: NodeId(1),
            term: Term(term),
            body,
        }
    }

    fn heartbeat() -> MessageBody {
        MessageBody::Heartbeat {
            commit: LogIndex(0),
        }
    }

    fn vote() -> MessageBody {
        MessageBody::Vote {
            last_log_index: LogIndex(u64::MAX),
            last_log_term: Term(u64::MAX),
            transfer: true,
        }
    }

    fn append_response() -> MessageBody {
        MessageBody::AppendResponse {
            reject: false,
            index: LogIndex(0),
            hint_index: LogIndex(0),
            hint_term: Term(0),
        }
    }

    fn admit(node: &RawNode<MemStore>, message: &Message) -> Result<(), Refusal> {
        node.admit(message, || Assigned::No)
    }

    #[test]
    fn a_stranger_may_send_nothing() {
        let node = follower();
        let huge = 1_000_000;
        for (body, refusal) in [
            (heartbeat(), Refusal::NotMember),
            (vote(), Refusal::NotVoter),
            (append_response(), Refusal::NotMember),
            (MessageBody::TimeoutNow, Refusal::NotLeader),
            (
                MessageBody::Snapshot {
                    snapshot: Snapshot::default(),
                },
                Refusal::NotMember,
            ),
        ] {
            assert_eq!(admit(&node, &message(9, huge, body)), Err(refusal));
        }
    }

    #[test]
    fn members_send_what_their_role_sends() {
        let node = follower();
        assert_eq!(admit(&node, &message(3, 6, vote())), Ok(()));
        assert_eq!(admit(&node, &message(3, 6, heartbeat())), Ok(()));
        assert_eq!(admit(&node, &message(4, 5, append_response())), Ok(()));
        // A learner never campaigns and is never asked for a vote.
        assert_eq!(admit(&node, &message(4, 6, vote())), Err(Refusal::NotVoter));
        // A learner may still lead here: this replica may not have seen its promotion yet.
        assert_eq!(admit(&node, &message(4, 6, heartbeat())), Ok(()));
    }

    #[test]
    fn timeout_now_only_from_the_leader_of_this_term() {
        let node = follower();
        assert_eq!(
            admit(&node, &message(2, 5, MessageBody::TimeoutNow)),
            Ok(())
        );
        for (from, term) in [(3, 5), (4, 5), (2, 6), (2, 4)] {
            assert_eq!(
                admit(&node, &message(from, term, MessageBody::TimeoutNow)),
                Err(Refusal::NotLeader),
                "TimeoutNow from {from} in term {term}"
            );
        }
    }

    #[test]
    fn an_assigned_sender_the_configuration_lacks_may_only_lead() {
        let joining = RawNode::new(
            &Config::new(NodeId(1), GroupId(1)),
            MemStore::new(ConfState::default()),
        )
        .expect("fresh");
        let snapshot = MessageBody::Snapshot {
            snapshot: Snapshot::default(),
        };
        for body in [heartbeat(), snapshot] {
            let asked = std::cell::Cell::new(false);
            let assigned = || {
                asked.set(true);
                Assigned::Yes
            };
            assert_eq!(joining.admit(&message(2, 3, body), assigned), Ok(()));
            assert!(asked.get());
        }
        for body in [vote(), append_response(), MessageBody::TimeoutNow] {
            let refused = joining.admit(&message(2, 3, body), || Assigned::Yes);
            assert!(refused.is_err());
        }
        assert_eq!(
            joining.admit(&message(2, 3, heartbeat()), || Assigned::No),
            Err(Refusal::NotMember)
        );
    }

    #[test]
    fn members_are_decided_without_asking_the_assignment() {
        let node = follower();
        let refused = node.admit(&message(3, 5, heartbeat()), || {
            panic!("asked about a member of the configuration")
        });
        assert_eq!(refused, Ok(()));
    }
}
