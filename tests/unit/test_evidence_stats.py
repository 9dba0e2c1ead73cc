"""Intervals and paired tests of the evidence, on cases whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from selfcascade.benchmarks.evidence import stats


def test_wilson_interval_matches_the_textbook_value_and_stays_in_unit_range():
    low, high = stats.wilson_interval(12, 36)  # p = 1/3, N = 36
    assert (round(low, 3), round(high, 3)) == (0.202, 0.497)
    assert stats.wilson_interval(0, 240)[0] == 0.0 and 0.0 < stats.wilson_interval(0, 240)[1] < 0.02
    assert stats.wilson_interval(240, 240)[1] == 1.0
    assert stats.wilson_interval(0, 3)[0] == 0.0 and stats.wilson_interval(3, 3)[1] == 1.0  # not 1e-17 off


def test_intervals_narrow_as_n_grows():
    widths = [np.subtract(*reversed(stats.wilson_interval(n // 3, n))) for n in (36, 120, 240)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[2] < 0.13  # about +-0.06 at N = 240: what the headline rows are sized for


def test_rate_counts_true_flags():
    estimate = stats.rate([True, False, True, True])
    assert estimate.value == 0.75 and estimate.low < 0.75 < estimate.high


def test_bootstrap_interval_covers_the_mean_of_a_known_sample():
    values = np.random.default_rng(1).normal(5.0, 1.0, 400)
    estimate = stats.mean_interval(values, seed=2)
    assert estimate.low < 5.0 < estimate.high and estimate.high - estimate.low < 0.3
    assert estimate.value == pytest.approx(values.mean())


def test_mcnemar_sees_a_one_sided_disagreement_and_not_a_balanced_one():
    first = [True] * 30 + [False] * 10
    assert stats.mcnemar_p(first, [False] * 40) < 1e-6  # 30 pairs disagree, all one way
    balanced_second = [False] * 10 + [True] * 20 + [True] * 10
    assert stats.mcnemar_p(first, balanced_second) == 1.0  # 10 one way, 10 the other
    assert stats.mcnemar_p(first, first) == 1.0


def test_holm_adjusts_in_the_given_order_and_keeps_monotonicity():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    with pytest.raises(ValueError):
        stats.mcnemar_p([True], [True, False])


def test_paired_bootstrap_tells_a_shifted_statistic_from_the_same_one():
    values = np.random.default_rng(3).normal(0.0, 1.0, 200)
    mean = stats.bootstrap_replicates(lambda i: float(values[i].mean()), 200, seed=4, resamples=500)
    shifted = stats.bootstrap_replicates(lambda i: float(values[i].mean() + 0.5), 200, seed=4, resamples=500)
    noisy_copy = stats.bootstrap_replicates(lambda i: float(values[i].mean() + 0.01 * values[i][0]), 200, seed=4,
                                            resamples=500)
    assert stats.paired_bootstrap_p(shifted, mean) == pytest.approx(2.0 / 501)  # every resample on one side: the floor
    assert stats.paired_bootstrap_p(noisy_copy, mean) > 0.05
    assert stats.paired_bootstrap_p(mean, mean) == 1.0


def test_paired_bootstrap_needs_the_same_resamples():
    first = stats.bootstrap_replicates(lambda i: float(i.mean()), 10, resamples=20)
    second = stats.bootstrap_replicates(lambda i: float(i.mean()), 10, resamples=30)
    with pytest.raises(ValueError, match="same resamples"):
        stats.paired_bootstrap_p(first, second)


def test_replicates_of_one_seed_resample_the_same_items():
    """Two statistics bootstrapped with one seed see identical resamples: what makes the comparison paired."""
    seen_first, seen_second = [], []
    stats.bootstrap_replicates(lambda i: seen_first.append(i.copy()) or 0.0, 12, seed=9, resamples=5)
    stats.bootstrap_replicates(lambda i: seen_second.append(i.copy()) or 0.0, 12, seed=9, resamples=5)
    assert all(np.array_equal(a, b) for a, b in zip(seen_first, seen_second))
