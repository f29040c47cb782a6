"""Tools the harness builds for every guest: vmnb-crr (guest_files/crr.c), the connect-request-response and
fixed round-trip tool, statically linked so the same binary runs on the host and inside the QEMU guest."""

from __future__ import annotations

from pathlib import Path

from harness.lab.paths import CACHE_DIR
from harness.tools.build import ToolBuildError, compile_c

GUEST_FILES = Path(__file__).parent / "guest_files"
__all__ = ["GUEST_FILES", "ToolBuildError", "compile_crr"]


def compile_crr(cache: Path = CACHE_DIR) -> Path:
    return compile_c(GUEST_FILES / "crr.c", "vmnb-crr", what="the CRR tool", cache=cache)
