//! Every layer an authenticated but hostile peer controls, decoded as the receiving broker
//! decodes it: the frame (`transport::frame::read_frame`), the Raft messages in it, each entry
//! payload (a partition command, or group 0's JSON metadata command), snapshot data, the body of
//! each request envelope (`ForwardRequest`, as `Broker::serve_forwarded` reads it, then what the
//! leader builds from it) and of each response envelope (`PeerAnswer`, as a forwarding caller
//! reads it).
//!
//! Each input is tried at every layer (as the bytes of a connection, as a frame body behind a
//! correct length prefix, as an envelope body, as an entry payload, as snapshot data), so the
//! fuzzer reaches the inner decoders without first building the outer ones.
//!
//! Checks: no panic; a decode holds at most a declared length (bounded by `frame_bytes_max`) plus
//! a fixed multiple of the input on the heap; whatever decodes encodes again and reads back the
//! same; the cheap header decode agrees with the full decode.
#![no_main]

use std::collections::VecDeque;
use std::sync::OnceLock;

use futures_util::FutureExt;
use libfuzzer_sys::fuzz_target;
use palisade::auth::jwt::SigningKey;
use palisade::cluster::metadata::{self, BrokerInfo, MetaCommand, MetaEnvelope, MetadataState};
use palisade::cluster::{TopicSpec, UserRecord, AUDIT_TOPIC};
use palisade::fuzzing::{ForwardReply, ForwardRequest, PeerAnswer};
use palisade::partition::batch::{self, CommandHeader, PartitionCommand};
use palisade::partition::encoded::AppendPrefix;
use palisade::partition::replica::StateMachine;
use palisade::partition::PartitionMachine;
use palisade::raft::{EntryPayload, MessageBody};
use palisade::transport::frame::{self, Frame, LENGTH_PREFIX_BYTES};
use palisade::transport::PeerLimits;
use palisade::wire;
use palisade_fuzz::{heap_peak_during, Measured};

#[global_allocator]
static ALLOCATOR: Measured = Measured;

/// Heap bytes a decode may hold per input byte. The densest encodings are Raft messages with an
/// empty body (5 bytes on the wire, about 130 in memory) in a vector that may have doubled.
const HEAP_BYTES_PER_INPUT_BYTE_MAX: usize = 64;
/// serde preallocates at most 1 MiB per sequence from a declared length; a few nest.
const PREALLOCATION_BYTES_MAX: usize = 8 * 1024 * 1024;

fn frame_bytes_max() -> u32 {
    PeerLimits::default().frame_bytes_max
}

fuzz_target!(|data: &[u8]| {
    read_wire(data);
    let mut wire = (data.len() as u32).to_be_bytes().to_vec();
    wire.extend_from_slice(data);
    read_wire(&wire);
    forwarded_request(data);
    peer_answer(data);
    entry_payload(data);
    snapshot_data(data);
});

/// `wire` as it arrives on a peer connection.
fn read_wire(wire: &[u8]) {
    let declared = match wire.get(..LENGTH_PREFIX_BYTES) {
        Some(prefix) => u32::from_be_bytes(prefix.try_into().expect("four bytes")) as usize,
        None => 0,
    };
    let (result, peak_bytes) = heap_peak_during(|| {
        frame::read_frame(&mut &wire[..], frame_bytes_max())
            .now_or_never()
            .expect("a reader over a slice never waits")
    });
    let bound = declared.min(frame_bytes_max() as usize)
        + HEAP_BYTES_PER_INPUT_BYTE_MAX * wire.len()
        + PREALLOCATION_BYTES_MAX;
    assert!(
        peak_bytes <= bound,
        "decoding {} bytes (declared body {declared}) held {peak_bytes} heap bytes, bound {bound}",
        wire.len()
    );
    let Ok(frame) = result else { return };
    let encoded = frame::encode(&frame, frame_bytes_max()).expect("a frame that was read encodes");
    assert!(encoded.len() <= wire.len(), "re-encoding grew the frame");
    let again = frame::read_frame(&mut &encoded[..], frame_bytes_max())
        .now_or_never()
        .expect("a reader over a slice never waits")
        .expect("an encoded frame reads back");
    assert_eq!(again, frame);
    frame_contents(frame);
}

/// What the link and the layers above it do with a frame's contents.
fn frame_contents(frame: Frame) {
    for message in &frame.messages {
        let _ = message.body.kind();
        match &message.body {
            MessageBody::Append { entries, .. } => {
                for entry in entries {
                    let _ = entry.size_bytes();
                    if let EntryPayload::Normal(data) = &entry.payload {
                        entry_payload(data);
                    }
                }
            }
            MessageBody::Snapshot { snapshot } => snapshot_data(&snapshot.data),
            _ => {}
        }
    }
    for request in &frame.requests {
        forwarded_request(&request.body);
    }
    for response in &frame.responses {
        peer_answer(&response.body);
    }
}

/// A committed entry's payload, as a partition replica or the controller applies it.
fn entry_payload(data: &[u8]) {
    let header = batch::decode_header(data);
    let _ = batch::base_offset_of(data);
    if let Ok(command) = batch::decode(data) {
        let header = header.expect("a command that decodes has a header that decodes");
        header_agrees(&command, &header);
        let again = batch::decode(&batch::encode(&command)).expect("an encoded command decodes");
        assert_eq!(again, command);
    }
    if let Ok(envelope) = serde_json::from_slice::<MetaEnvelope>(data) {
        meta_envelope(envelope);
    }
}

fn header_agrees(command: &PartitionCommand, header: &CommandHeader) {
    match (command, *header) {
        (
            PartitionCommand::Append(batch),
            CommandHeader::Append {
                base_offset,
                timestamp_ms,
                count,
            },
        )
        | (
            PartitionCommand::IdempotentAppend { batch, .. },
            CommandHeader::IdempotentAppend {
                base_offset,
                timestamp_ms,
                count,
                ..
            },
        ) => {
            assert_eq!(batch.base_offset, base_offset);
            assert_eq!(batch.timestamp_ms, timestamp_ms);
            assert_eq!(batch.records.len() as u64, count);
        }
        (
            PartitionCommand::AdvanceLogStart { offset },
            CommandHeader::AdvanceLogStart { offset: header },
        ) => assert_eq!(*offset, header),
        (PartitionCommand::CommitOffset { .. }, CommandHeader::CommitOffset) => {}
        (command, header) => panic!("header {header:?} does not match command {command:?}"),
    }
}

/// A metadata command applied by every controller replica: once, and again (the second time
/// also prunes what the first stored).
fn meta_envelope(envelope: MetaEnvelope) {
    let json = serde_json::to_vec(&envelope).expect("a command encodes");
    let again: MetaEnvelope = serde_json::from_slice(&json).expect("an encoded command decodes");
    assert_eq!(again, envelope);
    let mut state = bootstrapped().clone();
    let _ = metadata::apply(&mut state, envelope.clone());
    let _ = metadata::apply(&mut state, envelope);
}

/// A controller state after bootstrap: three brokers, the admin, the audit topic.
fn bootstrapped() -> &'static MetadataState {
    static STATE: OnceLock<MetadataState> = OnceLock::new();
    STATE.get_or_init(|| {
        let brokers = (1..=3)
            .map(|id| BrokerInfo {
                id,
                http: format!("https://127.0.0.1:{}", 8440 + id),
                peer: format!("127.0.0.1:{}", 9440 + id),
                rack: None,
                decommissioning: false,
            })
            .collect();
        let bootstrap = MetaCommand::Bootstrap {
            brokers,
            admin: UserRecord {
                name: "admin".into(),
                password_hash: String::new(),
                superuser: true,
                created_ms: 0,
            },
            key: SigningKey {
                kid: "fuzz".into(),
                secret: vec![7; 32],
                created_ms: 0,
            },
            audit_topic: TopicSpec {
                name: AUDIT_TOPIC.into(),
                partitions: 1,
                replication_factor: 3,
                retention_ms: None,
                retention_bytes: None,
                internal: true,
            },
        };
        let mut state = MetadataState::default();
        let envelope = MetaEnvelope {
            now_ms: 1_000,
            command: bootstrap,
        };
        metadata::apply(&mut state, envelope).expect("bootstrap applies");
        state
    })
}

/// A snapshot's application state, as a partition replica or the controller restores it.
fn snapshot_data(data: &[u8]) {
    if let Ok(machine) = PartitionMachine::restore(data, 16, VecDeque::new()) {
        let encoded = machine.encode_state();
        let again = PartitionMachine::restore(&encoded, 16, VecDeque::new())
            .expect("an encoded state restores");
        assert_eq!(again.state(), machine.state());
    }
    let _ = serde_json::from_slice::<MetadataState>(data);
}

/// A request envelope's body, as `Broker::serve_forwarded` decodes it, then what the leader
/// builds from it.
fn forwarded_request(body: &[u8]) {
    let Ok(request) = postcard::from_bytes::<ForwardRequest>(body) else {
        return;
    };
    let _ = (request.group(), request.resend(), request.wait_ms());
    let encoded = postcard::to_stdvec(&request).expect("a request encodes");
    let again = postcard::from_bytes::<ForwardRequest>(&encoded).expect("a request decodes");
    assert_eq!(
        postcard::to_stdvec(&again).expect("a request encodes"),
        encoded
    );
    match request {
        ForwardRequest::Produce {
            records,
            timestamp_ms,
            ..
        } => {
            let prefix = AppendPrefix::Append {
                base_offset: 0,
                timestamp_ms,
            };
            leader_entry(records.count(), &records.into_command(prefix));
        }
        ForwardRequest::IdempotentProduce {
            records,
            timestamp_ms,
            stamp,
            ..
        } => {
            let prefix = AppendPrefix::IdempotentAppend {
                stamp,
                base_offset: 0,
                timestamp_ms,
            };
            leader_entry(records.count(), &records.into_command(prefix));
        }
        ForwardRequest::Meta { envelope } => {
            if let Ok(envelope) = serde_json::from_slice::<MetaEnvelope>(&envelope) {
                meta_envelope(envelope);
            }
        }
        _ => {}
    }
}

/// The entry a leader proposes for a forwarded produce of `count` records: every replica and
/// every fetch decodes it, so it must decode, with the records the leader counted.
fn leader_entry(count: u64, entry: &[u8]) {
    let command = batch::decode(entry).expect("the entry a leader proposes decodes");
    let (PartitionCommand::Append(batch) | PartitionCommand::IdempotentAppend { batch, .. }) =
        command
    else {
        panic!("a produce became {command:?}");
    };
    assert_eq!(batch.records.len() as u64, count);
}

/// A response envelope's body, as a forwarding caller decodes it, then the JSON the client gets.
fn peer_answer(body: &[u8]) {
    let Ok(answer) = postcard::from_bytes::<PeerAnswer>(body) else {
        return;
    };
    let encoded = postcard::to_stdvec(&answer).expect("an answer encodes");
    let again = postcard::from_bytes::<PeerAnswer>(&encoded).expect("an answer decodes");
    assert_eq!(
        postcard::to_stdvec(&again).expect("an answer encodes"),
        encoded
    );
    match answer {
        Ok(ForwardReply::Fetched {
            records,
            offset,
            high_watermark,
            log_start_offset,
        }) => {
            let response = wire::FetchResponse {
                records: records.into_iter().map(wire::FetchedRecord::from).collect(),
                next_offset: offset,
                high_watermark,
                log_start_offset,
            };
            let json = serde_json::to_vec(&response).expect("a fetch answer encodes");
            let read: wire::FetchResponse =
                serde_json::from_slice(&json).expect("a fetch answer decodes");
            assert_eq!(read, response);
        }
        Ok(ForwardReply::Described(description)) => {
            let _ = description.in_sync();
        }
        Ok(_) | Err(_) => {}
    }
}
