//! Entry points that the benchmarks in `benches/` measure, for code that lives in private
//! modules. Owns nothing and decides nothing: it only calls through.
use crate::partition::read::FetchedRecord;

/// Writes the JSON fetch answer of `records` the way the HTTP API streams it, chunk by chunk,
/// and returns its length in bytes.
pub fn fetch_answer_bytes(records: Vec<FetchedRecord>) -> usize {
    let next_offset = records.last().map_or(0, |record| record.offset + 1);
    crate::http::dto::fetch_body(
        records,
        next_offset,
        next_offset,
        0,
        crate::broker::Held::default(),
    )
    .map(|chunk| chunk.map_or(0, |bytes| bytes.len()))
    .sum()
}
