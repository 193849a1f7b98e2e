//! The OpenAPI 3.2 document of the v1 API, generated from the code: the `#[utoipa::path]`
//! annotation on each handler (method, path, parameters, bodies, every answer), the wire types'
//! `ToSchema` derives, and the shared problem answers of `api_doc`. Served without a token at
//! `GET /v1/openapi.json`; `docs/openapi.json` is a copy that `tests/openapi.rs` keeps equal.
//!
//! Owns the list of documented operations and the bearer security scheme. Must not describe a
//! route by hand: a route that `configure` registers and this list misses fails the test.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApiVersion;
use utoipa::{Modify, OpenApi};

use super::{routes_admin as admin, routes_cluster as cluster, routes_data as data};
use super::{routes_groups as groups, routes_producers as producers};

/// The name of the bearer scheme the operations' `security` refers to.
const BEARER: &str = "bearer";

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A token from `POST /v1/auth/token`, sent as `Authorization: Bearer`.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Palisade",
        description = "The HTTPS + JSON API of a Palisade broker. Every error is an \
            `application/problem+json` body (RFC 9457); routes with a bearer requirement answer \
            401 without a valid token.",
    ),
    paths(
        admin::healthz,
        admin::readyz,
        admin::metrics,
        openapi_json,
        data::token,
        data::revoke,
        admin::list_signing_keys,
        admin::rotate_signing_key,
        data::whoami,
        data::list_topics,
        data::create_topic,
        data::describe_topic,
        data::delete_topic,
        data::produce,
        data::fetch,
        admin::list_users,
        admin::create_user,
        admin::delete_user,
        admin::set_password,
        admin::revoke_user_tokens,
        admin::list_acls,
        admin::explain_acl,
        admin::create_acl,
        admin::delete_acl,
        admin::audit,
        admin::audit_head,
        cluster::cluster,
        cluster::add_broker,
        cluster::decommission,
        cluster::rebalance,
        groups::list,
        groups::describe,
        groups::join,
        groups::leave,
        groups::heartbeat,
        groups::poll,
        groups::commit,
        producers::create_producer,
        data::create_stream_ticket,
    ),
    components(schemas(super::api_doc::StreamEvent)),
    modifiers(&BearerScheme),
    tags(
        (name = "probes", description = "Liveness, readiness and metrics; no token."),
        (name = "auth", description = "Tokens and signing keys."),
        (name = "topics", description = "Topics and their partitions."),
        (name = "messages", description = "Produce and fetch records, and event streams."),
        (name = "groups", description = "Consumer groups."),
        (name = "users", description = "Users and their passwords."),
        (name = "acls", description = "Access control rules."),
        (name = "audit", description = "The hash-chained audit log."),
        (name = "cluster", description = "Brokers, placement and rebalancing."),
        (name = "openapi", description = "This document."),
    )
)]
struct ApiDoc;

/// The document as pretty JSON with a final newline, exactly as served and as committed in
/// `docs/openapi.json`.
pub fn document_json() -> String {
    let mut document = ApiDoc::openapi();
    document.openapi = OpenApiVersion::Version32;
    let mut text = serde_json::to_string_pretty(&document).expect("the document is plain data");
    text.push('\n');
    text
}

/// Built once: the document depends on the code only.
static DOCUMENT: LazyLock<String> = LazyLock::new(document_json);

/// This OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "openapi",
    responses((status = 200, description = "The OpenAPI document of this API.",
        content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(actix_web::http::header::ContentType::json())
        .body(DOCUMENT.as_str())
}
