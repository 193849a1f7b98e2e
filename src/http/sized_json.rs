//! `SizedJson<T>`: a JSON request body read into one buffer of its declared length.
//!
//! actix's `Json` starts from an 8 KiB buffer and doubles it as the body arrives, copying what it
//! read at every step and ending with up to twice the body's size allocated. The produce route
//! takes bodies of up to `http.body_bytes_max`, already reserved in the body budget by their
//! `Content-Length`, so it reads them here into a buffer of exactly that size. Refusals are the
//! ones `Json` gives, mapped to the same problem bodies (`json_error`): a wrong content type,
//! a body over `http.body_bytes_max` (declared or counted), a body that does not parse.

use actix_web::dev::Payload;
use actix_web::error::JsonPayloadError;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::body_budget::BodyBytesMax;

/// Buffer for a body without a `Content-Length` (chunked); it grows from there.
const UNSIZED_START_BYTES: usize = 8 * 1024;

/// A JSON body of type `T`.
pub struct SizedJson<T>(pub T);

impl<T> SizedJson<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for SizedJson<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let request = request.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let limit = request
                .app_data::<BodyBytesMax>()
                .map_or(usize::MAX, |max| max.0);
            match read(&request, &mut payload, limit).await {
                Ok(value) => Ok(SizedJson(value)),
                Err(error) => Err(super::json_error(error, &request)),
            }
        })
    }
}

async fn read<T: DeserializeOwned>(
    request: &HttpRequest,
    payload: &mut Payload,
    limit: usize,
) -> Result<T, JsonPayloadError> {
    use actix_web::mime;
    let is_json = matches!(request.mime_type(), Ok(Some(mime))
        if mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON));
    if !is_json {
        return Err(JsonPayloadError::ContentType);
    }
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<usize>().ok());
    if let Some(length) = length {
        if length > limit {
            return Err(JsonPayloadError::OverflowKnownLength { length, limit });
        }
    }
    let mut body = Vec::with_capacity(length.unwrap_or(UNSIZED_START_BYTES).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(JsonPayloadError::Payload)?;
        if body.len() + chunk.len() > limit {
            return Err(JsonPayloadError::Overflow { limit });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(JsonPayloadError::Deserialize)
}
