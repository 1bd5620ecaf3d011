#!/usr/bin/env bash
# Starts the services the tests talk to (as scripts/test.sh does: PostgreSQL
# or a private cluster, moto_server, dataapi-local, nats-server), exports their
# CRAFT_TEST_* variables, runs the given command, then stops them.
#
#   scripts/with-services.sh cargo test -p craft-server --test persistence
#
# Handy while iterating on one crate or one test file; scripts/test.sh
# remains the command that runs everything.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [[ $# -eq 0 ]]; then
    echo "usage: scripts/with-services.sh COMMAND [ARGS...]" >&2
    exit 2
fi

# shellcheck source=lib/services.sh
source "$root/scripts/lib/services.sh"

start_postgres
start_moto
start_dataapi
start_nats

export CRAFT_TEST_REQUIRE_SERVICES=1
"$@"
