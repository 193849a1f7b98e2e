//! Streaming consume over Server-Sent Events: `GET /v1/topics/{topic}/partitions/{p}/messages`
//! with `Accept: text/event-stream`.
//!
//! Owns the route's request side: choosing the route by `Accept`, reading the start position
//! (`Last-Event-ID` wins over `?offset=`), the per-broker bound on open streams, and the response
//! headers. Every refusal happens here, before the stream starts, as a problem+json response.
//! The body (events, keep-alives, the error event) is [`super::sse_body`]. Reading and
//! authorization are the broker's; this module must not decide who may read what.

use std::sync::Arc;

use actix_web::guard::{Guard, GuardContext};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::error::problem;
use super::extract::Authenticated;
use super::metrics::Metrics;
use super::routes_data::LEADER_HEADER;
use super::sse_body::{self, EventCursor};
use super::sse_slots::SlotRefusal;
pub use super::sse_slots::StreamSlots;
use crate::broker::{Broker, BrokerError, StreamStart};

/// The media type of an event stream.
pub const EVENT_STREAM: &str = "text/event-stream";

/// The header a reconnecting event-stream client sends with the id of the last event it saw.
pub const LAST_EVENT_ID: &str = "last-event-id";

/// Seconds a client refused for lack of a stream slot should wait before trying again.
const STREAMS_FULL_RETRY_AFTER_S: u64 = 5;

/// Selects the streaming route when the client accepts `text/event-stream` (any entry of any
/// `Accept` header, parameters ignored); other requests fall through to the JSON fetch.
pub struct AcceptsEventStream;

impl Guard for AcceptsEventStream {
    fn check(&self, context: &GuardContext<'_>) -> bool {
        super::extract::accepts_event_stream(context.head().headers())
    }
}

/// Query of a stream request; unknown keys are a 400 like on every other route.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// A decimal offset, `earliest` or `latest`.
    pub offset: Option<String>,
    /// A stream ticket, used by `extract::authenticate_first` in place of a token.
    #[allow(dead_code)]
    pub ticket: Option<String>,
}

/// The start position: `Last-Event-ID` (resume after that offset), else `?offset=`, else the
/// partition's log start. A value that is not a decimal offset is a 400.
pub fn stream_start(
    last_event_id: Option<&HeaderValue>,
    offset: Option<&str>,
) -> Result<StreamStart, BrokerError> {
    if let Some(value) = last_event_id {
        let text = value.to_str().unwrap_or_default().trim();
        let last = text.parse::<u64>().map_err(|_| {
            BrokerError::BadRequest(format!(
                "Last-Event-ID must be the decimal offset of the last record received, got {:?}",
                String::from_utf8_lossy(value.as_bytes())
            ))
        })?;
        let next = last.checked_add(1).ok_or_else(|| {
            BrokerError::BadRequest(format!("Last-Event-ID {last} has no next offset"))
        })?;
        return Ok(StreamStart::Offset(next));
    }
    match offset.map(str::trim) {
        None | Some("earliest") => Ok(StreamStart::LogStart),
        Some("latest") => Ok(StreamStart::Latest),
        Some(text) => text.parse::<u64>().map(StreamStart::Offset).map_err(|_| {
            BrokerError::BadRequest(format!(
                "offset must be a decimal offset, 'earliest' or 'latest', got {text:?}"
            ))
        }),
    }
}

fn streams_full(refusal: SlotRefusal) -> HttpResponse {
    let detail = match refusal {
        SlotRefusal::Broker(streams_max) => format!(
            "this broker already serves {streams_max} event streams (limits.streams_max); \
             retry later, or read with the JSON fetch"
        ),
        SlotRefusal::Principal(per_principal_max) => format!(
            "you already hold {per_principal_max} event streams on this broker \
             (limits.streams_per_principal_max); close one, or read with the JSON fetch"
        ),
    };
    let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "too-many-streams", detail);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(STREAMS_FULL_RETRY_AFTER_S),
    );
    response
}

/// The streaming consume route.
pub async fn stream(
    broker: web::Data<Arc<Broker>>,
    metrics: web::Data<Arc<Metrics>>,
    slots: web::Data<Arc<StreamSlots>>,
    caller: Authenticated,
    request: HttpRequest,
    path: web::Path<(String, u32)>,
    query: web::Query<StreamQuery>,
) -> Result<HttpResponse, BrokerError> {
    let (topic, partition) = path.into_inner();
    let start = stream_start(
        request.headers().get(LAST_EVENT_ID),
        query.offset.as_deref(),
    )?;
    let slot = match slots.try_acquire(&caller.0.principal.name) {
        Ok(slot) => slot,
        Err(refusal) => return Ok(streams_full(refusal)),
    };
    let caller = caller.0;
    let first = broker
        .open_stream(&caller, &topic, partition, start)
        .await?;
    let leader = first.leader;
    let cursor = EventCursor::new(
        broker.get_ref().clone(),
        metrics.get_ref().clone(),
        caller,
        topic,
        partition,
        first,
        slot,
    );
    Ok(HttpResponse::Ok()
        .content_type(EVENT_STREAM)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((LEADER_HEADER, leader.to_string()))
        // Proxies that buffer responses (nginx) would hold events back.
        .insert_header(("x-accel-buffering", "no"))
        .streaming(sse_body::body(cursor)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).expect("header text")
    }

    #[test]
    fn last_event_id_wins_and_resumes_after_it() {
        let id = header("41");
        assert_eq!(
            stream_start(Some(&id), Some("3")),
            Ok(StreamStart::Offset(42))
        );
        assert_eq!(stream_start(None, Some("3")), Ok(StreamStart::Offset(3)));
        assert_eq!(stream_start(None, None), Ok(StreamStart::LogStart));
        assert_eq!(
            stream_start(None, Some("earliest")),
            Ok(StreamStart::LogStart)
        );
        assert_eq!(stream_start(None, Some("latest")), Ok(StreamStart::Latest));
    }

    #[test]
    fn unusable_start_values_are_bad_requests() {
        for text in ["", "abc", "-1", "1.5", "0x10"] {
            let id = header(text);
            assert!(
                matches!(
                    stream_start(Some(&id), None),
                    Err(BrokerError::BadRequest(_))
                ),
                "Last-Event-ID {text:?}"
            );
        }
        let last = header(&u64::MAX.to_string());
        assert!(matches!(
            stream_start(Some(&last), None),
            Err(BrokerError::BadRequest(_))
        ));
        assert!(matches!(
            stream_start(None, Some("newest")),
            Err(BrokerError::BadRequest(_))
        ));
    }
}
