"""answer.md's "Live migration" section (issue 43): per binding, mesh layout and pod address, what a live
migration did to the flows that were established before it (harness/kinds/migration.py), what the modelled
KubeVirt release says of such a migration, and why each broken flow broke (the flows' own words)."""

from __future__ import annotations

import pandas as pd

from harness.analysis.costs import layout_title
from harness.lab.vocabulary import Status
from harness.pod.bindings import user_name


def migration_rows(samples: pd.DataFrame) -> pd.DataFrame:
    """The migration kind's rows: the ones that say what happened to the pod's address (older runs have none)."""
    if "pod_address" not in samples.columns:
        return samples.iloc[0:0]
    return samples[samples.pod_address.notna() & (samples.pod_address.astype(str) != "")]


def has_migration(samples: pd.DataFrame) -> bool:
    return not migration_rows(samples).empty


def migration_disqualifier(samples: pd.DataFrame, strategy: str, sidecar: str) -> str:
    """Why a run that measured live migrations drops this binding under this layout ('' when it passes, or when
    the run measured none of its migrations): the modelled KubeVirt release refuses to migrate it, or an
    established connection did not survive a migration with the pod's address kept (with a new address no
    binding keeps a connection the peer made: it dials the old address)."""
    rows = migration_rows(samples)
    rows = rows[(rows.strategy == strategy) & (rows.sidecar == sidecar)]
    if rows.empty:
        return ""
    verdict = next((v for v in rows.migration_allowed.dropna() if v), "")
    if verdict and not verdict.startswith("allowed"):
        return f"live migration {verdict}"
    kept = rows[(rows.pod_address == "kept") & (rows.metric == "migration_connections_kept")]
    lost = kept[(kept.status == Status.OK) & (kept.value < 1)]
    if not lost.empty:
        fates = "; ".join(sorted({f"{r.direction}: {r.migration_fate}" for r in lost.itertuples()}))
        return f"established connections broke in a live migration with the pod address kept ({fates})"
    return ""


def _median(rows: pd.DataFrame, metric: str) -> float | None:
    values = rows[(rows.metric == metric) & (rows.status == Status.OK)].value.dropna()
    return float(values.median()) if len(values) else None


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _kept(rows: pd.DataFrame) -> str:
    values = rows[(rows.metric == "migration_connections_kept") & (rows.status == Status.OK)].value.dropna()
    if values.empty:
        return "–"
    return f"{int(values.sum())}/{len(values)}"


def cell_summary(rows: pd.DataFrame) -> dict[str, str]:
    """One table row: the release's verdict, QEMU's times, per direction the probes' gaps and kept connections."""
    verdict = next((v for v in rows.migration_allowed.dropna() if v), "")
    failed = rows[rows.status != Status.OK]
    out = {
        "allowed": verdict,
        "qemu": f"{_seconds(_median(rows, 'migration_time'))} / {_ms(_median(rows, 'migration_downtime'))}",
    }
    for direction in ("ingress", "egress"):
        mine = rows[rows.direction == direction]
        out[f"{direction} tcp"] = _seconds(_median(mine, "migration_gap_tcp"))
        out[f"{direction} udp"] = _seconds(_median(mine, "migration_gap_udp"))
        out[f"{direction} kept"] = _kept(mine)
    out["failed"] = "; ".join(sorted(set(failed.reason.dropna()) - {""}))
    return out


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def migration_lines(
    samples: pd.DataFrame, bindings: list[str], sidecars: list[str], names: dict[str, str] | None = None
) -> list[str]:
    """The section: the matrix (one line per binding x layout x address), then each flow's fate as evidence."""
    rows = migration_rows(samples)
    if rows.empty:
        return []
    kubevirt = next((k for k in rows.kubevirt.dropna() if k), None)
    lines = [
        "## Live migration",
        "",
        "Flows established before a live migration of the VM between two launcher pods: per direction a paced TCP",
        "probe, a paced UDP probe (the largest gap between answers is the downtime the flow saw; `–` where the flow",
        "never came back) and an iperf3 stream. *kept*: connections (TCP probe and stream) that survived, of the",
        "migrations measured. QEMU's own total time and downtime beside them. One host and TCG: the migration stream",
        "crossed no network (every row's caveat).",
        "",
        "| binding | mesh layout | pod address | KubeVirt says | QEMU time / downtime | TCP gap in | UDP gap in "
        "| kept in | TCP gap out | UDP gap out | kept out |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fates: list[str] = []
    for binding in bindings:
        for sidecar in sidecars:
            for address in ("kept", "changed"):
                cell = rows[(rows.strategy == binding) & (rows.sidecar == sidecar) & (rows.pod_address == address)]
                if cell.empty:
                    continue
                s = cell_summary(cell)
                name = (names or {}).get(binding) or user_name(kubevirt, binding)
                layout = layout_title(sidecar)
                if s["failed"] and cell[cell.status == Status.OK].empty:
                    lines.append(f"| {name} | {layout} | {address} | {s['allowed']} | not measured: {s['failed']} "
                                 "| | | | | | |")  # fmt: skip
                    continue
                lines.append(
                    f"| {name} | {layout} | {address} | {s['allowed']} | {s['qemu']} | {s['ingress tcp']} "
                    f"| {s['ingress udp']} | {s['ingress kept']} | {s['egress tcp']} | {s['egress udp']} "
                    f"| {s['egress kept']} |"
                )
                for direction in ("ingress", "egress"):
                    said = cell[(cell.direction == direction) & (cell.metric == "migration_connections_kept")]
                    for fate in sorted(set(said.migration_fate.dropna()) - {""}):
                        fates.append(f"- {name}, {layout}, address {address}, {direction}: {fate}")
    lines += ["", "What each flow made of it (the probes' and iperf3's own words):", "", *fates, ""]
    return lines


def plot_migration(
    samples: pd.DataFrame, bindings: list[str], sidecars: list[str], names: dict[str, str] | None = None
):
    """The downtime each flow saw, per binding x layout x pod address: the TCP probe's largest gap in and out (bars);
    a flow that never came back is a red cross at the axis' end, labelled stalled or reset. None without rows."""
    rows = migration_rows(samples)
    if rows.empty:
        return None
    import matplotlib.pyplot as plt

    kubevirt = next((k for k in rows.kubevirt.dropna() if k), None)
    labels, gaps, broken = [], [], []
    for binding in bindings:
        for sidecar in sidecars:
            for address in ("kept", "changed"):
                cell = rows[(rows.strategy == binding) & (rows.sidecar == sidecar) & (rows.pod_address == address)]
                if cell[cell.status == Status.OK].empty:
                    continue
                name = (names or {}).get(binding) or user_name(kubevirt, binding)
                labels.append(f"{name}\n{layout_title(sidecar)}, address {address}")
                per = []
                for direction in ("ingress", "egress"):
                    mine = cell[cell.direction == direction]
                    fates = " ".join(mine.migration_fate.dropna())
                    gap = _median(mine, "migration_gap_tcp")
                    kept = _median(mine, "migration_connections_kept")
                    per.append((gap, None if kept else ("reset" if "tcp probe reset" in fates else "stalled")))
                gaps.append(per)
    if not labels:
        return None
    finite = [g for per in gaps for g, _ in per if g is not None]
    top = max(finite + [1.0]) * 1.25
    fig, ax = plt.subplots(figsize=(9, 0.75 * len(labels) + 1.4))
    for i, per in enumerate(gaps):
        for j, (gap, fate) in enumerate(per):
            y = i + (j - 0.5) * 0.38
            colour = "C0" if j == 0 else "C1"
            if gap is not None and fate is None:
                ax.barh(y, gap, height=0.36, color=colour)
                ax.text(gap, y, f" {gap:.2f} s", va="center", fontsize=8)
            else:
                ax.plot([top * 0.97], [y], marker="x", color="red", markersize=9)
                ax.text(top * 0.95, y, f"{'in' if j == 0 else 'out'}: {fate or 'broken'} ", va="center", ha="right",
                        fontsize=8, color="red")  # fmt: skip
                broken.append((i, j))
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top)
    ax.set_xlabel("largest gap of the TCP probe during the migration (s)")
    ax.set_title("Live migration: how long each established connection stopped")
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color="C0", label="in (peer -> VM)"), Patch(color="C1", label="out (VM -> peer)")],
        loc="lower right",
        fontsize=8,
    )
    fig.tight_layout()
    return fig
