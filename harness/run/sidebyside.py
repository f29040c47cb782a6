"""Two revisions of this tree measured in the same blocks (`vmnetbench gate --against REV`, issue 41).

A stored baseline from another sitting gates only if nothing shifts between sittings (a shift of sd 0.03 in the
true ratios turns its 5% false alarms into 12%). Here the base revision is checked out in a git worktree and both
trees run this tree's copy of the gate's scenario one block at a time, block b of BASE next to block b of NEW,
their order alternating (BASE first in odd blocks), each tree with its own code; the judge
(harness/analysis/gate.py `judge_side_by_side`) pairs each row's own metric per block, so the sitting's shift is
common to both sides and cancels. Each side is its tree's own `vmnetbench run` in a subprocess (PYTHONPATH = the
tree), so nothing of one revision's code reaches the other's measurements. Planted faults (VMNB_PLANT_*) reach the tree
under test only: that is how the gate's detection is checked (tests/test_gate.py, benchmarks/verify_stats.py).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.lab.names import new_run_id
from harness.lab.paths import REPO_ROOT

PLANT_PREFIX = "VMNB_PLANT_"
NO_REPORT = "VMNB_NO_REPORT"
"""Set for each one-block run: the page is not wanted there (revisions before it never wrote one at the end)."""


class SideBySideError(RuntimeError):
    pass


@dataclass
class Side:
    name: str
    tree: Path
    runs: list[Path] = field(default_factory=list)

    def env(self, under_test: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if under_test or not k.startswith(PLANT_PREFIX)}
        return {**env, "PYTHONPATH": str(self.tree)}


def resolve_revision(rev: str) -> str:
    """The commit `rev` names in this repository; one sentence when it names none."""
    done = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise SideBySideError(f"option --against: {rev!r} names no commit of this repository")
    return done.stdout.strip()


@contextlib.contextmanager
def worktree(commit: str, parent: Path) -> Iterator[Path]:
    """The base revision checked out beside this tree (a detached git worktree), removed afterwards."""
    path = parent / f"base-{commit[:12]}"
    subprocess.run(
        ["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", "--force", str(path), commit],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(path)], capture_output=True)
        subprocess.run(["git", "-C", str(REPO_ROOT), "worktree", "prune"], capture_output=True)


def run_side_by_side(scenario: Path, base_tree: Path, blocks: int, results: Path, progress=print) -> tuple[Side, Side]:
    """`blocks` blocks of `scenario` from each tree, interleaved; the run folders land in results/base and
    results/new. Both trees run this tree's scenario file: the gate compares code on one workload (a base
    revision too old to read the file fails its first block with its own message)."""
    base, new = Side("base", base_tree), Side("new", REPO_ROOT)
    for b in range(1, blocks + 1):
        for side in (base, new) if b % 2 else (new, base):
            run_id = new_run_id()
            folder = results / side.name
            folder.mkdir(parents=True, exist_ok=True)
            progress(f"block {b} of {blocks}: {side.name} ({side.tree})")
            done = _run_block(
                [sys.executable, "-m", "harness.cli", "run", str(scenario), "--repetitions", "1"]
                + ["--results", str(folder), "--run-id", run_id],
                side.tree,
                {**side.env(under_test=side is new), NO_REPORT: "1"},
            )
            if done.returncode not in (0, 3):
                tail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
                raise SideBySideError(
                    f"the {side.name} tree's run of block {b} failed (exit {done.returncode}): {tail[0]}"
                )
            side.runs.append(folder / run_id)
    return base, new


def _run_block(argv: list[str], tree: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """One side's block as its own run. Interrupted (SIGINT or SIGTERM raise here: the CLI's signals_unwind), the
    child run gets SIGTERM and tears its bed down before this process goes on unwinding (subprocess.run would
    SIGKILL it and leave its namespaces to `vmnetbench clean`)."""
    child = subprocess.Popen(argv, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate()
    except BaseException as e:
        # Ctrl-C reaches the child from the terminal already; a second signal could cut its teardown short
        if type(e) is not KeyboardInterrupt:
            child.terminate()
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
        raise
    return subprocess.CompletedProcess(argv, child.returncode, out, err)
