# Starts the services the tests and benchmarks talk to; sourced by
# scripts/test.sh and scripts/bench.sh (which set $root first).
#
#   - PostgreSQL: the local server on 127.0.0.1:5432 when it answers, else a
#     private cluster (initdb + pg_ctl) in a temporary directory. Each run
#     gets its own database, dropped at the end.
#   - DynamoDB: moto_server (PyPI moto[server], installed into a virtualenv
#     under $CRAFT_TEST_CACHE) on a free loopback port.
#   - Aurora Data API: dataapi-local (this workspace) over PostgreSQL, on a
#     free loopback port ($CRAFT_SERVICES_PROFILE=release builds it
#     optimised).
#   - NATS (the fleet bus): nats-server (Debian package nats-server) on a
#     free loopback port.
#
# Everything started here is stopped by the EXIT trap it installs.

cache=${CRAFT_TEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/craft-server-test}
work=$(mktemp -d -t craft-test.XXXXXX)
pids=()
pg_private=""
pg_admin_url=""
test_db=""

log() { printf "[%s] %s\n" "$(basename "$0")" "$*" >&2; }

cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "$test_db" && -n "$pg_admin_url" ]]; then
        psql "$pg_admin_url" -qAtc "DROP DATABASE IF EXISTS \"$test_db\" WITH (FORCE)" >/dev/null 2>&1 || true
        psql "$pg_admin_url" -qAtc "DROP DATABASE IF EXISTS \"${test_db}_dataapi\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [[ -n "$pg_private" ]]; then
        pg_ctl -D "$pg_private/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for_port() { # host port what
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    log "$3 did not start listening on $1:$2"
    return 1
}

pg_bindir() {
    if command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
    else
        ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
    fi
}

# --- PostgreSQL ---------------------------------------------------------
start_postgres() {
    local bindir
    bindir=$(pg_bindir)
    if [[ -z "$bindir" ]]; then
        log "PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql"
        exit 1
    fi
    export PATH="$bindir:$PATH"
    export CRAFT_TEST_PG_BINDIR="$bindir"
    if [[ -z "${CRAFT_TEST_FORCE_PRIVATE_PG:-}" ]] &&
        psql "postgres://postgres@127.0.0.1:5432/postgres" -qAtc 'select 1' >/dev/null 2>&1; then
        pg_admin_url="postgres://postgres@127.0.0.1:5432/postgres"
        log "using the PostgreSQL server on 127.0.0.1:5432"
    else
        pg_private="$work/pg"
        local port
        port=$(free_port)
        log "starting a private PostgreSQL cluster on 127.0.0.1:$port"
        mkdir -p "$pg_private"
        local owner=()
        if [[ $(id -u) -eq 0 ]]; then
            # initdb refuses to run as root: hand the cluster to an
            # unprivileged account.
            local user=postgres
            id "$user" >/dev/null 2>&1 || user=nobody
            chown -R "$user" "$pg_private"
            owner=(runuser -u "$user" --)
        fi
        "${owner[@]}" "$bindir/initdb" -D "$pg_private/data" -U postgres -A trust >/dev/null
        "${owner[@]}" "$bindir/pg_ctl" -D "$pg_private/data" -l "$pg_private/log" -w \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $pg_private -c max_connections=300 -c fsync=off" start >/dev/null
        pg_admin_url="postgres://postgres@127.0.0.1:$port/postgres"
        if [[ ${#owner[@]} -gt 0 ]]; then
            # Stopping must run as the owner too.
            pg_ctl() { "${owner[@]}" "$bindir/pg_ctl" "$@"; }
        fi
    fi
    test_db="craft_test_$(date +%s)_$$"
    psql "$pg_admin_url" -qAtc "CREATE DATABASE \"$test_db\"" >/dev/null
    export CRAFT_TEST_POSTGRES_URL="${pg_admin_url%/*}/$test_db"
    export CRAFT_TEST_POSTGRES_ADMIN_URL="$pg_admin_url"
}

# --- DynamoDB (moto) ----------------------------------------------------
MOTO_VERSION=${MOTO_VERSION:-5.2.5}
start_moto() {
    local venv="$cache/venv-moto-$MOTO_VERSION"
    if [[ ! -x "$venv/bin/moto_server" ]]; then
        log "installing moto[server]==$MOTO_VERSION into $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
    local port
    port=$(free_port)
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
    pids+=($!)
    wait_for_port 127.0.0.1 "$port" moto_server
    log "moto_server on 127.0.0.1:$port"
    export CRAFT_TEST_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
    export CRAFT_TEST_MOTO_SERVER="$venv/bin/moto_server"
}

# --- Aurora Data API (dataapi-local) ------------------------------------
start_dataapi() {
    if [[ ! -f crates/dataapi-local/Cargo.toml ]]; then
        return 0
    fi
    local profile=${CRAFT_SERVICES_PROFILE:-debug}
    if [[ $profile == release ]]; then
        cargo build --quiet --release -p dataapi-local
    else
        cargo build --quiet -p dataapi-local
    fi
    psql "$pg_admin_url" -qAtc "CREATE DATABASE \"${test_db}_dataapi\"" >/dev/null
    # CARGO_TARGET_DIR may be absolute or relative to the workspace.
    local bin=${CARGO_TARGET_DIR:-target}/$profile/dataapi-local
    [[ $bin == /* ]] || bin="$root/$bin"
    local port
    port=$(free_port)
    "$bin" --listen "127.0.0.1:$port" \
        --postgres "${pg_admin_url%/*}/${test_db}_dataapi" >"$work/dataapi.log" 2>&1 &
    pids+=($!)
    wait_for_port 127.0.0.1 "$port" dataapi-local
    log "dataapi-local on 127.0.0.1:$port"
    export CRAFT_TEST_DATAAPI_ENDPOINT="http://127.0.0.1:$port"
    export CRAFT_TEST_DATAAPI_BIN="$bin"
}

# --- NATS (fleet bus) ----------------------------------------------------
start_nats() {
    local bin
    bin=$(command -v nats-server || true)
    [[ -n "$bin" ]] || bin=$(ls /usr/sbin/nats-server /usr/bin/nats-server 2>/dev/null | head -n 1)
    if [[ -z "$bin" ]]; then
        log "nats-server not found; install it: apt-get install nats-server"
        exit 1
    fi
    local port
    port=$(free_port)
    "$bin" -a 127.0.0.1 -p "$port" >"$work/nats.log" 2>&1 &
    pids+=($!)
    wait_for_port 127.0.0.1 "$port" nats-server
    log "nats-server on 127.0.0.1:$port"
    export CRAFT_TEST_NATS_URL="nats://127.0.0.1:$port"
    # For tests that start and kill their own to simulate outages.
    export CRAFT_TEST_NATS_SERVER="$bin"
}

# Every AWS client in the tests talks to loopback emulators: give the SDK's
# credential chain dummy keys so that it never looks further (instance
# metadata, SSO) off the machine.
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-testing}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-testing}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_EC2_METADATA_DISABLED=true

