//! Audit through a real broker process over HTTPS: every login, authorization denial and admin
//! change yields exactly one event with the right action, principal, resource, decision and status;
//! reading the log needs the audit permission; the filters select what they say; the chain read
//! through the API (and the CLI) verifies, survives a restart, and an edit, deletion or reordering
//! of an event is detected.

mod common;
#[path = "broker_audit/reader.rs"]
mod reader;
#[path = "broker_audit/steps.rs"]
mod steps;

use common::{BrokerProcess, RawApi, ADMIN_PASSWORD};
use futures_util::FutureExt;
use palisade::audit::{verify_chain, AuditDecision, AuditEvent, ChainBreak, GENESIS_HASH};
use reader::{all_events, decode_events, Auditor};
use serde_json::json;
use steps::*;

/// The filters of `GET /v1/audit` select exactly the events a local filter over the whole log does.
async fn check_filters(api: &RawApi, admin: &str) {
    let all = all_events(api, admin).await;
    let query = |path: String| async move {
        let reply = api.call("GET", &path, Some(admin), None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        decode_events(&reply)
            .into_iter()
            .map(|(offset, _)| offset)
            .collect::<Vec<u64>>()
    };
    let local = |keep: &dyn Fn(&AuditEvent) -> bool| -> Vec<u64> {
        all.iter()
            .filter(|(_, e)| keep(e))
            .map(|(offset, _)| *offset)
            .collect()
    };
    let bob_logins = query("/v1/audit?principal=bob&action=auth.login".into()).await;
    assert_eq!(
        bob_logins.len(),
        4,
        "bob's three logins (again after each password change) and one failure"
    );
    assert_eq!(
        bob_logins,
        local(&|e| e.principal.as_deref() == Some("bob") && e.action == "auth.login")
    );
    let failures = query("/v1/audit?principal=bob&action=auth.login&decision=failure".into()).await;
    assert_eq!(
        failures,
        local(&|e| e.principal.as_deref() == Some("bob") && e.decision == AuditDecision::Failure)
    );
    assert_eq!(failures.len(), 1);
    let denials = query("/v1/audit?decision=deny".into()).await;
    assert_eq!(denials, local(&|e| e.decision == AuditDecision::Deny));
    assert_eq!(
        denials.len(),
        7,
        "two token rejections (tampered, ended by a password change) and five authorization denials"
    );
    let middle = all[all.len() / 2].1.time_ms;
    let since = query(format!("/v1/audit?since_ms={middle}")).await;
    assert_eq!(since, local(&|e| e.time_ms >= middle));
    let until = query(format!("/v1/audit?until_ms={middle}")).await;
    assert_eq!(until, local(&|e| e.time_ms < middle));
    assert_eq!(
        since.len() + until.len(),
        all.len(),
        "since and until split the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_login_denial_and_admin_change_yields_exactly_one_event() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let mut log = Auditor::new(&api).await;
    let bob = audit_logins(&api, &mut log).await;
    audit_denials(&api, &mut log, &bob).await;
    audit_acl_changes(&api, &mut log, &bob).await;
    audit_account_changes(&api, &mut log, &bob).await;
    check_filters(&api, &log.admin).await;

    // The checker itself: two events where one is expected fails it.
    for _ in 0..2 {
        let body = json!({"username": "ghost", "password": "any-password"});
        assert_eq!(
            api.call("POST", "/v1/auth/token", None, Some(&body))
                .await
                .status,
            401
        );
    }
    let login = reader::expect(
        "auth.login",
        Some("ghost"),
        "ghost",
        AuditDecision::Failure,
        401,
    );
    let check = std::panic::AssertUnwindSafe(log.one_failure("two logins", login));
    assert!(
        check.catch_unwind().await.is_err(),
        "one_failure must reject two failures"
    );
}

/// Logins, failures, denials and changes, to fill the log.
async fn make_events(api: &RawApi, admin: &str, round: u32) {
    let user = format!("user-{round}");
    let created = api
        .call(
            "POST",
            "/v1/users",
            Some(admin),
            Some(&login_body(&user, PASSWORD)),
        )
        .await;
    assert_eq!(created.status, 201);
    let token = api.token(&user, PASSWORD).await;
    let wrong = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(&login_body(&user, "wrong-password")),
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        api.call("GET", "/v1/acls", Some(&token), None).await.status,
        403
    );
    let topic = json!({"name": format!("chain-{round}"), "partitions": 1});
    assert_eq!(
        api.call("POST", "/v1/topics", Some(admin), Some(&topic))
            .await
            .status,
        201
    );
}

/// Runs the CLI's `audit list` and reads its JSON lines.
fn cli_audit_list(broker: &BrokerProcess, token: &str) -> Vec<AuditEvent> {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["audit", "list", "--url", &broker.url, "--token", token])
        .arg("--ca-cert")
        .arg(broker.ca_path())
        .env("PALISADE_HOME", broker.dir.path())
        .output()
        .expect("run palisade audit list");
    assert!(
        output.status.success(),
        "audit list failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 output");
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one event per line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_read_through_the_api_verifies_and_tampering_is_detected() {
    let mut broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    make_events(&api, &admin, 1).await;
    let before = all_events(&api, &admin).await;
    let offsets: Vec<u64> = before.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(
        offsets,
        (0..before.len() as u64).collect::<Vec<_>>(),
        "audit offsets are dense from 0"
    );

    // The chain continues across a restart.
    broker.restart().await;
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    make_events(&api, &admin, 2).await;
    let events: Vec<AuditEvent> = all_events(&api, &admin)
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert!(
        events.len() >= before.len() + 6,
        "events were added after the restart"
    );
    assert_eq!(
        events[..before.len()],
        before.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>()[..]
    );
    assert_eq!(events[0].prev_hash, GENESIS_HASH);
    assert_eq!(
        verify_chain(&events),
        Ok(events.len()),
        "the whole chain verifies"
    );
    assert_eq!(
        events[before.len()].prev_hash,
        events[before.len() - 1].hash,
        "linked across the restart"
    );
    assert_eq!(
        cli_audit_list(&broker, &admin),
        events,
        "the CLI prints the same chain"
    );
    assert_tampering_detected(&events);
}

/// Edits, deletions, reordering and re-hashing of the events read through the API all break the chain.
fn assert_tampering_detected(events: &[AuditEvent]) {
    let at = events.len() / 2;
    let position =
        |tampered: &[AuditEvent]| verify_chain(tampered).expect_err("tampering detected");

    let mut edited = events.to_vec();
    edited[at].principal = Some("someone-else".into());
    let error = position(&edited);
    assert_eq!(error.position, at);
    assert!(
        matches!(error.reason, ChainBreak::HashMismatch { .. }),
        "edit: {error}"
    );

    let mut status = events.to_vec();
    status[at].status = 200 + u16::from(status[at].status == 200);
    assert!(matches!(
        position(&status).reason,
        ChainBreak::HashMismatch { .. }
    ));

    let mut deleted = events.to_vec();
    deleted.remove(at);
    let error = position(&deleted);
    assert_eq!(error.position, at);
    assert!(
        matches!(error.reason, ChainBreak::BrokenLink { .. }),
        "deletion: {error}"
    );

    let mut swapped = events.to_vec();
    swapped.swap(at, at + 1);
    assert_eq!(position(&swapped).position, at, "reordering");

    // An edit with a recomputed hash is caught by the next event's link.
    let mut rehashed = events.to_vec();
    rehashed[at].resource.push_str("-edited");
    rehashed[at].hash = rehashed[at].expected_hash();
    let error = position(&rehashed);
    assert_eq!(error.position, at + 1);
    assert!(
        matches!(error.reason, ChainBreak::BrokenLink { .. }),
        "re-hashed edit: {error}"
    );

    let mut first_removed = events.to_vec();
    first_removed.remove(0);
    assert_eq!(
        position(&first_removed).position,
        0,
        "deleting the first event"
    );
}
