#!/usr/bin/env bash
# The chat example (examples/chat.rs) in headless Chromium: builds it, starts it on a
# free loopback port, starts Chromium with a fresh profile and its DevTools endpoint on
# loopback, and runs scripts/chat_browser.cjs (playwright-core over the DevTools
# protocol): two pages join a room, a message typed in one appears in the other, a
# closed page leaves the other's member list. Fails (never skips) without Chromium or
# Node. The server honours NETLOOP_BACKEND. Logs go to target/chat-browser/.
#
#   scripts/chat_browser.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: the driver's API and the DevTools protocol it speaks move together.
PLAYWRIGHT_CORE=1.65.1
dir=target/chat-browser

for tool in chromium node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAILED: $tool is not installed (apt-get install -y chromium nodejs npm)" >&2
        exit 1
    fi
done

mkdir -p "$dir"
installed=$(node -p "require('./$dir/node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [[ $installed != "$PLAYWRIGHT_CORE" ]]; then
    # playwright-core is the driver alone: no browser download (Chromium is Debian's).
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
        "playwright-core@$PLAYWRIGHT_CORE"
fi

cargo build --example chat
chat=${CARGO_TARGET_DIR:-target}/debug/examples/chat

work=$(mktemp -d)
server_pid=""
browser_pid=""
cleanup() {
    # Chromium runs in a process group of its own (setsid): end it with its renderers.
    if [[ -n $browser_pid ]]; then
        kill -TERM -- "-$browser_pid" 2>/dev/null || true
    fi
    if [[ -n $server_pid ]]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n $browser_pid ]]; then
        for _ in $(seq 50); do
            kill -0 -- "-$browser_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$browser_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

started=$(date +%s)
server_log=$dir/server.log
"$chat" --addr 127.0.0.1:0 --pollers 2 >"$server_log" 2>&1 &
server_pid=$!
# It prints "chat listening on 127.0.0.1:PORT" once bound.
addr=""
for _ in $(seq 100); do
    addr=$(sed -n 's/^chat listening on //p' "$server_log" | head -n 1)
    [[ -n $addr ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $addr ]]; then
    echo "FAILED: the chat server did not start:" >&2
    cat "$server_log" >&2
    exit 1
fi

# Port 0: Chromium picks a free port and writes it to DevToolsActivePort in the profile.
profile=$work/profile
browser_log=$dir/chromium.log
setsid chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
    --disable-component-update --disable-sync --no-first-run \
    --user-data-dir="$profile" --remote-debugging-address=127.0.0.1 \
    --remote-debugging-port=0 about:blank >"$browser_log" 2>&1 &
browser_pid=$!
devtools_port=""
for _ in $(seq 200); do
    [[ -s $profile/DevToolsActivePort ]] && devtools_port=$(head -n 1 "$profile/DevToolsActivePort")
    [[ -n $devtools_port ]] && break
    kill -0 "$browser_pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $devtools_port ]]; then
    echo "FAILED: Chromium did not open its DevTools port:" >&2
    cat "$browser_log" >&2
    exit 1
fi

echo "== chat in headless Chromium ($(chromium --version 2>/dev/null)), server on $addr (${NETLOOP_BACKEND:-default backend})"
status=0
NODE_PATH=$dir/node_modules timeout 90 node scripts/chat_browser.cjs \
    "http://$addr" "http://127.0.0.1:$devtools_port" || status=$?
if [[ $status -ne 0 ]]; then
    [[ $status -eq 124 ]] && echo "FAILED: the browser run took over 90 s" >&2
    echo "-- server log ($server_log):" >&2
    tail -n 20 "$server_log" >&2
    echo "-- chromium log ($browser_log, without its complaints about the absent D-Bus):" >&2
    grep -v dbus "$browser_log" | tail -n 20 >&2
    exit 1
fi
echo "chat_browser: $(($(date +%s) - started)) s"
