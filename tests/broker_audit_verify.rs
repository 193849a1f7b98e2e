//! `palisade audit verify` end to end: it accepts the chain a real broker wrote, and it rejects the
//! same log after one stored audit event was edited on disk (the broker restarted on the edited file).

mod common;

use common::{BrokerProcess, ADMIN_PASSWORD};
use palisade::cluster::{MetadataState, AUDIT_TOPIC, METADATA_GROUP};
use palisade::partition::batch::{self, PartitionCommand};
use palisade::raft::{EntryPayload, LogIndex};
use palisade::storage::{Store, WriteBatch, WriterConfig};

fn run_verify(broker: &BrokerProcess, token: &str) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_palisade"))
        .args(["audit", "verify", "--url", &broker.url, "--token", token])
        .arg("--ca-cert")
        .arg(broker.ca_path())
        .env("PALISADE_HOME", broker.dir.path())
        .output()
        .expect("run palisade audit verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Rewrites the stored audit event at position 1 with another principal, keeping its hashes.
fn edit_second_audit_event(store_path: &std::path::Path) {
    let store = Store::open(store_path).expect("open store");
    let metadata = store
        .load_group(METADATA_GROUP)
        .expect("load")
        .expect("metadata group");
    let state: MetadataState =
        serde_json::from_slice(&metadata.applied_state).expect("metadata state");
    let group = state.topics[AUDIT_TOPIC].partitions[0].group;
    let recovery = store.load_group(group).expect("load").expect("audit group");
    let entries = store
        .entries(
            group,
            recovery.snapshot.meta.index.next(),
            recovery.last_index.next(),
            u64::MAX,
        )
        .expect("audit entries");
    let mut rewritten = Vec::new();
    let mut offset_rows = Vec::new();
    let mut edited = false;
    for mut entry in entries {
        if let EntryPayload::Normal(data) = &entry.payload {
            let PartitionCommand::Append(mut records) = batch::decode(data).expect("audit batch")
            else {
                continue;
            };
            let end = records.end_offset();
            if !edited && records.base_offset <= 1 && end > 1 {
                let record = &mut records.records[(1 - records.base_offset) as usize];
                let mut event: serde_json::Value =
                    serde_json::from_slice(&record.value).expect("event JSON");
                event["principal"] = serde_json::json!("mallory");
                record.value = serde_json::to_vec(&event).expect("JSON");
                edited = true;
            }
            offset_rows.push((records.base_offset, entry.index));
            entry.payload =
                EntryPayload::Normal(batch::encode(&PartitionCommand::Append(records)).into());
        }
        if edited || !rewritten.is_empty() {
            rewritten.push(entry);
        }
    }
    assert!(edited, "found the second audit event");
    let first: LogIndex = rewritten[0].index;
    offset_rows.retain(|(_, index)| *index >= first);
    let writer = store.start_writer(WriterConfig::default());
    let (done, wait) = std::sync::mpsc::channel();
    let batch = WriteBatch {
        group,
        entries: rewritten,
        offset_rows,
        ..WriteBatch::new(group)
    };
    writer
        .submit(
            batch,
            Box::new(move |result| done.send(result).expect("send")),
        )
        .expect("submit");
    wait.recv().expect("writer answers").expect("edit written");
    writer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_accepts_the_written_chain_and_rejects_an_edited_event() {
    let mut broker = BrokerProcess::start().await;
    for _ in 0..3 {
        broker.login("admin", ADMIN_PASSWORD).await;
    }
    let token = broker
        .client()
        .login("admin", ADMIN_PASSWORD)
        .await
        .expect("login")
        .access_token;
    let (ok, text) = run_verify(&broker, &token);
    assert!(
        ok && text.contains("audit chain verified"),
        "verify must accept the broker's chain: {text}"
    );

    broker.terminate();
    edit_second_audit_event(&broker.data_dir().join("palisade.redb"));
    broker.restart().await;
    let token = broker
        .client()
        .login("admin", ADMIN_PASSWORD)
        .await
        .expect("login")
        .access_token;
    let (ok, text) = run_verify(&broker, &token);
    assert!(!ok, "verify must reject an edited event: {text}");
    assert!(text.contains("audit chain is broken"), "{text}");
}
