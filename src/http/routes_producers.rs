//! Routes and headers of idempotent produce: `POST /v1/producers` and the `Idempotency-Key` header.
//! Only converts HTTP shapes; the checks live in `broker`.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::api_doc::{
    Authenticated as AuthProblems, BadRequest, Forbidden, InsufficientStorage, TooLarge,
};
use super::extract::Authenticated;
use crate::broker::{Broker, BrokerError, IDEMPOTENCY_KEY_CHARS_MAX};
use crate::wire::{CreateProducer, ProducerCreated};

/// Bytes of a `POST /v1/producers` body read at most: the body is empty or `{}`, so anything
/// longer is refused (413) before more of it is read.
pub const CREATE_PRODUCER_BODY_BYTES_MAX: usize = 1024;

/// The request header that makes a produce idempotent without a producer id.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// `POST /v1/producers`: the body is empty or `{}`.
#[utoipa::path(post, path = "/v1/producers", tag = "messages", security(("bearer" = [])),
    request_body(content = Option<CreateProducer>, description = "Empty, or `{}`."),
    responses(
        (status = 201, description = "A producer id for idempotent produce.",
            body = ProducerCreated),
        BadRequest, TooLarge, AuthProblems, Forbidden, InsufficientStorage,
    ))]
pub async fn create_producer(
    broker: web::Data<Arc<Broker>>,
    caller: Authenticated,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, BrokerError> {
    let body = read_small_body(&request, payload).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<CreateProducer>(&body).map_err(|error| {
            BrokerError::BadRequest(format!("the body must be empty or {{}}: {error}"))
        })?;
    }
    let producer_id = broker.create_producer(&caller.0).await?;
    Ok(HttpResponse::Created().json(ProducerCreated { producer_id }))
}

/// The body of a create-producer request, refused as too large past
/// `CREATE_PRODUCER_BODY_BYTES_MAX` (declared or counted).
async fn read_small_body(
    request: &HttpRequest,
    mut payload: web::Payload,
) -> Result<Vec<u8>, BrokerError> {
    let too_large = || {
        BrokerError::TooLarge(format!(
            "the body must be empty or {{}}; at most {CREATE_PRODUCER_BODY_BYTES_MAX} bytes are read"
        ))
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > CREATE_PRODUCER_BODY_BYTES_MAX as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|error| BrokerError::BadRequest(format!("cannot read the body: {error}")))?;
        if body.len() + chunk.len() > CREATE_PRODUCER_BODY_BYTES_MAX {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The `Idempotency-Key` header, if present. Its content is checked by the broker; a value that
/// is not even text is refused here.
pub fn idempotency_key(request: &HttpRequest) -> Result<Option<String>, BrokerError> {
    let mut values = request.headers().get_all(IDEMPOTENCY_KEY_HEADER);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let refuse = || {
        BrokerError::BadRequest(format!(
            "Idempotency-Key must be one header of 1 to {IDEMPOTENCY_KEY_CHARS_MAX} visible ASCII characters"
        ))
    };
    if values.next().is_some() {
        return Err(refuse());
    }
    let text = value.to_str().map_err(|_| refuse())?;
    Ok(Some(text.to_string()))
}
