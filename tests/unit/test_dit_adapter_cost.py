"""The dit-lite adapter's cost: the rendered text says what the committed result file says, and the counting and
timing code runs on a tiny Flux-block config."""
import re

import pytest

from selfcascade.benchmarks import dit_adapter_cost, dit_cost_report

NUMBER = re.compile(r"\d+(?:\.\d+)?")


def table_rows(text: str) -> list[list[str]]:
    """The data rows of the markdown table, as cells."""
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:]]  # the first is the header


def numbers(cell: str) -> list[float]:
    return [float(value) for value in NUMBER.findall(cell)]


def test_rendered_figures_equal_the_committed_results():
    run = dit_cost_report.load()
    text = dit_cost_report.dit_cost_markdown(run)
    assert text == dit_cost_report.dit_adapter_cost()
    rows = table_rows(text)
    flux = run["flux1_dev"]
    assert len(rows) == 1 + len(run["measured"])
    assert numbers(rows[0][1]) == [flux["hidden_size"]] and numbers(rows[0][4]) == [round(flux["ratio"], 3)]
    assert numbers(rows[0][3]) == [flux["tokens"]["pivot_image"], flux["tokens"]["target_image"], flux["tokens"]["text"]]
    for row, entry in zip(rows[1:], run["measured"]):
        assert row[0] == entry["name"] and numbers(row[1]) == [entry["hidden_size"]]
        assert numbers(row[2]) == [entry["double_blocks"], entry["single_blocks"]]
        assert numbers(row[4]) == [round(entry["counted_ratio"], 3)]
        assert numbers(row[5]) == [round(entry[key], 3) for key in ("ratio", "ratio_min", "ratio_max")]
        assert numbers(row[6]) == [round(entry["tuning_free_s"], 3)]
        ratios = sorted(reading["ratio"] for reading in entry["rounds"])
        assert (entry["ratio_min"], entry["ratio_max"]) == (ratios[0], ratios[-1])
        assert entry["ratio"] == pytest.approx(ratios[len(ratios) // 2])  # an odd number of rounds: the middle one

    sentence = text.rstrip().splitlines()[-1]
    wide = max(run["measured"], key=lambda entry: entry["hidden_size"])
    cascade = flux["cascade"]
    expected = [*flux["sizes"], round(flux["ratio"], 3),
                *(float(dit_cost_report.percent(flux[part], flux["tuning_free_flops"]).rstrip("%"))
                  for part in ("pivot_pass_flops", "upsampler_flops")),
                cascade["steps"], cascade["stage_steps"], round(cascade["tuned_over_tuning_free"], 3),
                wide["hidden_size"], round(wide["ratio"], 3), round(wide["ratio_min"], 3), round(wide["ratio_max"], 3),
                len(wide["rounds"]), round(wide["counted_ratio"], 3)]
    assert numbers(sentence.replace("Flux.1-dev", "Flux")) == expected
    assert flux["tuned_flops"] == flux["tuning_free_flops"] + flux["pivot_pass_flops"] + flux["upsampler_flops"]
    assert (flux["hidden_size"], flux["double_blocks"], flux["single_blocks"]) == (3072, 19, 38)


def test_counting_and_timing_run_on_a_tiny_flux_config(one_thread):
    setup = dit_adapter_cost.flux1_blocks(256, 8)
    count = dit_adapter_cost.counted(setup)
    assert count["tokens"] == {"target_image": 64, "pivot_image": 16, "text": 2}
    assert 0 < count["upsampler_flops"] < count["pivot_pass_flops"] < count["tuning_free_flops"]
    assert count["ratio"] == count["tuned_flops"] / count["tuning_free_flops"] > 1
    timed = dit_adapter_cost.measured(setup, rounds=1, min_round_s=0.0)
    assert timed["calls_per_round"] >= 1 and timed["ratio"] > 0 and timed["counted_ratio"] == count["ratio"]
