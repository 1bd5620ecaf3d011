#!/usr/bin/env bash
# Runs every test of the workspace against real services, starting what is
# missing first:
#
#   - PostgreSQL: the local server on 127.0.0.1:5432 when it answers, else a
#     private cluster (initdb + pg_ctl) in a temporary directory. Each run
#     gets its own database, dropped at the end.
#   - DynamoDB: moto_server (PyPI moto[server], installed into a virtualenv
#     under $CRAFT_TEST_CACHE) on a free loopback port.
#   - Aurora Data API: dataapi-local (this workspace) over PostgreSQL, on a
#     free loopback port.
#   - NATS (the fleet bus): nats-server on a free loopback port.
#
# Usage: scripts/test.sh [extra cargo test arguments]
# Everything started here is stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# shellcheck source=lib/services.sh
source "$root/scripts/lib/services.sh"

start_postgres
start_moto
start_dataapi
start_nats

# The admin page's browser test needs Chromium; it is not a service this
# script starts, so say so up front (the test fails without it here).
if ! command -v chromium >/dev/null 2>&1 && [[ -z "${CRAFT_CHROMIUM:-}" ]]; then
    log "chromium is missing: the browser test will fail; install it with" \
        "'apt-get install -y --no-install-recommends chromium' (or set CRAFT_CHROMIUM)"
fi

export CRAFT_TEST_REQUIRE_SERVICES=1
log "running cargo test"
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc

# --- Deployment files (Dockerfile, docker-compose.yml, deploy/) ----------
# Offline schema and cross-reference checks, plus a self-test proving that
# deliberately broken copies are rejected; the craft-server binary built
# above also parses the Kubernetes ConfigMap's settings. Skip with
# CRAFT_TEST_SKIP_DEPLOY=1 while iterating on Rust code.
if [[ -z "${CRAFT_TEST_SKIP_DEPLOY:-}" ]]; then
    server_bin=${CARGO_TARGET_DIR:-target}/debug/craft-server
    [[ $server_bin == /* ]] || server_bin="$root/$server_bin"
    log "validating the deployment files (scripts/validate-deploy.sh)"
    CRAFT_TEST_CACHE="$cache" "$root/scripts/validate-deploy.sh" --self-test --server-bin "$server_bin"
fi
