//! The peer-link wire format: one length-prefixed postcard frame per batch of Raft messages,
//! RPC requests and RPC responses.
//!
//! Owns encoding and decoding of `Frame` and the bound on a frame's size. RPC bodies are
//! opaque bytes here. A frame is a
//! big-endian `u32` body length followed by that many bytes of postcard-encoded `Frame`
//! (field-level layout in `docs/transport.md`). It must not check who sent a frame: the link
//! compares `Frame::from` with the broker id of the authenticated peer.
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::raft::{Message, NodeId};

/// Bytes of the length prefix in front of every frame body.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Upper bound of the bytes a frame carrying exactly one envelope adds around the envelope's
/// body: `from` (varint, at most 10), three vector counts (1 each for counts below 128), the
/// envelope id (varint, at most 10) and the body length (varint, at most 5 for a `u32`).
pub const ENVELOPE_OVERHEAD_BYTES_MAX: u64 = 32;

/// One batch from one broker to one peer: Raft messages, RPC requests and RPC responses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame {
    /// The broker id the sender claims; the receiver drops the frame unless it equals the
    /// broker id in the sender's verified certificate.
    pub from: NodeId,
    /// Messages of any Raft groups, in the order the sender queued them.
    pub messages: Vec<Message>,
    /// Calls of the sender to the receiver, in the order the sender queued them.
    pub requests: Vec<Envelope>,
    /// Answers of the sender to calls the receiver made, matched by `id`.
    pub responses: Vec<Envelope>,
}

impl Frame {
    /// A frame carrying only Raft messages.
    pub fn with_messages(from: NodeId, messages: Vec<Message>) -> Frame {
        Frame {
            from,
            messages,
            requests: Vec::new(),
            responses: Vec::new(),
        }
    }
}

/// An RPC request or response: the caller's id for the call and an opaque body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Chosen by the caller, unique among its calls; a response carries the request's id.
    pub id: u64,
    /// Encoded and interpreted by the layer above the transport only.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// Whether a frame holding just one envelope with a body of `body_bytes` stays within
/// `frame_bytes_max`. Conservative by at most `ENVELOPE_OVERHEAD_BYTES_MAX`.
pub fn envelope_fits(body_bytes: usize, frame_bytes_max: u32) -> bool {
    (body_bytes as u64).saturating_add(ENVELOPE_OVERHEAD_BYTES_MAX) <= u64::from(frame_bytes_max)
}

/// Why a frame could not be encoded or read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("peer link I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed at a frame boundary")]
    Closed,
    #[error("frame body of {bytes} bytes exceeds the bound of {bytes_max} bytes")]
    TooLarge { bytes: u64, bytes_max: u32 },
    #[error("frame body is not a valid frame: {0}")]
    Decode(postcard::Error),
    #[error("frame cannot be encoded: {0}")]
    Encode(postcard::Error),
}

/// The bytes of `frame` on the wire (length prefix included).
///
/// Fails with `TooLarge` when the body would exceed `frame_bytes_max`, so a sender never
/// emits a frame its peer is bound to refuse.
pub fn encode(frame: &Frame, frame_bytes_max: u32) -> Result<Vec<u8>, FrameError> {
    // The body is encoded behind room for its length prefix: one copy of every entry payload
    // into the frame, not a second one to put the prefix in front.
    let mut wire = Vec::with_capacity(LENGTH_PREFIX_BYTES + estimated_body_bytes(frame));
    wire.resize(LENGTH_PREFIX_BYTES, 0);
    let mut wire = postcard::to_extend(frame, wire).map_err(FrameError::Encode)?;
    let bytes = (wire.len() - LENGTH_PREFIX_BYTES) as u64;
    if bytes > u64::from(frame_bytes_max) {
        return Err(FrameError::TooLarge {
            bytes,
            bytes_max: frame_bytes_max,
        });
    }
    let length = u32::try_from(bytes).expect("body length is bounded by a u32 above");
    wire[..LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
    Ok(wire)
}

/// About the encoded size of `frame`, so its buffer is allocated once rather than regrown
/// (each regrowth copies every payload already written).
fn estimated_body_bytes(frame: &Frame) -> usize {
    const PER_ITEM_BYTES: usize = 64;
    let entries: u64 = frame
        .messages
        .iter()
        .map(|message| match &message.body {
            crate::raft::MessageBody::Append { entries, .. } => {
                entries.iter().map(|entry| entry.size_bytes()).sum()
            }
            crate::raft::MessageBody::Snapshot { snapshot } => snapshot.data.len() as u64,
            _ => 0,
        })
        .sum();
    let envelopes: usize = frame
        .requests
        .iter()
        .chain(&frame.responses)
        .map(|envelope| envelope.body.len())
        .sum();
    let items = frame.messages.len() + frame.requests.len() + frame.responses.len();
    entries as usize + envelopes + PER_ITEM_BYTES * (items + 1)
}

/// Reads one frame. A length above `frame_bytes_max` fails before any of the body is read or
/// buffered; the caller must close the connection on any error, since the stream position
/// is then unknown.
pub async fn read_frame<R>(reader: &mut R, frame_bytes_max: u32) -> Result<Frame, FrameError>
where
    R: AsyncRead + Unpin,
{
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    let mut filled = 0;
    while filled < LENGTH_PREFIX_BYTES {
        let read = reader.read(&mut prefix[filled..]).await?;
        if read == 0 {
            return Err(if filled == 0 {
                FrameError::Closed
            } else {
                FrameError::Io(std::io::ErrorKind::UnexpectedEof.into())
            });
        }
        filled += read;
    }
    let length = u32::from_be_bytes(prefix);
    if length > frame_bytes_max {
        return Err(FrameError::TooLarge {
            bytes: u64::from(length),
            bytes_max: frame_bytes_max,
        });
    }
    let mut body = vec![0u8; length as usize];
    reader.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(FrameError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::{GroupId, MessageBody, Term};

    fn frame(count: u64) -> Frame {
        let messages = (0..count)
            .map(|sequence| Message {
                group: GroupId(sequence % 3),
                from: NodeId(1),
                to: NodeId(2),
                term: Term(sequence),
                body: MessageBody::Heartbeat {
                    commit: crate::raft::LogIndex(sequence),
                },
            })
            .collect();
        Frame::with_messages(NodeId(1), messages)
    }

    #[tokio::test]
    async fn a_frame_round_trips_and_carries_its_length() {
        let original = frame(5);
        let wire = encode(&original, 1 << 20).expect("encode");
        let length = u32::from_be_bytes(wire[..4].try_into().expect("prefix"));
        assert_eq!(length as usize, wire.len() - LENGTH_PREFIX_BYTES);
        let decoded = read_frame(&mut wire.as_slice(), 1 << 20)
            .await
            .expect("decode");
        assert_eq!(decoded, original);
    }

    #[test]
    fn the_wire_layout_matches_docs_transport_md() {
        let heartbeat_response = Frame::with_messages(
            NodeId(2),
            vec![Message {
                group: GroupId(0),
                from: NodeId(2),
                to: NodeId(1),
                term: Term(3),
                body: MessageBody::HeartbeatResponse,
            }],
        );
        let wire = encode(&heartbeat_response, 1 << 20).expect("encode");
        // Length 9; from 2; one message: group 0, from 2, to 1, term 3, variant 7; no
        // requests; no responses.
        assert_eq!(wire, [0, 0, 0, 9, 2, 1, 0, 2, 1, 3, 7, 0, 0]);

        let rpc = Frame {
            from: NodeId(1),
            messages: Vec::new(),
            requests: vec![Envelope {
                id: 300,
                body: vec![0xaa, 0xbb],
            }],
            responses: vec![Envelope {
                id: 5,
                body: Vec::new(),
            }],
        };
        let wire = encode(&rpc, 1 << 20).expect("encode");
        // Length 11; from 1; no messages; one request: id 300 (varint ac 02), body of 2
        // bytes; one response: id 5, empty body.
        assert_eq!(
            wire,
            [0, 0, 0, 11, 1, 0, 1, 0xac, 0x02, 2, 0xaa, 0xbb, 1, 5, 0]
        );
    }

    #[test]
    fn the_envelope_overhead_bound_holds_for_extreme_ids() {
        let frame_bytes_max = 1 << 16;
        let body_bytes = (frame_bytes_max as u64 - ENVELOPE_OVERHEAD_BYTES_MAX) as usize;
        assert!(envelope_fits(body_bytes, frame_bytes_max));
        assert!(!envelope_fits(body_bytes + 1, frame_bytes_max));
        let frame = Frame {
            from: NodeId(u64::MAX),
            messages: Vec::new(),
            requests: vec![Envelope {
                id: u64::MAX,
                body: vec![7; body_bytes],
            }],
            responses: Vec::new(),
        };
        encode(&frame, frame_bytes_max).expect("a fitting envelope encodes within the bound");
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_reading_the_body() {
        let wire = encode(&frame(50), 1 << 20).expect("encode");
        let body_bytes = (wire.len() - LENGTH_PREFIX_BYTES) as u32;
        // Only the prefix is supplied: refusing must not wait for the body.
        let result = read_frame(&mut &wire[..LENGTH_PREFIX_BYTES], body_bytes - 1).await;
        assert!(
            matches!(result, Err(FrameError::TooLarge { .. })),
            "{result:?}"
        );
        assert!(matches!(
            encode(&frame(50), body_bytes - 1),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn garbage_and_truncation_are_errors_not_panics() {
        let mut garbage = 6u32.to_be_bytes().to_vec();
        garbage.extend_from_slice(&[0xff; 6]);
        let result = read_frame(&mut garbage.as_slice(), 1 << 20).await;
        assert!(matches!(result, Err(FrameError::Decode(_))), "{result:?}");

        let wire = encode(&frame(2), 1 << 20).expect("encode");
        let result = read_frame(&mut &wire[..wire.len() - 1], 1 << 20).await;
        assert!(matches!(result, Err(FrameError::Io(_))), "{result:?}");
        let result = read_frame(&mut &wire[..2], 1 << 20).await;
        assert!(matches!(result, Err(FrameError::Io(_))), "{result:?}");
        let result = read_frame(&mut &wire[..0], 1 << 20).await;
        assert!(matches!(result, Err(FrameError::Closed)), "{result:?}");
    }
}
