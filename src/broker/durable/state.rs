//! A Durable Streams stream as its records describe it, and every decision about a write or a
//! read that depends only on that description. Pure: no I/O, no clock (times come in as values).
//!
//! Layout of a stream's partition (see `docs/durable-streams.md`):
//! - offset 0: the configuration record (header `ds` = `config`, the value a JSON
//!   [`StreamConfig`]);
//! - then data records, one per append for byte streams, one per JSON message for JSON streams;
//!   the last record of an append carries the append's `Stream-Seq` (`ds-seq`), its producer
//!   (`ds-producer`, `ds-epoch`, `ds-pseq`) and, for append-and-close, `ds-close`;
//! - a close without data is a record with header `ds` = `close` and an empty value;
//! - a deletion while forks still read the stream is a record with header `ds` = `deleted`
//!   (the stream is then gone for its clients, its records kept for the forks).
//!
//! A fork's offsets continue its source's: offsets below the fork offset are the source's
//! records, and the fork's own record at partition offset `k >= 1` has offset
//! `fork offset + k - 1` ([`StreamConfig::own_base`]).
//!
//! Every append is one conditional batch (written only where the writer read the log's end),
//! so the state folded from the records is the state every writer checked against.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::partition::batch::Record;

/// Header naming a control record (`config` or `close`).
pub const CONTROL: &str = "ds";
const SEQ: &str = "ds-seq";
const PRODUCER: &str = "ds-producer";
const EPOCH: &str = "ds-epoch";
const PRODUCER_SEQ: &str = "ds-pseq";
const CLOSE: &str = "ds-close";

/// Largest producer epoch or sequence accepted (2^53 - 1, as the protocol asks).
pub const PRODUCER_NUMBER_MAX: u64 = (1 << 53) - 1;
/// Longest `Producer-Id` and `Stream-Seq`, in bytes.
pub const PRODUCER_ID_BYTES_MAX: usize = 256;
/// Producers one stream remembers; past it the least recently written is forgotten (it is then
/// treated as new, as the protocol allows for expired producer state).
pub const PRODUCERS_PER_STREAM_MAX: usize = 10_000;

/// What a stream was created with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamConfig {
    pub content_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_s: Option<u64>,
    /// As the client sent it (RFC 3339), and its Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<(String, u64)>,
    pub created_ms: u64,
    /// Set for a fork: where its inherited records come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fork: Option<ForkOf>,
}

/// A fork's source and divergence point.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOf {
    /// The source's topic and partition group (a re-created source has another group).
    pub topic: String,
    pub group: u64,
    /// The fork offset: records below it are the source's.
    pub offset: u64,
    /// `Stream-Fork-Sub-Offset` as asked (the inherited part past `offset` was copied into the
    /// fork's own records when it was created).
    pub sub_offset: u64,
}

impl StreamConfig {
    /// Whether a create with `other` asks for this same stream (the creation time aside).
    pub fn same_as(&self, other: &StreamConfig) -> bool {
        media_type(&self.content_type) == media_type(&other.content_type)
            && self.ttl_s == other.ttl_s
            && self.expires_at.as_ref().map(|e| e.1) == other.expires_at.as_ref().map(|e| e.1)
            && self.fork == other.fork
    }

    /// The stream offset of the record at partition offset 1 (0 holds the configuration): the
    /// fork offset for a fork, else 1.
    pub fn own_base(&self) -> u64 {
        self.fork.as_ref().map_or(1, |fork| fork.offset)
    }

    /// The stream offset of partition offset `local`.
    pub fn to_stream(&self, local: u64) -> u64 {
        (self.own_base() + local).saturating_sub(1)
    }

    /// The partition offset of stream offset `offset` (at least 1 for a fork; the caller reads
    /// offsets below the fork offset from the source).
    pub fn to_local(&self, offset: u64) -> u64 {
        match &self.fork {
            None => offset,
            Some(fork) => offset.saturating_sub(fork.offset) + 1,
        }
    }

    pub fn is_json(&self) -> bool {
        media_type(&self.content_type) == "application/json"
    }

    /// Text streams are sent as text in SSE; any other is base64.
    pub fn is_text(&self) -> bool {
        let media = media_type(&self.content_type);
        media.starts_with("text/") || media == "application/json"
    }
}

/// The media type of a Content-Type value: lowercase, without parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A producer's identity and position, as the three `Producer-*` headers give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerClaim {
    pub id: String,
    pub epoch: u64,
    pub seq: u64,
}

/// One producer's state: its epoch and the last sequence accepted in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerState {
    pub epoch: u64,
    pub last_seq: u64,
    /// Offset of its last write, to forget the least recent first.
    pub at: u64,
}

/// A stream's state after its records `[0, end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    /// `None` until the configuration record is read (a stream being created).
    pub config: Option<StreamConfig>,
    pub closed: bool,
    /// The producer write that closed the stream, if a producer closed it.
    pub closed_by: Option<ProducerClaim>,
    pub stream_seq: Option<String>,
    pub producers: HashMap<String, ProducerState>,
    /// The offset after the last record folded in: the stream's tail.
    pub end: u64,
    /// Timestamp of the last record, Unix ms.
    pub last_write_ms: u64,
    /// Deleted while forks read it: gone (410) for clients, kept for the forks.
    pub deleted: bool,
}

/// The record is the stream's configuration, or a close without data.
fn control(record: &Record) -> Option<&str> {
    header(record, CONTROL)
}

fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// Whether `record` is data a reader is shown (not a control record).
pub fn is_data(record: &Record) -> bool {
    control(record).is_none()
}

impl StreamState {
    /// The stream offset after the last record: where the next append lands.
    pub fn tail(&self) -> u64 {
        self.config
            .as_ref()
            .map_or(self.end, |config| config.to_stream(self.end))
    }

    /// Folds the record at `offset` in. Records must come in offset order from `end`.
    pub fn fold(&mut self, offset: u64, timestamp_ms: u64, record: &Record) {
        self.end = offset + 1;
        self.last_write_ms = self.last_write_ms.max(timestamp_ms);
        match control(record) {
            Some("config") => {
                if self.config.is_none() {
                    self.config = serde_json::from_slice(&record.value).ok();
                }
                return;
            }
            Some("close") => self.closed = true,
            Some("deleted") => {
                self.deleted = true;
                return;
            }
            _ => {}
        }
        if let Some(seq) = header(record, SEQ) {
            self.stream_seq = Some(seq.to_string());
        }
        let claim = producer_of(record);
        if let Some(claim) = &claim {
            self.remember(claim, offset);
        }
        if header(record, CLOSE).is_some() {
            self.closed = true;
        }
        if self.closed && self.closed_by.is_none() {
            self.closed_by = claim;
        }
    }

    fn remember(&mut self, claim: &ProducerClaim, offset: u64) {
        if !self.producers.contains_key(&claim.id)
            && self.producers.len() >= PRODUCERS_PER_STREAM_MAX
        {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(id, state)| (state.at, (*id).clone()))
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                self.producers.remove(&oldest);
            }
        }
        self.producers.insert(
            claim.id.clone(),
            ProducerState {
                epoch: claim.epoch,
                last_seq: claim.seq,
                at: offset,
            },
        );
    }

    /// Decides an append (or a close) against this state.
    pub fn decide(&self, append: &Append) -> Decision {
        let Some(config) = &self.config else {
            return Decision::Refuse(Refusal::NotFound);
        };
        if self.deleted {
            return Decision::Refuse(Refusal::Gone("the stream was deleted".into()));
        }
        if self.closed {
            let repeat = append.producer.is_some() && append.producer == self.closed_by;
            if repeat {
                return Decision::Duplicate {
                    closed: true,
                    last_seq: append.producer.as_ref().map_or(0, |p| p.seq),
                };
            }
            if append.close && append.body.is_empty() && append.producer.is_none() {
                return Decision::AlreadyClosed;
            }
            return Decision::Refuse(Refusal::Closed);
        }
        if !append.body.is_empty() {
            match &append.content_type {
                None => {
                    return Decision::Refuse(Refusal::BadRequest(
                        "Content-Type is required on an append with a body".into(),
                    ))
                }
                Some(given) if media_type(given) != media_type(&config.content_type) => {
                    return Decision::Refuse(Refusal::ContentTypeMismatch {
                        stream: config.content_type.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        if let Some(claim) = &append.producer {
            match self.producers.get(&claim.id) {
                None if claim.seq != 0 => {
                    return Decision::Refuse(Refusal::SequenceGap {
                        expected: 0,
                        received: claim.seq,
                    })
                }
                None => {}
                Some(state) if claim.epoch < state.epoch => {
                    return Decision::Refuse(Refusal::StaleEpoch {
                        current: state.epoch,
                    })
                }
                Some(state) if claim.epoch > state.epoch && claim.seq != 0 => {
                    return Decision::Refuse(Refusal::EpochMustStartAtZero);
                }
                Some(state) if claim.epoch > state.epoch => {}
                Some(state) if claim.seq <= state.last_seq => {
                    return Decision::Duplicate {
                        closed: false,
                        last_seq: state.last_seq,
                    }
                }
                Some(state) if claim.seq > state.last_seq + 1 => {
                    return Decision::Refuse(Refusal::SequenceGap {
                        expected: state.last_seq + 1,
                        received: claim.seq,
                    })
                }
                Some(_) => {}
            }
        }
        if let (Some(seq), Some(last)) = (&append.stream_seq, &self.stream_seq) {
            if seq.as_bytes() <= last.as_bytes() {
                return Decision::Refuse(Refusal::SeqRegression { last: last.clone() });
            }
        }
        match messages(config, &append.body, Purpose::Append) {
            Ok(values) => Decision::Write(records_of(values, append, config.is_json())),
            Err(refusal) => Decision::Refuse(refusal),
        }
    }

    /// Whether the stream is past its expiry at `now_ms`; `last_access_ms` restarts a TTL.
    pub fn expired(&self, now_ms: u64, last_access_ms: u64) -> bool {
        let Some(config) = &self.config else {
            return false;
        };
        if let Some((_, at_ms)) = &config.expires_at {
            if now_ms >= *at_ms {
                return true;
            }
        }
        if let Some(ttl_s) = config.ttl_s {
            let since = last_access_ms
                .max(self.last_write_ms)
                .max(config.created_ms);
            return now_ms >= since.saturating_add(ttl_s.saturating_mul(1000));
        }
        false
    }
}

fn producer_of(record: &Record) -> Option<ProducerClaim> {
    let id = header(record, PRODUCER)?;
    let epoch = header(record, EPOCH)?.parse().ok()?;
    let seq = header(record, PRODUCER_SEQ)?.parse().ok()?;
    Some(ProducerClaim {
        id: id.to_string(),
        epoch,
        seq,
    })
}

/// An append or close, as the client sent it (headers already checked for shape).
#[derive(Clone, Debug, Default)]
pub struct Append {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub stream_seq: Option<String>,
    pub producer: Option<ProducerClaim>,
    /// `Stream-Closed: true`.
    pub close: bool,
}

/// What to do with an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Write these records as one batch at the state's end.
    Write(Vec<Record>),
    /// The producer's write is already in the stream: answer success, write nothing.
    Duplicate {
        closed: bool,
        last_seq: u64,
    },
    /// A close of a stream that is already closed.
    AlreadyClosed,
    Refuse(Refusal),
}

/// Why an append, a create or a read is refused; each has its own status in the protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the stream does not exist")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("the stream is closed; no more data can be appended")]
    Closed,
    #[error("the stream's content type is {stream}; an append must use the same")]
    ContentTypeMismatch { stream: String },
    #[error("Stream-Seq must increase; the last one was {last:?}")]
    SeqRegression { last: String },
    #[error("the producer's epoch is stale; the stream has seen epoch {current}")]
    StaleEpoch { current: u64 },
    #[error("a new producer epoch must start with Producer-Seq 0")]
    EpochMustStartAtZero,
    #[error("producer sequence gap: expected {expected}, received {received}")]
    SequenceGap { expected: u64, received: u64 },
    #[error("a stream already exists at this path with a different configuration")]
    ConfigMismatch,
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Gone(String),
    #[error("the stream was deleted but forks still read it; the path cannot be used until they are deleted")]
    SourceDeleted,
}

/// Whether a body is being appended or is a stream's initial content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Append,
    Create,
}

/// The messages a body holds: the body itself for a byte stream; for a JSON stream, each element
/// of a top-level array (one level flattened) or the one value.
pub fn messages(
    config: &StreamConfig,
    body: &[u8],
    purpose: Purpose,
) -> Result<Vec<Vec<u8>>, Refusal> {
    if body.is_empty() {
        return Ok(Vec::new());
    }
    if !config.is_json() {
        return Ok(vec![body.to_vec()]);
    }
    let value: &serde_json::value::RawValue = serde_json::from_slice(body)
        .map_err(|error| Refusal::BadRequest(format!("the body is not valid JSON: {error}")))?;
    let text = value.get().trim_start();
    if !text.starts_with('[') {
        return Ok(vec![value.get().as_bytes().to_vec()]);
    }
    let elements: Vec<&serde_json::value::RawValue> = serde_json::from_str(value.get())
        .map_err(|error| Refusal::BadRequest(format!("the body is not valid JSON: {error}")))?;
    if elements.is_empty() && purpose == Purpose::Append {
        return Err(Refusal::BadRequest(
            "an empty JSON array appends nothing and is refused".into(),
        ));
    }
    Ok(elements
        .into_iter()
        .map(|element| element.get().as_bytes().to_vec())
        .collect())
}

/// The records of an append: the messages, with the append's markers on the last one, or a close
/// record when there are none.
fn records_of(values: Vec<Vec<u8>>, append: &Append, json: bool) -> Vec<Record> {
    let mut records: Vec<Record> = values
        .into_iter()
        .map(|value| Record {
            key: None,
            value_is_text: json || std::str::from_utf8(&value).is_ok(),
            value,
            headers: Vec::new(),
        })
        .collect();
    if records.is_empty() {
        records.push(Record {
            key: None,
            value: Vec::new(),
            value_is_text: true,
            headers: vec![(CONTROL.into(), "close".into())],
        });
    } else if append.close {
        let last = records.last_mut().expect("not empty");
        last.headers.push((CLOSE.into(), "true".into()));
    }
    let last = records.last_mut().expect("not empty");
    if let Some(seq) = &append.stream_seq {
        last.headers.push((SEQ.into(), seq.clone()));
    }
    if let Some(claim) = &append.producer {
        last.headers.push((PRODUCER.into(), claim.id.clone()));
        last.headers.push((EPOCH.into(), claim.epoch.to_string()));
        last.headers
            .push((PRODUCER_SEQ.into(), claim.seq.to_string()));
    }
    records
}

/// The record that marks a stream deleted while forks still read it.
pub fn deleted_record() -> Record {
    Record {
        key: None,
        value: Vec::new(),
        value_is_text: true,
        headers: vec![(CONTROL.into(), "deleted".into())],
    }
}

/// The records that create a stream: its configuration, the inherited messages a fork's
/// sub-offset copies (`prefix`), its initial messages, and a close record when it is created
/// closed.
pub fn creation_records(
    config: &StreamConfig,
    prefix: Vec<Vec<u8>>,
    body: &[u8],
    closed: bool,
) -> Result<Vec<Record>, Refusal> {
    let mut records = vec![Record {
        key: None,
        value: serde_json::to_vec(config).expect("plain data"),
        value_is_text: true,
        headers: vec![(CONTROL.into(), "config".into())],
    }];
    for value in prefix
        .into_iter()
        .chain(messages(config, body, Purpose::Create)?)
    {
        records.push(Record {
            key: None,
            value_is_text: config.is_json() || std::str::from_utf8(&value).is_ok(),
            value,
            headers: Vec::new(),
        });
    }
    if closed {
        records.push(Record {
            key: None,
            value: Vec::new(),
            value_is_text: true,
            headers: vec![(CONTROL.into(), "close".into())],
        });
    }
    Ok(records)
}

/// A read position as a client gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// `-1` or no offset: the first record.
    Start,
    /// `now`: the tail.
    Now,
    /// An offset token the server handed out.
    At(u64),
}

/// The offset token of log offset `offset`: two fixed-width decimal fields, so tokens sort as
/// offsets do. The first is reserved (always zero today).
pub fn token(offset: u64) -> String {
    format!("{:016}_{offset:016}", 0)
}

/// Reads a client's `offset` parameter.
pub fn parse_position(text: &str) -> Result<Position, Refusal> {
    match text {
        "-1" => return Ok(Position::Start),
        "now" => return Ok(Position::Now),
        _ => {}
    }
    let bad = || {
        Refusal::BadRequest(format!(
            "offset {text:?} is not -1, now, or an offset this server returned"
        ))
    };
    let (high, low) = text.split_once('_').ok_or_else(bad)?;
    let digits = |part: &str| {
        !part.is_empty() && part.len() <= 20 && part.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(high) || !digits(low) {
        return Err(bad());
    }
    let high: u64 = high.parse().map_err(|_| bad())?;
    let low: u64 = low.parse().map_err(|_| bad())?;
    if high != 0 {
        return Err(bad());
    }
    Ok(Position::At(low))
}

/// A `Stream-TTL` value: a non-negative decimal integer without sign or leading zeros.
pub fn parse_ttl(text: &str) -> Result<u64, Refusal> {
    let canonical = text == "0"
        || (!text.is_empty()
            && !text.starts_with('0')
            && text.len() <= 12
            && text.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return Err(Refusal::BadRequest(format!(
            "Stream-TTL {text:?} is not a non-negative integer in plain decimal"
        )));
    }
    text.parse()
        .map_err(|_| Refusal::BadRequest(format!("Stream-TTL {text:?} is out of range")))
}

/// An RFC 3339 timestamp (`2026-12-07T10:00:00Z`, fractions and offsets allowed) as Unix ms.
pub fn parse_rfc3339(text: &str) -> Result<u64, Refusal> {
    let bad = || {
        Refusal::BadRequest(format!(
            "Stream-Expires-At {text:?} is not an RFC 3339 time"
        ))
    };
    let bytes = text.as_bytes();
    if bytes.len() < 20 || !text.is_ascii() {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<i64, Refusal> {
        let part = &text[range];
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let separators = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators {
        return Err(bad());
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut millis = 0i64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0,
        zone if zone.len() == 6 && (zone.starts_with('+') || zone.starts_with('-')) => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let hours: i64 = zone[1..3].parse().map_err(|_| bad())?;
            let minutes: i64 = zone[4..6].parse().map_err(|_| bad())?;
            if &zone[3..4] != ":" || hours > 23 || minutes > 59 {
                return Err(bad());
            }
            sign * (hours * 60 + minutes)
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    u64::try_from(seconds * 1000 + millis).map_err(|_| bad())
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(content_type: &str) -> StreamConfig {
        StreamConfig {
            content_type: content_type.into(),
            ttl_s: None,
            expires_at: None,
            created_ms: 1,
            fork: None,
        }
    }

    #[test]
    fn a_fork_continues_its_source_offsets() {
        let mut fork = config("text/plain");
        assert_eq!((fork.to_stream(1), fork.to_local(1)), (1, 1));
        fork.fork = Some(ForkOf {
            topic: "ds.a".into(),
            group: 7,
            offset: 4,
            sub_offset: 0,
        });
        assert_eq!(fork.to_stream(1), 4, "the fork's first own record");
        assert_eq!(fork.to_local(4), 1);
        assert_eq!(fork.to_local(6), 3);
        assert_eq!(fork.to_stream(fork.to_local(9)), 9);
        let mut at_zero = fork.clone();
        at_zero.fork.as_mut().unwrap().offset = 0;
        assert_eq!((at_zero.to_stream(1), at_zero.to_local(0)), (0, 1));
        assert!(
            !fork.same_as(&config("text/plain")),
            "a fork is not its source"
        );
    }

    fn created(content_type: &str) -> StreamState {
        let mut state = StreamState::default();
        for (offset, record) in creation_records(&config(content_type), Vec::new(), b"", false)
            .unwrap()
            .iter()
            .enumerate()
        {
            state.fold(offset as u64, 5, record);
        }
        state
    }

    fn apply(state: &mut StreamState, append: &Append) -> Decision {
        let decision = state.decide(append);
        if let Decision::Write(records) = &decision {
            for record in records {
                state.fold(state.end, 9, record);
            }
        }
        decision
    }

    fn produce(id: &str, epoch: u64, seq: u64, body: &str) -> Append {
        Append {
            body: body.as_bytes().to_vec(),
            content_type: Some("text/plain".into()),
            producer: Some(ProducerClaim {
                id: id.into(),
                epoch,
                seq,
            }),
            ..Append::default()
        }
    }

    #[test]
    fn producers_are_deduplicated_fenced_and_gap_checked() {
        let mut state = created("text/plain");
        assert!(matches!(
            apply(&mut state, &produce("p", 0, 0, "a")),
            Decision::Write(_)
        ));
        assert!(matches!(
            apply(&mut state, &produce("p", 0, 1, "b")),
            Decision::Write(_)
        ));
        assert_eq!(
            apply(&mut state, &produce("p", 0, 1, "b")),
            Decision::Duplicate {
                closed: false,
                last_seq: 1
            }
        );
        assert_eq!(
            apply(&mut state, &produce("p", 0, 3, "d")),
            Decision::Refuse(Refusal::SequenceGap {
                expected: 2,
                received: 3
            })
        );
        assert_eq!(
            apply(&mut state, &produce("p", 1, 1, "x")),
            Decision::Refuse(Refusal::EpochMustStartAtZero)
        );
        assert!(matches!(
            apply(&mut state, &produce("p", 1, 0, "x")),
            Decision::Write(_)
        ));
        assert_eq!(
            apply(&mut state, &produce("p", 0, 2, "zombie")),
            Decision::Refuse(Refusal::StaleEpoch { current: 1 })
        );
        assert_eq!(
            apply(&mut state, &produce("q", 0, 4, "new")),
            Decision::Refuse(Refusal::SequenceGap {
                expected: 0,
                received: 4
            })
        );
    }

    #[test]
    fn a_closed_stream_takes_only_the_closing_write_again() {
        let mut state = created("text/plain");
        let mut closing = produce("p", 0, 0, "last");
        closing.close = true;
        assert!(matches!(apply(&mut state, &closing), Decision::Write(_)));
        assert!(state.closed);
        assert_eq!(
            apply(&mut state, &closing),
            Decision::Duplicate {
                closed: true,
                last_seq: 0
            }
        );
        assert_eq!(
            apply(&mut state, &produce("p", 0, 1, "more")),
            Decision::Refuse(Refusal::Closed)
        );
        let close_only = Append {
            close: true,
            ..Append::default()
        };
        assert_eq!(apply(&mut state, &close_only), Decision::AlreadyClosed);
    }

    #[test]
    fn stream_seq_must_increase_bytewise() {
        let mut state = created("text/plain");
        let with_seq = |seq: &str| Append {
            body: b"x".to_vec(),
            content_type: Some("text/plain; charset=utf-8".into()),
            stream_seq: Some(seq.into()),
            ..Append::default()
        };
        assert!(matches!(
            apply(&mut state, &with_seq("001")),
            Decision::Write(_)
        ));
        assert!(matches!(
            apply(&mut state, &with_seq("002")),
            Decision::Write(_)
        ));
        assert!(matches!(
            apply(&mut state, &with_seq("002")),
            Decision::Refuse(Refusal::SeqRegression { .. })
        ));
        assert!(matches!(
            apply(&mut state, &with_seq("1")),
            Decision::Write(_)
        ));
    }

    #[test]
    fn json_bodies_flatten_one_level_and_must_be_valid() {
        let json = config("application/json");
        let split = |body: &str| messages(&json, body.as_bytes(), Purpose::Append);
        assert_eq!(split("{\"a\":1}").unwrap(), vec![b"{\"a\":1}".to_vec()]);
        assert_eq!(
            split("[[1,2], [3]]").unwrap(),
            vec![b"[1,2]".to_vec(), b"[3]".to_vec()]
        );
        assert_eq!(split("[[[1]]]").unwrap(), vec![b"[[1]]".to_vec()]);
        assert!(matches!(split("[]"), Err(Refusal::BadRequest(_))));
        assert!(matches!(split("{oops"), Err(Refusal::BadRequest(_))));
        assert_eq!(
            messages(&json, b"[]", Purpose::Create).unwrap(),
            Vec::<Vec<u8>>::new()
        );
    }

    #[test]
    fn content_type_must_match_and_data_records_hide_control_records() {
        let mut state = created("text/plain");
        let append = Append {
            body: b"x".to_vec(),
            content_type: Some("application/json".into()),
            ..Append::default()
        };
        assert!(matches!(
            state.decide(&append),
            Decision::Refuse(Refusal::ContentTypeMismatch { .. })
        ));
        let close = Append {
            close: true,
            ..Append::default()
        };
        let Decision::Write(records) = apply(&mut state, &close) else {
            panic!("a close is written");
        };
        assert!(records.iter().all(|r| !is_data(r)));
        assert!(state.closed);
    }

    #[test]
    fn tokens_sort_like_offsets_and_positions_parse_strictly() {
        assert!(token(9) < token(10));
        assert_eq!(parse_position(&token(42)), Ok(Position::At(42)));
        assert_eq!(parse_position("-1"), Ok(Position::Start));
        assert_eq!(parse_position("now"), Ok(Position::Now));
        for bad in [
            "",
            "abc",
            "1_",
            "_1",
            "1_2_3",
            "-2",
            "00000001_0000000000000001",
            "1e3_1",
        ] {
            assert!(parse_position(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttl_and_expiry_parse_strictly() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("0"), Ok(0));
        for bad in ["+3600", "03600", "3600.0", "3.6e3", "", "-1", " 1"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_rfc3339("2026-12-07T10:00:00.5Z"),
            Ok(1_796_637_600_500)
        );
        assert_eq!(
            parse_rfc3339("2026-12-07T12:00:00+02:00"),
            parse_rfc3339("2026-12-07T10:00:00Z")
        );
        for bad in [
            "2026-13-01T00:00:00Z",
            "tomorrow",
            "2026-12-07",
            "2026-12-07T10:00:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_ttl_runs_from_the_last_access_and_an_expiry_is_absolute() {
        let mut state = created("text/plain");
        state.config.as_mut().unwrap().ttl_s = Some(2);
        assert!(!state.expired(1_000, 0));
        assert!(state.expired(2_005, 0));
        assert!(!state.expired(2_005, 1_000), "an access restarts the TTL");
        state.config.as_mut().unwrap().ttl_s = None;
        state.config.as_mut().unwrap().expires_at = Some(("t".into(), 500));
        assert!(state.expired(500, 400));
        assert!(!state.expired(499, 0));
    }
}
