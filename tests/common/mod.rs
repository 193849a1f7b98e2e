//! Test harness: real broker processes (the `palisade` binary) on verified-free loopback ports, with
//! generated certificates, real redb files in a temporary directory and real HTTPS.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use palisade::client::Client;

pub mod cluster;
pub mod durability;
pub mod load;
pub mod manifests;
pub mod script;

/// Creates `name` with `partitions` partitions and replication factor `replication_factor`,
/// broker defaults for retention.
pub async fn create_topic(client: &Client, name: &str, partitions: u32, replication_factor: u16) {
    client
        .create_topic(&palisade::wire::CreateTopic {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: Some(replication_factor),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .unwrap_or_else(|error| panic!("create topic {name}: {error}"));
}

pub const ADMIN_PASSWORD: &str = "admin-password-for-tests";
const READY_WAIT: Duration = Duration::from_secs(60);

pub struct BrokerProcess {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub ca: PathBuf,
    config: PathBuf,
    extra_env: Vec<(String, String)>,
    child: Option<Child>,
}

/// Ports handed out by `free_port` lie below Linux's default ephemeral range (32768-60999), so
/// the outgoing connections of concurrently running tests and brokers never take one between
/// the check and the broker binding it.
const TEST_PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A port nothing listens on right now (bound and released), never handed out twice by this
/// test process; the start depends on the process id so concurrent test binaries differ.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = TEST_PORTS.start + (start + step) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return port as u16;
        }
    }
    panic!("no free port in {TEST_PORTS:?}");
}

impl BrokerProcess {
    /// Starts one broker and waits until it is ready.
    pub async fn start() -> BrokerProcess {
        BrokerProcess::start_with(&[], "").await
    }

    /// Starts one broker with extra environment variables and extra config text appended.
    pub async fn start_with(env: &[(&str, &str)], extra_config: &str) -> BrokerProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs =
            palisade::transport::certs::init(&dir.path().join("certs"), &[1]).expect("certs");
        let https = certs.broker(1).expect("broker certs").https.clone();
        let port = free_port();
        let config = dir.path().join("broker.toml");
        let text = format!(
            "[broker]\nid = 1\ndata_dir = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\ntls = true\ncert = \"{}\"\nkey = \"{}\"\n{extra_config}\n",
            dir.path().join("data").display(),
            https.cert.display(),
            https.key.display(),
        );
        std::fs::write(&config, text).expect("write config");
        let mut broker = BrokerProcess {
            url: format!("https://127.0.0.1:{port}"),
            ca: certs.https_ca.cert.clone(),
            config,
            extra_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            child: None,
            dir,
        };
        broker.spawn();
        broker.wait_ready().await;
        broker
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("PALISADE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (key, value) in &self.extra_env {
            command.env(key, value);
        }
        self.child = Some(command.spawn().expect("spawn broker"));
    }

    /// Sets (or with `None` removes) an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.extra_env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.extra_env.push((key.to_string(), value.to_string()));
        }
    }

    /// The running broker's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// Polls `/readyz` until it answers 200, failing the test after a deadline.
    pub async fn wait_ready(&mut self) {
        let client = self.client();
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        loop {
            if client.ready().await.is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"))
            {
                panic!(
                    "broker exited during start-up ({status}); log:\n{}",
                    self.log()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "broker not ready in time; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// SIGKILL: no shutdown code runs, unflushed state is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How the broker exited, once it has (its process is then reaped; `None` while it runs).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().expect("try_wait")?;
        self.child = None;
        Some(status)
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("broker is running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        child.wait().expect("wait for broker")
    }

    /// Starts the stopped broker again for a start that must fail: waits until the process
    /// exits (failing the test after a deadline) and returns how it ended.
    pub async fn start_expecting_exit(&mut self, wait: Duration) -> std::process::ExitStatus {
        self.kill();
        self.spawn();
        let child = self.child.as_mut().expect("just spawned");
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "broker still running after {wait:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready().await;
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url, Some(&self.ca)).expect("client")
    }

    /// A client logged in as the bootstrap admin.
    pub async fn admin(&self) -> Client {
        self.login("admin", ADMIN_PASSWORD).await
    }

    pub async fn login(&self, user: &str, password: &str) -> Client {
        let client = self.client();
        let token = client
            .login(user, password)
            .await
            .expect("login")
            .access_token;
        client.with_token(token)
    }

    pub fn ca_path(&self) -> &Path {
        &self.ca
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A raw HTTPS client for requests the typed client cannot express (malformed bodies, odd headers).
pub fn raw_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).expect("read CA");
    let certificate = reqwest::Certificate::from_pem(&pem).expect("CA pem");
    // Idle connections are dropped before the broker's 5 s keep-alive closes them, as
    // `palisade::client::Client` does, so none is reused while the broker closes it.
    reqwest::Client::builder()
        .tls_certs_only([certificate])
        .pool_idle_timeout(Duration::from_secs(4))
        .build()
        .expect("reqwest client")
}

impl BrokerProcess {
    /// Replaces `from` by `to` in the config file; takes effect at the next restart.
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        assert!(text.contains(from), "config has no {from:?}:\n{text}");
        std::fs::write(&self.config, text.replace(from, to)).expect("write config");
    }
}

/// A reply read as raw parts: status, content type, `Retry-After`, `WWW-Authenticate` and the body
/// as JSON (`Value::Null` when it is not JSON).
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: serde_json::Value,
}

impl RawReply {
    /// The `detail` of a problem body, or "" when there is none.
    pub fn detail(&self) -> &str {
        self.body
            .get("detail")
            .and_then(|d| d.as_str())
            .unwrap_or("")
    }

    /// Asserts the status, that the body is `application/problem+json` with a matching `status`,
    /// and that its detail contains `detail_part` (case-insensitive).
    pub fn assert_problem(&self, status: u16, detail_part: &str, context: &str) {
        assert_eq!(self.status, status, "{context}: status; body {}", self.body);
        assert!(
            self.content_type.starts_with("application/problem+json"),
            "{context}: content type {:?}",
            self.content_type
        );
        assert_eq!(
            self.body.get("status").and_then(|s| s.as_u64()),
            Some(u64::from(status)),
            "{context}: body status"
        );
        assert!(
            self.detail()
                .to_lowercase()
                .contains(&detail_part.to_lowercase()),
            "{context}: detail {:?} should mention {detail_part:?}",
            self.detail()
        );
    }
}

/// Raw HTTPS requests with full control over the method, path, headers and body bytes.
#[derive(Clone)]
pub struct RawApi {
    pub http: reqwest::Client,
    pub url: String,
}

impl RawApi {
    pub fn new(broker: &BrokerProcess) -> RawApi {
        RawApi {
            http: raw_client(&broker.ca),
            url: broker.url.clone(),
        }
    }

    /// Sends `method path` with an optional bearer token and optional JSON body.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> RawReply {
        let mut headers = Vec::new();
        if let Some(token) = token {
            headers.push(("authorization".to_string(), format!("Bearer {token}")));
        }
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON body"));
        if bytes.is_some() {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        self.send(method, path, &headers, bytes).await
    }

    /// Sends a request with exactly the given headers and body bytes.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<Vec<u8>>,
    ) -> RawReply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request reaches the broker");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let status = response.status().as_u16();
        let content_type = header("content-type").unwrap_or_default();
        let retry_after = header("retry-after");
        let www_authenticate = header("www-authenticate");
        let bytes = response.bytes().await.expect("response body");
        let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        RawReply {
            status,
            content_type,
            retry_after,
            www_authenticate,
            body,
        }
    }

    /// Logs in and returns the access token, failing the test otherwise.
    pub async fn token(&self, user: &str, password: &str) -> String {
        let body = serde_json::json!({ "username": user, "password": password });
        let reply = self.call("POST", "/v1/auth/token", None, Some(&body)).await;
        assert_eq!(reply.status, 200, "login of {user}: {}", reply.body);
        reply.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}
