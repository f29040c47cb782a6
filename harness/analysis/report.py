"""`vmnetbench report RUN`: figures (matplotlib, PNG), report.md and a self-contained report.html.

The same functions serve notebooks/report.ipynb: `load_run`, then any `plot_*` on its frames."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.patches

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.analysis import sweep  # noqa: E402
from harness.analysis.answer import all_metrics, binding_order, decision_page, failures  # noqa: E402
from harness.analysis.htmlpage import Section, Table, markdown_table, page  # noqa: E402
from harness.analysis.results import load_meta, load_samples  # noqa: E402
from harness.analysis.stats import MIN_N, median_interval  # noqa: E402
from harness.analysis.summary import latency_percentiles, path_matrix, throughput_summary  # noqa: E402
from harness.lab.atomic import write_text
from harness.lab.vocabulary import Status
from harness.metrics.registry import spec  # noqa: E402
from harness.metrics.registry import unit as metric_unit  # noqa: E402
from harness.pod.bindings import colour, facts  # noqa: E402
from harness.pod.mesh import MESHES, mode_of  # noqa: E402


@dataclass
class Run:
    dir: Path
    meta: dict
    samples: pd.DataFrame
    latency: pd.DataFrame | None
    claims: list | None

    @property
    def run_id(self) -> str:
        return self.meta.get("run_id", self.dir.name)

    def strategy_order(self) -> list[str]:
        listed = self.meta.get("scenario_parsed", {}).get("strategies", [])
        seen = list(dict.fromkeys(self.samples["strategy"]))
        return [s for s in listed if s in seen] + [s for s in seen if s not in listed]


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    meta = load_meta(run_dir)
    samples = load_samples(run_dir)
    latency = pd.read_parquet(run_dir / "latency.parquet") if (run_dir / "latency.parquet").exists() else None
    claims = json.loads((run_dir / "claims.json").read_text()) if (run_dir / "claims.json").exists() else None
    return Run(run_dir, meta, samples, latency, claims)


# One colour per binding in every figure (the strategies' registry order, then variants), one line style or
# hatch per sidecar, so a binding is recognised at a glance across figures.


def style_of(sidecar: str) -> tuple[object, str]:
    """The mesh mode's line style and bar hatch, as its class declares them (harness/pod/mesh.py); a meshed
    client's layout draws the mode's hatch twice as dense."""
    mode = mode_of(sidecar)
    line, hatch = MESHES[mode].style if mode in MESHES else ("-", "")
    return line, hatch * 2 if "+meshed" in str(sidecar) else hatch


MIN_N_FOR_CI = MIN_N["order"]


# The bindings in a fixed order (analysis may not import strategies/: same layer); others follow in run order.
def binding_colours(run: Run) -> dict[str, str]:
    """Each binding's own colour (declared on its strategy class); variants and unknown names after them."""
    names = run.strategy_order()
    others = [s for s in names if facts(s) is None]
    return {name: colour(name, others) for name in names}


def _sidecars(run: Run) -> list[str]:
    known = list(MESHES)
    present = set(run.samples["sidecar"])
    return [s for s in known if s in present] + sorted(present - set(known))


def _cells(run: Run, metric: str, test: str | None = None) -> pd.DataFrame:
    df = run.samples[(run.samples["metric"] == metric) & (run.samples["status"] == Status.OK)]
    if test is not None:
        df = df[df["test"] == test]
    rows = []
    for (strategy, sidecar, direction), g in df.groupby(["strategy", "sidecar", "direction"], sort=False):
        ci = median_interval(g["value"])
        rows.append(
            {
                "strategy": strategy,
                "sidecar": sidecar,
                "direction": direction,
                "values": g["value"].to_numpy(),
                "median": ci.estimate,
                "low": ci.low,
                "high": ci.high,
                "n": ci.n,
            }
        )
    return pd.DataFrame(rows)


def _short(reason: str, limit: int = 70) -> str:
    reason = " ".join(str(reason).split())
    return reason if len(reason) <= limit else reason[: limit - 1] + "…"


def plot_bars(run: Run, metric: str, ylabel: str, title: str, test: str | None = None):
    """One panel per direction; a bar per binding (its colour) and sidecar (its hatch) at the median; every
    sample as a dot; the exact 95% order-statistic interval of the median as an error bar only when n >= 6, and n
    written on the bar. A cell that ran but never succeeded gets a red x, numbered, with its reason under the figure."""
    cells = _cells(run, metric, test)
    if cells.empty:
        return None
    directions = list(dict.fromkeys(cells["direction"]))
    sidecars = _sidecars(run)
    colours = binding_colours(run)
    attempted = run.samples[run.samples["metric"] == metric]
    if test is not None:
        attempted = attempted[attempted["test"] == test]
    strategies = [s for s in run.strategy_order() if s in set(attempted["strategy"])]
    fig, axes = plt.subplots(
        1,
        len(directions),
        figsize=(max(6, 1.1 * len(strategies) * len(directions) + 2), 4.8),
        squeeze=False,
        sharey=True,
    )
    width = 0.8 / len(sidecars)
    x = np.arange(len(strategies))
    notes: list[str] = []
    for ax, direction in zip(axes[0], directions, strict=True):
        for i, sidecar in enumerate(sidecars):
            sub = cells[(cells.direction == direction) & (cells.sidecar == sidecar)].set_index("strategy")
            offset = x + (i - (len(sidecars) - 1) / 2) * width
            for j, strategy in enumerate(strategies):
                if strategy in sub.index:
                    r = sub.loc[strategy]
                    ax.bar(
                        offset[j],
                        r["median"],
                        width,
                        color=colours.get(strategy, "grey"),
                        alpha=0.75,
                        hatch=style_of(sidecar)[1],
                        edgecolor="black",
                        linewidth=0.4,
                    )
                    ax.plot(np.full(len(r["values"]), offset[j]), r["values"], ".", color="black", markersize=3)
                    if r["low"] is not None and r["high"] is not None:
                        ax.errorbar(
                            offset[j],
                            r["median"],
                            yerr=[[max(0, r["median"] - r["low"])], [max(0, r["high"] - r["median"])]],
                            color="black",
                            capsize=3,
                        )
                    ax.annotate(f"n={r['n']}", (offset[j], r["median"]), ha="center", va="bottom", fontsize=6)
                    continue
                tried = attempted[
                    (attempted.direction == direction)
                    & (attempted.sidecar == sidecar)
                    & (attempted.strategy == strategy)
                ]
                if not tried.empty:
                    notes.append(
                        f"({len(notes) + 1}) {strategy}/{sidecar} {direction}: "
                        f"{_short(tried.reason.fillna('').mode().iat[0] or 'failed')}"
                    )
                    ax.plot(offset[j], 0, marker="x", color="red", markersize=9, mew=2)
                    ax.annotate(
                        str(len(notes)),
                        (offset[j], 0),
                        color="red",
                        fontsize=7,
                        xytext=(3, 3),
                        textcoords="offset points",
                    )
        ax.set_title(direction)
        ax.set_xticks(x, strategies, rotation=35, ha="right")
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(ylabel)
    if len(sidecars) > 1:
        handles = [
            matplotlib.patches.Patch(facecolor="white", edgecolor="black", hatch=style_of(s)[1], label=s)
            for s in sidecars
        ]
        axes[0][-1].legend(handles=handles, title="sidecar", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    width_chars = int(fig.get_figwidth() * 11)  # the title wraps inside a narrow figure instead of being cut
    fig.suptitle(
        textwrap.fill(
            f"{title}; dots: samples, bars: exact 95% interval of the median when n >= {MIN_N_FOR_CI}", width_chars
        ),
        fontsize=10,
    )
    fig.tight_layout()
    if notes:
        fig.text(0.01, 0.0, "red x = failed: " + "; ".join(notes), fontsize=6, va="bottom", wrap=True)
        fig.subplots_adjust(bottom=0.3)
    return fig


def _latency_panels(run: Run, frame: pd.DataFrame):
    """One panel per (test, direction) present: ingress and egress both."""
    keys = list(dict.fromkeys(zip(frame["test"], frame["direction"], strict=True)))
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.6), squeeze=False)
    return fig, list(axes[0]), keys


def _line_style(run: Run, strategy: str, sidecar: str) -> dict:
    return {
        "color": binding_colours(run).get(strategy, "grey"),
        "linestyle": style_of(sidecar)[0],
        "label": f"{strategy} / {sidecar}",
    }


def plot_latency_percentiles(run: Run):
    if run.latency is None or run.latency.empty:
        return None
    lat = latency_percentiles(run.latency)
    fig, axes, keys = _latency_panels(run, lat)
    labels = ["p50", "p90", "p99", "p99.9", "max"]
    for ax, (test, direction) in zip(axes, keys, strict=True):
        for r in lat[(lat.test == test) & (lat.direction == direction)].itertuples():
            ax.plot(
                labels,
                [r.p50, r.p90, r.p99, r.p999, r.max],
                marker="o",
                markersize=3,
                **_line_style(run, r.strategy, r.sidecar),
            )
        ax.set_yscale("log")
        ax.set_title(f"{test} ({direction})", fontsize=10)
        ax.set_xlabel("percentile")
        ax.grid(alpha=0.3, which="both")
    return _finish_panels(fig, axes, "latency (us, log scale)", "Latency percentiles, all repetitions merged")


def _finish_panels(fig, axes, ylabel: str, title: str):
    """Shared y label on the first panel; one legend, built from every panel's lines, right of the last."""
    axes[0].set_ylabel(ylabel)
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    axes[-1].legend(
        handles.values(),
        handles.keys(),
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        title="binding / sidecar",
    )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_latency_cdf(run: Run):
    """The tail on a readable scale: the fraction of requests slower than x (1 - F), log-log, so p99 and
    p99.9 are decades apart instead of squeezed against 1."""
    if run.latency is None or run.latency.empty:
        return None
    fig, axes, keys = _latency_panels(run, run.latency)
    for ax, (test, direction) in zip(axes, keys, strict=True):
        sub = run.latency[(run.latency.test == test) & (run.latency.direction == direction)]
        for (strategy, sidecar), g in sub.groupby(["strategy", "sidecar"], sort=False):
            values = np.sort(g["rtt_us"].to_numpy())
            slower = 1 - np.arange(len(values)) / len(values)  # P(latency >= value), never 0 on a log axis
            ax.plot(values, slower, **_line_style(run, strategy, sidecar))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("latency (us, log scale)")
        ax.set_title(f"{test} ({direction})", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    return _finish_panels(fig, axes, "fraction of requests slower (1 - F, log)", "Latency tail: 1 - CDF")


def plot_sweep(run: Run, parameter: str, group: list[sweep.SweepPanel]):
    """The swept value on the x axis, one line per binding (its colour) and a panel per direction and sidecar;
    the median's exact 95% interval as a band where n >= 6; a value where a binding never succeeded is a red x
    on the axis."""
    first = group[0]
    fig, axes = plt.subplots(1, len(group), figsize=(max(7.0, 4.4 * len(group)), 4.2), squeeze=False)
    axes = list(axes[0])
    colours = binding_colours(run)
    order = binding_order(run.samples, run.strategy_order())
    for ax, panel in zip(axes, group, strict=True):
        values = sweep.values_of(panel)
        x = np.arange(len(values))
        data = sweep.series(panel, order)
        for strategy, g in data.groupby("strategy", sort=False):
            g = g.set_index("value").reindex(values)
            ax.plot(x, g["median"].astype(float), marker="o", color=colours.get(strategy, "grey"), label=strategy)
            if g["low"].notna().any():
                ax.fill_between(
                    x,
                    g["low"].astype(float),
                    g["high"].astype(float),
                    color=colours.get(strategy, "grey"),
                    alpha=0.15,
                    linewidth=0,
                )
            failed = np.flatnonzero((g["median"].isna() & (g["failed"] > 0)).to_numpy())
            if len(failed):
                ax.plot(
                    x[failed],
                    [0] * len(failed),
                    "x",
                    color="red",
                    markersize=9,
                    clip_on=False,
                    label=f"{strategy}: failed",
                )
        ax.set_xticks(x, [str(v) for v in values])
        ax.set_xlabel(sweep.PARAMETERS[parameter])
        ax.set_title(f"{panel.direction}, sidecar {panel.sidecar}", fontsize=10)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    unit = metric_unit(first.metric)
    fixed = ", ".join(f"{sweep.PARAMETERS[k]} {v}" for k, v in first.fixed)
    title = f"{first.family} {first.metric} vs {sweep.PARAMETERS[parameter]}" + (f" ({fixed})" if fixed else "")
    return _finish_panels(fig, axes, f"{first.metric} ({unit})", title)


def sweep_figures(run: Run) -> Iterator[tuple[str, str, object]]:
    """One figure per swept parameter, test, metric and fixed other parameters; panels per direction x sidecar.
    Made one at a time (the caller saves and closes each): a sweep can have dozens."""
    for parameter in sweep.swept(run.samples):
        groups: dict[tuple, list[sweep.SweepPanel]] = {}
        for panel in sweep.panels(run.samples, parameter):
            groups.setdefault((panel.family, panel.metric, panel.fixed), []).append(panel)
        for (family, metric, fixed), group in groups.items():
            suffix = "".join(f"-{k}{v}" for k, v in fixed)
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"sweep-{parameter}-{family}-{metric}{suffix}.png")
            caption = f"{family} {metric} against the {sweep.PARAMETERS[parameter]}" + (
                f" ({', '.join(f'{sweep.PARAMETERS[k]} {v}' for k, v in fixed)})" if fixed else ""
            )
            yield name, caption, plot_sweep(run, parameter, group)


def figures(run: Run) -> Iterator[tuple[str, str, object]]:
    """(file name, caption, figure) for every figure the run's data supports. A sweep run gets the sweep
    figures instead of the per-binding bars, which would merge the swept values into one bar."""
    if sweep.swept(run.samples):
        yield from sweep_figures(run)
        setup = plot_bars(run, "setup_time", "seconds", "Setup time (median, exact 95% when n >= 6)")
        if setup is not None:
            yield "setup_time.png", "Setup time of each cell", setup
        return
    candidates = [
        (
            "throughput.png",
            "TCP throughput per strategy and sidecar, median with its exact 95% interval when n >= 6",
            plot_bars(run, "throughput", "Gbit/s", "TCP throughput (median, exact 95% when n >= 6)"),
        ),
        (
            "udp_goodput.png",
            "UDP goodput at the offered rate",
            plot_bars(run, "udp_goodput", "Gbit/s", "UDP goodput (median, exact 95% when n >= 6)"),
        ),
        ("latency_percentiles.png", "Request/response latency percentiles", plot_latency_percentiles(run)),
        (
            "latency_cdf.png",
            "Latency tails: fraction of requests slower than x (1 - CDF), log-log",
            plot_latency_cdf(run),
        ),
        (
            "crr_rate.png",
            "New connections per second (connect-request-response)",
            plot_bars(
                run, "crr_rate", "connections/s", "Connect-request-response rate (median, exact 95% when n >= 6)"
            ),
        ),
        (
            "cpu_per_gb.png",
            "CPU seconds per GB moved (TCP throughput tests)",
            plot_bars(
                run,
                "cpu_per_gb",
                "CPU s per GB",
                "CPU cost per GB, TCP (median, exact 95% when n >= 6)",
                test=spec("throughput").family,
            ),
        ),
        (
            "boot_time.png",
            "QEMU guest: seconds from QEMU's start to the guest's ready marker",
            plot_bars(run, "boot_time", "seconds", "Guest boot time to ready (median, exact 95% when n >= 6)"),
        ),
        (
            "setup_time.png",
            "Setup time of each cell",
            plot_bars(run, "setup_time", "seconds", "Setup time (median, exact 95% when n >= 6)"),
        ),
    ]
    yield from ((name, caption, fig) for name, caption, fig in candidates if fig is not None)


def when(meta: dict) -> str:
    started = meta.get("started") or "an unknown time"
    if meta.get("finished"):
        return f"{started} to {meta['finished']}"
    if meta.get("status") == "killed":
        return f"started {started}, killed before it finished (rows up to the last completed cell)"
    return f"started {started}, not finished"


def guest_line(meta: dict) -> str:
    """Which guest the VM rows used; for QEMU the acceleration and why (KVM probe), vCPUs, memory, vhost."""
    guest = meta.get("guest") or {"kind": "netns"}
    if guest.get("kind") == "kubevirt":
        cluster = (meta.get("host") or {}).get("cluster") or {}
        return (
            f"Guest: KubeVirt VMs on a cluster (KubeVirt {cluster.get('kubevirt') or 'version not saved'}; each "
            "row's `tools` names its node's kernel, the tools' packages and the launcher image)."
        )
    if guest.get("kind") != "qemu":
        return f"Guest: {guest.get('kind', 'netns')} (the VM's network stack as a namespace in the pod)."
    accel, qemu = guest.get("acceleration", {}), guest.get("qemu", {})
    return (
        f"Guest: QEMU {guest.get('qemu_version')} ({accel.get('accel')}: {accel.get('reason')}), "
        f"{qemu.get('vcpus')} vCPU, {qemu.get('memory_mb')} MiB, kernel {guest.get('kernel')}, "
        f"vhost-net {'yes' if guest.get('vhost_net') else 'no'}."
    )


# Which figure illustrates which table: (section title, the metric whose per-cell table sits beside it, figures).
FIGURE_SECTIONS = [
    ("UDP goodput at the offered rate", "udp_goodput", ["udp_goodput.png"]),
    ("New connections per second (CRR)", "crr_rate", ["crr_rate.png"]),
    ("CPU per GB moved", "cpu_per_gb", ["cpu_per_gb.png"]),
    ("QEMU guest boot time", "boot_time", ["boot_time.png"]),
    ("Setup time of each cell", "setup_time", ["setup_time.png"]),
]
NO_OK_SAMPLE = "no ok sample"
SWEEP_EMPTY = {c: "not swept" for c in ("pod_mtu", "guest_mtu", "message_bytes", "streams", "load")}


def report_sections(run: Run, made: dict[str, str]) -> list[Section]:
    """The report after the decision page: each figure beside the table it illustrates, then the claims, then
    every metric and every failure (collapsed in the HTML)."""
    bindings = binding_order(run.samples, run.meta.get("scenario_parsed", {}).get("strategies", []))
    everything = all_metrics(run.samples, bindings)
    per_cell = "median [exact 95%, n >= 6]"
    if not everything.empty:
        everything[per_cell] = everything[per_cell].replace("-", NO_OK_SAMPLE)
    metric_empty = {**SWEEP_EMPTY}

    def figs(names: list[str]) -> list[tuple[str, str]]:
        return [(n, made[n]) for n in names if n in made]

    def metric_rows(metric: str) -> pd.DataFrame:
        return everything[everything.metric == metric] if not everything.empty else everything

    sections: list[Section] = []
    swept = sweep.swept(run.samples)
    if swept:  # a table per swept parameter; the per-binding summaries would merge the swept values
        for p in swept:
            table = Table("median [exact 95% interval] when n >= 6", sweep.table(run.samples, p, bindings))
            names = [n for n in made if n.startswith(f"sweep-{p}-")]
            sections.append(Section(f"Against the {sweep.PARAMETERS[p]}", [table], figs(names)))
    else:
        tput = throughput_summary(run.samples)
        if not tput.empty:
            sections.append(
                Section(
                    "TCP throughput (Gbit/s)",
                    [
                        Table(
                            "median, min and max over the ok samples",
                            tput,
                            {"median": NO_OK_SAMPLE, "min": NO_OK_SAMPLE, "max": NO_OK_SAMPLE},
                        )
                    ],
                    figs(["throughput.png"]),
                )
            )
        paths = path_matrix(run.samples)
        if not paths.empty:
            sections.append(
                Section(
                    "Mesh traversal",
                    [
                        Table(
                            "path from the mesh proxy's own counters, repetitions agreeing, median Gbit/s",
                            paths,
                            {"median": NO_OK_SAMPLE},
                        )
                    ],
                )
            )
        if run.latency is not None and not run.latency.empty:
            sections.append(
                Section(
                    "Latency percentiles (us, all repetitions merged)",
                    [Table("", latency_percentiles(run.latency).round(1))],
                    figs(["latency_percentiles.png", "latency_cdf.png"]),
                )
            )
    for title, metric, names in FIGURE_SECTIONS:
        rows = metric_rows(metric)
        if swept and metric != "setup_time":
            continue
        if not rows.empty or figs(names):
            sections.append(Section(title, [Table("", rows, metric_empty)], figs(names)))
    if run.claims:
        sections.append(Section("Claims", [Table("", pd.DataFrame(run.claims))]))
    sections.append(
        Section(
            "Every measured metric (median, exact 95% order-statistic interval when n >= 6)",
            [Table("", everything, metric_empty)],
            collapsed=True,
        )
    )
    failed = failures(run.samples, bindings)
    if not failed.empty:
        failed["test"] = failed["test"].replace("", "cell setup")
    sections.append(Section("Every failure, with its reason", [Table("", failed, SWEEP_EMPTY)], collapsed=True))
    return sections


def answer_figures(run: Run, fig_dir: Path, recs) -> list[tuple[str, str]]:
    """The answer's two pictures (harness/analysis/answer_figures.py), saved as PNG; (name, caption) of each made."""
    from harness.analysis.answer_figures import plot_forest, plot_matrix, plot_seed
    from harness.analysis.migration_section import plot_migration

    made = []
    for name, caption, fig in (
        (
            "answer-matrix.png",
            "Binding x mesh layout: works through the mesh / bypasses / fails, with TCP in / out "
            "x a plain pod; framed: the recommendation",
            plot_matrix(recs),
        ),
        (
            "answer-seed.png",
            "The seed post's pros and cons, each with its measured verdict (evidence in the table below)",
            plot_seed(run.claims),
        ),
        ("answer-forest.png", "TCP throughput x a plain pod with its interval, per layout", plot_forest(recs)),
        (
            "answer-migration.png",
            "Live migration: the largest gap each established TCP connection saw, in and out; red: never came back",
            plot_migration(run.samples, *_orders(run), {c.binding: c.name for r in recs for c in r.candidates}),
        ),
    ):
        if fig is not None:
            fig.savefig(fig_dir / name, dpi=100)
            plt.close(fig)
            made.append((name, caption))
    return made


def _orders(run: Run) -> tuple[list[str], list[str]]:
    """The run's bindings and mesh layouts in the page's order."""
    from harness.analysis.answer import binding_order, sidecar_order

    parsed = run.meta.get("scenario_parsed", {})
    return (
        binding_order(run.samples, parsed.get("strategies", [])),
        sidecar_order(run.samples, [str(s) for s in parsed.get("sidecars", [])]),
    )


def run_costs(run: Run) -> pd.DataFrame:
    """The run's judged cost table (costs.judged_costs), once per report: the recommendation, the answer's
    pictures and every cost table on the page read it."""
    from harness.analysis.answer import sidecar_order
    from harness.analysis.costs import judged_costs

    parsed = run.meta.get("scenario_parsed", {})
    bindings = binding_order(run.samples, parsed.get("strategies", []))
    layouts = sidecar_order(run.samples, [str(s) for s in parsed.get("sidecars", [])])
    return judged_costs(run.samples, run.meta, bindings, layouts)


def run_recommendations(run: Run, table: pd.DataFrame | None = None):
    from harness.analysis.answer import sidecar_order
    from harness.analysis.recommend import recommend

    parsed = run.meta.get("scenario_parsed", {})
    bindings = binding_order(run.samples, parsed.get("strategies", []))
    layouts = sidecar_order(run.samples, [str(s) for s in parsed.get("sidecars", [])])
    return recommend(run.samples, run.meta, bindings, layouts, table)


def answer_page(run: Run, figures: list[tuple[str, str]] | None = None, recs=None, table=None) -> str:
    """The decision page (answer.md) of a run, with the seed claims this run judged (claims.json in its own folder,
    never a neighbour's); the notebook shows the same at its top."""
    claims = ("this run", run.claims) if run.claims else None
    return decision_page(run.samples, run.meta, claims, guest_line(run.meta), figures, recs, table)


def write_report(run_dir: str | Path) -> tuple[Path, Path]:
    """answer.md (the decision page), report.md and report.html (the decision page, then figures beside their
    tables, then every metric and failure) and the figures as PNG."""
    run = load_run(run_dir)
    fig_dir = run.dir / "figures"
    fig_dir.mkdir(exist_ok=True)
    made: dict[str, str] = {}
    for name, caption, fig in figures(run):
        fig.savefig(fig_dir / name, dpi=110)
        plt.close(fig)
        made[name] = caption
    host = run.meta.get("host", {})
    table = run_costs(run)
    recs = run_recommendations(run, table)
    answer = answer_page(run, answer_figures(run, fig_dir, recs), recs, table)
    write_text(run.dir / "answer.md", answer)
    facts = [
        f"Run {run.run_id}: scenario {run.meta.get('scenario_name')}, status {run.meta.get('status')}, "
        f"{when(run.meta)}.",
        guest_line(run.meta),
        f"Host: {host.get('cpu_model')} x{host.get('cpus')}, kernel {host.get('kernel')}; "
        f"git {run.meta.get('git_sha')}.",
        "samples.parquet is the authoritative table; samples.csv is derived from it at the end.",
    ]
    sections = report_sections(run, made)
    md = [answer, "", f"# vmnetbench run {run.run_id}", "", *[f + "\n" for f in facts]]
    for section in sections:
        md += [f"## {section.title}", ""]
        for table in section.tables:
            md += ([f"_{table.caption}_", ""] if table.caption else []) + [markdown_table(table)]
        md += [f"![{c}](figures/{n})\n\n_{c}_\n" for n, c in section.figures]
    md_path = run.dir / "report.md"
    write_text(md_path, "\n".join(md))
    html_path = run.dir / "report.html"
    write_text(html_path, page(f"vmnetbench {run.run_id}", answer, facts, sections, fig_dir))
    return md_path, html_path
