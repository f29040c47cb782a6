"""Where does a VM's DNS lookup go under ambient's DNS capture? Evidence for the dns rows that fail (issue 28):
for each case one bed with the mesh mode (DNS capture on), the binding on the netns guest, and one dns test
(dig from the VM to the resolver on the peer's side). Before and after, it reads a counting nft table in the pod:
UDP and TCP packets to and from ports 53 and 15053 (the DNS proxy) by hook and link side (prerouting in by eth0 /
by another link, output, postrouting out of eth0 / another link); conntrack's UDP flows to port 53 in the pod
(with their zones and NAT); and the DNS proxy's counters. Run as root from the repository root:

    .venv/bin/python benchmarks/dns_paths.py masquerade:ambient:udp masquerade:ambient:udp:ports

A case is `strategy:mode:transport[:ports]` (`ports`: the VMI declares its ports). JSON lines on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess

from meshed_paths import counting_table, nft_counters  # this folder's script, beside this one

from harness.guests.choice import driver_for
from harness.guests.spec import GuestSpec
from harness.kinds.dns import measure_dns
from harness.lab.session import LabSession
from harness.pod.mesh import install_sidecar
from strategies import strategy_class

PORTS = (53, 15053)


def trace_table() -> str:
    """Counters of DNS packets per hook, link side, protocol and port (as destination and as source)."""
    return counting_table(
        {
            f"{proto}-{way}-{port}": f"{proto} {way} {port}"
            for proto in ("udp", "tcp")
            for port in PORTS
            for way in ("dport", "sport")
        }
    )


def conntrack(ns: str) -> list[str]:
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "conntrack", "-L", "-p", "udp"], capture_output=True, text=True
    ).stdout
    return [re.sub(r"\s+", " ", line) for line in out.splitlines() if "port=53 " in line or "port=15053 " in line]


def case(lab: LabSession, spec: str) -> dict:
    strategy, mode, transport, *rest = spec.split(":")
    cls = strategy_class(strategy)
    options = cls.Options(declare_ports=True) if rest == ["ports"] else cls.Options()
    with lab.bed() as bed:
        side = install_sidecar(bed, mode, vm_interfaces=list(cls.vm_interfaces))
        guest = GuestSpec().for_strategy(cls.has_vm)
        attachment = cls(options, sidecar=mode).setup(bed, driver_for(guest, "dns-paths"))
        bed.pod.run(["nft", "-f", "-"], input=trace_table())
        before = side.counters()
        sample = measure_dns(
            attachment.ends("egress"),
            transport=transport,
            queries=2,
            label=f"{bed.run_id}-{strategy}-{mode}-{transport}",
        )
        after = side.counters()
        return {
            "case": spec,
            "status": sample.status,
            "reason": sample.reason,
            "resolved": sample.resolved,
            "resolver_queries": sample.resolver_queries,
            "proxy_queries": after.dns_queries - before.dns_queries,
            "counters": nft_counters(bed.pod.name),
            "conntrack": conntrack(bed.pod.name),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+")
    args = parser.parse_args()
    with LabSession() as lab:
        for spec in args.cases:
            print(json.dumps(case(lab, spec)), flush=True)


if __name__ == "__main__":
    main()
