#!/usr/bin/env bash
# WebSocket client conformance: Autobahn|Testsuite's fuzzing server, and a client that
# this script starts against it, judged case by case. The counterpart of autobahn.sh
# (which tests a server); both share autobahn_lib.sh and autobahn_judge.py.
#
#   scripts/autobahn_client.sh --client 'COMMAND ...' [--agent NAME] [--cases 'LIST']
#                              [--exclude 'LIST'] [--full] [--report DIR]
#
# The fuzzing server listens on a free port P of 127.0.0.1, and the client is run as
#   COMMAND ... --url ws://127.0.0.1:P --agent NAME
# (COMMAND is a shell command line; the two options are appended). The client must:
#   1. open ws://127.0.0.1:P/getCaseCount: its one text message is the number of cases N
#      (of the selection only: the server numbers the cases it was given 1..N, in order);
#   2. for each case i = 1..N, open /runCase?case=i&agent=NAME and send every text and
#      binary message back as it came (same type, same payload) until the server closes;
#   3. open /updateReports?agent=NAME: that writes the report (index.json), and wait for
#      the server to close;
#   then exit 0. A client that exits without step 3 still gets its results judged (this
#   script then asks for the reports itself), but fails.
#
# The selection is the same as autobahn.sh's: its CI slice by default, --full runs
# everything, --cases replaces the selection and --exclude takes cases out of it. The
# verdict too: a case passes if its behavior is OK, NON-STRICT or INFORMATIONAL and its
# behaviorClose is OK or INFORMATIONAL; a selected case with no result fails; exit 1 if
# any case fails or the client fails (non-zero exit, or cut off: it runs under `timeout`,
# 15 minutes for the CI slice and 40 for --full), 0 if none does, 2 for bad arguments.
# "SKIPPED: why" and exit 0 only where Python 2.7 is missing or the install fails.
#
# The report folder (target/autobahn-client-report, or --report DIR) gets spec.json,
# cases.txt, wstest.log (the fuzzing server's output), client.log (the client's stdout
# and stderr) and the report: index.json ({agent: {case: result}}, as autobahn.sh's),
# index.html and one JSON and HTML file per case. The fuzzing server's embedded web
# server (port 8080 by default) is not started, and it binds 127.0.0.1 only.
set -euo pipefail

client=""
agent=netloop-client
cases=""
exclude=""
full=0
report=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --client) client=$2; shift ;;
        --agent) agent=$2; shift ;;
        --cases) cases=$2; shift ;;
        --exclude) exclude=$2; shift ;;
        --full) full=1 ;;
        --report) report=$2; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ -n $client ]] || { echo "--client 'COMMAND ...' is required" >&2; exit 2; }
[[ $agent =~ ^[A-Za-z0-9._-]+$ ]] ||
    { echo "--agent takes letters, digits and . _ - only (it goes into URLs and file names)" >&2; exit 2; }

# shellcheck source=scripts/autobahn_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/autobahn_lib.sh"
autobahn_setup
[[ -n $report ]] || { report=$autobahn_root/target/autobahn-client-report; rm -rf "$report"; }
autobahn_report "$report"

# A free port: bound to 0, read and released. Another process could take it in between;
# the server then fails to start, and says so.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=ws://127.0.0.1:$port
autobahn_spec fuzzingserver "$report/spec.json" "$agent" "$url" "$report" \
    "$(autobahn_selection "$cases" "$full")" "$exclude"
autobahn_resolve "$report/spec.json" "$report/cases.txt"
count=$(wc -l <"$report/cases.txt")
limit=$(autobahn_limit "$full" "$cases")

wstest_pid=""
stop_wstest() {
    if [[ -n $wstest_pid ]]; then
        kill -TERM "$wstest_pid" 2>/dev/null || true
        wait "$wstest_pid" 2>/dev/null || true
        wstest_pid=""
    fi
}
trap stop_wstest EXIT

# wstest -m fuzzingserver, on 127.0.0.1 only (wstest itself would bind every interface)
# and without the web server (--webport 0). Its limit is the client's plus a minute: the
# client's limit is the one that decides.
(cd "$report" && exec timeout --kill-after=10s "$(( ${limit%m} + 1 ))m" "$venv/bin/python" -c '
import sys
from autobahntestsuite import fuzzing, wstest
listen = fuzzing.listenWS
fuzzing.listenWS = lambda factory, context=None: listen(factory, context, interface="127.0.0.1")
sys.argv = ["wstest", "-m", "fuzzingserver", "-s", sys.argv[1], "--webport", "0"]
sys.exit(wstest.run())' "$report/spec.json") >"$report/wstest.log" 2>&1 &
wstest_pid=$!
listening() {
    [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]
}
for _ in $(seq 300); do
    listening && break
    kill -0 "$wstest_pid" 2>/dev/null || break
    sleep 0.1
done
if ! listening; then
    cat "$report/wstest.log" >&2
    echo "autobahn: the fuzzing server did not start listening on $url" >&2
    exit 1
fi

echo "autobahn: $count cases for the client as $agent at $url (at most $limit; logs: $report/{client,wstest}.log)"
echo "autobahn: client: $client --url $url --agent $agent"
start=$SECONDS
client_status=0
# The command line goes through the shell (it may hold variables, env, options);
# exec so that timeout's signal reaches the client itself.
timeout --kill-after=10s "$limit" bash -c "exec $client \"\$@\"" autobahn-client \
    --url "$url" --agent "$agent" >"$report/client.log" 2>&1 </dev/null || client_status=$?
elapsed=$((SECONDS - start))
failed_client=""
if [[ $client_status == 124 || $client_status == 137 ]] && ((elapsed >= ${limit%m} * 60)); then
    failed_client="the client did not finish within $limit"
elif [[ $client_status != 0 ]]; then
    failed_client="the client exited with status $client_status"
fi
echo "autobahn: the client took ${elapsed}s"

if [[ ! -f $report/index.json ]]; then
    # The client did not get to /updateReports (or did not wait for it): ask for the
    # reports here, so that the cases it did run are judged.
    [[ -n $failed_client ]] || failed_client="the client exited without asking for the reports (/updateReports)"
    echo "autobahn: no index.json after the client; asking the fuzzing server for the reports"
    python3 - "$port" "$agent" <<'PY' || true
import base64, os, socket, sys, time
port, agent = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((f"GET /updateReports?agent={agent} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
# The reports are written before the server's close frame; read until it closes
# (at most 20 reads and 10 s), answering its close with a masked, empty close frame.
deadline = time.monotonic() + 10
data = b""
for _ in range(20):
    if time.monotonic() > deadline:
        break
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
    head, sep, rest = data.partition(b"\r\n\r\n")
    if sep and rest[:1] == b"\x88":
        s.sendall(b"\x88\x80" + os.urandom(4))
        break
s.close()
PY
    for _ in $(seq 50); do
        [[ -f $report/index.json ]] && break
        sleep 0.1
    done
fi
stop_wstest

if [[ ! -f $report/index.json ]]; then
    tail -n 20 "$report/client.log" >&2
    tail -n 20 "$report/wstest.log" >&2
    echo "autobahn: ${failed_client:-the fuzzing server wrote no index.json}" >&2
    exit 1
fi
status=0
autobahn_judge "$report" "$agent" "$report/cases.txt" --testee client || status=$?
if [[ -n $failed_client ]]; then
    echo "client.log (last lines):"
    tail -n 20 "$report/client.log"
    echo "autobahn: $failed_client" >&2
    exit 1
fi
exit $status
