#!/usr/bin/env bash
# Soak test: a mixed load against one server for N minutes, watching its memory and file
# descriptors.
#
#   scripts/soak.sh [minutes]          # default 10
#   PORT=17500 POLLERS=2 POOL=4 scripts/soak.sh 30
#
# Starts examples/soak_server.rs (the zero-copy echo server with read 2 s, write 5 s and
# idle 10 s timeouts, max_connections 5000, 1 MiB input/output high-water marks) on
# 127.0.0.1:$PORT, and drives it with examples/soak_load.rs for the whole run: echo
# peers (random 1 B-64 KiB round trips, verified), idle peers (closed by the idle
# timeout), slow peers (flood or stall without reading, trickle reading, a byte every
# 500 ms) and abusive peers (connect-and-reset, connect-and-close storms, garbage then
# half-close, half-sent payload then close). HTTP peers join the mix when the HTTP layer
# lands (there is no HTTP layer yet). Loopback only.
#
# After a 20 s warm-up it records the server's baseline, then once a minute prints
#   minute N rss_kib=... fds=... active=...
# (VmRSS from /proc/PID/status, entries of /proc/PID/fd, open connections from the
# server's latest `stats` line, at most 5 s old). At the end it waits for the load to
# finish, prints the same figures once every peer is gone (to compare with the idle
# server at start; informational), stops the server with SIGINT and prints both reports.
#
# It FAILS (exit 1) if, at the last minute:
#   * the server's RSS exceeds the baseline by more than 50% or 32 MiB, whichever is
#     larger;
#   * its fd count exceeds the baseline by more than 64 (the load keeps a roughly
#     constant number of peers connected);
# or if soak_load reports a failure (a verification failure or a server misbehaviour,
# see examples/soak_load.rs), or either process dies, hangs or exits with an error.
set -euo pipefail

MINUTES=${1:-10}
PORT=${PORT:-17500}
POLLERS=${POLLERS:-2}
POOL=${POOL:-}
WARMUP=20
RSS_TOL_PCT=50
RSS_TOL_KIB=$((32 * 1024))
FD_TOL=64

if ! [[ $MINUTES =~ ^[0-9]+$ ]] || ((MINUTES < 1)); then
    echo "usage: $0 [minutes]   (minutes: a whole number, at least 1)" >&2
    exit 2
fi

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"

if port_open "$PORT"; then
    echo "something already listens on 127.0.0.1:$PORT; pick another PORT" >&2
    exit 1
fi

server_args=(--addr "127.0.0.1:$PORT" --pollers "$POLLERS" --stats-every 5)
if [[ -n $POOL ]]; then server_args+=(--pool "$POOL"); fi
"$BIN/soak_server" "${server_args[@]}" >"$work/server.log" 2>&1 &
server_pid=$!
wait_for_port "$PORT" "$server_pid" "$work/server.log"

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status"; }
fd_count() { ls "/proc/$server_pid/fd" | wc -l; }
active() {
    local a
    a=$(grep '^stats ' "$work/server.log" | tail -n 1 |
        sed -n 's/.*active=\([0-9]*\).*/\1/p' || true)
    echo "${a:-?}"
}
server_alive() {
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "FAIL: soak_server died during the soak:" >&2
        cat "$work/server.log" >&2
        server_pid=""
        exit 1
    fi
}

start_rss=$(rss_kib)
start_fds=$(fd_count)
echo "soak: ${MINUTES} min against 127.0.0.1:$PORT (pollers=$POLLERS${POOL:+ pool=$POOL})," \
    "server pid $server_pid; idle server: rss_kib=$start_rss fds=$start_fds"
echo "soak: tolerance: final rss <= baseline + max(${RSS_TOL_PCT}%, $((RSS_TOL_KIB / 1024)) MiB)," \
    "final fds <= baseline + $FD_TOL"

# The load runs 5 s past the last sample, so every sample is taken under load.
"$BIN/soak_load" --addr "127.0.0.1:$PORT" --seconds $((MINUTES * 60 + 5)) \
    >"$work/load.log" 2>&1 &
load_pid=$!
start=$SECONDS

# sample LABEL: prints one line and sets rss, fds.
sample() {
    server_alive
    rss=$(rss_kib)
    fds=$(fd_count)
    echo "$1 rss_kib=$rss fds=$fds active=$(active)"
}

sleep_until() {
    local left=$(($1 - (SECONDS - start)))
    if ((left > 0)); then sleep "$left"; fi
}

sleep_until "$WARMUP"
sample "minute 0 (baseline after ${WARMUP}s warm-up)"
base_rss=$rss
base_fds=$fds
peak_rss=$rss
peak_fds=$fds
failed=()
for minute in $(seq "$MINUTES"); do
    sleep_until $((minute * 60))
    sample "minute $minute"
    if ((rss > peak_rss)); then peak_rss=$rss; fi
    if ((fds > peak_fds)); then peak_fds=$fds; fi
    if ! kill -0 "$load_pid" 2>/dev/null; then
        failed+=("soak_load stopped before the end of minute $minute")
        break
    fi
done
final_rss=$rss
final_fds=$fds

# The load stops by itself a few seconds later; give it a minute before calling it hung.
load_status=0
if ! exits_within "$load_pid" 600; then
    kill "$load_pid" 2>/dev/null || true
    failed+=("soak_load did not stop by itself")
fi
wait "$load_pid" || load_status=$?
load_pid=""
((load_status == 0)) || failed+=("soak_load exited with status $load_status")

# Every peer is gone: the server should be back to its idle figures. (6 s: the server
# prints its stats every 5 s, so `active` is up to date.)
sleep 6
server_alive
after_rss=$(rss_kib)
after_fds=$(fd_count)
echo "after the load: rss_kib=$after_rss fds=$after_fds active=$(active)" \
    "(idle server at start: rss_kib=$start_rss fds=$start_fds)"

kill -INT "$server_pid"
server_status=0
if ! exits_within "$server_pid" 300; then
    kill -KILL "$server_pid" 2>/dev/null || true
    failed+=("soak_server did not stop within 30 s of SIGINT")
fi
wait "$server_pid" || server_status=$?
server_pid=""
((server_status == 0)) || failed+=("soak_server exited with status $server_status")

echo
echo "--- soak_load ---"
cat "$work/load.log"
echo "--- soak_server (final report) ---"
grep -v '^stats ' "$work/server.log" || true
echo "---"

rss_tol=$((base_rss * RSS_TOL_PCT / 100))
if ((rss_tol < RSS_TOL_KIB)); then rss_tol=$RSS_TOL_KIB; fi
echo "rss_kib: baseline=$base_rss final=$final_rss peak=$peak_rss limit=$((base_rss + rss_tol))" \
    "(baseline + max(${RSS_TOL_PCT}%, $((RSS_TOL_KIB / 1024)) MiB))"
echo "fds: baseline=$base_fds final=$final_fds peak=$peak_fds limit=$((base_fds + FD_TOL))" \
    "(baseline + $FD_TOL)"
if ((final_rss > base_rss + rss_tol)); then
    failed+=("RSS grew from $base_rss to $final_rss KiB (limit $((base_rss + rss_tol)))")
fi
if ((final_fds > base_fds + FD_TOL)); then
    failed+=("fd count grew from $base_fds to $final_fds (limit $((base_fds + FD_TOL)))")
fi

if ((${#failed[@]})); then
    for f in "${failed[@]}"; do
        echo "FAIL: $f"
    done
    exit 1
fi
echo "PASS"
