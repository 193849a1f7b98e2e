//! The request-body budget (`limits.body_bytes_in_flight_max`): a request that carries a body
//! reserves its size before any extractor reads it, and holds the bytes until its response is
//! built. When the broker is already handling as many body bytes as the budget allows, the
//! request waits up to `limits.budget_wait_ms` and is then answered 503 `overloaded` with
//! Retry-After, its body unread and nothing written.
//!
//! Runs after `authenticate_first`, so a caller without a valid token never holds budget. The
//! size is the declared `Content-Length`; a body without one (chunked) reserves
//! `http.body_bytes_max`, the most the extractors will read of it.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};
use std::sync::Arc;

use crate::broker::{Broker, BrokerError};

/// `http.body_bytes_max`, as app data for this middleware.
#[derive(Clone, Copy, Debug)]
pub struct BodyBytesMax(pub usize);

/// Bytes a request's body will take, if it has one.
fn body_bytes(request: &ServiceRequest, body_bytes_max: u64) -> Option<u64> {
    let headers = request.headers();
    if let Some(length) = headers.get(header::CONTENT_LENGTH) {
        // An unparsable length is refused by the extractor; reserve the most it would read.
        let length = length
            .to_str()
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(body_bytes_max);
        return (length > 0).then_some(length.min(body_bytes_max));
    }
    headers
        .contains_key(header::TRANSFER_ENCODING)
        .then_some(body_bytes_max)
}

pub async fn reserve_body(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(broker) = request.app_data::<web::Data<Arc<Broker>>>().cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let body_bytes_max = request
        .app_data::<BodyBytesMax>()
        .map_or(u64::MAX, |max| max.0 as u64);
    let Some(bytes) = body_bytes(&request, body_bytes_max) else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let budgets = broker.budgets();
    let reservation = match budgets.body.reserve(bytes, bytes, budgets.wait).await {
        Ok(reservation) => reservation,
        Err(exhausted) => {
            let response = BrokerError::Overloaded(exhausted.to_string()).error_response();
            return Ok(request.into_response(response).map_into_boxed_body());
        }
    };
    let response = next.call(request).await?.map_into_boxed_body();
    drop(reservation);
    Ok(response)
}
