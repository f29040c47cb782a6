"""Tools the harness builds for every guest: vmnb-crr (guest_files/crr.c), the connect-request-response and
fixed round-trip tool, statically linked so the same binary runs on the host and inside the QEMU guest."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from harness.lab.paths import CACHE_DIR

GUEST_FILES = Path(__file__).parent / "guest_files"


class ToolBuildError(RuntimeError):
    pass


def compile_crr(cache: Path = CACHE_DIR) -> Path:
    """vmnb-crr, statically linked, cached by the hash of its source."""
    source = GUEST_FILES / "crr.c"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    binary = cache / "tools" / digest / "vmnb-crr"
    if binary.exists():
        return binary
    if not shutil.which("gcc"):
        raise ToolBuildError("gcc is needed to build vmnb-crr (the CRR tool): install gcc and libc6-dev")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_suffix(".tmp")
    subprocess.run(["gcc", "-O2", "-static", "-o", str(tmp), str(source)], check=True, capture_output=True)
    tmp.rename(binary)
    return binary
