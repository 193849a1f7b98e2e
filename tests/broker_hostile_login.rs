//! A login with a huge user name is refused with a 400 before it reaches the login limiter, is
//! audited with the name cut to the audit field bound (the first refusal as its own event, the
//! rest in one aggregate), and leaves audited operations working: the audit log keeps accepting
//! events and its chain still verifies.

mod common;

use common::cluster::wait_for;
use common::{BrokerProcess, RawApi};
use palisade::audit::{verify_chain, AUDIT_FIELD_BYTES_MAX};
use palisade::wire::CreateUser;
use serde_json::json;

/// Bytes of the hostile user name: far above any name rule and any audit field.
const HOSTILE_NAME_BYTES: usize = 1024 * 1024;

#[actix_rt::test]
async fn a_huge_login_name_is_refused_bounded_in_the_audit_and_breaks_nothing() {
    let env = [("PALISADE_AUTH_FAILURE_AUDIT_INTERVAL_MS", "500")];
    let broker = BrokerProcess::start_with(&env, "").await;
    let api = RawApi::new(&broker);
    let name = "a".repeat(HOSTILE_NAME_BYTES);
    for _ in 0..3 {
        let body = json!({"username": name, "password": "whatever"});
        let reply = api.call("POST", "/v1/auth/token", None, Some(&body)).await;
        reply.assert_problem(400, "username", "a login with a 1 MiB user name");
    }

    // Audited operations still work: a real login (audited) and an admin change (audited).
    let admin = broker.admin().await;
    admin
        .create_user(&CreateUser {
            username: "carol".to_string(),
            password: "carol-password-1".to_string(),
            superuser: false,
        })
        .await
        .expect("an audited change after the hostile logins");

    // The first refusal is its own event; the other two arrive as one aggregate once the
    // interval is over.
    let events = wait_for("the aggregate of the refused logins", 30, || async {
        let events = admin.audit_log().await.expect("the audit log reads");
        events
            .iter()
            .any(|event| event.action == "auth.login" && event.resource == "aggregate")
            .then_some(events)
    })
    .await;
    verify_chain(&events).expect("the chain still verifies");
    let refused: Vec<_> = events
        .iter()
        .filter(|event| event.action == "auth.login" && event.status == 400)
        .collect();
    assert_eq!(refused.len(), 2, "one event and one aggregate: {refused:?}");
    let single = refused[0];
    let principal = single.principal.as_deref().expect("the name is recorded");
    assert!(
        principal.len() < AUDIT_FIELD_BYTES_MAX + 64,
        "the audited name is cut: {} bytes",
        principal.len()
    );
    assert!(
        principal.contains("bytes cut"),
        "and says so: {principal:.80}"
    );
    let aggregate = refused[1];
    let detail = aggregate.detail.as_deref().expect("aggregate detail");
    assert!(detail.starts_with("count=2 "), "{detail:.200}");
    assert!(
        detail.len() < AUDIT_FIELD_BYTES_MAX + 64,
        "the aggregate is bounded too: {} bytes",
        detail.len()
    );
    assert!(events
        .iter()
        .any(|event| event.action == "user.create" && event.resource == "carol"));
}
