//! Helpers of the event-stream tests: topics and records with checkable values, reading
//! typed and raw streams with deadlines, and the gap/repeat checker.

use std::time::Duration;

use crate::common::{self, BrokerProcess, RawApi, RawReply};
use palisade::client::sse::{EventStream, StreamEvent, StreamedRecord};
use palisade::client::Client;
use palisade::wire::{CreateTopic, ProduceRecord, ProduceRequest};

/// Short keep-alives, so silence and disconnects show within a test's patience.
pub const FAST_KEEPALIVE: &str = "\n[limits]\nstream_keepalive_ms = 300\n";
pub const WAIT: Duration = Duration::from_secs(30);
pub const MESSAGES: &str = "/partitions/0/messages";

pub fn topic(name: &str, replication_factor: u16) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions: Some(1),
        replication_factor: Some(replication_factor),
        retention_ms: None,
        retention_bytes: None,
    }
}

/// Produces `v{i}` for each `i` in `values` to partition 0; a fresh single-partition topic
/// therefore holds value `v{n}` at offset `n`.
pub async fn produce(client: &Client, topic: &str, values: std::ops::Range<u64>) {
    let records = values
        .map(|i| ProduceRecord {
            value: Some(format!("v{i}")),
            partition: Some(0),
            ..ProduceRecord::default()
        })
        .collect();
    client
        .produce(topic, &ProduceRequest { records })
        .await
        .expect("produce");
}

/// Reads `count` record events, failing on an error event, the end of the stream or a deadline.
pub async fn read_records(stream: &mut EventStream, count: usize) -> Vec<StreamedRecord> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut records = Vec::with_capacity(count);
    while records.len() < count {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} records arrived", records.len()));
        match next.expect("stream readable") {
            Some(StreamEvent::Record(record)) => records.push(record),
            Some(StreamEvent::Error(error)) => panic!("error event: {error}"),
            None => panic!("stream ended after {} records", records.len()),
        }
    }
    records
}

/// Checks that `received` is exactly the offsets `first..end`, each once and in order, and says
/// where it is not.
pub fn check_no_gap_no_repeat(received: &[u64], first: u64, end: u64) -> Result<(), String> {
    let mut expected = first;
    for (position, &offset) in received.iter().enumerate() {
        if offset < expected {
            return Err(format!(
                "repeat: offset {offset} at position {position}, expected {expected}"
            ));
        }
        if offset > expected {
            return Err(format!(
                "gap: offsets {expected}..{offset} missing before position {position}"
            ));
        }
        expected += 1;
    }
    if expected != end {
        return Err(format!("received up to {expected}, expected up to {end}"));
    }
    Ok(())
}

pub fn offsets_and_values(records: &[StreamedRecord], topic: &str) -> Vec<u64> {
    for record in records {
        assert_eq!(record.topic, topic);
        assert_eq!(record.partition, 0);
        let expected = format!("v{}", record.record.offset);
        assert_eq!(record.record.value.as_deref(), Some(expected.as_str()));
    }
    records.iter().map(|r| r.record.offset).collect()
}

/// An event stream opened with raw HTTP, to see headers and keep-alive comments.
pub struct RawStream {
    response: reqwest::Response,
    pub text: String,
}

impl RawStream {
    pub async fn open(url: &str, ca: &std::path::Path, token: &str) -> RawStream {
        let response = common::raw_client(ca)
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("stream request");
        assert_eq!(response.status(), 200);
        RawStream {
            response,
            text: String::new(),
        }
    }

    pub fn header(&self, name: &str) -> String {
        let value = self.response.headers().get(name);
        value
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    /// Reads until `done(all text so far)` holds, failing after a deadline.
    pub async fn read_until(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(&self.text) {
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {what} in time; got {:?}", self.text))
                .expect("stream readable")
                .unwrap_or_else(|| panic!("stream ended before {what}"));
            self.text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

pub async fn open_streams_metric(broker: &BrokerProcess) -> String {
    let text = common::raw_client(&broker.ca)
        .get(format!("{}/metrics", broker.url))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find(|line| line.starts_with("palisade_open_streams "))
        .unwrap_or("")
        .to_string()
}

/// The next event must be an error event with `status`, and then the stream must end.
pub async fn expect_error_then_end(stream: &mut EventStream, status: u16, context: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let next = tokio::time::timeout_at(deadline, stream.next())
        .await
        .unwrap_or_else(|_| panic!("{context}: no error event in time"))
        .expect("readable");
    match next {
        Some(StreamEvent::Error(error)) => {
            assert_eq!(error.status(), Some(status), "{context}: {error}");
        }
        Some(StreamEvent::Record(record)) => {
            panic!("{context}: a record after access ended: {record:?}")
        }
        None => panic!("{context}: the stream ended without an error event"),
    }
    let end = tokio::time::timeout_at(deadline, stream.next()).await;
    assert!(matches!(end, Ok(Ok(None))), "{context}: the stream ends");
}

/// Reads lines of a child's stdout on a thread, handing them over a channel.
pub fn line_reader(stdout: std::process::ChildStdout) -> tokio::sync::mpsc::Receiver<String> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if sender.blocking_send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// A stream request that is expected to be refused, read whole: `token` as bearer (none when
/// `None`) and an optional `Last-Event-ID`.
pub async fn stream_request(
    api: &RawApi,
    path: &str,
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> RawReply {
    let mut headers = vec![("accept".to_string(), "text/event-stream".to_string())];
    if let Some(token) = token {
        headers.push(("authorization".into(), format!("Bearer {token}")));
    }
    if let Some(id) = last_event_id {
        headers.push(("last-event-id".into(), id.to_string()));
    }
    api.send("GET", path, &headers, None).await
}
