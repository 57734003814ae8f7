#!/usr/bin/env bash
# The io_uring backend's memory-safety check: the cancellation, churn, zero-copy send
# and dialing tests (thousands of peers leaving mid-receive and mid-send under load,
# connects cancelled mid-flight) on io_uring,
# first in release mode, then built with AddressSanitizer, which reports any use of
# freed memory by netloop (a send's segments or a receive buffer used after release).
# Exits non-zero on any test failure or sanitizer report.
#
#   scripts/uring_stress.sh            # release run + AddressSanitizer run (~2 minutes)
#
# AddressSanitizer needs `-Zsanitizer`, an unstable flag; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain accept it (its ASan runtime ships with the toolchain). valgrind is
# not used: it holds its global lock across `io_uring_enter`, so the first poller that
# waits in the ring stops every other thread (seen here: the test thread blocked on
# valgrind's lock pipe while the poller sat in io_cqring_wait).
#
# Needs io_uring (the script says so and stops if it is not usable).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! reason=$(cargo run -q --release --example backend -- --check io_uring 2>&1); then
    echo "io_uring is not usable here ($reason): nothing to stress" >&2
    exit 1
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "== release build, io_uring: cancellation, churn, zero-copy send, dialing"
NETLOOP_BACKEND=io_uring cargo test --release -p netloop --test cancellation --test churn \
    --test zero_copy_send --test dialing

echo "== AddressSanitizer build, io_uring: the same tests"
# A separate target directory: sanitized objects must not mix with the normal ones.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan \
    ASAN_OPTIONS=detect_leaks=0 NETLOOP_BACKEND=io_uring \
    cargo test -p netloop --target x86_64-unknown-linux-gnu --test cancellation --test churn \
    --test zero_copy_send --test dialing
echo "AddressSanitizer: no reports"
