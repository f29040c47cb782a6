"""Critical sections a signal must not cut in half. Making a network namespace forks a pyroute2 helper that
creates it while the parent waits: a KeyboardInterrupt raised in the parent meanwhile leaves a namespace nobody
owns (seen in tests/test_faults.py: the `pod` of a bed being built when SIGINT arrived). The run's signal
handler asks `should_defer` first; inside a critical section the signal is recorded and re-delivered to this
process as soon as the section ends, so the unwinding starts from a consistent state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_deferred: int | None = None


@contextmanager
def critical_section() -> Iterator[None]:
    global _depth, _deferred
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _deferred is not None:
            signum, _deferred = _deferred, None
            os.kill(os.getpid(), signum)  # the handler runs again, now outside the section, and raises


def should_defer(signum: int) -> bool:
    """For a signal handler: True (and the signal kept for later) while a critical section runs."""
    global _deferred
    if _depth > 0:
        _deferred = signum
        return True
    return False
