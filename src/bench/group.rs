//! `palisade bench group-consume`: consumer-group members poll and commit until the group has
//! consumed every record the topic held when the bench started.
//!
//! All members join before any polls, so the run measures steady group consumption, not the
//! first rebalances. Members keep their own positions and commit in the background, one commit
//! at a time, while the next poll reads; each poll is one timed request. Numbers are printed, never
//! asserted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::distr::{Alphanumeric, SampleString};

use super::options::{BenchOptions, ERROR_BACKOFF_MS};
use super::report::{join_tallies, Tally};
use super::summary::{PollSummary, ValueOnly};
use crate::client::{Client, ClientError};
use crate::wire::{JoinGroup, OffsetCommit};

/// How long a member that is done waits for the others before it leaves anyway.
const LEAVE_WAIT: Duration = Duration::from_secs(10);

pub(crate) async fn run(
    clients: Vec<Client>,
    committers: Vec<Client>,
    options: &BenchOptions,
    total_records: u64,
) -> anyhow::Result<Tally> {
    let group = options
        .group
        .clone()
        .unwrap_or_else(|| format!("bench-{}", Alphanumeric.sample_string(&mut rand::rng(), 10)));
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
    // Members leave together, once every member's last commit is in: one that left earlier would
    // start a rebalance that makes the others' last commits stale.
    let all_committed = Arc::new(tokio::sync::Barrier::new(members.len()));
    for ((client, committer), member_id) in clients.into_iter().zip(committers).zip(members) {
        let group = group.clone();
        let consumed = consumed.clone();
        let max_messages = u64::from(options.max_messages);
        let commit_interval = Duration::from_millis(options.commit_interval_ms);
        let all_committed = all_committed.clone();
        workers.spawn(async move {
            let mut tally = Tally::new()?;
            // The member's own positions, as a Kafka consumer keeps them: each poll reads from
            // them, and they are committed in the background (at most every
            // `--commit-interval-ms`) while the next poll reads.
            let mut positions: Vec<OffsetCommit> = Vec::new();
            let mut commit: Option<tokio::task::JoinHandle<Result<(), ClientError>>> = None;
            // One body buffer per member, reused, as the consume bench's readers do.
            let mut body = Vec::new();
            // Positions read past but not committed yet, and the generation they were read in.
            let mut uncommitted: Option<u64> = None;
            let mut last_commit = Instant::now();
            while Instant::now() < deadline && consumed.load(Ordering::Relaxed) < total_records {
                let started = Instant::now();
                let polled = async {
                    client
                        .poll_group_into(
                            &mut body,
                            &group,
                            &member_id,
                            Some(max_messages),
                            Some(100),
                            &positions,
                        )
                        .await?;
                    serde_json::from_slice::<PollSummary>(&body)
                        .map_err(|source| ClientError::Decode { source })
                };
                let poll = match polled.await {
                    Ok(poll) => poll,
                    Err(error) => {
                        // A 409 after a rebalance: the next poll starts from the group's
                        // committed offsets.
                        positions.clear();
                        tally.failure(&error);
                        tokio::time::sleep(Duration::from_millis(ERROR_BACKOFF_MS)).await;
                        continue;
                    }
                };
                let bytes = poll.records.iter().map(ValueOnly::bytes).sum();
                consumed.fetch_add(poll.records.len() as u64, Ordering::Relaxed);
                tally.success(started, poll.records.len() as u64, bytes);
                positions.retain(|p| {
                    poll.assignments
                        .iter()
                        .any(|a| a.topic == p.topic && a.partition == p.partition)
                });
                for next in &poll.next_offsets {
                    match positions
                        .iter_mut()
                        .find(|p| p.topic == next.topic && p.partition == next.partition)
                    {
                        Some(position) => position.offset = next.offset,
                        None => positions.push(next.clone()),
                    }
                }
                if !poll.next_offsets.is_empty() {
                    uncommitted = Some(poll.generation);
                }
                let due = last_commit.elapsed() >= commit_interval;
                if let (Some(generation), true) = (uncommitted, due) {
                    // One commit at a time, so they land in order.
                    if let Some(previous) = commit.take() {
                        finish_commit(previous, &mut tally).await;
                    }
                    commit = Some(spawn_commit(
                        &committer,
                        &group,
                        &member_id,
                        generation,
                        positions.clone(),
                    ));
                    uncommitted = None;
                    last_commit = Instant::now();
                }
            }
            if let Some(previous) = commit.take() {
                finish_commit(previous, &mut tally).await;
            }
            // What the member read since its last commit is committed before it leaves.
            if let Some(generation) = uncommitted {
                let last = spawn_commit(&committer, &group, &member_id, generation, positions);
                finish_commit(last, &mut tally).await;
            }
            let _ = tokio::time::timeout(LEAVE_WAIT, all_committed.wait()).await;
            let _ = client.leave_group(&group, &member_id).await;
            Ok::<Tally, anyhow::Error>(tally)
        });
    }
    join_tallies(workers).await
}

/// Commits `offsets` in the background.
fn spawn_commit(
    committer: &Client,
    group: &str,
    member_id: &str,
    generation: u64,
    offsets: Vec<OffsetCommit>,
) -> tokio::task::JoinHandle<Result<(), ClientError>> {
    let (client, group, member_id) = (committer.clone(), group.to_string(), member_id.to_string());
    tokio::spawn(async move {
        client
            .commit_offsets(&group, &member_id, generation, offsets)
            .await
    })
}

/// Waits for a background commit; a failed one (a 409 after a rebalance, say) counts as an error.
async fn finish_commit(
    commit: tokio::task::JoinHandle<Result<(), ClientError>>,
    tally: &mut Tally,
) {
    if let Ok(Err(error)) = commit.await {
        tally.failure(&error);
    }
}
