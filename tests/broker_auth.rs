//! Authentication and authorization through a real broker process over HTTPS: every route against
//! missing, forged, revoked, wrong-audience, wrong-issuer and expired tokens, users without and with
//! the needed ACL, ACL semantics (prefix, deny over allow, deletion) and login rate limiting.

mod common;
#[path = "broker_auth/forge.rs"]
mod forge;
#[path = "broker_auth/routes.rs"]
mod routes;

use common::{BrokerProcess, RawApi, RawReply, ADMIN_PASSWORD};
use forge::{alg_none, claims, claims_with, forge, forged_tokens, kid_of, now_s};
use futures_util::FutureExt;
use routes::*;
use serde_json::{json, Value};

/// Every protected route x {no token, bad signature, `alg: none`, wrong aud, wrong iss, expired,
/// revoked} gives 401; then a user without ACLs and a user with exactly the needed ACLs.
async fn route_matrix(api: &RawApi, admin: &str, fixtures: &Fixtures) {
    let kid = kid_of(admin);
    let revoked = api.token("admin", ADMIN_PASSWORD).await;
    let whoami = api.call("GET", "/v1/whoami", Some(&revoked), None).await;
    assert_eq!(whoami.status, 200, "valid before revocation");
    assert_eq!(
        api.call("POST", "/v1/auth/revoke", Some(&revoked), None)
            .await
            .status,
        204
    );
    let bad_tokens: Vec<(&str, Option<String>, &str)> = vec![
        ("no token", None, "missing bearer token"),
        (
            "bad signature",
            Some(forge(&kid, &claims("admin"))),
            "signature does not verify",
        ),
        (
            "alg none",
            Some(alg_none(&kid, &claims("admin"))),
            "algorithm",
        ),
        (
            "wrong aud",
            Some(forge(
                &kid,
                &claims_with("admin", "aud", json!("elsewhere")),
            )),
            "signature",
        ),
        (
            "wrong iss",
            Some(forge(&kid, &claims_with("admin", "iss", json!("evil")))),
            "signature",
        ),
        (
            "expired",
            Some(forge(
                &kid,
                &claims_with("admin", "exp", json!(now_s() - 60)),
            )),
            "signature",
        ),
        ("revoked", Some(revoked), "revoked"),
    ];
    let mut nobody = api.token(NOBODY, PASSWORD).await;
    let mut granted = api.token(GRANTED, PASSWORD).await;
    let mut checked = 0;
    for route in protected_routes(fixtures) {
        for (what, token, reason) in &bad_tokens {
            let reply = route.call(api, NOBODY, token.as_deref()).await;
            let context = format!("{what} on {}", route.label());
            reply.assert_problem(401, reason, &context);
            assert_eq!(
                reply.www_authenticate.as_deref(),
                Some("Bearer"),
                "{context}"
            );
            checked += 1;
        }
        // The user without ACLs goes first, so a wrongly permitted change would show here.
        for (user, main_token) in [(NOBODY, &mut nobody), (GRANTED, &mut granted)] {
            let token = if route.fresh_token {
                api.token(user, PASSWORD).await
            } else {
                main_token.clone()
            };
            let reply = route.call(api, user, Some(&token)).await;
            if route.ends_tokens && reply.status == route.success {
                let ended = api.call("GET", "/v1/whoami", Some(&token), None).await;
                assert_eq!(
                    ended.status,
                    401,
                    "{user} on {}: tokens ended",
                    route.label()
                );
                *main_token = api.token(user, PASSWORD).await;
            }
            let denied = user == NOBODY && route.access == Access::Acl;
            let context = format!("{user} on {}", route.label());
            if denied {
                reply.assert_problem(403, "nobody may not", &context);
            } else {
                assert_eq!(reply.status, route.success, "{context}: {}", reply.body);
            }
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        34 * (bad_tokens.len() + 2),
        "every route saw every kind of caller"
    );
}

fn topic_names(reply: RawReply) -> Vec<String> {
    let topics = reply.body["topics"].as_array().cloned().unwrap_or_default();
    topics
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_string())
        .collect()
}

/// The topic list is open to every user but shows only what each may describe; probes, metrics and
/// login need no token.
async fn open_routes(api: &RawApi) {
    let nobody = api.token(NOBODY, PASSWORD).await;
    let granted = api.token(GRANTED, PASSWORD).await;
    let hidden = topic_names(api.call("GET", "/v1/topics", Some(&nobody), None).await);
    assert!(hidden.is_empty(), "nobody sees no topic: {hidden:?}");
    let visible = topic_names(api.call("GET", "/v1/topics", Some(&granted), None).await);
    assert_eq!(
        visible,
        ["matrix", "matrix-new"],
        "granted sees its prefix only"
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            api.call("GET", path, None, None).await.status,
            200,
            "{path} needs no token"
        );
    }
}

/// The catalogue of forged tokens, on an open route and on a superuser-only route, plus headers
/// that are not `Bearer <token>` and the token of a user deleted after login.
async fn forged_catalogue(api: &RawApi, admin: &str) {
    let nobody = api.token(NOBODY, PASSWORD).await;
    let forged = forged_tokens(&nobody);
    assert!(
        forged.len() >= 15,
        "at least 15 kinds of forged token, got {}",
        forged.len()
    );
    for case in &forged {
        for path in ["/v1/whoami", "/v1/users"] {
            let reply = api.call("GET", path, Some(&case.token), None).await;
            reply.assert_problem(
                401,
                case.reason,
                &format!("forged token '{}' on {path}", case.kind),
            );
        }
    }
    let basic = format!("Basic {}", forge::b64(b"admin:x"));
    for value in [format!("bearer {nobody}"), basic, nobody.clone()] {
        let header = [("authorization".to_string(), value)];
        let reply = api.send("GET", "/v1/whoami", &header, None).await;
        reply.assert_problem(
            401,
            "Bearer <token>",
            "Authorization without the Bearer scheme",
        );
    }
    create_user(api, admin, "short-lived").await;
    let orphan = api.token("short-lived", PASSWORD).await;
    let deleted = api
        .call("DELETE", "/v1/users/short-lived", Some(admin), None)
        .await;
    assert_eq!(deleted.status, 204);
    let reply = api.call("GET", "/v1/whoami", Some(&orphan), None).await;
    reply.assert_problem(401, "no longer exists", "token of a deleted user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_bad_tokens_and_enforces_acls() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let (admin, fixtures) = matrix_fixtures(&api).await;
    route_matrix(&api, &admin, &fixtures).await;
    open_routes(&api).await;
    forged_catalogue(&api, &admin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validly_signed_tokens_for_another_audience_or_issuer_are_refused() {
    let config = "[auth]\nissuer = \"palisade\"\naudience = \"palisade\"\n";
    let mut broker = BrokerProcess::start_with(&[], config).await;
    let api = RawApi::new(&broker);
    let token = api.token("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&token), None)
            .await
            .status,
        200
    );

    // The same broker data (so the same signing keys) under another audience, then another issuer.
    broker.edit_config("audience = \"palisade\"", "audience = \"elsewhere\"");
    broker.restart().await;
    assert_refused_everywhere(
        &api,
        Some(&token),
        "audience is wrong",
        "token for another audience",
    )
    .await;
    let fresh = api.token("admin", ADMIN_PASSWORD).await;
    let reply = api.call("GET", "/v1/whoami", Some(&fresh), None).await;
    assert_eq!(reply.status, 200, "a token for the new audience works");

    broker.edit_config("audience = \"elsewhere\"", "audience = \"palisade\"");
    broker.edit_config("issuer = \"palisade\"", "issuer = \"other-issuer\"");
    broker.restart().await;
    assert_refused_everywhere(
        &api,
        Some(&token),
        "issuer is wrong",
        "token from another issuer",
    )
    .await;

    // Under the original settings the original token works again: the refusals above were about
    // its claims, not its signature.
    broker.edit_config("issuer = \"other-issuer\"", "issuer = \"palisade\"");
    broker.restart().await;
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&token), None)
            .await
            .status,
        200
    );
    // The checker used above does fail on a token the broker accepts.
    let check = assert_refused_everywhere(&api, Some(&token), "issuer is wrong", "valid token");
    let outcome = std::panic::AssertUnwindSafe(check).catch_unwind().await;
    assert!(
        outcome.is_err(),
        "assert_refused_everywhere must reject an accepted token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validly_signed_token_is_refused_everywhere_once_expired() {
    let mut broker =
        BrokerProcess::start_with(&[], "[auth]\ntoken_ttl_s = 60\nleeway_s = 0\n").await;
    let api = RawApi::new(&broker);
    let token = api.token("admin", ADMIN_PASSWORD).await;
    let whoami = api.call("GET", "/v1/whoami", Some(&token), None).await;
    assert_eq!(whoami.status, 200);
    let expires_at_s = whoami.body["token_expires_at_s"]
        .as_u64()
        .expect("token_expires_at_s");
    assert!(
        expires_at_s <= now_s() + 60,
        "the configured 60 s lifetime is applied"
    );

    // The broker's clock is moved (a test-only switch) instead of waiting out the lifetime:
    // half of it on, the token still works; past it, it is refused everywhere.
    broker.set_env(palisade::app::CLOCK_OFFSET_ENV, Some("30"));
    broker.restart().await;
    let api = RawApi::new(&broker);
    let within = api.call("GET", "/v1/whoami", Some(&token), None).await;
    assert_eq!(
        within.status, 200,
        "30 s into a 60 s lifetime: {}",
        within.body
    );
    let past = (expires_at_s + 1).saturating_sub(now_s()).to_string();
    broker.set_env(palisade::app::CLOCK_OFFSET_ENV, Some(&past));
    broker.restart().await;
    let api = RawApi::new(&broker);
    let refused = api.call("GET", "/v1/whoami", Some(&token), None).await;
    refused.assert_problem(401, "expired", "expired token");
    assert_refused_everywhere(&api, Some(&token), "expired", "expired token").await;
}

async fn produce_status(api: &RawApi, token: &str, topic: &str) -> RawReply {
    let body = json!({"records": [{"value": "v"}]});
    api.call(
        "POST",
        &format!("/v1/topics/{topic}/messages"),
        Some(token),
        Some(&body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_prefix_allows_deny_wins_and_deleting_an_acl_removes_access() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    for name in ["orders.eu", "orders.secret", "ordersx", "payments"] {
        create_topic(&api, &admin, name).await;
    }
    create_user(&api, &admin, "alice").await;
    let alice = api.token("alice", PASSWORD).await;
    let prefix = json!({"prefix": "orders."});
    let allow = create_acl(&api, &admin, "alice", "topic", prefix, ("write", "allow")).await;
    assert_eq!(
        produce_status(&api, &alice, "orders.eu").await.status,
        200,
        "the prefix allows"
    );
    for topic in ["ordersx", "payments"] {
        let reply = produce_status(&api, &alice, topic).await;
        reply.assert_problem(
            403,
            "no ACL allows it",
            &format!("the prefix must not cover {topic}"),
        );
    }
    // The allow covers write only, and only topics.
    let read = api
        .call(
            "GET",
            "/v1/topics/orders.eu/partitions/0/messages",
            Some(&alice),
            None,
        )
        .await;
    read.assert_problem(403, "Read", "write does not imply read");
    let users = api.call("GET", "/v1/users", Some(&alice), None).await;
    users.assert_problem(
        403,
        "no ACL allows it",
        "topic rules grant nothing on users",
    );

    let literal = json!({"literal": "orders.secret"});
    let deny = create_acl(&api, &admin, "alice", "topic", literal, ("write", "deny")).await;
    let reply = produce_status(&api, &alice, "orders.secret").await;
    reply.assert_problem(403, &format!("denied by ACL {deny}"), "deny beats allow");
    assert_eq!(
        produce_status(&api, &alice, "orders.eu").await.status,
        200,
        "the deny is literal"
    );
    let everyone = json!({"prefix": "orders.e"});
    let star = create_acl(&api, &admin, "*", "topic", everyone, ("write", "deny")).await;
    let reply = produce_status(&api, &alice, "orders.eu").await;
    reply.assert_problem(
        403,
        &format!("denied by ACL {star}"),
        "a deny for '*' covers alice",
    );
    assert_eq!(
        api.call("DELETE", &format!("/v1/acls/{star}"), Some(&admin), None)
            .await
            .status,
        204
    );

    let whoami = api.call("GET", "/v1/whoami", Some(&alice), None).await;
    let rules: Vec<Value> = whoami.body["permissions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ids: Vec<u64> = rules
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids, [allow, deny], "whoami lists alice's effective rules");

    assert_eq!(
        api.call("DELETE", &format!("/v1/acls/{allow}"), Some(&admin), None)
            .await
            .status,
        204
    );
    let reply = produce_status(&api, &alice, "orders.eu").await;
    reply.assert_problem(
        403,
        "no ACL allows it",
        "deleting the allow removes access, same token",
    );
    let again = api
        .call("DELETE", &format!("/v1/acls/{allow}"), Some(&admin), None)
        .await;
    assert_eq!(again.status, 404, "a deleted ACL is gone: {}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_are_rate_limited_with_retry_after() {
    let config = "[auth]\nlogin_failures_max = 5\nlogin_window_s = 60\n";
    let broker = BrokerProcess::start_with(&[], config).await;
    let api = RawApi::new(&broker);
    let wrong = json!({"username": "admin", "password": "not-the-password"});
    for attempt in 1..=5 {
        let reply = api.call("POST", "/v1/auth/token", None, Some(&wrong)).await;
        reply.assert_problem(401, "wrong password", &format!("failed attempt {attempt}"));
    }
    let limited = api.call("POST", "/v1/auth/token", None, Some(&wrong)).await;
    limited.assert_problem(429, "retry in", "sixth failed attempt");
    let retry_after = limited.retry_after.as_deref().expect("Retry-After header");
    let retry_after: u64 = retry_after.parse().expect("Retry-After in whole seconds");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After {retry_after} lies within the window"
    );
    // While limited even the right password is refused, so guessing cannot go on.
    let right = json!({"username": "admin", "password": ADMIN_PASSWORD});
    let reply = api.call("POST", "/v1/auth/token", None, Some(&right)).await;
    assert_eq!(
        reply.status, 429,
        "the right password is refused while limited"
    );
    assert!(reply.retry_after.is_some(), "every 429 says when to retry");
    // The address is limited too: another user name from the same client is refused.
    let other = json!({"username": "someone", "password": "whatever-1"});
    let reply = api.call("POST", "/v1/auth/token", None, Some(&other)).await;
    assert_eq!(
        reply.status, 429,
        "the source address is limited: {}",
        reply.body
    );
}
