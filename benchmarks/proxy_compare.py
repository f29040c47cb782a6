"""The project's splice proxy side by side with socat and Envoy's tcp_proxy, on the same path, in one run.

    sudo .venv/bin/python benchmarks/proxy_compare.py [--repetitions 5] [--duration 3] [--streams 1]

Path: peer --> pod IP:5201 --relay--> VM 198.19.0.2:5201 (iperf3 server in the netns guest behind the pod's
bridge, as nat-proxy's and tproxy's ingress). Relays: `direct` (server in the pod, no relay: the ceiling),
`kernel-dnat` (iptables DNAT, no userspace), `vmnetbench-proxy` (harness.pod.proxy static listener), `socat`
(fork per connection, its default 8 KiB read/write loop), `socat-128k` (socat -b 131072) and `envoy`
(tcp_proxy, concurrency 2 as an Istio sidecar). Repetitions are interleaved in a shuffled order per round;
medians with bootstrap 95% CIs.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.analysis.stats import median_ci  # noqa: E402
from harness.experiment.iperf import measure_tcp_throughput  # noqa: E402
from harness.guests.attachment import Ends  # noqa: E402
from harness.guests.drivers import driver_for  # noqa: E402
from harness.guests.netns import NetnsGuest  # noqa: E402
from harness.guests.spec import GuestSpec  # noqa: E402
from harness.lab.bed import TestBed  # noqa: E402
from harness.lab.rules import apply_iptables  # noqa: E402
from harness.lab.session import LabSession  # noqa: E402
from harness.lab.waiting import wait_listening  # noqa: E402
from harness.pod.envoy import start_envoy, tcp_relay_config  # noqa: E402
from harness.pod.proxy_process import start_proxy  # noqa: E402

PORT = 5201
RELAYS = ["direct", "kernel-dnat", "vmnetbench-proxy", "socat", "socat-128k", "envoy"]


def set_up(relay: str, bed: TestBed) -> Ends:
    """Build the relay; return the path's ends for ingress (server, the peer as client, the address it dials)."""
    pod_ip = bed.plan.pod_ip
    driver = driver_for(GuestSpec(), relay)
    peer = NetnsGuest.of(bed, bed.peer)
    if relay == "direct":
        return Ends(driver.pod(bed), peer, pod_ip)
    vm = driver.routed(bed, bridge="virbr0", vm_cidr="198.19.0.0/24")
    vm_ip = vm.vm_ip
    if relay == "kernel-dnat":
        apply_iptables(
            bed.pod, "nat", [f"-A PREROUTING -i eth0 -p tcp --dport {PORT} -j DNAT --to-destination {vm_ip}"]
        )
    elif relay == "vmnetbench-proxy":
        start_proxy(bed, [f"static:{pod_ip}:{PORT}={vm_ip}:{PORT}"])
    elif relay.startswith("socat"):
        buffer = ["-b", "131072"] if relay == "socat-128k" else []  # socat's default buffer is 8 KiB
        argv = ["socat", *buffer, f"TCP-LISTEN:{PORT},bind={pod_ip},fork,reuseaddr", f"TCP:{vm_ip}:{PORT}"]
        wait_listening(bed.start_process(argv, name="socat", ns=bed.pod), PORT)
    elif relay == "envoy":
        start_envoy(bed, tcp_relay_config(pod_ip, PORT, vm_ip, PORT), ns=bed.pod, ports=[PORT])
    return Ends(vm.guest, peer, pod_ip)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    console = Console()
    rows = []
    with LabSession() as lab:
        for rep in range(1, args.repetitions + 1):
            order = RELAYS[:]
            random.shuffle(order)
            for relay in order:
                with lab.bed() as bed:
                    s = measure_tcp_throughput(set_up(relay, bed), port=PORT, duration_s=args.duration, omit_s=1,
                                               streams=args.streams, label=f"{lab.run_id}-{relay}")  # fmt: skip
                gbps = s.bits_per_second / 1e9 if s.bits_per_second else None
                rows.append({"relay": relay, "repetition": rep, "gbit_s": gbps, "status": s.status,
                             "reason": s.reason, "cpu_server_pct": s.cpu_server_pct})  # fmt: skip
                console.print(f"rep {rep} {relay:<17} {gbps if gbps is None else round(gbps, 2)} {s.reason}")
    run_id = lab.run_id
    df = pd.DataFrame(rows)
    out = args.out / f"proxy-compare-{run_id}"
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "samples.csv", index=False)
    ceiling = median_ci(df[df.relay == "direct"]["gbit_s"]).median
    table = Table(title=f"Ingress TCP through each relay, Gbit/s, {args.streams} stream(s), n={args.repetitions}")
    for col in ("relay", "median [95% CI]", "ratio to direct", "failed"):
        table.add_column(col)
    for relay in RELAYS:
        sub = df[df.relay == relay]
        ci = median_ci(sub["gbit_s"])
        table.add_row(relay, str(ci), f"{ci.median / ceiling:.2f}", str(int((sub.status != "ok").sum())))
    console.print(table)
    console.print(f"samples: {out / 'samples.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
