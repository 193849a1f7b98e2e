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
            BrokerError::OutcomeUnknown(reason) => Failure::OutcomeUnknown { reason },
            refused @ (BrokerError::BadRequest(_)
            | BrokerError::Unauthenticated(_)
            | BrokerError::Forbidden(_)
            | BrokerError::NotFound(_)
            | BrokerError::Conflict(_)
            | BrokerError::MembershipRefused(_)
            | BrokerError::TooLarge(_)
            | BrokerError::RateLimited { .. }
            | BrokerError::TooMany(_)
            | BrokerError::Overloaded(_)
            | BrokerError::InsufficientStorage(_)
            | BrokerError::OffsetOutOfRange { .. }
            | BrokerError::AuditUnavailable(_)
            | BrokerError::Internal(_)
            | BrokerError::TailMoved { .. }) => Failure::Refused(refused),
        }
    }

    /// The failure a peer broker answered.
    pub fn remote(refusal: PeerRefusal) -> Failure {
        match refusal {
            PeerRefusal::NotLeader { leader } => Failure::NotLeader { hint: leader },
            PeerRefusal::Retry { reason } => Failure::Retry { reason },
            PeerRefusal::Unavailable { reason } => Failure::Unavailable { reason },
            PeerRefusal::OutcomeUnknown { reason } => Failure::OutcomeUnknown { reason },
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::peer_wire::Refusal;

    const TARGET: Option<u64> = Some(2);
    const RESENDS: [Resend; 3] = [Resend::Deduplicated, Resend::Unsafe, Resend::Harmless];
    const RANS: [Ran; 2] = [Ran::Here, Ran::Elsewhere];

    fn search(ask: Option<u64>) -> Step {
        Step::Again {
            ask,
            pause: ask.is_none(),
            forget_leader: true,
        }
    }

    fn unavailable() -> Failure {
        Failure::Unavailable {
            reason: "partition stopped".into(),
        }
    }

    fn outcome_unknown() -> Failure {
        Failure::OutcomeUnknown {
            reason: "broker 2 did not answer: timeout".into(),
        }
    }

    #[test]
    fn not_leader_asks_the_named_leader_else_searches_after_a_pause() {
        for (ran, resend) in RANS.iter().flat_map(|r| RESENDS.map(|s| (*r, s))) {
            let named = Failure::NotLeader { hint: Some(3) };
            assert_eq!(next_step(named, TARGET, ran, resend), search(Some(3)));
            let itself = Failure::NotLeader { hint: TARGET };
            assert_eq!(next_step(itself, TARGET, ran, resend), search(None));
            let unknown = Failure::NotLeader { hint: None };
            assert_eq!(next_step(unknown, None, ran, resend), search(None));
        }
    }

    #[test]
    fn unavailable_elsewhere_tries_the_next_broker_for_every_request() {
        for resend in RESENDS {
            let step = next_step(unavailable(), TARGET, Ran::Elsewhere, resend);
            assert_eq!(step, search(None), "{resend:?}");
        }
    }

    #[test]
    fn unavailable_here_is_resent_only_when_deduplicated() {
        let step = next_step(unavailable(), TARGET, Ran::Here, Resend::Deduplicated);
        assert_eq!(step, search(None));
        for resend in [Resend::Unsafe, Resend::Harmless] {
            let step = next_step(unavailable(), TARGET, Ran::Here, resend);
            let answer = Step::Answer {
                error: BrokerError::Unavailable("partition stopped".into()),
                forget_leader: false,
            };
            assert_eq!(step, answer, "{resend:?}");
        }
    }

    #[test]
    fn retry_asks_the_same_broker_again_after_a_pause() {
        for (ran, resend) in RANS.iter().flat_map(|r| RESENDS.map(|s| (*r, s))) {
            let retry = Failure::Retry {
                reason: "sequence 4 is in flight".into(),
            };
            let again = Step::Again {
                ask: TARGET,
                pause: true,
                forget_leader: false,
            };
            assert_eq!(next_step(retry, TARGET, ran, resend), again);
        }
    }

    #[test]
    fn an_unknown_outcome_answers_a_plain_write_and_resends_everything_else() {
        for ran in RANS {
            let step = next_step(outcome_unknown(), TARGET, ran, Resend::Unsafe);
            let answer = Step::Answer {
                error: BrokerError::Unavailable(
                    "broker 2 did not answer: timeout; the write may or may not have been applied"
                        .into(),
                ),
                forget_leader: true,
            };
            assert_eq!(step, answer);
            for resend in [Resend::Deduplicated, Resend::Harmless] {
                let step = next_step(outcome_unknown(), TARGET, ran, resend);
                assert_eq!(step, search(None), "{resend:?}");
            }
        }
    }

    #[test]
    fn a_leader_that_stepped_down_with_a_plain_write_is_not_asked_elsewhere() {
        // The leader that ran the write answers over the peer link: resending it to the next
        // leader could store it twice.
        for error in [
            crate::partition::ReplicaError::LeadershipLost,
            crate::partition::ReplicaError::Stopped,
        ] {
            let refusal = PeerRefusal::from(BrokerError::from(error.clone()));
            let failure = Failure::remote(refusal);
            let step = next_step(failure.clone(), TARGET, Ran::Elsewhere, Resend::Unsafe);
            assert!(
                matches!(step, Step::Answer { .. }),
                "{error:?} on a peer: {step:?}"
            );
            let step = next_step(failure, TARGET, Ran::Elsewhere, Resend::Deduplicated);
            assert!(matches!(step, Step::Again { .. }), "{error:?}: {step:?}");
        }
    }

    #[test]
    fn a_refusal_is_answered_unchanged() {
        for (ran, resend) in RANS.iter().flat_map(|r| RESENDS.map(|s| (*r, s))) {
            let error = BrokerError::Conflict("sequence gap: expected 3".into());
            let step = next_step(Failure::Refused(error.clone()), TARGET, ran, resend);
            let answer = Step::Answer {
                error,
                forget_leader: false,
            };
            assert_eq!(step, answer);
        }
    }

    /// A leader's error crosses the peer link and is classified as if it had happened here.
    #[test]
    fn a_remote_error_is_the_same_failure_as_a_local_one() {
        let errors = [
            BrokerError::NotLeader { leader: Some(3) },
            BrokerError::NotLeader { leader: None },
            BrokerError::Retry("catching up; retry".into()),
            BrokerError::Unavailable("partition stopped".into()),
            BrokerError::OutcomeUnknown("the leader stepped down".into()),
            BrokerError::BadRequest("bad".into()),
            BrokerError::Unauthenticated("no token".into()),
            BrokerError::Forbidden("no ACL allows it".into()),
            BrokerError::NotFound("no such topic".into()),
            BrokerError::Conflict("refused: node is already a member".into()),
            BrokerError::TooLarge("too large".into()),
            BrokerError::RateLimited { retry_after_s: 7 },
            BrokerError::OffsetOutOfRange {
                offset: 9,
                log_start_offset: 10,
                high_watermark: 20,
            },
            BrokerError::AuditUnavailable("audit log stopped".into()),
            BrokerError::Internal("disk".into()),
        ];
        for error in errors {
            let refusal = PeerRefusal::from(error.clone());
            assert_eq!(refusal.to_string(), error.to_string(), "{error:?}");
            let answer: crate::broker::peer_wire::PeerAnswer = Err(refusal);
            let bytes = postcard::to_stdvec(&answer).expect("encodes");
            let decoded: crate::broker::peer_wire::PeerAnswer =
                postcard::from_bytes(&bytes).expect("decodes");
            let Err(refusal) = decoded else {
                panic!("{error:?} decoded as a reply");
            };
            assert_eq!(Failure::remote(refusal), Failure::local(error.clone()));
        }
        let refused = PeerRefusal::Refused(Refusal::Conflict("gap".into()));
        let expected = Failure::Refused(BrokerError::Conflict("gap".into()));
        assert_eq!(Failure::remote(refused), expected);
    }
}
