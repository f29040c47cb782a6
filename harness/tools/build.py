"""Small C programs the harness builds itself with the machine's gcc (vmnb-crr, vmnb-http, vmnb-h2): statically
linked, so one binary runs on the host, in any pod namespace and inside the QEMU guest; cached under
CACHE_DIR/tools/<hash of the source and flags>/, rebuilt only when the source changes."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from harness.lab.paths import CACHE_DIR

CFLAGS = ("-O2", "-Wall", "-static")


class ToolBuildError(RuntimeError):
    pass


def gcc_argv(source: str, output: str, libs: tuple[str, ...] = ()) -> list[str]:
    """How every project C tool is built (also on a cluster: harness/cluster/scripts.py)."""
    return ["gcc", *CFLAGS, "-o", output, source, *libs]


def compile_c(
    source: Path,
    name: str,
    *,
    what: str,
    libs: tuple[str, ...] = (),
    headers: tuple[str, ...] = (),
    needs: str = "",
    cache: Path = CACHE_DIR,
) -> Path:
    """`source` built as `name`, linked with `libs` (`-lnghttp2`); `headers`: the files beside it that it
    includes (part of the cache key); `what` says in an error what the tool is for, `needs` which Debian
    packages beyond gcc and libc6-dev it builds with."""
    inputs = b"".join((source.parent / h).read_bytes() for h in headers) + source.read_bytes()
    digest = hashlib.sha256(inputs + " ".join(CFLAGS + libs).encode()).hexdigest()[:16]
    binary = cache / "tools" / digest / name
    if binary.exists():
        return binary
    if not shutil.which("gcc"):
        raise ToolBuildError(f"gcc is needed to build {name} ({what}): install gcc and libc6-dev {needs}".strip())
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f"{name}.tmp{os.getpid()}")  # two runs building at once never share a file
    done = subprocess.run(gcc_argv(str(source), str(tmp), libs), capture_output=True, text=True)
    if done.returncode != 0:
        hint = f" (it needs the Debian packages gcc, libc6-dev {needs})" if needs else ""
        raise ToolBuildError(f"building {name} from {source} failed{hint}: {done.stderr.strip()[-500:]}")
    tmp.rename(binary)
    return binary
