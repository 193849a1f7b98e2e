#!/bin/sh
# Runs the web console's end-to-end test (tests/console/e2e.mjs) in Debian's headless Chromium,
# driven by playwright-core. Installs what it needs first, pinned:
#   - Debian's chromium package at CHROMIUM_VERSION, when /usr/bin/chromium is missing (needs
#     root, as CI has; `apt-get update` first, since a fresh machine has no package lists);
#   - the npm packages of tests/console/package-lock.json, exactly, into a directory under the
#     cargo target directory, once per lock file; later runs reuse them. Install scripts are not
#     run: no package in the lock file has one, and Playwright's browser download is never used.
# tests/console.rs starts a 3-broker cluster and calls this.
#
# Usage: CONSOLE_URL=URL CONSOLE_CA=PEM ADMIN_PASSWORD=... CONSOLE_BROKERS=JSON \
#        CONSOLE_SCREENSHOTS=DIR [CONSOLE_DEADLINE_MS=UNIX_MS] tests/console.sh
# (the variables are described at the head of tests/console/e2e.mjs).
# Needs Node.js >= 20.19 with npm, and access to Debian's and npm's registries on the first run.
set -eu

# The candidate `apt-cache policy chromium` showed after `apt-get update` when this was pinned
# (bookworm-security). Debian keeps only the newest security build: when this one is withdrawn,
# the install below fails and says so; pin the new candidate then.
CHROMIUM_VERSION=156.0.8078.129-1~deb12u1

root=$(cd "$(dirname "$0")/.." && pwd)
source_dir="$root/tests/console"
target=${CARGO_TARGET_DIR:-"$root/target"}
install_dir="$target/console-node"
. "$root/tests/npm_install_once.sh"

: "${CONSOLE_URL:?CONSOLE_URL must be the broker's base URL}"
: "${CONSOLE_CA:?CONSOLE_CA must name the CA file of the brokers' HTTPS certificates}"
: "${ADMIN_PASSWORD:?ADMIN_PASSWORD must be the admin password}"
: "${CONSOLE_BROKERS:?CONSOLE_BROKERS must list the brokers as JSON}"
: "${CONSOLE_SCREENSHOTS:?CONSOLE_SCREENSHOTS must name the screenshots directory}"

# Tests run in parallel and may call this at once: one installs while the others wait.
mkdir -p "$target"
exec 9>"$target/console-install.lock"
flock 9
if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "tests/console.sh: /usr/bin/chromium is missing and installing it needs root" >&2
        exit 1
    fi
    echo "tests/console.sh: installing Debian's chromium $CHROMIUM_VERSION" >&2
    # Another apt user on the machine holds the dpkg lock for a while at most: wait for it.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    if ! DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
        --no-install-recommends "chromium=$CHROMIUM_VERSION" >&2; then
        echo "tests/console.sh: chromium=$CHROMIUM_VERSION could not be installed; Debian offers:" >&2
        apt-cache policy chromium >&2 || true
        echo "tests/console.sh: pin the candidate above as CHROMIUM_VERSION" >&2
        exit 1
    fi
fi
npm_install_once "$source_dir" "$install_dir"
exec 9>&-

# The test script is copied on every run, so an edit to it needs no reinstall.
cp "$source_dir/e2e.mjs" "$install_dir/"
cd "$install_dir"
echo "console e2e: $(/usr/bin/chromium --version 2>/dev/null | head -n 1), playwright-core $(node -p 'require("./node_modules/playwright-core/package.json").version')"
export CONSOLE_URL CONSOLE_CA ADMIN_PASSWORD CONSOLE_BROKERS CONSOLE_SCREENSHOTS
exec node "$install_dir/e2e.mjs"
