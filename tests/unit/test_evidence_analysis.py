"""The evidence tables from per-image measurements: paired marks where rows truly differ, and the recipe rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from selfcascade.benchmarks.evidence import analysis, disc_family, metrics

N = 60
PROMPTED = [count for count in disc_family.COUNTS for _ in range(N // 3)]


@pytest.fixture(scope="module")
def renders():
    scenes = disc_family.sample_scenes(PROMPTED, np.random.default_rng(0))
    sharp = disc_family.render(scenes, 64)
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1, count_include_pad=False)
    reference = disc_family.render(disc_family.sample_scenes(PROMPTED, np.random.default_rng(1)), 64)
    return sharp, blurred, reference


def measured(key: str, images: torch.Tensor, found: list[int]) -> analysis.RowMeasurements:
    return analysis.RowMeasurements(key, key, found, metrics.high_frequency_powers(images), metrics.patch_moments(images),
                                    cpu_seconds=float(N), stage_steps=(20, 14))


def test_rows_that_differ_are_marked_and_rows_that_agree_are_not(renders):
    sharp, blurred, reference_images = renders
    duplicated = [count + 1 for count in PROMPTED]
    key_misses, same_misses = ([count + (i % 10 == miss) for i, count in enumerate(PROMPTED)] for miss in (0, 5))
    rows = [measured("key", sharp, key_misses), measured("same", sharp, same_misses),
            measured("worse", blurred, duplicated)]
    reference = analysis.Reference.of(metrics.high_frequency_powers(reference_images), metrics.patch_moments(reference_images))

    table = analysis.table("t", PROMPTED, rows, ["key"], reference, direct_seconds=2.0, resamples=300)

    by_pair = {(c["metric"], c["method"]): c for c in table["comparisons"]}
    assert {c["against"] for c in table["comparisons"]} == {"key"} and len(table["comparisons"]) == 2 * 4
    for metric in analysis.METRICS:
        assert by_pair[(metric, "worse")]["significant"], metric  # all 60 pairs disagree; blur kills the fine detail
    for metric in ("count_fidelity", "duplication", "patch_fd"):
        assert not by_pair[(metric, "same")]["significant"], metric  # 6 pairs differ each way; identical images
    worse = next(row for row in table["rows"] if row["method"] == "worse")
    assert worse["count_fidelity"]["value"] == 0.0 and worse["duplication"]["value"] == 1.0
    assert worse["patch_fd"]["low"] <= worse["patch_fd"]["value"] <= worse["patch_fd"]["high"]
    assert worse["relative_time"] == pytest.approx(0.5) and worse["stage_steps"] == [20, 14]


def test_holm_runs_over_one_metric_of_one_table(renders):
    sharp, _, reference_images = renders
    reference = analysis.Reference.of(metrics.high_frequency_powers(reference_images), metrics.patch_moments(reference_images))
    found = [count + (i % 3 == 0) for i, count in enumerate(PROMPTED)]
    rows = [measured(key, sharp, list(PROMPTED) if key.startswith("k") else found) for key in ("k1", "k2", "r1", "r2")]

    table = analysis.table("t", PROMPTED, rows, ["k1", "k2"], reference, direct_seconds=1.0, resamples=100)

    rates = [c for c in table["comparisons"] if c["metric"] == "count_fidelity"]
    assert {(c["method"], c["against"]) for c in rates} == {("k2", "k1"), ("r1", "k1"), ("r2", "k1"), ("r1", "k2"),
                                                             ("r2", "k2")}
    raw = sorted(c["p"] for c in rates)
    assert min(c["p_holm"] for c in rates) == pytest.approx(min(1.0, raw[0] * len(rates)))


def study(*rows: tuple[str, float, float, float, float]) -> dict:
    """A K-study table of (method, relative time, count fidelity, duplication, patch FD)."""
    return {"rows": [{"method": "real"}] + [
        {"method": m, "relative_time": t, "count_fidelity": {"value": c}, "duplication": {"value": d},
         "patch_fd": {"value": fd}} for m, t, c, d, fd in rows]}


def test_the_recipe_is_the_best_composition_within_the_time_budget():
    table = study(("cascade-0.7", 0.82, 0.60, 0.30, 10.0), ("cascade-0.5", 0.58, 0.55, 0.35, 11.0),
                  ("cascade-0.7-0.4", 0.52, 0.55, 0.30, 12.0), ("cascade-0.4", 0.48, 0.40, 0.20, 13.0))
    assert analysis.choose_recipe(table, 0.6) == {"method": "cascade-0.7-0.4", "budget": 0.6, "within_budget": True}
    assert analysis.choose_recipe(table, 1.0)["method"] == "cascade-0.7"
    assert analysis.choose_recipe(table, 0.3) == {"method": "cascade-0.7", "budget": 0.3, "within_budget": False}
