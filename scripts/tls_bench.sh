#!/usr/bin/env bash
# TLS benchmark: netloop's example servers with --tls-cert/--tls-key against
# bench/peers' tokio-rustls-peer (tokio-rustls 0.26 on the same rustls 0.23 release with
# the same ring provider and ServerConfig), in three scenarios, alternated over rounds.
#
#   scripts/tls_bench.sh [--rounds 3] [--duration 5] [--only https,handshakes,wss]
#                        [--servers 'netloop tokio-rustls']
#   NETLOOP_BACKEND=io_uring scripts/tls_bench.sh   # netloop's side on io_uring
#
# examples/tls_cert writes a local CA and a certificate for 127.0.0.1 into the work
# directory first. Every run starts a fresh server on one thread pinned to CPU 0, on a
# fresh port, and the load generator pinned to CPU 1:
#   https       wrk -t1 -c64 -dD --latency https://127.0.0.1:PORT/ (OpenSSL; 64 keep-alive
#               connections, so this is the record layer, not handshakes), against
#               examples/http and tokio-rustls-peer --proto http
#   handshakes  examples/tls_handshakes --threads 2 (a full TLS 1.3 handshake, no
#               resumption, 1 byte echoed, close, again), against examples/echo and
#               tokio-rustls-peer --proto echo; a "request" is a handshake
#   wss         examples/ws_client --echo --url wss://127.0.0.1:PORT/ --conns 100
#               --size 1024 (netloop's client engine; closed loops), against
#               examples/ws_echo and tokio-rustls-peer --proto ws; a "request" is a message
# netloop runs as `EXAMPLE --addr 127.0.0.1:PORT --pollers 1 --tls-cert C --tls-key K`,
# with NETLOOP_BACKEND passed to it from the environment (and taken away from the load
# generators, so that ws_client's own runtime stays the same). perf attaches to the
# server from 1 s into the load for D - 2 seconds (the middle of the measured period):
#   perf stat -x, -e task-clock,raw_syscalls:sys_enter -p SERVER_PID -- sleep D-2
# which gives server CPU µs per request and syscalls per request; the load tool gives
# requests/s over its whole run and p99 latency (wrk: per request; tls_handshakes: per
# connection, connect to close; ws_client gives none). Over the same window the load
# generator's CPU (% of one CPU; near 100 it may be the bottleneck) and "other CPU %",
# the machine's busy time less the server's and the load's (tick-based, a few % either
# way; much more and something else was running). The summary on stdout is a markdown
# table of medians over the rounds and ratios netloop / tokio-rustls; raw results go to
# bench/results/<UTC time>-tls[-uring].json.
#
# Needs two CPUs, perf with permission to attach, wrk, python3.
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

ALL_SCENARIOS=(https handshakes wss)
ALL_SERVERS=(netloop tokio-rustls)
SCENARIOS=("${ALL_SCENARIOS[@]}")
SERVERS=("${ALL_SERVERS[@]}")
ROUNDS=3
DUR=5
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --only) IFS=, read -r -a SCENARIOS <<<"$2"; shift ;;
        --servers) read -r -a SERVERS <<<"$2"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for v in "$ROUNDS" "$DUR"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "--rounds and --duration take whole numbers" >&2; exit 2; }
done
if ((ROUNDS < 1 || ROUNDS > 100 || DUR < 4 || DUR > 600)); then
    echo "--rounds must be 1-100 and --duration 4-600 seconds" >&2
    exit 2
fi
((${#SCENARIOS[@]})) || { echo "--only names no scenario" >&2; exit 2; }
((${#SERVERS[@]})) || { echo "--servers names no server" >&2; exit 2; }
for s in "${SCENARIOS[@]}"; do
    [[ " ${ALL_SCENARIOS[*]} " == *" $s "* ]] || { echo "unknown scenario: $s (${ALL_SCENARIOS[*]})" >&2; exit 2; }
done
for s in "${SERVERS[@]}"; do
    [[ " ${ALL_SERVERS[*]} " == *" $s "* ]] || { echo "unknown server: $s (${ALL_SERVERS[*]})" >&2; exit 2; }
done
case ${NETLOOP_BACKEND:-epoll} in
    epoll | io_uring | auto) ;;
    *) echo "NETLOOP_BACKEND must be epoll, io_uring or auto" >&2; exit 2 ;;
esac
if (($(nproc) < 2)); then
    echo "needs two CPUs (server on CPU 0, load on CPU 1); this machine has $(nproc)" >&2
    exit 1
fi
if ! command -v perf >/dev/null ||
    ! perf stat -e task-clock,raw_syscalls:sys_enter -- true >/dev/null 2>&1; then
    echo "perf is missing or not permitted; install linux-perf and allow it" \
        "(kernel.perf_event_paranoid <= 1, or run as root)" >&2
    exit 1
fi
for tool in wrk python3; do
    command -v "$tool" >/dev/null || { echo "$tool is missing" >&2; exit 1; }
done

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
PEERS=bench/peers/target/release
CARGO_TARGET_DIR=$PWD/bench/peers/target \
    cargo build --release --manifest-path bench/peers/Cargo.toml --bin tokio-rustls-peer
for bin in "$BIN/tls_cert" "$BIN/tls_handshakes" "$BIN/http" "$BIN/echo" "$BIN/ws_echo" \
    "$BIN/ws_client" "$PEERS/tokio-rustls-peer"; do
    [[ -x $bin ]] || { echo "no binary $bin" >&2; exit 1; }
done
"$BIN/tls_cert" --out "$work/tls" >/dev/null
CA=$work/tls/ca.pem CERT=$work/tls/cert.pem KEY=$work/tls/key.pem
BACKEND=${NETLOOP_BACKEND:-epoll}

# commands SCENARIO NAME PORT: the server's command line in server_cmd, the load's in
# load_cmd.
commands() {
    local scenario=$1 name=$2 port=$3 example proto
    case $scenario in
        https) example=http proto=http
            load_cmd=(wrk -t1 -c64 -d"${DUR}s" --latency "https://127.0.0.1:$port/") ;;
        handshakes) example=echo proto=echo
            load_cmd=("$BIN/tls_handshakes" --addr "127.0.0.1:$port" --ca "$CA" --threads 2
                --duration "$DUR") ;;
        wss) example=ws_echo proto=ws
            load_cmd=("$BIN/ws_client" --echo --url "wss://127.0.0.1:$port/" --tls-ca "$CA"
                --conns 100 --size 1024 --duration "$DUR") ;;
    esac
    case $name in
        netloop) server_cmd=("$BIN/$example" --addr "127.0.0.1:$port" --pollers 1
            --tls-cert "$CERT" --tls-key "$KEY") ;;
        tokio-rustls) server_cmd=("$PEERS/tokio-rustls-peer" --proto "$proto"
            --addr "127.0.0.1:$port" --threads 1 --cert "$CERT" --key "$KEY") ;;
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

# run_one SCENARIO NAME ROUND PORT: one server, one load; appends a JSON line to runs.jsonl.
run_one() {
    local scenario=$1 name=$2 round=$3 port=$4 perf_secs=$((DUR - 2))
    commands "$scenario" "$name" "$port"
    taskset -c 0 "${server_cmd[@]}" >"$work/server.log" 2>&1 &
    server_pid=$!
    wait_for_port "$port" "$server_pid" "$work/server.log"
    # Bounded: the load's own duration, plus connecting and closing.
    env -u NETLOOP_BACKEND timeout --kill-after=5s $((DUR + 60)) taskset -c 1 "${load_cmd[@]}" \
        >"$work/load.out" 2>&1 &
    load_pid=$!
    sleep 1
    # timeout's child is the load generator (taskset execs it).
    local tool_pid busy0 busy1 load0 load1
    tool_pid=$(pgrep -P "$load_pid" | head -n 1)
    if [[ -z $tool_pid ]]; then
        echo "$name ($scenario): the load generator is gone:" >&2
        cat "$work/load.out" >&2
        return 1
    fi
    busy0=$(busy_ticks) load0=$(proc_ticks "$tool_pid")
    perf_server "$server_pid" "$perf_secs"
    busy1=$(busy_ticks) load1=$(proc_ticks "$tool_pid")
    wait_load "$scenario ($name, round $round)" "$work/load.out"
    stop_server
    python3 - "$work/load.out" "$work/perf.csv" "$scenario" "$name" "$round" "$perf_secs" \
        "$((busy1 - busy0))" "$((load1 - load0))" "$(getconf CLK_TCK)" "$BACKEND" \
        >>"$work/runs.jsonl" <<'PY' || { echo "$name ($scenario): unusable results:" >&2; cat "$work/load.out" "$work/perf.csv" >&2; return 1; }
import json, re, sys
out, perf, scenario, name, round_, perf_secs, busy, load_ticks, hz, backend = sys.argv[1:]
text = open(out).read()


def us(v):
    """wrk's latency with its unit, in microseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    return float(m[1]) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m[2]]


row = {"scenario": scenario, "server": name, "round": int(round_)}
if name == "netloop":
    row["backend"] = backend
if scenario == "https":
    row["rps"] = float(re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)[1])
    row["p50_us"] = us(re.search(r"^\s+50%\s+(\S+)", text, re.M)[1])
    row["p99_us"] = us(re.search(r"^\s+99%\s+(\S+)", text, re.M)[1])
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        errors += int(m[1])
    row["errors"] = errors
elif scenario == "handshakes":
    m = re.search(r"^handshakes (\d+) in ([\d.]+) s: ([\d.]+)/s, p50 (\d+) us, p99 (\d+) us, "
                  r"client CPU ([\d.]+) s$", text, re.M)
    n, secs = int(m[1]), float(m[2])
    row.update(rps=n / secs, p50_us=float(m[4]), p99_us=float(m[5]), errors=0,
               load_cpu_us_per_req_self=round(float(m[6]) * 1e6 / n, 2))
else:
    r = json.loads([l for l in text.splitlines() if l.startswith("{")][-1])
    row.update(rps=r["messages"] / r["seconds"], p50_us=None, p99_us=None, errors=0,
               load_cpu_us_per_req_self=round(r["cpu_seconds"] * 1e6 / r["messages"], 2))
if row["rps"] <= 0:
    sys.exit("nothing measured")
counts = {}
for line in open(perf):
    f = line.strip().split(",")
    if len(f) >= 3 and f[2] in ("task-clock", "raw_syscalls:sys_enter"):
        counts[f[2]] = float(f[0])  # "<not counted>" fails here, as it should
task_ms, syscalls = counts["task-clock"], counts["raw_syscalls:sys_enter"]
secs = float(perf_secs)
reqs = row["rps"] * secs  # requests in the perf window, at the run's mean rate
row["rps"] = round(row["rps"], 1)
row.update(perf_seconds=secs, server_task_ms=task_ms, server_syscalls=syscalls,
           cpu_us_per_req=round(task_ms * 1000 / reqs, 3),
           syscalls_per_req=round(syscalls / reqs, 3),
           server_cpu_pct=round(100 * task_ms / (secs * 1000), 1))
row["per_core_per_s"] = round(1e6 / row["cpu_us_per_req"], 1)
load_s = int(load_ticks) / int(hz)
row["load_cpu_pct"] = round(100 * load_s / secs, 1)
row["load_cpu_us_per_req"] = round(load_s * 1e6 / reqs, 2)
row["other_cpu_pct"] = round(100 * int(busy) / int(hz) / secs - row["server_cpu_pct"]
                             - row["load_cpu_pct"], 1)
print(json.dumps(row))
PY
    python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
p99 = "-" if r["p99_us"] is None else "%.0f" % r["p99_us"]
print("%-10s %-12s round %d: %9.0f /s  p99 %6s us  server %7.2f CPU us/req %6.2f syscalls/req "
      "CPU %5.1f%%  load CPU %5.1f%%  other CPU %5.1f%%" % (r["scenario"], r["server"], r["round"],
      r["rps"], p99, r["cpu_us_per_req"], r["syscalls_per_req"], r["server_cpu_pct"],
      r["load_cpu_pct"], r["other_cpu_pct"]))' "$work/runs.jsonl" >&2
}

stamp=$(date -u +%Y%m%dT%H%M%SZ)
suffix=tls
[[ $BACKEND == epoll ]] || suffix=tls-${BACKEND//_/}
echo "scenarios: ${SCENARIOS[*]}; servers: ${SERVERS[*]} (netloop backend $BACKEND);" \
    "$ROUNDS round(s) of ${DUR}s; server on CPU 0, load on CPU 1" >&2
: >"$work/runs.jsonl"
port=18500
n=${#SERVERS[@]}
t0=$SECONDS
for round in $(seq "$ROUNDS"); do
    for scenario in "${SCENARIOS[@]}"; do
        # Rotate the order each round: nobody is always first or last.
        for i in $(seq 0 $((n - 1))); do
            run_one "$scenario" "${SERVERS[$(((i + round - 1) % n))]}" "$round" "$port"
            # A fresh port per run keeps the last run's TIME_WAIT sockets out of the way.
            port=$((port + 1))
        done
    done
done
echo "all runs took $((SECONDS - t0)) s" >&2

mkdir -p bench/results
python3 - "$work/runs.jsonl" "bench/results/$stamp-$suffix.json" "$ROUNDS" "$DUR" "$BACKEND" <<'PY'
import datetime, json, sys
sys.dont_write_bytecode = True  # no scripts/__pycache__
sys.path.insert(0, "scripts")
from bench_report import machine, median

runs_path, out, rounds, dur, backend = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
SCENARIOS = {
    "https": ("HTTPS, wrk -t1 -c64 keep-alive (record layer)", "requests"),
    "handshakes": ("full TLS 1.3 handshakes, tls_handshakes --threads 2 (1-byte echo, close)", "handshakes"),
    "wss": ("wss echo, ws_client 100 conns, 1 KiB binary messages", "messages"),
}
SERVERS = ["netloop", "tokio-rustls"]
METRICS = ["rps", "p50_us", "p99_us", "cpu_us_per_req", "per_core_per_s", "syscalls_per_req", "server_cpu_pct",
           "load_cpu_pct", "load_cpu_us_per_req", "other_cpu_pct", "errors"]
summary = {}
for scenario in SCENARIOS:
    for server in SERVERS:
        rs = [r for r in runs if r["scenario"] == scenario and r["server"] == server]
        if not rs:
            continue
        s = {"runs": len(rs)}
        for m in METRICS:
            vals = [r[m] for r in rs if r.get(m) is not None]
            s[m] = median(vals)
            s[m + "_range"] = [min(vals), max(vals)] if vals else None
        summary.setdefault(scenario, {})[server] = s
ratios = {}
for scenario, by in summary.items():
    if "netloop" in by and "tokio-rustls" in by:
        a, b = by["netloop"], by["tokio-rustls"]
        ratios[scenario] = {m: round(a[m] / b[m], 3) if a[m] is not None and b[m] else None
                            for m in ("rps", "p99_us", "cpu_us_per_req", "syscalls_per_req")}
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "kind": "tls",
    "machine": machine(),
    "settings": {"rounds": int(rounds), "duration_s": int(dur), "perf_window_s": int(dur) - 2,
                 "perf_offset_s": 1, "server_cpu": 0, "load_cpu": 1, "netloop_backend": backend,
                 "servers": {"netloop": "examples/{http,echo,ws_echo} --pollers 1 --tls-cert --tls-key",
                             "tokio-rustls": "bench/peers tokio-rustls-peer --threads 1"},
                 "certificate": "examples/tls_cert: ECDSA P-256"},
    "summary": summary,
    "ratios_netloop_over_tokio_rustls": ratios,
    "runs": runs,
}
with open(out, "w") as f:
    json.dump(report, f, indent=1)
    f.write("\n")
m = report["machine"]
print(f"TLS (rustls 0.23, ring, ECDSA P-256), medians of {rounds} round(s) of {dur} s; server on CPU 0 (one "
      f"thread; netloop backend {backend}), load on CPU 1. {m['cpu']}, Linux {m['kernel']}, commit "
      f"{m['commit']}{' (dirty)' if m['dirty'] else ''}.")
fmt = lambda v, d: "–" if v is None else f"{v:,.{d}f}"
print()
print("| scenario | server | per s | p99 µs | server CPU µs/req | per core /s | syscalls/req | server CPU % "
      "| load CPU % | load CPU µs/req | other CPU % |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for scenario, (title, unit) in SCENARIOS.items():
    for server in SERVERS:
        s = summary.get(scenario, {}).get(server)
        if s:
            print(f"| {scenario} | {server} | {fmt(s['rps'], 0)} | {fmt(s['p99_us'], 0)} "
                  f"| {fmt(s['cpu_us_per_req'], 2)} | {fmt(s['per_core_per_s'], 0)} | {fmt(s['syscalls_per_req'], 2)} "
                  f"| {fmt(s['server_cpu_pct'], 0)} | {fmt(s['load_cpu_pct'], 0)} | {fmt(s['load_cpu_us_per_req'], 1)} "
                  f"| {fmt(s['other_cpu_pct'], 0)} |")
if ratios:
    print()
    print("| scenario | netloop / tokio-rustls: per s | p99 | server CPU per req | syscalls per req |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for scenario, r in ratios.items():
        print(f"| {scenario} | {fmt(r['rps'], 2)} | {fmt(r['p99_us'], 2)} | {fmt(r['cpu_us_per_req'], 2)} "
              f"| {fmt(r['syscalls_per_req'], 2)} |")
print()
for scenario, (title, unit) in SCENARIOS.items():
    if scenario in summary:
        print(f"- {scenario}: {title}; a request is one of the {unit}")
print("- per core /s = 1e6 / server CPU µs per request; load CPU % is of one CPU, over the perf window")
errors = {s: {n: v["errors"] for n, v in by.items() if v.get("errors")} for s, by in summary.items()}
if any(errors.values()):
    print(f"- errors (median per run): {errors}")
print()
print(f"raw results: {out}")
PY
