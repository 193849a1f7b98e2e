//! The partition actor's leader-side checks, on a real single-voter replica with a real redb file:
//! `CommitOffset` refuses offsets beyond the high watermark, stores, repeats and rewinds;
//! `IdempotentProduce` answers a repeated sequence with the original offsets and writes nothing;
//! a conditional `Produce` (an expected base offset) is written only where the log ends.

use std::time::Duration;

use palisade::partition::batch::Record;
use palisade::partition::dedup::{DedupKind, ProducerStamp};
use palisade::partition::machine::Describe;
use palisade::partition::{
    AckPolicy, AppendResult, CommitOffset, Host, IdempotentProduce, PartitionHandle, Produce,
    ReplicaError, ReplicaSettings,
};
use palisade::raft::{GroupId, NodeId};
use palisade::storage::{Store, WriterConfig};
use tokio::sync::oneshot;

const GROUP: GroupId = GroupId(7);
/// The replicas' entry bound in these tests (small, so a test can pass it cheaply).
const ENTRY_BYTES_MAX: u64 = 64 * 1024;

fn records(count: usize) -> Vec<Record> {
    (0..count)
        .map(|i| Record {
            key: None,
            value: format!("value-{i}").into_bytes(),
            value_is_text: true,
            headers: vec![],
        })
        .collect()
}

async fn start(dir: &std::path::Path) -> (Host, PartitionHandle) {
    let store = Store::open(&dir.join("palisade.redb")).expect("open store");
    let writer = store.start_writer(WriterConfig::default());
    let settings = ReplicaSettings {
        node: NodeId(1),
        tick_ms: 10,
        election_timeout_ticks: 10,
        heartbeat_interval_ticks: 2,
        pending_proposals_max: 100,
        ack: AckPolicy::AfterCommit,
        retention_check_ms: 60_000,
        entry_bytes_max: ENTRY_BYTES_MAX,
        quiesce: true,
    };
    let host = Host::new(store, writer, settings, 1, None);
    host.ensure_group(GROUP, vec![NodeId(1)])
        .await
        .expect("create group");
    let mut handle = host.start_partition(GROUP).expect("start replica");
    let leading = tokio::time::timeout(
        Duration::from_secs(10),
        handle.status.wait_for(|status| status.is_leader),
    )
    .await
    .map(|waited| waited.is_ok());
    assert_eq!(leading, Ok(true), "the single voter leads");
    (host, handle)
}

async fn produce(handle: &PartitionHandle, count: usize) -> Result<AppendResult, ReplicaError> {
    produce_at(handle, count, None).await
}

async fn produce_at(
    handle: &PartitionHandle,
    count: usize,
    expected_base: Option<u64>,
) -> Result<AppendResult, ReplicaError> {
    let (reply, wait) = oneshot::channel();
    handle.addr.do_send(Produce {
        records: records(count).into(),
        timestamp_ms: 1,
        expected_base,
        reply,
    });
    wait.await.expect("answered")
}

#[actix_rt::test]
async fn a_conditional_produce_is_written_only_where_the_log_ends() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_host, handle) = start(dir.path()).await;
    let first = produce_at(&handle, 2, Some(0))
        .await
        .expect("the log is empty");
    assert_eq!((first.base_offset, first.count), (0, 2));
    for stale in [0, 1, 3] {
        match produce_at(&handle, 1, Some(stale)).await {
            Err(ReplicaError::TailMoved { expected, tail }) => {
                assert_eq!((expected, tail), (stale, 2))
            }
            other => panic!("expected base {stale} at tail 2: {other:?}"),
        }
    }
    let state = handle.addr.send(Describe).await.expect("describe");
    assert_eq!(state.high_watermark, 2, "nothing refused was written");
    let next = produce_at(&handle, 1, Some(2))
        .await
        .expect("the log ends at 2");
    assert_eq!(next.base_offset, 2);
}

async fn commit(handle: &PartitionHandle, group: &str, offset: u64) -> Result<(), ReplicaError> {
    let (reply, wait) = oneshot::channel();
    handle.addr.do_send(CommitOffset {
        consumer_group: group.into(),
        offset,
        reply,
    });
    wait.await.expect("answered")
}

async fn idempotent(
    handle: &PartitionHandle,
    sequence: u64,
    count: usize,
) -> Result<AppendResult, ReplicaError> {
    let (reply, wait) = oneshot::channel();
    handle.addr.do_send(IdempotentProduce {
        records: records(count).into(),
        timestamp_ms: 2,
        stamp: ProducerStamp {
            kind: DedupKind::Producer,
            producer: 0xfeed,
            owner: 1,
            sequence,
        },
        reply,
    });
    wait.await.expect("answered")
}

#[actix_rt::test]
async fn commits_and_idempotent_batches_are_checked_by_the_leader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_host, handle) = start(dir.path()).await;
    // Applied once answered, so the leader has applied an entry of its own term.
    assert_eq!(produce(&handle, 5).await.expect("append").base_offset, 0);

    assert_eq!(
        commit(&handle, "billing", 6).await,
        Err(ReplicaError::OffsetBeyondEnd {
            offset: 6,
            high_watermark: 5
        })
    );
    commit(&handle, "billing", 5).await.expect("at the end");
    commit(&handle, "billing", 5).await.expect("the same again");
    commit(&handle, "audit", 3).await.expect("another group");
    let state = handle.addr.send(Describe).await.expect("describe");
    assert_eq!(state.consumer_offsets.get("billing"), Some(&5));
    commit(&handle, "billing", 1).await.expect("rewind");
    let state = handle.addr.send(Describe).await.expect("describe");
    assert_eq!(state.consumer_offsets.get("billing"), Some(&1));
    assert_eq!(state.consumer_offsets.get("audit"), Some(&3));

    let first = idempotent(&handle, 0, 2).await.expect("sequence 0");
    assert_eq!(
        first,
        AppendResult {
            base_offset: 5,
            count: 2
        }
    );
    assert_eq!(
        idempotent(&handle, 0, 2).await,
        Ok(first),
        "a repeat is answered"
    );
    assert!(matches!(
        idempotent(&handle, 0, 3).await,
        Err(ReplicaError::Invalid(_))
    ));
    assert!(matches!(
        idempotent(&handle, 2, 1).await,
        Err(ReplicaError::Invalid(reason)) if reason.contains("expects sequence 1")
    ));
    let state = handle.addr.send(Describe).await.expect("describe");
    assert_eq!(state.high_watermark, 7, "the repeat wrote nothing");
    let last = state
        .dedup
        .last(DedupKind::Producer, 0xfeed)
        .expect("recorded");
    assert_eq!((last.sequence, last.base_offset, last.count), (0, 5, 2));
}

/// A batch whose entry could not travel in one peer frame is refused at propose time, with the
/// sizes, and the partition goes on taking writes: nothing was appended, no offset was used.
#[actix_rt::test]
async fn an_entry_above_the_bound_is_refused_and_the_partition_goes_on() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_host, handle) = start(dir.path()).await;
    let first = produce(&handle, 3).await.expect("a small batch is written");
    let big = Record {
        key: None,
        value: vec![b'x'; ENTRY_BYTES_MAX as usize],
        value_is_text: true,
        headers: vec![],
    };
    let (reply, wait) = oneshot::channel();
    handle.addr.do_send(Produce {
        records: vec![big].into_iter().collect(),
        timestamp_ms: 1,
        expected_base: None,
        reply,
    });
    match wait.await.expect("answered") {
        Err(ReplicaError::TooLarge { bytes, bytes_max }) => {
            assert!(bytes > bytes_max, "{bytes} > {bytes_max}");
            assert_eq!(bytes_max, ENTRY_BYTES_MAX);
        }
        other => panic!("an oversized entry must be refused, got {other:?}"),
    }
    let next = produce(&handle, 2)
        .await
        .expect("the partition still takes writes");
    assert_eq!(
        next.base_offset,
        first.base_offset + first.count,
        "no offset was used"
    );
}
