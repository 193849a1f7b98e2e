//! `palisade dev`: a local cluster for development.
//!
//! Generates certificates for every broker id, writes one config per broker (its `[peer]` link
//! and the same `[cluster] brokers` list on each), starts each broker as a child process, waits
//! until every broker answers `/readyz` and lets the admin log in, writes `cluster.json`, starts
//! a broker that exits again with backoff (the others keep running) and stops the brokers on
//! SIGINT/SIGTERM. It owns only the processes it started; it must not reach into a
//! broker other than through its config, its environment and the HTTP API.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use tokio::time::Instant;

use crate::app::ADMIN_PASSWORD_ENV;
use crate::client::{Client, ClientError};
use crate::transport::certs;

mod process;

use process::{Brokers, Signals, Stopped};

/// Most brokers `palisade dev` starts on one machine.
pub const BROKERS_MAX: u32 = 9;
/// Brokers started when `--brokers` is not given.
pub const BROKERS_DEFAULT: u32 = 3;
/// Peer port of broker i is `http_port_base + PEER_PORT_OFFSET + i - 1` (8441 → 9441).
pub const PEER_PORT_OFFSET: u16 = 1000;
/// Controller voters of a dev cluster (fewer when it has fewer brokers).
const CONTROLLER_VOTERS_MAX: u32 = 3;
/// The bootstrap superuser (`auth.admin_username` default).
const ADMIN_USERNAME: &str = "admin";
/// How long `dev` waits for every broker to answer `/readyz` and accept the admin's login.
const START_WAIT: Duration = Duration::from_secs(120);
/// First and longest pause between two checks of a starting broker.
const POLL_INTERVAL_MS_MIN: u64 = 100;
const POLL_INTERVAL_MS_MAX: u64 = 2_000;

#[derive(Clone, Debug)]
pub struct DevOptions {
    /// Brokers to start, 1..=`BROKERS_MAX`.
    pub brokers: u32,
    pub dir: PathBuf,
    /// First HTTP port (broker i uses base + i - 1, its peer link base + 1000 + i - 1);
    /// 0 picks free ports for both.
    pub http_port_base: u16,
    /// Start a broker that exits again, with backoff (`--no-restart` turns it off).
    pub restart: bool,
}

/// One broker of `cluster.json`.
#[derive(Serialize)]
struct BrokerEntry {
    id: u64,
    http: String,
    peer: String,
    pid: u32,
}

#[derive(Serialize)]
struct Admin {
    username: String,
    password: String,
}

/// `DIR/cluster.json`, in the shape of DESIGN.md section 9.
#[derive(Serialize)]
struct ClusterFile {
    brokers: Vec<BrokerEntry>,
    ca_cert: String,
    admin: Admin,
}

/// Where one broker listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BrokerPorts {
    id: u64,
    http: u16,
    peer: u16,
}

/// Runs the local cluster until SIGINT or SIGTERM.
pub async fn run(options: DevOptions) -> anyhow::Result<()> {
    if options.brokers == 0 || options.brokers > BROKERS_MAX {
        bail!(
            "--brokers {} is out of range: palisade dev starts 1 to {BROKERS_MAX} brokers",
            options.brokers
        );
    }
    let mut signals = Signals::listen()?;
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&options.dir)
        .with_context(|| format!("cannot create {}", options.dir.display()))?;
    let dir = options.dir.canonicalize()?;
    let ids: Vec<u64> = (1..=u64::from(options.brokers)).collect();
    let cert_paths = certs::init(&dir.join("certs"), &ids)?;
    let password = admin_password(&dir)?;
    let ports = plan_ports(&ids, options.http_port_base)?;
    let mut brokers = Brokers::default();
    let started = tokio::select! {
        outcome = start(&dir, &ports, &cert_paths, &password, &mut brokers) => outcome.map(Some),
        () = signals.recv() => Ok(None),
    };
    let entries = match started {
        Ok(Some(entries)) => entries,
        Ok(None) => {
            brokers.stop().await;
            return Ok(());
        }
        Err(error) => {
            brokers.stop().await;
            return Err(error);
        }
    };
    let cluster = ClusterFile {
        brokers: entries,
        ca_cert: cert_paths.https_ca.cert.display().to_string(),
        admin: Admin {
            username: ADMIN_USERNAME.into(),
            password,
        },
    };
    let written = serde_json::to_string_pretty(&cluster)
        .map_err(anyhow::Error::from)
        .and_then(|json| write_private(&dir.join("cluster.json"), &json));
    if let Err(error) = written {
        brokers.stop().await;
        return Err(error.context("cannot write cluster.json"));
    }
    print_usage(&dir, &cluster);
    let stopped = brokers.watch(&mut signals, options.restart).await;
    brokers.stop().await;
    match stopped {
        Stopped::Signal => Ok(()),
        Stopped::AllExited => bail!("every broker exited (--no-restart)"),
    }
}

/// Writes every broker's config, starts the brokers and waits until each one serves the admin.
async fn start(
    dir: &Path,
    ports: &[BrokerPorts],
    cert_paths: &certs::CertPaths,
    password: &str,
    brokers: &mut Brokers,
) -> anyhow::Result<Vec<BrokerEntry>> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let exe = std::env::current_exe().context("cannot find the palisade executable")?;
    let founders = founders_list(ports);
    let voters = CONTROLLER_VOTERS_MAX.min(ports.len() as u32);
    let mut entries = Vec::with_capacity(ports.len());
    for broker in ports {
        let certs = cert_paths
            .broker(broker.id)
            .ok_or_else(|| anyhow!("no certificate for broker {}", broker.id))?;
        let config_path = dir.join(format!("broker-{}.toml", broker.id));
        let config = broker_config(
            dir,
            broker,
            &founders,
            voters,
            certs,
            &cert_paths.peer_ca.cert,
        );
        std::fs::write(&config_path, config)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        let log_path = dir.join("logs").join(format!("broker-{}.log", broker.id));
        let pid = brokers.spawn(broker.id, &exe, &config_path, &log_path, password)?;
        entries.push(BrokerEntry {
            id: broker.id,
            http: format!("https://127.0.0.1:{}", broker.http),
            peer: format!("127.0.0.1:{}", broker.peer),
            pid,
        });
    }
    wait_serving(&entries, &cert_paths.https_ca.cert, password, brokers).await?;
    Ok(entries)
}

/// HTTP and peer ports for each broker id, all distinct.
///
/// With `http_port_base` 0 the OS picks them; otherwise broker i gets `base + i - 1` and
/// `base + PEER_PORT_OFFSET + i - 1`, and a port in use is an error naming it. Every port is
/// held open until all are chosen, so no two brokers get the same one.
fn plan_ports(ids: &[u64], http_port_base: u16) -> anyhow::Result<Vec<BrokerPorts>> {
    let count = ids.len() as u16;
    let peer_base = match http_port_base {
        0 => 0,
        base => base.checked_add(PEER_PORT_OFFSET).ok_or_else(|| {
            anyhow!("--http-port-base {base} leaves no room for peer ports (base + 1000)")
        })?,
    };
    let mut held = Vec::with_capacity(ids.len() * 2);
    for base in [http_port_base, peer_base] {
        for offset in 0..count {
            held.push(reserve_port(base, offset)?);
        }
    }
    let port_of = |listener: &TcpListener| listener.local_addr().map(|address| address.port());
    let mut ports = Vec::with_capacity(ids.len());
    for (position, id) in ids.iter().enumerate() {
        ports.push(BrokerPorts {
            id: *id,
            http: port_of(&held[position])?,
            peer: port_of(&held[ids.len() + position])?,
        });
    }
    Ok(ports)
}

/// A listener on `base + offset`, or on a free port when `base` is 0.
fn reserve_port(base: u16, offset: u16) -> anyhow::Result<TcpListener> {
    if base == 0 {
        return TcpListener::bind("127.0.0.1:0").context("cannot find a free port");
    }
    let port = base
        .checked_add(offset)
        .ok_or_else(|| anyhow!("port {base} + {offset} is beyond 65535"))?;
    TcpListener::bind(("127.0.0.1", port)).map_err(|error| {
        anyhow!(
            "port {port} is not available ({error}); pass --http-port-base with another port, \
             or 0 for free ports"
        )
    })
}

/// The `cluster.brokers` value: every broker as `id@host:peer_port`, the same on each broker.
fn founders_list(ports: &[BrokerPorts]) -> String {
    ports
        .iter()
        .map(|broker| format!("{}@127.0.0.1:{}", broker.id, broker.peer))
        .collect::<Vec<_>>()
        .join(",")
}

fn broker_config(
    dir: &Path,
    broker: &BrokerPorts,
    founders: &str,
    controller_voters: u32,
    certs: &certs::BrokerCerts,
    peer_ca: &Path,
) -> String {
    format!(
        "# Generated by `palisade dev`; see config/palisade.toml for every key.\n\
         [broker]\nid = {id}\ndata_dir = \"{data}\"\n\n\
         [http]\nlisten = \"127.0.0.1:{http}\"\ntls = true\ncert = \"{https_cert}\"\nkey = \"{https_key}\"\n\n\
         [peer]\nlisten = \"127.0.0.1:{peer}\"\nca_cert = \"{peer_ca}\"\ncert = \"{peer_cert}\"\nkey = \"{peer_key}\"\n\n\
         [cluster]\nbrokers = \"{founders}\"\njoin = false\ncontroller_voters = {controller_voters}\n",
        id = broker.id,
        http = broker.http,
        peer = broker.peer,
        data = dir.join("data").join(format!("broker-{}", broker.id)).display(),
        https_cert = certs.https.cert.display(),
        https_key = certs.https.key.display(),
        peer_cert = certs.peer.cert.display(),
        peer_key = certs.peer.key.display(),
        peer_ca = peer_ca.display(),
    )
}

/// Waits until every broker answers `/readyz`, then until the admin can log in through each.
async fn wait_serving(
    entries: &[BrokerEntry],
    ca: &Path,
    password: &str,
    brokers: &mut Brokers,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_WAIT;
    let mut clients = Vec::with_capacity(entries.len());
    for entry in entries {
        clients.push((entry.id, Client::new(&entry.http, Some(ca))?));
    }
    for (id, client) in &clients {
        let what = format!("broker {id} answering /readyz");
        poll(&what, deadline, brokers, || client.ready()).await?;
    }
    for (id, client) in &clients {
        let what = format!("the admin logging in through broker {id}");
        poll(&what, deadline, brokers, || {
            client.login(ADMIN_USERNAME, password)
        })
        .await?;
    }
    Ok(())
}

/// Calls `attempt` until it succeeds, with growing pauses, failing at `deadline` or as soon as a
/// broker process exits.
async fn poll<T, F, Fut>(
    what: &str,
    deadline: Instant,
    brokers: &mut Brokers,
    mut attempt: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut pause_ms = POLL_INTERVAL_MS_MIN;
    loop {
        let error = match attempt().await {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        if let Some(exited) = brokers.exited() {
            bail!("{exited} during start-up; see its log");
        }
        if Instant::now() + Duration::from_millis(pause_ms) > deadline {
            bail!("gave up waiting for {what} after {START_WAIT:?} (last error: {error}); see the logs");
        }
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        pause_ms = (pause_ms * 2).min(POLL_INTERVAL_MS_MAX);
    }
}

fn admin_password(dir: &Path) -> anyhow::Result<String> {
    if let Ok(password) = std::env::var(ADMIN_PASSWORD_ENV) {
        return Ok(password);
    }
    let path = dir.join("admin-password");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let password = Alphanumeric.sample_string(&mut rand::rng(), 24);
    write_private(&path, &format!("{password}\n"))?;
    Ok(password)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn print_usage(dir: &Path, cluster: &ClusterFile) {
    println!(
        "Palisade dev cluster is ready ({} broker(s)).",
        cluster.brokers.len()
    );
    for broker in &cluster.brokers {
        println!(
            "  broker {}: {}  peer {}  (pid {})",
            broker.id, broker.http, broker.peer, broker.pid
        );
    }
    println!("  cluster file: {}", dir.join("cluster.json").display());
    println!("  CA certificate: {}", cluster.ca_cert);
    println!(
        "  admin: {} / {}",
        cluster.admin.username, cluster.admin.password
    );
    println!();
    print!("{}", examples(cluster));
    println!("Press Ctrl-C to stop.");
}

/// Shell lines that log in, create a replicated topic, produce through the first broker and
/// fetch through the third (or the last, in a smaller cluster).
fn examples(cluster: &ClusterFile) -> String {
    let first = &cluster.brokers[0];
    let other = &cluster.brokers[cluster.brokers.len().min(3) - 1];
    let replication_factor = cluster.brokers.len().min(3);
    let json = "-H 'content-type: application/json'";
    format!(
        "Try:\n\
         \x20 export CA={ca} B1={b1} B{n}={bn}\n\
         \x20 TOKEN=$(curl -s --cacert $CA {json} -d '{{\"username\":\"{user}\",\"password\":\"{password}\"}}' \\\n\
         \x20   $B1/v1/auth/token | jq -r .access_token)\n\
         \x20 curl -s --cacert $CA -H \"Authorization: Bearer $TOKEN\" {json} \\\n\
         \x20   -d '{{\"name\":\"orders\",\"partitions\":3,\"replication_factor\":{replication_factor}}}' $B1/v1/topics\n\
         \x20 curl -s --cacert $CA -H \"Authorization: Bearer $TOKEN\" {json} \\\n\
         \x20   -d '{{\"records\":[{{\"key\":\"k1\",\"value\":\"hello\",\"partition\":0}}]}}' $B1/v1/topics/orders/messages\n\
         \x20 curl -s --cacert $CA -H \"Authorization: Bearer $TOKEN\" \\\n\
         \x20   \"$B{n}/v1/topics/orders/partitions/0/messages?offset=0&wait_ms=1000\"\n\
         \x20 palisade --url $B1 --ca-cert $CA login --username {user} --password {password}\n\
         \x20 palisade --url $B1 --ca-cert $CA cluster show\n",
        ca = cluster.ca_cert,
        b1 = first.http,
        n = other.id,
        bn = other.http,
        user = cluster.admin.username,
        password = cluster.admin.password,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_beyond_65535_are_refused() {
        assert!(plan_ports(&[1], 65000).is_err());
        assert!(reserve_port(65535, 1).is_err());
    }

    #[test]
    fn free_ports_are_distinct() {
        let ports = plan_ports(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 0).expect("free ports");
        let mut all: Vec<u16> = ports
            .iter()
            .flat_map(|broker| [broker.http, broker.peer])
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 18);
    }

    #[test]
    fn a_port_in_use_is_named() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = taken.local_addr().expect("address").port();
        let error = reserve_port(port, 0).expect_err("port is taken");
        assert!(error.to_string().contains(&port.to_string()), "{error}");
    }

    #[test]
    fn every_broker_gets_the_same_founders_list() {
        let ports = [
            BrokerPorts {
                id: 1,
                http: 8441,
                peer: 9441,
            },
            BrokerPorts {
                id: 2,
                http: 8442,
                peer: 9442,
            },
        ];
        assert_eq!(founders_list(&ports), "1@127.0.0.1:9441,2@127.0.0.1:9442");
    }

    #[test]
    fn generated_config_loads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert_paths = certs::init(&dir.path().join("certs"), &[1, 2]).expect("certs");
        let ports = [
            BrokerPorts {
                id: 1,
                http: 18441,
                peer: 19441,
            },
            BrokerPorts {
                id: 2,
                http: 18442,
                peer: 19442,
            },
        ];
        let founders = founders_list(&ports);
        let certs = cert_paths.broker(2).expect("broker 2 certificates");
        let text = broker_config(
            dir.path(),
            &ports[1],
            &founders,
            2,
            certs,
            &cert_paths.peer_ca.cert,
        );
        let path = dir.path().join("broker-2.toml");
        std::fs::write(&path, text).expect("write config");
        let config = crate::config::load_with_env(Some(&path), []).expect("config loads");
        assert_eq!(config.cluster.brokers.len(), 2);
        assert!(!config.cluster.join);
        let peer = config.peer.as_ref().expect("a [peer] section");
        assert_eq!(peer.cert, certs.peer.cert);
        assert_eq!(peer.ca_cert, cert_paths.peer_ca.cert);
        let crate::config::HttpTransport::Tls { cert, key } = &config.http.transport else {
            panic!("HTTPS expected");
        };
        assert_eq!((cert, key), (&certs.https.cert, &certs.https.key));
        crate::transport::tls::install_crypto_provider();
        let checked = crate::transport::identity::check(
            crate::transport::identity::PeerFiles {
                ca_cert: &peer.ca_cert,
                cert: &peer.cert,
                key: &peer.key,
            },
            Some(crate::transport::identity::HttpsFiles { cert, key }),
        );
        assert!(checked.is_ok(), "{checked:?}");
    }
}
