//! Authentication is checked on an allowlist of exact public paths: any other path, including a
//! percent-encoded spelling of a route and paths no route matches, needs a token first. The
//! OpenAPI document is one of the public paths.

mod common;

use common::{BrokerProcess, RawApi};

#[actix_rt::test]
async fn only_the_public_paths_answer_without_a_token() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    for path in ["/healthz", "/readyz", "/metrics", "/v1/openapi.json"] {
        let reply = api.send("GET", path, &[], None).await;
        assert_eq!(reply.status, 200, "{path} is public: {}", reply.body);
    }
    for path in [
        "/%761/topics",
        "/v1/topics",
        "/v1/%74opics",
        "/nothing-here",
        "/healthz/",
        "/v1/openapi.json/",
        "/v1/%6Fpenapi.json",
    ] {
        api.send("GET", path, &[], None).await.assert_problem(
            401,
            "token",
            &format!("{path} without a token"),
        );
    }
    // With a token, routing answers as before: a real route, and 404 for no route.
    let token = api.token("admin", common::ADMIN_PASSWORD).await;
    let auth = [("authorization".to_string(), format!("Bearer {token}"))];
    assert_eq!(api.send("GET", "/v1/topics", &auth, None).await.status, 200);
    assert_eq!(
        api.send("GET", "/nothing-here", &auth, None).await.status,
        404
    );
}

/// The OpenAPI document is served without a token, as JSON, and is the one the code generates
/// (the one `docs/openapi.json` holds, see tests/openapi.rs).
#[actix_rt::test]
async fn the_openapi_document_is_served_without_a_token() {
    let broker = BrokerProcess::start().await;
    let api = RawApi::new(&broker);
    let reply = api.send("GET", "/v1/openapi.json", &[], None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type, "application/json");
    let expected: serde_json::Value =
        serde_json::from_str(&palisade::app::openapi_json()).expect("the document is JSON");
    assert_eq!(reply.body, expected);
    assert_eq!(
        reply.body["paths"]["/v1/openapi.json"]["get"]["operationId"],
        "openapi_json"
    );
}
