//! The pieces the route annotations (`#[utoipa::path]`) share: one response per problem status
//! of `error.rs`'s mapping, the path parameters with the bounds the broker checks, and the schema
//! of an event stream's items.
//!
//! Describes only; no handler runs any of this. A leaf of `http`: it must not import the routes
//! (the document in `openapi` lists them).

use utoipa::{IntoParams, IntoResponses};

use crate::wire::Problem;

/// Answers every authenticated route can give: no usable token, the broker overloaded or unable
/// to reach the controller, partition leader or audit log, and an internal error.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum Authenticated {
    /// No token, or one that is expired, forged, revoked or for a removed user.
    #[response(
        status = 401,
        content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "Always `Bearer`."))
    )]
    Unauthenticated(Problem),
    /// Internal error; the detail carries no internals (the broker log has them under the
    /// request id).
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
    /// Not now: no leader or controller reachable, the audit log unavailable, or a request budget
    /// exhausted (`unavailable`, `audit-unavailable`, `overloaded`).
    #[response(
        status = 503,
        content_type = "application/problem+json",
        headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))
    )]
    Unavailable(Problem),
}

/// A path parameter, query string or body the broker refuses.
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct BadRequest(Problem);

/// A request body problem: larger than `http.body_bytes_max`, or not `application/json`.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefused {
    /// The body is larger than `http.body_bytes_max`, or a record batch over the broker's limit.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// The body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
}

/// A body larger than its route reads (`POST /v1/producers` reads 1 KiB at most).
#[derive(IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct TooLarge(Problem);

/// An ACL rule (or the lack of one) refuses the caller this action.
#[derive(IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Forbidden(Problem);

/// The named topic, partition, user, rule, broker, group or member does not exist.
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct NotFound(Problem);

/// The request conflicts with the current state (it exists already, a stale generation or
/// sequence, the last superuser, a broker still in use).
#[derive(IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct Conflict(Problem);

/// The offset is outside the partition's log (before its start or past its end).
#[derive(IntoResponses)]
#[response(status = 416, content_type = "application/problem+json")]
#[allow(dead_code)]
pub struct OffsetOutOfRange(Problem);

/// A rate or count limit: too many logins, topics, groups, members or open event streams.
#[derive(IntoResponses)]
#[response(
    status = 429,
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait, where waiting helps."))
)]
#[allow(dead_code)]
pub struct TooMany(Problem);

/// A disk the write needs is full.
#[derive(IntoResponses)]
#[response(
    status = 507,
    content_type = "application/problem+json",
    headers(("Retry-After" = u64, description = "Seconds to wait before trying again."))
)]
#[allow(dead_code)]
pub struct InsufficientStorage(Problem);

/// `{topic}`: a topic name.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct TopicPath {
    /// 1 to 249 characters of `A-Z a-z 0-9 . _ -`.
    #[param(min_length = 1, max_length = 249, pattern = "^[A-Za-z0-9._-]+$")]
    topic: String,
}

/// `{topic}/partitions/{partition}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct PartitionPath {
    /// 1 to 249 characters of `A-Z a-z 0-9 . _ -`.
    #[param(min_length = 1, max_length = 249, pattern = "^[A-Za-z0-9._-]+$")]
    topic: String,
    /// The partition number, from 0.
    partition: u32,
}

/// `{user}`: a user name.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct UserPath {
    /// 1 to 249 characters of `A-Z a-z 0-9 . _ -`.
    #[param(min_length = 1, max_length = 249, pattern = "^[A-Za-z0-9._-]+$")]
    user: String,
}

/// `{group}`: a consumer group name.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct GroupPath {
    /// 1 to 249 characters of `A-Z a-z 0-9 . _ -`.
    #[param(min_length = 1, max_length = 249, pattern = "^[A-Za-z0-9._-]+$")]
    group: String,
}

/// `{group}/members/{member}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct MemberPath {
    /// 1 to 249 characters of `A-Z a-z 0-9 . _ -`.
    #[param(min_length = 1, max_length = 249, pattern = "^[A-Za-z0-9._-]+$")]
    group: String,
    /// The member id a join answered.
    member: String,
}

/// `{id}`: a numeric id (an ACL rule's or a broker's).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct IdPath {
    id: u64,
}

/// One item of an event stream, for the OpenAPI document (`itemSchema`): a `record` event (id =
/// the record's offset, data = the record as JSON with its topic and partition) or the `error`
/// event that ends the stream (data = a problem body). Keep-alive comments are not items.
/// The events themselves are written by `sse_body`.
pub struct StreamEvent;

impl utoipa::PartialSchema for StreamEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        use utoipa::openapi::Ref;
        use utoipa::ToSchema as _;
        let event = |name: &str, data: &str, with_id: bool, description: &str| {
            let mut object = ObjectBuilder::new()
                .description(Some(description))
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([name])),
                )
                .required("event")
                .property(
                    "data",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .content_media_type("application/json")
                        .content_schema(Some(Ref::from_schema_name(data))),
                )
                .required("data");
            if with_id {
                object = object
                    .property(
                        "id",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some("^[0-9]+$"))
                            .description(Some(
                                "The record's offset: send it as Last-Event-ID to resume.",
                            )),
                    )
                    .required("id");
            }
            object
        };
        OneOfBuilder::new()
            .item(event(
                "record",
                &crate::wire::GroupRecord::name(),
                true,
                "One committed record.",
            ))
            .item(event(
                "error",
                &crate::wire::Problem::name(),
                false,
                "Why the stream ended (the last event).",
            ))
            .into()
    }
}

impl utoipa::ToSchema for StreamEvent {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        use utoipa::PartialSchema as _;
        schemas.push((
            crate::wire::GroupRecord::name().into(),
            crate::wire::GroupRecord::schema(),
        ));
        crate::wire::GroupRecord::schemas(schemas);
        schemas.push((
            crate::wire::Problem::name().into(),
            crate::wire::Problem::schema(),
        ));
    }
}
