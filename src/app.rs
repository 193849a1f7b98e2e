//! Start-up and shutdown of one broker: open the store, start the writer, the controller, the
//! partition replicas and the audit log, then serve HTTP until the shutdown future resolves.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use rand::distr::{Alphanumeric, SampleString};

use crate::audit::log::AuditLog;
use crate::audit::AuditChain;
use crate::auth::jwt::{SigningKey, TokenSettings};
use crate::auth::limiter::LoginLimiter;
use crate::auth::password;
use crate::broker::{Broker, Limits};
use crate::cluster::metadata::BrokerInfo;
use crate::cluster::{
    now_ms, reconcile, Controller, MetaCommand, Registry, TopicSpec, UserRecord, AUDIT_TOPIC,
};
use crate::config::{Config, HttpTransport};
use crate::http::{self, HttpSettings};
use crate::partition::machine::{Describe, FetchWindow};
use crate::partition::read::{read_records, FetchLimits};
use crate::partition::{AckPolicy, Host, PartitionHandle, ReplicaSettings};
use crate::raft::NodeId;
use crate::storage::{Store, WriterConfig};

/// How long start-up waits for the controller and the audit partition to elect a leader.
const STARTUP_WAIT: Duration = Duration::from_secs(30);
/// Proposals waiting for their apply per replica.
const PENDING_PROPOSALS_MAX: usize = 100_000;
/// Environment variable that sets the bootstrap admin's password.
pub const ADMIN_PASSWORD_ENV: &str = "PALISADE_ADMIN_PASSWORD";

/// Runs a broker on `listener` until `shutdown` resolves. Must run inside an actix system.
pub async fn run(
    config: Config,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    crate::transport::tls::install_crypto_provider();
    std::fs::create_dir_all(&config.broker.data_dir).with_context(|| {
        format!(
            "cannot create broker.data_dir {}",
            config.broker.data_dir.display()
        )
    })?;
    let store = Store::open(&config.broker.data_dir.join("palisade.redb"))
        .context("cannot open the store")?;
    let writer = store.start_writer(WriterConfig {
        requests_per_commit_max: config.storage.requests_per_commit_max,
    });
    let settings = ReplicaSettings {
        node: NodeId(config.broker.id),
        tick_ms: config.raft.tick_ms,
        election_timeout_ticks: config.raft.election_timeout_ticks,
        heartbeat_interval_ticks: config.raft.heartbeat_interval_ticks,
        pending_proposals_max: PENDING_PROPOSALS_MAX,
        ack: ack_policy(),
        retention_check_ms: config.topics.retention_check_ms,
    };
    let arbiters = if config.raft.arbiters == 0 {
        num_cores()
    } else {
        config.raft.arbiters
    };
    let host = Arc::new(Host::new(store.clone(), writer, settings, arbiters));
    let controller = Controller::start(&host)
        .await
        .context("cannot start the controller")?;
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
    reconcile::delete_orphans(&host, &controller.state()).await;
    let registry = Arc::new(Registry::default());
    actix_web::rt::spawn(reconcile::run(
        host.clone(),
        registry.clone(),
        controller.subscribe(),
    ));
    if !controller.state().bootstrapped {
        bootstrap(&config, &controller, listener.local_addr()?).await?;
    }
    let audit_partition = audit_partition(&controller, &registry).await?;
    let chain = recover_chain(&store, &audit_partition).await?;
    let audit = actix::Actor::start(AuditLog::new(chain, audit_partition));
    let broker = Arc::new(Broker {
        broker_id: config.broker.id,
        controller,
        registry: registry.clone(),
        store,
        audit,
        tokens: token_settings(&config),
        limits: limits(&config),
        limiter: Mutex::new(LoginLimiter::new(
            config.auth.login_failures_max,
            config.auth.login_window_s * 1000,
            config.auth.login_tracked_keys_max,
        )),
    });
    let tls = match &config.http.transport {
        HttpTransport::Tls { cert, key } => {
            Some(crate::transport::tls::server_config(cert, key, None)?)
        }
        HttpTransport::Plain => None,
    };
    let http_settings = HttpSettings {
        workers: config.http.workers,
        body_bytes_max: config.http.body_bytes_max,
        connections_max: config.http.connections_max,
    };
    let server = http::serve(listener, tls, broker, http_settings)?;
    let handle = server.handle();
    tracing::info!(broker = config.broker.id, "broker is serving");
    tokio::select! {
        result = server => result.context("HTTP server failed")?,
        () = shutdown => {
            tracing::info!("shutting down");
            handle.stop(true).await;
        }
    }
    registry.stop_all();
    Ok(())
}

/// Environment switch used only by the crash-safety tests to prove their checker catches a broker
/// that acknowledges before the commit. Never set it in production.
pub const UNSAFE_ACK_ENV: &str = "PALISADE_UNSAFE_TEST_ACK_BEFORE_COMMIT";

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

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
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
        leader_wait: Duration::from_secs(5),
    }
}

/// First start: the admin user, the first signing key, this broker and the audit topic.
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
        created_ms: now_ms(),
    };
    let key = SigningKey::generate(&format!("k{}", now_ms()))?;
    let broker = BrokerInfo {
        id: config.broker.id,
        http: http.to_string(),
        peer: config
            .peer
            .as_ref()
            .map(|p| p.listen.to_string())
            .unwrap_or_default(),
        rack: config.broker.rack.clone(),
    };
    let audit_topic = TopicSpec {
        name: AUDIT_TOPIC.to_string(),
        partitions: 1,
        replication_factor: 1,
        retention_ms: None,
        retention_bytes: None,
        internal: true,
    };
    controller
        .propose(MetaCommand::Bootstrap {
            broker,
            admin,
            key,
            audit_topic,
        })
        .await
        .context("cannot bootstrap the controller state")?;
    Ok(())
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

async fn audit_partition(
    controller: &Controller,
    registry: &Registry,
) -> anyhow::Result<PartitionHandle> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    let mut view = controller.subscribe();
    let group = loop {
        if let Some(partition) = view
            .borrow_and_update()
            .topics
            .get(AUDIT_TOPIC)
            .and_then(|t| t.partitions.first())
        {
            break partition.group;
        }
        tokio::time::timeout_at(deadline, view.changed())
            .await
            .map_err(|_| anyhow!("the audit topic did not appear within {STARTUP_WAIT:?}"))??;
    };
    let handle = registry
        .wait_for(group, STARTUP_WAIT)
        .await
        .ok_or_else(|| anyhow!("the audit partition did not start within {STARTUP_WAIT:?}"))?;
    let mut status = handle.status.clone();
    while !status.borrow_and_update().is_leader {
        tokio::time::timeout_at(deadline, status.changed())
            .await
            .map_err(|_| {
                anyhow!("the audit partition elected no leader within {STARTUP_WAIT:?}")
            })??;
    }
    Ok(handle)
}

/// The applied state on disk may lag the log after a crash (it is persisted lazily), so right after
/// an election the high watermark can miss the last events. Waiting until the leader applied its log
/// up to its own no-op makes every stored event visible before the chain is resumed.
async fn wait_whole_log_applied(partition: &PartitionHandle) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
    let mut status = partition.status.clone();
    let target = status.borrow_and_update().last_index;
    while status.borrow_and_update().applied < target {
        tokio::time::timeout_at(deadline, status.changed())
            .await
            .map_err(|_| {
                anyhow!("the audit partition did not apply its log within {STARTUP_WAIT:?}")
            })??;
    }
    Ok(())
}

/// Continues the hash chain from the last stored audit event.
async fn recover_chain(store: &Store, partition: &PartitionHandle) -> anyhow::Result<AuditChain> {
    wait_whole_log_applied(partition).await?;
    let state = partition.addr.send(Describe).await?;
    if state.high_watermark == 0 {
        return Ok(AuditChain::new());
    }
    let window = FetchWindow {
        offset: state.high_watermark - 1,
        high_watermark: state.high_watermark,
        log_start_offset: state.log_start_offset,
    };
    let records = read_records(
        store,
        partition.group,
        window,
        FetchLimits {
            records_max: 1,
            bytes_max: u64::MAX,
        },
    )?;
    let last = records
        .last()
        .ok_or_else(|| anyhow!("the last audit event is missing"))?;
    let event: crate::audit::AuditEvent = serde_json::from_slice(&last.record.value)
        .context("the last audit event does not decode")?;
    Ok(AuditChain::resume(&event.hash))
}
