//! `palisade bench` against a real broker: the JSON report counts what was produced and read
//! back, and carries the broker's CPU-seconds and peak RSS from its `/metrics`; a cap on records
//! in flight is honoured (latency at equal load).

mod common;

use std::process::Command;

use common::{BrokerProcess, ADMIN_PASSWORD};
use serde_json::Value;

async fn bench(broker: &BrokerProcess, token: &str, args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .arg("bench")
        .args(args)
        .arg("--url")
        .arg(&broker.url)
        .arg("--ca-cert")
        .arg(&broker.ca)
        .arg("--json")
        .env("PALISADE_TOKEN", token)
        .output()
        .expect("bench runs");
    assert!(
        output.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_reports_records_latency_and_the_brokers_cpu_and_memory() {
    let broker = BrokerProcess::start().await;
    let token = common::RawApi::new(&broker)
        .token("admin", ADMIN_PASSWORD)
        .await;
    let produced = bench(
        &broker,
        &token,
        &[
            "produce",
            "--connections",
            "4",
            "--batch",
            "50",
            "--records-in-flight",
            "100",
            "--duration-s",
            "2",
            "--record-bytes",
            "64",
        ],
    )
    .await;
    assert_eq!(produced["errors"], 0, "{produced}");
    let records = produced["records"].as_u64().expect("records");
    assert!(records > 0 && records % 50 == 0, "{produced}");
    let brokers = produced["brokers"].as_array().expect("brokers");
    assert_eq!(brokers.len(), 1, "{produced}");
    let cpu = brokers[0]["cpu_s"].as_f64().expect("cpu_s sampled");
    assert!(
        cpu > 0.0,
        "a broker that wrote {records} records used CPU: {produced}"
    );
    let peak = brokers[0]["peak_rss_mib"]
        .as_f64()
        .expect("peak rss sampled");
    assert!(peak > 1.0, "{produced}");
    assert!(
        produced["broker_cpu_us_per_record"]
            .as_f64()
            .expect("per record")
            > 0.0
    );

    let consumed = bench(&broker, &token, &["consume", "--connections", "4"]).await;
    assert_eq!(consumed["errors"], 0, "{consumed}");
    assert_eq!(consumed["records"].as_u64(), Some(records), "{consumed}");

    // Two members that commit only when they stop (the interval outlasts the run): every record
    // is read once, and the group's last commits leave no lag in any partition.
    let grouped = bench(
        &broker,
        &token,
        &[
            "group-consume",
            "--connections",
            "2",
            "--group",
            "bench-check",
            "--commit-interval-ms",
            "600000",
        ],
    )
    .await;
    assert_eq!(grouped["errors"], 0, "{grouped}");
    assert_eq!(grouped["records"].as_u64(), Some(records), "{grouped}");
    let described = common::RawApi::new(&broker)
        .call("GET", "/v1/groups/bench-check", Some(&token), None)
        .await;
    assert_eq!(described.status, 200, "{:?}", described.body);
    let group = described.body;
    let offsets = group["offsets"].as_array().expect("offsets");
    assert_eq!(offsets.len(), 4, "one per partition: {group}");
    for offset in offsets {
        assert_eq!(offset["lag"], 0, "{group}");
        assert_eq!(
            offset["committed_offset"], offset["high_watermark"],
            "{group}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_in_flight_below_one_batch_is_refused() {
    let broker = BrokerProcess::start().await;
    let output = Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args([
            "bench",
            "produce",
            "--batch",
            "100",
            "--records-in-flight",
            "99",
        ])
        .arg("--url")
        .arg(&broker.url)
        .arg("--ca-cert")
        .arg(&broker.ca)
        .env("PALISADE_TOKEN", "unused")
        .output()
        .expect("bench runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--records-in-flight"), "{stderr}");
}
