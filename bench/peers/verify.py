#!/usr/bin/env python3
"""Protocol check for the comparison peers (127.0.0.1 only, bounded, stops by itself).

    python3 bench/peers/verify.py [--bin-dir bench/peers/target/release] [--only NAME]

Starts each peer binary/proto/flavor on 127.0.0.1:0, reads the port from its
"listening on" line, checks the exact reply bytes, and kills it (by its pid).
Exit status 0 when every check passed; may-minihttp's known header
differences are printed and checked against may's own fixed shape.
"""
import argparse
import email.utils
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


def expect_eof(s, timeout=2.0):
    s.settimeout(timeout)
    try:
        extra = s.recv(65536)
    except socket.timeout:
        raise Fail("connection not closed after Connection: close")
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
    a = ap.parse_args()
    b = lambda n: os.path.join(a.bin_dir, n)
    checks = {"echo": check_echo, "framed": check_framed, "http": check_http}
    runs = []
    for flavor, threads in (("current", "1"), ("current", "2"), ("multi", "2")):
        for proto in checks:
            runs.append((f"tokio-peer {flavor}x{threads} {proto}",
                         [b("tokio-peer"), "--flavor", flavor, "--threads", threads], proto, None))
    for driver in ("fusion", "legacy", "uring"):
        for proto in checks:
            runs.append((f"monoio-peer {driver} {proto}",
                         [b("monoio-peer"), "--driver", driver, "--threads", "2"], proto, None))
    runs.append(("may-minihttp-peer http (vs may's own shape)",
                 [b("may-minihttp-peer"), "--threads", "2"], "http",
                 lambda port: check_http(port, MAY_SHAPE, closes=False)))
    runs.append(("may-minihttp-peer http: diff against netloop's bytes (informational)",
                 [b("may-minihttp-peer"), "--threads", "2"], "http", may_diff))
    failed = 0
    for name, cmd, proto, custom in runs:
        if a.only and a.only not in name:
            continue
        p = None
        try:
            p, port, line = start(cmd + ["--proto", proto, "--addr", "127.0.0.1:0"])
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
    print(f"{sum(1 for r in runs if a.only in r[0]) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
