"""The decision page (answer.md, and the top of report.md/html): for each mesh mode in the run, which binding
works in which direction, what it costs against a plain pod (`direct` under the same sidecar) as ratios with
95% bootstrap CIs, a ranking only where the CIs separate, and the seed claims that concern each binding.

Every number comes from samples.parquet: a ratio is median(binding) / median(direct) over the ok samples of
the same sidecar, test and direction, its CI a percentile bootstrap of that ratio with each side resampled
on its own (stats.ratio_ci); with fewer than MIN_N_FOR_CI samples on either side no CI is given."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from harness.analysis.findings import findings_for
from harness.analysis.results import sweep_points, varying_sweep_columns
from harness.analysis.stats import MedianCI, ratio_ci
from harness.analysis.summary import caveats

REFERENCE = "direct"
MIN_N_FOR_CI = 3


@dataclass(frozen=True)
class CostColumn:
    heading: str
    test: str  # a test label prefix: tcp_throughput, rr_tcp_closed, crr, ...
    direction: str | None  # None: ingress where measured
    metric: str
    better: str  # higher | lower


COSTS = [
    CostColumn("TCP in", "tcp_throughput", "ingress", "throughput", "higher"),
    CostColumn("TCP out", "tcp_throughput", "egress", "throughput", "higher"),
    CostColumn("RR p50", "rr_tcp_closed", "ingress", "rtt_p50", "lower"),
    CostColumn("RR p99", "rr_tcp_closed", "ingress", "rtt_p99", "lower"),
    CostColumn("CRR in", "crr", "ingress", "crr_rate", "higher"),
    CostColumn("CRR out", "crr", "egress", "crr_rate", "higher"),
    CostColumn("CPU/GB in", "tcp_throughput", "ingress", "cpu_per_gb", "lower"),
]


def binding_order(samples: pd.DataFrame, listed: list[str]) -> list[str]:
    """direct first, then the scenario's order, then anything else the samples hold."""
    seen = list(dict.fromkeys(samples["strategy"]))
    order = [s for s in listed if s in seen] + [s for s in seen if s not in listed]
    return ([REFERENCE] if REFERENCE in order else []) + [s for s in order if s != REFERENCE]


def sidecar_order(samples: pd.DataFrame, listed: list[str]) -> list[str]:
    seen = list(dict.fromkeys(samples["sidecar"]))
    return [s for s in listed if s in seen] + [s for s in seen if s not in listed]


def cost_test(samples: pd.DataFrame, family: str) -> str:
    """The test label a cost column reads: the family itself (`rr_tcp_closed`, never its `+load_*` runs), or
    when a sweep renamed it, its first swept value (`rr_tcp_closed/64B`, `tcp_throughput/P1`); the other
    values are in the page's sweep sections."""
    labels = samples.test.dropna().unique()
    if family in labels:
        return family
    swept = [t for t in labels if re.fullmatch(re.escape(family) + r"/\w+", t)]
    return min(swept, key=lambda t: int(re.sub(r"\D", "", t) or 0)) if swept else family


def _values(samples: pd.DataFrame, strategy: str, sidecar: str, col: CostColumn) -> pd.Series:
    df = samples[(samples.strategy == strategy) & (samples.sidecar == sidecar) & (samples.metric == col.metric)
                 & (samples.status == "ok") & (samples.test == cost_test(samples, col.test))]  # fmt: skip
    if col.direction is not None:
        df = df[df.direction == col.direction]
    return df["value"].dropna()


def ratio_to_direct(samples: pd.DataFrame, strategy: str, sidecar: str, col: CostColumn) -> MedianCI | None:
    mine, reference = _values(samples, strategy, sidecar, col), _values(samples, REFERENCE, sidecar, col)
    if mine.empty or reference.empty:
        return None
    ci = ratio_ci(mine, reference)
    return MedianCI(ci.median, ci.low, ci.high, min(len(mine), len(reference)))


UNITS = {"throughput": "Gbit/s", "rtt_p50": "us", "rtt_p99": "us", "crr_rate": "conn/s", "cpu_per_gb": "s/GB"}


def reference_value(samples: pd.DataFrame, sidecar: str, col: CostColumn) -> str:
    """The reference row: 1 by definition, with direct's own median so the ratios can be turned back."""
    values = _values(samples, REFERENCE, sidecar, col)
    return f"1 (= {values.median():.3g} {UNITS.get(col.metric, '')})" if len(values) else "-"


def format_ratio(ci: MedianCI | None) -> str:
    if ci is None:
        return "-"
    if ci.n < MIN_N_FOR_CI:
        return f"{ci.median:.2f} (n={ci.n}, no CI)"
    return f"{ci.median:.2f} [{ci.low:.2f}, {ci.high:.2f}] n={ci.n}"


@dataclass(frozen=True)
class Works:
    verdict: str  # both ways | ingress only | egress only | fails | not measured
    reason: str = ""


def works(samples: pd.DataFrame, strategy: str, sidecar: str) -> Works:
    """From every test's rows, per protocol and direction: a direction works when all its attempts
    succeeded. One verdict when TCP and UDP agree, else one per protocol ("TCP both ways; UDP egress only")."""
    cell = samples[(samples.strategy == strategy) & (samples.sidecar == sidecar) & (samples.test.fillna("") != "")
                   & (samples.test != "harness")]  # fmt: skip
    if cell.empty:
        setup = samples[(samples.strategy == strategy) & (samples.sidecar == sidecar) & (samples.status != "ok")]
        return Works("fails" if not setup.empty else "not measured", _common(list(setup.reason.fillna(""))))
    verdicts, reasons = {}, []
    for protocol, rows in cell.groupby(cell.protocol.fillna("tcp"), sort=True):
        per_direction, bypassed = {}, []
        for direction in ("ingress", "egress"):
            d = rows[rows.direction == direction]
            if not d.empty:
                failed = d[d.status != "ok"]
                per_direction[direction] = failed.empty
                reasons += [r for r in failed.reason.fillna("") if r]
                paths = set(d["path"].dropna()) if "path" in d.columns else set()
                if failed.empty and "bypassed" in paths:  # it works, but not through the mesh's proxy
                    bypassed.append(direction)
        verdict = _direction_verdict(per_direction)
        if bypassed:
            verdict += f", {' and '.join(bypassed)} bypassing the mesh"
        verdicts[str(protocol).upper()] = verdict
    if len(set(verdicts.values())) == 1:
        return Works(next(iter(verdicts.values())), _common(reasons))
    return Works("; ".join(f"{p} {v}" for p, v in verdicts.items()), _common(reasons))


def mesh_matrix(samples: pd.DataFrame, bindings: list[str], sidecars: list[str]) -> list[str]:
    """One line per binding, one column per mesh layout of the run (none, sidecars, ambient): does it work,
    which way, and does the traffic cross the mesh's proxy."""
    if len(sidecars) < 2:
        return []
    lines = ["## Which binding works with which mesh layout", "",
             "`bypassing the mesh`: the connection works, but the mesh proxy's own counters did not carry its bytes",
             "(so no mesh policy, telemetry or mTLS applies to it). `ambient`: Istio ambient as KubeVirt's pod gets",
             "it; `ambient-reroute`: with the istio.io/reroute-virtual-interfaces annotation.", "",
             "| binding | " + " | ".join(sidecars) + " |", "|---|" + "---|" * len(sidecars)]  # fmt: skip
    for b in bindings:
        cells = [works(samples, b, s) for s in sidecars]
        if all(c.verdict == "not measured" for c in cells):
            continue
        lines.append(f"| {b} | " + " | ".join(c.verdict + (f": {c.reason[:60]}" if c.reason else "") for c in cells)
                     + " |")  # fmt: skip
    return [*lines, ""]


def _direction_verdict(per_direction: dict[str, bool]) -> str:
    ok_in, ok_out = per_direction.get("ingress", False), per_direction.get("egress", False)
    verdict = {(True, True): "both ways", (True, False): "ingress only", (False, True): "egress only",
               (False, False): "fails"}[(ok_in, ok_out)]  # fmt: skip
    if len(per_direction) == 1:
        direction = next(iter(per_direction))
        verdict = f"{direction} only measured" if per_direction[direction] else "fails"
    return verdict


def _common(reasons: list[str]) -> str:
    reasons = [r for r in reasons if r]
    return max(set(reasons), key=reasons.count)[:160] if reasons else ""


def ranking(samples: pd.DataFrame, bindings: list[str], sidecar: str, col: CostColumn) -> str:
    """Bindings by median, `>` where the 95% CIs separate, `≈` (indistinguishable) where they overlap."""
    from harness.analysis.stats import median_ci

    cis = []
    for b in bindings:
        values = _values(samples, b, sidecar, col)
        if len(values):
            cis.append((b, median_ci(values)))
    if len(cis) < 2:
        return ""
    cis.sort(key=lambda item: item[1].median, reverse=col.better == "higher")
    text = cis[0][0]
    for (_, prev), (name, ci) in zip(cis, cis[1:], strict=False):
        separated = (
            prev.n >= MIN_N_FOR_CI
            and ci.n >= MIN_N_FOR_CI
            and (prev.low > ci.high if col.better == "higher" else prev.high < ci.low)
        )
        text += (" > " if separated else " ≈ ") + name
    return text


def claims_for(claims: list[dict] | None, strategy: str) -> str:
    if not claims:
        return ""
    mine = [c for c in claims if c.get("strategy") == strategy and c.get("seed_claims_it_here")]
    return "; ".join(f'"{c["claim"]}": {c["verdict"]}' for c in mine)


def latest_claims(results_root: Path) -> tuple[str, list[dict]] | None:
    """The newest claims run beside this run (vmnetbench claims writes claims.json into its own run folder)."""
    import json

    found = sorted(results_root.glob("*/claims.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    return found[-1].parent.name, json.loads(found[-1].read_text())


def decision_page(samples: pd.DataFrame, meta: dict, claims: tuple[str, list[dict]] | None, guest: str) -> str:
    from harness.analysis.provenance import busy_host_warnings

    parsed = meta.get("scenario_parsed", {})
    bindings = binding_order(samples, parsed.get("strategies", []))
    sidecars = sidecar_order(samples, [str(s) for s in parsed.get("sidecars", [])])
    runtime = meta.get("runtime") or parsed.get("runtime") or "netns"
    lines = [
        f"# Which binding, and what it costs: run {meta.get('run_id', '?')}",
        "",
        f"{guest} Runtime: {runtime}"
        + (" (pods are network namespaces, not containers)." if runtime == "netns" else "."),
        "",
        *[f"**Busy host:** {w}.\n" for w in busy_host_warnings(meta)],
        "Costs are ratios to `direct` (a plain pod, no VM) under the same sidecar: median(binding) /",
        "median(direct) with a 95% bootstrap CI; above 1 is better for TCP and CRR rates, below 1 is better for",
        f"latency and CPU/GB. n < {MIN_N_FOR_CI} samples: no CI. Rankings use `>` only where CIs separate,",
        "`≈` where they do not (indistinguishable in this run). RR is TCP ping-pong, CRR connect-request-response.",
        "CPU/GB counts the bed's processes plus the machine-wide kernel time (forwarding, NAT, softirq).",
        "",
    ]
    claim_run, claim_rows = claims if claims else ("", None)
    lines += mesh_matrix(samples, bindings, sidecars)
    for where, point in sweep_points(samples):  # one set of tables per swept pod/guest MTU
        for sidecar in sidecars:
            lines += [f"## Sidecar: {sidecar}" + (f" ({where})" if where else ""), ""]
            lines.append("| binding | works | " + " | ".join(c.heading for c in COSTS) + " |")
            lines.append("|---|---|" + "---|" * len(COSTS))
            notes = []
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
                ratios = [reference_value(point, sidecar, c) if b == REFERENCE
                          else format_ratio(ratio_to_direct(point, b, sidecar, c)) for c in COSTS]  # fmt: skip
                for i, c in enumerate(COSTS):  # a tool's known behaviour, printed beside the number it explains
                    mine = point[(point.strategy == b) & (point.sidecar == sidecar) & (point.metric == c.metric)]
                    mine = mine[mine.direction == c.direction] if c.direction else mine
                    for finding in findings_for(mine):
                        if finding.text not in notes:
                            notes.append(finding.text)
                        ratios[i] += f" ‡ ({notes.index(finding.text) + 1})"
                lines.append(f"| {b} | {verdict} | " + " | ".join(ratios) + " |")
            lines.append("")
            lines += [f"({i}) {reason}" for i, reason in enumerate(notes, 1)]
            if notes:
                lines.append("")
            for col in (COSTS[0], COSTS[1], COSTS[4], COSTS[5]):
                order = ranking(point, bindings, sidecar, col)
                if order:
                    lines.append(f"- {col.heading} ({'higher' if col.better == 'higher' else 'lower'} first): {order}")
            lines.append("")
    lines += sweep_sections(samples, bindings)
    if claim_rows:
        lines += [f"## Seed claims (claims run {claim_run})", ""]
        for b in bindings:
            text = claims_for(claim_rows, b)
            if text:
                lines.append(f"- **{b}**: {text}")
        lines.append("")
    else:
        lines += ["## Seed claims", "", "No claims run in this results folder: `vmnetbench claims` judges them.", ""]
    return "\n".join(lines)


def sweep_sections(samples: pd.DataFrame, bindings: list[str]) -> list[str]:
    """For every swept parameter: which binding wins at which value (sweep.winners)."""
    from harness.analysis import sweep

    lines = []
    for parameter in sweep.swept(samples):
        lines += [f"## What changes with the {sweep.PARAMETERS[parameter]}", "",
                  "Ranked by median per value; `>` where the 95% CIs separate, `≈` where they do not.", ""]  # fmt: skip
        lines += [f"- {line}" for line in sweep.winners(samples, parameter, bindings)]
        lines.append("")
    return lines


def all_metrics(samples: pd.DataFrame, bindings: list[str]) -> pd.DataFrame:
    """Every metric the run measured, per cell: median with its 95% CI (n >= 3) and n, plus failed counts."""
    from harness.analysis.stats import median_ci

    rank = {b: i for i, b in enumerate(bindings)}
    rows = []
    keys = ["strategy", *varying_sweep_columns(samples), "sidecar", "test", "direction", "metric", "unit"]
    frame = samples.assign(test=samples.test.fillna(""), unit=samples.unit.fillna(""))
    for key, g in frame.groupby(keys, sort=False, dropna=False):
        ok = g[g.status == "ok"]["value"].dropna()
        ci = median_ci(ok)
        text = "-" if ci.n == 0 else (f"{ci.median:.3g}" if ci.n < MIN_N_FOR_CI else
                                      f"{ci.median:.3g} [{ci.low:.3g}, {ci.high:.3g}]")  # fmt: skip
        rows.append({**dict(zip(keys, key, strict=True)), "median [95% CI]": text, "n": ci.n,
                     "failed": int((g.status != "ok").sum())})  # fmt: skip
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_r"] = table.strategy.map(lambda b: rank.get(b, len(rank)))
    return table.sort_values(["_r", "sidecar", "test", "direction", "metric"], kind="stable").drop(columns="_r")


def failures(samples: pd.DataFrame, bindings: list[str]) -> pd.DataFrame:
    """Every failed cell, test and direction with its reason and how many repetitions failed."""
    failed = samples[samples.status != "ok"].assign(test=samples.test.fillna(""), reason=samples.reason.fillna(""))
    if failed.empty:
        return pd.DataFrame(columns=["strategy", "sidecar", "test", "direction", "status", "reason", "repetitions"])
    rank = {b: i for i, b in enumerate(bindings)}
    keys = ["strategy", *varying_sweep_columns(samples), "sidecar", "test", "direction", "status", "reason"]
    table = (failed.groupby(keys, sort=False, dropna=False)
             .repetition.nunique().rename("repetitions").reset_index())  # fmt: skip
    table["_r"] = table.strategy.map(lambda b: rank.get(b, len(rank)))
    return table.sort_values(["_r", "sidecar", "test", "direction"], kind="stable").drop(columns="_r")
