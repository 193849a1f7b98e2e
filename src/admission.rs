//! Admission of inbound connections: caps per source address and in total, shared by the HTTPS
//! listener (open connections) and the peer listener (handshakes in progress).
//!
//! Owns the slot counts of one listener (`Slots`), the pure decision (`admit`), how a source
//! address is keyed (`source_key`) and the metrics of refused connections and slots in use. It
//! does no I/O and reads no clock: a listener asks for a slot with the address the kernel gave
//! it, closes the connection when refused, and holds the returned `Slot` for as long as the
//! connection (or its handshake) counts. Dropping the `Slot` gives it back.
//!
//! Part of the total can be kept for *listed* sources (on the peer listener: the addresses of
//! the configured and registered brokers). Unlisted sources together hold at most
//! `unlisted_max` slots, so sources that are not peers cannot take the rest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

/// Bits of an IPv6 source address that name one source: a /64 is what one host or site gets,
/// so a host cannot spread its connections over the addresses of its own prefix.
const IPV6_SOURCE_PREFIX_BITS: u32 = 64;

/// Which listener a slot or a refusal belongs to (a metric label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Listener {
    /// The HTTPS client API; a slot is one open connection.
    Http,
    /// The mutual-TLS peer listener; a slot is one inbound handshake in progress.
    Peer,
}

impl Listener {
    pub fn label(self) -> &'static str {
        match self {
            Listener::Http => "http",
            Listener::Peer => "peer",
        }
    }
}

/// Why a connection was refused (a metric label).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Every slot of the listener is taken.
    #[error("every slot of the listener is taken")]
    Total,
    /// The source already holds `per_source_max` slots.
    #[error("the source address holds its most slots")]
    PerSource,
    /// Unlisted sources hold `unlisted_max` slots; the rest is kept for listed ones.
    #[error("only slots kept for listed sources are left")]
    Reserved,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::PerSource => "per_source",
            Refusal::Reserved => "reserved",
        }
    }
}

impl EncodeLabelValue for Listener {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.label())
    }
}

impl EncodeLabelValue for Refusal {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.label())
    }
}

/// Whether a source address is one the listener keeps slots for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listing {
    /// A known address (a peer broker's); may use the reserved part of the total.
    Listed,
    /// Any other address.
    Unlisted,
}

/// The caps of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLimits {
    /// Slots in use at once, all sources together.
    pub total_max: usize,
    /// Slots one source (`source_key`) may hold at once.
    pub per_source_max: usize,
    /// Slots unlisted sources may hold together; `total_max - unlisted_max` are kept for
    /// listed sources. Equal to `total_max` when nothing is kept.
    pub unlisted_max: usize,
}

/// What is in use when a connection asks for a slot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    pub total: usize,
    pub unlisted: usize,
    /// Held by the asking connection's source.
    pub from_source: usize,
}

/// Whether one more connection from a source may take a slot. Checked in this order, so a flood
/// from one address is reported as `PerSource` even once the listener is full, and `Reserved`
/// means that free slots are left, all of them kept for listed sources.
pub fn admit(occupancy: &Occupancy, limits: &SlotLimits, listing: Listing) -> Result<(), Refusal> {
    if occupancy.from_source >= limits.per_source_max {
        return Err(Refusal::PerSource);
    }
    if occupancy.total >= limits.total_max {
        return Err(Refusal::Total);
    }
    if listing == Listing::Unlisted && occupancy.unlisted >= limits.unlisted_max {
        return Err(Refusal::Reserved);
    }
    Ok(())
}

/// The key a source address is counted under: IPv4 (also when mapped into IPv6) as is, IPv6 by
/// its /64 prefix.
pub fn source_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_SOURCE_PREFIX_BITS);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Labels of the refusal counter: both from closed sets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub listener: Listener,
    pub reason: Refusal,
}

/// Label of the slots-in-use gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: Listener,
}

/// The metrics of every listener of one broker; clones share the series.
#[derive(Clone, Debug, Default)]
pub struct AdmissionMetrics {
    /// Connections refused, by listener and reason.
    pub refused: Family<RefusedLabels, Counter>,
    /// Slots in use right now, by listener.
    pub in_use: Family<ListenerLabels, Gauge>,
    /// Connections closed because they sent nothing within the listener's hello timeout.
    pub hello_timeouts: Family<ListenerLabels, Counter>,
}

/// Counts per source; an entry exists only while its source holds a slot, so the map never has
/// more than `total_max` entries.
#[derive(Debug, Default)]
struct State {
    total: usize,
    unlisted: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// The slots of one listener. Clones share the counts; safe from any thread.
#[derive(Clone, Debug)]
pub struct Slots {
    listener: Listener,
    limits: SlotLimits,
    metrics: AdmissionMetrics,
    state: Arc<Mutex<State>>,
}

impl Slots {
    pub fn new(listener: Listener, limits: SlotLimits, metrics: AdmissionMetrics) -> Slots {
        assert!(
            limits.unlisted_max <= limits.total_max && limits.per_source_max >= 1,
            "slot limits of {listener:?}: {limits:?}"
        );
        Slots {
            listener,
            limits,
            metrics,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Takes a slot for a connection from `address`, or says why not (and counts the refusal).
    pub fn try_take(&self, address: IpAddr, listing: Listing) -> Result<Slot, Refusal> {
        let source = source_key(address);
        let mut state = self.lock();
        let occupancy = Occupancy {
            total: state.total,
            unlisted: state.unlisted,
            from_source: state.per_source.get(&source).copied().unwrap_or(0),
        };
        if let Err(refusal) = admit(&occupancy, &self.limits, listing) {
            drop(state);
            let labels = RefusedLabels {
                listener: self.listener,
                reason: refusal,
            };
            self.metrics.refused.get_or_create(&labels).inc();
            return Err(refusal);
        }
        state.total += 1;
        if listing == Listing::Unlisted {
            state.unlisted += 1;
        }
        *state.per_source.entry(source).or_insert(0) += 1;
        self.gauge().set(state.total as i64);
        drop(state);
        Ok(Slot {
            slots: self.clone(),
            source,
            listing,
        })
    }

    /// Counts a connection closed for sending nothing in time.
    pub fn count_hello_timeout(&self) {
        let labels = ListenerLabels {
            listener: self.listener,
        };
        self.metrics.hello_timeouts.get_or_create(&labels).inc();
    }

    /// Slots in use right now.
    pub fn in_use(&self) -> usize {
        self.lock().total
    }

    fn release(&self, source: IpAddr, listing: Listing) {
        let mut state = self.lock();
        let held = state.per_source.get_mut(&source);
        let held = held.unwrap_or_else(|| panic!("{source} releases a slot it does not hold"));
        *held -= 1;
        if *held == 0 {
            state.per_source.remove(&source);
        }
        assert!(
            state.total > 0,
            "slot count of {:?} underflows",
            self.listener
        );
        state.total -= 1;
        if listing == Listing::Unlisted {
            assert!(state.unlisted > 0, "unlisted count underflows");
            state.unlisted -= 1;
        }
        self.gauge().set(state.total as i64);
    }

    fn gauge(&self) -> Gauge {
        let labels = ListenerLabels {
            listener: self.listener,
        };
        self.metrics.in_use.get_or_create(&labels).clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One slot held; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Slots,
    source: IpAddr,
    listing: Listing,
}

impl Slot {
    /// Counts this slot's connection as closed for sending nothing in time.
    pub fn count_hello_timeout(&self) {
        self.slots.count_hello_timeout();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(self.source, self.listing);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SlotLimits = SlotLimits {
        total_max: 4,
        per_source_max: 2,
        unlisted_max: 3,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn slots() -> Slots {
        Slots::new(Listener::Peer, LIMITS, AdmissionMetrics::default())
    }

    #[test]
    fn the_decision_checks_source_then_total_then_reservation() {
        let at = |total, unlisted, from_source| Occupancy {
            total,
            unlisted,
            from_source,
        };
        assert_eq!(admit(&at(0, 0, 0), &LIMITS, Listing::Unlisted), Ok(()));
        assert_eq!(
            admit(&at(4, 3, 2), &LIMITS, Listing::Unlisted),
            Err(Refusal::PerSource)
        );
        assert_eq!(
            admit(&at(3, 3, 0), &LIMITS, Listing::Unlisted),
            Err(Refusal::Reserved)
        );
        assert_eq!(admit(&at(3, 3, 0), &LIMITS, Listing::Listed), Ok(()));
        for listing in [Listing::Listed, Listing::Unlisted] {
            assert_eq!(admit(&at(4, 3, 0), &LIMITS, listing), Err(Refusal::Total));
        }
    }

    #[test]
    fn one_source_takes_at_most_its_share_and_gets_it_back() {
        let slots = slots();
        let first = slots.try_take(ip("127.0.0.2"), Listing::Unlisted).unwrap();
        let _second = slots.try_take(ip("127.0.0.2"), Listing::Unlisted).unwrap();
        assert_eq!(
            slots
                .try_take(ip("127.0.0.2"), Listing::Unlisted)
                .unwrap_err(),
            Refusal::PerSource
        );
        // IPv4 mapped into IPv6 is the same source.
        assert_eq!(
            slots
                .try_take(ip("::ffff:127.0.0.2"), Listing::Unlisted)
                .unwrap_err(),
            Refusal::PerSource
        );
        drop(first);
        assert!(slots.try_take(ip("127.0.0.2"), Listing::Unlisted).is_ok());
        assert_eq!(slots.in_use(), 1, "the temporary slot was given back");
    }

    #[test]
    fn unlisted_sources_cannot_take_the_reserved_part() {
        let slots = slots();
        let held: Vec<Slot> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|source| slots.try_take(ip(source), Listing::Unlisted).unwrap())
            .collect();
        assert_eq!(
            slots
                .try_take(ip("10.0.0.4"), Listing::Unlisted)
                .unwrap_err(),
            Refusal::Reserved
        );
        let peer = slots.try_take(ip("10.0.0.9"), Listing::Listed).unwrap();
        assert_eq!(
            slots.try_take(ip("10.0.0.8"), Listing::Listed).unwrap_err(),
            Refusal::Total
        );
        drop(held);
        drop(peer);
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn ipv6_sources_are_counted_per_prefix() {
        assert_eq!(
            source_key(ip("2001:db8:1:2:aaaa::1")),
            source_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            source_key(ip("2001:db8:1:2::1")),
            source_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(source_key(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn refusals_are_counted_by_listener_and_reason() {
        let metrics = AdmissionMetrics::default();
        let slots = Slots::new(Listener::Http, LIMITS, metrics.clone());
        let _held: Vec<Slot> = (0..2)
            .map(|_| slots.try_take(ip("127.0.0.2"), Listing::Unlisted).unwrap())
            .collect();
        for _ in 0..3 {
            let _ = slots.try_take(ip("127.0.0.2"), Listing::Unlisted);
        }
        let labels = RefusedLabels {
            listener: Listener::Http,
            reason: Refusal::PerSource,
        };
        assert_eq!(metrics.refused.get_or_create(&labels).get(), 3);
        let gauge = ListenerLabels {
            listener: Listener::Http,
        };
        assert_eq!(metrics.in_use.get_or_create(&gauge).get(), 2);
    }
}
