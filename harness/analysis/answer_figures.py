"""The two pictures the answer opens with: binding x mesh layout (works / bypasses / fails, each cell labelled with
its throughput ratio to a plain pod) and a forest plot of those ratios with their intervals, per layout. Both
draw the recommendation's own candidates (harness/analysis/recommend.py), so picture and sentence agree."""

from __future__ import annotations

import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from harness.analysis.answer import VERDICT_WORDS  # noqa: E402
from harness.analysis.costs import judged_stages  # noqa: E402
from harness.analysis.recommend import Candidate, Recommendation  # noqa: E402

COLOURS = {
    "through": "#3a9d5d",
    "bypasses": "#e0a526",
    "one way": "#e7c66b",
    "fails": "#c94040",
    "not measured": "#e6e6e6",
}
LEGEND = {
    "through": "works both ways (through the mesh)",
    "bypasses": "works, but bypasses the mesh or not in mTLS",
    "one way": "one direction only",
    "fails": "fails",
    "not measured": "not measured",
}


def cell_state(c: Candidate | None) -> str:
    if c is None:
        return "not measured"
    if c.works.through_mesh:
        return "through"
    if c.works.both_ways:
        return "bypasses"
    return "fails" if c.works.verdict in ("fails", "not measured") else "one way"


def _ratio_label(c: Candidate) -> str:
    """`in 0.91 [0.72, 1.15]` and `out ...` on two lines: the ratio with the interval the tables print."""
    parts = []
    for col in judged_stages()[0][1]:
        ci = c.costs.get(col.heading)
        if ci is not None and ci.n and math.isfinite(ci.estimate):
            interval = f" [{ci.low:.2f}, {ci.high:.2f}]" if ci.has_interval else f" (n={ci.n})"
            parts.append(f"{col.heading.split()[-1]} {ci.estimate:.2f}{interval}")
    return "\n".join(parts)


def _rows(recs: list[Recommendation]) -> list[tuple[str, str]]:
    """(binding, users' name) in the order first seen."""
    seen: dict[str, str] = {}
    for r in recs:
        for c in r.candidates:
            seen.setdefault(c.binding, c.name)
    return list(seen.items())


def plot_matrix(recs: list[Recommendation]):
    """Rows: bindings; columns: layouts. Colour: the path verdict; text: TCP in / out ratio to a plain pod; a thick
    black frame: the recommendation; a dashed frame: undecided between; grey name: not shipped in the release."""
    recs = [r for r in recs if r.candidates]
    if not recs:
        return None
    rows = _rows(recs)
    # a dual-stack run: a binding with IPv4 rows and none over IPv6 ran over IPv4 only (run.json says why)
    seen_by_where = {r.where: {c.binding for c in r.candidates} for r in recs}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.95 * len(recs) + 2.7), 0.55 * len(rows) + 2.2))
    for j, r in enumerate(recs):
        by_binding = {c.binding: c for c in r.candidates}
        v4 = seen_by_where.get(r.where.replace("IPv6", "IPv4"), set()) if "IPv6" in r.where else set()
        for i, (binding, _) in enumerate(rows):
            c = by_binding.get(binding)
            state = cell_state(c)
            chosen = binding in r.chosen
            style = {
                "linewidth": 3 if chosen else 0.6,
                "edgecolor": "black" if chosen else "white",
                "linestyle": "--" if chosen and len(r.chosen) > 1 else "-",
            }
            ax.add_patch(Rectangle((j, i), 1, 1, facecolor=COLOURS[state], **style))
            text = state if c is None else f"{'works' if state == 'through' else state}\n{_ratio_label(c)}"
            text = "IPv4 only" if c is None and binding in v4 else text
            text = text if c is None or state != "fails" else "fails"
            ax.text(
                j + 0.5,
                i + 0.5,
                text.strip(),
                ha="center",
                va="center",
                fontsize=6.8,
                color="white" if state in ("through", "fails") else "black",
            )
    ax.set_xlim(0, len(recs))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks(
        [j + 0.5 for j in range(len(recs))],
        [textwrap.fill(r.title + (f" ({r.where})" if r.where else ""), 22) for r in recs],
        fontsize=8,
    )
    ax.xaxis.tick_top()
    ax.set_yticks([i + 0.5 for i in range(len(rows))], [name for _, name in rows], fontsize=8)
    shipped = {c.binding: c.shipped for r in recs for c in r.candidates}
    for label, (binding, _) in zip(ax.get_yticklabels(), rows, strict=True):
        if not shipped.get(binding, True):
            label.set_color("#777777")
            label.set_fontstyle("italic")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    handles = [Patch(facecolor=COLOURS[k], label=v) for k, v in LEGEND.items() if k != "not measured"]
    handles += [Patch(facecolor="white", edgecolor="black", linewidth=2.5, label="recommended (dashed: undecided)")]
    ax.legend(handles=handles, fontsize=6.5, loc="upper center", bbox_to_anchor=(0.4, -0.01), ncol=2, frameon=False)
    fig.text(
        0.01, 0.01, "in / out: TCP throughput x a plain pod [95% interval] (grey italic: never shipped)", fontsize=7.5
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


FOREST_FLOOR = 0.03
"""The forest plot's left edge (x a plain pod): a ratio below it is drawn at the edge as `<` with its value, so
one collapsed path does not squash every other binding against 1."""


def plot_forest(recs: list[Recommendation]):
    """One panel per layout, bindings on a shared axis: each binding that works both ways there, its TCP in and out
    ratio to a plain pod with the interval the tables print (log scale, 1 = a plain pod); the recommendation in
    bold, never-shipped designs grey."""
    recs = [r for r in recs if any(c.works.both_ways for c in r.candidates)]
    if not recs:
        return None
    columns = judged_stages()[0][1]
    rows = [
        (b, name)
        for b, name in _rows(recs)
        if any(c.binding == b and c.works.both_ways for r in recs for c in r.candidates)
    ]
    index = {b: i for i, (b, _) in enumerate(rows)}
    fig, axes = plt.subplots(
        1, len(recs), figsize=(max(7.0, 2.6 * len(recs) + 2.6), 0.42 * len(rows) + 1.9), squeeze=False, sharey=True
    )
    markers = ["o", "s", "^"]
    high = 1.5
    for r in recs:
        for c in r.candidates:
            for col in columns:
                ci = c.costs.get(col.heading)
                if ci is not None and ci.has_interval and math.isfinite(ci.high):
                    high = max(high, min(ci.high, 20.0) * 1.2)
    for ax, r in zip(axes[0], recs, strict=True):
        for c in r.candidates:
            if not c.works.both_ways:
                continue
            i = index[c.binding]
            colour = "#3a9d5d" if c.works.through_mesh else "#e0a526"
            for k, col in enumerate(columns):
                ci = c.costs.get(col.heading)
                if ci is None or not ci.n or not math.isfinite(ci.estimate):
                    continue
                y = i + (k - (len(columns) - 1) / 2) * 0.28
                if ci.has_interval:
                    ax.plot([max(ci.low, FOREST_FLOOR), min(ci.high, high)], [y, y], color=colour, linewidth=1.6)
                if ci.estimate < FOREST_FLOOR:
                    ax.plot([FOREST_FLOOR], [y], marker="<", color=colour, markersize=6)
                    ax.annotate(
                        f"{ci.estimate:.3f}",
                        (FOREST_FLOOR, y),
                        xytext=(6, -3),
                        textcoords="offset points",
                        fontsize=6,
                        color=colour,
                    )
                else:
                    ax.plot(
                        [ci.estimate],
                        [y],
                        marker=markers[k % 3],
                        color=colour,
                        markersize=5,
                        markeredgecolor="black" if c.binding in r.chosen else colour,
                    )
        ax.axvline(1, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlim(FOREST_FLOOR * 0.8, high)
        ax.set_title(textwrap.fill(r.title + (f" ({r.where})" if r.where else ""), 30), fontsize=9)
        ax.grid(axis="x", alpha=0.3, which="major")
        ax.set_xlabel("x a plain pod (log)", fontsize=8)
        chosen = [index[b] for b in r.chosen if b in index]
        for i in chosen:
            ax.axhspan(i - 0.45, i + 0.45, color="#3a9d5d" if len(chosen) == 1 else "#bbbbbb", alpha=0.15, linewidth=0)
    axes[0][0].set_yticks(range(len(rows)), [name for _, name in rows], fontsize=8)
    shipped = {c.binding: c.shipped for r in recs for c in r.candidates}
    for label, (b, _) in zip(axes[0][0].get_yticklabels(), rows, strict=True):
        if not shipped.get(b, True):
            label.set_color("#777777")
            label.set_fontstyle("italic")
    axes[0][0].set_ylim(len(rows) - 0.5, -0.5)
    handles = [
        plt.Line2D([], [], marker=markers[k], color="#555555", linestyle="-", label=f"{col.heading}")
        for k, col in enumerate(columns)
    ]
    handles += [Patch(facecolor="#3a9d5d", alpha=0.3, label="recommended (grey: undecided between)")]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.suptitle(
        "TCP throughput x a plain pod, with intervals (green: through the mesh, amber: bypasses it; "
        "grey italic: never shipped)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


VERDICT_COLOURS = {"confirmed": "#3a9d5d", "partly": "#e0a526", "refuted": "#c94040"}


def plot_seed(claims: list[dict] | None):
    """The seed post's pros and cons as the post lists them (section, pro/con, claim), each with its measured
    verdict as a coloured box: the table people came for, at a glance (the page's table gives the evidence)."""
    rows = sorted(
        [c for c in claims or [] if c.get("seed_claims_it_here") and c.get("seed_section")],
        key=lambda c: (c.get("seed_order") or 0, c.get("kind") != "pro"),
    )
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(6.6, 0.27 * len(rows) + 0.9))
    section = None
    for i, c in enumerate(rows):
        if c["seed_section"] != section:
            section = c["seed_section"]
            ax.axhline(i, color="#999999", linewidth=0.6)
            ax.text(-0.02, i + 0.2, textwrap.fill(section, 16), ha="right", va="top", fontsize=7.5, fontweight="bold")
        ax.text(
            0.01,
            i + 0.5,
            f"{'+' if c['kind'] == 'pro' else '-'} {textwrap.shorten(c['claim'], 58)}",
            va="center",
            fontsize=7.5,
        )
        colour = VERDICT_COLOURS.get(c["verdict"], "#bbbbbb")
        ax.add_patch(Rectangle((0.72, i + 0.08), 0.27, 0.84, facecolor=colour, edgecolor="white"))
        ax.text(
            0.855,
            i + 0.5,
            VERDICT_WORDS.get(c["verdict"], c["verdict"]),
            ha="center",
            va="center",
            fontsize=7,
            color="white" if c["verdict"] in VERDICT_COLOURS else "black",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(len(rows), 0)
    ax.axis("off")
    ax.set_title("The seed post's pros (+) and cons (-), measured", fontsize=9, loc="left")
    fig.subplots_adjust(left=0.2, right=0.99, top=0.93, bottom=0.02)
    return fig
