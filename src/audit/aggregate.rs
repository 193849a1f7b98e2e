//! Aggregation of unauthenticated failures: the rule that keeps an outsider from flooding the
//! audit log while every failure stays accounted for.
//!
//! A failure nobody authenticated for (a refused bearer token, a failed login) is keyed by its
//! source address, action and status. The first one of a key in an interval is written as its
//! own event. Later ones in the interval are only counted, and when the interval is over one
//! aggregate event carries the count, the principals named (the first few) and the latest
//! detail. Authenticated denials and every change are never aggregated; they do not come here.
//!
//! Memory is bounded by `sources_max` keys; past it, failures of new keys are counted under one
//! overflow key whose source is `*`. Pure: the caller passes the time and writes the events.

use std::collections::{BTreeSet, HashMap};

use super::{bounded_field, UnsealedEvent};

/// Principals named in one aggregate event at most.
pub const AGGREGATE_PRINCIPALS_MAX: usize = 8;
/// The `resource` of an aggregate event.
pub const AGGREGATE_RESOURCE: &str = "aggregate";
/// The source of the overflow key, used once `sources_max` keys are tracked.
pub const OVERFLOW_SOURCE: &str = "*";

/// What to do with a failure just noted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Write it as its own event now (the first of its key in this interval).
    Write,
    /// Counted; a later aggregate event accounts for it.
    Counted,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TallyKey {
    source: String,
    action: String,
    status: u16,
}

#[derive(Debug, Clone)]
struct Tally {
    /// Start of the current interval.
    since_ms: u64,
    /// Failures counted and not yet written.
    counted: u64,
    /// The latest counted failure, as the template of the aggregate event.
    latest: Option<UnsealedEvent>,
    principals: BTreeSet<String>,
}

/// Failures counted for one aggregate event, handed back if writing it failed.
#[derive(Debug, Clone)]
pub struct Due {
    key: TallyKey,
    counted: u64,
    latest: UnsealedEvent,
    principals: BTreeSet<String>,
    since_ms: u64,
}

impl Due {
    /// The aggregate event: the latest failure's fields, resource [`AGGREGATE_RESOURCE`], and
    /// a detail with the count, the interval and the principals named.
    pub fn event(&self, now_ms: u64) -> UnsealedEvent {
        let mut event = self.latest.clone();
        let principals: Vec<&str> = self.principals.iter().map(String::as_str).collect();
        let latest = self.latest.detail.as_deref().unwrap_or("");
        event.time_ms = now_ms;
        event.source = self.key.source.clone();
        event.principal = None;
        event.resource = AGGREGATE_RESOURCE.to_string();
        event.detail = Some(bounded_field(&format!(
            "count={} since_ms={} principals=[{}] latest: {latest}",
            self.counted,
            self.since_ms,
            principals.join(",")
        )));
        event
    }

    /// How many failures this aggregate accounts for.
    pub fn count(&self) -> u64 {
        self.counted
    }
}

/// The tally of unauthenticated failures. See the module documentation for the rule.
#[derive(Debug)]
pub struct FailureTally {
    interval_ms: u64,
    sources_max: usize,
    tallies: HashMap<TallyKey, Tally>,
}

impl FailureTally {
    /// `interval_ms` and `sources_max` are raised to at least 1.
    pub fn new(interval_ms: u64, sources_max: usize) -> FailureTally {
        FailureTally {
            interval_ms: interval_ms.max(1),
            sources_max: sources_max.max(1),
            tallies: HashMap::new(),
        }
    }

    /// Notes one failure and says whether to write it now or leave it to an aggregate.
    pub fn note(&mut self, event: &UnsealedEvent, now_ms: u64) -> Admission {
        let mut key = TallyKey {
            source: event.source.clone(),
            action: event.action.clone(),
            status: event.status,
        };
        if !self.tallies.contains_key(&key) && self.tallies.len() >= self.sources_max {
            self.forget_quiet(now_ms);
            if self.tallies.len() >= self.sources_max {
                key.source = OVERFLOW_SOURCE.to_string();
            }
        }
        let interval_ms = self.interval_ms;
        let Some(tally) = self.tallies.get_mut(&key) else {
            // The first failure of a key is written, and starts its interval.
            self.tallies.insert(
                key,
                Tally {
                    since_ms: now_ms,
                    counted: 0,
                    latest: None,
                    principals: BTreeSet::new(),
                },
            );
            return Admission::Write;
        };
        let interval_over = tally.since_ms.saturating_add(interval_ms) <= now_ms;
        if interval_over && tally.counted == 0 {
            tally.since_ms = now_ms;
            return Admission::Write;
        }
        tally.counted += 1;
        if let Some(principal) = &event.principal {
            if tally.principals.len() < AGGREGATE_PRINCIPALS_MAX {
                tally.principals.insert(principal.clone());
            }
        }
        tally.latest = Some(event.clone());
        Admission::Counted
    }

    /// Takes the aggregates whose interval is over; their keys start a new interval now. A
    /// failed write hands them back with [`FailureTally::restore`].
    pub fn take_due(&mut self, now_ms: u64) -> Vec<Due> {
        self.take(now_ms, false)
    }

    /// Takes every aggregate with a count, whether or not its interval is over: what a broker
    /// that is stopping writes last.
    pub fn take_all(&mut self, now_ms: u64) -> Vec<Due> {
        self.take(now_ms, true)
    }

    fn take(&mut self, now_ms: u64, all: bool) -> Vec<Due> {
        let interval_ms = self.interval_ms;
        let mut due = Vec::new();
        for (key, tally) in &mut self.tallies {
            let over = tally.since_ms.saturating_add(interval_ms) <= now_ms;
            if tally.counted == 0 || !(over || all) {
                continue;
            }
            let Some(latest) = tally.latest.take() else {
                continue;
            };
            due.push(Due {
                key: key.clone(),
                counted: std::mem::take(&mut tally.counted),
                latest,
                principals: std::mem::take(&mut tally.principals),
                since_ms: tally.since_ms,
            });
            tally.since_ms = now_ms;
        }
        self.forget_quiet(now_ms);
        due
    }

    /// Puts back aggregates that could not be written, so they are counted again.
    pub fn restore(&mut self, due: Vec<Due>) {
        for item in due {
            let tally = self.tallies.entry(item.key).or_insert_with(|| Tally {
                since_ms: item.since_ms,
                counted: 0,
                latest: None,
                principals: BTreeSet::new(),
            });
            tally.counted += item.counted;
            tally.since_ms = tally.since_ms.min(item.since_ms);
            tally.latest.get_or_insert(item.latest);
            for principal in item.principals {
                if tally.principals.len() < AGGREGATE_PRINCIPALS_MAX {
                    tally.principals.insert(principal);
                }
            }
        }
    }

    /// Failures counted and not yet written, over every key.
    pub fn pending(&self) -> u64 {
        self.tallies.values().map(|tally| tally.counted).sum()
    }

    /// Keys tracked (at most `sources_max`, plus the overflow key).
    pub fn tracked_keys(&self) -> usize {
        self.tallies.len()
    }

    /// Drops keys with nothing counted whose interval is over.
    fn forget_quiet(&mut self, now_ms: u64) {
        let interval_ms = self.interval_ms;
        self.tallies.retain(|_, tally| {
            tally.counted > 0 || tally.since_ms.saturating_add(interval_ms) > now_ms
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AuditDecision;

    fn failure(source: &str, principal: Option<&str>) -> UnsealedEvent {
        UnsealedEvent {
            time_ms: 0,
            broker: 1,
            request_id: "r".into(),
            principal: principal.map(str::to_string),
            source: source.into(),
            action: "auth.token_rejected".into(),
            resource: "token".into(),
            decision: AuditDecision::Deny,
            status: 401,
            detail: Some("token signature does not verify".into()),
        }
    }

    #[test]
    fn first_failure_is_written_and_the_rest_are_one_aggregate_per_interval() {
        let mut tally = FailureTally::new(10_000, 100);
        let event = failure("10.0.0.1", None);
        assert_eq!(tally.note(&event, 1_000), Admission::Write);
        for time in 1_001..1_101 {
            assert_eq!(tally.note(&event, time), Admission::Counted);
        }
        assert!(tally.take_due(10_999).is_empty(), "interval not over yet");
        let due = tally.take_due(11_000);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].count(), 100);
        let aggregate = due[0].event(11_000);
        assert_eq!(aggregate.resource, AGGREGATE_RESOURCE);
        assert_eq!(aggregate.source, "10.0.0.1");
        assert!(aggregate
            .detail
            .as_deref()
            .unwrap()
            .starts_with("count=100 "));
        assert_eq!(tally.pending(), 0);
        // The next interval: counted again, not written one by one.
        assert_eq!(tally.note(&event, 11_001), Admission::Counted);
    }

    #[test]
    fn a_stopping_broker_takes_every_pending_count() {
        let mut tally = FailureTally::new(10_000, 100);
        let event = failure("10.0.0.1", None);
        assert_eq!(tally.note(&event, 1_000), Admission::Write);
        assert_eq!(tally.note(&event, 1_001), Admission::Counted);
        assert!(tally.take_due(1_002).is_empty());
        let all = tally.take_all(1_002);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].count(), 1);
        assert_eq!(tally.pending(), 0);
        assert!(tally.take_all(1_003).is_empty(), "nothing is taken twice");
    }

    #[test]
    fn a_quiet_key_writes_its_next_failure_again() {
        let mut tally = FailureTally::new(10_000, 100);
        let event = failure("10.0.0.1", None);
        assert_eq!(tally.note(&event, 0), Admission::Write);
        assert_eq!(tally.note(&event, 20_000), Admission::Write);
    }

    #[test]
    fn sources_are_separate_and_bounded_with_an_overflow_key() {
        let mut tally = FailureTally::new(10_000, 4);
        for index in 0..4 {
            let event = failure(&format!("10.0.0.{index}"), None);
            assert_eq!(tally.note(&event, 0), Admission::Write);
        }
        // Past the bound, new sources share the overflow key: its first failure is written,
        // the rest counted.
        for index in 4..1000 {
            let event = failure(&format!("10.0.1.{index}"), Some("mallory"));
            let expected = if index == 4 {
                Admission::Write
            } else {
                Admission::Counted
            };
            assert_eq!(tally.note(&event, 1), expected);
        }
        assert_eq!(tally.tracked_keys(), 5);
        let due = tally.take_due(10_001);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].event(10_001).source, OVERFLOW_SOURCE);
        assert_eq!(due[0].count(), 995);
    }

    #[test]
    fn a_failed_write_is_restored_and_counted_again() {
        let mut tally = FailureTally::new(1_000, 10);
        let event = failure("10.0.0.1", Some("a"));
        tally.note(&event, 0);
        tally.note(&event, 1);
        tally.note(&event, 2);
        let due = tally.take_due(1_000);
        assert_eq!(due[0].count(), 2);
        tally.restore(due);
        assert_eq!(tally.pending(), 2);
        let again = tally.take_due(2_000);
        assert_eq!(again[0].count(), 2);
    }

    #[test]
    fn principals_named_are_bounded() {
        let mut tally = FailureTally::new(1_000, 10);
        tally.note(&failure("10.0.0.1", None), 0);
        for index in 0..50 {
            tally.note(&failure("10.0.0.1", Some(&format!("user{index}"))), 1);
        }
        let due = tally.take_due(1_000);
        let detail = due[0].event(1_000).detail.unwrap();
        assert_eq!(detail.matches("user").count(), AGGREGATE_PRINCIPALS_MAX);
    }
}
