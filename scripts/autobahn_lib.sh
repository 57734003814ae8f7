# shellcheck shell=bash
# What the two Autobahn|Testsuite runs share: scripts/autobahn.sh (wstest's fuzzing
# client, testing a server) and scripts/autobahn_client.sh (wstest's fuzzing server,
# testing a client). Source it after `set -euo pipefail`; it sets autobahn_root (the
# repository) and venv, and defines the steps below. Nothing runs until they are called.
#
#   autobahn_setup                      the virtualenv, or "SKIPPED: ..." and exit 0
#   autobahn_report DIR                 prepares the report folder (DIR, or the default
#                                       target/autobahn-report, emptied); sets report
#   autobahn_selection CASES FULL       prints the selection: CASES, or '*' for --full,
#                                       or the CI slice
#   autobahn_spec MODE SPEC AGENT URL OUTDIR CASES EXCLUDE
#                                       writes the spec of wstest -m MODE (fuzzingclient
#                                       or fuzzingserver)
#   autobahn_resolve SPEC OUT           the cases SPEC selects, resolved as wstest does,
#                                       one a line into OUT; exit 2 for an unknown id or
#                                       an empty selection
#   autobahn_limit FULL CASES           prints the time limit of the run: 15m, or 40m
#                                       for --full
#   autobahn_judge REPORT AGENT CASES [--testee server|client]
#                                       scripts/autobahn_judge.py: the verdict

autobahn_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$autobahn_root/target/autobahn-venv
py27=$HOME/.pyenv/versions/2.7.18/bin/python

# The CI slice: every case of groups 1-7, 9 and 10 (the suite has no group 8 or 11),
# and of compression only the groups that between them exercise each negotiated
# permessage-deflate parameter: 12.1 (text) and 12.5 (binary) with the default offer,
# 13.1 (client_no_context_takeover and client_max_window_bits, offered in every 13.x
# case), 13.3 (server_max_window_bits=9) and 13.7 (three offers, the first with
# server_no_context_takeover and server_max_window_bits=9, for the server to pick from).
AUTOBAHN_CI_SLICE='1.*,2.*,3.*,4.*,5.*,6.*,7.*,9.*,10.*,12.1.*,12.5.*,13.1.*,13.3.*,13.7.*'

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

# autobahn_install: builds the virtualenv; returns 1 (with the log on stderr) if any step
# fails. The stamp, written last, holds the pins: a half-built venv or one built from
# other pins has none that matches, and is built anew.
stamp=$venv/.autobahn-pins
autobahn_install() {
    local boot=$autobahn_root/target/autobahn-bootstrap log=$autobahn_root/target/autobahn-install.log
    rm -rf "$venv" "$boot"
    mkdir -p "$autobahn_root/target"
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

# autobahn_setup: the virtualenv, built if missing or stale. Where Python 2.7 is missing
# or the install fails it prints "SKIPPED: why" and exits 0 (the whole script: that is
# the only way a run passes untested).
autobahn_setup() {
    if [[ ! -x $py27 ]]; then
        echo "SKIPPED: autobahn, no Python 2.7 at $py27"
        exit 0
    fi
    if ! [[ -f $stamp && $(cat "$stamp") == "$(printf '%s\n' "${pins[@]}")" ]]; then
        autobahn_install || { echo "SKIPPED: autobahn, installing autobahntestsuite failed (log: target/autobahn-install.log)"; exit 0; }
    fi
}

# autobahn_report DIR: sets report to DIR made absolute (created if missing), or to
# target/autobahn-report emptied when DIR is empty. An index.json left by an earlier run
# is removed: it is never judged.
autobahn_report() {
    report=$1
    if [[ -z $report ]]; then
        report=$autobahn_root/target/autobahn-report
        rm -rf "$report"
    fi
    mkdir -p "$report"
    report=$(cd "$report" && pwd)
    rm -f "$report/index.json"
}

# autobahn_selection CASES FULL: --cases replaces the selection; --full is everything.
autobahn_selection() {
    if [[ -n $1 ]]; then
        echo "$1"
    elif [[ $2 == 1 ]]; then
        echo '*'
    else
        echo "$AUTOBAHN_CI_SLICE"
    fi
}

# autobahn_spec MODE SPEC AGENT URL OUTDIR CASES EXCLUDE: CASES and EXCLUDE are
# comma-separated ids or patterns. The fuzzing client names the server under test
# (agent, url) in its spec; the fuzzing server listens on url and takes the agent from
# each client's request.
autobahn_spec() {
    python3 - "$@" <<'PY'
import json, sys
mode, path, agent, url, outdir, cases, exclude = sys.argv[1:]
split = lambda s: [x.strip() for x in s.split(",") if x.strip()]
if mode == "fuzzingclient":
    spec = {"servers": [{"agent": agent, "url": url}]}
else:
    spec = {"url": url}
spec.update({"outdir": outdir, "cases": split(cases), "exclude-cases": split(exclude),
             "exclude-agent-cases": {}})
json.dump(spec, open(path, "w"), indent=2)
PY
}

# autobahn_resolve SPEC OUT: the cases the spec selects, resolved as wstest does (both
# modes use the same case set), into OUT: the judge needs them to notice cases that never
# ran, and wstest itself would hang on an unknown id.
autobahn_resolve() {
    "$venv/bin/python" - "$1" "$2" <<'PY'
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
}

# autobahn_limit FULL CASES: wstest gives each case its own timeout (up to 8 minutes for
# the largest compression cases), but a peer that stalls every case could still take
# hours. Against Autobahn's own testee server (Python, with permessage-deflate) the CI
# slice took 4.5 minutes and --full 12, nearly all of it in 12 and 13; past 15 minutes
# (40 for --full without --cases) the run is cut off and fails.
autobahn_limit() {
    if [[ $1 == 1 && -z $2 ]]; then echo 40m; else echo 15m; fi
}

autobahn_judge() {
    python3 "$autobahn_root/scripts/autobahn_judge.py" "$@"
}
