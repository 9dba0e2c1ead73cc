"""From per-image measurements to the evidence tables: estimates with intervals, paired tests, the recipe.

One table holds rows measured on the same seeds (the same prompted counts, the same noise), so every
comparison is paired: McNemar's exact test for the rates, the same bootstrap resamples for the
set-level detail metrics. Each row is compared with each of the table's key rows, and Holm's
correction runs over one metric's comparisons in one table. The result is plain JSON (the
README and ``results.md`` are rendered from it without numpy).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import metrics, stats

RATES = ("count_fidelity", "duplication")
DETAIL = ("patch_fd", "hf_ratio")
METRICS = RATES + DETAIL
SIGNIFICANCE = 0.05  # Holm-adjusted p below this marks a difference
REAL = "real"


@dataclass
class RowMeasurements:
    """Per-image measurements of one row (images in the table's order)."""

    key: str
    label: str
    found: list[int]
    hf_powers: np.ndarray
    moments: metrics.PatchMoments
    cpu_seconds: Optional[float] = None  # None: not generated (real renders)
    stage_steps: Optional[tuple[int, ...]] = None


@dataclass(frozen=True)
class Reference:
    """The real renders every row of one size is compared with."""

    hf_power: float
    frechet: metrics.FrechetToReference

    @classmethod
    def of(cls, hf_powers: np.ndarray, moments: metrics.PatchMoments) -> "Reference":
        return cls(float(hf_powers.mean()), metrics.FrechetToReference(moments))


def flags(metric: str, found: list[int], prompted: list[int]) -> list[bool]:
    """Per image: the right count (count fidelity) or more objects than prompted (duplication)."""
    if metric == "count_fidelity":
        return [f == p for f, p in zip(found, prompted)]
    return [f > p for f, p in zip(found, prompted)]


def _estimate(estimate: stats.Estimate) -> dict:
    return {"value": estimate.value, "low": estimate.low, "high": estimate.high}


def _detail_replicates(row: RowMeasurements, reference: Reference, seed: int, resamples: int) -> dict:
    n = len(row.found)
    return {
        "patch_fd": stats.bootstrap_replicates(lambda indices: reference.frechet(row.moments, indices), n, seed, resamples),
        "hf_ratio": stats.bootstrap_replicates(lambda indices: float(row.hf_powers[indices].mean() / reference.hf_power),
                                               n, seed, resamples),
    }


def table(name: str, prompted: list[int], rows: list[RowMeasurements], keys: list[str], reference: Reference,
          direct_seconds: float, resamples: int = stats.BOOTSTRAP_RESAMPLES, seed: int = 0) -> dict:
    """One table: every row's estimates, and its paired comparisons with the ``keys`` rows.

    ``direct_seconds``: direct inference's CPU seconds per image at this size, the unit of the time column.
    """
    n = len(prompted)
    if any(len(row.found) != n for row in rows):
        raise ValueError(f"table {name}: every row needs {n} images")
    replicates = {row.key: _detail_replicates(row, reference, seed, resamples) for row in rows}
    out_rows = []
    for row in rows:
        entry = {"method": row.key, "label": row.label, "n": n, "found": list(row.found)}
        for metric in RATES:
            entry[metric] = _estimate(stats.rate(flags(metric, row.found, prompted)))
        for metric in DETAIL:
            entry[metric] = _estimate(replicates[row.key][metric].estimate())
        seconds = None if row.cpu_seconds is None else row.cpu_seconds / n
        entry["seconds_per_image"] = seconds
        entry["relative_time"] = None if seconds is None else seconds / direct_seconds
        entry["stage_steps"] = None if row.stage_steps is None else list(row.stage_steps)
        out_rows.append(entry)

    comparisons = []
    by_key = {row.key: row for row in rows}
    for metric in METRICS:
        pairs = [(row.key, key) for key in keys for row in rows
                 if row.key not in (key, REAL) and not (row.key in keys and keys.index(row.key) < keys.index(key))]
        pvalues = []
        for method, against in pairs:
            if metric in RATES:
                pvalues.append(stats.mcnemar_p(flags(metric, by_key[method].found, prompted),
                                               flags(metric, by_key[against].found, prompted)))
            else:
                pvalues.append(stats.paired_bootstrap_p(replicates[method][metric], replicates[against][metric]))
        for (method, against), p, adjusted in zip(pairs, pvalues, stats.holm(pvalues)):
            comparisons.append({"metric": metric, "method": method, "against": against, "p": p, "p_holm": adjusted,
                                "significant": adjusted < SIGNIFICANCE})
    return {"name": name, "n": n, "prompted": prompted, "keys": keys, "rows": out_rows, "comparisons": comparisons,
            "direct_seconds_per_image": direct_seconds}


def choose_recipe(k_study: dict, budget: float) -> dict:
    """The K-study row with the best count fidelity within the time ``budget`` (relative to direct).

    Ties go to the lower duplication, then the lower patch FD. When no row is within the budget,
    the best row overall is chosen and ``within_budget`` says so.
    """
    rows = [row for row in k_study["rows"] if row["method"] != REAL]
    within = [row for row in rows if row["relative_time"] <= budget]
    best = max(within or rows, key=lambda row: (row["count_fidelity"]["value"], -row["duplication"]["value"],
                                                -row["patch_fd"]["value"]))
    return {"method": best["method"], "budget": budget, "within_budget": bool(within)}
