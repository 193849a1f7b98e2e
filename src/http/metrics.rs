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

/// Labels of the memory-budget gauges: `pool` is `body` or `fetch`, `kind` is `used` or `total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BudgetLabels {
    pub pool: &'static str,
    pub kind: &'static str,
}

/// Labels of the replica gauge: `state` is `active` or `quiesced`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReplicaLabels {
    pub state: &'static str,
}

/// The process's memory as the kernel counts it, and the broker's pools and replicas, read at
/// each scrape.
struct Memory {
    resident: Gauge,
    resident_peak: Gauge,
    cpu_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    budgets: Family<BudgetLabels, Gauge>,
    pools: Option<crate::broker::Budgets>,
    replicas: Family<ReplicaLabels, Gauge>,
    count_replicas: Option<ReplicaCount>,
}

/// How many partition replicas run on the broker, and how many of them are quiesced.
pub type ReplicaCount = std::sync::Arc<dyn Fn() -> (usize, usize) + Send + Sync>;

impl Memory {
    fn refresh(&self) {
        if let Some(seconds) = process_cpu_seconds() {
            self.cpu_seconds.set(seconds);
        }
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            for (key, gauge) in [("VmRSS:", &self.resident), ("VmHWM:", &self.resident_peak)] {
                let kib = status
                    .lines()
                    .find_map(|line| line.strip_prefix(key))
                    .and_then(|rest| {
                        rest.trim()
                            .trim_end_matches("kB")
                            .trim()
                            .parse::<i64>()
                            .ok()
                    });
                if let Some(kib) = kib {
                    gauge.set(kib * 1024);
                }
            }
        }
        if let Some(count) = &self.count_replicas {
            let (total, quiesced) = count();
            for (state, count) in [("active", total - quiesced), ("quiesced", quiesced)] {
                self.replicas
                    .get_or_create(&ReplicaLabels { state })
                    .set(count as i64);
            }
        }
        if let Some(pools) = &self.pools {
            for (pool, budget) in [("body", &pools.body), ("fetch", &pools.fetch)] {
                for (kind, bytes) in [
                    ("used", budget.used_bytes()),
                    ("total", budget.total_bytes()),
                ] {
                    self.budgets
                        .get_or_create(&BudgetLabels { pool, kind })
                        .set(bytes as i64);
                }
            }
        }
    }
}

/// User plus system CPU time of this process, in seconds.
fn process_cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which is valid and
    // sized for one; the return value says whether it did.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if status != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it filled the struct (and zeroed is a valid rusage).
    let usage = unsafe { usage.assume_init() };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

pub struct Metrics {
    registry: Registry,
    memory: Memory,
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
        Metrics::with_budgets(admission, None, None)
    }

    /// Also reports how much of each memory budget is in use, and how many partition replicas
    /// are active and quiesced.
    pub fn with_budgets(
        admission: &AdmissionMetrics,
        pools: Option<crate::broker::Budgets>,
        replicas: Option<ReplicaCount>,
    ) -> Metrics {
        let mut registry = Registry::with_prefix("palisade");
        let memory = Memory {
            resident: Gauge::default(),
            resident_peak: Gauge::default(),
            cpu_seconds: Gauge::default(),
            budgets: Family::default(),
            pools,
            replicas: Family::default(),
            count_replicas: replicas,
        };
        registry.register(
            "process_resident_bytes",
            "Resident memory of the broker process (VmRSS)",
            memory.resident.clone(),
        );
        registry.register(
            "process_resident_peak_bytes",
            "Peak resident memory of the broker process since it started (VmHWM)",
            memory.resident_peak.clone(),
        );
        registry.register(
            "process_cpu_seconds",
            "CPU time the broker process used since it started, user and system (getrusage)",
            memory.cpu_seconds.clone(),
        );
        registry.register(
            "memory_budget_bytes",
            "Bytes of each memory budget (limits.*_bytes_in_flight_max) in use and in total",
            memory.budgets.clone(),
        );
        registry.register(
            "replicas",
            "Partition replicas on this broker, active or quiesced (an idle group whose Raft \
             clock is stopped)",
            memory.replicas.clone(),
        );
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
            memory,
            requests,
            request_seconds,
            produced_records,
            fetched_records,
            open_streams,
        }
    }

    pub fn render(&self) -> String {
        self.memory.refresh();
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
