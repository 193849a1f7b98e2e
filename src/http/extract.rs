//! Request extractors: the bearer-token caller and the request's identity for audit events.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use rand::RngCore;

use crate::broker::{Broker, BrokerError, Caller, RequestInfo};

/// The id given to a request, also sent back in `x-request-id`.
#[derive(Clone)]
pub struct RequestId(pub String);

pub fn new_request_id() -> String {
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn request_info(request: &HttpRequest) -> RequestInfo {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_else(new_request_id);
    let source = request
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip());
    RequestInfo { request_id, source }
}

/// An authenticated caller; extracting it verifies the bearer token (401 otherwise).
pub struct Authenticated(pub Caller);

impl FromRequest for Authenticated {
    type Error = BrokerError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let broker = request.app_data::<web::Data<Arc<Broker>>>().cloned();
        let info = request_info(request);
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .map(|value| value.to_str().map(str::to_string));
        Box::pin(async move {
            let broker =
                broker.ok_or_else(|| BrokerError::Internal("broker state missing".into()))?;
            let token = match header {
                None => None,
                Some(Err(_)) => {
                    return Err(BrokerError::Unauthenticated(
                        "Authorization header is not valid text".into(),
                    ))
                }
                Some(Ok(value)) => match value.strip_prefix("Bearer ") {
                    Some(token) => Some(token.trim().to_string()),
                    None => {
                        return Err(BrokerError::Unauthenticated(
                            "Authorization header must be 'Bearer <token>'".into(),
                        ))
                    }
                },
            };
            broker
                .authenticate(token.as_deref(), info)
                .await
                .map(Authenticated)
        })
    }
}
