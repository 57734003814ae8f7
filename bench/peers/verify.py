#!/usr/bin/env python3
"""Protocol check for the comparison peers (127.0.0.1 only, bounded, stops by itself).

    python3 bench/peers/verify.py [--bin-dir bench/peers/target/release] [--only NAME]
                                  [--ws-echo PATH] [--task-bin-dir target/release/examples]

Starts each peer binary/proto/flavor on 127.0.0.1:0, reads the port from its
"listening on" line, checks the exact reply bytes, and kills it (by its pid).
Exit status 0 when every check passed; may-minihttp's known header
differences are printed and checked against may's own fixed shape.

WebSocket (--proto ws) runs cover the ws peers and, when it is built
(`cargo build --release --example ws_echo` at the repository root), netloop's
own examples/ws_echo with --pollers 1, so all of them are held to the same bytes.

Task (RPC) peers (tarpc-peer, tonic-peer) speak their own frameworks' protocols,
so there are no bytes to compare: each server is driven by its own `--bench` load
client for a second in two shapes (8 calls multiplexed on 1 connection with 1 KiB;
4 connections, one 64 KiB call each), which checks the echo lengths, the `measuring`
line on stderr and the JSON line's fields, and the server must run on one thread.
netloop's examples/task_server with --pollers 1 and task_client get the same check
when both are built (skipped otherwise).
"""
import argparse
import base64
import email.utils
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import time

EXPECTED = (b"HTTP/1.1 200 OK\r\nServer: netloop\r\nContent-Type: text/plain\r\n"
            b"Content-Length: 13\r\nDate: DATE\r\n\r\nHello, World!")
# What may_minihttp 0.1.x emits (status line and Server are hard-coded in the crate).
MAY_SHAPE = (b"HTTP/1.1 200 Ok\r\nServer: M\r\nDate: DATE\r\n"
             b"Content-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, World!")
DATE_RE = re.compile(rb"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT")
DATE_LEN = 29

GET = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n"
GET_CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
POST = b"POST /p HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello"


class Fail(Exception):
    pass


def recv_exact(s, n, timeout=3.0):
    s.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    while len(data) < n:
        if time.time() > deadline:
            raise Fail(f"timeout: got {len(data)}/{n} bytes: {data[:200]!r}")
        chunk = s.recv(n - len(data))
        if not chunk:
            raise Fail(f"EOF after {len(data)}/{n} bytes: {data[:200]!r}")
        data += chunk
    return data


def expect_quiet(s, wait=0.2):
    s.settimeout(wait)
    try:
        extra = s.recv(65536)
    except socket.timeout:
        return
    if extra:
        raise Fail(f"unexpected extra bytes: {extra[:200]!r}")


def expect_eof(s, timeout=2.0, after="Connection: close"):
    s.settimeout(timeout)
    try:
        extra = s.recv(65536)
    except socket.timeout:
        raise Fail(f"connection not closed after {after}")
    except ConnectionResetError:
        return
    if extra:
        raise Fail(f"bytes instead of EOF: {extra[:200]!r}")


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def check_echo(port):
    with connect(port) as s:
        s.sendall(b"ping")
        if recv_exact(s, 4) != b"ping":
            raise Fail("echo mismatch")
        big = os.urandom(200_000)
        s.sendall(big)
        if recv_exact(s, len(big)) != big:
            raise Fail("echo 200 KB mismatch")
        expect_quiet(s)
    return "round trip 4 B + 200 KB ok"


def frame(payload):
    return len(payload).to_bytes(4, "big") + payload


def check_framed(port):
    with connect(port) as s:
        one = frame(b"hello")
        s.sendall(one)
        if recv_exact(s, len(one)) != one:
            raise Fail("single frame mismatch")
        two = frame(b"first") + frame(os.urandom(1000))
        s.sendall(two)  # two pipelined frames in one write
        if recv_exact(s, len(two)) != two:
            raise Fail("pipelined frames mismatch")
        split = frame(os.urandom(300)) + frame(b"")
        for part in (split[:2], split[2:150], split[150:]):  # header and payload split
            s.sendall(part)
            time.sleep(0.05)
        if recv_exact(s, len(split)) != split:
            raise Fail("split frame mismatch")
        big = frame(os.urandom(1 << 20))
        s.sendall(big)
        if recv_exact(s, len(big)) != big:
            raise Fail("1 MiB frame mismatch")
        expect_quiet(s)
    return "single, 2 pipelined, split header/payload + empty, 1 MiB ok"


def check_responses(data, count, shape):
    per = len(shape) - len(b"DATE") + DATE_LEN
    if len(data) != per * count:
        raise Fail(f"length {len(data)} != {count} x {per}")
    prefix, suffix = shape.split(b"DATE")
    for i in range(count):
        r = data[i * per:(i + 1) * per]
        if not (r.startswith(prefix) and r.endswith(suffix)):
            raise Fail(f"response {i} differs: {r!r}")
        date = r[len(prefix):len(prefix) + DATE_LEN]
        if not DATE_RE.fullmatch(date):
            raise Fail(f"bad date {date!r}")
        when = email.utils.parsedate_to_datetime(date.decode()).timestamp()
        if abs(when - time.time()) > 5:
            raise Fail(f"date {date!r} is not now")


def check_http(port, shape=EXPECTED, closes=True):
    per = len(shape) - len(b"DATE") + DATE_LEN
    with connect(port) as s:
        s.sendall(GET + GET)  # two pipelined requests in one write
        check_responses(recv_exact(s, 2 * per), 2, shape)
        expect_quiet(s)
        for part in (GET[:10], GET[10:40], GET[40:] + POST[:30], POST[30:]):  # split
            s.sendall(part)
            time.sleep(0.05)
        check_responses(recv_exact(s, 2 * per), 2, shape)
        s.sendall(GET * 16)
        check_responses(recv_exact(s, 16 * per), 16, shape)
        expect_quiet(s)
    note = ""
    with connect(port) as s:
        s.sendall(GET + GET_CLOSE)
        check_responses(recv_exact(s, 2 * per), 2, shape)
        if closes:
            expect_eof(s)
            note = "; Connection: close -> closed"
        else:
            try:
                expect_eof(s, timeout=1.0)
                note = "; Connection: close -> closed"
            except Fail:
                note = "; Connection: close -> NOT closed (may_minihttp keeps it open)"
    return "2 pipelined, split + POST body, 16 pipelined: exact bytes" + note


def may_diff(port):
    """Shows, line by line, where one may_minihttp response differs from netloop's."""
    with connect(port) as s:
        s.sendall(GET)
        s.settimeout(0.5)
        got = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
    want_head, want_body = EXPECTED.split(b"\r\n\r\n")
    got_head, got_body = got.split(b"\r\n\r\n", 1)
    got_lines = got_head.split(b"\r\n")
    out = [f"got {len(got)} B vs netloop's {len(EXPECTED) - 4 + DATE_LEN} B; body equal: "
           f"{got_body == want_body}"]
    out.append("  got header lines:  " + " | ".join(l.decode() for l in got_lines))
    out.append("  netloop's:         " + " | ".join(
        l.decode() for l in want_head.replace(b"DATE", b"<date>").split(b"\r\n")))
    return "\n".join(out)


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
WS_SIZES = (20, 1024, 16 * 1024, 1 << 20)


def ws_frame(opcode, payload, fin=True):
    """One client frame: masked with a random key, as RFC 6455 requires."""
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    if n == 0:
        return head + key
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


class WsReader:
    """Reads server frames off a socket, keeping what arrived beyond the current one."""

    def __init__(self, s, buf=b""):
        self.s, self.buf = s, buf

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.time()
            if left <= 0:
                raise Fail(f"timeout: have {len(self.buf)}/{n} bytes of a frame")
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(max(65536, n - len(self.buf)))
            except socket.timeout:
                continue
            if not chunk:
                raise Fail(f"EOF inside a frame ({len(self.buf)}/{n} bytes)")
            self.buf += chunk

    def frame(self, timeout=5.0):
        """(fin, opcode, payload) of the next frame; the server must not mask."""
        deadline = time.time() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b0 & 0x70:
            raise Fail(f"reserved bits set in a server frame: {b0:#04x}")
        if b1 & 0x80:
            raise Fail("server frame is masked")
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, pos = int.from_bytes(self.buf[2:4], "big"), 4
        elif n == 127:
            self._need(10, deadline)
            n, pos = int.from_bytes(self.buf[2:10], "big"), 10
        # Shortest length encoding, so equal messages are equal bytes on every server.
        if (pos == 4 and n < 126) or (pos == 10 and n < 1 << 16):
            raise Fail(f"length {n} not in its shortest encoding ({pos} header bytes)")
        self._need(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def expect(self, opcode, payload, what):
        fin, op, got = self.frame()
        if (fin, op) != (True, opcode):
            raise Fail(f"{what}: got frame fin={fin} opcode={op:#x}, want one final "
                       f"frame with opcode {opcode:#x}")
        if got != payload:
            raise Fail(f"{what}: payload differs ({len(got)} B vs {len(payload)} B)")

    def expect_quiet(self, wait=0.2):
        if self.buf:
            raise Fail(f"unexpected extra bytes: {self.buf[:100]!r}")
        expect_quiet(self.s, wait)


def ws_connect(port):
    """Opening handshake (offering permessage-deflate, which must be declined);
    checks the 101 and Sec-WebSocket-Accept and returns the socket and a reader."""
    s = connect(port)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + b"\r\n"
              b"Sec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
    head = b""
    s.settimeout(3)
    deadline = time.time() + 3
    while b"\r\n\r\n" not in head:
        if time.time() > deadline or len(head) > 16384:
            raise Fail(f"no complete handshake response: {head[:300]!r}")
        chunk = s.recv(4096)
        if not chunk:
            raise Fail(f"EOF during the handshake: {head[:300]!r}")
        head += chunk
    head, rest = head.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        raise Fail(f"status line {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    want = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    if headers.get(b"sec-websocket-accept") != want:
        raise Fail(f"Sec-WebSocket-Accept {headers.get(b'sec-websocket-accept')!r} != {want!r}")
    if headers.get(b"upgrade", b"").lower() != b"websocket":
        raise Fail(f"Upgrade: {headers.get(b'upgrade')!r}")
    if b"upgrade" not in headers.get(b"connection", b"").lower():
        raise Fail(f"Connection: {headers.get(b'connection')!r}")
    if b"sec-websocket-extensions" in headers:
        raise Fail(f"extension accepted: {headers[b'sec-websocket-extensions']!r}")
    return s, WsReader(s, rest)


def ws_text(n):
    """n random bytes of ASCII letters, digits and spaces (valid UTF-8)."""
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "
    return bytes(alphabet[b % len(alphabet)] for b in os.urandom(n))


def check_ws(port):
    s, r = ws_connect(port)
    with s:
        # One message at a time, each echoed as one unmasked final frame.
        for n in WS_SIZES:
            for op, payload in ((OP_TEXT, ws_text(n)), (OP_BINARY, os.urandom(n))):
                s.sendall(ws_frame(op, payload))
                r.expect(op, payload, f"{n} B {'text' if op == OP_TEXT else 'binary'}")
        r.expect_quiet()
        # The same eight messages pipelined in one write come back in order.
        msgs = [(op, ws_text(n) if op == OP_TEXT else os.urandom(n))
                for n in WS_SIZES for op in (OP_TEXT, OP_BINARY)]
        s.sendall(b"".join(ws_frame(op, p) for op, p in msgs))
        for i, (op, p) in enumerate(msgs):
            r.expect(op, p, f"pipelined message {i}")
        r.expect_quiet()
        # Fragmented messages: a text one with a UTF-8 character split between
        # fragments, and a binary one with a ping between its fragments (a
        # control frame may come in the middle of a message).
        text = "fragmented \u00e9\u20ac message ".encode() * 3
        cut1, cut2 = 12, len(text) - 5  # 12 falls inside the two bytes of e-acute
        s.sendall(ws_frame(OP_TEXT, text[:cut1], fin=False)
                  + ws_frame(OP_CONT, text[cut1:cut2], fin=False)
                  + ws_frame(OP_CONT, text[cut2:]))
        r.expect(OP_TEXT, text, "fragmented text (3 frames)")
        blob = os.urandom(40_000)
        s.sendall(ws_frame(OP_BINARY, blob[:1000], fin=False)
                  + ws_frame(OP_PING, b"mid")
                  + ws_frame(OP_CONT, blob[1000:30_000], fin=False))
        time.sleep(0.05)
        s.sendall(ws_frame(OP_CONT, blob[30_000:]))
        r.expect(OP_PONG, b"mid", "pong to the ping inside a fragmented message")
        r.expect(OP_BINARY, blob, "fragmented binary (3 frames around a ping)")
        r.expect_quiet()
        # Ping with a payload, and an empty one.
        s.sendall(ws_frame(OP_PING, b"ping-1234"))
        r.expect(OP_PONG, b"ping-1234", "pong")
        s.sendall(ws_frame(OP_PING, b""))
        r.expect(OP_PONG, b"", "pong (empty)")
        r.expect_quiet()
        # Closing handshake: close 1000 -> a close frame back, then TCP EOF.
        s.sendall(ws_frame(OP_CLOSE, (1000).to_bytes(2, "big") + b"bye"))
        fin, op, payload = r.frame()
        if op != OP_CLOSE or not fin:
            raise Fail(f"close answered with fin={fin} opcode={op:#x} {payload[:50]!r}")
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        if payload and code != 1000:
            raise Fail(f"close reply carries code {code}, want 1000 (or none)")
        if r.buf:
            raise Fail(f"bytes after the close reply: {r.buf[:100]!r}")
        expect_eof(s, after="the closing handshake")
    # A few more connections at once (with --threads 2 they land on both listeners).
    conns = [ws_connect(port) for _ in range(4)]
    for s, r in conns:
        with s:
            msg = ws_text(20)
            s.sendall(ws_frame(OP_TEXT, msg))
            r.expect(OP_TEXT, msg, "20 B text on a further connection")
    return ("handshake + Accept, deflate declined; text/binary 20 B, 1 KiB, 16 KiB, 1 MiB "
            "one by one and 8 pipelined; fragmented text (split UTF-8) and binary (ping "
            f"inside); pong; close -> close (payload {payload!r}) + EOF; 4 more connections")


TASK_KEYS = ("client", "conns", "concurrency", "size", "tasks", "seconds", "p99_us", "cpu_seconds")


def check_task(client, name, proc, port):
    """Runs `client --bench` against the server on `port` in two shapes."""
    done = []
    for conns, concurrency, size in ((1, 8, 1024), (4, 4, 65536)):
        cmd = client + ["--addr", f"127.0.0.1:{port}", "--conns", str(conns),
                        "--concurrency", str(concurrency), "--size", str(size), "--duration", "1"]
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if r.returncode != 0:
            raise Fail(f"{' '.join(cmd[1:])}: exit {r.returncode}: {err[:300]!r}")
        if not any(l.startswith("measuring") for l in err.splitlines()):
            raise Fail(f"no 'measuring' line on stderr: {err[:300]!r}")
        lines = [l for l in out.splitlines() if l.strip()]
        if len(lines) != 1:
            raise Fail(f"{len(lines)} lines on stdout, not one JSON line: {out[:300]!r}")
        j = json.loads(lines[0])
        missing = [k for k in TASK_KEYS if k not in j]
        if missing:
            raise Fail(f"JSON line without {missing}: {lines[0]}")
        want = {"client": name, "conns": conns, "concurrency": concurrency, "size": size}
        if any(j[k] != v for k, v in want.items()):
            raise Fail(f"JSON line {lines[0]} does not match {want}")
        if not (j["tasks"] > 0 and j["seconds"] >= 1 and j["p99_us"] > 0 and j["cpu_seconds"] > 0):
            raise Fail(f"implausible figures: {lines[0]}")
        done.append(f"{conns}x{concurrency} {size} B: {j['tasks']} tasks")
    threads = len(os.listdir(f"/proc/{proc.pid}/task"))
    if threads != 1:
        raise Fail(f"the server runs {threads} threads, not 1")
    return "; ".join(done) + "; server on 1 thread"


def start(cmd):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline().decode()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        p.kill()
        raise Fail(f"no listening line: {line!r} {p.stderr.read()[:500]!r}")
    return p, int(m.group(1)), line.strip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "target", "release"))
    ap.add_argument("--only", default="")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--ws-echo", default=os.path.join(root, "target", "release", "examples",
                                                      "ws_echo"),
                    help="netloop's ws_echo example (skipped when absent)")
    ap.add_argument("--task-bin-dir", default=os.path.join(root, "target", "release", "examples"),
                    help="where netloop's task_server and task_client examples are (skipped when absent)")
    a = ap.parse_args()
    b = lambda n: os.path.join(a.bin_dir, n)
    checks = {"echo": check_echo, "framed": check_framed, "http": check_http, "ws": check_ws}
    # (name, command, proto, custom check or None); the proto is passed as --proto
    # unless the command is netloop's own example, which speaks only ws.
    runs = []
    for flavor, threads in (("current", "1"), ("current", "2"), ("multi", "2")):
        for proto in ("echo", "framed", "http"):
            runs.append((f"tokio-peer {flavor}x{threads} {proto}",
                         [b("tokio-peer"), "--flavor", flavor, "--threads", threads], proto, None))
    for driver in ("fusion", "legacy", "uring"):
        for proto in ("echo", "framed", "http"):
            runs.append((f"monoio-peer {driver} {proto}",
                         [b("monoio-peer"), "--driver", driver, "--threads", "2"], proto, None))
    runs.append(("may-minihttp-peer http (vs may's own shape)",
                 [b("may-minihttp-peer"), "--threads", "2"], "http",
                 lambda port: check_http(port, MAY_SHAPE, closes=False)))
    runs.append(("may-minihttp-peer http: diff against netloop's bytes (informational)",
                 [b("may-minihttp-peer"), "--threads", "2"], "http", may_diff))
    for peer in ("fastwebsockets-peer", "tokio-tungstenite-peer"):
        for threads in ("1", "2"):
            runs.append((f"{peer} x{threads} ws", [b(peer), "--threads", threads], "ws", None))
    runs.append(("netloop ws_echo --pollers 1 ws", [a.ws_echo, "--pollers", "1"], "ws", None))
    # Task peers: (name, server command, "task", (client command, its "client" name)).
    for peer, client in (("tarpc-peer", "tarpc"), ("tonic-peer", "tonic")):
        runs.append((f"{peer} task", [b(peer)], "task", ([b(peer), "--bench"], client)))
    task_server = os.path.join(a.task_bin_dir, "task_server")
    task_client = os.path.join(a.task_bin_dir, "task_client")
    runs.append(("netloop task_server --pollers 1 task", [task_server, "--pollers", "1"], "task",
                 ([task_client, "--bench"], "netloop")))
    failed = skipped = 0
    for name, cmd, proto, custom in runs:
        if a.only and a.only not in name:
            continue
        if cmd[0] == a.ws_echo and not os.path.exists(a.ws_echo):
            skipped += 1
            print(f"SKIP {name}: {a.ws_echo} not built "
                  "(cargo build --release --example ws_echo at the repository root)")
            continue
        if proto == "task" and not all(os.path.exists(c) for c in (cmd[0], custom[0][0])):
            skipped += 1
            print(f"SKIP {name}: {cmd[0]} or {custom[0][0]} not built")
            continue
        proto_args = [] if cmd[0] == a.ws_echo or proto == "task" else ["--proto", proto]
        p = None
        try:
            p, port, line = start(cmd + proto_args + ["--addr", "127.0.0.1:0"])
            if proto == "task":
                detail = check_task(custom[0], custom[1], p, port)
            else:
                detail = (custom or checks[proto])(port)
            print(f"PASS {name}: {detail}   [{line}]")
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failed += 1
            err = ""
            if p is not None and p.poll() is not None:
                err = p.stderr.read().decode(errors="replace")[:300]
            print(f"FAIL {name}: {e} {err}")
        finally:
            if p is not None:
                p.kill()
                p.wait()
    ran = sum(1 for r in runs if a.only in r[0]) - skipped
    print(f"{ran - failed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
