//! Long-lived reads of one partition (event streams): where a stream starts, and whether its
//! caller may still read once the stream has been open for a while.
//!
//! Owns the start-position rules. Reading itself is [`Broker::fetch`] in a loop (the HTTP layer
//! runs it), so a stream gets the same ACL check, leader forwarding and offset checks as a fetch
//! on every step. Must not know about HTTP or the event format.

use super::{Broker, BrokerError, Caller, FetchRequest, Fetched};

/// Where a stream begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamStart {
    /// The oldest record the partition still holds.
    LogStart,
    /// The high watermark when the stream opens: only records committed afterwards.
    Latest,
    /// This exact offset; outside `log_start_offset..=high_watermark` it is refused.
    Offset(u64),
}

impl Broker {
    /// Resolves `start` and reads the first records without waiting. Every error here (no such
    /// topic or partition, ACL denial, offset out of range, no leader) comes before the stream
    /// starts, so it can still be an ordinary error response.
    pub async fn open_stream(
        &self,
        caller: &Caller,
        topic: &str,
        partition: u32,
        start: StreamStart,
    ) -> Result<Fetched, BrokerError> {
        let offset = match start {
            StreamStart::Offset(offset) => offset,
            StreamStart::LogStart => match self.probe(caller, topic, partition, 0).await {
                Ok(fetched) => return Ok(fetched),
                Err(BrokerError::OffsetOutOfRange {
                    log_start_offset, ..
                }) => log_start_offset,
                Err(error) => return Err(error),
            },
            StreamStart::Latest => match self.probe(caller, topic, partition, 0).await {
                Ok(fetched) => fetched.high_watermark,
                Err(BrokerError::OffsetOutOfRange { high_watermark, .. }) => high_watermark,
                Err(error) => return Err(error),
            },
        };
        self.probe(caller, topic, partition, offset).await
    }

    /// One read of an open stream: the caller's token is checked again, then a fetch from
    /// `offset` waits up to `wait_ms` for records. A failure while the topic is being deleted
    /// (its replicas stop before every broker has applied the deletion) is reported as the
    /// deletion, not as the unavailable replica.
    pub async fn stream_read(
        &self,
        caller: &Caller,
        topic: &str,
        partition: u32,
        offset: u64,
        wait_ms: u64,
    ) -> Result<Fetched, BrokerError> {
        self.check_still_authenticated(caller)?;
        let request = FetchRequest {
            offset,
            max_messages: None,
            max_bytes: None,
            wait_ms: Some(wait_ms),
        };
        match self.fetch(caller, topic, partition, request).await {
            Err(BrokerError::Unavailable(_) | BrokerError::NotLeader { .. })
                if !self.parts.controller.state().topics.contains_key(topic) =>
            {
                Err(BrokerError::NotFound(format!(
                    "topic '{topic}' was deleted"
                )))
            }
            other => other,
        }
    }

    /// A fetch that answers at once with what is committed from `offset`.
    async fn probe(
        &self,
        caller: &Caller,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<Fetched, BrokerError> {
        let request = FetchRequest {
            offset,
            max_messages: None,
            max_bytes: None,
            wait_ms: Some(0),
        };
        self.fetch(caller, topic, partition, request).await
    }

    /// Whether the token a stream was opened with still holds: not expired (with the usual
    /// leeway), not revoked, its user still exists and the user's tokens were not revoked. A stream checks this before each read,
    /// so it cannot outlive the credential it was opened with.
    pub fn check_still_authenticated(&self, caller: &Caller) -> Result<(), BrokerError> {
        let now_s = self.now_ms() / 1000;
        let claims = &caller.claims;
        if now_s > claims.exp.saturating_add(self.parts.tokens.leeway_s) {
            return Err(BrokerError::Unauthenticated(
                "the access token expired; log in again and resume with Last-Event-ID".into(),
            ));
        }
        let state = self.parts.controller.state();
        if state.is_revoked(&claims.jti) {
            return Err(BrokerError::Unauthenticated(
                "the access token was revoked".into(),
            ));
        }
        match state.users.get(&claims.sub) {
            None => Err(BrokerError::Unauthenticated(format!(
                "user '{}' no longer exists",
                claims.sub
            ))),
            Some(user) if user.token_generation != claims.gen => {
                Err(BrokerError::Unauthenticated(format!(
                    "the tokens of user '{}' were revoked (password change or revoke-all); \
                     log in again",
                    claims.sub
                )))
            }
            Some(_) => Ok(()),
        }
    }
}
