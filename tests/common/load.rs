//! Steady write load on every partition of one topic, for tests and benchmarks that stop or
//! restart brokers under it: one producer task per partition writes batches of distinct values,
//! each through a broker other than the one the caller is restarting (`avoid`), and records
//! what was acknowledged where and when, and every failure.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use palisade::client::Client;
use palisade::wire::{ProduceRecord, ProduceRequest};

/// Records per produce request.
const BATCH: usize = 5;

#[derive(Default)]
pub struct Outcome {
    /// (partition, value) → acknowledged offset.
    pub acked: BTreeMap<(u32, String), u64>,
    /// Acknowledgement times per partition, in order.
    pub acked_at: BTreeMap<u32, Vec<Instant>>,
    /// Every failed write: the broker it was sent to, when it failed and the error.
    pub failures: Vec<(u64, Instant, String)>,
    /// When each write of a partition was answered, acknowledged or failed, in order.
    pub answered_at: BTreeMap<u32, Vec<Instant>>,
}

impl Outcome {
    /// The longest time between two acknowledged writes of one partition within `window`.
    pub fn longest_gap(&self, window: (Instant, Instant)) -> Duration {
        self.longest_gap_where(window)
            .map(|(_, _, gap)| gap)
            .unwrap_or_default()
    }

    /// The longest gap within `window`: its partition, the acknowledgement it began at, and its
    /// length.
    pub fn longest_gap_where(
        &self,
        window: (Instant, Instant),
    ) -> Option<(u32, Instant, Duration)> {
        self.acked_at
            .iter()
            .flat_map(|(partition, times)| {
                let inside: Vec<Instant> = times
                    .iter()
                    .copied()
                    .filter(|t| *t >= window.0 && *t <= window.1)
                    .collect();
                inside
                    .windows(2)
                    .map(|pair| (*partition, pair[0], pair[1] - pair[0]))
                    .collect::<Vec<_>>()
            })
            .max_by_key(|(_, _, gap)| *gap)
    }
}

pub struct Load {
    pub outcome: Arc<Mutex<Outcome>>,
    /// The broker no write is sent through (0: none).
    pub avoid: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts one producer per partition of `topic`; `clients` are (broker id, client) pairs.
    pub fn start(topic: &str, partitions: u32, clients: Vec<(u64, Client)>) -> Load {
        Load::start_labelled("", topic, partitions, clients)
    }

    /// Like `start`, with every value prefixed by `label`, so that several loads on one topic
    /// write distinct values.
    pub fn start_labelled(
        label: &str,
        topic: &str,
        partitions: u32,
        clients: Vec<(u64, Client)>,
    ) -> Load {
        let outcome: Arc<Mutex<Outcome>> = Arc::default();
        let avoid = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(clients);
        let tasks = (0..partitions)
            .map(|partition| {
                let (label, topic, outcome, avoid, stop, clients) = (
                    label.to_string(),
                    topic.to_string(),
                    outcome.clone(),
                    avoid.clone(),
                    stop.clone(),
                    clients.clone(),
                );
                tokio::spawn(async move {
                    let mut sequence = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        sequence += 1;
                        let skip = avoid.load(Ordering::Relaxed);
                        let usable: Vec<&(u64, Client)> =
                            clients.iter().filter(|(id, _)| *id != skip).collect();
                        let (via, client) = usable[sequence as usize % usable.len()];
                        let values: Vec<String> = (0..BATCH)
                            .map(|i| format!("{label}p{partition}-{sequence}-{i}"))
                            .collect();
                        let records = values
                            .iter()
                            .map(|value| ProduceRecord {
                                key: None,
                                value: Some(value.clone()),
                                value_b64: None,
                                headers: BTreeMap::new(),
                                partition: Some(partition),
                            })
                            .collect();
                        let answer = client.produce(&topic, &ProduceRequest { records }).await;
                        let mut outcome = outcome.lock().expect("lock");
                        outcome
                            .answered_at
                            .entry(partition)
                            .or_default()
                            .push(Instant::now());
                        match answer {
                            Ok(response) => {
                                outcome
                                    .acked_at
                                    .entry(partition)
                                    .or_default()
                                    .push(Instant::now());
                                for (value, position) in values.into_iter().zip(response.offsets) {
                                    outcome.acked.insert((partition, value), position.offset);
                                }
                            }
                            Err(error) => {
                                outcome.failures.push((*via, Instant::now(), chain(&error)))
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            outcome,
            avoid,
            stop,
            tasks,
        }
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> usize {
        self.outcome.lock().expect("lock").acked.len()
    }

    /// Waits until `count` more records were acknowledged (at most `seconds`).
    pub async fn wait_acked(&self, count: usize, seconds: u64) {
        let target = self.acked() + count;
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while self.acked() < target {
            assert!(
                Instant::now() < deadline,
                "fewer than {count} records acknowledged in {seconds} s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the producers and waits for their last writes.
    pub async fn stop(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("producer task");
        }
        Arc::try_unwrap(self.outcome)
            .ok()
            .expect("no producer holds the outcome")
            .into_inner()
            .expect("lock")
    }
}

/// An error with its causes, for failure reports.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads every partition of `topic` from offset 0 and returns the values missing at their
/// acknowledged offset (`(partition, value, offset)`); empty when nothing acknowledged was lost.
pub async fn missing(client: &Client, topic: &str, outcome: &Outcome) -> Vec<(u32, String, u64)> {
    let mut stored: BTreeMap<(u32, u64), String> = BTreeMap::new();
    let partitions: Vec<u32> = outcome.acked_at.keys().copied().collect();
    for partition in partitions {
        let mut offset = 0;
        loop {
            let page = client
                .fetch(topic, partition, offset, Some(1000), None, None)
                .await
                .expect("fetch for the check");
            for record in &page.records {
                if let Some(value) = &record.value {
                    stored.insert((partition, record.offset), value.clone());
                }
            }
            if page.next_offset >= page.high_watermark || page.records.is_empty() {
                break;
            }
            offset = page.next_offset;
        }
    }
    outcome
        .acked
        .iter()
        .filter(|((partition, value), offset)| stored.get(&(*partition, **offset)) != Some(value))
        .map(|((partition, value), offset)| (*partition, value.clone(), *offset))
        .collect()
}
