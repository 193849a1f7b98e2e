//! `Client` methods of idempotent produce: producer ids, sequenced batches and
//! `Idempotency-Key` batches.

use reqwest::Method;

use crate::client::api::{decode, send};
use crate::client::{Client, ClientError};
use crate::wire::{IdempotentProduceRequest, ProduceRequest, ProduceResponse, ProducerCreated};

/// The header that makes a plain produce idempotent.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

impl Client {
    /// `POST /v1/producers`: a new producer id owned by this client's user.
    pub async fn create_producer(&self) -> Result<String, ClientError> {
        let request = self.request(Method::POST, &["v1", "producers"], &[])?;
        let created: ProducerCreated = decode(send(request.json(&serde_json::json!({}))).await?)?;
        Ok(created.producer_id)
    }

    /// A produce carrying a producer id and sequence(s): a repeat returns the original offsets.
    pub async fn produce_idempotent(
        &self,
        topic: &str,
        batch: &IdempotentProduceRequest,
    ) -> Result<ProduceResponse, ClientError> {
        let request = self.request(Method::POST, &["v1", "topics", topic, "messages"], &[])?;
        decode(send(request.json(batch)).await?)
    }

    /// A produce with an `Idempotency-Key` header: a repeat with the same key returns the
    /// original offsets.
    pub async fn produce_with_key(
        &self,
        topic: &str,
        batch: &ProduceRequest,
        key: &str,
    ) -> Result<ProduceResponse, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "topics", topic, "messages"], &[])?
            .header(IDEMPOTENCY_KEY, key);
        decode(send(request.json(batch)).await?)
    }
}
