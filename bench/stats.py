"""Summaries of repeated measurements: medians with their spread, percentiles, ratios."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    low: float
    high: float
    runs: int


def summarize(samples: list[float]) -> Summary:
    if not samples:
        raise ValueError("no samples to summarize")
    return Summary(statistics.median(samples), min(samples), max(samples), len(samples))


def percentile(samples: list[float], fraction: float) -> float:
    """The nearest-rank percentile: a value that was actually measured, never interpolated."""
    if not samples:
        raise ValueError("no samples for a percentile")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over median, both measured in the same run."""
    return statistics.median(ours) / statistics.median(theirs)
