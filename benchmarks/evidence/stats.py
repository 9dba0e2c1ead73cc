"""Intervals and tests for the evidence tables: how far a rate measured on N images can be trusted.

Rates (count fidelity, duplication) get Wilson score intervals, which stay inside [0, 1] and keep
their coverage at small N and at rates near 0 or 1, where the normal approximation fails. Set-level
statistics (patch Fréchet distance, high-frequency ratio) and per-image means get percentile
bootstrap intervals over images. Rows of one table are drawn from the same seeds (upscale, hires fix
and the cascades all start from the same native sample), so two rows are compared image by image:
McNemar's exact test on the pairs where they disagree for rates, the same bootstrap resamples of
both rows for set-level statistics, with Holm's correction over a table's family of comparisons.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.stats

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Estimate:
    """A measured value with its interval at ``LEVEL`` (both ends None when it has no interval)."""

    value: float
    low: float | None = None
    high: float | None = None

    def text(self, digits: int = 3) -> str:
        if self.low is None or self.high is None:
            return f"{self.value:.{digits}f}"
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion ``successes / n``."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    z = scipy.stats.norm.ppf(0.5 + level / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes == 0 else max(0.0, float(centre - half))  # exact ends: float error would leave 1e-17
    high = 1.0 if successes == n else min(1.0, float(centre + half))
    return low, high


def rate(flags: Sequence[bool], level: float = LEVEL) -> Estimate:
    """The share of true ``flags`` with its Wilson interval."""
    successes, n = int(sum(bool(f) for f in flags)), len(flags)
    return Estimate(successes / n, *wilson_interval(successes, n, level))


@dataclass(frozen=True)
class Replicates:
    """A statistic on all items and on each bootstrap resample of them.

    Replicates drawn with the same ``seed`` and item count use the same resamples, so two statistics
    of the same items (two methods on the same seeds) can be compared resample by resample.
    """

    value: float
    resampled: np.ndarray

    def estimate(self, level: float = LEVEL) -> Estimate:
        tail = (1.0 - level) / 2.0
        return Estimate(self.value, float(np.quantile(self.resampled, tail)), float(np.quantile(self.resampled, 1 - tail)))


def bootstrap_replicates(statistic: Callable[[np.ndarray], float], n: int, seed: int = 0,
                         resamples: int = BOOTSTRAP_RESAMPLES) -> Replicates:
    """``statistic(indices)`` on all ``n`` items and on ``resamples`` resamples (indices drawn with repeats)."""
    generator = np.random.default_rng(seed)
    values = np.array([statistic(generator.integers(0, n, n)) for _ in range(resamples)])
    return Replicates(float(statistic(np.arange(n))), values)


def bootstrap(statistic: Callable[[np.ndarray], float], n: int, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES,
              level: float = LEVEL) -> Estimate:
    """``statistic(indices)`` on all ``n`` items, with a percentile bootstrap interval over items.

    ``statistic`` receives an index array into the items (with repeats when resampled), so set-level
    statistics such as a Fréchet distance are recomputed on each resample.
    """
    return bootstrap_replicates(statistic, n, seed, resamples).estimate(level)


def paired_bootstrap_p(first: Replicates, second: Replicates) -> float:
    """Two-sided bootstrap p-value that two statistics of the same items are equal.

    Both replicates must come from the same resamples (same seed and item count); the p-value is
    twice the share of resampled differences on the far side of zero, so p < 1 - LEVEL exactly
    when the percentile interval of the difference excludes zero (up to the +1 that keeps p > 0).
    """
    if first.resampled.shape != second.resampled.shape:
        raise ValueError(f"paired replicates need the same resamples, got {first.resampled.shape} and "
                         f"{second.resampled.shape}")
    differences = first.resampled - second.resampled
    far_side = min(int((differences <= 0).sum()), int((differences >= 0).sum()))
    return min(1.0, 2.0 * (far_side + 1) / (len(differences) + 1))


def mean_interval(values: Sequence[float], seed: int = 0, level: float = LEVEL) -> Estimate:
    """The mean of per-item ``values`` with its bootstrap interval."""
    array = np.asarray(values, dtype=float)
    return bootstrap(lambda indices: float(array[indices].mean()), len(array), seed=seed, level=level)


def mcnemar_p(first: Sequence[bool], second: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value that paired flags (same images, two methods) have equal rates."""
    if len(first) != len(second):
        raise ValueError(f"paired flags need equal lengths, got {len(first)} and {len(second)}")
    only_first = sum(bool(a) and not bool(b) for a, b in zip(first, second))
    only_second = sum(bool(b) and not bool(a) for a, b in zip(first, second))
    if only_first + only_second == 0:
        return 1.0
    return float(scipy.stats.binomtest(only_first, only_first + only_second, 0.5).pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given (a family of comparisons at one level)."""
    order = sorted(range(len(pvalues)), key=lambda i: pvalues[i])
    adjusted = [0.0] * len(pvalues)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted
