//! Consumer-group routes: join, heartbeat, poll, commit, leave, describe, list.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use super::api_doc::{
    Authenticated as AuthProblems, BadRequest, BodyRefused, Conflict, Forbidden, GroupPath,
    InsufficientStorage, MemberPath, NotFound, OffsetOutOfRange, TooMany,
};
use super::dto_groups::group_poll_body;
use super::extract::Authenticated;
use super::metrics::Metrics;
use crate::broker::groups::{JoinRequest, PollRequest};
use crate::broker::TopicPartition;
use crate::broker::{Broker, BrokerError};
use crate::wire;
use crate::wire::{
    CommitOffsets, GroupDescription, GroupList, GroupPoll, GroupSummary, JoinGroup, Member,
    PollQuery,
};

type State = web::Data<Arc<Broker>>;

/// The consumer groups the caller may describe.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", security(("bearer" = [])),
    responses(
        (status = 200, description = "The groups.", body = GroupList),
        AuthProblems,
    ))]
pub async fn list(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let groups = broker
        .list_consumer_groups(&caller.0)
        .into_iter()
        .map(|(group, generation, members)| GroupSummary {
            group,
            generation,
            members: members as u64,
        })
        .collect();
    Ok(HttpResponse::Ok().json(GroupList { groups }))
}

/// A group's members, assignments, committed offsets and lag.
#[utoipa::path(get, path = "/v1/groups/{group}", tag = "groups", security(("bearer" = [])), params(GroupPath),
    responses(
        (status = 200, description = "The group.", body = GroupDescription),
        AuthProblems, Forbidden, NotFound,
    ))]
pub async fn describe(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    let view = broker
        .describe_consumer_group(&caller.0, &path.into_inner())
        .await?;
    Ok(HttpResponse::Ok().json(GroupDescription::from(view)))
}

/// Joins a group (creating it); the answer names the member and its partitions.
#[utoipa::path(post, path = "/v1/groups/{group}/members", tag = "groups", security(("bearer" = [])), params(GroupPath), request_body = JoinGroup,
    responses(
        (status = 201, description = "The new member.", body = Member),
        BadRequest, BodyRefused, AuthProblems, Forbidden, NotFound, TooMany, InsufficientStorage,
    ))]
pub async fn join(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
    body: web::Json<JoinGroup>,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    let request = JoinRequest {
        topics: body.topics,
        session_timeout_ms: body.session_timeout_ms,
        reset: body.auto_offset_reset.unwrap_or_default().into(),
    };
    let view = broker
        .join_group(&caller.0, &path.into_inner(), request)
        .await?;
    Ok(HttpResponse::Created().json(Member::from(view)))
}

/// Keeps a member's session; the answer has its current assignment.
#[utoipa::path(post, path = "/v1/groups/{group}/members/{member}/heartbeat", tag = "groups", security(("bearer" = [])), params(MemberPath),
    responses(
        (status = 200, description = "The member.", body = Member),
        AuthProblems, Forbidden, NotFound, InsufficientStorage,
    ))]
pub async fn heartbeat(
    broker: State,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, BrokerError> {
    let (group, member) = path.into_inner();
    let view = broker.heartbeat(&caller.0, &group, &member).await?;
    Ok(HttpResponse::Ok().json(Member::from(view)))
}

/// Leaves a group; its partitions go to the other members.
#[utoipa::path(delete, path = "/v1/groups/{group}/members/{member}", tag = "groups", security(("bearer" = [])), params(MemberPath),
    responses(
        (status = 204, description = "The member left."),
        AuthProblems, Forbidden, NotFound, InsufficientStorage,
    ))]
pub async fn leave(
    broker: State,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, BrokerError> {
    let (group, member) = path.into_inner();
    broker.leave_group(&caller.0, &group, &member).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reads records of the member's partitions from the group's committed offsets, or from the
/// consumer's own positions given in `from`.
#[utoipa::path(get, path = "/v1/groups/{group}/members/{member}/records", tag = "groups", security(("bearer" = [])), params(MemberPath, PollQuery),
    responses(
        (status = 200, description = "Records and the offsets to commit.", body = GroupPoll),
        BadRequest, AuthProblems, Forbidden, NotFound, Conflict, OffsetOutOfRange,
    ))]
pub async fn poll(
    broker: State,
    metrics: web::Data<Arc<Metrics>>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
    query: web::Query<PollQuery>,
) -> Result<HttpResponse, BrokerError> {
    let (group, member) = path.into_inner();
    let query = query.into_inner();
    let from = match query.from.as_deref() {
        None => Vec::new(),
        Some(from) => wire::parse_positions(from)
            .map_err(BrokerError::BadRequest)?
            .into_iter()
            .map(|p| {
                let tp = TopicPartition {
                    topic: p.topic,
                    partition: p.partition,
                };
                (tp, p.offset)
            })
            .collect(),
    };
    let request = PollRequest {
        max_messages: query.max_messages,
        max_bytes: query.max_bytes,
        wait_ms: query.wait_ms,
        from,
    };
    let polled = broker
        .poll_group(&caller.0, &group, &member, request)
        .await?;
    let count: usize = polled.partitions.iter().map(|p| p.records.len()).sum();
    metrics.fetched_records.inc_by(count as u64);
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .streaming(futures_util::stream::iter(group_poll_body(polled))))
}

/// Commits offsets for a member's partitions.
#[utoipa::path(post, path = "/v1/groups/{group}/offsets", tag = "groups", security(("bearer" = [])), params(GroupPath), request_body = CommitOffsets,
    responses(
        (status = 204, description = "The offsets are committed."),
        BadRequest, BodyRefused, AuthProblems, Forbidden, NotFound, Conflict, InsufficientStorage,
    ))]
pub async fn commit(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
    body: web::Json<CommitOffsets>,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    let offsets = body
        .offsets
        .into_iter()
        .map(|o| {
            let tp = TopicPartition {
                topic: o.topic,
                partition: o.partition,
            };
            (tp, o.offset)
        })
        .collect();
    broker
        .commit_offsets(
            &caller.0,
            &path.into_inner(),
            &body.member_id,
            body.generation,
            offsets,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
