//! The group-commit writer: one plain thread that owns every write transaction.
//!
//! Callers queue `(WriteBatch, done)` pairs. The thread takes everything queued (up to
//! `requests_per_commit_max`), applies it in ONE write transaction with
//! `Durability::Immediate`, commits (fsync), and only then runs each `done` in submission
//! order. `begin_write` and `commit` block, so this is a std thread, never an async task.
//!
//! A failed transaction or commit is fatal: the durability of what was queued is unknown, so
//! the process logs and aborts. A panic on this thread (a broken storage invariant, a
//! panicking `done`) aborts too, rather than leaving callers waiting for acks forever.
//!
//! Must not: decide anything about what is written; it only batches and commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock};
use std::thread::{self, JoinHandle};

use redb::Durability;

use super::batch::WriteBatch;
use super::store::Store;
use super::write::{Outcome, WriteTables};
use super::StorageError;

/// Requests that may wait in the queue; a full queue blocks `submit` (back-pressure).
pub const QUEUE_REQUESTS_MAX: usize = 16 * 1024;

/// Runs on the writer thread once the batch's transaction committed (or it was refused).
/// It delays every later commit while it runs, so it must only hand the result on (send a
/// message); it must not block, panic, or call `submit` (a full queue would deadlock).
pub type Done = Box<dyn FnOnce(Result<(), StorageError>) + Send>;

#[derive(Clone, Copy, Debug)]
pub struct WriterConfig {
    /// Most batches applied in one transaction (one fsync).
    pub requests_per_commit_max: usize,
    /// Most bytes of batches queued or being committed; a submit past it waits for commits
    /// (one batch is always let in, whatever its size, so no batch waits forever).
    pub queue_bytes_max: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            requests_per_commit_max: 1024,
            queue_bytes_max: 64 * 1024 * 1024,
        }
    }
}

/// The bytes of batches submitted and not yet committed, against `queue_bytes_max`.
struct QueuedBytes {
    bytes: Mutex<u64>,
    freed: Condvar,
    bytes_max: u64,
}

impl QueuedBytes {
    /// Waits until `bytes` more fit (or nothing is queued), then counts them.
    fn take(&self, bytes: u64) {
        let mut queued = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        while *queued > 0 && queued.saturating_add(bytes) > self.bytes_max {
            queued = self
                .freed
                .wait(queued)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *queued += bytes;
    }

    fn give_back(&self, bytes: u64) {
        let mut queued = self.bytes.lock().unwrap_or_else(PoisonError::into_inner);
        *queued = queued.saturating_sub(bytes);
        self.freed.notify_all();
    }

    fn queued(&self) -> u64 {
        *self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Totals since the writer started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Committed write transactions (fsyncs).
    pub commits: u64,
    /// Batches included in those transactions.
    pub batches: u64,
    /// Approximate bytes of entries and state written.
    pub bytes: u64,
    /// Bytes of batches queued or being committed right now.
    pub queued_bytes: u64,
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    batches: AtomicU64,
    bytes: AtomicU64,
}

struct Request {
    batch: WriteBatch,
    /// What the batch counts against `queue_bytes_max`.
    bytes: u64,
    done: Done,
}

/// A handle to the writer thread. Clones share one queue; the thread stops when every clone
/// is dropped or `shutdown` is called, after committing everything already queued.
#[derive(Clone)]
pub struct Writer {
    shared: Arc<Shared>,
}

struct Shared {
    sender: RwLock<Option<SyncSender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    counters: Arc<Counters>,
    queued: Arc<QueuedBytes>,
}

impl Store {
    /// Spawns the writer thread. There is exactly one per store: a second call is a bug.
    pub fn start_writer(&self, config: WriterConfig) -> Writer {
        self.claim_writer();
        spawn(self.clone(), config)
    }
}

fn spawn(store: Store, config: WriterConfig) -> Writer {
    assert!(
        config.requests_per_commit_max >= 1,
        "requests_per_commit_max must be at least 1"
    );
    let (sender, receiver) = mpsc::sync_channel(QUEUE_REQUESTS_MAX);
    let counters = Arc::new(Counters::default());
    let queued = Arc::new(QueuedBytes {
        bytes: Mutex::new(0),
        freed: Condvar::new(),
        bytes_max: config.queue_bytes_max,
    });
    let thread_counters = Arc::clone(&counters);
    let thread_queued = Arc::clone(&queued);
    let thread = thread::Builder::new()
        .name("storage-writer".to_string())
        .spawn(move || run(store, receiver, config, thread_counters, thread_queued))
        .unwrap_or_else(|error| fatal("spawn the storage writer thread", error));
    Writer {
        shared: Arc::new(Shared {
            sender: RwLock::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            counters,
            queued,
        }),
    }
}

impl Writer {
    /// Queues a batch; `done` runs on the writer thread after the transaction holding it
    /// committed with `Durability::Immediate`, or with an error if the batch was refused.
    /// Cheap unless the queue is full (`QUEUE_REQUESTS_MAX` requests or `queue_bytes_max`
    /// bytes): then it waits for commits. `Err(WriterStopped)` if the writer has stopped (then
    /// `done` is dropped without running). Panics on a self-inconsistent batch (a bug).
    pub fn submit(&self, batch: WriteBatch, done: Done) -> Result<(), StorageError> {
        batch.assert_valid();
        let sender = self
            .shared
            .sender
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sender = sender.as_ref().ok_or(StorageError::WriterStopped)?;
        let bytes = batch.size_bytes();
        self.shared.queued.take(bytes);
        sender.send(Request { batch, bytes, done }).map_err(|_| {
            self.shared.queued.give_back(bytes);
            StorageError::WriterStopped
        })
    }

    pub fn stats(&self) -> WriterStats {
        let counters = &self.shared.counters;
        WriterStats {
            commits: counters.commits.load(Ordering::Acquire),
            batches: counters.batches.load(Ordering::Acquire),
            bytes: counters.bytes.load(Ordering::Acquire),
            queued_bytes: self.shared.queued.queued(),
        }
    }

    /// Stops accepting batches, lets the thread commit everything already queued, and waits
    /// for it to exit. Must not be called from a `done` callback.
    pub fn shutdown(&self) {
        let sender = self
            .shared
            .sender
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        drop(sender);
        let thread = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            assert_ne!(
                thread.thread().id(),
                thread::current().id(),
                "Writer::shutdown called from a done callback"
            );
            // A panic on the writer thread aborts the process, so join cannot report one.
            let _ = thread.join();
        }
    }
}

/// Aborts the process if the writer thread unwinds.
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("storage writer panicked; aborting: durability of queued writes unknown");
            std::process::abort();
        }
    }
}

fn fatal(what: &str, error: impl std::fmt::Display) -> ! {
    tracing::error!(%error, "storage writer failed to {what}; durability unknown, aborting");
    eprintln!("storage writer failed to {what}: {error}; durability unknown, aborting");
    std::process::abort()
}

fn run(
    store: Store,
    receiver: Receiver<Request>,
    config: WriterConfig,
    counters: Arc<Counters>,
    queued: Arc<QueuedBytes>,
) {
    let _abort = AbortOnPanic;
    while let Ok(first) = receiver.recv() {
        let mut requests = vec![first];
        while requests.len() < config.requests_per_commit_max {
            match receiver.try_recv() {
                Ok(request) => requests.push(request),
                Err(_) => break,
            }
        }
        let bytes: u64 = requests.iter().map(|request| request.bytes).sum();
        commit(&store, requests, &counters);
        queued.give_back(bytes);
    }
}

/// Applies every request in one transaction, commits, then answers them in order.
fn commit(store: &Store, requests: Vec<Request>, counters: &Counters) {
    let mut transaction = store
        .database()
        .begin_write()
        .unwrap_or_else(|error| fatal("begin a write transaction", error));
    transaction
        .set_durability(Durability::Immediate)
        .unwrap_or_else(|error| fatal("set immediate durability", error));
    let batches = requests.len() as u64;
    let mut bytes = 0u64;
    let mut answers = Vec::with_capacity(requests.len());
    {
        let mut tables =
            WriteTables::open(&transaction).unwrap_or_else(|error| fatal("open the tables", error));
        for Request {
            batch,
            bytes: size,
            done,
        } in requests
        {
            bytes += size;
            let outcome = tables
                .apply(batch)
                .unwrap_or_else(|error| fatal("write a batch", error));
            answers.push((done, outcome));
        }
    }
    transaction
        .commit()
        .unwrap_or_else(|error| fatal("commit", error));
    counters.commits.fetch_add(1, Ordering::AcqRel);
    counters.batches.fetch_add(batches, Ordering::AcqRel);
    counters.bytes.fetch_add(bytes, Ordering::AcqRel);
    for (done, outcome) in answers {
        match outcome {
            Outcome::Written => done(Ok(())),
            Outcome::Refused(error) => done(Err(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn budget(bytes_max: u64) -> Arc<QueuedBytes> {
        Arc::new(QueuedBytes {
            bytes: Mutex::new(0),
            freed: Condvar::new(),
            bytes_max,
        })
    }

    #[test]
    fn a_batch_past_the_byte_budget_waits_until_commits_give_bytes_back() {
        let queued = budget(100);
        queued.take(60);
        let (taken, took) = mpsc::channel();
        let waiter = {
            let queued = queued.clone();
            thread::spawn(move || {
                queued.take(60);
                taken.send(()).expect("test waits");
            })
        };
        assert!(
            took.recv_timeout(Duration::from_millis(200)).is_err(),
            "60 more bytes were let in past a budget of 100 with 60 queued"
        );
        queued.give_back(60);
        took.recv_timeout(Duration::from_secs(10))
            .expect("the waiting batch goes in once the first is committed");
        waiter.join().expect("waiter");
        assert_eq!(queued.queued(), 60);
    }

    #[test]
    fn one_batch_larger_than_the_budget_is_let_in_when_nothing_is_queued() {
        let queued = budget(100);
        queued.take(1_000);
        assert_eq!(queued.queued(), 1_000);
        queued.give_back(1_000);
        assert_eq!(queued.queued(), 0);
    }
}
