//! The web console (`/console`) end to end in real headless Chromium against a real 3-broker
//! cluster. `tests/console.sh` installs Debian's Chromium and playwright-core (both pinned) on
//! first use and runs `tests/console/e2e.mjs`, which signs in as admin, creates a topic, follows
//! a partition's live tail (re-ticketing a cut stream, giving up on one that keeps failing) while
//! producing through the console, describes a consumer group, creates a user and an ACL and
//! watches the explain view turn from default deny to allowed, finds those changes in the audit
//! view with the hash chain verified in the browser (and a tampered page caught), SIGKILLs a
//! broker that leads partitions (by the pid passed here) and waits for the cluster view to mark it
//! down with its leaders moved, checks the page at phone width and by keyboard, and signs out,
//! after which the old token is refused. It also checks the console's security headers and fails
//! on any Content-Security-Policy violation (after showing that a planted one is caught).
//!
//! Screenshots of every view go to a temporary directory, or with
//! `PALISADE_CONSOLE_SCREENSHOTS=1` to `docs/console/` in the repository.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::cluster::TestCluster;
use common::script::{last_chars, run_in_group, ScriptRun};
use common::ADMIN_PASSWORD;

/// Longest the script may take, a first install of Chromium and the npm packages included.
const SCRIPT_WAIT: Duration = Duration::from_secs(600);

/// Longest the browser part may take once installed (it needs about a minute).
const E2E_BUDGET: Duration = Duration::from_secs(180);

/// Most characters of the script's output and of the broker logs shown with a failure.
const EXCERPT_CHARS_MAX: usize = 20_000;

fn screenshots_dir(cluster: &TestCluster) -> PathBuf {
    if std::env::var("PALISADE_CONSOLE_SCREENSHOTS").as_deref() == Ok("1") {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console")
    } else {
        cluster.dir.path().join("screenshots")
    }
}

/// The brokers as the script reads them: id, base URL and pid (to SIGKILL one by pid).
fn brokers_json(cluster: &TestCluster) -> String {
    let brokers: Vec<serde_json::Value> = cluster
        .nodes
        .iter()
        .map(|node| {
            serde_json::json!({
                "id": node.id,
                "url": node.url,
                "pid": node.pid().expect("every broker runs"),
            })
        })
        .collect();
    serde_json::Value::Array(brokers).to_string()
}

/// Runs `tests/console.sh` in a process group of its own (node and Chromium are killed together
/// on a timeout), its output going to `log`.
fn run_script(cluster: &TestCluster, screenshots: &Path, log: &Path) -> ScriptRun {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console.sh");
    let output = std::fs::File::create(log).expect("create the script log");
    let deadline_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
        + (SCRIPT_WAIT - Duration::from_secs(10)).as_millis();
    let mut command = Command::new(script);
    command
        .env("CONSOLE_URL", &cluster.node(1).url)
        .env("CONSOLE_CA", &cluster.ca)
        .env("ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("CONSOLE_BROKERS", brokers_json(cluster))
        .env("CONSOLE_SCREENSHOTS", screenshots)
        .env("CONSOLE_DEADLINE_MS", deadline_ms.to_string())
        .env("CONSOLE_BUDGET_MS", E2E_BUDGET.as_millis().to_string())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("clone the log handle"))
        .stderr(output);
    run_in_group(command, SCRIPT_WAIT)
}

/// The last `EXCERPT_CHARS_MAX` characters of `text`.
fn tail(text: &str) -> &str {
    last_chars(text, EXCERPT_CHARS_MAX)
}

#[tokio::test]
async fn the_console_works_end_to_end_in_headless_chromium() {
    let cluster = TestCluster::start(3).await;
    let screenshots = screenshots_dir(&cluster);
    std::fs::create_dir_all(&screenshots).expect("the screenshots directory");
    let log = cluster.dir.path().join("console-e2e.log");
    let started = Instant::now();
    let run = run_script(&cluster, &screenshots, &log);
    let elapsed = started.elapsed();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    match run {
        ScriptRun::Exited(status) if status.success() => {
            println!("{output}");
            println!(
                "console e2e passed in {elapsed:.1?}; screenshots in {}",
                screenshots.display()
            );
        }
        ScriptRun::Exited(status) => panic!(
            "tests/console.sh failed ({status}) after {elapsed:.1?}; its output:\n{}\n\
             broker logs:\n{}",
            tail(&output),
            tail(&cluster.logs())
        ),
        ScriptRun::TimedOut => panic!(
            "tests/console.sh ran past {SCRIPT_WAIT:?} and was killed; its output:\n{}\n\
             broker logs:\n{}",
            tail(&output),
            tail(&cluster.logs())
        ),
    }
}
