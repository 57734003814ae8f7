#!/usr/bin/env bash
# User-space instructions per request of a netloop example server, counted by callgrind
# (deterministic here, unlike CPU time): the server runs under valgrind with one poller,
# a lock-step client (scripts/lockstep_client.py) drives CONNS connections for a short and
# a long run, and the difference of the two totals divided by the extra requests is the
# per-request cost (start-up and shutdown cancel out).
#
#   scripts/callgrind.sh [echo|http|http-pipelined|ws] [--conns N] [--short R] [--long R] [--top N] [--peer tokio]
#
# http-pipelined sends 16 pipelined GETs per round and connection (as bench.sh's scenario
# of that name) and reports instructions per GET.
#
# --peer tokio measures bench/peers' tokio server instead (one current-thread runtime;
# tokio-tungstenite-peer for ws), the same way. The peers are built separately (see
# bench/peers/README.md); PEERS_DIR says where their binaries are (default
# bench/peers/target/release).
#
# Prints the figure, and with --top the N functions that gained the most instructions
# between the two runs (callgrind_annotate's per-function self cost in the long run minus the
# short one). epoll only: valgrind cannot run io_uring (it holds its lock across
# io_uring_enter).
set -euo pipefail
what=echo
conns=10
short=200
long=1200
top=0
peer=""
while [[ $# -gt 0 ]]; do
    case $1 in
        echo|http|http-pipelined|ws) what=$1 ;;
        --conns) conns=$2; shift ;;
        --short) short=$2; shift ;;
        --long) long=$2; shift ;;
        --top) top=$2; shift ;;
        --peer) peer=$2; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ -n $peer ]]; then
    [[ $peer == tokio ]] || { echo "unknown peer: $peer (only tokio)" >&2; exit 2; }
    LIB_NO_EXAMPLES=1
fi
source "$(dirname "$0")/lib.sh"
peers_dir=${PEERS_DIR:-bench/peers/target/release}

# run ROUNDS: runs the server under callgrind for ROUNDS rounds; leaves $work/cg.ROUNDS.
run() {
    local rounds=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    local example=$what
    [[ $what == ws ]] && example=ws_echo # examples/ws_echo, 1 KiB binary messages
    [[ $what == http-pipelined ]] && example=http
    local cmd=("$BIN/$example" --addr "127.0.0.1:$port" --pollers 1)
    if [[ $peer == tokio && $what == ws ]]; then
        cmd=("$peers_dir/tokio-tungstenite-peer" --proto ws --addr "127.0.0.1:$port" --threads 1)
    elif [[ $peer == tokio ]]; then
        cmd=("$peers_dir/tokio-peer" --proto "$example" --addr "127.0.0.1:$port" --flavor current --threads 1)
    fi
    NETLOOP_BACKEND=epoll valgrind --tool=callgrind --callgrind-out-file="$work/cg.$rounds" \
        "${cmd[@]}" >"$work/server.$rounds.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 600); do
        port_open "$port" && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.$rounds.log" >&2; return 1; }
        sleep 0.1
    done
    python3 scripts/lockstep_client.py "$port" "$what" "$conns" "$rounds"
    if [[ -n $peer ]]; then
        # The peers have no graceful shutdown: SIGTERM ends them, and valgrind still
        # writes the profile.
        kill -TERM "$server_pid"
        wait "$server_pid" || true
        [[ -s $work/cg.$rounds ]] || { cat "$work/server.$rounds.log" >&2; return 1; }
    else
        kill -INT "$server_pid"
        wait "$server_pid" || { cat "$work/server.$rounds.log" >&2; return 1; }
    fi
    server_pid=""
}

total() {
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); print $1; done = 1 }'
}

run "$short"
run "$long"
a=$(total "$work/cg.$short")
b=$(total "$work/cg.$long")
extra=$(( (long - short) * conns ))
[[ $what == http-pipelined ]] && extra=$(( extra * 16 ))
echo "$what: $(( (b - a) / extra )) instructions per request (($b - $a) / $extra; $conns connections, $short vs $long rounds)"
if [[ $top -gt 0 ]]; then
    echo "functions by extra instructions (self cost) over the extra $extra requests:"
    callgrind_annotate --threshold=100 "$work/cg.$short" 2>/dev/null |
        awk '/^ *[0-9,]+ / && !/=>|PROGRAM TOTALS|events annotated|unidentified lines/ { n=$1; gsub(",", "", n); $1=""; print n "\t" $0 }' >"$work/a.tsv"
    callgrind_annotate --threshold=100 "$work/cg.$long" 2>/dev/null |
        awk '/^ *[0-9,]+ / && !/=>|PROGRAM TOTALS|events annotated|unidentified lines/ { n=$1; gsub(",", "", n); $1=""; print n "\t" $0 }' >"$work/b.tsv"
    python3 - "$work/a.tsv" "$work/b.tsv" "$extra" "$top" <<'PY'
import re, sys
def load(p):
    d = {}
    for line in open(p):
        n, _, name = line.rstrip("\n").partition("\t")
        name = re.sub(r"^\(\s*[\d.]+%\)\s*", "", name.strip()).split(" [")[0]
        if ":" not in name:
            continue
        d[name] = d.get(name, 0) + int(n)
    return d
a, b, extra, top = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rows = sorted(((b.get(k, 0) - a.get(k, 0)) / extra, k) for k in b)
for per, name in reversed(rows[-top:]):
    print(f"{per:10.1f}  {name}")
PY
fi
