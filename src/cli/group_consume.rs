//! `palisade consume TOPIC --group G`: joins the group, prints the records of the partitions the
//! group assigns to this member, and commits after printing each poll.
//!
//! A poll also keeps the member alive, so the long-poll wait stays well under the session
//! timeout. Delivery is at least once: records printed but not yet committed when the member
//! leaves or loses a partition are read again by the partition's next owner.

use super::args::ConsumeArgs;
use super::output::{write_line, GroupLine};
use crate::client::{Client, ClientError};
use crate::wire::{JoinGroup, Member, OffsetReset};

pub(crate) async fn run(args: ConsumeArgs, group: String, client: &Client) -> anyhow::Result<()> {
    let join = JoinGroup {
        topics: vec![args.topic.clone()],
        session_timeout_ms: Some(args.session_timeout_ms),
        auto_offset_reset: Some(offset_reset(&args.offset_reset)?),
    };
    let mut member = client.join_group(&group, &join).await?;
    eprintln!(
        "joined group {group} as {} (generation {}, {} partitions)",
        member.member_id,
        member.generation,
        member.assignments.len()
    );
    let outcome = tokio::select! {
        result = follow(&args, &group, &join, &mut member, client) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    // Leaving hands the partitions over at once instead of after the session timeout.
    let left = client.leave_group(&group, &member.member_id).await;
    outcome?;
    left.map_err(Into::into)
}

async fn follow(
    args: &ConsumeArgs,
    group: &str,
    join: &JoinGroup,
    member: &mut Member,
    client: &Client,
) -> anyhow::Result<()> {
    // Half the session timeout at most, so a quiet topic never costs the membership.
    let wait_ms = args.wait_ms.min(args.session_timeout_ms / 2);
    loop {
        let poll = match client
            .poll_group(
                group,
                &member.member_id,
                Some(u64::from(args.max_messages)),
                Some(wait_ms),
            )
            .await
        {
            Ok(poll) => poll,
            Err(error) if error.status() == Some(404) => {
                *member = client.join_group(group, join).await?;
                eprintln!("session expired; joined again as {}", member.member_id);
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        member.generation = poll.generation;
        member.assignments = poll.assignments.clone();
        for record in &poll.records {
            write_line(&serde_json::to_string(&GroupLine { record })?)?;
        }
        if poll.records.is_empty() {
            if args.follow {
                continue;
            }
            return Ok(());
        }
        match client
            .commit_offsets(
                group,
                &member.member_id,
                member.generation,
                poll.next_offsets,
            )
            .await
        {
            Ok(()) => {}
            // The group rebalanced since the poll: the next poll brings the new assignment and
            // the partition's new owner reads the uncommitted records again.
            Err(ClientError::Api {
                status: 409,
                detail,
                ..
            }) => {
                eprintln!("commit refused after a rebalance: {detail}");
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The `--offset-reset` value as the wire names it.
fn offset_reset(text: &str) -> anyhow::Result<OffsetReset> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|_| anyhow::anyhow!("--offset-reset must be earliest or latest, not {text:?}"))
}
