#!/usr/bin/env bash
# WebSocket client conformance on every backend: builds examples/ws_autobahn_client
# (release) and runs scripts/autobahn_client.sh with it, which starts Autobahn's fuzzing
# server and the client against it; first on epoll, then on io_uring (skipped, with the
# reason, where io_uring is not usable here). The client side of ws_conformance.sh.
#
#   scripts/ws_client_conformance.sh [--full] [--backends 'epoll io_uring']
#
# The example takes `--url ws://127.0.0.1:PORT --agent NAME` and runs the fuzzing
# server's procedure (getCaseCount, runCase for each case, updateReports; see
# autobahn_client.sh). Without --full it runs the CI slice (groups 1-10 whole, a slice of
# 12-13 covering every permessage-deflate parameter); --full runs all of 1-13. Reports go
# to target/autobahn-client-BACKEND/ (index.html, index.json, wstest.log, client.log).
# Exits 1 if any case failed on any backend.
set -euo pipefail
cd "$(dirname "$0")/.."

full=()
backends=(epoll io_uring)
while [[ $# -gt 0 ]]; do
    case $1 in
        --full) full=(--full) ;;
        --backends)
            read -r -a backends <<<"${2:?--backends needs a list}"
            shift
            ;;
        *)
            echo "usage: $0 [--full] [--backends 'epoll io_uring']" >&2
            exit 2
            ;;
    esac
    shift
done

cargo build --release --example ws_autobahn_client
client_bin=target/release/examples/ws_autobahn_client

status=0
for backend in "${backends[@]}"; do
    if [[ $backend == io_uring ]] &&
        ! reason=$(cargo run -q --example backend -- --check io_uring 2>&1); then
        echo "SKIPPED: autobahn (client) on io_uring ($reason)"
        continue
    fi
    report=target/autobahn-client-$backend
    rm -rf "$report"
    mkdir -p "$report"
    echo "== autobahn against ws_autobahn_client on $backend"
    scripts/autobahn_client.sh --client "env NETLOOP_BACKEND=$backend $client_bin" \
        --agent "netloop-client-$backend" --report "$report" "${full[@]}" || status=1
done
exit $status
