#!/usr/bin/env python3
"""Writes the hand-encoded seeds of the peer_frame target into seeds/peer_frame/.

Postcard as docs/transport.md lays it out: unsigned integers as LEB128 varints, a sequence or
byte string as its length then its items, an enum as its variant index then its fields, an
Option as 0 or 1 then the value. Variant indexes follow the declaration order in
src/raft/message.rs, src/raft/types.rs and src/broker/peer_wire.rs.
"""
import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_frame")


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def blob(data):
    return varint(len(data)) + data


def text(s):
    return blob(s.encode())


def record(key, value, headers=()):
    key_part = b"\x01" + text(key) if key is not None else b"\x00"
    heads = varint(len(headers)) + b"".join(text(k) + text(v) for k, v in headers)
    return key_part + blob(value) + b"\x01" + heads


def records(*items):
    return varint(len(items)) + b"".join(items)


def frame(sender, messages=(), requests=(), responses=()):
    def envelopes(items):
        return varint(len(items)) + b"".join(varint(i) + blob(b) for i, b in items)

    body = varint(sender) + varint(len(messages)) + b"".join(messages)
    body += envelopes(requests) + envelopes(responses)
    return struct.pack(">I", len(body)) + body


def message(group, sender, to, term, body):
    return varint(group) + varint(sender) + varint(to) + varint(term) + body


def append(prev_index, prev_term, entries, commit):
    # MessageBody::Append is variant 4; an entry is term, index, payload (Normal is variant 1).
    encoded = b"".join(varint(t) + varint(i) + b"\x01" + blob(d) for t, i, d in entries)
    return b"\x04" + varint(prev_index) + varint(prev_term) + varint(len(entries)) + encoded + varint(commit)


def meta(command):
    return json.dumps({"now_ms": 2000, "command": command}, separators=(",", ":")).encode()


TOPIC = {"CreateTopic": {"name": "orders", "partitions": 3, "replication_factor": 3,
                         "retention_ms": None, "retention_bytes": None, "internal": False}}
# Once made every controller replica allocate one plan per partition up front.
HUGE_TOPIC = {"CreateTopic": {**TOPIC["CreateTopic"], "name": "huge", "partitions": 4294967295}}
REVOKE = {"RevokeToken": {"jti": "00ff", "expires_at_s": 1764426000}}
BATCH = records(record("k", b"text", [("h", "v")]), record(None, b"\x00\x01"))
# PartitionCommand::Append (variant 0): base offset, timestamp, records.
APPEND_COMMAND = b"\x00" + varint(17) + varint(1764422400000) + BATCH
# ForwardRequest::Produce (variant 0): group, records as one byte string, timestamp.
PRODUCE = b"\x00" + varint(5) + blob(BATCH) + varint(1764422400000)
# ForwardRequest::Meta (variant 3): the JSON envelope as a byte sequence.
META_REQUEST = b"\x03" + blob(meta(TOPIC))
# PeerAnswer Ok (0), ForwardReply::Fetched (1): records (offset, timestamp, record), offsets.
FETCHED = b"\x00\x01" + varint(1) + varint(17) + varint(1764422400000) + record("k", b"text") + varint(18) + varint(18) + varint(0)

SEEDS = {
    "heartbeat-response": frame(2, [message(0, 2, 1, 3, b"\x07")]),
    "append-partition-entry": frame(1, [message(5, 1, 2, 2, append(3, 2, [(2, 4, APPEND_COMMAND)], 4))]),
    "append-metadata-entry": frame(1, [message(0, 1, 2, 2, append(3, 2, [(2, 4, meta(TOPIC))], 4))]),
    "request-produce": frame(1, requests=[(300, PRODUCE)]),
    "request-meta": frame(1, requests=[(301, META_REQUEST)]),
    "response-fetched": frame(2, responses=[(5, FETCHED)]),
    "body-produce": PRODUCE,
    "body-meta": META_REQUEST,
    "body-fetched": FETCHED,
    "entry-append": APPEND_COMMAND,
    "entry-meta-topic": meta(TOPIC),
    "entry-meta-revoke": meta(REVOKE),
    "entry-meta-huge-topic": meta(HUGE_TOPIC),
}

os.makedirs(HERE, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(HERE, name), "wb") as out:
        out.write(data)
