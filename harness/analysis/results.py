"""A run's results folder, `results/<run id>/`: run.json, samples.parquet + samples.csv, raw tool output.

Every file is written atomically. run.json says `"status": "running"` until the run ends, so a folder
from a crashed run never looks complete.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd

from harness.lab.atomic import write_json, write_text, write_via_temp
from harness.lab.paths import results_root_problem
from harness.lab.vocabulary import Status


@dataclass
class Sample:
    """One tidy row of samples.parquet: the schema, written once. Cell columns first (who and where), then the
    test, the measured value, its cost columns, and the verdict on the path."""

    strategy: str
    sidecar: str
    """The mesh layout: the mode (`envoy-redirect`, `ambient`, ...), then `+meshed` when the peer is a meshed
    pod and `+strict` under STRICT PeerAuthentication (harness.pod.mesh.layout_label); `peer` and
    `peer_authentication` repeat those parts, so every analysis keyed on `sidecar` keeps the client kinds apart."""
    scenario: str
    repetition: int
    block: int | None = None  # the block of the paired design (harness/run/plan.py); = repetition
    slot: int | None = None  # the bed's position in its block: adjacent slots ran one after the other
    peer: str = "outside"  # outside the mesh (plaintext) or meshed (its own proxy: mTLS / HBONE)
    peer_authentication: str = "permissive"
    kubevirt: str = ""  # the KubeVirt release modelled (harness/pod/kubevirt.py); empty in runs from before
    binding_status: str = ""  # what the binding is in that release: core, a plugin, a research design
    istio: str = ""  # the Istio release modelled (harness/pod/istio.py) for an Istio mesh mode's rows, else empty
    istio_backend: str = ""  # Istio's redirection backend there: iptables or nftables
    istio_dual_stack: bool | None = None  # Istio's IPv6 capture installed (a dual-stack run's Istio rows), else None
    runtime: str = "netns"
    compute_caps: str | None = None  # docker runtime: compute's capabilities vs Docker's defaults, missing devices
    guest: str = "netns"
    accel: str | None = None
    vcpus: int | None = None
    memory_mb: int | None = None
    options: str = ""  # the strategy's options as JSON (e.g. {"relay":"c","relay_workers":1,...})
    pod_mtu: int | None = None  # the pod interface's MTU, read back from the link (the CNI's MTU)
    guest_mtu: int | None = None  # the guest NIC's MTU, read back in the guest; None without a VM
    message_bytes: int | None = None  # RR/CRR message, UDP datagram size of the test
    streams: int | None = None  # parallel TCP streams of a throughput test
    load: str | None = None  # RR under load: idle, or a bulk TCP stream the same way or the reverse way
    offered_rps: int | None = None  # an http test's fixed offered rate (requests per second, open loop)
    test_tool: str = ""  # the tool of a kind that has more than one (rr: sockperf, or vmnb-rr where IPv6 needs it)
    pod_address: str | None = None  # a migration test: the pod's IP across the move, kept or changed
    migration_fate: str = ""  # a migration test: what each flow made of it (survived / stalled / reset, why)
    migration_allowed: str = ""  # a migration test: what the modelled KubeVirt release does with such a migration
    tools: str = ""  # versions of the tools this cell ran with, as JSON ({"pasta": "...", "qemu": ...})
    caveat: str = ""  # why the row does not stand for the real system (a path it lacks), or empty
    test: str = ""
    direction: str = ""
    ip_family: str = "ipv4"  # the family the test dialled (a dual-stack run's IPv6 tests are labelled `/ipv6`)
    protocol: str = ""
    metric: str = ""
    value: float | None = None
    unit: str | None = None
    retransmits: int | None = None
    cpu_client_pct: float | None = None
    cpu_server_pct: float | None = None
    status: str = Status.OK
    reason: str = ""
    path: str | None = None
    sidecar_bytes: int | None = None
    sidecar_connections: int | None = None
    mtls_bytes: int | None = None  # bytes the destination's proxy took inside mTLS / HBONE (meshed peers)
    tls_handshakes: int | None = None  # mTLS handshakes the destination's proxy completed as server
    hbone_streams: int | None = None  # HBONE CONNECT streams the destination's proxy terminated
    peer_identity: str = ""  # the SPIFFE id(s) the destination's proxy saw in the client's certificate
    peer_proxy_bytes: int | None = None  # bytes the meshed peer's own proxy carried for the test
    dns_proxy_queries: int | None = None  # lookups the mesh's DNS proxy took during a dns test (ambient capture)
    dns_zone1_flows: int | None = None  # UDP flows to port 53 in conntrack zone 1 in the pod after a dns test
    proxy_http_requests: int | None = None  # requests the pod's proxy parsed and routed as HTTP (L7) in the test
    waypoint_bytes: int | None = None  # bytes the waypoint sent on in its HBONE to the pod (ambient with a waypoint)
    waypoint_http_requests: int | None = None  # requests the waypoint handled at L7 in the test
    run_id: str = ""
    timestamp: str = ""


COLUMNS = [
    "run_id",
    "runtime",
    "compute_caps",
    "guest",
    "accel",
    "vcpus",
    "memory_mb",
    "strategy",
    "options",
    "pod_mtu",
    "guest_mtu",
    "sidecar",
    "peer",
    "peer_authentication",
    "kubevirt",
    "binding_status",
    "istio",
    "istio_backend",
    "istio_dual_stack",
    "scenario",
    "test",
    "message_bytes",
    "streams",
    "load",
    "offered_rps",
    "test_tool",
    "pod_address",
    "direction",
    "ip_family",
    "protocol",
    "repetition",
    "block",
    "slot",
    "metric",
    "value",
    "unit",
    "retransmits",
    "cpu_client_pct",
    "cpu_server_pct",
    "status",
    "reason",
    "path",
    "sidecar_bytes",
    "sidecar_connections",
    "mtls_bytes",
    "tls_handshakes",
    "hbone_streams",
    "peer_identity",
    "peer_proxy_bytes",
    "dns_proxy_queries",
    "dns_zone1_flows",
    "proxy_http_requests",
    "waypoint_bytes",
    "waypoint_http_requests",
    "migration_fate",
    "migration_allowed",
    "tools",
    "caveat",
    "timestamp",
]
"""The column order of samples.parquet / samples.csv (every field of Sample)."""
assert set(COLUMNS) == {f.name for f in fields(Sample)}, "COLUMNS and Sample disagree"


SWEEP_INT_COLUMNS = ("pod_mtu", "guest_mtu", "message_bytes", "streams")
INT_COLUMNS = (
    *SWEEP_INT_COLUMNS,
    "block",
    "slot",
    "mtls_bytes",
    "tls_handshakes",
    "hbone_streams",
    "peer_proxy_bytes",
    "dns_proxy_queries",
    "dns_zone1_flows",
    "offered_rps",
    "proxy_http_requests",
    "waypoint_bytes",
    "waypoint_http_requests",
)
CELL_SWEEP_COLUMNS = ("pod_mtu", "guest_mtu")
"""Columns a sweep varies per cell (the bed and the guest); message_bytes and streams vary per test and are in
the test's label when swept, so analyses keyed on the test keep them apart."""


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class ResultsFolderError(RuntimeError):
    pass


class ResultsWriteError(RuntimeError):
    """A results file could not be written (a full or read-only disk): one sentence, no traceback."""


class RunWriter:
    """A run's results folder. samples.parquet is the authoritative table: it is rewritten (atomically) after
    every cell; samples.csv is derived from it once, when the run ends (or by `clean` for a killed run), so
    the two can never disagree."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.run_id = run_id
        self.dir = root / run_id
        problem = results_root_problem(root)  # every command that writes a run comes through here
        if problem:
            raise ResultsFolderError(f"option --results: {problem}")
        try:
            self.dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise ResultsFolderError(
                f"the results folder {self.dir} exists already (run id {run_id} was used "
                "before); give another --run-id or none"
            ) from None
        except OSError as e:
            raise ResultsFolderError(
                f"cannot create the results folder {self.dir} ({e.strerror}); --results must name a writable folder"
            ) from None
        self.rows: list[dict[str, Any]] = []
        self.latency: list[pd.DataFrame] = []
        self.meta: dict[str, Any] = {}

    @property
    def raw_dir(self) -> Path:
        return self.dir / "raw"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def discard_unstarted(self) -> None:
        """Remove the folder of a run that ended before run.json was written (nothing of it is a result)."""
        if not (self.dir / "run.json").exists():
            shutil.rmtree(self.dir, ignore_errors=True)

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        try:
            yield
        except OSError as e:
            raise ResultsWriteError(
                f"cannot write {what} in {self.dir} ({e.strerror or e}); free space on its disk "
                "(or give --results another folder) and run again"
            ) from None

    def start(self, meta: dict[str, Any]) -> None:
        self.meta = {"run_id": self.run_id, "status": "running", "started": now(), **meta}
        with self._writing("run.json"):
            write_json(self.dir / "run.json", self.meta)

    def add(self, sample: Sample) -> None:
        row = asdict(sample)
        row.update(run_id=self.run_id, timestamp=sample.timestamp or now())
        for key, value in row.items():  # enums are stored as their plain names
            if isinstance(value, str):
                row[key] = str(value)
        self.rows.append(row)

    def add_latency(self, sample: Sample, rtt_us) -> None:
        """Keep every latency sample, so percentiles are computed from all repetitions merged."""
        keys = (
            "strategy",
            "sidecar",
            "test",
            "direction",
            "protocol",
            "repetition",
            *CELL_SWEEP_COLUMNS,
            "load",
            "offered_rps",
        )
        frame = pd.DataFrame({"rtt_us": rtt_us})
        for k in keys:
            value = getattr(sample, k)
            frame[k] = str(value) if isinstance(value, str) else value
        frame["run_id"] = self.run_id
        self.latency.append(frame)

    def latency_frame(self) -> pd.DataFrame | None:
        return pd.concat(self.latency, ignore_index=True) if self.latency else None

    def save_raw(self, name: str, data: Any) -> None:
        with self._writing(f"raw/{name}"):
            write_text(self.raw_dir / name, json.dumps(data, indent=1) if not isinstance(data, str) else data)

    def frame(self) -> pd.DataFrame:
        df = pd.DataFrame(self.rows, columns=COLUMNS)
        for col in ("value", "cpu_client_pct", "cpu_server_pct"):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        for col in ("retransmits", "repetition", "sidecar_bytes", "sidecar_connections", *INT_COLUMNS):
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
        return df

    def flush(self) -> None:
        """Write the samples so far (after every cell, so an interrupted run keeps what it measured)."""
        df = self.frame()
        with self._writing("samples.parquet"):
            write_via_temp(self.dir / "samples.parquet", lambda tmp: df.to_parquet(tmp, index=False))
        if self.latency:
            lat = pd.concat(self.latency, ignore_index=True)
            with self._writing("latency.parquet"):
                write_via_temp(self.dir / "latency.parquet", lambda tmp: lat.to_parquet(tmp, index=False))

    def record_failure(self, why: str) -> None:
        """run.json says the run failed (best effort: on a full disk even this may not be written)."""
        self.meta.update(status="failed", finished=now(), error=why)
        try:
            write_json(self.dir / "run.json", self.meta)
        except OSError:  # no room for a temporary copy: overwrite in place (truncating frees the old blocks first)
            with contextlib.suppress(OSError):
                (self.dir / "run.json").write_text(json.dumps(self.meta, indent=1))

    def finish(self, status: str, **extra: Any) -> None:
        self.flush()
        df = pd.read_parquet(self.dir / "samples.parquet")  # the CSV is what the parquet says, nothing else
        with self._writing("samples.csv"):
            write_via_temp(self.dir / "samples.csv", lambda tmp: df.to_csv(tmp, index=False))
        self.meta.update(status=status, finished=now(), samples=len(self.rows), **extra)
        with self._writing("run.json"):
            write_json(self.dir / "run.json", self.meta)


class RunFolderError(RuntimeError):
    pass


def load_samples(run_dir: Path) -> pd.DataFrame:
    """samples.parquet of a run folder (the authoritative table); RunFolderError in one sentence otherwise."""
    path = Path(run_dir) / "samples.parquet"
    if not path.is_file():
        raise RunFolderError(f"{run_dir} is not a run folder: it has no samples.parquet")
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise RunFolderError(
            f"{path} cannot be read as a samples table ({type(e).__name__}); the run folder is damaged"
        ) from None
    missing = {"strategy", "sidecar", "metric", "value", "status"} - set(frame.columns)
    if missing:
        raise RunFolderError(f"{path} lacks the columns {', '.join(sorted(missing))}; it is not a vmnetbench table")
    for col in COLUMNS:  # a run from before a column existed reads with that column empty
        if col not in frame.columns:
            frame[col] = pd.array([None] * len(frame), dtype="Int64" if col in INT_COLUMNS else "object")
    for col, value in (("peer", "outside"), ("peer_authentication", "permissive")):  # runs before meshed peers
        frame[col] = frame[col].fillna(value)
    if "path" in frame.columns:  # runs before ambient called the mesh's path "through-sidecar"
        frame["path"] = frame["path"].replace("through-sidecar", "through-mesh")
    return frame


def load_meta(run_dir: Path) -> dict:
    """run.json of a run folder; a missing or damaged one gives a minimal record that says so."""
    try:
        meta = json.loads((Path(run_dir) / "run.json").read_text())
        if isinstance(meta, dict):
            return meta
    except (OSError, ValueError):
        pass
    return {"run_id": Path(run_dir).name, "status": "unknown (run.json missing or damaged)"}


def varying_sweep_columns(*frames: pd.DataFrame) -> list[str]:
    """The cell-level sweep columns (pod_mtu, guest_mtu) that take more than one value for one strategy in any of
    `frames`: the keys analyses must add to strategy and sidecar so swept cells are not merged. Two variants at
    two guest MTUs (smoke.yaml's slirp and slirp-mtu1500) are two bindings, not a sweep."""

    def varies(f: pd.DataFrame, column: str) -> bool:
        return column in f and "strategy" in f and bool((f.groupby("strategy")[column].nunique() > 1).any())

    return [c for c in CELL_SWEEP_COLUMNS if any(varies(f, c) for f in frames)]


def sweep_points(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The run split by its cell-level sweep point: [("", frame)] when nothing was swept, else one titled part
    per (pod MTU, guest MTU), and per IP family of a dual-stack run (`IPv6`: its tests' rows, labelled `/ipv6`,
    each judged against direct's IPv6; the setup rows stay with IPv4). Rows without a guest MTU (`direct`, no
    VM) belong to every guest MTU of their pod MTU: they are the reference each binding is measured against."""
    families = [f for f in ("ipv4", "ipv6") if "ip_family" in frame and (frame.ip_family == f).any()]
    if len(families) > 1:
        parts = []
        for family in families:
            for where, part in _mtu_points(frame[frame.ip_family.fillna("ipv4") == family]):
                parts.append((", ".join(w for w in (where, "IPv6" if family == "ipv6" else "IPv4") if w), part))
        return parts
    return _mtu_points(frame)


def _mtu_points(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    columns = varying_sweep_columns(frame)
    if not columns:
        return [("", frame)]
    points = frame[columns].dropna().drop_duplicates().sort_values(columns)
    parts = []
    for _, point in points.iterrows():
        mask = pd.Series(True, index=frame.index)
        for column in columns:
            mask &= (frame[column] == point[column]).fillna(False) | frame[column].isna()
        names = {"pod_mtu": "pod MTU", "guest_mtu": "guest MTU"}
        parts.append((", ".join(f"{names[c]} {int(point[c])}" for c in columns), frame[mask]))
    return parts
