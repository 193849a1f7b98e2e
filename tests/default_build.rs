//! A build without the `test-hooks` feature (what `cargo build --release` and `cargo install`
//! make) cannot acknowledge before commit or skip fsync: the switches that turn them on (and the
//! simulated power loss) are not in the binary.
//!
//! Builds the `palisade` binary without features into its own target directory, then looks for
//! the switch's environment variable name and its warning in the bytes of both binaries. The
//! test build (which has the hooks) must contain them, which shows the search finds them where
//! they are.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The unsafe switches' names and the warning printed when the first is on.
const HOOK_STRINGS: [&str; 4] = [
    palisade::app::UNSAFE_ACK_ENV,
    "acknowledged BEFORE they are durable",
    palisade::storage::fault::UNSAFE_SKIP_FSYNC_ENV,
    palisade::storage::fault::POWER_LOSS_ENV,
];

fn contains(binary: &Path, needle: &str) -> bool {
    let bytes = std::fs::read(binary).unwrap_or_else(|e| panic!("read {binary:?}: {e}"));
    bytes
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

fn build_without_features() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("default-build");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--bin", "palisade"])
        // Without debug info and incremental state the second build needs a fraction of the
        // disk; the strings looked for are data, present either way.
        .args(["--config", "profile.dev.debug=false"])
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build without features failed");
    target.join("debug").join("palisade")
}

#[test]
fn the_default_build_has_no_unsafe_ack_switch() {
    let test_binary = Path::new(env!("CARGO_BIN_EXE_palisade"));
    for needle in HOOK_STRINGS {
        assert!(
            contains(test_binary, needle),
            "the test build should contain {needle:?}; the search cannot be trusted"
        );
    }
    let default_binary = build_without_features();
    for needle in HOOK_STRINGS {
        assert!(
            !contains(&default_binary, needle),
            "a build without test-hooks contains {needle:?}"
        );
    }
}
