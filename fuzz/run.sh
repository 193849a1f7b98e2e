#!/usr/bin/env bash
# Runs the fuzz targets one after another, FUZZ_SECONDS (default 30) each; with arguments, only
# the targets named. Installs the pinned cargo-fuzz if it is missing. A crash stops the script
# with libFuzzer's exit status and leaves the input in fuzz/artifacts/<target>/.
#
#   fuzz/run.sh                          # every target, 30 s each
#   FUZZ_SECONDS=600 fuzz/run.sh         # every target, 10 min each
#   fuzz/run.sh peer_frame               # one target
#
# FUZZ_SANITIZER (default none): the targets are safe Rust, so the sanitizer buys little and
# costs half the speed; `address` needs RUSTC_BOOTSTRAP=1 on a stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
TARGETS=(peer_frame http_json token)

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

if [ "$#" -gt 0 ]; then
  TARGETS=("$@")
fi
for target in "${TARGETS[@]}"; do
  # libFuzzer adds new inputs to the first directory (ignored by git); the seeds are read only.
  mkdir -p "fuzz/corpus/$target"
  cargo fuzz run --sanitizer "$FUZZ_SANITIZER" "$target" \
    "fuzz/corpus/$target" "fuzz/seeds/$target" \
    -- -max_total_time="$FUZZ_SECONDS" -print_final_stats=1
done
