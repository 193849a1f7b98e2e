//! Audited steps: logins, token rejections, authorization denials and admin changes, each checked
//! to add exactly one event with the right fields.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use palisade::audit::AuditDecision;
use serde_json::{json, Value};

use crate::common::RawApi;
use crate::reader::{expect, Auditor};

pub const PASSWORD: &str = "correct-horse-battery";

pub fn login_body(user: &str, password: &str) -> Value {
    json!({"username": user, "password": password})
}

pub fn acl_body(principal: &str, resource: &str, operation: &str) -> Value {
    json!({"principal": principal, "resource": resource, "pattern": "any", "operation": operation, "effect": "allow"})
}

/// The `jti` claim of a token, for the revocation event's resource.
pub fn jti_of(token: &str) -> String {
    let claims = token.split('.').nth(1).expect("claims part");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).expect("b64")).expect("json");
    claims["jti"].as_str().expect("jti").to_string()
}

/// Logins (success, wrong password, unknown user) and token rejections.
pub async fn audit_logins(api: &RawApi, log: &mut Auditor) -> String {
    use AuditDecision::*;
    let admin = log.admin.clone();
    let created = api
        .call(
            "POST",
            "/v1/users",
            Some(&admin),
            Some(&login_body("bob", PASSWORD)),
        )
        .await;
    assert_eq!(created.status, 201);
    log.exactly_one(
        "create user",
        expect("user.create", Some("admin"), "bob", Allow, 200),
    )
    .await;
    let bob = api.token("bob", PASSWORD).await;
    log.exactly_one(
        "login",
        expect("auth.login", Some("bob"), "bob", Success, 200),
    )
    .await;
    let wrong = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(&login_body("bob", "wrong-password")),
        )
        .await;
    assert_eq!(wrong.status, 401);
    log.one_failure(
        "wrong password",
        expect("auth.login", Some("bob"), "bob", Failure, 401),
    )
    .await;
    let ghost = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(&login_body("ghost", "any-password")),
        )
        .await;
    assert_eq!(ghost.status, 401);
    log.one_failure(
        "unknown user",
        expect("auth.login", Some("ghost"), "ghost", Failure, 401),
    )
    .await;
    let parts: Vec<&str> = bob.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(br#"{"sub":"admin"}"#),
        parts[2]
    );
    let rejected = api.call("GET", "/v1/whoami", Some(&tampered), None).await;
    assert_eq!(rejected.status, 401);
    let event = log
        .one_failure(
            "tampered token",
            expect("auth.token_rejected", None, "token", Deny, 401),
        )
        .await;
    assert!(
        event.detail.as_deref().unwrap_or("").contains("signature"),
        "the reason is recorded: {event:?}"
    );
    bob
}

/// Authorization denials, including reading the audit log without the permission.
pub async fn audit_denials(api: &RawApi, log: &mut Auditor, bob: &str) {
    use AuditDecision::*;
    let admin = log.admin.clone();
    let topic = api
        .call(
            "POST",
            "/v1/topics",
            Some(&admin),
            Some(&json!({"name": "audited", "partitions": 1})),
        )
        .await;
    assert_eq!(topic.status, 201);
    log.exactly_one(
        "create topic",
        expect("topic.create", Some("admin"), "audited", Allow, 200),
    )
    .await;
    let produce = json!({"records": [{"value": "v"}]});
    let reply = api
        .call(
            "POST",
            "/v1/topics/audited/messages",
            Some(bob),
            Some(&produce),
        )
        .await;
    assert_eq!(reply.status, 403);
    let event = log
        .exactly_one(
            "produce denied",
            expect("authorize", Some("bob"), "topic:audited", Deny, 403),
        )
        .await;
    assert!(
        event.detail.as_deref().unwrap_or("").contains("Write"),
        "the denied operation is named: {event:?}"
    );
    assert_eq!(
        api.call("GET", "/v1/users", Some(bob), None).await.status,
        403
    );
    log.exactly_one(
        "list users denied",
        expect("authorize", Some("bob"), "user:*", Deny, 403),
    )
    .await;
    let reply = api.call("GET", "/v1/audit", Some(bob), None).await;
    reply.assert_problem(
        403,
        "bob may not Read Audit",
        "audit read without the permission",
    );
    log.exactly_one(
        "audit read denied",
        expect("authorize", Some("bob"), "audit:__audit", Deny, 403),
    )
    .await;
}

/// ACL changes, and reading the log (as a route and as the `__audit` topic) with and without them.
pub async fn audit_acl_changes(api: &RawApi, log: &mut Auditor, bob: &str) {
    use AuditDecision::*;
    let admin = log.admin.clone();
    let topics = api
        .call(
            "POST",
            "/v1/acls",
            Some(&admin),
            Some(&acl_body("bob", "topic", "read")),
        )
        .await;
    assert_eq!(topics.status, 201);
    log.exactly_one(
        "grant topic read",
        expect(
            "acl.create",
            Some("admin"),
            "Allow Read Topic Any for bob",
            Allow,
            200,
        ),
    )
    .await;
    let raw = api
        .call(
            "GET",
            "/v1/topics/__audit/partitions/0/messages",
            Some(bob),
            None,
        )
        .await;
    raw.assert_problem(
        403,
        "Audit",
        "reading __audit as a topic needs the audit permission too",
    );
    log.exactly_one(
        "raw audit read denied",
        expect("authorize", Some("bob"), "audit:__audit", Deny, 403),
    )
    .await;
    let grant = api
        .call(
            "POST",
            "/v1/acls",
            Some(&admin),
            Some(&acl_body("bob", "audit", "read")),
        )
        .await;
    assert_eq!(grant.status, 201);
    let id = grant.body["id"].as_u64().expect("ACL id");
    log.exactly_one(
        "grant audit read",
        expect(
            "acl.create",
            Some("admin"),
            "Allow Read Audit Any for bob",
            Allow,
            200,
        ),
    )
    .await;
    assert_eq!(
        api.call("GET", "/v1/audit", Some(bob), None).await.status,
        200,
        "granted audit read"
    );
    log.none("an allowed audit read").await;
    assert_eq!(
        api.call("DELETE", &format!("/v1/acls/{id}"), Some(&admin), None)
            .await
            .status,
        204
    );
    log.exactly_one(
        "revoke audit read",
        expect("acl.delete", Some("admin"), &id.to_string(), Allow, 200),
    )
    .await;
    assert_eq!(
        api.call("GET", "/v1/audit", Some(bob), None).await.status,
        403,
        "the permission is gone"
    );
    log.exactly_one(
        "audit read denied again",
        expect("authorize", Some("bob"), "audit:__audit", Deny, 403),
    )
    .await;
}

/// Password changes, revocation and deletions.
pub async fn audit_account_changes(api: &RawApi, log: &mut Auditor, bob: &str) {
    use AuditDecision::*;
    let admin = log.admin.clone();
    let password = json!({"password": "another-password"});
    let reply = api
        .call(
            "PUT",
            "/v1/users/bob/password",
            Some(&admin),
            Some(&password),
        )
        .await;
    assert_eq!(reply.status, 204);
    log.exactly_one(
        "admin sets bob's password",
        expect("user.password", Some("admin"), "bob", Allow, 200),
    )
    .await;
    // The change ended bob's earlier token: refused and accounted for; bob logs in again.
    assert_eq!(whoami_status(api, bob).await, 401);
    log.one_failure(
        "bob's token from before the change",
        expect("auth.token_rejected", None, "token", Deny, 401),
    )
    .await;
    let bob = &api.token("bob", "another-password").await;
    log.exactly_one(
        "bob logs in again",
        expect("auth.login", Some("bob"), "bob", Success, 200),
    )
    .await;
    let reply = api
        .call(
            "PUT",
            "/v1/users/bob/password",
            Some(bob),
            Some(&json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, 204);
    log.exactly_one(
        "bob sets his own password",
        expect("user.password", Some("bob"), "bob", Allow, 200),
    )
    .await;
    let bob = &api.token("bob", PASSWORD).await;
    log.exactly_one(
        "bob logs in with the new password",
        expect("auth.login", Some("bob"), "bob", Success, 200),
    )
    .await;
    assert_eq!(
        api.call("POST", "/v1/auth/revoke", Some(bob), None)
            .await
            .status,
        204
    );
    log.exactly_one(
        "revoke",
        expect("auth.revoke", Some("bob"), &jti_of(bob), Allow, 200),
    )
    .await;
    assert_eq!(
        api.call("DELETE", "/v1/topics/audited", Some(&admin), None)
            .await
            .status,
        204
    );
    log.exactly_one(
        "delete topic",
        expect("topic.delete", Some("admin"), "audited", Allow, 200),
    )
    .await;
    assert_eq!(
        api.call("DELETE", "/v1/users/bob", Some(&admin), None)
            .await
            .status,
        204
    );
    log.exactly_one(
        "delete user",
        expect("user.delete", Some("admin"), "bob", Allow, 200),
    )
    .await;
}

async fn whoami_status(api: &RawApi, token: &str) -> u16 {
    api.call("GET", "/v1/whoami", Some(token), None)
        .await
        .status
}
