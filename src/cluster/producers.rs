//! Registered producer ids: who owns each id handed out by `POST /v1/producers`.
//!
//! Part of the controller's state, so any broker can check that a produce's `producer_id` exists
//! and belongs to the caller. Bounded per principal: registering past the bound forgets that
//! principal's oldest id (deterministically, by creation time then id), so one user cannot grow
//! the controller state without limit. Pure; must not do I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Producer ids a principal holds at once; registering one more forgets its oldest.
pub const PRODUCERS_PER_PRINCIPAL_MAX: usize = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerRecord {
    /// The user that created the id; only this user may produce with it.
    pub principal: String,
    pub created_ms: u64,
}

/// The id is registered to another principal.
#[derive(Debug, thiserror::Error)]
#[error("producer id {0} is already registered")]
pub struct IdTaken(pub String);

/// Applies `RegisterProducer` to the controller's `producers`. Registering an existing id again
/// with the same owner is a no-op, so a retried proposal is harmless.
pub(super) fn register(
    producers: &mut BTreeMap<String, ProducerRecord>,
    id: String,
    principal: String,
    created_ms: u64,
) -> Result<(), IdTaken> {
    if let Some(existing) = producers.get(&id) {
        if existing.principal == principal {
            return Ok(());
        }
        return Err(IdTaken(id));
    }
    let owned = producers
        .values()
        .filter(|p| p.principal == principal)
        .count();
    if owned >= PRODUCERS_PER_PRINCIPAL_MAX {
        let oldest = producers
            .iter()
            .filter(|(_, p)| p.principal == principal)
            .min_by_key(|(id, p)| (p.created_ms, (*id).clone()))
            .map(|(id, _)| id.clone());
        if let Some(oldest) = oldest {
            producers.remove(&oldest);
        }
    }
    producers.insert(
        id,
        ProducerRecord {
            principal,
            created_ms,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_owned_and_bounded_per_principal() {
        let mut producers = BTreeMap::new();
        register(&mut producers, "a".into(), "alice".into(), 1).expect("registers");
        register(&mut producers, "a".into(), "alice".into(), 2).expect("same owner again is fine");
        assert!(register(&mut producers, "a".into(), "bob".into(), 3).is_err());
        assert_eq!(producers["a"].principal, "alice");
        for n in 0..PRODUCERS_PER_PRINCIPAL_MAX {
            register(
                &mut producers,
                format!("b{n:04}"),
                "bob".into(),
                10 + n as u64,
            )
            .expect("registers");
        }
        register(&mut producers, "newest".into(), "bob".into(), 100_000).expect("registers");
        let bobs = producers.values().filter(|p| p.principal == "bob").count();
        assert_eq!(bobs, PRODUCERS_PER_PRINCIPAL_MAX);
        assert!(!producers.contains_key("b0000"), "the oldest went");
        assert!(producers.contains_key("newest"));
        assert!(producers.contains_key("a"), "other principals keep theirs");
    }
}
