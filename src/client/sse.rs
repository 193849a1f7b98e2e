//! Client side of streaming consume: opens a partition's Server-Sent Events stream and parses
//! it into typed events.
//!
//! Owns the event-stream parser (the subset of the SSE format the broker sends, read the way
//! the format says: `field: value` lines, comments starting with `:`, a blank line ending an
//! event, `\n`, `\r\n` or `\r` line ends). Must not retry or resume by itself: the caller decides,
//! using the last record's offset as `Last-Event-ID`.

use reqwest::header::{HeaderValue, ACCEPT};
use reqwest::Method;
use serde::Deserialize;

use super::api::{Client, RESPONSE_BYTES_MAX};
use super::{api_error, ClientError};
use crate::wire::FetchedRecord;

/// Largest event the parser holds; a longer one is an error, not an allocation.
const EVENT_BYTES_MAX: usize = RESPONSE_BYTES_MAX as usize;

/// Where a stream starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamFrom {
    /// The partition's log start.
    Earliest,
    /// Only records committed after the stream opened.
    Latest,
    /// This offset.
    Offset(u64),
    /// The record after this offset (`Last-Event-ID`).
    After(u64),
}

/// A record event's data: the fetched record plus its topic and partition.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StreamedRecord {
    pub topic: String,
    pub partition: u32,
    #[serde(flatten)]
    pub record: FetchedRecord,
}

/// One raw event as the format defines it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEvent {
    pub id: Option<String>,
    /// `message` when the event named no type.
    pub event: String,
    pub data: String,
}

/// Incremental event-stream parser: feed bytes as they arrive, take whole events out.
#[derive(Debug, Default)]
pub struct EventParser {
    pending: Vec<u8>,
    current: RawEvent,
    has_data: bool,
    /// The previous chunk ended in `\r`: a `\n` starting the next one belongs to it.
    after_carriage_return: bool,
}

impl EventParser {
    /// Parses `bytes`; returns the events they completed, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<RawEvent>, ClientError> {
        let mut events = Vec::new();
        for &byte in bytes {
            let skip = self.after_carriage_return && byte == b'\n';
            self.after_carriage_return = byte == b'\r';
            if skip {
                continue;
            }
            if byte == b'\n' || byte == b'\r' {
                let line = std::mem::take(&mut self.pending);
                if let Some(event) = self.line(&String::from_utf8_lossy(&line)) {
                    events.push(event);
                }
            } else {
                self.pending.push(byte);
                if self.pending.len() + self.current.data.len() > EVENT_BYTES_MAX {
                    return Err(ClientError::ResponseTooLarge {
                        bytes_max: RESPONSE_BYTES_MAX,
                    });
                }
            }
        }
        Ok(events)
    }

    fn line(&mut self, line: &str) -> Option<RawEvent> {
        if line.is_empty() {
            let event = std::mem::take(&mut self.current);
            let complete = std::mem::take(&mut self.has_data);
            return complete.then(|| RawEvent {
                event: if event.event.is_empty() {
                    "message".to_string()
                } else {
                    event.event
                },
                ..event
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "id" => self.current.id = Some(value.to_string()),
            "event" => self.current.event = value.to_string(),
            "data" => {
                if self.has_data {
                    self.current.data.push('\n');
                }
                self.current.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
        None
    }
}

/// What a stream delivers.
#[derive(Debug)]
pub enum StreamEvent {
    Record(StreamedRecord),
    /// The broker ended the stream with this error (for example the topic was deleted).
    Error(ClientError),
}

/// An open event stream of one partition.
pub struct EventStream {
    response: reqwest::Response,
    parser: EventParser,
    ready: std::collections::VecDeque<RawEvent>,
}

impl EventStream {
    /// The next record or error event; `None` when the broker closed the stream.
    pub async fn next(&mut self) -> Result<Option<StreamEvent>, ClientError> {
        loop {
            if let Some(raw) = self.ready.pop_front() {
                match raw.event.as_str() {
                    "record" => {
                        let record = serde_json::from_str(&raw.data)
                            .map_err(|source| ClientError::Decode { source })?;
                        return Ok(Some(StreamEvent::Record(record)));
                    }
                    "error" => {
                        let status = serde_json::from_str::<serde_json::Value>(&raw.data)
                            .ok()
                            .and_then(|problem| problem.get("status")?.as_u64())
                            .and_then(|status| u16::try_from(status).ok())
                            .unwrap_or(500);
                        let error = api_error(status, raw.data.as_bytes());
                        return Ok(Some(StreamEvent::Error(error)));
                    }
                    _ => continue,
                }
            }
            let Some(chunk) = self.response.chunk().await? else {
                return Ok(None);
            };
            self.ready.extend(self.parser.feed(&chunk)?);
        }
    }
}

impl Client {
    /// `GET /v1/topics/{topic}/partitions/{p}/messages` with `Accept: text/event-stream`.
    /// A refusal before the stream starts (401, 403, 404, 416, 429, ...) is an `Api` error.
    pub async fn stream(
        &self,
        topic: &str,
        partition: u32,
        from: StreamFrom,
    ) -> Result<EventStream, ClientError> {
        let partition = partition.to_string();
        let path = ["v1", "topics", topic, "partitions", &partition, "messages"];
        let query = match from {
            StreamFrom::Earliest | StreamFrom::After(_) => vec![],
            StreamFrom::Latest => vec![("offset", "latest".to_string())],
            StreamFrom::Offset(offset) => vec![("offset", offset.to_string())],
        };
        let mut request = self
            .request(Method::GET, &path, &query)?
            .header(ACCEPT, HeaderValue::from_static("text/event-stream"));
        if let StreamFrom::After(offset) = from {
            request = request.header("last-event-id", offset.to_string());
        }
        let mut response = request.send().await?;
        let status = response.status();
        if !status.is_success() {
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > EVENT_BYTES_MAX {
                    break;
                }
                body.extend_from_slice(&chunk);
            }
            return Err(api_error(status.as_u16(), &body));
        }
        Ok(EventStream {
            response,
            parser: EventParser::default(),
            ready: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_and_line_ends_are_parsed() {
        let mut parser = EventParser::default();
        let mut events = parser
            .feed(b": keep-alive\n\nid: 4\nevent: rec")
            .expect("feed");
        assert!(
            events.is_empty(),
            "a comment and half an event make no event"
        );
        events.extend(parser.feed(b"ord\r\ndata: {\"a\":1}\r").expect("feed"));
        events.extend(parser.feed(b"\n\r\ndata:x\ndata: y\n\n").expect("feed"));
        assert_eq!(
            events,
            vec![
                RawEvent {
                    id: Some("4".into()),
                    event: "record".into(),
                    data: "{\"a\":1}".into()
                },
                RawEvent {
                    id: None,
                    event: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }

    #[test]
    fn a_blank_line_without_data_dispatches_nothing() {
        let mut parser = EventParser::default();
        assert!(parser.feed(b"event: error\n\n\n").expect("feed").is_empty());
    }
}
