"""Provenance of a run: the host, the kernel, every tool's version, the project's git sha. Recorded in
run.json so every row says which versions produced it."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness.lab.paths import REPO_ROOT
from harness.lab.processes import run_detached
from harness.lab.state import load_states
from harness.pod.envoy import EnvoyMissing, envoy_binary
from harness.tools.inventory import versioned

TOOLS = versioned()
"""The tools whose version every run records (harness/tools/inventory.py)."""


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    tools = dict(TOOLS)
    try:
        tools["envoy"] = [str(envoy_binary()), "--version"]
    except EnvoyMissing:
        versions["envoy"] = None
    for tool, argv in tools.items():
        versions[tool] = tool_version(argv)
    return versions


def tool_version(argv: list[str], timeout: float = 5.0) -> str | None:
    """The first line with a digit that `argv` (a --version call) prints, or None when the tool is missing,
    fails, hangs (its whole process group is ended) or prints no version."""
    if shutil.which(argv[0]) is None:
        return None
    done = run_detached(argv, timeout)
    if done.timed_out or done.returncode != 0:
        return None
    lines = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    return next((ln[:200] for ln in lines if any(c.isdigit() for c in ln)), None)


def host_facts() -> dict[str, Any]:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "kernel": platform.release(),
        "kernel_version": platform.version(),
        "machine": platform.machine(),
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def git_sha(repo: Path = REPO_ROOT) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def machine_load(run_id: str) -> dict[str, Any]:
    """How busy the machine is: the 1-minute load average against the cores, and which other runs (ledgers in
    the state folder: the harness, the claims helper, hand-run benchmarks) are live. Recorded at a run's start
    and end so a number taken on a busy host can be recognised."""
    try:
        loadavg = float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        loadavg = None
    others = sorted({s["run_id"] for s in load_states() if not str(s["run_id"]).startswith(run_id)})
    return {"loadavg_1m": loadavg, "cpus": os.cpu_count(), "other_runs": others}


def busy_host_warnings(meta: dict[str, Any]) -> list[str]:
    """One sentence per sign that the run shared the machine: other live runs, or load above the cores."""
    warnings = []
    for when in ("start", "end"):
        load = (meta.get("load") or {}).get(when) or {}
        if load.get("other_runs"):
            warnings.append(
                f"other runs were live at the {when}: {', '.join(load['other_runs'])}; their work "
                "competed for the same cores, so timings may be low"
            )
        if load.get("loadavg_1m") is not None and load.get("cpus") and load["loadavg_1m"] > load["cpus"]:
            warnings.append(f"load average {load['loadavg_1m']:.2f} exceeded the {load['cpus']} cores at the {when}")
    return warnings


_BINARY_VERSIONS: dict[str, str] = {}


def binary_version(program: str) -> str:
    """The version of the program a process ran (`argv[0]`): its Debian package's version when the file belongs
    to one (Debian 12's pasta prints "unknown version"), else its own `--version`, else its path (a build of
    the harness's own, cached under a hash of its source). Cached per path: a run asks once per binary."""
    path = shutil.which(program) or program
    if path in _BINARY_VERSIONS:
        return _BINARY_VERSIONS[path]
    marker = Path(path).parent / "VERSION"  # a build of ours says what it is (harness/tools/debian.py)
    version = marker.read_text().strip() if marker.is_file() else ""
    owner = run_detached(["dpkg-query", "-S", os.path.realpath(path)], 5.0) if not version else None
    if owner is None:
        _BINARY_VERSIONS[path] = version
        return version
    if owner.returncode == 0 and not owner.timed_out and ":" in owner.stdout:
        package = owner.stdout.split(":", 1)[0].strip()
        done = run_detached(["dpkg-query", "-W", "-f=${Version}", package], 5.0)
        version = f"{package} {done.stdout.strip()}" if done.returncode == 0 else ""
    if not version:
        said = tool_version([path, "--version"])
        version = said if said and "unknown version" not in said else path
    _BINARY_VERSIONS[path] = version
    return version


def cell_tools(processes: list[list[str]], run_tools: dict[str, str | None]) -> dict[str, str]:
    """What one cell ran with: every long-lived process of its bed (by program) and the measurement tools."""
    tools = {name: run_tools.get(name) or "" for name in ("iperf3", "sockperf")}
    for argv in processes:
        # The program itself, past a wrapper that sets its user or capabilities (setpriv ... envoy).
        program = next((a for a in argv if not a.startswith("-") and os.path.basename(a) not in WRAPPERS), "")
        if program:
            tools[os.path.basename(program)] = binary_version(program)
    return tools


WRAPPERS = {"setpriv", "nsenter", "env", "capsh"}
