//! `palisade bench produce|consume`: load generation against one broker's HTTP API.
//!
//! Owns the workers (one `Client`, hence one TCP connection, per `--connections`), the
//! latency histogram (hdrhistogram, microseconds, successful requests only) and the report.
//! Produce workers each send pre-encoded batches to one partition until `--duration-s`
//! elapses; consume workers each read one partition from offset 0 to its end. Numbers are
//! printed, never asserted: this module must not fail a run because it was slow.
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;

use crate::client::cli::GlobalArgs;
use crate::client::dto::{CreateTopic, ProduceRecord, ProduceRequest, TopicDescription};
use crate::client::{Client, ClientError};

/// Highest latency the histogram tracks (larger values saturate), in microseconds.
const LATENCY_US_MAX: u64 = 60_000_000;
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Pause after a failed request so a broken broker is not hammered in a tight loop.
const ERROR_BACKOFF_MS: u64 = 20;
/// How long to wait for a newly created topic's partitions to elect leaders.
const TOPIC_READY_TIMEOUT_MS: u64 = 15_000;
const TOPIC_READY_POLL_MS: u64 = 50;

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: BenchMode,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchMode {
    /// Produce batches for `--duration-s`; creates the topic if it does not exist.
    Produce(BenchOptions),
    /// Read every partition of the topic from offset 0 to its end.
    Consume(BenchOptions),
}

#[derive(Debug, Clone, Args)]
pub struct BenchOptions {
    /// Concurrent workers, each with its own HTTP client and TCP connection.
    #[arg(long, default_value_t = 16)]
    pub connections: u32,
    /// Records per produce request.
    #[arg(long, default_value_t = 100)]
    pub batch: u32,
    /// Size of each record value, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_bytes: u32,
    /// Produce duration (consume stops early at this bound too), in seconds.
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    #[arg(long, default_value = "bench")]
    pub topic: String,
    /// Partitions when the topic is created (default: one per connection).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replication factor when the topic is created (default: the broker's).
    #[arg(long)]
    pub replication_factor: Option<u16>,
    /// Records per fetch request when consuming.
    #[arg(long, default_value_t = 10_000)]
    pub max_messages: u32,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Which side of the API a run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Produce,
    Consume,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
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

    fn success(&mut self, started: Instant, records: u64, bytes: u64) {
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(elapsed_us.max(1));
        self.requests += 1;
        self.records += records;
        self.bytes += bytes;
    }

    fn failure(&mut self, error: &ClientError) {
        self.requests += 1;
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error.to_string());
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

/// Runs a bench and prints its report (human text, or JSON with `--json`).
pub async fn run(
    args: BenchArgs,
    global: &GlobalArgs,
    token: Option<String>,
) -> anyhow::Result<()> {
    let (mode, options) = match &args.mode {
        BenchMode::Produce(options) => (Mode::Produce, options),
        BenchMode::Consume(options) => (Mode::Consume, options),
    };
    anyhow::ensure!(options.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(options.batch >= 1, "--batch must be at least 1");
    let connect = || -> anyhow::Result<Client> {
        let client = Client::new(&global.url, global.ca_cert.as_deref())?;
        Ok(match &token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        })
    };
    let admin = connect()?;
    let topic = match mode {
        Mode::Produce => ensure_topic(&admin, options).await?,
        Mode::Consume => admin.describe_topic(&options.topic).await?,
    };
    let partitions: Vec<u32> = topic.partitions.iter().map(|p| p.partition).collect();
    anyhow::ensure!(
        !partitions.is_empty(),
        "topic {} has no partitions",
        options.topic
    );
    let clients = (0..options.connections)
        .map(|_| connect())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let tally = match mode {
        Mode::Produce => run_produce(clients, options, &partitions).await?,
        Mode::Consume => run_consume(clients, options, &partitions).await?,
    };
    let report = build_report(mode, options, partitions.len(), started.elapsed(), &tally);
    print_report(&report, options.json)
}

/// Describes the bench topic, creating it first if it does not exist, and waits until every
/// partition has a leader.
async fn ensure_topic(client: &Client, options: &BenchOptions) -> anyhow::Result<TopicDescription> {
    match client.describe_topic(&options.topic).await {
        Ok(topic) => return Ok(topic),
        Err(error) if error.status() == Some(404) => {}
        Err(error) => return Err(error.into()),
    }
    let request = CreateTopic {
        name: options.topic.clone(),
        partitions: Some(options.partitions.unwrap_or(options.connections)),
        replication_factor: options.replication_factor,
        retention_ms: None,
        retention_bytes: None,
    };
    match client.create_topic(&request).await {
        Ok(()) => {}
        // Another bench run created it between our describe and create.
        Err(error) if error.status() == Some(409) => {}
        Err(error) => return Err(error.into()),
    }
    let deadline = Instant::now() + Duration::from_millis(TOPIC_READY_TIMEOUT_MS);
    loop {
        let topic = client.describe_topic(&options.topic).await?;
        if topic.partitions.iter().all(|p| p.leader.is_some()) {
            return Ok(topic);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "topic {} has partitions without a leader after {TOPIC_READY_TIMEOUT_MS} ms",
            options.topic
        );
        tokio::time::sleep(Duration::from_millis(TOPIC_READY_POLL_MS)).await;
    }
}

async fn run_produce(
    clients: Vec<Client>,
    options: &BenchOptions,
    partitions: &[u32],
) -> anyhow::Result<Tally> {
    let deadline = Instant::now() + Duration::from_secs(options.duration_s);
    let mut workers = tokio::task::JoinSet::new();
    for (index, client) in clients.into_iter().enumerate() {
        let partition = partitions[index % partitions.len()];
        let body = encoded_batch(options.batch, options.record_bytes, partition)?;
        let topic = options.topic.clone();
        let record_bytes = u64::from(options.record_bytes);
        workers.spawn(async move {
            let mut tally = Tally::new()?;
            while Instant::now() < deadline {
                let started = Instant::now();
                match client.produce_encoded(&topic, body.clone()).await {
                    Ok(reply) => {
                        let records = reply.offsets.len() as u64;
                        tally.success(started, records, records * record_bytes);
                    }
                    Err(error) => {
                        tally.failure(&error);
                        tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                    }
                }
            }
            Ok::<Tally, anyhow::Error>(tally)
        });
    }
    join_tallies(workers).await
}

async fn run_consume(
    clients: Vec<Client>,
    options: &BenchOptions,
    partitions: &[u32],
) -> anyhow::Result<Tally> {
    let deadline = Instant::now() + Duration::from_secs(options.duration_s);
    let mut workers = tokio::task::JoinSet::new();
    for (index, client) in clients.into_iter().enumerate() {
        let partition = partitions[index % partitions.len()];
        let topic = options.topic.clone();
        let max_messages = options.max_messages;
        workers.spawn(async move {
            let mut tally = Tally::new()?;
            let mut offset = 0;
            while Instant::now() < deadline {
                let started = Instant::now();
                let reply = match client
                    .fetch(&topic, partition, offset, Some(max_messages), None, None)
                    .await
                {
                    Ok(reply) => reply,
                    Err(error) => {
                        tally.failure(&error);
                        tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                        continue;
                    }
                };
                let bytes = reply.records.iter().map(value_bytes).sum();
                tally.success(started, reply.records.len() as u64, bytes);
                offset = reply.next_offset.max(reply.log_start_offset);
                if offset >= reply.high_watermark {
                    break;
                }
            }
            Ok::<Tally, anyhow::Error>(tally)
        });
    }
    join_tallies(workers).await
}

async fn join_tallies(
    mut workers: tokio::task::JoinSet<anyhow::Result<Tally>>,
) -> anyhow::Result<Tally> {
    let mut total = Tally::new()?;
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.context("bench worker panicked")??)?;
    }
    Ok(total)
}

/// Size of a fetched record's value in bytes (decoded size for `value_b64`).
fn value_bytes(record: &crate::client::dto::FetchedRecord) -> u64 {
    match (&record.value, &record.value_b64) {
        (Some(text), _) => text.len() as u64,
        (None, Some(encoded)) => (encoded.len() as u64 / 4) * 3,
        (None, None) => 0,
    }
}

/// One JSON produce body of `batch` random text records of `record_bytes`, all for `partition`.
///
/// Pinning a connection's batches to one partition makes each request one log append, which
/// is what the broker's batching is built for.
pub fn encoded_batch(batch: u32, record_bytes: u32, partition: u32) -> anyhow::Result<Vec<u8>> {
    let mut rng = rand::rng();
    let records = (0..batch)
        .map(|_| ProduceRecord {
            value: Some(Alphanumeric.sample_string(&mut rng, record_bytes as usize)),
            partition: Some(partition),
            ..ProduceRecord::default()
        })
        .collect();
    serde_json::to_vec(&ProduceRequest { records }).context("encoding the bench batch")
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
    }
}

fn print_report(report: &BenchReport, json: bool) -> anyhow::Result<()> {
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
    if let Some(error) = &report.first_error {
        println!("first error: {error}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(subcommand)]
        mode: BenchMode,
    }

    fn options(args: &[&str]) -> BenchOptions {
        let cli = TestCli::try_parse_from(args).expect("arguments parse");
        match cli.mode {
            BenchMode::Produce(options) | BenchMode::Consume(options) => options,
        }
    }

    #[test]
    fn defaults_match_the_documented_benchmark() {
        let options = options(&["bench", "produce"]);
        assert_eq!(options.connections, 16);
        assert_eq!(options.batch, 100);
        assert_eq!(options.record_bytes, 1024);
        assert_eq!(options.duration_s, 20);
        assert_eq!(options.topic, "bench");
        assert!(!options.json);
    }

    #[test]
    fn encoded_batch_has_batch_records_of_record_bytes_for_one_partition() {
        let body = encoded_batch(3, 16, 5).expect("encode");
        let request: ProduceRequest = serde_json::from_slice(&body).expect("decodes");
        assert_eq!(request.records.len(), 3);
        for record in &request.records {
            assert_eq!(record.value.as_ref().map(String::len), Some(16));
            assert_eq!(record.partition, Some(5));
        }
    }

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
