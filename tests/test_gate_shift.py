"""The stored-baseline gate with the shift between sittings in its error (issue 41 item 4), and the A/B gate's
paired judge: simulated on the functions the gate calls, then end to end on a stored file of two sittings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.gate import (
    MAX_SITTINGS,
    judge_ab,
    judge_against_baseline,
    judge_side_by_side,
    load_baseline,
    save_baseline,
)
from harness.analysis.stats import shifted_difference, welch_p_worse

BLOCK_SD = 0.10  # this machine's per-block spread of a throughput ratio's log (docs/statistics.md: 0.07-0.13)


def false_alarms(shift_sd: float, sittings: int, runs: int, seed: int) -> tuple[float, float]:
    """One-sided 5% false alarms of an unchanged tree against `sittings` stored sittings of 8 blocks each, every
    sitting (the new one too) shifted by its own N(0, shift_sd): with the shift in the error, and Welch on the
    pooled sittings (the gate before)."""
    rng = np.random.default_rng(seed)
    shifted = welch = 0
    for _ in range(runs):
        stored = [rng.normal(rng.normal(0, shift_sd), BLOCK_SD, 8) for _ in range(sittings)]
        new = rng.normal(rng.normal(0, shift_sd), BLOCK_SD, 8)
        shifted += shifted_difference(new, stored).p_lower() < 0.05
        welch += welch_p_worse(np.exp(np.concatenate(stored)), np.exp(new), higher_is_better=True) < 0.05
    return shifted / runs, welch / runs


def test_the_shift_between_sittings_keeps_the_stored_gates_false_alarms_at_its_level():
    # 3000 runs: a binomial sd of 0.4% at 5%, so 6.5% is 3.7 sd above the level
    for shift_sd, sittings, seed in ((0.0, 3, 1), (0.05, 3, 2), (0.05, 5, 3), (0.10, 5, 4)):
        with_shift, pooled = false_alarms(shift_sd, sittings, 3000, seed)
        assert with_shift <= 0.065, (shift_sd, sittings, with_shift)
        if shift_sd >= 0.05:  # the gate before: its 5% grows with the shift (the issue: 12% at 0.03, 29% at 0.05)
            assert pooled >= 0.12, (shift_sd, sittings, pooled)


def test_a_drop_is_found_and_the_shift_is_estimated_from_the_sittings():
    rng = np.random.default_rng(7)
    stored = [rng.normal(rng.normal(0, 0.05), BLOCK_SD, 8) for _ in range(5)]
    unchanged = shifted_difference(rng.normal(0, BLOCK_SD, 8), stored)
    assert unchanged.sittings == 5 and unchanged.df == 4 and 0 <= unchanged.shift_sd < 0.2
    low, high = unchanged.interval(0.90)
    assert low < np.exp(unchanged.difference) < high
    dropped = shifted_difference(rng.normal(np.log(0.6), BLOCK_SD, 8), stored)
    assert dropped.p_lower() < 0.01
    assert shifted_difference(rng.normal(0, BLOCK_SD, 8), stored[:1]) is None  # one sitting estimates no shift


def ratios(value: float, n: int, rng) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "strategy": "masquerade",
                "sidecar": "none",
                "test": "tcp_throughput",
                "direction": "ingress",
                "metric": "throughput/direct",
                "repetition": r,
                "value": value * float(np.exp(rng.normal(0, BLOCK_SD))),
            }
            for r in range(1, n + 1)
        ]
    )


def samples(masquerade: float, n: int, rng) -> pd.DataFrame:
    """A run's samples: direct and masquerade in each of n blocks (no block column: paired by repetition)."""
    rows = []
    for r in range(1, n + 1):
        direct = 9e9 * float(np.exp(rng.normal(0, 0.05)))
        for strategy, value in (("direct", direct), ("masquerade", direct * masquerade * np.exp(rng.normal(0, 0.07)))):
            rows.append(
                {
                    "strategy": strategy,
                    "sidecar": "none",
                    "test": "tcp_throughput",
                    "direction": "ingress",
                    "metric": "throughput",
                    "repetition": r,
                    "value": float(value),
                    "status": "ok",
                }
            )
    return pd.DataFrame(rows)


def test_save_baseline_adds_sittings_and_the_gate_uses_their_shift(tmp_path):
    rng = np.random.default_rng(11)
    path = tmp_path / "baseline.json"
    save_baseline(ratios(0.9, 8, rng), {"run_id": "aaa111"}, path)
    one = judge_against_baseline(samples(0.9, 8, rng), load_baseline(path))
    (why,) = one["why"]
    assert "1 baseline sitting: the shift between sittings is not in this error" in why
    for i in range(MAX_SITTINGS + 1):
        save_baseline(ratios(0.9 * (1.04 if i % 2 else 0.96), 8, rng), {"run_id": f"s{i}"}, path)
    stored = load_baseline(path)
    assert stored["sitting"].nunique() == MAX_SITTINGS and "aaa111" not in set(stored["sitting"])  # oldest dropped
    (row,) = judge_against_baseline(samples(0.9, 8, rng), stored).to_dict("records")
    assert f"with the shift between {MAX_SITTINGS} sittings (sd " in row["why"] and row["verdict"] != "regressed"
    (slow,) = judge_against_baseline(samples(0.6, 8, rng), stored).to_dict("records")
    assert slow["verdict"] == "regressed" and "t with the sittings' shift" in slow["why"]


def test_ab_judges_b_against_a_paired_per_block():
    """Within a block B/direct over A/direct is B/A: the raw metric is judged once, paired by block."""
    rng = np.random.default_rng(5)
    frame = samples(0.9, 8, rng)
    limited = frame[frame.strategy == "masquerade"].assign(strategy="masquerade-limited")
    limited["value"] *= 0.7
    verdicts = judge_ab(pd.concat([frame, limited], ignore_index=True), "masquerade", "masquerade-limited")
    (row,) = verdicts.to_dict("records")
    assert row["metric"] == "throughput" and row["n_base"] == row["n_new"] == 8
    assert row["verdict"] == "regressed" and row["why"].startswith("paired signed-rank")
    assert abs(row["ratio"] - 0.7) < 1e-9  # the same block's two beds: the per-block ratio is exact here


def test_the_side_by_side_gate_judges_each_rows_own_metric_and_only_the_paired_metrics():
    """`gate --against`: block b of each tree paired; every binding's own throughput (direct's too) is a row, not
    its ratio to direct, and a metric outside gates.yaml `paired` (cpu_kernel) is not judged at all."""
    rng = np.random.default_rng(13)
    base = [samples(0.9, 1, rng) for _ in range(8)]
    new = [samples(0.6, 1, rng) for _ in range(8)]
    cpu = base[0].assign(metric="cpu_kernel", value=1.0)
    base[0] = pd.concat([base[0], cpu], ignore_index=True)
    verdicts = judge_side_by_side(base, new).set_index("strategy")
    assert set(verdicts["metric"]) == {"throughput"} and set(verdicts.index) == {"direct", "masquerade"}
    assert (verdicts["n_base"] == 8).all()
    assert verdicts.loc["masquerade", "verdict"] == "regressed" and verdicts.loc["direct", "verdict"] != "regressed"
    assert 0.55 < verdicts.loc["masquerade", "ratio"] < 0.8


def blocks_like_this_machine(n: int, rng) -> np.ndarray:
    """Per-block log differences as benchmarks/gate_power.py measured them: most within a few percent, a fifth
    of the blocks off by a lot (a symmetric mixture: the blocks' order alternates)."""
    d = rng.normal(0, 0.04, n)
    wild = rng.random(n) < 0.2
    d[wild] = rng.normal(0, 0.3, wild.sum())
    return d


def test_the_signed_rank_p_is_scipys_exact_wilcoxon():
    from scipy import stats

    from harness.analysis.stats import signed_rank_p

    rng = np.random.default_rng(3)
    for _ in range(200):
        d = rng.normal(rng.normal(0, 0.3), 1, int(rng.integers(1, 40)))
        exact = [stats.wilcoxon(d, alternative=side, method="exact").pvalue for side in ("less", "greater")]
        assert np.allclose(signed_rank_p(d), exact)


def test_the_paired_signed_rank_gate_keeps_its_level_and_sees_ten_percent_where_the_t_does_not():
    """Four rows, 30 blocks, Holm: family-wise false alarms at most 5% under normal, t(3) and the measured
    mixture; a 10% drop of one row under the mixture is seen nearly always, where the paired t misses it more
    often (the reason judge_paired ranks)."""
    from scipy import stats

    from harness.analysis.stats import holm, signed_rank_p

    rng = np.random.default_rng(17)
    noises = {
        "normal": lambda n: rng.normal(0, 0.1, n),
        "t3": lambda n: 0.1 * rng.standard_t(3, n),
        "measured": lambda n: blocks_like_this_machine(n, rng),
    }
    runs = 600
    for name, noise in noises.items():
        flagged = sum(any(p < 0.05 for p in holm([signed_rank_p(noise(30))[0] for _ in range(4)])) for _ in range(runs))
        assert flagged / runs <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / runs), (name, flagged / runs)
    seen_rank = seen_t = 0
    for _ in range(runs):
        rows = [noise(30) for noise in [noises["measured"]] * 4]
        rows[0] = rows[0] + np.log(0.9)
        seen_rank += holm([signed_rank_p(d)[0] for d in rows])[0] < 0.05
        t_p = [float(stats.t.cdf(d.mean() / (d.std(ddof=1) / np.sqrt(d.size)), d.size - 1)) for d in rows]
        seen_t += holm(t_p)[0] < 0.05
    assert seen_rank / runs >= 0.9 and seen_rank > seen_t, (seen_rank / runs, seen_t / runs)
