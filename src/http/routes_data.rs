//! Routes for login, topics, produce and fetch.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::dto::{fetch_body, record_from_wire};
use super::extract::{request_info, Authenticated};
use super::metrics::Metrics;
use super::sized_json::SizedJson;
use crate::broker::{Broker, BrokerError, FetchRequest, Idempotence, NewTopic, ProduceRecord};
use crate::wire::{
    CreateTopic, FetchQuery, ProduceBody, ProduceResponse, RecordPosition, TokenRequest,
    TokenResponse, TopicList, Whoami,
};

type State = web::Data<Arc<Broker>>;

pub async fn token(
    broker: State,
    request: HttpRequest,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    let issued = broker
        .login(&body.username, &body.password, request_info(&request))
        .await?;
    let expires_in = issued.expires_at_s.saturating_sub(broker.now_ms() / 1000);
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: issued.token,
        token_type: "Bearer".to_string(),
        expires_in,
    }))
}

pub async fn revoke(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    broker.revoke(&caller.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn whoami(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    let caller = caller.0;
    let permissions = broker.permissions(&caller);
    Ok(HttpResponse::Ok().json(Whoami {
        principal: caller.principal.name,
        superuser: caller.principal.superuser,
        token_expires_at_s: caller.claims.exp,
        permissions,
    }))
}

pub async fn list_topics(
    broker: State,
    caller: Authenticated,
) -> Result<HttpResponse, BrokerError> {
    let topics = broker.list_topics(&caller.0).await?;
    Ok(HttpResponse::Ok().json(TopicList { topics }))
}

pub async fn create_topic(
    broker: State,
    caller: Authenticated,
    body: web::Json<CreateTopic>,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    let topic = NewTopic {
        name: body.name,
        partitions: body.partitions,
        replication_factor: body.replication_factor,
        retention_ms: body.retention_ms,
        retention_bytes: body.retention_bytes,
    };
    let view = broker.create_topic(&caller.0, topic).await?;
    Ok(HttpResponse::Created().json(view))
}

pub async fn describe_topic(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    let view = broker.describe_topic(&caller.0, &path).await?;
    Ok(HttpResponse::Ok().json(view))
}

pub async fn delete_topic(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    broker.delete_topic(&caller.0, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Names the broker that led the partition(s) a request was served by.
pub const LEADER_HEADER: &str = "palisade-leader";

/// One id when one broker led every partition written, else `partition=leader` pairs.
fn produce_leaders(leaders: &[(u32, u64)]) -> String {
    let first = leaders.first().map(|(_, leader)| *leader);
    if leaders.iter().all(|(_, leader)| Some(*leader) == first) {
        return first.map(|leader| leader.to_string()).unwrap_or_default();
    }
    leaders
        .iter()
        .map(|(partition, leader)| format!("{partition}={leader}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn produce(
    broker: State,
    metrics: web::Data<Arc<Metrics>>,
    caller: Authenticated,
    path: web::Path<String>,
    body: SizedJson<ProduceBody>,
    request: HttpRequest,
) -> Result<HttpResponse, BrokerError> {
    let body = body.into_inner();
    let idempotence = Idempotence {
        producer_id: body.producer_id,
        sequence: body.sequence,
        sequences: body.sequences,
        idempotency_key: super::routes_producers::idempotency_key(&request)?,
    };
    let mut records = Vec::with_capacity(body.records.len());
    for (position, record) in body.records.into_iter().enumerate() {
        let (record, partition) =
            record_from_wire(record, position).map_err(BrokerError::BadRequest)?;
        records.push(ProduceRecord { record, partition });
    }
    let produced = if idempotence.is_empty() {
        broker.produce(&caller.0, &path, records).await?
    } else {
        broker
            .produce_idempotent(&caller.0, &path, records, idempotence)
            .await?
    };
    metrics
        .produced_records
        .inc_by(produced.offsets.len() as u64);
    Ok(HttpResponse::Ok()
        .insert_header((LEADER_HEADER, produce_leaders(&produced.leaders)))
        .json(ProduceResponse {
            offsets: produced
                .offsets
                .into_iter()
                .map(|(partition, offset)| RecordPosition { partition, offset })
                .collect(),
        }))
}

pub async fn fetch(
    broker: State,
    metrics: web::Data<Arc<Metrics>>,
    caller: Authenticated,
    path: web::Path<(String, u32)>,
    query: web::Query<FetchQuery>,
) -> Result<HttpResponse, BrokerError> {
    let (topic, partition) = path.into_inner();
    let query = query.into_inner();
    let request = FetchRequest {
        offset: query.offset.unwrap_or(0),
        max_messages: query.max_messages,
        max_bytes: query.max_bytes,
        wait_ms: query.wait_ms,
    };
    let fetched = broker.fetch(&caller.0, &topic, partition, request).await?;
    metrics.fetched_records.inc_by(fetched.records.len() as u64);
    let body = fetch_body(
        fetched.records,
        fetched.next_offset,
        fetched.high_watermark,
        fetched.log_start_offset,
        fetched.held,
    );
    Ok(HttpResponse::Ok()
        .insert_header((LEADER_HEADER, fetched.leader.to_string()))
        .content_type(actix_web::http::header::ContentType::json())
        .streaming(futures_util::stream::iter(body)))
}
