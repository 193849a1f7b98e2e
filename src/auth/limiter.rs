//! Rate limiting of failed logins, per user name and per source address.
//!
//! Owns the failure history of a sliding window: after `failures_max` failures within
//! `window_ms` for a user name (known or not) or for an address, further attempts for that
//! key are refused until the oldest of those failures leaves the window. A success clears
//! the user's history but not the address's, so one valid account cannot be used to reset
//! an address that is guessing other passwords.
//!
//! An attempt counts as a failure from the moment it is admitted ([`LoginLimiter::admit`]),
//! before the password is checked, and stops counting only when it succeeds: concurrent
//! guesses cannot all pass the check while the first ones are still being verified.
//!
//! Memory is bounded by `tracked_keys_max`: when full, expired histories are dropped first,
//! then the key whose latest failure is oldest. Pure: time is passed in, nothing is shared;
//! the caller holds the limiter behind its own lock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// How long the caller must wait before the next attempt; maps to `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RetryAfterMs(pub u64);

impl RetryAfterMs {
    /// Whole seconds, rounded up, for the `Retry-After` header (at least 1).
    pub fn seconds_rounded_up(self) -> u64 {
        self.0.div_ceil(1000).max(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LimitKey {
    User(String),
    Address(IpAddr),
}

/// An admitted login attempt, counted as a failure until it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    address: IpAddr,
    at_ms: u64,
}

/// Failed-login limiter. See the module documentation for the policy.
#[derive(Debug)]
pub struct LoginLimiter {
    failures_max: usize,
    window_ms: u64,
    tracked_keys_max: usize,
    /// Times of the most recent failures per key, oldest first, at most `failures_max`.
    failures: HashMap<LimitKey, VecDeque<u64>>,
}

impl LoginLimiter {
    /// `failures_max` and `tracked_keys_max` are raised to at least 1.
    pub fn new(failures_max: u32, window_ms: u64, tracked_keys_max: usize) -> LoginLimiter {
        LoginLimiter {
            failures_max: usize::try_from(failures_max.max(1)).unwrap_or(usize::MAX),
            window_ms,
            tracked_keys_max: tracked_keys_max.max(1),
            failures: HashMap::new(),
        }
    }

    /// Refuses the attempt while the user or the address is over its limit.
    pub fn check(&self, user: &str, address: IpAddr, now_ms: u64) -> Result<(), RetryAfterMs> {
        let keys = [LimitKey::User(user.to_string()), LimitKey::Address(address)];
        let wait_ms = keys
            .iter()
            .filter_map(|key| self.blocked_for_ms(key, now_ms))
            .max();
        match wait_ms {
            Some(wait_ms) => Err(RetryAfterMs(wait_ms)),
            None => Ok(()),
        }
    }

    /// Admits an attempt and counts it as a failure right away (see the module documentation);
    /// refused while the user or the address is over its limit. The answer names the attempt
    /// for [`LoginLimiter::record_success`].
    pub fn admit(
        &mut self,
        user: &str,
        address: IpAddr,
        now_ms: u64,
    ) -> Result<Attempt, RetryAfterMs> {
        self.check(user, address, now_ms)?;
        self.record_failure(user, address, now_ms);
        Ok(Attempt {
            address,
            at_ms: now_ms,
        })
    }

    /// Forgets an admitted attempt that succeeded: the user's failures go, and the address
    /// loses this attempt only (its other failures stay).
    pub fn record_success(&mut self, user: &str, attempt: Attempt) {
        self.failures.remove(&LimitKey::User(user.to_string()));
        let key = LimitKey::Address(attempt.address);
        if let Some(history) = self.failures.get_mut(&key) {
            if let Some(position) = history.iter().rposition(|time| *time == attempt.at_ms) {
                history.remove(position);
            }
            if history.is_empty() {
                self.failures.remove(&key);
            }
        }
    }

    /// Records a failed attempt against both the user name and the address.
    pub fn record_failure(&mut self, user: &str, address: IpAddr, now_ms: u64) {
        for key in [LimitKey::User(user.to_string()), LimitKey::Address(address)] {
            self.record(key, now_ms);
        }
    }

    /// Number of keys currently tracked (never above `tracked_keys_max`).
    pub fn tracked_keys(&self) -> usize {
        self.failures.len()
    }

    fn blocked_for_ms(&self, key: &LimitKey, now_ms: u64) -> Option<u64> {
        let history = self.failures.get(key)?;
        let recent: Vec<u64> = history
            .iter()
            .copied()
            .filter(|time_ms| self.in_window(*time_ms, now_ms))
            .collect();
        if recent.len() < self.failures_max {
            return None;
        }
        // Free again once the oldest counted failure leaves the window.
        let oldest_ms = recent[recent.len() - self.failures_max];
        Some((oldest_ms + self.window_ms).saturating_sub(now_ms).max(1))
    }

    fn in_window(&self, time_ms: u64, now_ms: u64) -> bool {
        time_ms.saturating_add(self.window_ms) > now_ms
    }

    fn record(&mut self, key: LimitKey, now_ms: u64) {
        if !self.failures.contains_key(&key) && self.failures.len() >= self.tracked_keys_max {
            self.make_room(now_ms);
        }
        let history = self.failures.entry(key).or_default();
        history.push_back(now_ms);
        while history.len() > self.failures_max {
            history.pop_front();
        }
    }

    fn make_room(&mut self, now_ms: u64) {
        let window_ms = self.window_ms;
        self.failures.retain(|_, history| {
            history
                .back()
                .is_some_and(|latest| latest.saturating_add(window_ms) > now_ms)
        });
        if self.failures.len() < self.tracked_keys_max {
            return;
        }
        let stalest = self
            .failures
            .iter()
            .min_by_key(|(_, history)| history.back().copied().unwrap_or(0))
            .map(|(key, _)| key.clone());
        if let Some(key) = stalest {
            self.failures.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn blocks_a_user_after_the_limit_until_the_window_passes() {
        let mut limiter = LoginLimiter::new(3, 60_000, 100);
        for second in 0..3 {
            assert_eq!(limiter.check("alice", ADDRESS, second * 1000), Ok(()));
            limiter.record_failure("alice", ADDRESS, second * 1000);
        }
        // The user is blocked from any address; the first failure frees up at 60 s.
        assert_eq!(
            limiter.check("alice", OTHER, 10_000),
            Err(RetryAfterMs(50_000))
        );
        assert_eq!(limiter.check("alice", OTHER, 59_999), Err(RetryAfterMs(1)));
        assert_eq!(limiter.check("alice", OTHER, 60_000), Ok(()));
    }

    #[test]
    fn blocks_an_address_across_user_names() {
        let mut limiter = LoginLimiter::new(3, 60_000, 100);
        for (index, user) in ["a", "b", "c"].iter().enumerate() {
            limiter.record_failure(user, ADDRESS, index as u64);
        }
        assert!(limiter.check("d", ADDRESS, 10).is_err());
        assert_eq!(limiter.check("d", OTHER, 10), Ok(()));
    }

    #[test]
    fn success_clears_the_user_but_not_the_address() {
        let mut limiter = LoginLimiter::new(2, 60_000, 100);
        limiter.record_failure("alice", ADDRESS, 0);
        let attempt = limiter.admit("alice", ADDRESS, 1).unwrap();
        assert!(limiter.check("alice", OTHER, 2).is_err());
        limiter.record_success("alice", attempt);
        assert_eq!(limiter.check("alice", OTHER, 2), Ok(()));
        // The address keeps its real failure; the successful attempt no longer counts.
        assert_eq!(limiter.check("bob", ADDRESS, 2), Ok(()));
        limiter.record_failure("bob", ADDRESS, 3);
        assert!(limiter.check("carol", ADDRESS, 4).is_err());
    }

    #[test]
    fn admitted_attempts_count_before_they_are_checked() {
        let mut limiter = LoginLimiter::new(3, 60_000, 100);
        // Three attempts in flight at once: the fourth is refused before any of them finished.
        for _ in 0..3 {
            assert!(limiter.admit("alice", ADDRESS, 10).is_ok());
        }
        assert_eq!(limiter.admit("alice", OTHER, 10), Err(RetryAfterMs(60_000)));
    }

    #[test]
    fn tracked_keys_stay_bounded_and_drop_the_stalest() {
        let mut limiter = LoginLimiter::new(1, 1_000, 4);
        for index in 0..100u64 {
            let address = IpAddr::from([10, 1, (index / 256) as u8, (index % 256) as u8]);
            limiter.record_failure(&format!("user{index}"), address, 5_000 + index);
            assert!(limiter.tracked_keys() <= 4);
        }
        // The newest failure is still tracked and blocking.
        let newest = IpAddr::from([10, 1, 0, 99]);
        assert!(limiter.check("user99", newest, 5_100).is_err());
        assert_eq!(limiter.check("user0", OTHER, 5_100), Ok(()));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(RetryAfterMs(1).seconds_rounded_up(), 1);
        assert_eq!(RetryAfterMs(1000).seconds_rounded_up(), 1);
        assert_eq!(RetryAfterMs(1001).seconds_rounded_up(), 2);
    }
}
