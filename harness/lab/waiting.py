"""Waiting with a deadline: one loop for every readiness no process announces on its own."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")


class TimedOut(RuntimeError):
    pass


class NotReady(RuntimeError):
    """A server that exited, or did not listen in time."""


def wait_until(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll `predicate` until it returns something true (returned) or `timeout` seconds pass (TimedOut)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimedOut(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


class Listener(Protocol):
    """A started server: a process on this host or a job in a QEMU guest."""

    name: str

    def alive(self) -> bool: ...
    def listens(self, port: int, proto: str) -> bool: ...
    def last_words(self) -> str: ...


def wait_listening(job: Listener, port: int, proto: str = "tcp", timeout: float = 10.0) -> float:
    """Block until `job` has a socket bound on `port`; returns the seconds waited. A job that exits first, or
    never listens, raises NotReady with what it said."""
    t0 = time.monotonic()

    def ready() -> bool:
        if job.listens(port, proto):
            return True
        if not job.alive():
            raise NotReady(f"{job.name} exited before listening on {proto}/{port}: {job.last_words()}")
        return False

    try:
        wait_until(ready, timeout=timeout, what=f"{job.name} listening on {proto}/{port}", interval=0.02)
    except TimedOut:
        raise NotReady(f"{job.name} did not listen on {proto}/{port} within {timeout:g} s") from None
    return time.monotonic() - t0
