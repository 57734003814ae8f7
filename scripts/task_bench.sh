#!/usr/bin/env bash
# Task (RPC) server benchmark, the kitex-benchmark shape: a 1 KiB echo task, 100 tasks in
# flight on 1 connection (mux) or on 100 connections, one each (conns). netloop's task
# server against the tarpc and tonic (gRPC) echo services of bench/peers.
#
#   scripts/task_bench.sh [--servers 'netloop tarpc tonic'] [--shapes 'mux conns']
#                         [--rounds 3] [--duration 5] [--size 1024]
#
# Every run starts a fresh server on one thread pinned to CPU 0, and its own load client
# pinned to CPU 1:
#   netloop  target/release/examples/task_server --addr 127.0.0.1:0 --pollers 1
#   netloop-inline  the same with --inline-echo (the echo runs on the connection's turn)
#            target/release/examples/task_client --bench ...
#   tarpc    bench/peers/target/release/tarpc-peer --addr 127.0.0.1:0   (client: --bench)
#   tonic    bench/peers/target/release/tonic-peer --addr 127.0.0.1:0   (client: --bench)
# The server prints `NAME listening on ADDR`; the client runs
#   CLIENT --bench --addr ADDR --conns C --concurrency N --size S --duration D
# (mux: C=1 N=100; conns: C=100 N=100), prints a line starting with `measuring` on stderr
# once its connections are open, and at the end one JSON line on stdout,
#   {"client":NAME,"conns":C,"concurrency":N,"size":S,"tasks":T,"seconds":X,"p99_us":P,"cpu_seconds":Y}
# (the contract in bench/peers/src/bin/tarpc-peer.rs). perf attaches to the server for
# the middle of the measured period (from 0.5 s after `measuring`, for D - 1 seconds):
#   perf stat -x, -e task-clock,raw_syscalls:sys_enter -p SERVER_PID -- sleep D-1
# Within a round the shapes follow each other and the servers take turns in an order that
# rotates every round. The summary on stdout is a table of medians over the rounds per
# shape and server: tasks/s, p99 latency, server CPU µs per task, syscalls per task, the
# load client's CPU % (near 100 % the client, not the server, is the bottleneck), and the
# ratios netloop / tonic and netloop / tarpc of server CPU per task. "other CPU %" is the
# machine's busy time (user, nice, system, irq, softirq) over the perf window less the
# server's and the client's, in % of one CPU. It is tick-based and so approximate (-5 to
# +10 on an idle machine); well above that something else was running, and the run's
# throughput and latency are not to be trusted (CPU per task holds up better). Raw results and the summary
# go to bench/results/<UTC time>-task.json.
#
# Without netloop in --servers the netloop examples are not built nor needed. Needs two
# CPUs, perf (linux-perf) with permission to attach, and python3.
set -euo pipefail

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
}

ALL_SERVERS=(netloop netloop-inline tarpc tonic)
ALL_SHAPES=(mux conns)
SERVERS=("${ALL_SERVERS[@]}")
SHAPES=("${ALL_SHAPES[@]}")
ROUNDS=3
DUR=5
SIZE=1024
while (($#)); do
    case $1 in
        --servers) read -r -a SERVERS <<<"$2"; shift ;;
        --shapes) read -r -a SHAPES <<<"$2"; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --size) SIZE=$2; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for v in "$ROUNDS" "$DUR" "$SIZE"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "--rounds, --duration and --size take whole numbers" >&2; exit 2; }
done
if ((ROUNDS < 1 || ROUNDS > 100 || DUR < 3 || DUR > 600 || SIZE > 16777216)); then
    echo "--rounds must be 1-100, --duration 3-600 seconds, --size at most 16 MiB" >&2
    exit 2
fi
((${#SERVERS[@]})) || { echo "--servers names no server" >&2; exit 2; }
((${#SHAPES[@]})) || { echo "--shapes names no shape" >&2; exit 2; }
for s in "${SERVERS[@]}"; do
    [[ " ${ALL_SERVERS[*]} " == *" $s "* ]] || { echo "unknown server: $s (${ALL_SERVERS[*]})" >&2; exit 2; }
done
for s in "${SHAPES[@]}"; do
    [[ " ${ALL_SHAPES[*]} " == *" $s "* ]] || { echo "unknown shape: $s (${ALL_SHAPES[*]})" >&2; exit 2; }
done
if (($(nproc) < 2)); then
    echo "needs two CPUs (server on CPU 0, load client on CPU 1); this machine has $(nproc)" >&2
    exit 1
fi
if ! command -v perf >/dev/null ||
    ! perf stat -e task-clock,raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
    echo "perf is missing or not permitted; install linux-perf and allow it" \
        "(kernel.perf_event_paranoid <= 1, or run as root)" >&2
    exit 1
fi

# lib.sh builds all examples unless told not to; only netloop's runs need them.
[[ " ${SERVERS[*]} " == *" netloop"* ]] || export LIB_NO_EXAMPLES=1
# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
PEERS=bench/peers/target/release
peer_bins=()
for s in "${SERVERS[@]}"; do
    [[ $s == netloop* ]] || peer_bins+=(--bin "$s-peer")
done
if ((${#peer_bins[@]})); then
    cargo build --release --manifest-path bench/peers/Cargo.toml "${peer_bins[@]}"
fi

# commands NAME: the server's command line in server_cmd, its load client's in client_cmd,
# the name its listening line starts with in listen_name.
commands() {
    case $1 in
        netloop)
            server_cmd=("$BIN/task_server" --addr 127.0.0.1:0 --pollers 1)
            client_cmd=("$BIN/task_client" --bench)
            listen_name=task_server
            ;;
        netloop-inline)
            # The echo as an inline run function (Task::run_inline): on the
            # connection's turn, no hand-off to a worker and back.
            server_cmd=("$BIN/task_server" --addr 127.0.0.1:0 --pollers 1 --inline-echo)
            client_cmd=("$BIN/task_client" --bench)
            listen_name=task_server
            ;;
        tarpc | tonic)
            server_cmd=("$PEERS/$1-peer" --addr 127.0.0.1:0)
            client_cmd=("$PEERS/$1-peer" --bench)
            listen_name=$1-peer
            ;;
    esac
}
for s in "${SERVERS[@]}"; do
    commands "$s"
    for bin in "${server_cmd[0]}" "${client_cmd[0]}"; do
        [[ -x $bin ]] || { echo "no binary $bin for $s (--servers picks a subset)" >&2; exit 1; }
    done
done

# shape_args SHAPE: the shape's --conns and --concurrency, in the array shape.
shape_args() {
    case $1 in
        mux) shape=(--conns 1 --concurrency 100) ;;
        conns) shape=(--conns 100 --concurrency 100) ;;
    esac
}

# busy_ticks: user + nice + system + irq + softirq time of all CPUs so far, in clock ticks.
busy_ticks() {
    awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

# proc_ticks PID: user + system CPU time of PID (all its threads) so far, in clock ticks.
proc_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# stop_server: TERM, then KILL after 5 s; reaps it.
stop_server() {
    [[ -n $server_pid ]] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    exits_within "$server_pid" 50 || kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}

# run_one SHAPE NAME ROUND: one server, one load client; appends a JSON line to runs.jsonl.
run_one() {
    local shape_name=$1 name=$2 round=$3 addr="" perf_secs=$((DUR - 1)) started=0
    commands "$name"
    shape_args "$shape_name"
    taskset -c 0 "${server_cmd[@]}" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 100); do
        addr=$(sed -n "s/^$listen_name listening on \([^ ]*\).*/\1/p" "$work/server.log" | head -n 1)
        [[ -n $addr ]] && break
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $addr ]]; then
        echo "$name: no '$listen_name listening on ADDR' line:" >&2
        cat "$work/server.log" >&2
        return 1
    fi
    # Bounded: the run takes the duration plus connecting (at most 10 s a connection in
    # the peers) and a grace period.
    timeout --kill-after=5s $((DUR + 60)) taskset -c 1 "${client_cmd[@]}" --addr "$addr" \
        "${shape[@]}" --size "$SIZE" --duration "$DUR" >"$work/client.out" 2>"$work/client.err" &
    load_pid=$!
    for _ in $(seq 300); do
        grep -q '^measuring' "$work/client.err" 2>/dev/null && { started=1; break; }
        kill -0 "$load_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ((!started)); then
        echo "$name ($shape_name): the load client printed no 'measuring' line within 30 s:" >&2
        cat "$work/client.out" "$work/client.err" >&2
        return 1
    fi
    sleep 0.5
    # The load client is the child of timeout (taskset execs it). Over the perf window:
    # the whole machine's busy time and the client's, so that CPU time used by anything
    # else (another build or test on the machine) shows as other_cpu_pct.
    local client_pid busy0 busy1 client0 client1
    client_pid=$(pgrep -P "$load_pid" | head -n 1)
    busy0=$(busy_ticks) client0=$(proc_ticks "$client_pid")
    perf_server "$server_pid" "$perf_secs"
    busy1=$(busy_ticks) client1=$(proc_ticks "$client_pid")
    if ! wait "$load_pid"; then
        echo "$name ($shape_name, round $round): the load client failed:" >&2
        cat "$work/client.out" "$work/client.err" >&2
        return 1
    fi
    load_pid=""
    stop_server
    python3 - "$work/client.out" "$work/perf.csv" "$round" "$shape_name" "$name" "$perf_secs" \
        "$((busy1 - busy0))" "$((client1 - client0))" "$(getconf CLK_TCK)" \
        >>"$work/runs.jsonl" <<'PY' || { echo "$name ($shape_name): unusable results:" >&2; cat "$work/client.out" "$work/perf.csv" >&2; return 1; }
import json, sys
out, perf, round_, shape, name, perf_secs, busy, client_ticks, hz = sys.argv[1:]
lines = [l for l in open(out).read().splitlines() if l.strip()]
if not lines:
    sys.exit("no JSON line")
r = json.loads(lines[-1])
for k in ("client", "conns", "concurrency", "size", "tasks", "seconds", "p99_us", "cpu_seconds"):
    if k not in r:
        sys.exit("no %r in the JSON line" % k)
if r["tasks"] <= 0 or r["seconds"] <= 0:
    sys.exit("no tasks measured")
counts = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) >= 3 and f[2] in ("task-clock", "raw_syscalls:sys_enter"):
        counts[f[2]] = float(f[0])  # "<not counted>" fails here, as it should
task_ms, syscalls = counts["task-clock"], counts["raw_syscalls:sys_enter"]
secs = float(perf_secs)
rate = r["tasks"] / r["seconds"]
tasks_in_window = rate * secs
row = {"round": int(round_), "shape": shape, "server": name, **r,
       "tasks_per_s": round(rate, 1),
       "load_cpu_pct": round(100 * r["cpu_seconds"] / r["seconds"], 1),
       "perf_seconds": secs, "server_task_ms": task_ms, "server_syscalls": syscalls,
       "cpu_us_per_task": round(task_ms * 1000 / tasks_in_window, 3),
       "syscalls_per_task": round(syscalls / tasks_in_window, 3),
       "server_cpu_pct": round(100 * task_ms / (secs * 1000), 1)}
# Tick-based and so approximate (a few %); in % of one CPU.
row["window_client_cpu_pct"] = round(100 * int(client_ticks) / int(hz) / secs, 1)
row["other_cpu_pct"] = round(100 * int(busy) / int(hz) / secs - row["server_cpu_pct"]
                             - row["window_client_cpu_pct"], 1)
print(json.dumps(row))
PY
    python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
print("round %(round)d %(shape)-5s %(server)-7s %(tasks_per_s)10.0f tasks/s  p99 %(p99_us)8.1f us  "
      "server %(cpu_us_per_task)6.2f CPU us/task %(syscalls_per_task)5.2f syscalls/task "
      "CPU %(server_cpu_pct)5.1f%%  client CPU %(load_cpu_pct)5.1f%%  other CPU %(other_cpu_pct)5.1f%%" % r)' \
        "$work/runs.jsonl" >&2
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
echo "servers: ${SERVERS[*]}; shapes: ${SHAPES[*]}; $ROUNDS round(s) of ${DUR}s, ${SIZE}-byte" \
    "tasks; server on CPU 0, load client on CPU 1" >&2
: >"$work/runs.jsonl"
n=${#SERVERS[@]}
t0=$SECONDS
for round in $(seq "$ROUNDS"); do
    for shape_name in "${SHAPES[@]}"; do
        # Rotate the order each round: nobody is always first or last.
        for i in $(seq 0 $((n - 1))); do
            run_one "$shape_name" "${SERVERS[$(((i + round - 1) % n))]}" "$round"
        done
    done
done
echo "all runs took $((SECONDS - t0)) s" >&2

mkdir -p bench/results
python3 - "$work/runs.jsonl" "bench/results/$stamp-task.json" "$ROUNDS" "$DUR" "$SIZE" <<'PY'
import datetime, json, sys
sys.dont_write_bytecode = True  # no scripts/__pycache__
sys.path.insert(0, "scripts")
from bench_report import machine, median

runs_path, out, rounds, dur, size = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
SHAPES = {"mux": "100 tasks in flight on 1 connection", "conns": "100 connections, 1 task in flight each"}
SERVERS = ["netloop", "netloop-inline", "tarpc", "tonic"]
METRICS = ["tasks_per_s", "p99_us", "cpu_us_per_task", "syscalls_per_task", "server_cpu_pct", "load_cpu_pct",
           "other_cpu_pct"]
summary = {}
for shape in SHAPES:
    for server in SERVERS:
        rs = [r for r in runs if r["shape"] == shape and r["server"] == server]
        if not rs:
            continue
        s = {"runs": len(rs)}
        for m in METRICS:
            vals = [r[m] for r in rs]
            s[m] = median(vals)
            s[m + "_range"] = [min(vals), max(vals)]
        summary.setdefault(shape, {})[server] = s


def ratio(shape, a, b):
    x, y = summary.get(shape, {}).get(a), summary.get(shape, {}).get(b)
    return round(x["cpu_us_per_task"] / y["cpu_us_per_task"], 3) if x and y and y["cpu_us_per_task"] else None


ratios = {shape: {f"{a}/{b}": ratio(shape, a, b) for a in ("netloop", "netloop-inline") for b in ("tonic", "tarpc")}
          for shape in summary}
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "kind": "task",
    "machine": machine(),
    "settings": {"rounds": int(rounds), "duration_s": int(dur), "size": int(size),
                 "perf_window_s": int(dur) - 1, "server_cpu": 0, "client_cpu": 1,
                 "shapes": {"mux": {"conns": 1, "concurrency": 100}, "conns": {"conns": 100, "concurrency": 100}}},
    "summary": summary,
    "server_cpu_per_task_ratios": ratios,
    "runs": runs,
}
with open(out, "w") as f:
    json.dump(report, f, indent=1)
    f.write("\n")
m = report["machine"]
print(f"Task echo, {size}-byte payload, medians of {rounds} round(s) of {dur} s; server on CPU 0 (one thread), "
      f"load client on CPU 1. {m['cpu']}, Linux {m['kernel']}, commit {m['commit']}{' (dirty)' if m['dirty'] else ''}.")
fmt = lambda v, d: "–" if v is None else f"{v:,.{d}f}"
for shape, title in SHAPES.items():
    if shape not in summary:
        continue
    print()
    print(f"### {shape}: {title}")
    print()
    print("| server | tasks/s | p99 µs | server CPU µs/task | syscalls/task | server CPU % | load client CPU % "
          "| other CPU % |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for server in SERVERS:
        s = summary[shape].get(server)
        if s:
            print(f"| {server} | {fmt(s['tasks_per_s'], 0)} | {fmt(s['p99_us'], 0)} | {fmt(s['cpu_us_per_task'], 2)} "
                  f"| {fmt(s['syscalls_per_task'], 2)} | {fmt(s['server_cpu_pct'], 0)} | {fmt(s['load_cpu_pct'], 0)} "
                  f"| {fmt(s['other_cpu_pct'], 0)} |")
    r = ratios[shape]
    if any(v is not None for v in r.values()):
        print()
        print("server CPU per task: " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in r.items() if v is not None))
print()
print(f"raw results: {out}")
PY
