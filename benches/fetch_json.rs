//! The cost of writing fetch answers as JSON, per record, in a form whose instruction counts
//! repeat under `valgrind --tool=callgrind` (`benches/memory/callgrind.sh`): the broker's
//! writer (`palisade::perf::fetch_answer_bytes`) against `serde_json` writing the same
//! `wire::FetchedRecord`s, which is what the broker did before.
//!
//!   cargo bench --bench fetch_json -- [direct|serde|build] [RECORDS] [ROUNDS]
//!
//! `build` only builds and drops the records, the part of the other two that is not writing.
use std::time::Instant;

use palisade::partition::batch::Record;
use palisade::partition::read::FetchedRecord;

fn records(count: usize) -> Vec<FetchedRecord> {
    // 1 KiB printable values; every tenth has a quote and a newline, as JSON text carries.
    let plain: Vec<u8> = (0..1024).map(|j| b'a' + (j % 26) as u8).collect();
    let mut escaped = plain.clone();
    escaped[100] = b'"';
    escaped[500] = b'\n';
    (0..count)
        .map(|i| {
            let value = if i % 10 == 0 {
                escaped.clone()
            } else {
                plain.clone()
            };
            FetchedRecord {
                offset: i as u64,
                timestamp_ms: 1_765_000_000_000 + i as u64,
                record: Record {
                    key: None,
                    value,
                    value_is_text: true,
                    headers: Vec::new(),
                },
            }
        })
        .collect()
}

fn serde_answer(records: Vec<FetchedRecord>) -> usize {
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"records\":[");
    for (index, record) in records.into_iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        let record = palisade::wire::FetchedRecord::from(record);
        serde_json::to_writer(&mut body, &record).expect("serializes");
    }
    body.extend_from_slice(b"]}");
    body.len()
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = args.first().map_or("both", String::as_str).to_string();
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20);
    let modes: Vec<&str> = match mode.as_str() {
        "both" => vec!["build", "direct", "serde"],
        other => vec![other],
    };
    for mode in modes {
        let started = Instant::now();
        let mut bytes = 0;
        for _ in 0..rounds {
            let batch = records(count);
            bytes += match mode {
                "direct" => palisade::perf::fetch_answer_bytes(batch),
                "serde" => serde_answer(batch),
                "build" => batch.len(),
                other => panic!("unknown mode {other}: direct or serde"),
            };
        }
        let elapsed = started.elapsed();
        println!(
            "{{\"mode\":\"{mode}\",\"records\":{},\"bytes\":{bytes},\"ns_per_record\":{:.0}}}",
            count * rounds,
            elapsed.as_nanos() as f64 / (count * rounds) as f64
        );
    }
}
