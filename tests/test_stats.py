"""The intervals cover what they say, checked by simulation on known distributions (seeded, no timing), and a
ranking never disagrees with the intervals printed beside it (hypothesis over random block data)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.analysis.ranking import REFERENCE, rank
from harness.analysis.stats import (
    MIN_N,
    hodges_lehmann_interval,
    holm,
    log_ratio_interval,
    median_interval,
    pooled_sd,
    signed_rank_critical,
    stein_expected_blocks,
    stein_pilot_length,
    stein_plan,
    welch_ratio_interval,
)

TRIALS = 4000
# A 95% interval over 4000 trials: coverage below 0.935 is outside 4.5 standard errors of 0.95.
FLOOR = 0.935


def _coverage(make, draw, truth: float, trials: int = TRIALS) -> float:
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(trials):
        interval = make(draw(rng))
        assert interval.has_interval
        hits += interval.low <= truth <= interval.high
    return hits / trials


NOISE = {
    "normal": lambda rng, n: rng.normal(0, 0.1, n),
    "heavy (t, 3 df)": lambda rng, n: 0.05 * rng.standard_t(3, n),
    "contaminated (10% at 5x)": lambda rng, n: rng.normal(0, 0.05, n) * np.where(rng.random(n) < 0.1, 5, 1),
}


SKEWED_NOISE = {"skewed (exponential, skew 2)": lambda rng, n: 0.1 * (rng.exponential(1.0, n) - 1.0)}

PAIRED_METHODS = {"t": (log_ratio_interval, 0.8, (3, 5, 10)), "wilcoxon": (hodges_lehmann_interval, 1.1, (6, 8, 15))}


@pytest.mark.parametrize(("method", "n"), [(m, n) for m, (_, _, ns) in PAIRED_METHODS.items() for n in ns])
@pytest.mark.parametrize("noise", list(NOISE))
def test_paired_interval_covers_the_true_ratio(method, n, noise):
    """The t interval (n >= 3) and the Wilcoxon interval (n >= 6) over per-block log ratios."""
    make, truth, _ = PAIRED_METHODS[method]
    coverage = _coverage(make, lambda rng: math.log(truth) + NOISE[noise](rng, n), truth)
    assert coverage >= FLOOR, f"{method}, {noise}, n={n}: {coverage:.3f}"


@pytest.mark.parametrize("n", [6, 9, 20])
def test_order_statistic_interval_covers_the_median_of_a_skewed_distribution(n):
    # Lognormal throughput samples: true median exp(mu).
    coverage = _coverage(median_interval, lambda rng: rng.lognormal(math.log(10), 0.3, n), 10.0)
    assert coverage >= FLOOR, f"n={n}: {coverage:.3f}"


def test_the_medians_order_statistic_ranks_are_quantile_tests_interval_on_data_with_ties():
    """median_interval reads quantile_test's ranks once per n (they depend on n and the level only)."""
    from scipy import stats

    rng = np.random.default_rng(1)
    for _ in range(400):
        data = np.round(rng.lognormal(0, 1, int(rng.integers(6, 40))), int(rng.integers(0, 3)))
        ci = stats.quantile_test(data, q=float(np.median(data)), p=0.5).confidence_interval(confidence_level=0.95)
        mine = median_interval(data)
        assert (mine.low, mine.high) == (float(ci.low), float(ci.high)), (data, mine)


@pytest.mark.parametrize("n", [3, 6])
def test_welch_interval_covers_the_ratio_of_two_independent_samples(n):
    def draw(rng):
        return rng.lognormal(math.log(5), 0.2, n), rng.lognormal(math.log(10), 0.1, n)

    coverage = _coverage(lambda ab: welch_ratio_interval(*ab), draw, 0.5)
    assert coverage >= FLOOR, f"n={n}: {coverage:.3f}"


def test_no_interval_below_each_methods_minimum_n():
    assert not log_ratio_interval([0.1, 0.2]).has_interval
    assert log_ratio_interval([0.1, 0.2, 0.15]).has_interval
    assert not median_interval([1, 2, 3, 4, 5]).has_interval  # [min, max] of 5 covers 93.75%, not 95%
    assert median_interval([1, 2, 3, 4, 5, 6]).has_interval
    assert not hodges_lehmann_interval([0.1] * 5).has_interval
    assert signed_rank_critical(5, 0.95) is None and signed_rank_critical(6, 0.95) == 1
    assert not welch_ratio_interval([1, 2], [1, 2, 3]).has_interval
    text = median_interval([1, 2, 3]).format()
    assert "n=3 < 6" in text and "[" not in text
    assert "(t, 95%, n=3)" in log_ratio_interval([0.1, 0.2, 0.15]).format()
    assert MIN_N["order"] == 6


def test_signed_rank_critical_values_match_the_published_table():
    # Two-sided 5% critical values of the Wilcoxon signed-rank statistic (reject when W <= T): n=6: 0, n=10: 8,
    # n=20: 52; the interval's k is T + 1.
    assert [signed_rank_critical(n, 0.95) - 1 for n in (6, 10, 20)] == [0, 8, 52]


def test_holm_adjusts_step_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03, None]) == [0.03, 0.06, 0.06, None]
    assert holm([0.5]) == [0.5]


@pytest.mark.parametrize("n0", [3, 5])
def test_stein_two_stage_keeps_coverage_and_reaches_its_width(n0):
    rng = np.random.default_rng(11)
    target, truth, hits, widths = 0.05, math.log(0.9), 0, []
    for _ in range(2000):
        sd = rng.choice([0.02, 0.05, 0.1])
        pilot = truth + rng.normal(0, sd, n0)
        plan = stein_plan(pilot, target)
        more = truth + rng.normal(0, sd, plan.blocks_needed() - n0)
        interval = plan.interval(np.concatenate([pilot, more]))
        hits += interval.low <= 0.9 <= interval.high
        widths.append(interval.half_width())
    assert hits / 2000 >= FLOOR
    assert max(widths) <= target + 1e-9


def test_the_stein_pilot_length_is_the_one_with_the_fewest_expected_blocks():
    """Issue 41 item 2, from the formula (no simulation): at this machine's spread of per-block log ratios
    (s 0.10-0.13, the median of a `make bench` pilot) a 3-block Stein pilot expects about three times the blocks
    of the best length, which is what stein_pilot_length picks; a quiet family keeps the short pilot."""
    for sigma in (0.10, 0.128):
        best = stein_pilot_length(sigma, 0.10, shortest=3, cap=60)
        costs = {m: stein_expected_blocks(m, sigma, 0.10) for m in range(3, 40)}
        assert costs[best] == min(costs.values()) and 6 <= best <= 10
        assert costs[3] > 2.4 * costs[best]
    assert stein_pilot_length(0.02, 0.10, shortest=3, cap=60) == 3
    assert stein_pilot_length(None, 0.10, shortest=4, cap=60) == 4
    # the expectation matches a simulation of Stein's N
    rng = np.random.default_rng(3)
    n = [stein_plan(rng.normal(0, 0.1, 7), 0.10).blocks_needed() for _ in range(4000)]
    assert abs(np.mean(n) - stein_expected_blocks(7, 0.1, 0.10)) < 0.3


POOLED_NOISE = {
    **{k: v for k, v in NOISE.items()},
    **SKEWED_NOISE,
}


@pytest.mark.parametrize("noise", list(POOLED_NOISE))
def test_a_pilot_length_from_the_runs_pooled_spread_keeps_steins_coverage_per_ratio(noise):
    """The precision schedule's rule (harness/run/precision.py): a shared 3-block pilot; m from the median of the
    ratios' pilot spreads (pooled_sd, stein_pilot_length); each ratio's Stein pilot is its first m blocks. With
    spreads that differ fourfold across 24 ratios (this machine's 0.03-0.18) the quiet and the noisy ratios both
    keep their coverage: m depends on a ratio's own data only through a median of 24 spreads. (Expected blocks a
    ratio, same simulation: 11.6-13.6 against 20-28 with the 3-block pilot as each ratio's Stein pilot.)"""
    rng = np.random.default_rng(17)
    target, truth = 0.10, math.log(0.8)
    sigmas = np.linspace(0.03, 0.18, 24)
    hits = {"quiet": [0, 0], "noisy": [0, 0]}
    lengths = []
    for _ in range(TRIALS // 12):
        draw = [lambda n, s=s: s / 0.1 * POOLED_NOISE[noise](rng, n) for s in sigmas]
        pilots = [truth + d(3) for d in draw]
        m = stein_pilot_length(pooled_sd([p.std(ddof=1) for p in pilots], 2), target, shortest=3, cap=1000)
        lengths.append(m)
        for sigma, d, pilot in zip(sigmas, draw, pilots, strict=True):
            first = np.concatenate([pilot, truth + d(m - 3)])
            plan = stein_plan(first, target)
            rest = truth + d(max(plan.blocks_needed() - m, 0))
            interval = plan.interval(np.concatenate([first, rest]))
            group = hits["quiet" if sigma < 0.1 else "noisy"]
            group[0] += interval.low <= 0.8 <= interval.high
            group[1] += 1
    coverage = {k: h / n for k, (h, n) in hits.items()}
    # skew 2: the t interval's known shortfall (0.86-0.89 here, as a 3-block Stein pilot's 0.88), see below
    floor = FLOOR if noise in NOISE else 0.85
    assert min(coverage.values()) >= floor, (noise, coverage)
    assert 4 <= np.median(lengths) <= 12, np.median(lengths)


def _series(values) -> pd.Series:
    return pd.Series(values, index=range(1, len(values) + 1), dtype=float)


@settings(max_examples=300, deadline=None)
@given(
    effects=st.lists(st.floats(-0.4, 0.4), min_size=1, max_size=6),
    spread=st.floats(0.001, 0.3),
    blocks=st.integers(2, 12),
    seed=st.integers(0, 2**16),
    higher=st.booleans(),
)
def test_a_ranking_never_disagrees_with_its_intervals(effects, spread, blocks, seed, higher):
    rng = random.Random(seed)
    drift = [rng.gauss(0, spread) for _ in range(blocks)]  # shared by every binding of a block
    series, intervals = {}, {}
    for i, effect in enumerate(effects):
        name = f"b{i}"
        series[name] = _series([effect + d * rng.random() + rng.gauss(0, spread) for d in drift])
        intervals[name] = log_ratio_interval(series[name].to_numpy())
    result = rank(intervals, series, higher_is_better=higher)
    sign = 1 if higher else -1
    estimate = {REFERENCE: 1.0, **{b: i.estimate for b, i in intervals.items()}}
    tier_of = {b: t for t, tier in enumerate(result.tiers) for b in tier}
    assert set(tier_of) == {REFERENCE, *intervals}
    for b, interval in intervals.items():
        side = sign * interval.excludes(1.0)  # +1: better than direct by its own interval
        if tier_of[b] < tier_of[REFERENCE]:
            assert side == 1, f"{b} ranked above direct, its interval {interval} does not say so"
        if tier_of[b] > tier_of[REFERENCE]:
            assert side == -1, f"{b} ranked below direct, its interval {interval} does not say so"
        if tier_of[b] == tier_of[REFERENCE] and side != 0:
            assert b in result.marked  # never silently `equal` to direct
    for (a, b), claimed in result.better.items():
        assert claimed and tier_of[a] < tier_of[b]
        assert sign * math.log(estimate[a] / estimate[b]) >= -1e-12, "a `>` against the estimates"


def test_twins_with_no_difference_stay_in_one_tier_and_a_clear_loser_is_cut():
    rng = np.random.default_rng(3)
    twin = _series(rng.normal(0, 0.05, 8))
    slow = _series(np.log(0.5) + rng.normal(0, 0.05, 8))
    intervals = {"twin": log_ratio_interval(twin.to_numpy()), "slow": log_ratio_interval(slow.to_numpy())}
    result = rank(intervals, {"twin": twin, "slow": slow}, higher_is_better=True)
    assert result.text() == "direct, twin > slow" or result.text() == "twin, direct > slow"


def _gate_frame(rng, shift: dict[str, float], n: int, sd: float) -> pd.DataFrame:
    rows = []
    for strategy in ("masquerade", "nat-proxy", "tproxy", "slirp"):
        for direction in ("ingress", "egress"):
            for block in range(1, n + 1):
                value = float(np.exp(rng.normal(math.log(0.8) + shift.get(strategy, 0.0), sd)))
                rows.append(
                    {
                        "strategy": strategy,
                        "sidecar": "none",
                        "test": "tcp_throughput",
                        "direction": direction,
                        "metric": "throughput/direct",
                        "value": value,
                        "repetition": block,
                    }
                )
    return pd.DataFrame(rows)


def test_an_unchanged_tree_fails_the_whole_gate_at_most_alpha_of_the_time():
    """Eight gated ratios, nothing changed: Holm over the rows keeps the gate's family-wise false alarms <= 5%
    (without it, eight one-sided tests at 5% would fail about a third of unchanged trees)."""
    from harness.analysis.compare import load_gates
    from harness.analysis.gate import judge

    rng = np.random.default_rng(5)
    load_gates()  # the shipped thresholds parse
    failed = 0
    trials = 300
    for _ in range(trials):
        verdicts = judge(_gate_frame(rng, {}, 6, 0.08), _gate_frame(rng, {}, 6, 0.08))
        failed += bool((verdicts.verdict == "regressed").any())
    assert failed / trials <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / trials)


def test_the_gate_sees_a_large_regression_and_calls_a_tight_unchanged_tree_unchanged():
    from harness.analysis.gate import judge

    rng = np.random.default_rng(9)
    verdicts = judge(_gate_frame(rng, {}, 8, 0.03), _gate_frame(rng, {"nat-proxy": math.log(0.8)}, 8, 0.03))
    by = verdicts.set_index(["strategy", "direction"])["verdict"]
    assert (by.loc["nat-proxy"] == "regressed").all()
    assert (by.drop("nat-proxy") == "unchanged").all()
    assert verdicts[verdicts.verdict == "regressed"].why.str.contains("Holm").all()


SKEWED = SKEWED_NOISE


@pytest.mark.parametrize("n", [3, 5, 10])
def test_under_skewed_noise_the_t_interval_falls_short_and_says_by_how_much(n):
    """A measured limit, not a pass: with strongly skewed per-block log ratios (skew 2) the t interval covers about
    88-90%, not 95% (issue 41's simulation: 0.88-0.90). The next test shows this machine's ratios are not skewed."""
    coverage = _coverage(
        log_ratio_interval, lambda rng: math.log(0.8) + SKEWED["skewed (exponential, skew 2)"](rng, n), 0.8
    )
    assert 0.85 <= coverage < FLOOR, f"n={n}: {coverage:.3f}"


def test_this_machines_block_ratios_are_not_skewed():
    """The t intervals' symmetric-noise assumption, checked on a real `make bench` run (tests/fixtures/run-mesh):
    the per-block log ratios of every throughput ratio, standardised within the ratio, pooled, have a skewness far
    from the skew-2 case above (a symmetric-noise sample of this size stays within +-0.6 of 0 in 99% of draws)."""
    from scipy import stats as st_

    from harness.analysis.blocks import block_log_ratios
    from harness.analysis.results import load_samples

    ratios = block_log_ratios(load_samples(Path(__file__).parent / "fixtures" / "run-mesh"))
    ratios = ratios[ratios.metric == "throughput"]
    residuals = []
    for _, group in ratios.groupby(["strategy", "sidecar", "direction"]):
        series = group.groupby("block")["log_ratio"].mean()
        if len(series) >= 3 and series.std(ddof=1) > 0:
            residuals += list((series - series.mean()) / series.std(ddof=1))
    assert len(residuals) >= 100
    assert abs(st_.skew(residuals)) < 0.6, st_.skew(residuals)


def test_a_line_of_bindings_identical_to_direct_carries_an_adjusted_star_at_most_alpha_of_the_time():
    """Issue 41: with five bindings equal to direct, 17-35% of lines carried `*` from unadjusted intervals. The
    adjusted `*` (Holm over the line against direct) is rare; `(*)` still marks an interval that excludes 1, so the
    tier never contradicts the interval printed beside it."""
    rng = np.random.default_rng(5)
    adjusted_lines, unadjusted_lines, trials = 0, 0, 400
    for _ in range(trials):
        series = {f"b{i}": _series(rng.normal(0, 0.1, 6)) for i in range(5)}
        intervals = {b: log_ratio_interval(s.to_numpy()) for b, s in series.items()}
        result = rank(intervals, series, higher_is_better=True)
        adjusted_lines += bool(result.adjusted)
        unadjusted_lines += bool(set(result.marked) - set(result.adjusted))
        assert set(result.adjusted) <= set(result.marked)
    assert adjusted_lines / trials <= 0.07, adjusted_lines / trials
    assert unadjusted_lines / trials >= 0.1  # what the unadjusted star used to show
