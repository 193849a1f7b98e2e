//! Routes and headers of idempotent produce: `POST /v1/producers` and the `Idempotency-Key` header.
//! Only converts HTTP shapes; the checks live in `broker`.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};

use super::api_doc::{
    Authenticated as AuthProblems, BadRequest, BodyRefused, Forbidden, InsufficientStorage,
};
use super::extract::Authenticated;
use crate::broker::{Broker, BrokerError, IDEMPOTENCY_KEY_CHARS_MAX};
use crate::wire::{CreateProducer, ProducerCreated};

/// The request header that makes a produce idempotent without a producer id.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// `POST /v1/producers`: the body is empty or `{}`.
#[utoipa::path(post, path = "/v1/producers", tag = "messages", security(("bearer" = [])),
    request_body(content = Option<CreateProducer>, description = "Empty, or `{}`."),
    responses(
        (status = 201, description = "A producer id for idempotent produce.",
            body = ProducerCreated),
        BadRequest, BodyRefused, AuthProblems, Forbidden, InsufficientStorage,
    ))]
pub async fn create_producer(
    broker: web::Data<Arc<Broker>>,
    caller: Authenticated,
    body: web::Bytes,
) -> Result<HttpResponse, BrokerError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<CreateProducer>(&body).map_err(|error| {
            BrokerError::BadRequest(format!("the body must be empty or {{}}: {error}"))
        })?;
    }
    let producer_id = broker.create_producer(&caller.0).await?;
    Ok(HttpResponse::Created().json(ProducerCreated { producer_id }))
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
