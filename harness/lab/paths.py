"""Where the project and its runs keep things on this machine, written once."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout: scenarios/, benchmarks/ and results/ live here."""

STATE_DIR = Path(os.environ.get("VMNB_STATE_DIR", "/run/vmnetbench"))
"""Run ledgers (`<run id>.json`) and each run's own folder (`<run id>/`: sockets, scratch files); /run is
forgotten at reboot, as the namespaces and processes it describes are."""

CACHE_DIR = Path(os.environ.get("VMNB_CACHE", "/var/cache/vmnetbench"))
"""Built artefacts reused across runs: the QEMU guest's image, vmnb-crr."""

# Folders other software owns: a results folder inside one of them breaks its owner (a folder among the
# network namespaces makes every `ip netns` user fail) or is destroyed by it (`clean` removes a run's state
# folder). The harness's own state folder is first; /var/run resolves to /run.
_NOT_FOR_RESULTS = {
    "/proc": "the kernel's process view",
    "/sys": "the kernel's device view",
    "/dev": "device nodes",
    "/run/netns": "the network namespaces (`ip netns`)",
    "/run/docker": "a container engine's state",
    "/var/lib/docker": "a container engine's state",
    "/run/containerd": "a container engine's state",
    "/var/lib/containerd": "a container engine's state",
    "/run/containers": "a container engine's state",
    "/var/lib/containers": "a container engine's state",
    "/run/user": "user sessions' runtime folders",
}
_SYSTEM_FOLDERS = {
    "/",
    "/run",
    "/var",
    "/var/lib",
    "/var/run",
    "/etc",
    "/usr",
    "/boot",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/tmp",
    "/root",
    "/home",
}


def foreign_place(path: Path) -> str | None:
    """Why the harness must not write at `path` (a file or folder, existing or not): it is inside a folder the
    harness or other software keeps state in, or a kernel or device view. None when it may."""
    resolved = Path(os.path.realpath(path))
    owners = {Path(os.path.realpath(STATE_DIR)): "the harness's own state (run ledgers, sockets)"}
    owners |= {Path(p): why for p, why in _NOT_FOR_RESULTS.items()}
    for folder, why in owners.items():
        if resolved == folder or folder in resolved.parents:
            return f"{path} is inside {folder}, which holds {why}; give a place of your own"
    return None


def results_root_problem(root: Path) -> str | None:
    """Why `root` must not receive results folders, or None when it may: never inside a folder the harness or
    other software keeps state in (each named), never a system folder itself (a run folder would sit among the
    system's own). A folder made for results, existing or not, passes."""
    resolved = Path(os.path.realpath(root))
    foreign = foreign_place(root)
    if foreign:
        return foreign.replace("a place of your own", "a folder made for results")
    if str(resolved) in _SYSTEM_FOLDERS:
        return f"{root} is the system folder {resolved}; give a folder made for results (e.g. {resolved}/results)"
    return None
