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


def _pasta_egress(rows: pd.DataFrame) -> pd.Series:
    passt = rows["strategy"].str.startswith("passt") & (rows["strategy"] != "passt-vhost-user")
    return passt & (rows["guest"] == "netns") & (rows["direction"] == "egress")


FINDINGS = [
    Finding(
        "pasta-egress-rto",
        _pasta_egress,
        "pasta egress (netns guest -> peer) is erratic, 0.005-4 Gbit/s from one run to the next, with both passt "
        "0.0~git20230309 (Debian 12) and 0.0~git20250503.587980c (Debian 13, worse here): segments the guest sends "
        "are lost inside pasta (the guest's qdisc and tap count no drop, pasta's socket to the peer has an empty "
        "send queue), and the guest's TCP never enters fast recovery (TcpExtTCPSackRecovery = TCPRenoRecovery = 0): "
        "each loss costs a retransmission timeout: 3-4 TCPTimeouts per 3 s test, the guest's tx counter flat for "
        "0.5-1 s at a time (benchmarks/pasta_egress.py). Ingress (pasta writing to the tap) is not affected. A "
        "pasta behaviour on this kernel (6.18), not a setup of ours; on the QEMU guest the emulated CPU caps passt "
        "below 1 Gbit/s both ways, so it cannot be told there",
    ),
]


def findings_for(rows: pd.DataFrame) -> list[Finding]:
    """The findings that explain some of `rows`."""
    needed = {"strategy", "guest", "direction"}
    if rows.empty or not needed <= set(rows.columns):
        return []
    frame = rows.assign(strategy=rows["strategy"].astype(str), guest=rows["guest"].astype(str),
                        direction=rows["direction"].astype(str))  # fmt: skip
    return [f for f in FINDINGS if bool(f.applies(frame).any())]
