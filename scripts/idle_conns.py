#!/usr/bin/env python3
"""Opens N keep-alive HTTP connections to 127.0.0.1:PORT, makes one GET on each (so
every server has set the connection up completely), then holds them all idle.

    idle_conns.py PORT N

Prints "ready N" once every connection has had its answer, then waits until stdin
closes or it gets SIGTERM, and closes them. Exits 1 if a connection fails; a server
that closes an idle connection is an error too (it would flatter its memory figure).
Used by bench.sh for the memory-per-idle-connection scenario; loopback only.
"""
import select
import socket
import sys

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"Hello, World!"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    port, n = int(sys.argv[1]), int(sys.argv[2])
    socks = []
    # In batches, so the listen backlog never overflows (an overflow costs a 1 s SYN retry).
    batch = 256
    for start in range(0, n, batch):
        opened = []
        for _ in range(min(batch, n - start)):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(REQUEST)
            opened.append(s)
        for s in opened:
            got = b""
            while not got.endswith(BODY):
                chunk = s.recv(4096)
                if not chunk:
                    print(f"connection {len(socks)} closed before its answer", file=sys.stderr)
                    return 1
                got += chunk
            socks.append(s)
    print(f"ready {len(socks)}", flush=True)
    # Hold until told to stop; an idle connection the server closes is a failure.
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    for s in socks:
        poller.register(s, select.POLLIN)
    while True:
        ready = poller.poll()
        if any(fd == sys.stdin.fileno() for fd, _ in ready):
            break
        print("the server closed or wrote to an idle connection", file=sys.stderr)
        return 1
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
