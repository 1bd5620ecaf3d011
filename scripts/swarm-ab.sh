#!/usr/bin/env bash
# Interleaved A/B of the fan-out: a baseline craft-server binary against this
# build, in one run on one machine (issue 17's method; BENCHMARKS.md,
# "Fan-out efficiency"). Rounds alternate the two builds so that load on the
# machine hits both alike. Prints one line per run, appends the swarm's JSON
# lines (with a "label" field) to the output file.
#
# Usage: scripts/swarm-ab.sh BASELINE_CRAFT_SERVER [OUT.jsonl]
#   CRAFT_AB_ROUNDS   rounds of 1,000 bots, each base/new x memory/sqlite [5]
#   CRAFT_AB_BIG      runs of 2,000 bots per store, this build only [3]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
base=${1:?usage: scripts/swarm-ab.sh BASELINE_CRAFT_SERVER [OUT.jsonl]}
out=${2:-target/swarm-ab.jsonl}
rounds=${CRAFT_AB_ROUNDS:-5}
big=${CRAFT_AB_BIG:-3}

cargo build --quiet --release -p craft-server -p benches
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

run() { # label binary store bots
    rm -f "$work"/sw.db*
    echo "== $1 $3 $4 bots"
    target/release/craft-bench --threads 1 swarm --spawn-server --server-bin "$2" \
        --server-store "$3" --bots "$4" --chunks 1x1 --duration 10s \
        --json-out "$work/run.json" 2>&1 | grep -E '^  (edits|server):' || true
    python3 -c 'import json, sys
line = open(sys.argv[1]).read().splitlines()[-1]
run = json.loads(line)
run["label"] = sys.argv[2]
print(json.dumps(run))' "$work/run.json" "$1" >>"$out"
    rm -f "$work/run.json"
}

for _ in $(seq "$rounds"); do
    for store in memory: "sqlite:$work/sw.db"; do
        run base "$base" "$store" 1000
        run new target/release/craft-server "$store" 1000
    done
done
for _ in $(seq "$big"); do
    for store in "sqlite:$work/sw.db" memory:; do
        run new target/release/craft-server "$store" 2000
    done
done
run base "$base" "sqlite:$work/sw.db" 2000
echo "results: $out"
