"""Tools the harness builds for every guest, statically linked so the same binary runs on the host, in every pod
namespace and inside the QEMU guest: vmnb-crr (guest_files/crr.c), the connect-request-response and fixed
round-trip tool, vmnb-rr (guest_files/rr.c), ping-pong over either family where sockperf takes IPv4 only,
vmnb-probe (guest_files/probe.c), the paced probe timing a live migration's gap,
vmnb-http (guest_files/http.c), the HTTP/1.1 server and open-loop client, and vmnb-h2
(guest_files/h2.c), the HTTP/2 and gRPC server and open-loop client on Debian's libnghttp2 (libnghttp2-dev ships
the static library)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.lab.paths import CACHE_DIR
from harness.tools.build import ToolBuildError, compile_c

GUEST_FILES = Path(__file__).parent / "guest_files"


@dataclass(frozen=True)
class CTool:
    source: str
    """The file in guest_files."""
    what: str
    """What it is for, for error messages."""
    libs: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    """Files in guest_files it includes."""
    needs: str = ""
    """Debian packages it builds with beyond gcc and libc6-dev."""


GUEST_C_TOOLS = {
    "vmnb-crr": CTool("crr.c", "the CRR tool", headers=("clock.h", "inet.h")),
    "vmnb-rr": CTool("rr.c", "the ping-pong tool for IPv6", headers=("clock.h", "echo.h", "inet.h")),
    "vmnb-probe": CTool("probe.c", "the live-migration probe", headers=("clock.h", "echo.h", "inet.h")),
    "vmnb-http": CTool("http.c", "the HTTP/1.1 load tool", headers=("openloop.h", "clock.h", "inet.h")),
    "vmnb-h2": CTool(
        "h2.c", "the HTTP/2 and gRPC load tool", ("-lnghttp2",), ("openloop.h", "clock.h", "inet.h"), "libnghttp2-dev"
    ),
}
__all__ = ["GUEST_C_TOOLS", "GUEST_FILES", "ToolBuildError", "compile_guest_tool", "compile_guest_tools"]


def compile_guest_tool(name: str, cache: Path = CACHE_DIR) -> Path:
    tool = GUEST_C_TOOLS[name]
    return compile_c(
        GUEST_FILES / tool.source,
        name,
        what=tool.what,
        libs=tool.libs,
        headers=tool.headers,
        needs=tool.needs,
        cache=cache,
    )


def compile_guest_tools(cache: Path = CACHE_DIR) -> dict[str, Path]:
    return {name: compile_guest_tool(name, cache) for name in GUEST_C_TOOLS}
