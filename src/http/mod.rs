//! The HTTPS + JSON API (actix-web over rustls): routes, the bearer-token extractor, DTOs, the one
//! error → status mapping, metrics, the listener that admits each connection (`listener`), and the
//! OpenAPI document generated from the route annotations (`openapi`, served at `/v1/openapi.json`).
//! Business decisions live in `broker` and below.

mod api_doc;
mod body_budget;
mod console;
pub mod dto;
pub mod dto_groups;
pub mod error;
pub mod extract;
mod listener;
pub mod metrics;
pub mod openapi;
mod record_json;
mod routes_admin;
mod routes_cluster;
mod routes_data;
pub mod routes_ds;
mod routes_groups;
mod routes_producers;
mod sized_json;
pub mod sse;
mod sse_body;
mod sse_slots;
#[cfg(test)]
mod wire_tests;

use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::{Server, Service};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpMessage, HttpRequest};

use crate::admission::AdmissionMetrics;
use crate::broker::Broker;
use error::problem;
use extract::{new_request_id, RequestId};
use metrics::{Metrics, RequestLabels};

pub use listener::ConnectionLimits;

/// Settings of the HTTP server.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub body_bytes_max: usize,
    /// Workers, connection caps and deadlines of the listener.
    pub connections: ConnectionLimits,
    /// Where refused connections are counted; rendered at `/metrics` with the other series.
    pub admission: AdmissionMetrics,
}

fn json_error(error: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let (status, detail) = match &error {
        JsonPayloadError::OverflowKnownLength { length, limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is {length} bytes; at most {limit} are allowed"),
        ),
        JsonPayloadError::Overflow { limit } => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {limit} bytes"),
        ),
        JsonPayloadError::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json".to_string(),
        ),
        JsonPayloadError::Deserialize(inner) => (
            StatusCode::BAD_REQUEST,
            format!("invalid JSON body: {inner}"),
        ),
        other => (
            StatusCode::BAD_REQUEST,
            format!("cannot read the body: {other}"),
        ),
    };
    let slug = if status == StatusCode::PAYLOAD_TOO_LARGE {
        "too-large"
    } else {
        "bad-request"
    };
    actix_web::error::InternalError::from_response(error, problem(status, slug, detail)).into()
}

fn query_error(error: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let detail = format!("invalid query string: {error}");
    actix_web::error::InternalError::from_response(
        error,
        problem(StatusCode::BAD_REQUEST, "bad-request", detail),
    )
    .into()
}

fn path_error(error: PathError, _: &HttpRequest) -> actix_web::Error {
    let detail = format!("invalid path parameter: {error}");
    actix_web::error::InternalError::from_response(
        error,
        problem(StatusCode::BAD_REQUEST, "bad-request", detail),
    )
    .into()
}

/// Registers every route of the v1 API.
pub fn configure(config: &mut web::ServiceConfig) {
    use routes_admin as admin;
    use routes_data as data;
    config
        .route("/healthz", web::get().to(admin::healthz))
        .route("/readyz", web::get().to(admin::readyz))
        .route("/metrics", web::get().to(admin::metrics))
        .route("/v1/openapi.json", web::get().to(openapi::openapi_json))
        .route("/v1/auth/token", web::post().to(data::token))
        .route("/v1/auth/revoke", web::post().to(data::revoke))
        .route("/v1/auth/keys", web::get().to(admin::list_signing_keys))
        .route("/v1/auth/keys", web::post().to(admin::rotate_signing_key))
        .route("/v1/whoami", web::get().to(data::whoami))
        .route("/v1/topics", web::get().to(data::list_topics))
        .route("/v1/topics", web::post().to(data::create_topic))
        .route("/v1/topics/{topic}", web::get().to(data::describe_topic))
        .route("/v1/topics/{topic}", web::delete().to(data::delete_topic))
        .route("/v1/topics/{topic}/messages", web::post().to(data::produce))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/messages",
            web::get().guard(sse::AcceptsEventStream).to(sse::stream),
        )
        .route(
            "/v1/topics/{topic}/partitions/{partition}/messages",
            web::get().to(data::fetch),
        )
        .route("/v1/users", web::get().to(admin::list_users))
        .route("/v1/users", web::post().to(admin::create_user))
        .route("/v1/users/{user}", web::delete().to(admin::delete_user))
        .route(
            "/v1/users/{user}/password",
            web::put().to(admin::set_password),
        )
        .route(
            "/v1/users/{user}/revoke-tokens",
            web::post().to(admin::revoke_user_tokens),
        )
        .route("/v1/acls", web::get().to(admin::list_acls))
        .route("/v1/acls/explain", web::get().to(admin::explain_acl))
        .route("/v1/acls", web::post().to(admin::create_acl))
        .route("/v1/acls/{id}", web::delete().to(admin::delete_acl))
        .route("/v1/audit", web::get().to(admin::audit))
        .route("/v1/audit/head", web::get().to(admin::audit_head))
        .route("/v1/cluster", web::get().to(routes_cluster::cluster))
        .route(
            "/v1/cluster/brokers",
            web::post().to(routes_cluster::add_broker),
        )
        .route(
            "/v1/cluster/brokers/{id}/decommission",
            web::post().to(routes_cluster::decommission),
        )
        .route(
            "/v1/cluster/rebalance",
            web::post().to(routes_cluster::rebalance),
        )
        .route("/v1/groups", web::get().to(routes_groups::list))
        .route("/v1/groups/{group}", web::get().to(routes_groups::describe))
        .route(
            "/v1/groups/{group}/members",
            web::post().to(routes_groups::join),
        )
        .route(
            "/v1/groups/{group}/members/{member}",
            web::delete().to(routes_groups::leave),
        )
        .route(
            "/v1/groups/{group}/members/{member}/heartbeat",
            web::post().to(routes_groups::heartbeat),
        )
        .route(
            "/v1/groups/{group}/members/{member}/records",
            web::get().to(routes_groups::poll),
        )
        .route(
            "/v1/groups/{group}/offsets",
            web::post().to(routes_groups::commit),
        )
        .route(
            "/v1/producers",
            web::post().to(routes_producers::create_producer),
        )
        .route(
            "/v1/stream-tickets",
            web::post().to(data::create_stream_ticket),
        )
        .configure(console::configure)
        .configure(routes_ds::configure);
}

/// Builds the server on an already bound listener. `tls` is `None` only for explicit plain-HTTP
/// setups. Every connection first passes the listener's admission step (`listener`).
pub fn serve(
    listener: std::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
    broker: Arc<Broker>,
    settings: HttpSettings,
) -> std::io::Result<Server> {
    let metrics = Arc::new(Metrics::with_budgets(
        &settings.admission,
        Some(broker.budgets().clone()),
        Some({
            let broker = broker.clone();
            Arc::new(move || broker.replica_counts()) as metrics::ReplicaCount
        }),
    ));
    let stream_slots = sse::StreamSlots::new(
        broker.limits().streams_max,
        broker.limits().streams_per_principal_max,
        metrics.open_streams.clone(),
    );
    let body_bytes_max = settings.body_bytes_max;
    let factory = move || {
        let metrics_for_middleware = metrics.clone();
        App::new()
            .app_data(web::Data::new(broker.clone()))
            .app_data(web::Data::new(metrics.clone()))
            .app_data(web::Data::new(stream_slots.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(body_bytes_max)
                    .error_handler(json_error),
            )
            .app_data(web::PayloadConfig::default().limit(body_bytes_max))
            .app_data(body_budget::BodyBytesMax(body_bytes_max))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .wrap(actix_web::middleware::from_fn(body_budget::reserve_body))
            .wrap(actix_web::middleware::from_fn(extract::authenticate_first))
            .wrap_fn(move |request, service| {
                let id = new_request_id();
                request.extensions_mut().insert(RequestId(id.clone()));
                let method = metrics::method_label(request.method()).to_string();
                let started = Instant::now();
                let metrics = metrics_for_middleware.clone();
                let response = service.call(request);
                async move {
                    let mut response = response.await?;
                    let status = response.status().as_u16();
                    metrics
                        .requests
                        .get_or_create(&RequestLabels { method, status })
                        .inc();
                    metrics
                        .request_seconds
                        .observe(started.elapsed().as_secs_f64());
                    if let Ok(value) = HeaderValue::from_str(&id) {
                        response
                            .headers_mut()
                            .insert(HeaderName::from_static("x-request-id"), value);
                    }
                    Ok(response)
                }
            })
            .configure(configure)
            .default_service(web::to(routes_admin::not_found))
    };
    listener::serve(
        listener,
        tls,
        factory,
        &settings.connections,
        settings.admission,
    )
}
