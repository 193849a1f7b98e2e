//! Conversions between the broker's types and the wire shapes of `crate::wire`, and the fast
//! path that serializes fetch answers.
//!
//! Owns no wire shape of its own: every JSON body the routes read or write is a `wire` type.
//! Fetch and poll answers are built by moving each fetched record's key and value into the
//! wire record (no second copy of the value unless it must become base64) and streamed as JSON
//! in chunks (`fetch_body`, `dto_groups::group_poll_body`).

use base64::Engine;

use crate::broker::FetchedRecord;
use crate::broker::Record;
use crate::wire;

/// The broker record of one produced wire record, and its explicit partition. Exactly one of
/// `value` and `value_b64` must be present; `position` names the record in errors.
pub fn record_from_wire(
    record: wire::ProduceRecord,
    position: usize,
) -> Result<(Record, Option<u32>), String> {
    let (value, value_is_text) = match (record.value, record.value_b64) {
        (Some(text), None) => (text.into_bytes(), true),
        (None, Some(encoded)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|error| {
                    format!("record {position}: value_b64 is not valid base64: {error}")
                })?;
            (bytes, false)
        }
        (Some(_), Some(_)) => {
            return Err(format!(
                "record {position}: give either value or value_b64, not both"
            ))
        }
        (None, None) => return Err(format!("record {position}: value or value_b64 is required")),
    };
    let broker_record = Record {
        key: record.key,
        value,
        value_is_text,
        headers: record.headers.into_iter().collect(),
    };
    Ok((broker_record, record.partition))
}

impl From<FetchedRecord> for wire::FetchedRecord {
    fn from(fetched: FetchedRecord) -> Self {
        let record = fetched.record;
        let (value, value_b64) = if record.value_is_text {
            match String::from_utf8(record.value) {
                Ok(text) => (Some(text), None),
                Err(error) => (
                    None,
                    Some(base64::engine::general_purpose::STANDARD.encode(error.into_bytes())),
                ),
            }
        } else {
            (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&record.value)),
            )
        };
        wire::FetchedRecord {
            offset: fetched.offset,
            key: record.key,
            value,
            value_b64,
            headers: record.headers.into_iter().collect(),
            timestamp_ms: fetched.timestamp_ms,
        }
    }
}

/// Bytes of JSON a fetch answer is written in at a time: the body is produced chunk by chunk as
/// the connection takes it, so an answer never exists twice over (records and JSON) in memory.
pub(super) const FETCH_CHUNK_BYTES: usize = 64 * 1024;

/// Capacity of a new chunk: `FETCH_CHUNK_BYTES` and room for the record that crosses it, so a
/// chunk is not reallocated (and copied) for its last record unless that record's JSON is
/// larger than the slack.
pub(super) const FETCH_CHUNK_CAPACITY: usize = FETCH_CHUNK_BYTES + FETCH_CHUNK_BYTES / 4;

/// The JSON of a `wire::FetchResponse`, byte for byte, written lazily: the records are turned
/// into JSON a chunk at a time when the connection asks for more, and each record's memory is
/// freed once written. `held` (the fetch budget the records hold) is kept until the last chunk.
pub fn fetch_body(
    records: Vec<FetchedRecord>,
    next_offset: u64,
    high_watermark: u64,
    log_start_offset: u64,
    held: crate::broker::Held,
) -> impl Iterator<Item = Result<actix_web::web::Bytes, std::convert::Infallible>> {
    let mut records = records.into_iter().peekable();
    let mut state = Some((false, held));
    std::iter::from_fn(move || {
        let (started, held) = state.take()?;
        let mut chunk = Vec::with_capacity(FETCH_CHUNK_CAPACITY);
        if !started {
            chunk.extend_from_slice(b"{\"records\":[");
        }
        let mut first = !started;
        while chunk.len() < FETCH_CHUNK_BYTES {
            let Some(record) = records.next() else {
                break;
            };
            if !first {
                chunk.push(b',');
            }
            first = false;
            super::record_json::write_record(&mut chunk, &record);
        }
        if records.peek().is_none() {
            chunk.extend_from_slice(
                format!(
                    "],\"next_offset\":{next_offset},\"high_watermark\":{high_watermark},\
                     \"log_start_offset\":{log_start_offset}}}"
                )
                .as_bytes(),
            );
            drop(held);
        } else {
            state = Some((true, held));
        }
        Some(Ok(actix_web::web::Bytes::from(chunk)))
    })
}

/// Serializes `value` into a buffer of `capacity` bytes and answers it as JSON (the tests'
/// reference for what the streamed answers must equal).
#[cfg(test)]
pub fn json_response<T: serde::Serialize>(
    mut builder: actix_web::HttpResponseBuilder,
    value: &T,
    capacity: usize,
) -> actix_web::HttpResponse {
    let mut body = Vec::with_capacity(capacity);
    match serde_json::to_writer(&mut body, value) {
        Ok(()) => builder
            .content_type(actix_web::http::header::ContentType::json())
            .body(body),
        Err(error) => actix_web::HttpResponse::InternalServerError()
            .body(format!("response does not serialize: {error}")),
    }
}
