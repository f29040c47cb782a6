"""What /proc says about a process: its start time (so a recycled PID is never mistaken for ours), whether it
is a zombie, and which ports it has bound (read from /proc/PID/net/*, i.e. in the process's own namespace)."""

from __future__ import annotations

import os
from pathlib import Path

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its closing one.
    return stat.rsplit(")", 1)[1].split()


def proc_starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks), or None if the process is gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is None or fields[0] == "Z"


def bound_ports(pid: int, proto: str = "tcp") -> set[int]:
    """TCP ports in LISTEN, or UDP ports bound, by sockets in `pid`'s network namespace."""
    ports: set[int] = set()
    wanted_state = TCP_LISTEN if proto == "tcp" else UDP_UNCONNECTED
    for table in (proto, f"{proto}6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == wanted_state:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def process_group(pid: int) -> int | None:
    """The process group of `pid` (field 5 of /proc/PID/stat), or None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def live_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Processes (zombies excluded) whose process group is `pgid`."""
    return [pid for pid in live_pids() if process_group(pid) == pgid and not is_zombie(pid)]


def netns_inode(pid: int) -> int | None:
    """The inode of the network namespace `pid` lives in (what /proc/PID/ns/net points at)."""
    try:
        return Path(f"/proc/{pid}/ns/net").stat().st_ino
    except OSError:
        return None


NETNS_DIR = Path("/run/netns")


def pinned_inodes(recorded: dict[str, int]) -> set[int]:
    """The recorded namespace inodes that are still the run's, checked now: a name under /run/netns is a bind
    mount that keeps its namespace alive, so while it names the recorded inode that inode cannot belong to anyone
    else. A recorded inode whose name is gone (or names another inode) is left out: the kernel hands freed
    namespace inodes to new namespaces within seconds, possibly another run's (issue 27: `clean` of a dead run
    ended a live run's relay that way). The run's stragglers in an unnamed namespace are found by their tag."""
    pinned = set()
    for name, inode in recorded.items():
        try:
            if (NETNS_DIR / name).stat().st_ino == inode:
                pinned.add(inode)
        except OSError:
            continue
    return pinned


def pids_in_netns(inodes: set[int]) -> list[int]:
    """Processes (zombies excluded) living in any of the network namespaces with these inodes, named or not."""
    me = os.getpid()
    return [pid for pid in live_pids() if pid != me and netns_inode(pid) in inodes and not is_zombie(pid)]


def environ_has(pid: int, key: str, value: str) -> bool:
    """Whether `pid` was started with KEY=VALUE in its environment (inherited by every descendant that does not
    clear it, even one that left its process group and namespace)."""
    try:
        return f"{key}={value}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def pids_with_env(key: str, value: str) -> list[int]:
    me = os.getpid()
    return [pid for pid in live_pids() if pid != me and not is_zombie(pid) and environ_has(pid, key, value)]
