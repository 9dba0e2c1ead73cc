"""The evidence's words, tables and picture come from results.json and say what its numbers say."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from selfcascade.benchmarks.evidence import plot, report


@pytest.fixture(scope="module")
def results() -> dict:
    return report.load()


def test_committed_results_md_is_rendered_from_results_json(results):
    assert (report.HERE / "results.md").read_text(encoding="utf-8") == report.results_markdown(results)


def test_committed_k_study_picture_is_drawn_from_results_json(results):
    with Image.open(report.HERE / "k_study.png") as committed:
        assert np.array_equal(np.asarray(committed.convert("RGB")), np.asarray(plot.k_study_plot(results)))


def test_committed_run_has_the_power_the_issue_asks_for(results):
    tables = report.tables_by_name(results)
    assert tables["main-4x"]["n"] >= 240 and tables["main-16x"]["n"] >= 120
    assert tables["replication-16x"]["n"] >= 60 and tables["k-study-4x"]["n"] >= 60 and tables["k-study-16x"]["n"] >= 60
    for table in results["tables"]:
        assert all(table["prompted"].count(c) == table["n"] // 3 for c in (1, 2, 3))  # equal thirds
    main_seeds = {r["method"] for r in tables["main-16x"]["rows"]}
    assert main_seeds == {r["method"] for r in tables["replication-16x"]["rows"]}
    for area in report.AREAS:
        assert results["recipes"][area]["method"] in {r["method"] for r in tables[f"main-{area}"]["rows"]}


def two_rows(first: float, second: float, significant: bool) -> dict:
    """A table of rows a and b (b the key) whose count fidelities differ, significantly or not."""
    zero = {"value": 0.0, "low": 0.0, "high": 0.0}
    rows = [{"method": m, "label": m, "stage_steps": None, "relative_time": None, "duplication": zero, "patch_fd": zero,
             "hf_ratio": zero, "count_fidelity": {"value": v, "low": v, "high": v}} for m, v in (("a", first), ("b", second))]
    return {"seed_set": "main", "scale": 2, "keys": ["b"], "rows": rows,
            "comparisons": [{"metric": "count_fidelity", "method": "a", "against": "b", "significant": significant}]}


def test_words_and_marks_follow_the_paired_test_not_the_point_estimates():
    assert report.relation(two_rows(0.6, 0.5, True), "count_fidelity", "a", "b") == "higher than"
    assert report.relation(two_rows(0.6, 0.5, True), "count_fidelity", "b", "a") == "lower than"
    assert report.relation(two_rows(0.6, 0.5, False), "count_fidelity", "a", "b") == "not distinguishable from"
    marked = report.markdown_table({"recipes": {}}, two_rows(0.6, 0.5, True))
    assert "| a | – | – | 0.60 [0.60, 0.60] <sup>a</sup> |" in marked and "| (a) b |" in marked
    assert "<sup>" not in report.markdown_table({"recipes": {}}, two_rows(0.6, 0.5, False))


def test_kendall_tau_of_known_orders():
    assert report.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert report.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert report.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
