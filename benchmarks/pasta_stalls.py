"""Read the capture (and optionally the strace) pasta_egress_repro.sh writes and print each egress stall with
what came before it: the guest's highest sequence sent, pasta's last ACK, whether the guest's next frame is a
retransmission, and the write to the peer's socket that pasta made just before (short or refused).

    PCAP=/tmp/eg.pcap STRACE=/tmp/pasta.strace EGRESS_ONLY=1 sh benchmarks/pasta_egress_repro.sh PASTA 3
    python3 benchmarks/pasta_stalls.py /tmp/eg.pcap [/tmp/pasta.strace]

Needs tcpdump (to read the capture); standard library only otherwise.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass

STALL_S = 0.05
SEGMENT = re.compile(r"^(\d+\.\d+) IP (\S+) > (\S+): Flags \[([^\]]*)\](?:, seq (\d+):(\d+))?(?:, ack (\d+))?")


@dataclass
class Frame:
    time: float
    from_guest: bool
    seq_end: int | None
    seq_start: int | None
    ack: int | None


def frames(pcap: str, guest: str = "198.18.0.2") -> list[Frame]:
    """The frames of the capture's busiest connection (iperf3's data stream, not its control one)."""
    text = subprocess.run(["tcpdump", "-r", pcap, "-n", "-tt", "-S"], capture_output=True, text=True).stdout
    by_port: dict[str, list[Frame]] = {}
    for line in text.splitlines():
        m = SEGMENT.match(line)
        if not m:
            continue
        from_guest = m.group(2).startswith(guest + ".")
        port = (m.group(2) if from_guest else m.group(3)).rsplit(".", 1)[1].rstrip(":")
        start, end = (int(m.group(5)), int(m.group(6))) if m.group(5) else (None, None)
        by_port.setdefault(port, []).append(
            Frame(float(m.group(1)), from_guest, end, start, int(m.group(7)) if m.group(7) else None)
        )
    return max(by_port.values(), key=len, default=[])


def short_writes(strace: str) -> list[tuple[float, str]]:
    """pasta's sendmsg calls to the peer's socket that took less than offered, as (time of day, "n/offered")."""
    found = []
    with open(strace) as log:
        lines = log.readlines()
    for line in lines:
        if "sendmsg(" not in line:
            continue
        h, m, s = line.split()[1].split(":")
        offered = sum(int(x) for x in re.findall(r"iov_len=(\d+)", line))
        result = line[line.rfind("=") + 1 :].strip().split()[0]
        if int(result) < offered:
            found.append((int(h) * 3600 + int(m) * 60 + float(s), f"{result}/{offered}"))
    return found


def main(pcap: str, strace: str | None = None) -> None:
    seen = frames(pcap)
    writes = short_writes(strace) if strace else []
    day0 = seen[0].time - seen[0].time % 86400 if seen else 0.0  # tcpdump -tt is epoch; strace -tt is time of day
    highest, last_ack, stalls = 0, 0, 0
    for before, after in zip(seen, seen[1:], strict=False):
        if before.from_guest and before.seq_end:
            highest = max(highest, before.seq_end)
        if not before.from_guest and before.ack:
            last_ack = before.ack
        gap = after.time - before.time
        if gap < STALL_S or not after.from_guest or after.seq_start is None:
            continue
        stalls += 1
        kind = "retransmission" if after.seq_start < highest else "new data"
        write = [w for t, w in writes if 0 <= before.time - day0 - t < 0.5]
        recovered = next(
            (f.time for f in seen if f.time > after.time and not f.from_guest and f.ack and f.ack >= highest), None
        )
        print(
            f"stall {gap * 1000:6.0f} ms at {before.time - seen[0].time:6.3f} s: guest sent up to {highest}, "
            f"pasta acked {last_ack} ({highest - last_ack} bytes unacked); next guest frame: {kind} at "
            f"{after.seq_start}; all of it acked {f'{recovered - before.time:.3f} s later' if recovered else 'never'}"
            + (f"; pasta's short write(s) before: {', '.join(write)}" if write else "")
        )
    print(f"{stalls} stalls of {STALL_S * 1000:.0f} ms or more in {len(seen)} frames")


if __name__ == "__main__":
    main(*sys.argv[1:3])
