"""Order statistics for benchmark samples: median, p99 and the summary every table row uses.

Percentiles use the nearest-rank method on the sorted samples (no interpolation), so a p99 of
fewer than 100 samples is simply one of the slowest samples measured, never an invented value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], pct: float) -> float:
    """The nearest-rank percentile `pct` (0-100) of `samples`; NaN when there are none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Summary:
    """Median, p99, extremes and count of one series of samples (all in the samples' unit)."""

    n: int
    p50: float
    p99: float
    min: float
    max: float
    mean: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            nan = math.nan
            return cls(0, nan, nan, nan, nan, nan)
        return cls(
            len(samples),
            percentile(samples, 50),
            percentile(samples, 99),
            min(samples),
            max(samples),
            sum(samples) / len(samples),
        )

    def as_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "p50": self.p50,
            "p99": self.p99,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
        }


def ratio(value: float, baseline: float) -> float:
    """value / baseline, NaN when either is missing or the baseline is not positive."""
    if math.isnan(value) or math.isnan(baseline) or baseline <= 0:
        return math.nan
    return value / baseline
