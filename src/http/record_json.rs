//! The JSON of one fetched record, written straight from the stored record into an answer's
//! buffer: the same bytes `serde_json` writes for a `wire::FetchedRecord`, without building one,
//! and with values (the bulk of a fetch answer) escaped eight bytes at a time.
//!
//! A leaf: no I/O. The tests check the output byte for byte against `serde_json`.
use std::io::Write as _;

use base64::Engine as _;

use crate::broker::FetchedRecord;

/// Appends the JSON object of `fetched` to `out`, as `serde_json::to_writer` would write
/// `wire::FetchedRecord::from(fetched)`: `value` for text that is UTF-8, else `value_b64`;
/// headers as an object with sorted keys, the last of repeated names winning.
pub(crate) fn write_record(out: &mut Vec<u8>, fetched: &FetchedRecord) {
    out.push(b'{');
    write_fields(out, fetched);
}

/// Appends the JSON object of a `wire::GroupRecord`: `topic` and `partition`, then the
/// record's fields as `write_record` writes them.
pub(crate) fn write_group_record(
    out: &mut Vec<u8>,
    topic: &str,
    partition: u32,
    fetched: &FetchedRecord,
) {
    out.extend_from_slice(b"{\"topic\":");
    write_str(out, topic);
    let _ = write!(out, ",\"partition\":{partition},");
    write_fields(out, fetched);
}

/// The record's fields and the closing brace.
fn write_fields(out: &mut Vec<u8>, fetched: &FetchedRecord) {
    let record = &fetched.record;
    out.reserve(record.value.len() + 96);
    let _ = write!(out, "\"offset\":{}", fetched.offset);
    if let Some(key) = &record.key {
        out.extend_from_slice(b",\"key\":");
        write_str(out, key);
    }
    if record.value_is_text && is_plain_ascii(&record.value) {
        // The common case: one check of the bytes, then one copy (ASCII is UTF-8).
        out.extend_from_slice(b",\"value\":\"");
        out.extend_from_slice(&record.value);
        out.push(b'"');
        return write_rest(out, fetched);
    }
    let text = record
        .value_is_text
        .then(|| std::str::from_utf8(&record.value).ok())
        .flatten();
    match text {
        Some(text) => {
            out.extend_from_slice(b",\"value\":");
            write_str(out, text);
        }
        None => {
            out.extend_from_slice(b",\"value_b64\":\"");
            let engine = &base64::engine::general_purpose::STANDARD;
            let start = out.len();
            out.resize(
                start + base64::encoded_len(record.value.len(), true).unwrap_or(0),
                0,
            );
            let written = engine
                .encode_slice(&record.value, &mut out[start..])
                .expect("the buffer holds the encoded length");
            out.truncate(start + written);
            out.push(b'"');
        }
    }
    write_rest(out, fetched);
}

/// The headers, the timestamp and the closing brace.
fn write_rest(out: &mut Vec<u8>, fetched: &FetchedRecord) {
    let record = &fetched.record;
    out.extend_from_slice(b",\"headers\":{");
    if !record.headers.is_empty() {
        let headers: std::collections::BTreeMap<&str, &str> = record
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        for (index, (name, value)) in headers.into_iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_str(out, name);
            out.push(b':');
            write_str(out, value);
        }
    }
    let _ = write!(out, "}},\"timestamp_ms\":{}}}", fetched.timestamp_ms);
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes in `word` must be escaped: below 0x20, `"` or `\`.
fn word_needs_escape(word: u64) -> bool {
    escape_flags(word) & HIGHS != 0
}

/// Bits of which some in `HIGHS` are set exactly when a byte of `word` is below 0x20, `"` or
/// `\` (the per-byte bits may be off after the first such byte; their union is exact).
fn escape_flags(word: u64) -> u64 {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x;
    below_space | zero_in(quote) | zero_in(backslash)
}

/// Whether `bytes` are ASCII that a JSON string holds as they are: no byte of 0x80 or above
/// (so they are UTF-8 as well), none below 0x20, no `"` and no `\`. Reads eight bytes at a
/// time without branching on each word.
fn is_plain_ascii(bytes: &[u8]) -> bool {
    let mut words = bytes.chunks_exact(8);
    let mut flags = 0u64;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        flags |= escape_flags(word) | word;
    }
    flags & HIGHS == 0
        && words
            .remainder()
            .iter()
            .all(|&byte| (0x20..0x80).contains(&byte) && byte != b'"' && byte != b'\\')
}

/// The escape `serde_json` writes for `byte`, if it needs one.
fn escape_of(byte: u8) -> Option<&'static [u8]> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    static CONTROL: [[u8; 6]; 32] = {
        let mut table = [[0u8; 6]; 32];
        let mut byte = 0;
        while byte < 32 {
            table[byte] = [b'\\', b'u', b'0', b'0', HEX[byte >> 4], HEX[byte & 0xF]];
            byte += 1;
        }
        table
    };
    Some(match byte {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        0x08 => b"\\b",
        0x0C => b"\\f",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0..=0x1F => &CONTROL[byte as usize],
        _ => return None,
    })
}

/// Appends `text` as a JSON string.
fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `clean` is where the run of bytes not yet copied starts.
    let mut clean = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if !word_needs_escape(word) {
                at += 8;
                continue;
            }
        }
        if let Some(escape) = escape_of(bytes[at]) {
            out.extend_from_slice(&bytes[clean..at]);
            out.extend_from_slice(escape);
            clean = at + 1;
        }
        at += 1;
    }
    out.extend_from_slice(&bytes[clean..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use rand::{Rng as _, SeedableRng as _};

    use super::*;
    use crate::broker::Record;
    use crate::wire;

    fn reference(fetched: &FetchedRecord) -> Vec<u8> {
        serde_json::to_vec(&wire::FetchedRecord::from(fetched.clone())).expect("serializes")
    }

    fn ours(fetched: &FetchedRecord) -> Vec<u8> {
        let mut out = Vec::new();
        write_record(&mut out, fetched);
        out
    }

    fn text_record(value: &str) -> FetchedRecord {
        FetchedRecord {
            offset: 7,
            timestamp_ms: 1_700_000_000_123,
            record: Record {
                key: None,
                value: value.as_bytes().to_vec(),
                value_is_text: true,
                headers: Vec::new(),
            },
        }
    }

    #[test]
    fn every_single_character_is_escaped_as_serde_json_escapes_it() {
        for code in 0..0x80u8 {
            let character = char::from(code);
            for text in [
                character.to_string(),
                format!("abcdefgh{character}ijklmnop"),
                format!("{character}{character}1234567"),
            ] {
                let fetched = text_record(&text);
                assert_eq!(ours(&fetched), reference(&fetched), "byte {code:#04x}");
            }
        }
        for text in [
            "",
            "é",
            "日本語のテキスト",
            "emoji 🎉 and \u{7f}\u{80}\u{2028}",
        ] {
            let fetched = text_record(text);
            assert_eq!(ours(&fetched), reference(&fetched), "{text:?}");
        }
    }

    #[test]
    fn random_records_match_serde_json_byte_for_byte() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(20261207);
        let alphabet: Vec<char> = "ab\"\\\n\t\r\u{1}\u{1f} é日🎉/<>".chars().collect();
        let text = |rng: &mut rand::rngs::StdRng, max: usize| -> String {
            let length = rng.random_range(0..max);
            (0..length)
                .map(|_| {
                    if rng.random_bool(0.9) {
                        char::from(rng.random_range(0x20u8..0x7f))
                    } else {
                        alphabet[rng.random_range(0..alphabet.len())]
                    }
                })
                .collect()
        };
        for _ in 0..2_000 {
            let binary = rng.random_bool(0.2);
            let value = if binary {
                (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
            } else {
                text(&mut rng, 200).into_bytes()
            };
            let headers = (0..rng.random_range(0..4))
                .map(|_| {
                    let name = ["a", "b", "trace", "x\"y"][rng.random_range(0..4)];
                    (name.to_string(), text(&mut rng, 12))
                })
                .collect();
            let fetched = FetchedRecord {
                offset: rng.random(),
                timestamp_ms: rng.random(),
                record: Record {
                    key: rng.random_bool(0.5).then(|| text(&mut rng, 20)),
                    value,
                    // Binary bytes marked as text that are not UTF-8 fall back to base64.
                    value_is_text: !binary || rng.random_bool(0.5),
                    headers,
                },
            };
            assert_eq!(ours(&fetched), reference(&fetched), "{fetched:?}");
        }
    }

    #[test]
    fn group_records_match_serde_json_byte_for_byte() {
        for (topic, value) in [("orders", "plain"), ("a\"b\\c", "line\nbreak"), ("", "")] {
            let fetched = text_record(value);
            let mut out = Vec::new();
            write_group_record(&mut out, topic, 3, &fetched);
            let expected = serde_json::to_vec(&wire::GroupRecord {
                topic: topic.to_string(),
                partition: 3,
                record: fetched.clone().into(),
            })
            .expect("serializes");
            assert_eq!(out, expected, "{topic:?}");
        }
    }

    #[test]
    fn the_plain_ascii_check_refuses_every_other_byte_at_every_position() {
        for length in [1usize, 7, 8, 9, 16, 23, 33] {
            assert!(is_plain_ascii(&vec![b'a'; length]), "length {length}");
            for at in 0..length {
                for byte in 0..=255u8 {
                    let mut bytes = vec![b'~'; length];
                    bytes[at] = byte;
                    let plain = (0x20..0x80).contains(&byte) && byte != b'"' && byte != b'\\';
                    assert_eq!(
                        is_plain_ascii(&bytes),
                        plain,
                        "byte {byte:#04x} at {at} of {length}"
                    );
                }
            }
        }
        assert!(is_plain_ascii(b""));
    }

    #[test]
    fn the_word_check_finds_each_escaped_byte_at_every_position() {
        for code in (0..0x20u8).chain([b'"', b'\\']) {
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = code;
                assert!(
                    word_needs_escape(u64::from_le_bytes(word)),
                    "{code:#04x}@{position}"
                );
            }
        }
        for code in (0x20u8..=0xFF).filter(|c| *c != b'"' && *c != b'\\') {
            assert!(
                !word_needs_escape(u64::from_le_bytes([code; 8])),
                "{code:#04x}"
            );
        }
    }
}
