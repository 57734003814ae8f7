#!/usr/bin/env python3
"""Opens N connections to 127.0.0.1:PORT, sets each up completely, then holds them all
idle.

    idle_conns.py PORT N                         # HTTP keep-alive: one GET each
    idle_conns.py PORT N --ws [--offer EXT] [--size BYTES]
    idle_conns.py PORT N [--ws] --tls-ca CA.pem    # over TLS (HTTPS, wss://)

HTTP: one GET on each connection, answered. --ws: a WebSocket handshake, then one text
message of --size bytes (default 16) echoed back, so the server has set up everything
a connection in use has. --offer sends EXT as Sec-WebSocket-Extensions (for example
"permessage-deflate" for context takeover both ways, or "permessage-deflate;
server_no_context_takeover; client_no_context_takeover" for none); if the server
accepts permessage-deflate the message is sent compressed, so the server has inflated
and (for messages over its threshold) deflated once on every connection. --tls-ca runs a
full TLS handshake first (server name localhost, verified against CA.pem).

Prints "ready N" once every connection has had its answer, then waits until stdin
closes or it gets SIGTERM, and closes them. Exits 1 if a connection fails; a server
that closes an idle connection, or writes anything to it but a WebSocket ping (which is
answered), is an error too (it would flatter its memory figure). Used by bench.sh for
the memory-per-idle-connection scenarios; loopback only.
"""
import argparse
import base64
import hashlib
import os
import select
import socket
import ssl
import struct
import sys
import zlib

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"Hello, World!"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The message: compressible text, so a server above its threshold compresses the echo.
WORDS = b"the quick brown fox jumps over the lazy dog "


class Failed(Exception):
    pass


def recv_exact(s, n, buf):
    """Reads until buf (a bytearray of bytes already read) holds n bytes."""
    while len(buf) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise Failed("the server closed the connection")
        buf += chunk


def parse_frame(buf):
    """A complete server frame at the start of buf: (fin, rsv1, opcode, payload, size)
    or None if incomplete."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    if b1 & 0x80:
        raise Failed("the server masked a frame")
    n, at = b1 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, at = struct.unpack(">H", buf[2:4])[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, at = struct.unpack(">Q", buf[2:10])[0], 10
    if len(buf) < at + n:
        return None
    return bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, bytes(buf[at : at + n]), at + n


def client_frame(opcode, payload, rsv1=False):
    key = os.urandom(4)
    head = bytearray([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n <= 0xFFFF:
        head.append(0x80 | 126)
        head += struct.pack(">H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack(">Q", n)
    head += key
    return bytes(head) + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_open(s, offer, size):
    """Handshake and one echoed message. Returns bytes read past the echo."""
    key = base64.b64encode(os.urandom(16))
    req = (
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n"
    )
    if offer:
        req += b"Sec-WebSocket-Extensions: " + offer.encode() + b"\r\n"
    s.sendall(req + b"\r\n")
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        recv_exact(s, len(buf) + 1, buf)
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    if not lines[0].startswith(b"HTTP/1.1 101"):
        raise Failed("handshake refused: %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
    if headers.get(b"sec-websocket-accept") != accept:
        raise Failed("wrong Sec-WebSocket-Accept")
    deflate = headers.get(b"sec-websocket-extensions", b"").startswith(b"permessage-deflate")
    text = (WORDS * (size // len(WORDS) + 1))[:size]
    if deflate:
        c = zlib.compressobj(wbits=-15)
        payload = c.compress(text) + c.flush(zlib.Z_SYNC_FLUSH)
        s.sendall(client_frame(0x1, payload[:-4], rsv1=True))
    else:
        s.sendall(client_frame(0x1, text))
    buf = bytearray(rest)
    while True:
        frame = parse_frame(buf)
        if frame is None:
            recv_exact(s, len(buf) + 1, buf)
            continue
        fin, rsv1, opcode, payload, used = frame
        del buf[:used]
        if opcode == 0x9:
            s.sendall(client_frame(0xA, payload))
            continue
        if opcode != 0x1 or not fin:
            raise Failed("expected the echo, got opcode %d" % opcode)
        if rsv1:
            payload = zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff")
        if payload != text:
            raise Failed("the echo differs from the message")
        return buf


def http_open(s):
    s.sendall(REQUEST)
    got = b""
    while not got.endswith(BODY):
        chunk = s.recv(4096)
        if not chunk:
            raise Failed("closed before its answer")
        got += chunk
    return bytearray()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--ws", action="store_true", help="WebSocket connections")
    ap.add_argument("--offer", default="", help="Sec-WebSocket-Extensions to offer")
    ap.add_argument("--size", type=int, default=16, help="the WebSocket message's size")
    ap.add_argument("--tls-ca", help="speak TLS, trusting this CA (PEM)")
    args = ap.parse_args()
    tls = None
    if args.tls_ca:
        tls = ssl.create_default_context(cafile=args.tls_ca)
        # Full handshakes: no session reuse between the connections.
        tls.options |= ssl.OP_NO_TICKET
    socks, pending = [], {}
    # In batches, so the listen backlog never overflows (an overflow costs a 1 s SYN retry).
    batch = 256
    try:
        for start in range(0, args.n, batch):
            opened = []
            for _ in range(min(batch, args.n - start)):
                s = socket.create_connection(("127.0.0.1", args.port), timeout=10)
                opened.append(s)
            if tls is not None:
                opened = [tls.wrap_socket(s, server_hostname="localhost") for s in opened]
            for s in opened:
                left = ws_open(s, args.offer, args.size) if args.ws else http_open(s)
                pending[s.fileno()] = left
                socks.append(s)
    except (Failed, OSError) as e:
        print(f"connection {len(socks)}: {e}", file=sys.stderr)
        return 1
    print(f"ready {len(socks)}", flush=True)
    # Hold until told to stop; an idle connection the server closes is a failure.
    by_fd = {s.fileno(): s for s in socks}
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    for s in socks:
        poller.register(s, select.POLLIN)
    while True:
        ready = poller.poll()
        if any(fd == sys.stdin.fileno() for fd, _ in ready):
            break
        for fd, _ in ready:
            s, buf = by_fd[fd], pending[fd]
            chunk = s.recv(65536)
            if not chunk or not args.ws:
                print("the server closed or wrote to an idle connection", file=sys.stderr)
                return 1
            buf += chunk
            # Answer the server's pings (liveness); anything else is a failure.
            while (frame := parse_frame(buf)) is not None:
                _, _, opcode, payload, used = frame
                del buf[:used]
                if opcode != 0x9:
                    print(f"the server sent opcode {opcode} to an idle connection", file=sys.stderr)
                    return 1
                s.sendall(client_frame(0xA, payload))
    for s in socks:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
