//! A panic anywhere in a broker process, on any thread, stops the process
//! (`app::abort_on_panic`): a broken invariant on an arbiter thread must not leave the broker
//! serving with one replica's actor gone.
//!
//! The test runs this test binary again as a child that installs the hook and panics on a
//! spawned thread; the parent checks the child was killed by SIGABRT. Without the hook the
//! child's main thread survives the panic and exits normally, which the second case shows.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

const CHILD_ENV: &str = "PALISADE_TEST_PANIC_CHILD";

/// Runs as the child when `CHILD_ENV` is set: `hook` installs the hook first.
#[test]
fn panicking_child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    if mode == "hook" {
        palisade::app::abort_on_panic();
    }
    let worker = std::thread::spawn(|| panic!("invariant broken on a worker thread"));
    let joined = worker.join();
    assert!(joined.is_err(), "the worker panicked");
    // Reached only without the hook: the process lives on after a thread's panic.
    println!("survived");
}

fn run_child(mode: &str) -> std::process::Output {
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([
            "--exact",
            "panicking_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .output()
        .expect("child runs")
}

#[test]
fn a_panic_on_any_thread_aborts_a_process_with_the_hook() {
    let with_hook = run_child("hook");
    assert_eq!(
        with_hook.status.signal(),
        Some(libc::SIGABRT),
        "status {:?}, stderr {}",
        with_hook.status,
        String::from_utf8_lossy(&with_hook.stderr)
    );
    let stderr = String::from_utf8_lossy(&with_hook.stderr);
    assert!(
        stderr.contains("invariant broken on a worker thread"),
        "the panic message is printed before the abort: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&with_hook.stdout).contains("survived"));

    let without = run_child("plain");
    assert!(without.status.success(), "status {:?}", without.status);
    assert!(String::from_utf8_lossy(&without.stdout).contains("survived"));
}
