#!/bin/sh
# Runs schemathesis (property-based API tests from the OpenAPI document) with the given
# arguments. It is installed, at a pinned version, into a Python virtual environment under the
# cargo target directory, once; later runs reuse it. tests/openapi_conformance.rs calls this
# against a broker it starts.
#
# Usage: tests/schemathesis.sh run LOCATION [OPTIONS]
# Needs python3 with the venv module and access to PyPI on the first run.
set -eu

SCHEMATHESIS_VERSION=4.32.5

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-"$root/target"}
venv="$target/schemathesis-venv"
stamp="$venv/.installed-$SCHEMATHESIS_VERSION"

# Tests run in parallel and may call this at once: one installs while the others wait.
mkdir -p "$target"
exec 9>"$venv.lock"
flock 9
if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "schemathesis==$SCHEMATHESIS_VERSION"
    touch "$stamp"
fi
exec 9>&-

exec "$venv/bin/schemathesis" "$@"
