//! The forwarding retry policy as one pure decision: after an attempt on one broker failed, ask
//! again (the same broker, a named leader or the next candidate) or answer the caller now.
//!
//! Owns the typed failure of one attempt and the decision table; owns no I/O, no clock and no
//! leader cache (the caller in `forward` applies the step). Every failure kind is matched by
//! name, so a new kind cannot slip through as a retry.

use super::super::peer_wire::{PeerRefusal, Resend};
use super::super::BrokerError;

/// Why one attempt to run a request on a group's leader failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The asked broker does not lead the group; `hint` is the leader it named.
    #[error("this broker does not lead the partition (leader: {hint:?}); retry")]
    NotLeader { hint: Option<u64> },
    /// Nothing was done: the asked broker cannot run the request now, or it was never sent.
    #[error("{reason}")]
    Unavailable { reason: String },
    /// Nothing was done, and the asked broker wants the same request again shortly.
    #[error("{reason}")]
    Retry { reason: String },
    /// The request was sent and no answer came: it may or may not have run.
    #[error("{reason}")]
    OutcomeUnknown { reason: String },
    /// The leader's final answer.
    #[error("{0}")]
    Refused(BrokerError),
}

impl Failure {
    /// The failure of an attempt on this broker's own replica.
    pub fn local(error: BrokerError) -> Failure {
        match error {
            BrokerError::NotLeader { leader } => Failure::NotLeader { hint: leader },
            BrokerError::Retry(reason) => Failure::Retry { reason },
            BrokerError::Unavailable(reason) => Failure::Unavailable { reason },
            refused @ (BrokerError::BadRequest(_)
            | BrokerError::Unauthenticated(_)
            | BrokerError::Forbidden(_)
            | BrokerError::NotFound(_)
            | BrokerError::Conflict(_)
            | BrokerError::TooLarge(_)
            | BrokerError::RateLimited { .. }
            | BrokerError::OffsetOutOfRange { .. }
            | BrokerError::AuditUnavailable(_)
            | BrokerError::Internal(_)) => Failure::Refused(refused),
        }
    }

    /// The failure a peer broker answered.
    pub fn remote(refusal: PeerRefusal) -> Failure {
        match refusal {
            PeerRefusal::NotLeader { leader } => Failure::NotLeader { hint: leader },
            PeerRefusal::Retry { reason } => Failure::Retry { reason },
            PeerRefusal::Unavailable { reason } => Failure::Unavailable { reason },
            PeerRefusal::Refused(refusal) => Failure::Refused(refusal.into()),
        }
    }
}

/// Where the failed attempt ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ran {
    /// On this broker's replica.
    Here,
    /// On a peer broker, or on no broker at all (no candidate was known).
    Elsewhere,
}

/// What forwarding does after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Try again before the deadline: ask `ask` (`None`: the next candidate), after the retry
    /// pause when `pause`.
    Again {
        ask: Option<u64>,
        pause: bool,
        forget_leader: bool,
    },
    /// Answer the caller with `error` now.
    Answer {
        error: BrokerError,
        forget_leader: bool,
    },
}

/// The decision after an attempt on `target` failed with `failure`.
///
/// `forget_leader` drops the cached leader of the group whenever the asked broker may be gone or
/// not lead; the next request then searches afresh. A pause is taken whenever no broker is named
/// to ask next, so an election is not polled in a tight loop.
pub fn next_step(failure: Failure, target: Option<u64>, ran: Ran, resend: Resend) -> Step {
    let search = |ask: Option<u64>| Step::Again {
        ask,
        pause: ask.is_none(),
        forget_leader: true,
    };
    match (failure, ran, resend) {
        // Ask the leader it named, unless it named itself.
        (Failure::NotLeader { hint }, _, _) => search(hint.filter(|named| Some(*named) != target)),
        // A peer that cannot run it (or cannot be reached) did nothing: try the next broker.
        (Failure::Unavailable { .. }, Ran::Elsewhere, _) => search(None),
        // A dropped or refused proposal here: the leader deduplicates a resend.
        (Failure::Unavailable { .. }, Ran::Here, Resend::Deduplicated) => search(None),
        (Failure::Unavailable { reason }, Ran::Here, Resend::Unsafe | Resend::Harmless) => {
            Step::Answer {
                error: BrokerError::Unavailable(reason),
                forget_leader: false,
            }
        }
        // The leader did nothing and asks for the same request again shortly (an idempotent
        // batch with that sequence is in flight, or it is catching up).
        (Failure::Retry { .. }, _, _) => Step::Again {
            ask: target,
            pause: true,
            forget_leader: false,
        },
        // Running a write again could apply it twice: the caller decides.
        (Failure::OutcomeUnknown { reason }, _, Resend::Unsafe) => Step::Answer {
            error: BrokerError::Unavailable(format!(
                "{reason}; the write may or may not have been applied"
            )),
            forget_leader: true,
        },
        (Failure::OutcomeUnknown { .. }, _, Resend::Deduplicated | Resend::Harmless) => {
            search(None)
        }
        (Failure::Refused(error), _, _) => Step::Answer {
            error,
            forget_leader: false,
        },
    }
}
