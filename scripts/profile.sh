#!/usr/bin/env bash
# Profiles one server under one benchmark scenario: perf record -g of the server process
# while the scenario's load runs, then a flamegraph SVG and a text summary of the
# hottest functions.
#
#   scripts/profile.sh SCENARIO [SERVER] [SECONDS]
#   scripts/profile.sh http                 # netloop's HTTP server under wrk, 10 s
#   scripts/profile.sh echo-100 tokio-ct 5
#
# SCENARIO is one of bench.sh's load scenarios (http, http-pipelined, echo-100,
# echo-1000, framed, open-loop, ws-SIZE-CONNS); SERVER one of netloop (default), netloop-pool,
# tokio-ct, tokio-mt, may-minihttp, monoio. As in bench.sh the server runs on CPU 0
# and the load on CPU 1. Output: bench/profiles/<scenario>-<server>.{svg,txt}
# (perf.data is kept next to them for `perf report -i`).
#
# Needs perf; the flamegraph tools (inferno) are installed with `cargo install` if missing.
set -euo pipefail

scenario=${1:?usage: scripts/profile.sh SCENARIO [SERVER] [SECONDS]}
name=${2:-netloop}
secs=${3:-10}
if [[ $scenario == idle-* ]]; then
    echo "$scenario has no load to profile; pick a load scenario" >&2
    exit 2
fi
if ! command -v perf >/dev/null || ! perf stat -e task-clock -- true >/dev/null 2>&1; then
    echo "perf is missing or not permitted; install linux-perf and allow it" >&2
    exit 1
fi
if ! command -v inferno-flamegraph >/dev/null; then
    echo "installing inferno (flamegraph tools)" >&2
    cargo install --locked inferno
fi
if [[ $scenario == http* ]] && ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/scenarios.sh
source scripts/scenarios.sh
build_all
scenario_spec "$scenario" || { echo "unknown scenario: $scenario" >&2; exit 2; }
load_cmd "$scenario" 18900
out=bench/profiles
mkdir -p "$out"
prefix=$out/$scenario-$name

start_server "$name" "$proto" 18900 "$work/server.log"
# A warm-up, so the profile shows the steady state and not connection set-up.
if [[ ${load[0]} == wrk ]]; then
    taskset -c 1 "${load[0]}" "${load[@]:1:3}" -d2s "${load[@]:4}" >/dev/null
    taskset -c 1 "${load[0]}" "${load[@]:1:3}" -d"$((secs + 2))s" "${load[@]:4}" >"$work/load.out" &
else
    taskset -c 1 "${load[@]}" --warmup 2 --duration "$secs" >"$work/load.out" 2>&1 &
    sleep 2
fi
load_pid=$!
sleep 0.5
# DWARF call graphs: the release profile keeps line tables, and Rust's std is built
# without frame pointers.
perf record -F 999 --call-graph dwarf,16384 -o "$prefix.perf.data" -p "$server_pid" \
    -- sleep "$((secs - 1))" 2>"$work/perf.log"
wait "$load_pid" || { echo "the load failed:" >&2; cat "$work/load.out" >&2; exit 1; }
load_pid=""
stop_server

perf script -i "$prefix.perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
inferno-flamegraph --title "$scenario: $name (server CPU 0, load CPU 1)" <"$work/folded" >"$prefix.svg"
{
    echo "# $scenario, $name: load summary"
    tail -n 12 "$work/load.out"
    echo
    echo "# self time by function (top 40)"
    perf report -i "$prefix.perf.data" --no-children --sort symbol --stdio 2>/dev/null |
        grep -E "^ +[0-9.]+%" | head -40 || true
    echo
    echo "# share of samples by binary (kernel vs libc vs the server)"
    perf report -i "$prefix.perf.data" --no-children --sort dso --stdio 2>/dev/null |
        grep -E "^ +[0-9.]+%" | head -10 || true
} >"$prefix.txt"
cat "$prefix.txt"
echo "flamegraph: $prefix.svg, profile: $prefix.txt, data: $prefix.perf.data"
