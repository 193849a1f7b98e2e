//! Reading the audit log through `GET /v1/audit` and checking what each audited step added.

use palisade::audit::{AuditDecision, AuditEvent};

use crate::common::{RawApi, RawReply, ADMIN_PASSWORD};

/// Every event in the log with its offset, read page by page through `GET /v1/audit`.
pub async fn all_events(api: &RawApi, token: &str) -> Vec<(u64, AuditEvent)> {
    let mut events = Vec::new();
    let mut offset = 0;
    loop {
        let path = format!("/v1/audit?offset={offset}&limit=1000");
        let reply = api.call("GET", &path, Some(token), None).await;
        assert_eq!(reply.status, 200, "read audit: {}", reply.body);
        events.extend(decode_events(&reply));
        let next = reply.body["next_offset"].as_u64().expect("next_offset");
        if next
            >= reply.body["high_watermark"]
                .as_u64()
                .expect("high_watermark")
        {
            return events;
        }
        offset = next;
    }
}

/// Waits until the broker's `audit_failures_pending` gauge is 0: every unauthenticated failure
/// it counted is in the log.
pub async fn wait_until_no_failure_pending(api: &RawApi) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let reply = api
            .http
            .get(format!("{}/metrics", api.url))
            .send()
            .await
            .expect("metrics");
        let text = reply.text().await.expect("metrics text");
        let pending = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find(|line| line.contains("audit_failures_pending"))
            .and_then(|line| line.rsplit(' ').next())
            .and_then(|value| value.trim().parse::<f64>().ok())
            .expect("the audit_failures_pending gauge");
        if pending == 0.0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "failures still pending after 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The events of one reply: each is the event's fields plus `offset`.
pub fn decode_events(reply: &RawReply) -> Vec<(u64, AuditEvent)> {
    let list = reply.body["events"].as_array().expect("events").clone();
    list.into_iter()
        .map(|item| {
            let offset = item["offset"].as_u64().expect("offset");
            (
                offset,
                serde_json::from_value(item).expect("an audit event"),
            )
        })
        .collect()
}

/// What one audited step must have written.
pub struct Expected<'a> {
    pub action: &'a str,
    pub principal: Option<&'a str>,
    pub resource: &'a str,
    pub decision: AuditDecision,
    pub status: u16,
}

pub fn expect<'a>(
    action: &'a str,
    principal: Option<&'a str>,
    resource: &'a str,
    decision: AuditDecision,
    status: u16,
) -> Expected<'a> {
    Expected {
        action,
        principal,
        resource,
        decision,
        status,
    }
}

/// Reads the log as the superuser (whose reads are not audited) and checks what each step added.
pub struct Auditor {
    api: RawApi,
    pub admin: String,
    seen: usize,
}

impl Auditor {
    pub async fn new(api: &RawApi) -> Auditor {
        let admin = api.token("admin", ADMIN_PASSWORD).await;
        let seen = all_events(api, &admin).await.len();
        Auditor {
            api: api.clone(),
            admin,
            seen,
        }
    }

    pub async fn new_events(&mut self) -> Vec<AuditEvent> {
        let all = all_events(&self.api, &self.admin).await;
        let fresh = all[self.seen..]
            .iter()
            .map(|(_, event)| event.clone())
            .collect();
        self.seen = all.len();
        fresh
    }

    /// Asserts that exactly one event was written since the last check, as `expected` says.
    pub async fn exactly_one(&mut self, step: &str, expected: Expected<'_>) -> AuditEvent {
        let fresh = self.new_events().await;
        assert_eq!(fresh.len(), 1, "{step}: exactly one event, got {fresh:#?}");
        let event = fresh.into_iter().next().expect("one event");
        check_event(step, event, expected)
    }

    /// Asserts that exactly one unauthenticated failure was accounted for since the last
    /// check, as its own event or as an aggregate of one (the aggregation rule decides which,
    /// by the time since the source's last such failure). Waits until the broker holds no
    /// failure counted and unwritten.
    pub async fn one_failure(&mut self, step: &str, expected: Expected<'_>) -> AuditEvent {
        wait_until_no_failure_pending(&self.api).await;
        let fresh = self.new_events().await;
        assert_eq!(fresh.len(), 1, "{step}: exactly one event, got {fresh:#?}");
        let event = fresh.into_iter().next().expect("one event");
        if event.resource != "aggregate" {
            return check_event(step, event, expected);
        }
        assert_eq!(event.action, expected.action, "{step}: action");
        assert_eq!(event.decision, expected.decision, "{step}: decision");
        assert_eq!(event.status, expected.status, "{step}: status");
        assert_eq!(
            event.principal, None,
            "{step}: an aggregate names no principal"
        );
        let detail = event.detail.as_deref().unwrap_or("");
        assert!(
            detail.starts_with("count=1 "),
            "{step}: one failure: {detail}"
        );
        if let Some(principal) = expected.principal {
            assert!(
                detail.contains(&format!("principals=[{principal}]")),
                "{step}: the aggregate names {principal}: {detail}"
            );
        }
        event
    }

    pub async fn none(&mut self, step: &str) {
        let fresh = self.new_events().await;
        assert!(
            fresh.is_empty(),
            "{step}: no event expected, got {fresh:#?}"
        );
    }
}

/// Checks one event's fields against `expected`.
fn check_event(step: &str, event: AuditEvent, expected: Expected<'_>) -> AuditEvent {
    assert_eq!(event.action, expected.action, "{step}: action");
    assert_eq!(
        event.principal.as_deref(),
        expected.principal,
        "{step}: principal"
    );
    assert_eq!(event.resource, expected.resource, "{step}: resource");
    assert_eq!(event.decision, expected.decision, "{step}: decision");
    assert_eq!(event.status, expected.status, "{step}: status");
    assert_eq!(event.broker, 1, "{step}: broker id");
    assert_eq!(event.source, "127.0.0.1", "{step}: source address");
    event
}
