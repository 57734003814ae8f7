#!/usr/bin/env bash
# WebSocket conformance on every backend: builds examples/ws_echo (release), starts it
# with permessage-deflate on one poller, runs scripts/autobahn.sh against it, stops it;
# first on epoll, then on io_uring (skipped, with the reason, where io_uring is not
# usable here).
#
#   scripts/ws_conformance.sh [--full] [--tls] [--backends 'epoll io_uring']
#
# Without --full it runs autobahn.sh's CI slice (groups 1-10 whole, a slice of 12-13
# covering every permessage-deflate parameter); --full runs all of 1-13. --tls serves
# wss:// (a certificate from examples/tls_cert) and runs groups 1-10 over TLS (with
# --full, 1-13). Reports go to target/autobahn-BACKEND[-tls]/ (index.html, index.json,
# wstest.log) and the server's log to server.log there. Exits 1 if any case failed on
# any backend.
set -euo pipefail
cd "$(dirname "$0")/.."

full=()
tls=0
backends=(epoll io_uring)
while [[ $# -gt 0 ]]; do
    case $1 in
        --full) full=(--full) ;;
        --tls) tls=1 ;;
        --backends)
            read -r -a backends <<<"${2:?--backends needs a list}"
            shift
            ;;
        *)
            echo "usage: $0 [--full] [--tls] [--backends 'epoll io_uring']" >&2
            exit 2
            ;;
    esac
    shift
done

cargo build --release --example ws_echo --example tls_cert
echo_bin=target/release/examples/ws_echo
scheme=ws suffix="" server_tls=() selection=()
if ((tls)); then
    scheme=wss suffix=-tls
    # The wss:// run: the framing, UTF-8 and closing groups (1-10) over TLS; --full adds
    # compression.
    ((${#full[@]})) || selection=(--cases '1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*')
fi

server_pid=""
stop_server() {
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

status=0
for backend in "${backends[@]}"; do
    if [[ $backend == io_uring ]] &&
        ! reason=$(cargo run -q --example backend -- --check io_uring 2>&1); then
        echo "SKIPPED: autobahn on io_uring ($reason)"
        continue
    fi
    report=target/autobahn-$backend$suffix
    rm -rf "$report"
    mkdir -p "$report"
    log=$report/server.log
    if ((tls)); then
        target/release/examples/tls_cert --out "$report/certs" >/dev/null
        server_tls=(--tls-cert "$report/certs/cert.pem" --tls-key "$report/certs/key.pem")
    fi
    NETLOOP_BACKEND=$backend "$echo_bin" --addr 127.0.0.1:0 --pollers 1 --deflate \
        "${server_tls[@]}" >"$log" 2>&1 &
    server_pid=$!
    # The server prints "ws_echo listening on 127.0.0.1:PORT" once it is bound.
    addr=""
    for _ in $(seq 100); do
        addr=$(sed -n 's/^ws_echo listening on //p' "$log" | head -n 1)
        [[ -n $addr ]] && break
        if ! kill -0 "$server_pid" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    if [[ -z $addr ]]; then
        echo "ws_echo on $backend did not start:" >&2
        cat "$log" >&2
        exit 1
    fi
    echo "== autobahn against ws_echo on $backend ($scheme://$addr)"
    scripts/autobahn.sh --url "$scheme://$addr" --agent "netloop-$backend$suffix" \
        --report "$report" "${full[@]}" "${selection[@]}" || status=1
    stop_server
done
exit $status
