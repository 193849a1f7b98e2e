//! The streaming client commands: `produce` (stdin lines or `--value` → batches) and
//! `consume` (records → JSON lines on stdout; `--follow` keeps reading over an event stream,
//! or with long polls under `--poll`).
//!
//! Owns batching of input lines and the fetch loop. It must not reorder records: lines are
//! sent in input order and each partition is printed in offset order.
use std::collections::BTreeMap;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::args::{ConsumeArgs, ProduceArgs};
use super::group_consume;
use super::output::{write_line, ConsumedLine};
use crate::client::sse::{StreamEvent, StreamFrom};
use crate::client::{Client, ClientError};
use crate::wire::{ProduceRecord, ProduceRequest, ProduceResponse};

/// Upper bound on `--batch` so one request stays well under broker body limits.
const PRODUCE_BATCH_MAX: usize = 10_000;
/// Pause before reopening an event stream that ended or failed for a passing reason.
const RESUME_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

pub(crate) async fn produce(args: ProduceArgs, client: &Client) -> anyhow::Result<()> {
    let batch_max = args.batch.clamp(1, PRODUCE_BATCH_MAX);
    let template = ProduceRecord {
        key: args.key.clone(),
        headers: args.headers.iter().cloned().collect::<BTreeMap<_, _>>(),
        partition: args.partition,
        ..ProduceRecord::default()
    };
    let record = |value: String| ProduceRecord {
        value: Some(value),
        ..template.clone()
    };
    if let Some(value) = args.value.clone() {
        return send_batch(client, &args, vec![record(value)]).await;
    }
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut batch = Vec::with_capacity(batch_max);
    while let Some(line) = lines.next_line().await.context("reading stdin")? {
        batch.push(record(line));
        if batch.len() == batch_max {
            send_batch(client, &args, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        send_batch(client, &args, batch).await?;
    }
    Ok(())
}

/// Sends one batch and prints one `{"partition":..,"offset":..}` line per record.
async fn send_batch(
    client: &Client,
    args: &ProduceArgs,
    records: Vec<ProduceRecord>,
) -> anyhow::Result<()> {
    let batch = ProduceRequest { records };
    let reply = if args.idempotent {
        send_idempotent(client, args, &batch).await?
    } else {
        client.produce(&args.topic, &batch).await?
    };
    for position in reply.offsets {
        write_line(&serde_json::to_string(&position)?)?;
    }
    Ok(())
}

/// Pause before resending a batch, times the attempt number.
const RESEND_PAUSE_MS: u64 = 250;

/// Sends `batch` under one fresh `Idempotency-Key` until it is acknowledged: the broker writes
/// it once however many of the attempts reached it.
async fn send_idempotent(
    client: &Client,
    args: &ProduceArgs,
    batch: &ProduceRequest,
) -> anyhow::Result<ProduceResponse> {
    let key =
        rand::distr::SampleString::sample_string(&rand::distr::Alphanumeric, &mut rand::rng(), 32);
    let mut attempt = 0;
    loop {
        match client.produce_with_key(&args.topic, batch, &key).await {
            Ok(reply) => return Ok(reply),
            Err(error) if attempt < args.retries && is_retriable(&error) => {
                attempt += 1;
                eprintln!("produce failed ({error}); resending with the same key");
                tokio::time::sleep(std::time::Duration::from_millis(
                    RESEND_PAUSE_MS * u64::from(attempt),
                ))
                .await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A 503, a 429 or no answer at all: the batch may be resent.
fn is_retriable(error: &ClientError) -> bool {
    matches!(error.status(), None | Some(429) | Some(503))
}

pub(crate) async fn consume(args: ConsumeArgs, client: &Client) -> anyhow::Result<()> {
    if let Some(group) = args.group.clone() {
        anyhow::ensure!(
            args.partition.is_none(),
            "--partition and --group exclude each other: the group assigns partitions"
        );
        return group_consume::run(args, group, client).await;
    }
    let partitions = match args.partition {
        Some(partition) => vec![partition],
        None => {
            let topic = client.describe_topic(&args.topic).await?;
            topic.partitions.iter().map(|p| p.partition).collect()
        }
    };
    let args = &args;
    let readers = partitions.into_iter().map(|partition| async move {
        if args.follow && !args.poll {
            follow_partition(client, args, partition).await
        } else {
            consume_partition(client, args, partition).await
        }
    });
    for result in futures_util::future::join_all(readers).await {
        result?;
    }
    Ok(())
}

/// Reads one partition from `args.offset` to its end (or forever with `--follow`).
async fn consume_partition(
    client: &Client,
    args: &ConsumeArgs,
    partition: u32,
) -> anyhow::Result<()> {
    let mut offset = args.offset;
    let wait_ms = args.follow.then_some(args.wait_ms);
    loop {
        let reply = client
            .fetch(
                &args.topic,
                partition,
                offset,
                Some(args.max_messages),
                None,
                wait_ms,
            )
            .await?;
        for record in &reply.records {
            let line = ConsumedLine { partition, record };
            write_line(&serde_json::to_string(&line)?)?;
        }
        // A log start past our offset (retention) moves us forward rather than stalling.
        offset = reply.next_offset.max(reply.log_start_offset);
        if !args.follow && offset >= reply.high_watermark {
            return Ok(());
        }
    }
}

/// Follows one partition over an event stream. A dropped connection, a closed stream or a 503
/// reopens it after the last record printed (`Last-Event-ID`), so nothing repeats or goes missing.
async fn follow_partition(
    client: &Client,
    args: &ConsumeArgs,
    partition: u32,
) -> anyhow::Result<()> {
    let mut from = match args.offset {
        0 => StreamFrom::Earliest,
        offset => StreamFrom::Offset(offset),
    };
    loop {
        match follow_once(client, &args.topic, partition, &mut from).await {
            Ok(()) => {}
            Err(error) if is_passing(&error) => {
                tracing::warn!(%error, partition, "event stream interrupted; resuming");
            }
            Err(error) => return Err(error),
        }
        tokio::time::sleep(RESUME_PAUSE).await;
    }
}

/// Prints records of one stream until it ends; `from` tracks the resume point.
async fn follow_once(
    client: &Client,
    topic: &str,
    partition: u32,
    from: &mut StreamFrom,
) -> anyhow::Result<()> {
    let mut stream = client.stream(topic, partition, *from).await?;
    while let Some(event) = stream.next().await? {
        match event {
            StreamEvent::Record(streamed) => {
                let line = ConsumedLine {
                    partition,
                    record: &streamed.record,
                };
                write_line(&serde_json::to_string(&line)?)?;
                *from = StreamFrom::After(streamed.record.offset);
            }
            StreamEvent::Error(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// A lost connection or a broker without a leader for now: worth reopening the stream.
fn is_passing(error: &anyhow::Error) -> bool {
    match error.downcast_ref::<ClientError>() {
        Some(ClientError::Transport(_)) => true,
        Some(error) => matches!(error.status(), Some(503 | 429)),
        None => false,
    }
}
