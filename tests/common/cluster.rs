//! Test harness for clusters: several real broker processes on verified-free loopback ports,
//! linked by mutual TLS with certificates from one generated CA, each with its own redb file.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use palisade::client::Client;

use super::{free_port, ADMIN_PASSWORD};

const READY_WAIT: Duration = Duration::from_secs(90);

/// Where a broker runs: the address it listens on (HTTPS and peer port) and the command its
/// binary is started under, for example `ip netns exec <name>` for a network namespace.
#[derive(Clone, Debug)]
pub struct Placement {
    pub address: IpAddr,
    pub launcher: Vec<String>,
}

impl Placement {
    /// On this machine's loopback, started directly.
    pub fn local() -> Placement {
        Placement {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            launcher: Vec::new(),
        }
    }
}

pub struct Node {
    pub id: u64,
    pub placement: Placement,
    pub url: String,
    pub peer_port: u16,
    pub config: PathBuf,
    pub dir: PathBuf,
    /// Extra environment variables of this broker's process.
    pub env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

pub struct TestCluster {
    pub dir: tempfile::TempDir,
    /// The CA clients trust for HTTPS (it signs no peer certificate).
    pub ca: PathBuf,
    /// The CA brokers trust on peer links.
    pub peer_ca: PathBuf,
    pub nodes: Vec<Node>,
    /// The founding brokers as `id@address`, shared by every config.
    founders: String,
    extra_config: String,
    /// Appended to every broker's `[peer]` section.
    peer_config: String,
    /// The brokers' `RUST_LOG`.
    log_filter: String,
    /// Extra environment variables of every broker started from now on.
    pub env: Vec<(String, String)>,
}

impl TestCluster {
    /// Like `start_with`, with the brokers logging at `log_filter` (a `RUST_LOG` value).
    pub async fn start_logging(count: u64, extra_config: &str, log_filter: &str) -> TestCluster {
        TestCluster::start_inner(count, extra_config, "", log_filter, &[]).await
    }

    /// Like `start`, every broker with the environment variables `env` (and `extra_config`).
    pub async fn start_env(count: u64, extra_config: &str, env: &[(&str, &str)]) -> TestCluster {
        let filter = std::env::var("PALISADE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        TestCluster::start_inner(count, extra_config, "", &filter, env).await
    }

    /// Starts `count` founding brokers (ids 1..=count) and waits until each is ready.
    pub async fn start(count: u64) -> TestCluster {
        TestCluster::start_with(count, "").await
    }

    /// Like `start`, with `extra_config` appended to every broker's `[cluster]` section.
    pub async fn start_with(count: u64, extra_config: &str) -> TestCluster {
        TestCluster::start_configured(count, extra_config, "").await
    }

    /// Like `start_with`, with `peer_config` appended to every broker's `[peer]` section too.
    pub async fn start_configured(
        count: u64,
        extra_config: &str,
        peer_config: &str,
    ) -> TestCluster {
        let filter = std::env::var("PALISADE_TEST_LOG").unwrap_or_else(|_| "warn".into());
        TestCluster::start_inner(count, extra_config, peer_config, &filter, &[]).await
    }

    async fn start_inner(
        count: u64,
        extra_config: &str,
        peer_config: &str,
        log_filter: &str,
        env: &[(&str, &str)],
    ) -> TestCluster {
        let placements = vec![Placement::local(); count as usize];
        TestCluster::start_placed_env(placements, extra_config, peer_config, log_filter, env).await
    }

    /// Starts one founding broker per placement (ids 1, 2, ... in order), each listening on its
    /// placement's address, whose certificates name it, and waits until each is ready.
    pub async fn start_placed(
        placements: Vec<Placement>,
        extra_config: &str,
        peer_config: &str,
        log_filter: &str,
    ) -> TestCluster {
        TestCluster::start_placed_env(placements, extra_config, peer_config, log_filter, &[]).await
    }

    /// Like `start_placed`, every broker with the environment variables `env`.
    pub async fn start_placed_env(
        placements: Vec<Placement>,
        extra_config: &str,
        peer_config: &str,
        log_filter: &str,
        env: &[(&str, &str)],
    ) -> TestCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let placed: Vec<(u64, Placement)> = (1..).zip(placements).collect();
        let names: Vec<palisade::transport::certs::BrokerNames> = placed
            .iter()
            .map(|(id, placement)| palisade::transport::certs::BrokerNames {
                id: *id,
                names: if placement.address.is_loopback() {
                    Vec::new()
                } else {
                    vec![placement.address.to_string()]
                },
            })
            .collect();
        let certs = palisade::transport::certs::init_with_names(&dir.path().join("certs"), &names)
            .expect("certs");
        let ports: Vec<(u64, Placement, u16, u16)> = placed
            .into_iter()
            .map(|(id, placement)| (id, placement, free_port(), free_port()))
            .collect();
        let founders = ports
            .iter()
            .map(|(id, placement, _, peer)| {
                format!("{id}@{}", SocketAddr::new(placement.address, *peer))
            })
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = TestCluster {
            ca: certs.https_ca.cert.clone(),
            peer_ca: certs.peer_ca.cert.clone(),
            dir,
            nodes: Vec::new(),
            founders,
            extra_config: extra_config.to_string(),
            peer_config: peer_config.to_string(),
            log_filter: log_filter.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        for (id, placement, http, peer) in ports {
            let node = cluster.write_node(id, placement, http, peer, false);
            cluster.nodes.push(node);
        }
        for node in &mut cluster.nodes {
            spawn(node, &cluster.log_filter);
        }
        for index in 0..cluster.nodes.len() {
            cluster.wait_ready(cluster.nodes[index].id).await;
        }
        cluster
    }

    fn write_node(&self, id: u64, placement: Placement, http: u16, peer: u16, join: bool) -> Node {
        let dir = self.dir.path().join(format!("broker-{id}"));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let certs = self.dir.path().join("certs");
        let config = dir.join("broker.toml");
        let text = format!(
            "[broker]\nid = {id}\ndata_dir = \"{data}\"\n\n\
             [http]\nlisten = \"{http_address}\"\ntls = true\ncert = \"{https}.pem\"\nkey = \"{https}.key\"\n\n\
             [peer]\nlisten = \"{peer_address}\"\nca_cert = \"{ca}\"\ncert = \"{own}.pem\"\nkey = \"{own}.key\"\n{peer_config}\n\
             [cluster]\nbrokers = \"{founders}\"\njoin = {join}\n{extra}\n",
            http_address = SocketAddr::new(placement.address, http),
            peer_address = SocketAddr::new(placement.address, peer),
            data = dir.join("data").display(),
            https = certs.join(format!("https-{id}")).display(),
            own = certs.join(format!("peer-{id}")).display(),
            ca = self.peer_ca.display(),
            founders = self.founders,
            extra = self.extra_config,
            peer_config = self.peer_config,
        );
        std::fs::write(&config, text).expect("write config");
        Node {
            id,
            url: format!("https://{}", SocketAddr::new(placement.address, http)),
            placement,
            peer_port: peer,
            config,
            dir,
            env: self.env.clone(),
            child: None,
        }
    }

    /// Starts a new broker `id` with `cluster.join = true`; it waits to be registered.
    /// The directory `certs::init` wrote this cluster's certificates to.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    pub fn start_joining(&mut self, id: u64) -> &Node {
        self.start_joining_placed(id, Placement::local())
    }

    /// Like `start_joining`, the new broker at `placement` (its certificates name its address).
    pub fn start_joining_placed(&mut self, id: u64, placement: Placement) -> &Node {
        let names = if placement.address.is_loopback() {
            Vec::new()
        } else {
            vec![placement.address.to_string()]
        };
        let joiner = palisade::transport::certs::BrokerNames { id, names };
        palisade::transport::certs::init_with_names(&self.dir.path().join("certs"), &[joiner])
            .expect("certs");
        let mut node = self.write_node(id, placement, free_port(), free_port(), true);
        spawn(&mut node, &self.log_filter);
        self.nodes.push(node);
        self.node(id)
    }

    /// Every broker's id, in start order.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .expect("no such broker")
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("no such broker")
    }

    pub fn client(&self, id: u64) -> Client {
        Client::new(&self.node(id).url, Some(&self.ca)).expect("client")
    }

    pub async fn admin(&self, id: u64) -> Client {
        self.login(id, "admin", ADMIN_PASSWORD).await
    }

    pub async fn login(&self, id: u64, user: &str, password: &str) -> Client {
        let client = self.client(id);
        let token = client
            .login(user, password)
            .await
            .expect("login")
            .access_token;
        client.with_token(token)
    }

    /// Polls `/readyz` of broker `id` until it answers 200, failing after a deadline.
    pub async fn wait_ready(&mut self, id: u64) {
        self.wait_ready_within(id, READY_WAIT).await;
    }

    /// Polls `/readyz` of broker `id` until it answers 200, failing after `wait`.
    pub async fn wait_ready_within(&mut self, id: u64, wait: Duration) {
        let client = self.client(id);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if client.ready().await.is_ok() {
                return;
            }
            let node = self.node_mut(id);
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!(
                    "broker {id} exited during start-up ({status}); log:\n{}",
                    node.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "broker {id} not ready in time; log:\n{}",
                self.node(id).log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL broker `id`.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.node_mut(id).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn signal(&self, id: u64, signal: i32) {
        let pid = self.node(id).pid().expect("broker is running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }

    /// How broker `id` exited, once it has (its process is then reaped; `None` while it runs).
    pub fn exited(&mut self, id: u64) -> Option<std::process::ExitStatus> {
        let node = self.node_mut(id);
        let status = node.child.as_mut()?.try_wait().expect("try_wait")?;
        node.child = None;
        Some(status)
    }

    /// SIGTERM broker `id` and wait for it to exit.
    pub fn terminate(&mut self, id: u64) -> std::process::ExitStatus {
        let mut child = self.node_mut(id).child.take().expect("broker is running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        child.wait().expect("wait for broker")
    }

    /// Starts a killed broker again and waits until it is ready.
    pub async fn restart(&mut self, id: u64) {
        self.spawn_again(id);
        self.wait_ready(id).await;
    }

    /// Starts broker `id` again (killing it first if it runs) without waiting for it.
    pub fn spawn_again(&mut self, id: u64) {
        self.kill(id);
        let filter = self.log_filter.clone();
        spawn(self.node_mut(id), &filter);
    }

    /// Every log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("----- broker {} -----\n{}", n.id, n.log()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn spawn(node: &mut Node, log_filter: &str) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(node.dir.join("broker.log"))
        .expect("log file");
    let binary = env!("CARGO_BIN_EXE_palisade");
    let mut command = match node.placement.launcher.split_first() {
        Some((program, arguments)) => {
            let mut command = Command::new(program);
            command.args(arguments).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    let child = command
        .arg("serve")
        .arg("--config")
        .arg(&node.config)
        .env("PALISADE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .envs(node.env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .expect("spawn broker");
    node.child = Some(child);
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for node in &self.nodes {
                let log = node.log();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "----- broker {} (last lines) -----\n{}",
                    node.id,
                    tail.join("\n")
                );
            }
        }
        for node in &mut self.nodes {
            if let Some(pid) = node.pid() {
                // A stopped broker must be continued before it can die of SIGKILL cleanly.
                // SAFETY: kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGCONT);
                }
            }
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Polls `probe` every 100 ms until it yields a value, failing the test after `seconds`.
pub async fn wait_for<F, Fut, T>(what: &str, seconds: u64, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
