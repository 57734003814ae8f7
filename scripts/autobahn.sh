#!/usr/bin/env bash
# WebSocket conformance: Autobahn|Testsuite's fuzzing client against a server already
# listening at URL, judged case by case.
#
#   scripts/autobahn.sh --url ws://127.0.0.1:PORT [--agent NAME] [--cases 'LIST']
#                       [--exclude 'LIST'] [--full] [--report DIR]
#
# The default selection is the CI slice: every case of groups 1-7, 9 and 10 (the suite
# has no group 8 or 11), and of compression only the groups that between them exercise
# each negotiated permessage-deflate parameter: 12.1 (text) and 12.5 (binary) with the
# default offer, 13.1 (client_no_context_takeover and client_max_window_bits, offered in
# every 13.x case), 13.3 (server_max_window_bits=9) and 13.7 (three offers, the first
# with server_no_context_takeover and server_max_window_bits=9, for the server to pick
# from). --full runs everything; --cases replaces the selection and --exclude takes cases
# out of it, both comma-separated ids or patterns such as 12.*.
#
# A case passes if its behavior is OK, NON-STRICT or INFORMATIONAL and its behaviorClose
# is OK or INFORMATIONAL. Anything else fails, UNIMPLEMENTED included (a server without
# permessage-deflate fails 12 and 13), and so does a selected case with no result at all
# (wstest stops when it cannot connect). wstest itself exits 0 whatever happens, so the
# verdict comes from its index.json: exit 1 if any case fails, 0 if none does, 2 for bad
# arguments. The summary lists every NON-STRICT and every failing case with its text.
#
# Autobahn|Testsuite needs Python 2.7. The first run builds a virtualenv with it in
# target/autobahn-venv from pyenv's 2.7.18 and the versions pinned in autobahn_lib.sh
# (shared with autobahn_client.sh, which tests a client), so that CI gets the same one;
# later runs reuse it. Where that Python is missing or the install
# fails, it prints "SKIPPED: why" and exits 0; that is the only way it passes untested.
# The HTML and JSON report is left in target/autobahn-report (or --report DIR).
set -euo pipefail

url=""
agent=netloop
cases=""
exclude=""
full=0
report=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --url) url=$2; shift ;;
        --agent) agent=$2; shift ;;
        --cases) cases=$2; shift ;;
        --exclude) exclude=$2; shift ;;
        --full) full=1 ;;
        --report) report=$2; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $url == ws://* || $url == wss://* ]] || { echo "--url ws://HOST:PORT is required" >&2; exit 2; }

# shellcheck source=scripts/autobahn_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/autobahn_lib.sh"
autobahn_setup
autobahn_report "$report"
autobahn_spec fuzzingclient "$report/spec.json" "$agent" "$url" "$report" \
    "$(autobahn_selection "$cases" "$full")" "$exclude"
autobahn_resolve "$report/spec.json" "$report/cases.txt"
count=$(wc -l <"$report/cases.txt")

limit=$(autobahn_limit "$full" "$cases")
echo "autobahn: $count cases against $url as $agent (at most $limit; log: $report/wstest.log)"
wstest_pid=""
trap '[[ -n $wstest_pid ]] && kill "$wstest_pid" 2>/dev/null; true' EXIT
start=$SECONDS
(cd "$report" && exec timeout --kill-after=10s "$limit" "$venv/bin/wstest" -m fuzzingclient \
    -s "$report/spec.json") >"$report/wstest.log" 2>&1 &
wstest_pid=$!
status=0
wait "$wstest_pid" || status=$?
wstest_pid=""
elapsed=$((SECONDS - start))
if [[ $status != 0 ]]; then
    tail -n 20 "$report/wstest.log" >&2
    [[ $status == 124 ]] && echo "autobahn: wstest did not finish within $limit" >&2 ||
        echo "autobahn: wstest exited with status $status" >&2
    exit 1
fi
if [[ ! -f $report/index.json ]]; then
    tail -n 20 "$report/wstest.log" >&2
    echo "autobahn: wstest wrote no index.json" >&2
    exit 1
fi
echo "autobahn: wstest took ${elapsed}s"

autobahn_judge "$report" "$agent" "$report/cases.txt"
