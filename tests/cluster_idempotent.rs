//! Idempotent produce across a leader failover, with three real broker processes: a producer
//! sends numbered batches through a broker that does not lead the partition and retries every
//! failed or timed-out request with the same sequence while the leader is SIGKILLed. Afterwards
//! every value is in the partition exactly once and every acknowledged offset holds its value.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{wait_for, TestCluster};
use palisade::wire::CreateTopic;
use serde_json::{json, Value};

const TOPIC: &str = "payments";
const BATCHES: u64 = 150;
const RECORDS_PER_BATCH: u64 = 4;
/// A request that takes longer is abandoned and sent again with the same sequence; short, so that
/// during the election the abandoned attempt is often still being retried inside the cluster.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(700);

/// One broker's API with a bearer token and a per-request timeout.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    async fn new(cluster: &TestCluster, id: u64) -> Api {
        let token = cluster.admin(id).await.token().expect("token").to_string();
        Api {
            http: common::raw_client(&cluster.ca),
            url: cluster.node(id).url.clone(),
            token,
        }
    }

    /// Status and JSON body, or `None` when the request failed or timed out.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Some((status, body))
    }
}

fn batch_values(sequence: u64) -> Vec<String> {
    (0..RECORDS_PER_BATCH)
        .map(|i| format!("s{sequence}-r{i}"))
        .collect()
}

fn batch_body(producer: &str, sequence: u64) -> Value {
    let records: Vec<Value> = batch_values(sequence)
        .into_iter()
        .map(|value| json!({"value": value, "partition": 0}))
        .collect();
    json!({"records": records, "producer_id": producer, "sequence": sequence})
}

#[derive(Default)]
struct Progress {
    /// value → acknowledged offset.
    acked: BTreeMap<String, u64>,
    /// Requests that failed, timed out or got a 5xx and were sent again.
    retries: u64,
    /// The original answer of each sequence.
    answers: BTreeMap<u64, Value>,
}

/// Sends every batch in order; a failed attempt is retried with the same sequence until it is
/// acknowledged. A 4xx fails the test: with retries of the same sequence there is no reason for one.
async fn run_producer(api: Api, producer: String, progress: Arc<Mutex<Progress>>) {
    let path = format!("/v1/topics/{TOPIC}/messages");
    for sequence in 0..BATCHES {
        let body = batch_body(&producer, sequence);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let answer = loop {
            match api.call(reqwest::Method::POST, &path, Some(&body)).await {
                Some((200, answer)) => break answer,
                Some((status, answer)) if status < 500 => {
                    panic!("sequence {sequence}: {status} {answer}")
                }
                _ => progress.lock().expect("lock").retries += 1,
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "sequence {sequence} never acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut progress = progress.lock().expect("lock");
        let offsets = answer["offsets"].as_array().expect("offsets").clone();
        for (value, position) in batch_values(sequence).into_iter().zip(offsets) {
            assert_eq!(position["partition"], 0);
            let offset = position["offset"].as_u64().expect("offset");
            progress.acked.insert(value, offset);
        }
        progress.answers.insert(sequence, answer);
    }
}

/// Every expected value is stored exactly once, nothing else is stored, offsets are dense from 0,
/// and each acknowledged value sits at its acknowledged offset.
fn check_exactly_once(
    stored: &[(u64, String)],
    expected: &BTreeSet<String>,
    acked: &BTreeMap<String, u64>,
) -> Result<(), String> {
    if stored
        .iter()
        .map(|(offset, _)| *offset)
        .ne(0..stored.len() as u64)
    {
        return Err("offsets are not dense from 0".into());
    }
    let mut seen = BTreeSet::new();
    for (offset, value) in stored {
        if !seen.insert(value.clone()) {
            return Err(format!(
                "{value} is stored twice (again at offset {offset})"
            ));
        }
    }
    if &seen != expected {
        let missing: Vec<_> = expected.difference(&seen).take(5).collect();
        let extra: Vec<_> = seen.difference(expected).take(5).collect();
        return Err(format!("missing {missing:?}, unexpected {extra:?}"));
    }
    for (value, offset) in acked {
        let at = stored.get(*offset as usize).map(|(_, v)| v);
        if at != Some(value) {
            return Err(format!(
                "acknowledged {value} is not at offset {offset} ({at:?})"
            ));
        }
    }
    Ok(())
}

/// The whole partition through `api`, in offset order.
async fn read_partition(api: &Api) -> Vec<(u64, String)> {
    let mut stored = Vec::new();
    loop {
        let path = format!(
            "/v1/topics/{TOPIC}/partitions/0/messages?offset={}",
            stored.len()
        );
        let (status, body) = api
            .call(reqwest::Method::GET, &path, None)
            .await
            .expect("fetch answers");
        assert_eq!(status, 200, "{body}");
        for record in body["records"].as_array().expect("records") {
            let offset = record["offset"].as_u64().expect("offset");
            let value = record["value"].as_str().expect("value").to_string();
            stored.push((offset, value));
        }
        if body["next_offset"] == body["high_watermark"] {
            return stored;
        }
    }
}

async fn setup() -> (TestCluster, u64) {
    let cluster = TestCluster::start(3).await;
    let admin = cluster.admin(1).await;
    admin
        .create_topic(&CreateTopic {
            name: TOPIC.into(),
            partitions: Some(1),
            replication_factor: Some(3),
            retention_ms: None,
            retention_bytes: None,
        })
        .await
        .expect("create topic");
    let leader = wait_for("partition 0 fully in sync", 60, || async {
        let view = admin.cluster().await.ok()?;
        let partition = view
            .partitions
            .iter()
            .find(|p| p.topic == TOPIC && p.partition == 0)?;
        let synced = partition.lag.len() == 3 && partition.lag.values().all(|lag| *lag == 0);
        synced.then_some(partition.leader).flatten()
    })
    .await;
    (cluster, leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_sequences_survive_a_leader_sigkill_exactly_once() {
    let (mut cluster, leader) = setup().await;
    let via = [1, 2, 3]
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let api = Api::new(&cluster, via).await;
    let (status, created) = api
        .call(reqwest::Method::POST, "/v1/producers", None)
        .await
        .expect("create producer");
    assert_eq!(status, 201, "{created}");
    let producer = created["producer_id"].as_str().expect("id").to_string();

    let progress = Arc::new(Mutex::new(Progress::default()));
    let task = tokio::spawn(run_producer(
        api.clone(),
        producer.clone(),
        progress.clone(),
    ));
    wait_for("batches before the kill", 60, || async {
        (progress.lock().expect("lock").answers.len() >= 40).then_some(())
    })
    .await;
    cluster.kill(leader);
    eprintln!("SIGKILL of partition leader {leader}; producing through broker {via}");
    tokio::time::timeout(Duration::from_secs(180), task)
        .await
        .expect("the producer finishes")
        .expect("the producer does not panic");

    let progress = Arc::try_unwrap(progress)
        .ok()
        .expect("the producer task is done")
        .into_inner()
        .expect("lock");
    eprintln!("client-visible retries: {}", progress.retries);
    let stored = read_partition(&api).await;
    let expected: BTreeSet<String> = (0..BATCHES).flat_map(batch_values).collect();
    check_exactly_once(&stored, &expected, &progress.acked)
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(stored.len() as u64, BATCHES * RECORDS_PER_BATCH);

    // A retry of the last batch after the failover answers the original offsets.
    let last = BATCHES - 1;
    let path = format!("/v1/topics/{TOPIC}/messages");
    let (status, again) = api
        .call(
            reqwest::Method::POST,
            &path,
            Some(&batch_body(&producer, last)),
        )
        .await
        .expect("retry answers");
    assert_eq!(status, 200, "{again}");
    assert_eq!(Some(&again), progress.answers.get(&last));
    assert_eq!(
        read_partition(&api).await,
        stored,
        "the retry wrote nothing"
    );

    // The checker catches a duplicated value, a lost one and a misplaced acknowledgement.
    let mut duplicated = stored.clone();
    duplicated.push((stored.len() as u64, stored[3].1.clone()));
    assert!(check_exactly_once(&duplicated, &expected, &progress.acked).is_err());
    let lost = stored[..stored.len() - 1].to_vec();
    assert!(check_exactly_once(&lost, &expected, &progress.acked).is_err());
    let mut swapped = stored.clone();
    let (first, second) = (swapped[0].1.clone(), swapped[1].1.clone());
    swapped[0].1 = second;
    swapped[1].1 = first;
    assert!(check_exactly_once(&swapped, &expected, &progress.acked).is_err());
}
