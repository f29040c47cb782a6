"""What one test reported, reduced to what turning it into rows needs."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.kinds.endpoints import Transcript
from harness.lab.vocabulary import Status, TrafficPath

HARNESS_ERROR = "harness error: "
"""How a row's reason starts when the harness itself failed (not the path, not the tool): a run with such rows
exits 3."""


@dataclass(frozen=True)
class Metric:
    """One measured value; the optional columns are the ones samples.parquet has for iperf3's extras."""

    metric: str
    unit: str
    value: float | None
    retransmits: int | None = None
    cpu_client_pct: float | None = None
    cpu_server_pct: float | None = None

    def columns(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class Outcome:
    status: Status
    reason: str
    metrics: list[Metric]
    bytes_moved: int = 0  # payload bytes that crossed the path, both directions counted once each
    requests: int = 0
    rtt_us: np.ndarray | None = None
    raw: dict = field(default_factory=dict)  # the tool's own JSON, kept in raw/
    transcript: Transcript | None = None
    """The client's output this outcome was read from (kept in raw/ when the scenario says keep_outputs)."""
    evidence_path: TrafficPath | None = None
    """The path as the test itself established it (a migration reads the source pod's proxy before deleting it),
    instead of the proxies' counters around the test; None: the counters decide."""
    row_columns: dict = field(default_factory=dict)
    """Columns of the kind's own the rows carry (a migration's fate of each flow and its release's verdict)."""
    dns_queries: int = 0
    """Name lookups the test sent (a dns test): the mesh's DNS proxy must have taken them to count as through it."""
