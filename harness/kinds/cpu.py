"""CPU cost of a test: CPU seconds of every process the strategy and sidecar run (by PID, from /proc/PID/stat,
all threads), the machine's kernel time (system + irq + softirq from /proc/stat, where forwarding, NAT and
vhost work land), and the bytes those processes moved through read/write syscalls (/proc/PID/io).

Caveat on the byte counters: rchar/wchar count read()/write()-family syscalls (read, readv, write, writev,
sendfile); recv/send-family calls and splice are not counted. So a splice relay shows ~0 (true: no copy
into userspace) and a process using recvmsg/sendmsg is undercounted."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuSnapshot:
    process_ticks: dict[int, int]
    process_bytes: dict[int, int]
    kernel_ticks: int


def _proc_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


def _proc_io_bytes(pid: int) -> int | None:
    try:
        io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    except OSError:
        return None
    return int(io["rchar"]) + int(io["wchar"])


def _kernel_ticks() -> int:
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()
    # cpu user nice system idle iowait irq softirq steal ...
    return int(cpu[3]) + int(cpu[6]) + int(cpu[7])


def snapshot(pids: list[int]) -> CpuSnapshot:
    ticks = {pid: t for pid in pids if (t := _proc_ticks(pid)) is not None}
    io = {pid: b for pid in pids if (b := _proc_io_bytes(pid)) is not None}
    return CpuSnapshot(ticks, io, _kernel_ticks())


@dataclass(frozen=True)
class CpuCost:
    process_s: float
    kernel_s: float
    userspace_bytes: int

    @property
    def total_s(self) -> float:
        return self.process_s + self.kernel_s


def cost(before: CpuSnapshot, after: CpuSnapshot) -> CpuCost:
    def delta(b: dict[int, int], a: dict[int, int]) -> int:
        return sum(a[pid] - b[pid] for pid in b if pid in a)

    process = delta(before.process_ticks, after.process_ticks)
    moved = delta(before.process_bytes, after.process_bytes)
    return CpuCost(process / CLK_TCK, (after.kernel_ticks - before.kernel_ticks) / CLK_TCK, moved)


def resident_mib(pid: int) -> float | None:
    """A process's resident memory (VmRSS), MiB; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
    return kib / 1024 if kib is not None else None


def own_cpu_seconds() -> float:
    """CPU seconds this harness process has used (all its threads): what the harness itself costs while a
    tool runs, recorded per test as `harness_cpu` so its footprint on the 2 shared cores is visible."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
