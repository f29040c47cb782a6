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
