"""Where do a meshed client's SYNs go? Evidence for the verdicts that differ between a client outside the mesh and
a meshed one (issue 26): for each case one bed with the mesh mode (and the peer's own proxy when meshed), the
binding on the netns guest, and a 1-s iperf3 test in one direction. Before and after, it reads:
- a counting nft table in the pod: TCP SYNs by hook (prerouting in by eth0 / by another link, output, and
  postrouting out of eth0 / another link) and destination port (the service 5201, HBONE 15008, the proxies'
  15001 / 15006), after the binding's DNAT for postrouting;
- conntrack in the pod (the connections to 5201 and 15008, with their NAT);
- both proxies' counters (bytes in and out, in mTLS/HBONE, handshakes, CONNECT streams) and the identities seen.
Run as root from the repository root:

    .venv/bin/python benchmarks/meshed_paths.py [--guest qemu] masquerade:ambient:ingress passt:envoy-redirect:egress

A case is `strategy:mode:direction[:outside]` (meshed peer unless `:outside`). JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess

from rich.console import Console

from harness.guests.choice import driver_for
from harness.guests.facts import guest_spec
from harness.guests.spec import GuestSpec, QemuOptions
from harness.kinds.throughput import measure_tcp_throughput
from harness.lab.session import LabSession
from harness.lab.vocabulary import GuestKind
from harness.pod.mesh import Client, install_sidecar
from harness.pod.mtls import PeerKind
from strategies import strategy_class

PORT = 5201
PORTS = (PORT, 15008, 15001, 15006)


def counting_table(matches: dict[str, str]) -> str:
    """An nft table counting packets per hook and link side for each `tag: match expression`: prerouting in by
    eth0 / by another link, output, postrouting out of eth0 / another link (after the binding's DNAT)."""
    rules: dict[str, list[str]] = {"prerouting": [], "output": [], "postrouting": []}
    for tag, match in matches.items():
        rules["prerouting"] += [
            f'iifname "eth0" {match} counter comment "in-eth0-{tag}"',
            f'iifname != "eth0" {match} counter comment "in-other-{tag}"',
        ]
        rules["output"] += [f'{match} counter comment "local-out-{tag}"']
        rules["postrouting"] += [
            f'oifname "eth0" {match} counter comment "out-eth0-{tag}"',
            f'oifname != "eth0" {match} counter comment "out-other-{tag}"',
        ]
    priority = {"prerouting": -300, "output": -300, "postrouting": 400}
    chains = "\n".join(
        f"  chain {hook} {{\n    type filter hook {hook} priority {priority[hook]}; policy accept;\n"
        + "\n".join(f"    {r}" for r in rs)
        + "\n  }"
        for hook, rs in rules.items()
    )
    return f"table inet vmnb_trace {{\n{chains}\n}}\n"


def trace_table() -> str:
    """Counters of TCP SYNs (no ACK) per hook, link side and destination port."""
    return counting_table({str(port): f"tcp flags & (syn | ack) == syn tcp dport {port}" for port in PORTS})


def nft_counters(ns: str) -> dict[str, int]:
    text = subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "list", "table", "inet", "vmnb_trace"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m[1]: int(m[0]) for m in re.findall(r"packets (\d+) bytes \d+ comment \"([^\"]+)\"", text) if int(m[0])}


def conntrack(ns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "conntrack", "-L", "-p", "tcp"], capture_output=True, text=True
    ).stdout
    return [line for line in out.splitlines() if any(f"dport={p} " in line for p in (PORT, 15008))]


def case(lab: LabSession, spec: str, guest: GuestSpec) -> dict:
    strategy, mode, direction, *rest = spec.split(":")
    client = Client(PeerKind.OUTSIDE if rest == ["outside"] else PeerKind.MESHED)
    cls = strategy_class(strategy)
    with lab.bed() as bed:
        side = install_sidecar(bed, mode, vm_interfaces=list(cls.vm_interfaces), client=client)
        attachment = cls(cls.Options(), sidecar=mode).setup(bed, driver_for(guest.for_strategy(cls.has_vm), "paths"))
        bed.pod.run(["nft", "-f", "-"], input=trace_table())
        proxies = {"pod": side, **({"peer": side.peer_proxy} if side.peer_proxy else {})}
        before = {k: p.counters() for k, p in proxies.items()}
        sample = measure_tcp_throughput(
            attachment.ends(direction),
            port=PORT,
            duration_s=1,
            omit_s=0,
            streams=1,
            label=f"{bed.run_id}-{strategy}-{mode}-{direction}",
        )
        deltas = {k: {f: v for f, v in p.counters().minus(before[k]).__dict__.items() if v} for k, p in proxies.items()}
        return {
            "case": spec,
            "status": sample.status,
            "reason": sample.reason,
            "gbit_s": round((sample.bits_per_second or 0) / 1e9, 2),
            "syn_counters": nft_counters(bed.pod.name),
            "conntrack": conntrack(bed.pod.name),
            "proxies": deltas,
            "identities": {k: p.identities_seen()[0] for k, p in proxies.items()},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    parser.add_argument("--guest", choices=[str(k) for k in GuestKind], default="netns")
    args = parser.parse_args()
    guest = guest_spec(GuestKind(args.guest), QemuOptions(), Console(stderr=True))  # the accel probe, as a run
    with LabSession() as lab:
        for spec in args.cases:
            print(json.dumps(case(lab, spec, guest)), flush=True)


if __name__ == "__main__":
    main()
