//! A build without the `test-hooks` feature (what `cargo build --release` and `cargo install`
//! make) cannot acknowledge before commit or skip fsync: the switches that turn them on (and the
//! simulated power loss) are not in the binary.
//!
//! Builds the `palisade` binary without features in the test build's target directory (only the
//! crate itself is compiled again; the test build's binary is put back), then looks for
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
    memchr::memmem::find(&bytes, needle.as_bytes()).is_some()
}

fn build_without_features() -> PathBuf {
    // The test build's own target directory and profile, so the dependencies it compiled are
    // reused: only the crate itself is compiled again without the feature (a separate target
    // directory compiled the whole tree a second time, minutes on a clean CI machine).
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the tmp directory lies in the target directory")
        .to_path_buf();
    // That build replaces the test build's `palisade` (which the tests after this one run, with
    // its hooks) by the one without the feature: keep the test build aside and put it back.
    let built = target.join("debug").join("palisade");
    let kept = target.join("tmp").join("palisade-with-test-hooks");
    let without = target.join("tmp").join("palisade-without-features");
    std::fs::copy(&built, &kept).expect("keep the test build");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--bin", "palisade"])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    let copied = std::fs::copy(&built, &without);
    // Put the test build back even if the build failed.
    let _ = std::fs::remove_file(&built);
    std::fs::copy(&kept, &built).expect("put the test build back");
    assert!(status.success(), "cargo build without features failed");
    copied.expect("copy the build without features");
    without
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
