"""A run's results folder, `results/<run id>/`: run.json, samples.parquet + samples.csv, raw tool output.

Every file is written atomically. run.json says `"status": "running"` until the run ends, so a folder
from a crashed run never looks complete.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd

from harness.atomic import write_json, write_text, write_via_temp

COLUMNS = [
    "run_id", "runtime", "guest", "accel", "vcpus", "memory_mb", "strategy", "sidecar", "scenario", "test",
    "direction", "protocol", "repetition", "metric", "value", "unit", "retransmits", "cpu_client_pct", "cpu_server_pct",
    "status", "reason", "path", "sidecar_bytes", "sidecar_connections", "timestamp",
]  # fmt: skip

TOOLS = {
    "iperf3": ["iperf3", "--version"],
    "nft": ["nft", "--version"],
    "iptables": ["iptables", "--version"],
    "ip": ["ip", "-V"],
    "slirp4netns": ["slirp4netns", "--version"],
    "pasta": ["dpkg-query", "-W", "-f=passt ${Version}", "passt"],  # Debian's pasta prints "unknown version"
    "socat": ["socat", "-V"],
    "sockperf": ["sockperf", "--version"],
    "qemu": ["qemu-system-x86_64", "--version"],
    "gcc": ["gcc", "--version"],  # builds vmnb-crr
}


def tool_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    tools = dict(TOOLS)
    try:
        from harness.envoy import envoy_binary

        tools["envoy"] = [str(envoy_binary()), "--version"]
    except RuntimeError:
        versions["envoy"] = None
    for tool, argv in tools.items():
        if shutil.which(argv[0]) is None:
            versions[tool] = None
            continue
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
            lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
            versions[tool] = next((ln.strip() for ln in lines if any(c.isdigit() for c in ln)), "unknown")
        except (OSError, subprocess.TimeoutExpired):
            versions[tool] = "unknown"
    return versions


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


def git_sha(repo: Path) -> str | None:
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


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class RunWriter:
    def __init__(self, root: Path, run_id: str) -> None:
        self.run_id = run_id
        self.dir = root / run_id
        self.dir.mkdir(parents=True, exist_ok=False)
        self.rows: list[dict[str, Any]] = []
        self.latency: list[pd.DataFrame] = []
        self.meta: dict[str, Any] = {}

    @property
    def raw_dir(self) -> Path:
        return self.dir / "raw"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def start(self, meta: dict[str, Any]) -> None:
        self.meta = {"run_id": self.run_id, "status": "running", "started": now(), **meta}
        write_json(self.dir / "run.json", self.meta)

    def add(self, row: dict[str, Any]) -> None:
        full = {c: row.get(c) for c in COLUMNS}
        full["run_id"] = self.run_id
        full["timestamp"] = full["timestamp"] or now()
        self.rows.append(full)

    def add_latency(self, row: dict[str, Any], rtt_us) -> None:
        """Keep every latency sample, so percentiles are computed from all repetitions merged."""
        keys = ("strategy", "sidecar", "test", "direction", "protocol", "repetition")
        frame = pd.DataFrame({"rtt_us": rtt_us})
        for k in keys:
            frame[k] = row.get(k)
        frame["run_id"] = self.run_id
        self.latency.append(frame)

    def latency_frame(self) -> pd.DataFrame | None:
        return pd.concat(self.latency, ignore_index=True) if self.latency else None

    def save_raw(self, name: str, data: Any) -> None:
        write_text(self.raw_dir / name, json.dumps(data, indent=1) if not isinstance(data, str) else data)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=COLUMNS)
        for col in ("value", "cpu_client_pct", "cpu_server_pct"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        for col in ("retransmits", "repetition", "sidecar_bytes", "sidecar_connections"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        return df

    def flush(self) -> None:
        """Write the samples so far (after every cell, so an interrupted run keeps what it measured)."""
        df = self.frame()
        write_via_temp(self.dir / "samples.parquet", lambda tmp: df.to_parquet(tmp, index=False))
        write_via_temp(self.dir / "samples.csv", lambda tmp: df.to_csv(tmp, index=False))
        if self.latency:
            lat = pd.concat(self.latency, ignore_index=True)
            write_via_temp(self.dir / "latency.parquet", lambda tmp: lat.to_parquet(tmp, index=False))

    def finish(self, status: str, **extra: Any) -> None:
        self.flush()
        self.meta.update(status=status, finished=now(), samples=len(self.rows), **extra)
        write_json(self.dir / "run.json", self.meta)


def load_samples(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(run_dir / "samples.parquet")
