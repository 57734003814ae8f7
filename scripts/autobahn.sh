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
# target/autobahn-venv from pyenv's 2.7.18 and the versions pinned below, so that CI gets
# the same one; later runs reuse it. Where that Python is missing or the install
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

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/target/autobahn-venv
py27=$HOME/.pyenv/versions/2.7.18/bin/python

# virtualenv 20.15.1 is the last that runs on Python 2.7 (pip takes it for 'virtualenv<20.22');
# it and its dependencies are pinned so that CI builds the same bootstrap.
bootstrap_pins=(virtualenv==20.15.1 configparser==4.0.2 contextlib2==0.6.0.post1
    distlib==0.4.4 filelock==3.2.1 importlib-metadata==2.1.3 importlib-resources==3.3.1
    pathlib2==2.3.7.post1 platformdirs==2.0.2 scandir==1.10.0 singledispatch==3.7.0
    six==1.17.0 typing==3.10.0.0 zipp==1.2.0)
# autobahntestsuite pins most of these itself; the rest are what it resolved to when this
# was written, all wheels on PyPI except autobahn, txaio, PyHamcrest and wsaccel (built
# here; wsaccel needs a C compiler).
pins=(autobahntestsuite==25.10.1 autobahn==0.10.9 txaio==2.1.0 wsaccel==0.6.6 ujson==2.0.3
    Twisted==19.10.0 zope.interface==4.6.0 Automat==22.10.0 attrs==21.4.0 constantly==15.1.0
    hyperlink==21.0.0 idna==2.10 incremental==16.10.1 PyHamcrest==1.10.1 typing==3.10.0.0
    pyOpenSSL==19.1.0 cryptography==3.3.2 cffi==1.15.1 pycparser==2.21 enum34==1.1.10
    ipaddress==1.0.23 service-identity==18.1.0 pyasn1==0.5.1 pyasn1-modules==0.3.0
    klein==17.10.0 Werkzeug==1.0.1 Jinja2==2.11.3 MarkupSafe==1.1.1 six==1.16.0
    unittest2==1.1.0 traceback2==1.4.0 linecache2==1.0.0 argparse==1.4.0 setuptools==44.0.0)

# install: builds the virtualenv; returns 1 (with the log on stderr) if any step fails.
# The stamp, written last, holds the pins: a half-built venv or one built from other pins
# has none that matches, and is built anew.
stamp=$venv/.autobahn-pins
install() {
    local boot=$root/target/autobahn-bootstrap log=$root/target/autobahn-install.log
    rm -rf "$venv" "$boot"
    mkdir -p "$root/target"
    echo "building $venv (once; about half a minute)"
    # virtualenv goes into a folder of its own (--target) rather than ~/.local, and keeps
    # its seed cache there too.
    if ! { "$py27" -m pip install -q --target "$boot" "${bootstrap_pins[@]}" &&
        PYTHONPATH=$boot "$py27" -m virtualenv -q --app-data "$boot/app-data" "$venv" &&
        "$venv/bin/pip" install -q "${pins[@]}" &&
        "$venv/bin/wstest" -a; } >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -rf "$venv"
        return 1
    fi
    rm -rf "$boot"
    printf '%s\n' "${pins[@]}" >"$stamp"
}
if [[ ! -x $py27 ]]; then
    echo "SKIPPED: autobahn, no Python 2.7 at $py27"
    exit 0
fi
if ! [[ -f $stamp && $(cat "$stamp") == "$(printf '%s\n' "${pins[@]}")" ]]; then
    install || { echo "SKIPPED: autobahn, installing autobahntestsuite failed (log: target/autobahn-install.log)"; exit 0; }
fi

if [[ -z $report ]]; then
    report=$root/target/autobahn-report
    rm -rf "$report"
fi
mkdir -p "$report"
report=$(cd "$report" && pwd)
# Never judge an index.json left by an earlier run.
rm -f "$report/index.json"

if [[ -n $cases ]]; then
    selection=$cases
elif [[ $full == 1 ]]; then
    selection='*'
else
    selection='1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.1.*,12.5.*,13.1.*,13.3.*,13.7.*'
fi
python3 - "$report/spec.json" "$agent" "$url" "$report" "$selection" "$exclude" <<'PY'
import json, sys
path, agent, url, outdir, cases, exclude = sys.argv[1:]
split = lambda s: [x.strip() for x in s.split(",") if x.strip()]
spec = {"servers": [{"agent": agent, "url": url}], "outdir": outdir, "cases": split(cases),
        "exclude-cases": split(exclude), "exclude-agent-cases": {}}
json.dump(spec, open(path, "w"), indent=2)
PY

# The cases the spec selects, resolved as wstest does, into cases.txt: the judge needs
# them to notice cases that never ran, and wstest itself would hang on an unknown id.
"$venv/bin/python" - "$report/spec.json" "$report/cases.txt" <<'PY'
import json, sys
from autobahntestsuite.case import Cases, CaseCategories, CaseSubCategories
from autobahntestsuite.caseset import CaseSet
from autobahntestsuite.fuzzing import CaseSetname, CaseBasename
cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
spec = json.load(open(sys.argv[1]))
unknown = [c for c in spec["cases"] + spec["exclude-cases"]
           if "*" not in c and c not in cs.CasesIndices]
if unknown:
    sys.stderr.write("no such case: %s\n" % ", ".join(unknown))
    sys.exit(2)
selected = cs.parseSpecCases(spec)
if not selected:
    sys.stderr.write("the selection matches no case\n")
    sys.exit(2)
open(sys.argv[2], "w").write("".join(c + "\n" for c in selected))
PY
count=$(wc -l <"$report/cases.txt")

# Bounded: wstest gives each case its own timeout (up to 8 minutes for the largest
# compression cases), but a server that stalls every case could still take hours. Against
# Autobahn's own testee server (Python, with permessage-deflate) the CI slice took 4.5
# minutes and --full 12, nearly all of it in 12 and 13; past 15 minutes (40 for --full)
# the run is cut off and fails.
limit=15m
[[ $full == 1 && -z $cases ]] && limit=40m
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

python3 - "$report" "$agent" <<'PY'
import collections, html, json, os, re, sys

report, agent = sys.argv[1:]
index = json.load(open(os.path.join(report, "index.json"))).get(agent, {})
selected = open(os.path.join(report, "cases.txt")).read().split()
PASS_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASS_CLOSE = {"OK", "INFORMATIONAL"}

def key(case):
    return tuple(int(x) for x in case.split("."))

def detail(case):
    """The case's own JSON report, or {} where it is missing."""
    name = index[case].get("reportfile")
    try:
        return json.load(open(os.path.join(report, name)))
    except (TypeError, OSError, ValueError):
        return {}

def text(s, limit=300):
    s = html.unescape(re.sub(r"<[^>]*>", " ", str(s or "")))
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."

def extensions(http):
    """The Sec-WebSocket-Extensions value of an HTTP request or response."""
    found = re.findall(r"^sec-websocket-extensions:\s*(.*?)\s*$", http or "", re.I | re.M)
    return ", ".join(found)

behavior = collections.Counter()
close = collections.Counter()
non_strict, failed = [], []
for case in sorted(selected, key=key):
    r = index.get(case)
    if r is None:
        behavior["NO RESULT"] += 1
        failed.append((case, "NO RESULT", "-", "wstest never ran it (could it connect?)", ""))
        continue
    b, c = r.get("behavior"), r.get("behaviorClose")
    behavior[b] += 1
    close[c] += 1
    if b == "NON-STRICT":
        d = detail(case)
        non_strict.append((case, text(d.get("description")), text(d.get("result"))))
    if b not in PASS_BEHAVIOR or c not in PASS_CLOSE:
        d = detail(case)
        result = text(d.get("result"))
        if b == "UNIMPLEMENTED":
            # In 12 and 13: the server took none of the permessage-deflate offers.
            offer, answer = (extensions(d.get(k)) for k in ("httpRequest", "httpResponse"))
            result = f"offered: {offer or 'nothing'}; answered: {answer or 'nothing'}"
        failed.append((case, b, c, result, text(d.get("resultClose"))))

def counts(counter):
    order = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
    names = [n for n in order if n in counter] + sorted(n for n in counter if n not in order)
    return ", ".join(f"{n} {counter[n]}" for n in names)

print(f"behavior:      {counts(behavior)}")
print(f"behaviorClose: {counts(close) or '-'}")
if not index:
    # wstest gives up at the first connection it cannot make and says why only in its log.
    with open(os.path.join(report, "wstest.log")) as log:
        for line in log:
            if line.startswith("Connection to"):
                print(f"wstest ran no case: {line.strip()}")
if non_strict:
    print(f"NON-STRICT ({len(non_strict)}):")
    for case, desc, result in non_strict:
        print(f"  {case}: {desc}")
        print(f"      result: {result}")
if failed:
    print(f"failed ({len(failed)}):")
    for case, b, c, result, result_close in failed:
        print(f"  {case}: behavior {b}, behaviorClose {c}: {result}"
              + (f" / close: {result_close}" if c not in PASS_CLOSE and result_close else ""))
print(f"report: {report}/index.html")
print(f"autobahn: {len(selected) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
PY
