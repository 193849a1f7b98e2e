//! Stream tickets: single-use, short-lived credentials for one event stream of one partition,
//! for clients that cannot send an Authorization header (a browser's `EventSource`).
//!
//! A ticket is issued to an authenticated caller who may read the partition (`POST
//! /v1/stream-tickets`, audited as `stream.ticket`) and names that caller's bearer token, the
//! topic and the partition. It is redeemed at most once, within `STREAM_TICKET_TTL_MS`, by an
//! event-stream request for that same partition; the token is then verified again as if it had
//! been sent (so a token revoked or expired since is refused), and ACLs are checked again by the
//! stream. Tickets live in this broker's memory only: a stream must be opened on the broker that
//! issued its ticket, and a restart forgets them. At most `limits.stream_tickets_max` are
//! outstanding; expired ones are dropped as new ones are issued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{Broker, BrokerError, Caller, RequestInfo};
use crate::audit::actions;
use crate::auth::acl::{Operation, ResourceType};
use crate::wire::StreamTicket;

/// How long an issued ticket may wait to be used: 30 seconds.
pub const STREAM_TICKET_TTL_MS: u64 = 30_000;

/// Random bytes in a ticket (256 bits; 43 characters of unpadded base64url).
const TICKET_BYTES: usize = 32;

struct Ticket {
    token: String,
    topic: String,
    partition: u32,
    expires: Instant,
}

/// The tickets this broker issued and that were neither used nor expired, by the SHA-256 of
/// the ticket (so the table holds no usable ticket).
pub struct StreamTickets {
    outstanding: Mutex<HashMap<[u8; 32], Ticket>>,
    max: usize,
}

fn digest(ticket: &str) -> [u8; 32] {
    Sha256::digest(ticket.as_bytes()).into()
}

impl StreamTickets {
    pub fn new(max: usize) -> StreamTickets {
        StreamTickets {
            outstanding: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    fn issue(&self, token: String, topic: String, partition: u32) -> Result<String, BrokerError> {
        let now = Instant::now();
        let mut outstanding = self.outstanding.lock().expect("ticket table");
        if outstanding.len() >= self.max {
            outstanding.retain(|_, ticket| ticket.expires > now);
        }
        if outstanding.len() >= self.max {
            return Err(BrokerError::TooMany(format!(
                "{} stream tickets are outstanding on this broker (limits.stream_tickets_max); \
                 use or let expire some first",
                outstanding.len()
            )));
        }
        let mut bytes = [0u8; TICKET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        let ticket = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        outstanding.insert(
            digest(&ticket),
            Ticket {
                token,
                topic,
                partition,
                expires: now + Duration::from_millis(STREAM_TICKET_TTL_MS),
            },
        );
        Ok(ticket)
    }

    /// Takes the ticket out (whatever happens next, it is used up) if it is live.
    fn take(&self, ticket: &str) -> Option<Ticket> {
        let mut outstanding = self.outstanding.lock().expect("ticket table");
        let taken = outstanding.remove(&digest(ticket))?;
        (taken.expires > Instant::now()).then_some(taken)
    }
}

impl Broker {
    /// Issues a ticket for one event stream of `topic`/`partition`, standing for `token` (the
    /// caller's own bearer token).
    pub async fn issue_stream_ticket(
        &self,
        caller: &Caller,
        token: String,
        topic: &str,
        partition: u32,
    ) -> Result<StreamTicket, BrokerError> {
        self.authorize(caller, ResourceType::Topic, topic, Operation::Read)
            .await?;
        let meta = self.topic(topic)?;
        if partition as usize >= meta.partitions.len() {
            return Err(BrokerError::NotFound(format!(
                "partition {partition} does not exist; topic '{topic}' has {} partitions",
                meta.partitions.len()
            )));
        }
        self.record_change(
            caller,
            actions::STREAM_TICKET,
            &format!("topic:{topic}/{partition}"),
        )
        .await?;
        let ticket = self.tickets.issue(token, topic.to_string(), partition)?;
        Ok(StreamTicket {
            ticket,
            expires_in_ms: STREAM_TICKET_TTL_MS,
        })
    }

    /// The caller an event-stream request for `topic`/`partition` acts as when it carries
    /// `ticket` instead of a token. An unknown, used, expired or other partition's ticket is a
    /// 401, audited like a bad token.
    pub async fn redeem_stream_ticket(
        &self,
        ticket: &str,
        topic: &str,
        partition: u32,
        request: RequestInfo,
    ) -> Result<Caller, BrokerError> {
        let Some(taken) = self.tickets.take(ticket) else {
            return Err(self
                .reject_token(
                    &request,
                    "stream ticket is unknown, used or expired; get a new one from POST /v1/stream-tickets"
                        .into(),
                )
                .await);
        };
        if taken.topic != topic || taken.partition != partition {
            return Err(self
                .reject_token(
                    &request,
                    format!(
                        "stream ticket is for partition {} of topic '{}', not partition {partition} of topic '{topic}'",
                        taken.partition, taken.topic
                    ),
                )
                .await);
        }
        self.authenticate(Some(&taken.token), request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_is_taken_once_and_the_table_is_bounded() {
        let tickets = StreamTickets::new(2);
        let first = tickets.issue("t1".into(), "orders".into(), 0).unwrap();
        assert_eq!(first.len(), 43);
        let second = tickets.issue("t2".into(), "orders".into(), 1).unwrap();
        assert_ne!(first, second);
        assert!(matches!(
            tickets.issue("t3".into(), "orders".into(), 2),
            Err(BrokerError::TooMany(_))
        ));
        let taken = tickets.take(&first).expect("first is live");
        assert_eq!((taken.token.as_str(), taken.partition), ("t1", 0));
        assert!(tickets.take(&first).is_none(), "single use");
        assert!(tickets.take("not-a-ticket").is_none());
        tickets.issue("t3".into(), "orders".into(), 2).unwrap();
        assert_eq!(tickets.outstanding.lock().unwrap().len(), 2);
    }

    #[test]
    fn an_expired_ticket_is_refused_and_makes_room() {
        let tickets = StreamTickets::new(1);
        let old = tickets.issue("t1".into(), "orders".into(), 0).unwrap();
        tickets
            .outstanding
            .lock()
            .unwrap()
            .values_mut()
            .for_each(|t| t.expires = Instant::now() - Duration::from_millis(1));
        let new = tickets.issue("t2".into(), "orders".into(), 0).unwrap();
        assert!(tickets.take(&old).is_none(), "expired");
        assert!(tickets.take(&new).is_some());
    }
}
