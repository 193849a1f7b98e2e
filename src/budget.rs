//! Memory budgets: a broker-wide bound on the bytes that requests hold at once, for the pools
//! a client can fill (request bodies being read and handled, fetch answers being read and sent).
//!
//! A `Budget` counts bytes in KiB units over a tokio semaphore. `reserve` grants at most what
//! was asked for: all of it when it is free, less (down to a floor) when the pool is short, and
//! otherwise waits for the floor up to a deadline and then refuses, so the caller answers 503
//! with Retry-After instead of allocating. A `Reservation` gives its bytes back when dropped,
//! and can give back what it turned out not to need (`shrink_to`). Owns no policy of its own
//! beyond that; the callers decide the floor and the wait. No I/O.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The unit of a budget: sizes are rounded up to whole KiB.
const UNIT_BYTES: u64 = 1024;

/// One pool of bytes, shared by clones.
#[derive(Clone, Debug)]
pub struct Budget {
    name: &'static str,
    semaphore: Arc<Semaphore>,
    units: u32,
}

/// Bytes taken from a budget; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
}

/// Not even the floor became free before the deadline.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the broker's {name} budget ({total_bytes} bytes) is in use by other requests; \
     {wanted_bytes} bytes did not become free within {waited_ms} ms"
)]
pub struct Exhausted {
    pub name: &'static str,
    pub total_bytes: u64,
    pub wanted_bytes: u64,
    pub waited_ms: u64,
}

fn units_of(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT_BYTES)
}

impl Budget {
    /// A pool of `total_bytes` (at least one unit, at most 4 TiB), named in refusals.
    pub fn new(name: &'static str, total_bytes: u64) -> Budget {
        let units = units_of(total_bytes).clamp(1, u64::from(u32::MAX)) as u32;
        Budget {
            name,
            semaphore: Arc::new(Semaphore::new(units as usize)),
            units,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn total_bytes(&self) -> u64 {
        u64::from(self.units) * UNIT_BYTES
    }

    /// Bytes reserved right now.
    pub fn used_bytes(&self) -> u64 {
        let free = self.semaphore.available_permits() as u64;
        (u64::from(self.units).saturating_sub(free)) * UNIT_BYTES
    }

    /// Reserves up to `want` bytes and at least `floor` (both capped at the pool's size): all of
    /// `want` if it is free now, else whatever is free if that reaches the floor, else waits up to
    /// `wait` for the floor. `Reservation::bytes` says how much was granted.
    pub async fn reserve(
        &self,
        want: u64,
        floor: u64,
        wait: Duration,
    ) -> Result<Reservation, Exhausted> {
        let total = u64::from(self.units);
        let want_units = units_of(want).clamp(1, total);
        let floor_units = units_of(floor).clamp(1, want_units);
        let free = self.semaphore.available_permits() as u64;
        let now = want_units.min(free);
        if now >= floor_units {
            if let Ok(permit) = self.semaphore.clone().try_acquire_many_owned(now as u32) {
                return Ok(Reservation {
                    permit: Some(permit),
                });
            }
        }
        let waited = tokio::time::timeout(
            wait,
            self.semaphore
                .clone()
                .acquire_many_owned(floor_units as u32),
        )
        .await;
        match waited {
            Ok(Ok(permit)) => Ok(Reservation {
                permit: Some(permit),
            }),
            // The semaphore is never closed; a timeout and a closed pool both refuse.
            Ok(Err(_)) | Err(_) => Err(Exhausted {
                name: self.name,
                total_bytes: self.total_bytes(),
                wanted_bytes: floor_units * UNIT_BYTES,
                waited_ms: wait.as_millis() as u64,
            }),
        }
    }
}

impl Reservation {
    /// A reservation of nothing, for a request that holds no budget.
    pub fn none() -> Reservation {
        Reservation { permit: None }
    }

    /// Bytes granted (whole KiB).
    pub fn bytes(&self) -> u64 {
        self.permit
            .as_ref()
            .map_or(0, |permit| permit.num_permits() as u64 * UNIT_BYTES)
    }

    /// Gives back everything above `bytes` (rounded up to a unit; never below one unit).
    pub fn shrink_to(&mut self, bytes: u64) {
        let Some(permit) = self.permit.as_mut() else {
            return;
        };
        let keep = units_of(bytes).max(1) as usize;
        let held = permit.num_permits();
        if held > keep {
            // Dropping the split-off part releases it.
            drop(permit.split(held - keep));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;
    const NO_WAIT: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn grants_what_is_free_down_to_the_floor_then_refuses() {
        let budget = Budget::new("fetch", 8 * MIB);
        let first = budget.reserve(6 * MIB, MIB, NO_WAIT).await.unwrap();
        assert_eq!(first.bytes(), 6 * MIB);
        let second = budget.reserve(6 * MIB, MIB, NO_WAIT).await.unwrap();
        assert_eq!(second.bytes(), 2 * MIB, "what is left, above the floor");
        assert_eq!(budget.used_bytes(), 8 * MIB);
        let refused = budget.reserve(MIB, MIB, NO_WAIT).await.unwrap_err();
        assert_eq!(refused.name, "fetch");
        assert_eq!(refused.wanted_bytes, MIB);
        drop(first);
        assert_eq!(budget.used_bytes(), 2 * MIB);
        let third = budget.reserve(100 * MIB, MIB, NO_WAIT).await.unwrap();
        assert_eq!(third.bytes(), 6 * MIB, "capped at what the pool holds free");
    }

    #[tokio::test]
    async fn a_waiter_gets_its_floor_when_bytes_come_back() {
        let budget = Budget::new("body", 4 * MIB);
        let held = budget.reserve(4 * MIB, 4 * MIB, NO_WAIT).await.unwrap();
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget
                    .reserve(2 * MIB, 2 * MIB, Duration::from_secs(30))
                    .await
            })
        };
        tokio::task::yield_now().await;
        drop(held);
        let granted = waiter.await.unwrap().unwrap();
        assert_eq!(granted.bytes(), 2 * MIB);
    }

    #[tokio::test]
    async fn shrinking_gives_back_the_rest_and_sizes_round_up() {
        let budget = Budget::new("fetch", 8 * MIB);
        let mut reservation = budget.reserve(8 * MIB, MIB, NO_WAIT).await.unwrap();
        reservation.shrink_to(1500);
        assert_eq!(reservation.bytes(), 2048);
        assert_eq!(budget.used_bytes(), 2048);
        reservation.shrink_to(0);
        assert_eq!(reservation.bytes(), 1024, "never below one unit");
        let tiny = budget.reserve(1, 1, NO_WAIT).await.unwrap();
        assert_eq!(tiny.bytes(), 1024);
        assert_eq!(Reservation::none().bytes(), 0);
        // A request larger than the pool is capped at the pool, not refused forever.
        drop((reservation, tiny));
        let whole = budget.reserve(100 * MIB, 100 * MIB, NO_WAIT).await.unwrap();
        assert_eq!(whole.bytes(), 8 * MIB);
    }
}
