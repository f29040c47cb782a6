"""Reports, the notebook and the regression gate, on a committed fixture (a real small run) and on runs with
planted changes. No network namespaces needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from harness.analysis.compare import compare_runs
from harness.analysis.report import write_report

REPO = Path(__file__).resolve().parent.parent
FIXTURE = REPO / "tests" / "fixtures" / "run-small"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_copy(tmp_path):
    dst = tmp_path / FIXTURE.name
    shutil.copytree(FIXTURE, dst)
    return dst


def test_report_builds_every_figure_as_valid_png(run_copy):
    md, page = write_report(run_copy)
    text = md.read_text()
    figures = sorted((run_copy / "figures").glob("*.png"))
    names = {f.name for f in figures}
    assert {
        "throughput.png",
        "latency_percentiles.png",
        "latency_cdf.png",
        "crr_rate.png",
        "udp_goodput.png",
        "cpu_per_gb.png",
        "setup_time.png",
    } <= names
    for f in figures:
        assert f.read_bytes()[:8] == PNG_MAGIC and f.stat().st_size > 5000
        assert f"figures/{f.name}" in text
    html = page.read_text()
    assert html.count("data:image/png;base64,") == len(figures)  # self-contained
    assert "Mesh traversal" in text and "through-mesh" in text


def test_notebook_executes_against_the_fixture():
    nb = nbformat.read(REPO / "notebooks" / "report.ipynb", as_version=4)
    env_before = os.environ.get("VMNB_RUN")
    os.environ["VMNB_RUN"] = str(FIXTURE)
    try:
        resources = {"metadata": {"path": str(REPO / "notebooks")}}
        NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources).execute()
    finally:
        if env_before is None:
            os.environ.pop("VMNB_RUN", None)
        else:
            os.environ["VMNB_RUN"] = env_before
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
    # the decision page is the first thing the notebook shows, the same text as answer.md
    shown = next(o for o in outputs if o.output_type in ("display_data", "execute_result"))
    page = shown["data"]["text/markdown"]
    assert page.startswith("# Which binding, and what it costs") and "### No mesh [`none`]" in page
    for cell in nb.cells:  # each plot appears once: the returned figure is not shown a second time
        if cell.cell_type == "code" and cell.source.startswith("plot_"):
            assert sum("image/png" in o.get("data", {}) for o in cell.outputs) == 1, cell.source


def test_notebook_command_of_the_readme_works_from_the_repo_root(tmp_path):
    """`VMNB_RUN=<relative path> jupyter execute notebooks/report.ipynb`, run from the repository root."""
    rel = FIXTURE.relative_to(REPO)
    nb_copy = tmp_path / "report.ipynb"
    shutil.copy(REPO / "notebooks" / "report.ipynb", nb_copy)
    done = subprocess.run(
        [str(Path(sys.executable).parent / "jupyter"), "execute", "--inplace", str(nb_copy)],
        cwd=REPO,
        env={**os.environ, "VMNB_RUN": str(rel)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = [o for c in nbformat.read(nb_copy, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]


def synthetic_run(path: Path, values: dict[str, np.ndarray]) -> Path:
    """A run folder whose throughput samples are the given values per strategy (one row per repetition)."""
    rows = []
    for strategy, vals in values.items():
        for rep, v in enumerate(vals, start=1):
            rows.append(
                {
                    "run_id": path.name,
                    "strategy": strategy,
                    "sidecar": "none",
                    "test": "tcp_throughput",
                    "direction": "ingress",
                    "repetition": rep,
                    "metric": "throughput",
                    "value": float(v),
                    "unit": "Gbit/s",
                    "status": "ok",
                }
            )
    path.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(path / "samples.parquet", index=False)
    (path / "run.json").write_text(json.dumps({"run_id": path.name}))
    return path


def test_compare_flags_a_planted_30_percent_regression_and_not_noise(tmp_path):
    rng = np.random.default_rng(7)
    direct = 15 + rng.normal(0, 0.5, 8)
    proxy = 10 + rng.normal(0, 0.4, 8)
    base = synthetic_run(tmp_path / "base", {"direct": direct, "nat-proxy": proxy})
    same = synthetic_run(tmp_path / "same", {"direct": direct, "nat-proxy": proxy})
    noisy = synthetic_run(
        tmp_path / "noisy", {"direct": direct + rng.normal(0, 0.3, 8), "nat-proxy": proxy + rng.normal(0, 0.3, 8)}
    )
    worse = synthetic_run(tmp_path / "worse", {"direct": direct, "nat-proxy": proxy * 0.7})
    for other in (same, noisy):
        assert (compare_runs(base, other)["verdict"] != "regressed").all()
    verdicts = compare_runs(base, worse).set_index(["strategy", "metric"])["verdict"]
    assert verdicts[("nat-proxy", "throughput")] == "regressed"
    assert verdicts[("nat-proxy", "throughput/direct")] == "regressed"  # the within-run ratio sees it too
    assert verdicts[("direct", "throughput")] == "unchanged"
    # The CLI exits non-zero on a regression and zero otherwise, and writes its verdicts as JSON.
    cli = [sys.executable, "-m", "harness.cli", "compare"]
    bad = subprocess.run([*cli, str(base), str(worse)], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode == 1 and "regressed" in bad.stdout
    good = subprocess.run([*cli, str(base), str(same)], capture_output=True, text=True, cwd=REPO)
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads((same / "compare-base.json").read_text())


def test_compare_writes_junit_xml_and_a_markdown_summary_for_ci(tmp_path):
    """One JUnit test case per judged metric: regressed = <failure>, inconclusive = <skipped> with the reason,
    the others pass; metrics without a gate are not test cases. The Markdown summary says the outcome first."""
    rng = np.random.default_rng(11)
    direct = 15 + rng.normal(0, 0.5, 8)
    base = synthetic_run(
        tmp_path / "base", {"direct": direct, "nat-proxy": 10 + rng.normal(0, 0.4, 8), "slirp": [2.0, 2.1]}
    )
    worse = synthetic_run(
        tmp_path / "worse", {"direct": direct, "nat-proxy": 7 + rng.normal(0, 0.3, 8), "slirp": [2.0, 2.05]}
    )
    junit, summary = tmp_path / "out" / "compare.xml", tmp_path / "out" / "summary.md"
    junit.parent.mkdir()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "compare",
            str(base),
            str(worse),
            "--junit",
            str(junit),
            "--markdown",
            str(summary),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    verdicts = compare_runs(base, worse)
    judged = verdicts[verdicts.verdict != "not gated"]
    root = ElementTree.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    assert len(suites) == 1 and suites[0].get("name").startswith("compare base -> worse")
    cases = {c.get("name"): c for c in suites[0].iter("testcase")}
    assert len(cases) == len(judged) == int(suites[0].get("tests"))
    for row in judged.itertuples():
        case = cases[f"{row.strategy}/{row.sidecar}/{row.test}/{row.direction}/{row.metric}"]
        kinds = [child.tag for child in case if child.tag in ("failure", "skipped", "error")]
        assert kinds == {"regressed": ["failure"], "inconclusive": ["skipped"]}.get(row.verdict, []), row
        if row.verdict == "inconclusive":
            assert row.why in case.find("skipped").get("message")
    assert int(suites[0].get("failures")) == (judged.verdict == "regressed").sum() >= 1
    assert int(suites[0].get("skipped")) == (judged.verdict == "inconclusive").sum() >= 1
    text = summary.read_text()
    assert text.startswith("### compare base -> worse: FAILED") and "`nat-proxy/none/tcp_throughput/ingress/" in text
    # a place the reports cannot be written is refused in one sentence, before any work
    missing = str(tmp_path / "missing" / "x.xml")
    cli = [sys.executable, "-m", "harness.cli", "compare"]
    refused = subprocess.run(
        [*cli, str(base), str(worse), "--junit", missing], capture_output=True, text=True, cwd=REPO
    )
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--junit" in refused.stderr


def test_ratio_gate_survives_a_machine_twice_as_fast(tmp_path):
    """Absolute numbers double on a faster machine; the proxy's share of `direct` is what regressed."""
    rng = np.random.default_rng(3)
    direct = 15 + rng.normal(0, 0.5, 8)
    base = synthetic_run(tmp_path / "base", {"direct": direct, "nat-proxy": direct * 0.8})
    faster = synthetic_run(tmp_path / "faster", {"direct": direct * 2, "nat-proxy": direct * 2 * 0.55})
    verdicts = compare_runs(base, faster).set_index(["strategy", "metric"])["verdict"]
    assert verdicts[("nat-proxy", "throughput")] == "improved"
    assert verdicts[("nat-proxy", "throughput/direct")] == "regressed"


def test_compare_says_inconclusive_when_samples_cannot_decide(tmp_path):
    """2 vs 2 repetitions: below the test's minimum of 3 a side no difference can be shown; the verdict is
    inconclusive (exit 4), never unchanged, even for a 30% drop."""
    base = synthetic_run(tmp_path / "base", {"direct": [15.0, 15.2], "nat-proxy": [10.0, 10.1]})
    worse = synthetic_run(tmp_path / "worse", {"direct": [15.1, 15.0], "nat-proxy": [7.0, 7.1], "slirp": [1.0, 1.1]})
    meta = json.loads((worse / "run.json").read_text())
    (worse / "run.json").write_text(json.dumps({**meta, "tools": {"iperf3": "iperf 3.99"}}))
    verdicts = compare_runs(base, worse)
    assert set(verdicts.verdict) == {"inconclusive"}
    assert verdicts.why.str.contains("needs at least 3 a side").all()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", "compare", str(base), str(worse)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "only in worse (not compared): slirp/none/tcp_throughput/ingress" in done.stdout
    assert "tool iperf3" in done.stdout and "iperf 3.99" in done.stdout


def test_answer_page_numbers_trace_to_samples(run_copy):
    """Two numbers of answer.md recomputed from samples.parquet: masquerade's TCP-in and CRR-in ratios to
    direct under no sidecar (the fixture predates blocks: unpaired, and n = 1: the ratio, and no interval)."""
    from harness.analysis.stats import welch_ratio_interval

    write_report(run_copy)
    answer = (run_copy / "answer.md").read_text()
    assert answer.startswith("# Which binding") and "Guest: netns" in answer and "Runtime: netns" in answer
    df = pd.read_parquet(run_copy / "samples.parquet")
    ok = df[(df.status == "ok") & (df.sidecar == "none") & (df.direction == "ingress")]

    def ratio(test: str, metric: str) -> float:
        sel = ok[(ok.test == test) & (ok.metric == metric)]
        mine, direct = sel[sel.strategy == "masquerade"].value, sel[sel.strategy == "direct"].value
        return welch_ratio_interval(mine, direct).estimate

    row = next(
        line for line in answer.split("### No mesh [`none`]", 1)[1].splitlines() if line.startswith("| masquerade")
    )
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == f"{ratio('tcp_throughput', 'throughput'):.2f} (n=1 < 3, no interval)"
    assert cells[6] == f"{ratio('crr', 'crr_rate'):.2f} (n=1 < 3, no interval)"
    assert "unpaired" in answer  # a run without blocks says how it was judged
    report = (run_copy / "report.md").read_text()
    assert report.startswith(answer.rstrip()[:200])  # the decision page opens the report
    assert "Every measured metric" in report and "udp_jitter" in report and "Every failure" in report


def test_a_known_tool_behaviour_is_printed_beside_the_number_it_explains(run_copy):
    """answer.md marks passt's netns egress with ‡ and the pasta finding (issue 15), and nothing else."""
    samples = pd.read_parquet(run_copy / "samples.parquet")
    masq = samples[samples.strategy == "masquerade"].assign(strategy="passt")
    samples = pd.concat([samples, masq], ignore_index=True)
    samples.to_parquet(run_copy / "samples.parquet", index=False)
    write_report(run_copy)
    page = (run_copy / "answer.md").read_text()
    tables = page.split("### No mesh [`none`]", 1)[1]  # the per-layout tables, past the binding x layout overview
    passt_row = next(line for line in tables.splitlines() if line.startswith("| passt |"))
    cells = passt_row.split("|")
    assert "‡" in cells[4] and "‡" not in cells[3]  # TCP out carries the mark, TCP in does not
    assert "pasta egress (netns guest -> peer) is erratic" in page and "benchmarks/pasta_egress.py" in page
    assert not any("‡" in line for line in page.splitlines() if line.startswith("| masquerade |"))


def test_the_decision_page_of_a_run_that_did_not_complete_says_it_is_partial(run_copy):
    meta = json.loads((run_copy / "run.json").read_text())
    write_report(run_copy)
    assert "Partial run" not in (run_copy / "answer.md").read_text()
    for status in ("killed", "interrupted", "running"):
        (run_copy / "run.json").write_text(json.dumps({**meta, "status": status}))
        write_report(run_copy)
        head = (run_copy / "answer.md").read_text().split("## ", 1)[0]  # before the first table
        assert "**Partial run:**" in head, status
