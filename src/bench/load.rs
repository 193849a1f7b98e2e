//! The produce and consume workers of `palisade bench`: one `Client` (hence one TCP connection)
//! per `--connections`. Produce workers each send pre-encoded batches to one partition until
//! `--duration-s` elapses; consume workers read their share of the partitions, each from
//! offset 0 to its end, one after another.
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::distr::{Alphanumeric, SampleString};

use super::options::{BenchOptions, ERROR_BACKOFF_MS};
use super::report::{join_tallies, Tally};
use super::summary::{FetchSummary, ValueOnly};
use crate::client::Client;
use crate::wire::{ProduceRecord, ProduceRequest};

pub(crate) async fn run_produce(
    clients: Vec<Client>,
    options: &BenchOptions,
    partitions: &[u32],
) -> anyhow::Result<Tally> {
    let deadline = Instant::now() + Duration::from_secs(options.duration_s);
    let mut workers = tokio::task::JoinSet::new();
    // Records in flight across all connections: a request holds `batch` permits until answered.
    let in_flight = options
        .records_in_flight
        .map(|records| std::sync::Arc::new(tokio::sync::Semaphore::new(records as usize)));
    for (index, client) in clients.into_iter().enumerate() {
        let partition = partitions[index % partitions.len()];
        let body = encoded_batch(options.batch, options.record_bytes, partition)?;
        let topic = options.topic.clone();
        let record_bytes = u64::from(options.record_bytes);
        let in_flight = in_flight.clone();
        let batch = options.batch;
        workers.spawn(async move {
            let mut tally = Tally::new()?;
            while Instant::now() < deadline {
                // Held until the answer: the records of this request count as in flight.
                let _permits = match &in_flight {
                    Some(slots) => {
                        let acquire = slots.acquire_many(batch);
                        match tokio::time::timeout_at(deadline.into(), acquire).await {
                            Ok(Ok(permits)) => Some(permits),
                            _ => break,
                        }
                    }
                    None => None,
                };
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

pub(crate) async fn run_consume(
    clients: Vec<Client>,
    options: &BenchOptions,
    partitions: &[u32],
) -> anyhow::Result<Tally> {
    let deadline = Instant::now() + Duration::from_secs(options.duration_s);
    let mut workers = tokio::task::JoinSet::new();
    let shares = consume_shares(clients.len(), partitions);
    for (client, share) in clients.into_iter().zip(shares) {
        let topic = options.topic.clone();
        let max_messages = options.max_messages;
        workers.spawn(async move {
            let mut tally = Tally::new()?;
            // One body buffer per reader, reused: a fresh one per answer grows (and faults in)
            // megabytes again for every fetch.
            let mut body = Vec::new();
            for partition in share {
                read_partition(
                    &client,
                    &topic,
                    partition,
                    max_messages,
                    deadline,
                    &mut body,
                    &mut tally,
                )
                .await?;
            }
            Ok::<Tally, anyhow::Error>(tally)
        });
    }
    join_tallies(workers).await
}

/// The partitions each consume worker reads, one after another: partition `i` goes to worker
/// `i % workers`, so every partition is read exactly once, whatever the number of connections
/// (connections beyond the number of partitions stay idle).
fn consume_shares(workers: usize, partitions: &[u32]) -> Vec<Vec<u32>> {
    let workers = workers.min(partitions.len());
    let mut shares = vec![Vec::new(); workers];
    for (index, partition) in partitions.iter().enumerate() {
        shares[index % workers].push(*partition);
    }
    shares
}

/// Reads `partition` from offset 0 to its high watermark (or until `deadline`).
async fn read_partition(
    client: &Client,
    topic: &str,
    partition: u32,
    max_messages: u32,
    deadline: Instant,
    body: &mut Vec<u8>,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut offset = 0;
    while Instant::now() < deadline {
        let started = Instant::now();
        match client
            .fetch_into(body, topic, partition, offset, Some(max_messages))
            .await
        {
            Ok(()) => {}
            Err(error) if error.status() == Some(416) => {
                // Retention removed the records ahead of this reader: go on from the
                // partition's new start, as a consumer would (not counted as an error).
                let start = client.describe_topic(topic).await.ok().and_then(|t| {
                    let found = t.partitions.iter().find(|p| p.partition == partition);
                    found.map(|p| p.log_start_offset)
                });
                match start {
                    Some(start) if start > offset => offset = start,
                    _ => {
                        tally.failure(&error);
                        tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                    }
                }
                continue;
            }
            Err(error) => {
                tally.failure(&error);
                tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                continue;
            }
        }
        let reply: FetchSummary = serde_json::from_slice(body).context("decoding a fetch reply")?;
        let bytes = reply.records.iter().map(ValueOnly::bytes).sum();
        tally.success(started, reply.records.len() as u64, bytes);
        offset = reply.next_offset.max(reply.log_start_offset);
        if offset >= reply.high_watermark {
            break;
        }
    }
    Ok(())
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

    #[test]
    fn consume_shares_cover_every_partition_exactly_once() {
        let partitions: Vec<u32> = (0..6).collect();
        assert_eq!(
            consume_shares(2, &partitions),
            vec![vec![0, 2, 4], vec![1, 3, 5]]
        );
        assert_eq!(consume_shares(16, &partitions).len(), 6);
        for workers in 1..10 {
            let mut read: Vec<u32> = consume_shares(workers, &partitions).concat();
            read.sort_unstable();
            assert_eq!(read, partitions, "{workers} workers");
        }
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
