#!/usr/bin/env bash
# Side-by-side benchmarks: netloop's example servers against the peers in bench/peers
# (tokio current-thread and multi-thread, may_minihttp, monoio; fastwebsockets and
# tokio-tungstenite for WebSocket, and uWebSockets' EchoServer if UWS_ECHO names one
# built elsewhere; for the broadcast scenarios the tokio-tungstenite broadcast peer, and
# a uWebSockets pub/sub server if UWS_BROADCAST names one), every scenario, every server,
# alternated over several rounds. In the broadcast scenarios a "request" is a delivery
# (one message arriving at one subscriber).
#
#   scripts/bench.sh                    # all scenarios, 3 rounds (about 40 minutes)
#   scripts/bench.sh --quick            # 1 short round of the main scenarios (< 2 minutes once built)
#   scripts/bench.sh --rounds 5 --duration 10 --only http,echo-100
#   scripts/bench.sh --servers netloop,netloop-uring   # only these servers, where a scenario has them
#
# Each run starts one server pinned to CPU 0 (one thread: `--pollers 1` / `--threads 1`)
# and the load generator (wrk, or netloop-load) pinned to CPU 1. perf attaches to the
# server inside the measured window only:
#   perf stat -e task-clock,raw_syscalls:sys_enter -p SERVER_PID
# which gives server CPU µs per request and syscalls per request next to requests/s and
# the latency percentiles. Within a round the servers take turns in a rotating order, so
# drift on a noisy machine spreads over all of them.
#
# Output: one line per run on stderr as it goes, then a markdown table of medians and
# ratios (netloop / peer) on stdout. Raw results and the summary go to
# bench/results/<UTC time>[-quick].json and a chart to bench/results/<same>.png; a full
# run (every scenario and server) also refreshes bench/results/latest.{json,png}, which
# the README shows.
#
# Needs: two CPUs, perf (linux-perf) with permission to attach, python3. wrk and gnuplot
# are installed with apt-get if missing.
set -euo pipefail

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    echo "scenarios: ${ALL_SCENARIOS[*]}"
}

# As in scenarios.sh (sourced later, after the checks).
ALL_SCENARIOS=(http http-pipelined echo-100 echo-1000 framed bulk open-loop idle-10k
    ws-20-100 ws-1k-100 ws-16k-100 ws-20-500 ws-1k-500 ws-16k-500
    idle-10k-ws idle-ws-deflate idle-ws-deflate-takeover
    bcast-20-100 bcast-20-1000 bcast-20-10000 idle-10k-tls idle-10k-wss)
QUICK_SCENARIOS=(http http-pipelined echo-100 framed idle-10k ws-1k-100 idle-10k-ws)
ROUNDS=3
DUR=8
WARMUP=2
QUICK=0
ONLY=""
SERVERS=""
while (($#)); do
    case $1 in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --only) ONLY=$2; shift ;;
        --servers) SERVERS=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if ((QUICK)); then
    ROUNDS=1 DUR=3 WARMUP=1
    scenarios=("${QUICK_SCENARIOS[@]}")
else
    scenarios=("${ALL_SCENARIOS[@]}")
fi
if [[ -n $ONLY ]]; then
    IFS=, read -r -a scenarios <<<"$ONLY"
    for s in "${scenarios[@]}"; do
        [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || { echo "unknown scenario: $s" >&2; exit 2; }
    done
fi
if ((DUR < 3 || ROUNDS < 1)); then
    echo "--duration must be at least 3 seconds and --rounds at least 1" >&2
    exit 2
fi
if (($(nproc) < 2)); then
    echo "needs two CPUs (server on CPU 0, load on CPU 1); this machine has $(nproc)" >&2
    exit 1
fi
if ! command -v perf >/dev/null || ! perf stat -e task-clock -- true >/dev/null 2>&1; then
    echo "perf is missing or not permitted; install linux-perf and allow it" \
        "(kernel.perf_event_paranoid <= 1, or run as root)" >&2
    exit 1
fi
for tool in wrk gnuplot; do
    if ! command -v "$tool" >/dev/null; then
        pkg=$tool
        [[ $tool == gnuplot ]] && pkg=gnuplot-nox
        echo "installing $pkg" >&2
        { apt-get update -qq && apt-get install -y -qq "$pkg"; } >/dev/null ||
            { echo "could not install $pkg; install it and run again" >&2; exit 1; }
    fi
done

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=scripts/scenarios.sh
source scripts/scenarios.sh
build_all
tls_certs
holder_pid=""
trap 'kill $holder_pid 2>/dev/null || true; cleanup' EXIT

# wrk's latency figures carry units (us, ms, s); prints microseconds.
wrk_us() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) print n; else if (v ~ /ms$/) print n * 1000;
        else if (v ~ /m$/) print n * 60e6; else print n * 1e6
    }'
}

# cpu_ticks PID: user + system CPU time of PID so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# run_load SCENARIO PORT: runs the load (warm-up, then the measured window), with perf
# attached to the server for the middle of the window. Leaves in $work: load.out,
# perf.csv; sets rps p50 p99 p999 errors load_cpu_pct.
run_load() {
    local scenario=$1 port=$2
    local perf_secs=$((DUR - 1))
    local load
    load_cmd "$scenario" "$port"
    if [[ ${load[0]} == wrk ]]; then
        # wrk has no warm-up option: a short run first, then the measured one.
        taskset -c 1 "${load[0]}" "${load[@]:1:3}" -d"${WARMUP}s" "${load[@]:4}" >/dev/null
        taskset -c 1 "${load[0]}" "${load[@]:1:3}" -d"${DUR}s" "${load[@]:4}" >"$work/load.out" 2>&1 &
    else
        taskset -c 1 "${load[@]}" --warmup "$WARMUP" --duration "$DUR" --json >"$work/load.out" 2>&1 &
        sleep "$WARMUP"
    fi
    load_pid=$!
    sleep 0.5
    # The load generator's CPU over the same window: near 100 % it, not the server, may
    # be the bottleneck.
    local load_ticks0 load_ticks1 t0 t1
    load_ticks0=$(cpu_ticks "$load_pid") t0=$(date +%s.%N)
    perf_server "$server_pid" "$perf_secs"
    load_ticks1=$(cpu_ticks "$load_pid") t1=$(date +%s.%N)
    load_cpu_pct=$(awk -v a="$load_ticks0" -v b="$load_ticks1" -v t0="$t0" -v t1="$t1" \
        -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 100 * (b - a) / hz / (t1 - t0) }')
    wait_load "$scenario" "$work/load.out"
    if [[ ${load[0]} == wrk ]]; then
        rps=$(awk '/^Requests\/sec:/ { print $2 }' "$work/load.out")
        p50=$(wrk_us "$(awk '$1 == "50%" { print $2 }' "$work/load.out")")
        p99=$(wrk_us "$(awk '$1 == "99%" { print $2 }' "$work/load.out")")
        p999=null
        # wrk's percentiles break with pipelining (it prints 0.00us for the tail).
        [[ $scenario == http-pipelined ]] && p50=null p99=null
        errors=$(awk '/Socket errors:/ { gsub(",", ""); print $4 + $6 + $8 + $10 }
                      /Non-2xx/ { print $NF }' "$work/load.out" | awk '{ s += $1 } END { print s + 0 }')
    else
        read -r rps p50 p99 p999 errors < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
l = r["latency_us"]
print(r["rps"], l["p50"], l["p99"], l["p99.9"], r["errors"]["total"])' "$work/load.out")
    fi
    task_ms=$(awk -F, '$3 == "task-clock" { print $1 }' "$work/perf.csv")
    syscalls=$(awk -F, '$3 == "raw_syscalls:sys_enter" { print $1 }' "$work/perf.csv")
    if [[ -z $rps || -z $task_ms || -z $syscalls || $task_ms == "<not"* ]]; then
        echo "could not parse the results ($scenario):" >&2
        cat "$work/load.out" "$work/perf.csv" >&2
        return 1
    fi
    read -r cpu_us sc_per_req cpu_pct < <(awk -v rps="$rps" -v ms="$task_ms" -v sc="$syscalls" \
        -v secs="$perf_secs" 'BEGIN {
            reqs = rps * secs
            printf "%.3f %.3f %.1f\n", ms * 1000 / reqs, sc / reqs, 100 * ms / (secs * 1000)
        }')
}

# run_idle SCENARIO PORT: opens the scenario's idle connections (idle_spec) and holds
# them; sets idle_conns and rss_per_conn_kib.
run_idle() {
    local port=$2 before after idle
    idle_spec "$1"
    idle_conns=${idle[0]}
    ulimit -n 20000
    before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status")
    # The holder keeps the connections until its stdin (a fifo held open here) closes.
    rm -f "$work/hold" && mkfifo "$work/hold"
    taskset -c 1 python3 scripts/idle_conns.py "$port" "${idle[@]}" <"$work/hold" \
        >"$work/idle.out" 2>&1 &
    holder_pid=$!
    exec {hold}>"$work/hold"
    for _ in $(seq 600); do
        grep -q '^ready' "$work/idle.out" 2>/dev/null && break
        kill -0 "$holder_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! grep -q '^ready' "$work/idle.out"; then
        echo "opening $idle_conns idle connections failed:" >&2
        cat "$work/idle.out" >&2
        return 1
    fi
    sleep 1 # let the server settle (lazily freed buffers, allocator trimming)
    after=$(awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status")
    exec {hold}>&- # closing its stdin tells the holder to close the connections
    wait "$holder_pid" || { echo "idle holder failed:" >&2; cat "$work/idle.out" >&2; return 1; }
    holder_pid=""
    rss_per_conn_kib=$(awk -v a="$after" -v b="$before" -v n="$idle_conns" \
        'BEGIN { printf "%.3f", (a - b) / n }')
    rss_before_kib=$before rss_after_kib=$after
}

# run_one SCENARIO SERVER ROUND PORT: one server, one load; appends a JSON line.
run_one() {
    local scenario=$1 name=$2 round=$3 port t0=$SECONDS
    port=$(server_port "$name" "$4")
    start_server "$name" "$proto" "$port" "$work/server.log"
    local line
    if [[ $scenario == idle-* ]]; then
        run_idle "$scenario" "$port"
        line=$(printf '{"scenario":"%s","server":"%s","round":%d,"conns":%d,"rss_before_kib":%d,"rss_after_kib":%d,"rss_per_conn_kib":%s}' \
            "$scenario" "$name" "$round" "$idle_conns" "$rss_before_kib" "$rss_after_kib" "$rss_per_conn_kib")
        printf '%-15s %-13s round %d: %s KiB RSS per idle connection\n' \
            "$scenario" "$name" "$round" "$rss_per_conn_kib" >&2
    else
        run_load "$scenario" "$port"
        line=$(printf '{"scenario":"%s","server":"%s","round":%d,"rps":%s,"p50_us":%s,"p99_us":%s,"p999_us":%s,"errors":%d,"cpu_us_per_req":%s,"syscalls_per_req":%s,"cpu_pct":%s,"load_cpu_pct":%s}' \
            "$scenario" "$name" "$round" "$rps" "$p50" "$p99" "$p999" "$errors" "$cpu_us" "$sc_per_req" "$cpu_pct" "$load_cpu_pct")
        printf '%-15s %-13s round %d: %10.0f req/s  p99 %7s µs  %6s CPU µs/req  %5s syscalls/req  CPU %s%%  load CPU %s%%  errors %s\n' \
            "$scenario" "$name" "$round" "$rps" "$p99" "$cpu_us" "$sc_per_req" "$cpu_pct" "$load_cpu_pct" "$errors" >&2
    fi
    echo "$line" >>"$work/runs.jsonl"
    stop_server
    echo "  ($((SECONDS - t0)) s)" >&2
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
((QUICK)) && stamp+=-quick
echo "scenarios: ${scenarios[*]}; rounds=$ROUNDS duration=${DUR}s warm-up=${WARMUP}s;" \
    "server on CPU 0, load on CPU 1" >&2
: >"$work/runs.jsonl"
port=18100
started=$SECONDS
for scenario in "${scenarios[@]}"; do
    scenario_spec "$scenario"
    if [[ -n $SERVERS ]]; then
        kept=()
        for s in "${servers[@]}"; do
            [[ ",$SERVERS," == *",$s,"* ]] && kept+=("$s")
        done
        servers=("${kept[@]}")
        ((${#servers[@]})) || { echo "$scenario: none of --servers $SERVERS runs it; skipped" >&2; continue; }
    fi
    for round in $(seq "$ROUNDS"); do
        # Rotate the order each round: nobody is always first or last.
        n=${#servers[@]}
        for i in $(seq 0 $((n - 1))); do
            name=${servers[$(((i + round - 1) % n))]}
            # A fresh port per run keeps the last run's TIME_WAIT sockets out of the way.
            run_one "$scenario" "$name" "$round" "$port"
            port=$((port + 1))
        done
    done
done
echo "all runs took $((SECONDS - started)) s" >&2

mkdir -p bench/results
python3 scripts/bench_report.py "$work/runs.jsonl" "bench/results/$stamp" \
    --rounds "$ROUNDS" --duration "$DUR" --warmup "$WARMUP"
if ((!QUICK)) && [[ -z $ONLY && -z $SERVERS ]]; then
    cp "bench/results/$stamp.json" bench/results/latest.json
    cp "bench/results/$stamp.png" bench/results/latest.png
fi
