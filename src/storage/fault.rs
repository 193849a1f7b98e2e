//! Storage faults for tests: a redb `StorageBackend` that loses unsynced writes at a simulated
//! power cut, and fsync or write failures on demand. Only builds with the `test-hooks` feature
//! contain it; `Store::open_with_cache` uses it when one of the environment switches below is set.
//!
//! **Power loss** (`POWER_LOSS_ENV=1`): a write stays in this process's memory until the next
//! `sync_data`, which writes it to the file and fsyncs. A SIGKILL of the broker therefore loses
//! every write not yet synced, as a power cut loses the page cache: the worst case of a kernel that
//! wrote back nothing on its own. `WRITEBACK_ENV=<fraction>,<seed>` models a kernel that does write
//! back some dirty pages early: each write goes through to the file at once with that probability
//! (still unsynced), so a cut leaves a random, seeded subset of the unsynced writes on disk.
//! File-system metadata is not modelled: the data directory and the database file are created once
//! and their directory entries are fsynced before the store opens.
//!
//! **Failing disk** (`SYNC_FAIL_FILE_ENV=<path>`, `WRITE_FAIL_FILE_ENV=<path>`): while the named
//! file exists, every `sync_data` (or `write`) fails with EIO. A failed sync also drops the
//! buffered writes, as Linux marks pages clean after a failed writeback: nothing tells the caller
//! what reached the disk. The test creates the file while the broker runs.
//!
//! **The negative control** (`UNSAFE_SKIP_FSYNC_ENV=1`): `sync_data` does nothing, so the broker
//! acknowledges what is only in the page cache (or, with power loss on, only in memory). SIGKILL
//! tests cannot see this; a power cut loses those records and the durability checker must say so.
//!
//! Must not: be used by a build without `test-hooks`; hold more than one transaction's writes
//! (every commit of the broker syncs) except under the negative control.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// `1`: unsynced writes live only in memory until `sync_data` (lost at SIGKILL).
pub const POWER_LOSS_ENV: &str = "PALISADE_TEST_POWER_LOSS";
/// `<fraction>,<seed>`: with power loss on, the fraction of writes that reach the file early.
pub const WRITEBACK_ENV: &str = "PALISADE_TEST_POWER_LOSS_WRITEBACK";
/// A path: while that file exists, `sync_data` fails with EIO and drops the buffered writes.
pub const SYNC_FAIL_FILE_ENV: &str = "PALISADE_TEST_SYNC_FAIL_FILE";
/// A path: while that file exists, `write` fails with EIO.
pub const WRITE_FAIL_FILE_ENV: &str = "PALISADE_TEST_WRITE_FAIL_FILE";
/// `1`: `sync_data` does nothing: the broker acknowledges writes that are not durable.
pub const UNSAFE_SKIP_FSYNC_ENV: &str = "PALISADE_UNSAFE_TEST_SKIP_FSYNC";

/// The unit the buffer keeps writes in.
const PAGE: u64 = 4096;

/// The faults one store runs with, read from the environment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub power_loss: bool,
    /// (probability, seed) of an early write-back.
    pub writeback: Option<(f64, u64)>,
    pub sync_fail_file: Option<PathBuf>,
    pub write_fail_file: Option<PathBuf>,
    pub skip_fsync: bool,
}

impl Faults {
    /// The faults the environment asks for; `None` when it asks for none.
    pub fn from_env() -> Result<Option<Faults>, String> {
        let flag = |name: &str| std::env::var(name).is_ok_and(|value| value == "1");
        let path = |name: &str| std::env::var_os(name).map(PathBuf::from);
        let writeback = match std::env::var(WRITEBACK_ENV) {
            Ok(text) => Some(parse_writeback(&text)?),
            Err(_) => None,
        };
        let faults = Faults {
            power_loss: flag(POWER_LOSS_ENV),
            writeback,
            sync_fail_file: path(SYNC_FAIL_FILE_ENV),
            write_fail_file: path(WRITE_FAIL_FILE_ENV),
            skip_fsync: flag(UNSAFE_SKIP_FSYNC_ENV),
        };
        if faults.writeback.is_some() && !faults.power_loss {
            return Err(format!("{WRITEBACK_ENV} needs {POWER_LOSS_ENV}=1"));
        }
        Ok((faults != Faults::default()).then_some(faults))
    }
}

fn parse_writeback(text: &str) -> Result<(f64, u64), String> {
    let bad = || format!("{WRITEBACK_ENV} is <fraction in 0..=1>,<seed>, not {text:?}");
    let (fraction, seed) = text.split_once(',').ok_or_else(bad)?;
    let fraction: f64 = fraction.trim().parse().map_err(|_| bad())?;
    let seed: u64 = seed.trim().parse().map_err(|_| bad())?;
    if !(0.0..=1.0).contains(&fraction) {
        return Err(bad());
    }
    Ok((fraction, seed))
}

/// The writes since the last sync, page by page, over the file's synced content.
#[derive(Debug)]
struct Buffer {
    /// The length redb sees.
    len: u64,
    /// File bytes at or past this offset are stale (a shrink since the last sync): they read as
    /// zeros unless a buffered page covers them.
    stale_from: u64,
    /// Page number → the page's current content (the last page may extend past `len`).
    dirty: BTreeMap<u64, Box<[u8]>>,
    /// xorshift state of the early write-back.
    rng: u64,
}

/// A redb backend over a real file with the faults of `Faults`.
#[derive(Debug)]
pub struct FaultBackend {
    file: FileBackend,
    faults: Faults,
    buffer: Mutex<Buffer>,
    warned: AtomicBool,
}

fn eio(what: &str) -> io::Error {
    io::Error::other(format!("injected I/O error: {what} (test fault)"))
}

impl FaultBackend {
    pub fn new(file: File, faults: Faults) -> io::Result<FaultBackend> {
        let len = file.metadata()?.len();
        let seed = faults.writeback.map_or(0, |(_, seed)| seed);
        Ok(FaultBackend {
            file: FileBackend::new(file).map_err(io::Error::other)?,
            buffer: Mutex::new(Buffer {
                len,
                stale_from: len,
                dirty: BTreeMap::new(),
                rng: seed.max(1),
            }),
            faults,
            warned: AtomicBool::new(false),
        })
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failing(&self, marker: &Option<PathBuf>, what: &str) -> bool {
        let failing = marker.as_ref().is_some_and(|path| path.exists());
        if failing && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!("storage fault injected: {what} fails with EIO (test-only)");
        }
        failing
    }

    /// The page `number` as redb would read it: buffered, else the file's synced bytes, else zeros.
    fn page(&self, buffer: &Buffer, number: u64) -> io::Result<Box<[u8]>> {
        if let Some(page) = buffer.dirty.get(&number) {
            return Ok(page.clone());
        }
        let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
        self.read_synced(buffer, number * PAGE, &mut page)?;
        Ok(page)
    }

    /// Reads `out` at `offset` from the file's synced bytes; stale or absent bytes are zeros.
    fn read_synced(&self, buffer: &Buffer, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = offset + out.len() as u64;
        let readable_end = self.file.len()?.min(buffer.stale_from).min(end);
        let readable = readable_end.saturating_sub(offset) as usize;
        if readable > 0 {
            self.file.read(offset, &mut out[..readable])?;
        }
        out[readable..].fill(0);
        Ok(())
    }

    fn flush(&self, buffer: &mut Buffer) -> io::Result<()> {
        self.file.set_len(buffer.stale_from.min(self.file.len()?))?;
        self.file.set_len(buffer.len)?;
        for (number, page) in std::mem::take(&mut buffer.dirty) {
            let start = number * PAGE;
            if start >= buffer.len {
                continue;
            }
            let end = (start + PAGE).min(buffer.len);
            self.file.write(start, &page[..(end - start) as usize])?;
        }
        buffer.stale_from = buffer.len;
        Ok(())
    }

    /// Whether this write goes through to the file early (seeded).
    fn written_back(&self, buffer: &mut Buffer) -> bool {
        let Some((fraction, _)) = self.faults.writeback else {
            return false;
        };
        let mut x = buffer.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buffer.rng = x;
        (x >> 11) as f64 / (1u64 << 53) as f64 <= fraction
    }
}

impl StorageBackend for FaultBackend {
    fn len(&self) -> Result<u64, io::Error> {
        if self.faults.power_loss {
            return Ok(self.buffer().len);
        }
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        if !self.faults.power_loss {
            return self.file.read(offset, out);
        }
        let buffer = self.buffer();
        let end = offset + out.len() as u64;
        if end > buffer.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            ));
        }
        let mut at = offset;
        while at < end {
            let number = at / PAGE;
            let within = (at % PAGE) as usize;
            let take = ((PAGE - at % PAGE).min(end - at)) as usize;
            let from = (at - offset) as usize;
            let target = &mut out[from..from + take];
            match buffer.dirty.get(&number) {
                Some(page) => target.copy_from_slice(&page[within..within + take]),
                None => self.read_synced(&buffer, at, target)?,
            }
            at += take as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        if !self.faults.power_loss {
            return self.file.set_len(len);
        }
        let mut buffer = self.buffer();
        if len < buffer.len {
            buffer.stale_from = buffer.stale_from.min(len);
            let first_gone = len.div_ceil(PAGE);
            buffer.dirty.retain(|number, _| *number < first_gone);
            if len % PAGE != 0 {
                let number = len / PAGE;
                let mut page = self.page(&buffer, number)?;
                page[(len % PAGE) as usize..].fill(0);
                buffer.dirty.insert(number, page);
            }
        }
        buffer.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        if self.faults.skip_fsync {
            return Ok(());
        }
        if self.failing(&self.faults.sync_fail_file, "fsync") {
            self.buffer().dirty.clear();
            return Err(eio("fsync"));
        }
        if self.faults.power_loss {
            let mut buffer = self.buffer();
            self.flush(&mut buffer)?;
        }
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        if self.failing(&self.faults.write_fail_file, "write") {
            return Err(eio("write"));
        }
        if !self.faults.power_loss {
            return self.file.write(offset, data);
        }
        let mut buffer = self.buffer();
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let number = at / PAGE;
            let within = (at % PAGE) as usize;
            let take = ((PAGE - at % PAGE).min(end - at)) as usize;
            let mut page = self.page(&buffer, number)?;
            let from = (at - offset) as usize;
            page[within..within + take].copy_from_slice(&data[from..from + take]);
            buffer.dirty.insert(number, page);
            at += take as u64;
        }
        buffer.len = buffer.len.max(end);
        if self.written_back(&mut buffer) {
            self.file.write(offset, data)?;
        }
        Ok(())
    }

    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(dir: &std::path::Path, faults: Faults) -> FaultBackend {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("db"))
            .unwrap();
        FaultBackend::new(file, faults).unwrap()
    }

    fn power_loss() -> Faults {
        Faults {
            power_loss: true,
            ..Faults::default()
        }
    }

    fn read(backend: &FaultBackend, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        backend.read(offset, &mut out).unwrap();
        out
    }

    #[test]
    fn unsynced_writes_are_read_back_but_never_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend(dir.path(), power_loss());
        backend.set_len(10_000).unwrap();
        backend.write(4090, b"across a page boundary").unwrap();
        assert_eq!(read(&backend, 4090, 22), b"across a page boundary");
        assert_eq!(read(&backend, 0, 4), [0; 4], "new bytes read as zeros");
        let on_disk = std::fs::read(dir.path().join("db")).unwrap();
        assert!(
            on_disk.is_empty(),
            "nothing reached the file before the sync"
        );
        backend.sync_data().unwrap();
        let on_disk = std::fs::read(dir.path().join("db")).unwrap();
        assert_eq!(on_disk.len(), 10_000);
        assert_eq!(&on_disk[4090..4112], b"across a page boundary");
    }

    #[test]
    fn a_cut_keeps_only_what_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        {
            let backend = backend(dir.path(), power_loss());
            backend.write(0, b"synced").unwrap();
            backend.sync_data().unwrap();
            backend.write(0, b"lost!!").unwrap();
            backend.write(8192, b"also lost").unwrap();
            // Dropped without a sync: the power cut.
        }
        let on_disk = std::fs::read(dir.path().join("db")).unwrap();
        assert_eq!(on_disk, b"synced");
    }

    #[test]
    fn a_shrink_then_growth_reads_zeros_where_old_bytes_were() {
        let dir = tempfile::tempdir().unwrap();
        let backend = backend(dir.path(), power_loss());
        backend.write(0, &[7; 9000]).unwrap();
        backend.sync_data().unwrap();
        backend.set_len(100).unwrap();
        backend.set_len(9000).unwrap();
        assert_eq!(read(&backend, 0, 100), [7; 100]);
        assert_eq!(read(&backend, 100, 8900), vec![0; 8900]);
        assert!(backend.read(8990, &mut [0; 20]).is_err(), "past the end");
        backend.sync_data().unwrap();
        let on_disk = std::fs::read(dir.path().join("db")).unwrap();
        assert_eq!(&on_disk[..100], &[7; 100]);
        assert_eq!(&on_disk[100..], vec![0; 8900].as_slice());
    }

    #[test]
    fn a_failed_sync_drops_the_buffered_writes_and_reports_eio() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("fail");
        let faults = Faults {
            sync_fail_file: Some(marker.clone()),
            ..power_loss()
        };
        let backend = backend(dir.path(), faults);
        backend.write(0, b"first").unwrap();
        backend.sync_data().unwrap();
        std::fs::write(&marker, "").unwrap();
        backend.write(0, b"never").unwrap();
        let error = backend.sync_data().unwrap_err();
        assert!(error.to_string().contains("injected I/O error"), "{error}");
        assert_eq!(read(&backend, 0, 5), b"first", "the failed write is gone");
    }

    #[test]
    fn a_write_fails_while_the_marker_exists() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("fail");
        let faults = Faults {
            write_fail_file: Some(marker.clone()),
            ..Faults::default()
        };
        let backend = backend(dir.path(), faults);
        backend.write(0, b"fine").unwrap();
        std::fs::write(&marker, "").unwrap();
        assert!(backend.write(0, b"fails").is_err());
        std::fs::remove_file(&marker).unwrap();
        backend.write(4, b"again").unwrap();
        assert_eq!(std::fs::read(dir.path().join("db")).unwrap(), b"fineagain");
    }

    #[test]
    fn early_write_back_puts_a_seeded_subset_on_disk() {
        let run = |seed| {
            let dir = tempfile::tempdir().unwrap();
            {
                let faults = Faults {
                    writeback: Some((0.5, seed)),
                    ..power_loss()
                };
                let backend = backend(dir.path(), faults);
                backend.set_len(64 * PAGE).unwrap();
                backend.sync_data().unwrap();
                for page in 0..64 {
                    backend.write(page * PAGE, &[1; 16]).unwrap();
                }
            }
            let on_disk = std::fs::read(dir.path().join("db")).unwrap();
            (0..64)
                .filter(|page| on_disk[(page * PAGE) as usize] == 1)
                .count()
        };
        let written = run(42);
        assert!(written > 0 && written < 64, "{written} of 64 pages");
        assert_eq!(run(42), written, "the same seed writes back the same pages");
    }

    #[test]
    fn the_environment_is_parsed_strictly() {
        assert_eq!(parse_writeback("0.25,7"), Ok((0.25, 7)));
        assert!(parse_writeback("2,7").is_err());
        assert!(parse_writeback("0.5").is_err());
    }
}
