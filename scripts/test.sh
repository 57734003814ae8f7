#!/usr/bin/env bash
# The test suite, on both I/O backends and both feature sets: everything (all features)
# on epoll, the core alone (no default features), then the
# library's unit and integration tests again on io_uring (NETLOOP_BACKEND overrides
# every server's backend). Where io_uring is not usable that run is skipped and the
# reason printed; it never passes silently.
set -euo pipefail
cd "$(dirname "$0")/.."
# Tests open ~2,000 sockets at once; raise the soft descriptor limit where allowed.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

echo "== tests on epoll, all features"
NETLOOP_BACKEND=epoll cargo test --workspace --all-features

echo "== tests on epoll, the core alone (--no-default-features)"
NETLOOP_BACKEND=epoll cargo test -p netloop --no-default-features --lib --tests

echo "== tests on io_uring"
if reason=$(cargo run -q --example backend -- --check io_uring 2>&1); then
    NETLOOP_BACKEND=io_uring cargo test -p netloop --all-features --lib --tests
else
    echo "SKIPPED: the io_uring run ($reason)"
fi
