"""What /proc says about a process: its start time (so a recycled PID is never mistaken for ours), whether it
is a zombie, and which ports it has bound (read from /proc/PID/net/*, i.e. in the process's own namespace)."""

from __future__ import annotations

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
