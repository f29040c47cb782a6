"""Behaviours of a tool, not of the harness, that explain a number: recorded once with their evidence and the
versions they hold for, and printed next to the numbers they explain (answer.md, and so report.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Finding:
    name: str
    applies: Callable[[pd.DataFrame], pd.Series]
    """Which rows it explains (a boolean mask over the samples)."""
    text: str
    erratic: bool = False
    """The tool makes the value vary from run to run by far more than the noise: more blocks do not narrow it,
    so a precision run stops its ratios after the pilot (harness/run/precision.py)."""

    @property
    def title(self) -> str:
        return self.text.split(". ", 1)[0]


def _pasta_egress(rows: pd.DataFrame) -> pd.Series:
    passt = rows["strategy"].str.startswith("passt") & (rows["strategy"] != "passt-vhost-user")
    return passt & (rows["guest"] == "netns") & (rows["direction"] == "egress")


def _istio_adaptation_ipv4_only(rows: pd.DataFrame) -> pd.Series:
    """IPv6 ingress that failed under an Istio sidecar, for a binding whose KubeVirt Istio adaptation is IPv4 only."""
    from harness.pod.bindings import facts
    from harness.pod.mesh import MESHES, mode_of

    if "ip_family" not in rows or "sidecar" not in rows:
        return pd.Series(False, index=rows.index)
    istio = rows["sidecar"].astype(str).map(lambda s: mode_of(s) in MESHES and MESHES[mode_of(s)].kubevirt_istio)
    ipv4_only = rows["strategy"].map(lambda b: bool((f := facts(b)) and f.kubevirt.istio_ipv4_only))
    return (
        ipv4_only
        & (rows["ip_family"] == "ipv6")
        & (rows["direction"] == "ingress")
        & istio
        & (rows["status"].astype(str) != "ok")
    )


FINDINGS = [
    Finding(
        "kubevirt-masquerade-istio-ipv4-only",
        _istio_adaptation_ipv4_only,
        text="KubeVirt's masquerade adapts to Istio's sidecar for IPv4 only. Envoy's inbound passthrough connects to "
        "the original destination, the pod's own IPv6 address, from ::6 (Istio's IPv6 inbound source, as 127.0.0.6 "
        "is IPv4's); KubeVirt's ip6 nat output chain DNATs only `ip6 daddr ::1` to the VM (its IPv4 chain matches "
        "the pod's address and 127.0.0.6: kubevirt/kubevirt pkg/network/setup/netpod/masquerade/masquerade.go adds "
        "only the IPv4 pod address to the set; the rules are checked against masquerade_test.go's expected IPv6 "
        "tables in tests/test_upstream_fixtures.py), so nothing answers at the pod's IPv6 address and the peer's "
        "connection is reset once Envoy's upstream fails. KubeVirt's user guide says Istio is supported on IPv4 "
        "only; egress is unaffected (the VM's connections are captured and leave through Envoy)",
    ),
    Finding(
        "pasta-egress-rto",
        _pasta_egress,
        erratic=True,
        text="pasta egress (netns guest -> peer) is erratic, 0.005-4 Gbit/s from one run to the next, with both passt "
        "0.0~git20230309 (Debian 12) and 0.0~git20250503.587980c (Debian 13). The loss is in pasta's tap-to-socket "
        "path (passt tcp.c, tcp_data_from_tap): when its write to the peer's socket is short (sendmsg accepts "
        "130 KB of 290 KB offered), pasta drops the rest of the batch it read from the tap and acknowledges only "
        "what was written; it keeps no out-of-order queue and sends no SACK and fewer than three duplicate ACKs, "
        "so the guest recovers only by retransmission timeouts (205, 435, 829 ms, doubling) and, in recovery, one "
        "64 KB segment per pasta ACK (benchmarks/pasta_egress.py samples it per passt build). Reproduced without "
        "the harness (benchmarks/pasta_egress_repro.sh: three "
        "namespaces, pasta, iperf3; tcpdump on the tap and strace of pasta, read by benchmarks/pasta_stalls.py). "
        "Ingress (pasta writing to the tap) is not affected. On the QEMU guest the emulated CPU caps passt below "
        "1 Gbit/s both ways, so it cannot be told there",
    ),
]


def findings_for(rows: pd.DataFrame) -> list[Finding]:
    """The findings that explain some of `rows`."""
    needed = {"strategy", "guest", "direction"}
    if rows.empty or not needed <= set(rows.columns):
        return []
    frame = rows.assign(
        strategy=rows["strategy"].astype(str), guest=rows["guest"].astype(str), direction=rows["direction"].astype(str)
    )
    return [f for f in FINDINGS if bool(f.applies(frame).any())]
