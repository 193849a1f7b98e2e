//! The Durable Streams protocol under `/ds` (`docs/durable-streams.md`): the protocol's headers,
//! statuses and bodies around `broker::durable`. Every route needs a bearer token, or runs as
//! `durable_streams.anonymous_principal` when that is set and no Authorization header is sent
//! (`extract::authenticate_first`); ACLs on the stream's topic decide, as for any request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, HttpResponseBuilder, ResponseError};
use base64::Engine;
use rand::Rng;

use super::error::problem;
use super::sse_slots::{SlotRefusal, StreamSlot, StreamSlots};
use crate::broker::durable::state::{self, token};
use crate::broker::durable::{
    Append, Appended, Chunk, Create, DsError, Outcome, Position, ProducerClaim, Refusal, StreamInfo,
};
use crate::broker::{Broker, BrokerError, Caller};

const STREAM_NEXT_OFFSET: &str = "stream-next-offset";
const STREAM_UP_TO_DATE: &str = "stream-up-to-date";
const STREAM_CLOSED: &str = "stream-closed";
const STREAM_CURSOR: &str = "stream-cursor";
const STREAM_TTL: &str = "stream-ttl";
const STREAM_EXPIRES_AT: &str = "stream-expires-at";
const STREAM_SEQ: &str = "stream-seq";
const PRODUCER_ID: &str = "producer-id";
const PRODUCER_EPOCH: &str = "producer-epoch";
const PRODUCER_SEQ: &str = "producer-seq";

/// Headers a browser client may send and read.
const ALLOW_HEADERS: &str = "authorization, content-type, if-none-match, stream-seq, stream-ttl, \
    stream-expires-at, stream-closed, producer-id, producer-epoch, producer-seq, \
    stream-forked-from, stream-fork-offset, stream-fork-sub-offset";
const EXPOSE_HEADERS: &str = "stream-next-offset, stream-cursor, stream-up-to-date, \
    stream-closed, stream-ttl, stream-expires-at, producer-epoch, producer-seq, \
    producer-expected-seq, producer-received-seq, stream-sse-data-encoding, etag, location, \
    content-type";

/// Cursor intervals: 20 seconds counted from 2024-10-09T00:00:00Z, as the protocol suggests.
const CURSOR_EPOCH_MS: u64 = 1_728_432_000_000;
const CURSOR_INTERVAL_MS: u64 = 20_000;

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/ds/{path:.+}", web::route().to(dispatch));
}

async fn dispatch(
    request: HttpRequest,
    path: web::Path<String>,
    body: Bytes,
    broker: web::Data<Arc<Broker>>,
    slots: web::Data<Arc<StreamSlots>>,
) -> HttpResponse {
    let path = path.into_inner();
    let mut response = if request.method() == Method::OPTIONS {
        HttpResponse::NoContent()
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                "GET, HEAD, POST, PUT, DELETE, OPTIONS",
            ))
            .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .finish()
    } else {
        // Bound first: a `Ref` held across the match would make a later borrow of the request's
        // extensions (connection_info does one) panic.
        let caller = request.extensions().get::<Caller>().cloned();
        match caller {
            None => problem(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing bearer token".into(),
            ),
            Some(caller) => {
                let outcome = match *request.method() {
                    Method::PUT => create(&broker, &caller, &path, &request, body).await,
                    Method::POST => append(&broker, &caller, &path, &request, body).await,
                    Method::HEAD => head(&broker, &caller, &path).await,
                    Method::GET => read(broker.get_ref(), &caller, &path, &request, &slots).await,
                    Method::DELETE => broker
                        .ds_delete(&caller, &path)
                        .await
                        .map(|()| HttpResponse::NoContent().finish()),
                    _ => Ok(problem(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method-not-allowed",
                        format!("{} is not a Durable Streams operation", request.method()),
                    )),
                };
                outcome.unwrap_or_else(refusal_response)
            }
        }
    };
    security_headers(response.headers_mut());
    response
}

fn security_headers(headers: &mut HeaderMap) {
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "cross-origin",
    );
    set(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*");
    set(header::ACCESS_CONTROL_EXPOSE_HEADERS, EXPOSE_HEADERS);
}

fn text_header(request: &HttpRequest, name: &str) -> Result<Option<String>, DsError> {
    match request.headers().get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|text| Some(text.to_string()))
            .map_err(|_| Refusal::BadRequest(format!("header {name} is not visible ASCII")).into()),
    }
}

/// `Stream-Closed` counts only when it is `true` (any case); other values are ignored.
fn closed_header(request: &HttpRequest) -> bool {
    request
        .headers()
        .get(STREAM_CLOSED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn put_offset(builder: &mut HttpResponseBuilder, offset: u64) {
    builder.insert_header((STREAM_NEXT_OFFSET, token(offset)));
}

async fn create(
    broker: &Broker,
    caller: &Caller,
    path: &str,
    request: &HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, DsError> {
    let create = Create {
        content_type: text_header(request, "content-type")?,
        ttl: text_header(request, STREAM_TTL)?,
        expires_at: text_header(request, STREAM_EXPIRES_AT)?,
        closed: closed_header(request),
        body: body.to_vec(),
        forked_from: text_header(request, "stream-forked-from")?,
        fork_offset: text_header(request, "stream-fork-offset")?,
        fork_sub_offset: text_header(request, "stream-fork-sub-offset")?,
    };
    let created = broker.ds_create(caller, path, create).await?;
    let mut builder = if created.new {
        let mut builder = HttpResponse::Created();
        let connection = request.connection_info();
        let location = format!(
            "{}://{}{}",
            connection.scheme(),
            connection.host(),
            request.uri().path()
        );
        builder.insert_header((header::LOCATION, location));
        builder
    } else {
        HttpResponse::Ok()
    };
    describe(&mut builder, &created.info);
    Ok(builder.finish())
}

/// The headers that describe a stream: content type, tail, TTL or expiry, closure.
fn describe(builder: &mut HttpResponseBuilder, info: &StreamInfo) {
    builder.insert_header((header::CONTENT_TYPE, info.config.content_type.clone()));
    put_offset(builder, info.tail);
    if let Some(ttl) = info.config.ttl_s {
        builder.insert_header((STREAM_TTL, ttl.to_string()));
    }
    if let Some((text, _)) = &info.config.expires_at {
        builder.insert_header((STREAM_EXPIRES_AT, text.clone()));
    }
    if info.closed {
        builder.insert_header((STREAM_CLOSED, "true"));
    }
}

/// The three producer headers, all or none, each checked.
fn producer(request: &HttpRequest) -> Result<Option<ProducerClaim>, DsError> {
    let id = text_header(request, PRODUCER_ID)?;
    let epoch = text_header(request, PRODUCER_EPOCH)?;
    let seq = text_header(request, PRODUCER_SEQ)?;
    let (id, epoch, seq) = match (id, epoch, seq) {
        (None, None, None) => return Ok(None),
        (Some(id), Some(epoch), Some(seq)) => (id, epoch, seq),
        _ => {
            return Err(Refusal::BadRequest(
                "Producer-Id, Producer-Epoch and Producer-Seq must be sent together".into(),
            )
            .into())
        }
    };
    if id.is_empty() || id.len() > state::PRODUCER_ID_BYTES_MAX {
        return Err(Refusal::BadRequest(format!(
            "Producer-Id must be 1 to {} bytes",
            state::PRODUCER_ID_BYTES_MAX
        ))
        .into());
    }
    let number = |name: &str, text: &str| -> Result<u64, DsError> {
        let value = text
            .parse::<u64>()
            .ok()
            .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .filter(|v| *v <= state::PRODUCER_NUMBER_MAX);
        value.ok_or_else(|| {
            Refusal::BadRequest(format!(
                "{name} must be a non-negative integer of at most 2^53-1, got {text:?}"
            ))
            .into()
        })
    };
    Ok(Some(ProducerClaim {
        epoch: number("Producer-Epoch", &epoch)?,
        seq: number("Producer-Seq", &seq)?,
        id,
    }))
}

async fn append(
    broker: &Broker,
    caller: &Caller,
    path: &str,
    request: &HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, DsError> {
    let claim = producer(request)?;
    let close = closed_header(request);
    if body.is_empty() && !close {
        return Err(Refusal::BadRequest(
            "an append needs a body (an empty body is only allowed with Stream-Closed: true)"
                .into(),
        )
        .into());
    }
    let stream_seq = text_header(request, STREAM_SEQ)?;
    if stream_seq
        .as_ref()
        .is_some_and(|s| s.len() > state::PRODUCER_ID_BYTES_MAX)
    {
        return Err(Refusal::BadRequest(format!(
            "Stream-Seq is longer than {} bytes",
            state::PRODUCER_ID_BYTES_MAX
        ))
        .into());
    }
    let append = Append {
        body: body.to_vec(),
        content_type: text_header(request, "content-type")?,
        stream_seq,
        producer: claim.clone(),
        close,
    };
    let Appended {
        outcome,
        tail,
        closed,
    } = broker.ds_append(caller, path, append).await?;
    // 200 tells a producer its data was new; a close without data, a duplicate and a plain
    // append are 204.
    let mut builder = match (outcome, &claim) {
        (Outcome::Written, Some(_)) if !body.is_empty() => HttpResponse::Ok(),
        _ => HttpResponse::NoContent(),
    };
    put_offset(&mut builder, tail);
    if closed {
        builder.insert_header((STREAM_CLOSED, "true"));
    }
    if let Some(claim) = &claim {
        let seq = match outcome {
            Outcome::Duplicate { last_seq } => last_seq,
            _ => claim.seq,
        };
        builder.insert_header((PRODUCER_EPOCH, claim.epoch.to_string()));
        builder.insert_header((PRODUCER_SEQ, seq.to_string()));
    }
    Ok(builder.finish())
}

async fn head(broker: &Broker, caller: &Caller, path: &str) -> Result<HttpResponse, DsError> {
    let info = broker.ds_head(caller, path).await?;
    let mut builder = HttpResponse::Ok();
    describe(&mut builder, &info);
    builder.insert_header((header::CACHE_CONTROL, "no-store"));
    builder.insert_header((
        header::ETAG,
        entity_tag(info.config.created_ms, None, info.tail, info.closed),
    ));
    Ok(builder.finish())
}

/// The read parameters of a GET.
struct ReadQuery {
    position: Option<Position>,
    live: Option<String>,
    cursor: Option<String>,
}

fn read_query(request: &HttpRequest) -> Result<ReadQuery, DsError> {
    let mut query = ReadQuery {
        position: None,
        live: None,
        cursor: None,
    };
    let mut offsets = 0;
    for (key, value) in form_urlencoded::parse(request.query_string().as_bytes()) {
        match key.as_ref() {
            "offset" => {
                offsets += 1;
                if offsets > 1 {
                    return Err(Refusal::BadRequest("give offset once".into()).into());
                }
                query.position = Some(state::parse_position(&value)?);
            }
            "live" => query.live = Some(value.into_owned()),
            "cursor" => query.cursor = Some(value.into_owned()),
            _ => {}
        }
    }
    Ok(query)
}

/// The cursor of a live answer: the current 20-second interval, or past the client's when the
/// client's is not behind (so cursors never repeat).
fn cursor(now_ms: u64, client: Option<&str>) -> String {
    let current = now_ms.saturating_sub(CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS;
    match client.and_then(|c| c.parse::<u64>().ok()) {
        Some(client) if client >= current => {
            let jitter_s: u64 = rand::rng().random_range(1..=3600);
            (client + jitter_s.div_ceil(CURSOR_INTERVAL_MS / 1000)).to_string()
        }
        _ => current.to_string(),
    }
}

fn entity_tag(created_ms: u64, start: Option<u64>, end: u64, closed: bool) -> String {
    let start = start.map_or_else(|| "-1".to_string(), token);
    let suffix = if closed { ":c" } else { "" };
    format!("\"{created_ms}:{start}:{}{suffix}\"", token(end))
}

/// The body of a chunk: the messages as a JSON array for a JSON stream, else their bytes.
fn chunk_body(chunk: &Chunk) -> Vec<u8> {
    if chunk.config.is_json() {
        let mut body = vec![b'['];
        for (position, record) in chunk.records.iter().enumerate() {
            if position > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&record.record.value);
        }
        body.push(b']');
        body
    } else {
        chunk
            .records
            .iter()
            .flat_map(|r| r.record.value.iter().copied())
            .collect()
    }
}

async fn read(
    broker: &Arc<Broker>,
    caller: &Caller,
    path: &str,
    request: &HttpRequest,
    slots: &Arc<StreamSlots>,
) -> Result<HttpResponse, DsError> {
    let query = read_query(request)?;
    let live = query.live.as_deref();
    if matches!(live, Some("long-poll") | Some("sse")) && query.position.is_none() {
        return Err(Refusal::BadRequest(format!(
            "live={} needs an offset parameter",
            live.unwrap_or_default()
        ))
        .into());
    }
    let position = query.position.unwrap_or(Position::Start);
    let settings = broker.durable_settings().clone();
    match live {
        None => {}
        Some("long-poll") => {}
        Some("sse") => return sse(broker, caller, path, position, query.cursor, slots).await,
        Some(other) => {
            return Err(Refusal::BadRequest(format!(
                "live={other:?} is not a read mode; use long-poll or sse"
            ))
            .into())
        }
    }
    let long_poll = live == Some("long-poll");
    let wait_ms = if long_poll { settings.long_poll_ms } else { 0 };
    let chunk = broker.ds_read(caller, path, position, wait_ms).await?;
    let now_ms = broker.now_ms();
    if long_poll && chunk.records.is_empty() && chunk.next == chunk.start {
        let mut builder = HttpResponse::NoContent();
        put_offset(&mut builder, chunk.next);
        builder.insert_header((STREAM_UP_TO_DATE, "true"));
        if chunk.closed {
            builder.insert_header((STREAM_CLOSED, "true"));
        } else {
            builder.insert_header((STREAM_CURSOR, cursor(now_ms, query.cursor.as_deref())));
        }
        return Ok(builder.finish());
    }
    let start = match position {
        Position::At(offset) => Some(offset),
        Position::Now => Some(chunk.start),
        Position::Start => None,
    };
    let etag = entity_tag(chunk.created_ms, start, chunk.next, chunk.closed);
    let matches = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches && !long_poll {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    let mut builder = HttpResponse::Ok();
    builder.insert_header((header::CONTENT_TYPE, chunk.config.content_type.clone()));
    put_offset(&mut builder, chunk.next);
    builder.insert_header((header::ETAG, etag));
    if chunk.up_to_date {
        builder.insert_header((STREAM_UP_TO_DATE, "true"));
    }
    if chunk.closed {
        builder.insert_header((STREAM_CLOSED, "true"));
    }
    if long_poll && !chunk.closed {
        builder.insert_header((STREAM_CURSOR, cursor(now_ms, query.cursor.as_deref())));
    }
    let cache = if position == Position::Now {
        "no-store"
    } else {
        "private, max-age=60, stale-while-revalidate=300"
    };
    builder.insert_header((header::CACHE_CONTROL, cache));
    let body = chunk_body(&chunk);
    drop(chunk.held);
    Ok(builder.body(body))
}

/// One SSE event: `event: <kind>` and the payload split into `data:` lines.
fn sse_event(kind: &str, payload: &str, out: &mut String) {
    out.push_str("event: ");
    out.push_str(kind);
    out.push('\n');
    for line in payload.split("\r\n").flat_map(|l| l.split(['\r', '\n'])) {
        out.push_str("data:");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
}

fn control_event(next: u64, cursor: Option<String>, up_to_date: bool, closed: bool) -> String {
    let mut control = serde_json::Map::new();
    control.insert("streamNextOffset".into(), token(next).into());
    if closed {
        control.insert("streamClosed".into(), true.into());
        control.insert("upToDate".into(), true.into());
    } else {
        if let Some(cursor) = cursor {
            control.insert("streamCursor".into(), cursor.into());
        }
        if up_to_date {
            control.insert("upToDate".into(), true.into());
        }
    }
    let mut out = String::new();
    sse_event(
        "control",
        &serde_json::Value::Object(control).to_string(),
        &mut out,
    );
    out
}

/// The events of one chunk: its data (when it has any) and the control event after it.
fn chunk_events(chunk: &Chunk, base64: bool, cursor: String) -> String {
    let mut out = String::new();
    if !chunk.records.is_empty() {
        let body = chunk_body(chunk);
        let payload = if base64 {
            base64::engine::general_purpose::STANDARD.encode(&body)
        } else {
            String::from_utf8_lossy(&body).into_owned()
        };
        sse_event("data", &payload, &mut out);
    }
    out.push_str(&control_event(
        chunk.next,
        Some(cursor),
        chunk.up_to_date,
        chunk.closed,
    ));
    out
}

/// An SSE read: the first chunk at once, then a chunk whenever data arrives (a control event
/// with `upToDate` after each long poll that found none), until the stream closes or
/// `durable_streams.sse_connection_ms` passes; the client then reconnects from its last offset.
/// The response holds one of the broker's event-stream slots (`limits.streams_max`, per
/// principal `limits.streams_per_principal_max`).
async fn sse(
    broker: &Arc<Broker>,
    caller: &Caller,
    path: &str,
    position: Position,
    client_cursor: Option<String>,
    slots: &Arc<StreamSlots>,
) -> Result<HttpResponse, DsError> {
    let slot = slots
        .try_acquire(&caller.principal.name)
        .map_err(|refusal| {
            let detail = match refusal {
                SlotRefusal::Broker(max) => format!("{max} event streams are open on this broker"),
                SlotRefusal::Principal(max) => {
                    format!("you hold {max} event streams on this broker")
                }
            };
            DsError::Broker(BrokerError::TooMany(format!("{detail}; close one first")))
        })?;
    let settings = broker.durable_settings().clone();
    let first = broker.ds_read(caller, path, position, 0).await?;
    let base64 = !first.config.is_text();
    let first_cursor = cursor(broker.now_ms(), client_cursor.as_deref());
    let opening = chunk_events(&first, base64, first_cursor.clone());
    let stream = SseStream {
        broker: broker.clone(),
        caller: caller.clone(),
        path: path.to_string(),
        next: first.next,
        base64,
        cursor: first_cursor,
        ends: Instant::now() + Duration::from_millis(settings.sse_connection_ms),
        long_poll_ms: settings.long_poll_ms,
        pending: Some(opening),
        done: first.closed,
        _slot: slot,
    };
    drop(first);
    let body = futures_util::stream::unfold(stream, next_events);
    let mut builder = HttpResponse::Ok();
    builder
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if base64 {
        builder.insert_header(("stream-sse-data-encoding", "base64"));
    }
    Ok(builder.streaming(body))
}

/// An open SSE read.
struct SseStream {
    broker: Arc<Broker>,
    caller: Caller,
    path: String,
    next: u64,
    base64: bool,
    cursor: String,
    ends: Instant,
    long_poll_ms: u64,
    /// Events not yet sent.
    pending: Option<String>,
    /// The stream closed: nothing follows what is pending.
    done: bool,
    _slot: StreamSlot,
}

async fn next_events(mut stream: SseStream) -> Option<(Result<Bytes, Infallible>, SseStream)> {
    if let Some(events) = stream.pending.take() {
        return Some((Ok(Bytes::from(events)), stream));
    }
    let now = Instant::now();
    if stream.done || now >= stream.ends {
        return None;
    }
    let wait_ms = (stream.ends - now)
        .as_millis()
        .min(u128::from(stream.long_poll_ms)) as u64;
    let chunk = stream
        .broker
        .ds_read(
            &stream.caller,
            &stream.path,
            Position::At(stream.next),
            wait_ms.max(1),
        )
        .await
        .ok()?;
    stream.next = chunk.next;
    stream.done = chunk.closed;
    stream.cursor = cursor(stream.broker.now_ms(), Some(&stream.cursor));
    let events = chunk_events(&chunk, stream.base64, stream.cursor.clone());
    Some((Ok(Bytes::from(events)), stream))
}

fn refusal_response(error: DsError) -> HttpResponse {
    let (refusal, tail) = match error {
        DsError::Broker(error) => return error.error_response(),
        DsError::Refused { refusal, tail } => (refusal, tail),
    };
    let (status, slug) = match &refusal {
        Refusal::NotFound => (StatusCode::NOT_FOUND, "not-found"),
        Refusal::BadRequest(_) | Refusal::EpochMustStartAtZero => {
            (StatusCode::BAD_REQUEST, "bad-request")
        }
        Refusal::Closed
        | Refusal::ContentTypeMismatch { .. }
        | Refusal::SeqRegression { .. }
        | Refusal::SequenceGap { .. }
        | Refusal::ConfigMismatch
        | Refusal::SourceDeleted => (StatusCode::CONFLICT, "conflict"),
        Refusal::StaleEpoch { .. } => (StatusCode::FORBIDDEN, "stale-producer-epoch"),
        Refusal::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
        Refusal::Gone(_) => (StatusCode::GONE, "gone"),
    };
    let mut response = problem(status, slug, refusal.to_string());
    let headers = response.headers_mut();
    let mut put = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    match &refusal {
        Refusal::Closed => {
            put(STREAM_CLOSED, "true".into());
            if let Some(tail) = tail {
                put(STREAM_NEXT_OFFSET, token(tail));
            }
        }
        Refusal::StaleEpoch { current } => put(PRODUCER_EPOCH, current.to_string()),
        Refusal::SequenceGap { expected, received } => {
            put("producer-expected-seq", expected.to_string());
            put("producer-received-seq", received.to_string());
        }
        _ => {}
    }
    response
}
