"""The project's splice proxy, as a real process on loopback: bytes, half-close, reset, bad destinations."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading

import pytest

from harness.pod.proxy import Listener, original_dst
from tests.conftest import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def upstream():
    """A server that reads until EOF, then answers with the byte count and the data upper-cased."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                conn.sendall(f"{len(data)}:".encode() + data.upper())

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    srv.close()


@pytest.fixture
def proxy(upstream):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.pod.proxy", f"static:127.0.0.1:{port}=127.0.0.1:{upstream}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: listening(port), 10, "the proxy to listen")
    yield port
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    assert "stopping: connections=" in out


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


def test_unreachable_destination_resets_the_client():
    port, dead = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness.pod.proxy", f"static:127.0.0.1:{port}=127.0.0.1:{dead}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: listening(port), 10, "the proxy to listen")
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
