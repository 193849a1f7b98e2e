//! `palisade bench produce|consume|group-consume`: load generation against a broker's HTTP API.
//!
//! Owns the run: the topic it loads, the broker each worker talks to and the order of the
//! phases. Arguments live in `options`, the produce and consume workers in `load`, the group
//! members in `group`, counting and printing in `report` (a leaf the others use). Numbers are
//! printed, never asserted: this module must not fail a run because it was slow. It speaks to
//! brokers only through the `client` library.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::wire::{CreateTopic, TopicDescription};
use options::BenchMode;
use report::{build_report, print_report, Mode};

mod brokers;
mod group;
mod load;
mod options;
mod report;
mod summary;

pub use brokers::BrokerUsage;
pub use load::encoded_batch;
pub use options::{BenchArgs, BenchOptions};
pub use report::{BenchReport, LatencySummary};

/// Which broker a bench talks to and as whom: the client command's global options.
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of a broker's HTTPS API.
    pub url: String,
    /// PEM file of the cluster CA to trust.
    pub ca_cert: Option<PathBuf>,
    /// Access token to present, if any.
    pub token: Option<String>,
}

/// How long to wait for a newly created topic's partitions to elect leaders.
const TOPIC_READY_TIMEOUT_MS: u64 = 15_000;
const TOPIC_READY_POLL_MS: u64 = 50;

/// Runs a bench and prints its report (human text, or JSON with `--json`).
pub async fn run(args: BenchArgs, target: Target) -> anyhow::Result<()> {
    let (mode, options) = match &args.mode {
        BenchMode::Produce(options) => (Mode::Produce, options),
        BenchMode::Consume(options) => (Mode::Consume, options),
        BenchMode::GroupConsume(options) => (Mode::GroupConsume, options),
    };
    anyhow::ensure!(options.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(options.batch >= 1, "--batch must be at least 1");
    if let Some(in_flight) = options.records_in_flight {
        anyhow::ensure!(
            in_flight >= options.batch,
            "--records-in-flight must be at least --batch ({})",
            options.batch
        );
    }
    let connect_to = |url: &str| -> anyhow::Result<Client> {
        let client = Client::new(url, target.ca_cert.as_deref())?;
        Ok(match &target.token {
            Some(token) => client.with_token(token.clone()),
            None => client,
        })
    };
    let admin = connect_to(&target.url)?;
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
    let urls = worker_urls(&admin, options, &topic, &target.url).await?;
    let connect_all = || {
        urls.iter()
            .map(|url| connect_to(url))
            .collect::<anyhow::Result<Vec<_>>>()
    };
    let clients = connect_all()?;
    let before = brokers::sample(&admin, &target.url, connect_to).await;
    let started = Instant::now();
    let tally = match mode {
        Mode::Produce => load::run_produce(clients, options, &partitions).await?,
        Mode::Consume => load::run_consume(clients, options, &partitions).await?,
        Mode::GroupConsume => {
            let total = topic.partitions.iter().map(|p| p.high_watermark).sum();
            // Each member commits over connections of its own, so a commit never takes the
            // connection its next poll would use.
            let committers = connect_all()?;
            group::run(clients, committers, options, total).await?
        }
    };
    let elapsed = started.elapsed();
    let after = brokers::sample(&admin, &target.url, connect_to).await;
    let mut report = build_report(mode, options, partitions.len(), elapsed, &tally);
    report.add_broker_usage(brokers::usage(&before, &after));
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
