"""The project's first relay design, kept as a reference for benchmarks/proxy_compare.py only: one thread per
direction of each connection, blocking splice through a fresh pipe. harness/pod/proxy.py replaced it with one
event loop (issue 17): this one capped CRR at ~1.7k conn/s on a 2-core machine.

    python benchmarks/threaded_proxy.py LISTENER [LISTENER ...]     (same listener syntax as harness.pod.proxy)
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.pod.proxy import (  # noqa: E402
    CONNECT_TIMEOUT_S,
    F_SETPIPE_SZ,
    PIPE_BYTES,
    Listener,
    destination,
    listen_socket,
    reset,
)


def pump(src: socket.socket, dst: socket.socket) -> int:
    """Move bytes src -> dst with blocking splice until EOF; then half-close dst. Returns bytes moved."""
    read_end, write_end = os.pipe()
    moved = 0
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_end, F_SETPIPE_SZ, PIPE_BYTES)
        while n := os.splice(src.fileno(), write_end, PIPE_BYTES, flags=os.SPLICE_F_MOVE):
            while n:
                sent = os.splice(read_end, dst.fileno(), n, flags=os.SPLICE_F_MOVE)
                n -= sent
                moved += sent
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
    except OSError as e:
        if e.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.EBADF):
            raise
        for sock in (src, dst):  # RST on close, and wake the other direction's thread blocked in splice
            reset(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
    finally:
        os.close(read_end)
        os.close(write_end)
    return moved


def handle(listener: Listener, client: socket.socket) -> None:
    try:
        upstream = socket.create_connection(destination(listener, client), timeout=CONNECT_TIMEOUT_S)
        upstream.settimeout(None)
    except OSError:
        reset(client)
        client.close()
        return
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    back.start()
    pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def accept_loop(listener: Listener, lsock: socket.socket) -> None:
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=handle, args=(listener, conn), daemon=True).start()


def main() -> int:
    listeners = [Listener.parse(spec) for spec in sys.argv[1:]]
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    sockets = [listen_socket(lst) for lst in listeners]
    pairs = zip(listeners, sockets, strict=True)
    threads = [threading.Thread(target=accept_loop, args=pair, daemon=True) for pair in pairs]
    for t in threads:
        t.start()
    print(f"listening: {' '.join(map(str, listeners))}", flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
