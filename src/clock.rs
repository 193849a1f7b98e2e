//! Wall-clock time as an input.
//!
//! Every layer that needs the time of day (token expiry, audit timestamps, record timestamps,
//! retention, session expiry) takes a [`Clock`] from the layer that built it instead of reading
//! the system clock itself, so tests can drive time and there is one place that reads it. Raft
//! does not use wall-clock time at all: it counts ticks. Imports nothing from the crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of Unix time in milliseconds.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;

    fn now_s(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The clock handed from layer to layer.
pub type SharedClock = Arc<dyn Clock>;

/// The operating system's real-time clock; a clock set before 1970 reads as 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The system clock as a [`SharedClock`].
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Another clock moved by a fixed number of seconds (later when positive), never below 0.
pub struct OffsetClock {
    pub inner: SharedClock,
    pub offset_s: i64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        let offset_ms = self.offset_s.saturating_mul(1000);
        let now = i128::from(self.inner.now_ms()) + i128::from(offset_ms);
        u64::try_from(now.max(0)).unwrap_or(u64::MAX)
    }
}

/// A clock that moves only when told to, for tests of time-dependent decisions.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn new(now_ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicU64::new(now_ms),
        })
    }

    pub fn advance_ms(&self, by_ms: u64) {
        self.now_ms.fetch_add(by_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_reads_a_time_after_2020_and_a_manual_clock_moves_when_told() {
        assert!(SystemClock.now_ms() > 1_577_836_800_000);
        let clock = ManualClock::new(1_000);
        assert_eq!(clock.now_s(), 1);
        clock.advance_ms(2_500);
        assert_eq!(clock.now_ms(), 3_500);
    }
}
