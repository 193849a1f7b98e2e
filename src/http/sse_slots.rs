//! The per-broker bound on open event streams: a slot per stream, held by the stream's body.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;

/// Counts open streams against `streams_max`. A slot is held by the stream's body and given
/// back when the body is dropped: at its end, or when a write finds the client gone.
pub struct StreamSlots {
    open: AtomicUsize,
    streams_max: usize,
    gauge: Gauge,
}

/// One open stream's share of [`StreamSlots`].
pub struct StreamSlot(Arc<StreamSlots>);

impl StreamSlots {
    pub fn new(streams_max: usize, gauge: Gauge) -> Arc<StreamSlots> {
        Arc::new(StreamSlots {
            open: AtomicUsize::new(0),
            streams_max,
            gauge,
        })
    }

    /// A slot, or `None` when `streams_max` streams are open.
    pub fn try_acquire(self: &Arc<Self>) -> Option<StreamSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.streams_max).then_some(open + 1)
            })
            .ok()?;
        self.gauge.inc();
        Some(StreamSlot(self.clone()))
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_given_back_on_drop() {
        let slots = StreamSlots::new(2, Gauge::default());
        let first = slots.try_acquire().expect("first slot");
        let second = slots.try_acquire().expect("second slot");
        assert!(
            slots.try_acquire().is_none(),
            "a third slot must be refused"
        );
        assert_eq!(slots.gauge.get(), 2);
        drop(first);
        assert_eq!(slots.open(), 1);
        let third = slots.try_acquire().expect("a freed slot is reusable");
        drop((second, third));
        assert_eq!(slots.open(), 0);
        assert_eq!(slots.gauge.get(), 0);
    }
}
