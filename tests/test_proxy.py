"""The project's splice proxy, as a real process on loopback: bytes, half-close, reset, bad destinations."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.lab.procfs import bound_ports
from harness.pod.proxy import POOLED_PIPES, Listener, original_dst
from harness.pod.proxy_process import RelayImplementation, relay_argv
from tests.conftest import free_port, wait_for


def listening(port: int) -> bool:
    """By the socket table, not by connecting: a probe connection would be relayed and counted."""
    return port in bound_ports(os.getpid())


@pytest.fixture
def upstream():
    """A server that reads until EOF, then answers with the byte count and the data upper-cased."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(512)

    def answer(conn: socket.socket) -> None:
        with conn, contextlib.suppress(ConnectionResetError):  # the SIGTERM test resets on purpose
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
            conn.sendall(f"{len(data)}:".encode() + data.upper())

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture(params=list(RelayImplementation))
def implementation(request) -> RelayImplementation:
    """Every test runs against both relays: one command line, one behaviour."""
    return request.param


def start_relay(port: int, upstream: int, *options: str, implementation: RelayImplementation) -> subprocess.Popen:
    proc = subprocess.Popen(
        [*relay_argv(implementation), *options, f"static:127.0.0.1:{port}=127.0.0.1:{upstream}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: listening(port), 10, "the proxy to listen")
    return proc


def stop_relay(proc: subprocess.Popen) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    return out


@pytest.fixture
def relay(upstream, implementation):
    port = free_port()
    proc = start_relay(port, upstream, implementation=implementation)
    yield port, proc
    if proc.poll() is None:
        assert "stopping: connections=" in stop_relay(proc)


@pytest.fixture
def proxy(relay):
    return relay[0]


def open_fds(pid: int, kind: str) -> int:
    """How many of the process's descriptors are sockets (`socket`) or pipes (`pipe`)."""
    fd_dir = f"/proc/{pid}/fd"
    return sum(os.readlink(f"{fd_dir}/{fd}").startswith(f"{kind}:") for fd in os.listdir(fd_dir))


def exchange(port: int, payload: bytes, barrier: threading.Barrier | None = None) -> bytes:
    """Send `payload`, half-close, read the reply to EOF; with `barrier`, wait for the others once connected."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as c:
        if barrier is not None:
            barrier.wait(timeout=60)
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := c.recv(1 << 16):
            reply += chunk
    return reply


def test_relays_bytes_and_half_close(proxy):
    payload = bytes(range(256)) * 20000  # 5 MB, many splice rounds
    with socket.create_connection(("127.0.0.1", proxy)) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)  # half-close: the upstream sees EOF and still answers
        reply = b""
        while chunk := c.recv(1 << 20):
            reply += chunk
    count, _, body = reply.partition(b":")
    assert int(count) == len(payload)
    assert body == payload.upper()


def test_unreachable_destination_resets_the_client(implementation):
    port, dead = free_port(), free_port()
    proc = start_relay(port, dead, implementation=implementation)
    try:
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.settimeout(10)
            with pytest.raises((ConnectionResetError, ConnectionRefusedError)):
                c.sendall(b"x")
                if c.recv(1) == b"":
                    raise ConnectionResetError("closed")
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert "cannot reach destination" in out


def test_listener_specs():
    assert Listener.parse("static:198.18.2.2:5201=198.19.0.2:5201").to == ("198.19.0.2", 5201)
    assert Listener.parse("tproxy:0.0.0.0:9401").mode == "tproxy"
    with pytest.raises(ValueError, match="mode must be"):
        Listener.parse("udp:0.0.0.0:1")
    with pytest.raises(ValueError, match="static needs"):
        Listener.parse("static:0.0.0.0:1")


def test_original_dst_without_redirect_is_an_error():
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname()):
            conn, _ = srv.accept()
            with conn, pytest.raises(OSError):
                original_dst(conn)  # no conntrack NAT entry: the kernel has no original destination


def test_200_concurrent_connections_without_loss_or_leaked_descriptors(relay, implementation):
    port, proc = relay
    exchange(port, b"warm")
    payloads = [os.urandom(1000 + 997 * i) for i in range(200)]
    barrier = threading.Barrier(200)

    with ThreadPoolExecutor(200) as pool:  # the barrier: all 200 are open through the relay at once
        replies = list(pool.map(lambda payload: exchange(port, payload, barrier), payloads))
    for payload, reply in zip(payloads, replies, strict=True):
        assert reply == f"{len(payload)}:".encode() + payload.upper()
    # Every socket is closed; empty pipes go back to the pool (kept open on purpose, up to its size); the
    # other pipe descriptors are the stdout/stderr this test reads and, in Python, the signal wake-up pipe
    # (the C relay takes signals through a signalfd).
    wait_for(lambda: open_fds(proc.pid, "socket") == 1, 10, "the relay to close all but its listening socket")
    wake_pipe = 2 if implementation is RelayImplementation.PYTHON else 0
    assert open_fds(proc.pid, "pipe") == 2 * POOLED_PIPES + 2 + wake_pipe
    out = stop_relay(proc)
    assert "connections=201 open=0" in out, out


def test_sigterm_with_connections_open_exits_cleanly(relay):
    port, proc = relay
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(5)]
    try:
        held[0].sendall(b"partial request, no EOF")
        time.sleep(0.2)
        out = stop_relay(proc)
        assert "stopping: connections=5 open=5" in out, out
        for c in held:  # every client learns at once that its connection is gone
            c.settimeout(10)
            with pytest.raises((ConnectionResetError, AssertionError)):
                assert c.recv(1) != b""
    finally:
        for c in held:
            c.close()


def test_upstream_reset_becomes_a_client_reset(implementation):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = free_port()
    proc = start_relay(port, srv.getsockname()[1], implementation=implementation)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            conn, _ = srv.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # RST
            with pytest.raises(ConnectionResetError):
                c.recv(1)
    finally:
        srv.close()
        stop_relay(proc)


def test_connect_timeout_resets_the_client(implementation):
    """A destination whose accept queue is full drops SYNs: the relay's connect never completes."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    filler = [socket.socket() for _ in range(3)]
    for f in filler:
        f.setblocking(False)
        f.connect_ex(srv.getsockname())
    time.sleep(0.2)
    port = free_port()
    proc = start_relay(port, srv.getsockname()[1], "--connect-timeout", "1", implementation=implementation)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            started = time.monotonic()
            with pytest.raises(ConnectionResetError):
                c.recv(1)
            assert time.monotonic() - started < 9
    finally:
        out = stop_relay(proc)
        for f in filler:
            f.close()
        srv.close()
    assert "connect timed out" in out, out


def test_workers_share_the_port_with_reuseport(upstream, implementation):
    port = free_port()
    proc = start_relay(port, upstream, "--workers", "2", implementation=implementation)
    try:
        for i in range(20):
            payload = f"hello {i}".encode()
            assert exchange(port, payload) == f"{len(payload)}:".encode() + payload.upper()
    finally:
        out = stop_relay(proc)
    assert "worker 0: stopping" in out and "worker 1: stopping" in out, out
