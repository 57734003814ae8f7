#!/usr/bin/env python3
"""A lock-step client for instruction counting: CONNS connections, ROUNDS rounds; in each
round every connection in turn sends one request and reads its whole answer before the
next connection sends. One request is in flight at a time, so the server handles each in
a loop turn of its own and its instruction count does not depend on timing.

usage: lockstep_client.py PORT echo|http|http-pipelined|ws CONNS ROUNDS [SIZE]

http-pipelined: a request is 16 pipelined GETs sent in one write, and its answer the 16
responses (so the instructions per GET are the figure divided by 16, see PIPELINE).

ws: each connection does the WebSocket handshake first; a request is then one masked
binary message of SIZE bytes and its answer the unmasked echo.
"""
import base64
import socket
import struct
import sys

WS_KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
WS_MASK = b"\x37\xfa\x21\x3d"
# Requests per write in http-pipelined, as in scripts/bench.sh's http-pipelined scenario.
PIPELINE = 16


def read_exact(sock, n):
    chunks = []
    while n > 0:
        chunk = sock.recv(n)
        if not chunk:
            raise SystemExit("the server closed the connection")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_http_response(sock, pending):
    while b"\r\n\r\n" not in pending:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        pending += chunk
    head, _, rest = pending.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        rest += chunk
    return rest[length:]


def ws_handshake(sock):
    sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + WS_KEY + b"\r\n\r\n")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += read_exact(sock, 1)
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit("the WebSocket handshake was refused")


def ws_frames(payload):
    """The masked client frame carrying payload, and the server's unmasked echo."""
    n = len(payload)
    if n < 126:
        length = bytes([n])
    elif n <= 0xFFFF:
        length = bytes([126]) + struct.pack(">H", n)
    else:
        length = bytes([127]) + struct.pack(">Q", n)
    masked = bytes(b ^ WS_MASK[i % 4] for i, b in enumerate(payload))
    request = bytes([0x82, 0x80 | length[0]]) + length[1:] + WS_MASK + masked
    echo = bytes([0x82]) + length + payload
    return request, echo


def main():
    port, proto, conns, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if proto == "ws":
            ws_handshake(s)
        socks.append(s)
    payload = bytes((i * 7) & 0xFF for i in range(size))
    ws_request, ws_echo = ws_frames(payload)
    request = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    pending = [b""] * conns
    for _ in range(rounds):
        for i, s in enumerate(socks):
            if proto == "echo":
                s.sendall(payload)
                if read_exact(s, size) != payload:
                    raise SystemExit("the echo differs from what was sent")
            elif proto == "ws":
                s.sendall(ws_request)
                if read_exact(s, len(ws_echo)) != ws_echo:
                    raise SystemExit("the WebSocket echo differs from what was sent")
            elif proto == "http-pipelined":
                s.sendall(request * PIPELINE)
                for _ in range(PIPELINE):
                    pending[i] = read_http_response(s, pending[i])
            else:
                s.sendall(request)
                pending[i] = read_http_response(s, pending[i])
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
