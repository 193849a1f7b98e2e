#!/bin/sh
# Runs the official Durable Streams conformance suite (npm package
# @durable-streams/server-conformance-tests, run by vitest) against a server. The packages are
# installed from the lock file in tests/durable_streams/, exactly, into a directory under the
# cargo target directory, once per lock file; later runs reuse them. Install scripts are not run:
# no package in the lock file has one. tests/durable_streams_conformance.rs calls this against a
# broker it starts.
#
# Usage: DS_BASE_URL=URL DS_RESULTS_FILE=PATH [DS_LONG_POLL_MS=MS] tests/durable_streams.sh [VITEST OPTIONS]
#   DS_BASE_URL      the server's Durable Streams base URL; streams are created under
#                    DS_BASE_URL/v1/stream/
#   DS_RESULTS_FILE  where vitest writes its JSON report (absolute path)
#   DS_LONG_POLL_MS  the server's long-poll timeout in ms (default 20000, the suite's)
#   NODE_EXTRA_CA_CERTS  a PEM file of extra CAs for an HTTPS server (Node reads it itself)
# Needs Node.js >= 20.19 with npm, and access to the npm registry on the first run.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
source_dir="$root/tests/durable_streams"
target=${CARGO_TARGET_DIR:-"$root/target"}
install_dir="$target/durable-streams-node"
. "$root/tests/npm_install_once.sh"

: "${DS_BASE_URL:?DS_BASE_URL must be the server's Durable Streams base URL}"
: "${DS_RESULTS_FILE:?DS_RESULTS_FILE must name the file for the JSON results}"

# Tests run in parallel and may call this at once: one installs while the others wait.
mkdir -p "$target"
exec 9>"$install_dir.lock"
flock 9
npm_install_once "$source_dir" "$install_dir"
exec 9>&-

# The test file and config are copied on every run, so an edit to them needs no reinstall.
cp "$source_dir/vitest.config.js" "$source_dir/conformance.test.js" "$install_dir/"
cd "$install_dir"
export DS_BASE_URL DS_RESULTS_FILE
exec "$install_dir/node_modules/.bin/vitest" run --config "$install_dir/vitest.config.js" "$@"
