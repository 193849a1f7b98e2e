//! What a bench run counts and how it is reported: per-worker `Tally` (counts plus an
//! hdrhistogram of request latency in microseconds, successful requests only), the merged
//! `BenchReport`, and its human or JSON printing.
//!
//! Owns the arithmetic (rates, MB = 10^6 bytes, percentiles); it must not issue requests.
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::brokers::BrokerUsage;
use super::options::BenchOptions;
use crate::client::ClientError;

/// Highest latency the histogram tracks (larger values saturate), in microseconds.
const LATENCY_US_MAX: u64 = 60_000_000;
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Which side of the API a run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Produce,
    Consume,
    GroupConsume,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::GroupConsume => "group-consume",
        }
    }
}

/// Outcome of one bench run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BenchReport {
    pub mode: Mode,
    pub topic: String,
    pub connections: u32,
    pub partitions: u32,
    pub batch: u32,
    pub record_bytes: u32,
    pub elapsed_s: f64,
    pub requests: u64,
    pub records: u64,
    pub bytes: u64,
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub latency_ms: LatencySummary,
    pub errors: u64,
    pub first_error: Option<String>,
    /// What each broker used during the run (empty when no broker could be sampled).
    pub brokers: Vec<BrokerUsage>,
    /// All brokers' CPU time per record moved, in microseconds, when every broker was sampled.
    pub broker_cpu_us_per_record: Option<f64>,
}

impl BenchReport {
    /// Adds the brokers' usage and the CPU per record it implies.
    pub fn add_broker_usage(&mut self, brokers: Vec<BrokerUsage>) {
        let cpu: Option<f64> = brokers.iter().map(|broker| broker.cpu_s).sum();
        self.broker_cpu_us_per_record = match cpu {
            Some(cpu) if self.records > 0 && !brokers.is_empty() => {
                Some(cpu * 1e6 / self.records as f64)
            }
            _ => None,
        };
        self.brokers = brokers;
    }
}

/// Request latency percentiles of successful requests, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencySummary {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// What one worker counted.
#[derive(Debug, Clone)]
pub struct Tally {
    pub requests: u64,
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub latency_us: Histogram<u64>,
}

impl Tally {
    pub fn new() -> anyhow::Result<Tally> {
        let latency_us = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .context("creating the latency histogram")?;
        Ok(Tally {
            requests: 0,
            records: 0,
            bytes: 0,
            errors: 0,
            first_error: None,
            latency_us,
        })
    }

    pub(crate) fn success(&mut self, started: Instant, records: u64, bytes: u64) {
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(elapsed_us.max(1));
        self.requests += 1;
        self.records += records;
        self.bytes += bytes;
    }

    pub(crate) fn failure(&mut self, error: &ClientError) {
        self.requests += 1;
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error_chain(error));
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.records += other.records;
        self.bytes += other.bytes;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latency_us
            .add(&other.latency_us)
            .context("merging latency histograms")
    }
}

/// `error` and its sources joined with ": " (transport errors hide the cause in the chain).
fn error_chain(error: &ClientError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The report for `tally` collected over `elapsed`.
pub fn build_report(
    mode: Mode,
    options: &BenchOptions,
    partitions: usize,
    elapsed: Duration,
    tally: &Tally,
) -> BenchReport {
    let elapsed_s = elapsed.as_secs_f64().max(f64::EPSILON);
    let quantile_ms = |quantile: f64| tally.latency_us.value_at_quantile(quantile) as f64 / 1000.0;
    BenchReport {
        mode,
        topic: options.topic.clone(),
        connections: options.connections,
        partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
        batch: options.batch,
        record_bytes: options.record_bytes,
        elapsed_s,
        requests: tally.requests,
        records: tally.records,
        bytes: tally.bytes,
        records_per_s: tally.records as f64 / elapsed_s,
        mb_per_s: tally.bytes as f64 / 1_000_000.0 / elapsed_s,
        latency_ms: LatencySummary {
            p50: quantile_ms(0.5),
            p99: quantile_ms(0.99),
            p999: quantile_ms(0.999),
            max: tally.latency_us.max() as f64 / 1000.0,
        },
        errors: tally.errors,
        first_error: tally.first_error.clone(),
        brokers: Vec::new(),
        broker_cpu_us_per_record: None,
    }
}

pub fn print_report(report: &BenchReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "bench {} topic={} connections={} partitions={} batch={} record_bytes={}",
        report.mode.name(),
        report.topic,
        report.connections,
        report.partitions,
        report.batch,
        report.record_bytes
    );
    println!(
        "{:.0} records/s  {:.1} MB/s  ({} records, {} requests in {:.2} s)",
        report.records_per_s, report.mb_per_s, report.records, report.requests, report.elapsed_s
    );
    let latency = &report.latency_ms;
    println!(
        "latency ms: p50 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}",
        latency.p50, latency.p99, latency.p999, latency.max
    );
    println!("errors: {}", report.errors);
    for broker in &report.brokers {
        let cpu = broker
            .cpu_s
            .map_or("?".to_string(), |cpu| format!("{cpu:.2}"));
        let peak = broker
            .peak_rss_mib
            .map_or("?".to_string(), |peak| format!("{peak:.0}"));
        println!("broker {}: cpu {cpu} s  peak rss {peak} MiB", broker.id);
    }
    if let Some(per_record) = report.broker_cpu_us_per_record {
        println!("broker cpu per record: {per_record:.1} us");
    }
    if let Some(error) = &report.first_error {
        println!("first error: {error}");
    }
    Ok(())
}

/// Waits for every worker and merges their tallies.
pub(crate) async fn join_tallies(
    mut workers: tokio::task::JoinSet<anyhow::Result<Tally>>,
) -> anyhow::Result<Tally> {
    let mut total = Tally::new()?;
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.context("bench worker panicked")??)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::options::parse_options as options;

    #[test]
    fn report_computes_rates_and_percentiles() {
        let options = options(&["bench", "produce", "--connections", "2"]);
        let mut tally = Tally::new().expect("tally");
        for latency_us in 1..=1000u64 {
            tally.latency_us.record(latency_us * 10).expect("record");
        }
        tally.requests = 1001;
        tally.records = 100_000;
        tally.bytes = 2_000_000;
        tally.errors = 1;
        let report = build_report(Mode::Produce, &options, 4, Duration::from_secs(2), &tally);
        assert_eq!(report.records_per_s, 50_000.0);
        assert_eq!(report.mb_per_s, 1.0);
        // 3 significant digits: quantiles are exact to within 0.1%.
        assert!(
            (report.latency_ms.p50 - 5.0).abs() < 0.01,
            "{:?}",
            report.latency_ms
        );
        assert!(
            (report.latency_ms.p99 - 9.9).abs() < 0.01,
            "{:?}",
            report.latency_ms
        );
        assert!(
            (report.latency_ms.max - 10.0).abs() < 0.01,
            "{:?}",
            report.latency_ms
        );
        assert_eq!(report.partitions, 4);
        assert_eq!(report.errors, 1);
    }

    #[test]
    fn merge_adds_counts_and_latencies() {
        let mut left = Tally::new().expect("tally");
        let mut right = Tally::new().expect("tally");
        left.latency_us.record(100).expect("record");
        right.latency_us.record(300).expect("record");
        right.records = 7;
        right.first_error = Some("boom".to_string());
        left.merge(right).expect("merge");
        assert_eq!(left.records, 7);
        assert_eq!(left.latency_us.len(), 2);
        assert_eq!(left.first_error.as_deref(), Some("boom"));
    }
}
