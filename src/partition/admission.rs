//! What a replica does with a Raft message whose sender has no authority in its group: drop it,
//! count it and say so in the log, without letting a flood of them flood the log.
//!
//! The decision is `raft::RawNode::admit`; this file owns the counter exported at `/metrics` and
//! the question the decision asks about senders the configuration does not list
//! ([`ReplicaDirectory`]). Its labels come from closed sets (the message kind and the refusal),
//! never from the group or the sender, so a peer cannot grow the metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::raft::{GroupId, Message, NodeId, Refusal};

/// Whether the controller names broker `node` as a replica of `group` (for the controller group:
/// as a broker of the cluster). Built above the partition layer; asked only about a sender the
/// receiving replica's configuration does not list.
pub type ReplicaDirectory = Arc<dyn Fn(GroupId, NodeId) -> bool + Send + Sync>;

/// Labels of the refused-message counter: `kind` is `MessageBody::kind`, `reason` is
/// `Refusal::label`; both closed sets.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub kind: &'static str,
    pub reason: &'static str,
}

/// Raft messages from peers dropped because the sender may not send them to that group.
pub static REFUSED_MESSAGES: LazyLock<Family<RefusedLabels, Counter>> =
    LazyLock::new(Family::default);

/// Refusals logged at warn: the first, then one in every `REFUSALS_PER_WARNING`. Every refusal is
/// logged at debug.
const REFUSALS_PER_WARNING: u64 = 1024;

/// Every refusal of this process, for the warning's rate.
static REFUSALS: AtomicU64 = AtomicU64::new(0);

/// Counts and logs a message `group`'s replica did not admit.
pub fn refused(group: GroupId, message: &Message, refusal: Refusal) {
    let kind = message.body.kind();
    let reason = refusal.label();
    REFUSED_MESSAGES
        .get_or_create(&RefusedLabels { kind, reason })
        .inc();
    let seen = REFUSALS.fetch_add(1, Ordering::Relaxed);
    if seen % REFUSALS_PER_WARNING == 0 {
        tracing::warn!(
            group = group.0,
            from = message.from.0,
            kind,
            reason,
            term = message.term.0,
            refused_so_far = seen + 1,
            "dropped a raft message from a broker without authority in the group (logged once per {REFUSALS_PER_WARNING})"
        );
    } else {
        tracing::debug!(
            group = group.0,
            from = message.from.0,
            kind,
            reason,
            term = message.term.0,
            "dropped a raft message from a broker without authority in the group"
        );
    }
}
