//! `Client` methods of the consumer-group routes.

use reqwest::Method;

use crate::client::api::{decode, send, send_into};
use crate::client::{Client, ClientError};
use crate::wire::{
    CommitOffsets, GroupDescription, GroupPoll, JoinGroup, Member, OffsetCommit, PollQuery,
};

impl Client {
    /// `POST /v1/groups/{group}/members`.
    pub async fn join_group(&self, group: &str, join: &JoinGroup) -> Result<Member, ClientError> {
        let request = self.request(Method::POST, &["v1", "groups", group, "members"], &[])?;
        decode(send(request.json(join)).await?)
    }

    /// `POST /v1/groups/{group}/members/{member}/heartbeat`.
    pub async fn heartbeat(&self, group: &str, member_id: &str) -> Result<Member, ClientError> {
        let path = ["v1", "groups", group, "members", member_id, "heartbeat"];
        decode(send(self.request(Method::POST, &path, &[])?).await?)
    }

    /// `DELETE /v1/groups/{group}/members/{member}`.
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<(), ClientError> {
        let path = ["v1", "groups", group, "members", member_id];
        send(self.request(Method::DELETE, &path, &[])?)
            .await
            .map(drop)
    }

    /// `GET /v1/groups/{group}/members/{member}/records`.
    pub async fn poll_group(
        &self,
        group: &str,
        member_id: &str,
        max_messages: Option<u64>,
        wait_ms: Option<u64>,
    ) -> Result<GroupPoll, ClientError> {
        self.poll_group_from(group, member_id, max_messages, wait_ms, &[])
            .await
    }

    /// `poll_group` from the consumer's own positions in some assigned partitions (`from`).
    pub async fn poll_group_from(
        &self,
        group: &str,
        member_id: &str,
        max_messages: Option<u64>,
        wait_ms: Option<u64>,
        from: &[OffsetCommit],
    ) -> Result<GroupPoll, ClientError> {
        let mut body = Vec::new();
        self.poll_group_into(&mut body, group, member_id, max_messages, wait_ms, from)
            .await?;
        decode(body)
    }

    /// The same request as `poll_group_from`, reading the undecoded body into `body` (cleared
    /// first), so a member that polls in a loop reuses one buffer instead of growing (and
    /// faulting in) megabytes again for every answer.
    pub async fn poll_group_into(
        &self,
        body: &mut Vec<u8>,
        group: &str,
        member_id: &str,
        max_messages: Option<u64>,
        wait_ms: Option<u64>,
        from: &[OffsetCommit],
    ) -> Result<(), ClientError> {
        let query = PollQuery {
            max_messages,
            max_bytes: None,
            wait_ms,
            from: (!from.is_empty()).then(|| crate::wire::format_positions(from)),
        };
        let path = ["v1", "groups", group, "members", member_id, "records"];
        send_into(self.request(Method::GET, &path, &query.pairs())?, body).await
    }

    /// `POST /v1/groups/{group}/offsets`.
    pub async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u64,
        offsets: Vec<OffsetCommit>,
    ) -> Result<(), ClientError> {
        let body = CommitOffsets {
            member_id: member_id.to_string(),
            generation,
            offsets,
        };
        self.send_json(Method::POST, &["v1", "groups", group, "offsets"], &body)
            .await
    }

    /// `GET /v1/groups/{group}`.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, ClientError> {
        self.get(&["v1", "groups", group], &[]).await
    }
}
