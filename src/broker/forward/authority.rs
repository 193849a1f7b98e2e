//! What a peer broker may ask this broker to run, checked before a forwarded request runs.
//!
//! A forwarded request carries no caller: the broker the client called authenticated,
//! authorized and audited it, and the leader trusts that broker's peer certificate for it. What
//! can be checked here without that trust is checked: requests only one broker ever sends, and
//! events that name the broker that sends them. A pure function of the request, the sender's
//! broker id (from its certificate) and the controller leader as this broker sees it.

use super::super::peer_wire::ForwardRequest;
use super::super::BrokerError;

/// Whether broker `from` may have this broker run `request`. `controller_leader` is the leader
/// of the controller group in this broker's view.
pub fn check(
    request: &ForwardRequest,
    from: u64,
    controller_leader: Option<u64>,
) -> Result<(), BrokerError> {
    match request {
        // Membership changes and leadership transfers are the balancer's, which acts only on the
        // controller leader.
        ForwardRequest::Membership { .. } | ForwardRequest::Transfer { .. } => {
            if controller_leader == Some(from) {
                Ok(())
            } else {
                Err(BrokerError::Forbidden(format!(
                    "broker {from} does not lead the controller (leader: {controller_leader:?}); \
                     only the controller leader changes a group's membership or leader"
                )))
            }
        }
        // A broker forwards only the events of requests it served itself.
        ForwardRequest::Audit { events, .. } => match events.iter().find(|e| e.broker != from) {
            None => Ok(()),
            Some(event) => Err(BrokerError::Forbidden(format!(
                "broker {from} forwarded an audit event of broker {}; a broker sends only its own",
                event.broker
            ))),
        },
        ForwardRequest::Produce { .. }
        | ForwardRequest::IdempotentProduce { .. }
        | ForwardRequest::ConditionalProduce { .. }
        | ForwardRequest::Fetch { .. }
        | ForwardRequest::Describe { .. }
        | ForwardRequest::Meta { .. }
        | ForwardRequest::Health
        | ForwardRequest::Rebalance
        | ForwardRequest::Group(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditDecision, UnsealedEvent};
    use crate::raft::{ConfChange, GroupId, NodeId};

    fn event(broker: u64) -> UnsealedEvent {
        UnsealedEvent {
            time_ms: 0,
            broker,
            request_id: "r".into(),
            principal: Some("admin".into()),
            source: "127.0.0.1".into(),
            action: "topic.create".into(),
            resource: "topic:t".into(),
            decision: AuditDecision::Allow,
            status: 200,
            detail: None,
        }
    }

    #[test]
    fn only_the_controller_leader_changes_membership_or_leadership() {
        let requests = [
            ForwardRequest::Membership {
                group: GroupId(5),
                change: ConfChange::RemoveNode(NodeId(2)),
            },
            ForwardRequest::Transfer {
                group: GroupId(5),
                to: 3,
            },
        ];
        for request in &requests {
            assert!(check(request, 1, Some(1)).is_ok());
            assert!(matches!(
                check(request, 2, Some(1)),
                Err(BrokerError::Forbidden(_))
            ));
            assert!(check(request, 2, None).is_err());
        }
    }

    #[test]
    fn audit_events_name_the_broker_that_forwards_them() {
        let own = ForwardRequest::Audit {
            group: GroupId(1),
            events: vec![event(2), event(2)],
        };
        assert!(check(&own, 2, Some(1)).is_ok());
        let forged = ForwardRequest::Audit {
            group: GroupId(1),
            events: vec![event(2), event(3)],
        };
        assert!(matches!(
            check(&forged, 2, Some(1)),
            Err(BrokerError::Forbidden(_))
        ));
    }

    #[test]
    fn client_operations_are_trusted_from_any_peer() {
        let fetch = ForwardRequest::Fetch {
            group: GroupId(4),
            offset: 0,
            wait_ms: 0,
            records_max: 1,
            bytes_max: 1,
        };
        assert!(check(&fetch, 7, Some(1)).is_ok());
        assert!(check(&ForwardRequest::Health, 7, None).is_ok());
    }
}
