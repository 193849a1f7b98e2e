//! Request extractors: the bearer-token caller and the request's identity for audit events.

use std::future::{ready, Ready};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::ResponseError;
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

/// Paths anyone may call without a token. Every other path needs one, including paths no route
/// matches and other spellings of these (percent-encoded, a trailing slash): authentication is
/// checked on an allowlist of exact paths, so a spelling the router decodes differently cannot
/// skip it.
pub const PUBLIC_PATHS: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/auth/token",
    "/v1/openapi.json",
];

/// The URL prefix of the Durable Streams protocol (`routes_ds`).
pub const STREAMS_PREFIX: &str = "/ds/";

/// Whether `path` (as sent) is under the Durable Streams prefix, where a request without an
/// Authorization header may act as `durable_streams.anonymous_principal`.
pub fn is_stream_path(path: &str) -> bool {
    path.starts_with(STREAMS_PREFIX)
}

/// The web console's files (`console`), served to anyone: the console signs in through the API.
pub const CONSOLE_PATHS: [&str; 4] = [
    "/console",
    "/console/",
    "/console/app.js",
    "/console/app.css",
];

/// Whether a request to `path` (as sent, before any decoding) must carry a valid token.
pub fn needs_token(path: &str) -> bool {
    !PUBLIC_PATHS.contains(&path) && !CONSOLE_PATHS.contains(&path)
}

/// Whether any entry of any `Accept` header is `text/event-stream` (parameters ignored).
pub fn accepts_event_stream(headers: &actix_web::http::header::HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|entry| {
            let media_type = entry.split(';').next().unwrap_or_default().trim();
            media_type.eq_ignore_ascii_case("text/event-stream")
        })
}

/// The topic and partition of an event-stream request that carries `?ticket=` instead of an
/// Authorization header: a GET of `/v1/topics/{topic}/partitions/{p}/messages` (as sent) that
/// accepts `text/event-stream`. `None` for any other request.
fn ticketed_stream(request: &ServiceRequest) -> Option<(String, u32, String)> {
    if request.method() != actix_web::http::Method::GET || !accepts_event_stream(request.headers())
    {
        return None;
    }
    let rest = request.path().strip_prefix("/v1/topics/")?;
    let mut parts = rest.split('/');
    let (topic, literal, partition, messages) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if literal != "partitions" || messages != "messages" || parts.next().is_some() {
        return None;
    }
    let partition = partition.parse().ok()?;
    let ticket = form_urlencoded::parse(request.query_string().as_bytes())
        .find(|(key, _)| key == "ticket")?
        .1
        .into_owned();
    Some((topic.to_string(), partition, ticket))
}

/// The bearer token of a request, or why the Authorization header is unusable.
pub fn bearer(request: &HttpRequest) -> Result<Option<String>, BrokerError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| {
        BrokerError::Unauthenticated("Authorization header is not valid text".into())
    })?;
    match value.strip_prefix("Bearer ") {
        Some(token) => Ok(Some(token.trim().to_string())),
        None => Err(BrokerError::Unauthenticated(
            "Authorization header must be 'Bearer <token>'".into(),
        )),
    }
}

/// Middleware: verifies the bearer token before any other extractor reads the path, query or body,
/// so an unauthenticated caller gets 401 and the broker never parses its body.
pub async fn authenticate_first(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let stream_path = is_stream_path(request.path());
    // A CORS preflight carries no credentials and is answered with headers only.
    let preflight = stream_path && request.method() == actix_web::http::Method::OPTIONS;
    if needs_token(request.path()) && !preflight {
        let outcome = match request.app_data::<web::Data<Arc<Broker>>>().cloned() {
            None => Err(BrokerError::Internal("broker state missing".into())),
            Some(broker) => match bearer(request.request()) {
                Err(error) => {
                    let info = request_info(request.request());
                    Err(broker.reject_token(&info, error.to_string()).await)
                }
                Ok(None)
                    if stream_path && broker.durable_settings().anonymous_principal.is_some() =>
                {
                    let info = request_info(request.request());
                    Ok(broker.anonymous_caller(info))
                }
                Ok(None) => {
                    let info = request_info(request.request());
                    match ticketed_stream(&request) {
                        Some((topic, partition, ticket)) => {
                            broker
                                .redeem_stream_ticket(&ticket, &topic, partition, info)
                                .await
                        }
                        None => broker.authenticate(None, info).await,
                    }
                }
                Ok(token) => {
                    let info = request_info(request.request());
                    broker.authenticate(token.as_deref(), info).await
                }
            },
        };
        match outcome {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
            }
            Err(error) => {
                let response = error.error_response();
                return Ok(request.into_response(response).map_into_boxed_body());
            }
        }
    }
    Ok(next.call(request).await?.map_into_boxed_body())
}

/// The authenticated caller of a request (verified by `authenticate_first`).
pub struct Authenticated(pub Caller);

impl FromRequest for Authenticated {
    type Error = BrokerError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = request.extensions().get::<Caller>().cloned();
        ready(
            caller
                .map(Authenticated)
                .ok_or_else(|| BrokerError::Unauthenticated("missing bearer token".into())),
        )
    }
}
