//! The per-broker bounds on open event streams: in total and per principal, a slot per stream,
//! held by the stream's body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::metrics::gauge::Gauge;

/// Counts open streams against `streams_max` and, per principal, `per_principal_max`. A slot is
/// held by the stream's body and given back when the body is dropped: at its end, or when a
/// write finds the client gone.
pub struct StreamSlots {
    counts: Mutex<Counts>,
    streams_max: usize,
    per_principal_max: usize,
    gauge: Gauge,
}

#[derive(Default)]
struct Counts {
    open: usize,
    /// Open streams per principal; a principal with none has no entry, so the map holds at most
    /// `streams_max` names.
    by_principal: HashMap<String, usize>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRefusal {
    /// `streams_max` streams are open on this broker.
    Broker(usize),
    /// The principal holds `per_principal_max` streams.
    Principal(usize),
}

/// One open stream's share of [`StreamSlots`].
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    principal: String,
}

impl StreamSlots {
    pub fn new(streams_max: usize, per_principal_max: usize, gauge: Gauge) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            counts: Mutex::new(Counts::default()),
            streams_max,
            per_principal_max: per_principal_max.max(1),
            gauge,
        })
    }

    /// A slot for a stream of `principal`, unless the broker or the principal is at its bound.
    pub fn try_acquire(self: &Arc<Self>, principal: &str) -> Result<StreamSlot, SlotRefusal> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.open >= self.streams_max {
            return Err(SlotRefusal::Broker(self.streams_max));
        }
        let held = counts.by_principal.get(principal).copied().unwrap_or(0);
        if held >= self.per_principal_max {
            return Err(SlotRefusal::Principal(self.per_principal_max));
        }
        counts.open += 1;
        counts.by_principal.insert(principal.to_string(), held + 1);
        self.gauge.inc();
        Ok(StreamSlot {
            slots: self.clone(),
            principal: principal.to_string(),
        })
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self
            .slots
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        counts.open = counts.open.saturating_sub(1);
        if let Some(held) = counts.by_principal.get_mut(&self.principal) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                counts.by_principal.remove(&self.principal);
            }
        }
        self.slots.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back_on_drop() {
        let slots = StreamSlots::new(2, 10, Gauge::default());
        let first = slots.try_acquire("a").expect("first slot");
        let second = slots.try_acquire("b").expect("second slot");
        assert_eq!(
            slots.try_acquire("c").err(),
            Some(SlotRefusal::Broker(2)),
            "a third slot must be refused"
        );
        assert_eq!(slots.gauge.get(), 2);
        drop(first);
        assert_eq!(slots.open(), 1);
        let third = slots.try_acquire("c").expect("a freed slot is reusable");
        drop((second, third));
        assert_eq!(slots.open(), 0);
        assert_eq!(slots.gauge.get(), 0);
    }

    #[test]
    fn one_principal_cannot_take_every_slot() {
        let slots = StreamSlots::new(10, 2, Gauge::default());
        let held: Vec<_> = (0..2)
            .map(|_| slots.try_acquire("mallory").unwrap())
            .collect();
        assert_eq!(
            slots.try_acquire("mallory").err(),
            Some(SlotRefusal::Principal(2))
        );
        assert!(slots.try_acquire("alice").is_ok(), "others still get slots");
        drop(held);
        assert!(slots.try_acquire("mallory").is_ok(), "freed on drop");
    }
}
