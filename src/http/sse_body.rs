//! The body of an event stream: long-poll fetches in a loop, each batch of records written as
//! `record` events, a keep-alive comment after a silence, and an `error` event that ends it.
//!
//! Owns the event format and the read loop's pacing. The loop is a lazily polled stream: when the
//! server drops the body (the stream ended, or a write found the client gone) the pending fetch
//! and the stream slot go with it. Must not decide access: every read is [`Broker::stream_read`], a
//! fetch that checks the ACL each time, after checking the caller's token again.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures_util::Stream;
use serde::Serialize;
use tokio::time::Instant;

use super::metrics::Metrics;
use super::sse_slots::StreamSlot;
use crate::broker::FetchedRecord;
use crate::broker::{Broker, BrokerError, Caller, Fetched};

/// The comment sent after `stream_keepalive_ms` of silence; clients ignore it, proxies see traffic.
pub const KEEPALIVE: &str = ": keep-alive\n\n";

/// Shortest pause after a read that came back empty before its wait was over (the broker caps
/// long polls with `http.wait_ms_max`, or the partition has too many parked reads), so such a
/// loop costs a few reads per second rather than a spinning core.
const EARLY_EMPTY_PAUSE: Duration = Duration::from_millis(50);

/// One `record` event's data: the JSON fetch's record object plus where it came from.
#[derive(Serialize)]
struct StreamedRecord<'a> {
    topic: &'a str,
    partition: u32,
    #[serde(flatten)]
    record: crate::wire::FetchedRecord,
}

/// Appends one `record` event per record to `text`; the event id is the record's offset.
pub fn write_record_events(
    text: &mut String,
    topic: &str,
    partition: u32,
    records: Vec<FetchedRecord>,
) {
    for fetched in records {
        let offset = fetched.offset;
        let data = StreamedRecord {
            topic,
            partition,
            record: fetched.into(),
        };
        // serde_json escapes control characters, so the data is always a single line.
        let json = serde_json::to_string(&data).expect("records serialize as plain data");
        let _ = write!(text, "id: {offset}\nevent: record\ndata: {json}\n\n");
    }
}

/// The `error` event that ends a stream, carrying the problem body a plain request would get.
pub fn error_event(error: &BrokerError) -> String {
    format!("event: error\ndata: {}\n\n", error.problem_json())
}

/// The position and credentials of one open stream.
pub struct EventCursor {
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
    caller: Caller,
    topic: String,
    partition: u32,
    /// The offset of the next record to send; every earlier record was sent, in order.
    next_offset: u64,
    keepalive: Duration,
    last_write: Instant,
    /// Events of the opening read, sent first.
    opening: Option<Bytes>,
    ended: bool,
    _slot: StreamSlot,
}

impl EventCursor {
    pub fn new(
        broker: Arc<Broker>,
        metrics: Arc<Metrics>,
        caller: Caller,
        topic: String,
        partition: u32,
        first: Fetched,
        slot: StreamSlot,
    ) -> EventCursor {
        let keepalive = Duration::from_millis(broker.limits().stream_keepalive_ms);
        let next_offset = first.next_offset;
        metrics.fetched_records.inc_by(first.records.len() as u64);
        let mut text = String::new();
        write_record_events(&mut text, &topic, partition, first.records);
        EventCursor {
            broker,
            metrics,
            caller,
            topic,
            partition,
            next_offset,
            keepalive,
            last_write: Instant::now(),
            // An empty first chunk still flushes the headers, so the client sees the stream open.
            opening: Some(Bytes::from(text)),
            ended: false,
            _slot: slot,
        }
    }

    /// The next bytes to send, or `None` once the stream is over.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        if let Some(opening) = self.opening.take() {
            self.last_write = Instant::now();
            return Some(opening);
        }
        loop {
            let silent = self.last_write.elapsed();
            if silent >= self.keepalive {
                self.last_write = Instant::now();
                return Some(Bytes::from_static(KEEPALIVE.as_bytes()));
            }
            match self.read(self.keepalive - silent).await {
                Ok(Some(events)) => {
                    self.last_write = Instant::now();
                    return Some(Bytes::from(events));
                }
                Ok(None) => continue,
                Err(error) => {
                    self.ended = true;
                    return Some(Bytes::from(error_event(&error)));
                }
            }
        }
    }

    /// One long poll of at most `wait`: the events of the records it returned, or `None`.
    async fn read(&mut self, wait: Duration) -> Result<Option<String>, BrokerError> {
        let wait_ms = u64::try_from(wait.as_millis())
            .unwrap_or(u64::MAX)
            .min(self.broker.limits().wait_ms_max);
        let started = Instant::now();
        let fetched = self
            .broker
            .stream_read(
                &self.caller,
                &self.topic,
                self.partition,
                self.next_offset,
                wait_ms,
            )
            .await?;
        if fetched.records.is_empty() {
            let remaining = wait.saturating_sub(started.elapsed());
            tokio::time::sleep(remaining.min(EARLY_EMPTY_PAUSE)).await;
            return Ok(None);
        }
        // A gap or a repeat here would break the stream's promise: end it rather than send one.
        if fetched.records[0].offset != self.next_offset {
            return Err(BrokerError::Internal(format!(
                "a read from offset {} returned offset {} first",
                self.next_offset, fetched.records[0].offset
            )));
        }
        self.next_offset = fetched.next_offset;
        self.metrics
            .fetched_records
            .inc_by(fetched.records.len() as u64);
        let mut text = String::new();
        write_record_events(&mut text, &self.topic, self.partition, fetched.records);
        Ok(Some(text))
    }
}

/// The response body: chunks from `cursor` until it ends or the server drops it.
pub fn body(cursor: EventCursor) -> impl Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(cursor, |mut cursor| async move {
        let chunk = cursor.next_chunk().await?;
        Some((Ok(chunk), cursor))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Record;

    fn fetched(offset: u64, value: &str) -> FetchedRecord {
        FetchedRecord {
            offset,
            timestamp_ms: 1_764_422_400_000,
            record: Record {
                key: Some("k".to_string()),
                value: value.as_bytes().to_vec(),
                value_is_text: true,
                headers: vec![("h".to_string(), "v".to_string())],
            },
        }
    }

    #[test]
    fn each_record_is_one_event_with_its_offset_as_id() {
        let mut text = String::new();
        let records = vec![fetched(7, "line one\nline two"), fetched(8, "b")];
        write_record_events(&mut text, "orders", 2, records);
        let events: Vec<&str> = text.split_terminator("\n\n").collect();
        assert_eq!(events.len(), 2, "{text}");
        let lines: Vec<&str> = events[0].lines().collect();
        assert_eq!(
            lines.len(),
            3,
            "a newline in a value must not split the data line"
        );
        assert_eq!(lines[0], "id: 7");
        assert_eq!(lines[1], "event: record");
        let data: serde_json::Value =
            serde_json::from_str(lines[2].strip_prefix("data: ").expect("data line"))
                .expect("data is JSON");
        assert_eq!(
            data,
            serde_json::json!({"topic":"orders","partition":2,"offset":7,"key":"k",
                "value":"line one\nline two","headers":{"h":"v"},
                "timestamp_ms":1_764_422_400_000u64})
        );
        assert!(events[1].starts_with("id: 8\nevent: record\ndata: {"));
    }

    #[test]
    fn an_error_event_carries_the_problem_body() {
        let text = error_event(&BrokerError::NotFound("topic 't' does not exist".into()));
        assert!(text.starts_with("event: error\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        let json = text
            .trim_end()
            .strip_prefix("event: error\ndata: ")
            .expect("data line");
        let problem: serde_json::Value = serde_json::from_str(json).expect("problem JSON");
        assert_eq!(problem["status"], 404);
        assert_eq!(problem["type"], "/problems/not-found");
        assert_eq!(problem["detail"], "topic 't' does not exist");
    }
}
