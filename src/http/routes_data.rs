//! Routes for login, topics, produce and fetch.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::api_doc::{
    Authenticated as AuthProblems, BadRequest, BodyRefused, Conflict, Forbidden,
    InsufficientStorage, NotFound, OffsetOutOfRange, PartitionPath, TooMany, TopicPath,
};
use super::dto::{fetch_body, record_from_wire};
use super::extract::{request_info, Authenticated};
use super::metrics::Metrics;
use super::sized_json::SizedJson;
use crate::broker::{Broker, BrokerError, FetchRequest, Idempotence, NewTopic, ProduceRecord};
use crate::wire::{
    CreateStreamTicket, CreateTopic, FetchQuery, FetchResponse, ProduceBody, ProduceResponse,
    RecordPosition, StreamTicket, TokenRequest, TokenResponse, TopicDescription, TopicList, Whoami,
};

type State = web::Data<Arc<Broker>>;

/// Logs in with a user name and password and returns a bearer token.
#[utoipa::path(post, path = "/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses(
        (status = 200, description = "A token for the `Authorization: Bearer` header.",
            body = TokenResponse),
        BadRequest, BodyRefused, AuthProblems, TooMany,
    ))]
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

/// Revokes the token of this request.
#[utoipa::path(post, path = "/v1/auth/revoke", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "The token no longer authenticates."), AuthProblems))]
pub async fn revoke(broker: State, caller: Authenticated) -> Result<HttpResponse, BrokerError> {
    broker.revoke(&caller.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Issues a single-use ticket for one event stream of a partition, for clients that cannot send
/// an Authorization header (a browser's `EventSource`): open the stream on this same broker
/// within `expires_in_ms` with `?ticket=` and no Authorization header. Needs `read` on the topic;
/// audited as `stream.ticket`.
#[utoipa::path(post, path = "/v1/stream-tickets", tag = "messages", security(("bearer" = [])), request_body = CreateStreamTicket,
    responses(
        (status = 201, description = "The ticket.", body = StreamTicket),
        BadRequest, BodyRefused, AuthProblems, Forbidden, NotFound, TooMany,
    ))]
pub async fn create_stream_ticket(
    broker: State,
    caller: Authenticated,
    request: HttpRequest,
    body: web::Json<CreateStreamTicket>,
) -> Result<HttpResponse, BrokerError> {
    let token = super::extract::bearer(&request)?
        .ok_or_else(|| BrokerError::Unauthenticated("missing bearer token".into()))?;
    let body = body.into_inner();
    let ticket = broker
        .issue_stream_ticket(&caller.0, token, &body.topic, body.partition)
        .await?;
    Ok(HttpResponse::Created().json(ticket))
}

/// The caller's principal and the ACL rules that apply to it.
#[utoipa::path(get, path = "/v1/whoami", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller.", body = Whoami), AuthProblems))]
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

/// The topics the caller may describe.
#[utoipa::path(get, path = "/v1/topics", tag = "topics", security(("bearer" = [])),
    responses((status = 200, description = "The topics.", body = TopicList), AuthProblems, Forbidden))]
pub async fn list_topics(
    broker: State,
    caller: Authenticated,
) -> Result<HttpResponse, BrokerError> {
    let topics = broker.list_topics(&caller.0).await?;
    Ok(HttpResponse::Ok().json(TopicList { topics }))
}

/// Creates a topic.
#[utoipa::path(post, path = "/v1/topics", tag = "topics", security(("bearer" = [])), request_body = CreateTopic,
    responses(
        (status = 201, description = "The topic as created.", body = TopicDescription),
        BadRequest, BodyRefused, AuthProblems, Forbidden, Conflict, TooMany, InsufficientStorage,
    ))]
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

/// A topic, its partitions and their leaders and offsets.
#[utoipa::path(get, path = "/v1/topics/{topic}", tag = "topics", security(("bearer" = [])), params(TopicPath),
    responses(
        (status = 200, description = "The topic.", body = TopicDescription),
        AuthProblems, Forbidden, NotFound,
    ))]
pub async fn describe_topic(
    broker: State,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, BrokerError> {
    let view = broker.describe_topic(&caller.0, &path).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Deletes a topic and its records.
#[utoipa::path(delete, path = "/v1/topics/{topic}", tag = "topics", security(("bearer" = [])), params(TopicPath),
    responses(
        (status = 204, description = "The topic is gone."),
        AuthProblems, Forbidden, NotFound, InsufficientStorage,
    ))]
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

/// Appends records; answers once they are committed. Idempotent with a `producer_id` and
/// sequence in the body, or with an `Idempotency-Key` header.
#[utoipa::path(post, path = "/v1/topics/{topic}/messages", tag = "messages", security(("bearer" = [])),
    params(
        TopicPath,
        ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128,
            pattern = "^[!-~]+$",
            description = "Makes a retried produce write its records once."),
    ),
    request_body = ProduceBody,
    responses(
        (status = 200, description = "Where each record was written, in request order.",
            body = ProduceResponse,
            headers(("palisade-leader" = String,
                description = "The leader that wrote: one broker id, else `partition=id` pairs."))),
        BadRequest, BodyRefused, AuthProblems, Forbidden, NotFound, Conflict, InsufficientStorage,
    ))]
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

/// Reads committed records of one partition: a JSON page, or with `Accept: text/event-stream`
/// an endless stream of `record` events (see `sse`), ended by an `error` event.
#[utoipa::path(get, path = "/v1/topics/{topic}/partitions/{partition}/messages",
    tag = "messages", security(("bearer" = [])),
    params(
        PartitionPath,
        ("offset" = Option<String>, Query, pattern = "^([0-9]+|earliest|latest)$",
            description = "The first offset to read. The JSON page takes a decimal offset \
                (default 0); the event stream also takes `earliest` (the default) or `latest`."),
        ("max_messages" = Option<u64>, Query,
            description = "JSON page only: records returned at most; the broker caps it."),
        ("max_bytes" = Option<u64>, Query,
            description = "JSON page only: value bytes returned at most; the broker caps it."),
        ("wait_ms" = Option<u64>, Query,
            description = "JSON page only: milliseconds to wait for a record (a long poll), \
                capped at `http.wait_ms_max`."),
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]+$",
            description = "Event stream only: resume after this offset (wins over `offset`)."),
        ("ticket" = Option<String>, Query,
            description = "Event stream only, in place of the Authorization header: a ticket from \
                `POST /v1/stream-tickets` for this partition, issued by this broker, used once."),
    ),
    responses(
        (status = 200, description = "A page of records, or an event stream.",
            headers(("palisade-leader" = String, description = "The leader that served the read.")),
            content(
                (FetchResponse = "application/json"),
                ("text/event-stream", item_schema = super::api_doc::StreamEvent),
            )),
        BadRequest, AuthProblems, Forbidden, NotFound, OffsetOutOfRange, TooMany,
    ))]
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
