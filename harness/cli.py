"""The `vmnetbench` command line: a thin layer that parses options, asks the layers below and maps their
outcomes to exit statuses. Each command imports the layers it uses inside its function: they bring pandas, scipy,
pydantic and matplotlib (about 2 s), which `--help`, `clean`, `doctor` and `engine` do not need (0.5 s)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

import strategies  # noqa: F401 - the top layer injects the bindings: each class registers its declarations
from harness.lab.names import RUN_ID_PATTERN, check_run_id

app = typer.Typer(help="Measure how a VM in a pod reaches the pod network next to a sidecar.", no_args_is_help=True)
# Wide enough for the summary table when output goes to a file or CI log.
console = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "200")))
DEFAULT_RESULTS = Path("results")
EXIT_INCOMPLETE = 1  # the run ended early (an error of the harness stopped it)
EXIT_BAD_INPUT = 2  # bad input: one line on stderr, nothing created
EXIT_HARNESS_ERROR = 3  # the run completed, but some measurements failed because of the harness, not the path


@app.command()
def run(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML, e.g. scenarios/smoke.yaml.")],
    results: Annotated[Path, typer.Option(help="Folder that receives results/<run id>/.")] = DEFAULT_RESULTS,
    run_id: Annotated[str | None, typer.Option(help="Six hex digits; drawn at random if not given.")] = None,
    guest: Annotated[
        str | None, typer.Option(help="The guest for this run, overriding the scenario's: netns or qemu.")
    ] = None,
    repetitions: Annotated[
        int | None, typer.Option(help="Rounds for this run, overriding the scenario's (1 to 1000).")
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Refuse to start a run whose estimate exceeds this: 15m, 900s, 1h (sweeps grow fast); "
            "with --precision, also the time after which no block is added."
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="Add blocks until every binding's ratio to direct is within +-this (95%, Stein's "
            "two-stage rule): 10%, 0.05. The scenario's `precision` otherwise."
        ),
    ] = None,
    runtime: Annotated[
        str | None, typer.Option(help="Where pods live, overriding the scenario's: netns or docker.")
    ] = None,
    dns_capture: Annotated[
        bool | None,
        typer.Option("--dns-capture/--no-dns-capture", help="Ambient's DNS capture, overriding the scenario's."),
    ] = None,
) -> None:
    """Run a scenario: build beds, set up each strategy, measure, tear down, write results/<run id>/."""
    from harness.run.plan import Overrides, time_budget_problem, with_overrides
    from harness.run.scenario import ScenarioError, load_scenario

    try:
        parsed, text = load_scenario(scenario)
        fraction = parse_fraction(precision, "--precision") if precision is not None else None
        parsed = with_overrides(parsed, Overrides(guest, runtime, dns_capture, repetitions, fraction))
        parsed, left_out = parsed.for_guest()
        if left_out:
            console.print(f"{', '.join(left_out)} left out: it needs the QEMU guest (`--guest qemu`)")
        budget, given = None, "given with --time-budget"
        if time_budget is not None:
            budget = parse_duration(time_budget)
        elif parsed.time_budget_minutes:
            budget, given = parsed.time_budget_minutes * 60, "of the scenario's time_budget_minutes"
        if budget is not None and (problem := time_budget_problem(parsed, budget, given)):
            raise ValueError(problem)
        if run_id is not None:
            check_run_id(run_id)
            refuse_used_run_id(run_id, results)
        check_results_root(results)
    except (ScenarioError, ValueError) as e:
        fail(str(e))
    _require_root()
    measure_and_exit(parsed, text, scenario, results, run_id, budget)


def measure_and_exit(parsed, text: str, scenario: Path, results: Path, run_id: str | None, budget) -> None:
    """The checked run measured; its exit status: 0 complete, 1 incomplete, 3 harness errors in rows, 130/143
    interrupted (everything it made removed)."""
    from harness.analysis.results import ResultsFolderError, ResultsWriteError
    from harness.lab.session import RunIdInUse
    from harness.run.runner import Interrupted, run_scenario
    from harness.runtime.engine import EngineUnavailable
    from harness.runtime.registry import RUNTIMES, RuntimeUnavailable

    try:
        RUNTIMES[parsed.runtime].preflight(f"run {run_id or 'starting'}")  # before anything is created
        outcome = run_scenario(
            parsed, text, str(scenario), results_root=results, run_id=run_id, console=console, time_budget_s=budget
        )
    except (RuntimeUnavailable, RunIdInUse, ResultsFolderError, EngineUnavailable) as e:
        fail(str(e))
    except ResultsWriteError as e:  # the run happened, its results could not be finished: exit 1, one line
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(EXIT_INCOMPLETE) from None
    except Interrupted as e:  # before KeyboardInterrupt, its base class
        console.print(f"[yellow]interrupted ({e}); everything the run created was removed[/]")
        raise typer.Exit(143) from None
    except KeyboardInterrupt:
        console.print("[yellow]interrupted (SIGINT); everything the run created was removed[/]")
        raise typer.Exit(130) from None
    if outcome.status != "complete":
        raise typer.Exit(EXIT_INCOMPLETE)
    if outcome.harness_errors:
        console.print(
            f"[red]{outcome.harness_errors} row(s) failed because of the harness itself or its tools "
            "(reason 'harness error: ...', '<tool> printed no JSON ...' or '... exited before listening' "
            "in samples), not because of the network path[/]"
        )
        raise typer.Exit(EXIT_HARNESS_ERROR)


@app.command()
def report(
    run: Annotated[
        str | None, typer.Argument(help="A run folder or a run id in --results; the latest if omitted.")
    ] = None,
    results: Annotated[Path, typer.Option(help="Folder holding the runs.")] = DEFAULT_RESULTS,
    screenshot: Annotated[
        bool, typer.Option(help="Also render report.html in headless Chromium: report-1400px.png, report-narrow.png.")
    ] = False,
) -> None:
    """Write answer.md (the decision page), report.md, a self-contained report.html and PNG figures."""
    from harness.analysis.browser import BrowserError, screenshots
    from harness.analysis.report import write_report
    from harness.analysis.results import RunFolderError, load_meta

    run_dir = resolve_run(run, results) if run else latest_run(results)
    try:
        md, page = write_report(run_dir)
    except RunFolderError as e:
        fail(str(e))
    console.print(f"wrote {run_dir / 'answer.md'}\nwrote {md}\nwrote {page}\nfigures in {run_dir / 'figures'}")
    status = load_meta(run_dir).get("status")
    if status != "complete":  # the page opens with the same warning
        console.print(
            f"[yellow]partial: the run's status is {status!r} (still running, or ended early): the pages "
            "hold only the cells measured so far[/]"
        )
    if screenshot:
        try:
            for png in screenshots(page):
                console.print(f"wrote {png}")
        except BrowserError as e:
            fail(f"option --screenshot: {e}")


EXIT_REGRESSED = 1  # compare: some metric regressed beyond its gate
EXIT_INCONCLUSIVE = 4  # compare: nothing regressed, but some gated metric could not be decided


@app.command()
def compare(
    base: Annotated[str, typer.Argument(help="The baseline: a run folder or a run id in --results.")],
    new: Annotated[str, typer.Argument(help="The run to judge: a run folder or a run id in --results.")],
    results: Annotated[Path, typer.Option(help="Folder holding the runs (for run ids).")] = DEFAULT_RESULTS,
    gates: Annotated[Path | None, typer.Option(help="Gate thresholds (default benchmarks/gates.yaml).")] = None,
    output: Annotated[Path | None, typer.Option(help="Where to write the verdicts as JSON.")] = None,
    junit: Annotated[Path | None, typer.Option(help=JUNIT_HELP)] = None,
    markdown: Annotated[Path | None, typer.Option(help=MARKDOWN_HELP)] = None,
) -> None:
    """Judge NEW against BASE metric by metric. Exit 1 if a metric regressed, 4 if none did but some gated
    metric is inconclusive (too few samples, or a CI wider than the gate), 0 otherwise."""

    from harness.analysis.compare import DEFAULT_GATES, GatesError, NothingInCommon
    from harness.analysis.compare import compare as compare_runs
    from harness.analysis.results import RunFolderError
    from harness.lab.atomic import write_json

    base_dir, new_dir = resolve_run(base, results), resolve_run(new, results)
    try:
        for option, path in (("--output", output), ("--junit", junit), ("--markdown", markdown)):
            check_output_file(option, path)
    except ValueError as e:
        fail(str(e))
    try:
        result = compare_runs(base_dir, new_dir, gates or DEFAULT_GATES)
    except (RunFolderError, NothingInCommon, GatesError) as e:
        fail(str(e))
    verdicts = result.verdicts
    if verdicts.empty:
        fail(f"{base_dir} and {new_dir} share no metric to compare.")
    print_verdicts(verdicts, f"compare {base_dir.name} -> {new_dir.name}")
    print_left_out_and_environment(result, base_dir.name, new_dir.name)
    out = output or new_dir / f"compare-{base_dir.name}.json"
    try:
        write_json(out, verdicts.to_dict(orient="records"))
    except OSError as e:
        fail(f"option --output: cannot write {out} ({e.strerror or e}).")
    write_ci_reports(verdicts, junit, markdown, f"compare {base_dir.name} -> {new_dir.name}")
    console.print(
        f"{result.regressed} regressed, {int((verdicts.verdict == 'improved').sum())} improved, "
        f"{result.inconclusive} inconclusive, {len(verdicts)} compared; verdicts in {out}"
    )
    if result.regressed:
        raise typer.Exit(EXIT_REGRESSED)
    if result.inconclusive:
        raise typer.Exit(EXIT_INCONCLUSIVE)


def print_left_out_and_environment(result, base: str, new: str) -> None:
    """What only one run has, and how the two machines differed (a difference can explain a verdict)."""
    from rich.table import Table

    for name, cells in ((base, result.only_base), (new, result.only_new)):
        if cells:
            listed = "; ".join("/".join(str(p) for p in cell) for cell in cells)
            console.print(f"only in {name} (not compared): {listed}")
    if result.environment:
        env = Table(title="environment differences (a difference here can explain a verdict)")
        for col in ("what", base, new):
            env.add_column(col)
        for what, b, n in result.environment:
            env.add_row(what, str(b), str(n))
        console.print(env)


GATE_SCENARIO = Path("scenarios/gate.yaml")
SIDE_BY_SIDE_SCENARIO = Path("scenarios/gate-side-by-side.yaml")


@app.command()
def gate(
    scenario: Annotated[
        Path | None,
        typer.Option(help=f"The gate's scenario (default {GATE_SCENARIO}; with --against {SIDE_BY_SIDE_SCENARIO})."),
    ] = None,
    baseline: Annotated[
        Path | None, typer.Option(help="Stored ratios (default benchmarks/gate-baseline.json).")
    ] = None,
    save_baseline: Annotated[
        bool, typer.Option(help="Add this run's ratios to the stored baseline as one more sitting.")
    ] = False,
    ab: Annotated[tuple[str, str] | None, typer.Option(help="A/B mode: judge variant B against A, same run.")] = None,
    against: Annotated[
        str | None,
        typer.Option(help="Side by side: judge this tree against revision REV, both measured in the same blocks."),
    ] = None,
    blocks: Annotated[
        int | None,
        typer.Option(min=6, max=200, help="Blocks per side with --against (the signed-rank test needs 6 at least)."),
    ] = None,
    results: Annotated[Path, typer.Option(help="Folder that receives results/<run id>/.")] = DEFAULT_RESULTS,
    junit: Annotated[Path | None, typer.Option(help=JUNIT_HELP)] = None,
    markdown: Annotated[Path | None, typer.Option(help=MARKDOWN_HELP)] = None,
) -> None:
    """Run the gate scenario and judge each binding's within-run ratio to direct against the stored baseline;
    with --against REV, this tree against revision REV measured in the same blocks; with --ab A B, variant B
    against variant A in one run (both paired per block). Exit 1 if something regressed, 0 otherwise; inconclusive
    verdicts are listed but do not fail the gate."""
    from harness.analysis.gate import DEFAULT_BASELINE, GateError, judge_ab, judge_against_baseline, load_baseline
    from harness.analysis.gate import save_baseline as store
    from harness.analysis.results import load_meta, load_samples
    from harness.run.runner import run_scenario

    baseline = baseline or DEFAULT_BASELINE
    if against is not None:
        gate_against(against, scenario or SIDE_BY_SIDE_SCENARIO, blocks, results, junit, markdown)
        return
    scenario = scenario or GATE_SCENARIO
    parsed, text = gate_inputs(scenario, ab, None if save_baseline else baseline, results, junit, markdown)
    _require_root()
    # the verdicts are the gate's page; `vmnetbench report` writes the run's own if wanted
    outcome = run_scenario(parsed, text, str(scenario), results_root=results, console=console, write_page=False)
    if outcome.status != "complete":
        raise typer.Exit(EXIT_INCOMPLETE)
    samples, meta = load_samples(outcome.run_dir), load_meta(outcome.run_dir)
    if save_baseline:
        from harness.analysis.gate import run_ratios

        console.print(f"gate baseline stored in {store(run_ratios(samples), meta, baseline)}")
        return
    try:
        verdicts = judge_ab(samples, *ab) if ab else judge_against_baseline(samples, load_baseline(baseline))
    except GateError as e:
        fail(str(e))
    title = f"gate {'A/B ' + ' vs '.join(reversed(ab)) if ab else 'against ' + str(baseline)}"
    finish_gate(verdicts, title, junit, markdown, f"run {outcome.run_dir}", paired=bool(ab))


def gate_inputs(
    scenario: Path,
    ab: tuple[str, str] | None,
    baseline: Path | None,
    results: Path,
    junit: Path | None,
    markdown: Path | None,
) -> tuple:
    """The gate's scenario and its text, every input checked before anything is measured (`baseline` None: the
    run stores one instead of reading it)."""
    from harness.analysis.gate import GateError, load_baseline
    from harness.run.scenario import ScenarioError, load_scenario

    try:
        parsed, text = load_scenario(scenario)
        if ab:
            missing = [v for v in ab if v not in parsed.strategies]
            if missing:
                raise ValueError(
                    f"option --ab: {missing[0]!r} is not in {scenario}'s strategies ({', '.join(parsed.strategies)})"
                )
        elif baseline is not None:
            load_baseline(baseline)  # refuse before measuring when there is nothing to judge against
        check_results_root(results)
        check_output_file("--junit", junit)
        check_output_file("--markdown", markdown)
    except (ScenarioError, GateError, ValueError) as e:
        fail(str(e))
    return parsed, text


def finish_gate(verdicts, title: str, junit: Path | None, markdown: Path | None, where: str, paired=False) -> None:
    """The verdicts printed and written for CI, one summary line; exit 1 if something regressed."""
    print_verdicts(verdicts, title, paired=paired)
    write_ci_reports(verdicts, junit, markdown, title)
    regressed = int((verdicts.verdict == "regressed").sum())
    inconclusive = int((verdicts.verdict == "inconclusive").sum())
    console.print(f"gate: {regressed} regressed, {inconclusive} inconclusive, {len(verdicts)} judged; {where}")
    if regressed:
        raise typer.Exit(EXIT_REGRESSED)


def gate_against(
    rev: str, scenario: Path, blocks: int | None, results: Path, junit: Path | None, markdown: Path | None
) -> None:
    """`gate --against REV`: REV checked out beside this tree, both trees' blocks interleaved, judged paired."""
    from harness.analysis.gate import GateError, judge_side_by_side
    from harness.analysis.results import load_samples
    from harness.lab.names import new_run_id
    from harness.run.runner import signals_unwind
    from harness.run.scenario import ScenarioError, load_scenario
    from harness.run.sidebyside import SideBySideError, resolve_revision, run_side_by_side, worktree

    try:
        parsed, _ = load_scenario(scenario)
        commit = resolve_revision(rev)
        check_results_root(results)
        check_output_file("--junit", junit)
        check_output_file("--markdown", markdown)
    except (ScenarioError, SideBySideError, ValueError) as e:
        fail(str(e))
    _require_root()
    count = blocks or parsed.repetitions
    folder = results / f"gate-{new_run_id()}"
    console.print(
        f"gate side by side: this tree against {rev} ({commit[:12]}), {count} blocks each of {scenario}, "
        f"interleaved (results in {folder})"
    )
    try:  # SIGTERM unwinds too, so the worktree and the running block's bed are removed
        with signals_unwind(), worktree(commit, folder) as base_tree:
            base, new = run_side_by_side(scenario.resolve(), base_tree, count, folder, progress=console.print)
        verdicts = judge_side_by_side([load_samples(r) for r in base.runs], [load_samples(r) for r in new.runs])
    except (SideBySideError, GateError) as e:
        fail(str(e))
    except KeyboardInterrupt as e:  # Interrupted (SIGTERM) is one
        removed = "the worktree and the running block's bed were removed"
        console.print(f"[yellow]interrupted ({e or 'SIGINT'}); {removed}[/]")
        raise typer.Exit(130 if type(e) is KeyboardInterrupt else 143) from None
    finish_gate(
        verdicts, f"gate side by side against {rev} ({commit[:12]})", junit, markdown, f"runs in {folder}", True
    )


JUNIT_HELP = "Also write the verdicts as JUnit XML (regressed = failure, inconclusive = skipped) for a CI system."
MARKDOWN_HELP = "Also write a Markdown summary of the verdicts (e.g. $GITHUB_STEP_SUMMARY)."


def check_output_file(option: str, path: Path | None) -> None:
    """Refuse, before any work, a file the command could not write."""
    from harness.lab.paths import foreign_place

    if path is None:
        return
    if foreign_place(path):
        raise ValueError(f"option {option}: {foreign_place(path)}")
    if path.is_dir():
        raise ValueError(f"option {option}: {path} is a folder; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"option {option}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise ValueError(f"option {option}: the folder {parent} is not writable")


def write_ci_reports(verdicts, junit: Path | None, markdown: Path | None, title: str) -> None:
    from harness.analysis.ci_report import write_junit, write_markdown

    try:
        if junit:
            console.print(f"JUnit XML in {write_junit(verdicts, junit, title)}")
        if markdown:
            console.print(f"Markdown summary in {write_markdown(verdicts, markdown, title)}")
    except OSError as e:
        fail(f"could not write the CI reports: {e.strerror or e} ({e.filename})")


def print_verdicts(verdicts, title: str, paired: bool = False) -> None:
    from rich.table import Table

    table = Table(title=title)
    swept = [c for c in ("pod_mtu", "guest_mtu") if c in verdicts.columns]  # a sweep's cells, kept apart
    for col in ("strategy", *swept, "sidecar", "test", "dir", "metric", "n", "base", "new", "ratio", "verdict", "why"):
        table.add_column(col, overflow="fold")
    style = {"regressed": "red", "improved": "green", "inconclusive": "yellow"}
    for r in verdicts.to_dict("records"):
        v = f"[{style[r['verdict']]}]{r['verdict']}[/]" if r["verdict"] in style else r["verdict"]
        points = ["-" if r[c] != r[c] or r[c] is None else str(int(r[c])) for c in swept]
        table.add_row(
            r["strategy"],
            *points,
            r["sidecar"],
            r["test"],
            r["direction"],
            r["metric"],
            f"{r['n_base']}/{r['n_new']}",
            f"{r['median_base']:.4g}",
            f"{r['median_new']:.4g}",
            f"{r['ratio']:.3f}",
            v,
            r["why"],
        )
    console.print(table)
    if paired:
        console.print(
            "paired: BASE and NEW measured in the same blocks (two revisions block by block, or --ab's two "
            "variants in one run; exact one-sided Wilcoxon signed-rank test on the per-block log differences, "
            "ratio = Hodges-Lehmann), Holm-adjusted over every gated row; `unchanged` = the exact 90% signed-rank "
            "interval of the ratio within +-min_effect"
        )
        return
    console.print(
        "unpaired: BASE and NEW are separate sittings (one-sided Welch t on the logs, Mann-Whitney U where "
        "a metric has zeros), Holm-adjusted over every gated row; `unchanged` = the 90% interval of the "
        "ratio within +-min_effect"
    )


def resolve_run(run: str, results: Path) -> Path:
    """A run folder given as a path, or as a bare run id inside `results`."""
    path = Path(run)
    if path.is_dir() or "/" in run:
        return path
    if RUN_ID_PATTERN.fullmatch(run):
        candidate = results / run
        if candidate.is_dir():
            return candidate
        fail(f"run {run}: no folder {candidate}; give the run's folder or --results.")
    return path


def refuse_used_run_id(run_id: str, results: Path) -> None:
    """A run id already holding a ledger or a results folder is refused: reusing it would take over another run's
    ledger or mix two runs' rows."""
    from harness.lab.paths import STATE_DIR
    from harness.lab.state import ledger_exists

    if ledger_exists(run_id):
        raise ValueError(
            f"option --run-id: run id {run_id} is in use (ledger {STATE_DIR / run_id}.json exists); "
            f"choose another, or `vmnetbench clean {run_id}` if that run is dead"
        )
    if (results / run_id).exists():
        raise ValueError(f"option --run-id: {results / run_id} exists already; choose another run id")


def check_results_root(results: Path) -> None:
    from harness.lab.paths import results_root_problem

    problem = results_root_problem(results)
    if problem:
        raise ValueError(f"option --results: {problem}")
    if results.exists() and not results.is_dir():
        raise ValueError(f"option --results: {results} is not a folder")
    probe = results if results.exists() else next((p for p in results.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise ValueError(f"option --results: {results} is not a writable folder")


def latest_run(results: Path) -> Path:
    runs = [p for p in results.glob("*") if (p / "samples.parquet").exists()]
    if not runs:
        fail(f"no run with samples in {results}; run `make bench` first.")
    return max(runs, key=lambda p: (p / "samples.parquet").stat().st_mtime)


@app.command()
def clean(
    run_id: Annotated[str | None, typer.Argument(help="Only this run.")] = None,
    force: Annotated[
        bool, typer.Option(help="Stop RUN_ID's live harness (SIGTERM, then SIGKILL) and clean up.")
    ] = False,
) -> None:
    """Remove namespaces and processes that runs left behind (e.g. after a SIGKILL); a live run is left alone."""
    from harness.lab.cleanup import RunIsLive
    from harness.lab.cleanup import clean as do_clean
    from harness.runtime.registry import RUNTIMES

    if run_id is not None:
        try:
            check_run_id(run_id)
        except ValueError as e:
            fail(str(e))
    _require_root()
    try:
        report = do_clean(run_id, force=force, leftovers=[e.remove_leftovers for e in RUNTIMES.values()])
    except RunIsLive as e:
        fail(str(e))
    console.print(
        f"cleaned runs: {', '.join(report.runs) or 'none'}; "
        f"processes ended: {len(report.processes)}; namespaces removed: {len(report.namespaces)}"
    )
    for name in report.namespaces:
        console.print(f"  removed namespace {name}")
    for name in report.containers:
        console.print(f"  removed container {name}")
    for folder in report.killed_results:
        console.print(f"  marked killed: {folder}")
    if report.skipped_live_runs:
        console.print(f"left alone (harness still running): {', '.join(report.skipped_live_runs)}")


@app.command()
def claims(
    runtime: Annotated[str, typer.Option(help="Where pods live: netns or docker.")] = "netns",
    guest: Annotated[str, typer.Option(help="What the VM is: netns or qemu.")] = "netns",
    accel: Annotated[str, typer.Option(help="QEMU guest acceleration: auto, kvm or tcg.")] = "auto",
    strategy: Annotated[list[str] | None, typer.Option(help="Probe only these (repeatable); default all.")] = None,
    repetitions: Annotated[int, typer.Option(min=2, help="Throughput repetitions for the performance claims.")] = 5,
    results: Annotated[Path, typer.Option(help="Folder that receives results/<run id>/.")] = DEFAULT_RESULTS,
) -> None:
    """Probe every strategy and judge each claim of the seed post: claims.json and claims.md in the run folder."""
    from harness.claims.verdicts import load_claim_rows, print_claims, run_claims
    from harness.runtime.registry import RUNTIMES
    from strategies import STRATEGIES, strategy_class

    if runtime not in RUNTIMES:
        fail(f"option --runtime: unknown runtime {runtime!r}; allowed: {', '.join(RUNTIMES)}.")
    if guest not in ("netns", "qemu"):
        fail(f"option --guest: unknown guest {guest!r}; allowed: netns, qemu.")
    if accel not in ("auto", "kvm", "tcg"):
        fail(f"option --accel: unknown acceleration {accel!r}; allowed: auto, kvm, tcg.")
    for name in strategy or []:
        if name not in STRATEGIES:
            fail(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}.")
        if guest == "netns" and strategy_class(name).needs_qemu:
            fail(f"strategy {name!r} needs a VM: give --guest qemu.")
    try:
        check_results_root(results)
    except ValueError as e:
        fail(str(e))
    _require_root()
    spec = None
    if guest == "qemu":
        from harness.guests.qemu.accel import resolve_acceleration
        from harness.guests.spec import GuestSpec, QemuOptions
        from harness.lab.vocabulary import GuestKind

        options = QemuOptions(accel=accel)
        spec = GuestSpec(GuestKind.QEMU, options, resolve_acceleration(accel))
        console.print(f"QEMU guest: accel {spec.acceleration.accel} ({spec.acceleration.reason})")
    from harness.runtime.registry import RuntimeUnavailable

    try:
        RUNTIMES[runtime].preflight("claims")  # before anything is created
    except RuntimeUnavailable as e:
        fail(str(e))
    run_dir = run_claims(results, console, list(strategy) if strategy else None, repetitions, spec, runtime=runtime)
    print_claims(load_claim_rows(run_dir), console)
    console.print(f"claims: {run_dir / 'claims.md'}")


@app.command()
def describe(
    name: Annotated[str, typer.Argument(help="Strategy name.")],
    option: Annotated[list[str], typer.Option("--option", help="KEY=VALUE of the strategy's options.")] = [],  # noqa: B006
    sidecar: Annotated[str, typer.Option(help="Sidecar installed first: none, envoy-redirect, ...")] = "none",
    kubevirt: Annotated[
        str,
        typer.Option(
            help="KubeVirt release whose launcher pod is modelled: research-2018, "
            "1.6, 1.7, 1.8, 1.9 (default: the latest)."
        ),
    ] = "",
    istio: Annotated[
        str, typer.Option(help="Istio release whose mesh is installed: 1.24 ... 1.30 (default: the latest).")
    ] = "",
    istio_backend: Annotated[
        str, typer.Option(help="Istio's redirection backend: iptables (default) or nftables (1.27+; ambient 1.28+).")
    ] = "iptables",
    ipv6: Annotated[bool, typer.Option("--ipv6", help="A dual-stack bed: the IPv6 addresses and rules too.")] = False,
) -> None:
    """Set a strategy up on a scratch bed and print what it creates: links, addresses, rules, processes."""
    import yaml

    from harness.run.describe import describe_strategy
    from harness.run.scenario import ScenarioError, parse_strategy_options
    from strategies import STRATEGIES, strategy_class

    if name not in STRATEGIES:
        fail(f"unknown strategy {name!r}; known strategies: {', '.join(STRATEGIES)}.")
    if strategy_class(name).needs_qemu:
        fail(
            f"strategy {name!r} needs a VM, and describe sets strategies up with the netns guest; "
            "`vmnetbench run` with guest: qemu measures it."
        )
    pairs = [item.partition("=") for item in option]
    if bad := [key for key, eq, _ in pairs if not eq or not key]:
        fail(f"option --option: {bad[0]!r} is not KEY=VALUE (e.g. --option relay=python).")
    try:
        values = {k: yaml.safe_load(v) for k, _, v in pairs}
    except yaml.YAMLError as e:
        fail(f"option --option: a value is not a YAML scalar ({' '.join(str(e).split())[:120]}).")
    try:
        options = parse_strategy_options(name, values, "--option")
    except ScenarioError as e:
        fail(str(e))
    from harness.pod.kubevirt import LATEST, KubevirtRelease
    from harness.pod.mesh import MESHES, SidecarKind

    if sidecar not in MESHES:
        fail(f"option --sidecar: unknown sidecar {sidecar!r}; allowed: {', '.join(MESHES)}.")
    if kubevirt and kubevirt not in [str(k) for k in KubevirtRelease]:
        fail(f"option --kubevirt: unknown KubeVirt release {kubevirt!r}; allowed: {', '.join(KubevirtRelease)}.")
    setup = istio_setup(istio, istio_backend, sidecar)
    _require_root()
    release = KubevirtRelease(kubevirt or LATEST)
    typer.echo(describe_strategy(name, options, SidecarKind(sidecar), release, setup, ipv6=ipv6))


def istio_setup(release: str, backend: str, sidecar: str):
    """The Istio `describe` installs: a known release and a backend it has for the mode, or one sentence."""
    from harness.pod.istio import LATEST, IstioBackend, IstioRelease, IstioSetup
    from harness.pod.mesh import mesh_for

    if release and release not in [str(r) for r in IstioRelease]:
        fail(f"option --istio: unknown Istio release {release!r}; allowed: {', '.join(IstioRelease)}.")
    if backend not in [str(b) for b in IstioBackend]:
        fail(f"option --istio-backend: unknown backend {backend!r}; allowed: {', '.join(IstioBackend)}.")
    setup = IstioSetup(IstioRelease(release or LATEST), IstioBackend(backend))
    mesh = mesh_for(sidecar)
    if mesh.istio_component and setup.backend not in mesh.backends(setup):
        fail(
            f"option --istio-backend: Istio {setup.release} has no {backend} backend for {sidecar} "
            f"({', '.join(mesh.backends(setup))})."
        )
    return setup


@app.command()
def manifests(
    scenario: Annotated[Path, typer.Argument(help="Scenario YAML, e.g. scenarios/smoke.yaml.")],
    out: Annotated[
        Path, typer.Option(help="Folder that receives <cell>/setup.yaml, <cell>/jobs/ and index.json.")
    ] = Path("cluster"),
    kubevirt: Annotated[
        str,
        typer.Option(
            help="KubeVirt release the objects are written for: 1.6, 1.7, 1.8, 1.9 (default: the scenario's)."
        ),
    ] = "",
    tools_image: Annotated[
        str, typer.Option(help="Image of the peer, the Jobs and a direct pod (Debian 12 based).")
    ] = "",
    vm_image: Annotated[str, typer.Option(help="containerDisk of the VM (cloud-init, serial console ttyS0).")] = "",
) -> None:
    """Write, for every cell of a scenario, the Kubernetes objects that reproduce it on a cluster with KubeVirt and
    the mesh: namespace, VM, Services, peer and one Job per ingress test. Nothing here talks to a cluster."""
    from harness.cluster.manifests import Images, dns_label, write_manifests
    from harness.pod.kubevirt import KubevirtRelease
    from harness.run.scenario import ScenarioError, load_scenario

    try:
        parsed, text = load_scenario(scenario)
    except ScenarioError as e:
        fail(str(e))
    releases = [str(k) for k in KubevirtRelease if k is not KubevirtRelease.RESEARCH_2018]
    if kubevirt and kubevirt not in releases:
        fail(
            f"option --kubevirt: {kubevirt!r} is not a KubeVirt release the objects can be written for; allowed: "
            f"{', '.join(releases)}."
        )
    if not kubevirt and str(parsed.kubevirt) not in releases:
        fail(
            f"{scenario}: kubevirt {parsed.kubevirt} is no release a cluster runs; pass --kubevirt "
            f"({', '.join(releases)})."
        )
    images = Images(**{k: v for k, v in (("tools", tools_image), ("vm_disk", vm_image)) if v})
    from harness.lab.paths import foreign_place

    if foreign_place(out):
        fail(f"option --out: {foreign_place(out)}.")
    if out.exists() and not out.is_dir():
        fail(f"option --out: {out} exists and is not a folder.")
    try:
        written = write_manifests(parsed, text, out, kubevirt=kubevirt or None, images=images)
    except OSError as e:
        fail(f"option --out: cannot write in {out} ({e.strerror or e}).")
    made = [c for c in written.cells if not c.skipped]
    console.print(f"wrote {len(written.files)} files for {len(made)} cells in {out} (index: {out / 'index.json'})")
    for cell in written.cells:
        if cell.skipped:
            console.print(f"  skipped {cell.label}: {cell.skipped}", soft_wrap=True)
    if made:
        first = out / dns_label(made[0].label) / "procedure.md"
        console.print(f"each cell's kubectl steps are in its procedure.md, e.g. {first} (docs/cluster.md)")


@app.command()
def ingest(
    directory: Annotated[Path, typer.Argument(help="The folder `vmnetbench manifests --out` wrote, with the logs.")],
    results: Annotated[Path, typer.Option(help="Folder that receives results/<run id>/.")] = DEFAULT_RESULTS,
    run_id: Annotated[str | None, typer.Option(help="Six hex digits; drawn at random if not given.")] = None,
) -> None:
    """Read a cluster's outputs (saved as docs/cluster.md says) into a run folder: same samples schema,
    runtime `kubernetes`, so report, answer.md, compare and the gate work on them."""
    from harness.cluster.ingest import IngestError
    from harness.cluster.ingest import ingest as ingest_directory

    try:
        if run_id is not None:
            check_run_id(run_id)
            refuse_used_run_id(run_id, results)
        check_results_root(results)
    except ValueError as e:
        fail(str(e))
    if not directory.is_dir():
        fail(f"{directory}: not a folder; give the folder `vmnetbench manifests --out` wrote.")
    try:
        run_dir = ingest_directory(directory, results, run_id)
    except IngestError as e:
        fail(str(e))
    console.print(f"results: {run_dir}")


@app.command("strategies")
def list_strategies() -> None:
    """List the strategies this build knows."""
    from strategies import STRATEGIES

    for name, cls in STRATEGIES.items():
        console.print(f"[bold]{name:<14}[/] {cls.summary}")


@app.command("fetch-tools")
def fetch_tools() -> None:
    """Build Debian 13's passt (and trixie-backports') and unpack bookworm-backports' QEMU 10 into the cache, beside
    Debian 12's (from the machine's Debian mirror through a private apt; pinned by version and hash). Idempotent."""
    from harness.tools.debian import PASST_SOURCES, DebianFetchError, build_passt, missing_libraries, unpack_qemu

    _require_root()
    try:
        passts = {release: build_passt(release=release) for release in PASST_SOURCES}
        qemu = unpack_qemu()
    except (DebianFetchError, OSError, subprocess.CalledProcessError) as e:
        fail(f"fetching the current passt and QEMU failed: {e}")
    for release, folder in passts.items():
        console.print(f"passt ({release}) in {folder}")
    console.print(f"QEMU 10 in {qemu.binary.parent.parent.parent}")
    missing = missing_libraries(qemu.binary)
    if missing:
        fail(f"QEMU 10 needs libraries this machine lacks: {', '.join(missing)}; install them from bookworm")


@app.command()
def doctor() -> None:
    """What this host can run: tools and their versions, the QEMU guest (kernel, KVM probe), capabilities."""
    from harness.analysis.provenance import host_facts, tool_versions

    for key, value in host_facts().items():
        console.print(f"{key:<16} {value}")
    for tool, version in tool_versions().items():
        mark = "[green]ok[/]" if version else "[red]missing[/]"
        console.print(f"{tool:<16} {mark} {version or ''}")
    console.print(f"{'nsenter':<16} {'[green]ok[/]' if shutil.which('nsenter') else '[red]missing[/]'}")
    for name, line in guest_facts():
        console.print(f"{name:<16} {line}")
    console.print(f"{'capabilities':<16} {', '.join(effective_capabilities()) or 'none'}")
    console.print(f"{'docker engine':<16} {docker_engine_line()}")


def docker_engine_line() -> str:
    from harness.runtime.engine import EngineUnavailable, engine_facts

    try:
        return f"[green]ok[/] {engine_facts().line()}"
    except EngineUnavailable as e:
        return f"[yellow]none[/]: {e}"


engine_app = typer.Typer(help="The project's own Docker engine (the docker runtime's pods).", no_args_is_help=True)
app.add_typer(engine_app, name="engine")


@engine_app.command("up")
def engine_up_command(
    started_by: Annotated[str, typer.Option(help="Who starts it; `engine down --if-started-by` matches it.")] = "cli",
) -> None:
    """Start the project's dockerd (data, socket, pidfile under /run/vmnetbench/engine; no bridge, no iptables)
    unless one answers already; wait until it does."""
    from harness.runtime.engine import EngineUnavailable, engine_facts, engine_up

    _require_root()
    try:
        started = engine_up(started_by)
        console.print(("started: " if started else "already running: ") + engine_facts().line())
    except EngineUnavailable as e:
        fail(str(e))


@engine_app.command("down")
def engine_down_command(
    if_started_by: Annotated[str | None, typer.Option(help="Only an engine `engine up` started for this.")] = None,
) -> None:
    """Stop the project's dockerd (by its pidfile)."""
    from harness.runtime.engine import EngineInUse, engine_down

    _require_root()
    try:
        stopped = engine_down(if_started_by)
    except EngineInUse as e:
        fail(str(e))
    console.print("stopped the engine" if stopped else "no engine of ours to stop")


def guest_facts() -> list[tuple[str, str]]:
    """What the QEMU guest can use here: kernel, image, KVM (by the probe, not by /dev/kvm), vhost-net."""
    from harness.guests.qemu.accel import probe_kvm
    from harness.guests.qemu.image import GuestImageError, build_image

    try:
        image = build_image()
    except (GuestImageError, OSError, subprocess.CalledProcessError) as e:
        return [("guest image", f"[red]cannot build[/] {e}")]
    usable, reason = probe_kvm(image)
    kvm = f"[green]usable[/] ({reason})" if usable else f"[yellow]not usable[/]: {reason}; QEMU guests use TCG"
    vhost = "[green]present[/]" if os.path.exists("/dev/vhost-net") else "[yellow]absent[/] (tap without vhost)"
    return [
        ("guest kernel", f"{image.kernel_version} ({image.kernel})"),
        ("guest image", f"{image.digest} ({image.initrd})"),
        ("kvm", kvm),
        ("vhost-net", vhost),
    ]


CAPABILITY_BITS = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_NET_BIND_SERVICE": 10}


def effective_capabilities() -> list[str]:
    """The capabilities the strategies' requirements name, as this process holds them (CapEff)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            mask = int(line.split()[1], 16)
            return [name for name, bit in CAPABILITY_BITS.items() if mask >> bit & 1]
    return []


def parse_duration(text: str) -> float:
    """`15m`, `900s`, `1h` or a bare number of minutes, in seconds; ValueError naming the option otherwise."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"option --time-budget: {text!r} is not a duration; give e.g. 15m, 900s or 1h")
    return float(match.group(1)) * {"s": 1, "m": 60, "": 60, "h": 3600}[match.group(2)]


def parse_fraction(text: str, option: str) -> float:
    """`10%` or `0.1` as 0.1; ValueError naming the option unless strictly between 0 and 1 (0% and 100%)."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    value = (float(match.group(1)) / (100 if match.group(2) else 1)) if match else -1.0
    if not 0 < value < 1:
        raise ValueError(
            f"option {option}: {text!r} is not a precision; give a relative half-width such as 10% "
            "or 0.05 (between 0% and 100%)"
        )
    return value


def fail(message: str) -> NoReturn:
    """Bad input: one unwrapped line on stderr, exit status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def _require_root() -> None:
    if os.geteuid() != 0:
        fail("vmnetbench creates network namespaces and must run as root.")


def main() -> int:
    """The `vmnetbench` command: Typer's app, with its usage errors (an unknown option, a missing argument, a
    value of the wrong type) as one line on stderr like every other bad input, instead of a framed box."""
    from typer.exceptions import TyperException  # Typer's usage errors (its vendored click's) derive from it

    try:
        code = app(standalone_mode=False)
    except TyperException as e:
        ctx, message = getattr(e, "ctx", None), " ".join(e.format_message().split()).rstrip(".")
        if message:  # no message: the command was given no arguments and its help is printed already
            where = f"{ctx.command_path}: " if ctx is not None else ""
            typer.echo(f"error: {where}{message} (see --help).", err=True)
        return EXIT_BAD_INPUT
    except typer.Abort:  # Ctrl-C at a prompt or before a command installed its own handler
        typer.echo("error: interrupted.", err=True)
        return 130
    except typer.Exit as e:
        return e.exit_code
    return code if isinstance(code, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
