"""The decision page (answer.md, and the top of report.md/html): for each mesh mode in the run, which binding
works in which direction, what it costs against a plain pod (`direct` under the same sidecar) as ratios with
intervals that name their method, level and n, rankings decided pairwise, and the seed claims per binding.

Every number comes from samples.parquet: a ratio is exp(mean per-block log ratio) to the direct measured
beside it (harness/analysis/blocks.py) with a t interval (Stein's when the run stopped on precision), or for a
run without blocks Welch's unpaired interval; below a method's minimum n the samples are shown instead of an
interval. Rankings: harness/analysis/ranking.py. The detail section gives Hodges-Lehmann with the Wilcoxon
interval (n >= 6) and the smallest change each ratio could have detected."""

from __future__ import annotations

import pandas as pd

from harness.analysis.blocks import block_log_ratios, cost_interval, has_blocks, log_ratios_of, precision_plans
from harness.analysis.costs import (
    REFERENCE,
    CostColumn,
    caveats,
    cost_columns,
    cost_key,
    cost_of,
    cost_test,
    format_ratio,
    istio_of,
    judged_costs,
    judged_metrics,
    judged_stages,
    layout_heading,
    layout_title,
    measured_columns,
    ranked_columns,
    sidecar_rank,
)
from harness.analysis.findings import findings_for
from harness.analysis.http_section import binding_lines, has_http, istio_method_lines
from harness.analysis.migration_section import migration_lines
from harness.analysis.paths import Works, _clip, works
from harness.analysis.ranking import rank_frame
from harness.analysis.recommend import RULE_TEXT, Recommendation, recommend
from harness.analysis.results import sweep_points, varying_sweep_columns
from harness.analysis.stats import (
    METHOD_TEXT,
    MIN_N,
    detectable_change,
    hodges_lehmann_interval,
    median_interval,
)
from harness.lab.vocabulary import Status
from harness.metrics.registry import spec
from harness.pod.mesh import mode_of


def binding_order(samples: pd.DataFrame, listed: list[str]) -> list[str]:
    """direct first, then the scenario's order, then anything else the samples hold."""
    seen = list(dict.fromkeys(samples["strategy"]))
    order = [s for s in listed if s in seen] + [s for s in seen if s not in listed]
    return ([REFERENCE] if REFERENCE in order else []) + [s for s in order if s != REFERENCE]


def sidecar_order(samples: pd.DataFrame, listed: list[str]) -> list[str]:
    """The run's mesh layouts: by the scenario's order of modes, each mode's client kinds together (outside,
    meshed; permissive, strict), then anything else the samples hold."""
    seen = list(dict.fromkeys(samples["sidecar"]))
    modes = [m for m in listed if any(mode_of(s) == m for s in seen)]
    modes += [m for m in dict.fromkeys(mode_of(s) for s in seen) if m not in modes]
    return sorted(seen, key=lambda s: (modes.index(mode_of(s)), sidecar_rank(s)))


def _values(samples: pd.DataFrame, strategy: str, sidecar: str, col: CostColumn) -> pd.Series:
    df = samples[
        (samples.strategy == strategy)
        & (samples.sidecar == sidecar)
        & (samples.metric == col.metric)
        & (samples.status == Status.OK)
        & (samples.test == cost_test(samples, col.test))
    ]
    return df[df.direction == col.direction]["value"].dropna()


def _measure(samples: pd.DataFrame, sidecar: str, col: CostColumn) -> pd.DataFrame:
    """Every binding's rows of one cost column under one sidecar (what a ranking and its intervals read)."""
    return samples[
        (samples.sidecar == sidecar)
        & (samples.metric == col.metric)
        & (samples.direction == col.direction)
        & (samples.test == cost_test(samples, col.test))
    ]


def reference_value(samples: pd.DataFrame, sidecar: str, col: CostColumn) -> str:
    """The reference row: 1 by definition, with direct's own median so the ratios can be turned back."""
    values = _values(samples, REFERENCE, sidecar, col)
    return f"1 (= {values.median():.3g} {spec(col.metric).unit})" if len(values) else "no ok sample"


def kubevirt_lines(samples: pd.DataFrame, bindings: list[str]) -> list[str]:
    """Which KubeVirt release the pods are modelled on, and every binding that is not in its core (a plugin, a
    research design that never shipped), from the rows' own `kubevirt` and `binding_status` columns."""
    releases = [r for r in dict.fromkeys(samples.get("kubevirt", pd.Series(dtype=object)).dropna()) if r]
    if not releases:
        return []
    status = (
        samples.dropna(subset=["binding_status"]).drop_duplicates("strategy").set_index("strategy")["binding_status"]
    )
    outside = [f"{b} ({status[b]})" for b in bindings if b in status and status[b] not in ("core", "plain pod", "")]
    text = (
        f"**KubeVirt release modelled: {', '.join(releases)}** (the launcher pod's annotations: under ambient, a "
        "masquerade pod is rerouted since 1.7)."
    )
    if set(samples.get("runtime", pd.Series(dtype=object)).dropna()) == {"kubernetes"}:
        text = (
            f"**KubeVirt release the manifests were written for: {', '.join(releases)}** (the cluster's own "
            "version is in the runtime line above)."
        )
    if outside:
        text += " Not in its core: " + "; ".join(outside) + "."
    return [text, ""]


def mesh_matrix(
    samples: pd.DataFrame, bindings: list[str], sidecars: list[str], ipv6_left_out: dict[str, list[str]] | None = None
) -> list[str]:
    """One line per binding, one column per mesh layout of the run (none, sidecars, ambient): does it work,
    which way, and does the traffic cross the mesh's proxy; per sweep point (a dual-stack run's IPv4 and IPv6).
    `ipv6_left_out` (run.json's, reason -> cell labels): the cells a dual-stack run measured over IPv4 only, whose
    IPv6 cell says `IPv4 only` and why."""
    if len(sidecars) < 2:
        return []
    points = sweep_points(samples)
    why_not_ipv6 = {label: reason for reason, labels in (ipv6_left_out or {}).items() for label in labels}
    ipv4_only: dict[str, str] = {}  # reason -> its mark in the table
    lines = [
        "## Which binding works with which mesh layout",
        "",
        "`bypassing the mesh`: the connection works, but the mesh proxy's own counters did not carry its bytes",
        "(so no mesh policy, telemetry or mTLS applies to it). `ambient`: Istio ambient on the pod the modelled",
        "KubeVirt release makes (its annotations); `ambient-reroute`: with the",
        "istio.io/reroute-virtual-interfaces annotation naming the binding's VM interfaces, whatever the",
        "release writes. An outside client is",
        "plaintext from outside the mesh; a meshed client is a pod with its own proxy: its sidecar's mTLS or its",
        "ztunnel's HBONE, and `not inside mTLS` means both proxies carried the bytes but the destination's own",
        "counters and access log do not show them arriving in mTLS/HBONE with the client's SPIFFE identity.",
        "",
        "| binding | "
        + ("where | " if len(points) > 1 else "")
        + " | ".join(layout_heading(s) for s in sidecars)
        + " |",
        "|---|" + "---|" * (len(sidecars) + (len(points) > 1)),
    ]
    for b in bindings:
        for where, point in points:  # a dual-stack run: one line per family, each its own verdicts
            cells = [works(point, b, s) for s in sidecars]
            if "IPv6" in where:
                for i, s in enumerate(sidecars):
                    if (reason := why_not_ipv6.get(f"{b}-{s}")) is not None:
                        mark = ipv4_only.setdefault(reason, f"IPv4 only ({chr(ord('a') + len(ipv4_only))})")
                        cells[i] = Works(mark)
            if all(c.verdict == "not measured" for c in cells):
                continue
            verdicts = [c.verdict + (f": {_clip(c.reason, 90)}" if c.reason else "") for c in cells]
            lines.append(f"| {b} | " + (f"{where} | " if len(points) > 1 else "") + " | ".join(verdicts) + " |")
    lines += ["", *[f"- {mark}: {reason}" for reason, mark in ipv4_only.items()]] if ipv4_only else []
    return [*lines, ""]


def backend_comparison(
    samples: pd.DataFrame, table: pd.DataFrame, bindings: list[str], sidecars: list[str]
) -> list[str]:
    """Istio's iptables and nftables backends side by side, per layout the run measured with both: each binding's
    verdict and TCP cost under each (every cost against the direct of its own layout and backend), the verdicts
    that differ in bold and named in a line above the table."""
    pairs = [(s, s + "+nftables") for s in sidecars if "+nftables" not in s and s + "+nftables" in sidecars]
    if not pairs:
        return []
    columns = judged_stages()[0][1]  # the first stage's columns: TCP throughput both ways
    lines = [
        "## Istio's redirection backends side by side",
        "",
        "Each mode measured with istio-iptables / istio-cni's iptables rules and with the native nftables backend",
        "(`global.nativeNftables`), in the same blocks; each cost is against the direct of its own layout and",
        "backend. A verdict that differs between the backends is in bold.",
        "",
    ]
    for (old, new), (where, point) in ((p, w) for p in pairs for w in sweep_points(samples)):
        differ, rows = [], []
        for b in bindings:
            verdicts = [works(point, b, s) for s in (old, new)]
            if all(v.verdict == "not measured" for v in verdicts):
                continue
            same = verdicts[0].verdict == verdicts[1].verdict
            if not same:
                differ.append(f"{b} ({verdicts[0].verdict} / {verdicts[1].verdict})")
            cells = [v.verdict if same else f"**{v.verdict}**" for v in verdicts]
            for col in columns:
                cells += [format_ratio(cost_of(table, where, s, b, col)) if b != REFERENCE else "1" for s in (old, new)]
            rows.append(f"| {b} | " + " | ".join(cells) + " |")
        heads = ["works (iptables)", "works (nftables)"]
        heads += [f"{c.heading} ({backend})" for c in columns for backend in ("iptables", "nftables")]
        lines += [
            f"### {layout_title(old, istio_of(samples, old))} vs nftables" + (f" ({where})" if where else ""),
            "",
            ("Verdicts that differ: " + "; ".join(differ) + ".") if differ else "No binding's verdict differs.",
            "",
            "| binding | " + " | ".join(heads) + " |",
            "|---|" + "---|" * len(heads),
            *rows,
            "",
        ]
    return lines


def ranking(
    samples: pd.DataFrame,
    bindings: list[str],
    sidecar: str,
    col: CostColumn,
    precision: tuple[int, float] | None = None,
) -> str:
    """Tiers decided pairwise (ranking.rank_frame): `>` only where every pair it separates differs."""
    frame = _measure(samples, sidecar, col)
    frame = frame[frame.strategy.isin(bindings)]
    result = rank_frame(frame, higher_is_better=col.better == "higher", precision=precision)
    if result is None:
        return ""
    text = result.text().replace("*", "\\*")  # a literal star in Markdown, not emphasis
    if result.marked:
        text += (
            " (\\* differs from direct also after Holm over the line's bindings, (\\*) only by its own 95% "
            "interval; either way not every pair in its tier is decided)"
        )
    return text


RUNTIME_NOTES = {
    "netns": " (pods are network namespaces, not containers).",
    "kubernetes": (
        " (measured on a cluster from `vmnetbench manifests` and read back with `vmnetbench ingest`: "
        "Kubernetes {kubernetes}, KubeVirt {kubevirt}, Istio {istio}). The harness reads neither the "
        "bed's CPU nor the mesh's counters there: no CPU columns, and a row under a mesh has path "
        "`unverified` (whether its bytes crossed the proxy is not known)."
    ),
}


def cluster_versions(meta: dict) -> dict[str, str]:
    cluster = (meta.get("host") or {}).get("cluster") or {}
    return {k: cluster.get(k) or "not saved" for k in ("kubernetes", "kubevirt", "istio")}


def folded(title: str, body: list[str]) -> list[str]:
    """A section closed until opened: <details> in HTML (Python-Markdown's md_in_html renders the Markdown inside;
    GitHub does too)."""
    if not body:
        return []
    return ['<details markdown="1">', f"<summary>{title}</summary>", "", *body, "", "</details>", ""]


def answer_lines(recs: list[Recommendation]) -> list[str]:
    """The recommendation per layout, one line each, then the rule that made them."""
    if not recs:
        return ["No mesh layout has a binding measured against a plain pod: nothing to recommend.", ""]
    lines = []
    for r in recs:
        head, _, rest = r.line.partition(": ")
        lines.append(f"- **{head}**: {rest}")
    return [*lines, ""]


def picture_lines(figures: list[tuple[str, str]]) -> list[str]:
    """The answer's pictures: the matrix and the seed's verdicts side by side in one paragraph (the page sets them
    in two columns), the forest plot under them."""
    pairs = [f for f in figures if f[0] in ("answer-matrix.png", "answer-seed.png")]
    rest = [f for f in figures if f not in pairs]
    lines = [" ".join(f"![{caption}](figures/{name})" for name, caption in pairs), ""] if pairs else []
    return lines + [line for name, caption in rest for line in (f"![{caption}](figures/{name})", "")]


def names_legend(recs: list[Recommendation]) -> list[str]:
    """The users' names this page uses beside the harness's (the rows', the tables' and the CLI's)."""
    layouts = {r.title: r.layout for r in recs}
    bindings = {c.name: c.binding for r in recs for c in r.candidates}
    pairs = [f"{user} = `{ours}`" for user, ours in [*layouts.items(), *bindings.items()] if user != ours]
    return [f"<small>Names: {'; '.join(pairs)}.</small>", ""] if pairs else []


def why_lines(recs: list[Recommendation]) -> list[str]:
    """Per layout, what the answer rests on: the costs of the tier, what would decide it, who was disqualified."""
    lines = [RULE_TEXT, ""]
    for r in recs:
        if r.details:
            lines += [
                f"**{r.title}**" + (f" ({r.where})" if r.where else "") + ":",
                "",
                *[f"- {_clip(d, 600)}" for d in r.details],
                "",
            ]
    return lines


VERDICT_WORDS = {"confirmed": "holds", "refuted": "does not hold", "partly": "partly holds"}
"""A claim's verdict in the seed table's words (page, picture and terminal)."""


def claim_evidence(row: dict) -> str:
    """One line: the rule's reason, else the facts it read."""
    if row.get("why"):
        return str(row["why"])
    parts = []
    for ref, value in (row.get("evidence") or {}).items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        parts.append(f"{ref.partition('.')[2].replace('_', ' ')} {shown if shown not in ('', []) else 'none'}")
    return "; ".join(parts)


def seed_table(claims: list[dict] | None, where: str) -> list[str]:
    """The post's pros/cons table, each claim beside its measured verdict and one line of evidence."""
    if not claims:
        return [
            "No claims in this run (it predates the claims phase, or its scenario sets `claims: false`): "
            "`vmnetbench claims` judges them; `make bench` now does in the same run.",
            "",
        ]
    mine = sorted(
        [c for c in claims if c.get("seed_claims_it_here") and c.get("seed_section")],
        key=lambda c: (c.get("seed_order") or 0, c.get("kind") != "pro"),
    )
    lines = [
        f"The post's pros and cons, each judged by a probe ({where}). Verdicts: holds / partly holds / does not "
        "hold / not measurable here (with what would measure it).",
        "",
        "| the post's section | pro or con | the post says | measured | evidence |",
        "|---|---|---|---|---|",
    ]
    for c in mine:
        verdict = VERDICT_WORDS.get(c["verdict"], c["verdict"])
        lines.append(
            f"| {c['seed_section']} | {c['kind']} | {c['claim']} | **{verdict}** | {_clip(claim_evidence(c), 220)} |"
        )
    return [*lines, ""]


def decision_page(
    samples: pd.DataFrame,
    meta: dict,
    claims: tuple[str, list[dict]] | None,
    guest: str,
    figures: list[tuple[str, str]] | None = None,
    recs: list[Recommendation] | None = None,
    table: pd.DataFrame | None = None,
) -> str:
    """answer.md: the answer per layout, its pictures and the seed's table first; costs per layout next; method and
    detail folded. `figures`: (file under figures/, caption) of the answer's pictures; `claims`: (where, rows)."""
    from harness.analysis.provenance import busy_host_warnings

    parsed = meta.get("scenario_parsed", {})
    bindings = binding_order(samples, parsed.get("strategies", []))
    sidecars = sidecar_order(samples, [str(s) for s in parsed.get("sidecars", [])])
    runtime = meta.get("runtime") or parsed.get("runtime") or "netns"
    if table is None:  # every cost the page shows, computed once
        table = judged_costs(samples, meta, bindings, sidecars)
    recs = recommend(samples, meta, bindings, sidecars, table) if recs is None else recs
    claim_run, claim_rows = claims if claims else ("", None)
    lines = [
        f"# Which binding, and what it costs: run {meta.get('run_id', '?')}",
        "",
        "Contents: [the answer](#the-answer) · [the seed's table](#the-seeds-table-measured) · "
        "[costs per layout](#costs-per-layout) · method and detail (folded, at the end)",
        "",
        *partial_run_lines(meta),
        *[f"**Busy host:** {w}.\n" for w in busy_host_warnings(meta)],
        "## The answer",
        "",
        *answer_lines(recs),
        *picture_lines(figures or []),
        *names_legend(recs),
        *folded("Why: the rule, and what each answer rests on", why_lines(recs)),
        f"{guest} Runtime: {runtime}" + RUNTIME_NOTES.get(runtime, ".").format(**cluster_versions(meta)),
        "",
        *kubevirt_lines(samples, bindings),
        *backend_comparison(samples, table, bindings, sidecars),
        "## The seed's table, measured",
        "",
        *seed_table(claim_rows, f"claims {claim_run}" if claim_run else ""),
        "## Costs per layout",
        "",
        "Ratios to a plain pod (`direct`) under the same layout; above 1 is better for TCP and CRR rates, below 1",
        'for latency and CPU/GB. Each interval names its method, level and n (the method is under "Method" below).',
        "",
    ]
    stein = precision_plans(meta)
    judged = judged_metrics(meta)
    for where, point in sweep_points(samples):  # one set of tables per swept pod/guest MTU
        for sidecar in sidecars:
            lines += cost_table(point, table, bindings, sidecar, where, stein, judged)
    lines += migration_lines(samples, bindings, sidecars, {c.binding: c.name for r in recs for c in r.candidates})
    lines += istio_method_lines(samples)
    lines += binding_lines(samples, bindings, sidecars, block_log_ratios(samples) if has_blocks(samples) else None)
    lines += sweep_sections(samples, bindings)
    method = [
        *method_lines(samples, meta),
        "Rankings: tiers separated by `>` only where every binding above is better than every binding below",
        "(against direct: its interval excludes 1; between bindings: paired t on per-block log differences,",
        "Holm-adjusted over the line's pairs); bindings in one tier are not all decided. RR is TCP ping-pong,",
        "CRR connect-request-response. CPU/GB counts the bed's processes plus the machine-wide kernel time",
        "(forwarding, NAT, softirq).",
        "",
    ]
    lines += folded("Method", method)
    lines += folded(
        "Which binding works with which mesh layout, as a table",
        mesh_matrix(samples, bindings, sidecars, meta.get("ipv6_left_out")),
    )
    lines += folded("What this run could detect", detail_section(samples, bindings, sidecars, meta))
    lines += folded("Precision: which ratios reached the target", precision_lines(meta))
    return "\n".join(lines)


def cost_table(
    point: pd.DataFrame,
    table: pd.DataFrame,
    bindings: list[str],
    sidecar: str,
    where: str,
    stein,
    judged: set[str],
) -> list[str]:
    """One layout's cost table (one sweep point) rendered from the judged cost table, its notes and rankings."""
    title = layout_title(sidecar, istio_of(point, sidecar))
    lines = [f"### {title}" + (f" ({where})" if where else "") + f" [`{sidecar}`]", ""]
    # only the cost columns this run measured: a column of dashes answers nothing
    costs = measured_columns(table, where, sidecar)
    if not costs and not has_http(point):
        costs = cost_columns()[:2]  # nothing measured at all: say so in the usual columns
    lines.append("| binding | works | " + " | ".join(c.heading for c in costs) + " |")
    lines.append("|---|---|" + "---|" * len(costs))
    notes: list[str] = []
    for b in bindings:
        w = works(point, b, sidecar)
        if w.verdict == "not measured":
            continue
        verdict = w.verdict if not w.reason else f"{w.verdict} ({len(notes) + 1})"
        if w.reason:
            notes.append(w.reason)
        caveat = caveats(point).get((b, sidecar))
        if caveat:  # the numbers are measured but do not stand for the real binding
            notes.append(caveat)
            verdict += f" † ({len(notes)})"
        cells = [
            reference_value(point, sidecar, c) if b == REFERENCE else format_ratio(cost_of(table, where, sidecar, b, c))
            for c in costs
        ]
        for i, c in enumerate(costs):  # a tool's known behaviour, printed beside the number it explains
            mine = point[(point.strategy == b) & (point.sidecar == sidecar) & (point.metric == c.metric)]
            mine = mine[mine.direction == c.direction] if c.direction else mine
            for finding in findings_for(mine):
                if finding.text not in notes:
                    notes.append(finding.text)
                cells[i] += f" ‡ ({notes.index(finding.text) + 1})"
        lines.append(f"| {b} | {verdict} | " + " | ".join(cells) + " |")
    lines.append("")
    if notes:  # a heading line before each list, so the notes and the rankings render as two lists
        lines += ["Notes:", "", *[f"- ({i}) {reason}" for i, reason in enumerate(notes, 1)], ""]
    orders = [
        (col, ranking(point, bindings, sidecar, col, stein if col.metric in judged else None))
        for col in ranked_columns()
    ]
    if any(order for _, order in orders):
        lines += ["Rankings:", ""]
    for col, order in orders:
        if order:
            lines.append(f"- {col.heading} ({'higher' if col.better == 'higher' else 'lower'} first): {order}")
    return [*lines, ""]


def precision_lines(meta: dict) -> list[str]:
    """Every judged ratio of a precision run: reached or not, and why (the terminal prints one line per cause)."""
    record = (meta or {}).get("precision") or {}
    rows = record.get("ratios") or []
    if not rows:
        return []
    lines = [
        f"Target +-{record.get('target', 0):.0%} ({record.get('method', 'Stein')}); {record.get('blocks_run')} "
        f"blocks run, {record.get('stopped_by')}.",
        "",
        "| ratio | blocks | half-width | reached | why not |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        width = f"+-{r['half_width']:.1%}" if r.get("half_width") is not None else "-"
        lines.append(
            f"| {r['ratio']} | {r['blocks']} | {width} | {'yes' if r['reached'] else 'no'} | "
            f"{_clip(r.get('why') or '', 160)} |"
        )
    return [*lines, ""]


def partial_run_lines(meta: dict) -> list[str]:
    """A run that did not complete says so before any number: its blocks are fewer than planned and the bindings
    measured last may be missing."""
    status = (meta or {}).get("status")
    if status in (None, "complete"):
        return []
    why = {
        "killed": "the harness was killed (found dead by `vmnetbench clean`)",
        "interrupted": "the run was interrupted (SIGINT or SIGTERM)",
        "running": "the run has not finished (or died before `vmnetbench clean` marked it)",
    }.get(status, f"status {status}")
    return [
        f"**Partial run:** {why}; these tables hold only the cells completed before that, so a binding may be "
        "missing and intervals rest on fewer blocks than planned.",
        "",
    ]


def method_lines(samples: pd.DataFrame, meta: dict) -> list[str]:
    """What the ratios are and which method their intervals come from, as the run allows."""
    if not has_blocks(samples):
        why = (
            "ingested from a cluster, one sitting per cell"
            if meta.get("runtime") == "kubernetes"
            else ("made before the paired design")
        )
        return [
            "Costs are ratios to `direct` (a plain pod, no VM) under the same sidecar. This run has no blocks",
            f"({why}): its intervals are unpaired, {METHOD_TEXT['welch']}, 95%,",
            f"printed from n >= {MIN_N['welch']} a side.",
            "",
        ]
    text = [
        "Costs are ratios to `direct` (a plain pod, no VM) under the same sidecar, each binding judged against",
        "the direct measured just before and after it in every block: `(t 95% n=B)` is "
        f"{METHOD_TEXT['t']} (B blocks, printed from n >= {MIN_N['t']}; fewer: the per-block ratios).",
    ]
    precision = precision_plans(meta)
    if precision:
        record = meta.get("precision") or {}
        text.append(
            f"This run stopped on precision +-{precision[1]:.0%}: `(stein ...)` is {METHOD_TEXT['stein']} "
            f"for the judged metrics ({', '.join(sorted(judged_metrics(meta)))}; the others keep `t`) "
            f"(each ratio's Stein pilot: its first {precision[0]} blocks"
            + (
                f", the length with the fewest expected blocks at the shared {record['pilot_blocks']}-block "
                f"pilot's median spread {record['pooled_sd']:.3f}"
                + (
                    f", at most the {record['affordable_blocks']} blocks every open cell could have in the time left"
                    if record.get("affordable_blocks") == record.get("stein_pilot_blocks")
                    else ""
                )
                if record.get("pooled_sd") is not None and record.get("stein_pilot_blocks")
                else ""
            )
            + f"; {record.get('blocks_run', '?')} blocks run, "
            f"{record.get('stopped_by', '?')})."
        )
    return [*text, ""]


DETECTABLE_MIN_N = 6


def detail_section(samples: pd.DataFrame, bindings: list[str], sidecars: list[str], meta: dict) -> list[str]:
    """Per ratio: both estimators with their intervals, and the smallest change the run could have detected
    (80% power, two-sided 5%), so a reader knows what `not separated` can and cannot mean."""
    if not has_blocks(samples):
        return []
    lines = [
        "## What this run could detect",
        "",
        f"t: {METHOD_TEXT['t']}; HL: {METHOD_TEXT['wilcoxon']} (n >= {MIN_N['wilcoxon']}); detectable: the",
        "smallest change of the ratio this many blocks with this spread detect with 80% power at 5% (from",
        "n >= 6 blocks: below that the spread it rests on is itself too uncertain to state).",
        "",
        "| sidecar | binding | ratio | blocks | t 95% | HL [Wilcoxon 95%] | detectable change |",
        "|---|---|---|---|---|---|---|",
    ]
    body: list[str] = []
    for where, point in sweep_points(samples):  # each sweep point on its own: its blocks, its directs
        ratios = block_log_ratios(point)
        for sidecar in sidecars:
            for b in bindings:
                if b == REFERENCE:
                    continue
                for col in cost_columns():
                    body += _detail_row(point, ratios, b, sidecar, col, where)
    return [*lines, *body, ""] if body else []


def _detail_row(
    point: pd.DataFrame, ratios: pd.DataFrame, b: str, sidecar: str, col: CostColumn, where: str
) -> list[str]:
    key = cost_key(point, b, sidecar, col)
    series = log_ratios_of(ratios, key).to_numpy()
    if not series.size:
        return []
    t = cost_interval(point, ratios, key)
    hl = hodges_lehmann_interval(series)
    # stated only from n >= 6: from 3 blocks its own spread estimate makes it anything from a fifth to twice the
    # truth (at a true 39%, 7.7-71% was printed)
    change = detectable_change(series) if series.size >= DETECTABLE_MIN_N else None
    t_text = f"{t.estimate:.3f} [{t.low:.3f}, {t.high:.3f}]" if t and t.has_interval else "n too small"
    hl_text = f"{hl.estimate:.3f} [{hl.low:.3f}, {hl.high:.3f}]" if hl.has_interval else f"n < {MIN_N['wilcoxon']}"
    detectable = f"+-{change:.0%}" if change is not None else f"n < {DETECTABLE_MIN_N}"
    label = f"{sidecar} ({where})" if where else sidecar
    return [f"| {label} | {b} | {col.heading} | {series.size} | {t_text} | {hl_text} | {detectable} |"]


def sweep_sections(samples: pd.DataFrame, bindings: list[str]) -> list[str]:
    """For every swept parameter: which binding wins at which value (sweep.winners)."""
    from harness.analysis import sweep

    lines = []
    for parameter in sweep.swept(samples):
        lines += [
            f"## What changes with the {sweep.PARAMETERS[parameter]}",
            "",
            "Per value, tiers decided pairwise as in the rankings above (`>` only where every pair it "
            "separates differs).",
            "",
        ]
        lines += [f"- {line}" for line in sweep.winners(samples, parameter, bindings)]
        lines.append("")
    return lines


def all_metrics(samples: pd.DataFrame, bindings: list[str]) -> pd.DataFrame:
    """Every metric the run measured, per cell: median with its exact 95% order-statistic interval (n >= 6) and
    n, plus failed counts."""
    rank = {b: i for i, b in enumerate(bindings)}
    rows = []
    keys = ["strategy", *varying_sweep_columns(samples), "sidecar", "test", "direction", "metric", "unit"]
    frame = samples.assign(test=samples.test.fillna(""), unit=samples.unit.fillna(""))
    for key, g in frame.groupby(keys, sort=False, dropna=False):
        ok = g[g.status == Status.OK]["value"].dropna()
        ci = median_interval(ok)
        text = (
            "-"
            if ci.n == 0
            else (
                f"{ci.estimate:.3g} [{ci.low:.3g}, {ci.high:.3g}]"
                if ci.has_interval
                else f"{ci.estimate:.3g} (range {ok.min():.3g}-{ok.max():.3g})"
            )
        )
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "median [exact 95%, n >= 6]": text,
                "n": ci.n,
                "failed": int((g.status != Status.OK).sum()),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_r"] = table.strategy.map(lambda b: rank.get(b, len(rank)))
    return table.sort_values(["_r", "sidecar", "test", "direction", "metric"], kind="stable").drop(columns="_r")


def failures(samples: pd.DataFrame, bindings: list[str]) -> pd.DataFrame:
    """Every failed cell, test and direction with its reason and how many repetitions failed."""
    failed = samples[samples.status != Status.OK].assign(test=samples.test.fillna(""), reason=samples.reason.fillna(""))
    if failed.empty:
        return pd.DataFrame(columns=["strategy", "sidecar", "test", "direction", "status", "reason", "repetitions"])
    rank = {b: i for i, b in enumerate(bindings)}
    keys = ["strategy", *varying_sweep_columns(samples), "sidecar", "test", "direction", "status", "reason"]
    table = failed.groupby(keys, sort=False, dropna=False).repetition.nunique().rename("repetitions").reset_index()
    table["_r"] = table.strategy.map(lambda b: rank.get(b, len(rank)))
    return table.sort_values(["_r", "sidecar", "test", "direction"], kind="stable").drop(columns="_r")
