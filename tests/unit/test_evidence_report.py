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


def rated(count: tuple[float, bool], duplication: tuple[float, bool]) -> dict:
    """Rows "cascade" and "hires-0.5" (the key), the cascade's rates given as (value, differs significantly)."""
    table = two_rows(0.5, 0.5, False)
    table["rows"][0]["method"], table["rows"][1]["method"], table["keys"] = "cascade", "hires-0.5", ["hires-0.5"]
    table["comparisons"] = []
    for metric, (value, significant) in (("count_fidelity", count), ("duplication", duplication)):
        table["rows"][0][metric] = {"value": value, "low": value, "high": value}
        table["rows"][1][metric] = {"value": 0.5, "low": 0.5, "high": 0.5}
        table["comparisons"].append({"metric": metric, "method": "cascade", "against": "hires-0.5",
                                     "significant": significant})
    return table


def test_composition_is_judged_on_both_rates_by_their_paired_tests():
    assert report.composition(rated((0.6, True), (0.5, False)), "cascade", "hires-0.5") == "better than"
    assert report.composition(rated((0.5, False), (0.4, True)), "cascade", "hires-0.5") == "better than"
    assert report.composition(rated((0.4, True), (0.5, False)), "cascade", "hires-0.5") == "worse than"
    assert report.composition(rated((0.5, False), (0.6, True)), "cascade", "hires-0.5") == "worse than"
    assert report.composition(rated((0.6, False), (0.4, False)), "cascade", "hires-0.5") == "not distinguishable from"
    assert report.composition(rated((0.6, True), (0.6, True)), "cascade", "hires-0.5").startswith("better on one rate")
    assert report.composition_against_hires(rated((0.4, True), (0.5, False)), "cascade") == \
        "worse than hires fix at denoise 0.5"
    assert not report.composition_at_least(rated((0.6, True), (0.6, True)), "cascade", ["hires-0.5"])
    assert report.composition_at_least(rated((0.6, False), (0.4, False)), "cascade", ["hires-0.5"])


def test_the_reading_says_what_the_committed_tests_say(results):
    """Each "In short" verdict of the README is the paired tests' verdict on the committed results."""
    reading = report.evidence_reading(results)
    tables = report.tables_by_name(results)
    paper = f"cascade-{results['settings']['k']:g}"
    for area, recipe, table in report.recipe_rows(results):
        for method in (paper, recipe["method"]):
            assert f"composition {report.composition_against_hires(table, method)}" in reading
    assert "not distinguishable from hires fix at denoise 0.5" in report.composition_against_hires(
        tables["replication-16x"], results["recipes"]["16x"]["method"])  # the replication does not repeat the win
