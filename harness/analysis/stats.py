"""Statistics the reports rest on: medians with bootstrap confidence intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MedianCI:
    median: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return f"{self.median:.2f} [{self.low:.2f}, {self.high:.2f}]"


def median_ci(values, *, confidence: float = 0.95, resamples: int = 5000, seed: int = 0) -> MedianCI:
    """Median and its percentile-bootstrap confidence interval (resampling with replacement)."""
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if data.size == 0:
        return MedianCI(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(data, size=(resamples, data.size), replace=True), axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return MedianCI(float(np.median(data)), float(low), float(high), int(data.size))


def ratio_ci(numerator, denominator, *, confidence: float = 0.95, resamples: int = 5000, seed: int = 0) -> MedianCI:
    """median(numerator) / median(denominator) and its percentile-bootstrap CI, each group resampled on its
    own (two independent samples, e.g. harness-run and hand-run tests interleaved in one sitting)."""
    a = np.asarray([v for v in numerator if v is not None and np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in denominator if v is not None and np.isfinite(v)], dtype=float)
    if a.size == 0 or b.size == 0 or np.median(b) == 0:
        return MedianCI(float("nan"), float("nan"), float("nan"), 0)
    rng = np.random.default_rng(seed)
    ratios = np.median(rng.choice(a, size=(resamples, a.size)), axis=1) / np.median(
        rng.choice(b, size=(resamples, b.size)), axis=1
    )
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return MedianCI(float(np.median(a) / np.median(b)), float(low), float(high), int(min(a.size, b.size)))
