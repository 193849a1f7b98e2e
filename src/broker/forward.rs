//! Any broker serves any call: an operation on a Raft group runs on the broker that leads the
//! group, here or over the peer link.
//!
//! Owns the leader search (local status, the last leader that answered, the leader a refusing
//! broker names, then each replica in turn) with its deadline, the leader cache and the call to a
//! peer. What travels between brokers is `peer_wire`; what to do after a failed attempt is the
//! pure `policy::next_step`; `local` runs a request on the leader.
//! A forwarded request is never forwarded again: a broker that does not lead answers `NotLeader`
//! and the caller moves on. Authentication, authorization and audit happen once, on the broker
//! the client called; the peer link is mutually authenticated, so the leader trusts its peer
//! with them. `authority` checks the few things a leader can check without that trust.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::peer_wire::{Held, PeerAnswer};
use super::{Broker, BrokerError};
use crate::budget::Reservation;
use crate::cluster::METADATA_GROUP;
use crate::raft::GroupId;

mod authority;
mod local;
mod policy;

pub use super::peer_wire::{ForwardReply, ForwardRequest, GroupDescription};
pub use local::unavailable_answer;
use local::FETCH_FLOOR_BYTES;
use policy::{Failure, Ran, Step};

/// Sends an encoded request to a peer broker and returns its encoded answer.
pub type PeerCall = Arc<
    dyn Fn(u64, Vec<u8>, Duration) -> BoxFuture<'static, Result<Vec<u8>, PeerCallError>>
        + Send
        + Sync,
>;

/// Why a call to a peer got no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerCallError {
    /// The request never left this broker (no link, full queue, too large).
    #[error("not sent: {0}")]
    NotSent(String),
    /// The request may have reached the peer and run there (timeout, connection lost).
    #[error("no answer: {0}")]
    NoAnswer(String),
}

/// Pause between attempts while a group has no reachable leader (an election is running).
const RETRY_PAUSE_MS: u64 = 50;
/// One attempt on one broker may take this long (plus a long poll's wait) before the next
/// broker is tried, so a dead leader costs one attempt, not the whole forwarding deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// The answer of the leader and which broker gave it.
pub struct Led {
    pub reply: ForwardReply,
    pub leader: u64,
}

/// What a request run on this broker's replica returns.
type Answer = Result<ForwardReply, BrokerError>;

/// One request on its way to the leader: what every attempt needs.
struct Search<'a> {
    request: &'a ForwardRequest,
    /// The postcard body, encoded once on the first remote attempt.
    encoded: Option<Vec<u8>>,
    deadline: tokio::time::Instant,
    wait: Duration,
}

impl Broker {
    /// Runs `request` on the leader of its group, retrying through elections until the
    /// forwarding deadline; then answers 503.
    pub async fn on_leader(&self, request: ForwardRequest) -> Result<Led, BrokerError> {
        let group = request.group();
        let resend = request.resend();
        let wait = Duration::from_millis(request.wait_ms());
        let mut search = Search {
            request: &request,
            encoded: None,
            deadline: tokio::time::Instant::now() + self.parts.forward_timeout + wait,
            wait,
        };
        let mut ask = self.known_leader(group);
        let mut attempt = 0usize;
        loop {
            let target = ask.take().or_else(|| self.candidate(group, attempt));
            attempt += 1;
            let failure = match self.attempt(target, &mut search).await {
                Ok(reply) => {
                    let leader = target.expect("an answer comes from a target");
                    self.remember_leader(group, leader);
                    return Ok(Led { reply, leader });
                }
                Err(failure) => failure,
            };
            let why = failure.to_string();
            let ran = if target == Some(self.parts.broker_id) {
                Ran::Here
            } else {
                Ran::Elsewhere
            };
            match policy::next_step(failure, target, ran, resend) {
                Step::Answer {
                    error,
                    forget_leader,
                } => {
                    if forget_leader {
                        self.forget_leader(group);
                    }
                    return Err(error);
                }
                Step::Again {
                    ask: next,
                    pause,
                    forget_leader,
                } => {
                    if forget_leader {
                        self.forget_leader(group);
                    }
                    if tokio::time::Instant::now() >= search.deadline {
                        return Err(BrokerError::Unavailable(format!(
                            "no leader of partition group {} answered within {:?}: {why}",
                            group.0, self.parts.forward_timeout
                        )));
                    }
                    if pause {
                        tokio::time::sleep(Duration::from_millis(RETRY_PAUSE_MS)).await;
                    }
                    ask = next;
                }
            }
        }
    }

    /// One attempt on `target`: this broker's replica, a peer, or nobody when none is known.
    async fn attempt(
        &self,
        target: Option<u64>,
        search: &mut Search<'_>,
    ) -> Result<ForwardReply, Failure> {
        match target {
            None => Err(Failure::NotLeader { hint: None }),
            Some(target) if target == self.parts.broker_id => {
                // A leader cut off from its quorum answers a proposal only once the proposal's
                // index is applied, which waits for the partition to heal: the forwarding
                // deadline bounds that wait too.
                let local = self.execute_local(search.request.clone());
                match tokio::time::timeout_at(search.deadline, local).await {
                    Ok(answer) => answer.map_err(Failure::local),
                    Err(_) => Err(Failure::OutcomeUnknown {
                        reason: format!(
                            "this broker's replica of partition group {} did not answer within {:?}",
                            search.request.group().0,
                            self.parts.forward_timeout
                        ),
                    }),
                }
            }
            Some(target) if search.request.fetch_bytes_max().is_some() => {
                self.fetch_remote(target, search).await
            }
            Some(target) => {
                let request = search.request;
                let body = search.encoded.get_or_insert_with(|| {
                    postcard::to_stdvec(request).expect("forwarded requests are plain data")
                });
                self.call_remote(target, body.clone(), search.deadline, search.wait)
                    .await
            }
        }
    }

    /// A fetch led by another broker. Its answer is held here until written to the client, so
    /// it is asked for within this broker's fetch budget: first without waiting, for as much as
    /// the budget grants now (at least `FETCH_FLOOR_BYTES`, or 503 `overloaded` after
    /// `limits.budget_wait_ms`). Only an empty first answer to a long poll is followed by the
    /// wait, which holds no budget while it waits and asks for at most `FETCH_FLOOR_BYTES`; its
    /// answer takes what is free of the budget when it arrives.
    async fn fetch_remote(
        &self,
        target: u64,
        search: &mut Search<'_>,
    ) -> Result<ForwardReply, Failure> {
        let bytes_max = search.request.fetch_bytes_max().unwrap_or(0);
        let floor = FETCH_FLOOR_BYTES.min(bytes_max).max(1);
        let budgets = &self.parts.budgets;
        let reservation = budgets
            .fetch
            .reserve(bytes_max, floor, budgets.wait)
            .await
            .map_err(|exhausted| {
                Failure::Refused(BrokerError::Overloaded(exhausted.to_string()))
            })?;
        let first = search
            .request
            .fetch_with(0, bytes_max.min(reservation.bytes()));
        let body = postcard::to_stdvec(&first).expect("forwarded requests are plain data");
        let reply = self
            .call_remote(target, body, search.deadline, Duration::ZERO)
            .await?;
        if search.wait.is_zero() || !fetched_nothing(&reply) {
            return Ok(held_here(reply, reservation));
        }
        drop(reservation);
        let wait_ms = search.request.wait_ms();
        let second = search.request.fetch_with(wait_ms, floor);
        let body = postcard::to_stdvec(&second).expect("forwarded requests are plain data");
        let reply = self
            .call_remote(target, body, search.deadline, search.wait)
            .await?;
        let reservation = budgets
            .fetch
            .reserve(floor, floor, Duration::ZERO)
            .await
            .unwrap_or_else(|_| Reservation::none());
        Ok(held_here(reply, reservation))
    }

    async fn call_remote(
        &self,
        target: u64,
        body: Vec<u8>,
        deadline: tokio::time::Instant,
        wait: Duration,
    ) -> Result<ForwardReply, Failure> {
        let Some(peers) = &self.parts.peers else {
            return Err(Failure::Unavailable {
                reason: format!(
                    "broker {target} leads this group, but this broker has no peer links"
                ),
            });
        };
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let timeout = remaining.min(ATTEMPT_TIMEOUT + wait);
        let answer = peers(target, body, timeout.max(Duration::from_millis(1)))
            .await
            .map_err(|error| match error {
                PeerCallError::NotSent(reason) => Failure::Unavailable {
                    reason: format!("broker {target} is unreachable: {reason}"),
                },
                PeerCallError::NoAnswer(reason) => Failure::OutcomeUnknown {
                    reason: format!("broker {target} did not answer: {reason}"),
                },
            })?;
        let answer = postcard::from_bytes::<PeerAnswer>(&answer).map_err(|error| {
            Failure::Refused(BrokerError::Internal(format!(
                "broker {target} sent an undecodable answer: {error}"
            )))
        })?;
        answer.map_err(Failure::remote)
    }

    /// The leader this broker believes in: its own replica's view, else the last that answered.
    fn known_leader(&self, group: GroupId) -> Option<u64> {
        let local = if group == METADATA_GROUP {
            self.parts.controller.replica().status.borrow().leader
        } else {
            self.parts
                .registry
                .get(group)
                .and_then(|handle| handle.status.borrow().leader)
        };
        local.map(|node| node.0).or_else(|| {
            self.parts
                .leaders
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(&group)
                .copied()
        })
    }

    fn remember_leader(&self, group: GroupId, leader: u64) {
        self.parts
            .leaders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(group, leader);
    }

    fn forget_leader(&self, group: GroupId) {
        self.parts
            .leaders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&group);
    }

    /// Without a hint, try the members of the group in turn.
    fn candidate(&self, group: GroupId, attempt: usize) -> Option<u64> {
        if let Some(leader) = self.known_leader(group) {
            if attempt % 2 == 0 {
                return Some(leader);
            }
        }
        let state = self.parts.controller.state();
        let members: Vec<u64> = if group == METADATA_GROUP {
            let status = self.parts.controller.replica().status.borrow().clone();
            if status.voters.is_empty() {
                state.brokers.keys().copied().collect()
            } else {
                status.voters.iter().map(|node| node.0).collect()
            }
        } else {
            state
                .topics
                .values()
                .flat_map(|topic| &topic.partitions)
                .find(|assignment| assignment.group == group)
                .map(|assignment| assignment.replicas.clone())
                .unwrap_or_default()
        };
        (!members.is_empty()).then(|| members[attempt % members.len()])
    }
}

/// Whether a fetch answer holds no record.
fn fetched_nothing(reply: &ForwardReply) -> bool {
    matches!(reply, ForwardReply::Fetched { records, .. } if records.is_empty())
}

/// A fetch answer received from its leader, holding this broker's `reservation` (cut to the
/// records' size) until it is written.
fn held_here(mut reply: ForwardReply, mut reservation: Reservation) -> ForwardReply {
    if let ForwardReply::Fetched { records, held, .. } = &mut reply {
        reservation.shrink_to(records.iter().map(|r| r.record.size_bytes()).sum());
        *held = Held::new(reservation);
    }
    reply
}
