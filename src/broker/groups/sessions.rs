//! Member liveness: when each consumer-group member was last heard from, and the sweep that
//! removes members whose session timed out.
//!
//! Liveness is not replicated: only the controller leader tracks it, in memory. A broker that
//! becomes controller leader starts every member's clock afresh, so a failover gives each member
//! a full session timeout rather than expiring it for silence nobody could hear. The sweep
//! proposes `LeaveGroup` for an expired member (the rebalance itself is replicated) and audits it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::super::{Broker, RequestInfo, STATUS_OK};
use crate::audit::{actions, AuditDecision};
use crate::cluster::MetaCommand;

/// How often the controller leader looks for expired members.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(200);

/// Last heartbeat per (group, member), on the controller leader.
#[derive(Default)]
pub struct GroupSessions {
    seen: Mutex<HashMap<(String, String), Instant>>,
}

impl GroupSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Instant>> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn touch(&self, group: &str, member_id: &str) {
        self.lock()
            .insert((group.to_string(), member_id.to_string()), Instant::now());
    }

    /// Milliseconds since each member of `group` was heard from.
    pub fn ages(&self, group: &str) -> Vec<(String, u64)> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|((g, _), _)| g == group)
            .map(|((_, member), seen)| {
                (member.clone(), now.duration_since(*seen).as_millis() as u64)
            })
            .collect()
    }

    fn clear(&self) {
        self.lock().clear();
    }

    /// Members whose session timed out; members not seen yet start their clock now, and
    /// members no longer in the state are forgotten.
    fn expired(
        &self,
        members: &[(String, String, u64)],
        now: Instant,
    ) -> Vec<(String, String, u64)> {
        let mut seen = self.lock();
        seen.retain(|(group, member), _| members.iter().any(|(g, m, _)| g == group && m == member));
        members
            .iter()
            .filter(|(group, member, timeout_ms)| {
                let last = *seen.entry((group.clone(), member.clone())).or_insert(now);
                now.duration_since(last) > Duration::from_millis(*timeout_ms)
            })
            .cloned()
            .collect()
    }
}

/// Runs for the life of the broker: on the controller leader, expires silent members.
pub async fn run(broker: Arc<Broker>) {
    let mut was_leader = false;
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let leader = broker.parts.controller.replica().status.borrow().is_leader;
        if !leader || !was_leader {
            // Not leading, or just became leader: nobody's silence has been observed here.
            broker.parts.group_sessions.clear();
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        let state = broker.parts.controller.state();
        let members: Vec<(String, String, u64)> = state
            .groups
            .iter()
            .flat_map(|(group, g)| {
                g.members
                    .values()
                    .map(move |m| (group.clone(), m.member_id.clone(), m.session_timeout_ms))
            })
            .collect();
        for (group, member_id, timeout_ms) in broker
            .parts
            .group_sessions
            .expired(&members, Instant::now())
        {
            expire(&broker, group, member_id, timeout_ms).await;
        }
    }
}

async fn expire(broker: &Broker, group: String, member_id: String, timeout_ms: u64) {
    let request = RequestInfo {
        request_id: format!("session-expiry-{}", broker.now_ms()),
        source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let principal = broker
        .parts
        .controller
        .state()
        .groups
        .get(&group)
        .and_then(|g| g.members.get(&member_id))
        .map(|m| m.principal.clone());
    let detail = format!("member '{member_id}' sent no heartbeat for {timeout_ms} ms");
    let audited = broker
        .record(
            &request,
            principal.as_deref(),
            actions::GROUP_EXPIRE,
            &format!("group:{group}"),
            AuditDecision::Allow,
            STATUS_OK,
            Some(detail),
        )
        .await;
    if let Err(error) = audited {
        // Fail closed: the member stays until its expiry can be audited.
        tracing::warn!(%group, %member_id, %error, "member expiry not audited; retrying later");
        return;
    }
    let command = MetaCommand::LeaveGroup {
        group: group.clone(),
        member_id: member_id.clone(),
    };
    match broker.parts.controller.propose(command).await {
        Ok(_) => tracing::info!(%group, %member_id, "consumer group member expired"),
        Err(error) => tracing::warn!(%group, %member_id, %error, "member expiry not applied"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_expire_only_after_their_own_timeout_from_first_sight() {
        let sessions = GroupSessions::default();
        let members = vec![
            ("g".to_string(), "short".to_string(), 1),
            ("g".to_string(), "long".to_string(), 60_000),
        ];
        let start = Instant::now();
        // First sight starts the clock: nobody expires on it.
        assert!(sessions.expired(&members, start).is_empty());
        let later = start + Duration::from_millis(5);
        let expired = sessions.expired(&members, later);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].1, "short");
        // A member gone from the state is forgotten.
        assert!(sessions.expired(&members[1..], later).is_empty());
        assert_eq!(sessions.ages("g").len(), 1);
    }
}
