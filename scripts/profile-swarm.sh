#!/usr/bin/env bash
# Profiles a release craft-server while a bot swarm loads it, over the
# swarm's active (measured) phase only, and prints the top entries by self
# time: what to record in BENCHMARKS.md next to a change that moves them.
#
# Usage: scripts/profile-swarm.sh [options] [-- craft-bench swarm arguments]
#   --store URL        the server's store [memory:]; sqlite:PATH for the
#                      default store (a fresh file keeps runs comparable)
#   --top N            entries to print [15]
#   --out DIR          where perf.data (or callgrind.out), the swarm's JSON
#                      line, report.txt and top.txt go [target/profile]
#   --call-graph MODE  perf's call graphs: fp (perf record -g) or dwarf
#                      (readable stacks for a flame graph; release builds
#                      keep no frame pointers) [fp]
#   --callgrind        use valgrind's callgrind instead of perf (also the
#                      fallback when perf cannot sample here); the server
#                      runs ~50x slower, so the default swarm is smaller
#
# The default swarm is issue 17's: 1,000 bots in one chunk for 10 s with
# --threads 1. Profiling costs the server a little CPU: take benchmark
# figures from scripts/bench.sh, not from here. perf samples the cpu-clock
# software event, which virtual machines without hardware counters have.
#
# For a flame graph of the same data: perf script -i DIR/perf.data, then any
# folded-stack tool (inferno, FlameGraph).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

store="memory:"
top=15
out=""
call_graph="fp"
tool="perf"
swarm_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
    --store)
        store=$2
        shift
        ;;
    --top)
        top=$2
        shift
        ;;
    --out)
        out=$2
        shift
        ;;
    --call-graph)
        call_graph=$2
        shift
        ;;
    --callgrind) tool="callgrind" ;;
    --)
        shift
        swarm_args=("$@")
        break
        ;;
    *)
        sed -n '/^# Usage/,/^#   --callgrind/p' "$0" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
    esac
    shift
done
case "$call_graph" in
fp) perf_graph=(-g) ;;
dwarf) perf_graph=(--call-graph dwarf,16384) ;;
*)
    echo "--call-graph: fp or dwarf" >&2
    exit 2
    ;;
esac

# Only for $work, the EXIT trap, log, free_port and wait_for_port: no
# service is started.
# shellcheck source=lib/services.sh
source "$root/scripts/lib/services.sh"

target=${CARGO_TARGET_DIR:-target}
[[ $target == /* ]] || target="$root/$target"
out=${out:-$target/profile}
mkdir -p "$out"
bin=$target/release

log "building (release)"
cargo build --quiet --release -p craft-server -p benches

if [[ $tool == perf ]]; then
    if ! command -v perf >/dev/null 2>&1; then
        log "perf not found (Debian: apt-get install linux-perf); using callgrind"
        tool="callgrind"
    elif ! perf record -e cpu-clock -o "$work/probe.data" -- true >"$work/probe.log" 2>&1; then
        log "perf cannot sample here ($(tail -n 1 "$work/probe.log")); using callgrind"
        tool="callgrind"
    fi
fi
if [[ $tool == callgrind ]] && ! command -v valgrind >/dev/null 2>&1; then
    log "neither perf nor valgrind can profile here"
    exit 1
fi
if [[ ${#swarm_args[@]} -eq 0 ]]; then
    if [[ $tool == perf ]]; then
        swarm_args=(--bots 1000 --chunks 1x1 --duration 10s)
    else
        swarm_args=(--bots 100 --chunks 1x1 --duration 5s --join-timeout 120s)
    fi
fi

port=$(free_port)
server=("$bin/craft-server" --store "$store" --listen "127.0.0.1:$port" --max-players 50000
    --max-connections-per-ip 0)
if [[ $tool == callgrind ]]; then
    rm -f "$out/callgrind.out"
    # Instrumentation starts with the active phase (callgrind_control below).
    server=(valgrind --tool=callgrind --instr-atstart=no
        --callgrind-out-file="$out/callgrind.out" "${server[@]}")
fi
RUST_LOG=warn "${server[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
wait_for_port 127.0.0.1 "$port" craft-server

log "swarm: ${swarm_args[*]} (store $store, $tool)"
"$bin/craft-bench" --threads 1 --log info swarm --addr "127.0.0.1:$port" \
    --server-pid "$server_pid" "${swarm_args[@]}" --json-out "$out/swarm.json" \
    >/dev/null 2>"$work/bench.log" &
bench_pid=$!
pids+=("$bench_pid")

# Waits until craft-bench logs PATTERN; fails when it exits first.
wait_for_log() { # pattern
    until grep -q "$1" "$work/bench.log"; do
        if ! kill -0 "$bench_pid" 2>/dev/null; then
            cat "$work/bench.log" >&2
            log "craft-bench ended before logging \"$1\""
            exit 1
        fi
        sleep 0.05
    done
}

wait_for_log "active: moving"
case $tool in
perf)
    rm -f "$out/perf.data"
    perf record -e cpu-clock -F 999 "${perf_graph[@]}" -p "$server_pid" \
        -o "$out/perf.data" >"$work/perf.log" 2>&1 &
    perf_pid=$!
    pids+=("$perf_pid")
    ;;
callgrind) callgrind_control -i on "$server_pid" >/dev/null ;;
esac
wait_for_log "draining"
case $tool in
perf)
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    ;;
callgrind) callgrind_control -i off "$server_pid" >/dev/null ;;
esac
wait "$bench_pid"

# SIGTERM: the server drains and exits, and callgrind writes its output.
kill -TERM "$server_pid"
wait "$server_pid" || true

sed -n '/^swarm: /,$p' "$work/bench.log" >&2
# Full reports to files first: `head` in a pipe would end the producer with
# SIGPIPE, which pipefail turns into a failure.
case $tool in
perf)
    grep -E "samples|lost" "$work/perf.log" >&2 || true
    perf report -i "$out/perf.data" --no-children --stdio -g none \
        --fields overhead,dso,sym >"$out/report.txt" 2>/dev/null
    awk -v n="$top" '!/^#/ && NF { sub(/ +$/, ""); print; if (++c == n) exit }' \
        "$out/report.txt" >"$out/top.txt"
    log "self time by shared object (the kernel's share is the system calls):"
    perf report -i "$out/perf.data" --no-children --stdio -g none --fields overhead,dso \
        2>/dev/null | awk '!/^#/ && NF { sub(/ +$/, ""); print; if (++c == 5) exit }' >&2
    ;;
callgrind)
    callgrind_annotate "$out/callgrind.out" >"$out/report.txt" 2>/dev/null
    awk -v n="$top" '/file:function/ { go = 1; next } go && NF && !/^-+$/ { print; if (++c == n) exit }' \
        "$out/report.txt" >"$out/top.txt"
    ;;
esac
log "top $top by self time ($tool; data in $out):"
cat "$out/top.txt"
