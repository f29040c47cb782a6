"""Connect-request-response: every request on a new TCP connection (connect, send, read the reply, close),
the way short HTTP calls without keep-alive behave through a sidecar.

    python -m harness.crr server --port P
    python -m harness.crr client --target A --port P --duration S --bytes N     (prints JSON)

The client is closed loop and records each request's latency from before connect() to after the reply and
close(), in microseconds. It is Python: absolute numbers include ~tens of microseconds of interpreter time per
request, the same for every strategy in a run, so compare strategies against `direct` in the same run.
The server is a selectors loop (no thread or fork per connection): it answers N bytes with N bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import selectors
import socket
import sys
import time


def serve(port: int, keepalive: bool = False) -> None:
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("0.0.0.0", port))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            if sock is lsock:
                try:
                    conn, _ = lsock.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(65536)
            except (BlockingIOError, ConnectionResetError):
                data = b""
            if data:
                with contextlib.suppress(OSError):
                    sock.send(data)
                if keepalive:
                    continue
            sel.unregister(sock)
            sock.close()


def client(target: str, port: int, duration: float, size: int) -> dict:
    payload = b"x" * size
    latencies: list[float] = []
    errors = 0
    first_error = ""
    start = time.perf_counter()
    deadline = start + duration
    while time.perf_counter() < deadline:
        t0 = time.perf_counter_ns()
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect((target, port))
            s.sendall(payload)
            got = 0
            while got < size:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionResetError("connection closed before the full reply")
                got += len(chunk)
        except OSError as e:
            errors += 1
            first_error = first_error or str(e)
            if not latencies and errors >= 3:
                return {"error": first_error, "errors": errors}
            continue
        finally:
            s.close()
        latencies.append((time.perf_counter_ns() - t0) / 1000)
    seconds = time.perf_counter() - start
    return {"latency_us": latencies, "seconds": seconds, "errors": errors, "first_error": first_error}


def keepalive_round_trips(target: str, port: int, count: int, size: int) -> dict:
    """`count` request/response exchanges on ONE connection (fixed work for pytest-benchmark); the server
    closes after each reply, so this client talks to `serve --keepalive`."""
    payload = b"x" * size
    start = time.perf_counter()
    with socket.create_connection((target, port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            s.sendall(payload)
            got = 0
            while got < size:
                chunk = s.recv(65536)
                if not chunk:
                    return {"error": "connection closed before the full reply"}
                got += len(chunk)
    return {"round_trips": count, "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.crr")
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--keepalive", action="store_true", help="answer many requests per connection")
    c = sub.add_parser("client")
    c.add_argument("--target", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--duration", type=float, default=2.0)
    c.add_argument("--bytes", type=int, default=64)
    c.add_argument("--count", type=int, help="instead of CRR: this many round trips on one connection")
    args = parser.parse_args(argv)
    if args.role == "server":
        serve(args.port, args.keepalive)
        return 0
    if args.count:
        json.dump(keepalive_round_trips(args.target, args.port, args.count, args.bytes), sys.stdout)
        return 0
    json.dump(client(args.target, args.port, args.duration, args.bytes), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
