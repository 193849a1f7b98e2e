//! `palisade dev`: the README's main command. By default it starts three brokers; `cluster.json`
//! lists each with distinct ids and ports, each answers `/readyz` and lets the listed admin log
//! in, `palisade cluster` commands reach them, and SIGTERM stops every broker process it started.
//! A broker killed under `dev` is named and started again while the others keep serving (with
//! `--no-restart` it stays stopped); before supervision, `dev` stopped the whole cluster.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use palisade::client::Client;
use serde_json::Value;

const START_WAIT: Duration = Duration::from_secs(150);
const STOP_WAIT: Duration = Duration::from_secs(30);

/// A running `palisade dev`; dropped without `stop`, it is killed so that no test leaks it.
struct Dev {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dev {
    fn start(brokers: Option<&str>) -> Dev {
        Dev::start_with(brokers, &[])
    }

    fn start_with(brokers: Option<&str>, args: &[&str]) -> Dev {
        let dir = tempfile::tempdir().expect("temp dir");
        let stdout = std::fs::File::create(dir.path().join("dev.out")).expect("stdout file");
        let stderr = std::fs::File::create(dir.path().join("dev.err")).expect("stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command.args(["dev", "--http-port-base", "0", "--dir"]);
        command.arg(dir.path().join("cluster"));
        if let Some(brokers) = brokers {
            command.args(["--brokers", brokers]);
        }
        command.args(args);
        let child = command
            .env_remove("PALISADE_ADMIN_PASSWORD")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start palisade dev");
        Dev { child, dir }
    }

    /// What `dev` printed to stderr so far.
    fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dev.err")).unwrap_or_default()
    }

    /// Waits until stderr holds `needle`; fails if `dev` exits first.
    async fn wait_printed(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let printed = self.errors();
            if printed.contains(needle) {
                return printed;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("palisade dev exited ({status}) before printing {needle:?}: {printed}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "dev never printed {needle:?}: {printed}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn cluster_dir(&self) -> PathBuf {
        self.dir.path().join("cluster")
    }

    /// `cluster.json`, once `dev` has written it.
    async fn cluster(&mut self) -> Value {
        let path = self.cluster_dir().join("cluster.json");
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&path) {
                if let Ok(value) = serde_json::from_str(&text) {
                    return value;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("palisade dev exited before writing cluster.json: {status}");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never appeared",
                path.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the child we started and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child.wait().expect("dev exits")
    }

    /// Runs a `palisade` client command with a scratch home, so no stored token is used or kept.
    fn client_command(&self, args: &[&str], url: &str, ca: &str, token: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command
            .args(args)
            .args(["--url", url, "--ca-cert", ca])
            .env("HOME", self.dir.path())
            .env("PALISADE_HOME", self.dir.path().join("home"))
            .env_remove("PALISADE_TOKEN")
            .env_remove("PALISADE_URL")
            .env_remove("PALISADE_CA_CERT");
        if let Some(token) = token {
            command.env("PALISADE_TOKEN", token);
        }
        command.output().expect("run palisade")
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM lets dev stop its brokers; a dev that hangs is killed after a while.
            // SAFETY: kill(2) on the child we started and have not reaped.
            unsafe {
                libc::kill(self.child.id() as i32, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + STOP_WAIT;
            while let Ok(None) = self.child.try_wait() {
                if std::time::Instant::now() > deadline {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

async fn wait_gone(pid: i32) {
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    while process_alive(pid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "broker {pid} still running after dev stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn port_of(address: &str) -> u16 {
    address
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {address}"))
}

/// Checks `cluster.json` and every broker it lists; returns each broker's pid and a token.
async fn check_brokers(cluster: &Value, count: usize) -> (Vec<i32>, String) {
    let brokers = cluster["brokers"].as_array().expect("brokers array");
    assert_eq!(brokers.len(), count, "{cluster}");
    let ca = cluster["ca_cert"].as_str().expect("ca_cert");
    assert!(Path::new(ca).is_absolute() && Path::new(ca).exists());
    assert_eq!(cluster["admin"]["username"], "admin");
    let password = cluster["admin"]["password"].as_str().expect("password");
    let mut ids = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut pids = Vec::new();
    let mut token = String::new();
    for broker in brokers {
        ids.insert(broker["id"].as_u64().expect("id"));
        let url = broker["http"].as_str().expect("http url");
        let peer = broker["peer"].as_str().expect("peer address");
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
        assert!(peer.starts_with("127.0.0.1:"), "{peer}");
        ports.insert(port_of(url));
        ports.insert(port_of(peer));
        let pid = broker["pid"].as_i64().expect("pid") as i32;
        assert!(process_alive(pid));
        pids.push(pid);

        let client = Client::new(url, Some(Path::new(ca))).expect("client");
        client.ready().await.expect("the broker answers /readyz");
        token = client
            .login("admin", password)
            .await
            .expect("the listed admin can log in through this broker")
            .access_token;
        let whoami = client
            .with_token(token.clone())
            .whoami()
            .await
            .expect("whoami");
        assert_eq!(whoami.principal, "admin");
    }
    let expected_ids: BTreeSet<u64> = (1..=count as u64).collect();
    assert_eq!(ids, expected_ids);
    assert_eq!(
        ports.len(),
        count * 2,
        "every http and peer port is distinct"
    );
    (pids, token)
}

async fn stop_and_check_gone(dev: &mut Dev, pids: &[i32]) {
    let status = dev.stop();
    assert!(status.success(), "dev exits cleanly on SIGTERM: {status}");
    for pid in pids {
        wait_gone(*pid).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_starts_three_brokers_by_default_and_stops_them_on_sigterm() {
    let mut dev = Dev::start(None);
    let cluster = dev.cluster().await;
    let (pids, token) = check_brokers(&cluster, 3).await;

    let printed = std::fs::read_to_string(dev.dir.path().join("dev.out")).expect("dev output");
    for broker in cluster["brokers"].as_array().expect("brokers") {
        let url = broker["http"].as_str().expect("http url");
        assert!(printed.contains(url), "{printed}");
    }
    assert!(printed.contains(r#""replication_factor":3"#), "{printed}");

    let third = cluster["brokers"][2]["http"].as_str().expect("http url");
    let ca = cluster["ca_cert"].as_str().expect("ca_cert");
    let show = dev.client_command(&["cluster", "show"], third, ca, Some(&token));
    let stdout = String::from_utf8_lossy(&show.stdout);
    assert!(
        show.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(
        stdout.contains("CONTROLLER") && stdout.contains("TOPIC"),
        "{stdout}"
    );
    let json = dev.client_command(&["cluster", "show", "--json"], third, ca, Some(&token));
    let reply: Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert!(reply["brokers"].is_array(), "{reply}");
    let refused = dev.client_command(&["cluster", "rebalance"], third, ca, None);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("401"), "an API error is printed: {stderr}");

    stop_and_check_gone(&mut dev, &pids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_a_single_broker_on_request() {
    let mut dev = Dev::start(Some("1"));
    let cluster = dev.cluster().await;
    let (pids, _) = check_brokers(&cluster, 1).await;
    let config = std::fs::read_to_string(dev.cluster_dir().join("broker-1.toml")).expect("config");
    assert!(
        config.contains("[peer]") && config.contains("[cluster]"),
        "{config}"
    );
    // The client API and the peer link have their own certificates and CAs.
    for file in [
        "https-1.pem",
        "https-1.key",
        "peer-1.pem",
        "peer-1.key",
        "peer-ca.pem",
    ] {
        assert!(config.contains(file), "{file} in {config}");
    }
    assert!(
        !config.contains("certs/ca.pem"),
        "peers trust only the peer CA: {config}"
    );
    assert!(
        cluster["ca_cert"]
            .as_str()
            .is_some_and(|ca| ca.ends_with("certs/ca.pem")),
        "clients trust the client CA: {cluster}"
    );
    stop_and_check_gone(&mut dev, &pids).await;
}

#[test]
fn dev_refuses_a_broker_count_out_of_range() {
    for count in ["0", "10"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
            .args(["dev", "--brokers", count, "--http-port-base", "0", "--dir"])
            .arg(dir.path())
            .output()
            .expect("run palisade dev");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("1..=9"), "{stderr}");
        assert!(!dir.path().join("certs").exists(), "nothing is generated");
    }
}

fn broker_client(cluster: &Value, index: usize, token: &str) -> Client {
    let url = cluster["brokers"][index]["http"]
        .as_str()
        .expect("http url");
    let ca = cluster["ca_cert"].as_str().expect("ca_cert");
    Client::new(url, Some(Path::new(ca)))
        .expect("client")
        .with_token(token.to_string())
}

fn sigkill(pid: i32) {
    // SAFETY: kill(2) on a broker pid that `dev` listed and that is still running.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// Produces one record to a new RF3 topic through `client`, retrying while an election runs.
async fn produce_survives(client: &Client) {
    use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};
    client
        .create_topic(&CreateTopic {
            name: "after-exit".into(),
            partitions: Some(1),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create a topic with one broker down");
    let record = ProduceRecord {
        key: None,
        value: Some("still here".into()),
        value_b64: None,
        headers: Default::default(),
        partition: Some(0),
    };
    let deadline = tokio::time::Instant::now() + START_WAIT;
    loop {
        let request = ProduceRequest {
            records: vec![record.clone()],
        };
        match client.produce("after-exit", &request).await {
            Ok(_) => return,
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "no write succeeded with one broker down: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_restarts_a_broker_that_exits_while_the_others_keep_serving() {
    let mut dev = Dev::start(None);
    let cluster = dev.cluster().await;
    let (pids, token) = check_brokers(&cluster, 3).await;
    sigkill(pids[1]);
    let printed = dev.wait_printed("dev: broker 2 (pid").await;
    assert!(printed.contains("restarting it in 1 s"), "{printed}");
    assert!(dev.running(), "dev stopped when broker 2 exited");
    produce_survives(&broker_client(&cluster, 0, &token)).await;

    let printed = dev.wait_printed("dev: broker 2 started again (pid ").await;
    let new_pid: i32 = printed
        .split("dev: broker 2 started again (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {printed}"));
    assert_ne!(new_pid, pids[1]);
    let second = broker_client(&cluster, 1, &token);
    let deadline = tokio::time::Instant::now() + START_WAIT;
    while second.ready().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the restarted broker 2 never became ready: {}",
            dev.errors()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(process_alive(pids[0]) && process_alive(pids[2]));
    stop_and_check_gone(&mut dev, &[pids[0], new_pid, pids[2]]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_with_no_restart_leaves_an_exited_broker_stopped() {
    let mut dev = Dev::start_with(None, &["--no-restart"]);
    let cluster = dev.cluster().await;
    let (pids, token) = check_brokers(&cluster, 3).await;
    sigkill(pids[1]);
    let printed = dev.wait_printed("(--no-restart)").await;
    assert!(printed.contains("dev: broker 2 (pid"), "{printed}");
    assert!(dev.running(), "dev stopped when broker 2 exited");
    produce_survives(&broker_client(&cluster, 0, &token)).await;
    assert!(!dev.errors().contains("started again"), "{}", dev.errors());
    stop_and_check_gone(&mut dev, &[pids[0], pids[2]]).await;
}
