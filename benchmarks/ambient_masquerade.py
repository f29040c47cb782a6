"""Where does the VM's SYN/ACK go? KubeVirt's masquerade binding under Istio ambient (kubevirt/kubevirt issue
18871: inbound connections hang, conntrack in SYN_RECV), reproduced with evidence (issue 19).

One bed per case: the ambient rules and the node proxy (harness.pod.ambient), the masquerade binding with
KubeVirt's Istio branch (`istio: true`, what `sidecar.istio.io/inject: "true"` on the VMI selects, as in the
report) or without it, on the netns guest. A TCP server listens in the VM; the peer connects to the pod's
address. Before and after, this reads: a counting nft table in the pod (SYN/ACKs from the VM's bridge that are
forwarded out of eth0, and those delivered locally, i.e. back to the node proxy's socket), conntrack in the
pod, the sockets in the VM (`ss`), the node proxy's upstream counters and the peer's TCP counters. Run as root
from the repository root:

    .venv/bin/python benchmarks/ambient_masquerade.py [--istio both|on|off] [--peer-drops-invalid]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time

from harness.guests.choice import driver_for
from harness.guests.spec import GuestSpec
from harness.lab.session import LabSession
from harness.pod.mesh import SidecarKind, install_sidecar
from harness.pod.sidecars import UnixHTTPConnection
from strategies.base import Services
from strategies.masquerade import BRIDGE, Masquerade, MasqueradeOptions

PORT = 5201
# Counts SYN/ACKs that arrive from the VM's bridge: forwarded (routed out of the pod) or input (delivered locally).
TRACE_TABLE = f"""table inet vmnb_trace {{
  chain trace_forward {{
    type filter hook forward priority -1; policy accept;
    iifname "{BRIDGE}" tcp flags & (syn | ack) == syn | ack counter comment "synack-forwarded"
  }}
  chain trace_input {{
    type filter hook input priority -1; policy accept;
    iifname "{BRIDGE}" tcp flags & (syn | ack) == syn | ack counter comment "synack-to-local-socket"
  }}
  chain trace_post {{
    type filter hook postrouting priority -1; policy accept;
    oifname "eth0" tcp sport {PORT} tcp flags & (syn | ack) == syn | ack counter comment "synack-out-eth0"
  }}
}}
"""
PEER_DROP_INVALID = """table inet vmnb_peer {
  chain input { type filter hook input priority 0; policy accept; ct state invalid counter drop; }
}
"""
PEER_COUNTERS = ("TcpOutRsts", "TcpInSegs", "TcpAttemptFails", "TcpExtTCPAbortOnData")


def nft_counters(ns: str) -> dict[str, int]:
    text = run(ns, ["nft", "list", "table", "inet", "vmnb_trace"])
    return {m[1]: int(m[0]) for m in re.findall(r"packets (\d+) bytes \d+ comment \"([^\"]+)\"", text)}


def run(ns: str, argv: list[str]) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True).stdout


def proxy_stats(admin) -> dict[str, int]:
    conn = UnixHTTPConnection(admin, timeout=5)
    conn.request("GET", "/stats?format=json&filter=InboundPassthroughCluster")
    stats = json.loads(conn.getresponse().read())["stats"]
    conn.close()
    wanted = ("upstream_cx_total", "upstream_cx_connect_fail", "upstream_cx_connect_timeout", "upstream_cx_destroy")
    named = {s["name"].rsplit(".", 1)[1]: s.get("value", 0) for s in stats if "name" in s}
    return {k: v for k, v in named.items() if k in wanted}


def case(lab: LabSession, istio: bool, peer_drops_invalid: bool) -> None:
    print(
        f"\n== masquerade (istio branch {'on' if istio else 'off'}) under ambient, ingress to the VM on {PORT}"
        + (", the peer dropping packets of no connection it knows" if peer_drops_invalid else "")
    )
    with lab.bed() as bed:
        sidecar = install_sidecar(bed, SidecarKind("ambient"), vm_interfaces=[])
        strategy = Masquerade(
            MasqueradeOptions(istio=istio), services=Services(tcp_ports=(PORT,)), sidecar=SidecarKind("ambient")
        )
        vm = strategy.setup(bed, driver_for(GuestSpec(), f"ambient-masq-{istio}"))
        bed.pod.run(["nft", "-f", "-"], input=TRACE_TABLE)
        bed.on_teardown("trace table", lambda: bed.pod.run(["nft", "delete", "table", "inet", "vmnb_trace"]))
        if peer_drops_invalid:  # as a client's node or CNI that drops what conntrack calls invalid, not RSTs it
            bed.peer.run(["nft", "-f", "-"], input=PEER_DROP_INVALID)
        server = vm.service.start(["iperf3", "-s", "-p", str(PORT)], name="vm-server")
        vm.service.wait_listening(server, PORT)
        peer_before = nstat(bed.peer.name)
        proxy_before = proxy_stats(sidecar.admin_socket)
        client = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                bed.peer.name,
                "iperf3",
                "-c",
                bed.plan.pod_ip,
                "-p",
                str(PORT),
                "-t",
                "1",
                "--connect-timeout",
                "4000",
                "-J",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.5)
        vm_ns = vm.service.name
        print("VM sockets (ss -tan):")
        print(indent(run(vm_ns, ["ss", "-tan", f"( sport = :{PORT} )"])))
        print("pod conntrack (port 5201):")
        print(indent(run(bed.pod.name, ["conntrack", "-L", "-p", "tcp", "--dport", str(PORT)])))
        out, _ = client.communicate(timeout=30)
        result = json.loads(out)
        print(f"peer's iperf3: {result.get('error') or 'ok'}")
        print(f"SYN/ACKs from {BRIDGE}: {nft_counters(bed.pod.name)}")
        after = proxy_stats(sidecar.admin_socket)
        print("node proxy InboundPassthroughCluster:", {k: after[k] - proxy_before.get(k, 0) for k in after})
        print("which NAT took the peer's SYN: ISTIO_PRERT REDIRECT (istio-cni) vs KUBEVIRT_PREINBOUND dnat (KubeVirt):")
        # iptables -L, not iptables-save: once KubeVirt's nft chains share `table ip nat`, iptables-nft-save
        # prints only "Table `nat' is incompatible, use 'nft' tool." (istio-cni reconciles with iptables-save)
        listing = run(bed.pod.name, ["iptables", "-t", "nat", "-L", "ISTIO_PRERT", "-n", "-v", "-x"])
        redirects = [" ".join(line.split()) for line in listing.splitlines() if "REDIRECT" in line]
        kubevirt = run(bed.pod.name, ["nft", "list", "chain", "ip", "nat", "KUBEVIRT_PREINBOUND"])
        dnats = [line.strip() for line in kubevirt.splitlines() if "dnat" in line]
        print(indent("\n".join(redirects + dnats)))
        peer_after = nstat(bed.peer.name)
        print("peer TCP counters:", {k: peer_after.get(k, 0) - peer_before.get(k, 0) for k in PEER_COUNTERS})


def nstat(ns: str) -> dict[str, int]:
    out = run(ns, ["nstat", "-az", "--json"])
    return {k: int(v) for k, v in json.loads(out)["kernel"].items()}


def indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines()) or "    (none)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--istio", choices=["both", "on", "off"], default="both")
    parser.add_argument(
        "--peer-drops-invalid",
        action="store_true",
        help="the peer drops packets of connections it does not know instead of resetting them",
    )
    args = parser.parse_args()
    with LabSession() as lab:
        for istio in {"both": (True, False), "on": (True,), "off": (False,)}[args.istio]:
            case(lab, istio, args.peer_drops_invalid)


if __name__ == "__main__":
    main()
