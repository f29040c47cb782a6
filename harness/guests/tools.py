"""Tools the harness builds for every guest, statically linked so the same binary runs on the host, in every pod
namespace and inside the QEMU guest: vmnb-crr (guest_files/crr.c), the connect-request-response and fixed
round-trip tool, and vmnb-http (guest_files/http.c), the HTTP/1.1 server and open-loop client."""

from __future__ import annotations

from pathlib import Path

from harness.lab.paths import CACHE_DIR
from harness.tools.build import ToolBuildError, compile_c

GUEST_FILES = Path(__file__).parent / "guest_files"
GUEST_C_TOOLS = {"vmnb-crr": ("crr.c", "the CRR tool"), "vmnb-http": ("http.c", "the HTTP load tool")}
"""Tool name -> (source in guest_files, what it is for)."""
__all__ = ["GUEST_C_TOOLS", "GUEST_FILES", "ToolBuildError", "compile_guest_tool", "compile_guest_tools"]


def compile_guest_tool(name: str, cache: Path = CACHE_DIR) -> Path:
    source, what = GUEST_C_TOOLS[name]
    return compile_c(GUEST_FILES / source, name, what=what, cache=cache)


def compile_guest_tools(cache: Path = CACHE_DIR) -> dict[str, Path]:
    return {name: compile_guest_tool(name, cache) for name in GUEST_C_TOOLS}
