//! Registered producer ids: who owns each id handed out by `POST /v1/producers`.
//!
//! Part of the controller's state, so any broker can check that a produce's `producer_id` exists
//! and belongs to the caller. Bounded per principal: registering past the bound forgets that
//! principal's oldest id (deterministically, by creation time then id), so one user cannot grow
//! the controller state without limit. Pure; must not do I/O.

use serde::{Deserialize, Serialize};

use super::metadata::{MetaError, MetaOutput, MetadataState};

/// Producer ids a principal holds at once; registering one more forgets its oldest.
pub const PRODUCERS_PER_PRINCIPAL_MAX: usize = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerRecord {
    /// The user that created the id; only this user may produce with it.
    pub principal: String,
    pub created_ms: u64,
}

/// Applies `RegisterProducer`. Registering an existing id again with the same owner is a no-op,
/// so a retried proposal is harmless.
pub(super) fn register(
    state: &mut MetadataState,
    id: String,
    principal: String,
    created_ms: u64,
) -> Result<MetaOutput, MetaError> {
    if let Some(existing) = state.producers.get(&id) {
        if existing.principal == principal {
            return Ok(MetaOutput::Done);
        }
        return Err(MetaError::Malformed(format!(
            "producer id {id} is already registered"
        )));
    }
    let owned = state
        .producers
        .values()
        .filter(|p| p.principal == principal)
        .count();
    if owned >= PRODUCERS_PER_PRINCIPAL_MAX {
        let oldest = state
            .producers
            .iter()
            .filter(|(_, p)| p.principal == principal)
            .min_by_key(|(id, p)| (p.created_ms, (*id).clone()))
            .map(|(id, _)| id.clone());
        if let Some(oldest) = oldest {
            state.producers.remove(&oldest);
        }
    }
    state.producers.insert(
        id,
        ProducerRecord {
            principal,
            created_ms,
        },
    );
    Ok(MetaOutput::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_owned_and_bounded_per_principal() {
        let mut state = MetadataState::default();
        register(&mut state, "a".into(), "alice".into(), 1).expect("registers");
        register(&mut state, "a".into(), "alice".into(), 2).expect("same owner again is fine");
        assert!(register(&mut state, "a".into(), "bob".into(), 3).is_err());
        assert_eq!(state.producers["a"].principal, "alice");
        for n in 0..PRODUCERS_PER_PRINCIPAL_MAX {
            register(&mut state, format!("b{n:04}"), "bob".into(), 10 + n as u64)
                .expect("registers");
        }
        register(&mut state, "newest".into(), "bob".into(), 100_000).expect("registers");
        let bobs = state
            .producers
            .values()
            .filter(|p| p.principal == "bob")
            .count();
        assert_eq!(bobs, PRODUCERS_PER_PRINCIPAL_MAX);
        assert!(!state.producers.contains_key("b0000"), "the oldest went");
        assert!(state.producers.contains_key("newest"));
        assert!(
            state.producers.contains_key("a"),
            "other principals keep theirs"
        );
    }
}
