#!/usr/bin/env bash
# WebSocket client benchmark: netloop's client (examples/ws_client) against
# tokio-tungstenite's (bench/peers' tokio-tungstenite-client-peer), both driving the same
# netloop echo server (examples/ws_echo, one poller, pinned to CPU 0).
#
#   scripts/ws_client_bench.sh [--rounds 3] [--conns 100] [--size 1024] [--duration 5]
#                              [--clients 'netloop tokio-tungstenite']
#
# Each run starts one client pinned to CPU 1 with the same closed-loop echo load:
#   CLIENT --echo --url ws://127.0.0.1:PORT --conns N --size S --duration D
# and reads the one JSON line it prints at the end,
#   {"client":NAME,"conns":N,"size":S,"messages":M,"seconds":X,"cpu_seconds":C}
# (the contract in bench/peers/src/bin/tokio-tungstenite-client-peer.rs; cpu_seconds is
# the client's own user + system CPU over the measured period). The clients take turns,
# in an order that rotates every round, against one server started once. The summary
# on stdout is a table of medians over the rounds: messages/s, client CPU µs per
# message, and the ratio netloop / tokio-tungstenite of CPU per message. --clients runs
# a subset. Raw results and the summary go to bench/results/<UTC time>-ws-client.json.
#
# Needs two CPUs and python3.
set -euo pipefail

usage() {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
}

ROUNDS=3
CONNS=100
SIZE=1024
DUR=5
CLIENTS=(netloop tokio-tungstenite)
while (($#)); do
    case $1 in
        --rounds) ROUNDS=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --size) SIZE=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --clients) read -r -a CLIENTS <<<"$2"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
for v in "$ROUNDS" "$CONNS" "$SIZE" "$DUR"; do
    [[ $v =~ ^[0-9]+$ ]] || { echo "--rounds, --conns, --size and --duration take whole numbers" >&2; exit 2; }
done
if ((ROUNDS < 1 || ROUNDS > 100 || CONNS < 1 || DUR < 1 || DUR > 600)); then
    echo "--rounds must be 1-100, --conns at least 1, --duration 1-600 seconds" >&2
    exit 2
fi
((${#CLIENTS[@]})) || { echo "--clients names no client" >&2; exit 2; }
for c in "${CLIENTS[@]}"; do
    [[ $c == netloop || $c == tokio-tungstenite ]] ||
        { echo "unknown client: $c (netloop, tokio-tungstenite)" >&2; exit 2; }
done
if (($(nproc) < 2)); then
    echo "needs two CPUs (server on CPU 0, client on CPU 1); this machine has $(nproc)" >&2
    exit 1
fi

# shellcheck source=scripts/lib.sh
source "$(dirname "$0")/lib.sh"
cargo build --release --manifest-path bench/peers/Cargo.toml --bin tokio-tungstenite-client-peer

# client_cmd NAME: the client's command line, in the array cmd.
client_cmd() {
    case $1 in
        netloop) cmd=("$BIN/ws_client") ;;
        tokio-tungstenite) cmd=(bench/peers/target/release/tokio-tungstenite-client-peer) ;;
    esac
}
for c in "${CLIENTS[@]}"; do
    client_cmd "$c"
    [[ -x ${cmd[0]} ]] || { echo "no client binary ${cmd[0]} for $c (--clients picks a subset)" >&2; exit 1; }
done

taskset -c 0 "$BIN/ws_echo" --addr 127.0.0.1:0 --pollers 1 >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 100); do
    addr=$(sed -n 's/^ws_echo listening on //p' "$work/server.log" | head -n 1)
    [[ -n $addr ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $addr ]]; then
    echo "ws_echo did not start:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
echo "ws_echo on $addr (CPU 0); clients on CPU 1: ${CLIENTS[*]}; $ROUNDS round(s) of ${DUR}s," \
    "$CONNS conns, $SIZE-byte messages" >&2

stamp=$(date -u +%Y%m%dT%H%M%SZ)
: >"$work/runs.jsonl"
n=${#CLIENTS[@]}
for round in $(seq "$ROUNDS"); do
    for i in $(seq 0 $((n - 1))); do
        name=${CLIENTS[$(((i + round - 1) % n))]}
        client_cmd "$name"
        # Bounded: the run itself takes the duration plus connecting and closing.
        if ! timeout --kill-after=5s $((DUR + 60)) taskset -c 1 "${cmd[@]}" --echo \
            --url "ws://$addr" --conns "$CONNS" --size "$SIZE" --duration "$DUR" \
            >"$work/client.out" 2>"$work/client.err"; then
            echo "$name failed (round $round):" >&2
            cat "$work/client.out" "$work/client.err" >&2
            exit 1
        fi
        line=$(python3 -c '
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
for k in ("client", "conns", "size", "messages", "seconds", "cpu_seconds"):
    if k not in r:
        sys.exit("no %r in the JSON line" % k)
if r["messages"] <= 0 or r["seconds"] <= 0:
    sys.exit("no messages measured")
r = {"round": int(sys.argv[2]), "name": sys.argv[3], **r}
r["msgs_per_s"] = round(r["messages"] / r["seconds"], 1)
r["cpu_us_per_msg"] = round(r["cpu_seconds"] * 1e6 / r["messages"], 3)
print(json.dumps(r))' "$work/client.out" "$round" "$name") ||
            { echo "$name printed no usable result line:" >&2; cat "$work/client.out" >&2; exit 1; }
        echo "$line" >>"$work/runs.jsonl"
        echo "round $round: $line" >&2
    done
done
kill -TERM "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true
server_pid=""

mkdir -p bench/results
python3 - "$work/runs.jsonl" "bench/results/$stamp-ws-client.json" "$ROUNDS" "$CONNS" "$SIZE" "$DUR" <<'PY'
import datetime, json, statistics, sys
sys.dont_write_bytecode = True  # no scripts/__pycache__
sys.path.insert(0, "scripts")
from bench_report import machine

runs_path, out, rounds, conns, size, dur = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
order = ["netloop", "tokio-tungstenite"]
names = [n for n in order if any(r["name"] == n for r in runs)]
summary = {}
for n in names:
    rs = [r for r in runs if r["name"] == n]
    summary[n] = {
        "runs": len(rs),
        "msgs_per_s": statistics.median(r["msgs_per_s"] for r in rs),
        "cpu_us_per_msg": statistics.median(r["cpu_us_per_msg"] for r in rs),
    }
ratio = None
if "netloop" in summary and "tokio-tungstenite" in summary:
    ratio = round(summary["netloop"]["cpu_us_per_msg"] / summary["tokio-tungstenite"]["cpu_us_per_msg"], 3)
report = {
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "kind": "ws-client",
    "machine": machine(),
    "settings": {"rounds": int(rounds), "conns": int(conns), "size": int(size), "duration_s": int(dur),
                 "server": "examples/ws_echo --pollers 1", "server_cpu": 0, "client_cpu": 1},
    "summary": summary,
    "cpu_per_msg_ratio_netloop_over_tokio_tungstenite": ratio,
    "runs": runs,
}
with open(out, "w") as f:
    json.dump(report, f, indent=1)
    f.write("\n")
print(f"WebSocket client echo: {conns} conns, {size}-byte binary messages, {dur} s, "
      f"medians of {rounds} round(s); server ws_echo --pollers 1 on CPU 0, client on CPU 1")
print()
print("| client | messages/s | client CPU µs/message |")
print("| --- | ---: | ---: |")
for n in names:
    s = summary[n]
    print(f"| {n} | {s['msgs_per_s']:,.0f} | {s['cpu_us_per_msg']:.3f} |")
if ratio is not None:
    print()
    print(f"CPU per message, netloop / tokio-tungstenite: {ratio:.3f}")
print()
print(f"raw results: {out}")
PY
