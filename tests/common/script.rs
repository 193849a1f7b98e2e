//! Programs the tests drive (a Node conformance suite, a browser script), each run in a process
//! group of its own so that a timeout kills it with every child it started; and excerpts of long
//! outputs for failure messages.

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// How a program run by `run_in_group` ended.
#[derive(Debug)]
pub enum ScriptRun {
    Exited(ExitStatus),
    /// It ran past its wait and was killed with its whole process group.
    TimedOut,
}

/// Spawns `command` as the leader of a new process group and waits up to `wait` for it; past
/// that, SIGKILLs the group and reaps the program.
pub fn run_in_group(mut command: Command, wait: Duration) -> ScriptRun {
    use std::os::unix::process::CommandExt;
    let mut child = command
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| panic!("run {command:?}: {error}"));
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return ScriptRun::Exited(status);
        }
        if Instant::now() >= deadline {
            let group = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
            // SAFETY: kill(2) on the process group our unreaped child leads.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
            child.wait().expect("wait for the killed program");
            return ScriptRun::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The last `max` bytes of `text`, moved forward to a character boundary.
pub fn last_chars(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// The first `max` bytes of `text`, moved back to a character boundary.
pub fn first_chars(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
