# The benchmark scenarios and servers, shared by bench.sh and profile.sh. Source it
# after lib.sh (it uses $BIN); it sets LOAD and PEERS.
#
# Every server runs one thread (`--pollers 1` / `--threads 1`); the scripts pin it to
# CPU 0 and the load to CPU 1.

LOAD=target/release/netloop-load
PEERS=bench/peers/target/release
WS_SCENARIOS=(ws-20-100 ws-1k-100 ws-16k-100 ws-20-500 ws-1k-500 ws-16k-500)
# WebSocket broadcast (bcast-SIZE-CONNS): uWebSockets' broadcast_test shape against a
# server publishing every message to every connection.
BCAST_SCENARIOS=(bcast-20-100 bcast-20-1000 bcast-20-10000)
ALL_SCENARIOS=(http http-pipelined echo-100 echo-1000 framed bulk open-loop idle-10k
    "${WS_SCENARIOS[@]}" idle-10k-ws idle-ws-deflate idle-ws-deflate-takeover "${BCAST_SCENARIOS[@]}"
    idle-10k-tls idle-10k-wss)
# The TLS scenarios' certificate (examples/tls_cert writes it here; see tls_certs).
TLS_DIR=${TLS_DIR:-target/bench-tls}
ALL_SERVERS=(netloop netloop-uring netloop-uring-zc netloop-pool netloop-pool-uring tokio-ct tokio-mt may-minihttp monoio
    fastwebsockets tokio-tungstenite tokio-rustls uws)
# uWebSockets is not built here (its code stays out of this repository): point UWS_ECHO at
# an EchoServer built from its examples/ and the WebSocket echo scenarios include it;
# point UWS_BROADCAST at a pub/sub server built against it (every connection subscribed
# to one topic, every message received published to it with `app->publish`) and the
# broadcast scenarios include it. Both always listen on port 9001.
UWS_PORT=9001

# build_all: the load generator and the peers (lib.sh has built the examples).
build_all() {
    cargo build --release -p netloop-load
    cargo build --release --manifest-path bench/peers/Cargo.toml
}

# tls_certs: the TLS scenarios' CA, certificate and key in $TLS_DIR (made once).
tls_certs() {
    [[ -f $TLS_DIR/cert.pem ]] || "$BIN/tls_cert" --out "$TLS_DIR" >/dev/null
}

# server_cmd NAME PROTO PORT: prints the server's command line, or nothing if NAME
# does not serve PROTO.
server_cmd() {
    local name=$1 proto=$2 addr=127.0.0.1:$3 example=$BIN/$2
    local tls="--tls-cert $TLS_DIR/cert.pem --tls-key $TLS_DIR/key.pem"
    # WebSocket: examples/ws_echo; ws-deflate offers permessage-deflate (context takeover
    # allowed: the client's offer decides). https and wss: http and ws_echo over TLS.
    case $proto in
        ws) example=$BIN/ws_echo ;;
        ws-deflate) example="$BIN/ws_echo --deflate" ;;
        ws-bcast) example=$BIN/ws_broadcast ;;
        https) example="$BIN/http $tls" ;;
        wss) example="$BIN/ws_echo $tls" ;;
    esac
    case $name in
        netloop) echo "env NETLOOP_BACKEND=epoll $example --addr $addr --pollers 1" ;;
        netloop-uring) echo "env NETLOOP_BACKEND=io_uring $example --addr $addr --pollers 1" ;;
        fastwebsockets) [[ $proto == ws ]] && echo "$PEERS/fastwebsockets-peer --proto ws --addr $addr --threads 1" ;;
        tokio-tungstenite)
            case $proto in
                ws) echo "$PEERS/tokio-tungstenite-peer --proto ws --addr $addr --threads 1" ;;
                ws-bcast) echo "$PEERS/tokio-tungstenite-broadcast-peer --proto ws --addr $addr --threads 1" ;;
            esac
            ;;
        tokio-rustls)
            local certs="--cert $TLS_DIR/cert.pem --key $TLS_DIR/key.pem"
            case $proto in
                https) echo "$PEERS/tokio-rustls-peer --proto http --addr $addr $certs" ;;
                wss) echo "$PEERS/tokio-rustls-peer --proto ws --addr $addr $certs" ;;
            esac
            ;;
        uws)
            case $proto in
                ws) [[ -n ${UWS_ECHO:-} ]] && echo "$UWS_ECHO" ;;
                ws-bcast) [[ -n ${UWS_BROADCAST:-} ]] && echo "$UWS_BROADCAST" ;;
            esac
            ;;
        netloop-uring-zc) echo "env NETLOOP_BACKEND=io_uring $BIN/$proto --addr $addr --pollers 1 --zero-copy-send 65536" ;;
        netloop-pool) echo "env NETLOOP_BACKEND=epoll $BIN/$proto --addr $addr --pollers 1 --pool 1" ;;
        netloop-pool-uring) echo "env NETLOOP_BACKEND=io_uring $BIN/$proto --addr $addr --pollers 1 --pool 1" ;;
        tokio-ct) echo "$PEERS/tokio-peer --proto $proto --addr $addr --flavor current --threads 1" ;;
        tokio-mt) echo "$PEERS/tokio-peer --proto $proto --addr $addr --flavor multi --threads 1" ;;
        may-minihttp) [[ $proto == http ]] && echo "$PEERS/may-minihttp-peer --proto http --addr $addr --threads 1" ;;
        monoio) echo "$PEERS/monoio-peer --proto $proto --addr $addr --threads 1 --driver fusion" ;;
    esac
}

# scenario_spec NAME: sets `proto` and `servers` (the servers compared) for a scenario;
# returns 1 for an unknown one.
scenario_spec() {
    case $1 in
        http | http-pipelined) proto=http servers=(netloop netloop-uring tokio-ct tokio-mt may-minihttp monoio) ;;
        echo-100 | echo-1000) proto=echo servers=(netloop netloop-uring tokio-ct tokio-mt monoio) ;;
        framed) proto=framed servers=(netloop netloop-pool netloop-uring netloop-pool-uring tokio-ct monoio) ;;
        bulk) proto=framed servers=(netloop netloop-uring netloop-uring-zc tokio-ct) ;;
        open-loop) proto=echo servers=(netloop netloop-uring tokio-ct monoio) ;;
        idle-10k) proto=http servers=(netloop netloop-uring tokio-ct may-minihttp monoio) ;;
        ws-* | idle-10k-ws) proto=ws servers=(netloop netloop-uring fastwebsockets tokio-tungstenite) ;;
        idle-ws-deflate | idle-ws-deflate-takeover) proto=ws-deflate servers=(netloop) ;;
        bcast-*) proto=ws-bcast servers=(netloop netloop-uring tokio-tungstenite) ;;
        idle-10k-tls) proto=https servers=(netloop netloop-uring tokio-rustls) ;;
        idle-10k-wss) proto=wss servers=(netloop netloop-uring tokio-rustls) ;;
        *) return 1 ;;
    esac
    if [[ $proto == ws && -n ${UWS_ECHO:-} ]] || [[ $proto == ws-bcast && -n ${UWS_BROADCAST:-} ]]; then
        servers+=(uws)
    fi
}

# server_port NAME PORT: the port NAME listens on when asked for PORT.
server_port() {
    if [[ $1 == uws ]]; then echo "$UWS_PORT"; else echo "$2"; fi
}

# idle_spec SCENARIO: sets `idle` to the connection count and the arguments of
# scripts/idle_conns.py after the port for an idle-* scenario.
idle_spec() {
    local none="permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    case $1 in
        idle-10k) idle=(10000) ;;
        idle-10k-ws) idle=(10000 --ws) ;;
        # One 1 KiB message each way, compressed, so every connection has inflated and
        # deflated once: with no context takeover the contexts are the thread's; with it,
        # each connection keeps its own (hence fewer connections).
        idle-ws-deflate) idle=(10000 --ws --size 1024 --offer "$none") ;;
        idle-ws-deflate-takeover) idle=(1000 --ws --size 1024 --offer permessage-deflate) ;;
        # A full TLS handshake, then the same as idle-10k / idle-10k-ws.
        idle-10k-tls) idle=(10000 --tls-ca "$TLS_DIR/ca.pem") ;;
        idle-10k-wss) idle=(10000 --ws --tls-ca "$TLS_DIR/ca.pem") ;;
        *) return 1 ;;
    esac
}

# load_cmd SCENARIO PORT: sets `load` to the load generator's command line without its
# duration: wrk (takes -dNs) or netloop-load (takes --warmup/--duration). The idle-*
# scenarios have their own driver (scripts/idle_conns.py, see idle_spec) and no load_cmd.
load_cmd() {
    local url=http://127.0.0.1:$2/ addr=127.0.0.1:$2
    case $1 in
        http) load=(wrk -t1 -c64 --latency "$url") ;;
        http-pipelined) load=(wrk -t1 -c64 --latency -s scripts/wrk/pipeline.lua "$url" -- 16) ;;
        echo-100) load=("$LOAD" --addr "$addr" --proto echo --size 1024 --conns 100) ;;
        echo-1000) load=("$LOAD" --addr "$addr" --proto echo --size 1024 --conns 1000 --connect-timeout 20) ;;
        framed) load=("$LOAD" --addr "$addr" --proto framed --size 1024 --conns 100) ;;
        bulk) load=("$LOAD" --addr "$addr" --proto framed --size 262144 --conns 8) ;;
        open-loop) load=("$LOAD" --addr "$addr" --proto echo --size 1024 --conns 100 --rate 20000) ;;
        # WebSocket echo, closed loop, one message in flight per connection (as
        # uWebSockets' load_test): ws-SIZE-CONNS.
        ws-*)
            local size=${1#ws-} conns
            conns=${size#*-} size=${size%-*}
            size=${size/1k/1024} size=${size/16k/16384}
            load=("$LOAD" --addr "$addr" --proto ws --size "$size" --conns "$conns" --connect-timeout 20)
            ;;
        # Broadcast rounds (bcast-SIZE-CONNS): every connection sends one message a
        # round and receives all of them, conns² deliveries. At 10,000 connections that
        # is 10^8 deliveries, over a minute a round: there the first 100 connections
        # send (10^6 deliveries a round, still to all 10,000 subscribers).
        bcast-*)
            local size=${1#bcast-} conns senders
            conns=${size#*-} size=${size%-*}
            senders=$conns
            ((conns > 1000)) && senders=100
            load=("$LOAD" --addr "$addr" --proto ws --mode broadcast --size "$size" --conns "$conns"
                --senders "$senders" --connect-timeout 30)
            ;;
        *) return 1 ;;
    esac
}

# start_server NAME PROTO PORT LOG: starts NAME pinned to CPU 0, with room for 20,000
# descriptors; sets server_pid (the server itself, for perf) and waits for its port.
start_server() {
    local cmd
    cmd=$(server_cmd "$1" "$2" "$3")
    if [[ -z $cmd ]]; then
        echo "$1 does not serve $2" >&2
        return 1
    fi
    # shellcheck disable=SC2086 # the command line is split on purpose
    ulimit -n 20000 && exec taskset -c 0 $cmd >"$4" 2>&1 &
    server_pid=$!
    wait_for_port "$3" "$server_pid" "$4"
}

# stop_server: SIGTERM (netloop shuts down gracefully; the peers just exit).
stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
