"""The userspace TCP proxy of the nat-proxy and tproxy strategies, run as its own process in the pod:

    python -m harness.pod.proxy LISTENER [LISTENER ...]

    static:ADDR:PORT=TO_ADDR:TO_PORT  accept on ADDR:PORT, connect to a fixed destination (ingress, the part
                                      the 2018 research gave to haproxy)
    original-dst:ADDR:PORT            target of an iptables REDIRECT: the destination comes from
                                      getsockopt(SO_ORIGINAL_DST), as the research's Go nat-proxy did
    tproxy:ADDR:PORT                  target of a mangle-table TPROXY rule: an IP_TRANSPARENT listener whose
                                      accepted sockets carry the original destination as their local address

Bytes move between the two sockets with splice(2) through a pipe, so the payload never enters this
process's memory (the kernel moves page references socket -> pipe -> socket). One thread per direction of
each connection pair; EOF on one side becomes shutdown(SHUT_WR) on the other (clean half-close), a reset
on one side resets the other. The outbound connection is an ordinary socket of the pod, so whatever the pod's
own traffic crosses (a sidecar's rules) the VM's traffic crosses too.

Design follows kubevirt/kubevirt.github.io _posts/2018-06-03-Research-run-VMs-with-istio-service-mesh.markdown
(getOriginalDst, the copy goroutine pair, IP_TRANSPARENT listener); the data path is splice, not io.Copy.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import fcntl
import os
import signal
import socket
import struct
import sys
import threading
from dataclasses import dataclass

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IP_TRANSPARENT = 19  # linux/in.h
F_SETPIPE_SZ = 1031  # linux/fcntl.h
PIPE_BYTES = 1 << 20  # a large pipe lets one splice move many segments
CONNECT_TIMEOUT_S = 5.0
# No SPLICE_F_MORE: on the socket side it acts like MSG_MORE and corks small writes until the 200 ms TCP
# timer (measured: 416 ms request/response through the proxy with it, tens of microseconds without).
SPLICE_FLAGS = os.SPLICE_F_MOVE


@dataclass(frozen=True)
class Listener:
    mode: str  # static | original-dst | tproxy
    address: str
    port: int
    to: tuple[str, int] | None = None

    @classmethod
    def parse(cls, spec: str) -> Listener:
        mode, _, rest = spec.partition(":")
        if mode not in ("static", "original-dst", "tproxy"):
            raise ValueError(f"listener {spec!r}: mode must be static, original-dst or tproxy")
        to = None
        if mode == "static":
            rest, _, target = rest.partition("=")
            if not target:
                raise ValueError(f"listener {spec!r}: static needs =TO_ADDR:TO_PORT")
            taddr, _, tport = target.rpartition(":")
            to = (taddr, int(tport))
        addr, _, port = rest.rpartition(":")
        return cls(mode, addr, int(port), to)

    def __str__(self) -> str:
        target = f"={self.to[0]}:{self.to[1]}" if self.to else ""
        return f"{self.mode}:{self.address}:{self.port}{target}"


def original_dst(conn: socket.socket) -> tuple[str, int]:
    raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)  # struct sockaddr_in
    port, packed = struct.unpack_from("!2xH4s", raw)
    return socket.inet_ntoa(packed), port


def destination(listener: Listener, conn: socket.socket) -> tuple[str, int]:
    if listener.mode == "static":
        assert listener.to is not None
        return listener.to
    if listener.mode == "original-dst":
        return original_dst(conn)
    return conn.getsockname()[:2]  # tproxy: the accepted socket is bound to the original destination


def pump(src: socket.socket, dst: socket.socket) -> int:
    """Move bytes src -> dst with splice until EOF; then half-close dst. Returns bytes moved."""
    read_end, write_end = os.pipe()
    moved = 0
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_end, F_SETPIPE_SZ, PIPE_BYTES)
        while True:
            n = os.splice(src.fileno(), write_end, PIPE_BYTES, flags=SPLICE_FLAGS)
            if n == 0:
                break
            while n:
                sent = os.splice(read_end, dst.fileno(), n, flags=SPLICE_FLAGS)
                n -= sent
                moved += sent
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
    except OSError as e:
        if e.errno not in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.EBADF):
            raise
        _reset(src)
        _reset(dst)
    finally:
        os.close(read_end)
        os.close(write_end)
    return moved


def _reset(sock: socket.socket) -> None:
    """Abort with RST (SO_LINGER 0), so a reset propagates across the proxy as a reset."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)


class Proxy:
    def __init__(self, listeners: list[Listener]) -> None:
        self.listeners = listeners
        self.sockets: list[socket.socket] = []
        self.connections = 0
        self.bytes = {"in": 0, "out": 0}
        self._lock = threading.Lock()

    def bind(self) -> None:
        for lst in self.listeners:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if lst.mode == "tproxy":
                s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)  # needs CAP_NET_ADMIN
            s.bind((lst.address, lst.port))
            s.listen(512)
            self.sockets.append(s)

    def serve(self) -> None:
        threads = [
            threading.Thread(target=self._accept_loop, args=(lst, s), daemon=True)
            for lst, s in zip(self.listeners, self.sockets, strict=True)
        ]
        for t in threads:
            t.start()
        print(f"listening: {' '.join(map(str, self.listeners))}", flush=True)
        for t in threads:
            t.join()

    def _accept_loop(self, listener: Listener, lsock: socket.socket) -> None:
        while True:
            conn, peer = lsock.accept()
            threading.Thread(target=self._handle, args=(listener, conn, peer), daemon=True).start()

    def _handle(self, listener: Listener, client: socket.socket, peer) -> None:
        try:
            dst = destination(listener, client)
            if listener.mode != "static" and dst == (listener.address, listener.port):
                raise OSError(f"connection to the proxy itself from {peer[0]} (not redirected)")
            upstream = socket.create_connection(dst, timeout=CONNECT_TIMEOUT_S)
            upstream.settimeout(None)
        except OSError as e:
            print(f"{listener.mode} {peer[0]}:{peer[1]}: cannot reach destination: {e}", flush=True)
            _reset(client)
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self.connections += 1
        back = threading.Thread(target=self._count, args=("in", upstream, client), daemon=True)
        back.start()
        self._count("out", client, upstream)
        back.join()
        client.close()
        upstream.close()

    def _count(self, direction: str, src: socket.socket, dst: socket.socket) -> None:
        moved = pump(src, dst)
        with self._lock:
            self.bytes[direction] += moved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.pod.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("listeners", nargs="+", help="static:A:P=TA:TP | original-dst:A:P | tproxy:A:P")
    args = parser.parse_args(argv)
    try:
        listeners = [Listener.parse(spec) for spec in args.listeners]
    except ValueError as e:
        parser.error(str(e))
    proxy = Proxy(listeners)

    def stop(signum, frame):
        print(f"stopping: connections={proxy.connections} bytes={proxy.bytes}", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    proxy.bind()
    proxy.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
