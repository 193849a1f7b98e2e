//! A delegated user administrator (ACLs `create`, `alter`, `delete` on every user) manages
//! ordinary users but cannot make, remove or take over a superuser; each refusal is a 403 and an
//! audited denial, and the `user.create` event records the superuser flag.

mod common;

use common::{BrokerProcess, RawApi};
use serde_json::json;

#[actix_rt::test]
async fn only_a_superuser_makes_removes_or_takes_over_a_superuser() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", common::ADMIN_PASSWORD).await;
    let delegate = json!({"username": "delegate", "password": "delegate-password-1"});
    let reply = api
        .call("POST", "/v1/users", Some(&admin), Some(&delegate))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    for operation in ["create", "alter", "delete"] {
        let acl = json!({"principal": "delegate", "resource": "user", "pattern": "any",
                         "operation": operation, "effect": "allow"});
        let reply = api.call("POST", "/v1/acls", Some(&admin), Some(&acl)).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let token = api.token("delegate", "delegate-password-1").await;

    let minted =
        json!({"username": "mallory", "password": "mallory-password-1", "superuser": true});
    api.call("POST", "/v1/users", Some(&token), Some(&minted))
        .await
        .assert_problem(403, "only a superuser", "a delegate creating a superuser");
    let password = json!({"password": "taken-over-password-1"});
    api.call(
        "PUT",
        "/v1/users/admin/password",
        Some(&token),
        Some(&password),
    )
    .await
    .assert_problem(
        403,
        "only a superuser",
        "a delegate resetting the admin's password",
    );
    api.call("DELETE", "/v1/users/admin", Some(&token), None)
        .await
        .assert_problem(403, "only a superuser", "a delegate deleting the admin");
    // The admin's password still works, and mallory does not exist.
    api.token("admin", common::ADMIN_PASSWORD).await;
    let users = api.call("GET", "/v1/users", Some(&admin), None).await;
    assert!(
        !users.body.to_string().contains("mallory"),
        "{}",
        users.body
    );

    // Ordinary users are the delegate's to manage.
    let plain = json!({"username": "dave", "password": "dave-password-1"});
    let reply = api
        .call("POST", "/v1/users", Some(&token), Some(&plain))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let reply = api
        .call(
            "PUT",
            "/v1/users/dave/password",
            Some(&token),
            Some(&password),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    // A superuser may create another.
    let second = json!({"username": "root2", "password": "root2-password-1", "superuser": true});
    let reply = api
        .call("POST", "/v1/users", Some(&admin), Some(&second))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);

    let audit = api
        .call(
            "GET",
            "/v1/audit?principal=delegate&decision=deny",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    let denials = audit.body.to_string();
    for target in ["user:mallory", "user:admin"] {
        assert!(
            denials.contains(target),
            "denial of {target} audited: {denials}"
        );
    }
    let created = api
        .call("GET", "/v1/audit?action=user.create", Some(&admin), None)
        .await;
    let created = created.body.to_string();
    assert!(created.contains("superuser: false"), "{created}");
    assert!(created.contains("superuser: true"), "{created}");
}
