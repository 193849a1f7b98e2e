#!/bin/sh
# Validates Kubernetes manifests against the Kubernetes schemas (kubernetes-validate) and a
# policy linter (checkov). Both are installed, at pinned versions, into a Python virtual
# environment under the cargo target directory, once; later runs reuse it.
#
# Usage: deploy/check.sh [DIR]   (DIR defaults to deploy/kubernetes)
# Needs python3 with the venv module and access to PyPI on the first run.
set -eu

KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
# The Kubernetes version whose schemas the manifests must satisfy.
KUBERNETES_VERSION=1.33.0

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-"$root/deploy/kubernetes"}
target=${CARGO_TARGET_DIR:-"$root/target"}
venv="$target/deploy-venv"
stamp="$venv/.installed-$KUBERNETES_VALIDATE_VERSION-$CHECKOV_VERSION"

# Tests run in parallel and may call this at once: one installs while the others wait.
mkdir -p "$target"
exec 9>"$venv.lock"
flock 9
if [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION"
    touch "$stamp"
fi
exec 9>&-

# cert-manager resources have no schema in kubernetes-validate: they are checked by checkov and
# by tests/deploy_manifests.rs only.
set -- "$dir"/*.yaml
"$venv/bin/kubernetes-validate" --strict --kubernetes-version "$KUBERNETES_VERSION" \
    --quiet "$@"

"$venv/bin/checkov" --quiet --compact --framework kubernetes --directory "$dir" \
    --skip-download --output cli
