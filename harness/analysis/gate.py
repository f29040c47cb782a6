"""The regression gate (`vmnetbench gate`, `make gate`): a gate CI can trust on a noisy 2-core machine.

Absolute numbers from another sitting cannot gate here (measured: a stored pytest-benchmark baseline failed
unchanged code by +44% and +52%). So the gate judges each binding's throughput and connection rate as a
ratio to `direct` measured in the same run, paired by repetition (the cells are interleaved, so drift hits
both sides of a ratio alike), against a stored baseline of the same ratios (benchmarks/gate-baseline.json),
with compare's regressed / improved / unchanged / inconclusive logic and the thresholds of
benchmarks/gates.yaml. The A/B mode judges variant B against variant A measured interleaved in one run
(two rule sets, two relay builds, two passt builds), with the same logic and no stored baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from harness.analysis.compare import DEFAULT_GATES, judge_frames, load_gates, within_run_ratios
from harness.lab.kinds import Status
from harness.lab.paths import REPO_ROOT

DEFAULT_BASELINE = REPO_ROOT / "benchmarks" / "gate-baseline.json"
RATIO_KEYS = ["strategy", "sidecar", "test", "direction", "metric"]  # compare.KEYS


class GateError(ValueError):
    pass


def ok_rows(samples: pd.DataFrame) -> pd.DataFrame:
    df = samples[(samples["status"] == Status.OK) & samples["value"].notna()].copy()
    df["test"] = df["test"].fillna("")
    return df


def run_ratios(samples: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """Every binding's within-run ratio samples (`<metric>/direct`), one per repetition."""
    _, ratios = load_gates(gates_path)
    return within_run_ratios(ok_rows(samples), ratios)[RATIO_KEYS + ["repetition", "value"]]


def save_baseline(ratios: pd.DataFrame, meta: dict, path: Path = DEFAULT_BASELINE) -> Path:
    record = {
        "run_id": meta.get("run_id"),
        "host": meta.get("host"),
        "tools": meta.get("tools"),
        "git_sha": meta.get("git_sha"),
        "ratios": ratios.to_dict(orient="records"),
    }
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def load_baseline(path: Path = DEFAULT_BASELINE) -> pd.DataFrame:
    if not path.is_file():
        raise GateError(f"no gate baseline at {path}; record one with `vmnetbench gate --save-baseline`")
    try:
        return pd.DataFrame(json.loads(path.read_text())["ratios"])
    except (ValueError, KeyError) as e:
        raise GateError(f"{path} is not a gate baseline ({e})") from None


def judge(base: pd.DataFrame, new: pd.DataFrame, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """compare's verdict for every (cell, metric) both frames hold."""
    gates, _ = load_gates(gates_path)
    return judge_frames(base, new, gates)


def judge_against_baseline(samples: pd.DataFrame, baseline: pd.DataFrame, gates_path: Path = DEFAULT_GATES):
    ratios = run_ratios(samples, gates_path)
    verdicts = judge(baseline, ratios, gates_path)
    if verdicts.empty:
        raise GateError("the run and the baseline share no binding ratio; was the baseline made from this scenario?")
    return verdicts


def judge_ab(samples: pd.DataFrame, a: str, b: str, gates_path: Path = DEFAULT_GATES) -> pd.DataFrame:
    """Variant `b` judged against variant `a`, both measured in this run: their own metrics and their ratios
    to direct (when the run has direct)."""
    rows = ok_rows(samples)
    present = set(rows["strategy"])
    for name in (a, b):
        if name not in present:
            raise GateError(f"option --ab: {name!r} has no successful samples in the run; it has: "
                            f"{', '.join(sorted(present))}")  # fmt: skip
    frame = pd.concat([rows[RATIO_KEYS + ["repetition", "value"]], run_ratios(samples, gates_path)], ignore_index=True)
    frame = frame[frame["test"] != "harness"]
    base = frame[frame.strategy == a].assign(strategy=f"{b} vs {a}")
    new = frame[frame.strategy == b].assign(strategy=f"{b} vs {a}")
    return judge(base, new, gates_path)
