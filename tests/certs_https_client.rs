//! `client::Client` over real HTTPS on 127.0.0.1 against a minimal responder that serves the
//! section 9 examples: CA trust, bearer token, path and query building, and problem+json errors.
//! (The full API is exercised end to end against the real broker elsewhere.)
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use palisade::client::{Client, ClientError};
use palisade::transport::certs::{self, CertPaths};
use palisade::transport::tls;
use palisade::wire::{ProduceRecord, ProduceRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

const TOKEN: &str = "jwt-1";
const REQUEST_BYTES_MAX: usize = 1 << 20;
const HUGE_MARKER: &str = "<huge>";
const HUGE_BYTES: u64 = 1 << 40;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// One parsed request: `METHOD /path?query`, the Authorization header, and the body.
struct Request {
    target: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

/// Answers like a broker would for the few routes these tests call.
fn respond(request: &Request) -> (u16, &'static str, String) {
    let json = "application/json";
    let problem = "application/problem+json";
    let authorized = request.authorization.as_deref() == Some(&format!("Bearer {TOKEN}"));
    match request.target.as_str() {
        "POST /v1/auth/token" => {
            let body: serde_json::Value =
                serde_json::from_slice(&request.body).expect("login body is JSON");
            if body == serde_json::json!({"username":"admin","password":"secret"}) {
                let reply = format!(
                    r#"{{"access_token":"{TOKEN}","token_type":"Bearer","expires_in":3600}}"#
                );
                (200, json, reply)
            } else {
                let reply = r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"bad credentials"}"#;
                (401, problem, reply.to_string())
            }
        }
        _ if !authorized => {
            let reply = r#"{"type":"about:blank","title":"Unauthorized","status":401,"detail":"missing or invalid token"}"#;
            (401, problem, reply.to_string())
        }
        "GET /v1/topics/orders/partitions/4/messages?offset=17&max_messages=100&wait_ms=1000" => {
            let reply = r#"{"records":[{"offset":17,"key":"k1","value":"text","headers":{"h":"v"},
                "timestamp_ms":1764422400000}],"next_offset":18,"high_watermark":18,"log_start_offset":0}"#;
            (200, json, reply.to_string())
        }
        "POST /v1/topics/orders/messages" => {
            let body: serde_json::Value =
                serde_json::from_slice(&request.body).expect("produce body is JSON");
            let expected =
                serde_json::json!({"records":[{"key":"k1","value":"text","headers":{"h":"v"}}]});
            assert_eq!(body, expected, "produce body on the wire");
            (
                200,
                json,
                r#"{"offsets":[{"partition":4,"offset":17}]}"#.to_string(),
            )
        }
        "GET /v1/topics" => (200, json, r#"{"topics":[]}"#.to_string()),
        // Announces a body far above the client's bound; the client must refuse to read it.
        "GET /v1/topics/huge" => (200, json, HUGE_MARKER.to_string()),
        _ => {
            let reply = r#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no such route"}"#;
            (404, problem, reply.to_string())
        }
    }
}

async fn read_request<S: AsyncReadExt + Unpin>(stream: &mut S) -> std::io::Result<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
        assert!(buffer.len() < REQUEST_BYTES_MAX, "request head too large");
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let target = request_line
        .rsplit_once(' ')
        .map(|(target, _)| target)
        .unwrap_or_default();
    let mut authorization = None;
    let mut length = 0usize;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "authorization" => authorization = Some(value.trim().to_string()),
            "content-length" => length = value.trim().parse().unwrap_or(0),
            _ => {}
        }
    }
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Ok(Request {
        target: target.to_string(),
        authorization,
        body,
    })
}

/// Serves HTTPS with broker 1's HTTPS certificate until the test ends.
async fn start_responder(paths: &CertPaths) -> SocketAddr {
    let own = &paths.broker(1).expect("broker 1").https;
    let config = tls::server_config(&own.cert, &own.key, None).expect("server config");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(request) = read_request(&mut stream).await else {
                    return;
                };
                let (status, content_type, body) = respond(&request);
                let (length, body) = if body == HUGE_MARKER {
                    (HUGE_BYTES, String::new())
                } else {
                    (body.len() as u64, body)
                };
                let reply = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n{body}"
                );
                let _ = stream.write_all(reply.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    address
}

async fn setup() -> (tempfile::TempDir, CertPaths, String) {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), &[1]).expect("certs");
    let address = start_responder(&paths).await;
    (dir, paths, format!("https://127.0.0.1:{}", address.port()))
}

async fn within_deadline<T>(call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .expect("call finished before the deadline")
}

#[tokio::test]
async fn login_then_fetch_and_produce_with_the_token() {
    let (_dir, paths, url) = setup().await;
    let client = Client::new(&url, Some(&paths.https_ca.cert)).expect("client");
    let token = within_deadline(client.login("admin", "secret"))
        .await
        .expect("login");
    assert_eq!(token.access_token, TOKEN);
    let client = client.with_token(token.access_token);
    let fetched = within_deadline(client.fetch("orders", 4, 17, Some(100), None, Some(1000)))
        .await
        .expect("fetch");
    assert_eq!(fetched.records[0].value.as_deref(), Some("text"));
    assert_eq!(fetched.next_offset, 18);
    let record = ProduceRecord {
        key: Some("k1".to_string()),
        value: Some("text".to_string()),
        headers: [("h".to_string(), "v".to_string())].into(),
        ..ProduceRecord::default()
    };
    let produced = within_deadline(client.produce(
        "orders",
        &ProduceRequest {
            records: vec![record],
        },
    ))
    .await
    .expect("produce");
    assert_eq!(produced.offsets[0].offset, 17);
    let topics = within_deadline(client.list_topics())
        .await
        .expect("list topics");
    assert!(topics.is_empty());
}

#[tokio::test]
async fn problem_json_becomes_an_api_error() {
    let (_dir, paths, url) = setup().await;
    let client = Client::new(&url, Some(&paths.https_ca.cert)).expect("client");
    match within_deadline(client.login("admin", "wrong")).await {
        Err(ClientError::Api {
            status,
            title,
            detail,
        }) => {
            assert_eq!(status, 401);
            assert_eq!(title, "Unauthorized");
            assert_eq!(detail, "bad credentials");
        }
        other => panic!("expected a 401 Api error, got {other:?}"),
    }
    let anonymous = within_deadline(client.whoami()).await;
    assert_eq!(anonymous.err().and_then(|error| error.status()), Some(401));
    let missing = within_deadline(
        client
            .clone()
            .with_token(TOKEN.to_string())
            .describe_topic("nope"),
    )
    .await;
    assert_eq!(missing.err().and_then(|error| error.status()), Some(404));
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_cluster_ca_refuses_the_broker() {
    let (_dir, _paths, url) = setup().await;
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other = certs::init(other_dir.path(), &[1]).expect("other certs");
    let client = Client::new(&url, Some(&other.https_ca.cert)).expect("client");
    let outcome = within_deadline(client.health()).await;
    assert!(
        matches!(outcome, Err(ClientError::Transport(_))),
        "expected a TLS failure, got {outcome:?}"
    );
}

#[tokio::test]
async fn an_oversized_reply_is_refused_before_it_is_read() {
    let (_dir, paths, url) = setup().await;
    let client = Client::new(&url, Some(&paths.https_ca.cert))
        .expect("client")
        .with_token(TOKEN.to_string());
    let outcome = within_deadline(client.describe_topic("huge")).await;
    assert!(
        matches!(outcome, Err(ClientError::ResponseTooLarge { .. })),
        "expected ResponseTooLarge, got {outcome:?}"
    );
}

#[test]
fn a_ca_file_without_certificates_is_refused_up_front() {
    tls::install_crypto_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = certs::init(dir.path(), &[1]).expect("certs");
    // The key file is PEM but holds no certificate.
    let outcome = Client::new("https://127.0.0.1:1", Some(&paths.https_ca.key));
    assert!(
        matches!(outcome, Err(ClientError::CaEmpty { .. })),
        "got {outcome:?}"
    );
    let missing = dir.path().join("missing.pem");
    let outcome = Client::new("https://127.0.0.1:1", Some(&missing));
    assert!(
        matches!(outcome, Err(ClientError::CaFile { .. })),
        "got {outcome:?}"
    );
}
