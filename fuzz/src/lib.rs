//! What the fuzz targets share: an allocator that measures the heap a decode takes, so a target
//! can check that a parser allocates in proportion to its input and never on a count the input
//! merely declares.
//!
//! Each target installs `Measured` as its global allocator and wraps the code under test in
//! `heap_peak_during`. libFuzzer runs one input at a time on one thread, so one pair of counters
//! is enough.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The largest single allocation a target may ask for. A parser that allocates on a declared
/// length or count asks for far more than this from a few input bytes; the allocator stops the
/// process then (libFuzzer records the input as a crash) instead of letting the system refuse.
pub const ALLOCATION_BYTES_MAX: usize = 256 * 1024 * 1024;

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their peak.
pub struct Measured;

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

fn refuse(bytes: usize) -> ! {
    // No allocation here: this runs inside the allocator.
    let message = b"palisade-fuzz: refused one allocation above ALLOCATION_BYTES_MAX\n";
    // SAFETY: writing a static buffer to stderr.
    unsafe { libc_write(2, message.as_ptr(), message.len()) };
    let _ = bytes;
    std::process::abort();
}

extern "C" {
    #[link_name = "write"]
    fn libc_write(fd: i32, buffer: *const u8, count: usize) -> isize;
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are only bookkeeping.
unsafe impl GlobalAlloc for Measured {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_BYTES_MAX {
            refuse(layout.size());
        }
        let pointer = System.alloc(layout);
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_BYTES_MAX {
            refuse(layout.size());
        }
        let pointer = System.alloc_zeroed(layout);
        if !pointer.is_null() {
            grew(layout.size());
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        System.dealloc(pointer, layout);
        LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_BYTES_MAX {
            refuse(new_size);
        }
        let moved = System.realloc(pointer, layout, new_size);
        if !moved.is_null() {
            LIVE_BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            grew(new_size);
        }
        moved
    }
}

/// Runs `work` and returns its result with the most heap bytes it held at once beyond what was
/// live before it started.
pub fn heap_peak_during<R>(work: impl FnOnce() -> R) -> (R, usize) {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(before, Ordering::Relaxed);
    let result = work();
    let peak = PEAK_BYTES.load(Ordering::Relaxed);
    (result, peak.saturating_sub(before))
}
