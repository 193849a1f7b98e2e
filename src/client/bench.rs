//! `palisade bench produce|consume`: load generation against one broker's HTTP API.
//!
//! Owns the bench arguments and the workers (one `Client`, hence one TCP connection, per
//! `--connections`); counting and reporting live in `bench_report`. Produce workers each send pre-encoded batches to one partition until `--duration-s`
//! elapses; consume workers each read one partition from offset 0 to its end. Numbers are
//! printed, never asserted: this module must not fail a run because it was slow.
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use rand::distr::{Alphanumeric, SampleString};
use serde::Deserialize;

use crate::client::bench_report::{build_report, print_report, Mode, Tally};
use crate::client::cli::GlobalArgs;
use crate::client::dto::{CreateTopic, ProduceRecord, ProduceRequest, TopicDescription};
use crate::client::Client;

/// Pause after a failed request so a broken broker is not hammered in a tight loop.
pub(crate) const ERROR_BACKOFF_MS: u64 = 20;
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
    /// `--connections` members of a new consumer group read the whole topic, polling and
    /// committing, until the group consumed every record.
    GroupConsume(BenchOptions),
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
    /// Send each worker's requests to the broker that leads its partition (as a client that
    /// follows leaders would), instead of to `--url`, which forwards to the leader.
    #[arg(long)]
    pub to_leaders: bool,
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
        BenchMode::GroupConsume(options) => (Mode::GroupConsume, options),
    };
    anyhow::ensure!(options.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(options.batch >= 1, "--batch must be at least 1");
    let connect_to = |url: &str| -> anyhow::Result<Client> {
        let client = Client::new(url, global.ca_cert.as_deref())?;
        Ok(match &token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        })
    };
    let admin = connect_to(&global.url)?;
    let topic = match mode {
        Mode::Produce => ensure_topic(&admin, options).await?,
        Mode::Consume | Mode::GroupConsume => admin.describe_topic(&options.topic).await?,
    };
    let partitions: Vec<u32> = topic.partitions.iter().map(|p| p.partition).collect();
    anyhow::ensure!(
        !partitions.is_empty(),
        "topic {} has no partitions",
        options.topic
    );
    let urls = worker_urls(&admin, options, &topic, &global.url).await?;
    let clients = urls
        .iter()
        .map(|url| connect_to(url))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let tally = match mode {
        Mode::Produce => run_produce(clients, options, &partitions).await?,
        Mode::Consume => run_consume(clients, options, &partitions).await?,
        Mode::GroupConsume => {
            let total = topic.partitions.iter().map(|p| p.high_watermark).sum();
            crate::client::bench_group::run(clients, options, total).await?
        }
    };
    let report = build_report(mode, options, partitions.len(), started.elapsed(), &tally);
    print_report(&report, options.json)
}

/// The broker URL each worker talks to: `--url`, or with `--to-leaders` the leader of the
/// partition the worker writes (worker `i` writes partition `i % partitions`).
async fn worker_urls(
    admin: &Client,
    options: &BenchOptions,
    topic: &TopicDescription,
    default_url: &str,
) -> anyhow::Result<Vec<String>> {
    let count = options.connections as usize;
    if !options.to_leaders {
        return Ok(vec![default_url.to_string(); count]);
    }
    let cluster = admin.cluster().await?;
    let url_of = |broker: Option<u64>| {
        cluster
            .brokers
            .iter()
            .find(|b| Some(b.id) == broker && !b.http.is_empty())
            .map_or_else(|| default_url.to_string(), |b| b.http.clone())
    };
    Ok((0..count)
        .map(|index| url_of(topic.partitions[index % topic.partitions.len()].leader))
        .collect())
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
                let body = match client
                    .fetch_encoded(&topic, partition, offset, Some(max_messages), None, None)
                    .await
                {
                    Ok(body) => body,
                    Err(error) => {
                        tally.failure(&error);
                        tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                        continue;
                    }
                };
                let reply: FetchSummary =
                    serde_json::from_slice(&body).context("decoding a fetch reply")?;
                let bytes = reply.records.iter().map(ValueOnly::bytes).sum();
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

pub(crate) async fn join_tallies(
    mut workers: tokio::task::JoinSet<anyhow::Result<Tally>>,
) -> anyhow::Result<Tally> {
    let mut total = Tally::new()?;
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.context("bench worker panicked")??)?;
    }
    Ok(total)
}

/// The parts of a fetch reply the consume bench counts: offsets and value lengths. Values are
/// measured, never copied out of the body; other record fields are skipped.
#[derive(Deserialize)]
pub(crate) struct FetchSummary {
    records: Vec<ValueOnly>,
    next_offset: u64,
    high_watermark: u64,
    log_start_offset: u64,
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
            BenchMode::Produce(options)
            | BenchMode::Consume(options)
            | BenchMode::GroupConsume(options) => options,
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
}
