"""Verdicts of `vmnetbench gate` and `compare` in the forms CI systems read: JUnit XML (one test case per judged
metric: regressed = failure, inconclusive = skipped with the reason, unchanged or improved = passed; GitLab,
Jenkins and GitHub test-report actions show it), and a Markdown summary a job can print (GitHub's
$GITHUB_STEP_SUMMARY, a merge-request note). Rows without a gate (`not gated`) were not judged and are left out
of both. The XML is written by junitparser."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from junitparser import Failure, JUnitXml, Skipped, TestCase, TestSuite

JUDGED_OUT = {"not gated"}
ORDER = {"regressed": 0, "inconclusive": 1, "improved": 2, "unchanged": 3}


def judged(verdicts: pd.DataFrame) -> pd.DataFrame:
    if verdicts.empty:
        return verdicts
    rows = verdicts[~verdicts.verdict.isin(JUDGED_OUT)]
    return rows.assign(_o=rows.verdict.map(ORDER)).sort_values("_o", kind="stable").drop(columns="_o")


def case_name(row: dict) -> str:
    """strategy/sidecar/test/direction/metric, with a sweep's MTUs where the row has them."""
    points = [f"{c}={int(row[c])}" for c in ("pod_mtu", "guest_mtu") if c in row and pd.notna(row[c])]
    return "/".join(
        [
            str(row["strategy"]),
            *points,
            str(row["sidecar"]),
            str(row["test"]),
            str(row["direction"]),
            str(row["metric"]),
        ]
    )


def _figures(row: dict) -> str:
    return (
        f"base median {row['median_base']:.4g} (n={row['n_base']}), new median {row['median_new']:.4g} "
        f"(n={row['n_new']}), ratio {row['ratio']:.3f}"
    )


def write_junit(verdicts: pd.DataFrame, path: Path, suite: str) -> Path:
    """One <testcase> per judged metric in one <testsuite> named `suite`."""
    test_suite = TestSuite(suite)
    for row in judged(verdicts).to_dict("records"):
        case = TestCase(case_name(row), classname=f"vmnetbench.{suite.split()[0]}")
        if row["verdict"] == "regressed":
            case.result = [Failure(f"regressed: {row['why']}", type_="regressed")]
        elif row["verdict"] == "inconclusive":
            case.result = [Skipped(f"inconclusive: {row['why']}")]
        case.system_out = f"{row['verdict']}: {_figures(row)}; {row['why']}"
        test_suite.add_testcase(case)
    xml = JUnitXml()
    xml.add_testsuite(test_suite)
    xml.write(str(path), pretty=True)
    return path


def markdown_summary(verdicts: pd.DataFrame, title: str) -> str:
    rows = judged(verdicts)
    counts = rows.verdict.value_counts() if not rows.empty else pd.Series(dtype=int)
    head = ", ".join(f"{int(counts.get(v, 0))} {v}" for v in ORDER)
    status = "passed"
    if counts.get("regressed", 0):
        status = "FAILED: a metric regressed"
    elif counts.get("inconclusive", 0):
        status = "passed, but some metrics could not be decided"
    lines = [
        f"### {title}: {status}",
        "",
        f"{head} ({len(rows)} judged).",
        "",
        "| verdict | metric | base | new | ratio | why |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows.to_dict("records"):
        why = str(row["why"]).replace("|", "/")
        lines.append(
            f"| {row['verdict']} | `{case_name(row)}` | {row['median_base']:.4g} (n={row['n_base']}) | "
            f"{row['median_new']:.4g} (n={row['n_new']}) | {row['ratio']:.3f} | {why} |"
        )
    return "\n".join(lines) + "\n"


def write_markdown(verdicts: pd.DataFrame, path: Path, title: str) -> Path:
    path.write_text(markdown_summary(verdicts, title))
    return path
