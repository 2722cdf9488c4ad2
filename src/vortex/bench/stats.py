"""Nearest-rank percentiles: a figure that was actually measured, no interpolation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

GIB = 2**30  # bytes
PERCENTILES = (50, 95, 99)
PERCENTILE_METHOD = (
    "nearest-rank: the ceil(p/100 x n)-th smallest of n slots (a measured value, no interpolation); "
    "below 20 slots P95 and P99 are the maximum"
)


def nearest_rank(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile: the ceil(p/100 * n)-th smallest value (1-based), p in (0, 100]."""
    if not values:
        raise ValueError("no values")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    rank = max(1, math.ceil(round(p / 100 * len(ordered), 9)))  # round: 0.95*20 must be 19, not 19.000000000000004
    return float(ordered[rank - 1])


@dataclass(frozen=True)
class Percentiles:
    n: int
    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> "Percentiles":
        values = [float(v) for v in values]
        return cls(len(values), *(nearest_rank(values, p) for p in PERCENTILES),
                   sum(values) / len(values), min(values), max(values))
