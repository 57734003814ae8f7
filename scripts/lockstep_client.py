#!/usr/bin/env python3
"""A lock-step client for instruction counting: CONNS connections, ROUNDS rounds; in each
round every connection in turn sends one request and reads its whole answer before the
next connection sends. One request is in flight at a time, so the server handles each in
a loop turn of its own and its instruction count does not depend on timing.

usage: lockstep_client.py PORT echo|http CONNS ROUNDS [SIZE]
"""
import socket
import sys


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


def main():
    port, proto, conns, rounds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    size = int(sys.argv[5]) if len(sys.argv) > 5 else 1024
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(s)
    payload = bytes((i * 7) & 0xFF for i in range(size))
    request = b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    pending = [b""] * conns
    for _ in range(rounds):
        for i, s in enumerate(socks):
            if proto == "echo":
                s.sendall(payload)
                if read_exact(s, size) != payload:
                    raise SystemExit("the echo differs from what was sent")
            else:
                s.sendall(request)
                pending[i] = read_http_response(s, pending[i])
    for s in socks:
        s.close()


if __name__ == "__main__":
    main()
