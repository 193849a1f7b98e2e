//! Consumer-group routes: join, heartbeat, poll, commit, leave, describe, list.

use std::sync::Arc;

use actix_web::{web, HttpResponse};

use super::dto_groups::group_poll_body;
use super::extract::Authenticated;
use super::metrics::Metrics;
use crate::broker::groups::{JoinRequest, PollRequest};
use crate::broker::TopicPartition;
use crate::broker::{Broker, BrokerError};
use crate::wire::{
    CommitOffsets, GroupDescription, GroupList, GroupSummary, JoinGroup, Member, PollQuery,
};

type State = web::Data<Arc<Broker>>;

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

pub async fn heartbeat(
    broker: State,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, BrokerError> {
    let (group, member) = path.into_inner();
    let view = broker.heartbeat(&caller.0, &group, &member).await?;
    Ok(HttpResponse::Ok().json(Member::from(view)))
}

pub async fn leave(
    broker: State,
    caller: Authenticated,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, BrokerError> {
    let (group, member) = path.into_inner();
    broker.leave_group(&caller.0, &group, &member).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn poll(
    broker: State,
    metrics: web::Data<Arc<Metrics>>,
    caller: Authenticated,
    path: web::Path<(String, String)>,
    query: web::Query<PollQuery>,
) -> Result<HttpResponse, BrokerError> {
    let (group, member) = path.into_inner();
    let query = query.into_inner();
    let request = PollRequest {
        max_messages: query.max_messages,
        max_bytes: query.max_bytes,
        wait_ms: query.wait_ms,
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
