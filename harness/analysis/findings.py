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


FINDINGS = [
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
