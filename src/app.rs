//! Start-up and shutdown of one broker: open the store, start the writer, the controller, the
//! partition replicas and the audit log, then serve HTTP until the shutdown future resolves.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use rand::distr::{Alphanumeric, SampleString};

mod files;
mod peers;

use std::collections::HashMap;

use crate::admission::AdmissionMetrics;
use crate::audit::aggregate::FailureTally;
use crate::audit::log::AuditLog;
use crate::auth::jwt::{SigningKey, TokenSettings};
use crate::auth::limiter::LoginLimiter;
use crate::auth::password;
use crate::broker::balancer::{self, BalancerHandle, BalancerSettings};
use crate::broker::{Broker, BrokerParts, Budgets, Limits};
use crate::clock;
use crate::cluster::balance::BalanceSettings;
use crate::cluster::metadata::BrokerInfo;
use crate::cluster::{
    reconcile, Controller, ControllerError, MetaCommand, MetaError, TopicSpec, UserRecord,
    AUDIT_TOPIC,
};
use crate::config::{Config, HttpTransport};
use crate::http::{self, ConnectionLimits, HttpSettings};
use crate::partition::{AckPolicy, Host, Registry, ReplicaSettings};
use crate::raft::{GroupId, NodeId};
use crate::storage::{Store, Writer, WriterConfig};
use peers::Peers;

/// How long start-up waits for the controller and the audit partition to elect a leader.
const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// Proposals waiting for their apply per replica.
const PENDING_PROPOSALS_MAX: usize = 100_000;
/// Environment variable that sets the bootstrap admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "PALISADE_ADMIN_PASSWORD";

/// The OpenAPI document of the HTTP API, as `GET /v1/openapi.json` serves it (pretty JSON).
pub fn openapi_json() -> String {
    http::openapi::document_json()
}

/// Makes any panic in this process fatal: the message and location are printed (and logged),
/// then the process aborts. A broken invariant on an arbiter thread would otherwise end only
/// that replica's actor and leave the broker serving with a dead partition replica. The broker
/// binary installs it before `run`; tests that run brokers in-process do not.
pub fn abort_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        tracing::error!(%info, "broken invariant: stopping the broker");
        std::process::abort();
    }));
}

/// Runs a broker on `listener` until `shutdown` resolves. Must run inside an actix system.
pub async fn run(
    config: Config,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    crate::transport::tls::install_crypto_provider();
    check_identities(&config)?;
    let clock = start_clock();
    let (store, writer) = open_store(&config)?;
    let admission = AdmissionMetrics::default();
    let peers = match &config.peer {
        Some(peer) => Some(Peers::start(&config, peer, admission.clone()).await?),
        None => None,
    };
    let host = Host::new(
        store.clone(),
        writer,
        replica_settings(&config),
        config.raft.arbiters.max(1),
        peers.as_ref().map(Peers::outbound),
    );
    let controller_view = peers::ControllerView::default();
    let host = match &peers {
        Some(peers) => host
            .with_directory(peers::replica_directory(&config, controller_view.clone()))
            .with_links(peers.link_probe()),
        None => host,
    };
    let host = Arc::new(host);
    let controller = Controller::start(&host, controller_voters(&config), clock.clone())
        .await
        .context("cannot start the controller")?;
    let _ = controller_view.set(controller.subscribe());
    let registry = Arc::new(Registry::default());
    let caller = peers.as_ref().map(Peers::caller);
    let running = peers.map(|p| p.run(controller.replica().clone(), registry.clone()));
    wait_controller(&config, &controller).await?;
    if let Some(peers::Running { network, .. }) = &running {
        actix_web::rt::spawn(peers::follow_brokers(
            network.clone(),
            config.cluster.brokers.clone(),
            controller.subscribe(),
        ));
    }
    let http_address = listener.local_addr()?;
    if !config.cluster.join {
        bootstrap_once(&config, &controller, http_address).await?;
    }
    reconcile::delete_orphans(&host, &controller.state()).await;
    actix_web::rt::spawn(reconcile::run(
        host.clone(),
        registry.clone(),
        controller.subscribe(),
        clock.clone(),
    ));
    let audit_group = audit_group(&controller).await?;
    let audit = actix::Actor::start(AuditLog::new(
        store.clone(),
        registry.clone(),
        audit_group,
        clock.clone(),
    ));
    let liveness = running.as_ref().map(|running| {
        let network = running.network.clone();
        Arc::new(move |id| network.silence(crate::raft::NodeId(id))) as crate::broker::Liveness
    });
    let parts = broker_parts(&config, controller, registry.clone(), store, audit);
    let broker = Arc::new(Broker::new(BrokerParts {
        peers: caller,
        liveness,
        ..parts
    }));
    if let Some(running) = &running {
        let _ = running.broker.set(broker.clone());
    }
    report_self(&config, &broker, http_address).await?;
    actix_web::rt::spawn(crate::broker::groups::sessions::run(broker.clone()));
    actix_web::rt::spawn(crate::broker::run_audit_upkeep(
        broker.clone(),
        Duration::from_millis(config.auth.failure_audit_interval_ms),
    ));
    if running.is_some() {
        actix_web::rt::spawn(balancer::run(broker.clone(), balancer_settings(&config)));
    }
    serve_until(&config, listener, broker.clone(), admission, shutdown).await?;
    flush_audit_at_stop(&broker).await;
    if let Some(running) = &running {
        let still = running.serving.close(STOP_FORWARDED_WAIT).await;
        if still > 0 {
            tracing::warn!(
                still,
                "stopping while forwarded requests still run; their callers learn nothing"
            );
        }
    }
    registry.stop_all();
    if let Some(running) = running {
        running.network.shutdown().await;
    }
    Ok(())
}

/// How long a stopping broker waits for the forwarded requests it is serving to answer before
/// its peer links close.
const STOP_FORWARDED_WAIT: Duration = Duration::from_secs(5);

/// How long a stopping broker tries to write the failure counts it still holds.
const STOP_AUDIT_FLUSH_WAIT: Duration = Duration::from_secs(3);

/// Writes the pending failure aggregates before the replicas stop; a failure or the deadline
/// is logged with the count that is lost, never waited out.
async fn flush_audit_at_stop(broker: &Broker) {
    match tokio::time::timeout(STOP_AUDIT_FLUSH_WAIT, broker.flush_all_failures()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(count)) => tracing::info!(count, "wrote the pending failure counts to the audit log"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "the pending failure counts could not be written at stop")
        }
        Err(_) => tracing::warn!(
            wait_ms = STOP_AUDIT_FLUSH_WAIT.as_millis() as u64,
            "the pending failure counts were not written before the deadline at stop"
        ),
    }
}

/// Refuses to start with a peer certificate peers would refuse, or with an HTTPS identity that
/// would carry cluster authority (`transport::identity`).
fn check_identities(config: &Config) -> anyhow::Result<()> {
    use crate::transport::identity::{self, HttpsFiles, PeerFiles};
    let Some(peer) = &config.peer else {
        return Ok(());
    };
    let https = match &config.http.transport {
        HttpTransport::Tls { cert, key } => Some(HttpsFiles { cert, key }),
        HttpTransport::Plain => None,
    };
    let files = PeerFiles {
        ca_cert: &peer.ca_cert,
        cert: &peer.cert,
        key: &peer.key,
    };
    identity::check(files, https).context("the broker's certificates are not usable")
}

/// Opens the store in `broker.data_dir` (creating the directory) and starts its writer. The
/// directory is 0700 and the database 0600 (see `files`), as is every key file the config names.
fn open_store(config: &Config) -> anyhow::Result<(Store, Writer)> {
    files::private_dir(&config.broker.data_dir).context("broker.data_dir")?;
    for key in key_files(config) {
        files::private_key(key)?;
    }
    let database = config.broker.data_dir.join("palisade.redb");
    files::private_file(&database)?;
    let store = Store::open_with_cache(&database, config.storage.cache_bytes_max)
        .context("cannot open the store")?;
    let writer = store.start_writer(WriterConfig {
        requests_per_commit_max: config.storage.requests_per_commit_max,
        queue_bytes_max: config.storage.writer_queue_bytes_max,
    });
    Ok((store, writer))
}

/// The private keys the config names: the client API's and the peer link's.
fn key_files(config: &Config) -> Vec<&Path> {
    let mut keys = Vec::new();
    if let HttpTransport::Tls { key, .. } = &config.http.transport {
        keys.push(key.as_path());
    }
    if let Some(peer) = &config.peer {
        keys.push(peer.key.as_path());
    }
    keys
}

/// The broker's parts from the config and the started actors; no peers until `app` adds them.
fn broker_parts(
    config: &Config,
    controller: Controller,
    registry: Arc<Registry>,
    store: Store,
    audit: actix::Addr<AuditLog>,
) -> BrokerParts {
    BrokerParts {
        broker_id: config.broker.id,
        controller,
        registry,
        store,
        audit,
        tokens: token_settings(config),
        limits: limits(config),
        limiter: Mutex::new(LoginLimiter::new(
            config.auth.login_failures_max,
            config.auth.login_window_s * 1000,
            config.auth.login_tracked_keys_max,
        )),
        failures: Mutex::new(FailureTally::new(
            config.auth.failure_audit_interval_ms,
            config.auth.failure_audit_sources_max,
        )),
        password_checks: Arc::new(tokio::sync::Semaphore::new(config.auth.password_checks_max)),
        peers: None,
        forward_timeout: Duration::from_millis(config.cluster.forward_timeout_ms),
        leaders: Mutex::new(HashMap::new()),
        liveness: None,
        balancer: Arc::new(BalancerHandle::default()),
        group_sessions: Default::default(),
        budgets: Budgets::new(
            config.limits.body_bytes_in_flight_max,
            config.limits.fetch_bytes_in_flight_max,
            Duration::from_millis(config.limits.budget_wait_ms),
        ),
        disk: crate::storage::DiskGuard::new(
            &config.broker.data_dir,
            config.storage.disk_free_bytes_min,
        ),
        durable: crate::broker::durable::DurableSettings {
            anonymous_principal: config.durable_streams.anonymous_principal.clone(),
            long_poll_ms: config.durable_streams.long_poll_ms,
            sse_connection_ms: config.durable_streams.sse_connection_ms,
            streams_cached_max: config.durable_streams.streams_cached_max,
        },
    }
}

/// Serves the HTTP API on `listener` until `shutdown` resolves, then drains it.
async fn serve_until(
    config: &Config,
    listener: std::net::TcpListener,
    broker: Arc<Broker>,
    admission: AdmissionMetrics,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let tls = match &config.http.transport {
        HttpTransport::Tls { cert, key } => {
            Some(crate::transport::tls::server_config(cert, key, None)?)
        }
        HttpTransport::Plain => {
            tracing::warn!(
                listen = %config.http.listen,
                "serving the client API over plain HTTP: passwords and tokens cross the network \
                 in the clear (http.tls = false)"
            );
            eprintln!(
                "warning: the client API on {} is plain HTTP (http.tls = false); passwords and \
                 tokens are not encrypted",
                config.http.listen
            );
            None
        }
    };
    let http_settings = HttpSettings {
        body_bytes_max: config.http.body_bytes_max,
        connections: connection_limits(config),
        admission,
    };
    let server = http::serve(listener, tls, broker.clone(), http_settings)?;
    let handle = server.handle();
    tracing::info!(broker = config.broker.id, "broker is serving");
    // The server runs only while its future is polled (dropping it closes every connection at
    // once), so it is polled through the drain and the graceful stop too.
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => result.context("HTTP server failed")?,
        () = shutdown => {
            tracing::info!("shutting down: handing leaderships away first");
            let stop = async {
                drain(config, &broker).await;
                handle.stop(true).await;
            };
            let (result, ()) = tokio::join!(&mut server, stop);
            result.context("HTTP server failed while stopping")?;
        }
    }
    Ok(())
}

/// Hands this broker's leaderships to in-sync replicas (`cluster.drain_timeout_ms`) while the
/// HTTP API still serves, so requests in flight finish and new ones find the new leaders.
async fn drain(config: &Config, broker: &Broker) {
    let deadline = Duration::from_millis(config.cluster.drain_timeout_ms);
    let retry_after =
        Duration::from_millis(config.raft.tick_ms * u64::from(config.raft.election_timeout_ticks));
    let report = broker.drain(deadline, retry_after).await;
    if report.still_led.is_empty() {
        tracing::info!(
            handed = report.led_at_start,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "drained: this broker leads no group"
        );
    } else {
        tracing::warn!(
            led_at_start = report.led_at_start,
            still_led = report.still_led.len(),
            elapsed_ms = report.elapsed.as_millis() as u64,
            "drain deadline passed: stopping while still leading"
        );
    }
}

fn connection_limits(config: &Config) -> ConnectionLimits {
    let http = &config.http;
    ConnectionLimits {
        workers: http.workers,
        connections_max: http.connections_max,
        connections_per_source_max: http.connections_per_source_max,
        hello_timeout: Duration::from_millis(http.hello_timeout_ms),
        handshake_timeout: Duration::from_millis(http.handshake_timeout_ms),
        request_head_timeout: Duration::from_millis(http.request_head_timeout_ms),
    }
}

fn balancer_settings(config: &Config) -> BalancerSettings {
    BalancerSettings {
        interval_ms: config.cluster.balance_interval_ms,
        balance: BalanceSettings {
            down_timeout_ms: config.cluster.down_timeout_ms,
            concurrent_moves_max: config.cluster.moves_max,
        },
        // Several election timeouts of silence: the broker is gone, not slow.
        silence_ms: 3 * config.raft.tick_ms * u64::from(config.raft.election_timeout_ticks),
        controller_voters: config.cluster.controller_voters,
    }
}

fn replica_settings(config: &Config) -> ReplicaSettings {
    ReplicaSettings {
        node: NodeId(config.broker.id),
        tick_ms: config.raft.tick_ms,
        election_timeout_ticks: config.raft.election_timeout_ticks,
        heartbeat_interval_ticks: config.raft.heartbeat_interval_ticks,
        pending_proposals_max: PENDING_PROPOSALS_MAX,
        ack: ack_policy(),
        retention_check_ms: config.topics.retention_check_ms,
        entry_bytes_max: entry_bytes_max(),
        // Idle groups stop ticking; the peer network reports brokers that go away (`PeerDown`).
        quiesce: config.raft.quiesce,
    }
}

/// Room a peer frame needs beyond one entry's payload: the frame, message and entry headers.
const FRAME_HEADROOM_BYTES: u64 = 64 * 1024;

/// The largest Raft entry that fits one peer frame with its headers.
fn entry_bytes_max() -> u64 {
    u64::from(crate::transport::PeerLimits::default().frame_bytes_max) - FRAME_HEADROOM_BYTES
}

/// The controller's first voters: the lowest founding ids. A broker that is not one of them
/// starts empty and is added as a learner by the controller leader.
fn controller_voters(config: &Config) -> Vec<NodeId> {
    if config.peer.is_none() {
        return vec![NodeId(config.broker.id)];
    }
    let voters: Vec<NodeId> = config
        .cluster
        .brokers
        .iter()
        .take(config.cluster.controller_voters)
        .map(|(id, _)| NodeId(*id))
        .collect();
    if !config.cluster.join && voters.contains(&NodeId(config.broker.id)) {
        voters
    } else {
        Vec::new()
    }
}

/// Waits until the controller has a leader and this broker applied its log. A single broker
/// gives up after `STARTUP_WAIT`; a cluster member waits for its peers (or its registration)
/// as long as it takes.
async fn wait_controller(config: &Config, controller: &Controller) -> anyhow::Result<()> {
    if config.peer.is_none() {
        if !controller.wait_leader(STARTUP_WAIT).await {
            return Err(anyhow!(
                "the controller elected no leader within {STARTUP_WAIT:?}"
            ));
        }
        if !controller.wait_caught_up(STARTUP_WAIT).await {
            return Err(anyhow!(
                "the controller did not apply its log within {STARTUP_WAIT:?}"
            ));
        }
        return Ok(());
    }
    let own = config.broker.id;
    let mut view = controller.subscribe();
    loop {
        if controller.wait_caught_up(STARTUP_WAIT).await {
            if !config.cluster.join || view.borrow_and_update().brokers.contains_key(&own) {
                return Ok(());
            }
            if tokio::time::timeout(STARTUP_WAIT, view.changed())
                .await
                .is_ok()
            {
                continue;
            }
        }
        if config.cluster.join {
            tracing::info!(
                broker = own,
                "waiting to be registered: run `palisade cluster add-broker --id {own} --peer <address>`"
            );
        } else {
            tracing::info!(
                broker = own,
                "waiting for a controller quorum of the founding brokers"
            );
        }
    }
}

/// The controller leader bootstraps a new cluster; every other broker waits until it did.
async fn bootstrap_once(
    config: &Config,
    controller: &Controller,
    http: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let mut view = controller.subscribe();
    loop {
        if view.borrow_and_update().bootstrapped {
            return Ok(());
        }
        let leads = controller.replica().status.borrow().is_leader;
        if leads {
            match bootstrap(config, controller, http).await {
                Ok(()) => return Ok(()),
                Err(error) => tracing::warn!(%error, "bootstrap did not complete; retrying"),
            }
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), view.changed()).await;
    }
}

/// Reports this broker's client URL, peer address and rack to the controller if they changed.
async fn report_self(
    config: &Config,
    broker: &Broker,
    http: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let info = self_info(config, http);
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    loop {
        let current = broker.metadata().brokers.get(&info.id).cloned();
        if current.as_ref().is_some_and(|c| {
            c.http == info.http && c.peer == info.peer && c.rack == info.rack && !c.draining
        }) {
            return Ok(());
        }
        match broker
            .propose(MetaCommand::UpsertBroker(info.clone()))
            .await
        {
            Ok(_) => return Ok(()),
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(%error, "cannot report this broker yet; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => {
                return Err(anyhow!(
                    "cannot report this broker to the controller: {error}"
                ))
            }
        }
    }
}

fn self_info(config: &Config, http: std::net::SocketAddr) -> BrokerInfo {
    let scheme = match config.http.transport {
        HttpTransport::Tls { .. } => "https",
        HttpTransport::Plain => "http",
    };
    let http = match &config.http.advertise {
        Some(advertise) => advertise.to_string(),
        None => http.to_string(),
    };
    BrokerInfo {
        id: config.broker.id,
        http: format!("{scheme}://{http}"),
        peer: config
            .peer
            .as_ref()
            .map(|p| p.advertise.to_string())
            .unwrap_or_default(),
        rack: config.broker.rack.clone(),
        decommissioning: false,
        draining: false,
    }
}

/// Environment switch used only by the crash-safety tests to prove their checker catches a broker
/// that acknowledges before the commit. Only builds with the `test-hooks` feature read it.
#[cfg(feature = "test-hooks")]
pub const UNSAFE_ACK_ENV: &str = "PALISADE_UNSAFE_TEST_ACK_BEFORE_COMMIT";

#[cfg(not(feature = "test-hooks"))]
fn ack_policy() -> AckPolicy {
    AckPolicy::AfterCommit
}

#[cfg(feature = "test-hooks")]
fn ack_policy() -> AckPolicy {
    if std::env::var(UNSAFE_ACK_ENV).is_ok_and(|value| value == "1") {
        tracing::warn!(
            "{UNSAFE_ACK_ENV}=1: produces are acknowledged BEFORE they are durable (test-only)"
        );
        AckPolicy::BeforeCommitUnsafe
    } else {
        AckPolicy::AfterCommit
    }
}

/// Environment switch of the token-expiry tests: the broker's wall clock runs this many seconds
/// ahead (or behind, when negative), so a token is seen expired without waiting out its lifetime.
/// Only builds with the `test-hooks` feature read it.
#[cfg(feature = "test-hooks")]
pub const CLOCK_OFFSET_ENV: &str = "PALISADE_TEST_CLOCK_OFFSET_S";

#[cfg(not(feature = "test-hooks"))]
fn start_clock() -> clock::SharedClock {
    clock::system()
}

#[cfg(feature = "test-hooks")]
fn start_clock() -> clock::SharedClock {
    match std::env::var(CLOCK_OFFSET_ENV)
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        Some(offset_s) => {
            tracing::warn!("{CLOCK_OFFSET_ENV}={offset_s}: the wall clock is moved (test-only)");
            std::sync::Arc::new(clock::OffsetClock {
                inner: clock::system(),
                offset_s,
            })
        }
        None => clock::system(),
    }
}

fn token_settings(config: &Config) -> TokenSettings {
    TokenSettings {
        issuer: config.auth.issuer.clone(),
        audience: config.auth.audience.clone(),
        ttl_s: config.auth.token_ttl_s,
        leeway_s: config.auth.leeway_s,
        token_bytes_max: config.auth.token_bytes_max,
    }
}

fn limits(config: &Config) -> Limits {
    Limits {
        records_per_batch_max: config.http.records_per_batch_max,
        record_bytes_max: config.http.record_bytes_max,
        fetch_bytes_max: config.http.fetch_bytes_max as u64,
        fetch_records_max: config.http.fetch_records_max as u64,
        wait_ms_max: config.http.wait_ms_max,
        partitions_max: config.topics.partitions_max,
        default_partitions: config.topics.default_partitions,
        default_retention_ms: Some(config.topics.default_retention_ms),
        default_retention_bytes: config.topics.default_retention_bytes,
        streams_max: config.limits.streams_max,
        streams_per_principal_max: config.limits.streams_per_principal_max,
        stream_tickets_max: config.limits.stream_tickets_max,
        stream_keepalive_ms: config.limits.stream_keepalive_ms,
    }
}

/// First start: the admin user, the first signing key, the founding brokers and the audit topic.
async fn bootstrap(
    config: &Config,
    controller: &Controller,
    http: std::net::SocketAddr,
) -> anyhow::Result<()> {
    let password_text = admin_password(&config.broker.data_dir)?;
    let admin_hash =
        tokio::task::spawn_blocking(move || password::hash_password(&password_text)).await??;
    let admin = UserRecord {
        name: config.auth.admin_username.clone(),
        password_hash: admin_hash,
        superuser: true,
        created_ms: controller.clock().now_ms(),
        token_generation: 0,
    };
    let now_ms = controller.clock().now_ms();
    let key = SigningKey::generate(&format!("k{now_ms}"), now_ms)?;
    let own = self_info(config, http);
    let mut brokers = vec![own.clone()];
    for (id, peer) in &config.cluster.brokers {
        if *id != own.id {
            brokers.push(BrokerInfo {
                id: *id,
                http: String::new(),
                peer: peer.to_string(),
                rack: None,
                decommissioning: false,
                draining: false,
            });
        }
    }
    let audit_topic = TopicSpec {
        name: AUDIT_TOPIC.to_string(),
        partitions: 1,
        replication_factor: brokers.len().min(3) as u16,
        retention_ms: Some(config.topics.audit_retention_ms),
        retention_bytes: Some(config.topics.audit_retention_bytes),
        internal: true,
        owner: None,
    };
    match controller
        .propose(MetaCommand::Bootstrap {
            brokers,
            admin,
            key,
            audit_topic,
        })
        .await
    {
        Ok(_) | Err(ControllerError::Meta(MetaError::AlreadyBootstrapped)) => Ok(()),
        Err(error) => Err(anyhow!("cannot bootstrap the controller state: {error}")),
    }
}

/// The admin password: from the environment, else generated once into `<data>/admin-password` (0600).
fn admin_password(data_dir: &Path) -> anyhow::Result<String> {
    if let Ok(password_text) = std::env::var(ADMIN_PASSWORD_ENV) {
        return Ok(password_text);
    }
    let path = data_dir.join("admin-password");
    let password_text = Alphanumeric.sample_string(&mut rand::rng(), 24);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode_0600()
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    writeln!(file, "{password_text}")?;
    file.sync_all()?;
    files::sync_dir(data_dir)?;
    println!(
        "Generated the admin password; it is in {} (readable by this user only).",
        path.display()
    );
    Ok(password_text)
}

trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.mode(0o600)
    }
}

/// The Raft group of the audit partition (created by the bootstrap).
async fn audit_group(controller: &Controller) -> anyhow::Result<GroupId> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    let mut view = controller.subscribe();
    loop {
        if let Some(partition) = view.borrow_and_update().partition(AUDIT_TOPIC, 0) {
            return Ok(partition.group);
        }
        tokio::time::timeout_at(deadline, view.changed())
            .await
            .map_err(|_| anyhow!("the audit topic did not appear within {STARTUP_WAIT:?}"))??;
    }
}
