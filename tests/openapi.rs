//! The OpenAPI document (`GET /v1/openapi.json`) against the code it is generated from.
//!
//! - `docs/openapi.json` is the generated document, byte for byte. After changing a route or a
//!   wire type, regenerate it with `PALISADE_WRITE_OPENAPI=1 cargo test --test openapi`.
//! - Every route that `src/http/mod.rs` registers is in the document with its method, and the
//!   document has no operation that is not registered (checked on a planted gap first).
//! - Authenticated operations carry the bearer requirement and answer 401; public ones carry
//!   none. Every problem answer is `application/problem+json` with the problem schema.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

/// Paths served without a token (`PUBLIC_PATHS` in `src/http/extract.rs`).
const PUBLIC: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/auth/token",
    "/v1/openapi.json",
];

/// The environment variable that makes the first test rewrite `docs/openapi.json`.
const WRITE_ENV: &str = "PALISADE_WRITE_OPENAPI";

fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

fn generated() -> Value {
    serde_json::from_str(&palisade::app::openapi_json()).expect("the document is JSON")
}

#[test]
fn the_committed_document_is_the_generated_one() {
    let path = repo_file("docs/openapi.json");
    let fresh = palisade::app::openapi_json();
    if std::env::var_os(WRITE_ENV).is_some_and(|value| value == "1") {
        std::fs::write(&path, &fresh).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(line) = first_difference(&committed, &fresh) {
        panic!(
            "docs/openapi.json differs from the document the code generates (first at line \
             {line}); regenerate it with `{WRITE_ENV}=1 cargo test --test openapi` and commit it"
        );
    }
}

/// The first line (from 1) where `committed` and `fresh` differ, if they differ at all.
fn first_difference(committed: &str, fresh: &str) -> Option<usize> {
    if committed == fresh {
        return None;
    }
    let line = committed
        .lines()
        .zip(fresh.lines())
        .position(|(old, new)| old != new)
        .unwrap_or_else(|| committed.lines().count().min(fresh.lines().count()));
    Some(line + 1)
}

/// The comparison on planted copies: a changed line, a missing tail, a missing final newline.
#[test]
fn the_comparison_reports_a_stale_copy() {
    let fresh = palisade::app::openapi_json();
    assert_eq!(first_difference(&fresh, &fresh), None);
    let changed = fresh.replacen("\"3.2.0\"", "\"3.1.0\"", 1);
    assert_eq!(first_difference(&changed, &fresh), Some(2));
    let cut: String = fresh
        .lines()
        .take(10)
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(first_difference(&cut, &fresh), Some(11));
    assert!(first_difference(fresh.trim_end(), &fresh).is_some());
    assert_eq!(first_difference("", &fresh), Some(1));
}

/// `(METHOD, path)` of every `.route("path", web::method()...)` in the source of `configure`.
fn registered_routes(source: &str) -> BTreeSet<(String, String)> {
    let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    let mut routes = BTreeSet::new();
    for piece in compact.split(".route(\"").skip(1) {
        let (path, rest) = piece.split_once('"').expect("a route path literal ends");
        let rest = rest
            .strip_prefix(",web::")
            .unwrap_or_else(|| panic!("route {path}: expected `, web::<method>()`"));
        let (method, _) = rest.split_once("()").expect("a method call");
        routes.insert((method.to_uppercase(), path.to_string()));
    }
    routes
}

/// `(METHOD, path)` of every operation in the document.
fn documented_routes(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    let mut routes = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&&**method) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

/// What one side has and the other lacks, as readable lines.
fn route_gaps(source: &str, document: &Value) -> Vec<String> {
    let registered = registered_routes(source);
    let documented = documented_routes(document);
    let missing = registered
        .difference(&documented)
        .map(|(method, path)| format!("{method} {path} is registered but not documented"));
    let extra = documented
        .difference(&registered)
        .map(|(method, path)| format!("{method} {path} is documented but not registered"));
    missing.chain(extra).collect()
}

fn http_source() -> String {
    std::fs::read_to_string(repo_file("src/http/mod.rs")).expect("read src/http/mod.rs")
}

#[test]
fn every_registered_route_is_documented_with_its_method() {
    let gaps = route_gaps(&http_source(), &generated());
    assert!(
        gaps.is_empty(),
        "annotate each handler with #[utoipa::path] and list it in src/http/openapi.rs:\n{}",
        gaps.join("\n")
    );
}

/// The route check on planted gaps: an operation taken out of the document, and a route added
/// to the source, are each reported; the parser finds the routes in the first place.
#[test]
fn the_route_check_reports_a_planted_gap() {
    let source = http_source();
    let routes = registered_routes(&source);
    assert!(routes.len() >= 37, "the parser found only {routes:?}");
    assert!(routes.contains(&("DELETE".into(), "/v1/topics/{topic}".into())));

    let mut document = generated();
    let item = document["paths"]["/v1/topics/{topic}"]
        .as_object_mut()
        .expect("the topic path");
    item.remove("delete").expect("a delete operation");
    assert_eq!(
        route_gaps(&source, &document),
        vec!["DELETE /v1/topics/{topic} is registered but not documented".to_string()]
    );

    let planted = source.replace(
        ".route(\"/healthz\",",
        ".route(\"/v1/planted\", web::patch().to(admin::healthz))\n        .route(\"/healthz\",",
    );
    assert_ne!(planted, source, "the planted route went in");
    assert_eq!(
        route_gaps(&planted, &generated()),
        vec!["PATCH /v1/planted is registered but not documented".to_string()]
    );
}

/// Every operation of the document with its path and method.
fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            found.push((method.clone(), path.clone(), operation));
        }
    }
    found
}

#[test]
fn authenticated_operations_need_the_bearer_token_and_public_ones_do_not() {
    let document = generated();
    assert_eq!(document["openapi"], "3.2.0");
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    assert_eq!(scheme["bearerFormat"], "JWT", "{scheme}");
    let bearer: Value = serde_json::json!([{ "bearer": [] }]);
    for (method, path, operation) in operations(&document) {
        let context = format!("{method} {path}");
        let unauthenticated = &operation["responses"]["401"];
        if PUBLIC.contains(&path.as_str()) {
            assert!(operation.get("security").is_none(), "{context} is public");
        } else {
            assert_eq!(operation["security"], bearer, "{context}");
            assert!(unauthenticated.is_object(), "{context} answers 401");
            assert!(
                unauthenticated["headers"]["WWW-Authenticate"].is_object(),
                "{context}"
            );
        }
    }
}

#[test]
fn every_problem_answer_is_problem_json() {
    let document = generated();
    let mut problems = 0;
    for (method, path, operation) in operations(&document) {
        let responses = operation["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|status| status.starts_with('2')),
            "{method} {path} has a success answer"
        );
        for (status, response) in responses {
            if status.starts_with('2') {
                continue;
            }
            let content = response["content"].as_object().expect("problem content");
            let keys: Vec<&String> = content.keys().collect();
            assert_eq!(
                keys,
                ["application/problem+json"],
                "{method} {path} {status}"
            );
            let schema = &content["application/problem+json"]["schema"]["$ref"];
            assert_eq!(
                schema, "#/components/schemas/Problem",
                "{method} {path} {status}"
            );
            problems += 1;
        }
    }
    assert!(problems > 100, "only {problems} problem answers");
}

#[test]
fn the_event_stream_has_typed_items() {
    let document = generated();
    let fetch = &document["paths"]["/v1/topics/{topic}/partitions/{partition}/messages"]["get"];
    let content = &fetch["responses"]["200"]["content"];
    assert_eq!(
        content["application/json"]["schema"]["$ref"],
        "#/components/schemas/FetchResponse"
    );
    let items = &content["text/event-stream"]["itemSchema"]["$ref"];
    assert_eq!(items, "#/components/schemas/StreamEvent");
    let events = document["components"]["schemas"]["StreamEvent"]["oneOf"]
        .as_array()
        .expect("event kinds");
    let data: Vec<&Value> = events
        .iter()
        .map(|event| &event["properties"]["data"]["contentSchema"]["$ref"])
        .collect();
    assert_eq!(
        data,
        [
            "#/components/schemas/GroupRecord",
            "#/components/schemas/Problem"
        ]
    );
}

/// The bounds the document states are the ones the broker enforces.
#[test]
fn documented_bounds_are_the_code_constants() {
    let document = generated();
    let schemas = &document["components"]["schemas"];
    let name_max = palisade::names::NAME_CHARACTERS_MAX as u64;
    assert_eq!(
        schemas["CreateTopic"]["properties"]["name"]["maxLength"],
        name_max
    );
    assert_eq!(
        schemas["CreateUser"]["properties"]["username"]["maxLength"],
        name_max
    );
    let topic = &document["paths"]["/v1/topics/{topic}"]["get"]["parameters"][0];
    assert_eq!(topic["schema"]["maxLength"], name_max, "{topic}");
    for schema in ["CreateUser", "SetPassword"] {
        let password = &schemas[schema]["properties"]["password"];
        assert_eq!(
            password["minLength"],
            palisade::auth::password::PASSWORD_BYTES_MIN as u64,
            "{schema}"
        );
        assert_eq!(
            password["maxLength"],
            palisade::auth::password::PASSWORD_BYTES_MAX as u64,
            "{schema}"
        );
    }
}
