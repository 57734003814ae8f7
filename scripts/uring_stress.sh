#!/usr/bin/env bash
# The io_uring backend's memory-safety check: the cancellation and churn tests
# (thousands of peers leaving mid-receive and mid-send under load) on io_uring, first in
# release mode, then once under valgrind's memcheck, which reports any read or write of
# freed or unowned memory (a buffer or socket reused while the kernel could still write
# into it would show up here). Exits non-zero on any test failure or valgrind error.
#
#   scripts/uring_stress.sh            # release run + valgrind run (several minutes)
#
# Needs io_uring (the script says so and stops if it is not usable) and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! reason=$(cargo run -q --release --example backend -- --check io_uring 2>&1); then
    echo "io_uring is not usable here ($reason): nothing to stress" >&2
    exit 1
fi
command -v valgrind >/dev/null || { echo "valgrind is missing (apt-get install valgrind)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "== release build, io_uring: cancellation and churn"
NETLOOP_BACKEND=io_uring cargo test --release --test cancellation --test churn

echo "== valgrind memcheck, io_uring: cancellation (a smaller run: valgrind is ~30x slower)"
bin=$(cargo test --release --test cancellation --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cancellation":
        print(m["executable"])')
[[ -x $bin ]] || { echo "cannot find the cancellation test binary" >&2; exit 1; }
NETLOOP_BACKEND=io_uring NETLOOP_TEST_VICTIMS=200 \
    valgrind --error-exitcode=99 --errors-for-leak-kinds=none --track-origins=no -q \
    "$bin" --test-threads=1
echo "valgrind: no errors"
