#!/usr/bin/env bash
# Measures the echo example under closed-loop load, inline vs pool dispatch: requests/s,
# syscalls per request and server CPU time per request.
#
# The server is pinned to CPU 0 and the load generator (examples/echo_load.rs) to CPU 1,
# so they do not steal cycles from each other. perf attaches to the server only, inside
# the load generator's measured window, so warm-up and shutdown are not counted.
#
#   ROUNDS=3 DUR=10 CONNS=100 SIZE=1024 PORT=17000 scripts/measure_echo.sh
#
# Needs perf (and root, or a permissive kernel.perf_event_paranoid) and two CPUs.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10}
CONNS=${CONNS:-100}
SIZE=${SIZE:-1024}
PORT=${PORT:-17000}
WARMUP=2

if ! command -v perf >/dev/null || ! perf stat -e task-clock -- true >/dev/null 2>&1; then
    echo "perf is missing or does not work; install it with: apt-get install linux-perf" >&2
    exit 1
fi
if ((DUR < 3)); then
    echo "DUR must be at least 3 seconds" >&2
    exit 1
fi

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

# perf starts half a second into the measured window and stops a second before it ends,
# so the whole perf window sees steady load even if echo_load's clock drifts a little.
PERF_SECS=$((DUR - 1))
PERF_DELAY=$((WARMUP)).5


# run_mode ROUND MODE: prints "ROUND MODE rps syscalls_per_req cpu_us_per_req cpu_pct".
run_mode() {
    local round=$1 mode=$2 port=$3
    local pool_args=()
    [[ $mode == pool ]] && pool_args=(--pool 1)

    # exec so that $! is the server itself, which perf attaches to and SIGINT reaches.
    taskset -c 0 "$BIN/echo" --addr "127.0.0.1:$port" --pollers 1 "${pool_args[@]}" \
        >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_port "$port"

    taskset -c 1 "$BIN/echo_load" --addr "127.0.0.1:$port" --conns "$CONNS" --size "$SIZE" \
        --warmup "$WARMUP" --duration "$DUR" >"$work/load.log" 2>&1 &
    load_pid=$!

    sleep "$PERF_DELAY"
    perf_server "$server_pid" "$PERF_SECS"
    wait_load "echo_load, $mode, round $round" "$work/load.log"
    # A background job of a non-interactive shell starts with SIGINT ignored, but the
    # server installs its own handler, so SIGINT still triggers its graceful shutdown.
    kill -INT "$server_pid"
    if ! wait "$server_pid"; then
        echo "echo server exited with an error ($mode, round $round):" >&2
        cat "$work/server.log" >&2
        return 1
    fi
    server_pid=""

    local rps task_ms syscalls
    rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' "$work/load.log")
    task_ms=$(awk -F, '$3 == "task-clock" { print $1 }' "$work/perf.csv")
    syscalls=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$work/perf.csv")
    if [[ -z $rps || -z $task_ms || -z $syscalls ]] ||
        [[ $task_ms == "<not"* || $syscalls == "<not"* ]]; then
        echo "could not parse results ($mode, round $round):" >&2
        cat "$work/load.log" "$work/perf.csv" >&2
        return 1
    fi
    awk -v r="$round" -v m="$mode" -v rps="$rps" -v ms="$task_ms" -v sc="$syscalls" \
        -v secs="$PERF_SECS" 'BEGIN {
            reqs = rps * secs
            printf "%s %s %.0f %.2f %.2f %.0f\n", r, m, rps, sc / reqs, ms * 1000 / reqs,
                100 * ms / (secs * 1000)
        }'
}

echo "conns=$CONNS size=$SIZE duration=${DUR}s (perf window ${PERF_SECS}s) rounds=$ROUNDS" \
    "server on CPU 0, load on CPU 1"
results=$work/results
: >"$results"
port=$PORT
for round in $(seq "$ROUNDS"); do
    # Alternate which mode goes first so drift (thermal, background work) hits both.
    if ((round % 2)); then modes=(inline pool); else modes=(pool inline); fi
    for mode in "${modes[@]}"; do
        # A fresh port per run keeps TIME_WAIT sockets of the last run out of the way.
        # Not in a pipeline: run_mode must run in this shell so cleanup sees its pids.
        run_mode "$round" "$mode" "$port" >"$work/row"
        read -r r m rps sc us pct <"$work/row"
        echo "round $r $m: req/s=$rps syscalls/req=$sc cpu_us/req=$us cpu=$pct%" >&2
        cat "$work/row" >>"$results"
        port=$((port + 1))
    done
done

echo
echo "| round | mode | req/s | syscalls/req | server CPU µs/req | server CPU % |"
echo "|---|---|---:|---:|---:|---:|"
awk '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$results"
for mode in inline pool; do
    for col in 3 4 5 6; do
        awk -v m="$mode" -v c="$col" '$2 == m { print $c }' "$results" | sort -g |
            awk '{ v[NR] = $1 } END {
                print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            }'
    done | paste -sd' ' | awk -v m="$mode" '{ printf "| median | %s | %s | %s | %s | %s |\n", m, $1, $2, $3, $4 }'
done
