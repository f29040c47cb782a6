"""The userspace TCP relay of the nat-proxy and tproxy strategies, run as its own process in the pod:

    python -m harness.pod.proxy [--workers N] LISTENER [LISTENER ...]

    static:ADDR:PORT=TO_ADDR:TO_PORT  accept on ADDR:PORT, connect to a fixed destination (ingress, the part
                                      the 2018 research gave to haproxy)
    original-dst:ADDR:PORT            target of an iptables REDIRECT: the destination comes from
                                      getsockopt(SO_ORIGINAL_DST), as the research's Go nat-proxy did
    tproxy:ADDR:PORT                  target of a mangle-table TPROXY rule: an IP_TRANSPARENT listener whose
                                      accepted sockets carry the original destination as their local address

One event loop per process (epoll, level-triggered, non-blocking sockets), as HAProxy and Envoy run theirs.
Bytes move between the two sockets with splice(2) through a pipe per direction, taken from a pool of empty
pipes, so the payload never enters this process's memory (the kernel moves page references socket -> pipe ->
socket). EOF on one side becomes shutdown(SHUT_WR) on the other (clean half-close); a reset or error on
one side resets the other (SO_LINGER 0); an upstream connect that has not completed after
CONNECT_TIMEOUT_S resets the client. `--workers N` runs N processes, each with its own SO_REUSEPORT
listeners, so the kernel spreads connections over cores. The outbound connection is an ordinary socket of
the pod, so whatever the pod's own traffic crosses (a sidecar's rules) the VM's traffic crosses too.

Design follows kubevirt/kubevirt.github.io _posts/2018-06-03-Research-run-VMs-with-istio-service-mesh.markdown
(getOriginalDst, the copy pair, IP_TRANSPARENT listener); the data path is splice, not io.Copy, and the
concurrency is an event loop instead of a goroutine (here: thread) per direction, which capped the
connection rate (issue 17; the thread design is kept as benchmarks/threaded_proxy.py for comparison).
Standard library only: it runs wherever the pod has a Python.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h
IP_TRANSPARENT = 19  # linux/in.h
F_SETPIPE_SZ = 1031  # linux/fcntl.h
PIPE_BYTES = 1 << 20  # a large pipe lets one splice move many segments
CONNECT_TIMEOUT_S = 5.0
POOLED_PIPES = 256  # empty pipes kept for reuse: a new connection costs no pipe2 + fcntl
ACCEPTS_PER_WAKE = 64
# No SPLICE_F_MORE: on the socket side it acts like MSG_MORE and corks small writes until the 200 ms TCP
# timer (measured: 416 ms request/response through the proxy with it, tens of microseconds without).
SPLICE_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK
GONE = (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ECONNREFUSED)
IN, OUT, ERR = select.EPOLLIN, select.EPOLLOUT, select.EPOLLERR


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
    # tproxy: the accepted socket is bound to the original destination
    dst = original_dst(conn) if listener.mode == "original-dst" else conn.getsockname()[:2]
    if dst == (listener.address, listener.port):
        raise OSError(errno.ELOOP, "connection to the relay itself (not redirected)")
    return dst


def listen_socket(listener: Listener, *, reuse_port: bool = False) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if listener.mode == "tproxy":
        s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)  # needs CAP_NET_ADMIN
    s.bind((listener.address, listener.port))
    s.listen(4096)
    return s


def reset(sock: socket.socket) -> None:
    """Make the coming close() abort with RST (SO_LINGER 0), so a reset propagates across the relay as a
    reset. No shutdown() first: that would send a FIN, and the peer would read a clean EOF."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class PipePool:
    """Empty pipes for reuse; a pipe that may still hold bytes is closed, never pooled."""

    def __init__(self) -> None:
        self.free: list[tuple[int, int]] = []

    def take(self) -> tuple[int, int]:
        if self.free:
            return self.free.pop()
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # over the user's pipe quota the kernel keeps the default size
            fcntl.fcntl(read_end, F_SETPIPE_SZ, PIPE_BYTES)
        return read_end, write_end

    def give(self, pipe: tuple[int, int], empty: bool) -> None:
        if empty and len(self.free) < POOLED_PIPES:
            self.free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])


class Flow:
    """One direction of a relayed connection: src -> pipe -> dst."""

    __slots__ = ("src", "dst", "pipe", "pending", "eof", "done", "moved")

    def __init__(self, src: socket.socket, dst: socket.socket, pipe: tuple[int, int]) -> None:
        self.src, self.dst, self.pipe = src, dst, pipe
        self.pending = 0  # bytes in the pipe, not yet written to dst
        self.eof = False
        self.done = False
        self.moved = 0

    def pump(self) -> None:
        """Move what can move now without blocking; raises OSError if either socket failed."""
        src, dst = self.src.fileno(), self.dst.fileno()
        while not self.done:
            if self.pending:
                try:
                    sent = os.splice(self.pipe[0], dst, self.pending, flags=SPLICE_FLAGS)
                except BlockingIOError:
                    return  # dst is full: wait until it is writable
                self.pending -= sent
                self.moved += sent
                continue
            if self.eof:
                with contextlib.suppress(OSError):
                    self.dst.shutdown(socket.SHUT_WR)
                self.done = True
                return
            try:
                got = os.splice(src, self.pipe[1], PIPE_BYTES, flags=SPLICE_FLAGS)
            except BlockingIOError:
                return  # nothing to read now
            if got == 0:
                self.eof = True
            self.pending = got

    @property
    def wants_read(self) -> bool:
        return not self.eof and not self.pending

    @property
    def wants_write(self) -> bool:
        return self.pending > 0


class Connection:
    __slots__ = ("client", "upstream", "out", "back", "connected", "deadline", "masks", "peer", "mode")

    def __init__(
        self, client: socket.socket, upstream: socket.socket, pool: PipePool, peer, mode: str, connect_timeout_s: float
    ) -> None:
        self.client, self.upstream = client, upstream
        self.out = Flow(client, upstream, pool.take())  # VM-bound for ingress, peer-bound for egress
        self.back = Flow(upstream, client, pool.take())
        self.connected = False
        self.deadline = time.monotonic() + connect_timeout_s
        self.masks = {client.fileno(): 0, upstream.fileno(): 0}
        self.peer, self.mode = peer, mode

    def wanted(self) -> dict[int, int]:
        """The epoll mask each socket needs in the current state."""
        if not self.connected:
            return {self.client.fileno(): 0, self.upstream.fileno(): OUT}
        c = (IN if self.out.wants_read else 0) | (OUT if self.back.wants_write else 0)
        u = (IN if self.back.wants_read else 0) | (OUT if self.out.wants_write else 0)
        return {self.client.fileno(): c, self.upstream.fileno(): u}

    @property
    def finished(self) -> bool:
        return self.out.done and self.back.done


class Relay:
    def __init__(
        self, listeners: list[Listener], *, reuse_port: bool = False, connect_timeout_s: float = CONNECT_TIMEOUT_S
    ) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.listeners = {}
        for lst in listeners:
            sock = listen_socket(lst, reuse_port=reuse_port)
            sock.setblocking(False)
            self.listeners[sock.fileno()] = (lst, sock)
        self.poller = select.epoll()
        for fd in self.listeners:
            self.poller.register(fd, IN)
        self.connections: dict[int, Connection] = {}  # by both of its sockets' fds
        self.connecting: collections.deque[Connection] = collections.deque()  # deadline order
        self.pool = PipePool()
        self.accepted = 0
        self.bytes = {"in": 0, "out": 0}
        self.stopping = False
        self.open_at_stop = 0

    def serve(self) -> None:
        wake_read, wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_write)  # a signal wakes epoll_wait; its handler only sets a flag
        self.poller.register(wake_read, IN)
        while not self.stopping:
            timeout = max(0.0, self.connecting[0].deadline - time.monotonic()) if self.connecting else -1
            for fd, events in self.poller.poll(timeout):
                if fd in self.listeners:
                    self._accept(*self.listeners[fd])
                elif fd == wake_read:
                    with contextlib.suppress(OSError):
                        os.read(wake_read, 64)
                elif (conn := self.connections.get(fd)) is not None:
                    self._service(conn, fd, events)
            self._expire_connects()
        still_open = list({id(c): c for c in self.connections.values()}.values())
        self.open_at_stop = len(still_open)
        for conn in still_open:
            self._close(conn, abort=True)

    def _accept(self, listener: Listener, lsock: socket.socket) -> None:
        for _ in range(ACCEPTS_PER_WAKE):
            try:
                client, peer = lsock.accept()
            except BlockingIOError:
                return
            except OSError as e:  # e.g. EMFILE: leave the rest in the backlog
                log(f"accept: {e}")
                return
            client.setblocking(False)
            try:
                dst = destination(listener, client)
                upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError as e:
                self._refuse(listener, client, peer, e)
                continue
            upstream.setblocking(False)
            code = upstream.connect_ex(dst)
            if code not in (0, errno.EINPROGRESS):
                upstream.close()
                self._refuse(listener, client, peer, OSError(code, os.strerror(code)))
                continue
            conn = Connection(client, upstream, self.pool, peer, listener.mode, self.connect_timeout_s)
            self.connections[client.fileno()] = self.connections[upstream.fileno()] = conn
            self.poller.register(upstream.fileno(), OUT)
            self.poller.register(client.fileno(), 0)
            conn.masks[upstream.fileno()] = OUT
            self.connecting.append(conn)

    def _refuse(self, listener: Listener, client: socket.socket, peer, error: OSError) -> None:
        log(f"{listener.mode} {peer[0]}:{peer[1]}: cannot reach destination: {error}")
        reset(client)
        client.close()

    def _service(self, conn: Connection, fd: int, events: int) -> None:
        try:
            if events & ERR or (events & select.EPOLLHUP and not conn.connected):
                sock = conn.client if fd == conn.client.fileno() else conn.upstream
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) or errno.ECONNRESET
                raise OSError(code, os.strerror(code))
            if not conn.connected:
                conn.connected = True
                self.accepted += 1
                for s in (conn.client, conn.upstream):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.out.pump()  # a request that arrived during the connect goes now, not after one more wait
                conn.back.pump()
            else:
                # Readable feeds the flow out of this socket, writable drains the flow into it.
                from_client = fd == conn.client.fileno()
                if events & (IN | select.EPOLLHUP):
                    (conn.out if from_client else conn.back).pump()
                if events & OUT:
                    (conn.back if from_client else conn.out).pump()
        except OSError as e:
            if not conn.connected:
                log(f"{conn.mode} {conn.peer[0]}:{conn.peer[1]}: cannot reach destination: {e}")
            elif e.errno not in GONE:
                log(f"{conn.mode} {conn.peer[0]}:{conn.peer[1]}: {e}")
            self._close(conn, abort=True)
            return
        if conn.finished:
            self._close(conn, abort=False)
            return
        for sock_fd, mask in conn.wanted().items():
            if conn.masks[sock_fd] != mask:
                self.poller.modify(sock_fd, mask)
                conn.masks[sock_fd] = mask

    def _expire_connects(self) -> None:
        now = time.monotonic()
        while self.connecting and (self.connecting[0].connected or self.connecting[0].deadline <= now):
            conn = self.connecting.popleft()
            if not conn.connected and conn.client.fileno() in self.connections:
                log(f"{conn.mode} {conn.peer[0]}:{conn.peer[1]}: cannot reach destination: connect timed out")
                self._close(conn, abort=True)

    def _close(self, conn: Connection, *, abort: bool) -> None:
        for flow, direction in ((conn.out, "out"), (conn.back, "in")):
            self.bytes[direction] += flow.moved
            self.pool.give(flow.pipe, empty=flow.pending == 0 and not abort)
        for sock in (conn.client, conn.upstream):
            fd = sock.fileno()
            if fd < 0:
                continue
            self.connections.pop(fd, None)
            with contextlib.suppress(OSError):
                self.poller.unregister(fd)
            if abort:
                reset(sock)
            sock.close()

    def stats(self) -> str:
        return f"connections={self.accepted} open={self.open_at_stop} bytes={self.bytes}"


def log(text: str) -> None:
    print(text, flush=True)


def run_worker(listeners: list[Listener], reuse_port: bool, name: str, connect_timeout_s: float) -> int:
    relay = Relay(listeners, reuse_port=reuse_port, connect_timeout_s=connect_timeout_s)

    def stop(signum, frame) -> None:
        relay.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"{name}listening: {' '.join(map(str, listeners))}")
    relay.serve()
    log(f"{name}stopping: {relay.stats()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.pod.proxy", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="processes with SO_REUSEPORT listeners (default 1)")
    parser.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S, metavar="SECONDS")
    parser.add_argument("listeners", nargs="+", help="static:A:P=TA:TP | original-dst:A:P | tproxy:A:P")
    args = parser.parse_args(argv)
    try:
        listeners = [Listener.parse(spec) for spec in args.listeners]
    except ValueError as e:
        parser.error(str(e))
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers == 1:
        return run_worker(listeners, False, "", args.connect_timeout)
    children = []
    for index in range(1, args.workers):
        pid = os.fork()
        if pid == 0:
            os._exit(run_worker(listeners, True, f"worker {index}: ", args.connect_timeout))
        children.append(pid)

    code = run_worker(listeners, True, "worker 0: ", args.connect_timeout)
    for pid in children:  # the parent was told to stop: so are its workers
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)
    return code


if __name__ == "__main__":
    sys.exit(main())
