//! `Client`: one typed method per route of the HTTP API v1 that a broker serves.
//!
//! Owns URL building, the bearer token, and turning replies into `wire` shapes or `ClientError`s.
//! It holds one `reqwest::Client` (a connection pool); it must not retry, cache or decide
//! anything about the results.
use std::path::Path;

use reqwest::{Method, RequestBuilder, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::error::{api_error, ClientError};
use crate::client::list::decode_list;
use crate::wire::{
    AclRule, AddBroker, AuditEntry, AuditFilters, AuditHead, AuditPage, ClusterView, CreateAcl,
    CreateTopic, CreateUser, FetchQuery, FetchResponse, ProduceRequest, ProduceResponse,
    RotatedKey, SetPassword, SigningKeyList, SigningKeyView, TokenRequest, TokenResponse,
    TopicDescription, User, Whoami,
};

/// Largest reply body the client reads; a longer one is an error, not an allocation.
pub const RESPONSE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Bound on establishing a TCP + TLS connection (long polls are bounded by `wait_ms` instead).
const CONNECT_TIMEOUT_MS: u64 = 10_000;

/// How long an idle connection is kept for reuse: 4 s, below the broker's keep-alive of 5 s
/// (`http::listener::KEEP_ALIVE`). A connection the broker closed while it sat idle is otherwise
/// taken for the next request, which then fails with a reset.
const POOL_IDLE_MS: u64 = 4_000;

/// Typed HTTP client for one broker's API.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
}

impl std::fmt::Debug for Client {
    // The bearer token is a credential: show whether there is one, never its value.
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("has_token", &self.token.is_some())
            .finish()
    }
}

impl Client {
    /// A client for `base_url` (e.g. `https://127.0.0.1:8441`). With `ca_pem`, only the
    /// certificates in that PEM file (a CA or a bundle) are trusted; without it, the
    /// platform's roots are.
    pub fn new(base_url: &str, ca_pem: Option<&Path>) -> Result<Client, ClientError> {
        let base = parse_base(base_url)?;
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(std::time::Duration::from_millis(CONNECT_TIMEOUT_MS))
            .pool_idle_timeout(std::time::Duration::from_millis(POOL_IDLE_MS));
        if let Some(path) = ca_pem {
            let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
                path: path.to_path_buf(),
                source,
            })?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                ClientError::CaCertificate {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
            if roots.is_empty() {
                return Err(ClientError::CaEmpty {
                    path: path.to_path_buf(),
                });
            }
            builder = builder.tls_certs_only(roots);
        }
        Ok(Client {
            http: builder.build()?,
            base,
            token: None,
        })
    }

    /// The same client presenting `token` as `Authorization: Bearer`.
    pub fn with_token(mut self, token: String) -> Client {
        self.token = Some(token);
        self
    }

    /// The bearer token this client presents, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// `POST /v1/auth/token`.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<TokenResponse, ClientError> {
        let body = TokenRequest {
            username: username.to_string(),
            password: password.to_string(),
        };
        let request = self.request(Method::POST, &["v1", "auth", "token"], &[])?;
        decode(send(request.json(&body)).await?)
    }

    /// `POST /v1/auth/revoke`: revokes the token this client presents.
    pub async fn revoke(&self) -> Result<(), ClientError> {
        let request = self.request(Method::POST, &["v1", "auth", "revoke"], &[])?;
        send(request).await.map(drop)
    }

    /// `GET /v1/auth/keys`: signing key ids and lifetimes.
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKeyView>, ClientError> {
        let list: SigningKeyList = self.get(&["v1", "auth", "keys"], &[]).await?;
        Ok(list.keys)
    }

    /// `POST /v1/auth/keys`: a new signing key signs from now on; answers its id.
    pub async fn rotate_signing_key(&self) -> Result<RotatedKey, ClientError> {
        let request = self.request(Method::POST, &["v1", "auth", "keys"], &[])?;
        decode(send(request).await?)
    }

    /// `GET /v1/whoami`.
    pub async fn whoami(&self) -> Result<Whoami, ClientError> {
        self.get(&["v1", "whoami"], &[]).await
    }

    /// `GET /v1/topics`.
    pub async fn list_topics(&self) -> Result<Vec<TopicDescription>, ClientError> {
        let body = send(self.request(Method::GET, &["v1", "topics"], &[])?).await?;
        decode_list(&body, "topics")
    }

    /// `POST /v1/topics`.
    pub async fn create_topic(&self, topic: &CreateTopic) -> Result<(), ClientError> {
        self.send_json(Method::POST, &["v1", "topics"], topic).await
    }

    /// `GET /v1/topics/{topic}`.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, ClientError> {
        self.get(&["v1", "topics", name], &[]).await
    }

    /// `DELETE /v1/topics/{topic}`.
    pub async fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        send(self.request(Method::DELETE, &["v1", "topics", name], &[])?)
            .await
            .map(drop)
    }

    /// `POST /v1/topics/{topic}/messages`: one position per record, in request order.
    pub async fn produce(
        &self,
        topic: &str,
        batch: &ProduceRequest,
    ) -> Result<ProduceResponse, ClientError> {
        let request = self.request(Method::POST, &["v1", "topics", topic, "messages"], &[])?;
        decode(send(request.json(batch)).await?)
    }

    /// `POST /v1/topics/{topic}/messages` with an already encoded JSON `ProduceRequest`, so
    /// load generators can encode a batch once and send it many times.
    pub async fn produce_encoded(
        &self,
        topic: &str,
        body: Vec<u8>,
    ) -> Result<ProduceResponse, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "topics", topic, "messages"], &[])?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        decode(send(request).await?)
    }

    /// `GET /v1/topics/{topic}/partitions/{p}/messages`: committed records from `offset`,
    /// waiting up to `wait_ms` for the first one when none is available yet.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_messages: Option<u32>,
        max_bytes: Option<u64>,
        wait_ms: Option<u64>,
    ) -> Result<FetchResponse, ClientError> {
        let body = self
            .fetch_encoded(topic, partition, offset, max_messages, max_bytes, wait_ms)
            .await?;
        decode(body)
    }

    /// The same request as `fetch`, returning the undecoded JSON body, so load generators can
    /// decode only what they count instead of allocating every record.
    pub async fn fetch_encoded(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_messages: Option<u32>,
        max_bytes: Option<u64>,
        wait_ms: Option<u64>,
    ) -> Result<Vec<u8>, ClientError> {
        let partition = partition.to_string();
        let query = FetchQuery {
            offset: Some(offset),
            max_messages: max_messages.map(u64::from),
            max_bytes,
            wait_ms,
        };
        let path = ["v1", "topics", topic, "partitions", &partition, "messages"];
        send(self.request(Method::GET, &path, &query.pairs())?).await
    }

    /// The same request as `fetch_encoded`, reading the body into `body` (cleared first), so
    /// a reader that fetches in a loop reuses one buffer instead of growing a new one each time.
    pub async fn fetch_into(
        &self,
        body: &mut Vec<u8>,
        topic: &str,
        partition: u32,
        offset: u64,
        max_messages: Option<u32>,
    ) -> Result<(), ClientError> {
        let partition = partition.to_string();
        let query = FetchQuery {
            offset: Some(offset),
            max_messages: max_messages.map(u64::from),
            max_bytes: None,
            wait_ms: None,
        };
        let path = ["v1", "topics", topic, "partitions", &partition, "messages"];
        send_into(self.request(Method::GET, &path, &query.pairs())?, body).await
    }

    /// `GET /v1/users`.
    pub async fn list_users(&self) -> Result<Vec<User>, ClientError> {
        let body = send(self.request(Method::GET, &["v1", "users"], &[])?).await?;
        decode_list(&body, "users")
    }

    /// `POST /v1/users`.
    pub async fn create_user(&self, user: &CreateUser) -> Result<(), ClientError> {
        self.send_json(Method::POST, &["v1", "users"], user).await
    }

    /// `DELETE /v1/users/{user}`.
    pub async fn delete_user(&self, username: &str) -> Result<(), ClientError> {
        send(self.request(Method::DELETE, &["v1", "users", username], &[])?)
            .await
            .map(drop)
    }

    /// `PUT /v1/users/{user}/password`.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), ClientError> {
        let body = SetPassword {
            password: password.to_string(),
        };
        let path = ["v1", "users", username, "password"];
        self.send_json(Method::PUT, &path, &body).await
    }

    /// `POST /v1/users/{user}/revoke-tokens`: ends every token of the user issued so far.
    pub async fn revoke_user_tokens(&self, username: &str) -> Result<(), ClientError> {
        let path = ["v1", "users", username, "revoke-tokens"];
        send(self.request(Method::POST, &path, &[])?)
            .await
            .map(drop)
    }

    /// `GET /v1/acls`.
    pub async fn list_acls(&self) -> Result<Vec<AclRule>, ClientError> {
        let body = send(self.request(Method::GET, &["v1", "acls"], &[])?).await?;
        decode_list(&body, "acls")
    }

    /// `POST /v1/acls`: returns the stored rule with its id.
    pub async fn create_acl(&self, rule: &CreateAcl) -> Result<AclRule, ClientError> {
        let request = self.request(Method::POST, &["v1", "acls"], &[])?;
        decode(send(request.json(rule)).await?)
    }

    /// `DELETE /v1/acls/{id}`.
    pub async fn delete_acl(&self, id: u64) -> Result<(), ClientError> {
        let id = id.to_string();
        send(self.request(Method::DELETE, &["v1", "acls", &id], &[])?)
            .await
            .map(drop)
    }

    /// `GET /v1/audit` with `filters`: one page of matching events.
    pub async fn audit(&self, filters: &AuditFilters) -> Result<Vec<AuditEntry>, ClientError> {
        let request = self.request(Method::GET, &["v1", "audit"], &filters.pairs())?;
        decode_list(&send(request).await?, "events")
    }

    /// `GET /v1/audit` with `filters`, with the page's continuation offsets.
    pub async fn audit_page(&self, filters: &AuditFilters) -> Result<AuditPage, ClientError> {
        self.get(&["v1", "audit"], &filters.pairs()).await
    }

    /// `GET /v1/audit/head`: the newest audit event's offset and hash.
    pub async fn audit_head(&self) -> Result<AuditHead, ClientError> {
        self.get(&["v1", "audit", "head"], &[]).await
    }

    /// `GET /v1/cluster`, undecoded, for printing as the broker sent it.
    pub async fn cluster_json(&self) -> Result<serde_json::Value, ClientError> {
        self.get(&["v1", "cluster"], &[]).await
    }

    /// `GET /v1/cluster`.
    pub async fn cluster(&self) -> Result<ClusterView, ClientError> {
        self.get(&["v1", "cluster"], &[]).await
    }

    /// `POST /v1/cluster/brokers`: registers a joining broker. Returns the reply body, if any.
    pub async fn add_broker(
        &self,
        broker: &AddBroker,
    ) -> Result<Option<serde_json::Value>, ClientError> {
        let request = self.request(Method::POST, &["v1", "cluster", "brokers"], &[])?;
        decode_optional(send(request.json(broker)).await?)
    }

    /// `POST /v1/cluster/brokers/{id}/decommission`. Returns the reply body, if any.
    pub async fn decommission_broker(
        &self,
        id: u64,
    ) -> Result<Option<serde_json::Value>, ClientError> {
        let id = id.to_string();
        let path = ["v1", "cluster", "brokers", &id, "decommission"];
        decode_optional(send(self.request(Method::POST, &path, &[])?).await?)
    }

    /// `POST /v1/cluster/rebalance`. Returns the reply body, if any.
    pub async fn rebalance(&self) -> Result<Option<serde_json::Value>, ClientError> {
        let request = self.request(Method::POST, &["v1", "cluster", "rebalance"], &[])?;
        decode_optional(send(request).await?)
    }

    /// `GET /healthz`: the reply body of a healthy broker.
    pub async fn health(&self) -> Result<String, ClientError> {
        let body = send(self.request(Method::GET, &["healthz"], &[])?).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    /// `GET /readyz`: Ok once the broker serves requests.
    /// `GET /metrics`: the Prometheus text of the broker this client talks to.
    pub async fn metrics_text(&self) -> Result<String, ClientError> {
        let body = send(self.request(Method::GET, &["metrics"], &[])?).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    pub async fn ready(&self) -> Result<String, ClientError> {
        let body = send(self.request(Method::GET, &["readyz"], &[])?).await?;
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<T, ClientError> {
        decode(send(self.request(Method::GET, path, query)?).await?)
    }

    pub(crate) async fn send_json<B: Serialize>(
        &self,
        method: Method,
        path: &[&str],
        body: &B,
    ) -> Result<(), ClientError> {
        send(self.request(method, path, &[])?.json(body))
            .await
            .map(drop)
    }

    /// A request to `base/path` (each segment percent-encoded) with the bearer token, if any.
    pub(crate) fn request(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, String)],
    ) -> Result<RequestBuilder, ClientError> {
        let url = endpoint(&self.base, path, query)?;
        let request = self.http.request(method, url);
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }
}

fn parse_base(base_url: &str) -> Result<Url, ClientError> {
    let invalid = |reason: String| ClientError::InvalidUrl {
        url: base_url.to_string(),
        reason,
    };
    let url = Url::parse(base_url).map_err(|error| invalid(error.to_string()))?;
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("expected an http:// or https:// URL".to_string()));
    }
    Ok(url)
}

/// `base` joined with `path` segments (percent-encoded) and `query` pairs.
pub(crate) fn endpoint(
    base: &Url,
    path: &[&str],
    query: &[(&str, String)],
) -> Result<Url, ClientError> {
    let mut url = base.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| ClientError::InvalidUrl {
                url: base.to_string(),
                reason: "cannot carry a path".to_string(),
            })?;
        segments.pop_if_empty().extend(path);
    }
    url.set_query(None);
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in query {
            pairs.append_pair(name, value);
        }
    }
    Ok(url)
}

/// Sends `request`; a 2xx yields the body, anything else an `Api` error.
pub(crate) async fn send(request: RequestBuilder) -> Result<Vec<u8>, ClientError> {
    let mut body = Vec::new();
    send_into(request, &mut body).await?;
    Ok(body)
}

/// `send`, reading a successful answer's body into `body` (cleared first).
pub(crate) async fn send_into(
    request: RequestBuilder,
    body: &mut Vec<u8>,
) -> Result<(), ClientError> {
    let mut response = request.send().await?;
    let status = response.status();
    read_bounded(&mut response, body).await?;
    if status.is_success() {
        Ok(())
    } else {
        Err(api_error(status.as_u16(), body))
    }
}

/// The whole body of `response` into `body` (cleared first), refusing more than
/// `RESPONSE_BYTES_MAX` bytes.
async fn read_bounded(
    response: &mut reqwest::Response,
    body: &mut Vec<u8>,
) -> Result<(), ClientError> {
    let too_large = ClientError::ResponseTooLarge {
        bytes_max: RESPONSE_BYTES_MAX,
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > RESPONSE_BYTES_MAX {
        return Err(too_large);
    }
    body.clear();
    body.reserve(usize::try_from(announced).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        if (body.len() + chunk.len()) as u64 > RESPONSE_BYTES_MAX {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(())
}

pub(crate) fn decode<T: DeserializeOwned>(body: Vec<u8>) -> Result<T, ClientError> {
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode { source })
}

/// An empty (or all-whitespace) body is `None`; anything else must be JSON.
fn decode_optional(body: Vec<u8>) -> Result<Option<serde_json::Value>, ClientError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    decode(body).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_encodes_segments_and_query() {
        let base = parse_base("https://127.0.0.1:8441").expect("valid base");
        let url = endpoint(
            &base,
            &["v1", "topics", "a b/c", "messages"],
            &[
                ("offset", "17".to_string()),
                ("wait_ms", "1000".to_string()),
            ],
        )
        .expect("endpoint");
        assert_eq!(
            url.as_str(),
            "https://127.0.0.1:8441/v1/topics/a%20b%2Fc/messages?offset=17&wait_ms=1000"
        );
    }

    #[test]
    fn queries_are_the_wire_query_shapes() {
        let base = parse_base("https://127.0.0.1:8441").expect("valid base");
        let fetch = FetchQuery {
            offset: Some(17),
            max_messages: Some(5),
            wait_ms: Some(1000),
            ..FetchQuery::default()
        };
        let url = endpoint(&base, &["v1", "m"], &fetch.pairs()).expect("endpoint");
        assert_eq!(url.query(), Some("offset=17&max_messages=5&wait_ms=1000"));
        let filters = AuditFilters {
            principal: Some("a b".to_string()),
            decision: Some(crate::wire::AuditDecision::Deny),
            ..AuditFilters::default()
        };
        let url = endpoint(&base, &["v1", "audit"], &filters.pairs()).expect("endpoint");
        assert_eq!(url.query(), Some("principal=a+b&decision=deny"));
    }

    #[test]
    fn endpoint_keeps_a_base_path_prefix() {
        let base = parse_base("https://example.test/palisade/").expect("valid base");
        let url = endpoint(&base, &["v1", "whoami"], &[]).expect("endpoint");
        assert_eq!(url.as_str(), "https://example.test/palisade/v1/whoami");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let client = Client::new("https://127.0.0.1:8441", None)
            .expect("client")
            .with_token("eyJ.secret.sig".to_string());
        let printed = format!("{client:?}");
        assert!(!printed.contains("eyJ.secret.sig"), "{printed}");
        assert!(printed.contains("has_token: true"), "{printed}");
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(matches!(
            parse_base("ftp://127.0.0.1"),
            Err(ClientError::InvalidUrl { .. })
        ));
        assert!(matches!(
            parse_base("not a url"),
            Err(ClientError::InvalidUrl { .. })
        ));
    }
}
