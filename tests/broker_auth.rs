//! Authentication and authorization through a real broker process over HTTPS: every route against
//! missing, forged, revoked, wrong-audience, wrong-issuer and expired tokens, users without and with
//! the needed ACL, ACL semantics (prefix, deny over allow, deletion) and login rate limiting.

mod common;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::{BrokerProcess, RawApi, ADMIN_PASSWORD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

const PASSWORD: &str = "correct-horse-battery";
const NOBODY: &str = "nobody";
const GRANTED: &str = "granted";

/// Who may call a route once authenticated.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Access {
    /// Any authenticated user (whoami, revoke, own password, the filtered topic list).
    Everyone,
    /// Only a user with the route's ACL.
    Acl,
    /// Specified but not built: authenticated users get 501.
    Unbuilt,
}

struct Route {
    method: &'static str,
    /// `{self}` is replaced by the caller's user name.
    path: String,
    body: Option<Value>,
    access: Access,
    /// The status a permitted caller gets.
    success: u16,
    /// Log in afresh for permitted calls (revoking must not spend the caller's main token).
    fresh_token: bool,
}

fn route(
    method: &'static str,
    path: &str,
    body: Option<Value>,
    access: Access,
    success: u16,
) -> Route {
    Route {
        method,
        path: path.to_string(),
        body,
        access,
        success,
        fresh_token: false,
    }
}

/// Every route of the v1 API that needs a token, with real names filled in. `acl_id` is an ACL the
/// permitted caller deletes.
fn protected_routes(acl_id: u64) -> Vec<Route> {
    use Access::*;
    let produce = json!({"records": [{"value": "matrix record"}]});
    let new_user = json!({"username": "made-by-granted", "password": PASSWORD});
    let new_acl = json!({"principal": "someone", "resource": "topic", "pattern": {"literal": "x"},
                         "operation": "read", "effect": "allow"});
    let mut revoke = route("POST", "/v1/auth/revoke", None, Everyone, 204);
    revoke.fresh_token = true;
    vec![
        revoke,
        route("GET", "/v1/whoami", None, Everyone, 200),
        route("GET", "/v1/topics", None, Everyone, 200),
        route(
            "POST",
            "/v1/topics",
            Some(json!({"name": "matrix-new", "partitions": 1})),
            Acl,
            201,
        ),
        route("GET", "/v1/topics/matrix", None, Acl, 200),
        route("DELETE", "/v1/topics/matrix-doomed", None, Acl, 204),
        route(
            "POST",
            "/v1/topics/matrix/messages",
            Some(produce),
            Acl,
            200,
        ),
        route(
            "GET",
            "/v1/topics/matrix/partitions/0/messages?offset=0",
            None,
            Acl,
            200,
        ),
        route("GET", "/v1/users", None, Acl, 200),
        route("POST", "/v1/users", Some(new_user), Acl, 201),
        route("DELETE", "/v1/users/doomed", None, Acl, 204),
        route(
            "PUT",
            "/v1/users/{self}/password",
            Some(json!({"password": PASSWORD})),
            Everyone,
            204,
        ),
        route(
            "PUT",
            "/v1/users/other/password",
            Some(json!({"password": PASSWORD})),
            Acl,
            204,
        ),
        route("GET", "/v1/acls", None, Acl, 200),
        route("POST", "/v1/acls", Some(new_acl), Acl, 201),
        route("DELETE", &format!("/v1/acls/{acl_id}"), None, Acl, 204),
        route("GET", "/v1/audit", None, Acl, 200),
        route("GET", "/v1/cluster", None, Acl, 200),
        route("POST", "/v1/cluster/rebalance", None, Unbuilt, 501),
        route("GET", "/v1/groups", None, Unbuilt, 501),
        route("POST", "/v1/groups/g1/join", None, Unbuilt, 501),
        route("GET", "/v1/producers", None, Unbuilt, 501),
    ]
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn part(value: &Value) -> String {
    b64(&serde_json::to_vec(value).expect("JSON"))
}

fn sign(message: &str, secret: &[u8], algorithm: Algorithm) -> String {
    let key = EncodingKey::from_secret(secret).expect("HMAC key");
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, algorithm).expect("sign");
    format!("{message}.{signature}")
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(sub: &str) -> Value {
    let now = now_s();
    json!({"sub": sub, "iss": "palisade", "aud": "palisade", "exp": now + 600, "nbf": now - 5,
           "iat": now - 5, "jti": "00112233445566778899aabbccddeeff"})
}

/// Signs `claims` as the broker would, but with a secret the broker does not have.
fn forge(kid: &str, claims: &Value) -> String {
    let header = json!({"typ": "JWT", "alg": "HS256", "kid": kid});
    sign(
        &format!("{}.{}", part(&header), part(claims)),
        b"thirty-two-bytes-of-attacker-key",
        Algorithm::HS256,
    )
}

/// The `kid` of a real token (the header is public).
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("header part");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    header["kid"].as_str().expect("kid").to_string()
}

/// Replaces the claims part of a real token, keeping its header and signature.
fn with_claims(token: &str, claims: &Value) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    format!("{}.{}.{}", parts[0], part(claims), parts[2])
}

/// At least 15 kinds of forged or malformed token, each with a fragment of the expected 401 detail.
/// `real` is a valid token of `nobody`.
fn forged_tokens(real: &str) -> Vec<(&'static str, String, &'static str)> {
    let kid = kid_of(real);
    let admin = claims("admin");
    let header = |value: Value| part(&value);
    let signed_header = |value: Value| {
        sign(
            &format!("{}.{}", part(&value), part(&admin)),
            b"thirty-two-bytes-of-attacker-key",
            Algorithm::HS256,
        )
    };
    let mut expired = admin.clone();
    expired["exp"] = json!(now_s() - 3600);
    let mut wrong_aud = admin.clone();
    wrong_aud["aud"] = json!("elsewhere");
    let mut wrong_iss = admin.clone();
    wrong_iss["iss"] = json!("evil");
    let mut missing_jti = admin.clone();
    missing_jti.as_object_mut().expect("object").remove("jti");
    let real_claims: Value = {
        let text = URL_SAFE_NO_PAD
            .decode(real.split('.').nth(1).expect("claims"))
            .expect("b64");
        serde_json::from_slice(&text).expect("json")
    };
    let mut escalated = real_claims.clone();
    escalated["sub"] = json!("admin");
    let mut extended = real_claims.clone();
    extended["exp"] = json!(real_claims["exp"].as_u64().expect("exp") + 86_400);
    let real_parts: Vec<&str> = real.split('.').collect();
    // Change the first signature character: it carries whole bits, so the result is still base64url.
    let mut flipped = real_parts[2].to_string();
    let first = if flipped.starts_with('A') { "B" } else { "A" };
    flipped.replace_range(..1, first);
    vec![
        ("empty", String::new(), "Bearer <token>"),
        ("garbage", "not-a-token".into(), "three parts"),
        (
            "two parts",
            format!("{}.{}", real_parts[0], real_parts[1]),
            "three parts",
        ),
        ("four parts", format!("{real}.extra"), "three parts"),
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                header(json!({"alg": "none", "kid": kid})),
                part(&admin)
            ),
            "algorithm",
        ),
        (
            "alg None spelled oddly",
            format!(
                "{}.{}.",
                header(json!({"alg": "None", "kid": kid})),
                part(&admin)
            ),
            "algorithm",
        ),
        (
            "alg HS512 with a known kid",
            sign(
                &format!(
                    "{}.{}",
                    header(json!({"alg": "HS512", "kid": kid})),
                    part(&admin)
                ),
                b"thirty-two-bytes-of-attacker-key",
                Algorithm::HS512,
            ),
            "algorithm",
        ),
        (
            "alg RS256 header",
            format!(
                "{}.{}.c2ln",
                header(json!({"alg": "RS256", "kid": kid})),
                part(&admin)
            ),
            "algorithm",
        ),
        (
            "no kid",
            signed_header(json!({"alg": "HS256", "typ": "JWT"})),
            "no kid",
        ),
        (
            "unknown kid",
            forge("no-such-key", &admin),
            "unknown signing key",
        ),
        (
            "known kid, attacker secret",
            forge(&kid, &admin),
            "signature",
        ),
        (
            "crit extension",
            signed_header(json!({"alg": "HS256", "kid": kid, "crit": ["exp"]})),
            "crit",
        ),
        (
            "typ not JWT",
            signed_header(json!({"alg": "HS256", "kid": kid, "typ": "JWE"})),
            "typ",
        ),
        (
            "header not base64url",
            format!("@@@.{}.{}", real_parts[1], real_parts[2]),
            "header is not base64url",
        ),
        (
            "header not JSON",
            format!("{}.{}.{}", b64(b"not json"), real_parts[1], real_parts[2]),
            "header is not a json",
        ),
        (
            "claims of nobody raised to admin",
            with_claims(real, &escalated),
            "signature",
        ),
        (
            "expiry extended by a day",
            with_claims(real, &extended),
            "signature",
        ),
        (
            "signature removed",
            format!("{}.{}.", real_parts[0], real_parts[1]),
            "signature",
        ),
        (
            "signature altered",
            format!("{}.{}.{flipped}", real_parts[0], real_parts[1]),
            "signature",
        ),
        (
            "signature not base64url",
            format!("{}.{}.***", real_parts[0], real_parts[1]),
            "base64url",
        ),
        (
            "expired, attacker secret",
            forge(&kid, &expired),
            "signature",
        ),
        (
            "wrong aud, attacker secret",
            forge(&kid, &wrong_aud),
            "signature",
        ),
        (
            "wrong iss, attacker secret",
            forge(&kid, &wrong_iss),
            "signature",
        ),
        (
            "missing jti, attacker secret",
            forge(&kid, &missing_jti),
            "signature",
        ),
        (
            "oversized",
            format!("{}.{}.{}", real_parts[0], "A".repeat(9000), real_parts[2]),
            "at most 8192",
        ),
    ]
}

/// Calls `route` as `user` (for `{self}`) with `token`; `None` sends no Authorization header.
async fn call(api: &RawApi, route: &Route, user: &str, token: Option<&str>) -> common::RawReply {
    let path = route.path.replace("{self}", user);
    api.call(route.method, &path, token, route.body.as_ref())
        .await
}

/// Asserts that every protected route refuses `token` with 401, a Bearer challenge and a problem
/// body whose detail contains `reason`.
async fn assert_refused_everywhere(api: &RawApi, token: Option<&str>, reason: &str, what: &str) {
    for route in protected_routes(1) {
        let reply = call(api, &route, NOBODY, token).await;
        let context = format!("{what} on {} {}", route.method, route.path);
        reply.assert_problem(401, reason, &context);
        assert_eq!(
            reply.www_authenticate.as_deref(),
            Some("Bearer"),
            "{context}: challenge"
        );
    }
}

async fn create_user(api: &RawApi, admin: &str, name: &str) {
    let reply = api
        .call(
            "POST",
            "/v1/users",
            Some(admin),
            Some(&json!({"username": name, "password": PASSWORD})),
        )
        .await;
    assert_eq!(reply.status, 201, "create user {name}: {}", reply.body);
}

async fn create_acl(
    api: &RawApi,
    admin: &str,
    principal: &str,
    resource: &str,
    pattern: Value,
    operation: &str,
    effect: &str,
) -> u64 {
    let body = json!({"principal": principal, "resource": resource, "pattern": pattern, "operation": operation, "effect": effect});
    let reply = api.call("POST", "/v1/acls", Some(admin), Some(&body)).await;
    assert_eq!(reply.status, 201, "create ACL {body}: {}", reply.body);
    reply.body["id"].as_u64().expect("ACL id")
}

async fn create_topic(api: &RawApi, token: &str, name: &str) {
    let reply = api
        .call(
            "POST",
            "/v1/topics",
            Some(token),
            Some(&json!({"name": name, "partitions": 1})),
        )
        .await;
    assert_eq!(reply.status, 201, "create topic {name}: {}", reply.body);
}

/// Topics, users and ACLs the matrix routes name; returns (admin token, id of a deletable ACL).
async fn matrix_fixtures(api: &RawApi) -> (String, u64) {
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    for name in ["matrix", "matrix-doomed"] {
        create_topic(api, &admin, name).await;
    }
    for name in [NOBODY, GRANTED, "doomed", "other"] {
        create_user(api, &admin, name).await;
    }
    for operation in ["create", "describe", "delete", "write", "read"] {
        create_acl(
            api,
            &admin,
            GRANTED,
            "topic",
            json!({"prefix": "matrix"}),
            operation,
            "allow",
        )
        .await;
    }
    for operation in ["describe", "create", "delete", "alter"] {
        create_acl(
            api,
            &admin,
            GRANTED,
            "user",
            json!("any"),
            operation,
            "allow",
        )
        .await;
    }
    for operation in ["describe", "alter"] {
        create_acl(
            api,
            &admin,
            GRANTED,
            "cluster",
            json!("any"),
            operation,
            "allow",
        )
        .await;
    }
    create_acl(api, &admin, GRANTED, "audit", json!("any"), "read", "allow").await;
    let deletable = create_acl(
        api,
        &admin,
        "someone",
        "topic",
        json!({"literal": "elsewhere"}),
        "read",
        "allow",
    )
    .await;
    (admin, deletable)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_bad_tokens_and_enforces_acls() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let (admin, deletable_acl) = matrix_fixtures(&api).await;
    let nobody = api.token(NOBODY, PASSWORD).await;
    let granted = api.token(GRANTED, PASSWORD).await;
    let kid = kid_of(&admin);

    // A revoked superuser token is refused everywhere.
    let revoked = api.token("admin", ADMIN_PASSWORD).await;
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&revoked), None)
            .await
            .status,
        200,
        "valid before revocation"
    );
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
            Some(format!(
                "{}.{}.",
                part(&json!({"alg": "none", "kid": kid})),
                part(&claims("admin"))
            )),
            "algorithm",
        ),
        (
            "wrong aud",
            Some(forge(&kid, &{
                let mut c = claims("admin");
                c["aud"] = json!("elsewhere");
                c
            })),
            "signature",
        ),
        (
            "wrong iss",
            Some(forge(&kid, &{
                let mut c = claims("admin");
                c["iss"] = json!("evil");
                c
            })),
            "signature",
        ),
        (
            "expired",
            Some(forge(&kid, &{
                let mut c = claims("admin");
                c["exp"] = json!(now_s() - 60);
                c
            })),
            "signature",
        ),
        ("revoked", Some(revoked.clone()), "revoked"),
    ];
    let mut checked = 0;
    for route in protected_routes(deletable_acl) {
        let label = format!("{} {}", route.method, route.path);
        for (what, token, reason) in &bad_tokens {
            let reply = call(&api, &route, NOBODY, token.as_deref()).await;
            reply.assert_problem(401, reason, &format!("{what} on {label}"));
            assert_eq!(
                reply.www_authenticate.as_deref(),
                Some("Bearer"),
                "{what} on {label}"
            );
            checked += 1;
        }
        for (user, token) in [(NOBODY, &nobody), (GRANTED, &granted)] {
            let token = if route.fresh_token {
                api.token(user, PASSWORD).await
            } else {
                token.clone()
            };
            let reply = call(&api, &route, user, Some(&token)).await;
            let expected = if user == NOBODY && route.access == Access::Acl {
                403
            } else {
                route.success
            };
            assert_eq!(reply.status, expected, "{user} on {label}: {}", reply.body);
            if expected == 403 {
                reply.assert_problem(
                    403,
                    &format!("{NOBODY} may not"),
                    &format!("{user} on {label}"),
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, protected_routes(0).len() * (bad_tokens.len() + 2));

    // The topic list is open to every user but shows only what each may describe.
    let names = |reply: common::RawReply| -> Vec<String> {
        reply.body["topics"]
            .as_array()
            .expect("topics")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_string())
            .collect()
    };
    assert!(
        names(api.call("GET", "/v1/topics", Some(&nobody), None).await).is_empty(),
        "nobody sees no topic"
    );
    let visible = names(api.call("GET", "/v1/topics", Some(&granted), None).await);
    assert_eq!(
        visible,
        vec!["matrix".to_string(), "matrix-new".to_string()],
        "granted sees its prefix only"
    );

    // Routes without a token: probes, metrics and login.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            api.call("GET", path, None, None).await.status,
            200,
            "{path} needs no token"
        );
    }
    let login = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(&json!({"username": NOBODY, "password": PASSWORD})),
        )
        .await;
    assert_eq!(login.status, 200, "login needs no token");

    // The catalogue of forged tokens, on an open route and on a superuser-only route.
    let forged = forged_tokens(&nobody);
    assert!(forged.len() >= 15, "at least 15 kinds of forged token");
    for (kind, token, reason) in &forged {
        for path in ["/v1/whoami", "/v1/users"] {
            let reply = api.call("GET", path, Some(token), None).await;
            reply.assert_problem(401, reason, &format!("forged token '{kind}' on {path}"));
        }
    }
    // Header shapes other than "Bearer <token>" are refused too.
    for value in [
        format!("bearer {nobody}"),
        format!("Basic {}", b64(b"admin:x")),
        nobody.clone(),
    ] {
        let reply = api
            .send(
                "GET",
                "/v1/whoami",
                &[("authorization".into(), value)],
                None,
            )
            .await;
        reply.assert_problem(
            401,
            "Bearer <token>",
            "authorization header without the Bearer scheme",
        );
    }
    // A token of a user deleted since it was issued is refused.
    create_user(&api, &admin, "short-lived").await;
    let orphan = api.token("short-lived", PASSWORD).await;
    assert_eq!(
        api.call("DELETE", "/v1/users/short-lived", Some(&admin), None)
            .await
            .status,
        204
    );
    api.call("GET", "/v1/whoami", Some(&orphan), None)
        .await
        .assert_problem(401, "no longer exists", "deleted user's token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validly_signed_tokens_for_another_audience_or_issuer_are_refused() {
    let mut broker = BrokerProcess::start_with(
        &[],
        "[auth]\nissuer = \"palisade\"\naudience = \"palisade\"\n",
    )
    .await;
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
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&fresh), None)
            .await
            .status,
        200,
        "a token for the new audience works"
    );

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

    // Back to the original settings the original token is accepted again: the refusals above were
    // about its claims, not its signature.
    broker.edit_config("issuer = \"other-issuer\"", "issuer = \"palisade\"");
    broker.restart().await;
    assert_eq!(
        api.call("GET", "/v1/whoami", Some(&token), None)
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validly_signed_token_is_refused_everywhere_once_expired() {
    let broker = BrokerProcess::start_with(&[], "[auth]\ntoken_ttl_s = 60\nleeway_s = 0\n").await;
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

    // Poll until the broker refuses the token, bounded by the expiry plus a margin.
    let deadline = Instant::now() + Duration::from_secs(expires_at_s.saturating_sub(now_s()) + 20);
    let refused = loop {
        let reply = api.call("GET", "/v1/whoami", Some(&token), None).await;
        if reply.status != 200 {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "token still accepted 20 s after its expiry"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(now_s() >= expires_at_s, "refused only once expired");
    refused.assert_problem(401, "expired", "expired token");
    assert_refused_everywhere(&api, Some(&token), "expired", "expired token").await;
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
    let produce = json!({"records": [{"value": "v"}]});
    let write = |topic: &str| format!("/v1/topics/{topic}/messages");

    let allow = create_acl(
        &api,
        &admin,
        "alice",
        "topic",
        json!({"prefix": "orders."}),
        "write",
        "allow",
    )
    .await;
    assert_eq!(
        api.call("POST", &write("orders.eu"), Some(&alice), Some(&produce))
            .await
            .status,
        200,
        "prefix allows"
    );
    for topic in ["ordersx", "payments"] {
        let reply = api
            .call("POST", &write(topic), Some(&alice), Some(&produce))
            .await;
        reply.assert_problem(
            403,
            "no ACL allows it",
            &format!("prefix must not cover {topic}"),
        );
    }
    // The allow covers write only, and only topics.
    api.call(
        "GET",
        "/v1/topics/orders.eu/partitions/0/messages",
        Some(&alice),
        None,
    )
    .await
    .assert_problem(403, "Read", "write does not imply read");
    api.call("GET", "/v1/users", Some(&alice), None)
        .await
        .assert_problem(
            403,
            "no ACL allows it",
            "topic rules grant nothing on users",
        );

    let deny = create_acl(
        &api,
        &admin,
        "alice",
        "topic",
        json!({"literal": "orders.secret"}),
        "write",
        "deny",
    )
    .await;
    let reply = api
        .call(
            "POST",
            &write("orders.secret"),
            Some(&alice),
            Some(&produce),
        )
        .await;
    reply.assert_problem(403, &format!("denied by ACL {deny}"), "deny beats allow");
    assert_eq!(
        api.call("POST", &write("orders.eu"), Some(&alice), Some(&produce))
            .await
            .status,
        200,
        "the deny is literal"
    );
    // A wildcard-principal deny applies to alice as well.
    let star = create_acl(
        &api,
        &admin,
        "*",
        "topic",
        json!({"prefix": "orders.e"}),
        "write",
        "deny",
    )
    .await;
    api.call("POST", &write("orders.eu"), Some(&alice), Some(&produce))
        .await
        .assert_problem(403, &format!("denied by ACL {star}"), "'*' deny");
    assert_eq!(
        api.call("DELETE", &format!("/v1/acls/{star}"), Some(&admin), None)
            .await
            .status,
        204
    );

    let whoami = api.call("GET", "/v1/whoami", Some(&alice), None).await;
    let ids: Vec<u64> = whoami.body["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .map(|r| r["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(
        ids,
        vec![allow, deny],
        "whoami lists alice's effective rules"
    );

    assert_eq!(
        api.call("DELETE", &format!("/v1/acls/{allow}"), Some(&admin), None)
            .await
            .status,
        204
    );
    let reply = api
        .call("POST", &write("orders.eu"), Some(&alice), Some(&produce))
        .await;
    reply.assert_problem(
        403,
        "no ACL allows it",
        "deleting the allow removes access with the same token",
    );
    let again = api
        .call("DELETE", &format!("/v1/acls/{allow}"), Some(&admin), None)
        .await;
    assert_eq!(again.status, 404, "a deleted ACL is gone: {}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_passwords_are_rate_limited_with_retry_after() {
    let broker =
        BrokerProcess::start_with(&[], "[auth]\nlogin_failures_max = 5\nlogin_window_s = 60\n")
            .await;
    let api = RawApi::new(&broker);
    let wrong = json!({"username": "admin", "password": "not-the-password"});
    for attempt in 1..=5 {
        let reply = api.call("POST", "/v1/auth/token", None, Some(&wrong)).await;
        reply.assert_problem(401, "wrong password", &format!("failed attempt {attempt}"));
    }
    let limited = api.call("POST", "/v1/auth/token", None, Some(&wrong)).await;
    limited.assert_problem(429, "retry in", "sixth failed attempt");
    let retry_after: u64 = limited
        .retry_after
        .as_deref()
        .expect("Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After {retry_after} lies within the window"
    );
    // While limited, even the right password is refused: guessing cannot continue.
    let right = json!({"username": "admin", "password": ADMIN_PASSWORD});
    let reply = api.call("POST", "/v1/auth/token", None, Some(&right)).await;
    assert_eq!(
        reply.status, 429,
        "the correct password is refused while limited"
    );
    assert!(reply.retry_after.is_some());
    // The address is limited too, so another user name from the same client is refused.
    let other = api
        .call(
            "POST",
            "/v1/auth/token",
            None,
            Some(&json!({"username": "someone", "password": "whatever-1"})),
        )
        .await;
    assert_eq!(
        other.status, 429,
        "the source address is limited: {}",
        other.body
    );
}
