//! The broker against its own OpenAPI document: schemathesis (`tests/schemathesis.sh`, pinned)
//! generates requests for every operation from `GET /v1/openapi.json` and checks that no answer
//! is a server error and that every status, content type and body is one the document states.
//!
//! The budget is small and fixed (a few examples per operation in the fuzzing phase, one seed, no
//! shrinking, one worker), so the run is bounded by the number of operations. Routes that end the
//! run's own token are left out: after them every request would be a (correct) 401. The checker
//! is first run on a planted document that leaves out a status the broker does answer.

mod common;

use std::process::{Command, Output};

use common::{BrokerProcess, RawApi};

/// Test cases per operation in the fuzzing phase.
const EXAMPLES_PER_OPERATION: &str = "5";

/// What is checked on every answer.
const CHECKS: &str =
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

/// Operations that revoke the token the run uses (its own, or all of the admin's).
const EXCLUDED_PATHS: [&str; 3] = [
    "/v1/auth/revoke",
    "/v1/users/{user}/revoke-tokens",
    "/v1/users/{user}/password",
];

/// A broker whose long polls end within 100 ms, so a generated `wait_ms` costs little, and the
/// admin's token.
async fn broker_and_token() -> (BrokerProcess, String) {
    let broker = BrokerProcess::start_with(&[], "wait_ms_max = 100\n").await;
    let token = RawApi::new(&broker)
        .token("admin", common::ADMIN_PASSWORD)
        .await;
    (broker, token)
}

/// Runs schemathesis on the document at `location` against `broker`, with `extra` arguments.
fn schemathesis(broker: &BrokerProcess, token: &str, location: &str, extra: &[&str]) -> Output {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.sh");
    let mut command = Command::new(script);
    // schemathesis keeps a cache in its working directory: the broker's temporary one.
    command
        .current_dir(broker.dir.path())
        .arg("run")
        .arg(location)
        .arg("--url")
        .arg(&broker.url)
        .arg("--tls-verify")
        .arg(&broker.ca)
        .arg("--header")
        .arg(format!("Authorization: Bearer {token}"))
        .args(["--checks", CHECKS])
        .args(["--max-examples", EXAMPLES_PER_OPERATION])
        .args(["--seed", "20261207", "--no-shrink", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .arg("--report-dir")
        .arg(broker.dir.path().join("schemathesis"))
        .arg("--no-color");
    for path in EXCLUDED_PATHS {
        command.args(["--exclude-path", path]);
    }
    command.args(extra);
    command.output().expect("run tests/schemathesis.sh")
}

fn printed(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[actix_rt::test]
async fn the_broker_answers_as_its_openapi_document_says() {
    let (broker, token) = broker_and_token().await;
    let location = format!("{}/v1/openapi.json", broker.url);
    let output = schemathesis(&broker, &token, &location, &[]);
    assert!(
        output.status.success(),
        "schemathesis found answers the document does not allow:\n{}\nbroker log:\n{}",
        printed(&output),
        broker.log()
    );
}

/// The same run on one operation of a planted document that leaves out its 400 answer: the
/// broker's (correct) refusals of generated bad queries are reported as undocumented.
#[actix_rt::test]
async fn the_run_reports_a_status_the_document_leaves_out() {
    let (broker, token) = broker_and_token().await;
    let mut document: serde_json::Value =
        serde_json::from_str(&palisade::app::openapi_json()).expect("the document is JSON");
    let responses = document["paths"]["/v1/audit"]["get"]["responses"]
        .as_object_mut()
        .expect("the audit responses");
    responses.remove("400").expect("a 400 answer");
    let planted = broker.dir.path().join("planted-openapi.json");
    std::fs::write(&planted, document.to_string()).expect("write the planted document");
    let location = planted.to_str().expect("a UTF-8 path");
    let output = schemathesis(&broker, &token, location, &["--include-path", "/v1/audit"]);
    let text = printed(&output);
    assert!(!output.status.success(), "the planted gap passed:\n{text}");
    assert!(text.contains("Undocumented status code"), "{text}");
    assert!(text.contains("Received: 400"), "{text}");
}
