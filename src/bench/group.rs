//! `palisade bench group-consume`: consumer-group members poll and commit until the group has
//! consumed every record the topic held when the bench started.
//!
//! All members join before any polls, so the run measures steady group consumption, not the
//! first rebalances. Each poll-and-commit cycle is one timed request. Numbers are printed, never
//! asserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};

use super::options::{BenchOptions, ERROR_BACKOFF_MS};
use super::report::{join_tallies, Tally};
use super::summary::{PollSummary, ValueOnly};
use crate::client::{Client, ClientError};
use crate::wire::JoinGroup;

pub(crate) async fn run(
    clients: Vec<Client>,
    options: &BenchOptions,
    total_records: u64,
) -> anyhow::Result<Tally> {
    let group = format!("bench-{}", Alphanumeric.sample_string(&mut rand::rng(), 10));
    let join = JoinGroup {
        topics: vec![options.topic.clone()],
        session_timeout_ms: Some(30_000),
        auto_offset_reset: None,
    };
    let mut members = Vec::with_capacity(clients.len());
    for client in &clients {
        members.push(client.join_group(&group, &join).await?.member_id);
    }
    let consumed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(options.duration_s);
    let mut workers = tokio::task::JoinSet::new();
    for (client, member_id) in clients.into_iter().zip(members) {
        let group = group.clone();
        let consumed = consumed.clone();
        let max_messages = u64::from(options.max_messages);
        workers.spawn(async move {
            let mut tally = Tally::new()?;
            while Instant::now() < deadline && consumed.load(Ordering::Relaxed) < total_records {
                let started = Instant::now();
                let cycle = async {
                    let body = client
                        .poll_group_encoded(&group, &member_id, Some(max_messages), Some(100))
                        .await?;
                    let poll: PollSummary = serde_json::from_slice(&body)
                        .map_err(|source| ClientError::Decode { source })?;
                    if !poll.next_offsets.is_empty() {
                        client
                            .commit_offsets(&group, &member_id, poll.generation, poll.next_offsets)
                            .await?;
                    }
                    Ok::<_, ClientError>(poll.records)
                };
                match cycle.await {
                    Ok(records) => {
                        let bytes = records.iter().map(ValueOnly::bytes).sum();
                        consumed.fetch_add(records.len() as u64, Ordering::Relaxed);
                        tally.success(started, records.len() as u64, bytes);
                    }
                    Err(error) => {
                        tally.failure(&error);
                        tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                    }
                }
            }
            let _ = client.leave_group(&group, &member_id).await;
            Ok::<Tally, anyhow::Error>(tally)
        });
    }
    join_tallies(workers).await
}
