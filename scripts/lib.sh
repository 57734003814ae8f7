# Shared by the measurement scripts: build the examples, a work directory cleaned up on
# exit (with any server or load generator still running), and waiting for a port.
# Source it after `set -euo pipefail`; it leaves BIN, work, server_pid and load_pid set.
# With LIB_NO_EXAMPLES=1 it does not build the examples (a run that uses none of them).

cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -n ${LIB_NO_EXAMPLES:-} ]] || cargo build --release --examples
BIN=target/release/examples

work=$(mktemp -d)
server_pid=""
load_pid=""
cleanup() {
    [[ -n ${KEEP_WORK:-} ]] && { echo "work: $work" >&2; return; }
    # Only reached with something still running if a run failed half way.
    for pid in $load_pid $server_pid; do
        kill "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# Whether something accepts connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# perf_server PID SECS: server CPU time and system calls over the next SECS seconds, in
# $work/perf.csv (`perf stat -x,` format).
perf_server() {
    perf stat -x, -o "$work/perf.csv" -e task-clock,raw_syscalls:sys_enter \
        -p "$1" -- sleep "$2"
}

# wait_load WHAT LOG: waits for the load generator ($load_pid); if it failed, prints
# LOG and returns 1.
wait_load() {
    if ! wait "$load_pid"; then
        echo "the load failed ($1):" >&2
        cat "$2" >&2
        return 1
    fi
    load_pid=""
}

# exits_within PID TENTHS: waits up to TENTHS tenths of a second for PID to exit;
# returns 1 if it is still running.
exits_within() {
    for _ in $(seq "$2"); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$1" 2>/dev/null
}

# wait_for_port PORT [PID LOG]: waits up to 5 s for 127.0.0.1:PORT to accept; with PID,
# gives up at once (printing LOG) if that process exits first.
wait_for_port() {
    local port=$1 pid=${2:-} log=${3:-}
    for _ in $(seq 100); do
        port_open "$port" && return 0
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            echo "the server exited at start:" >&2
            [[ -n $log ]] && cat "$log" >&2
            return 1
        fi
        sleep 0.05
    done
    echo "nothing started listening on 127.0.0.1:$port" >&2
    return 1
}
