//! Broker pods as the StatefulSet of `deploy/kubernetes/` runs them, simulated on one machine
//! with real processes: each pod `palisade-<n>` (broker n + 1) in a network namespace of its
//! own on a bridge (`network`), with its own address, a UTS namespace whose host name is the
//! pod's name, and an `/etc/hosts` of its own that plays the headless service's DNS records.
//!
//! A pod is configured only by the environment the manifests give the broker container
//! (`common::manifests::broker_env`), with two mappings: the pod's volume mounts
//! (`/var/lib/palisade`, `/etc/palisade/certs/`) become directories of its own, since the
//! processes share one file system. Certificates are made with `palisade certs init --name`
//! as docs/deploy.md says and copied with mode 0400, as the init container does.
//!
//! The tests' clients run in the root namespace, which has no hosts file of its own: they
//! reach a pod by its address, so the HTTPS certificates also name the pods' addresses.
#![allow(dead_code)]

#[path = "../netfault_support/network.rs"]
pub mod network;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use palisade::client::Client;

use crate::common::manifests::{broker_env, pod_domain_name, NAMESPACE};
use crate::common::ADMIN_PASSWORD;
use network::Network;

/// The StatefulSet's name: pods are `<SET>-<ordinal>`.
pub const SET: &str = "palisade";
/// Where the StatefulSet mounts the broker's volume and its certificates.
const DATA_MOUNT: &str = "/var/lib/palisade";
const CERTS_MOUNT: &str = "/etc/palisade/certs/";
/// Polling interval of every wait.
const POLL: Duration = Duration::from_millis(100);

pub fn pod_name(ordinal: u64) -> String {
    format!("{SET}-{ordinal}")
}

/// The broker id of pod `ordinal` (`broker.id_from_hostname`) and of its namespace.
pub fn broker_id(ordinal: u64) -> u64 {
    ordinal + 1
}

struct Pod {
    dir: PathBuf,
    child: Option<Child>,
    /// Whether the headless service publishes the pod's address (it exists, running or not
    /// yet ready); a deleted pod's record is gone.
    published: bool,
}

pub struct PodSet {
    // Fields drop in order: the brokers are killed before their namespaces are removed.
    pods: BTreeMap<u64, Pod>,
    pub network: Network,
    dir: tempfile::TempDir,
    /// Set on top of the manifests' environment in every pod.
    tuning: Vec<(String, String)>,
    log_filter: String,
}

impl PodSet {
    /// A network with a namespace for each of the first `count` pods, none started yet.
    pub fn create(count: u64, tuning: &[(&str, &str)]) -> PodSet {
        PodSet {
            pods: BTreeMap::new(),
            network: Network::create(count),
            dir: tempfile::tempdir().expect("temp dir"),
            tuning: tuning
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            log_filter: std::env::var("PALISADE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        }
    }

    fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// The CA clients trust for HTTPS.
    pub fn https_ca(&self) -> PathBuf {
        self.certs_dir().join("ca.pem")
    }

    /// `palisade certs init --brokers <ids> --name <id>=<pod DNS name> --name <id>=<client
    /// service> --name <id>=<address>…` for pods `ordinals` (an existing CA is kept), the
    /// addresses being those the tests' clients use for that pod.
    pub fn issue_certificates(&self, ordinals: &[u64], addresses: &[(u64, IpAddr)]) {
        let ids: Vec<String> = ordinals.iter().map(|o| broker_id(*o).to_string()).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command
            .args(["certs", "init", "--dir"])
            .arg(self.certs_dir())
            .args(["--brokers", &ids.join(",")]);
        let client_service = format!("{SET}-client.{NAMESPACE}.svc.cluster.local");
        for ordinal in ordinals {
            let id = broker_id(*ordinal);
            let pod = pod_domain_name(&pod_name(*ordinal));
            command.args(["--name", &format!("{id}={pod}")]);
            command.args(["--name", &format!("{id}={client_service}")]);
            for (_, address) in addresses.iter().filter(|(o, _)| o == ordinal) {
                command.args(["--name", &format!("{id}={address}")]);
            }
        }
        let output = command.output().expect("run palisade certs init");
        assert!(output.status.success(), "certs init: {output:?}");
    }

    /// Pod `ordinal`'s own directories and certificates (what its volume and init container
    /// provide), made once.
    fn prepare(&mut self, ordinal: u64) -> PathBuf {
        let dir = self.dir.path().join(pod_name(ordinal));
        if self.pods.contains_key(&ordinal) {
            return dir;
        }
        let certs = dir.join("certs");
        std::fs::create_dir_all(dir.join("data")).expect("pod data dir");
        std::fs::create_dir_all(&certs).expect("pod certs dir");
        let id = broker_id(ordinal);
        for (source, target) in [
            (format!("https-{id}.pem"), "https.crt"),
            (format!("https-{id}.key"), "https.key"),
            ("ca.pem".to_string(), "https-ca.crt"),
            (format!("peer-{id}.pem"), "peer.crt"),
            (format!("peer-{id}.key"), "peer.key"),
            ("peer-ca.pem".to_string(), "peer-ca.crt"),
        ] {
            let target = certs.join(target);
            std::fs::copy(self.certs_dir().join(&source), &target)
                .unwrap_or_else(|error| panic!("{source}: {error}"));
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o400))
                .expect("mode 0400");
        }
        self.pods.insert(
            ordinal,
            Pod {
                dir: dir.clone(),
                child: None,
                published: false,
            },
        );
        dir
    }

    /// The broker container's environment in pod `ordinal`: the manifests', the mounts mapped
    /// to the pod's directories, the admin Secret, then the tuning.
    pub fn environment(&self, ordinal: u64) -> Vec<(String, String)> {
        let dir = self.dir.path().join(pod_name(ordinal));
        let (mut data_mapped, mut certs_mapped) = (false, false);
        let mut variables: Vec<(String, String)> = broker_env(&pod_name(ordinal))
            .into_iter()
            .map(|(name, value)| {
                let value = if value == DATA_MOUNT {
                    data_mapped = true;
                    dir.join("data").display().to_string()
                } else if let Some(file) = value.strip_prefix(CERTS_MOUNT) {
                    certs_mapped = true;
                    dir.join("certs").join(file).display().to_string()
                } else {
                    value
                };
                (name, value)
            })
            .collect();
        assert!(data_mapped && certs_mapped, "the manifests' mounts changed");
        variables.push(("PALISADE_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()));
        variables.extend(self.tuning.iter().cloned());
        variables
    }

    /// Starts pod `ordinal`'s broker (its record must be published first).
    pub fn start(&mut self, ordinal: u64) {
        let dir = self.prepare(ordinal);
        assert!(self.pods[&ordinal].published, "publish pod {ordinal} first");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("broker.log"))
            .expect("log file");
        let launcher = self
            .network
            .launcher_named(broker_id(ordinal), &pod_name(ordinal));
        let mut command = Command::new(&launcher[0]);
        command
            .args(&launcher[1..])
            .arg(env!("CARGO_BIN_EXE_palisade"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("RUST_LOG", &self.log_filter)
            .envs(self.environment(ordinal))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = command.spawn().expect("spawn broker");
        self.pods.get_mut(&ordinal).expect("prepared").child = Some(child);
    }

    /// SIGKILL for pod `ordinal`'s broker, waiting until it is gone.
    pub fn kill(&mut self, ordinal: u64) {
        if let Some(mut child) = self.pod_mut(ordinal).child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM for pod `ordinal`'s broker; waits for it to exit.
    pub fn terminate(&mut self, ordinal: u64) -> std::process::ExitStatus {
        let mut child = self.pod_mut(ordinal).child.take().expect("pod runs");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        child.wait().expect("wait for broker")
    }

    pub fn pid(&self, ordinal: u64) -> Option<u32> {
        self.pods.get(&ordinal)?.child.as_ref().map(Child::id)
    }

    fn pod_mut(&mut self, ordinal: u64) -> &mut Pod {
        self.pods.get_mut(&ordinal).expect("no such pod")
    }

    /// The headless service publishes pod `ordinal`'s record (the pod exists, ready or not):
    /// every namespace's hosts file gets it.
    pub fn publish(&mut self, ordinal: u64) {
        self.prepare(ordinal);
        self.pod_mut(ordinal).published = true;
        self.write_records();
    }

    /// The pod is gone (deleted, or its node lost): its record leaves every hosts file.
    pub fn withdraw(&mut self, ordinal: u64) {
        self.pod_mut(ordinal).published = false;
        self.write_records();
    }

    /// Writes every namespace's `/etc/hosts`: localhost, the pod's own name as the kubelet
    /// writes it (full and short host name), and the full DNS name of every published pod.
    fn write_records(&mut self) {
        let records: Vec<(u64, IpAddr)> = self
            .pods
            .iter()
            .filter(|(_, pod)| pod.published)
            .map(|(ordinal, _)| (*ordinal, self.network.address(broker_id(*ordinal))))
            .collect();
        for ordinal in self.pods.keys().copied().collect::<Vec<_>>() {
            let own = pod_name(ordinal);
            let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
            let address = self.network.address(broker_id(ordinal));
            text.push_str(&format!("{address}\t{} {own}\n", pod_domain_name(&own)));
            for (other, address) in records.iter().filter(|(o, _)| *o != ordinal) {
                text.push_str(&format!(
                    "{address}\t{}\n",
                    pod_domain_name(&pod_name(*other))
                ));
            }
            self.network.write_hosts(broker_id(ordinal), &text);
        }
    }

    /// What pod `ordinal`'s running broker reads as `/etc/hosts` (through its own mounts).
    pub fn hosts_seen_by(&self, ordinal: u64) -> String {
        let pid = self.pid(ordinal).expect("pod runs");
        std::fs::read_to_string(format!("/proc/{pid}/root/etc/hosts")).expect("its /etc/hosts")
    }

    /// The HTTPS port the manifests listen on.
    fn https_port(&self, ordinal: u64) -> u16 {
        let listen = self
            .environment(ordinal)
            .into_iter()
            .find(|(name, _)| name == "PALISADE_HTTP_LISTEN")
            .map(|(_, value)| value)
            .expect("the manifests set http.listen");
        listen
            .parse::<SocketAddr>()
            .expect("http.listen is an address")
            .port()
    }

    /// Pod `ordinal`'s API at its current address.
    pub fn client(&self, ordinal: u64) -> Client {
        let address = SocketAddr::new(
            self.network.address(broker_id(ordinal)),
            self.https_port(ordinal),
        );
        Client::new(&format!("https://{address}"), Some(&self.https_ca())).expect("client")
    }

    pub async fn admin(&self, ordinal: u64) -> Client {
        let client = self.client(ordinal);
        let token = client
            .login("admin", ADMIN_PASSWORD)
            .await
            .unwrap_or_else(|error| panic!("login through pod {ordinal}: {error}"))
            .access_token;
        client.with_token(token)
    }

    /// Polls `/readyz` of pod `ordinal` until it answers 200, failing after `seconds` or when
    /// the broker exits.
    pub async fn wait_ready(&mut self, ordinal: u64, seconds: u64) {
        let client = self.client(ordinal);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while client.ready().await.is_err() {
            self.assert_running(ordinal);
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {ordinal} not ready within {seconds} s; log:\n{}",
                self.log(ordinal)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until pod `ordinal` accepts TCP connections on `port` at its address, failing
    /// after `seconds` or when the broker exits.
    pub async fn wait_listening(&mut self, ordinal: u64, port: u16, seconds: u64) {
        let address = SocketAddr::new(self.network.address(broker_id(ordinal)), port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        loop {
            let connect = tokio::net::TcpStream::connect(address);
            if let Ok(Ok(_)) = tokio::time::timeout(POLL, connect).await {
                return;
            }
            self.assert_running(ordinal);
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {ordinal} not listening on {address} within {seconds} s; log:\n{}",
                self.log(ordinal)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until pod `ordinal`'s log contains `text`, failing after `seconds`.
    pub async fn wait_logged(&self, ordinal: u64, text: &str, seconds: u64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while !self.log(ordinal).contains(text) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "pod {ordinal} never logged {text:?}; log:\n{}",
                self.log(ordinal)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails the test with the broker's log when pod `ordinal`'s broker has exited.
    pub fn assert_running(&mut self, ordinal: u64) {
        let exited = self
            .pod_mut(ordinal)
            .child
            .as_mut()
            .and_then(|child| child.try_wait().expect("try_wait"));
        assert!(
            exited.is_none(),
            "pod {ordinal} exited ({exited:?}); log:\n{}",
            self.log(ordinal)
        );
    }

    pub fn log(&self, ordinal: u64) -> String {
        let dir = self.dir.path().join(pod_name(ordinal));
        std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default()
    }

    /// Removes pod `ordinal`'s volume (its PersistentVolumeClaim deleted); it must be stopped.
    pub fn delete_volume(&mut self, ordinal: u64) {
        assert!(self.pid(ordinal).is_none(), "pod {ordinal} still runs");
        let data = self.pod_mut(ordinal).dir.join("data");
        std::fs::remove_dir_all(&data).expect("remove the volume");
    }
}

impl Drop for PodSet {
    fn drop(&mut self) {
        let ordinals: Vec<u64> = self.pods.keys().copied().collect();
        if std::thread::panicking() {
            for ordinal in &ordinals {
                let log = self.log(*ordinal);
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "----- pod {ordinal} (last lines) -----\n{}",
                    tail.join("\n")
                );
            }
        }
        for ordinal in ordinals {
            self.kill(ordinal);
        }
    }
}
