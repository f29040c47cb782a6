"""Why is egress through pasta slow on the netns guest? Evidence, not a guess (issue 15).

For each passt build, one bed with the `passt` strategy on the netns guest; iperf3 sends from the guest to the
peer (egress) for a few seconds while this samples, every 0.25 s, `ss -tin` of the guest's sending socket (in
the guest namespace: cwnd, rtt, retransmits, unacked, send-queue) and of pasta's socket toward the peer (in the
pod namespace), and the counters of the guest's interface (the tap pasta reads). Prints a compact time series
per build and the iperf3 result. Run as root from the repository root:

    .venv/bin/python benchmarks/pasta_egress.py [--seconds 4] [--mtu 65520]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time

from harness.guests.choice import driver_for
from harness.guests.spec import GuestSpec
from harness.kinds.throughput import IPERF_SERVER, parse_client_json
from harness.lab.session import LabSession
from strategies.base import Services
from strategies.passt import Passt, PasstOptions

FIELDS = (
    "cwnd",
    "rtt",
    "rto",
    "retrans",
    "unacked",
    "lost",
    "bytes_acked",
    "notsent",
    "delivery_rate",
    "rwnd_limited",
    "sndbuf_limited",
    "busy",
    "backoff",
)


def ss_line(ns: str, port: int) -> dict[str, str]:
    """The busiest socket talking to `port` in namespace `ns` (the data connection, not iperf3's control one),
    as `ss -tin` reports it: a dict of its fields."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "ss", "-tinH", f"( dport = :{port} )"], capture_output=True, text=True
    ).stdout
    records: list[str] = []
    for line in out.splitlines():
        if line[:1].isspace() and records:
            records[-1] += " " + line.strip()
        elif line.strip():
            records.append(line.strip())
    best: dict[str, str] = {}
    for text in records:
        fields = {"sendq": text.split()[2] if len(text.split()) > 2 else ""}
        for name in FIELDS:
            m = re.search(rf"\b{name}[: ]([^ ]+)", text)
            if m:
                fields[name] = m.group(1)
        sent = re.search(r"bytes_sent:(\d+)", text)
        fields["bytes_sent"] = sent.group(1) if sent else "0"
        if int(fields["bytes_sent"]) >= int(best.get("bytes_sent", "-1")):
            best = fields
    return best


def link_counters(ns: str, ifname: str) -> tuple[int, int, int]:
    data = json.loads(
        subprocess.run(["ip", "-j", "-s", "-n", ns, "link", "show", ifname], capture_output=True, text=True).stdout
    )[0]["stats64"]
    return data["tx"]["packets"], data["tx"]["dropped"], data["rx"]["packets"]


def one_build(build: str, seconds: int, mtu: int | None) -> None:
    port = 5201
    with LabSession() as lab, lab.bed() as bed:
        options = PasstOptions(build=build, mtu=mtu)
        attachment = Passt(options, services=Services(tcp_ports=(port,))).setup(bed, driver_for(GuestSpec(), "eg"))
        guest_ns, pod_ns, peer_ns = bed.namespaces["vm"].name, bed.pod.name, bed.peer.name
        server = bed.tracker.start([*IPERF_SERVER, "-p", str(port)], name="eg-server", netns=peer_ns)
        time.sleep(0.5)
        client = bed.tracker.start(
            ["iperf3", "-c", attachment.peer_address, "-p", str(port), "-t", str(seconds), "--json"],
            name="eg-client",
            netns=guest_ns,
        )
        rows = []
        t0 = time.monotonic()
        while client.alive() and time.monotonic() - t0 < seconds + 5:
            tx, dropped, rx = link_counters(guest_ns, "eth0")
            rows.append((time.monotonic() - t0, ss_line(guest_ns, port), ss_line(pod_ns, port), tx, dropped, rx))
            time.sleep(0.25)
        bed.tracker.stop(client)
        bed.tracker.stop(server)
        sample = parse_client_json(client.log_path.read_text())
        print(
            f"\n== passt build {build} ({options.model_dump()}): egress {sample.bits_per_second or 0:.3g} bit/s, "
            f"retransmits {sample.retransmits}"
        )
        print(
            "t s   | guest socket: cwnd rto backoff retrans lost unacked sendq bytes_sent | pasta socket: cwnd "
            "unacked sendq bytes_sent | guest eth0 tx pkts (dropped) / rx pkts"
        )
        for t, g, p, tx, dropped, rx in rows:
            print(
                f"{t:5.2f} | {g.get('cwnd', '-'):>5} {g.get('rto', '-'):>5} {g.get('backoff', '-'):>3} "
                f"{g.get('retrans', '-'):>8} {g.get('lost', '-'):>4} {g.get('unacked', '-'):>5} "
                f"{g.get('sendq', '-'):>8} {g.get('bytes_sent', '-'):>10} | {p.get('cwnd', '-'):>5} "
                f"{p.get('unacked', '-'):>5} {p.get('sendq', '-'):>8} {p.get('bytes_sent', '-'):>10} | "
                f"{tx} ({dropped}) / {rx}"
            )
        # Where the segments went: the guest's TCP counters (timeouts = RTO stalls) and the tap's queue.
        counters = "TcpExtTCPTimeouts TcpRetransSegs TcpExtTCPLossProbes TcpExtTCPSackRecovery TcpExtTCPRenoRecovery"
        nstat = subprocess.run(
            ["ip", "netns", "exec", guest_ns, "nstat", "-az", *counters.split()], capture_output=True, text=True
        ).stdout
        print(
            "guest nstat:",
            " ".join(
                line.split()[0] + "=" + line.split()[1]
                for line in nstat.splitlines()
                if line and line[0].isalpha() and not line.startswith("#")
            ),
        )
        qdisc = subprocess.run(
            ["tc", "-n", guest_ns, "-s", "qdisc", "show", "dev", "eth0"], capture_output=True, text=True
        ).stdout
        print("guest eth0 qdisc:", " ".join(qdisc.split()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--mtu", type=int, default=None)
    args = parser.parse_args()
    for build in ("debian-12", "debian-13"):
        one_build(build, args.seconds, args.mtu)


if __name__ == "__main__":
    main()
