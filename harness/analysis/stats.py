"""Statistics the reports rest on, each interval carrying its method, level and n, and printed only at an n
where its method reaches the stated level (as Go's benchstat and pyperf refuse to report below a minimum n).

- A binding's cost: per-block log ratios to the `direct` measured next to it (harness/analysis/blocks.py),
  summarised as exp(mean) with a t interval (`t`), and for n >= 6 also the Hodges-Lehmann estimate with the
  exact Wilcoxon signed-rank interval (`wilcoxon`). Coverage is checked by simulation in tests/test_stats.py
  (normal, heavy-tailed and skewed log ratios) and by A/A runs (benchmarks/verify_stats.py).
- A runs-apart comparison (compare, the gate, old runs without blocks): Welch's t on the logs (`welch`).
- An absolute median: the exact order-statistic (binomial) interval (`order`, scipy's quantile_test), which
  needs n >= 6 at 95% ([min, max] of 5 covers 93.75%).
- Rankings and multiplicity: Holm's step-down adjustment.
- Runs that stop on width: Stein's two-stage procedure (the pilot's spread fixes n; the final interval uses
  the pilot's s with its degrees of freedom, so its coverage is exact under normality whatever n is reached).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats

LEVEL = 0.95
MIN_N = {"t": 3, "welch": 3, "wilcoxon": 6, "order": 6, "stein": 3}
"""The smallest n (per side for welch) at which each method is printed at 95%. t and welch are exact under
normality from n=2, but at n=2 (one degree of freedom) the interval is 25 times the spread and no use;
wilcoxon and order need 6 to reach 95% at all (2/2**5 = 6.25% > 5%)."""
METHOD_TEXT = {
    "t": "exp(mean log ratio), t interval over blocks",
    "wilcoxon": "Hodges-Lehmann, exact Wilcoxon signed-rank interval over blocks",
    "welch": "exp(difference of mean logs), Welch t interval (unpaired: separate sittings or no blocks)",
    "order": "median, exact order-statistic (binomial) interval",
    "stein": "exp(mean log ratio), Stein two-stage t interval (the pilot's spread fixed n)",
}


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval; low/high are None when n is below the method's minimum at this level."""

    estimate: float
    low: float | None
    high: float | None
    n: int
    method: str
    level: float = LEVEL
    values: tuple[float, ...] = ()
    """The samples themselves (ratios, not logs), shown when there are too few for an interval."""

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def excludes(self, value: float) -> int:
        """+1 when the interval lies above `value`, -1 below, 0 when it contains it or there is none."""
        if not self.has_interval:
            return 0
        return 1 if self.low > value else -1 if self.high < value else 0

    def half_width(self) -> float | None:
        """The larger relative distance from the estimate to a bound (0.08 = the interval is within +-8%)."""
        if not self.has_interval or not self.estimate:
            return None
        return max(self.high / self.estimate - 1, 1 - self.low / self.estimate)

    def label(self) -> str:
        return f"{self.method}, {self.level:.0%}, n={self.n}"

    def format(self, digits: str = ".2f") -> str:
        if not math.isfinite(self.estimate):
            return "-"
        if self.has_interval:
            return f"{self.estimate:{digits}} [{self.low:{digits}}, {self.high:{digits}}] ({self.label()})"
        shown = ", ".join(f"{v:{digits}}" for v in sorted(self.values)) if self.values else ""
        return f"{self.estimate:{digits}} (n={self.n} < {MIN_N[self.method]} for a {self.level:.0%} interval" + (
            f": {shown})" if shown else ")"
        )

    def __str__(self) -> str:
        return self.format()


def _clean(values) -> np.ndarray:
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    return data


def _nan(method: str) -> Interval:
    return Interval(float("nan"), None, None, 0, method)


def log_ratio_interval(log_ratios, *, level: float = LEVEL) -> Interval:
    """exp(mean) of per-block log ratios and the t interval, as ratios."""
    d = _clean(log_ratios)
    n = d.size
    if n == 0:
        return _nan("t")
    mean = float(d.mean())
    values = tuple(float(v) for v in np.exp(d))
    if n < MIN_N["t"]:
        return Interval(math.exp(mean), None, None, n, "t", level, values)
    h = float(stats.t.ppf((1 + level) / 2, n - 1) * d.std(ddof=1) / math.sqrt(n))
    return Interval(math.exp(mean), math.exp(mean - h), math.exp(mean + h), n, "t", level, values)


@lru_cache(maxsize=256)
def _signed_rank_counts(n: int) -> tuple[int, ...]:
    """How many of the 2**n sign patterns give each signed-rank sum W+ = 0 .. n(n+1)/2 (exact null law)."""
    counts = [1]
    for k in range(1, n + 1):
        nxt = [0] * (len(counts) + k)
        for w, c in enumerate(counts):
            nxt[w] += c
            nxt[w + k] += c
        counts = nxt
    return tuple(counts)


def signed_rank_critical(n: int, level: float) -> int | None:
    """The largest k with P(W+ < k) <= (1 - level) / 2: the interval is [k-th smallest, k-th largest] Walsh
    average. None when even k=1 ([min, max] of the Walsh averages) cannot reach the level."""
    counts = _signed_rank_counts(n)
    total = 2**n
    tail, k, cum = (1 - level) / 2, 0, 0
    while k < len(counts) and (cum + counts[k]) / total <= tail:
        cum += counts[k]
        k += 1
    return k if k >= 1 else None


def hodges_lehmann_interval(log_ratios, *, level: float = LEVEL) -> Interval:
    """Hodges-Lehmann estimate (median of the Walsh averages) of per-block log ratios with the exact
    distribution-free Wilcoxon signed-rank interval (symmetric errors assumed), as ratios."""
    d = _clean(log_ratios)
    n = d.size
    if n == 0:
        return _nan("wilcoxon")
    i, j = np.triu_indices(n)
    walsh = np.sort((d[i] + d[j]) / 2)
    estimate = math.exp(float(np.median(walsh)))
    values = tuple(float(v) for v in np.exp(d))
    k = signed_rank_critical(n, level) if n >= MIN_N["wilcoxon"] else None
    if k is None:
        return Interval(estimate, None, None, n, "wilcoxon", level, values)
    return Interval(estimate, math.exp(walsh[k - 1]), math.exp(walsh[-k]), n, "wilcoxon", level, values)


def signed_rank_p(differences) -> tuple[float, float]:
    """The one-sided Wilcoxon signed-rank p-values that the differences sit below 0 and above 0: exact, from the
    same null law as `hodges_lehmann_interval` (zeros dropped, as Wilcoxon does); with tied magnitudes scipy's
    normal approximation with the tie correction. (1, 1) when every difference is 0."""
    d = _clean(differences)
    d = d[d != 0]
    n = d.size
    if n == 0:
        return 1.0, 1.0
    if np.unique(np.abs(d)).size < n:
        return (
            float(stats.wilcoxon(d, alternative="less").pvalue),
            float(stats.wilcoxon(d, alternative="greater").pvalue),
        )
    w = int(stats.rankdata(np.abs(d))[d > 0].sum())
    counts = _signed_rank_counts(n)
    return sum(counts[: w + 1]) / 2**n, sum(counts[w:]) / 2**n


def welch_ratio_interval(numerator, denominator, *, level: float = LEVEL) -> Interval:
    """exp(mean log a - mean log b) with Welch's t interval: two independent samples of positive values."""
    a, b = _clean(numerator), _clean(denominator)
    a, b = a[a > 0], b[b > 0]
    if a.size == 0 or b.size == 0:
        return _nan("welch")
    la, lb = np.log(a), np.log(b)
    diff = float(la.mean() - lb.mean())
    n = int(min(a.size, b.size))
    if n < MIN_N["welch"]:
        return Interval(math.exp(diff), None, None, n, "welch", level)
    se, df = _welch_se_df(la, lb)
    if se == 0:
        return Interval(math.exp(diff), math.exp(diff), math.exp(diff), n, "welch", level)
    h = float(stats.t.ppf((1 + level) / 2, df) * se)
    return Interval(math.exp(diff), math.exp(diff - h), math.exp(diff + h), n, "welch", level)


def _welch_se_df(la: np.ndarray, lb: np.ndarray) -> tuple[float, float]:
    va, vb = la.var(ddof=1) / la.size, lb.var(ddof=1) / lb.size
    se = math.sqrt(va + vb)
    if se == 0:
        return 0.0, float(la.size + lb.size - 2)
    df = (va + vb) ** 2 / (va**2 / (la.size - 1) + vb**2 / (lb.size - 1))
    return se, df


def welch_p_worse(base, new, *, higher_is_better: bool, margin: float = 0.0) -> float | None:
    """One-sided Welch p-value that NEW is worse than BASE by more than `margin` (relative, 0 = any worse),
    on the logs; None below the method's minimum n."""
    a, b = _clean(new), _clean(base)
    a, b = a[a > 0], b[b > 0]
    if min(a.size, b.size) < MIN_N["welch"]:
        return None
    la, lb = np.log(a), np.log(b)
    se, df = _welch_se_df(la, lb)
    shift = math.log(1 - margin) if higher_is_better else math.log(1 + margin)
    diff = float(la.mean() - lb.mean()) - shift
    if se == 0:
        return 0.0 if (diff < 0 if higher_is_better else diff > 0) else 1.0
    t = diff / se
    return float(stats.t.cdf(t, df) if higher_is_better else stats.t.sf(t, df))


@dataclass(frozen=True)
class TDifference:
    """A log difference with a t-distributed error: its one-sided p and its interval on the ratio scale."""

    difference: float
    se: float
    df: float

    def p_lower(self) -> float:
        """One-sided p that the true difference is not below 0 (small: NEW is lower)."""
        if self.se == 0:
            return 0.0 if self.difference < 0 else 1.0
        return float(stats.t.cdf(self.difference / self.se, self.df))

    def interval(self, level: float) -> tuple[float, float]:
        h = float(stats.t.ppf((1 + level) / 2, self.df) * self.se)
        return math.exp(self.difference - h), math.exp(self.difference + h)


@dataclass(frozen=True)
class ShiftedDifference(TDifference):
    """NEW's mean log against the mean of k stored sittings, with the shift between sittings in its error
    (difference: mean log NEW - mean over sittings of their mean logs)."""

    shift_sd: float  # the between-sitting sd of a sitting's true mean, estimated from the sittings (0 if none seen)
    sittings: int


def shifted_difference(new_logs, sittings_logs: list) -> ShiftedDifference | None:
    """A fresh sitting judged against k stored sittings when each sitting's true mean shifts by its own amount
    (sd tau): the prediction of a new sitting's mean from the k sittings' means. Its variance is the spread of
    the sittings' means times (1 + 1/k) (the new sitting's shift and noise, and the sittings' mean), plus what
    NEW's own within-sitting variance exceeds theirs; t on k - 1 degrees of freedom (exact under normality when
    every sitting has NEW's number of blocks; simulated in tests/test_gate_shift.py: 3.2-4.5% one-sided 5%
    false alarms at tau 0-0.10 with 3-5 sittings, where Welch on the pooled sittings gives 5% at tau 0 and 17% at
    0.05). tau itself (the spread of the means less their within part, >= 0) is reported. None below 2 sittings
    or MIN_N['t'] samples a side."""
    new = _clean(new_logs)
    groups = [g for g in (_clean(x) for x in sittings_logs) if g.size >= MIN_N["t"]]
    if new.size < MIN_N["t"] or len(groups) < 2:
        return None
    k = len(groups)
    means = np.array([g.mean() for g in groups])
    within = float(np.mean([g.var(ddof=1) / g.size for g in groups]))
    spread = float(means.var(ddof=1))
    var = spread * (1 + 1 / k) + max(0.0, float(new.var(ddof=1)) / new.size - within)
    tau = math.sqrt(max(0.0, spread - within))
    return ShiftedDifference(float(new.mean() - means.mean()), math.sqrt(var), float(k - 1), tau, k)


def paired_p(log_differences) -> float | None:
    """Two-sided paired t-test p-value that the mean per-block log difference is 0; None below its minimum n."""
    d = _clean(log_differences)
    if d.size < MIN_N["t"]:
        return None
    sd = d.std(ddof=1)
    if sd == 0:
        return 0.0 if d.mean() != 0 else 1.0
    return float(2 * stats.t.sf(abs(d.mean()) / (sd / math.sqrt(d.size)), d.size - 1))


def median_interval(values, *, level: float = LEVEL) -> Interval:
    """The median with its exact order-statistic interval (scipy.stats.quantile_test); none below n=6."""
    data = _clean(values)
    if data.size == 0:
        return _nan("order")
    median = float(np.median(data))
    if data.size < MIN_N["order"]:
        return Interval(median, None, None, int(data.size), "order", level, tuple(float(v) for v in data))
    ranks = _median_ranks(int(data.size), level)
    if ranks is None:
        return Interval(median, None, None, int(data.size), "order", level, tuple(float(v) for v in data))
    ordered = np.sort(data)
    return Interval(median, float(ordered[ranks[0]]), float(ordered[ranks[1]]), int(data.size), "order", level)


@lru_cache(maxsize=256)
def _median_ranks(n: int, level: float) -> tuple[int, int] | None:
    """The ranks (0-based) of the order statistics that bound the median's exact interval at n: quantile_test's
    interval depends on n and the level only, so it is read once from 0..n-1 (tests/test_stats.py checks the
    ranks against quantile_test on data with ties)."""
    ci = stats.quantile_test(np.arange(n, dtype=float), q=(n - 1) / 2, p=0.5).confidence_interval(level)
    if not (math.isfinite(ci.low) and math.isfinite(ci.high)):
        return None
    return int(ci.low), int(ci.high)


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (None stays None and does not count as a hypothesis)."""
    present = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m = len(present)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(present):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def detectable_change(log_ratios, *, level: float = LEVEL, power: float = 0.8) -> float | None:
    """The smallest relative change this many blocks with this spread detect with `power` (two-sided paired
    t at 1 - level): (t_{1-a/2} + t_{power}) * s / sqrt(n), as a ratio distance from 1."""
    d = _clean(log_ratios)
    if d.size < MIN_N["t"]:
        return None
    df = d.size - 1
    delta = (stats.t.ppf((1 + level) / 2, df) + stats.t.ppf(power, df)) * d.std(ddof=1) / math.sqrt(d.size)
    return float(math.exp(delta) - 1)


@dataclass(frozen=True)
class SteinPlan:
    """Stein's two-stage design for one ratio: the pilot's n0 and s0 fix the blocks needed for a half-width of
    at most `target` (relative); the final interval uses s0 with n0 - 1 degrees of freedom."""

    pilot_n: int
    pilot_sd: float
    target: float
    level: float = LEVEL

    @property
    def log_half_width(self) -> float:
        return math.log(1 + self.target)

    def blocks_needed(self) -> int:
        t = stats.t.ppf((1 + self.level) / 2, self.pilot_n - 1)
        return max(self.pilot_n, math.ceil((t * self.pilot_sd / self.log_half_width) ** 2))

    def interval(self, log_ratios) -> Interval:
        d = _clean(log_ratios)
        mean = float(d.mean())
        h = float(stats.t.ppf((1 + self.level) / 2, self.pilot_n - 1) * self.pilot_sd / math.sqrt(d.size))
        return Interval(math.exp(mean), math.exp(mean - h), math.exp(mean + h), int(d.size), "stein", self.level)


def stein_plan(pilot_log_ratios, target: float, *, level: float = LEVEL) -> SteinPlan | None:
    d = _clean(pilot_log_ratios)
    if d.size < MIN_N["stein"]:
        return None
    return SteinPlan(int(d.size), float(d.std(ddof=1)), target, level)


def pooled_sd(sample_sds, df: int) -> float | None:
    """One spread for a family of ratios from each one's small-sample s (df degrees of freedom each): the median
    s over its median under normality, sqrt(chi2_df median / df). The median, not the pooled variance, so one
    erratic path (slirp's egress under a mesh, s 0.4-0.7 among 0.1s) does not set the family's spread."""
    s = _clean(sample_sds)
    if s.size == 0 or df < 1:
        return None
    return float(np.median(s) / math.sqrt(stats.chi2.median(df) / df))


def stein_expected_blocks(pilot_n: int, sigma: float, target: float, *, level: float = LEVEL) -> float:
    """Stein's expected N with a pilot of pilot_n blocks when the true spread is sigma: E[max(n0, a X)] with
    X ~ chi2(n0 - 1) and a = (t * sigma / d)^2 / (n0 - 1); E[X; X > k] = df * P(chi2(df + 2) > k)."""
    df = pilot_n - 1
    a = (stats.t.ppf((1 + level) / 2, df) * sigma / math.log(1 + target)) ** 2 / df
    k = pilot_n / a
    return float(pilot_n * stats.chi2.cdf(k, df) + a * df * stats.chi2.sf(k, df + 2))


def stein_pilot_length(sigma: float | None, target: float, *, shortest: int, cap: int, level: float = LEVEL) -> int:
    """The pilot length (blocks) that minimises a ratio's expected total blocks under Stein's rule for a spread of
    sigma (issue 41 item 2: a 3-block pilot's t(2) = 4.30 inflates N about fourfold at s = 0.1; a pilot of
    8-10 costs more up front and less in all). sigma comes from the other ratios of the run (pooled_sd), so the
    length is fixed before this ratio's own Stein pilot is read and the final interval keeps Stein's coverage."""
    shortest = max(shortest, MIN_N["stein"])
    if sigma is None or not sigma > 0:
        return shortest
    best, best_cost = shortest, stein_expected_blocks(shortest, sigma, target, level=level)
    for m in range(shortest + 1, max(cap, shortest) + 1):
        if m >= best_cost:  # a pilot of m blocks costs at least m: no longer one can be cheaper
            break
        cost = stein_expected_blocks(m, sigma, target, level=level)
        if cost < best_cost:
            best, best_cost = m, cost
    return best
