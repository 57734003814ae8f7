#!/usr/bin/env python3
"""The verdict of an Autobahn|Testsuite run, from its index.json, case by case.

    scripts/autobahn_judge.py REPORT AGENT CASES [--testee server|client]

REPORT is the report folder (index.json and the per-case JSON reports), AGENT the
agent's key in index.json, CASES a file with the selected case ids one a line (as
autobahn_lib.sh's autobahn_resolve writes it). --testee says what was tested: a server
(wstest -m fuzzingclient, the default; its log is REPORT/wstest.log) or a client (wstest
-m fuzzingserver; the client's log is REPORT/client.log). Both modes write the same
index.json: {agent: {case: {"behavior", "behaviorClose", "reportfile", ...}}}.

A case passes if its behavior is OK, NON-STRICT or INFORMATIONAL and its behaviorClose
is OK or INFORMATIONAL. Anything else fails, UNIMPLEMENTED included, and so does a
selected case with no result at all. The summary lists every NON-STRICT and every
failing case with its text; the last line is "autobahn: N passed, M failed". Exits 1 if
any case fails, 0 if none does, 2 for bad arguments.
"""
import collections
import html
import json
import os
import re
import sys


def main(argv):
    args = list(argv)
    testee = "server"
    if "--testee" in args:
        i = args.index("--testee")
        if i + 1 >= len(args) or args[i + 1] not in ("server", "client"):
            sys.stderr.write("--testee takes server or client\n")
            return 2
        testee = args[i + 1]
        del args[i : i + 2]
    if len(args) != 3:
        sys.stderr.write(__doc__.split("\n\n")[1] + "\n")
        return 2
    report, agent, cases_file = args
    try:
        index = json.load(open(os.path.join(report, "index.json"))).get(agent, {})
        selected = open(cases_file).read().split()
    except (OSError, ValueError) as e:
        sys.stderr.write(f"autobahn judge: {e}\n")
        return 2
    return judge(report, agent, index, selected, testee)


PASS_BEHAVIOR = {"OK", "NON-STRICT", "INFORMATIONAL"}
PASS_CLOSE = {"OK", "INFORMATIONAL"}


def key(case):
    return tuple(int(x) for x in case.split("."))


def text(s, limit=300):
    s = html.unescape(re.sub(r"<[^>]*>", " ", str(s or "")))
    s = " ".join(s.split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def extensions(http):
    """The Sec-WebSocket-Extensions value of an HTTP request or response."""
    found = re.findall(r"^sec-websocket-extensions:\s*(.*?)\s*$", http or "", re.I | re.M)
    return ", ".join(found)


def counts(counter):
    order = ["OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED"]
    names = [n for n in order if n in counter] + sorted(n for n in counter if n not in order)
    return ", ".join(f"{n} {counter[n]}" for n in names)


def judge(report, agent, index, selected, testee):
    def detail(case):
        """The case's own JSON report, or {} where it is missing."""
        name = index[case].get("reportfile")
        try:
            return json.load(open(os.path.join(report, name)))
        except (TypeError, OSError, ValueError):
            return {}

    if testee == "server":
        never_ran = "wstest never ran it (could it connect?)"
        # In 12 and 13: the server took none of the permessage-deflate offers.
        unimplemented = "offered: {offer}; answered: {answer}"
    else:
        never_ran = "the client never ran it (see client.log)"
        # In 12 and 13: the client offered no permessage-deflate, or the server's answer
        # was not taken.
        unimplemented = "client offered: {offer}; server answered: {answer}"

    behavior = collections.Counter()
    close = collections.Counter()
    non_strict, failed = [], []
    for case in sorted(selected, key=key):
        r = index.get(case)
        if r is None:
            behavior["NO RESULT"] += 1
            failed.append((case, "NO RESULT", "-", never_ran, ""))
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
                offer, answer = (extensions(d.get(k)) for k in ("httpRequest", "httpResponse"))
                result = unimplemented.format(offer=offer or "nothing", answer=answer or "nothing")
            failed.append((case, b, c, result, text(d.get("resultClose"))))

    print(f"behavior:      {counts(behavior)}")
    print(f"behaviorClose: {counts(close) or '-'}")
    if not index:
        if testee == "server":
            # wstest gives up at the first connection it cannot make and says why only
            # in its log.
            try:
                with open(os.path.join(report, "wstest.log")) as log:
                    for line in log:
                        if line.startswith("Connection to"):
                            print(f"wstest ran no case: {line.strip()}")
            except OSError:
                pass
        else:
            print(f"no result for agent {agent!r}: did the client connect with that agent?")
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
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
