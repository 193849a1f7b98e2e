//! The controller log does not grow forever: any authenticated user can append controller
//! entries (here: producer ids), and the controller snapshots its state and drops old entries, so
//! the stored log stays within two compaction intervals while the state survives a restart from
//! the snapshot. The control: the same store before the writes holds an uncompacted log.

mod common;

use common::BrokerProcess;
use futures_util::future::join_all;
use palisade::cluster::{CONTROLLER_COMPACT_EVERY, CONTROLLER_LOG_TAIL, METADATA_GROUP};
use palisade::storage::Store;

/// Controller entries to append: enough for two compactions.
const WRITES: u64 = 2 * CONTROLLER_COMPACT_EVERY + 200;
/// Requests in flight at once.
const CONCURRENCY: usize = 32;

fn controller_log(broker: &BrokerProcess) -> (u64, u64) {
    let store = Store::open(&broker.data_dir().join("palisade.redb")).expect("open store");
    let recovery = store
        .load_group(METADATA_GROUP)
        .expect("read group 0")
        .expect("group 0 exists");
    (recovery.snapshot.meta.index.0, recovery.last_index.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_log_is_compacted_and_its_state_survives_a_restart() {
    let mut broker = BrokerProcess::start().await;
    broker.kill();
    let (snapshot_before, _) = controller_log(&broker);
    assert_eq!(
        snapshot_before, 0,
        "the control: a young log is not compacted"
    );
    broker.restart().await;

    // Another user's producer id, registered before the flood: its entry ends up in the
    // snapshot, not in the tail. (The flooding admin's own oldest ids are forgotten by the
    // per-principal bound on producer ids, which is a different limit.)
    let admin = broker.admin().await;
    admin
        .create_user(&palisade::wire::CreateUser {
            username: "keeper".into(),
            password: "keeper-password-1".into(),
            superuser: true,
        })
        .await
        .expect("user");
    let keeper = broker.login("keeper", "keeper-password-1").await;
    let kept = keeper.create_producer().await.expect("producer id");
    let mut done = 0;
    while done < WRITES {
        let batch = (WRITES - done).min(CONCURRENCY as u64);
        let created = join_all((0..batch).map(|_| admin.create_producer())).await;
        for producer in created {
            producer.expect("producer id");
        }
        done += batch;
    }
    broker.kill();
    let (snapshot_index, last_index) = controller_log(&broker);
    assert!(snapshot_index > 0, "the log was compacted");
    assert!(
        last_index - snapshot_index <= CONTROLLER_COMPACT_EVERY + CONTROLLER_LOG_TAIL,
        "{} entries remain after {WRITES} writes",
        last_index - snapshot_index
    );

    // Restarted from the snapshot and the tail: keeper's producer id is still registered.
    broker.restart().await;
    let producer = kept;
    let keeper = broker.login("keeper", "keeper-password-1").await;
    keeper
        .create_topic(&palisade::wire::CreateTopic {
            name: "after-compaction".into(),
            partitions: Some(1),
            replication_factor: None,
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("topic");
    let batch = palisade::wire::IdempotentProduceRequest {
        records: vec![palisade::wire::ProduceRecord {
            value: Some("still mine".into()),
            ..Default::default()
        }],
        producer_id: producer,
        sequence: Some(0),
        sequences: None,
    };
    let written = keeper.produce_idempotent("after-compaction", &batch).await;
    assert!(
        written.is_ok(),
        "the old producer id still works: {written:?}"
    );
}
