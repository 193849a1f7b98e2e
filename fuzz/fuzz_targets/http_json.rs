//! The request bodies and query strings the HTTP API parses, as its routes parse them
//! (`web::Json` is `serde_json::from_slice`, `web::Query` is `serde_urlencoded::from_str`), and
//! the produce path behind the body: `record_from_wire`, the idempotence fields, the one encoding
//! of the records, the entry the leader proposes and the fetch answer a consumer reads.
//!
//! The first input byte picks the shape, the rest is the body. Checks: no panic; whatever parses
//! serializes and parses back the same; a produced record reads back as it was sent.
#![no_main]

use std::collections::BTreeMap;

use actix_web::http::header::HeaderValue;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use palisade::fuzzing::{
    parse_producer_id, parse_sequences, record_from_wire, stream_start, StreamQuery,
};
use palisade::partition::batch::{self, PartitionCommand, Record};
use palisade::partition::encoded::AppendPrefix;
use palisade::partition::read::FetchedRecord;
use palisade::partition::EncodedRecords;
use palisade::wire;
use palisade_fuzz::{heap_peak_during, Measured};
use serde::de::DeserializeOwned;
use serde::Serialize;

#[global_allocator]
static ALLOCATOR: Measured = Measured;

/// Heap bytes a parse may hold per input byte (a JSON object `{}` per record becomes a
/// `ProduceRecord` of about 150 bytes); plus serde's bounded preallocation.
const HEAP_BYTES_PER_INPUT_BYTE_MAX: usize = 128;
const PREALLOCATION_BYTES_MAX: usize = 8 * 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&shape, body)) = data.split_first() else {
        return;
    };
    let ((), peak_bytes) = heap_peak_during(|| parse(shape, body));
    let bound = HEAP_BYTES_PER_INPUT_BYTE_MAX * data.len() + PREALLOCATION_BYTES_MAX;
    assert!(
        peak_bytes <= bound,
        "shape {shape}: {} input bytes held {peak_bytes} heap bytes, bound {bound}",
        data.len()
    );
});

fn parse(shape: u8, body: &[u8]) {
    match shape % 14 {
        0 => produce(body),
        1 => json::<wire::TokenRequest>(body),
        2 => json::<wire::CreateTopic>(body),
        3 => json::<wire::CreateUser>(body),
        4 => json::<wire::SetPassword>(body),
        5 => json::<wire::CreateAcl>(body),
        6 => json::<wire::AddBroker>(body),
        7 => json::<wire::JoinGroup>(body),
        8 => json::<wire::CommitOffsets>(body),
        9 => json::<wire::CreateProducer>(body),
        10 => query::<wire::FetchQuery>(body),
        11 => query::<wire::PollQuery>(body),
        12 => query::<wire::AuditFilters>(body),
        _ => stream(body),
    }
}

/// A JSON body that parses serializes and parses back the same.
fn json<T: DeserializeOwned + Serialize + PartialEq>(body: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(body) else {
        return;
    };
    let text = serde_json::to_vec(&value).expect("a parsed body serializes");
    let again: T = serde_json::from_slice(&text).expect("a serialized body parses");
    assert!(again == value, "{}", String::from_utf8_lossy(&text));
}

/// A query string that parses serializes and parses back the same.
fn query<T: DeserializeOwned + Serialize + PartialEq>(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let Ok(value) = serde_urlencoded::from_str::<T>(text) else {
        return;
    };
    let text = serde_urlencoded::to_string(&value).expect("a parsed query serializes");
    let again: T = serde_urlencoded::from_str(&text).expect("a serialized query parses");
    assert!(again == value, "{text}");
}

/// A record stream's start: the body up to the first newline is the query string, the rest the
/// `Last-Event-ID` header (absent when there is no newline).
fn stream(body: &[u8]) {
    let (query, header) = match body.iter().position(|byte| *byte == b'\n') {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let Ok(query) = serde_urlencoded::from_str::<StreamQuery>(query) else {
        return;
    };
    let header = match header.map(HeaderValue::from_bytes) {
        Some(Ok(value)) => Some(value),
        Some(Err(_)) => return,
        None => None,
    };
    let _ = stream_start(header.as_ref(), query.offset.as_deref());
}

/// `POST /v1/topics/{topic}/messages`: the body, each record, the idempotence fields, then the
/// records' way to the log and back out of a fetch.
fn produce(body: &[u8]) {
    let Ok(body) = serde_json::from_slice::<wire::ProduceBody>(body) else {
        return;
    };
    if let Some(id) = &body.producer_id {
        if let Ok(producer) = parse_producer_id(id) {
            assert_eq!(format!("{producer:032x}"), id.to_ascii_lowercase());
        }
    }
    if let Some(sequences) = body.sequences.clone() {
        if let Ok(parsed) = parse_sequences(sequences.clone()) {
            assert_eq!(parsed.len(), sequences.len());
            for (partition, sequence) in &parsed {
                assert_eq!(sequences.get(&partition.to_string()), Some(sequence));
            }
        }
    }
    let mut records = Vec::with_capacity(body.records.len());
    for (position, sent) in body.records.iter().enumerate() {
        let Ok((record, partition)) = record_from_wire(sent.clone(), position) else {
            return;
        };
        assert_eq!(partition, sent.partition);
        assert_eq!(record.key, sent.key);
        let headers: BTreeMap<String, String> = record.headers.iter().cloned().collect();
        assert_eq!(headers, sent.headers);
        records.push(record);
    }
    let entry = through_the_log(&records);
    fetched(&records, &body.records, entry);
}

/// The one encoding of `records` (on the broker the client called), across the peer link, into
/// the leader's entry, decoded as a fetch reads it.
fn through_the_log(records: &[Record]) -> Vec<Record> {
    let encoded = EncodedRecords::encode(records);
    assert_eq!(encoded.count(), records.len() as u64);
    let link = postcard::to_stdvec(&encoded).expect("records encode");
    let received: EncodedRecords = postcard::from_bytes(&link).expect("records cross the link");
    assert!(received == encoded);
    let entry = received.into_command(AppendPrefix::Append {
        base_offset: 7,
        timestamp_ms: 11,
    });
    match batch::decode(&entry).expect("the leader's entry decodes") {
        PartitionCommand::Append(batch) => {
            assert_eq!((batch.base_offset, batch.timestamp_ms), (7, 11));
            batch.records
        }
        command => panic!("a produce became {command:?}"),
    }
}

/// The fetch answer of the stored records, as JSON and as the client reads it: every record
/// reads back as it was sent.
fn fetched(records: &[Record], sent: &[wire::ProduceRecord], stored: Vec<Record>) {
    assert_eq!(stored, records);
    let response = wire::FetchResponse {
        records: stored
            .into_iter()
            .enumerate()
            .map(|(position, record)| {
                wire::FetchedRecord::from(FetchedRecord {
                    offset: 7 + position as u64,
                    timestamp_ms: 11,
                    record,
                })
            })
            .collect(),
        next_offset: 7 + records.len() as u64,
        high_watermark: 7 + records.len() as u64,
        log_start_offset: 0,
    };
    let json = serde_json::to_vec(&response).expect("a fetch answer serializes");
    let read: wire::FetchResponse = serde_json::from_slice(&json).expect("a fetch answer parses");
    assert_eq!(read, response);
    for (read, sent) in read.records.iter().zip(sent) {
        assert_eq!(read.key, sent.key);
        assert_eq!(read.headers, sent.headers);
        match (&sent.value, &sent.value_b64) {
            (Some(text), None) => assert_eq!(read.value.as_ref(), Some(text)),
            (None, Some(encoded)) => {
                let engine = base64::engine::general_purpose::STANDARD;
                let sent_bytes = engine.decode(encoded).expect("accepted base64 decodes");
                let read_bytes = engine
                    .decode(read.value_b64.as_ref().expect("bytes read back as base64"))
                    .expect("the broker's base64 decodes");
                assert_eq!(read_bytes, sent_bytes);
            }
            _ => unreachable!("record_from_wire accepted exactly one of value and value_b64"),
        }
    }
}
