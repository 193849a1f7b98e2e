//! The parts of fetch and poll answers a bench counts, read without copying record values out
//! of the body. A leaf: no requests, no printing.
use serde::Deserialize;

use crate::wire::{OffsetCommit, TopicPartition};

/// The parts of a fetch reply the consume bench counts: offsets and value lengths. Values are
/// measured, never copied out of the body; other record fields are skipped.
#[derive(Deserialize)]
pub(crate) struct FetchSummary {
    pub records: Vec<ValueOnly>,
    pub next_offset: u64,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// The parts of a group poll answer the group bench reads.
#[derive(Deserialize)]
pub(crate) struct PollSummary {
    pub generation: u64,
    pub assignments: Vec<TopicPartition>,
    pub records: Vec<ValueOnly>,
    pub next_offsets: Vec<OffsetCommit>,
}

#[derive(Deserialize)]
pub(crate) struct ValueOnly {
    #[serde(default)]
    value: Option<TextLength>,
    #[serde(default)]
    value_b64: Option<TextLength>,
}

impl ValueOnly {
    /// Size of the record's value in bytes (decoded size for `value_b64`, ignoring padding).
    pub(crate) fn bytes(&self) -> u64 {
        match (&self.value, &self.value_b64) {
            (Some(TextLength(length)), _) => *length,
            (None, Some(TextLength(length))) => (length / 4) * 3,
            (None, None) => 0,
        }
    }
}

/// The UTF-8 length of a JSON string, read without allocating it.
struct TextLength(u64);

impl<'de> Deserialize<'de> for TextLength {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LengthVisitor;
        impl serde::de::Visitor<'_> for LengthVisitor {
            type Value = TextLength;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<TextLength, E> {
                Ok(TextLength(text.len() as u64))
            }
        }
        deserializer.deserialize_str(LengthVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_summary_reads_the_design_example_and_counts_value_bytes() {
        let wire = br#"{"records":[{"offset":17,"key":"k1","value":"text","headers":{"h":"v"},
                        "timestamp_ms":1764422400000},{"offset":18,"value_b64":"AAECAw=="}],
                        "next_offset":19,"high_watermark":19,"log_start_offset":0}"#;
        let summary: FetchSummary = serde_json::from_slice(wire).expect("decodes");
        assert_eq!(summary.records.len(), 2);
        assert_eq!(summary.records[0].bytes(), 4);
        // 8 base64 characters stand for at most 6 bytes; the estimate ignores padding.
        assert_eq!(summary.records[1].bytes(), 6);
        assert_eq!(summary.next_offset, 19);
        let escaped: FetchSummary = serde_json::from_slice(
            br#"{"records":[{"value":"a\"\u00e9"}],"next_offset":1,"high_watermark":1,"log_start_offset":0}"#,
        )
        .expect("escaped value decodes");
        assert_eq!(
            escaped.records[0].bytes(),
            4,
            "a, quote and a two-byte e-acute"
        );
    }
}
