//! The route table of the v1 API for the auth matrix, and the users, topics and ACLs it names.

use serde_json::{json, Value};

use crate::common::{RawApi, RawReply, ADMIN_PASSWORD};

pub const PASSWORD: &str = "correct-horse-battery";
/// A user with no ACL at all.
pub const NOBODY: &str = "nobody";
/// A user holding exactly the ACLs the matrix routes need.
pub const GRANTED: &str = "granted";

/// Who may call a route once authenticated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Access {
    /// Any authenticated user (whoami, revoke, own password, the filtered topic list, producer ids).
    Everyone,
    /// Only a user with the route's ACL.
    Acl,
}

pub struct Route {
    pub method: &'static str,
    /// `{self}` is replaced by the caller's user name.
    pub path: String,
    pub body: Option<Value>,
    pub access: Access,
    /// The status a permitted caller gets.
    pub success: u16,
    /// Log in afresh for permitted calls (revoking must not spend the caller's main token).
    pub fresh_token: bool,
    /// A permitted call ends every token of the caller (a password change, a revoke-all): the
    /// matrix logs in again after it.
    pub ends_tokens: bool,
}

impl Route {
    pub fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Calls the route as `user` (for `{self}`) with `token`; `None` sends no Authorization header.
    pub async fn call(&self, api: &RawApi, user: &str, token: Option<&str>) -> RawReply {
        let path = self.path.replace("{self}", user);
        api.call(self.method, &path, token, self.body.as_ref())
            .await
    }
}

fn route(
    method: &'static str,
    path: &str,
    body: Option<Value>,
    access: Access,
    success: u16,
) -> Route {
    let path = path.to_string();
    Route {
        method,
        path,
        body,
        access,
        success,
        fresh_token: false,
        ends_tokens: false,
    }
}

/// A consumer-group member the permitted caller joined before the matrix runs.
pub struct Fixtures {
    /// An ACL the permitted caller deletes.
    pub acl_id: u64,
    pub member_id: String,
    pub generation: u64,
}

/// Every route of the v1 API that needs a token, with real names filled in.
pub fn protected_routes(fixtures: &Fixtures) -> Vec<Route> {
    let acl_id = fixtures.acl_id;
    let member = &fixtures.member_id;
    let commit = json!({"member_id": member, "generation": fixtures.generation,
                        "offsets": [{"topic": "matrix", "partition": 0, "offset": 0}]});
    use Access::*;
    let produce = json!({"records": [{"value": "matrix record"}]});
    let user = json!({"username": "made-by-granted", "password": PASSWORD});
    let acl = json!({"principal": "someone", "resource": "topic", "pattern": {"literal": "x"},
                     "operation": "read", "effect": "allow"});
    let topic = json!({"name": "matrix-new", "partitions": 1});
    let password = json!({"password": PASSWORD});
    let mut revoke = route("POST", "/v1/auth/revoke", None, Everyone, 204);
    revoke.fresh_token = true;
    let mut own_password = route(
        "PUT",
        "/v1/users/{self}/password",
        Some(password.clone()),
        Everyone,
        204,
    );
    own_password.ends_tokens = true;
    let mut own_revoke_all = route(
        "POST",
        "/v1/users/{self}/revoke-tokens",
        None,
        Everyone,
        204,
    );
    own_revoke_all.ends_tokens = true;
    vec![
        revoke,
        own_revoke_all,
        route("POST", "/v1/users/other/revoke-tokens", None, Acl, 204),
        route("GET", "/v1/auth/keys", None, Acl, 200),
        route("POST", "/v1/auth/keys", None, Acl, 201),
        route("GET", "/v1/audit/head", None, Acl, 200),
        route("GET", "/v1/whoami", None, Everyone, 200),
        route("GET", "/v1/topics", None, Everyone, 200),
        route("POST", "/v1/topics", Some(topic), Acl, 201),
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
        route("POST", "/v1/users", Some(user), Acl, 201),
        route("DELETE", "/v1/users/doomed", None, Acl, 204),
        own_password,
        route("PUT", "/v1/users/other/password", Some(password), Acl, 204),
        route("GET", "/v1/acls", None, Acl, 200),
        route("POST", "/v1/acls", Some(acl), Acl, 201),
        route("DELETE", &format!("/v1/acls/{acl_id}"), None, Acl, 204),
        route("GET", "/v1/audit", None, Acl, 200),
        route("GET", "/v1/cluster", None, Acl, 200),
        route(
            "POST",
            "/v1/cluster/brokers",
            Some(json!({"id": 9, "peer": "127.0.0.1:9"})),
            Acl,
            201,
        ),
        route("POST", "/v1/cluster/brokers/9/decommission", None, Acl, 202),
        route("POST", "/v1/cluster/rebalance", None, Acl, 202),
        route("GET", "/v1/groups", None, Everyone, 200),
        route("GET", "/v1/groups/matrix-g", None, Acl, 200),
        route(
            "POST",
            &format!("/v1/groups/matrix-g/members/{member}/heartbeat"),
            None,
            Acl,
            200,
        ),
        route(
            "GET",
            &format!("/v1/groups/matrix-g/members/{member}/records"),
            None,
            Acl,
            200,
        ),
        // Before the join below, which starts a new generation.
        route(
            "POST",
            "/v1/groups/matrix-g/offsets",
            Some(commit),
            Acl,
            204,
        ),
        route(
            "POST",
            "/v1/groups/matrix-g/members",
            Some(json!({"topics": ["matrix"]})),
            Acl,
            201,
        ),
        route(
            "DELETE",
            &format!("/v1/groups/matrix-g/members/{member}"),
            None,
            Acl,
            204,
        ),
        route("POST", "/v1/producers", None, Everyone, 201),
    ]
}

/// Asserts that every protected route refuses `token` with 401, a Bearer challenge and a problem
/// body whose detail contains `reason`.
pub async fn assert_refused_everywhere(
    api: &RawApi,
    token: Option<&str>,
    reason: &str,
    what: &str,
) {
    let fixtures = Fixtures {
        acl_id: 1,
        member_id: "m-none".into(),
        generation: 1,
    };
    for route in protected_routes(&fixtures) {
        let reply = route.call(api, NOBODY, token).await;
        let context = format!("{what} on {}", route.label());
        reply.assert_problem(401, reason, &context);
        assert_eq!(
            reply.www_authenticate.as_deref(),
            Some("Bearer"),
            "{context}: challenge"
        );
    }
}

pub async fn create_user(api: &RawApi, admin: &str, name: &str) {
    let body = json!({"username": name, "password": PASSWORD});
    let reply = api
        .call("POST", "/v1/users", Some(admin), Some(&body))
        .await;
    assert_eq!(reply.status, 201, "create user {name}: {}", reply.body);
}

/// Creates `effect` `operation` on `resource` matching `pattern` for `principal`; returns its id.
pub async fn create_acl(
    api: &RawApi,
    admin: &str,
    principal: &str,
    resource: &str,
    pattern: Value,
    rule: (&str, &str),
) -> u64 {
    let (operation, effect) = rule;
    let body = json!({"principal": principal, "resource": resource, "pattern": pattern,
                      "operation": operation, "effect": effect});
    let reply = api.call("POST", "/v1/acls", Some(admin), Some(&body)).await;
    assert_eq!(reply.status, 201, "create ACL {body}: {}", reply.body);
    reply.body["id"].as_u64().expect("ACL id")
}

pub async fn create_topic(api: &RawApi, token: &str, name: &str) {
    let body = json!({"name": name, "partitions": 1});
    let reply = api
        .call("POST", "/v1/topics", Some(token), Some(&body))
        .await;
    assert_eq!(reply.status, 201, "create topic {name}: {}", reply.body);
}

/// Topics, users, ACLs and the group member the matrix routes name; returns the admin token too.
pub async fn matrix_fixtures(api: &RawApi) -> (String, Fixtures) {
    let admin = api.token("admin", ADMIN_PASSWORD).await;
    for name in ["matrix", "matrix-doomed"] {
        create_topic(api, &admin, name).await;
    }
    for name in [NOBODY, GRANTED, "doomed", "other"] {
        create_user(api, &admin, name).await;
    }
    let grants: [(&str, &[&str]); 5] = [
        ("group", &["read", "describe"]),
        ("user", &["describe", "create", "delete", "alter"]),
        ("cluster", &["describe", "alter"]),
        ("audit", &["read"]),
        ("topic", &["create", "describe", "delete", "write", "read"]),
    ];
    for (resource, operations) in grants {
        let pattern = if resource == "topic" {
            json!({"prefix": "matrix"})
        } else {
            json!("any")
        };
        for operation in operations {
            create_acl(
                api,
                &admin,
                GRANTED,
                resource,
                pattern.clone(),
                (operation, "allow"),
            )
            .await;
        }
    }
    let literal = json!({"literal": "elsewhere"});
    let deletable = create_acl(api, &admin, "someone", "topic", literal, ("read", "allow")).await;
    let granted = api.token(GRANTED, PASSWORD).await;
    let join = json!({"topics": ["matrix"]});
    let joined = api
        .call(
            "POST",
            "/v1/groups/matrix-g/members",
            Some(&granted),
            Some(&join),
        )
        .await;
    assert_eq!(joined.status, 201, "join: {}", joined.body);
    let fixtures = Fixtures {
        acl_id: deletable,
        member_id: joined.body["member_id"]
            .as_str()
            .expect("member")
            .to_string(),
        generation: joined.body["generation"].as_u64().expect("generation"),
    };
    (admin, fixtures)
}
