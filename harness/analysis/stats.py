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
