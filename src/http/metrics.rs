//! Prometheus metrics for the HTTP layer, rendered at `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::admission::AdmissionMetrics;

/// Labels of the request counter. Both come from closed sets, so a client cannot grow the
/// metrics: `method` is [`method_label`], `status` a status the broker answered with.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub status: u16,
}

/// The method label of a request: one of the methods the API uses, or `OTHER` for any other
/// token a client sends.
pub fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Histogram,
    pub produced_records: Counter,
    pub fetched_records: Counter,
    /// Event streams open right now.
    pub open_streams: Gauge,
}

impl Metrics {
    /// The registry of one broker's HTTP layer, with the admission series of its listeners.
    pub fn new(admission: &AdmissionMetrics) -> Metrics {
        let mut registry = Registry::with_prefix("palisade");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let produced_records = Counter::default();
        let fetched_records = Counter::default();
        registry.register(
            "http_requests",
            "HTTP requests by method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency",
            request_seconds.clone(),
        );
        registry.register(
            "produced_records",
            "Records acknowledged to producers",
            produced_records.clone(),
        );
        registry.register(
            "fetched_records",
            "Records returned to consumers",
            fetched_records.clone(),
        );
        registry.register(
            "parked_fetches",
            "Long-poll fetches waiting for records",
            crate::broker::parked_fetches_gauge(),
        );
        registry.register(
            "audit_failures_pending",
            "Unauthenticated failures counted for an aggregate audit event not yet written",
            crate::broker::failures_pending_gauge(),
        );
        registry.register(
            "peer_raft_messages_refused",
            "Raft messages from peer brokers dropped because the sender has no authority in the group, by message kind and reason",
            crate::broker::refused_raft_messages(),
        );
        let open_streams = Gauge::default();
        registry.register(
            "open_streams",
            "Server-Sent Events streams open right now",
            open_streams.clone(),
        );
        registry.register(
            "refused_connections",
            "Inbound connections closed unanswered for a connection or handshake cap, by \
             listener and reason",
            admission.refused.clone(),
        );
        registry.register(
            "connection_slots",
            "Connection slots in use: open client connections (http), inbound handshakes in \
             progress (peer)",
            admission.in_use.clone(),
        );
        registry.register(
            "hello_timeouts",
            "Inbound connections closed for sending nothing within the hello timeout",
            admission.hello_timeouts.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            produced_records,
            fetched_records,
            open_streams,
        }
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = encode(&mut text, &self.registry) {
            tracing::error!(%error, "cannot encode metrics");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(&AdmissionMetrics::default())
    }
}
