//! A rolling restart under load, as an operator does it: a 3-broker cluster on this machine, one
//! topic of 6 partitions with replication factor 3, one producer per partition writing batches of
//! 5 records; each broker in turn gets SIGTERM (clients send through the other two while it
//! stops), is started again, and the cluster settles (replicas in sync, preferred leaders back)
//! before the next. Measured per run: failed writes, the longest time one partition went without
//! an acknowledged write, and records acknowledged; at the end every acknowledged record is read
//! back at its offset.
//!
//! `cargo bench --bench rolling_restart` (PALISADE_ROLLING_RUNS sets the number of runs, 5 by
//! default). A measurement, never a test: it asserts only that nothing acknowledged is lost.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use common::load::{missing, Load};
use palisade::client::Client;

const TOPIC: &str = "rolling";
const PARTITIONS: u32 = 6;

fn main() {
    let runs: usize = std::env::var("PALISADE_ROLLING_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(runs));
}

/// Waits until every partition is in sync and led by its preferred replica.
async fn settle(client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(view) = client.cluster().await {
            let partitions: Vec<_> = view
                .partitions
                .iter()
                .filter(|p| p.topic == TOPIC)
                .collect();
            let settled = partitions.len() == PARTITIONS as usize
                && partitions.iter().all(|p| {
                    p.lag.len() == 3
                        && p.lag.values().all(|lag| *lag == 0)
                        && p.leader == p.replicas.first().copied()
                })
                && view.brokers.iter().all(|b| b.state == "up");
            if settled {
                return;
            }
        }
        assert!(Instant::now() < deadline, "the cluster did not settle");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The leadership transfers the brokers logged so far, summed up: how many were handed over and
/// given up, and the slowest of each.
fn print_transfers(cluster: &TestCluster, run: usize) {
    let mut handed = Vec::new();
    let mut given_up = Vec::new();
    for id in cluster.ids() {
        for line in cluster.node(id).log().lines() {
            let line = strip_ansi(line);
            let ms = line
                .split_whitespace()
                .find_map(|word| word.strip_prefix("ms="))
                .and_then(|ms| ms.parse::<u64>().ok());
            let Some(ms) = ms else { continue };
            if line.contains("leadership handed over") {
                handed.push(ms);
            } else if line.contains("leadership transfer given up") {
                given_up.push(ms);
            }
        }
    }
    handed.sort_unstable();
    given_up.sort_unstable();
    println!(
        "run {run} (all runs so far): {} transfers handed over (slowest {:?} ms), {} given up \
         (slowest {:?} ms)",
        handed.len(),
        handed.last(),
        given_up.len(),
        given_up.last()
    );
}

/// `line` without terminal colour sequences (the brokers' log colours its field names).
fn strip_ansi(line: &str) -> String {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters letter
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

async fn run(runs: usize) {
    // Replicas log each leadership transfer and its duration (`print_transfers`).
    let mut cluster =
        TestCluster::start_logging(3, "", "warn,palisade::partition::replica=info").await;
    let admin = cluster.admin(1).await;
    common::create_topic(&admin, TOPIC, PARTITIONS, 3).await;
    let mut gaps = Vec::new();
    let mut failed_total = 0;
    let mut acked_total = 0;
    for run in 0..runs {
        settle(&admin).await;
        let mut clients = Vec::new();
        for id in 1..=3 {
            clients.push((id, cluster.admin(id).await));
        }
        let load = Load::start(TOPIC, PARTITIONS, clients);
        load.wait_acked(200, 60).await;
        let started = Instant::now();
        for broker in 1..=3 {
            load.avoid.store(broker, Ordering::Relaxed);
            let stopping = Instant::now();
            let status = cluster.terminate(broker);
            let stopped = Instant::now();
            cluster.restart(broker).await;
            println!(
                "run {run}: broker {broker} stopped ({status}) {:.0} ms after SIGTERM, ready again \
                 after {:.0} ms (at {:.0} ms)",
                (stopped - stopping).as_secs_f64() * 1000.0,
                stopped.elapsed().as_secs_f64() * 1000.0,
                (stopping - started).as_secs_f64() * 1000.0,
            );
            load.avoid.store(0, Ordering::Relaxed);
            let observer = cluster.admin(if broker == 1 { 2 } else { 1 }).await;
            settle(&observer).await;
        }
        let ended = Instant::now();
        load.wait_acked(200, 60).await;
        let outcome = load.stop().await;
        let gap = outcome.longest_gap((started, ended));
        if let Some((partition, from, _)) = outcome.longest_gap_where((started, ended)) {
            println!(
                "run {run}: the longest gap is on partition {partition}, from {:.0} ms",
                (from - started).as_secs_f64() * 1000.0
            );
        }
        print_transfers(&cluster, run);
        let observer = cluster.admin(1).await;
        let lost = missing(&observer, TOPIC, &outcome).await;
        assert!(
            lost.is_empty(),
            "run {run}: {} acknowledged records missing: {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        );
        println!(
            "run {run}: {} records acknowledged, {} writes failed, longest gap {:.0} ms, lost 0",
            outcome.acked.len(),
            outcome.failures.len(),
            gap.as_secs_f64() * 1000.0
        );
        for (via, at, error) in outcome.failures.iter().take(3) {
            let at = at.saturating_duration_since(started).as_secs_f64() * 1000.0;
            println!("  failed via broker {via} at {at:.0} ms: {error}");
        }
        failed_total += outcome.failures.len();
        acked_total += outcome.acked.len();
        gaps.push(gap);
    }
    gaps.sort();
    if let (Some(first), Some(last)) = (gaps.first(), gaps.last()) {
        println!(
            "rolling restart over {runs} runs: {acked_total} records acknowledged, \
             {failed_total} writes failed, longest gap min {:.0} ms, median {:.0} ms, max {:.0} ms",
            first.as_secs_f64() * 1000.0,
            gaps[gaps.len() / 2].as_secs_f64() * 1000.0,
            last.as_secs_f64() * 1000.0
        );
    }
}
