//! The Durable Streams protocol's operations (`docs/durable-streams.md`): create, append, close,
//! read (catch-up, long-poll, the chunks of an SSE response), metadata and delete, on top of
//! single-partition topics.
//!
//! A stream at path `p` is the topic `ds.` + [`topic_for`]`(p)`, with one partition; its records
//! (laid out as `state` describes) are the whole truth about it, so every broker can serve it.
//! Every append is one conditional produce, written only where the writer read the log's end:
//! two writers on different brokers cannot both pass their checks against the same state. This
//! broker keeps the folded state of the streams it served (`durable_streams.streams_cached_max`)
//! and reads only the records written since.

pub mod state;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::forward::{ForwardReply, ForwardRequest};
use super::{Broker, BrokerError, Caller, FetchRequest, Held};
use crate::audit::actions;
use crate::auth::acl::{Operation, ResourceType};
use crate::cluster::{MetaCommand, TopicMeta, TopicSpec};
use crate::partition::batch::Record;
use crate::partition::read::FetchedRecord;
use crate::partition::EncodedRecords;
use crate::raft::GroupId;
pub use state::{Append, ForkOf, Position, ProducerClaim, Refusal, StreamConfig};
use state::{Decision, StreamState};

/// The prefix of every stream's topic name.
pub const TOPIC_PREFIX: &str = "ds.";
/// Longest topic name a stream path may encode to (the topic name limit).
pub const TOPIC_CHARS_MAX: usize = 249;
/// How long an append that found the log's end moved waits for the other write to commit
/// before it reads the state again.
const TAIL_MOVED_WAIT_MS: u64 = 50;

/// Settings of the protocol (`[durable_streams]`).
#[derive(Clone, Debug)]
pub struct DurableSettings {
    pub anonymous_principal: Option<String>,
    pub long_poll_ms: u64,
    pub sse_connection_ms: u64,
    pub streams_cached_max: usize,
}

impl Default for DurableSettings {
    fn default() -> Self {
        DurableSettings {
            anonymous_principal: None,
            long_poll_ms: 20_000,
            sse_connection_ms: 60_000,
            streams_cached_max: 1024,
        }
    }
}

/// One stream's folded state on this broker.
struct Slot {
    state: tokio::sync::Mutex<StreamState>,
    /// Last read or write through this broker, Unix ms (a TTL runs from it).
    last_access_ms: AtomicU64,
    /// Recency, for forgetting the least recently used slot.
    used: AtomicU64,
}

/// The streams this broker keeps state of, by partition group (a re-created stream has a new
/// group, so a deleted stream's state is never taken for its successor's).
pub struct Streams {
    settings: DurableSettings,
    slots: Mutex<HashMap<GroupId, Arc<Slot>>>,
    clock: AtomicU64,
}

impl Streams {
    pub fn new(settings: DurableSettings) -> Streams {
        Streams {
            settings,
            slots: Mutex::new(HashMap::new()),
            clock: AtomicU64::new(0),
        }
    }

    pub fn settings(&self) -> &DurableSettings {
        &self.settings
    }

    fn slot(&self, group: GroupId) -> Arc<Slot> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut slots = self.slots.lock().expect("stream slots");
        if let Some(slot) = slots.get(&group) {
            slot.used.store(tick, Ordering::Relaxed);
            return slot.clone();
        }
        if slots.len() >= self.settings.streams_cached_max {
            let oldest = slots
                .iter()
                .min_by_key(|(_, slot)| slot.used.load(Ordering::Relaxed))
                .map(|(group, _)| *group);
            if let Some(oldest) = oldest {
                slots.remove(&oldest);
            }
        }
        let slot = Arc::new(Slot {
            state: tokio::sync::Mutex::new(StreamState::default()),
            last_access_ms: AtomicU64::new(0),
            used: AtomicU64::new(tick),
        });
        slots.insert(group, slot.clone());
        slot
    }

    fn forget(&self, group: GroupId) {
        self.slots.lock().expect("stream slots").remove(&group);
    }
}

/// The topic of the stream at `path` (the part of the URL after the prefix, decoded):
/// `ds.` then the path with `/` written `.`, letters, digits and `-` kept, and every other byte
/// written `_` and two hex digits. Different paths get different topics.
pub fn topic_for(path: &str) -> Result<String, Refusal> {
    let bad = |why: &str| Err(Refusal::BadRequest(format!("stream path {path:?}: {why}")));
    if path.is_empty() {
        return bad("it is empty");
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments
        .iter()
        .any(|s| s.is_empty() || *s == "." || *s == "..")
    {
        return bad("a segment is empty, . or ..");
    }
    if segments[0] == "__ds" {
        return bad("paths under __ds are reserved for the protocol's control routes");
    }
    let mut topic = String::from(TOPIC_PREFIX);
    for byte in path.bytes() {
        match byte {
            b'/' => topic.push('.'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => topic.push(byte as char),
            other => topic.push_str(&format!("_{other:02x}")),
        }
    }
    if topic.len() > TOPIC_CHARS_MAX {
        return bad(&format!(
            "it is too long: its topic name would have {} characters, at most {TOPIC_CHARS_MAX} \
             are allowed (a byte other than a letter, digit, - or / takes three)",
            topic.len()
        ));
    }
    Ok(topic)
}

/// What a create asks for.
#[derive(Clone, Debug, Default)]
pub struct Create {
    pub content_type: Option<String>,
    pub ttl: Option<String>,
    pub expires_at: Option<String>,
    pub closed: bool,
    pub body: Vec<u8>,
    /// `Stream-Forked-From`, `Stream-Fork-Offset`, `Stream-Fork-Sub-Offset`.
    pub forked_from: Option<String>,
    pub fork_offset: Option<String>,
    pub fork_sub_offset: Option<String>,
}

/// The inherited records of a fork and the offset after them (boxed: the read recurses
/// through a chain of forks).
type Inherited<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(Vec<FetchedRecord>, u64), DsError>> + Send + 'a>,
>;

/// Where a new fork starts.
struct ForkPoint {
    source: StreamConfig,
    fork: ForkOf,
    prefix: Vec<Vec<u8>>,
}

/// A stream's configuration and where it stands.
#[derive(Clone, Debug)]
pub struct StreamInfo {
    pub config: StreamConfig,
    /// The offset after the last record: the tail.
    pub tail: u64,
    pub closed: bool,
}

/// The answer to a create.
#[derive(Clone, Debug)]
pub struct Created {
    /// `false`: the stream existed with this configuration.
    pub new: bool,
    pub info: StreamInfo,
}

/// How an append ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// The producer's write was already in the stream.
    Duplicate {
        last_seq: u64,
    },
    /// A close of a closed stream.
    AlreadyClosed,
}

#[derive(Clone, Debug)]
pub struct Appended {
    pub outcome: Outcome,
    pub tail: u64,
    pub closed: bool,
}

/// A read's records (data only) and where the stream stands after them.
#[derive(Debug)]
pub struct Chunk {
    pub config: StreamConfig,
    pub records: Vec<FetchedRecord>,
    /// Where the read started and where the next one starts.
    pub start: u64,
    pub next: u64,
    /// Everything the stream held when the read ended was returned.
    pub up_to_date: bool,
    /// The stream is closed and `next` is its end: no data will ever follow.
    pub closed: bool,
    /// The identity of the stream (its creation time), for entity tags.
    pub created_ms: u64,
    pub held: Held,
}

/// A refusal of the protocol (with the tail where the answer carries it), or a broker error.
#[derive(Debug, thiserror::Error)]
pub enum DsError {
    #[error("{refusal}")]
    Refused { refusal: Refusal, tail: Option<u64> },
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<Refusal> for DsError {
    fn from(refusal: Refusal) -> Self {
        DsError::Refused {
            refusal,
            tail: None,
        }
    }
}

fn not_found() -> DsError {
    Refusal::NotFound.into()
}

impl Broker {
    pub fn durable_settings(&self) -> &DurableSettings {
        self.streams.settings()
    }

    /// The caller a Durable Streams request without credentials acts as, when
    /// `durable_streams.anonymous_principal` is set: never a superuser, so only what ACLs grant
    /// its name is allowed, and every denial and change is audited under that name. Its claims
    /// name no token (no `jti` to revoke, no expiry): it exists only for this one request.
    pub fn anonymous_caller(&self, request: super::RequestInfo) -> Caller {
        let name = self
            .streams
            .settings()
            .anonymous_principal
            .clone()
            .unwrap_or_default();
        Caller {
            principal: crate::auth::Principal {
                name: name.clone(),
                superuser: false,
            },
            claims: crate::auth::jwt::Claims {
                sub: name,
                iss: String::new(),
                aud: String::new(),
                exp: 0,
                nbf: 0,
                iat: 0,
                jti: String::new(),
                gen: 0,
            },
            request,
        }
    }

    /// The stream's topic, or 404 (an unknown topic and a half-created stream alike).
    fn stream_topic(&self, path: &str) -> Result<TopicMeta, DsError> {
        let name = topic_for(path)?;
        match self.topic(&name) {
            Ok(topic) if !topic.internal && topic.partitions.len() == 1 => Ok(topic),
            _ => Err(not_found()),
        }
    }

    /// The stream at `path`, once `caller` may do `operation` on it (a denial is audited).
    async fn authorized_stream(
        &self,
        caller: &Caller,
        path: &str,
        operation: Operation,
    ) -> Result<TopicMeta, DsError> {
        let name = topic_for(path)?;
        self.authorize(caller, ResourceType::Topic, &name, operation)
            .await?;
        self.stream_topic(path)
    }

    /// Reads the records written since `state.end` (waiting up to `wait_ms` for one) into it.
    async fn refresh(
        &self,
        topic: &TopicMeta,
        state: &mut StreamState,
        wait_ms: u64,
    ) -> Result<(), DsError> {
        loop {
            let fetched = self
                .fetch_partition(
                    topic,
                    0,
                    FetchRequest {
                        offset: state.end,
                        max_messages: None,
                        max_bytes: None,
                        wait_ms: Some(wait_ms),
                    },
                )
                .await;
            let fetched = match fetched {
                Ok(fetched) => fetched,
                Err(BrokerError::OffsetOutOfRange {
                    log_start_offset, ..
                }) if log_start_offset > state.end => {
                    return Err(Refusal::Gone(
                        "the stream's first records were removed by retention".into(),
                    )
                    .into())
                }
                Err(error) => return Err(error.into()),
            };
            for record in &fetched.records {
                if record.offset == state.end {
                    state.fold(record.offset, record.timestamp_ms, &record.record);
                }
            }
            if fetched.records.is_empty() || state.end >= fetched.high_watermark {
                return Ok(());
            }
        }
    }

    /// The stream's slot, its state brought up to date; 404 for a missing or expired stream
    /// (an expired one is deleted, audited as `stream.expire`).
    async fn current(
        &self,
        caller: &Caller,
        topic: &TopicMeta,
    ) -> Result<(Arc<Slot>, StreamState), DsError> {
        let group = topic.partitions[0].group;
        let slot = self.streams.slot(group);
        let mut state = slot.state.lock().await;
        self.refresh(topic, &mut state, 0).await?;
        if state.config.is_none() {
            return Err(not_found());
        }
        if state.deleted {
            return Err(Refusal::Gone("the stream was deleted".into()).into());
        }
        let now = self.now_ms();
        if state.expired(now, slot.last_access_ms.load(Ordering::Relaxed)) {
            drop(state);
            self.expire(caller, topic).await?;
            return Err(not_found());
        }
        let snapshot = state.clone();
        drop(state);
        Ok((slot, snapshot))
    }

    async fn expire(&self, caller: &Caller, topic: &TopicMeta) -> Result<(), DsError> {
        self.streams.forget(topic.partitions[0].group);
        self.record_change(caller, actions::STREAM_EXPIRE, &topic.name)
            .await?;
        match self
            .propose(MetaCommand::DeleteTopic {
                name: topic.name.clone(),
            })
            .await
        {
            Ok(_) | Err(BrokerError::NotFound(_)) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates the stream at `path`, or confirms one with the same configuration.
    pub async fn ds_create(
        &self,
        caller: &Caller,
        path: &str,
        create: Create,
    ) -> Result<Created, DsError> {
        let name = topic_for(path)?;
        if create.forked_from.is_none()
            && (create.fork_offset.is_some() || create.fork_sub_offset.is_some())
        {
            return Err(Refusal::BadRequest(
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From".into(),
            )
            .into());
        }
        if create.ttl.is_some() && create.expires_at.is_some() {
            return Err(Refusal::BadRequest(
                "give Stream-TTL or Stream-Expires-At, not both".into(),
            )
            .into());
        }
        let ttl_s = create.ttl.as_deref().map(state::parse_ttl).transpose()?;
        let expires_at = match create.expires_at.clone() {
            None => None,
            Some(text) => {
                let at = state::parse_rfc3339(&text)?;
                Some((text, at))
            }
        };
        let content_type = create.content_type.clone().filter(|c| !c.trim().is_empty());
        let mut config = StreamConfig {
            content_type: content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            ttl_s,
            expires_at,
            created_ms: self.now_ms(),
            fork: None,
        };
        let mut prefix = Vec::new();
        if let Some(from) = &create.forked_from {
            let point = self.fork_point(caller, from, &create).await?;
            if let Some(given) = &content_type {
                if state::media_type(given) != state::media_type(&point.source.content_type) {
                    return Err(Refusal::ConfigMismatch.into());
                }
            }
            config.content_type = point.source.content_type.clone();
            if config.ttl_s.is_none() && config.expires_at.is_none() {
                config.ttl_s = point.source.ttl_s;
                config.expires_at = point.source.expires_at.clone();
            }
            config.fork = Some(point.fork);
            prefix = point.prefix;
        }
        let records = state::creation_records(&config, prefix, &create.body, create.closed)?;
        self.check_sizes(&records)?;
        self.authorize(caller, ResourceType::Topic, &name, Operation::Create)
            .await?;
        let deadline = tokio::time::Instant::now() + self.parts.forward_timeout;
        loop {
            let topic = match self.topic(&name) {
                Ok(topic) => topic,
                Err(_) => {
                    let spec = TopicSpec {
                        name: name.clone(),
                        partitions: 1,
                        replication_factor: self.default_replication_factor(),
                        retention_ms: None,
                        retention_bytes: None,
                        internal: false,
                        owner: Some(caller.principal.name.clone()),
                    };
                    match self.create_topic_spec(caller, spec).await {
                        Ok(_) | Err(BrokerError::Conflict(_)) => {}
                        Err(error) => return Err(error.into()),
                    }
                    self.topic(&name)?
                }
            };
            if topic.internal || topic.partitions.len() != 1 {
                return Err(Refusal::ConfigMismatch.into());
            }
            let group = topic.partitions[0].group;
            let slot = self.streams.slot(group);
            let mut state = slot.state.lock().await;
            self.refresh(&topic, &mut state, 0).await?;
            if let Some(existing) = &state.config {
                if state.deleted {
                    return Err(Refusal::SourceDeleted.into());
                }
                if state.expired(self.now_ms(), slot.last_access_ms.load(Ordering::Relaxed)) {
                    drop(state);
                    self.expire(caller, &topic).await?;
                    continue;
                }
                if existing.same_as(&config) && state.closed == create.closed {
                    return Ok(Created {
                        new: false,
                        info: info(&state),
                    });
                }
                return Err(DsError::Refused {
                    refusal: Refusal::ConfigMismatch,
                    tail: Some(state.tail()),
                });
            }
            match self.append_at(&topic, &records, state.end).await {
                Ok(base) => {
                    fold_written(&mut state, base, &records, self.now_ms());
                    slot.last_access_ms.store(self.now_ms(), Ordering::Relaxed);
                    return Ok(Created {
                        new: true,
                        info: info(&state),
                    });
                }
                Err(BrokerError::TailMoved { .. }) if tokio::time::Instant::now() < deadline => {
                    self.refresh(&topic, &mut state, TAIL_MOVED_WAIT_MS).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Where a fork of `from` starts: the source's configuration, the fork point, and the
    /// inherited messages past it that a sub-offset copies into the fork.
    async fn fork_point(
        &self,
        caller: &Caller,
        from: &str,
        create: &Create,
    ) -> Result<ForkPoint, DsError> {
        let source_path = from
            .strip_prefix("/ds/")
            .or_else(|| from.strip_prefix('/'))
            .unwrap_or(from);
        let source_name = topic_for(source_path)?;
        self.authorize(caller, ResourceType::Topic, &source_name, Operation::Read)
            .await?;
        let source = self.stream_topic(source_path)?;
        let state = match self.current(caller, &source).await {
            Ok((_, state)) => state,
            Err(DsError::Refused {
                refusal: Refusal::Gone(_),
                ..
            }) => return Err(Refusal::SourceDeleted.into()),
            Err(error) => return Err(error),
        };
        let config = state.config.clone().ok_or_else(not_found)?;
        let tail = state.tail();
        let offset = match create.fork_offset.as_deref() {
            None => tail,
            Some(text) => match state::parse_position(text)? {
                Position::Start => 0,
                Position::Now => tail,
                Position::At(offset) => offset,
            },
        };
        if offset > tail {
            return Err(Refusal::BadRequest(format!(
                "Stream-Fork-Offset {} is beyond the source's tail {}",
                state::token(offset),
                state::token(tail)
            ))
            .into());
        }
        let sub_offset = match create.fork_sub_offset.as_deref() {
            None => 0,
            Some(text) => state::parse_ttl(text).map_err(|_| {
                Refusal::BadRequest(format!(
                    "Stream-Fork-Sub-Offset {text:?} is not a non-negative integer"
                ))
            })?,
        };
        if sub_offset > 0 && create.fork_offset.is_none() {
            return Err(Refusal::BadRequest(
                "a Stream-Fork-Sub-Offset above 0 needs a Stream-Fork-Offset".into(),
            )
            .into());
        }
        let fork = ForkOf {
            topic: source.name.clone(),
            group: source.partitions[0].group.0,
            offset,
            sub_offset,
        };
        let mut prefix = Vec::new();
        if sub_offset > 0 {
            let whole = ForkOf {
                offset: u64::MAX,
                ..fork.clone()
            };
            let (after, _) = self.inherited(&whole, offset, u64::MAX).await?;
            let overshoot = || {
                Refusal::BadRequest(format!(
                    "Stream-Fork-Sub-Offset {sub_offset} is past the data after the fork offset"
                ))
            };
            if config.is_json() {
                if (after.len() as u64) < sub_offset {
                    return Err(overshoot().into());
                }
                prefix = after
                    .into_iter()
                    .take(sub_offset as usize)
                    .map(|r| r.record.value)
                    .collect();
            } else {
                let first = after.into_iter().next().ok_or_else(overshoot)?;
                if (first.record.value.len() as u64) < sub_offset {
                    return Err(overshoot().into());
                }
                prefix.push(first.record.value[..sub_offset as usize].to_vec());
            }
        }
        Ok(ForkPoint {
            source: config,
            fork,
            prefix,
        })
    }

    /// Appends to (or closes) the stream at `path`.
    pub async fn ds_append(
        &self,
        caller: &Caller,
        path: &str,
        append: Append,
    ) -> Result<Appended, DsError> {
        let topic = self
            .authorized_stream(caller, path, Operation::Write)
            .await?;
        let (slot, _) = self.current(caller, &topic).await?;
        let deadline = tokio::time::Instant::now() + self.parts.forward_timeout;
        let mut state = slot.state.lock().await;
        loop {
            self.refresh(&topic, &mut state, 0).await?;
            if state.config.is_none() {
                return Err(not_found());
            }
            slot.last_access_ms.store(self.now_ms(), Ordering::Relaxed);
            let records = match state.decide(&append) {
                Decision::Write(records) => records,
                Decision::Duplicate { closed, last_seq } => {
                    return Ok(Appended {
                        outcome: Outcome::Duplicate { last_seq },
                        tail: state.tail(),
                        closed: closed || state.closed,
                    })
                }
                Decision::AlreadyClosed => {
                    return Ok(Appended {
                        outcome: Outcome::AlreadyClosed,
                        tail: state.tail(),
                        closed: true,
                    })
                }
                Decision::Refuse(refusal) => {
                    return Err(DsError::Refused {
                        refusal,
                        tail: Some(state.tail()),
                    })
                }
            };
            self.check_sizes(&records)?;
            match self.append_at(&topic, &records, state.end).await {
                Ok(base) => {
                    fold_written(&mut state, base, &records, self.now_ms());
                    return Ok(Appended {
                        outcome: Outcome::Written,
                        tail: state.tail(),
                        closed: state.closed,
                    });
                }
                Err(BrokerError::TailMoved { .. }) if tokio::time::Instant::now() < deadline => {
                    self.refresh(&topic, &mut state, TAIL_MOVED_WAIT_MS).await?;
                }
                // A producer's write is recognised in the log if it was applied: read again.
                Err(BrokerError::OutcomeUnknown(_))
                    if append.producer.is_some() && tokio::time::Instant::now() < deadline =>
                {
                    self.refresh(&topic, &mut state, TAIL_MOVED_WAIT_MS).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The stream's configuration, tail and closure (HEAD).
    pub async fn ds_head(&self, caller: &Caller, path: &str) -> Result<StreamInfo, DsError> {
        let topic = self
            .authorized_stream(caller, path, Operation::Read)
            .await?;
        let (_, state) = self.current(caller, &topic).await?;
        Ok(info(&state))
    }

    /// Reads from `position`; with `wait_ms`, waits that long for data when at the tail of an
    /// open stream. A fork's offsets below its fork offset are read from its source (and its
    /// source's source), the rest from its own partition.
    pub async fn ds_read(
        &self,
        caller: &Caller,
        path: &str,
        position: Position,
        wait_ms: u64,
    ) -> Result<Chunk, DsError> {
        let topic = self
            .authorized_stream(caller, path, Operation::Read)
            .await?;
        let (slot, state) = self.current(caller, &topic).await?;
        slot.last_access_ms.store(self.now_ms(), Ordering::Relaxed);
        let config = state.config.clone().ok_or_else(not_found)?;
        let tail = state.tail();
        let start = match position {
            Position::Start => 0,
            Position::Now => tail,
            Position::At(offset) if offset > tail => {
                return Err(DsError::Refused {
                    refusal: Refusal::BadRequest(format!(
                        "offset {} is beyond the stream's tail {}",
                        state::token(offset),
                        state::token(tail)
                    )),
                    tail: Some(tail),
                })
            }
            Position::At(offset) => offset,
        };
        let mut records = Vec::new();
        let mut offset = start;
        if let Some(fork) = config.fork.as_ref().filter(|fork| start < fork.offset) {
            let (inherited, next) = self.inherited(fork, start, fork.offset).await?;
            records = inherited;
            offset = next;
            if next < fork.offset {
                return Ok(Chunk {
                    created_ms: config.created_ms,
                    config,
                    records,
                    start,
                    next,
                    up_to_date: false,
                    closed: false,
                    held: Held::default(),
                });
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
        loop {
            let local = config.to_local(offset);
            let live = slot.state.lock().await;
            let (at_tail, closed) = (local >= live.end, live.closed);
            drop(live);
            // Inherited records are answered at once; a wait is only for the stream's own tail.
            let wait = if at_tail && !closed && records.is_empty() {
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as u64
            } else {
                0
            };
            let fetched = self.fetch_own(&topic, local, wait).await?;
            let mut live = slot.state.lock().await;
            for record in &fetched.records {
                if record.offset == live.end {
                    live.fold(record.offset, record.timestamp_ms, &record.record);
                }
            }
            let (own_end, closed) = (live.end, live.closed);
            drop(live);
            let next_local = fetched.records.last().map_or(local, |r| r.offset + 1);
            let up_to_date = next_local >= fetched.high_watermark.max(own_end);
            let next = config.to_stream(next_local).max(offset);
            records.extend(
                fetched
                    .records
                    .into_iter()
                    .filter(|r| state::is_data(&r.record))
                    .map(|mut r| {
                        r.offset = config.to_stream(r.offset);
                        r
                    }),
            );
            let waited_out = tokio::time::Instant::now() >= deadline;
            if !records.is_empty() || next == offset || waited_out || closed || wait_ms == 0 {
                return Ok(Chunk {
                    created_ms: config.created_ms,
                    config,
                    records,
                    start,
                    next,
                    up_to_date,
                    closed: closed && up_to_date,
                    held: fetched.held,
                });
            }
            // Only control records (a close) came: read on from after them.
            offset = next;
        }
    }

    /// Records of this stream's own partition from partition offset `local`.
    async fn fetch_own(
        &self,
        topic: &TopicMeta,
        local: u64,
        wait_ms: u64,
    ) -> Result<super::Fetched, DsError> {
        let fetched = self
            .fetch_partition(
                topic,
                0,
                FetchRequest {
                    offset: local,
                    max_messages: None,
                    max_bytes: None,
                    wait_ms: Some(wait_ms),
                },
            )
            .await;
        match fetched {
            Ok(fetched) => Ok(fetched),
            Err(BrokerError::OffsetOutOfRange {
                log_start_offset, ..
            }) if local < log_start_offset => Err(DsError::Refused {
                refusal: Refusal::Gone(format!(
                    "offset {} was removed by retention",
                    state::token(local)
                )),
                tail: None,
            }),
            Err(error) => Err(error.into()),
        }
    }

    /// The data records of `fork`'s source in `[from, until)`, as stream offsets, and the
    /// offset after the last one read (below `until` when a read limit cut the chunk short).
    fn inherited<'a>(&'a self, fork: &'a ForkOf, from: u64, until: u64) -> Inherited<'a> {
        Box::pin(async move {
            let topic = self.fork_source(fork)?;
            let slot = self.streams.slot(topic.partitions[0].group);
            let config = {
                let mut state = slot.state.lock().await;
                self.refresh(&topic, &mut state, 0).await?;
                state.config.clone().ok_or_else(not_found)?
            };
            let mut records = Vec::new();
            let mut offset = from;
            if let Some(parent) = config.fork.as_ref().filter(|parent| from < parent.offset) {
                let bound = until.min(parent.offset);
                let (mut inherited, next) = self.inherited(parent, from, bound).await?;
                records.append(&mut inherited);
                if next < bound || bound == until {
                    return Ok((records, next));
                }
                offset = next;
            }
            let fetched = self.fetch_own(&topic, config.to_local(offset), 0).await?;
            let mut next = offset;
            for mut record in fetched.records {
                let at = config.to_stream(record.offset);
                if at >= until {
                    next = until;
                    break;
                }
                next = at + 1;
                if state::is_data(&record.record) {
                    record.offset = at;
                    records.push(record);
                }
            }
            Ok((records, next.min(until)))
        })
    }

    /// A fork's source topic (kept while forks read it, even when its stream was deleted).
    fn fork_source(&self, fork: &ForkOf) -> Result<TopicMeta, DsError> {
        match self.topic(&fork.topic) {
            Ok(topic) if topic.partitions[0].group.0 == fork.group => Ok(topic),
            _ => Err(Refusal::Gone(format!(
                "the source of this fork, {}, no longer exists",
                fork.topic
            ))
            .into()),
        }
    }

    /// Deletes the stream at `path`. A stream that forks still read is only marked deleted
    /// (gone for its clients, 410) and removed when its last fork is; deleting a fork may so
    /// remove its deleted source, and that source's.
    pub async fn ds_delete(&self, caller: &Caller, path: &str) -> Result<(), DsError> {
        let topic = self
            .authorized_stream(caller, path, Operation::Delete)
            .await?;
        let (_, state) = self.current(caller, &topic).await?;
        self.remove_stream(caller, &topic, &state).await
    }

    async fn remove_stream(
        &self,
        caller: &Caller,
        topic: &TopicMeta,
        state: &StreamState,
    ) -> Result<(), DsError> {
        let group = topic.partitions[0].group;
        if self.has_forks(group).await? {
            let slot = self.streams.slot(group);
            let mut live = slot.state.lock().await;
            self.refresh(topic, &mut live, 0).await?;
            if live.deleted {
                return Ok(());
            }
            self.record_change(caller, actions::TOPIC_DELETE, &topic.name)
                .await?;
            let marker = [state::deleted_record()];
            let base = self.append_at(topic, &marker, live.end).await?;
            fold_written(&mut live, base, &marker, self.now_ms());
            return Ok(());
        }
        self.streams.forget(group);
        match self.delete_topic(caller, &topic.name).await {
            Ok(()) | Err(BrokerError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        // The source may have waited only for this fork.
        let mut source = state.config.as_ref().and_then(|c| c.fork.clone());
        while let Some(fork) = source.take() {
            let Ok(parent) = self.fork_source(&fork) else {
                break;
            };
            let slot = self.streams.slot(parent.partitions[0].group);
            let parent_state = {
                let mut live = slot.state.lock().await;
                self.refresh(&parent, &mut live, 0).await?;
                live.clone()
            };
            if !parent_state.deleted || self.has_forks(parent.partitions[0].group).await? {
                break;
            }
            self.streams.forget(parent.partitions[0].group);
            match self.delete_topic(caller, &parent.name).await {
                Ok(()) | Err(BrokerError::NotFound(_)) => {}
                Err(error) => return Err(error.into()),
            }
            source = parent_state.config.and_then(|c| c.fork);
        }
        Ok(())
    }

    /// Whether any stream is a fork of the stream in partition group `group`: the
    /// configurations of every stream topic are read (from this broker's state where kept).
    async fn has_forks(&self, group: GroupId) -> Result<bool, DsError> {
        let streams: Vec<TopicMeta> = self
            .parts
            .controller
            .state()
            .topics
            .range(TOPIC_PREFIX.to_string()..)
            .take_while(|(name, _)| name.starts_with(TOPIC_PREFIX))
            .map(|(_, topic)| topic.clone())
            .filter(|topic| topic.partitions.len() == 1 && topic.partitions[0].group != group)
            .collect();
        for topic in streams {
            let slot = self.streams.slot(topic.partitions[0].group);
            let mut state = slot.state.lock().await;
            if state.config.is_none() {
                match self.refresh(&topic, &mut state, 0).await {
                    Ok(()) => {}
                    // A stream deleted meanwhile forks nothing.
                    Err(DsError::Broker(BrokerError::NotFound(_))) => continue,
                    Err(error) => return Err(error),
                }
            }
            let forks_it = state
                .config
                .as_ref()
                .and_then(|c| c.fork.as_ref())
                .is_some_and(|fork| fork.group == group.0);
            if forks_it {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn check_sizes(&self, records: &[Record]) -> Result<(), DsError> {
        let limits = &self.parts.limits;
        if records.len() > limits.records_per_batch_max {
            return Err(Refusal::TooLarge(format!(
                "{} messages in one request; at most {} are allowed",
                records.len(),
                limits.records_per_batch_max
            ))
            .into());
        }
        if let Some(large) = records
            .iter()
            .find(|r| r.size_bytes() as usize > limits.record_bytes_max)
        {
            return Err(Refusal::TooLarge(format!(
                "a message of {} bytes; at most {} are allowed",
                large.size_bytes(),
                limits.record_bytes_max
            ))
            .into());
        }
        Ok(())
    }

    /// Writes `records` as one batch starting at `expected_base`, or not at all.
    async fn append_at(
        &self,
        topic: &TopicMeta,
        records: &[Record],
        expected_base: u64,
    ) -> Result<u64, BrokerError> {
        let led = self
            .on_leader(ForwardRequest::ConditionalProduce {
                group: topic.partitions[0].group,
                records: EncodedRecords::encode(records),
                timestamp_ms: self.now_ms(),
                expected_base,
            })
            .await?;
        match led.reply {
            ForwardReply::Produced { base_offset } => Ok(base_offset),
            _ => Err(BrokerError::Internal(
                "a produce was answered with something else".into(),
            )),
        }
    }
}

fn info(state: &StreamState) -> StreamInfo {
    StreamInfo {
        config: state
            .config
            .clone()
            .expect("a created stream has its configuration"),
        tail: state.tail(),
        closed: state.closed,
    }
}

/// Folds a batch this broker just wrote at `base` into the state it was checked against.
fn fold_written(state: &mut StreamState, base: u64, records: &[Record], now_ms: u64) {
    if base != state.end {
        return;
    }
    for (position, record) in records.iter().enumerate() {
        state.fold(base + position as u64, now_ms, record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_distinct_valid_topic_names() {
        let names = [
            "v1/stream/a",
            "v1.stream/a",
            "v1/stream/a_2f",
            "v1/stream/a/b",
            "v1/stream/a-b",
            "v1/stream/a b",
            "v1/stream/é",
        ];
        let topics: std::collections::BTreeSet<String> =
            names.iter().map(|p| topic_for(p).unwrap()).collect();
        assert_eq!(topics.len(), names.len(), "{topics:?}");
        for topic in &topics {
            crate::names::validate(crate::names::NameKind::Topic, topic).unwrap();
        }
        assert_eq!(topic_for("v1/stream/a").unwrap(), "ds.v1.stream.a");
        for bad in ["", "a//b", "a/../b", "./a", "__ds/subscriptions/x"] {
            assert!(topic_for(bad).is_err(), "{bad}");
        }
        let longest = "x".repeat(TOPIC_CHARS_MAX - TOPIC_PREFIX.len());
        crate::names::validate(crate::names::NameKind::Topic, &topic_for(&longest).unwrap())
            .unwrap();
        assert!(topic_for(&format!("{longest}x")).is_err());
        assert!(
            topic_for(&"é".repeat(42)).is_err(),
            "escapes count three each"
        );
    }
}
