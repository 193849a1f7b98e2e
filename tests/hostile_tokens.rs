//! Tokens die with what they stand for, against a real broker: a password change, a revoke-all
//! and a deleted and re-created user each end every earlier token; a re-created user starts with
//! none of the old user's rules; a signing-key rotation keeps earlier tokens valid while new ones
//! carry the new key; and a delegated administrator cannot do any of this to a superuser. Each
//! refusal comes beside the positive control that the same token worked just before.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{BrokerProcess, RawApi, ADMIN_PASSWORD};
use serde_json::{json, Value};

async fn whoami(api: &RawApi, token: &str) -> u16 {
    api.call("GET", "/v1/whoami", Some(token), None)
        .await
        .status
}

async fn create_user(api: &RawApi, admin: &str, name: &str, password: &str) {
    let body = json!({"username": name, "password": password});
    let reply = api
        .call("POST", "/v1/users", Some(admin), Some(&body))
        .await;
    assert_eq!(reply.status, 201, "create {name}: {}", reply.body);
}

async fn grant(api: &RawApi, admin: &str, principal: &str, resource: &str, operation: &str) {
    let body = json!({"principal": principal, "resource": resource, "pattern": "any",
                      "operation": operation, "effect": "allow"});
    let reply = api.call("POST", "/v1/acls", Some(admin), Some(&body)).await;
    assert_eq!(reply.status, 201, "grant: {}", reply.body);
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("header part");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64url")).expect("JSON");
    header["kid"].as_str().expect("kid").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_change_and_a_revoke_all_end_every_earlier_token() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    create_user(&api, &admin, "alice", "alice-password-1").await;
    let first = api.token("alice", "alice-password-1").await;
    let second = api.token("alice", "alice-password-1").await;
    assert_eq!(whoami(&api, &first).await, 200);
    assert_eq!(whoami(&api, &second).await, 200);

    // Alice changes her own password with the first token: both earlier tokens end.
    let body = json!({"password": "alice-password-2"});
    let changed = api
        .call("PUT", "/v1/users/alice/password", Some(&first), Some(&body))
        .await;
    assert_eq!(changed.status, 204, "{}", changed.body);
    for token in [&first, &second] {
        let reply = api.call("GET", "/v1/whoami", Some(token), None).await;
        reply.assert_problem(
            401,
            "log in again",
            "a token from before the password change",
        );
    }
    let third = api.token("alice", "alice-password-2").await;
    assert_eq!(whoami(&api, &third).await, 200, "a new login works");

    // The admin ends all of alice's tokens; alice's admin token is untouched.
    let revoked = api
        .call("POST", "/v1/users/alice/revoke-tokens", Some(&admin), None)
        .await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    let reply = api.call("GET", "/v1/whoami", Some(&third), None).await;
    reply.assert_problem(401, "log in again", "a token from before the revoke-all");
    assert_eq!(whoami(&api, &admin).await, 200, "other users keep theirs");
    let fourth = api.token("alice", "alice-password-2").await;
    assert_eq!(whoami(&api, &fourth).await, 200);

    // A user may end their own tokens, including the one presented.
    let own = api
        .call("POST", "/v1/users/alice/revoke-tokens", Some(&fourth), None)
        .await;
    assert_eq!(own.status, 204, "{}", own.body);
    assert_eq!(whoami(&api, &fourth).await, 401);

    // Each refusal is audited as a rejected token.
    let events = broker.admin().await.audit_log().await.expect("audit log");
    assert!(events
        .iter()
        .any(|event| event.action == "auth.revoke_all" && event.resource == "alice"));
    assert!(events
        .iter()
        .any(|event| event.action == "auth.token_rejected"
            && event
                .detail
                .as_deref()
                .unwrap_or("")
                .contains("log in again")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_created_user_has_neither_the_old_tokens_nor_the_old_rules() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    let topic = json!({"name": "bobs", "partitions": 1});
    let created = api
        .call("POST", "/v1/topics", Some(&admin), Some(&topic))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    create_user(&api, &admin, "bob", "bob-password-1").await;
    grant(&api, &admin, "bob", "topic", "describe").await;
    let old = api.token("bob", "bob-password-1").await;
    let described = api.call("GET", "/v1/topics/bobs", Some(&old), None).await;
    assert_eq!(described.status, 200, "the rule works for the first bob");

    let deleted = api
        .call("DELETE", "/v1/users/bob", Some(&admin), None)
        .await;
    assert_eq!(deleted.status, 204);
    api.call("GET", "/v1/whoami", Some(&old), None)
        .await
        .assert_problem(401, "no longer exists", "a deleted user's token");
    create_user(&api, &admin, "bob", "bob-password-2").await;

    // The old token does not come back with the name, and the old rule is gone.
    api.call("GET", "/v1/whoami", Some(&old), None)
        .await
        .assert_problem(401, "log in again", "the old token of a re-created user");
    let new = api.token("bob", "bob-password-2").await;
    assert_eq!(whoami(&api, &new).await, 200);
    let described = api.call("GET", "/v1/topics/bobs", Some(&new), None).await;
    described.assert_problem(403, "no ACL allows it", "the second bob inherits no rule");
    let acls = api.call("GET", "/v1/acls", Some(&admin), None).await;
    let rules = acls.body["acls"].as_array().expect("acls").clone();
    assert!(
        rules.iter().all(|rule| rule["principal"] != "bob"),
        "deleting bob removed his rules: {rules:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_earlier_tokens_and_signs_new_ones_with_the_new_key() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    let before = kid_of(&admin);

    let keys = api.call("GET", "/v1/auth/keys", Some(&admin), None).await;
    assert_eq!(keys.status, 200, "{}", keys.body);
    assert_eq!(keys.body["keys"].as_array().expect("keys").len(), 1);
    assert!(
        !keys.body.to_string().contains("secret"),
        "secrets never leave: {}",
        keys.body
    );

    // A user without `alter` on the cluster may not rotate.
    create_user(&api, &admin, "carol", "carol-password-1").await;
    let carol = api.token("carol", "carol-password-1").await;
    api.call("POST", "/v1/auth/keys", Some(&carol), None)
        .await
        .assert_problem(403, "no ACL allows it", "rotation by a plain user");

    let rotated = api.call("POST", "/v1/auth/keys", Some(&admin), None).await;
    assert_eq!(rotated.status, 201, "{}", rotated.body);
    let new_kid = rotated.body["kid"].as_str().expect("kid").to_string();
    assert_ne!(new_kid, before);

    assert_eq!(
        whoami(&api, &admin).await,
        200,
        "a token of the old key still works"
    );
    let fresh = api.token("admin", ADMIN_PASSWORD).await;
    assert_eq!(kid_of(&fresh), new_kid, "new tokens carry the new key");
    assert_eq!(whoami(&api, &fresh).await, 200);

    let keys = api.call("GET", "/v1/auth/keys", Some(&fresh), None).await;
    let keys = keys.body["keys"].as_array().expect("keys").clone();
    let old = keys
        .iter()
        .find(|k| k["kid"] == before.as_str())
        .expect("old key listed");
    let new = keys
        .iter()
        .find(|k| k["kid"] == new_kid.as_str())
        .expect("new key listed");
    assert_eq!(old["current"], false);
    assert!(old["verify_until_ms"].as_u64().is_some(), "{old}");
    assert_eq!(new["current"], true);
    assert!(new.get("verify_until_ms").is_none(), "{new}");

    let events = broker.admin().await.audit_log().await.expect("audit log");
    assert!(events
        .iter()
        .any(|e| e.action == "auth.key_rotate" && e.resource == new_kid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delegated_admin_cannot_end_a_superusers_tokens() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    create_user(&api, &admin, "dora", "dora-password-1").await;
    create_user(&api, &admin, "erin", "erin-password-1").await;
    grant(&api, &admin, "dora", "user", "alter").await;
    let dora = api.token("dora", "dora-password-1").await;
    let erin = api.token("erin", "erin-password-1").await;

    // Positive control: `alter` on users lets dora end erin's tokens.
    let reply = api
        .call("POST", "/v1/users/erin/revoke-tokens", Some(&dora), None)
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert_eq!(whoami(&api, &erin).await, 401);

    // But not the superuser's.
    api.call("POST", "/v1/users/admin/revoke-tokens", Some(&dora), None)
        .await
        .assert_problem(
            403,
            "only a superuser",
            "revoke-all of a superuser by a delegate",
        );
    assert_eq!(whoami(&api, &admin).await, 200);
    // Unknown users are a clear 404 for someone allowed to ask.
    api.call("POST", "/v1/users/nobody/revoke-tokens", Some(&admin), None)
        .await
        .assert_problem(404, "does not exist", "revoke-all of an unknown user");
}
