#!/usr/bin/env bash
# Runs every benchmark and writes BENCHMARKS.md: criterion micro-benchmarks,
# the store benchmark on SQLite, PostgreSQL, DynamoDB (moto) and the Data
# API (dataapi-local) next to raw baselines, the features benchmark (draft
# publishes, block history, migration between stores) on the same four, and
# bot swarms against a release craft-server. Starts the services it needs
# like scripts/test.sh.
#
# Usage: scripts/bench.sh [--quick] [--fleet-only] [--out FILE]
#   --quick       a few seconds per part (checks the pipeline, figures are noise)
#   --fleet-only  only the fleet runs (PostgreSQL and NATS); writes just the
#                 report's "Fleet" section [to target/bench-results/fleet.md]
#   --out         where the report goes [BENCHMARKS.md]
#
# The fleet runs are repeated $CRAFT_BENCH_FLEET_RUNS times [3; 1 with
# --quick]: the cross-server target must hold in each.
#
# About 28 minutes on 2 cores once the release build is done (the fleet
# part: about 12, features: about 3).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

quick=""
fleet_only=""
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) quick=1 ;;
    --fleet-only) fleet_only=1 ;;
    --out)
        out=$2
        shift
        ;;
    *)
        echo "usage: scripts/bench.sh [--quick] [--fleet-only] [--out FILE]" >&2
        exit 2
        ;;
    esac
    shift
done
if [[ -z $out ]]; then
    if [[ -n $fleet_only ]]; then
        out="${CARGO_TARGET_DIR:-$root/target}/bench-results/fleet.md"
    else
        out="$root/BENCHMARKS.md"
    fi
fi

# shellcheck source=lib/services.sh
source "$root/scripts/lib/services.sh"
export CRAFT_SERVICES_PROFILE=release

started=$(date +%s)
phase() { log "$1 ($(($(date +%s) - started)) s in)"; }

phase "building (release)"
cargo build --quiet --release -p craft-server -p benches
bin=${CARGO_TARGET_DIR:-target}/release
[[ $bin == /* ]] || bin="$root/$bin"

start_postgres
if [[ -z $fleet_only ]]; then
    start_moto
    start_dataapi
fi
start_nats

results="$work/results.jsonl"
: >"$results"
tag="bench_$(date +%s)_$$"

if [[ -n $quick ]]; then
    criterion_args=(--warm-up-time 0.1 --measurement-time 0.2)
    stores_args=(--import-edits 20000 --import-budget 10s --sustain-budget 3s --max-rate 8000
        --load-sizes 100,1000,2000 --load-samples 5 --sync-samples 3)
    features_args=(--draft-sizes 100,1000 --draft-reps 2 --history-batch 1000 --history-rounds 2
        --rollback-changes 1000 --migrate-chunks 10 --migrate-per-chunk 50 --migrate-limit dynamodb=4)
    swarm_secs=3s
    bots_one=50
    bots_spread=100
    bots_idle=100
    fleet_secs=3s
    fleet_settle=4s
    fleet_bots=40
    fleet_editors=8
    fleet_runs=${CRAFT_BENCH_FLEET_RUNS:-1}
else
    criterion_args=(--warm-up-time 0.3 --measurement-time 1)
    # moto slows down as its table grows: a smaller world for DynamoDB.
    stores_args=(--import-edits 1000000 --import-budget 45s --sustain-budget 30s --load-budget 8s
        --import-limit dynamodb=100000)
    # Drafts of 100, 1,000 and 10,000 changes; history cost in batches of
    # 5,000 edits; rollback of 10,000 changes; migration of 200 chunks
    # (~52,000 rows), 20 chunks to and from moto.
    features_args=(--draft-sizes 100,1000,10000 --draft-reps 5 --draft-budget 20s
        --history-batch 5000 --history-rounds 10 --history-budget 30s
        --rollback-changes 10000 --migrate-chunks 200 --migrate-per-chunk 250
        --migrate-limit dynamodb=20)
    swarm_secs=20s
    bots_one=1000
    bots_spread=5000
    bots_idle=5000
    fleet_secs=15s
    # Polling shows an edit after the writer's commit (1 s) and the
    # reader's next sync (2 s): 5 s lets every one of them arrive.
    fleet_settle=5s
    fleet_bots=200
    fleet_editors=20
    fleet_runs=${CRAFT_BENCH_FLEET_RUNS:-3}
fi

# Appends the last JSON line of FILE to the results, tagged with LABEL (and
# RUN, the repetition, when given).
add_labelled() { # file label [run]
    python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[-1]); r["label"]=sys.argv[2]
if len(sys.argv) > 3: r["run"]=int(sys.argv[3])
print(json.dumps(r))' \
        "$@" >>"$results"
}

if [[ -z $fleet_only ]]; then
# --- criterion ------------------------------------------------------------
phase "criterion micro-benchmarks"
rm -rf "${CARGO_TARGET_DIR:-target}/criterion"
cargo bench --quiet -p benches -- "${criterion_args[@]}" --noplot >"$work/criterion.log" 2>&1 || {
    tail -n 40 "$work/criterion.log" >&2
    exit 1
}

# --- stores ---------------------------------------------------------------
phase "stores"
# The four stores, each a fresh world named after $1 (a file, a schema, a
# table); craft-bench features derives more fresh worlds from them.
# PostgreSQL without TLS, like the COPY baseline's connection: the ratio
# compares statements, not encryption (TLS on loopback costs the store 2-3%).
store_args() { # name
    local dataapi_url="dataapi://?resource_arn=arn:aws:rds:us-east-1:123456789012:cluster:local"
    dataapi_url+="&secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:local"
    dataapi_url+="&region=us-east-1&endpoint=$CRAFT_TEST_DATAAPI_ENDPOINT&schema=$1"
    dataapi_url+="&access_key_id=local&secret_access_key=local"
    printf '%s\n' \
        --store "sqlite=sqlite:$work/$1.db" \
        --store "postgres=$CRAFT_TEST_POSTGRES_URL?schema=$1&sslmode=disable" \
        --store "dynamodb=dynamodb://${1//_/-}?region=us-east-1&endpoint=$CRAFT_TEST_DYNAMODB_ENDPOINT&create=true&attempt_timeout=60s&operation_timeout=120s" \
        --store "dataapi=$dataapi_url"
}
mapfile -t stores_urls < <(store_args "$tag")
"$bin/craft-bench" stores "${stores_args[@]}" "${stores_urls[@]}" \
    --pg-baseline "$CRAFT_TEST_POSTGRES_URL" \
    --sqlite-baseline "$work" \
    --json-out "$results" >/dev/null

# --- features ---------------------------------------------------------------
phase "features (drafts, history, migration)"
mapfile -t features_urls < <(store_args "${tag}_f")
"$bin/craft-bench" features "${features_args[@]}" "${features_urls[@]}" \
    --run-id "$tag" --json-out "$results" >/dev/null

# --- swarms ---------------------------------------------------------------
swarm() { # label, then craft-bench swarm arguments
    local label=$1
    shift
    phase "swarm: $label"
    "$bin/craft-bench" --threads 1 swarm --server-bin "$bin/craft-server" "$@" \
        --json-out "$work/swarm-$label.json" >/dev/null
    add_labelled "$work/swarm-$label.json" "$label"
}

swarm one-chunk --spawn-server --bots "$bots_one" --chunks 1x1 --duration "$swarm_secs"
# The same on the default store: its flushes must not stall the fan-out.
swarm one-chunk-sqlite --spawn-server --server-store "sqlite:$work/swarm.db" --bots "$bots_one" \
    --chunks 1x1 --duration "$swarm_secs"
swarm spread --spawn-server --bots "$bots_spread" --chunks 50x50 --origin=-25,-25 --duration "$swarm_secs"

# Chunk answers from memory: the server's own histogram of building an
# answer (queue wait excluded), read from its admin listener after a run of
# bots that keep re-requesting chunks.
phase "swarm: chunk answers"
game_port=$(free_port)
admin_port=$(free_port)
"$bin/craft-server" --store memory: --listen "127.0.0.1:$game_port" \
    --admin-listen "127.0.0.1:$admin_port" --max-players 1000 --max-connections-per-ip 0 \
    >"$work/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_for_port 127.0.0.1 "$game_port" craft-server
"$bin/craft-bench" --threads 1 swarm --addr "127.0.0.1:$game_port" --server-pid "$server_pid" \
    --bots 100 --chunks 10x10 --chunk-radius 2 --chunk-rate 5 --edit-rate 1 \
    --duration "$swarm_secs" --json-out "$work/swarm-chunks.json" >/dev/null
curl -fsS "http://127.0.0.1:$admin_port/metrics" >"$work/metrics-chunks.txt"
add_labelled "$work/swarm-chunks.json" chunks
kill "$server_pid" 2>/dev/null || true

phase "idle connections"
"$bin/craft-bench" idle --spawn-server --server-bin "$bin/craft-server" --bots "$bots_idle" \
    --json-out "$results" >/dev/null

fi # not --fleet-only

# --- fleet ----------------------------------------------------------------
# K servers on one PostgreSQL world (a fresh schema per run) joined by the
# bus; bots spread evenly over them, all in 2 x 2 chunks; a tenth of them
# place a block a second. The servers' pools are kept small: 8 servers
# share the database's connection limit.
fleet() { # run label bus servers bots editors
    local run=$1 label=$2 bus=$3 servers=$4 bots=$5 editors=$6
    phase "fleet: $label (run $run of $fleet_runs)"
    "$bin/craft-bench" --threads 1 fleet --server-bin "$bin/craft-server" \
        --store "$CRAFT_TEST_POSTGRES_URL?schema=${tag}_f${run}_${label//-/_}&pool_size=8" \
        --bus "$bus" --servers "$servers" --bots "$bots" --editors "$editors" \
        --edit-rate 1 --move-hz 1 --chunks 2x2 \
        --duration "$fleet_secs" --settle "$fleet_settle" \
        --json-out "$work/fleet-$label-$run.json" >/dev/null
    add_labelled "$work/fleet-$label-$run.json" "$label" "$run"
}

for run in $(seq 1 "$fleet_runs"); do
    # Cross-server latency: 2 servers, each bus and polling. latency-nats
    # is also the 2-server point of the scale-out.
    fleet "$run" latency-nats "$CRAFT_TEST_NATS_URL" 2 "$fleet_bots" "$fleet_editors"
    fleet "$run" latency-postgres postgres 2 "$fleet_bots" "$fleet_editors"
    fleet "$run" latency-none none 2 "$fleet_bots" "$fleet_editors"
    # Scale-out: the same bots over 1 and 4 servers.
    fleet "$run" scale-1 "$CRAFT_TEST_NATS_URL" 1 "$fleet_bots" "$fleet_editors"
    fleet "$run" scale-4 "$CRAFT_TEST_NATS_URL" 4 "$fleet_bots" "$fleet_editors"
    # Bus traffic against fleet size: 10 bots (2 editing) per server.
    for k in 2 4 8; do
        fleet "$run" "traffic-$k" "$CRAFT_TEST_NATS_URL" "$k" $((10 * k)) $((2 * k))
    done
done

# --- report ---------------------------------------------------------------
phase "writing $out"
elapsed=$(($(date +%s) - started))
# The raw results stay in target/bench-results for a re-run of the report.
keep=${CARGO_TARGET_DIR:-target}/bench-results
mkdir -p "$keep" "$(dirname "$out")"
if [[ -n $fleet_only ]]; then
    cp "$results" "$keep/fleet.jsonl"
    python3 "$root/scripts/bench_report.py" \
        --results "$keep/fleet.jsonl" \
        --fleet-only \
        --elapsed "$elapsed" \
        --command "scripts/bench.sh${quick:+ --quick} --fleet-only" \
        >"$out"
else
    cp "$results" "$work/metrics-chunks.txt" "$keep/"
    python3 "$root/scripts/bench_report.py" \
        --results "$keep/results.jsonl" \
        --criterion "${CARGO_TARGET_DIR:-target}/criterion" \
        --chunk-metrics "$keep/metrics-chunks.txt" \
        --elapsed "$elapsed" \
        --command "scripts/bench.sh${quick:+ --quick}" \
        >"$out"
fi
phase "done: $out"
