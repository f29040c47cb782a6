"""Planted slowdowns: test-only faults that the gate's test and benchmarks/verify_stats.py must detect. Never set
in a real run; a run with one set is not a measurement of the binding.

- `VMNB_PLANT_SLOWDOWN=<cell>=<rate>[,...]`: a tbf rate limit on every link of that strategy's (or variant's)
  pod. A cap, not a proportional change: it binds only while the path is faster than the rate, and a tbf on a
  veth costs throughput by itself (25% here at a rate never reached).
- `VMNB_PLANT_PAUSE=<cell>=<fraction>[,...]`: a proportional slowdown. While that cell's bed lives, a thread
  stops the measurement tools running in its pod or guest namespaces (SIGSTOP to their process group) for
  `fraction` of every 20 ms and lets them run (SIGCONT) the rest. A sender that is the path's bottleneck
  (iperf3's client in the pod, the egress direction of `direct`: about 92% of a core here) then moves about
  (1 - fraction) of its bytes, whatever the machine's load, because the pause is a share of wall time
  (measured: 10% -> 0.86, 20% -> 0.77 of direct's egress). A QEMU guest's tools run inside the VM, out of reach."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading

from harness.lab.bed import TestBed

PLANT_SLOWDOWN = "VMNB_PLANT_SLOWDOWN"
PLANT_PAUSE = "VMNB_PLANT_PAUSE"
PAUSE_PERIOD_S = 0.02
TOOLS = ("iperf3", "sockperf", "vmnb-crr")


def _planted(variable: str) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in os.environ.get(variable, "").split(",") if "=" in item)


def plant(bed: TestBed, cell: str) -> None:
    """Whatever the environment plants for `cell` (a strategy or variant label) in this bed."""
    rate = _planted(PLANT_SLOWDOWN).get(cell)
    if rate:
        rate_limit(bed, rate)
    fraction = _planted(PLANT_PAUSE).get(cell)
    if fraction:
        duty_cycle(bed, float(fraction))


def rate_limit(bed: TestBed, rate: str) -> None:
    # The bucket holds 2 ms at the rate, at least 256 KB: a GSO super-packet (64 KB) larger than the bucket is
    # dropped whole, which turns a 10% limit into a 70% collapse (seen at 12 Gbit/s with a 64 KB bucket).
    megabits = re.fullmatch(r"(\d+)mbit", rate)
    burst = f"{max(256, int(megabits.group(1)) * 1000 // 8 * 2 // 1000)}kb" if megabits else "64kb"
    for link in bed.pod.ipr.get_links():
        name = link.get_attr("IFLA_IFNAME")
        if name != "lo":
            bed.pod.run(
                ["tc", "qdisc", "add", "dev", name, "root", "tbf", "rate", rate, "burst", burst, "latency", "100ms"]
            )


def duty_cycle(bed: TestBed, fraction: float) -> None:
    """Stop the pod's measurement tools for `fraction` of every period, until the bed is torn down (the thread
    ends and every stopped process is continued before the bed's processes are ended)."""
    if not 0 < fraction < 1:
        raise ValueError(f"{PLANT_PAUSE}: the fraction must be between 0 and 1 (got {fraction})")
    done = threading.Event()
    pod = bed.pod.name
    inside = {ns.name for role, ns in bed.namespaces.items() if role not in ("peer", "node")}  # pod and guest

    def tools() -> list[int]:
        return [
            p.pid
            for p in bed.tracker.live()
            if p.netns in inside and os.path.basename(p.argv[0]) in TOOLS and p.alive()
        ]

    def signal_all(pids: list[int], sig: int) -> None:
        for pid in pids:  # each tracked process leads its own process group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)

    def loop() -> None:
        while not done.is_set():
            stopped = tools()
            signal_all(stopped, signal.SIGSTOP)
            done.wait(PAUSE_PERIOD_S * fraction)
            signal_all(stopped, signal.SIGCONT)
            done.wait(PAUSE_PERIOD_S * (1 - fraction))

    thread = threading.Thread(target=loop, name=f"plant-pause-{pod}", daemon=True)

    def stop() -> None:
        done.set()
        thread.join(timeout=5)
        signal_all(tools(), signal.SIGCONT)

    bed.on_teardown("planted pause", stop)
    thread.start()
