"""The project's relay side by side with what an operator would deploy instead, on the same path, in one run.

    sudo .venv/bin/python benchmarks/proxy_compare.py [--repetitions 5] [--duration 2] [--relays a,b,...]

Path: peer --> pod IP --relay--> VM 198.19.0.2 (the servers run in the netns guest behind the pod's bridge,
as nat-proxy's and tproxy's ingress). Anchors, each relaying the three test ports (5201 iperf3, 11111
sockperf, 11112 vmnb-crr) with a static destination:

    direct          servers in the pod, no relay: the ceiling
    kernel-dnat     iptables DNAT in the pod, no userspace (what masquerade does)
    vmnb-relay      the strategies' relay (harness/pod/relay.c): one epoll loop, splice through pooled pipes
    vmnb-relay-2w   the same with --workers 2 (SO_REUSEPORT, one process per core)
    relay-python    harness/pod/proxy.py, the same design in Python (the reference)
    relay-threaded  benchmarks/threaded_proxy.py: the first design, a Python thread per direction
    socat           socat fork per connection (its default 8 KiB read/write loop)
    envoy           Envoy tcp_proxy, concurrency 2 as an Istio sidecar
    haproxy         HAProxy in TCP mode (Debian 12's haproxy, its defaults: no splice; nbthread = cores)

Tests per anchor and repetition: TCP throughput in (peer -> VM) and out (VM -> peer over the connection the
peer opened: iperf3 -R), sockperf TCP ping-pong (RR p50/p99), vmnb-crr (connect-request-response rate and
p50/p99). CPU: the relay's own CPU seconds (every process of its group, reaped children included: socat
forks one per connection) and the machine's kernel time (system + irq + softirq: forwarding, NAT, splice),
per GB moved (throughput) and per 10k connections (CRR). Repetitions are interleaved in a shuffled order per
round; medians with bootstrap 95% CIs and n. Samples and versions go to results/proxy-compare-<run id>/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.analysis.provenance import host_facts, tool_versions  # noqa: E402
from harness.analysis.stats import median_interval  # noqa: E402
from harness.guests.attachment import Ends  # noqa: E402
from harness.guests.choice import driver_for  # noqa: E402
from harness.guests.netns import NetnsGuest  # noqa: E402
from harness.guests.spec import GuestSpec  # noqa: E402
from harness.kinds.request_response import ConnectRequestResponse, RequestResponse  # noqa: E402
from harness.kinds.throughput import measure_tcp_throughput  # noqa: E402
from harness.lab.bed import TestBed  # noqa: E402
from harness.lab.procfs import group_members  # noqa: E402
from harness.lab.rules import apply_iptables  # noqa: E402
from harness.lab.session import LabSession  # noqa: E402
from harness.lab.waiting import wait_listening  # noqa: E402
from harness.pod.envoy import start_envoy, tcp_relay_config  # noqa: E402
from harness.pod.proxy_process import RelayImplementation, start_proxy  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
IPERF, RR, CRR = 5201, 11111, 11112
PORTS = [IPERF, RR, CRR]
RELAYS = [
    "direct",
    "kernel-dnat",
    "vmnb-relay",
    "vmnb-relay-2w",
    "relay-python",
    "relay-threaded",
    "socat",
    "envoy",
    "haproxy",
]
CLK_TCK = os.sysconf("SC_CLK_TCK")

HAPROXY_CONFIG = """global
    maxconn 8000
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
{sections}"""
HAPROXY_SECTION = """frontend in{port}
    bind {listen}:{port}
    default_backend vm{port}
backend vm{port}
    server vm {to}:{port}
"""


def set_up(relay: str, bed: TestBed) -> tuple[Ends, list[int]]:
    """Build the relay; return the path's ends for ingress and the PIDs whose CPU is the relay's."""
    pod_ip = bed.plan.pod_ip
    driver = driver_for(GuestSpec(), relay)
    peer = NetnsGuest.of(bed, bed.peer)
    if relay == "direct":
        return Ends(driver.pod(bed), peer, pod_ip), []
    vm = driver.routed(bed, bridge="virbr0", vm_cidr="198.19.0.0/24")
    vm_ip = vm.vm_ip
    before = {p.pid for p in bed.processes}
    static = [f"static:{pod_ip}:{port}={vm_ip}:{port}" for port in PORTS]
    if relay == "kernel-dnat":
        apply_iptables(
            bed.pod,
            "nat",
            [f"-A PREROUTING -i eth0 -p tcp --dport {port} -j DNAT --to-destination {vm_ip}" for port in PORTS],
        )
    elif relay == "vmnb-relay":
        start_proxy(bed, static)
    elif relay == "vmnb-relay-2w":
        start_proxy(bed, static, workers=2)
    elif relay == "relay-python":
        start_proxy(bed, static, implementation=RelayImplementation.PYTHON)
    elif relay == "relay-threaded":
        proc = bed.start_process(
            [sys.executable, str(BENCH_DIR / "threaded_proxy.py"), *static], name="threaded", ns=bed.pod
        )
        for port in PORTS:
            wait_listening(proc, port)
    elif relay == "socat":
        for port in PORTS:
            argv = ["socat", f"TCP-LISTEN:{port},bind={pod_ip},fork,reuseaddr,backlog=4096", f"TCP:{vm_ip}:{port}"]
            wait_listening(bed.start_process(argv, name=f"socat-{port}", ns=bed.pod), port)
    elif relay == "envoy":
        config = tcp_relay_config(pod_ip, {port: (vm_ip, port) for port in PORTS})
        start_envoy(bed, config, ns=bed.pod, ports=PORTS)
    elif relay == "haproxy":
        config = bed.runtime_dir() / "haproxy.cfg"
        sections = "".join(HAPROXY_SECTION.format(listen=pod_ip, port=port, to=vm_ip) for port in PORTS)
        config.write_text(HAPROXY_CONFIG.format(sections=sections))
        proc = bed.start_process(["haproxy", "-db", "-f", str(config)], name="haproxy", ns=bed.pod)
        for port in PORTS:
            wait_listening(proc, port)
    else:
        raise ValueError(f"--relays: unknown relay {relay!r}; allowed: {', '.join(RELAYS)}")
    return Ends(vm.guest, peer, pod_ip), [p.pid for p in bed.processes if p.pid not in before]


def relay_ticks(roots: list[int]) -> int:
    """CPU ticks of the relay: each root's own and reaped children's time, plus its live group members'."""
    total = 0
    for root in roots:
        for pid in {root, *group_members(root)}:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if pid == root:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime: reaped children (socat's forks)
    return total


def kernel_ticks() -> int:
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(cpu[3]) + int(cpu[6]) + int(cpu[7])  # system, irq, softirq


def measure(relay: str, bed: TestBed, args: argparse.Namespace, label: str) -> list[dict]:
    ends, pids = set_up(relay, bed)
    rows = []

    def timed(test: str, run):
        relay_before, kernel_before = relay_ticks(pids), kernel_ticks()
        result = run()
        relay_s = (relay_ticks(pids) - relay_before) / CLK_TCK
        kernel_s = (kernel_ticks() - kernel_before) / CLK_TCK
        return result, relay_s, kernel_s

    for test, reverse in (("in", False), ("out", True)):
        s, relay_s, kernel_s = timed(
            test,
            lambda r=reverse, t=test: measure_tcp_throughput(
                ends, port=IPERF, duration_s=args.duration, omit_s=1, streams=1, label=f"{label}-{t}", reverse=r
            ),
        )
        ok = s.status == "ok" and s.bytes
        rows += [
            {"test": test, "metric": "gbit_s", "value": s.bits_per_second / 1e9 if ok else None, "reason": s.reason},
            {"test": test, "metric": "cpu_s_per_gb", "value": (relay_s + kernel_s) / (s.bytes / 1e9) if ok else None},
            {"test": test, "metric": "relay_cpu_s_per_gb", "value": relay_s / (s.bytes / 1e9) if ok else None},
        ]
    rr, _, _ = timed("rr", lambda: RequestResponse(kind="rr", duration_s=args.duration).measure(ends, f"{label}-rr"))
    rows += [
        {"test": "rr", "metric": m.metric, "value": m.value, "reason": rr.reason}
        for m in rr.metrics
        if m.metric in ("rtt_p50", "rtt_p99")
    ]
    crr_kind = ConnectRequestResponse(kind="crr", duration_s=args.duration)
    crr, relay_s, kernel_s = timed("crr", lambda: crr_kind.measure(ends, f"{label}-crr"))
    rows += [{"test": "crr", "metric": m.metric, "value": m.value, "reason": crr.reason} for m in crr.metrics]
    if crr.requests:
        rows += [
            {"test": "crr", "metric": "cpu_s_per_10k_conn", "value": (relay_s + kernel_s) / crr.requests * 1e4},
            {"test": "crr", "metric": "relay_cpu_s_per_10k_conn", "value": relay_s / crr.requests * 1e4},
        ]
    return [{"relay": relay, **row} for row in rows]


COLUMNS = [
    ("in", "gbit_s", "in Gbit/s"),
    ("out", "gbit_s", "out Gbit/s"),
    ("crr", "crr_rate", "CRR conn/s"),
    ("crr", "crr_latency_p50", "CRR p50 us"),
    ("crr", "crr_latency_p99", "CRR p99 us"),
    ("rr", "rtt_p50", "RR p50 us"),
    ("rr", "rtt_p99", "RR p99 us"),
    ("in", "cpu_s_per_gb", "CPU s/GB in"),
    ("in", "relay_cpu_s_per_gb", "relay CPU s/GB in"),
    ("crr", "cpu_s_per_10k_conn", "CPU s/10k conn"),
    ("crr", "relay_cpu_s_per_10k_conn", "relay CPU s/10k conn"),
]


def short(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def print_tables(df: pd.DataFrame, relays: list[str], console: Console, title: str) -> None:
    for part in (COLUMNS[:7], COLUMNS[7:]):
        table = Table(title=title)
        table.add_column("relay")
        table.add_column("n", justify="right")
        for _, _, heading in part:
            table.add_column(heading, justify="right")
        for relay in relays:
            cells = []
            for test, metric, _ in part:
                values = df[(df.relay == relay) & (df.test == test) & (df.metric == metric)]["value"].dropna()
                ci = median_interval(values)  # exact 95% order-statistic interval from n >= 6, else the range
                if ci.n == 0:
                    cells.append("-")
                elif ci.has_interval:
                    cells.append(f"{short(ci.estimate)} [{short(ci.low)}-{short(ci.high)}]")
                else:
                    cells.append(f"{short(ci.estimate)} (range {short(values.min())}-{short(values.max())})")
            n = df[(df.relay == relay) & (df.metric == "gbit_s")]["repetition"].nunique()
            table.add_row(relay, str(n), *cells)
        console.print(table)


def bounds(df: pd.DataFrame, console: Console) -> None:
    """Issue 17's bounds for the relay: >= Envoy throughput, >= 2x Envoy CRR, >= HAProxy CRR."""

    def median(relay: str, test: str, metric: str) -> float:
        values = df[(df.relay == relay) & (df.test == test) & (df.metric == metric)]["value"].dropna()
        return median_interval(values).estimate

    for relay in ("vmnb-relay", "vmnb-relay-2w", "relay-python"):
        checks = [
            ("in Gbit/s >= envoy", median(relay, "in", "gbit_s"), median("envoy", "in", "gbit_s"), 1.0),
            ("out Gbit/s >= envoy", median(relay, "out", "gbit_s"), median("envoy", "out", "gbit_s"), 1.0),
            ("CRR >= 2x envoy", median(relay, "crr", "crr_rate"), median("envoy", "crr", "crr_rate"), 2.0),
            ("CRR >= haproxy", median(relay, "crr", "crr_rate"), median("haproxy", "crr", "crr_rate"), 1.0),
        ]
        for name, mine, theirs, factor in checks:
            if mine != mine or theirs != theirs:
                continue
            verdict = "met" if mine >= factor * theirs else "NOT met"
            console.print(f"{relay}: {name}: {mine:.3g} vs {theirs:.3g} (ratio {mine / theirs:.2f}): {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--relays", default=",".join(RELAYS), help=f"comma-separated subset of {','.join(RELAYS)}")
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    relays = [r for r in args.relays.split(",") if r]
    unknown = [r for r in relays if r not in RELAYS]
    if unknown:
        parser.error(f"--relays: unknown {', '.join(unknown)}; allowed: {', '.join(RELAYS)}")
    console = Console(width=200)
    rows = []
    with LabSession() as lab:
        for rep in range(1, args.repetitions + 1):
            order = relays[:]
            random.shuffle(order)
            for relay in order:
                with lab.bed() as bed:
                    got = measure(relay, bed, args, f"{lab.run_id}-{relay}-r{rep}")
                rows += [{**row, "repetition": rep} for row in got]
                crr = next((r["value"] for r in got if r["metric"] == "crr_rate"), None)
                tput = next((r["value"] for r in got if r["metric"] == "gbit_s"), None)
                console.print(f"rep {rep} {relay:<15} in {tput} Gbit/s, CRR {crr} conn/s")
    df = pd.DataFrame(rows)
    out = args.out / f"proxy-compare-{lab.run_id}"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "samples.csv", index=False)
    meta = {
        "run_id": lab.run_id,
        "repetitions": args.repetitions,
        "duration_s": args.duration,
        "versions": tool_versions(),
        "host": host_facts(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1, default=str))
    print_tables(df, relays, console, f"Relays on one path, medians [95% CI] n, {args.duration:g} s tests")
    bounds(df, console)
    console.print(f"versions: {meta['versions']}")
    console.print(f"samples: {out / 'samples.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
